//! The HTTP edge: routing, body limits, authentication middleware and discovery redirects
//! (RFC 6764 5). Requests under `/dav` are handed to `caldav::handle` as plain data.
//!
//! Must never: log credentials (the `Authorization` header is marked sensitive), buffer a body
//! beyond the configured limit, or let a panic escape as anything but a 500.

mod bridge_api;
mod bridge_pages;
mod directory_api;
mod loginflow;
mod mobileconfig;
mod org_api;
mod pages;
pub mod session;
mod share_api;

use directory_api::*;

use std::sync::Arc;

use axum::Router;
use std::convert::Infallible;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Authenticator, Credentials, LocalAuthenticator};
use crate::caldav::{self, Dav, DavRequest, DavSettings};
use crate::dav::DavError;
use crate::feed;
use crate::store::{AppPasswordStore, FeedStore, ResourceKind, ResourceReader, Store, User};

/// What every request handler shares.
pub struct AppState {
    pub flows: loginflow::LoginFlows,
    /// Web sessions (the pages), and how long one lasts.
    pub sessions: session::Sessions,
    pub session_seconds: i64,
    /// The OpenID provider, when one is configured.
    pub oidc: Option<crate::auth::oidc::OidcClient>,
    /// The LDAP directory, when one is configured (people search, groups).
    pub directory: Option<crate::directory::LdapDirectory>,
    /// The org chart: LDAP's, or Convene's own (edited through the directory API).
    pub org: crate::org::OrgChart,
    /// Accounts that may edit Convene's own org chart through the API (`admins`).
    pub admins: Vec<String>,
    /// The credential vault, when configured (the bridge's bindings keep their secrets there).
    pub vault: Option<Arc<crate::bridge::Credentials>>,
    /// The business systems registered (`[[systems]]`).
    pub systems: Arc<crate::bridge::systems::LiveRegistry>,
    /// One real login to a business system, to verify a binding (the `proxy` edge).
    pub verifier: Arc<dyn crate::bridge::Verifier>,
    /// Where the login proxy serves each system (`[bridge] apps_url`); without it the
    /// launcher links to the systems themselves.
    pub apps: Option<crate::bridge::systems::AppHosts>,
    /// The login proxy's session hand-off (issued here, redeemed by the system hosts).
    pub handoffs: Arc<crate::bridge::handoff::Handoffs>,
    /// The unread count of a person's inbox at an IMAP system (the `proxy` edge).
    pub mail: Arc<dyn crate::bridge::MailCounter>,
    /// Unread counts read in the last minute, by person and system.
    pub unread: bridge_api::UnreadCache,
    /// What forward-auth released in the last minute, by person (id) and system.
    pub forward_grants: crate::bridge::grants::Grants<(i64, String)>,
    pub store: Store,
    pub auth: LocalAuthenticator,
    pub limiter: crate::auth::limit::LoginLimiter,
    pub dav: DavSettings,
    pub max_body_bytes: usize,
    pub mailer: Option<crate::mail::Mailer>,
    /// The delegated-entries worker, woken after writes (the calendar domain's hooks).
    pub sharing: crate::share::Sharing,
    /// Where "now" comes from.
    pub clock: crate::clock::SharedClock,
    /// Peers whose `X-Forwarded-Proto` is believed (the TLS proxies in front).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl AppState {
    /// The CalDAV handler for `user`, over this server's store and services.
    pub fn dav<'a>(&'a self, user: &'a User) -> Dav<'a> {
        Dav {
            store: &self.store,
            settings: &self.dav,
            user,
            mailer: self.mailer.as_ref(),
            directory: self.directory.as_ref(),
            org: Some(&self.org),
            delegation: None,
            links: Default::default(),
            clock: self.clock.as_ref(),
            hooks: &self.sharing,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/.well-known/caldav", any(well_known))
        .route("/.well-known/caldav/", any(well_known))
        .route("/dav", any(dav_entry))
        .route("/dav/", any(dav_entry))
        .route("/dav/{*path}", any(dav_entry))
        .route("/feeds/{token}", any(feed_get))
        .route("/api/feeds", any(api_feeds))
        .route("/api/feeds/{id}", any(api_feed_delete))
        .route("/api/imip", any(api_imip))
        .route("/api/app-passwords", any(api_app_passwords))
        .route("/api/app-passwords/{id}", any(api_app_password_delete))
        .route("/api/apple-profile", any(api_apple_profile))
        .route("/api/share/settings", any(share_api::settings))
        .route("/api/share/rules", any(share_api::rules))
        .route("/api/share/rules/{id}", any(share_api::rule_delete))
        .route("/api/share/events/{calendar}/{object}", any(share_api::event))
        .route("/api/share/requests", any(share_api::requests))
        .route("/api/share/requests/{id}", any(share_api::request_action_bare))
        .route("/api/share/requests/{id}/{action}", any(share_api::request_action))
        .route("/api/bridge/systems", any(bridge_api::systems))
        .route("/api/bridge/bindings", any(bridge_api::bindings))
        .route("/api/bridge/bindings/{system}", any(bridge_api::binding))
        .route("/api/bridge/audit", any(bridge_api::audit))
        .route("/api/bridge/forward-auth/{system}", any(bridge_api::forward_auth))
        .route("/api/directory", any(org_api::status))
        .route("/api/directory/refresh", any(org_api::refresh))
        .route("/api/directory/groups/{name}", any(org_api::group))
        .route("/api/directory/groups/{name}/members/{uid}", any(org_api::member))
        .route("/api/directory/departments/{name}", any(org_api::department))
        .route("/api/directory/people", any(api_directory_people))
        .route("/api/directory/groups", any(api_directory_groups))
        .route("/api/directory/departments", any(api_directory_departments))
        .route("/api/directory/people/{uid}", any(api_directory_person))
        .route("/api/directory/people/{uid}/photo", any(api_directory_photo))
        .route("/index.php/login/v2", any(login_flow_start))
        .route("/index.php/login/v2/poll", any(login_flow_poll))
        .route("/login/v2/flow/{id}", any(pages::login_flow_page))
        .route("/login", any(pages::login))
        .route("/logout", any(pages::logout))
        .route("/auth/oidc/start", any(pages::oidc_start))
        .route("/auth/callback", any(pages::oidc_callback))
        .route("/account", any(pages::account))
        .route("/account/app-passwords", any(pages::account_create))
        .route("/account/app-passwords/{id}/revoke", any(pages::account_revoke))
        .route("/account/apple-profile", any(pages::account_apple_profile))
        .route("/account/systems", any(bridge_pages::systems_page))
        .route("/bridge/open/{system}", any(bridge_pages::open))
        .route(
            "/account/systems/{system}/{action}",
            any(bridge_pages::system_action),
        )
        // Nextcloud clients (DAVx5 after Login Flow) look for DAV here.
        .route("/remote.php/dav", any(well_known))
        .route("/remote.php/dav/", any(well_known))
        .route("/", any(index))
        .with_state(state.clone())
        .layer(axum::middleware::map_request_with_state(
            state,
            drop_untrusted_forwarding,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<Body>| {
                tracing::debug_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()))
            },
        ))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// `X-Forwarded-Proto` says the client used HTTPS; only a configured proxy may say so (it
/// makes cookies Secure and the Apple profile use SSL). From anyone else it is removed before
/// any handler reads it.
async fn drop_untrusted_forwarding(
    State(state): State<Arc<AppState>>,
    mut req: Request,
) -> Request {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let trusted = peer.is_some_and(|p| state.trusted_proxies.contains(&p));
    if !trusted {
        req.headers_mut().remove("x-forwarded-proto");
    }
    req
}

/// Headers every response carries: no MIME sniffing, no referrer leaving the server. What
/// WebDAV serves is stored client data, never a page of this origin: it gets a sandboxing CSP,
/// and anything but calendar data or XML is served as an attachment, so an uploaded HTML or
/// SVG file cannot run script with the server's cookies.
async fn security_headers(uri: axum::http::Uri, method: Method, mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let path = uri.path();
    if path == "/dav" || path.starts_with("/dav/") || path.starts_with("/feeds/") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        );
        let inert = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_none_or(|ct| {
                ct == "text/calendar"
                    || ct == "application/xml"
                    || ct == "text/xml"
                    || ct == "text/plain"
                    || ct == "application/json"
            });
        if matches!(method, Method::GET | Method::HEAD) && !inert {
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
        }
    }
    resp
}

