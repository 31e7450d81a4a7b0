//! The schedule-sharing JSON API: an event's recipients, a calendar's rules, and a user's
//! sharing settings. An event's recipients are written into the event itself by the CalDAV
//! convention (informational attendees), through the one calendar write path CalDAV's PUT
//! uses (`calendar::Calendars::write_object`), so the API and clients can never disagree.
//!
//! Must never: let one user read or change another's rules, settings or events; accept a
//! recipient the server does not know.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::{AppState, authenticate, json, json_error};
use crate::caldav;
use crate::ical::delegated::{self, Recipient};
use crate::store::{
    GroupSource, ResourceKind, ResourceReader, RuleKind, ShareSettings, ShareStore, StoreError,
    User, UserStore, WriteCondition,
};

const MAX_JSON: usize = 64 * 1024;

fn failed(e: StoreError) -> Response {
    tracing::error!(error = %e, "sharing API store error");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = to_bytes(body, MAX_JSON)
        .await
        .map_err(|_| json_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    /// `#RRGGBB`, or null for the colour derived from the account.
    colour: Option<String>,
    #[serde(default)]
    prefix_summary: bool,
}

/// GET or PUT `/api/share/settings`.
pub(super) async fn settings(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = &state.store;
    match parts.method {
        Method::GET => {}
        Method::PUT => {
            let b: SettingsBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Some(c) = &b.colour
                && (c.len() != 7 || delegated::parse_hex(c).is_none())
            {
                return json_error(StatusCode::BAD_REQUEST, "colour must be #RRGGBB");
            }
            let s = ShareSettings {
                colour: b.colour.map(|c| c.to_ascii_uppercase()),
                prefix_summary: b.prefix_summary,
            };
            if let Err(e) = store.set_share_settings(user.id, &s).await {
                return failed(e);
            }
            // Existing copies take the new colour and prefix on the worker's next pass (the
            // store starts the owner's calendars over), not on the owner's next edit.
            state.sharing.kick();
        }
        _ => return json_error(StatusCode::METHOD_NOT_ALLOWED, "GET or PUT"),
    }
    let s = match store.share_settings(user.id).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let effective = s
        .colour
        .clone()
        .unwrap_or_else(|| crate::directory::avatar::colour_for(&user.name));
    json(
        StatusCode::OK,
        &serde_json::json!({
            "colour": s.colour,
            "effective_colour": effective,
            "prefix_summary": s.prefix_summary,
        }),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    /// The calendar's name in the owner's home.
    calendar: String,
    /// `user`, `group`, `department` or `manager`.
    kind: String,
    #[serde(default)]
    target: String,
}

/// GET or POST `/api/share/rules`.
pub(super) async fn rules(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = &state.store;
    match parts.method {
        Method::GET => {
            let rules = match store.share_rules_of(user.id).await {
                Ok(r) => r,
                Err(e) => return failed(e),
            };
            let mut out = vec![];
            for r in rules {
                let cal = match store.resource(r.calendar).await {
                    Ok(c) => c.map(|c| c.name),
                    Err(e) => return failed(e),
                };
                out.push(serde_json::json!({
                    "id": r.id,
                    "calendar": cal,
                    "kind": r.kind.as_str(),
                    "target": r.target,
                    "created_at": r.created_at,
                }));
            }
            json(StatusCode::OK, &serde_json::Value::Array(out))
        }
        Method::POST => {
            let b: RuleBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(kind) = RuleKind::parse(&b.kind) else {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "kind must be user, group, department or manager",
                );
            };
            let target = if kind == RuleKind::Manager {
                String::new()
            } else {
                b.target.trim().to_string()
            };
            if let Err(r) = check_target(&state, &user, kind, &target).await {
                return r;
            }
            let cal = match own_calendar(&state, &user, &b.calendar).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            match store.add_share_rule(user.id, cal, kind, &target).await {
                Ok(r) => {
                    state.sharing.kick();
                    json(
                        StatusCode::CREATED,
                        &serde_json::json!({
                            "id": r.id,
                            "calendar": b.calendar,
                            "kind": r.kind.as_str(),
                            "target": r.target,
                        }),
                    )
                }
                Err(e) => failed(e),
            }
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"),
    }
}

/// DELETE `/api/share/rules/{id}`: the rule's copies go on the next pass.
pub(super) async fn rule_delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let (user, _) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if parts.method != Method::DELETE {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "DELETE");
    }
    match state.store.remove_share_rule(user.id, id).await {
        Ok(true) => {
            state.sharing.kick();
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default()
        }
        Ok(false) => json_error(StatusCode::NOT_FOUND, "no such rule"),
        Err(e) => failed(e),
    }
}

