//! What an attacker with an ordinary account sends, through real HTTP (`fixtures/hostile/`):
//! - the parser and recurrence bombs through every way in (PUT with a CalDAV-only app
//!   password, import, `/api/imip`, `calendar-timezone` in PROPPATCH and MKCALENDAR, the
//!   outbox), each answered 4xx in bounded time, under an address-space cap, nothing stored,
//!   the server alive;
//! - PROPPATCH storage amplification;
//! - login limits against parallel guessing, without an outsider locking the owner out.

mod common;

use std::time::{Duration, Instant};

use common::{Resp, TestServer, fixture, member_count};

/// A request that must be refused with a 4xx, quickly.
async fn refused(srv: &TestServer, what: &str, rb: reqwest::RequestBuilder) -> Resp {
    let t = Instant::now();
    let r = srv.send(rb).await;
    let took = t.elapsed();
    assert!(
        r.status.is_client_error(),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    r
}

/// A new CalDAV-only app password of `user`'s, from the CLI.
fn caldav_app_password(srv: &TestServer, user: &str) -> String {
    let out = srv.cli_ok(&["app-password", "add", user, "Phone"], "");
    out.split_whitespace()
        .find(|w| w.starts_with("cvp_"))
        .expect("app password")
        .to_string()
}

async fn alive(srv: &TestServer) {
    srv.propfind("/dav/calendars/alice/", "0", "")
        .await
        .expect(207);
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A `calendar-timezone` set, in a MKCALENDAR (`root` `C:mkcalendar`) or PROPPATCH
/// (`D:propertyupdate`) body.
fn zone_body(root: &str, zone: &str) -> String {
    format!(
        r#"<{root} xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>{}</C:calendar-timezone></D:prop></D:set></{root}>"#,
        xml_text(zone)
    )
}

/// Every bomb, through every way in, with the server under a 1 GiB address-space cap (it
/// starts in about 630 MiB of reservations; the bombs took 600 MB to 23 GB before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_are_refused_everywhere_under_a_memory_cap() {
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.memory_cap = Some(1024 * 1024 * 1024);
    assert!(srv.terminate().success());
    srv.spawn_server().await;
    // A CalDAV-only app password is enough to reach the parser.
    let app = caldav_app_password(&srv, "alice");
    let zone_only = |body: &str| -> String {
        // The VCALENDAR with its VTIMEZONE only, as calendar-timezone holds.
        let start = body.find("BEGIN:VTIMEZONE").unwrap_or(0);
        let end = body
            .find("END:VTIMEZONE")
            .map(|e| e + "END:VTIMEZONE\r\n".len())
            .unwrap_or(body.len());
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{}END:VCALENDAR\r\n",
            body[start..end.min(body.len())]
                .replace('\n', "\r\n")
                .replace("\r\r\n", "\r\n")
        )
    };
    for name in ["nested.ics", "vtz-bomb.ics", "byx-event.ics"] {
        let body = fixture(name);
        let ics = ("Content-Type", "text/calendar");
        refused(
            &srv,
            &format!("{name} PUT"),
            srv.req_as(
                "alice",
                &app,
                "PUT",
                "/dav/calendars/alice/calendar/bomb.ics",
            )
            .header(ics.0, ics.1)
            .body(body.clone()),
        )
        .await;
        // An import refuses the whole file (4xx) or lists the object as skipped, with why.
        let r = srv
            .send(
                srv.req("POST", "/dav/calendars/alice/calendar/")
                    .header(ics.0, ics.1)
                    .body(body.clone()),
            )
            .await;
        assert!(
            r.status.is_client_error()
                || (r.status.as_u16() == 200
                    && r.text().contains("\"imported\":0")
                    && r.text().contains("\"reason\"")),
            "{name} import: {} {}",
            r.status,
            r.text()
        );
        let reply = body.replace("VERSION:2.0", "VERSION:2.0\r\nMETHOD:REPLY");
        refused(
            &srv,
            &format!("{name} iMIP"),
            srv.req("POST", "/api/imip")
                .header(ics.0, ics.1)
                .body(reply),
        )
        .await;
        let request = body.replace("VERSION:2.0", "VERSION:2.0\r\nMETHOD:REQUEST");
        let r = srv
            .send(
                srv.req_as("alice", &app, "POST", "/dav/calendars/alice/outbox/")
                    .header(ics.0, ics.1)
                    .body(request),
            )
            .await;
        assert!(
            r.status.is_client_error() || r.status.as_u16() == 200,
            "{name} outbox: {}",
            r.status
        );
        alive(&srv).await;
        let zone = if name == "nested.ics" {
            body.clone()
        } else {
            zone_only(&body)
        };
        let r = srv
            .send(
                srv.req("PROPPATCH", "/dav/calendars/alice/calendar/")
                    .header("Content-Type", "application/xml")
                    .body(zone_body("D:propertyupdate", &zone)),
            )
            .await;
        // A PROPPATCH answers 207 with the property's own 403 inside.
        assert_eq!(r.status.as_u16(), 207, "{name} PROPPATCH");
        assert!(r.text().contains("403"), "{name} PROPPATCH: {}", r.text());
        refused(
            &srv,
            &format!("{name} MKCALENDAR"),
            srv.req("MKCALENDAR", "/dav/calendars/alice/bombed/")
                .header("Content-Type", "application/xml")
                .body(zone_body("C:mkcalendar", &zone)),
        )
        .await;
        alive(&srv).await;
    }
    assert_eq!(
        member_count(&srv, "alice", "/dav/calendars/alice/calendar/").await,
        0,
        "nothing stored"
    );
    srv.send(srv.req("GET", "/dav/calendars/alice/bombed/"))
        .await
        .expect(404);
    // The process is the one that started: nothing aborted and was restarted.
    assert!(
        srv.child.try_wait().expect("wait").is_none(),
        "the server died"
    );
}