/// RFC 6764 5: the well-known URI redirects to the context path.
/// RFC 6764 5: the well-known URI leads to the context path. A PROPFIND (or any method but GET
/// and HEAD) gets a 308, which keeps the method and the body; a 301 lets requests-based
/// clients repeat a PROPFIND without its body, which then asks for no principal.
async fn well_known(method: Method) -> Response {
    to_context_path(method)
}

fn to_context_path(method: Method) -> Response {
    let status = if method == Method::GET || method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut r = status.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/dav/"));
    r
}

/// The host's root: a line for a browser; a client given only the host (a PROPFIND or a
/// REPORT on `/`) is sent to the context path as the well-known URI would.
async fn index(method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD && method != Method::OPTIONS {
        return to_context_path(method);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Convene CalDAV server. Point your calendar client at /dav/ (or this host: discovery is at /.well-known/caldav).\n",
    )
        .into_response()
}

fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "authentication required\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Convene\", charset=\"UTF-8\""),
    );
    r
}

/// A request path fit for logs: a feed URL's secret token is replaced.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/feeds/") {
        "/feeds/<token>"
    } else {
        path
    }
}

/// Bodies up to this size are read and dropped before an early refusal, so the connection
/// stays usable: clients (python-requests, niquests) send a body unauthenticated, take the 401
/// and retry on the same connection.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Answer `resp` to a request whose body was not read. An unread body leaves the connection
/// unusable, and hyper then closes it, sometimes after the client has already sent its next
/// request on it (seen as "connection closed without response"). So a small body is drained,
/// and otherwise the response says `Connection: close`.
async fn refuse_unread(body: Body, resp: Response) -> Response {
    match to_bytes(body, DRAIN_LIMIT).await {
        Ok(_) => resp,
        Err(_) => closing(resp),
    }
}

fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn error_response(e: &DavError) -> Response {
    into_axum(caldav::DavResponse::from_error(e))
}

fn into_axum(r: caldav::DavResponse) -> Response {
    let body = match r.stream {
        None => Body::from(r.body),
        Some(rx) => {
            let head = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(r.body)));
            let rest = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            });
            Body::from_stream(futures_util::StreamExt::chain(head, rest))
        }
    };
    let mut out = Response::new(body);
    *out.status_mut() = r.status;
    *out.headers_mut() = r.headers;
    out
}

/// Authenticate a request by HTTP Basic; on failure the response to send (the body is
/// drained first, see `refuse_unread`). Too many recent failures for the user name or the
/// client address get 429 before any password is checked. `need_full` refuses app passwords
/// limited to CalDAV (the account APIs need the account's password or a full-scope one).
async fn authenticate(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
    need_full: bool,
) -> Result<(User, Body), Response> {
    let creds = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_basic_header);
    let Some(creds) = creds else {
        return Err(refuse_unread(body, unauthorized()).await);
    };
    let addr = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let secret = if crate::auth::app_password::lookup_of(&creds.password).is_some() {
        crate::auth::limit::Secret::AppPassword
    } else {
        crate::auth::limit::Secret::Password
    };
    let attempt = match state
        .limiter
        .begin(&creds.username, &creds.password, addr, secret)
    {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!("login attempts rate-limited");
            let mut r = plain(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later\n",
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(refuse_unread(body, r).await);
        }
    };
    let outcome = state.auth.authenticate(&creds).await;
    match &outcome {
        Ok(Some(_)) => attempt.succeeded(),
        Ok(None) => attempt.failed(),
        Err(_) => drop(attempt),
    }
    match outcome {
        Ok(Some(a)) if need_full && a.scope != crate::auth::Scope::All => Err(refuse_unread(
            body,
            json_error(
                StatusCode::FORBIDDEN,
                "this app password is for CalDAV only; use the account password",
            ),
        )
        .await),
        Ok(Some(a)) => Ok((a.user, body)),
        Ok(None) => {
            // The typed name is not logged: a password typed into the name field would be.
            tracing::info!("authentication failed");
            Err(refuse_unread(body, unauthorized()).await)
        }
        Err(e) => {
            tracing::error!(error = %e, "authentication backend failed");
            Err(error_response(&DavError::new(
                503,
                "authentication backend unavailable",
            )))
        }
    }
}

