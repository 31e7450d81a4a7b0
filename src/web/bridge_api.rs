//! The single-sign-on bridge's JSON API: the launcher's list of the business systems a person
//! may use. (Binding, the login proxy and forward-auth build on the same registry.)
//!
//! Must never: list a system to someone outside its audience, or show another person's data.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::{AppState, authenticate, json, json_error};
use crate::store::SessionStore as _;

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
    let memberships = match state.store.groups_of(user.id).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "reading memberships failed");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    };
    let list: Vec<serde_json::Value> = state
        .systems
        .visible_to(&memberships)
        .map(|s| {
            serde_json::json!({
                "name": s.cfg.name,
                "label": s.cfg.label,
                "icon": s.cfg.icon,
                "url": s.cfg.url,
                "login": s.cfg.login.as_str(),
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::Value::Array(list))
}
