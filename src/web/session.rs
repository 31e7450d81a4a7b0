//! Browser sessions for the web pages: a random 256-bit token in an HttpOnly, SameSite=Lax
//! cookie (Secure behind TLS), looked up by its keyed hash in the store, so any instance on a
//! shared database knows every session. Each session has a CSRF token derived from its token
//! (HMAC under a subkey), checked on every form post; the sign-in form itself, before there is
//! a session, uses a double-submit cookie.
//!
//! A session begun through OpenID Connect is re-confirmed with the provider (a refresh) when
//! its access token would have expired; a refused refresh ends the session at once.
//!
//! Must never: store or log a session token, a CSRF token or a refresh token in clear; accept
//! a form post whose CSRF token does not match.

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::auth::ServerKey;
use crate::auth::oidc::OidcClient;
use crate::auth::seal::Sealer;
use crate::store::{NewSession, Session, SessionStore, Store, User};

pub const SESSION_COOKIE: &str = "convene_session";
/// The double-submit token of the sign-in form.
pub const LOGIN_CSRF_COOKIE: &str = "convene_login_csrf";
/// The sealed state of a sign-in in progress at the identity provider.
pub const PENDING_COOKIE: &str = "convene_oidc";

const REFRESH_PURPOSE: &str = "oidc refresh token";
pub const PENDING_PURPOSE: &str = "oidc pending sign-in";

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A live session and what it belongs to.
pub struct Current {
    pub session: Session,
    pub user: User,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

pub struct Sessions {
    hash_key: [u8; 32],
    csrf_key: [u8; 32],
    pub sealer: Sealer,
    lifetime_seconds: i64,
    /// Cookies are marked Secure even without `X-Forwarded-Proto: https`.
    always_secure: bool,
    /// Where "now" comes from (expiry, refresh due times).
    clock: crate::clock::SharedClock,
}

fn mac(key: &[u8; 32], data: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// Constant-time equality of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    pub fn new(key: &ServerKey, lifetime_seconds: i64, always_secure: bool) -> Sessions {
        Sessions {
            hash_key: key.derive("session token"),
            csrf_key: key.derive("session csrf"),
            sealer: Sealer::new(key),
            lifetime_seconds,
            always_secure,
            clock: crate::clock::system(),
        }
    }

    /// The same sessions, reading time from `clock`.
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Sessions {
        self.clock = clock;
        self
    }

    fn token_hash(&self, token: &str) -> String {
        mac(&self.hash_key, token.as_bytes())
    }

    pub fn csrf_of(&self, token: &str) -> String {
        mac(&self.csrf_key, token.as_bytes())
    }

    pub fn secure(&self, headers: &HeaderMap) -> bool {
        self.always_secure
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }

    /// Start a session; returns its cookie token. `oidc` carries the ID token, the refresh
    /// token and the seconds until the provider must be asked again.
    pub async fn create(
        &self,
        store: &Store,
        user: &User,
        oidc: Option<(&str, Option<&str>, Option<i64>)>,
    ) -> crate::store::Result<String> {
        let token = random_token();
        let now = self.clock.now();
        let (id_token, refresh_sealed, refresh_due) = match oidc {
            Some((id, rt, due)) => (
                Some(id.to_string()),
                rt.map(|r| self.sealer.seal(REFRESH_PURPOSE, r.as_bytes())),
                due.map(|d| now + d.max(1)),
            ),
            None => (None, None, None),
        };
        store
            .create_session(NewSession {
                token_hash: self.token_hash(&token),
                user: user.id,
                expires_at: now + self.lifetime_seconds,
                id_token,
                refresh_sealed,
                refresh_due,
            })
            .await?;
        Ok(token)
    }

