//! The directory JSON API: people search, one person, their photo, and the group and
//! department trees, for pickers in clients and the pages, from LDAP or Convene's own chart
//! (whose edits are `org_api`). Every answer is for an authenticated user.
//!
//! Must never: put a client string into a directory filter unescaped (the `directory` module
//! escapes), or answer without authentication.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, authenticate, json, json_error};
use crate::caldav;
use crate::store::UserStore;

#[derive(serde::Deserialize)]
pub(super) struct PeopleQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: Option<usize>,
}

fn directory_unavailable(e: crate::directory::DirectoryError) -> Response {
    tracing::error!(error = %e, "directory look-up failed");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the directory is unavailable",
    )
}

/// `GET /api/directory/people?q=TEXT&limit=N`: people whose uid, name or mail contains TEXT.
pub(super) async fn api_directory_people(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<PeopleQuery>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = authenticate(&state, &parts, body, true).await {
        return r;
    }
    if query.q.trim().chars().count() < 2 {
        return json_error(StatusCode::BAD_REQUEST, "q needs at least 2 characters");
    }
    let limit = query.limit.unwrap_or(25).clamp(1, 200);
    let found = match &state.directory {
        Some(dir) => dir.search_people(&query.q, limit).await,
        None => match state.org.snapshot().await {
            Ok(snap) => Ok(search_snapshot(&snap, &query.q, limit)),
            Err(e) => return org_unavailable(e),
        },
    };
    match found {
        Ok(people) => json(
            StatusCode::OK,
            &serde_json::Value::Array(people.into_iter().map(|p| person_json(&p)).collect()),
        ),
        Err(e) => directory_unavailable(e),
    }
}

/// People of Convene's own chart whose uid, name or mail contains `q` (caseless).
fn search_snapshot(
    snap: &crate::directory::Snapshot,
    q: &str,
    limit: usize,
) -> Vec<crate::directory::Person> {
    let q = q.trim().to_lowercase();
    let has = |v: &Option<String>| v.as_deref().is_some_and(|v| v.to_lowercase().contains(&q));
    snap.people
        .iter()
        .filter(|p| p.uid.to_lowercase().contains(&q) || has(&p.display_name) || has(&p.mail))
        .take(limit)
        .cloned()
        .collect()
}

fn org_unavailable(e: crate::org::OrgError) -> Response {
    tracing::error!(error = %e, "org chart look-up failed");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the directory is unavailable",
    )
}

fn person_json(p: &crate::directory::Person) -> serde_json::Value {
    serde_json::json!({
        "uid": p.uid,
        "name": p.display_name,
        "mail": p.mail,
        "title": p.title,
        "department": p.department,
        "manager": p.manager,
        "principal": caldav::principal_href(&p.uid),
        "photo": format!("/api/directory/people/{}/photo", crate::dav::encode_path(&p.uid)),
    })
}

/// The org chart for the directory APIs, after Basic authentication.
async fn directory_snapshot(
    state: &AppState,
    req: Request,
) -> Result<Arc<crate::directory::Snapshot>, Response> {
    let (parts, body) = req.into_parts();
    let _ = authenticate(state, &parts, body, true).await?;
    if parts.method != Method::GET {
        return Err(json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET"));
    }
    state.org.snapshot().await.map_err(org_unavailable)
}

/// `GET /api/directory/groups`: the directory's groups and their members' uids.
pub(super) async fn api_directory_groups(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Response {
    let snap = match directory_snapshot(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    json(
        StatusCode::OK,
        &serde_json::Value::Array(
            snap.groups
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "name": g.name,
                        "description": g.description,
                        "members": g.members,
                    })
                })
                .collect(),
        ),
    )
}

/// `GET /api/directory/departments`: the department tree, each with its parent, sub-departments,
/// head and members' uids.
pub(super) async fn api_directory_departments(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Response {
    let snap = match directory_snapshot(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    json(
        StatusCode::OK,
        &serde_json::Value::Array(
            snap.departments
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "name": d.name,
                        "parent": d.parent,
                        "description": d.description,
                        "head": d.head,
                        "children": snap.departments.iter().filter(|c| c.parent.as_deref() == Some(d.name.as_str())).map(|c| c.name.clone()).collect::<Vec<_>>(),
                        "members": snap.people.iter().filter(|p| p.department.as_deref() == Some(d.name.as_str())).map(|p| p.uid.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
    )
}

/// `GET /api/directory/people/{uid}`: one person with their place in the org: groups,
/// departments (nearest first), manager and direct reports.
pub(super) async fn api_directory_person(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(uid): axum::extract::Path<String>,
    req: Request,
) -> Response {
    if req.method() == Method::PUT {
        return super::org_api::person_put(&state, &uid, req).await;
    }
    let snap = match directory_snapshot(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(p) = snap.people.iter().find(|p| p.uid == uid) else {
        return json_error(StatusCode::NOT_FOUND, "no such person");
    };
    let (groups, departments) = snap.memberships(&p.uid);
    let mut v = person_json(p);
    v["groups"] = serde_json::json!(groups);
    v["departments"] = serde_json::json!(departments);
    v["reports"] = serde_json::json!(
        snap.people
            .iter()
            .filter(|r| r.manager.as_deref() == Some(p.uid.as_str()))
            .map(|r| r.uid.clone())
            .collect::<Vec<_>>()
    );
    json(StatusCode::OK, &v)
}

/// `GET /api/directory/people/{uid}/photo`: the directory photo (JPEG), or a generated badge
/// (SVG) with the initials on the account's colour. Any credential that reads calendars may
/// fetch it (clients show it next to shared entries).
pub(super) async fn api_directory_photo(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(uid): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = authenticate(&state, &parts, body, false).await {
        return r;
    }
    let mut display = None;
    if let Some(dir) = &state.directory {
        if let Ok(snap) = dir.snapshot().await
            && let Some(url) = snap
                .people
                .iter()
                .find(|p| p.uid == uid)
                .and_then(|p| p.avatar_url.as_deref())
            && let Ok(v) = HeaderValue::from_str(url)
        {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            return r;
        }
        match dir.photo(&uid).await {
            Ok(Some(jpeg)) => {
                let mut r = Response::new(Body::from(jpeg));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=3600"),
                );
                return r;
            }
            Ok(None) => {}
            Err(e) => return directory_unavailable(e),
        }
        display = dir.snapshot().await.ok().and_then(|s| {
            s.people
                .iter()
                .find(|p| p.uid == uid)
                .and_then(|p| p.display_name.clone())
        });
    }
    if display.is_none() {
        match state.store.user_by_name(&uid).await {
            Ok(Some(u)) => display = u.display_name.or(Some(u.name)),
            Ok(None) if state.directory.is_none() => {
                return json_error(StatusCode::NOT_FOUND, "no such person");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "user look-up failed");
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
            }
        }
    }
    let mut r = Response::new(Body::from(crate::directory::avatar::svg(
        &uid,
        display.as_deref(),
    )));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    r
}