/// 20,000 namespace declarations around 500 small properties: what is stored, and what every
/// later listing returns, is what the values hold (it was 280 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proppatch_stores_what_the_values_hold() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let body = fixture("ns-amplify.xml");
    let r = srv
        .send(
            srv.req("PROPPATCH", "/dav/calendars/alice/calendar/")
                .header("Content-Type", "application/xml")
                .body(body.clone()),
        )
        .await;
    assert!(r.status.as_u16() == 207, "{}", r.status);
    let listing = srv
        .propfind(
            "/dav/calendars/alice/",
            "1",
            r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
        )
        .await;
    listing.expect(207);
    assert!(
        listing.body.len() < 4 * body.len(),
        "a home listing returned {} bytes for a {}-byte PROPPATCH",
        listing.body.len(),
        body.len()
    );
    // One value over 64 KiB is refused with 507, and stores nothing.
    let big = "x".repeat(70 * 1024);
    let r = srv
        .send(
            srv.req("PROPPATCH", "/dav/calendars/alice/tasks/")
                .header("Content-Type", "application/xml")
                .body(format!(
                    r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:big xmlns:Z="urn:z">{big}</Z:big></D:prop></D:set></D:propertyupdate>"#
                )),
        )
        .await;
    assert!(r.text().contains("507"), "{}", r.text());
    // Many values under the cap each, over 1 MiB together: the last ones get 507.
    let mut stored = 0;
    for i in 0..40 {
        let r = srv
            .send(
                srv.req("PROPPATCH", "/dav/calendars/alice/tasks/")
                    .header("Content-Type", "application/xml")
                    .body(format!(
                        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:p{i} xmlns:Z="urn:z">{}</Z:p{i}></D:prop></D:set></D:propertyupdate>"#,
                        "y".repeat(60 * 1024)
                    )),
            )
            .await;
        if r.text().contains("507") {
            break;
        }
        stored += 1;
    }
    assert!(
        (15..=17).contains(&stored),
        "{stored} values of 60 KiB stored"
    );
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