    /// The request's session, if it has a live one. A session past its refresh time is
    /// renewed with the provider first, or ended if the provider refuses.
    pub async fn current(
        &self,
        store: &Store,
        oidc: Option<&OidcClient>,
        headers: &HeaderMap,
    ) -> Option<Current> {
        let token = cookie(headers, SESSION_COOKIE, self.secure(headers))?;
        let now = self.clock.now();
        let (session, user) = match store.session_by_hash(&self.token_hash(token), now).await {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return None;
            }
        };
        if user.disabled {
            return None;
        }
        if let (Some(due), Some(sealed)) = (session.refresh_due, session.refresh_sealed.as_deref())
            && due <= now
            && !self.refresh(store, oidc, &session, sealed).await
        {
            let _ = store.delete_session(session.id).await;
            return None;
        }
        Some(Current {
            csrf: self.csrf_of(token),
            session,
            user,
        })
    }

    async fn refresh(
        &self,
        store: &Store,
        oidc: Option<&OidcClient>,
        session: &Session,
        sealed: &str,
    ) -> bool {
        let Some(oidc) = oidc else { return false };
        let Some(rt) = self
            .sealer
            .open(REFRESH_PURPOSE, sealed)
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        let Some(subject) = session.id_token.as_deref().and_then(OidcClient::subject_of) else {
            return false;
        };
        match oidc.refresh(&rt, &subject).await {
            Ok(r) => {
                let next_rt = r.refresh_token.as_deref().unwrap_or(&rt);
                let due = self.clock.now()
                    + r.expires_in
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(300)
                        .max(1);
                let renewed = store
                    .renew_session(
                        session.id,
                        r.id_token.as_deref(),
                        Some(&self.sealer.seal(REFRESH_PURPOSE, next_rt.as_bytes())),
                        Some(due),
                    )
                    .await;
                if let Err(e) = renewed {
                    tracing::error!(error = %e, "saving a refreshed session failed");
                    return false;
                }
                tracing::debug!(user = %session.user.0, "session refreshed with the provider");
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "the provider refused a refresh; session ended");
                false
            }
        }
    }

    pub async fn end(&self, store: &Store, session: &Session) {
        if let Err(e) = store.delete_session(session.id).await {
            tracing::error!(error = %e, "ending a session failed");
        }
    }
}

/// The name a cookie goes by: over HTTPS with the `__Host-` prefix (Secure, Path=/, no
/// Domain: no other host, not even a sibling subdomain, can set or shadow it), or `__Secure-`
/// for one with a narrower path; over plain HTTP the bare name.
fn wire_name(name: &str, path: &str, secure: bool) -> String {
    match (secure, path) {
        (false, _) => name.to_string(),
        (true, "/") => format!("__Host-{name}"),
        (true, _) => format!("__Secure-{name}"),
    }
}

/// A cookie's value from the request's `Cookie` headers. Over HTTPS only the prefixed name
/// counts (a bare one could have been planted by another host).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str, secure: bool) -> Option<&'h str> {
    let pick = |k: &str| {
        if secure {
            k.strip_prefix("__Host-")
                .or_else(|| k.strip_prefix("__Secure-"))
                .is_some_and(|bare| bare == name)
        } else {
            k == name
        }
    };
    crate::auth::request_cookie(headers, pick)
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    secure: bool,
    same_site: &str,
) -> HeaderValue {
    let v = format!(
        "{}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{}",
        wire_name(name, path, secure),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `next` parameter made safe: a path on this server, or the account page. Anything that a
/// browser could read as another origin (`//host`, `/\host`, a scheme) is refused.
pub fn safe_next(next: Option<&str>) -> String {
    const DEFAULT: &str = "/account";
    let Some(n) = next else {
        return DEFAULT.into();
    };
    let ok = n.starts_with('/')
        && !n.starts_with("//")
        && !n.starts_with("/\\")
        && n.len() <= 512
        && !n
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace());
    if ok { n.to_string() } else { DEFAULT.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/login/v2/flow/abc")), "/login/v2/flow/abc");
        assert_eq!(safe_next(Some("/account?x=1")), "/account?x=1");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil",
            "/\t/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/account", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/account");
    }

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; convene_session=tok"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE, false), Some("tok"));
        assert_eq!(cookie(&h, "b", false), Some("2"));
        assert_eq!(cookie(&h, "c", false), None);
        // Over HTTPS only the prefixed name counts.
        assert_eq!(cookie(&h, SESSION_COOKIE, true), None);
        let mut p = HeaderMap::new();
        p.insert(
            header::COOKIE,
            HeaderValue::from_static("convene_session=planted; __Host-convene_session=mine"),
        );
        assert_eq!(cookie(&p, SESSION_COOKIE, true), Some("mine"));
        assert_eq!(cookie(&p, SESSION_COOKIE, false), Some("planted"));
        let set = set_cookie(SESSION_COOKIE, "v", "/", 60, true, "Lax");
        assert!(
            set.to_str()
                .unwrap_or("")
                .starts_with("__Host-convene_session=v; Path=/;")
        );
        let narrow = set_cookie(PENDING_COOKIE, "v", "/auth", 60, true, "Lax");
        assert!(
            narrow
                .to_str()
                .unwrap_or("")
                .starts_with("__Secure-convene_oidc=")
        );
    }
}