async fn own_calendar(
    state: &AppState,
    user: &User,
    name: &str,
) -> Result<crate::store::ResourceId, Response> {
    let chain = state
        .store
        .lookup_path(user.id, &[name.to_string()])
        .await
        .map_err(failed)?;
    match chain.as_slice() {
        [_, c]
            if c.kind == ResourceKind::Calendar
                && crate::share::copies_owner(&c.name).is_none() =>
        {
            Ok(c.id)
        }
        _ => Err(json_error(
            StatusCode::NOT_FOUND,
            "no such calendar of yours",
        )),
    }
}

/// A rule or recipient must name someone or something the server knows; a manager rule needs
/// a manager in the org chart (`owner` is whose manager it would be).
async fn check_target(
    state: &AppState,
    owner: &User,
    kind: RuleKind,
    target: &str,
) -> Result<(), Response> {
    let store = &state.store;
    let snapshot = || async {
        state.org.snapshot().await.map_err(|e| {
            tracing::error!(error = %e, "org chart unavailable");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory is unavailable",
            )
        })
    };
    let known = match kind {
        RuleKind::Manager => {
            let snap = snapshot().await?;
            if snap
                .people
                .iter()
                .find(|p| p.uid == owner.name)
                .and_then(|p| p.manager.as_ref())
                .is_some()
            {
                return Ok(());
            }
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "the directory names no manager for you, so a manager rule would reach no one",
            ));
        }
        RuleKind::User => store.user_by_name(target).await.map_err(failed)?.is_some(),
        RuleKind::Group | RuleKind::Department => {
            let sources: &[GroupSource] = if kind == RuleKind::Group {
                &[GroupSource::Directory, GroupSource::Oidc]
            } else {
                &[GroupSource::Department]
            };
            let members = store
                .members_of_group(sources, target)
                .await
                .map_err(failed)?;
            !members.is_empty() || {
                let snap = snapshot().await?;
                if kind == RuleKind::Group {
                    snap.groups.iter().any(|g| g.name == target)
                } else {
                    snap.departments.iter().any(|d| d.name == target)
                }
            }
        }
    };
    if known {
        Ok(())
    } else {
        Err(json_error(
            StatusCode::BAD_REQUEST,
            &format!("unknown {} {target:?}", kind.as_str()),
        ))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventShareBody {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    departments: Vec<String>,
}

/// GET or PUT `/api/share/events/{calendar}/{object}`: who one event is shared with.
pub(super) async fn event(
    State(state): State<Arc<AppState>>,
    Path((calendar, object)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = &state.store;
    let chain = match store
        .lookup_path(user.id, &[calendar.clone(), object.clone()])
        .await
    {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let (parent, obj) = match chain.as_slice() {
        [_, c, o]
            if c.kind == ResourceKind::Calendar
                && crate::share::copies_owner(&c.name).is_none() =>
        {
            (c.clone(), o.clone())
        }
        _ => return json_error(StatusCode::NOT_FOUND, "no such event of yours"),
    };
    let data = match store.object_data(obj.id).await {
        Ok(Some(d)) => d,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "no such event of yours"),
        Err(e) => return failed(e),
    };
    match parts.method {
        Method::GET => json(
            StatusCode::OK,
            &serde_json::json!({ "recipients": delegated::informational_addresses(&data) }),
        ),
        Method::PUT => {
            let b: EventShareBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if b.users.len() + b.groups.len() + b.departments.len() > 1000 {
                return json_error(StatusCode::BAD_REQUEST, "at most 1000 recipients");
            }
            let mut recipients = vec![];
            for name in &b.users {
                let u = match store.user_by_name(name).await {
                    Ok(Some(u)) if !u.disabled => u,
                    Ok(_) => {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            &format!("unknown user {name:?}"),
                        );
                    }
                    Err(e) => return failed(e),
                };
                recipients.push(Recipient {
                    address: u
                        .email
                        .as_ref()
                        .map(|e| format!("mailto:{e}"))
                        .unwrap_or_else(|| caldav::principal_href(&u.name)),
                    group: false,
                    label: u.display_name.clone(),
                });
            }
            for (kind, names, seg) in [
                (RuleKind::Group, &b.groups, "groups"),
                (RuleKind::Department, &b.departments, "departments"),
            ] {
                for name in names {
                    if let Err(r) = check_target(&state, &user, kind, name).await {
                        return r;
                    }
                    recipients.push(Recipient {
                        address: format!("/dav/{seg}/{}/", crate::dav::encode_path(name)),
                        group: true,
                        label: Some(name.clone()),
                    });
                }
            }
            let Some(next) = delegated::with_recipients(&data, &recipients) else {
                return json_error(StatusCode::CONFLICT, "the stored event could not be read");
            };
            // The one calendar write path, conditional on the version read: validation,
            // scheduling and the index are the same as for a client's write.
            let written = state
                .dav(&user)
                .calendars()
                .write_object(crate::calendar::ObjectWrite {
                    parent: &parent,
                    name: &obj.name,
                    existing: Some(&obj),
                    body: &next,
                    content_type: Some("text/calendar"),
                    schedule: crate::calendar::ScheduleHeaders {
                        schedule_tag_match: None,
                        if_match_holds: true,
                    },
                    cond: WriteCondition::EtagIn(obj.etag.clone().into_iter().collect()),
                    shared: false,
                    sent_by: None,
                })
                .await;
            if let Err(e) = written {
                return dav_failure(e.into());
            }
            let addresses: Vec<&str> = recipients.iter().map(|r| r.address.as_str()).collect();
            json(
                StatusCode::OK,
                &serde_json::json!({ "recipients": addresses }),
            )
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "GET or PUT"),
    }
}

fn dav_failure(e: crate::dav::DavError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_error(status, &e.message)
}

fn request_json(
    now: i64,
    r: &crate::store::AccessRequest,
    requester: &str,
    owner: &str,
) -> serde_json::Value {
    use crate::store::RequestStatus;
    // An open request past its time reads as expired (it is closed on the next write).
    let status = if r.status == RequestStatus::Open && r.expires_at <= now {
        RequestStatus::Expired
    } else {
        r.status
    };
    serde_json::json!({
        "id": r.id,
        "uid": r.uid,
        "requester": requester,
        "owner": owner,
        "access": r.access.as_str(),
        "status": status.as_str(),
        "granted": r.granted.map(crate::store::ShareAccess::as_str),
        "message": r.message,
        "calendars": r.calendars,
        "created_at": r.created_at,
        "expires_at": r.expires_at,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRequestBody {
    /// The account whose calendars the requester wants to see.
    owner: String,
    /// `read`, `read-write` or `free-busy`.
    access: String,
    message: Option<String>,
    /// The owner's calendars asked for, by name (default: all of them).
    #[serde(default)]
    calendars: Vec<String>,
    /// How long the request stays open (default 14 days, at most 90).
    expires_in_seconds: Option<i64>,
}

/// GET or POST `/api/share/requests`: access requests made and received.
pub(super) async fn requests(State(state): State<Arc<AppState>>, req: Request) -> Response {
    use crate::store::CalendarShareStore as _;
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = &state.store;
    match parts.method {
        Method::GET => {
            let all = match store.access_requests_of(user.id).await {
                Ok(a) => a,
                Err(e) => return failed(e),
            };
            let mut incoming = vec![];
            let mut outgoing = vec![];
            for r in &all {
                let other = if r.owner == user.id {
                    r.requester
                } else {
                    r.owner
                };
                let name = match store.user_by_id(other).await {
                    Ok(u) => u.map(|u| u.name).unwrap_or_default(),
                    Err(e) => return failed(e),
                };
                if r.owner == user.id {
                    incoming.push(request_json(state.clock.now(), r, &name, &user.name));
                } else {
                    outgoing.push(request_json(state.clock.now(), r, &user.name, &name));
                }
            }
            json(
                StatusCode::OK,
                &serde_json::json!({ "incoming": incoming, "outgoing": outgoing }),
            )
        }
        Method::POST => {
            let b: NewRequestBody = match read_json(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(access) = crate::store::ShareAccess::parse(&b.access) else {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "access must be read, read-write or free-busy",
                );
            };
            let owner = match store.user_by_name(&b.owner).await {
                Ok(Some(o)) if !o.disabled => o,
                Ok(_) => return json_error(StatusCode::NOT_FOUND, "no such user"),
                Err(e) => return failed(e),
            };
            let lifetime = b
                .expires_in_seconds
                .unwrap_or(crate::caldav::sharing::DEFAULT_REQUEST_SECONDS);
            match state
                .dav(&user)
                .request_access(&owner, access, b.message.as_deref(), &b.calendars, lifetime)
                .await
            {
                Ok(r) => json(
                    StatusCode::CREATED,
                    &request_json(state.clock.now(), &r, &user.name, &owner.name),
                ),
                Err(e) => dav_failure(e),
            }
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// The level granted: the one asked for or any other (`read`, `read-write`, `free-busy`).
    access: Option<String>,
    /// The calendars shared, by name (default: those the request named, else all).
    calendars: Option<Vec<String>>,
}

/// POST `/api/share/requests/{id}/{grant|refuse}` (the owner) and DELETE
/// `/api/share/requests/{id}` (the requester withdraws).
pub(super) async fn request_action(
    State(state): State<Arc<AppState>>,
    Path((id, action)): Path<(i64, String)>,
    req: Request,
) -> Response {
    request_action_inner(state, id, Some(action), req).await
}

/// DELETE `/api/share/requests/{id}`.
pub(super) async fn request_action_bare(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    request_action_inner(state, id, None, req).await
}

async fn request_action_inner(
    state: Arc<AppState>,
    id: i64,
    action: Option<String>,
    req: Request,
) -> Response {
    use crate::store::CalendarShareStore as _;
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Someone else's request looks the same as none.
    let r = match state.store.access_request(id).await {
        Ok(Some(r)) if r.owner == user.id || r.requester == user.id => r,
        Ok(_) => return json_error(StatusCode::NOT_FOUND, "no such request"),
        Err(e) => return failed(e),
    };
    let dav = state.dav(&user);
    let outcome = match (parts.method.clone(), action.as_deref()) {
        (Method::DELETE, None) => dav.withdraw_access_request(&r).await.map(|_| vec![]),
        (Method::POST, Some("refuse")) => dav.answer_access_request(&r, None, None).await,
        (Method::POST, Some("grant")) => {
            let b: GrantBody = match read_json(body).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let level = match b.access.as_deref() {
                None => r.access,
                Some(a) => match crate::store::ShareAccess::parse(a) {
                    Some(l) => l,
                    None => {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            "access must be read, read-write or free-busy",
                        );
                    }
                },
            };
            dav.answer_access_request(&r, Some(level), b.calendars.as_deref())
                .await
        }
        _ => {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST grant|refuse, or DELETE",
            );
        }
    };
    match outcome {
        Ok(mounts) if parts.method == Method::DELETE => {
            let _ = mounts;
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default()
        }
        Ok(mounts) => json(StatusCode::OK, &serde_json::json!({ "mounts": mounts })),
        Err(e) => dav_failure(e),
    }
}
