//! The single-sign-on bridge's JSON API: the launcher's list of the business systems a person
//! may use with their binding state, binding an account (verified by one real login before it
//! is vaulted), unbinding, and the person's own audit of released secrets. (The login proxy and
//! forward-auth come next.)
//!
//! Must never: list or bind a system outside the person's audience, show another person's
//! data, take a credential from anything but a JSON body, or echo a secret back.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use axum::body::Body;
use axum::http::header;

use super::{AppState, authenticate, json, json_error};
use crate::bridge::LoginCheck;
use crate::bridge::systems::LoginMethod;
use crate::crypto::Secret;
use crate::store::{BindingStore as _, SessionStore as _, User};

const MAX_JSON: usize = 8 * 1024;

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "bridge API failure");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
}

/// The systems this person may use.
async fn visible(state: &AppState, user: &User) -> Result<Vec<String>, Response> {
    let memberships = state.store.groups_of(user.id).await.map_err(failed)?;
    Ok(state
        .systems
        .snapshot()
        .visible_to(&memberships)
        .map(|s| s.cfg.name.clone())
        .collect())
}

/// How long an unread count is shown before the mail server is asked again.
const UNREAD_SECONDS: i64 = 60;

/// Unread counts read recently, by person and system (at most 10,000 kept).
#[derive(Default)]
pub struct UnreadCache(std::sync::Mutex<std::collections::HashMap<(i64, String), (i64, u32)>>);

impl UnreadCache {
    fn get(&self, key: &(i64, String), now: i64) -> Option<u32> {
        let m = self.0.lock().ok()?;
        m.get(key)
            .filter(|(at, _)| now - at < UNREAD_SECONDS)
            .map(|(_, n)| *n)
    }

    fn put(&self, key: (i64, String), now: i64, n: u32) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= 10_000 {
                m.retain(|_, (at, _)| now - *at < UNREAD_SECONDS);
                if m.len() >= 10_000 {
                    m.clear();
                }
            }
            m.insert(key, (now, n));
        }
    }
}

/// The unread count of `user`'s inbox at the IMAP system `s`, when it is bound and the mail
/// server answered (from the last minute's reading if there is one).
pub(super) async fn unread_of(
    state: &AppState,
    user: &User,
    s: &crate::bridge::systems::System,
) -> Option<u32> {
    let vault = state.vault.as_ref()?;
    let now = state.clock.now();
    let key = (user.id.0, s.cfg.name.clone());
    if let Some(n) = state.unread.get(&key, now) {
        return Some(n);
    }
    match crate::bridge::unread(vault, state.mail.as_ref(), (user.id, s), now).await {
        Ok(Some(crate::bridge::Unread::Count(n))) => {
            state.unread.put(key, now, n);
            Some(n)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "reading an unread count failed");
            None
        }
    }
}

/// `GET /api/bridge/systems`: the systems this person may use (by the groups and departments
/// recorded on their account), each with its name, label, icon, address and login method.
pub(super) async fn systems(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, _) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if parts.method != Method::GET {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let (names, bindings) = match (
        visible(&state, &user).await,
        state.store.bindings_of(user.id).await,
    ) {
        (Ok(n), Ok(b)) => (n, b),
        (Err(r), _) => return r,
        (_, Err(e)) => return failed(e),
    };
    let mut list: Vec<serde_json::Value> = vec![];
    for s in names.iter().filter_map(|n| state.systems.get(n)) {
        let binding = bindings
            .iter()
            .find(|b| b.system == s.cfg.name)
            .map(|b| b.state.as_str());
        let unread = if s.cfg.login == LoginMethod::Imap && binding == Some("bound") {
            unread_of(&state, &user, &s).await
        } else {
            None
        };
        list.push(serde_json::json!({
                "name": s.cfg.name,
                "label": s.cfg.label,
                "icon": s.cfg.icon,
                "url": s.cfg.url,
                "login": s.cfg.login.as_str(),
                "binding": binding,
                "open": super::bridge_pages::open_url(&state, &s),
                "unread": unread,
        }));
    }
    json(StatusCode::OK, &serde_json::Value::Array(list))
}

