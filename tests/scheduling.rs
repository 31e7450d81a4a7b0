//! RFC 6638 scheduling through real HTTP, on SQLite and PostgreSQL: principal and mailbox
//! properties, implicit REQUEST/REPLY/CANCEL with auto-schedule into the attendee's calendar,
//! SCHEDULE-STATUS, SCHEDULE-AGENT, Schedule-Tag and If-Schedule-Tag-Match, personal alarms
//! kept across organizer updates, instance cancellation, attendee deletion, VTODO assignment,
//! the outbox free-busy look-up, and the mailboxes' own protections.

mod common;

use common::{Resp, TestServer, found_prop, prop_text, responses};

use convene::dav::NS_CALDAV as NS_C;

fn meeting(uid: &str, summary: &str, attendees: &[&str], extra: &str) -> String {
    let mut s = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300105T100000Z\r\nDTEND:20300105T110000Z\r\nSUMMARY:{summary}\r\nORGANIZER;CN=Alice:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\n"
    );
    for a in attendees {
        s.push_str(&format!("ATTENDEE;RSVP=TRUE;{a}\r\n"));
    }
    s.push_str(extra);
    s.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    s
}

async fn put_as(
    srv: &TestServer,
    user: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut all = vec![("Content-Type", "text/calendar; charset=utf-8")];
    all.extend_from_slice(headers);
    srv.send_as(user, "PUT", path, body, &all).await
}

async fn get_as(srv: &TestServer, user: &str, path: &str) -> Resp {
    srv.send_as(user, "GET", path, "", &[]).await
}

/// Hrefs of the members of a collection, as `user` sees it.
async fn members(srv: &TestServer, user: &str, path: &str) -> Vec<String> {
    let r = srv
        .send(
            srv.req_as(user, &format!("{user}-password"), "PROPFIND", path)
                .header("Depth", "1")
                .body("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:getetag/></D:prop></D:propfind>"),
        )
        .await;
    r.expect(207);
    responses(&r.xml())
        .into_iter()
        .map(|(h, _)| h)
        .filter(|h| h.trim_end_matches('/') != path.trim_end_matches('/'))
        .collect()
}

/// Bodies of the messages in `user`'s inbox.
async fn inbox(srv: &TestServer, user: &str) -> Vec<String> {
    let mut out = vec![];
    for href in members(srv, user, &format!("/dav/calendars/{user}/inbox/")).await {
        out.push(get_as(srv, user, &href).await.expect(200).unfolded());
    }
    out
}

/// The one object with this UID in `user`'s calendar `cal`: (href, response).
async fn copy_of(srv: &TestServer, user: &str, cal: &str, uid: &str) -> Option<(String, Resp)> {
    for href in members(srv, user, &format!("/dav/calendars/{user}/{cal}/")).await {
        let r = get_as(srv, user, &href).await;
        if r.unfolded().contains(&format!("UID:{uid}\r\n")) {
            return Some((href, r));
        }
    }
    None
}