async fn status_of(c: &reqwest::Client, srv: &TestServer, user: &str, pw: &str) -> u16 {
    c.request(
        reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
        srv.url(&format!("/dav/calendars/{user}/")),
    )
    .basic_auth(user, Some(pw))
    .header("Depth", "0")
    .send()
    .await
    .expect("request")
    .status()
    .as_u16()
}

/// 100 guesses in parallel from one address: only the first slots are evaluated, the rest get
/// 429 before any hash is computed (all 100 were evaluated before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_are_counted_before_they_are_checked() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let c = client_from("127.0.0.1");
    let guesses = (0..100).map(|i| {
        let c = c.clone();
        let srv = &srv;
        async move { status_of(&c, srv, "bob", &format!("guess-{i}")).await }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(evaluated + limited, 100, "{statuses:?}");
    assert!(evaluated <= 10, "{evaluated} guesses evaluated");
}

/// Failures from many addresses slow guessing at alice's account, but cannot lock out the
/// device that already works there, nor her app passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_cannot_lock_the_owner_out() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let app = caldav_app_password(&srv, "alice");
    let home = client_from("127.0.0.1");
    assert_eq!(status_of(&home, &srv, "alice", "alice-password").await, 207);
    let mut limited = false;
    for a in 2..20 {
        let c = client_from(&format!("127.0.1.{a}"));
        for i in 0..10 {
            if status_of(&c, &srv, "alice", &format!("wrong-{a}-{i}")).await == 429 {
                limited = true;
            }
        }
    }
    assert!(limited, "guessing from many addresses was never limited");
    assert_eq!(
        status_of(&client_from("127.0.2.1"), &srv, "alice", "alice-password").await,
        429,
        "a new address meets the per-user limit"
    );
    assert_eq!(
        status_of(&home, &srv, "alice", "alice-password").await,
        207,
        "the known device"
    );
    assert_eq!(
        status_of(&client_from("127.0.2.2"), &srv, "alice", &app).await,
        207,
        "an app password"
    );
}

/// Idle sockets cannot use up the server: past `max_connections` they wait in the backlog,
/// and each is closed after `idle_timeout_seconds` without traffic, so a real client gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_and_closed() {
    use tokio::io::AsyncReadExt;
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.restart_with_config("max_connections = 20\nidle_timeout_seconds = 2\n")
        .await;
    let mut idle = vec![];
    for _ in 0..60 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", srv.port()))
                .await
                .expect("connect"),
        );
    }
    // The first sockets are closed by the server once idle (read sees the end).
    let mut first = idle.remove(0);
    let mut buf = [0u8; 16];
    let t = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf))
        .await
        .expect("closed within the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t.elapsed() >= Duration::from_secs(1), "closed too early");
    // A real request, with all those sockets still held open by the client, is answered.
    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        srv.send(
            srv.req("PROPFIND", "/dav/calendars/alice/")
                .header("Depth", "0"),
        ),
    )
    .await
    .expect("answered while idle sockets were held");
    r.expect(207);
    assert!(t.elapsed() < Duration::from_secs(15));
    assert!(
        srv.child.try_wait().expect("wait").is_none(),
        "the server died"
    );
}