async fn dav_entry(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method == Method::OPTIONS {
        // Clients probe capabilities before authenticating; the answer reveals nothing private.
        return into_axum(caldav::options());
    }
    let (user, body) = match authenticate(&state, &parts, body, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > state.max_body_bytes
    {
        return closing(error_response(&DavError::new(
            413,
            "request body too large",
        )));
    }
    let body = match to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return closing(error_response(&DavError::new(
                413,
                "request body too large",
            )));
        }
    };
    let dav = state.dav(&user);
    let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        && parts.method.as_str() != "PROPFIND"
        && parts.method.as_str() != "REPORT";
    // Boxed: the protocol's future (every method's state in one, some 16 KiB) would otherwise
    // sit inside this one, which axum's and tower's layers move by value several times per
    // request before it first runs.
    let resp = Box::pin(caldav::handle(
        &dav,
        DavRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            headers: parts.headers,
            body,
        },
    ))
    .await;
    if writes && resp.status.is_success() {
        // The sharing worker reads the change log; this only saves it waiting for its tick.
        state.sharing.kick();
    }
    into_axum(resp)
}

/// GET of a published feed: no credentials, the secret URL is the credential. Unknown and
/// revoked tokens look the same (404).
async fn feed_get(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "feeds are read-only\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let token = token.strip_suffix(".ics").unwrap_or(&token);
    let (detail, cal) = match feed::open(&state.store, token).await {
        Ok(Some((f, cal))) => (f.detail, cal),
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such feed\n"),
        Err(e) => {
            tracing::error!(error = %e, "feed lookup failed");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        }
    };
    let etag = feed::etag(&cal);
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if inm.is_some_and(|v| crate::dav::EtagMatch::parse(v).matches(Some(&etag))) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return r;
    }
    let body = match feed::render(&state.store, &cal, Some((&state.dav.privacy, detail))).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "feed rendering failed");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        }
    };
    let mut r = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body.clone()))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    // Subscribers poll; a short private cache lifetime plus the ETag keeps that cheap.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

#[derive(serde::Deserialize)]
struct NewFeed {
    /// The calendar's name in the user's home (`calendar`, or one they made).
    calendar: String,
    #[serde(default)]
    label: Option<String>,
    /// `full` (the default), `time-and-summary` (or `titles`) or `busy`.
    #[serde(default)]
    detail: Option<String>,
}

