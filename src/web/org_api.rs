//! The org chart's write API: an admin (`admins` in the configuration) edits Convene's own
//! groups, departments and people, or asks for LDAP's chart to be read again at once. Every
//! change is copied onto the accounts before the answer, and the sharing worker is woken, so a
//! group or department share follows its members within one pass.
//!
//! Must never: take an edit from anyone but an admin, take a body that is not JSON (a form
//! posted cross-site is not), or edit a chart that LDAP owns (409).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::{AppState, authenticate, json, json_error};
use crate::org::OrgError;
use crate::store::{OrgDepartment, OrgPerson};

const MAX_JSON: usize = 16 * 1024;

fn org_error(e: OrgError) -> Response {
    match e {
        OrgError::ReadOnly => json_error(StatusCode::CONFLICT, &e.to_string()),
        OrgError::NotFound(_) => json_error(StatusCode::NOT_FOUND, &e.to_string()),
        OrgError::Invalid(_) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        OrgError::Store(_) | OrgError::Directory(_) => {
            tracing::error!(error = %e, "org chart edit failed");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory is unavailable",
            )
        }
    }
}

/// The request's body, when the caller is an admin and the method is one of `allowed`.
async fn admin_request(
    state: &AppState,
    req: Request,
    allowed: &[Method],
) -> Result<(Method, axum::http::HeaderMap, Body), Response> {
    let (parts, body) = req.into_parts();
    let (user, body) = authenticate(state, &parts, body, true).await?;
    if !allowed.contains(&parts.method) {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        return Err(json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("use {}", names.join(" or ")),
        ));
    }
    if !state.admins.contains(&user.name) {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "only an admin (`admins` in the configuration) may change the directory",
        ));
    }
    Ok((parts.method, parts.headers, body))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<T, Response> {
    let bytes = super::json_bytes(headers, body, MAX_JSON).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")))
}

fn done(state: &AppState) -> Response {
    // Group and department shares follow their members.
    state.sharing.kick();
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap_or_default()
}

/// `GET /api/directory`: where the chart comes from, whether it can be edited here, how often
/// it is read again, and when memberships were last and will next be copied onto accounts.
pub(super) async fn status(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = authenticate(&state, &parts, body, true).await {
        return r;
    }
    if parts.method != Method::GET {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let times = state.org.copy_times();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "source": state.org.source_name(),
            "editable": state.org.editable(),
            "refresh_seconds": state.org.refresh_interval().as_secs(),
            // A change in LDAP reaches shares at the next copy (or an admin's refresh);
            // Convene's own chart is copied at each edit.
            "memberships_copied_at": times.map(|t| t.0),
            "next_copy_at": times.map(|t| t.1),
        }),
    )
}

/// `POST /api/directory/refresh`: read the chart now (LDAP's afresh) and copy memberships
/// onto the accounts, instead of waiting for the next refresh.
pub(super) async fn refresh(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(r) = admin_request(&state, req, &[Method::POST]).await {
        return r;
    }
    match state.org.refresh().await {
        Ok(n) => {
            state.sharing.kick();
            json(
                StatusCode::OK,
                &serde_json::json!({ "accounts_changed": n }),
            )
        }
        Err(e) => org_error(e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    #[serde(default)]
    description: Option<String>,
}

/// `PUT` (create, or change the description) or `DELETE /api/directory/groups/{name}`.
pub(super) async fn group(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (method, headers, body) =
        match admin_request(&state, req, &[Method::PUT, Method::DELETE]).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let r = if method == Method::PUT {
        let b: GroupBody = match read_json(&headers, body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        state.org.put_group(&name, b.description.as_deref()).await
    } else {
        state.org.remove_group(&name).await
    };
    r.map_or_else(org_error, |_| done(&state))
}

/// `PUT` or `DELETE /api/directory/groups/{name}/members/{uid}`: put an account into a group
/// or take it out.
pub(super) async fn member(
    State(state): State<Arc<AppState>>,
    Path((group, uid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (method, _, _) = match admin_request(&state, req, &[Method::PUT, Method::DELETE]).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    state
        .org
        .set_member(&group, &uid, method == Method::PUT)
        .await
        .map_or_else(org_error, |_| done(&state))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentBody {
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `PUT` (create or replace) or `DELETE /api/directory/departments/{name}`.
pub(super) async fn department(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (method, headers, body) =
        match admin_request(&state, req, &[Method::PUT, Method::DELETE]).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let r = if method == Method::PUT {
        let b: DepartmentBody = match read_json(&headers, body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        state
            .org
            .put_department(&OrgDepartment {
                name,
                parent: b.parent,
                description: b.description,
                head: b.head,
            })
            .await
    } else {
        state.org.remove_department(&name).await
    };
    r.map_or_else(org_error, |_| done(&state))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    manager: Option<String>,
}

/// `PUT /api/directory/people/{uid}`: what the chart says of one account (fields left out
/// are cleared).
pub(super) async fn person_put(state: &AppState, uid: &str, req: Request) -> Response {
    let (_, headers, body) = match admin_request(state, req, &[Method::PUT]).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let b: PersonBody = match read_json(&headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    state
        .org
        .put_person(
            uid,
            &OrgPerson {
                title: b.title,
                department: b.department,
                manager: b.manager,
            },
        )
        .await
        .map_or_else(org_error, |_| done(state))
}
