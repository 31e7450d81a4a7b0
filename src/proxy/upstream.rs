//! The login proxy's connections to business systems: HTTP/1.1 over TCP, or over TLS for an
//! `https` origin, kept alive per origin and driven by the request that uses them.
//!
//! No connection has a task of its own. The request that checks a connection out polls it
//! while its request goes out and its answer's head comes back, and the answer's body
//! (`Relayed`) polls it while the body streams to the person, from the task that serves the
//! person's connection. A proxied exchange so stays on one thread with no hand-off between
//! tasks, as an event-loop proxy does (ADR 0010: the hand-offs were most of what the proxy
//! added to a small page). A connection goes back to its origin's idle list only once its
//! answer was read to the end.
//!
//! Must never: reuse a connection before its last answer was read to the end, or one its
//! system closed; keep more than `MAX_IDLE` idle connections an origin, or one idle longer
//! than `IDLE`; resend a request that may have reached the system, except a GET or HEAD
//! without a body.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, Response, Uri, header};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use tokio::net::TcpStream;

use super::tls::Stream;

/// Idle connections kept an origin at most.
const MAX_IDLE: usize = 64;
/// How long an idle connection is kept (below the keep-alive timeout of common servers, so
/// that the system rarely closes one as it is reused).
const IDLE: Duration = Duration::from_secs(30);

/// Why a request got no answer from its system.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the system's address is not an http(s) origin")]
    Address,
    #[error("connecting to the system: {0}")]
    Connect(io::Error),
    #[error("connecting to the system took too long")]
    ConnectTimeout,
    #[error("TLS with the system: {0}")]
    Tls(io::Error),
    #[error("HTTP with the system: {0}")]
    Http(#[from] hyper::Error),
}

/// A connection's driver: the future that reads and writes its socket.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// The waker a connection's parts are polled with. Its request channel, answer channel and
/// body channel all end in the task that polls them, so hyper's signals between them would
/// wake that very task while it runs: tokio then reschedules it as a yield and wakes the
/// other worker thread for it (a futex wake and a migration per exchange, half of the
/// process's wake-ups before this filter). Wakes that arrive while the task is polling the
/// connection are noted instead and answered by polling again at once; any other wake goes
/// to the task.
#[derive(Default)]
struct SelfWakes {
    task: futures_util::task::AtomicWaker,
    polling: AtomicBool,
    woken: AtomicBool,
}

impl std::task::Wake for SelfWakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// Rounds of polling again for wakes from within (each round makes progress on a channel;
/// past this the task is woken and polled later).
const SELF_WAKE_ROUNDS: usize = 8;

/// One HTTP/1.1 connection to a system.
struct Conn {
    sender: http1::SendRequest<Body>,
    /// `None` once the connection has ended (closed, failed, or handed to an upgrade).
    driver: Option<Driver>,
    idle_since: Instant,
    wakes: Arc<SelfWakes>,
}

/// Poll `f` with the connection's filtering waker (`SelfWakes`), again at once while wakes
/// came from within.
fn filtered<T>(
    wakes: &Arc<SelfWakes>,
    cx: &mut Context<'_>,
    mut f: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    wakes.task.register(cx.waker());
    let waker = std::task::Waker::from(wakes.clone());
    let mut inner = Context::from_waker(&waker);
    for _ in 0..SELF_WAKE_ROUNDS {
        wakes.woken.store(false, Ordering::SeqCst);
        wakes.polling.store(true, Ordering::SeqCst);
        let r = f(&mut inner);
        wakes.polling.store(false, Ordering::SeqCst);
        if r.is_ready() {
            return r;
        }
        if !wakes.woken.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl Conn {
    /// Let the connection read and write what it can; whether it is still open.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(d) = self.driver.as_mut() else {
            return false;
        };
        if d.as_mut().poll(cx).is_ready() {
            self.driver = None;
            return false;
        }
        true
    }

    /// Whether the connection can carry a request now: still open, its last exchange done.
    fn poll_usable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }
}

/// The idle connections, by origin, and when the lists were last swept whole.
struct Idle {
    by_origin: HashMap<String, Vec<Conn>>,
    swept: Instant,
}

/// The connections to every system's origin.
pub struct Upstreams {
    idle: Mutex<Idle>,
    /// How long an idle connection is kept (`IDLE`).
    idle_for: Duration,
    connect_timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

/// The parts of an origin a connection needs.
struct Target<'o> {
    tls: bool,
    host: &'o str,
    port: u16,
}