/// `GET /api/feeds` lists the user's feeds; `POST` publishes a calendar and returns the URL
/// (the only time the token is shown).
async fn api_feeds(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = &state.store;
    let failed = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "feed API store error");
        json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
    };
    match parts.method {
        Method::GET => {
            let feeds = match store.feeds_of(user.id).await {
                Ok(f) => f,
                Err(e) => return failed(e),
            };
            let mut out = vec![];
            for f in feeds {
                let cal = match store.resource(f.calendar).await {
                    Ok(c) => c.map(|c| c.name),
                    Err(e) => return failed(e),
                };
                out.push(serde_json::json!({
                    "id": f.id,
                    "label": f.label,
                    "calendar": cal,
                    "created_at": f.created_at,
                    "last_used_at": f.last_used_at,
                    "detail": f.detail.as_str(),
                }));
            }
            json(StatusCode::OK, &serde_json::Value::Array(out))
        }
        Method::POST => {
            let bytes = match to_bytes(body, 64 * 1024).await {
                Ok(b) => b,
                Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            };
            let new: NewFeed = match serde_json::from_slice(&bytes) {
                Ok(n) => n,
                Err(e) => {
                    return json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}"));
                }
            };
            let label = new.label.unwrap_or_else(|| new.calendar.clone());
            if label.chars().count() > 200 {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "label is longer than 200 characters",
                );
            }
            let cal = match store
                .lookup_path(user.id, std::slice::from_ref(&new.calendar))
                .await
            {
                Ok(mut chain) if chain.len() == 2 => chain.remove(1),
                Ok(_) => return json_error(StatusCode::NOT_FOUND, "no such calendar"),
                Err(e) => return failed(e),
            };
            if cal.kind != ResourceKind::Calendar {
                return json_error(StatusCode::BAD_REQUEST, "only a calendar can be published");
            }
            let detail = match new
                .detail
                .as_deref()
                .map(crate::ical::privacy::Detail::parse)
            {
                None => crate::ical::privacy::Detail::Full,
                Some(Some(d)) => d,
                Some(None) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "detail is one of full, titles, busy",
                    );
                }
            };
            let (f, token) = match feed::create(store, &user, &cal, &label, detail).await {
                Ok(x) => x,
                Err(e) => return failed(e),
            };
            let path = feed::feed_path(&token);
            let url = public_base(&parts).map(|b| format!("{b}{path}"));
            json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "id": f.id,
                    "label": f.label,
                    "detail": f.detail.as_str(),
                    "calendar": cal.name,
                    "path": path,
                    "url": url,
                }),
            )
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
    }
}

/// The common front of `DELETE /api/.../{id}`: the user and the id, or the answer to send.
async fn delete_target(
    state: &AppState,
    id: &str,
    req: Request,
    what: &str,
) -> Result<(User, i64), Response> {
    let (parts, body) = req.into_parts();
    let (user, _) = authenticate(state, &parts, body, true).await?;
    if parts.method != Method::DELETE {
        return Err(json_error(StatusCode::METHOD_NOT_ALLOWED, "use DELETE"));
    }
    match id.parse::<i64>() {
        Ok(id) => Ok((user, id)),
        Err(_) => Err(json_error(
            StatusCode::NOT_FOUND,
            &format!("no such {what}"),
        )),
    }
}