/// Racing MOVEs, COPYs and DELETEs of one source: exactly one MOVE or DELETE wins, the others
/// get 404 (or 409/412), never 500, and nothing is lost or duplicated.
async fn racing_transfers(srv: TestServer) {
    let ics = ("Content-Type", "text/calendar");
    let put = |name: &str| {
        srv.req("PUT", &format!("/dav/calendars/alice/calendar/{name}"))
            .header(ics.0, ics.1)
            .body(common::event(name, "race"))
    };
    srv.send(put("src.ics")).await.expect(201);
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/other/"))
        .await
        .expect(201);
    let moves = (0..20).map(|i| {
        srv.send(
            srv.req("MOVE", "/dav/calendars/alice/calendar/src.ics")
                .header(
                    "Destination",
                    srv.url(&format!("/dav/calendars/alice/other/m{i}.ics")),
                ),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(moves)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 201 | 404 | 409 | 412)),
        "{statuses:?}"
    );
    let moved = member_count(&srv, "alice", "/dav/calendars/alice/other/").await;
    assert_eq!(moved, 1, "one resource after 20 moves");

    // MOVE racing DELETE: one of them, not both.
    for round in 0..5 {
        let name = format!("r{round}.ics");
        srv.send(put(&name)).await.expect(201);
        let path = format!("/dav/calendars/alice/calendar/{name}");
        let dest = srv.url(&format!("/dav/calendars/alice/calendar/moved-{round}.ics"));
        let (m, d) = tokio::join!(
            srv.send(srv.req("MOVE", &path).header("Destination", dest.clone())),
            srv.send(srv.req("DELETE", &path)),
        );
        let body = m.text();
        let (m, d) = (m.status.as_u16(), d.status.as_u16());
        assert!(matches!(m, 201 | 404 | 409), "MOVE {m} {body}");
        assert!(matches!(d, 204 | 404 | 409), "DELETE {d}");
        assert!(
            (m == 201) != (d == 204),
            "round {round}: MOVE {m} and DELETE {d} both or neither succeeded"
        );
        let there = srv
            .send(srv.req(
                "GET",
                &format!("/dav/calendars/alice/calendar/moved-{round}.ics"),
            ))
            .await
            .status
            .as_u16();
        assert_eq!(there == 200, m == 201, "round {round}");
    }
    // COPYs racing a DELETE never answer 500.
    srv.send(put("c.ics")).await.expect(201);
    let copies = (0..10).map(|i| {
        srv.send(
            srv.req("COPY", "/dav/calendars/alice/calendar/c.ics")
                .header(
                    "Destination",
                    srv.url(&format!("/dav/calendars/alice/other/c{i}.ics")),
                ),
        )
    });
    let (copied, deleted) = tokio::join!(
        futures_util::future::join_all(copies),
        srv.send(srv.req("DELETE", "/dav/calendars/alice/calendar/c.ics"))
    );
    assert_eq!(deleted.status.as_u16(), 204);
    // PUTs into a calendar being deleted: created, or 404/409, never 500.
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/doomed/"))
        .await
        .expect(201);
    let puts = (0..10).map(|i| {
        srv.send(
            srv.req("PUT", &format!("/dav/calendars/alice/doomed/p{i}.ics"))
                .header(ics.0, ics.1)
                .body(common::event(&format!("p{i}"), "race")),
        )
    });
    let (put, gone) = tokio::join!(
        futures_util::future::join_all(puts),
        srv.send(srv.req("DELETE", "/dav/calendars/alice/doomed/"))
    );
    assert_eq!(gone.status.as_u16(), 204);
    for r in put {
        assert!(
            matches!(r.status.as_u16(), 201 | 404 | 409),
            "PUT {} {}",
            r.status,
            r.text()
        );
    }
    for r in copied {
        assert!(
            // 403: the one copy that got in holds the UID (no-uid-conflict).
            matches!(r.status.as_u16(), 201 | 403 | 404 | 409),
            "COPY {}",
            r.status
        );
    }
}

mod racing_transfers {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        racing_transfers(TestServer::start(common::Backend::Sqlite).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        racing_transfers(TestServer::start(common::Backend::Postgres).await).await;
    }
}

