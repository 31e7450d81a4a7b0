//! Form-login replay, as a person would sign in: fetch the system's login page with a cookie
//! jar of its own, find the form with the password field, keep its hidden fields (CSRF
//! tokens), post the person's vaulted credential to that form's action, and tell success from
//! failure by the configured rule. The jar then holds the system's session, which the login
//! proxy hands to the person's browser on the system's own host.
//!
//! Must never: post a credential, or follow a redirect, to an origin the system did not
//! register; read more than `MAX_PAGE` of a page; retry a refused login (the caller marks the
//! binding, so the system's lockout is never reached).

use reqwest::Url;
use reqwest::header::{self, HeaderMap};

use crate::bridge::LoginCheck;
use crate::bridge::systems::{FormLogin, System};
use crate::crypto::Secret;

/// The most of a login page read.
const MAX_PAGE: usize = 1024 * 1024;
/// Same-origin redirects followed (by hand) to reach the login page.
const MAX_HOPS: usize = 4;

/// A cookie jar for one person and one system: name and value, as the system last set them
/// (the system has one origin here, so domain and path are not needed to choose).
#[derive(Debug, Default, Clone)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// Take in the `Set-Cookie` headers of a response: new values replace old, and a cookie
    /// expired or with `Max-Age=0` goes.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(header::SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            let Ok(c) = cookie::Cookie::parse(text.to_string()) else {
                continue;
            };
            let gone = c.max_age().is_some_and(|a| a.is_zero() || a.is_negative())
                || c.expires_datetime()
                    .is_some_and(|e| e < cookie::time::OffsetDateTime::now_utc());
            self.cookies.retain(|(n, _)| n != c.name());
            if !gone && self.cookies.len() < 64 {
                self.cookies
                    .push((c.name().to_string(), c.value().to_string()));
            }
        }
    }

    /// The `Cookie` header value, if there is any cookie.
    pub fn header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn cookies(&self) -> &[(String, String)] {
        &self.cookies
    }
}

/// The login form found on a page.
#[derive(Debug, PartialEq, Eq)]
pub struct LoginForm {
    /// Where the form posts (absolute).
    pub action: Url,
    /// The fields sent as they are (hidden fields such as CSRF tokens).
    pub kept: Vec<(String, String)>,
    pub username_field: String,
    pub password_field: String,
}

#[derive(Default)]
struct RawForm {
    action: Option<String>,
    post: bool,
    inputs: Vec<(String, String, String)>,
}

