//! The server-rendered pages: sign-in (the identity provider's button and a password form),
//! the OpenID Connect redirect and callback, sign-out, the account page (app passwords: list,
//! create, revoke; the Apple profile), and the Login Flow v2 grant page. Plain HTML with
//! labels and headings, no script, no external resources.
//!
//! Every form carries a CSRF token: the session's, or before sign-in a double-submit cookie.
//! Every `next` goes through `session::safe_next`, so no page redirects off this server.
//!
//! Must never: put a password, token or code in a URL, a log or a cached response (every page
//! is `no-store`); show an app password after the page that created it.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::{
    self, Current, LOGIN_CSRF_COOKIE, PENDING_COOKIE, PENDING_PURPOSE, SESSION_COOKIE, same,
    set_cookie,
};
use super::{AppState, loginflow, page, read_form};
use crate::auth::oidc::Pending;
use crate::auth::{Authenticator, Credentials, Scope};
use crate::dav::escape as e;
use crate::store::{AppPasswordStore, SessionStore};

const PENDING_MAX_AGE: i64 = 600;

pub(super) fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn with_cookie(mut r: Response, cookie: HeaderValue) -> Response {
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

/// End a portal session: in the store, and on every system host of this instance at once
/// (other instances stop trusting it within `bridge::handoff::RECHECK_SECONDS`).
async fn end_session(state: &AppState, session: &crate::store::Session) {
    state.sessions.end(&state.store, session).await;
    state.handoffs.forget_session(session.id);
}

/// The request's web session, if it is live and its account may still sign in (a directory
/// account removed from the directory loses its sessions at once, as its passwords).
pub(super) async fn signed_in(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Option<Current> {
    let cur = state
        .sessions
        .current(&state.store, state.oidc.as_ref(), headers)
        .await?;
    match state.auth.still_allowed(&cur.user).await {
        Ok(true) => Some(cur),
        Ok(false) => {
            end_session(state, &cur.session).await;
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "checking a session's account failed");
            None
        }
    }
}

fn addr_of(parts: &axum::http::request::Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

#[derive(serde::Deserialize, Default)]
pub(super) struct NextQuery {
    pub(super) next: Option<String>,
}

/// The single sign-on entry: a link, not a form, because a form's redirect to the provider
/// would break the pages' `form-action 'self'` policy.
fn sso_button(state: &AppState, next: &str) -> String {
    match &state.oidc {
        Some(o) => format!(
            "<p><a href=\"/auth/oidc/start?next={next}\" id=\"sso\">{label}</a></p><p>Or sign in with your password:</p>",
            next = e(&percent_encoding::utf8_percent_encode(
                next,
                percent_encoding::NON_ALPHANUMERIC
            )
            .to_string()),
            label = e(&o.config().label),
        ),
        None => String::new(),
    }
}

/// The pages' policy, with the provider's origin allowed as a form target: sign-out posts
/// here and is redirected there (RP-initiated logout).
fn with_provider_csp(state: &AppState, mut r: Response) -> Response {
    let origin = state.oidc.as_ref().and_then(|o| {
        let u: axum::http::Uri = o.issuer().parse().ok()?;
        Some(format!("{}://{}", u.scheme_str()?, u.authority()?))
    });
    if let Some(origin) = origin
        && let Ok(v) = HeaderValue::from_str(&format!(
            "default-src 'none'; form-action 'self' {origin}; frame-ancestors 'none'"
        ))
    {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn login_form(state: &AppState, next: &str, csrf: &str, error: Option<&str>) -> String {
    format!(
        "{err}{sso}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"next\" value=\"{next}\"><p><label>User name <input name=\"user\" autocomplete=\"username\" required></label></p><p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p><p><button type=\"submit\">Sign in</button></p></form>",
        err = error
            .map(|m| format!("<p role=\"alert\">{}</p>", e(m)))
            .unwrap_or_default(),
        sso = sso_button(state, next),
        csrf = e(csrf),
        next = e(next),
    )
}

/// The sign-in page, with a fresh double-submit CSRF cookie.
/// What the sign-in page keeps between renders: whether cookies are Secure, and the browser's
/// CSRF cookie (reused, so a second tab or a failed attempt does not void the first form).
struct LoginCtx {
    secure: bool,
    csrf: Option<String>,
}

impl LoginCtx {
    fn of(state: &AppState, headers: &axum::http::HeaderMap) -> LoginCtx {
        let secure = state.sessions.secure(headers);
        LoginCtx {
            secure,
            csrf: session::cookie(headers, LOGIN_CSRF_COOKIE, secure)
                .filter(|c| {
                    c.len() == 43
                        && c.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .map(str::to_string),
        }
    }
}

fn login_page(
    state: &AppState,
    lc: &LoginCtx,
    next: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let csrf = lc.csrf.clone().unwrap_or_else(session::random_token);
    with_cookie(
        page(status, "Sign in", &login_form(state, next, &csrf, error)),
        set_cookie(LOGIN_CSRF_COOKIE, &csrf, "/", 1800, lc.secure, "Strict"),
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// `GET /login` shows the sign-in page; `POST /login` signs in with a password (local or
/// directory; not an app password) and starts a session.
pub(super) async fn login(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let lc = LoginCtx::of(&state, &parts.headers);
    let secure = lc.secure;
    match parts.method {
        Method::GET => {
            let q: Query<NextQuery> = Query::try_from_uri(&parts.uri).unwrap_or_default();
            let next = session::safe_next(q.next.as_deref());
            if signed_in(&state, &parts.headers).await.is_some() {
                return see_other(&next);
            }
            login_page(&state, &lc, &next, StatusCode::OK, None)
        }
        Method::POST => {
            let addr = addr_of(&parts);
            let cookie_csrf = lc.csrf.clone();
            let Some(f) = read_form::<LoginForm>(parts, body).await else {
                return login_page(
                    &state,
                    &lc,
                    "/account",
                    StatusCode::BAD_REQUEST,
                    Some("The form was incomplete."),
                );
            };
            let next = session::safe_next(f.next.as_deref());
            if !cookie_csrf.is_some_and(|c| same(&c, &f.csrf)) {
                return login_page(
                    &state,
                    &lc,
                    &next,
                    StatusCode::FORBIDDEN,
                    Some("The form expired or did not come from this page. Try again."),
                );
            }
            let user = match password_sign_in(&state, &f.user, f.password, addr).await {
                Ok(u) => u,
                Err((status, msg)) => return login_page(&state, &lc, &next, status, Some(msg)),
            };
            start_session(&state, secure, &user, None, &next).await
        }
        _ => page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Sign in",
            "<p>Use the form.</p>",
        ),
    }
}

/// A web sign-in with a user name and password (local or directory), under the login limits.
/// App passwords are refused: they are for clients. On failure, the status and the message
/// for the form.
async fn password_sign_in(
    state: &AppState,
    user: &str,
    password: String,
    addr: Option<std::net::IpAddr>,
) -> Result<crate::store::User, (StatusCode, &'static str)> {
    let Ok(attempt) =
        state
            .limiter
            .begin(user, &password, addr, crate::auth::limit::Secret::Password)
    else {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins. Try again later.",
        ));
    };
    let creds = Credentials {
        username: user.to_string(),
        password,
    };
    match state.auth.authenticate(&creds).await {
        Ok(Some(a)) if a.scope == Scope::All && !is_app_password(&creds.password) => {
            attempt.succeeded();
            Ok(a.user)
        }
        Ok(_) => {
            attempt.failed();
            tracing::info!("web sign-in failed");
            Err((StatusCode::UNAUTHORIZED, "Wrong user name or password."))
        }
        Err(err) => {
            drop(attempt);
            tracing::error!(error = %err, "authentication backend failed");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now.",
            ))
        }
    }
}

/// App passwords are for clients: they never open a web session.
fn is_app_password(p: &str) -> bool {
    crate::auth::app_password::lookup_of(p).is_some()
}

async fn start_session(
    state: &AppState,
    secure: bool,
    user: &crate::store::User,
    oidc: Option<(&str, Option<&str>, Option<i64>)>,
    next: &str,
) -> Response {
    match state.sessions.create(&state.store, user, oidc).await {
        Ok(token) => {
            tracing::info!(user = %user.name, oidc = oidc.is_some(), "web session started");
            let r = with_cookie(
                see_other(next),
                set_cookie(
                    SESSION_COOKIE,
                    &token,
                    "/",
                    state.session_seconds,
                    secure,
                    "Lax",
                ),
            );
            with_cookie(
                r,
                set_cookie(LOGIN_CSRF_COOKIE, "", "/", 0, secure, "Strict"),
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "starting a session failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign in",
                "<p>Sign-in is unavailable right now.</p>",
            )
        }
    }
}

/// `GET /auth/oidc/start?next=`: off to the identity provider, with the sign-in's state,
/// nonce and PKCE verifier sealed in a short-lived cookie.
pub(super) async fn oidc_start(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let Some(oidc) = &state.oidc else {
        return page(
            StatusCode::NOT_FOUND,
            "Sign in",
            "<p>Single sign-on is not configured.</p>",
        );
    };
    let q: Query<NextQuery> = Query::try_from_uri(&parts.uri).unwrap_or_default();
    let next = session::safe_next(q.next.as_deref());
    let secure = state.sessions.secure(&parts.headers);
    match oidc.start(&next).await {
        Ok((url, pending)) => {
            let Ok(json) = serde_json::to_vec(&pending) else {
                return page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign in",
                    "<p>Could not start the sign-in.</p>",
                );
            };
            let sealed = state.sessions.sealer.seal(PENDING_PURPOSE, &json);
            with_cookie(
                see_other(&url),
                set_cookie(
                    PENDING_COOKIE,
                    &sealed,
                    "/auth",
                    PENDING_MAX_AGE,
                    secure,
                    "Lax",
                ),
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "identity provider unavailable");
            page(
                StatusCode::BAD_GATEWAY,
                "Sign in",
                "<p>The identity provider cannot be reached right now.</p>",
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: the provider's answer. The pending cookie is cleared whatever
/// happens, so a callback URL works once.
pub(super) async fn oidc_callback(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let secure = state.sessions.secure(&parts.headers);
    let clear = set_cookie(PENDING_COOKIE, "", "/auth", 0, secure, "Lax");
    let fail = |status: StatusCode, msg: &str| {
        with_cookie(
            page(
                status,
                "Sign-in failed",
                &format!(
                    "<p role=\"alert\">{}</p><p><a href=\"/login\">Sign in again</a></p>",
                    e(msg)
                ),
            ),
            clear.clone(),
        )
    };
    let Some(oidc) = &state.oidc else {
        return fail(StatusCode::NOT_FOUND, "Single sign-on is not configured.");
    };
    let Ok(Query(q)) = Query::<CallbackQuery>::try_from_uri(&parts.uri) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in response was malformed.",
        );
    };
    let pending: Option<Pending> = session::cookie(
        &parts.headers,
        PENDING_COOKIE,
        state.sessions.secure(&parts.headers),
    )
    .and_then(|c| state.sessions.sealer.open(PENDING_PURPOSE, c))
    .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(pending) = pending else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in expired or was started in another browser.",
        );
    };
    if let Some(err) = q.error {
        tracing::info!(error = %err, "the identity provider returned an error");
        return fail(
            StatusCode::UNAUTHORIZED,
            "The identity provider did not sign you in.",
        );
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in response was incomplete.",
        );
    };
    let identity = match oidc.finish(&pending, &code, &st, q.iss.as_deref()).await {
        Ok(i) => i,
        Err(err) => {
            tracing::warn!(error = %err, "OIDC sign-in refused");
            return fail(
                StatusCode::UNAUTHORIZED,
                &format!("Sign-in refused: {err}."),
            );
        }
    };
    let user = match crate::auth::provision_oidc(&state.store, &identity).await {
        Ok(u) => u,
        Err(crate::auth::ProvisionError::Store(err)) => {
            tracing::error!(error = %err, "provisioning failed");
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now.",
            );
        }
        Err(err) => {
            tracing::warn!(error = %err, "OIDC sign-in refused");
            return fail(StatusCode::FORBIDDEN, &format!("{err}."));
        }
    };
    let due = identity.expires_in.map(|d| d.as_secs() as i64);
    let r = start_session(
        &state,
        secure,
        &user,
        Some((&identity.id_token, identity.refresh_token.as_deref(), due)),
        &pending.next,
    )
    .await;
    with_cookie(r, clear)
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// The session of a form post whose CSRF token matches, or the response to send.
pub(super) async fn posted_session<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
    csrf_of: impl Fn(&T) -> &str,
) -> Result<(Current, T), Response> {
    let (parts, body) = req.into_parts();
    let Some(cur) = signed_in(state, &parts.headers).await else {
        return Err(see_other("/login"));
    };
    let Some(form) = read_form::<T>(parts, body).await else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Error",
            "<p>The form was incomplete.</p>",
        ));
    };
    if !same(csrf_of(&form), &cur.csrf) {
        return Err(page(
            StatusCode::FORBIDDEN,
            "Error",
            "<p>The form expired or did not come from this site. Go back and try again.</p>",
        ));
    }
    Ok((cur, form))
}

