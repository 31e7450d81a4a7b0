//! ICS subscription feeds (secret URL, hashed token, conditional GET, revocation), and
//! whole-calendar import and export over HTTP and from the CLI, on SQLite and PostgreSQL.

mod common;

use common::{Resp, TestServer};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ical-corpus/original");

async fn api(srv: &TestServer, user: &str, method: &str, path: &str, body: Option<&str>) -> Resp {
    let mut rb = srv.req_as(user, &format!("{user}-password"), method, path);
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    srv.send(rb).await
}

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

async fn anonymous(srv: &TestServer, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut rb = srv.client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        srv.url(path),
    );
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    srv.send(rb).await
}

async fn feeds(srv: TestServer) {
    let zoned =
        std::fs::read_to_string(format!("{CORPUS}/04_rrule_overrides.ics")).expect("fixture");
    // Import over HTTP: one object per UID, overrides kept with their series.
    let r = srv
        .send(
            srv.req("POST", "/dav/calendars/alice/calendar/")
                .header("Content-Type", "text/calendar")
                .body(zoned.clone()),
        )
        .await;
    r.expect(200);
    let report = json(&r);
    assert_eq!(report["imported"], 3, "{report}");
    assert_eq!(report["skipped"].as_array().map(Vec::len), Some(0));
    // Importing again replaces, it does not duplicate.
    let r = srv
        .send(
            srv.req("POST", "/dav/calendars/alice/calendar/")
                .header("Content-Type", "text/calendar")
                .body(zoned.clone()),
        )
        .await;
    let report = json(&r);
    assert_eq!(
        (report["imported"].as_u64(), report["replaced"].as_u64()),
        (Some(0), Some(3))
    );
    // A file mixing component types: the event goes in, the rest are listed with a reason.
    let mixed = std::fs::read_to_string(format!("{CORPUS}/01_rfc5545.ics")).expect("fixture");
    let r = srv
        .send(
            srv.req("POST", "/dav/calendars/alice/calendar/")
                .header("Content-Type", "text/calendar")
                .body(mixed),
        )
        .await;
    let report = json(&r);
    assert_eq!(report["imported"], 1, "{report}");
    let skipped = report["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 3, "{report}");
    assert!(skipped.iter().any(|s| s["what"] == "uid4@example.com"
        && s["reason"].as_str().is_some_and(|r| r.contains("VTODO"))));
    // Garbage is refused and changes nothing.
    srv.send(
        srv.req("POST", "/dav/calendars/alice/calendar/")
            .header("Content-Type", "text/calendar")
            .body("not a calendar"),
    )
    .await
    .expect(403);

    // Export: the whole calendar, each VTIMEZONE once.
    let r = srv
        .send(
            srv.req("GET", "/dav/calendars/alice/calendar/")
                .header("Accept", "text/calendar"),
        )
        .await;
    r.expect(200);
    let export = r.text();
    assert_eq!(export.matches("BEGIN:VEVENT").count(), 5, "{export}");
    // Both files carry America/New_York: it is written once.
    assert_eq!(export.matches("BEGIN:VTIMEZONE").count(), 1, "{export}");
    assert!(export.contains("X-WR-CALNAME:Calendar\r\n"));
    // ... which imports into another user's calendar as the same objects.
    let r = srv
        .send(
            srv.req_as(
                "bob",
                "bob-password",
                "POST",
                "/dav/calendars/bob/calendar/",
            )
            .header("Content-Type", "text/calendar")
            .body(export.clone()),
        )
        .await;
    assert_eq!(json(&r)["imported"], 4);

    // --- Feeds. Publishing needs credentials and names a calendar of one's own.
    anonymous(&srv, "GET", "/api/feeds", &[]).await.expect(401);
    api(
        &srv,
        "alice",
        "POST",
        "/api/feeds",
        Some(r#"{"calendar":"nope"}"#),
    )
    .await
    .expect(404);
    api(
        &srv,
        "alice",
        "POST",
        "/api/feeds",
        Some(r#"{"calendar":"inbox"}"#),
    )
    .await
    .expect(400);
    api(&srv, "alice", "POST", "/api/feeds", Some("{not json"))
        .await
        .expect(400);
    let r = api(
        &srv,
        "alice",
        "POST",
        "/api/feeds",
        Some(r#"{"calendar":"calendar","label":"Outlook"}"#),
    )
    .await;
    r.expect(201);
    let created = json(&r);
    let path = created["path"].as_str().expect("path").to_string();
    let id = created["id"].as_i64().expect("id");
    assert!(
        path.starts_with("/feeds/cvf_") && path.ends_with(".ics"),
        "{path}"
    );
    let token = path
        .trim_start_matches("/feeds/")
        .trim_end_matches(".ics")
        .to_string();

    // Anyone with the URL reads the calendar, without credentials; polling is conditional.
    let r = anonymous(&srv, "GET", &path, &[]).await;
    r.expect(200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/calendar")
    );
    assert_eq!(r.text().matches("BEGIN:VEVENT").count(), 5);
    let etag = r.etag();
    anonymous(&srv, "GET", &path, &[("If-None-Match", &etag)])
        .await
        .expect(304);
    srv.put_ics(
        "/dav/calendars/alice/calendar/new.ics",
        &common::event("new", "Added later"),
    )
    .await
    .expect(201);
    let r = anonymous(&srv, "GET", &path, &[("If-None-Match", &etag)]).await;
    r.expect(200);
    assert!(r.text().contains("SUMMARY:Added later"));
    anonymous(&srv, "PUT", &path, &[]).await.expect(405);
    anonymous(&srv, "GET", "/feeds/cvf_not-a-real-token.ics", &[])
        .await
        .expect(404);
    anonymous(&srv, "GET", "/feeds/anything.ics", &[])
        .await
        .expect(404);

    // Listed for its owner, never with the token; invisible to others.
    let list = json(&api(&srv, "alice", "GET", "/api/feeds", None).await);
    assert_eq!(list[0]["label"], "Outlook");
    assert_eq!(list[0]["calendar"], "calendar");
    assert!(list[0]["last_used_at"].is_i64());
    assert!(!list.to_string().contains(&token));
    assert_eq!(
        json(&api(&srv, "bob", "GET", "/api/feeds", None).await)
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    api(&srv, "bob", "DELETE", &format!("/api/feeds/{id}"), None)
        .await
        .expect(404);
    anonymous(&srv, "GET", &path, &[]).await.expect(200);

    // The token is stored only as a hash.
    if srv.db_args[0] == "--data-dir" {
        for entry in std::fs::read_dir(srv.dir.path()).expect("data dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).unwrap_or_default();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the feed token is stored in clear"
            );
        }
    }

    // Revoked: gone at once.
    api(&srv, "alice", "DELETE", &format!("/api/feeds/{id}"), None)
        .await
        .expect(204);
    anonymous(&srv, "GET", &path, &[]).await.expect(404);

    // The CLI does the same: feed add/list/revoke, import with a summary, export.
    let out = srv.cli_ok(
        &["feed", "add", "alice", "calendar", "--label", "Phone"],
        "",
    );
    let cli_path = out
        .split_whitespace()
        .find(|w| w.starts_with("/feeds/"))
        .expect("feed path printed")
        .to_string();
    anonymous(&srv, "GET", &cli_path, &[]).await.expect(200);
    let listed = srv.cli_ok(&["feed", "list", "alice"], "");
    assert!(
        listed.contains("Phone") && !listed.contains("cvf_"),
        "{listed}"
    );
    let cli_id = listed.split_whitespace().next().expect("id").to_string();
    srv.cli_ok(&["feed", "revoke", "alice", &cli_id], "");
    anonymous(&srv, "GET", &cli_path, &[]).await.expect(404);
    let (code, _, err) = srv.cli(&["feed", "revoke", "alice", &cli_id], "");
    assert_ne!(code, 0);
    assert!(err.contains("no feed"), "{err}");
}

async fn cli_import_export(srv: TestServer) {
    let mixed = std::fs::read_to_string(format!("{CORPUS}/01_rfc5545.ics")).expect("fixture");
    let out = srv.cli_ok(&["import", "bob", "calendar", "-"], &mixed);
    assert!(
        out.contains("imported 1 new, replaced 0, skipped 3"),
        "{out}"
    );
    assert!(out.contains("skipped uid4@example.com:"), "{out}");
    let (code, _, err) = srv.cli(&["import", "nobody", "calendar", "-"], &mixed);
    assert!(code != 0 && err.contains("no such user"), "{err}");
    let (code, _, err) = srv.cli(&["import", "bob", "nope", "-"], &mixed);
    assert!(code != 0 && err.contains("no calendar named"), "{err}");
    let exported = srv.cli_ok(&["export", "bob", "calendar"], "");
    assert!(
        exported.starts_with("BEGIN:VCALENDAR\r\n") && exported.contains("UID:guid-1.example.com"),
        "{exported}"
    );
    // What the CLI imported, HTTP serves.
    let r = srv
        .send(
            srv.req_as("bob", "bob-password", "GET", "/dav/calendars/bob/calendar/")
                .header("Accept", "text/calendar"),
        )
        .await;
    assert_eq!(r.text(), exported);
}

both_backends!(feeds_import_export, feeds);
both_backends!(cli_import_and_export, cli_import_export);