/// Values RFC 5545 does not allow are refused with 403 and a message naming the property,
/// not stored with 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_values_are_refused() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let with = |lines: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:v\r\nDTSTAMP:20240101T000000Z\r\n{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    let zone = |offset: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Odd\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:v\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Odd:20300101T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    for (what, body) in [
        ("month 13", with("DTSTART:20301301T100000Z\r\n")),
        ("hour 25", with("DTSTART:20300101T250000Z\r\n")),
        (
            "end before start",
            with("DTSTART:20300101T100000Z\r\nDTEND:20300101T090000Z\r\n"),
        ),
        (
            "interval 0",
            with("DTSTART:20300101T100000Z\r\nRRULE:FREQ=DAILY;INTERVAL=0\r\n"),
        ),
        (
            "negative duration",
            with("DTSTART:20300101T100000Z\r\nDURATION:-PT1H\r\n"),
        ),
        (
            "absurd duration",
            with("DTSTART:20300101T100000Z\r\nDURATION:P99999W\r\n"),
        ),
        (
            "overflowing count",
            with("DTSTART:20300101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=99999999999\r\n"),
        ),
        ("offset beyond a day", zone("+2600")),
        (
            "a BYDAY item without its weekday",
            with("DTSTART:20300101T100000Z\r\nRRULE:FREQ=MONTHLY;BYDAY=+1,3MO\r\n"),
        ),
        (
            "a month 13 in BYMONTH",
            with("DTSTART:20300101T100000Z\r\nRRULE:FREQ=YEARLY;BYMONTH=13\r\n"),
        ),
        ("an event without DTSTART", with("SUMMARY:when?\r\n")),
        (
            "a raw control character",
            with("DTSTART:20300101T100000Z\r\nSUMMARY:bell\u{7}ring\r\n"),
        ),
        (
            "a backslash that escapes nothing",
            with("DTSTART:20300101T100000Z\r\nLOCATION:C:\\temp\r\n"),
        ),
        (
            "a TZID that is neither defined nor known",
            with("DTSTART;TZID=Mars/Olympus:20300101T100000\r\n"),
        ),
    ] {
        let r = srv
            .put_ics("/dav/calendars/alice/calendar/v.ics", &body)
            .await;
        assert_eq!(r.status.as_u16(), 403, "{what}: {} {}", r.status, r.text());
    }
    assert_eq!(
        member_count(&srv, "alice", "/dav/calendars/alice/calendar/").await,
        0
    );
    // What is valid still goes in, its bytes as sent, under the ETag of those bytes.
    let valid = with("DTSTART:20300101T100000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=3\r\n");
    let r = srv
        .put_ics("/dav/calendars/alice/calendar/v.ics", &valid)
        .await;
    r.expect(201);
    assert!(r.header("etag").is_some());
    // An event without the DTSTAMP RFC 5545 requires is stored with one (the time it
    // arrived), and, as its bytes are no longer the client's, without an ETag in the answer.
    let unstamped = valid
        .replace("UID:v\r\n", "UID:w\r\n")
        .replace("DTSTAMP:20240101T000000Z\r\n", "");
    let r = srv
        .put_ics("/dav/calendars/alice/calendar/w.ics", &unstamped)
        .await;
    r.expect(201);
    assert_eq!(
        r.header("etag"),
        None,
        "an ETag for bytes the client did not send"
    );
    let stored = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/w.ics"))
        .await
        .text();
    let year = jiff::Timestamp::now().strftime("DTSTAMP:%Y").to_string();
    assert!(
        stored.contains(&format!("BEGIN:VEVENT\r\n{year}")) && stored.ends_with("Z\r\nUID:w\r\nDTSTART:20300101T100000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
        "{stored}"
    );
}

fn utc(t: jiff::Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn hourly(uid: &str, start: jiff::Timestamp, rule: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{}\r\nDURATION:PT10M\r\nRRULE:{rule}\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        utc(start)
    )
}

fn window_query(start: jiff::Timestamp, end: jiff::Timestamp, expand: bool) -> String {
    let data = if expand {
        format!(
            r#"<C:calendar-data><C:expand start="{}" end="{}"/></C:calendar-data>"#,
            utc(start),
            utc(end)
        )
    } else {
        String::new()
    };
    format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>{data}</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{}" end="{}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
        utc(start),
        utc(end)
    )
}