/// `POST /logout`: ends the session here, then at the provider (RP-initiated logout) when
/// the session came from it.
pub(super) async fn logout(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if req.method() != Method::POST {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Sign out",
            "<p>Use the sign-out button.</p>",
        );
    }
    let secure = state.sessions.secure(req.headers());
    let (cur, _) = match posted_session::<CsrfForm>(&state, req, |f| &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    end_session(&state, &cur.session).await;
    tracing::info!(user = %cur.user.name, "signed out");
    let target = match (&state.oidc, cur.session.id_token.as_deref()) {
        (Some(o), Some(t)) => o.logout_url(Some(t)).await,
        _ => None,
    };
    with_cookie(
        see_other(target.as_deref().unwrap_or("/login")),
        set_cookie(SESSION_COOKIE, "", "/", 0, secure, "Lax"),
    )
}

pub(super) fn when(epoch: Option<i64>) -> String {
    epoch
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

async fn account_page(state: &AppState, cur: &Current, created: Option<(&str, &str)>) -> Response {
    let list = match state.store.app_passwords_of(cur.user.id).await {
        Ok(l) => l,
        Err(err) => {
            tracing::error!(error = %err, "listing app passwords failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Your account",
                "<p>Storage unavailable.</p>",
            );
        }
    };
    let groups = state.store.groups_of(cur.user.id).await.unwrap_or_default();
    let mut rows = String::new();
    for p in &list {
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{scope}</td><td>{created}</td><td>{used}</td><td>{expires}</td><td><form method=\"post\" action=\"/account/app-passwords/{id}/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\" aria-label=\"Revoke {name}\">Revoke</button></form></td></tr>",
            name = e(&p.name),
            scope = if p.scope == "all" { "everything" } else { "CalDAV only" },
            created = when(Some(p.created_at)),
            used = when(p.last_used_at),
            expires = when(p.expires_at).replace("never", "no expiry"),
            id = p.id,
            csrf = e(&cur.csrf),
        ));
    }
    let table = if list.is_empty() {
        "<p id=\"no-app-passwords\">You have no app passwords.</p>".to_string()
    } else {
        format!(
            "<table id=\"app-passwords\"><caption>Your app passwords</caption><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Access</th><th scope=\"col\">Created</th><th scope=\"col\">Last used</th><th scope=\"col\">Expires</th><th scope=\"col\"></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let fresh = created
        .map(|(name, pw)| {
            format!(
                "<section role=\"status\"><h2>New app password for {}</h2><p>Enter it in the app now; it is not shown again.</p><p><code id=\"new-password\">{}</code></p><p>User name: <code>{}</code></p></section>",
                e(name),
                e(pw),
                e(&cur.user.name)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<p>Signed in as <strong id=\"user\">{user}</strong>{display}.</p>{groups}{fresh}<h2>App passwords</h2><p>Calendar apps sign in with an app password of their own, which you can revoke at any time.</p>{table}<h2>New app password</h2><form method=\"post\" action=\"/account/app-passwords\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><p><label>Name <input name=\"name\" required maxlength=\"100\" placeholder=\"My phone\"></label></p><p><label>Access <select name=\"scope\"><option value=\"caldav\">CalDAV only</option><option value=\"all\">Everything</option></select></label></p><p><label>Expires after (days, empty for never) <input name=\"expires_days\" inputmode=\"numeric\" pattern=\"[0-9]*\"></label></p><p><button type=\"submit\">Create app password</button></p></form><h2>Apple devices</h2><form method=\"post\" action=\"/account/apple-profile\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><p><button type=\"submit\">Download a configuration profile</button> for macOS or iOS Calendar (it holds a new app password).</p></form><h2>Business systems</h2><p><a href=\"/account/systems\">Your accounts in the organisation's other systems</a></p><form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><p><button type=\"submit\">Sign out</button></p></form>",
        user = e(&cur.user.name),
        display = cur
            .user
            .display_name
            .as_deref()
            .map(|d| format!(" ({})", e(d)))
            .unwrap_or_default(),
        groups = if groups.is_empty() {
            String::new()
        } else {
            format!(
                "<p>Groups: <span id=\"groups\">{}</span></p>",
                groups
                    .iter()
                    .map(|g| e(g).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        csrf = e(&cur.csrf),
    );
    with_provider_csp(state, page(StatusCode::OK, "Your account", &body))
}

/// `GET /account`.
pub(super) async fn account(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if req.method() != Method::GET {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Your account",
            "<p>Use GET.</p>",
        );
    }
    match signed_in(&state, req.headers()).await {
        Some(cur) => account_page(&state, &cur, None).await,
        None => see_other("/login?next=/account"),
    }
}

#[derive(serde::Deserialize)]
struct NewAppPasswordForm {
    csrf: String,
    name: String,
    scope: String,
    #[serde(default)]
    expires_days: String,
}

/// `POST /account/app-passwords`: create one and show it, once.
pub(super) async fn account_create(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if req.method() != Method::POST {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Your account",
            "<p>Use the form.</p>",
        );
    }
    let (cur, f) = match posted_session::<NewAppPasswordForm>(&state, req, |f| &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(scope) = Scope::parse(&f.scope) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Your account",
            "<p>Unknown access level.</p>",
        );
    };
    let days = match f.expires_days.trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(n) if (1..=3650).contains(&n) => Some(n),
            _ => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Your account",
                    "<p>Expiry must be 1 to 3650 days, or empty.</p>",
                );
            }
        },
    };
    match crate::auth::app_password::create(
        &state.store,
        state.auth.key(),
        &cur.user,
        &f.name,
        scope,
        days,
        state.clock.now(),
    )
    .await
    {
        Ok((pw, ap)) => {
            tracing::info!(user = %cur.user.name, id = ap.id, "app password created on the account page");
            account_page(&state, &cur, Some((&ap.name, &pw))).await
        }
        Err(crate::auth::app_password::CreateError::Name) => page(
            StatusCode::BAD_REQUEST,
            "Your account",
            "<p>The name must be 1 to 100 characters, without control characters.</p>",
        ),
        Err(err) => {
            tracing::error!(error = %err, "creating an app password failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Your account",
                "<p>Storage unavailable.</p>",
            )
        }
    }
}