/// The answer to a revocation: 204, or 404 when the user has no such thing.
fn revoked(result: crate::store::Result<bool>, what: &str) -> Response {
    match result {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_error(StatusCode::NOT_FOUND, &format!("no such {what}")),
        Err(e) => {
            tracing::error!(error = %e, what, "revocation failed");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

/// `DELETE /api/feeds/{id}` revokes one of the user's feeds at once.
async fn api_feed_delete(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    match delete_target(&state, &id, req, "feed").await {
        Ok((user, id)) => revoked(state.store.revoke_feed(user.id, id).await, "feed"),
        Err(r) => r,
    }
}

/// `POST /api/imip`: an iMIP REPLY (the `text/calendar` part of an answer that came by mail)
/// for one of the user's events, posted by whatever reads their mail.
async fn api_imip(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if parts.method != Method::POST {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let bytes = match to_bytes(body, state.dav.calendar.max_resource_size).await {
        Ok(b) => b,
        Err(_) => return closing(json_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large")),
    };
    let dav = state.dav(&user);
    match dav.calendars().incoming_imip(&bytes).await {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({ "applied": n })),
        Err(e) => {
            let e = crate::dav::DavError::from(e);
            json(
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                &serde_json::json!({ "error": e.message }),
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct NewAppPasswordBody {
    name: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    expires_days: Option<u32>,
}

/// `GET /api/app-passwords` lists the user's app passwords (never the passwords); `POST`
/// creates one and returns it, the only time it is shown. Needs the account password (or a
/// full-scope app password).
async fn api_app_passwords(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, body) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let failed = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "app password store error");
        json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
    };
    match parts.method {
        Method::GET => match state.store.app_passwords_of(user.id).await {
            Ok(list) => json(
                StatusCode::OK,
                &serde_json::Value::Array(
                    list.into_iter()
                        .map(|a| {
                            serde_json::json!({
                                "id": a.id,
                                "name": a.name,
                                "scope": a.scope,
                                "created_at": a.created_at,
                                "expires_at": a.expires_at,
                                "last_used_at": a.last_used_at,
                            })
                        })
                        .collect(),
                ),
            ),
            Err(e) => failed(e),
        },
        Method::POST => {
            let bytes = match to_bytes(body, 16 * 1024).await {
                Ok(b) => b,
                Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            };
            let new: NewAppPasswordBody = match serde_json::from_slice(&bytes) {
                Ok(n) => n,
                Err(e) => {
                    return json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}"));
                }
            };
            let Some(scope) = crate::auth::Scope::parse(new.scope.as_deref().unwrap_or("caldav"))
            else {
                return json_error(StatusCode::BAD_REQUEST, "scope must be caldav or all");
            };
            match crate::auth::app_password::create(
                &state.store,
                state.auth.key(),
                &user,
                &new.name,
                scope,
                new.expires_days,
                state.clock.now(),
            )
            .await
            {
                Ok((password, a)) => json(
                    StatusCode::CREATED,
                    &serde_json::json!({
                        "id": a.id,
                        "name": a.name,
                        "scope": a.scope,
                        "expires_at": a.expires_at,
                        "username": user.name,
                        "password": password,
                    }),
                ),
                Err(crate::auth::app_password::CreateError::Name) => json_error(
                    StatusCode::BAD_REQUEST,
                    "the name must be 1-100 characters, without control characters",
                ),
                Err(crate::auth::app_password::CreateError::Store(e)) => failed(e),
            }
        }
        _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
    }
}

/// `DELETE /api/app-passwords/{id}` revokes one at once.
async fn api_app_password_delete(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    match delete_target(&state, &id, req, "app password").await {
        Ok((user, id)) => revoked(
            state.store.revoke_app_password(user.id, id).await,
            "app password",
        ),
        Err(r) => r,
    }
}

/// `GET /api/apple-profile`: a `.mobileconfig` for macOS and iOS Calendar, holding a new
/// CalDAV-only app password named for the download (revocable like any other).
async fn api_apple_profile(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (user, _) = match authenticate(&state, &parts, body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if parts.method != Method::GET {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    apple_profile(&state, &parts, &user).await
}

/// A `.mobileconfig` for `user` with a new CalDAV-only app password in it.
async fn apple_profile(
    state: &AppState,
    parts: &axum::http::request::Parts,
    user: &User,
) -> Response {
    let Some((authority, tls)) = client_origin(parts) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a Host header is needed to build the profile",
        );
    };
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let (password, _) = match crate::auth::app_password::create(
        &state.store,
        state.auth.key(),
        user,
        "Apple profile",
        crate::auth::Scope::CalDav,
        None,
        state.clock.now(),
    )
    .await
    {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "app password for a profile failed");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    };
    let xml = mobileconfig::profile(
        &mobileconfig::Endpoint { host, port, tls },
        &user.name,
        &password,
        &caldav::principal_href(&user.name),
    );
    let mut r = Response::new(Body::from(xml));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-apple-aspen-config"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"convene.mobileconfig\""),
    );
    // It holds a password: never cached anywhere.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where the client reached us: the Host authority, and whether over HTTPS (`X-Forwarded-Proto`
/// from a TLS-terminating proxy). `None` without a valid Host.
fn client_origin(parts: &axum::http::request::Parts) -> Option<(axum::http::uri::Authority, bool)> {
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())?;
    let https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    Some((authority, https))
}

/// The server's base URL as the client sees it.
fn public_base(parts: &axum::http::request::Parts) -> Option<String> {
    let (authority, https) = client_origin(parts)?;
    Some(format!(
        "{}://{}",
        if https { "https" } else { "http" },
        authority
    ))
}

/// `POST /index.php/login/v2`: start a Login Flow v2 (no credentials: the person signs in on
/// the page it returns).
async fn login_flow_start(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if parts.method != Method::POST {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let Some(base) = public_base(&parts) else {
        return json_error(StatusCode::BAD_REQUEST, "a Host header is needed");
    };
    let client = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("a calendar client");
    let address = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(started) = state.flows.start(client, address) else {
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many logins in progress from this address",
        );
    };
    json(
        StatusCode::OK,
        &serde_json::json!({
            "poll": {
                "token": started.poll_token,
                "endpoint": format!("{base}/index.php/login/v2/poll"),
            },
            "login": format!("{base}/login/v2/flow/{}", started.id),
        }),
    )
}

/// A small `application/x-www-form-urlencoded` body, parsed; `None` if it is not one.
async fn read_form<T: serde::de::DeserializeOwned>(
    parts: axum::http::request::Parts,
    body: Body,
) -> Option<T> {
    use axum::extract::FromRequest as _;
    let req = Request::from_parts(parts, body);
    axum::extract::Form::<T>::from_request(req, &())
        .await
        .ok()
        .map(|axum::extract::Form(f)| f)
}

#[derive(serde::Deserialize)]
struct PollForm {
    token: String,
}

/// `POST /index.php/login/v2/poll`: 404 until the person has granted access, then the
/// server, the login name and the new app password, once.
async fn login_flow_poll(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let base = public_base(&parts);
    let form = read_form::<PollForm>(parts, body).await;
    let (Some(base), Some(f)) = (base, form) else {
        return json_error(StatusCode::BAD_REQUEST, "token is required");
    };
    match state.flows.poll(&f.token) {
        Some(g) => json(
            StatusCode::OK,
            &serde_json::json!({
                "server": base,
                "loginName": g.login_name,
                "appPassword": g.app_password,
            }),
        ),
        None => json_error(StatusCode::NOT_FOUND, "not granted (yet)"),
    }
}

/// A JSON request body of at most `max` bytes: 415 unless it says `application/json` (a form
/// posted cross-site cannot), 413 when larger. Parsing is the caller's, so a caller holding
/// secrets can word its own error without echoing the value.
async fn json_bytes(
    headers: &axum::http::HeaderMap,
    body: Body,
    max: usize,
) -> Result<axum::body::Bytes, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        ));
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| json_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"))
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title></head><body><main><h1>{t}</h1>{body}</main></body></html>\n",
        t = crate::dav::escape(title)
    );
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page is never framed (clickjacking) and loads nothing from elsewhere.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

#[cfg(test)]
mod future_size {
    /// The size of what `f` returns, without calling it.
    fn returned_size<F, A, B, R>(_: &F) -> usize
    where
        F: Fn(A, B) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// The CalDAV entry's future is moved by value through axum's and tower's layers several
    /// times per request before it first runs. Inline, the protocol's and the LDAP client's
    /// futures made it 16.8 KiB, and copying it was a tenth of the server's instructions under
    /// the benchmark. The large, rare parts are boxed; this keeps them so.
    #[test]
    fn dav_entry_future_stays_small() {
        let size = returned_size(&super::dav_entry);
        assert!(size <= 4096, "dav_entry's future is {size} bytes");
    }
}
