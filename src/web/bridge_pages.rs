//! The minimal server-rendered page of the single-sign-on bridge, beside the account page: the
//! systems a person may use with their binding state and a link to open each, a form to bind
//! or update an account (verified by one real login before it is kept), unbind, and the
//! person's own audit. Every form carries the session's CSRF token. (The portal comes later.)
//!
//! Must never: echo a password, act on a form without the session's CSRF token, or show a
//! system outside the person's audience.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::pages::{NextQuery, posted_session, see_other, signed_in};
use super::session::Current;
use super::{AppState, page};
use crate::bridge::LoginCheck;
use crate::bridge::systems::LoginMethod;
use crate::crypto::Secret;
use crate::dav::escape as e;
use crate::store::{BindingState, BindingStore as _, SessionStore as _};

const TITLE: &str = "Business systems";

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        TITLE,
        "<p>Storage unavailable.</p>",
    )
}

/// `GET /account/systems`.
pub(super) async fn systems_page(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if req.method() != Method::GET {
        return page(StatusCode::METHOD_NOT_ALLOWED, TITLE, "<p>Use GET.</p>");
    }
    match signed_in(&state, req.headers()).await {
        Some(cur) => render(&state, &cur, StatusCode::OK, None).await,
        None => see_other("/login?next=/account/systems"),
    }
}

/// The system `name`, if this person may use it (else the page that says there is none).
async fn system_for(
    state: &AppState,
    cur: &Current,
    name: &str,
) -> Result<crate::bridge::systems::System, Response> {
    let Ok(memberships) = state.store.groups_of(cur.user.id).await else {
        return Err(unavailable());
    };
    state
        .systems
        .get(name)
        .filter(|s| s.allows(&memberships))
        .ok_or_else(|| {
            page(
                StatusCode::NOT_FOUND,
                TITLE,
                "<p>No such system for you.</p>",
            )
        })
}

/// Where the launcher opens a system: through the login proxy when it is configured, else
/// the system's own address.
pub(super) fn open_url(state: &AppState, s: &crate::bridge::systems::System) -> String {
    match (&state.apps, s.cfg.login) {
        (Some(_), LoginMethod::Basic | LoginMethod::Form | LoginMethod::Header) => {
            format!("/bridge/open/{}", s.cfg.name)
        }
        _ => s.cfg.url.clone(),
    }
}

/// `GET /bridge/open/{system}?next=PATH`: open a system through the login proxy, signed in.
/// The person's portal session is handed to the system's host by a one-time code (valid for
/// a minute, redeemed once by that host alone); `next` is a path on the system's host.
pub(super) async fn open(
    State(state): State<Arc<AppState>>,
    Path(system): Path<String>,
    Query(q): Query<NextQuery>,
    req: Request,
) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return page(StatusCode::METHOD_NOT_ALLOWED, TITLE, "<p>Use GET.</p>");
    }
    let Some(cur) = signed_in(&state, req.headers()).await else {
        let back = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let enc = percent_encoding::utf8_percent_encode(&back, percent_encoding::NON_ALPHANUMERIC);
        return see_other(&format!("/login?next={enc}"));
    };
    let sys = match system_for(&state, &cur, &system).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(apps) = &state.apps else {
        return see_other(&sys.cfg.url);
    };
    if sys.cfg.login.takes_binding() {
        let Ok(bindings) = state.store.bindings_of(cur.user.id).await else {
            return unavailable();
        };
        let bound = bindings
            .iter()
            .any(|b| b.system == sys.cfg.name && b.state == BindingState::Bound);
        if !bound {
            return render(
                &state,
                &cur,
                StatusCode::CONFLICT,
                Some(&format!(
                    "Bind your {} account first (or update it: it was refused).",
                    sys.cfg.label
                )),
            )
            .await;
        }
    }
    let default_next = reqwest_free_path(&sys.cfg.url);
    let next = q
        .next
        .as_deref()
        .and_then(crate::bridge::handoff::local_path)
        .unwrap_or(&default_next);
    let now = state.clock.now();
    match state
        .handoffs
        .issue(&state.store, cur.session.id, &sys.cfg.name, next, now)
        .await
    {
        Ok(code) => see_other(&format!(
            "{}/.convene/handoff?code={code}",
            apps.origin(&sys.cfg.name)
        )),
        Err(_) => unavailable(),
    }
}

/// The path (and query) of an absolute URL, `/` when it has none.
fn reqwest_free_path(url: &str) -> String {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".to_string(),
    }
}

