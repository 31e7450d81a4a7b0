//! Schedule sharing (issue 6) through real HTTP on both backends: delegated entries reach a
//! recipient's own home in a calendar named for the owner, styled with the owner's colour,
//! avatar and name; they follow the owner's edits and deletion; the recipient cannot change
//! them but keeps their own alarms; PRIVATE events arrive as busy blocks; calendar rules and
//! the JSON API share as the CalDAV convention does.

mod common;

use common::{Resp, TestServer};

use convene::dav::NS_APPLE;

fn ev(uid: &str, start: &str, summary: &str, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

const TO_BOB: &str = "ATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:bob@example.org\r\n";

async fn get(srv: &TestServer, user: &str, path: &str) -> Resp {
    srv.send_as(user, "GET", path, "", &[]).await
}

/// `who` posts a share rule (JSON) through the API.
async fn post_rule(srv: &TestServer, who: &str, json: &str) -> Resp {
    srv.send_as(
        who,
        "POST",
        "/api/share/rules",
        json,
        &[("Content-Type", "application/json")],
    )
    .await
}

/// `who` deletes share rule `id` through the API.
async fn drop_rule(srv: &TestServer, who: &str, id: &serde_json::Value) -> Resp {
    srv.send_as(who, "DELETE", &format!("/api/share/rules/{id}"), "", &[])
        .await
}

fn one_with<'a>(copies: &'a [(String, String)], needle: &str) -> Option<&'a (String, String)> {
    copies.iter().find(|(_, d)| d.contains(needle))
}