/// `POST /account/app-passwords/{id}/revoke`.
pub(super) async fn account_revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    if req.method() != Method::POST {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Your account",
            "<p>Use the form.</p>",
        );
    }
    let (cur, _) = match posted_session::<CsrfForm>(&state, req, |f| &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return page(
            StatusCode::NOT_FOUND,
            "Your account",
            "<p>No such app password.</p>",
        );
    };
    match state.store.revoke_app_password(cur.user.id, id).await {
        Ok(true) => {
            tracing::info!(user = %cur.user.name, id, "app password revoked on the account page");
            see_other("/account")
        }
        Ok(false) => page(
            StatusCode::NOT_FOUND,
            "Your account",
            "<p>No such app password.</p>",
        ),
        Err(err) => {
            tracing::error!(error = %err, "revoking an app password failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Your account",
                "<p>Storage unavailable.</p>",
            )
        }
    }
}

/// `POST /account/apple-profile` (the account page's button, with the session's CSRF token):
/// it makes an app password, so it is never a GET a link or an image could trigger.
pub(super) async fn account_apple_profile(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Response {
    if req.method() != Method::POST {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Your account",
            "<p>Use the button on the account page.</p>",
        );
    }
    // The profile names the server as the client reached it: keep what that needs.
    let (mut origin, ()) = Request::new(()).into_parts();
    origin.headers = req.headers().clone();
    origin.uri = req.uri().clone();
    match posted_session::<CsrfForm>(&state, req, |f| &f.csrf).await {
        Ok((cur, _)) => super::apple_profile(&state, &origin, &cur.user).await,
        Err(r) => r,
    }
}