fn target(origin: &str) -> Result<Target<'_>, UpstreamError> {
    let (tls, rest) = if let Some(r) = origin.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = origin.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(UpstreamError::Address);
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) =
        super::host_port(authority, if tls { 443 } else { 80 }).ok_or(UpstreamError::Address)?;
    Ok(Target { tls, host, port })
}

/// An answer's body, still coming from the system: polling it drives the connection, which
/// goes back to its origin's idle list once the body has been read to the end.
pub struct Relayed {
    body: Incoming,
    conn: Option<Conn>,
    ended: bool,
    home: Option<(Arc<Upstreams>, String)>,
}

impl HttpBody for Relayed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(wakes) = this.conn.as_ref().map(|c| c.wakes.clone()) else {
            // The connection has ended: what it delivered is all there is.
            return match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    this.ended = true;
                    Poll::Ready(None)
                }
                other => other,
            };
        };
        // The body, then the connection (which may put the next frame in the body), then the
        // body again: both wakers stay registered when neither is ready.
        filtered(&wakes, cx, |cx| {
            for _ in 0..2 {
                match Pin::new(&mut this.body).poll_frame(cx) {
                    Poll::Ready(None) => {
                        this.ended = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(frame)) => return Poll::Ready(Some(frame)),
                    Poll::Pending => {}
                }
                let Some(conn) = this.conn.as_mut() else {
                    return Poll::Pending;
                };
                if !conn.drive(cx) {
                    // Closed (or failed): the body ends or errs on its next poll.
                    this.conn = None;
                }
            }
            Poll::Pending
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        if !self.is_end_stream() {
            // Dropped before the end (the person went away): the connection is mid-answer.
            return;
        }
        if let (Some(conn), Some((pool, origin))) = (self.conn.take(), self.home.take()) {
            pool.checkin(origin, conn);
        }
    }
}

impl Upstreams {
    pub fn new(connect_timeout: Duration, tls: tokio_rustls::TlsConnector) -> Upstreams {
        Upstreams {
            idle: Mutex::new(Idle {
                by_origin: HashMap::new(),
                swept: Instant::now(),
            }),
            idle_for: IDLE,
            connect_timeout,
            tls,
        }
    }

    /// Send `req` (origin-form URI, `Host` set here) to `origin` and return the answer, its
    /// body streaming from the system.
    pub async fn send(
        self: &Arc<Self>,
        origin: &str,
        req: Request<Body>,
    ) -> Result<Response<Relayed>, UpstreamError> {
        let t = target(origin)?;
        let (mut parts, body) = req.into_parts();
        if let Ok(v) = header::HeaderValue::from_str(origin_authority(origin)) {
            parts.headers.insert(header::HOST, v);
        }
        let Some(mut conn) = self.checkout(origin).await else {
            let mut conn = self.connect(&t).await?;
            let req = Request::from_parts(parts, body);
            let resp = exchange(&mut conn, req).await.map_err(|e| e.into_error())?;
            return Ok(self.relay(origin, conn, resp));
        };
        // A kept-alive connection may turn out to have been closed as it is used: a GET or
        // HEAD without a body is then sent again on a fresh one (its head kept for that).
        let resendable = matches!(parts.method, Method::GET | Method::HEAD)
            && !parts.headers.contains_key(header::CONTENT_LENGTH)
            && !parts.headers.contains_key(header::TRANSFER_ENCODING);
        let again = resendable.then(|| {
            let mut r = Request::new(());
            *r.method_mut() = parts.method.clone();
            *r.uri_mut() = parts.uri.clone();
            *r.headers_mut() = parts.headers.clone();
            r
        });
        let req = Request::from_parts(parts, body);
        match exchange(&mut conn, req).await {
            Ok(resp) => Ok(self.relay(origin, conn, resp)),
            Err(mut e) => {
                let retry = match (e.take_message(), again) {
                    (Some(req), _) => req,
                    (None, Some(parts)) if e.error().is_incomplete_message() => {
                        let (p, ()) = parts.into_parts();
                        Request::from_parts(p, Body::empty())
                    }
                    _ => return Err(UpstreamError::Http(e.into_error())),
                };
                let mut conn = self.connect(&t).await?;
                let resp = exchange(&mut conn, retry)
                    .await
                    .map_err(|e| e.into_error())?;
                Ok(self.relay(origin, conn, resp))
            }
        }
    }

    fn relay(
        self: &Arc<Self>,
        origin: &str,
        conn: Conn,
        resp: Response<Incoming>,
    ) -> Response<Relayed> {
        resp.map(|body| Relayed {
            body,
            conn: Some(conn),
            ended: false,
            home: Some((self.clone(), origin.to_string())),
        })
    }

