//! The HTTP edge: routing, body limits, authentication middleware and discovery redirects
//! (RFC 6764 5). Requests under `/dav` are handed to `caldav::handle` as plain data.
//!
//! Must never: log credentials (the `Authorization` header is marked sensitive), buffer a body
//! beyond the configured limit, or let a panic escape as anything but a 500.

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
use crate::store::Store;

/// What every request handler shares.
pub struct AppState {
    pub store: Store,
    pub auth: LocalAuthenticator,
    pub dav: DavSettings,
    pub max_body_bytes: usize,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/.well-known/caldav", any(well_known))
        .route("/.well-known/caldav/", any(well_known))
        .route("/dav", any(dav_entry))
        .route("/dav/", any(dav_entry))
        .route("/dav/{*path}", any(dav_entry))
        .route("/", any(index))
        .with_state(state)
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// RFC 6764 5: the well-known URI redirects to the context path.
async fn well_known() -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/dav/"));
    r
}

async fn index() -> Response {
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

async fn dav_entry(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method == Method::OPTIONS {
        // Clients probe capabilities before authenticating; the answer reveals nothing private.
        return into_axum(caldav::options());
    }
    let creds = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_basic_header);
    let Some(creds) = creds else {
        return refuse_unread(body, unauthorized()).await;
    };
    let user = match state.auth.authenticate(&creds).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            tracing::info!(user = %creds.username, "authentication failed");
            return refuse_unread(body, unauthorized()).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "authentication backend failed");
            return error_response(&DavError::new(503, "authentication backend unavailable"));
        }
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
    let dav = Dav {
        store: &state.store,
        settings: &state.dav,
        user: &user,
    };
    let resp = caldav::handle(
        &dav,
        DavRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            headers: parts.headers,
            body,
        },
    )
    .await;
    into_axum(resp)
}
