//! The login proxy: every registered system served on a host of its own
//! (`[bridge] apps_url`, such as `https://{system}.apps.example.org`), signed in as the person.
//!
//! - A person arrives from the portal with a one-time hand-off code
//!   (`/.convene/handoff?code=…`); the host redeems it once and sets its own host-only cookie,
//!   sealed, naming the portal session. Without that cookie a page request goes to the portal,
//!   which asks for a sign-in if needed and hands the session over again.
//! - Each request is checked against the store (the portal session still lives, the person
//!   may still use the system), stripped of whatever a client could use to claim an identity
//!   (`Authorization`, Convene's cookie, `Remote-User`, `X-Forwarded-*`, `Forwarded`,
//!   `X-Real-IP`, the system's identity headers), given the person's credential the way the
//!   system takes it (HTTP Basic from the vault, the identity header with its secret, or the
//!   cookies of a form login replayed at hand-off), and streamed both ways.
//! - Responses have `Location` and cookie scope rewritten to the system's host. A credential
//!   the system refuses marks the binding `needs-update` and is not sent again.
//! - A WebSocket upgrade the system accepts is joined through, byte for byte.
//!
//! Must never: send a credential to any origin but the system's, follow a redirect, pass a
//! client's identity headers or Convene's own cookie upstream, redirect to a place the request
//! chose outside the system's host, or buffer a whole body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;

use super::form;
use super::upstream::{Relayed, Upstreams, origin_form};
use crate::bridge::grants::{BasicCredential, Grants};
use crate::bridge::handoff::{Handoffs, HostSession, local_path};
use crate::bridge::systems::{AppHosts, LiveRegistry, LoginMethod, System};
use crate::bridge::{Credentials, LoginCheck, Refusal};
use crate::clock::SharedClock;
use crate::crypto::Secret;
use crate::store::{SessionStore as _, Store};

/// Convene's cookie on a system host (`__Host-` prefixed over HTTPS).
const HOST_COOKIE: &str = "convene_app";
/// Paths on a system host that Convene answers itself.
const HANDOFF_PATH: &str = "/.convene/handoff";

/// Request headers never passed upstream: hop-by-hop ones, and every header a client could
/// use to claim an identity or a route.
const STRIPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-real-ip",
    "remote-user",
    "x-remote-user",
    "x-convene-forward-secret",
];

/// Response headers not passed back: hop-by-hop ones.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The login proxy.
pub struct Gateway {
    store: Store,
    registry: Arc<LiveRegistry>,
    hosts: AppHosts,
    /// The portal's base URL (where people sign in and open systems).
    portal: String,
    handoffs: Arc<Handoffs>,
    vault: Option<Arc<Credentials>>,
    upstreams: Arc<Upstreams>,
    /// For the form logins replayed at hand-off.
    client: reqwest::Client,
    clock: SharedClock,
    /// By portal session and system, for `GRANT_SECONDS` (the portal session itself is
    /// checked at most a second ago: `bridge::handoff::RECHECK_SECONDS`).
    grants: Grants<(i64, String)>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("hosts", &self.hosts)
            .field("portal", &self.portal)
            .finish_non_exhaustive()
    }
}

/// What the gateway needs from the composition root.
pub struct GatewayParts {
    pub store: Store,
    pub registry: Arc<LiveRegistry>,
    pub hosts: AppHosts,
    pub portal: String,
    pub handoffs: Arc<Handoffs>,
    pub vault: Option<Arc<Credentials>>,
    pub clock: SharedClock,
}

/// Put the gateway in front of the portal's router: requests for a system host go to the
/// gateway, everything else to `web`.
pub fn front(gateway: Arc<Gateway>, web: Router) -> Router {
    web.layer(axum::middleware::from_fn_with_state(gateway, dispatch))
}

async fn dispatch(State(g): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let registry = g.registry.snapshot();
    match g.hosts.system_of_host(&registry, host) {
        Some(system) => g.serve(system, req).await,
        None => next.run(req).await,
    }
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{body}</p></body></html>"
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(html))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "storage unavailable",
    )
}

fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Minimal HTML escaping for the gateway's own pages.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Whether the client asks to switch protocols (`Connection: upgrade` with `Upgrade`).
fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The system switched protocols (a WebSocket): answer the client with the system's 101 and
/// join the two upgraded connections byte for byte until either side closes. The client's
/// side keeps its connection slot and idle timeout (`app::listener`), so an abandoned socket
/// is closed, and with it the system's.
fn switched(
    mut resp: axum::http::Response<Relayed>,
    client_side: hyper::upgrade::OnUpgrade,
) -> Response {
    let mut back = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    if let Some(h) = back.headers_mut() {
        for (name, value) in resp.headers() {
            if name.as_str().starts_with("sec-websocket-")
                || matches!(name.as_str(), "connection" | "upgrade")
            {
                h.append(name.clone(), value.clone());
            }
        }
    }
    tokio::spawn(async move {
        let (Ok(client), Some(system)) = (
            client_side.await,
            super::upstream::upgraded(&mut resp).await,
        ) else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut system = hyper_util::rt::TokioIo::new(system);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut system).await;
    });
    back.body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

impl Gateway {
    /// `client` (form logins) from `proxy::http_client`; `tls` for `https` systems.
    pub fn new(
        parts: GatewayParts,
        timeout: Duration,
        client: reqwest::Client,
        tls: tokio_rustls::TlsConnector,
    ) -> Gateway {
        Gateway {
            store: parts.store,
            registry: parts.registry,
            hosts: parts.hosts,
            portal: parts.portal.trim_end_matches('/').to_string(),
            handoffs: parts.handoffs,
            vault: parts.vault,
            upstreams: Arc::new(Upstreams::new(timeout, tls)),
            client,
            clock: parts.clock,
            grants: Grants::default(),
        }
    }

    fn cookie_name(&self) -> String {
        if self.hosts.secure() {
            format!("__Host-{HOST_COOKIE}")
        } else {
            HOST_COOKIE.to_string()
        }
    }