    /// An idle connection to `origin` that can carry a request now, if there is one.
    async fn checkout(&self, origin: &str) -> Option<Conn> {
        loop {
            let conn = {
                let mut idle = self.idle.lock().ok()?;
                let list = idle.by_origin.get_mut(origin)?;
                list.pop()?
            };
            if conn.idle_since.elapsed() >= self.idle_for {
                continue;
            }
            let mut conn = conn;
            let wakes = conn.wakes.clone();
            let usable = std::future::poll_fn(|cx| {
                let usable = filtered(&wakes, cx, |cx| Poll::Ready(conn.poll_usable(cx)));
                Poll::Ready(matches!(usable, Poll::Ready(true)))
            })
            .await;
            if usable {
                return Some(conn);
            }
        }
    }

    fn checkin(&self, origin: String, mut conn: Conn) {
        if conn.driver.is_none() || conn.sender.is_closed() {
            return;
        }
        // One reading of the clock for the whole sweep (a list holds up to `MAX_IDLE`).
        let now = Instant::now();
        conn.idle_since = now;
        let idle_for = self.idle_for;
        let fresh = |c: &Conn| {
            now.saturating_duration_since(c.idle_since) < idle_for && !c.sender.is_closed()
        };
        if let Ok(mut idle) = self.idle.lock() {
            // Once an idle period, every list: the connections of a system no longer
            // registered (or no longer used) are closed too.
            if now.saturating_duration_since(idle.swept) >= idle_for {
                idle.by_origin.retain(|_, list| {
                    list.retain(fresh);
                    !list.is_empty()
                });
                idle.swept = now;
            }
            let list = idle.by_origin.entry(origin).or_default();
            list.retain(fresh);
            if list.len() < MAX_IDLE {
                list.push(conn);
            }
        }
    }

    async fn connect(&self, t: &Target<'_>) -> Result<Conn, UpstreamError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((t.host, t.port)))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let stream = if t.tls {
            let tls = tokio::time::timeout(
                self.connect_timeout,
                super::tls::wrap(&self.tls, t.host, tcp),
            )
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Tls)?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(conn.with_upgrades())),
            idle_since: Instant::now(),
            wakes: Arc::default(),
        })
    }
}

/// `host[:port]` of an origin (`scheme://host[:port]`).
fn origin_authority(origin: &str) -> &str {
    let rest = origin.split_once("://").map(|(_, r)| r).unwrap_or(origin);
    rest.split('/').next().unwrap_or(rest)
}

/// Send `req` on `conn`, driving the connection until the answer's head is in.
async fn exchange(
    conn: &mut Conn,
    req: Request<Body>,
) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>> {
    let wakes = conn.wakes.clone();
    let mut req = Some(req);
    let mut answer = None;
    std::future::poll_fn(|cx| {
        filtered(&wakes, cx, |cx| {
            // Sent from within the filter: the channel's wake of the driver is one of ours.
            if let Some(req) = req.take() {
                answer = Some(Box::pin(conn.sender.try_send_request(req)));
            }
            // Once the connection has ended, the answer resolves with its error (or, for an
            // upgrade, it is already in).
            conn.drive(cx);
            match answer.as_mut() {
                Some(a) => a.as_mut().poll(cx),
                None => Poll::Pending,
            }
        })
    })
    .await
}

/// The origin-form of a request's target (`/path?query`).
pub fn origin_form(uri: &Uri) -> &str {
    uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
}

