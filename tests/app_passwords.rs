//! App passwords and login rate limits through real HTTP on both backends: create (shown
//! once), use from a CalDAV client with the user name, list without secrets, scope, expiry,
//! revocation, storage as a keyed hash only, 429 after repeated failures, and no secret in
//! the server's logs (captured at debug level) over the whole flow.

mod common;

use common::{Resp, TestServer};

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

async fn with_password(srv: &TestServer, user: &str, pw: &str, method: &str, path: &str) -> Resp {
    srv.send(srv.req_as(user, pw, method, path).header("Depth", "0"))
        .await
}

async fn create(srv: &TestServer, body: &str) -> Resp {
    srv.send(
        srv.req("POST", "/api/app-passwords")
            .header("Content-Type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn app_passwords(mut srv: TestServer) {
    // Everything the server logs from here on is kept, at debug level.
    srv.log_filter = "debug".into();
    srv.terminate();
    srv.spawn_server().await;

    let r = create(&srv, r#"{"name":"Phone"}"#).await;
    r.expect(201);
    let created = json(&r);
    let phone = created["password"].as_str().expect("password").to_string();
    let phone_id = created["id"].as_i64().expect("id");
    assert!(phone.starts_with("cvp_") && phone.len() >= 40, "{phone}");
    assert_eq!(created["scope"], "caldav");
    assert_eq!(created["username"], "alice");

    // A CalDAV client uses it with the user name.
    with_password(&srv, "alice", &phone, "PROPFIND", "/dav/calendars/alice/")
        .await
        .expect(207);
    srv.send(
        srv.req_as(
            "alice",
            &phone,
            "PUT",
            "/dav/calendars/alice/calendar/p.ics",
        )
        .header("Content-Type", "text/calendar")
        .body(common::event("p", "From the phone")),
    )
    .await
    .expect(201);
    // Not with another user's name, and not for the account APIs (CalDAV scope).
    with_password(&srv, "bob", &phone, "PROPFIND", "/dav/calendars/bob/")
        .await
        .expect(401);
    let r = with_password(&srv, "alice", &phone, "GET", "/api/app-passwords").await;
    r.expect(403);
    assert!(r.text().contains("CalDAV only"));

    // Listed without the secret, with its last use.
    let list = json(&srv.send(srv.req("GET", "/api/app-passwords")).await);
    assert_eq!(list[0]["name"], "Phone");
    assert!(list[0]["last_used_at"].is_i64());
    assert!(!list.to_string().contains(&phone));

    // A full-scope one may use the APIs; bad requests are refused with a message.
    let full = json(&create(&srv, r#"{"name":"Script","scope":"all"}"#).await)["password"]
        .as_str()
        .expect("password")
        .to_string();
    with_password(&srv, "alice", &full, "GET", "/api/app-passwords")
        .await
        .expect(200);
    create(&srv, r#"{"name":""}"#).await.expect(400);
    create(&srv, r#"{"name":"x","scope":"root"}"#)
        .await
        .expect(400);
    create(&srv, "not json").await.expect(400);

    // Stored only as a keyed hash.
    if srv.db_args[0] == "--data-dir" {
        for entry in std::fs::read_dir(srv.dir.path()).expect("data dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).unwrap_or_default();
            for secret in [&phone, &full] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "an app password is stored in clear"
                );
            }
        }
    }

    // Revoked: refused at once. Bob cannot revoke alice's.
    srv.send(srv.req_as(
        "bob",
        "bob-password",
        "DELETE",
        &format!("/api/app-passwords/{phone_id}"),
    ))
    .await
    .expect(404);
    srv.send(srv.req("DELETE", &format!("/api/app-passwords/{phone_id}")))
        .await
        .expect(204);
    with_password(&srv, "alice", &phone, "PROPFIND", "/dav/calendars/alice/")
        .await
        .expect(401);

    // The CLI makes them too; an expired one is refused.
    let out = srv.cli_ok(&["app-password", "add", "bob", "Laptop"], "");
    let laptop = out
        .split_whitespace()
        .find(|w| w.starts_with("cvp_"))
        .expect("password printed")
        .to_string();
    with_password(&srv, "bob", &laptop, "PROPFIND", "/dav/calendars/bob/")
        .await
        .expect(207);
    let out = srv.cli_ok(
        &["app-password", "add", "bob", "Old", "--expires-days", "0"],
        "",
    );
    let old = out
        .split_whitespace()
        .find(|w| w.starts_with("cvp_"))
        .expect("password printed")
        .to_string();
    with_password(&srv, "bob", &old, "PROPFIND", "/dav/calendars/bob/")
        .await
        .expect(401);
    let listed = srv.cli_ok(&["app-password", "list", "bob"], "");
    assert!(
        listed.contains("Laptop") && !listed.contains("cvp_"),
        "{listed}"
    );
    // Times are dates a person reads, not epoch seconds: the old one expired today.
    let old_line = listed
        .lines()
        .find(|l| l.contains("\tOld\t"))
        .expect("Old listed");
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    assert!(
        old_line.contains(&format!("expires {today} ")) && old_line.ends_with('Z'),
        "{old_line}"
    );

    // Brute force: after 10 distinct failures for a user name from one address (two happened
    // above), 429, even with the right password; other users are unaffected.
    let mut refused = 0;
    for attempt in 1..=10 {
        let r = with_password(
            &srv,
            "bob",
            &format!("wrong-guess-{attempt}"),
            "PROPFIND",
            "/dav/calendars/bob/",
        )
        .await;
        match r.status.as_u16() {
            401 => refused += 1,
            429 => {
                assert_eq!(attempt, 9, "limited after the wrong number of failures");
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 8);
    let r = with_password(
        &srv,
        "bob",
        "bob-password",
        "PROPFIND",
        "/dav/calendars/bob/",
    )
    .await;
    r.expect(429);
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0))
    );
    with_password(
        &srv,
        "alice",
        "alice-password",
        "PROPFIND",
        "/dav/calendars/alice/",
    )
    .await
    .expect(207);

    // The Apple profile carries a fresh CalDAV-only app password that works, never the
    // account password; a CalDAV-only password cannot fetch one.
    let r = srv.send(srv.req("GET", "/api/apple-profile")).await;
    r.expect(200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-apple-aspen-config")
    );
    let profile = r.text();
    assert!(
        profile.contains("<string>com.apple.caldav.account</string>"),
        "{profile}"
    );
    assert!(profile.contains("<key>CalDAVUsername</key><string>alice</string>"));
    assert!(profile.contains("<key>CalDAVHostName</key><string>127.0.0.1</string>"));
    let port = srv.base.rsplit(':').next().expect("port");
    assert!(profile.contains(&format!("<key>CalDAVPort</key><integer>{port}</integer>")));
    assert!(!profile.contains("alice-password"));
    let device = profile
        .split("<key>CalDAVPassword</key><string>")
        .nth(1)
        .and_then(|rest| rest.split("</string>").next())
        .expect("password in the profile")
        .to_string();
    with_password(&srv, "alice", &device, "PROPFIND", "/dav/calendars/alice/")
        .await
        .expect(207);
    with_password(&srv, "alice", &device, "GET", "/api/apple-profile")
        .await
        .expect(403);
    let list = json(&srv.send(srv.req("GET", "/api/app-passwords")).await);
    assert!(list.as_array().is_some_and(|l| {
        l.iter()
            .any(|a| a["name"] == "Apple profile" && a["scope"] == "caldav")
    }));

    // No secret reached the log.
    let log = srv.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    assert!(
        log.contains("authentication failed"),
        "the log was not captured"
    );
    for secret in [
        phone.as_str(),
        full.as_str(),
        laptop.as_str(),
        "alice-password",
        "bob-password",
        "wrong-guess",
    ] {
        assert!(!log.contains(secret), "a secret appears in the server log");
    }
}
both_backends!(app_passwords_and_login_limits, app_passwords);