/// `GET /api/bridge/bindings`: this person's bindings (system, state, when verified).
pub(super) async fn bindings(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, _) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if parts.method != Method::GET {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    match state.store.bindings_of(user.id).await {
        Ok(b) => json(
            StatusCode::OK,
            &serde_json::Value::Array(
                b.iter()
                    .map(|b| {
                        serde_json::json!({
                            "system": b.system,
                            "state": b.state.as_str(),
                            "verified_at": b.verified_at,
                        })
                    })
                    .collect(),
            ),
        ),
        Err(e) => failed(e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BindBody {
    username: String,
    password: String,
}

/// `PUT /api/bridge/bindings/{system}` with `{"username", "password"}`: verified by one real
/// login, then vaulted (200, `bound`); a refused credential is not kept (422); a system that
/// cannot be asked is a 502. `DELETE`: unbind and erase (204).
pub(super) async fn binding(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(system): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let names = match visible(&state, &user).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(sys) = state
        .systems
        .get(&system)
        .filter(|_| names.contains(&system))
    else {
        return json_error(StatusCode::NOT_FOUND, "no such system for you");
    };
    let Some(vault) = &state.vault else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no credential vault is configured on this server",
        );
    };
    let answer = match parts.method {
        Method::DELETE => match crate::bridge::unbind(vault, user.id, &system).await {
            Ok(true) => Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default(),
            Ok(false) => json_error(StatusCode::NOT_FOUND, "not bound"),
            Err(e) => failed(e),
        },
        Method::PUT if sys.cfg.login == LoginMethod::Header => json_error(
            StatusCode::CONFLICT,
            "this system signs people in as their Convene account: there is nothing to bind",
        ),
        Method::PUT => {
            let b = match read_bind_body(&parts.headers, body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let password = Secret::new(b.password.into_bytes());
            match crate::bridge::bind(
                vault,
                state.verifier.as_ref(),
                (user.id, &sys),
                &b.username,
                &password,
                state.clock.now(),
            )
            .await
            {
                Ok(LoginCheck::Accepted) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "system": system, "state": "bound" }),
                ),
                Ok(LoginCheck::Refused) => json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the system refused these credentials; nothing was kept",
                ),
                Ok(LoginCheck::Unreachable(why)) => json_error(StatusCode::BAD_GATEWAY, &why),
                Err(e @ crate::bridge::BridgeError::Unsupported(_)) => {
                    json_error(StatusCode::NOT_IMPLEMENTED, &e.to_string())
                }
                Err(e) => failed(e),
            }
        }
        _ => return json_error(StatusCode::METHOD_NOT_ALLOWED, "PUT or DELETE"),
    };
    // Whatever came of it, forward-auth checks the binding again at its next request (and
    // drops what a request released while the binding was changing).
    binding_changed(&state, user.id, &system);
    answer
}

/// A JSON body with a username (no control characters, at most 256) and a password (at most
/// 1,024 characters).
async fn read_bind_body(headers: &axum::http::HeaderMap, body: Body) -> Result<BindBody, Response> {
    let bytes = super::json_bytes(headers, body, MAX_JSON).await?;
    // The error names the field, never the value.
    let b: BindBody = serde_json::from_slice(&bytes)
        .map_err(|_| json_error(StatusCode::BAD_REQUEST, "send {\"username\", \"password\"}"))?;
    let ok = !b.username.is_empty()
        && b.username.chars().count() <= 256
        && !b.username.chars().any(char::is_control)
        && !b.password.is_empty()
        && b.password.chars().count() <= 1024;
    if ok {
        Ok(b)
    } else {
        Err(json_error(
            StatusCode::BAD_REQUEST,
            "a username of 1 to 256 characters without control characters and a password of 1 to 1,024",
        ))
    }
}

#[derive(serde::Deserialize)]
pub(super) struct AuditQuery {
    /// Everyone's (admins only).
    #[serde(default)]
    all: bool,
}