/// The system switched protocols: the upgraded connection once its driver hands it over.
pub async fn upgraded(resp: &mut Response<Relayed>) -> Option<hyper::upgrade::Upgraded> {
    let on = hyper::upgrade::on(&mut *resp);
    // The driver gives the socket to the upgrade when it sees the 101 through (it may have
    // done so already, while the answer's head came in).
    let mut conn = resp.body_mut().conn.take()?;
    resp.body_mut().home = None;
    let (up, ()) = tokio::join!(
        on,
        std::future::poll_fn(|cx| if conn.drive(cx) {
            Poll::Pending
        } else {
            Poll::Ready(())
        })
    );
    up.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A raw HTTP/1.1 server on loopback answering `ok` to every request; with `close`, it
    /// closes each connection after its first answer (keep-alive announced all the same).
    /// Counts the connections it accepted.
    async fn raw_server(close: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut have = 0;
                    for _ in 0..100 {
                        let Ok(n) = s.read(&mut buf[have..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        have += n;
                        if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                            have = 0;
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if s.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (origin, accepted)
    }

    fn upstreams() -> Arc<Upstreams> {
        let tls = crate::proxy::tls::connector(&[]).expect("tls");
        Arc::new(Upstreams::new(Duration::from_secs(5), tls))
    }

    async fn get(u: &Arc<Upstreams>, origin: &str) -> String {
        let req = Request::builder()
            .uri("/page")
            .body(Body::empty())
            .expect("request");
        let resp = u.send(origin, req).await.expect("answer");
        assert_eq!(resp.status(), 200);
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 1024)
            .await
            .expect("body");
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_answer_was_read() {
        let (origin, accepted) = raw_server(false).await;
        let u = upstreams();
        for _ in 0..3 {
            assert_eq!(get(&u, &origin).await, "ok");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one kept-alive connection"
        );
        // An answer dropped before its end takes its connection with it.
        let req = Request::builder()
            .uri("/")
            .body(Body::empty())
            .expect("req");
        drop(u.send(&origin, req).await.expect("answer"));
        assert_eq!(get(&u, &origin).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_system_closed_is_not_reused() {
        let (origin, accepted) = raw_server(true).await;
        let u = upstreams();
        for i in 1..=3 {
            assert_eq!(get(&u, &origin).await, "ok");
            // Let the system's close arrive before the next request.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test]
    async fn idle_connections_of_an_origin_no_longer_used_are_closed() {
        // The system whose connection must be closed: it tells when its socket sees the end.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gone = format!("http://{}", listener.local_addr().expect("addr"));
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            let _ = closed_tx.send(matches!(n, Ok(Ok(0))));
        });
        let (other, _) = raw_server(false).await;
        let tls = crate::proxy::tls::connector(&[]).expect("tls");
        let mut u = Upstreams::new(Duration::from_secs(5), tls);
        u.idle_for = Duration::from_millis(50);
        let u = Arc::new(u);
        assert_eq!(get(&u, &gone).await, "ok");
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Traffic to another origin sweeps every list.
        assert_eq!(get(&u, &other).await, "ok");
        assert!(
            closed_rx.await.expect("answer"),
            "the unused connection is closed"
        );
    }

    /// A task's waker that counts its wakes.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl std::task::Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_from_within_are_polled_again_and_others_reach_the_task() {
        let task = Arc::new(Counted::default());
        let waker = std::task::Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let wakes = Arc::new(SelfWakes::default());
        // Woken from within its own poll: polled again at once, the task never woken.
        let mut polls = 0;
        let r = filtered(&wakes, &mut cx, |cx| {
            polls += 1;
            if polls == 1 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        assert!(r.is_ready());
        assert_eq!((polls, task.0.load(Ordering::SeqCst)), (2, 0));
        // A wake after the poll (the socket became readable) reaches the task.
        let mut kept = None;
        let r: Poll<()> = filtered(&wakes, &mut cx, |cx| {
            kept = Some(cx.waker().clone());
            Poll::Pending
        });
        assert!(r.is_pending());
        kept.expect("registered").wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        // Something that wakes itself forever gets a bounded number of rounds, then the
        // task is woken to come back later.
        let mut rounds = 0;
        let r: Poll<()> = filtered(&wakes, &mut cx, |cx| {
            rounds += 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        assert!(r.is_pending());
        assert_eq!(rounds, SELF_WAKE_ROUNDS);
        assert_eq!(task.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let req = Request::builder()
            .uri("/")
            .body(Body::empty())
            .expect("req");
        assert!(matches!(
            upstreams().send(&origin, req).await,
            Err(UpstreamError::Connect(_))
        ));
    }

    #[test]
    fn targets_of_origins() {
        let t = target("http://127.0.0.1:8080").expect("v4");
        assert_eq!((t.tls, t.host, t.port), (false, "127.0.0.1", 8080));
        let t = target("https://hr.example.org").expect("default port");
        assert_eq!((t.tls, t.host, t.port), (true, "hr.example.org", 443));
        let t = target("http://[::1]:9000").expect("v6");
        assert_eq!((t.host, t.port), ("::1", 9000));
        let t = target("https://[::1]").expect("v6 default");
        assert_eq!((t.host, t.port), ("::1", 443));
        assert!(target("ftp://x").is_err());
        assert!(target("http://x:port").is_err());
        assert!(target("http://").is_err());
        assert!(target("http://[::1]x").is_err());
        assert_eq!(origin_authority("http://[::1]:9000"), "[::1]:9000");
    }
}