async fn scheduling(srv: TestServer) {
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

    // --- Discovery: principal properties, mailboxes, OPTIONS.
    let r = srv.send(srv.req("OPTIONS", "/dav/")).await;
    assert!(
        r.header("dav")
            .unwrap_or_default()
            .contains("calendar-auto-schedule")
    );
    let r = srv
        .propfind(
            "/dav/principals/alice/",
            "0",
            r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:schedule-inbox-URL/><C:schedule-outbox-URL/><C:calendar-user-address-set/><C:calendar-user-type/></D:prop></D:propfind>"#,
        )
        .await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    let inbox_url = found_prop(resp, NS_C, "schedule-inbox-URL").expect("inbox URL");
    assert_eq!(
        inbox_url.child("DAV:", "href").expect("href").text,
        "/dav/calendars/alice/inbox/"
    );
    let outbox_url = found_prop(resp, NS_C, "schedule-outbox-URL").expect("outbox URL");
    assert_eq!(
        outbox_url.child("DAV:", "href").expect("href").text,
        "/dav/calendars/alice/outbox/"
    );
    let addrs = found_prop(resp, NS_C, "calendar-user-address-set").expect("addresses");
    let hrefs: Vec<String> = addrs
        .children_named("DAV:", "href")
        .map(|h| h.text.clone())
        .collect();
    assert_eq!(hrefs[0], "mailto:alice@example.org");
    assert_eq!(
        prop_text(resp, NS_C, "calendar-user-type").as_deref(),
        Some("INDIVIDUAL")
    );

    let r = srv
        .propfind(
            "/dav/calendars/alice/inbox/",
            "0",
            r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:resourcetype/><C:schedule-default-calendar-URL/><D:current-user-privilege-set/></D:prop></D:propfind>"#,
        )
        .await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    assert!(
        found_prop(resp, "DAV:", "resourcetype")
            .expect("type")
            .child(NS_C, "schedule-inbox")
            .is_some()
    );
    let def = found_prop(resp, NS_C, "schedule-default-calendar-URL").expect("default calendar");
    assert_eq!(
        def.child("DAV:", "href").expect("href").text,
        "/dav/calendars/alice/calendar/"
    );
    let privs = found_prop(resp, "DAV:", "current-user-privilege-set").expect("privileges");
    assert!(
        privs
            .children_named("DAV:", "privilege")
            .any(|p| p.child(NS_C, "schedule-deliver").is_some())
    );

    // --- Organizer PUT: REQUEST to bob (inbox and calendar), nothing to carol (her client
    // schedules), nothing deliverable for an address no one here owns.
    let path = "/dav/calendars/alice/calendar/m1.ics";
    let body = meeting(
        "m1",
        "Planning",
        &[
            "PARTSTAT=NEEDS-ACTION:mailto:Bob@Example.org",
            "SCHEDULE-AGENT=CLIENT:mailto:carol@example.org",
            "PARTSTAT=NEEDS-ACTION:mailto:dave@elsewhere.test",
        ],
        "",
    );
    let r = put_as(&srv, "alice", path, &body, &[]).await;
    r.expect(201);
    // The server added SCHEDULE-STATUS, so it must not hand back an ETag for the client's bytes.
    assert!(
        r.header("etag").is_none(),
        "ETag returned for rewritten data"
    );
    let org_tag = r.header("schedule-tag").expect("Schedule-Tag on PUT");
    let stored = get_as(&srv, "alice", path).await;
    stored.expect(200);
    assert_eq!(
        stored.header("schedule-tag").as_deref(),
        Some(org_tag.as_str())
    );
    let text = stored.unfolded();
    assert!(
        text.contains("SCHEDULE-STATUS=1.2:mailto:Bob@Example.org"),
        "{text}"
    );
    assert!(
        text.contains("SCHEDULE-STATUS=5.1:mailto:dave@elsewhere.test"),
        "{text}"
    );
    assert!(
        text.contains("ATTENDEE;RSVP=TRUE;SCHEDULE-AGENT=CLIENT:mailto:carol@example.org"),
        "{text}"
    );

    let bob_inbox = inbox(&srv, "bob").await;
    assert_eq!(bob_inbox.len(), 1, "{bob_inbox:?}");
    assert!(bob_inbox[0].contains("METHOD:REQUEST\r\n") && bob_inbox[0].contains("UID:m1\r\n"));
    assert!(
        !bob_inbox[0].contains("SCHEDULE-STATUS"),
        "{}",
        bob_inbox[0]
    );
    assert!(
        inbox(&srv, "carol").await.is_empty(),
        "SCHEDULE-AGENT=CLIENT was not honoured"
    );
    let (bob_href, bob_copy) = copy_of(&srv, "bob", "calendar", "m1")
        .await
        .expect("auto-scheduled copy");
    let bob_tag = bob_copy
        .header("schedule-tag")
        .expect("attendee copy has a Schedule-Tag");
    assert!(
        bob_copy
            .unfolded()
            .contains("PARTSTAT=NEEDS-ACTION:mailto:Bob@Example.org")
    );
    assert!(
        !bob_copy.unfolded().contains("METHOD"),
        "a calendar copy carries no METHOD"
    );
    // Bob sees the copy in a time-range query like any event of his.
    let r = srv
        .send(
            srv.req_as("bob", "bob-password", "REPORT", "/dav/calendars/bob/calendar/")
                .header("Depth", "1")
                .body(r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20300105T000000Z" end="20300106T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#),
        )
        .await;
    r.expect(207);
    assert_eq!(responses(&r.xml()).len(), 1);

    // --- Bob answers (PARTSTAT only, with the tag he read): REPLY to alice, folded into her
    // copy; neither copy's Schedule-Tag moves.
    let accepted = bob_copy.unfolded().replace(
        "PARTSTAT=NEEDS-ACTION:mailto:Bob@Example.org",
        "PARTSTAT=ACCEPTED:mailto:Bob@Example.org",
    );
    let r = put_as(
        &srv,
        "bob",
        &bob_href,
        &accepted,
        &[("If-Schedule-Tag-Match", &bob_tag)],
    )
    .await;
    r.expect(204);
    assert_eq!(r.header("schedule-tag").as_deref(), Some(bob_tag.as_str()));
    let alice_inbox = inbox(&srv, "alice").await;
    assert_eq!(alice_inbox.len(), 1, "{alice_inbox:?}");
    assert!(
        alice_inbox[0].contains("METHOD:REPLY\r\n") && alice_inbox[0].contains("PARTSTAT=ACCEPTED")
    );
    let stored = get_as(&srv, "alice", path).await;
    assert!(
        stored
            .unfolded()
            .contains("PARTSTAT=ACCEPTED;RSVP=TRUE;SCHEDULE-STATUS=2.0:mailto:Bob@Example.org")
            || stored.unfolded().contains("PARTSTAT=ACCEPTED"),
        "{}",
        stored.unfolded()
    );
    assert_eq!(
        stored.header("schedule-tag").as_deref(),
        Some(org_tag.as_str()),
        "a reply changed the organizer's Schedule-Tag"
    );
    // Bob keeps a personal alarm on his copy.
    let (_, bob_copy) = copy_of(&srv, "bob", "calendar", "m1").await.expect("copy");
    let with_alarm = bob_copy.unfolded().replace(
        "END:VEVENT",
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Bob's own\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT",
    );
    put_as(&srv, "bob", &bob_href, &with_alarm, &[])
        .await
        .expect(204);

    // --- A stale Schedule-Tag is refused; the organizer's update reaches bob with a new tag
    // and his alarm survives it.
    let stale = put_as(
        &srv,
        "alice",
        path,
        &body,
        &[("If-Schedule-Tag-Match", "\"not-the-tag\"")],
    )
    .await;
    stale.expect(412);
    let v2 = meeting(
        "m1",
        "Planning v2",
        &[
            "PARTSTAT=ACCEPTED:mailto:Bob@Example.org",
            "SCHEDULE-AGENT=CLIENT:mailto:carol@example.org",
        ],
        "SEQUENCE:1\r\n",
    );
    let r = put_as(
        &srv,
        "alice",
        path,
        &v2,
        &[("If-Schedule-Tag-Match", &org_tag)],
    )
    .await;
    r.expect(204);
    assert_ne!(r.header("schedule-tag").as_deref(), Some(org_tag.as_str()));
    let (_, bob_copy) = copy_of(&srv, "bob", "calendar", "m1").await.expect("copy");
    let t = bob_copy.unfolded();
    assert!(
        t.contains("SUMMARY:Planning v2") && t.contains("DESCRIPTION:Bob's own"),
        "{t}"
    );
    assert_ne!(
        bob_copy.header("schedule-tag").as_deref(),
        Some(bob_tag.as_str())
    );
    assert_eq!(inbox(&srv, "bob").await.len(), 2);

    // --- Bob is taken off the meeting: CANCEL, and his copy goes.
    let v3 = meeting(
        "m1",
        "Planning v3",
        &["SCHEDULE-AGENT=CLIENT:mailto:carol@example.org"],
        "SEQUENCE:2\r\n",
    );
    put_as(&srv, "alice", path, &v3, &[]).await.expect(204);
    let msgs = inbox(&srv, "bob").await;
    assert!(
        msgs.iter()
            .any(|m| m.contains("METHOD:CANCEL\r\n") && m.contains("STATUS:CANCELLED")),
        "{msgs:?}"
    );
    assert!(copy_of(&srv, "bob", "calendar", "m1").await.is_none());

    // --- Invited again, then the organizer deletes the event: CANCEL again, copy gone.
    put_as(&srv, "alice", path, &v2, &[]).await.expect(204);
    assert!(copy_of(&srv, "bob", "calendar", "m1").await.is_some());
    let before = inbox(&srv, "bob").await.len();
    srv.send(srv.req("DELETE", path)).await.expect(204);
    let msgs = inbox(&srv, "bob").await;
    assert_eq!(msgs.len(), before + 1);
    assert!(copy_of(&srv, "bob", "calendar", "m1").await.is_none());

    // --- Re-saving what recipients already have sends nothing; SCHEDULE-FORCE-SEND sends
    // anyway, and is not kept in the stored copy.
    let path4 = "/dav/calendars/alice/calendar/m4.ics";
    let m4 = meeting(
        "m4",
        "Sync",
        &["PARTSTAT=NEEDS-ACTION:mailto:bob@example.org"],
        "",
    );
    put_as(&srv, "alice", path4, &m4, &[]).await.expect(201);
    let n = inbox(&srv, "bob").await.len();
    put_as(&srv, "alice", path4, &m4, &[]).await.expect(204);
    assert_eq!(
        inbox(&srv, "bob").await.len(),
        n,
        "an unchanged re-save was sent again"
    );
    let forced = m4.replace(
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:bob",
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION;SCHEDULE-FORCE-SEND=REQUEST:mailto:bob",
    );
    put_as(&srv, "alice", path4, &forced, &[]).await.expect(204);
    assert_eq!(
        inbox(&srv, "bob").await.len(),
        n + 1,
        "SCHEDULE-FORCE-SEND was ignored"
    );
    assert!(
        !get_as(&srv, "alice", path4)
            .await
            .unfolded()
            .contains("SCHEDULE-FORCE-SEND")
    );

    // --- An attendee deleting their copy declines (unless Schedule-Reply: F).
    let path2 = "/dav/calendars/alice/calendar/m2.ics";
    put_as(
        &srv,
        "alice",
        path2,
        &meeting(
            "m2",
            "Review",
            &["PARTSTAT=NEEDS-ACTION:mailto:bob@example.org"],
            "",
        ),
        &[],
    )
    .await
    .expect(201);
    let (href2, _) = copy_of(&srv, "bob", "calendar", "m2").await.expect("copy");
    srv.send(srv.req_as("bob", "bob-password", "DELETE", &href2))
        .await
        .expect(204);
    let stored = get_as(&srv, "alice", path2).await.unfolded();
    assert!(stored.contains("PARTSTAT=DECLINED"), "{stored}");

    // --- A recurring meeting where bob is dropped from one instance: his copy excludes it
    // (EXDATE) and he gets a CANCEL for that instance alone.
    let path3 = "/dav/calendars/alice/calendar/m3.ics";
    let series = |override_attendees: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:m3\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300107T090000Z\r\nDTEND:20300107T093000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:Standup\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:alice@example.org\r\nATTENDEE:mailto:bob@example.org\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:m3\r\nRECURRENCE-ID:20300108T090000Z\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300108T100000Z\r\nDTEND:20300108T103000Z\r\nSUMMARY:Standup (late)\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:alice@example.org\r\n{override_attendees}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    put_as(
        &srv,
        "alice",
        path3,
        &series("ATTENDEE:mailto:bob@example.org\r\n"),
        &[],
    )
    .await
    .expect(201);
    let (_, c) = copy_of(&srv, "bob", "calendar", "m3").await.expect("copy");
    assert!(c.unfolded().contains("Standup (late)") && !c.unfolded().contains("EXDATE"));
    put_as(&srv, "alice", path3, &series(""), &[])
        .await
        .expect(204);
    let (_, c) = copy_of(&srv, "bob", "calendar", "m3").await.expect("copy");
    assert!(
        c.unfolded().contains("EXDATE:20300108T090000Z")
            && !c.unfolded().contains("Standup (late)"),
        "{}",
        c.unfolded()
    );
    let msgs = inbox(&srv, "bob").await;
    assert!(
        msgs.iter().any(|m| m.contains("METHOD:CANCEL")
            && m.contains("RECURRENCE-ID:20300108T090000Z")
            && m.matches("BEGIN:VEVENT").count() == 1),
        "{msgs:?}"
    );

    // --- A task assigned to bob lands in his task list; his progress flows back.
    let task = "/dav/calendars/alice/tasks/t1.ics";
    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VTODO\r\nUID:t1\r\nDTSTAMP:20240101T000000Z\r\nDUE:20300110T170000Z\r\nSUMMARY:Write the report\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    put_as(&srv, "alice", task, todo, &[]).await.expect(201);
    let (thref, t) = copy_of(&srv, "bob", "tasks", "t1")
        .await
        .expect("assigned task");
    let done = t
        .unfolded()
        .replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=COMPLETED");
    put_as(&srv, "bob", &thref, &done, &[]).await.expect(204);
    assert!(
        get_as(&srv, "alice", task)
            .await
            .unfolded()
            .contains("PARTSTAT=COMPLETED")
    );

    // A private appointment of bob's counts as busy, and nothing else of it shows.
    let private = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:p1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300107T140000Z\r\nDTEND:20300107T150000Z\r\nCLASS:PRIVATE\r\nSUMMARY:Doctor\r\nLOCATION:Clinic\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    put_as(
        &srv,
        "bob",
        "/dav/calendars/bob/calendar/p1.ics",
        private,
        &[],
    )
    .await
    .expect(201);

    // --- Outbox free-busy: bob is busy at the standup, an unknown address is refused.
    let fb = |organizer: &str, method: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nMETHOD:{method}\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300107T000000Z\r\nDTEND:20300108T000000Z\r\nORGANIZER:{organizer}\r\nATTENDEE:mailto:bob@example.org\r\nATTENDEE:mailto:nobody@example.org\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
        )
    };
    let post = |user: &str, path: &str, body: String| {
        srv.req_as(user, &format!("{user}-password"), "POST", path)
            .header("Content-Type", "text/calendar")
            .body(body)
    };
    // Both copies of the series (it starts past the 3-year indexing horizon) are found by a
    // time-range query, expanded at query time (bob also has his private appointment).
    for (user, found) in [("alice", 1), ("bob", 2)] {
        let r = srv
            .send(
                srv.req_as(user, &format!("{user}-password"), "REPORT", &format!("/dav/calendars/{user}/calendar/"))
                    .header("Depth", "1")
                    .body(r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20300107T000000Z" end="20300108T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#),
            )
            .await;
        r.expect(207);
        assert_eq!(responses(&r.xml()).len(), found, "{user}: {}", r.unfolded());
    }
    let r = srv
        .send(post(
            "alice",
            "/dav/calendars/alice/outbox/",
            fb("mailto:alice@example.org", "REQUEST"),
        ))
        .await;
    r.expect(200);
    let ms = r.xml();
    let rs: Vec<_> = ms.children_named(NS_C, "response").collect();
    assert_eq!(rs.len(), 2);
    let status = |e: &convene::dav::Element| {
        e.child(NS_C, "request-status")
            .map(|s| s.text.clone())
            .unwrap_or_default()
    };
    assert!(status(rs[0]).starts_with("2.0"));
    let data = rs[0]
        .child(NS_C, "calendar-data")
        .expect("free-busy")
        .text
        .clone();
    assert!(
        data.contains("METHOD:REPLY")
            && data.contains("FREEBUSY;FBTYPE=BUSY:20300107T090000Z/20300107T093000Z"),
        "{data}"
    );
    assert!(
        data.contains("20300107T140000Z/20300107T150000Z")
            && !data.contains("Doctor")
            && !data.contains("Clinic"),
        "{data}"
    );
    assert!(status(rs[1]).starts_with("3.7"));
    let r = srv
        .send(post(
            "alice",
            "/dav/calendars/alice/outbox/",
            fb("mailto:bob@example.org", "REQUEST"),
        ))
        .await;
    r.expect(403);
    assert!(r.unfolded().contains("organizer-allowed"));
    let r = srv
        .send(post(
            "alice",
            "/dav/calendars/alice/outbox/",
            fb("mailto:alice@example.org", "COUNTER"),
        ))
        .await;
    r.expect(403);
    assert!(r.unfolded().contains("valid-scheduling-message"));
    srv.send(post(
        "alice",
        "/dav/calendars/alice/outbox/",
        "not a calendar".into(),
    ))
    .await
    .expect(400);
    srv.send(post(
        "bob",
        "/dav/calendars/alice/outbox/",
        fb("mailto:bob@example.org", "REQUEST"),
    ))
    .await
    .expect(403);
    srv.send(post(
        "alice",
        "/dav/calendars/alice/",
        fb("mailto:alice@example.org", "REQUEST"),
    ))
    .await
    .expect(405);

    // --- The mailboxes are the server's: no PUT into them, no deleting them; messages can go.
    put_as(
        &srv,
        "alice",
        "/dav/calendars/alice/inbox/x.ics",
        &common::event("x", "x"),
        &[],
    )
    .await
    .expect(403);
    srv.send(srv.req("DELETE", "/dav/calendars/alice/inbox/"))
        .await
        .expect(403);
    srv.send(srv.req("DELETE", "/dav/calendars/alice/outbox/"))
        .await
        .expect(403);
    let first = members(&srv, "alice", "/dav/calendars/alice/inbox/").await;
    srv.send(srv.req("DELETE", &first[0])).await.expect(204);
    // Another user's mailbox stays out of reach.
    srv.send(srv.req_as("bob", "bob-password", "GET", &first[1]))
        .await
        .expect(403);
}
both_backends!(implicit_scheduling, scheduling);