/// Dense open-ended series are answered correctly or refused clearly: an hourly series with
/// a long past can be saved and is found in any window, however many instances lie before
/// it; an expansion past the cap is a 403, not the unexpanded master; a series denser than
/// the cap in a year is refused when saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dense_series_are_answered_or_refused() {
    use jiff::ToSpan;
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Hour)
        .expect("round");
    let day = jiff::SignedDuration::from_hours(24);
    let old = now - jiff::SignedDuration::from_hours(2 * 8766);
    srv.put_ics(
        "/dav/calendars/alice/calendar/old.ics",
        &hourly("old", old, "FREQ=HOURLY"),
    )
    .await
    .expect(201);
    // A week from now, and 2.5 years from now (past the 20,000th instance and the horizon).
    for (label, from) in [
        ("next week", now + 7 * day),
        (
            "in 2.5 years",
            now + jiff::SignedDuration::from_hours(22_000),
        ),
    ] {
        let r = srv
            .report(
                "/dav/calendars/alice/calendar/",
                &window_query(from, from + day, true),
            )
            .await;
        r.expect(207);
        let t = r.text();
        assert!(t.contains("old.ics"), "{label}: the series vanished: {t}");
        assert_eq!(
            t.matches("BEGIN:VEVENT").count(),
            24,
            "{label}: one instance an hour"
        );
    }
    // Expanding three years of it at once passes the cap: refused, not the master.
    let r = srv
        .report(
            "/dav/calendars/alice/calendar/",
            &window_query(now, now + jiff::SignedDuration::from_hours(3 * 8766), true),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    assert!(r.text().contains("max-instances"), "{}", r.text());
    // Every 15 minutes is 35,000 a year: refused when saved, with the condition.
    let r = srv
        .put_ics(
            "/dav/calendars/alice/calendar/dense.ics",
            &hourly("dense", now, "FREQ=MINUTELY;INTERVAL=15"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    assert!(r.text().contains("max-instances"), "{}", r.text());
    let _ = 1.day();
}

/// An import is capped in objects before anything is written (413), so one request cannot
/// occupy the server for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_capped() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let mut body = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n");
    for i in 0..10_001 {
        body.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:i{i}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T100000Z\r\nEND:VEVENT\r\n"
        ));
    }
    body.push_str("END:VCALENDAR\r\n");
    let r = srv
        .send(
            srv.req("POST", "/dav/calendars/alice/calendar/")
                .header("Content-Type", "text/calendar")
                .body(body),
        )
        .await;
    assert_eq!(r.status.as_u16(), 413, "{}", r.text());
    assert_eq!(
        member_count(&srv, "alice", "/dav/calendars/alice/calendar/").await,
        0
    );
}