/// `GET /api/bridge/audit`: every release of this person's secrets, newest first; with
/// `?all=true`, an admin's view of everyone's (each entry naming its person).
pub(super) async fn audit(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
    req: Request,
) -> Response {
    use crate::store::UserStore as _;
    let (parts, body) = req.into_parts();
    let (user, _) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if parts.method != Method::GET {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    if q.all && !state.admins.contains(&user.name) {
        return json_error(
            StatusCode::FORBIDDEN,
            "only an admin (`admins` in the configuration) sees everyone's",
        );
    }
    let list = match state.store.releases((!q.all).then_some(user.id), 200).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let names: std::collections::HashMap<_, _> = match state.store.list_users().await {
        Ok(u) => u.into_iter().map(|u| (u.id, u.name)).collect(),
        Err(e) => return failed(e),
    };
    json(
        StatusCode::OK,
        &serde_json::Value::Array(
            list.iter()
                .map(|a| {
                    serde_json::json!({
                        "user": names.get(&a.user),
                        "system": a.system,
                        "purpose": a.purpose,
                        "outcome": a.outcome,
                        "at": a.at,
                    })
                })
                .collect(),
        ),
    )
}

/// `/api/bridge/forward-auth/{system}`, for nginx `auth_request`, Traefik ForwardAuth and Caddy
/// `forward_auth` in front of a business system: the proxy sends the system's
/// `forward_auth_secret` in `X-Convene-Forward-Secret` and the person's own request headers.
/// 200 when the person may use the system, with `X-Convene-User` (also as `Remote-User`, and
/// under a header system's own identity header) and, for an HTTP Basic system the person has
/// bound, `X-Convene-Authorization` (the vaulted credential, for the proxy to put in place of
/// the person's; also as `Authorization`, for a proxy that copies headers without renaming
/// them, Traefik's `authResponseHeaders`); 401 (with a Basic challenge) without valid Convene
/// credentials; 403 for someone the system is not for, or a Basic system not bound. (An IMAP
/// system has no forward-auth secret: the configuration refuses one.)
pub(super) async fn forward_auth(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(system): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    // Only the proxy that knows the system's secret is answered: a person asking directly is
    // never handed their vaulted credential.
    let given = parts
        .headers
        .get("x-convene-forward-secret")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(sys) = state
        .systems
        .get(&system)
        .filter(|s| s.cfg.forward_secret_is(given))
    else {
        return json_error(
            StatusCode::FORBIDDEN,
            "not a forward-auth proxy of this system",
        );
    };
    let (user, _) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Whether the person may use the system, and for a Basic system their credential: checked
    // and released once a minute (one audit row), not for each of the requests a page makes.
    // Who may use it is asked first, so that someone it is not for is told so whether or not
    // a vault is configured.
    let now = state.clock.now();
    let grant = state
        .forward_grants
        .get_or_check(&(user.id.0, system.clone()), now, || async {
            let names = visible(&state, &user).await?;
            if !names.contains(&system) {
                return Ok((false, None));
            }
            if sys.cfg.login != LoginMethod::Basic {
                // A header system is told who the person is; a form login cannot be put in
                // a request, so its front lets the person in to sign in there themselves.
                return Ok((true, None));
            }
            let Some(vault) = &state.vault else {
                return Err(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no credential vault is configured on this server",
                ));
            };
            match crate::bridge::release_for_login(vault, (user.id, &sys.cfg.name), now).await {
                Ok(Ok(c)) => Ok((true, Some(Arc::new(c)))),
                Ok(Err(crate::bridge::Refusal::NotBound)) => Err(json_error(
                    StatusCode::FORBIDDEN,
                    "bind your account in this system first",
                )),
                Err(e) => Err(failed(e)),
            }
        })
        .await;
    let basic = match grant {
        Ok(g) if g.allowed => g.basic,
        Ok(_) => return json_error(StatusCode::FORBIDDEN, "this system is not for you"),
        Err(r) => return r,
    };
    let Ok(who) = axum::http::HeaderValue::from_str(&user.name) else {
        return failed("a user name that is not a header value");
    };
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    match (sys.cfg.login, basic) {
        (LoginMethod::Basic, Some(basic)) => {
            let (username, password) = &*basic;
            let mut raw = zeroize_join(username.expose(), password.expose());
            let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw);
            raw.iter_mut().for_each(|b| *b = 0);
            let Ok(auth) = axum::http::HeaderValue::from_str(&format!("Basic {encoded}")) else {
                return failed("a credential that is not a header value");
            };
            h.insert(header::AUTHORIZATION, auth.clone());
            h.insert("x-convene-authorization", auth);
        }
        (LoginMethod::Basic, None) => return failed("an allowed grant without its credential"),
        (LoginMethod::Header, _) => {
            if let Some(name) = sys
                .cfg
                .header
                .as_ref()
                .and_then(|hl| axum::http::HeaderName::try_from(hl.name.as_str()).ok())
            {
                h.insert(name, who.clone());
            }
        }
        (LoginMethod::Form | LoginMethod::Imap, _) => {}
    }
    h.insert("remote-user", who.clone());
    h.insert("x-convene-user", who);
    h.insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// A person's binding to `system` is changing here: forward-auth forgets what it released.
pub(super) fn binding_changed(state: &AppState, user: crate::store::UserId, system: &str) {
    state.forward_grants.forget(&(user.0, system.to_string()));
}

/// `username:password`, as HTTP Basic joins them (the caller wipes it).
fn zeroize_join(username: &[u8], password: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(username.len() + 1 + password.len());
    raw.extend_from_slice(username);
    raw.push(b':');
    raw.extend_from_slice(password);
    raw
}