/// An organizer who sets STATUS:CANCELLED on the whole event sends a CANCEL, not an update
/// (RFC 5546 3.2.5), and the attendee's copy says cancelled; an event whose attendees have all
/// been removed is no longer a scheduling object and has no Schedule-Tag (RFC 6638 3.2.10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_event_sends_cancel_and_a_plain_event_has_no_schedule_tag() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let path = "/dav/calendars/alice/calendar/c.ics";
    let r = put_as(
        &srv,
        "alice",
        path,
        &meeting("c1", "Offsite", &["CN=Bob:mailto:bob@example.org"], ""),
        &[],
    )
    .await;
    r.expect(201);
    assert!(r.header("schedule-tag").is_some(), "a meeting has a tag");
    assert_eq!(inbox(&srv, "bob").await.len(), 1);
    let r = put_as(
        &srv,
        "alice",
        path,
        &meeting(
            "c1",
            "Offsite",
            &["CN=Bob:mailto:bob@example.org"],
            "STATUS:CANCELLED\r\nSEQUENCE:1\r\n",
        ),
        &[],
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text());
    let messages = inbox(&srv, "bob").await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let cancel = messages
        .iter()
        .find(|m| m.contains("STATUS:CANCELLED"))
        .expect("a message about the cancellation");
    assert!(
        cancel.contains("METHOD:CANCEL") && !cancel.contains("METHOD:REQUEST"),
        "{cancel}"
    );
    let copies = members(&srv, "bob", "/dav/calendars/bob/calendar/").await;
    assert_eq!(copies.len(), 1);
    let copy = get_as(&srv, "bob", &copies[0]).await.text();
    assert!(copy.contains("STATUS:CANCELLED"), "{copy}");

    // Every attendee removed: a plain event, without a Schedule-Tag.
    let plain = "/dav/calendars/alice/calendar/p.ics";
    put_as(
        &srv,
        "alice",
        plain,
        &meeting("p1", "Review", &["CN=Bob:mailto:bob@example.org"], ""),
        &[],
    )
    .await
    .expect(201);
    let alone = meeting("p1", "Review", &[], "");
    let r = put_as(&srv, "alice", plain, &alone, &[]).await;
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(r.header("schedule-tag"), None, "a plain event has no tag");
    assert_eq!(
        get_as(&srv, "alice", plain).await.header("schedule-tag"),
        None
    );
}