/// An import whose client has gone stops: what is in the calendar a second after the client
/// left is all there will be (it went on to the end before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stops_when_the_client_goes() {
    // On PostgreSQL each object is a round trip, so the whole import takes seconds.
    let srv = TestServer::start(common::Backend::Postgres).await;
    let total = 8_000;
    let mut body = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n");
    for i in 0..total {
        body.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:i{i}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T100000Z\r\nRRULE:FREQ=HOURLY;COUNT=2000\r\nSUMMARY:item {i}\r\nEND:VEVENT\r\n"
        ));
    }
    body.push_str("END:VCALENDAR\r\n");
    // Each object is a series of 2,000 instances to index, so the whole takes far longer
    // than the client waits.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .expect("client");
    let gone = impatient
        .post(srv.url("/dav/calendars/alice/calendar/"))
        .basic_auth("alice", Some("alice-password"))
        .header("Content-Type", "text/calendar")
        .body(body)
        .send()
        .await;
    if let Ok(r) = gone {
        panic!(
            "the import finished before the client left: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_leaving = member_count(&srv, "alice", "/dav/calendars/alice/calendar/").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = member_count(&srv, "alice", "/dav/calendars/alice/calendar/").await;
    assert_eq!(
        after_leaving, later,
        "the import went on after its client left"
    );
    assert!(later < total, "{later} of {total}");
    alive(&srv).await;
}

/// Stored content is never active on the server's origin: an HTML or SVG file in a plain
/// WebDAV collection comes back as an attachment under a sandboxing CSP, with `nosniff`; and
/// `X-Forwarded-Proto` is believed only from a configured proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_content_is_inert_and_forwarding_is_trusted_only_from_proxies() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    srv.send(srv.req("MKCOL", "/dav/calendars/alice/files/"))
        .await
        .expect(201);
    for (name, ct) in [("x.html", "text/html"), ("x.svg", "image/svg+xml")] {
        srv.send(
            srv.req("PUT", &format!("/dav/calendars/alice/files/{name}"))
                .header("Content-Type", ct)
                .body(fixture("x.html")),
        )
        .await
        .expect(201);
        let r = srv
            .send(srv.req("GET", &format!("/dav/calendars/alice/files/{name}")))
            .await;
        r.expect(200);
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(
            r.header("content-security-policy")
                .is_some_and(|c| c.contains("sandbox") && c.contains("default-src 'none'")),
            "{name}"
        );
        assert_eq!(
            r.header("content-disposition").as_deref(),
            Some("attachment"),
            "{name}"
        );
    }
    let page = srv.send(srv.client.get(srv.url("/login"))).await;
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    let login_cookie = |ip: &str| {
        let c = client_from(ip);
        let url = srv.url("/login");
        async move {
            c.get(url)
                .header("X-Forwarded-Proto", "https")
                .send()
                .await
                .expect("login page")
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(
        login_cookie("127.0.0.1").await.contains("Secure"),
        "the proxy"
    );
    assert!(
        !login_cookie("127.0.1.9").await.contains("Secure"),
        "a client that is not a proxy claimed HTTPS"
    );
}

/// The smaller findings, each through the running server:
/// - a name that does not exist is refused as slowly as a wrong password (0.4 ms against
///   25 ms told which names exist);
/// - the typed user name of a failed login is not logged (a password typed as the name
///   would be);
/// - `DAV:include` counts against the property limit;
/// - the store is readable by the server's user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_logs_includes_and_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.log_filter = "info".into();
    assert!(srv.terminate().success());
    srv.spawn_server().await;
    let timed = |user: &'static str, pw: String| {
        let srv = &srv;
        async move {
            let t = Instant::now();
            let r = srv
                .send(
                    srv.req_as(user, &pw, "PROPFIND", "/dav/")
                        .header("Depth", "0"),
                )
                .await;
            assert_eq!(r.status.as_u16(), 401);
            t.elapsed()
        }
    };
    let mut known = vec![];
    let mut unknown = vec![];
    for i in 0..5 {
        known.push(timed("bob", format!("wrong-{i}")).await);
        unknown.push(timed("nosuchuser-typed-secret", format!("wrong-{i}")).await);
    }
    known.sort();
    unknown.sort();
    assert!(
        unknown[2] * 3 >= known[2],
        "an unknown name answered in {:?}, a known one in {:?}",
        unknown[2],
        known[2]
    );
    assert!(
        !srv.log_text().contains("nosuchuser-typed-secret"),
        "the typed name was logged"
    );
    // 600 properties requested plus 600 included is over the 1,000 limit.
    let include: String = (0..600).map(|i| format!("<Z:p{i}/>")).collect();
    let r = srv
        .propfind(
            "/dav/calendars/alice/",
            "0",
            &format!(
                r#"<D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:allprop/><D:include>{include}{include}</D:include></D:propfind>"#
            ),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text());
    let dir = srv.dir.path();
    let db = std::fs::metadata(dir.join("convene.db")).expect("db");
    assert_eq!(
        db.permissions().mode() & 0o077,
        0,
        "convene.db is readable by others"
    );
}