fn grant_form(
    state: &AppState,
    id: &str,
    client: &str,
    csrf: &str,
    signed_in: Option<(&str, &str)>,
    error: Option<&str>,
) -> String {
    let err = error
        .map(|m| format!("<p role=\"alert\">{}</p>", e(m)))
        .unwrap_or_default();
    let intro = format!(
        "<p>{} asks for access to your calendars. Granting it makes it an app password of its own (you can revoke it any time).</p>",
        e(client)
    );
    match signed_in {
        Some((user, session_csrf)) => format!(
            "{intro}{err}<form method=\"post\" action=\"/login/v2/flow/{id}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"session_csrf\" value=\"{session_csrf}\"><p>Signed in as <strong>{user}</strong>.</p><p><button type=\"submit\">Grant access</button></p></form>",
            id = e(id),
            csrf = e(csrf),
            session_csrf = e(session_csrf),
            user = e(user),
        ),
        None => format!(
            "{intro}{err}{sso}<form method=\"post\" action=\"/login/v2/flow/{id}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><p><label>User name <input name=\"user\" autocomplete=\"username\" required></label></p><p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p><p><button type=\"submit\">Grant access</button></p></form>",
            sso = sso_button(state, &format!("/login/v2/flow/{id}")),
            id = e(id),
            csrf = e(csrf),
        ),
    }
}