/// Deleting a calendar sends what deleting each of its meetings would (RFC 6638 3.2.3): the
/// organizer's meetings are cancelled for their attendees, and an attendee who deletes the
/// calendar holding their copy declines. One UID is one scheduling object in a home (RFC 6638
/// 3.2.4.1): the same meeting PUT into a second calendar is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_calendar_cancels_or_declines_its_meetings() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    for (user, cal) in [("alice", "work"), ("bob", "meetings")] {
        srv.send_as(
            user,
            "MKCALENDAR",
            &format!("/dav/calendars/{user}/{cal}/"),
            "",
            &[],
        )
        .await
        .expect(201);
    }
    let standup = meeting("w1", "Standup", &["CN=Bob:mailto:bob@example.org"], "");
    put_as(
        &srv,
        "alice",
        "/dav/calendars/alice/work/w1.ics",
        &standup,
        &[],
    )
    .await
    .expect(201);
    // The same meeting in alice's other calendar: a second scheduling object for one UID.
    let r = put_as(
        &srv,
        "alice",
        "/dav/calendars/alice/calendar/w1-again.ics",
        &standup,
        &[],
    )
    .await;
    r.expect(403);
    assert!(
        r.text().contains("unique-scheduling-object-resource"),
        "{}",
        r.text()
    );
    assert_eq!(inbox(&srv, "bob").await.len(), 1, "the invitation");

    srv.send_as("alice", "DELETE", "/dav/calendars/alice/work/", "", &[])
        .await
        .expect(204);
    let messages = inbox(&srv, "bob").await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("METHOD:CANCEL") && m.contains("UID:w1")),
        "no CANCEL for the deleted calendar's meeting: {messages:?}"
    );

    // Bob moves alice's next meeting into his own calendar and then deletes that calendar:
    // alice's event says he declined.
    let review = meeting("r1", "Review", &["CN=Bob:mailto:bob@example.org"], "");
    let path = "/dav/calendars/alice/calendar/r1.ics";
    put_as(&srv, "alice", path, &review, &[]).await.expect(201);
    let (copy, _) = copy_of(&srv, "bob", "calendar", "r1")
        .await
        .expect("bob's copy");
    let moved = "/dav/calendars/bob/meetings/r1.ics";
    srv.send_as(
        "bob",
        "MOVE",
        &copy,
        "",
        &[("Destination", moved), ("Overwrite", "F")],
    )
    .await
    .expect(201);
    srv.send_as("bob", "DELETE", "/dav/calendars/bob/meetings/", "", &[])
        .await
        .expect(204);
    let alices = get_as(&srv, "alice", path).await.unfolded();
    assert!(
        alices.contains("PARTSTAT=DECLINED") && alices.contains("mailto:bob@example.org"),
        "{alices}"
    );
}

