//! Delegation (CalendarServer calendar-proxy) through real HTTP on both backends: the owner
//! sets delegates with the PROPPATCH Apple Calendar sends, the delegate sees the groups and
//! the owners (PROPFIND and expand-property), a read delegate reads but cannot write, a write
//! delegate writes and schedules as the owner, nobody else gets in, and the CLI manages the
//! same groups.

mod common;

use common::{Resp, TestServer, found_prop, responses};

use convene::dav::NS_CS;

async fn as_user(
    srv: &TestServer,
    user: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Resp {
    srv.send_as(user, method, path, body, headers).await
}

fn hrefs(e: &convene::dav::Element) -> Vec<String> {
    e.children_named("DAV:", "href")
        .map(|h| h.text.clone())
        .collect()
}

fn set_members(hrefs: &[&str]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><D:group-member-set>",
    );
    for h in hrefs {
        s.push_str(&format!("<D:href>{h}</D:href>"));
    }
    s.push_str("</D:group-member-set></D:prop></D:set></D:propertyupdate>");
    s
}

async fn delegation(srv: TestServer) {
    srv.cli_ok(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--email",
            "carol@example.org",
        ],
        "carol-password",
    );
    srv.cli_ok(
        &[
            "user",
            "add",
            "dave",
            "--password-stdin",
            "--email",
            "dave@example.org",
        ],
        "dave-password",
    );
    let cal = "/dav/calendars/alice/calendar/";
    srv.put_ics(
        &format!("{cal}mine.ics"),
        &common::event("mine", "Alice's own"),
    )
    .await
    .expect(201);

    // Nobody is a delegate yet: bob is kept out.
    as_user(&srv, "bob", "PROPFIND", cal, "", &[("Depth", "0")])
        .await
        .expect(403);
    let r = srv.send(srv.req("OPTIONS", "/dav/")).await;
    assert!(
        r.header("dav")
            .unwrap_or_default()
            .contains("calendar-proxy")
    );

    // The proxy groups are the principal's members (Depth 1), typed by resourcetype.
    let r = srv
        .propfind("/dav/principals/alice/", "1", "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:group-member-set/></D:prop></D:propfind>")
        .await;
    r.expect(207);
    let ms = r.xml();
    let groups: Vec<String> = responses(&ms).into_iter().map(|(h, _)| h).collect();
    assert!(
        groups.contains(&"/dav/principals/alice/calendar-proxy-write/".to_string()),
        "{groups:?}"
    );
    let (_, w) = responses(&ms)
        .into_iter()
        .find(|(h, _)| h.ends_with("calendar-proxy-write/"))
        .expect("write group");
    assert!(
        found_prop(&w, "DAV:", "resourcetype")
            .expect("type")
            .child(NS_CS, "calendar-proxy-write")
            .is_some()
    );

    // Alice makes bob a write delegate and carol a read delegate, as Apple Calendar does.
    let r = srv
        .send(
            srv.req("PROPPATCH", "/dav/principals/alice/calendar-proxy-write/")
                .header("Content-Type", "application/xml")
                .body(set_members(&["/dav/principals/bob/"])),
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("200 OK"));
    srv.send(
        srv.req("PROPPATCH", "/dav/principals/alice/calendar-proxy-read/")
            .header("Content-Type", "application/xml")
            .body(set_members(&["/dav/principals/carol/"])),
    )
    .await
    .expect(207);
    // Only the owner edits her groups; an unknown member is refused.
    as_user(
        &srv,
        "bob",
        "PROPPATCH",
        "/dav/principals/alice/calendar-proxy-write/",
        &set_members(&["/dav/principals/dave/"]),
        &[("Content-Type", "application/xml")],
    )
    .await
    .expect(403);
    srv.send(
        srv.req("PROPPATCH", "/dav/principals/alice/calendar-proxy-write/")
            .header("Content-Type", "application/xml")
            .body(set_members(&["/dav/principals/nobody/"])),
    )
    .await
    .expect(409);

    // Bob's principal shows the group and, expanded, whom he acts for (Apple's start-up read).
    let r = as_user(&srv, "bob", "PROPFIND", "/dav/principals/bob/", "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\" xmlns:CS=\"http://calendarserver.org/ns/\"><D:prop><D:group-membership/><CS:calendar-proxy-write-for/><CS:calendar-proxy-read-for/></D:prop></D:propfind>", &[("Depth", "0")]).await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    assert_eq!(
        hrefs(&found_prop(resp, "DAV:", "group-membership").expect("membership")),
        vec!["/dav/principals/alice/calendar-proxy-write/"]
    );
    assert_eq!(
        hrefs(&found_prop(resp, NS_CS, "calendar-proxy-write-for").expect("write-for")),
        vec!["/dav/principals/alice/"]
    );
    assert!(
        hrefs(&found_prop(resp, NS_CS, "calendar-proxy-read-for").expect("read-for")).is_empty()
    );
    let expand = r#"<?xml version="1.0"?><A:expand-property xmlns:A="DAV:"><A:property name="calendar-proxy-write-for" namespace="http://calendarserver.org/ns/"><A:property name="displayname" namespace="DAV:"/><A:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/></A:property></A:expand-property>"#;
    let r = as_user(
        &srv,
        "bob",
        "REPORT",
        "/dav/principals/bob/",
        expand,
        &[("Depth", "0")],
    )
    .await;
    r.expect(207);
    let text = r.text();
    assert!(
        text.contains("<D:href>/dav/principals/alice/</D:href>") && text.contains("Alice A"),
        "{text}"
    );

    // Carol reads alice's calendar, but may not write it.
    as_user(&srv, "carol", "PROPFIND", cal, "", &[("Depth", "1")])
        .await
        .expect(207);
    let got = as_user(&srv, "carol", "GET", &format!("{cal}mine.ics"), "", &[]).await;
    got.expect(200);
    assert!(got.text().contains("Alice's own"));
    as_user(
        &srv,
        "carol",
        "PUT",
        &format!("{cal}carol.ics"),
        &common::event("c", "x"),
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(403);
    as_user(&srv, "carol", "DELETE", &format!("{cal}mine.ics"), "", &[])
        .await
        .expect(403);
    let r = as_user(&srv, "carol", "PROPFIND", cal, "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:current-user-privilege-set/><D:displayname/></D:prop></D:propfind>", &[("Depth", "0")]).await;
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    let privs = found_prop(resp, "DAV:", "current-user-privilege-set").expect("privileges");
    assert!(
        !privs
            .children_named("DAV:", "privilege")
            .any(|p| p.child("DAV:", "write").is_some()),
        "a read delegate is shown write access"
    );
    assert_eq!(
        found_prop(resp, "DAV:", "displayname")
            .map(|d| d.text)
            .as_deref(),
        Some("Calendar"),
        "a delegate sees the owner's names"
    );
    // Dave is nobody's delegate: still kept out.
    as_user(&srv, "dave", "GET", &format!("{cal}mine.ics"), "", &[])
        .await
        .expect(403);

    // Bob, the secretary, books a meeting in alice's calendar, as alice: dave is invited by alice.
    let meeting = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:sec-1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300110T090000Z\r\nDTEND:20300110T100000Z\r\nSUMMARY:Booked by bob\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:dave@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = as_user(
        &srv,
        "bob",
        "PUT",
        &format!("{cal}sec-1.ics"),
        meeting,
        &[("Content-Type", "text/calendar")],
    )
    .await;
    r.expect(201);
    assert!(
        r.header("schedule-tag").is_some(),
        "the delegate's write was not scheduled"
    );
    let inbox = as_user(
        &srv,
        "dave",
        "PROPFIND",
        "/dav/calendars/dave/inbox/",
        "",
        &[("Depth", "1")],
    )
    .await;
    let items: Vec<String> = responses(&inbox.xml())
        .into_iter()
        .map(|(h, _)| h)
        .filter(|h| h.ends_with(".ics"))
        .collect();
    assert_eq!(items.len(), 1);
    let msg = as_user(&srv, "dave", "GET", &items[0], "", &[])
        .await
        .text();
    // Dave sees that bob acted for alice (RFC 5545 3.2.18 SENT-BY).
    let msg = msg.replace("\r\n ", "");
    assert!(
        msg.contains("METHOD:REQUEST")
            && msg.contains("SENT-BY=\"mailto:bob@example.org\":mailto:alice@example.org"),
        "{msg}"
    );
    // Booking for alice, bob asks free-busy through alice's outbox as a client does (RFC 6638
    // 5): he is her read-write delegate, so it is answered, with alice's own busy time.
    let fb = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb-sec\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300110T000000Z\r\nDTEND:20300111T000000Z\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:alice@example.org\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
    let outbox = "/dav/calendars/alice/outbox/";
    let r = as_user(
        &srv,
        "bob",
        "POST",
        outbox,
        fb,
        &[("Content-Type", "text/calendar")],
    )
    .await;
    r.expect(200);
    let text = r.unfolded();
    assert!(
        text.contains("2.0;Success") && text.contains("20300110T090000Z/20300110T100000Z"),
        "{text}"
    );
    // Dave, nobody's delegate yet, may not ask through her outbox.
    as_user(
        &srv,
        "dave",
        "POST",
        outbox,
        fb,
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(403);
    // A read delegate may not act for her: 403, need-privileges naming the outbox's URL.
    let r = as_user(
        &srv,
        "carol",
        "POST",
        outbox,
        fb,
        &[("Content-Type", "text/calendar")],
    )
    .await;
    r.expect(403);
    let body = r.text();
    assert!(
        body.contains("need-privileges") && body.contains(&format!("<D:href>{outbox}</D:href>")),
        "{body}"
    );

    // Bob's own home is untouched by it, and he still cannot reach dave's.
    as_user(&srv, "bob", "GET", "/dav/calendars/dave/calendar/", "", &[])
        .await
        .expect(403);

    // The CLI manages the same groups.
    let listed = srv.cli_ok(&["delegate", "list", "alice"], "");
    assert!(
        listed.contains("bob\tread-write") && listed.contains("carol\tread-only"),
        "{listed}"
    );
    srv.cli_ok(&["delegate", "remove", "alice", "carol"], "");
    as_user(&srv, "carol", "GET", &format!("{cal}mine.ics"), "", &[])
        .await
        .expect(403);
    srv.cli_ok(&["delegate", "add", "alice", "dave"], "");
    as_user(&srv, "dave", "GET", &format!("{cal}mine.ics"), "", &[])
        .await
        .expect(200);
    let (code, _, err) = srv.cli(&["delegate", "add", "alice", "alice"], "");
    assert!(code != 0 && err.contains("own delegate"), "{err}");
    // Emptying the write group ends bob's access at once.
    srv.send(
        srv.req("PROPPATCH", "/dav/principals/alice/calendar-proxy-write/")
            .header("Content-Type", "application/xml")
            .body(set_members(&[])),
    )
    .await
    .expect(207);
    as_user(&srv, "bob", "GET", &format!("{cal}mine.ics"), "", &[])
        .await
        .expect(403);
}
both_backends!(calendar_proxy_delegation, delegation);

/// Naming someone a delegate gives *them* access to *your* calendars, never the other way
/// round: erin adds carol to both of her proxy groups without asking, and erin can still read
/// and write nothing of carol's, in either direction of the groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_delegate_grants_the_adder_nothing() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol", "erin"]);
    srv.send_as(
        "carol",
        "PUT",
        "/dav/calendars/carol/calendar/c.ics",
        &common::event("c", "Carol's own"),
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(201);
    for group in ["calendar-proxy-read", "calendar-proxy-write"] {
        as_user(
            &srv,
            "erin",
            "PROPPATCH",
            &format!("/dav/principals/erin/{group}/"),
            &set_members(&["/dav/principals/carol/"]),
            &[("Content-Type", "application/xml")],
        )
        .await
        .expect(207);
    }
    for (method, path, body) in [
        ("GET", "/dav/calendars/carol/calendar/c.ics", String::new()),
        ("PROPFIND", "/dav/calendars/carol/", String::new()),
        (
            "PUT",
            "/dav/calendars/carol/calendar/e.ics",
            common::event("e", "Erin's in Carol's"),
        ),
        (
            "DELETE",
            "/dav/calendars/carol/calendar/c.ics",
            String::new(),
        ),
    ] {
        let r = as_user(
            &srv,
            "erin",
            method,
            path,
            &body,
            &[("Content-Type", "text/calendar"), ("Depth", "1")],
        )
        .await;
        assert_eq!(r.status.as_u16(), 403, "erin {method} {path}: {}", r.text());
        assert!(!r.text().contains("Carol's own"));
    }
    // Carol's calendar is as it was; erin's own home is open to carol, as erin chose.
    let r = as_user(
        &srv,
        "carol",
        "GET",
        "/dav/calendars/carol/calendar/c.ics",
        "",
        &[],
    )
    .await;
    r.expect(200);
    assert!(r.text().contains("Carol's own"));
    as_user(
        &srv,
        "carol",
        "PROPFIND",
        "/dav/calendars/erin/",
        "",
        &[("Depth", "0")],
    )
    .await
    .expect(207);
}