#[derive(serde::Deserialize)]
struct GrantForm {
    csrf: String,
    /// The signed-in session's own CSRF token: the flow's token is known to whoever started
    /// the flow, so a grant on the strength of a session needs the session's token too.
    session_csrf: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// The Login Flow page: GET shows the grant form (a button when signed in, else a password
/// form and the single sign-on button); POST checks the flow's CSRF token and the session or
/// the credentials (rate-limited like every login), makes a CalDAV app password for the
/// client and finishes the flow.
pub(super) async fn login_flow_page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let addr = addr_of(&parts);
    let current = signed_in(&state, &parts.headers).await;
    let form = if method == Method::POST {
        read_form::<GrantForm>(parts, body).await
    } else {
        drop(body);
        None
    };
    let Some((client, csrf)) = state.flows.page(&id) else {
        return page(
            StatusCode::NOT_FOUND,
            "Login expired",
            "<p>This login link is no longer valid. Start again from the app.</p>",
        );
    };
    let signed_in = current
        .as_ref()
        .map(|c| (c.user.name.as_str(), c.csrf.as_str()));
    let again = |status: StatusCode, msg: Option<&str>| {
        page(
            status,
            "Grant access",
            &grant_form(&state, &id, &client, &csrf, signed_in, msg),
        )
    };
    match method {
        Method::GET => again(StatusCode::OK, None),
        Method::POST => {
            let Some(f) = form else {
                return again(StatusCode::BAD_REQUEST, Some("The form was incomplete."));
            };
            if !state.flows.csrf_ok(&id, &f.csrf) {
                return page(
                    StatusCode::FORBIDDEN,
                    "Grant access",
                    "<p>The form has expired or did not come from this page.</p>",
                );
            }
            let user = match (current.as_ref(), f.user, f.password) {
                (Some(c), _, _) => {
                    let same = f.session_csrf.as_deref().is_some_and(|t| {
                        bool::from(subtle::ConstantTimeEq::ct_eq(
                            t.as_bytes(),
                            c.csrf.as_bytes(),
                        ))
                    });
                    if !same {
                        return page(
                            StatusCode::FORBIDDEN,
                            "Grant access",
                            "<p>The form has expired or did not come from this page.</p>",
                        );
                    }
                    c.user.clone()
                }
                (None, Some(user), Some(password)) => {
                    match password_sign_in(&state, &user, password, addr).await {
                        Ok(u) => u,
                        Err((status, msg)) => return again(status, Some(msg)),
                    }
                }
                (None, _, _) => return again(StatusCode::UNAUTHORIZED, Some("Sign in first.")),
            };
            let name: String = format!("{client} (login flow)").chars().take(100).collect();
            let password = match crate::auth::app_password::create(
                &state.store,
                state.auth.key(),
                &user,
                &name,
                Scope::CalDav,
                None,
                state.clock.now(),
            )
            .await
            {
                Ok((p, _)) => p,
                Err(err) => {
                    tracing::error!(error = %err, "app password for a login flow failed");
                    return again(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some("Could not create the app password."),
                    );
                }
            };
            let granted = state.flows.grant(
                &id,
                loginflow::Grant {
                    login_name: user.name.clone(),
                    app_password: password,
                },
            );
            if granted {
                page(
                    StatusCode::OK,
                    "Access granted",
                    "<p id=\"granted\">You can close this window and go back to the app.</p>",
                )
            } else {
                page(
                    StatusCode::NOT_FOUND,
                    "Login expired",
                    "<p>This login link is no longer valid.</p>",
                )
            }
        }
        _ => page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Grant access",
            "<p>Use the form.</p>",
        ),
    }
}