async fn sharing(srv: TestServer) {
    srv.add_users(&["carol", "dave"]);
    let base = srv.base.clone();

    // Alice picks her colour (others see her entries in it).
    let r = srv
        .send_as(
            "alice",
            "PUT",
            "/api/share/settings",
            r##"{"colour":"#2E8B57"}"##,
            &[("Content-Type", "application/json")],
        )
        .await;
    r.expect(200);
    assert!(
        r.text().contains("\"effective_colour\":\"#2E8B57\""),
        "{}",
        r.text()
    );
    srv.send_as(
        "alice",
        "PUT",
        "/api/share/settings",
        r#"{"colour":"green"}"#,
        &[],
    )
    .await
    .expect(400);

    // Alice shares an event with bob by the CalDAV convention.
    let e1 = ev(
        "share-1",
        "20300105T100000Z",
        "Planning",
        &format!("DESCRIPTION:Agenda inside\r\n{TO_BOB}"),
    );
    srv.put_ics("/dav/calendars/alice/calendar/share-1.ics", &e1)
        .await
        .expect(201);
    let copies = common::copies_of(&srv, "bob", "alice", "the shared event", |c| {
        one_with(c, "Planning").is_some()
    })
    .await;
    let (href, data) = one_with(&copies, "Planning").expect("copy").clone();
    assert!(data.contains("COLOR:seagreen\r\n"), "{data}");
    assert!(
        data.contains(&format!(
            "IMAGE;VALUE=URI;DISPLAY=BADGE:{base}/api/directory/people/alice/photo\r\n"
        )),
        "{data}"
    );
    assert!(
        data.contains("X-CONVENE-OWNER;CN=\"Alice A\":mailto:alice@example.org\r\n"),
        "{data}"
    );
    assert!(data.contains("DESCRIPTION:Agenda inside"), "{data}");
    assert!(
        !data.contains("ATTENDEE"),
        "the share list stays the owner's: {data}"
    );
    // The calendar is named for alice and has her colour; it is in bob's own home.
    let r = srv
        .send_as(
            "bob",
            "PROPFIND",
            "/dav/calendars/bob/",
            r#"<D:propfind xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:prop><D:displayname/><A:calendar-color/><D:current-user-privilege-set/></D:prop></D:propfind>"#,
            &[("Depth", "1")],
        )
        .await;
    r.expect(207);
    let mount = common::responses(&r.xml())
        .into_iter()
        .find(|(h, _)| h == "/dav/calendars/bob/from~alice/")
        .expect("bob's calendar of alice's entries")
        .1;
    assert_eq!(
        common::prop_text(&mount, "DAV:", "displayname").as_deref(),
        Some("Alice A")
    );
    assert_eq!(
        common::prop_text(&mount, NS_APPLE, "calendar-color").as_deref(),
        Some("#2E8B57FF")
    );
    let privs = format!(
        "{:?}",
        common::found_prop(&mount, "DAV:", "current-user-privilege-set").expect("privileges")
    );
    assert!(
        privs.contains("write-properties") && !privs.contains("write-content"),
        "read-only but nameable: {privs}"
    );
    // Not an invitation: nothing in bob's inbox, nothing in his own calendar.
    let r = srv
        .send_as(
            "bob",
            "PROPFIND",
            "/dav/calendars/bob/inbox/",
            "",
            &[("Depth", "1")],
        )
        .await;
    assert!(!r.text().contains(".ics</D:href>"), "{}", r.text());
    let r = srv
        .send_as(
            "bob",
            "PROPFIND",
            "/dav/calendars/bob/calendar/",
            "",
            &[("Depth", "1")],
        )
        .await;
    assert!(!r.text().contains(".ics</D:href>"), "{}", r.text());

    // Alice changes her colour: bob's existing copy takes it without an edit of hers.
    srv.send_as(
        "alice",
        "PUT",
        "/api/share/settings",
        r##"{"colour":"#4169E1"}"##,
        &[("Content-Type", "application/json")],
    )
    .await
    .expect(200);
    common::copies_of(&srv, "bob", "alice", "the new colour on the copy", |c| {
        one_with(c, "COLOR:royalblue\r\n").is_some()
    })
    .await;

    // Bob's sync token, then alice moves the event: bob's next sync shows it.
    let r = srv
        .send_as(
            "bob",
            "REPORT",
            "/dav/calendars/bob/from~alice/",
            r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#,
            &[("Content-Type", "application/xml")],
        )
        .await;
    r.expect(207);
    let token = r
        .xml()
        .child("DAV:", "sync-token")
        .map(|t| t.text.clone())
        .expect("token");
    let moved = e1.replace("DTSTART:20300105T100000Z", "DTSTART:20300106T090000Z");
    srv.put_ics("/dav/calendars/alice/calendar/share-1.ics", &moved)
        .await
        .expect(204);
    common::copies_of(&srv, "bob", "alice", "the moved event", |c| {
        one_with(c, "DTSTART:20300106T090000Z").is_some()
    })
    .await;
    let r = srv
        .send_as(
            "bob",
            "REPORT",
            "/dav/calendars/bob/from~alice/",
            &format!(
                r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
            ),
            &[("Content-Type", "application/xml")],
        )
        .await;
    r.expect(207);
    assert!(
        r.text().contains(&href),
        "bob's sync reports the change: {}",
        r.text()
    );

    // Bob cannot change alice's content, add to or remove from her calendar.
    let copy = get(&srv, "bob", &href).await;
    copy.expect(200);
    let body = copy.text();
    let r = srv
        .send_as(
            "bob",
            "PUT",
            &href,
            &body.replace("SUMMARY:Planning", "SUMMARY:Mine now"),
            &[("Content-Type", "text/calendar")],
        )
        .await;
    r.expect(403);
    assert!(r.text().contains("need-privileges"), "{}", r.text());
    srv.send_as("bob", "DELETE", &href, "", &[])
        .await
        .expect(403);
    srv.send_as(
        "bob",
        "PUT",
        "/dav/calendars/bob/from~alice/new.ics",
        &ev("bob-own", "20300105T100000Z", "x", ""),
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(403);
    srv.send_as(
        "bob",
        "MKCALENDAR",
        "/dav/calendars/bob/from~mallory/",
        "",
        &[],
    )
    .await
    .expect(403);
    srv.send_as(
        "bob",
        "MOVE",
        &href,
        "",
        &[(
            "Destination",
            &format!("{base}/dav/calendars/bob/calendar/x.ics"),
        )],
    )
    .await
    .expect(403);
    // ... but keeps his own alarm, through alice's next edit.
    let with_alarm = body.replace(
        "END:VEVENT",
        "TRANSP:TRANSPARENT\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:bob's own\r\nEND:VALARM\r\nEND:VEVENT",
    );
    srv.send_as(
        "bob",
        "PUT",
        &href,
        &with_alarm,
        &[
            ("Content-Type", "text/calendar"),
            ("If-Match", &copy.etag()),
        ],
    )
    .await
    .expect(204);
    let again = moved.replace("SUMMARY:Planning", "SUMMARY:Planning v2");
    srv.put_ics("/dav/calendars/alice/calendar/share-1.ics", &again)
        .await
        .expect(204);
    let copies = common::copies_of(&srv, "bob", "alice", "the second edit", |c| {
        one_with(c, "Planning v2").is_some()
    })
    .await;
    let (_, data) = one_with(&copies, "Planning v2").expect("copy");
    assert!(
        data.contains("TRIGGER:-PT15M"),
        "bob's alarm survives: {data}"
    );
    assert!(
        data.contains("TRANSP:TRANSPARENT"),
        "and his transparency: {data}"
    );

    // Nobody else reads bob's calendars.
    srv.send_as("dave", "GET", &href, "", &[]).await.expect(403);

    // Odd recipient addresses are skipped; the worker carries on.
    srv.put_ics(
        "/dav/calendars/alice/calendar/odd.ics",
        &ev(
            "odd",
            "20300108T100000Z",
            "Odd recipients",
            "ATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:ééééééé\r\nATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:ghost@example.org\r\nATTENDEE;CUTYPE=GROUP;ROLE=NON-PARTICIPANT;RSVP=FALSE:/dav/departments/%FF/\r\n",
        ),
    )
    .await
    .expect(201);
    // A PRIVATE event reaches bob as a busy block.
    let private = ev(
        "share-2",
        "20300107T100000Z",
        "Doctor",
        &format!("CLASS:PRIVATE\r\nDESCRIPTION:Cardiology\r\nLOCATION:Clinic\r\n{TO_BOB}"),
    );
    srv.put_ics("/dav/calendars/alice/calendar/share-2.ics", &private)
        .await
        .expect(201);
    let copies =
        common::copies_of(&srv, "bob", "alice", "the private event", |c| c.len() == 2).await;
    let (_, busy) = one_with(&copies, "20300107T100000Z").expect("busy copy");
    assert!(busy.contains("SUMMARY:Busy\r\n"), "{busy}");
    for leak in ["Doctor", "Cardiology", "Clinic"] {
        assert!(!busy.contains(leak), "{leak} leaked: {busy}");
    }

    // Bob asks for the owner's name on his copies; alice's next edit brings it.
    srv.send_as(
        "bob",
        "PUT",
        "/api/share/settings",
        r#"{"colour":null,"prefix_summary":true}"#,
        &[("Content-Type", "application/json")],
    )
    .await
    .expect(200);
    srv.put_ics(
        "/dav/calendars/alice/calendar/share-1.ics",
        &again.replace("Planning v2", "Planning v3"),
    )
    .await
    .expect(204);
    common::copies_of(&srv, "bob", "alice", "the prefixed summary", |c| {
        one_with(c, "SUMMARY:[Alice A] Planning v3").is_some()
    })
    .await;

    // A rule: everything in alice's team calendar goes to carol, events made before the rule
    // included; removing the rule removes carol's copies.
    srv.send_as("alice", "MKCALENDAR", "/dav/calendars/alice/team/", "", &[])
        .await
        .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/team/t1.ics",
        &ev("team-1", "20300110T100000Z", "Standup", ""),
    )
    .await
    .expect(201);
    let r = post_rule(
        &srv,
        "alice",
        r#"{"calendar":"team","kind":"user","target":"carol"}"#,
    )
    .await;
    r.expect(201);
    let rule: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    post_rule(
        &srv,
        "alice",
        r#"{"calendar":"team","kind":"user","target":"nobody"}"#,
    )
    .await
    .expect(400);
    post_rule(
        &srv,
        "bob",
        r#"{"calendar":"team","kind":"user","target":"bob"}"#,
    )
    .await
    .expect(404);
    common::copies_of(&srv, "carol", "alice", "the existing team event", |c| {
        one_with(c, "Standup").is_some()
    })
    .await;
    srv.put_ics(
        "/dav/calendars/alice/team/t2.ics",
        &ev("team-2", "20300111T100000Z", "Retro", ""),
    )
    .await
    .expect(201);
    common::copies_of(&srv, "carol", "alice", "the new team event", |c| {
        c.len() == 2
    })
    .await;
    let r = srv
        .send_as("alice", "GET", "/api/share/rules", "", &[])
        .await;
    assert!(r.text().contains("\"target\":\"carol\""), "{}", r.text());
    drop_rule(&srv, "bob", &rule["id"]).await.expect(404);
    drop_rule(&srv, "alice", &rule["id"]).await.expect(204);
    common::copies_of(&srv, "carol", "alice", "the rule's copies removed", |c| {
        c.is_empty()
    })
    .await;

    // The JSON API sets an event's recipients (written into the event by the convention).
    srv.put_ics(
        "/dav/calendars/alice/calendar/share-3.ics",
        &ev("share-3", "20300112T100000Z", "Review", ""),
    )
    .await
    .expect(201);
    let r = srv
        .send_as(
            "alice",
            "PUT",
            "/api/share/events/calendar/share-3.ics",
            r#"{"users":["dave"]}"#,
            &[("Content-Type", "application/json")],
        )
        .await;
    r.expect(200);
    let stored = get(&srv, "alice", "/dav/calendars/alice/calendar/share-3.ics").await;
    assert!(
        stored
            .text()
            .contains("ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:dave@example.org"),
        "{}",
        stored.text()
    );
    common::copies_of(&srv, "dave", "alice", "the API share", |c| {
        one_with(c, "Review").is_some()
    })
    .await;
    srv.send_as(
        "alice",
        "PUT",
        "/api/share/events/calendar/share-3.ics",
        r#"{"users":["ghost"]}"#,
        &[],
    )
    .await
    .expect(400);
    srv.send_as(
        "bob",
        "PUT",
        "/api/share/events/calendar/share-3.ics",
        r#"{"users":["bob"]}"#,
        &[],
    )
    .await
    .expect(404);
    srv.send_as(
        "alice",
        "PUT",
        "/api/share/events/calendar/share-3.ics",
        r#"{"users":[]}"#,
        &[],
    )
    .await
    .expect(200);
    common::copies_of(&srv, "dave", "alice", "the API share withdrawn", |c| {
        c.is_empty()
    })
    .await;

    // Alice deletes the event: bob's copy goes.
    srv.send(srv.req("DELETE", "/dav/calendars/alice/calendar/share-1.ics"))
        .await
        .expect(204);
    common::copies_of(&srv, "bob", "alice", "the deletion", |c| {
        one_with(c, "Planning").is_none() && c.len() == 1
    })
    .await;
    get(&srv, "bob", &href).await.expect(404);

    // A whole calendar deleted: its copies go too (found on the worker's timer).
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/brief/"))
        .await
        .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/brief/x.ics",
        &ev("brief-1", "20300120T100000Z", "Short-lived", TO_BOB),
    )
    .await
    .expect(201);
    common::copies_of(&srv, "bob", "alice", "the short-lived event", |c| {
        one_with(c, "Short-lived").is_some()
    })
    .await;
    srv.send(srv.req("DELETE", "/dav/calendars/alice/brief/"))
        .await
        .expect(204);
    common::copies_of(
        &srv,
        "bob",
        "alice",
        "the deleted calendar's copies removed",
        |c| one_with(c, "Short-lived").is_none(),
    )
    .await;
}