    fn host_cookie<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let want = self.cookie_name();
        crate::auth::request_cookie(headers, |k| k == want)
    }

    fn set_host_cookie(&self, value: &str) -> String {
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax{}",
            self.cookie_name(),
            if self.hosts.secure() { "; Secure" } else { "" }
        )
    }

    /// The portal page that opens `system` at `next` (after a sign-in if needed).
    fn to_portal(&self, system: &System, next: &str) -> Response {
        see_other(&format!(
            "{}/bridge/open/{}?next={}",
            self.portal,
            system.cfg.name,
            percent(next)
        ))
    }

    fn needs_update(&self, system: &System) -> Response {
        page(
            StatusCode::FORBIDDEN,
            &format!("{} refused your saved account", esc(&system.cfg.label)),
            &format!(
                "Convene will not try it again until you update it: <a href=\"{}/account/systems\">your systems</a>.",
                esc(&self.portal)
            ),
        )
    }

    async fn serve(&self, system: &System, req: Request) -> Response {
        let now = self.clock.now();
        if req.uri().path() == HANDOFF_PATH {
            if !matches!(*req.method(), Method::GET | Method::HEAD) {
                return page(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Use the link",
                    "The hand-off is a link from the portal.",
                );
            }
            let query = req.uri().query().unwrap_or("").to_string();
            return self.handoff(system, &query, now).await;
        }
        let Some(cookie) = self.host_cookie(req.headers()) else {
            return self.unsigned(system, &req);
        };
        let signed_in = match self
            .handoffs
            .host_session(&self.store, cookie, &system.cfg.name, now)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "login proxy: session lookup failed");
                return unavailable();
            }
        };
        let Some(who) = signed_in else {
            return self.unsigned(system, &req);
        };
        let grant = match self.grant(system, &who, now).await {
            Ok(g) => g,
            Err(r) => return r,
        };
        self.forward(system, &who, grant, req).await
    }

    /// No live session on this host: pages go by the portal, anything else is refused.
    fn unsigned(&self, system: &System, req: &Request) -> Response {
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            let next = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .and_then(local_path)
                .unwrap_or("/");
            return self.to_portal(system, next);
        }
        page(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Open this system from the portal.",
        )
    }

    /// Whether the person may use the system, and (Basic) the credential to send: from memory
    /// when checked within `GRANT_SECONDS`, else from the store and the vault (one check for
    /// the requests that missed together: one audit row, one vault read).
    async fn grant(
        &self,
        system: &System,
        who: &HostSession,
        now: i64,
    ) -> Result<(Option<BasicCredential>, i64), Response> {
        let key = (who.session.id, system.cfg.name.clone());
        let g = self
            .grants
            .get_or_check(&key, now, || async {
                let memberships = self.store.groups_of(who.user.id).await.map_err(|e| {
                    tracing::error!(error = %e, "login proxy: groups lookup failed");
                    unavailable()
                })?;
                let allowed = system.allows(&memberships);
                let basic = if allowed && system.cfg.login == LoginMethod::Basic {
                    Some(Arc::new(self.release(system, who, now).await?))
                } else {
                    None
                };
                Ok((allowed, basic))
            })
            .await?;
        if !g.allowed {
            return Err(self.not_yours(system));
        }
        Ok((g.basic, g.checked_at))
    }

    fn forget_grant(&self, session: i64, system: &str) {
        self.grants.forget(&(session, system.to_string()));
    }

    fn not_yours(&self, system: &System) -> Response {
        page(
            StatusCode::FORBIDDEN,
            &esc(&system.cfg.label),
            "You are not among the people who may use this system.",
        )
    }

    /// The person's vaulted credential for the system, released for a login (audited).
    async fn release(
        &self,
        system: &System,
        who: &HostSession,
        now: i64,
    ) -> Result<(Secret, Secret), Response> {
        let Some(vault) = &self.vault else {
            return Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "No vault",
                "This server keeps no credentials (no [vault] configured).",
            ));
        };
        match crate::bridge::release_for_login(vault, (who.user.id, &system.cfg.name), now).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(Refusal::NotBound)) => {
                Err(see_other(&format!("{}/account/systems", self.portal)))
            }
            Err(e) => {
                tracing::error!(error = %e, "login proxy: releasing a credential failed");
                Err(page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again",
                    "the vault is unavailable",
                ))
            }
        }
    }

    /// `/.convene/handoff?code=…`: redeem the portal's code once, sign in to the system when
    /// it takes a form login, and set this host's cookie.
    async fn handoff(&self, system: &System, query: &str, now: i64) -> Response {
        let code = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "code")
            .map(|(_, v)| v)
            .unwrap_or("");
        let handoff = match self
            .handoffs
            .redeem(&self.store, code, &system.cfg.name, now)
            .await
        {
            Ok(Some(h)) => h,
            Ok(None) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "This link has been used",
                    &format!(
                        "Open {} again <a href=\"{}/bridge/open/{}\">from the portal</a>.",
                        esc(&system.cfg.label),
                        esc(&self.portal),
                        system.cfg.name
                    ),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "login proxy: redeeming a hand-off failed");
                return unavailable();
            }
        };
        let who = match self.store.session_by_id(handoff.session, now).await {
            Ok(Some((session, user))) if !user.disabled => HostSession { session, user },
            Ok(_) => return self.to_portal(system, &handoff.next),
            Err(e) => {
                tracing::error!(error = %e, "login proxy: session lookup failed");
                return unavailable();
            }
        };
        // A fresh check of access and credentials for this session.
        self.forget_grant(who.session.id, &system.cfg.name);
        if let Err(r) = self.grant(system, &who, now).await {
            return r;
        }
        let mut resp = see_other(local_path(&handoff.next).unwrap_or("/"));
        let sealed = self.handoffs.host_cookie(who.session.id, &system.cfg.name);
        if let Ok(v) = HeaderValue::from_str(&self.set_host_cookie(&sealed)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        if system.cfg.login == LoginMethod::Form {
            let (user, password) = match self.release(system, &who, now).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            let user = String::from_utf8_lossy(user.expose()).into_owned();
            let signed = form::login(&self.client, system, &user, &password).await;
            match signed.check {
                LoginCheck::Accepted => {}
                LoginCheck::Refused => {
                    if let Some(vault) = &self.vault
                        && let Err(e) =
                            crate::bridge::refused(vault, (who.user.id, &system.cfg.name), now, now)
                                .await
                    {
                        tracing::error!(error = %e, "login proxy: recording a refusal failed");
                    }
                    return self.needs_update(system);
                }
                LoginCheck::Unreachable(why) => {
                    return page(
                        StatusCode::BAD_GATEWAY,
                        &esc(&system.cfg.label),
                        &format!("could not sign you in: {}", esc(&why)),
                    );
                }
            }
            for (name, value) in signed.jar.cookies() {
                if name == &self.cookie_name() {
                    continue;
                }
                let c = format!(
                    "{name}={value}; Path=/; SameSite=Lax{}",
                    if self.hosts.secure() { "; Secure" } else { "" }
                );
                if let Ok(v) = HeaderValue::from_str(&c) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
        }
        resp
    }

    /// Pass the request to the system, signed in as the person, and stream the answer back.
    async fn forward(
        &self,
        system: &System,
        who: &HostSession,
        (basic, released_at): (Option<BasicCredential>, i64),
        req: Request,
    ) -> Response {
        let (mut parts, body) = req.into_parts();
        // A WebSocket (or other) upgrade: the client's side, to be joined to the system's.
        let client_upgrade = wants_upgrade(&parts.headers)
            .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
            .flatten();
        let upstream_origin = system
            .origins
            .first()
            .cloned()
            .unwrap_or_else(|| system.cfg.url.clone());
        let own_origin = self.hosts.origin(&system.cfg.name);
        let path = origin_form(&parts.uri).to_string();
        let mut headers = HeaderMap::with_capacity(parts.headers.len() + 4);
        // The system's own identity headers (a header login's), whatever their case.
        let identity =
            |n: &str| {
                system.cfg.header.iter().any(|h| {
                    h.name.eq_ignore_ascii_case(n) || h.secret_header.eq_ignore_ascii_case(n)
                })
            };
        for (name, value) in &parts.headers {
            let n = name.as_str();
            if STRIPPED.contains(&n) || n.starts_with("x-convene-") || identity(n) {
                continue;
            }
            if matches!(n, "origin" | "referer")
                && let Ok(v) = value.to_str()
                && let Some(rest) = v.strip_prefix(&own_origin)
            {
                if let Ok(v) = HeaderValue::from_str(&format!("{upstream_origin}{rest}")) {
                    headers.append(name.clone(), v);
                }
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        // The browser's cookies for the system (set by it through this host), without Convene's.
        let own = self.cookie_name();
        let cookies: Vec<&str> = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(own.as_str()))
            .collect();
        if !cookies.is_empty()
            && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
        {
            headers.insert(header::COOKIE, v);
        }
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>()
            && let Ok(v) = HeaderValue::from_str(&peer.ip().to_string())
        {
            headers.insert("x-forwarded-for", v);
        }
        if let Ok(v) = HeaderValue::from_str(own_origin.split("://").next().unwrap_or("http")) {
            headers.insert("x-forwarded-proto", v);
        }
        if let Some(h) = parts.headers.get(header::HOST) {
            headers.insert("x-forwarded-host", h.clone());
        }
        match (&system.cfg.login, basic.as_deref(), &system.cfg.header) {
            (LoginMethod::Basic, Some((u, p)), _) => {
                let mut raw = Vec::with_capacity(u.expose().len() + p.expose().len() + 1);
                raw.extend_from_slice(u.expose());
                raw.push(b':');
                raw.extend_from_slice(p.expose());
                // Wiped when it goes.
                let raw = Secret::new(raw);
                let value = Secret::new(
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw.expose())
                    )
                    .into_bytes(),
                );
                if let Ok(mut v) = HeaderValue::from_bytes(value.expose()) {
                    v.set_sensitive(true);
                    headers.insert(header::AUTHORIZATION, v);
                }
            }
            (LoginMethod::Header, _, Some(h)) => {
                if let (Ok(n), Ok(v), Ok(sn), Ok(mut sv)) = (
                    HeaderName::try_from(h.name.as_str()),
                    HeaderValue::from_str(&who.user.name),
                    HeaderName::try_from(h.secret_header.as_str()),
                    HeaderValue::from_str(&h.secret),
                ) {
                    sv.set_sensitive(true);
                    headers.insert(n, v);
                    headers.insert(sn, sv);
                }
            }
            _ => {}
        }
        if client_upgrade.is_some()
            && let Some(proto) = parts.headers.get(header::UPGRADE)
        {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, proto.clone());
        }
        let has_body = parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let mut out = axum::http::Request::new(if has_body { body } else { Body::empty() });
        *out.method_mut() = parts.method.clone();
        *out.headers_mut() = headers;
        match path.parse() {
            Ok(uri) => *out.uri_mut() = uri,
            Err(_) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "That address is not one this host serves.",
                );
            }
        }
        let resp = match self.upstreams.send(&upstream_origin, out).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(system = %system.cfg.name, error = %e, "login proxy: the system could not be reached");
                return page(
                    StatusCode::BAD_GATEWAY,
                    &esc(&system.cfg.label),
                    "The system could not be reached.",
                );
            }
        };
        if system.cfg.login == LoginMethod::Basic && resp.status() == StatusCode::UNAUTHORIZED {
            self.forget_grant(who.session.id, &system.cfg.name);
            if let Some(vault) = &self.vault
                && let Err(e) = crate::bridge::refused(
                    vault,
                    (who.user.id, &system.cfg.name),
                    released_at,
                    self.clock.now(),
                )
                .await
            {
                tracing::error!(error = %e, "login proxy: recording a refusal failed");
            }
            return self.needs_update(system);
        }
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_side) = client_upgrade
        {
            return switched(resp, client_side);
        }
        let mut back = Response::builder().status(resp.status());
        if let Some(h) = back.headers_mut() {
            for (name, value) in resp.headers() {
                let n = name.as_str();
                if HOP_BY_HOP.contains(&n) || n == "www-authenticate" {
                    continue;
                }
                if n == "location" {
                    if let Ok(v) = value.to_str()
                        && let Some(rest) = system
                            .origins
                            .iter()
                            .find_map(|o| v.strip_prefix(o.as_str()))
                            .filter(|r| r.is_empty() || r.starts_with(['/', '?', '#']))
                        && let Ok(v) = HeaderValue::from_str(&format!("{own_origin}{rest}"))
                    {
                        h.append(name.clone(), v);
                    } else {
                        h.append(name.clone(), value.clone());
                    }
                    continue;
                }
                if n == "set-cookie" {
                    if let Some(v) = value.to_str().ok().and_then(|v| self.scoped_cookie(v)) {
                        h.append(name.clone(), v);
                    }
                    continue;
                }
                h.append(name.clone(), value.clone());
            }
        }
        back.body(Body::new(resp.into_body())).unwrap_or_else(|_| {
            page(
                StatusCode::BAD_GATEWAY,
                "Bad answer",
                "The system's answer could not be passed on.",
            )
        })
    }

    /// A system's `Set-Cookie`, scoped to its host here: no `Domain` (host-only), `Secure`
    /// only where the host speaks HTTPS, and never one that would shadow Convene's cookie.
    fn scoped_cookie(&self, v: &str) -> Option<HeaderValue> {
        let mut c = cookie::Cookie::parse(v.to_string()).ok()?;
        let bare = c
            .name()
            .trim_start_matches("__Host-")
            .trim_start_matches("__Secure-");
        if bare == HOST_COOKIE {
            return None;
        }
        c.unset_domain();
        if !self.hosts.secure() {
            c.set_secure(false);
            let name = c.name().to_string();
            if let Some(bare) = name
                .strip_prefix("__Host-")
                .or_else(|| name.strip_prefix("__Secure-"))
            {
                c.set_name(bare.to_string());
            }
        }
        HeaderValue::from_str(&c.to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::systems::{Registry, SystemConfig};
    use crate::clock::{Clock as _, ManualClock};
    use crate::store::{BindingState, BindingStore as _};

    /// Fifty requests that find no grant at once (a fresh sign-in, or a grant past its
    /// minute) release the credential once between them: one row in the person's audit, not
    /// fifty, and each request gets the credential.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_miss_the_grant_together_release_once() {
        let start = 1_800_000_000;
        let (_dir, store, ann, session) =
            crate::store::signed_in_store("ann", start + 86_400).await;
        let keys = crate::vault::Keyring::of(vec![("k1".into(), crate::crypto::Key::random())])
            .expect("keyring");
        let vault = Arc::new(Credentials::open(store.clone(), keys).await.expect("vault"));
        for (field, value) in [("username", "ann.files"), ("password", "files-pw")] {
            vault
                .put(ann.id, "files", field, value.as_bytes(), start)
                .await
                .expect("put");
        }
        store
            .set_binding(ann.id, "files", BindingState::Bound, start)
            .await
            .expect("bound");
        let cfg: SystemConfig = toml::from_str(
            "name = \"files\"\nlabel = \"Files\"\nurl = \"http://127.0.0.1:9/\"\nlogin = \"basic\"\n",
        )
        .expect("system");
        let registry = Registry::new(&[cfg]).expect("registry");
        let clock = ManualClock::at(start);
        let gateway = Arc::new(Gateway::new(
            GatewayParts {
                store: store.clone(),
                registry: Arc::new(LiveRegistry::new(registry)),
                hosts: AppHosts::parse("http://{system}.apps.localhost:9").expect("hosts"),
                portal: "http://127.0.0.1:9".into(),
                handoffs: Arc::new(Handoffs::new(&crate::auth::ServerKey::random())),
                vault: Some(vault),
                clock: Arc::new(clock.clone()),
            },
            Duration::from_secs(5),
            super::super::http_client(Duration::from_secs(5), &[]).expect("client"),
            super::super::tls::connector(&[]).expect("tls"),
        ));
        let who = Arc::new(HostSession {
            session,
            user: ann.clone(),
        });
        let releases = || async {
            store
                .releases(Some(ann.id), 1_000)
                .await
                .expect("audit")
                .iter()
                .filter(|a| a.system == "files" && a.purpose == "login")
                .count()
        };
        for minute in 0..2 {
            let now = clock.now();
            let mut burst = vec![];
            for _ in 0..50 {
                let (g, who) = (gateway.clone(), who.clone());
                burst.push(tokio::spawn(async move {
                    let registry = g.registry.snapshot();
                    let system = registry.get("files").expect("system");
                    match g.grant(system, &who, now).await {
                        Ok((Some(basic), _)) => basic.0.expose() == b"ann.files",
                        _ => false,
                    }
                }));
            }
            for t in burst {
                assert!(t.await.expect("task"), "each request has the credential");
            }
            assert_eq!(releases().await, minute + 1, "one release a grant");
            assert_eq!(gateway.grants.checking(), 0);
            // Past the grant's minute: the next burst checks again, once.
            clock.advance(crate::bridge::grants::GRANT_SECONDS);
        }
    }
}