/// With PostgreSQL and no `secret_key`, a key in a directory relative to where the server
/// was started would change with the working directory: the server refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_a_key_refuses_a_relative_data_dir() {
    let url = common::fresh_pg_database().await;
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(common::BIN)
        .current_dir(cwd.path())
        .args([
            "--database-url",
            &url,
            "--data-dir",
            "relative-data",
            "serve",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .env("CONVENE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // Bounded: a server that starts instead of refusing is stopped and the test fails.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = child.wait_with_output().expect("output");
    assert!(
        status.is_some_and(|s| !s.success()),
        "the server started with a key relative to its working directory"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret_key"), "{err}");
    assert!(!cwd.path().join("relative-data/secret.key").exists());
}

/// A half-hourly series in a VTIMEZONE of the object's own (no IANA name): each instance's
/// instant comes from the zone's transitions, worked out once per object. Working them out
/// again for every instance made this PUT cost tens of seconds of CPU (found by cargo fuzz:
/// `fixtures/hostile/custom-zone-minutely.ics`); it is stored, and a query a year on, which
/// expands the rule at query time, answers, both in bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dense_series_in_a_zone_of_its_own_costs_no_more_than_in_utc() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let body = fixture("custom-zone-minutely.ics");
    let t = Instant::now();
    let r = srv
        .put_ics("/dav/calendars/alice/calendar/half-hourly.ics", &body)
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "the PUT took {took:?}");
    let t = Instant::now();
    let r = srv
        .report(
            "/dav/calendars/alice/calendar/",
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260610T000000Z" end="20260611T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("half-hourly.ics"), "{}", r.text());
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "the query took {took:?}");
    alive(&srv).await;
}

/// Unmounts a filesystem the test mounted, also when it fails.
struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk is the client's 507 Insufficient Storage (RFC 4918 11.5), not a 500: nothing
/// already stored is lost, the server keeps answering, and once the operator makes room
/// writes go on without a restart. The data directory is a 3 MiB tmpfs (mounting one needs root, as CI runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_loses_nothing() {
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    assert!(srv.terminate().success());
    let mnt = tempfile::tempdir().expect("tempdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "mounting a 3 MiB tmpfs needs root (the CI run has it)"
    );
    let _unmount = Unmount(mnt.path().to_path_buf());
    srv.db_args = vec!["--data-dir".into(), mnt.path().display().to_string()];
    srv.add_users(&["alice"]);
    srv.spawn_server().await;
    let filler = "x".repeat(40_000);
    let body = |i: usize| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:fill-{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300101T100000Z\r\nSUMMARY:fill {i}\r\nDESCRIPTION:{filler}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    let mut stored = 0;
    let mut full = None;
    for i in 0..200 {
        let r = srv
            .put_ics(&format!("/dav/calendars/alice/calendar/f{i}.ics"), &body(i))
            .await;
        match r.status.as_u16() {
            201 => stored += 1,
            507 => {
                full = Some(r.text());
                break;
            }
            s => panic!("PUT {i}: {s} {}", r.text()),
        }
    }
    let full = full.expect("3 MiB filled without a 507");
    assert!(full.contains("storage is full"), "{full}");
    assert!(stored > 5, "only {stored} stored before the disk was full");
    // A property write goes through a transaction on the one writer connection; the disk
    // fills inside it, and SQLite rolls it back by itself.
    let note = |n: usize| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:x-test"><D:set><D:prop><X:note>{}</X:note></D:prop></D:set></D:propertyupdate>"#,
            "n".repeat(n)
        )
    };
    let proppatch = |n: usize| {
        srv.req("PROPPATCH", "/dav/calendars/alice/calendar/")
            .header("Content-Type", "application/xml")
            .body(note(n))
    };
    srv.send(proppatch(60_000)).await.expect(507);
    // Everything stored is still there, whole, and the server answers.
    let r = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/f0.ics"))
        .await;
    r.expect(200);
    assert!(r.text().contains(&filler));
    assert_eq!(
        member_count(&srv, "alice", "/dav/calendars/alice/calendar/").await,
        stored
    );
    // The operator makes room (the filesystem grows): writes go on, in the same process.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(mnt.path())
        .status()
        .expect("remount");
    assert!(grown.success());
    srv.put_ics("/dav/calendars/alice/calendar/after.ics", &body(999))
        .await
        .expect(201);
    // ... and that connection still writes afterwards (it used to stay stuck inside the
    // failed transaction, and every later transaction failed until a restart).
    let r = srv.send(proppatch(50_000)).await;
    r.expect(207);
    assert!(r.text().contains("HTTP/1.1 200 OK"), "{}", r.text());
    srv.send(srv.req("DELETE", "/dav/calendars/alice/calendar/f1.ics"))
        .await
        .expect(204);
    assert!(srv.terminate().success());
}
