//! The permission matrix (issue 6): every method on every kind of resource, as the owner, a
//! read sharee, a read-write sharee, a delegated-entry recipient, a stranger and an anonymous
//! client. Each cell is allowed or denied; a denied cell never changes anything and never
//! shows the owner's data; no cell answers 500.

mod common;

use common::{Resp, TestServer};

const SECRET: &str = "Quarterly review";
const XML: (&str, &str) = ("Content-Type", "application/xml; charset=utf-8");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Home,
    Calendar,
    Object,
    Mailbox,
    Principal,
}

const METHODS: &[&str] = &[
    "OPTIONS",
    "GET",
    "HEAD",
    "PROPFIND",
    "REPORT",
    "PROPPATCH",
    "PUT",
    "DELETE",
    "MKCOL",
    "MKCALENDAR",
    "COPY",
    "MOVE",
    "POST",
];

fn is_read(m: &str) -> bool {
    matches!(m, "OPTIONS" | "GET" | "HEAD" | "PROPFIND" | "REPORT")
}

/// One request of a cell: the method applied to a resource of that kind, with a body that
/// would succeed if it were allowed. `n` keeps new names apart.
async fn cell(
    srv: &TestServer,
    actor: Option<&str>,
    method: &str,
    path: &str,
    kind: Kind,
    n: usize,
) -> Resp {
    let collection = path.ends_with('/');
    let (target, body, mut headers): (String, String, Vec<(&str, String)>) = match method {
        "PROPFIND" => (
            path.into(),
            r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#.into(),
            vec![("Depth", "1".into())],
        ),
        "REPORT" => (
            path.into(),
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#.into(),
            vec![("Depth", "1".into()), (XML.0, XML.1.into())],
        ),
        "PROPPATCH" => (
            path.into(),
            r#"<D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:x-test:"><D:set><D:prop><X:note>matrix</X:note></D:prop></D:set></D:propertyupdate>"#.into(),
            vec![(XML.0, XML.1.into())],
        ),
        "PUT" if collection => (
            format!("{path}m{n}.ics"),
            common::event(&format!("matrix-{n}"), "matrix"),
            vec![("Content-Type", "text/calendar".into())],
        ),
        // A change of content (a read sharee may only change their own alarms).
        "PUT" => (
            path.into(),
            common::event("w1", SECRET)
                .replace("SUMMARY:", &format!("DESCRIPTION:matrix {n}\r\nSUMMARY:")),
            vec![("Content-Type", "text/calendar".into())],
        ),
        "MKCOL" | "MKCALENDAR" => {
            let base = if collection { path.to_string() } else { format!("{path}/") };
            (format!("{base}c{n}/"), String::new(), vec![])
        }
        "COPY" | "MOVE" => {
            let dest = format!(
                "{}/dav/calendars/{}/calendar/moved{n}.ics",
                srv.base,
                actor.unwrap_or("alice")
            );
            (path.into(), String::new(), vec![("Destination", dest)])
        }
        "POST" => (
            path.into(),
            r#"<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>mailto:erin@example.org</D:href><CS:read-write/></CS:set></CS:share>"#.into(),
            vec![(XML.0, XML.1.into())],
        ),
        _ => (path.into(), String::new(), vec![]),
    };
    if kind == Kind::Principal && method == "POST" {
        headers.clear();
    }
    let mut rb = srv
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            srv.url(&target),
        )
        .body(body);
    if let Some(a) = actor {
        rb = rb.basic_auth(a, Some(format!("{a}-password")));
    }
    for (k, v) in &headers {
        rb = rb.header(*k, v);
    }
    srv.send(rb).await
}