async fn render(
    state: &AppState,
    cur: &Current,
    status: StatusCode,
    note: Option<&str>,
) -> Response {
    let (Ok(memberships), Ok(bindings), Ok(audit)) = (
        state.store.groups_of(cur.user.id).await,
        state.store.bindings_of(cur.user.id).await,
        state.store.releases(Some(cur.user.id), 50).await,
    ) else {
        return unavailable();
    };
    let csrf = e(&cur.csrf);
    let mut rows = String::new();
    let systems = state.systems.snapshot();
    for s in systems.visible_to(&memberships) {
        let name = e(&s.cfg.name);
        let binding = bindings
            .iter()
            .find(|b| b.system == s.cfg.name)
            .map_or("not bound", |b| b.state.as_str());
        let unbind = if binding == "not bound" {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/account/systems/{name}/unbind\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\" aria-label=\"Unbind {label}\">Unbind</button></form>",
                label = e(&s.cfg.label)
            )
        };
        let unread = match (s.cfg.login, binding) {
            (LoginMethod::Imap, "bound") => super::bridge_api::unread_of(state, &cur.user, s)
                .await
                .map(|n| format!(" <span class=\"unread\" id=\"unread-{name}\">{n} unread</span>"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let bind = if s.cfg.login.takes_binding() {
            format!(
                "<form method=\"post\" action=\"/account/systems/{name}/bind\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><label>User name <input name=\"username\" autocomplete=\"off\" required maxlength=\"256\"></label> <label>Password <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required maxlength=\"1024\"></label> <button type=\"submit\">Bind</button></form>{unbind}"
            )
        } else {
            "(signed in by Convene)".to_string()
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"{url}\" id=\"open-{name}\">{label}</a>{unread}</td><td class=\"state\" id=\"state-{name}\">{binding}</td><td>{bind}</td></tr>",
            url = e(&open_url(state, s)),
            label = e(&s.cfg.label),
        ));
    }
    let mut log = String::new();
    for a in &audit {
        log.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&a.system),
            e(&a.purpose),
            e(&a.outcome),
            super::pages::when(Some(a.at))
        ));
    }
    let note = note
        .map(|n| format!("<p role=\"alert\">{}</p>", e(n)))
        .unwrap_or_default();
    let vault = if state.vault.is_none() {
        "<p>No credential vault is configured on this server: accounts cannot be bound.</p>"
    } else {
        ""
    };
    page(
        status,
        TITLE,
        &format!(
            "{note}{vault}<table><thead><tr><th>System</th><th>Your account</th><th></th></tr></thead><tbody>{rows}</tbody></table><h2>Every use of your credentials</h2><table><thead><tr><th>System</th><th>Why</th><th>Outcome</th><th>When</th></tr></thead><tbody>{log}</tbody></table><p><a href=\"/account\">Your account</a></p>"
        ),
    )
}

#[derive(serde::Deserialize)]
pub(super) struct BindForm {
    csrf: String,
    username: String,
    password: String,
}

#[derive(serde::Deserialize)]
pub(super) struct CsrfOnly {
    csrf: String,
}

/// `POST /account/systems/{name}/bind` and `/unbind`.
pub(super) async fn system_action(
    State(state): State<Arc<AppState>>,
    Path((system, action)): Path<(String, String)>,
    req: Request,
) -> Response {
    if req.method() != Method::POST {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            TITLE,
            "<p>Use the form.</p>",
        );
    }
    let Some(vault) = state.vault.clone() else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            TITLE,
            "<p>No credential vault is configured on this server.</p>",
        );
    };
    match action.as_str() {
        "bind" => {
            let (cur, f) = match posted_session::<BindForm>(&state, req, |f| &f.csrf).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            let sys = match system_for(&state, &cur, &system).await {
                Ok(s) => s,
                Err(r) => return r,
            };
            if f.username.is_empty()
                || f.username.chars().count() > 256
                || f.username.chars().any(char::is_control)
                || f.password.is_empty()
                || f.password.chars().count() > 1024
            {
                return render(
                    &state,
                    &cur,
                    StatusCode::BAD_REQUEST,
                    Some("Give a user name and a password."),
                )
                .await;
            }
            let password = Secret::new(f.password.into_bytes());
            let now = state.clock.now();
            let bound = crate::bridge::bind(
                &vault,
                state.verifier.as_ref(),
                (cur.user.id, &sys),
                &f.username,
                &password,
                now,
            )
            .await;
            super::bridge_api::binding_changed(&state, cur.user.id, &system);
            match bound {
                Ok(LoginCheck::Accepted) => see_other("/account/systems"),
                Ok(LoginCheck::Refused) => {
                    render(
                        &state,
                        &cur,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some("The system refused these credentials; nothing was kept."),
                    )
                    .await
                }
                Ok(LoginCheck::Unreachable(why)) => {
                    render(&state, &cur, StatusCode::BAD_GATEWAY, Some(&why)).await
                }
                Err(err) => {
                    render(
                        &state,
                        &cur,
                        StatusCode::NOT_IMPLEMENTED,
                        Some(&err.to_string()),
                    )
                    .await
                }
            }
        }
        "unbind" => {
            let (cur, _) = match posted_session::<CsrfOnly>(&state, req, |f| &f.csrf).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            let unbound = crate::bridge::unbind(&vault, cur.user.id, &system).await;
            super::bridge_api::binding_changed(&state, cur.user.id, &system);
            match unbound {
                Ok(_) => see_other("/account/systems"),
                Err(_) => unavailable(),
            }
        }
        _ => page(StatusCode::NOT_FOUND, TITLE, "<p>No such action.</p>"),
    }
}
