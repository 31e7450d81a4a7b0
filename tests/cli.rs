//! The `convene` command line and server lifecycle: user management, clear errors with a
//! non-zero exit, first-start guidance, graceful shutdown.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let list = srv.cli_ok(&["user", "list"], "");
    assert!(list.contains("alice\talice@example.org\tAlice A"), "{list}");
    assert!(list.contains("bob"));

    // Bad input: clear message, non-zero exit.
    let (code, _, err) = srv.cli(&["user", "add", "alice", "--password-stdin"], "long enough");
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = srv.cli(&["user", "add", "a/b", "--password-stdin"], "long enough");
    assert_ne!(code, 0);
    assert!(err.contains("invalid user name"), "{err}");
    let (code, _, err) = srv.cli(&["user", "add", "carol", "--password-stdin"], "");
    assert_ne!(code, 0);
    assert!(err.contains("empty"), "{err}");
    // A password too short to be one (the first character is what a user often sets).
    let (code, _, err) = srv.cli(&["user", "add", "carol", "--password-stdin"], "a");
    assert_ne!(code, 0);
    assert!(err.contains("8 to 1024 characters"), "{err}");
    let (code, _, err) = srv.cli(&["user", "passwd", "alice", "--password-stdin"], "seven77");
    assert_ne!(code, 0);
    assert!(err.contains("8 to 1024 characters"), "{err}");
    let (code, _, err) = srv.cli(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--email",
            "not-an-address",
        ],
        "pw",
    );
    assert_ne!(code, 0);
    assert!(err.contains("email"), "{err}");
    let (code, _, _) = srv.cli(&["user", "add", "carol"], "pw");
    assert_ne!(code, 0, "--password-stdin is required");
    let (code, _, err) = srv.cli(
        &["user", "passwd", "nobody", "--password-stdin"],
        "long enough",
    );
    assert_ne!(code, 0);
    assert!(err.contains("no such user"), "{err}");

    // Password change takes effect at once (the verification cache misses on a new hash).
    srv.send(srv.req("PROPFIND", "/dav/").header("Depth", "0"))
        .await
        .expect(207);
    srv.cli_ok(
        &["user", "passwd", "alice", "--password-stdin"],
        "new-password\n",
    );
    srv.send(srv.req("PROPFIND", "/dav/").header("Depth", "0"))
        .await
        .expect(401);
    srv.send(
        srv.req_as("alice", "new-password", "PROPFIND", "/dav/")
            .header("Depth", "0"),
    )
    .await
    .expect(207);

    // Removal asks for --yes, then removes the user and their data.
    srv.send(
        srv.req_as(
            "bob",
            "bob-password",
            "PUT",
            "/dav/calendars/bob/calendar/x.ics",
        )
        .header("Content-Type", "text/calendar")
        .body(event("x", "bob's")),
    )
    .await
    .expect(201);
    let (code, _, err) = srv.cli(&["user", "remove", "bob"], "");
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");
    srv.cli_ok(&["user", "remove", "bob", "--yes"], "");
    assert!(!srv.cli_ok(&["user", "list"], "").contains("bob"));
    srv.send(srv.req_as(
        "bob",
        "bob-password",
        "GET",
        "/dav/calendars/bob/calendar/x.ics",
    ))
    .await
    .expect(401);
    // A new bob starts empty.
    srv.cli_ok(&["user", "add", "bob", "--password-stdin"], "second-bob");
    srv.send(srv.req_as(
        "bob",
        "second-bob",
        "GET",
        "/dav/calendars/bob/calendar/x.ics",
    ))
    .await
    .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("convene.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\nmax_resource_size = 1000\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    // A read-only command finds no store there and names the directory it looked in.
    let out = std::process::Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&dir.path().join("d").display().to_string()),
        "data_dir from the config file is used"
    );

    std::fs::write(&cfg, "no_such_option = 1\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_option"));

    let out = std::process::Command::new(BIN)
        .env("CONVENE_DATA_DIR", dir.path().join("e"))
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&dir.path().join("e").display().to_string()),
        "CONVENE_DATA_DIR is honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_guidance_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = std::process::Command::new(BIN)
        .env("CONVENE_DATA_DIR", dir.path())
        .env("CONVENE_LISTEN", format!("127.0.0.1:{port}"))
        .env("CONVENE_LOG", "info")
        .env("NO_COLOR", "1")
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut srv = TestServer {
        base: format!("http://127.0.0.1:{port}"),
        child,
        dir,
        db_args: vec![],
        client: reqwest::Client::new(),
        config: None,
        log_filter: "info".into(),
        log: Default::default(),
        fixed_port: None,
        memory_cap: None,
    };
    // A first start creates and migrates the store; on a loaded CI machine that can take a
    // while, so wait up to 30 s (bounded), and stop early if the server has exited.
    let mut up = false;
    for _ in 0..1500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        if let Ok(Some(st)) = srv.child.try_wait() {
            panic!("server exited before listening: {st:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(up, "server did not listen on CONVENE_LISTEN");
    assert!(
        srv.dir.path().join("convene.db").exists(),
        "store created on first start"
    );
    let status = srv.terminate();
    assert!(
        status.success(),
        "SIGTERM must end the server cleanly: {status:?}"
    );
    let mut err = String::new();
    use std::io::Read;
    srv.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("convene user add"),
        "first start explains how to add a user:\n{err}"
    );
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/")),
        "and the client URL:\n{err}"
    );
    assert!(err.contains("stopped cleanly"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_on_shutdown() {
    let mut srv = TestServer::start(Backend::Sqlite).await;
    // Start a large PUT, then ask the server to stop while it is in flight; the write must
    // complete and be readable after a restart.
    let big = {
        let mut s = String::from(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:big\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240101T100000Z\r\n",
        );
        for i in 0..20000 {
            s.push_str(&format!("X-FILL-{i}:{}\r\n", "y".repeat(40)));
        }
        s.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
        s
    };
    let req = srv
        .req("PUT", "/dav/calendars/alice/calendar/big.ics")
        .header("Content-Type", "text/calendar")
        .body(big.clone());
    let inflight = tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let status = srv.terminate();
    assert!(status.success());
    let put_status = inflight.await.unwrap();
    srv.spawn_server().await;
    let got = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/big.ics"))
        .await;
    match put_status {
        // Accepted before shutdown: it must be fully stored.
        Ok(201) => assert_eq!(got.body, big.as_bytes()),
        // Refused because the listener had closed: nothing half-written.
        _ => assert!(got.status.as_u16() == 404 || got.body == big.as_bytes()),
    }
}

/// A command's error is said once, on standard error, not also as a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_error_is_said_once() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let (code, _out, err) = srv.cli(&["user", "remove", "nobody", "--yes"], "");
    assert_ne!(code, 0);
    assert_eq!(err.matches("no such user").count(), 1, "{err}");
}

/// A server that cannot listen says on which address: the port is taken by another listener.
#[test]
fn a_taken_address_is_named() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .env("CONVENE_DATA_DIR", dir.path())
        .env("CONVENE_LISTEN", addr.to_string())
        .env("NO_COLOR", "1")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")),
        "the error does not name the address: {err}"
    );
}

/// A data directory that cannot be made is named: its parent is a plain file. (A database
/// URL is shown without its password: `app::shown_url`'s unit test.)
#[test]
fn an_unusable_data_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let data = file.join("data");
    let out = std::process::Command::new(BIN)
        .env("CONVENE_DATA_DIR", &data)
        .env("NO_COLOR", "1")
        .args(["user", "add", "x", "--password-stdin"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot use {}", data.display())),
        "the error does not name the directory: {err}"
    );
}

/// A command that only reads, run where there is no store, says where it looked and leaves
/// nothing behind (it used to create an empty store and list nobody).
#[test]
fn a_read_only_command_does_not_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("elsewhere");
    let out = std::process::Command::new(BIN)
        .env("CONVENE_DATA_DIR", &data)
        .env("NO_COLOR", "1")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("no Convene data in {}", data.display())),
        "{err}"
    );
    assert!(!data.join("convene.db").exists(), "an empty store was made");
}