async fn matrix(srv: TestServer) {
    srv.add_users(&["carol", "dave", "erin"]);
    // Alice's Work calendar, shared with bob (read) and carol (read-write), both accepted.
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/work/"))
        .await
        .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/work/w1.ics",
        &common::event("w1", SECRET),
    )
    .await
    .expect(201);
    let mut mounts = std::collections::HashMap::new();
    for (who, access) in [("bob", "read"), ("carol", "read-write")] {
        srv.send_as(
            "alice",
            "POST",
            "/dav/calendars/alice/work/",
            &format!(r#"<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>/dav/principals/{who}/</D:href><CS:{access}/></CS:set></CS:share>"#),
            &[XML],
        )
        .await
        .expect(200);
        let mount = accept_share(&srv, who).await;
        mounts.insert(who, mount);
    }
    // A delegated entry for dave.
    srv.put_ics(
        "/dav/calendars/alice/calendar/d1.ics",
        &common::event("d1", SECRET).replace(
            "END:VEVENT",
            "ATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:dave@example.org\r\nEND:VEVENT",
        ),
    )
    .await
    .expect(201);
    let copies = common::copies_until(&srv, "dave", "dave-password", "alice", "the entry", |c| {
        c.len() == 1
    })
    .await;
    let dave_copy = copies[0].0.clone();
    let bob_m = mounts["bob"].clone();
    let carol_m = mounts["carol"].clone();

    // (owner of the resource, path, kind)
    let resources: Vec<(&str, String, Kind)> = vec![
        ("alice", "/dav/calendars/alice/".into(), Kind::Home),
        ("alice", "/dav/calendars/alice/work/".into(), Kind::Calendar),
        (
            "alice",
            "/dav/calendars/alice/work/w1.ics".into(),
            Kind::Object,
        ),
        ("alice", "/dav/calendars/alice/inbox/".into(), Kind::Mailbox),
        (
            "alice",
            "/dav/calendars/alice/outbox/".into(),
            Kind::Mailbox,
        ),
        (
            "alice",
            "/dav/calendars/alice/notification/".into(),
            Kind::Mailbox,
        ),
        ("alice", "/dav/principals/alice/".into(), Kind::Principal),
        ("bob", bob_m.clone(), Kind::Calendar),
        ("bob", format!("{bob_m}w1.ics"), Kind::Object),
        ("carol", carol_m.clone(), Kind::Calendar),
        ("carol", format!("{carol_m}w1.ics"), Kind::Object),
        (
            "dave",
            "/dav/calendars/dave/from~alice/".into(),
            Kind::Calendar,
        ),
        ("dave", dave_copy.clone(), Kind::Object),
    ];
    let actors: [Option<&str>; 6] = [
        Some("alice"),
        Some("bob"),
        Some("carol"),
        Some("dave"),
        Some("erin"),
        None,
    ];

    // The rules the server must follow. `Any` is the owner's own writes (other tests cover
    // them): any answer but a 500.
    let expect = |actor: Option<&str>, holder: &str, kind: Kind, m: &str| -> Expect {
        let Some(a) = actor else {
            return if m == "OPTIONS" {
                Expect::Allow
            } else {
                Expect::Deny
            };
        };
        // Principals are public to signed-in users (clients find attendees through them).
        if m == "OPTIONS" || (kind == Kind::Principal && matches!(m, "PROPFIND" | "GET" | "HEAD")) {
            return Expect::Allow;
        }
        if kind == Kind::Principal {
            return if a == holder {
                Expect::Any
            } else {
                Expect::Deny
            };
        }
        if a != holder {
            // Another user's home: nothing, whatever they share (shares live in the
            // sharee's own home).
            return Expect::Deny;
        }
        let cal = kind == Kind::Calendar;
        let obj = kind == Kind::Object;
        match a {
            "alice" => match m {
                "PROPFIND" => Expect::Allow,
                "GET" | "HEAD" | "REPORT" if obj || cal => Expect::Allow,
                _ => Expect::Any,
            },
            // A read sharee (bob) and a delegated-entry recipient (dave): they read, and
            // name and colour the calendar as they like. Dave's calendar is his own, so
            // copying an entry out of it and his own dead properties on it are his.
            "bob" | "dave" => match m {
                _ if is_read(m) => Expect::Allow,
                "PROPPATCH" if cal || a == "dave" => Expect::Allow,
                "COPY" if a == "dave" && obj => Expect::Allow,
                "DELETE" if a == "bob" && cal => Expect::Allow,
                _ => Expect::Deny,
            },
            // A read-write sharee: everything on entries but MOVE out (sharing 5.5.5); no
            // sub-collections, no re-sharing.
            "carol" => match m {
                _ if is_read(m) => Expect::Allow,
                "PROPPATCH" => Expect::Allow,
                "PUT" | "DELETE" => Expect::Allow,
                "COPY" if obj => Expect::Allow,
                _ => Expect::Deny,
            },
            _ => Expect::Deny,
        }
    };

    let mut n = 0usize;
    let mut wrong = vec![];
    // Destructive cells (DELETE, MOVE, PUT over the object) run last for each resource, and
    // the resource is put back after an allowed one.
    for (holder, path, kind) in &resources {
        let path = path.as_str();
        for actor in actors {
            for m in METHODS {
                let want = expect(actor, holder, *kind, m);
                // Destructive cells that may succeed run on their own objects below.
                if matches!(*m, "DELETE" | "MOVE") && want != Expect::Deny {
                    continue;
                }
                n += 1;
                let r = cell(&srv, actor, m, path, *kind, n).await;
                let st = r.status.as_u16();
                let got = if (200..300).contains(&st) {
                    Expect::Allow
                } else {
                    Expect::Deny
                };
                if st >= 500 {
                    wrong.push(format!("{actor:?} {m} {path}: {st} {}", r.text()));
                } else if want != Expect::Any && got != want {
                    wrong.push(format!("{actor:?} {m} {path}: {st}, expected {want:?}"));
                }
                if got == Expect::Deny && r.text().contains(SECRET) {
                    wrong.push(format!("{actor:?} {m} {path}: denied but shows the event"));
                }
                if actor.is_none_or(|a| a != *holder)
                    && r.text().contains(SECRET)
                    && *m != "OPTIONS"
                {
                    wrong.push(format!("{actor:?} {m} {path}: another user's data leaked"));
                }
            }
        }
    }
    // The destructive cells that succeed, each on something made for it.
    for (owner, pw_user, m, path) in [
        ("carol", "carol", "DELETE", format!("{carol_m}m-del.ics")),
        (
            "alice",
            "alice",
            "DELETE",
            "/dav/calendars/alice/work/m-del2.ics".to_string(),
        ),
        (
            "alice",
            "alice",
            "MOVE",
            "/dav/calendars/alice/work/m-move.ics".to_string(),
        ),
        ("bob", "bob", "DELETE", bob_m.clone()),
    ] {
        if path.ends_with(".ics") {
            srv.send_as(
                owner,
                "PUT",
                &path,
                &common::event(&format!("uid-{path}"), "to remove"),
                &[("Content-Type", "text/calendar")],
            )
            .await
            .expect(201);
        }
        n += 1;
        let r = cell(&srv, Some(pw_user), m, &path, Kind::Object, n).await;
        let st = r.status.as_u16();
        if !(200..300).contains(&st) {
            wrong.push(format!("{pw_user} {m} {path}: {st}, expected success"));
        }
    }
    // Nothing denied changed alice's event.
    let w1 = srv
        .send(srv.req("GET", "/dav/calendars/alice/work/w1.ics"))
        .await;
    w1.expect(200);
    assert!(w1.text().contains(SECRET), "{}", w1.text());
    assert!(
        wrong.is_empty(),
        "{} of {n} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

both_backends!(permission_matrix, matrix);

// ---------------------------------------------------------------------------------------
// Scheduling spoofing: what an ordinary account sends to make a meeting or an event of
// someone else's change. Each row is tried in turn; after each, alice's meeting and private
// event and carol's calendar are exactly what they were, anything new in their inboxes is in
// the sender's own name and answers only what the sender was asked (anyone may invite
// anyone), and nothing answers 500. Whether the attempt itself is refused or quietly kept to the sender's own data is the
// server's choice; another user's data never changes.
// ---------------------------------------------------------------------------------------

const CAL: (&str, &str) = ("Content-Type", "text/calendar");

/// One attempt: who sends it, how, where, and what.
struct Spoof {
    what: &'static str,
    actor: &'static str,
    method: &'static str,
    path: String,
    body: String,
    content_type: &'static str,
}

fn scheduling_message(method: &str, uid: &str, organizer: &str, attendees: &[&str]) -> String {
    let mut s = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300401T100000Z\r\nDTEND:20300401T110000Z\r\nSUMMARY:spoofed by {organizer}\r\nORGANIZER:mailto:{organizer}@example.org\r\n"
    );
    for a in attendees {
        s.push_str(a);
        s.push_str("\r\n");
    }
    s.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    s
}

/// Everything of alice's and carol's a spoof could change: each member of their calendars,
/// by href and ETag, and the bodies of alice's two events; and, apart, what is in their
/// inboxes (href, body).
async fn victims(srv: &TestServer) -> (Vec<String>, Vec<(String, String)>) {
    let mut seen = vec![];
    let mut inboxes = vec![];
    for (user, path) in [
        ("alice", "/dav/calendars/alice/calendar/"),
        ("alice", "/dav/calendars/alice/inbox/"),
        ("carol", "/dav/calendars/carol/calendar/"),
        ("carol", "/dav/calendars/carol/inbox/"),
    ] {
        let r = srv
            .send_as(
                user,
                "PROPFIND",
                path,
                r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#,
                &[("Depth", "1")],
            )
            .await;
        r.expect(207);
        for (href, resp) in common::responses(&r.xml()) {
            if href == path {
                continue;
            }
            if path.ends_with("inbox/") {
                let body = srv.send_as(user, "GET", &href, "", &[]).await.unfolded();
                inboxes.push((href, body));
            } else {
                let etag = common::prop_text(&resp, "DAV:", "getetag").unwrap_or_default();
                seen.push(format!("{href} {etag}"));
            }
        }
    }
    for path in [
        "/dav/calendars/alice/calendar/meet.ics",
        "/dav/calendars/alice/calendar/private.ics",
    ] {
        let r = srv.send(srv.req("GET", path)).await;
        seen.push(match r.status.as_u16() {
            200 => r.text(),
            st => format!("{path}: {st}"),
        });
    }
    seen.sort();
    (seen, inboxes)
}

/// A message may arrive in a victim's inbox: it is in the sender's own name, and a REPLY
/// answers an invitation the sender really has (alice's meeting, to which she invited bob and
/// carol). Anyone may invite anyone; nobody may speak for another or answer what they were
/// never asked.
fn may_arrive(message: &str, actor: &str) -> bool {
    in_own_name(message, actor)
        && (!message.contains("METHOD:REPLY")
            || (message.contains("UID:meet-1") && ["bob", "carol"].contains(&actor)))
}

/// A scheduling message is in `actor`'s own name: a REPLY answers only for them, anything
/// else has them as its organizer.
fn in_own_name(message: &str, actor: &str) -> bool {
    let own = format!("mailto:{actor}@example.org");
    if message.contains("METHOD:REPLY") {
        message
            .lines()
            .filter(|l| l.starts_with("ATTENDEE"))
            .all(|l| l.to_ascii_lowercase().ends_with(&own))
    } else {
        message
            .lines()
            .filter(|l| l.starts_with("ORGANIZER"))
            .all(|l| l.to_ascii_lowercase().ends_with(&own))
    }
}

/// The href of `user`'s copy of the meeting `meet-1`.
async fn copy_of_meeting(srv: &TestServer, user: &str) -> String {
    let r = srv
        .send_as(
            user,
            "REPORT",
            &format!("/dav/calendars/{user}/calendar/"),
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="UID"><C:text-match collation="i;octet">meet-1</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
            &[("Depth", "1"), XML],
        )
        .await;
    r.expect(207);
    common::responses(&r.xml())
        .into_iter()
        .map(|(h, _)| h)
        .next()
        .unwrap_or_else(|| panic!("{user} has no copy of the meeting"))
}

async fn spoofing(srv: TestServer) {
    srv.add_users(&["carol", "erin"]);
    let crlf = |s: String| s.replace("\r\n", "\n").replace('\n', "\r\n");
    srv.put_ics(
        "/dav/calendars/alice/calendar/meet.ics",
        &crlf(common::fixture("meet.ics")),
    )
    .await
    .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/calendar/private.ics",
        &crlf(common::fixture("alice-private.ics")),
    )
    .await
    .expect(201);
    let bobs_copy = copy_of_meeting(&srv, "bob").await;
    copy_of_meeting(&srv, "carol").await;
    let bobs = srv.send_as("bob", "GET", &bobs_copy, "", &[]).await.text();
    let unfold = |s: &str| s.replace("\r\n ", "");

    let put = |what, actor, path: &str, body: String| Spoof {
        what,
        actor,
        method: "PUT",
        path: path.to_string(),
        body,
        content_type: CAL.1,
    };
    let post = |what, actor: &'static str, path: String, body: String| Spoof {
        what,
        actor,
        method: "POST",
        path,
        body,
        content_type: CAL.1,
    };
    let rows = vec![
        put(
            "a foreign ORGANIZER: bob invites carol in alice's name",
            "bob",
            "/dav/calendars/bob/calendar/s1.ics",
            scheduling_message(
                "",
                "spoof-1",
                "alice",
                &["ATTENDEE;RSVP=TRUE:mailto:carol@example.org"],
            )
            .replace("METHOD:\r\n", ""),
        ),
        put(
            "a UID collision: bob's invitation reuses the UID of alice's private event",
            "bob",
            "/dav/calendars/bob/calendar/h.ics",
            crlf(common::fixture("uid-hijack.ics")),
        ),
        Spoof {
            what: "a UID collision: bob deletes that invitation",
            actor: "bob",
            method: "DELETE",
            path: "/dav/calendars/bob/calendar/h.ics".into(),
            body: String::new(),
            content_type: CAL.1,
        },
        put(
            "a forged REPLY: erin, never invited, accepts alice's meeting",
            "erin",
            "/dav/calendars/erin/calendar/r.ics",
            scheduling_message(
                "",
                "meet-1",
                "alice",
                &["ATTENDEE;PARTSTAT=ACCEPTED:mailto:erin@example.org"],
            )
            .replace("METHOD:\r\n", ""),
        ),
        put(
            "a forged REPLY for a UID alice does not hold",
            "bob",
            "/dav/calendars/bob/calendar/fake.ics",
            crlf(common::fixture("fake-reply.ics")),
        ),
        put(
            "an attendee makes himself the organizer",
            "bob",
            &bobs_copy,
            crlf(common::fixture("hijack.ics")),
        ),
        put(
            "an attendee drops the organizer",
            "bob",
            &bobs_copy,
            crlf(common::fixture("drop-alice.ics")),
        ),
        put(
            "an attendee answers for another attendee",
            "bob",
            &bobs_copy,
            unfold(&bobs)
                .split("\r\n")
                .map(|l| {
                    if l.starts_with("ATTENDEE") && l.contains("mailto:carol@") {
                        "ATTENDEE;PARTSTAT=DECLINED:mailto:carol@example.org".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\r\n"),
        ),
        post(
            "a CANCEL in alice's name through erin's outbox",
            "erin",
            "/dav/calendars/erin/outbox/".into(),
            scheduling_message(
                "CANCEL",
                "meet-1",
                "alice",
                &["ATTENDEE:mailto:carol@example.org"],
            ),
        ),
        post(
            "a REQUEST in alice's name through erin's outbox",
            "erin",
            "/dav/calendars/erin/outbox/".into(),
            scheduling_message(
                "REQUEST",
                "meet-1",
                "alice",
                &["ATTENDEE:mailto:carol@example.org"],
            ),
        ),
        post(
            "an e-mailed CANCEL in alice's name, handed in by bob",
            "bob",
            "/api/imip".into(),
            scheduling_message(
                "CANCEL",
                "meet-1",
                "alice",
                &["ATTENDEE:mailto:carol@example.org"],
            ),
        ),
        post(
            "an e-mailed REPLY from carol, handed in by bob",
            "bob",
            "/api/imip".into(),
            scheduling_message(
                "REPLY",
                "meet-1",
                "alice",
                &["ATTENDEE;PARTSTAT=DECLINED:mailto:carol@example.org"],
            ),
        ),
    ];
    let mut wrong = vec![];
    let mut before = victims(&srv).await;
    for row in &rows {
        let r = srv
            .send_as(
                row.actor,
                row.method,
                &row.path,
                &row.body,
                &[("Content-Type", row.content_type)],
            )
            .await;
        if r.status.is_server_error() {
            wrong.push(format!("{}: {} {}", row.what, r.status, r.text()));
        }
        // Delivery to other users is immediate; a moment for anything that is not.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let after = victims(&srv).await;
        if after.0 != before.0 {
            wrong.push(format!(
                "{} ({}): changed another user's data:\nbefore {:#?}\nafter {:#?}",
                row.what, r.status, before.0, after.0
            ));
        }
        for (href, message) in &after.1 {
            if !before.1.iter().any(|(h, _)| h == href) && !may_arrive(message, row.actor) {
                wrong.push(format!(
                    "{} ({}): delivered a forged message to {href}:\n{message}",
                    row.what, r.status
                ));
            }
        }
        before = after;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} spoofs wrong:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

both_backends!(scheduling_spoofing, spoofing);

// ---------------------------------------------------------------------------------------
// Privacy: one rule for every view by someone other than the owner. Alice holds a PUBLIC, a
// CONFIDENTIAL and a PRIVATE event; each row is one way someone else sees her calendar, and
// what it must show of each follows from one rule: PUBLIC in full, CONFIDENTIAL as times and
// summary, PRIVATE as times only; a feed may ask for less, never more; the owner and a
// read-write delegate (who acts as her) see everything. A text-match cannot test what a view
// withholds, and a read-write sharee cannot write a reduced view back.
// ---------------------------------------------------------------------------------------

const PRIVATE_NOTE: &str = "Oncology results";

/// How much of an event a view shows, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shown {
    Full,
    TimeAndSummary,
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Owner,
    WriteDelegate,
    ReadDelegate,
    ReadSharee,
    ReadWriteSharee,
    AccessGrant,
    DelegatedCopy,
    Feed(Shown),
    FreeBusy,
}

/// The events: (uid and CLASS, hour it starts on 2030-01-01).
const CLASSES: [(&str, u32); 3] = [("public", 10), ("confidential", 12), ("private", 14)];

/// The rule.
fn rule(view: View, class: &str) -> Shown {
    let by_class = match class {
        "public" => Shown::Full,
        "confidential" => Shown::TimeAndSummary,
        _ => Shown::Busy,
    };
    match view {
        View::Owner | View::WriteDelegate => Shown::Full,
        View::FreeBusy => Shown::Busy,
        View::Feed(floor) => by_class.max(floor),
        _ => by_class,
    }
}

fn classified(uid: &str, hour: u32) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T{hour:02}0000Z\r\nDTEND:20300101T{:02}0000Z\r\nCLASS:{}\r\nSUMMARY:Title {uid}\r\nDESCRIPTION:{PRIVATE_NOTE} of {uid}\r\nLOCATION:Clinic {uid}\r\nATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:gina@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        hour + 1,
        uid.to_ascii_uppercase()
    )
}