/// An attendee's answer for one date reaches the organizer's copy even when the organizer has
/// no override for that date: one is made from the master (RFC 5546 3.2.3). An attendee who
/// removes a date with EXDATE declines it (RFC 6638 3.2.2.3): a REPLY, and the organizer's
/// copy says so for that date only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_one_date_by_override_or_exdate_reaches_the_organizer() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let path = "/dav/calendars/alice/calendar/d1.ics";
    let daily = meeting(
        "d1",
        "Daily",
        &["PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@example.org"],
        "RRULE:FREQ=DAILY;COUNT=5\r\n",
    );
    put_as(&srv, "alice", path, &daily, &[]).await.expect(201);
    let (copy, r) = copy_of(&srv, "bob", "calendar", "d1")
        .await
        .expect("bob's copy");
    let mine = r.unfolded();
    assert!(!mine.contains("RECURRENCE-ID"), "{mine}");

    // Bob declines the 6th with an override of his own.
    let decline_6th = "BEGIN:VEVENT\r\nUID:d1\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID:20300106T100000Z\r\nDTSTART:20300106T100000Z\r\nDTEND:20300106T110000Z\r\nSUMMARY:Daily\r\nORGANIZER;CN=Alice:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.org\r\nEND:VEVENT\r\n";
    let with_override = mine.replace("END:VCALENDAR", &format!("{decline_6th}END:VCALENDAR"));
    let r = put_as(&srv, "bob", &copy, &with_override, &[]).await;
    assert!(r.status.is_success(), "{}", r.text());
    // Bob's copy says his reply was delivered (RFC 6638 7.3: SCHEDULE-STATUS on ORGANIZER).
    let bobs = get_as(&srv, "bob", &copy).await.unfolded();
    assert!(
        bobs.contains("ORGANIZER;CN=Alice;SCHEDULE-STATUS=1.2:mailto:alice@example.org"),
        "{bobs}"
    );
    let alices = get_as(&srv, "alice", path).await.unfolded();
    let sixth = alices
        .split("BEGIN:VEVENT")
        .find(|c| c.contains("RECURRENCE-ID:20300106T100000Z"))
        .unwrap_or_else(|| panic!("no override for the 6th in the organizer's copy: {alices}"));
    assert!(
        sixth.contains("PARTSTAT=DECLINED") && sixth.contains("mailto:bob@example.org"),
        "{sixth}"
    );
    assert!(
        sixth.contains("DTSTART:20300106T100000Z") && !sixth.contains("RRULE"),
        "{sixth}"
    );
    let master = alices
        .split("BEGIN:VEVENT")
        .find(|c| c.contains("RRULE"))
        .expect("master");
    assert!(!master.contains("PARTSTAT=DECLINED"), "{master}");

    // Bob removes the 8th from his copy: a REPLY declining the 8th, and alice's copy says so.
    let before = inbox(&srv, "alice").await.len();
    let current = get_as(&srv, "bob", &copy).await.unfolded();
    let excluded = current.replacen(
        "RRULE:FREQ=DAILY;COUNT=5\r\n",
        "RRULE:FREQ=DAILY;COUNT=5\r\nEXDATE:20300108T100000Z\r\n",
        1,
    );
    assert_ne!(excluded, current);
    let r = put_as(&srv, "bob", &copy, &excluded, &[]).await;
    assert!(r.status.is_success(), "{}", r.text());
    let messages = inbox(&srv, "alice").await;
    assert_eq!(messages.len(), before + 1, "no REPLY for the EXDATE");
    let reply = messages
        .iter()
        .find(|m| m.contains("RECURRENCE-ID:20300108T100000Z"))
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert!(
        reply.contains("METHOD:REPLY") && reply.contains("PARTSTAT=DECLINED"),
        "{reply}"
    );
    let alices = get_as(&srv, "alice", path).await.unfolded();
    let eighth = alices
        .split("BEGIN:VEVENT")
        .find(|c| c.contains("RECURRENCE-ID:20300108T100000Z"))
        .unwrap_or_else(|| panic!("{alices}"));
    assert!(
        eighth.contains("PARTSTAT=DECLINED") && eighth.contains("DURATION:PT3600S"),
        "{eighth}"
    );
}