both_backends!(delegated_entries, sharing);

/// A calendar far larger than the worker's page of change-log entries: every member's copy
/// arrives, deletions on any page reach the copies, and a rule added later (which reconciles
/// the calendar whole, page by page) and then removed reaches every member.
async fn many_pages(srv: TestServer) {
    srv.add_users(&["carol"]);
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/big/"))
        .await
        .expect(201);
    const N: usize = 450;
    for k in 0..N {
        srv.put_ics(
            &format!("/dav/calendars/alice/big/e{k}.ics"),
            &ev(
                &format!("big-{k}"),
                &format!("2030{:02}{:02}T100000Z", 1 + k % 12, 1 + k % 28),
                &format!("Item {k}."),
                TO_BOB,
            ),
        )
        .await
        .expect(201);
    }
    common::copies_of(&srv, "bob", "alice", "every member's copy", |c| {
        c.len() == N
    })
    .await;
    // Deletions on the first, middle and last page of the log.
    for k in [0, 250, N - 1] {
        srv.send(srv.req("DELETE", &format!("/dav/calendars/alice/big/e{k}.ics")))
            .await
            .expect(204);
    }
    let left = common::copies_of(&srv, "bob", "alice", "the deletions", |c| c.len() == N - 3).await;
    for k in [0, 250, N - 1] {
        assert!(
            one_with(&left, &format!("Item {k}.")).is_none(),
            "copy of e{k} left"
        );
    }
    assert!(one_with(&left, "Item 249.").is_some());
    let r = post_rule(
        &srv,
        "alice",
        r#"{"calendar":"big","kind":"user","target":"carol"}"#,
    )
    .await;
    r.expect(201);
    let rule: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    common::copies_of(&srv, "carol", "alice", "the rule, whole", |c| {
        c.len() == N - 3
    })
    .await;
    drop_rule(&srv, "alice", &rule["id"]).await.expect(204);
    common::copies_of(&srv, "carol", "alice", "the rule withdrawn", |c| {
        c.is_empty()
    })
    .await;
    let bob = common::copies_of(&srv, "bob", "alice", "bob's copies kept", |c| {
        c.len() == N - 3
    })
    .await;
    assert_eq!(bob.len(), N - 3);
}