const QUERY_DATA: &str = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>"#;

/// What `user` reads of the calendar at `path` by calendar-query and by GET of each member,
/// and how many events a text-match on the withheld description finds.
async fn caldav_reads(srv: &TestServer, user: &str, path: &str) -> (String, usize) {
    let r = srv
        .send_as(user, "REPORT", path, QUERY_DATA, &[("Depth", "1"), XML])
        .await;
    r.expect(207);
    let mut all = r.unfolded();
    for (href, _) in common::responses(&r.xml()) {
        let g = srv.send_as(user, "GET", &href, "", &[]).await;
        g.expect(200);
        all.push_str(&g.unfolded());
    }
    let q = format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="DESCRIPTION"><C:text-match>{PRIVATE_NOTE}</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
    );
    let q = srv
        .send_as(user, "REPORT", path, &q, &[("Depth", "1"), XML])
        .await;
    q.expect(207);
    (all, common::responses(&q.xml()).len())
}

/// The CalendarServer invitation in `who`'s notifications, accepted: the mount's path.
async fn accept_share(srv: &TestServer, who: &str) -> String {
    let r = srv
        .send_as(
            who,
            "PROPFIND",
            &format!("/dav/calendars/{who}/notification/"),
            "",
            &[("Depth", "1")],
        )
        .await;
    let href = common::responses(&r.xml())
        .into_iter()
        .map(|(h, _)| h)
        .find(|h| h.ends_with(".xml"))
        .expect("an invitation");
    let invite = srv.send_as(who, "GET", &href, "", &[]).await.text();
    let uid = invite
        .split("<CS:uid>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("uid")
        .to_string();
    let r = srv
        .send_as(
            who,
            "POST",
            &format!("/dav/calendars/{who}/"),
            &format!(r#"<CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:invite-accepted/><CS:in-reply-to>{uid}</CS:in-reply-to></CS:invite-reply>"#),
            &[XML],
        )
        .await;
    r.expect(200);
    r.xml()
        .child("DAV:", "href")
        .map(|h| h.text.clone())
        .expect("mount")
}

async fn privacy(srv: TestServer) {
    let json = ("Content-Type", "application/json");
    srv.add_users(&["carol", "dave", "erin", "frank", "gina", "harry"]);
    for (uid, hour) in CLASSES {
        srv.put_ics(
            &format!("/dav/calendars/alice/calendar/{uid}.ics"),
            &classified(uid, hour),
        )
        .await
        .expect(201);
    }
    let own = "/dav/calendars/alice/calendar/";
    // Delegates: dave reads, erin writes.
    for (group, who) in [("read", "dave"), ("write", "erin")] {
        srv.send(
            srv.req("PROPPATCH", &format!("/dav/principals/alice/calendar-proxy-{group}/"))
                .header(XML.0, XML.1)
                .body(format!(r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:group-member-set><D:href>/dav/principals/{who}/</D:href></D:group-member-set></D:prop></D:set></D:propertyupdate>"#)),
        )
        .await
        .expect(207);
    }
    // Sharees: bob reads, carol writes.
    let mut mounts = std::collections::HashMap::new();
    for (who, access) in [("bob", "read"), ("carol", "read-write")] {
        srv.send_as(
            "alice",
            "POST",
            own,
            &format!(r#"<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>mailto:{who}@example.org</D:href><CS:{access}/></CS:set></CS:share>"#),
            &[XML],
        )
        .await
        .expect(200);
        mounts.insert(who, accept_share(&srv, who).await);
    }
    // Frank asks for access and alice grants it.
    let r = srv
        .send_as(
            "frank",
            "POST",
            "/api/share/requests",
            r#"{"owner":"alice","access":"read"}"#,
            &[json],
        )
        .await;
    r.expect(201);
    let id = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["id"].clone();
    let r = srv
        .send_as(
            "alice",
            "POST",
            &format!("/api/share/requests/{id}/grant"),
            "{}",
            &[json],
        )
        .await;
    r.expect(200);
    let granted = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json");
    let grant = granted["mounts"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .filter_map(|m| m.as_str())
                .find(|m| m.contains("calendar"))
        })
        .unwrap_or_else(|| panic!("a mount of alice's calendar: {granted}"))
        .to_string();
    // Gina holds delegated copies of all three.
    common::copies_until(
        &srv,
        "gina",
        "gina-password",
        "alice",
        "three copies",
        |c| c.len() == 3,
    )
    .await;

    let mut views: Vec<(View, &str, String)> = vec![
        (View::Owner, "alice", own.into()),
        (View::WriteDelegate, "erin", own.into()),
        (View::ReadDelegate, "dave", own.into()),
        (View::ReadSharee, "bob", mounts["bob"].clone()),
        (View::ReadWriteSharee, "carol", mounts["carol"].clone()),
        (View::AccessGrant, "frank", grant),
        (
            View::DelegatedCopy,
            "gina",
            "/dav/calendars/gina/from~alice/".into(),
        ),
    ];
    for (floor, detail) in [
        (Shown::Full, "full"),
        (Shown::TimeAndSummary, "titles"),
        (Shown::Busy, "busy"),
    ] {
        let r = srv
            .send(
                srv.req("POST", "/api/feeds")
                    .header(json.0, json.1)
                    .body(format!(r#"{{"calendar":"calendar","detail":"{detail}"}}"#)),
            )
            .await;
        r.expect(201);
        let path = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["path"]
            .as_str()
            .expect("path")
            .to_string();
        views.push((View::Feed(floor), "", path));
    }
    views.push((
        View::FreeBusy,
        "harry",
        "/dav/calendars/harry/outbox/".into(),
    ));

    let mut wrong = vec![];
    for (view, who, path) in &views {
        let (seen, found) = match view {
            View::Feed(_) => {
                let r = srv.send(srv.client.get(srv.url(path))).await;
                r.expect(200);
                (r.unfolded(), None)
            }
            View::FreeBusy => {
                let body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T000000Z\r\nDTEND:20300102T000000Z\r\nORGANIZER:mailto:harry@example.org\r\nATTENDEE:mailto:alice@example.org\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
                let r = srv.send_as(who, "POST", path, body, &[CAL]).await;
                r.expect(200);
                (r.unfolded(), None)
            }
            _ => {
                let (seen, found) = caldav_reads(&srv, who, path).await;
                (seen, Some(found))
            }
        };
        let mut full = 0;
        for (uid, hour) in CLASSES {
            let want = rule(*view, uid);
            full += usize::from(want == Shown::Full);
            let time = if *view == View::FreeBusy {
                format!("20300101T{hour:02}0000Z/")
            } else {
                format!("DTSTART:20300101T{hour:02}0000Z")
            };
            let got = [
                seen.contains(&time),
                seen.contains(&format!("Title {uid}")),
                seen.contains(&format!("{PRIVATE_NOTE} of {uid}")),
                seen.contains(&format!("Clinic {uid}")),
            ];
            let expected = [
                true,
                want <= Shown::TimeAndSummary,
                want == Shown::Full,
                want == Shown::Full,
            ];
            if got != expected {
                wrong.push(format!(
                    "{view:?} ({who}) of the {uid} event: [time, summary, description, location] shown {got:?}, the rule says {expected:?}"
                ));
            }
        }
        if let Some(found) = found
            && found != full
        {
            wrong.push(format!(
                "{view:?} ({who}): a text-match on the description found {found}, {full} are visible"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A read-write sharee cannot write the reduced view back over the owner's details.
    let href = format!("{}private.ics", mounts["carol"]);
    let reduced = srv.send_as("carol", "GET", &href, "", &[]).await.text();
    let moved = reduced.replace("DTSTART:20300101T14", "DTSTART:20300101T13");
    let r = srv.send_as("carol", "PUT", &href, &moved, &[CAL]).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    let owner = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/private.ics"))
        .await;
    assert!(owner.text().contains(&format!("{PRIVATE_NOTE} of private")));
    assert!(owner.text().contains("DTSTART:20300101T140000Z"));
}

both_backends!(privacy_of_every_non_owner_view, privacy);

/// The admin-only paths, as rows of the matrix: each edit of Convene's own org chart, the
/// directory refresh and everyone's bridge audit, as an admin (`admins`), as another person
/// and anonymously. Only the admin's request does anything; the others are refused (403,
/// 401) and the org chart and audit they would have changed or shown stay as they were.
async fn admin_paths(mut srv: TestServer) {
    srv.add_users(&["carol"]);
    srv.cli_ok(&["org", "group-add", "eng"], "");
    srv.cli_ok(&["org", "department-set", "Engineering"], "");
    srv.restart_with_config("admins = [\"alice\"]\n").await;
    let json = [("Content-Type", "application/json")];
    let rows: &[(&str, &str, &str, u16)] = &[
        (
            "PUT",
            "/api/directory/groups/ops",
            r#"{"description":"Operations"}"#,
            204,
        ),
        ("PUT", "/api/directory/groups/eng/members/carol", "", 204),
        ("DELETE", "/api/directory/groups/eng/members/carol", "", 204),
        (
            "PUT",
            "/api/directory/departments/Platform",
            r#"{"parent":"Engineering"}"#,
            204,
        ),
        (
            "PUT",
            "/api/directory/people/carol",
            r#"{"department":"Platform"}"#,
            204,
        ),
        ("DELETE", "/api/directory/groups/ops", "", 204),
        ("POST", "/api/directory/refresh", "", 200),
        ("GET", "/api/bridge/audit?all=true", "", 200),
    ];
    let chart = |srv: &TestServer| srv.cli_ok(&["org", "show"], "");
    for (method, path, body, allowed) in rows {
        let before = chart(&srv);
        for who in ["bob", "carol"] {
            let r = srv.send_as(who, method, path, body, &json).await;
            assert_eq!(r.status, 403, "{who} {method} {path}: {}", r.text());
        }
        let r = srv
            .send(
                srv.client
                    .request(
                        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                        srv.url(path),
                    )
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(r.status, 401, "anonymous {method} {path}");
        assert_eq!(
            chart(&srv),
            before,
            "a refused {method} {path} changed the chart"
        );
        let r = srv.send_as("alice", method, path, body, &json).await;
        assert_eq!(r.status, *allowed, "admin {method} {path}: {}", r.text());
    }
}

both_backends!(admin_only_paths, admin_paths);