/// Hostile: an attendee who adds thousands of EXDATEs in one write declines at most
/// `MAX_ANSWERED_DATES` dates on the organizer's copy (each decline is a copy of the master),
/// and the write still answers promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_exdates_decline_a_bounded_number_of_dates() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let path = "/dav/calendars/alice/calendar/x1.ics";
    let daily = meeting(
        "x1",
        "Daily",
        &["PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@example.org"],
        "RRULE:FREQ=DAILY\r\n",
    );
    put_as(&srv, "alice", path, &daily, &[]).await.expect(201);
    let (copy, r) = copy_of(&srv, "bob", "calendar", "x1")
        .await
        .expect("bob's copy");
    let dates: Vec<String> = (0..5_000i64)
        .map(|d| {
            let day = jiff::civil::date(2030, 1, 6) + jiff::Span::new().days(d);
            format!("{}T100000Z", day.strftime("%Y%m%d"))
        })
        .collect();
    let excluded = r.unfolded().replacen(
        "RRULE:FREQ=DAILY\r\n",
        &format!("RRULE:FREQ=DAILY\r\nEXDATE:{}\r\n", dates.join(",")),
        1,
    );
    let started = std::time::Instant::now();
    let r = put_as(&srv, "bob", &copy, &excluded, &[]).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let alices = get_as(&srv, "alice", path).await.unfolded();
    let overrides = alices.matches("RECURRENCE-ID").count();
    assert!(
        (1..=convene::ical::itip::MAX_ANSWERED_DATES).contains(&overrides),
        "{overrides} overrides on the organizer's copy"
    );
}
