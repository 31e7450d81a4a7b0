//! Test harness: spawns the real `convene` binary on loopback with a fresh store per test,
//! on embedded SQLite or on a fresh PostgreSQL database, and talks HTTP to it.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};

pub const BIN: &str = env!("CARGO_BIN_EXE_convene");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Admin URL of the PostgreSQL server used for throwaway databases.
pub fn pg_admin_url() -> String {
    std::env::var("CONVENE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Create a fresh, uniquely named PostgreSQL database and return its URL.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let name = format!("convene_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect(
        "PostgreSQL must be reachable for the PostgreSQL half of the suite (CONVENE_TEST_PG_URL)",
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

pub fn free_port() -> u16 {
    // Below 32768: above it is the kernel's range for outgoing connections.
    for _ in 0..200 {
        let p = 20000 + (rand::random::<u16>() % 12000);
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free loopback port found");
}

/// The Python with the test peers from PyPI (the venv the test command builds).
pub fn python() -> String {
    std::env::var("CONVENE_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/convene-conformance/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// A sharing worker on `store` for in-process tests: no directory, the worker driven by hand
/// (`pass`), on the given clock.
pub fn sharing_worker(
    store: &convene::store::Store,
    clock: convene::clock::SharedClock,
) -> convene::share::Sharing {
    convene::share::Sharing::new(
        store.clone(),
        convene::org::OrgChart::local(store.clone(), clock.clone()),
        convene::share::SharingConfig {
            public_url: "http://127.0.0.1:1".into(),
            privacy: Default::default(),
            interval: Duration::from_secs(3600),
            index_horizon_days: 400,
            max_instances: 1000,
            home_defaults: convene::caldav::default_collections(),
            clock,
        },
    )
}

/// A file of `fixtures/hostile/` (inputs an attacker with an ordinary account sends).
pub fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hostile")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// How many members `user` sees in the collection at `path` (PROPFIND Depth 1).
pub async fn member_count(srv: &TestServer, user: &str, path: &str) -> usize {
    let r = srv
        .send(
            srv.req_as(user, &format!("{user}-password"), "PROPFIND", path)
                .header("Depth", "1")
                .body(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#),
        )
        .await;
    r.expect(207);
    responses(&r.xml()).len() - 1
}

pub struct TestServer {
    pub base: String,
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub db_args: Vec<String>,
    pub client: reqwest::Client,
    /// A configuration file passed with `--config`, when a test wrote one.
    pub config: Option<std::path::PathBuf>,
    /// `CONVENE_LOG` for the server (a test that checks the logs raises it).
    pub log_filter: String,
    /// Every line the server has logged.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Restart on this port (a test that registered the URL somewhere, as an OIDC redirect).
    pub fixed_port: Option<u16>,
    /// An address-space limit for the server process (RLIMIT_AS), for the tests that feed it
    /// memory bombs: past it an allocation fails and the process aborts, which the test sees.
    pub memory_cap: Option<u64>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_args = match backend {
            Backend::Sqlite => vec!["--data-dir".to_string(), dir.path().display().to_string()],
            // The data directory still holds the server key.
            Backend::Postgres => vec![
                "--database-url".to_string(),
                fresh_pg_database().await,
                "--data-dir".to_string(),
                dir.path().display().to_string(),
            ],
        };
        let mut srv = TestServer {
            base: String::new(),
            child: Command::new("true").spawn().expect("spawn"),
            dir,
            db_args,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            config: None,
            log_filter: "info,tower_http=warn".into(),
            log: Default::default(),
            fixed_port: None,
            memory_cap: None,
        };
        let _ = srv.child.wait();
        srv.cli_ok(
            &[
                "user",
                "add",
                "alice",
                "--password-stdin",
                "--email",
                "alice@example.org",
                "--display-name",
                "Alice A",
            ],
            "alice-password",
        );
        srv.cli_ok(
            &[
                "user",
                "add",
                "bob",
                "--password-stdin",
                "--email",
                "bob@example.org",
            ],
            "bob-password",
        );
        srv.spawn_server().await;
        srv
    }

    /// Start the server on a free loopback port. Readiness is the server's own "listening"
    /// log line, not a successful connect, so a port another test's server grabbed in between
    /// is detected (our server exits) and another port is tried.
    pub async fn spawn_server(&mut self) {
        for _attempt in 0..10 {
            let port = self.fixed_port.unwrap_or_else(free_port);
            let config: Vec<String> = match &self.config {
                Some(p) => vec!["--config".into(), p.display().to_string()],
                None => vec![],
            };
            let mut cmd = Command::new(BIN);
            if let Some(cap) = self.memory_cap {
                use std::os::unix::process::CommandExt;
                // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
                #[allow(unsafe_code)]
                unsafe {
                    cmd.pre_exec(move || {
                        let lim = libc::rlimit {
                            rlim_cur: cap,
                            rlim_max: cap,
                        };
                        if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let mut child = cmd
                .args(&self.db_args)
                .args(&config)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .env("CONVENE_LOG", &self.log_filter)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn convene");
            let stderr = child.stderr.take().expect("stderr");
            let (tx, rx) = std::sync::mpsc::channel::<bool>();
            let log = self.log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                let mut ready_sent = false;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.clone());
                    if !ready_sent && line.contains("convene listening") {
                        let _ = tx.send(true);
                        ready_sent = true;
                    } else if line.contains("WARN") || line.contains("ERROR") {
                        eprintln!("[convene] {line}");
                    }
                }
                let _ = tx.send(false);
            });
            self.child = child;
            self.base = format!("http://127.0.0.1:{port}");
            let ready = tokio::task::spawn_blocking(move || {
                rx.recv_timeout(Duration::from_secs(30)).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if ready {
                return;
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        panic!("convene did not start");
    }

    /// Another server process on the same store (several instances of one organisation).
    pub async fn another_instance(&self) -> TestServer {
        let mut s = TestServer {
            base: String::new(),
            child: Command::new("true").spawn().expect("spawn"),
            dir: tempfile::tempdir().expect("tempdir"),
            db_args: self.db_args.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
            log_filter: self.log_filter.clone(),
            log: Default::default(),
            fixed_port: None,
            memory_cap: None,
        };
        let _ = s.child.wait();
        s.spawn_server().await;
        s
    }

    /// Run a CLI command against this server's store; returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = Command::new(BIN)
            .args(&self.db_args)
            .args(args)
            .env("CONVENE_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn convene cli");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("cli output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Add local users NAME with password `NAME-password` and mail `NAME@example.org`.
    pub fn add_users(&self, names: &[&str]) {
        for name in names {
            let email = format!("{name}@example.org");
            self.cli_ok(
                &["user", "add", name, "--password-stdin", "--email", &email],
                &format!("{name}-password"),
            );
        }
    }

    pub fn cli_ok(&self, args: &[&str], stdin: &str) -> String {
        let (code, out, err) = self.cli(args, stdin);
        assert_eq!(code, 0, "convene {args:?} failed: {err}");
        out
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// A browser-like client: a cookie jar, and redirects left to the test.
    pub fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("client")
    }

    /// Everything the server logged so far, one line each.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.req_as("alice", "alice-password", method, path)
    }

    pub fn req_as(
        &self,
        user: &str,
        pw: &str,
        method: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                self.url(path),
            )
            .basic_auth(user, Some(pw))
    }

    /// A request as `user` (whose password is `USER-password`, as the tests create them).
    pub async fn send_as(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self
            .req_as(user, &format!("{user}-password"), method, path)
            .body(body.to_string());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb).await
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn propfind(&self, path: &str, depth: &str, body: &str) -> Resp {
        self.send(
            self.req("PROPFIND", path)
                .header("Depth", depth)
                .header("Content-Type", "application/xml")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn report(&self, path: &str, body: &str) -> Resp {
        self.send(
            self.req("REPORT", path)
                .header("Depth", "1")
                .header("Content-Type", "application/xml")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn put_ics(&self, path: &str, body: &str) -> Resp {
        self.send(
            self.req("PUT", path)
                .header("Content-Type", "text/calendar; charset=utf-8")
                .body(body.to_string()),
        )
        .await
    }

    /// Stop the server and start it again on the same store with this TOML configuration.
    pub async fn restart_with_config(&mut self, toml: &str) {
        let path = self.dir.path().join("convene.toml");
        std::fs::write(&path, toml).expect("write config");
        self.config = Some(path);
        assert!(self.terminate().success());
        self.spawn_server().await;
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        for _ in 0..500 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not stop after SIGTERM");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body with RFC 5545 folds undone, so a line can be searched whole.
    pub fn unfolded(&self) -> String {
        self.text().replace("\r\n ", "")
    }
    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn etag(&self) -> String {
        self.header("etag").expect("ETag header")
    }
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body:\n{}",
            self.text()
        );
        self
    }
    /// Parse as XML (must be well-formed) and return the tree.
    pub fn xml(&self) -> convene::dav::Element {
        convene::dav::xml::parse(&self.body, convene::dav::XmlLimits::default())
            .unwrap_or_else(|e| panic!("response is not well-formed XML ({e}):\n{}", self.text()))
    }
}

/// A minimal VEVENT calendar.
/// An `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first `<input name="NAME" value="...">` in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.split("value=\"").nth(1)?.split('"').next()?;
    Some(v.replace("&amp;", "&").replace("&#x2F;", "/"))
}

pub fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

pub fn todo(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene tests//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

/// Every `D:response` in a multistatus as (href, status-of-first-propstat-or-status, element).
pub fn responses(ms: &convene::dav::Element) -> Vec<(String, convene::dav::Element)> {
    ms.children_named("DAV:", "response")
        .map(|r| {
            let href = r
                .child("DAV:", "href")
                .map(|h| h.text.clone())
                .unwrap_or_default();
            (href, r.clone())
        })
        .collect()
}

/// Text of a property found with 200 in a response element.
pub fn prop_text(resp: &convene::dav::Element, ns: &str, local: &str) -> Option<String> {
    found_prop(resp, ns, local).map(|p| p.text.clone())
}

pub fn found_prop(
    resp: &convene::dav::Element,
    ns: &str,
    local: &str,
) -> Option<convene::dav::Element> {
    for ps in resp.children_named("DAV:", "propstat") {
        let ok = ps
            .child("DAV:", "status")
            .is_some_and(|s| s.text.contains(" 200 "));
        if !ok {
            continue;
        }
        if let Some(p) = ps.child("DAV:", "prop").and_then(|p| p.child(ns, local)) {
            return Some(p.clone());
        }
    }
    None
}

pub fn missing_prop(resp: &convene::dav::Element, ns: &str, local: &str) -> bool {
    resp.children_named("DAV:", "propstat").any(|ps| {
        ps.child("DAV:", "status")
            .is_some_and(|s| s.text.contains(" 404 "))
            && ps
                .child("DAV:", "prop")
                .and_then(|p| p.child(ns, local))
                .is_some()
    })
}

/// `copies_until` for a user the tests made (password `USER-password`).
pub async fn copies_of(
    srv: &TestServer,
    user: &str,
    owner: &str,
    what: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    copies_until(srv, user, &format!("{user}-password"), owner, what, done).await
}

/// The copies in `user`'s calendar of `owner`'s entries: (href, body), polled until `done`
/// holds (the worker runs right after the owner's write; bounded at 30 s, for a loaded
/// machine).
pub async fn copies_until(
    srv: &TestServer,
    user: &str,
    password: &str,
    owner: &str,
    what: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let path = format!("/dav/calendars/{user}/from~{owner}/");
    let mut last = vec![];
    for _ in 0..600 {
        let r = srv
            .send(
                srv.req_as(user, password, "REPORT", &path)
                    .header("Depth", "1")
                    .header("Content-Type", "application/xml")
                    .body(r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#),
            )
            .await;
        last = if r.status.as_u16() == 207 {
            responses(&r.xml())
                .into_iter()
                .map(|(href, resp)| {
                    let data = prop_text(&resp, "urn:ietf:params:xml:ns:caldav", "calendar-data")
                        .unwrap_or_default();
                    (href, data)
                })
                .collect()
        } else {
            vec![]
        };
        if done(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = srv.log_text();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    panic!(
        "{user} never saw {what}; last: {last:?}\nserver log, newest first:\n{}",
        tail.join("\n")
    );
}

/// Generate `#[tokio::test]` functions for both backends from one async body.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let srv = common::TestServer::start(common::Backend::Sqlite).await;
                $body(srv).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let srv = common::TestServer::start(common::Backend::Postgres).await;
                $body(srv).await;
            }
        }
    };
}