both_backends!(calendar_larger_than_a_page, many_pages);

/// Two instances on one PostgreSQL database: each one's workers see the other's writes (the
/// change log is the job queue), and the lease keeps the copies single.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_store() {
    let a = TestServer::start(common::Backend::Postgres).await;
    let b = a.another_instance().await;
    a.put_ics(
        "/dav/calendars/alice/calendar/multi.ics",
        &ev("multi", "20300105T100000Z", "Across instances", TO_BOB),
    )
    .await
    .expect(201);
    let seen = common::copies_of(
        &b,
        "bob",
        "alice",
        "the copy through the other instance",
        |c| one_with(c, "Across instances").is_some(),
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    let r = b
        .send(b.req("GET", "/dav/calendars/alice/calendar/multi.ics"))
        .await;
    r.expect(200);
    b.put_ics(
        "/dav/calendars/alice/calendar/multi.ics",
        &ev("multi", "20300105T100000Z", "Edited on b", TO_BOB),
    )
    .await
    .expect(204);
    let seen = common::copies_of(
        &a,
        "bob",
        "alice",
        "the edit made on the other instance",
        |c| one_with(c, "Edited on b").is_some(),
    )
    .await;
    assert_eq!(
        seen.len(),
        1,
        "one copy, whichever worker made it: {seen:?}"
    );
}