fn text(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// Find the login form of `html` (the page at `page`): the form with a password field (the
/// one named in `cfg`, if it names one).
pub fn find_login_form(html: &[u8], page: &Url, cfg: &FormLogin) -> Option<LoginForm> {
    let mut forms: Vec<RawForm> = vec![];
    let mut current: Option<RawForm> = None;
    for token in html5gum::Tokenizer::new(html).flatten() {
        match token {
            html5gum::Token::StartTag(tag) => {
                let attr = |name: &str| tag.attributes.get(name.as_bytes()).map(|v| text(v));
                match tag.name.as_slice() {
                    b"form" => {
                        if let Some(f) = current.take() {
                            forms.push(f);
                        }
                        current = Some(RawForm {
                            action: attr("action"),
                            post: attr("method").is_some_and(|m| m.eq_ignore_ascii_case("post")),
                            inputs: vec![],
                        });
                    }
                    b"input" => {
                        if let (Some(f), Some(name)) = (current.as_mut(), attr("name"))
                            && f.inputs.len() < 200
                        {
                            let kind = attr("type").unwrap_or_else(|| "text".into());
                            f.inputs.push((
                                kind.to_ascii_lowercase(),
                                name,
                                attr("value").unwrap_or_default(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            html5gum::Token::EndTag(tag) if tag.name.as_slice() == b"form" => {
                if let Some(f) = current.take() {
                    forms.push(f);
                }
            }
            _ => {}
        }
        if forms.len() > 50 {
            break;
        }
    }
    if let Some(f) = current.take() {
        forms.push(f);
    }
    let is_password = |(kind, name, _): &(String, String, String)| match &cfg.password_field {
        Some(want) => name == want,
        None => kind == "password",
    };
    let form = forms
        .into_iter()
        .find(|f| f.post && f.inputs.iter().any(is_password))?;
    let password_field = form.inputs.iter().find(|i| is_password(i))?.1.clone();
    let username_field = match &cfg.username_field {
        Some(u) => u.clone(),
        None => form
            .inputs
            .iter()
            .find(|(kind, _, _)| matches!(kind.as_str(), "text" | "email"))?
            .1
            .clone(),
    };
    let kept = form
        .inputs
        .iter()
        .filter(|(kind, name, _)| {
            kind == "hidden" && *name != username_field && *name != password_field
        })
        .map(|(_, n, v)| (n.clone(), v.clone()))
        .collect();
    let action = match form.action.as_deref().map(str::trim) {
        None | Some("") | Some("#") => page.clone(),
        Some(a) => page.join(a).ok()?,
    };
    Some(LoginForm {
        action,
        kept,
        username_field,
        password_field,
    })
}

/// Whether `url` is at one of the system's registered origins.
pub fn registered(system: &System, url: &Url) -> bool {
    let origin = url.origin().ascii_serialization();
    system.origins.contains(&origin)
}

/// The page a form login starts from.
fn login_page(system: &System) -> Option<Url> {
    let base = Url::parse(&system.cfg.url).ok()?;
    match system
        .cfg
        .form
        .as_ref()
        .and_then(|f| f.login_path.as_deref())
    {
        Some(p) => base.join(p).ok(),
        None => Some(base),
    }
}

/// Read at most `MAX_PAGE` of a response body.
async fn page_of(mut r: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = vec![];
    while let Some(chunk) = r.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_PAGE {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// What a replayed form login came to: the system's verdict, and on success the jar with the
/// system's session.
pub struct FormLoginResult {
    pub check: LoginCheck,
    pub jar: Jar,
}

fn unreachable(why: &str) -> FormLoginResult {
    FormLoginResult {
        check: LoginCheck::Unreachable(why.into()),
        jar: Jar::default(),
    }
}

/// Send a request of the login with the jar's cookies, and take in the cookies it sets.
async fn send(
    system: &System,
    mut req: reqwest::RequestBuilder,
    jar: &mut Jar,
) -> Result<reqwest::Response, FormLoginResult> {
    if let Some(c) = jar.header() {
        req = req.header(header::COOKIE, c);
    }
    match req.send().await {
        Ok(r) => {
            jar.absorb(r.headers());
            Ok(r)
        }
        Err(e) => {
            tracing::warn!(system = %system.cfg.name, error = %e.without_url(), "a business system could not be reached");
            Err(unreachable("the system could not be reached"))
        }
    }
}

/// Sign in to `system` with its login form, as `username`.
pub async fn login(
    client: &reqwest::Client,
    system: &System,
    username: &str,
    password: &Secret,
) -> FormLoginResult {
    let cfg = system.cfg.form.clone().unwrap_or_default();
    let Ok(password) = std::str::from_utf8(password.expose()) else {
        return FormLoginResult {
            check: LoginCheck::Refused,
            jar: Jar::default(),
        };
    };
    let Some(mut page) = login_page(system) else {
        return unreachable("the system's login page is not a URL");
    };
    let mut jar = Jar::default();
    // The login page, following the system's own redirects to it by hand.
    let mut html = None;
    for _ in 0..MAX_HOPS {
        if !registered(system, &page) {
            return unreachable("the login page is on an origin the system did not register");
        }
        let resp = match send(system, client.get(page.clone()), &mut jar).await {
            Ok(r) => r,
            Err(failed) => return failed,
        };
        if resp.status().is_redirection() {
            let Some(next) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| page.join(l).ok())
            else {
                return unreachable("the system redirected nowhere");
            };
            page = next;
            continue;
        }
        if !resp.status().is_success() {
            return unreachable(&format!("the login page answered {}", resp.status()));
        }
        html = page_of(resp).await;
        break;
    }
    let Some(html) = html else {
        return unreachable("the login page could not be read");
    };
    let Some(form) = find_login_form(&html, &page, &cfg) else {
        return unreachable("no login form on the system's login page");
    };
    if !registered(system, &form.action) {
        return unreachable("the login form posts to an origin the system did not register");
    }
    let mut fields = form.kept.clone();
    fields.push((form.username_field.clone(), username.to_string()));
    fields.push((form.password_field.clone(), password.to_string()));
    let req = client
        .post(form.action.clone())
        .form(&fields)
        .header(header::ORIGIN, page.origin().ascii_serialization())
        .header(header::REFERER, page.as_str());
    let resp = match send(system, req, &mut jar).await {
        Ok(r) => r,
        Err(failed) => return failed,
    };
    let status = resp.status();
    let check = if status.as_u16() == 429 {
        LoginCheck::Unreachable("the system is refusing logins for now (locked out)".into())
    } else if let Some(name) = &cfg.success_cookie {
        if jar.get(name).is_some() && (status.is_success() || status.is_redirection()) {
            LoginCheck::Accepted
        } else {
            LoginCheck::Refused
        }
    } else if status.is_redirection() {
        let back_to_login = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| page.join(l).ok())
            .is_some_and(|to| to.path() == page.path());
        if back_to_login {
            LoginCheck::Refused
        } else {
            LoginCheck::Accepted
        }
    } else if status.is_success() {
        let again = page_of(resp).await.unwrap_or_default();
        if find_login_form(&again, &page, &cfg).is_some() {
            LoginCheck::Refused
        } else {
            LoginCheck::Accepted
        }
    } else if matches!(status.as_u16(), 401) {
        LoginCheck::Refused
    } else {
        LoginCheck::Unreachable(format!("the system answered the login with {status}"))
    };
    FormLoginResult { check, jar }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HR: &str = r#"<!doctype html><html><body>
<form id="search" method="get" action="/search"><input name="q"></form>
<form id="loginForm" method="post" action="/login">
  <input type="hidden" name="csrf_token" value="abc&amp;123">
  <input type="hidden" name="next" value="/">
  <label>User name <input type="text" name="username"></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Log in</button>
</form></body></html>"#;

    #[test]
    fn the_form_with_the_password_field_is_found() {
        let page = Url::parse("http://127.0.0.1:9000/login?next=/").expect("url");
        let f = find_login_form(HR.as_bytes(), &page, &FormLogin::default()).expect("form");
        assert_eq!(f.action.as_str(), "http://127.0.0.1:9000/login");
        assert_eq!(f.username_field, "username");
        assert_eq!(f.password_field, "password");
        assert_eq!(
            f.kept,
            vec![
                ("csrf_token".to_string(), "abc&123".to_string()),
                ("next".to_string(), "/".to_string())
            ]
        );
        // Django's form posts to itself (no action) and names its fields.
        let dj = r#"<form method="post" id="login-form"><input type="hidden" name="csrfmiddlewaretoken" value="t">
<input type="text" name="username" autofocus><input type="password" name="password"><input type="submit" value="Log in"></form>"#;
        let f = find_login_form(dj.as_bytes(), &page, &FormLogin::default()).expect("form");
        assert_eq!(f.action, page);
        assert_eq!(f.kept, vec![("csrfmiddlewaretoken".into(), "t".into())]);
        assert!(find_login_form(b"<p>welcome</p>", &page, &FormLogin::default()).is_none());
    }

    #[test]
    fn the_jar_follows_set_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            "hr_session=one; HttpOnly; Path=/".parse().expect("h"),
        );
        h.append(
            header::SET_COOKIE,
            "csrftoken=t; Path=/".parse().expect("h"),
        );
        let mut jar = Jar::default();
        jar.absorb(&h);
        assert_eq!(jar.header().as_deref(), Some("hr_session=one; csrftoken=t"));
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            "hr_session=; Max-Age=0; Path=/".parse().expect("h"),
        );
        h.append(header::SET_COOKIE, "csrftoken=u".parse().expect("h"));
        jar.absorb(&h);
        assert_eq!(jar.header().as_deref(), Some("csrftoken=u"));
    }
}
