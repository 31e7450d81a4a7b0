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
        rb = rb.basic_auth(a, Some(format!("{a}-pw")));
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
            .expect("invite");
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
        let mount = r
            .xml()
            .child("DAV:", "href")
            .map(|h| h.text.clone())
            .expect("mount");
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
    let copies = common::copies_until(&srv, "dave", "dave-pw", "alice", "the entry", |c| {
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
