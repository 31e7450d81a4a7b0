//! Calendar sharing with the request bodies of the CalendarServer sharing extension (what
//! Apple Calendar sends), and access requests, through real HTTP on both backends: invite
//! notifications, accept and decline, the sharee's mount in their own home with their own
//! name for it, read and read-write access, unshare; a request, granted at a lesser level,
//! refused, withdrawn, expired, and never answerable by anyone else.

mod common;

use common::{Resp, TestServer, found_prop, prop_text, responses};

use convene::dav::NS_CS;

fn share_body(href: &str, access: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">
  <CS:set>
    <D:href>{href}</D:href>
    <CS:summary>Work</CS:summary>
    <CS:{access} />
  </CS:set>
</CS:share>"#
    )
}

fn reply_body(uid: &str, accept: bool) -> String {
    let answer = if accept {
        "invite-accepted"
    } else {
        "invite-declined"
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">
  <D:href>mailto:someone@example.org</D:href>
  <CS:{answer}/>
  <CS:hosturl><D:href>/dav/calendars/alice/work/</D:href></CS:hosturl>
  <CS:in-reply-to>{uid}</CS:in-reply-to>
  <CS:summary>Work</CS:summary>
</CS:invite-reply>"#
    )
}

const XML: (&str, &str) = ("Content-Type", "application/xml; charset=utf-8");

async fn post(srv: &TestServer, user: &str, path: &str, body: &str) -> Resp {
    srv.send_as(user, "POST", path, body, &[XML]).await
}

/// The notifications in a user's collection: (href, notificationtype xml, body).
async fn notifications(srv: &TestServer, user: &str) -> Vec<(String, String, String)> {
    let r = srv
        .send_as(
            user,
            "PROPFIND",
            &format!("/dav/calendars/{user}/notification/"),
            r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:notificationtype/><D:getetag/></D:prop></D:propfind>"#,
            &[("Depth", "1")],
        )
        .await;
    r.expect(207);
    let mut out = vec![];
    for (href, resp) in responses(&r.xml()) {
        if !href.ends_with(".xml") {
            continue;
        }
        let t = found_prop(&resp, NS_CS, "notificationtype")
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        let body = srv.send_as(user, "GET", &href, "", &[]).await;
        body.expect(200);
        out.push((href, t, body.text()));
    }
    out
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    s.split(a)
        .nth(1)
        .and_then(|r| r.split(b).next())
        .unwrap_or_default()
}

async fn propfind(srv: &TestServer, user: &str, path: &str, depth: &str, props: &str) -> Resp {
    srv.send_as(
        user,
        "PROPFIND",
        path,
        &format!(
            r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/" xmlns:A="http://apple.com/ns/ical/"><D:prop>{props}</D:prop></D:propfind>"#
        ),
        &[("Depth", depth)],
    )
    .await
}

fn ev(uid: &str, summary: &str) -> String {
    common::event(uid, summary)
}

async fn calendar_sharing(srv: TestServer) {
    srv.add_users(&["carol", "dave"]);
    let r = srv.send(srv.req("OPTIONS", "/dav/")).await;
    assert!(
        r.header("dav")
            .unwrap_or_default()
            .contains("calendarserver-sharing"),
        "{:?}",
        r.header("dav")
    );
    srv.send_as(
        "alice",
        "MKCALENDAR",
        "/dav/calendars/alice/work/",
        r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Work</D:displayname></D:prop></D:set></C:mkcalendar>"#,
        &[],
    )
    .await
    .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/work/w1.ics",
        &ev("w1", "Quarterly review"),
    )
    .await
    .expect(201);
    let r = propfind(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        "0",
        "<CS:allowed-sharing-modes/><D:resourcetype/>",
    )
    .await;
    assert!(r.text().contains("can-be-shared"), "{}", r.text());
    assert!(!r.text().contains("shared-owner"), "{}", r.text());

    // Hostile or unknown sharee addresses are ignored, never a 500.
    for href in [
        "ééééééé",
        "mailtö:x@example.org",
        "mailto:nobody@example.org",
        "/dav/groups/",
    ] {
        post(
            &srv,
            "alice",
            "/dav/calendars/alice/work/",
            &share_body(href, "read"),
        )
        .await
        .expect(200);
    }
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        "<CS:share xmlns:CS=\"http://calendarserver.org/ns/\"><CS:set/></CS:share>",
    )
    .await
    .expect(400);
    // Alice shares Work with bob, read only.
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        &share_body("mailto:bob@example.org", "read"),
    )
    .await
    .expect(200);
    let notes = notifications(&srv, "bob").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (_, ntype, invite) = &notes[0];
    assert!(ntype.contains("invite-notification"), "{ntype}");
    for want in [
        "<CS:invite-noresponse/>",
        "<CS:access><CS:read/></CS:access>",
        "<CS:hosturl><D:href>/dav/calendars/alice/work/</D:href></CS:hosturl>",
        "<CS:organizer><D:href>mailto:alice@example.org</D:href><CS:common-name>Alice A</CS:common-name></CS:organizer>",
        "<CS:summary>Work</CS:summary>",
    ] {
        assert!(invite.contains(want), "{want} missing: {invite}");
    }
    let uid = between(invite, "<CS:uid>", "</CS:uid>").to_string();
    let r = propfind(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        "0",
        "<CS:invite/><D:resourcetype/>",
    )
    .await;
    let t = r.text();
    assert!(t.contains("<CS:shared-owner/>"), "{t}");
    assert!(
        t.contains("<D:href>mailto:bob@example.org</D:href>")
            && t.contains("<CS:invite-noresponse/>"),
        "{t}"
    );

    // Nobody else can answer bob's invitation.
    post(
        &srv,
        "dave",
        "/dav/calendars/dave/",
        &reply_body(&uid, true),
    )
    .await
    .expect(404);
    // Bob's client syncs his home (as Apple Calendar discovers calendars): no mount yet.
    let (r, home_token) = home_sync(&srv, "bob", "").await;
    assert!(!r.text().contains("shared~"), "{}", r.text());
    // Bob accepts: the calendar appears in his own home, under his own name for it.
    let r = post(&srv, "bob", "/dav/calendars/bob/", &reply_body(&uid, true)).await;
    r.expect(200);
    let mount = r
        .xml()
        .child("DAV:", "href")
        .map(|h| h.text.clone())
        .expect("CS:shared-as href");
    assert!(mount.starts_with("/dav/calendars/bob/shared~"), "{mount}");
    assert!(
        notifications(&srv, "bob").await.is_empty(),
        "answered invites go"
    );
    let replies = notifications(&srv, "alice").await;
    assert!(
        replies
            .iter()
            .any(|(_, t, b)| t.contains("invite-reply") && b.contains("<CS:invite-accepted/>")),
        "{replies:?}"
    );
    // The next home sync reports the new calendar: a change of bob's home.
    let (r, home_token) = home_sync(&srv, "bob", &home_token).await;
    let (_, m) = responses(&r.xml())
        .into_iter()
        .find(|(h, _)| *h == mount)
        .unwrap_or_else(|| panic!("the mount in bob's home sync: {}", r.text()));
    assert_eq!(
        prop_text(&m, "DAV:", "displayname").as_deref(),
        Some("Alice A: Work")
    );
    let r = propfind(
        &srv,
        "bob",
        "/dav/calendars/bob/",
        "1",
        "<D:resourcetype/><D:displayname/><CS:shared-url/><D:owner/><D:current-user-privilege-set/><CS:invite/>",
    )
    .await;
    r.expect(207);
    let (_, m) = responses(&r.xml())
        .into_iter()
        .find(|(h, _)| *h == mount)
        .expect("the mount in bob's home listing");
    let text = format!("{m:?}");
    assert!(text.contains("shared"), "resourcetype CS:shared: {text}");
    // Named for its owner by default, so it is told apart from bob's own calendars.
    assert_eq!(
        prop_text(&m, "DAV:", "displayname").as_deref(),
        Some("Alice A: Work")
    );
    assert!(
        text.contains("/dav/calendars/alice/work/"),
        "shared-url: {text}"
    );
    assert!(text.contains("Alice A"), "the organizer is named: {text}");
    let privs = format!("{:?}", found_prop(&m, "DAV:", "current-user-privilege-set"));
    assert!(
        privs.contains("\"read\"") && !privs.contains("write-content"),
        "{privs}"
    );

    // Read access: bob reads, cannot write; his name for the calendar is his own.
    let r = srv
        .send_as(
            "bob",
            "REPORT",
            &mount,
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#,
            &[("Depth", "1"), XML],
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("Quarterly review"), "{}", r.text());
    srv.send_as("bob", "GET", &format!("{mount}w1.ics"), "", &[])
        .await
        .expect(200);
    for (m, p) in [
        ("PUT", format!("{mount}new.ics")),
        ("PUT", format!("{mount}w1.ics")),
        ("DELETE", format!("{mount}w1.ics")),
    ] {
        let r = srv
            .send_as(
                "bob",
                m,
                &p,
                &ev("new", "bob's"),
                &[("Content-Type", "text/calendar")],
            )
            .await;
        assert_eq!(r.status.as_u16(), 403, "{m} {p}: {}", r.text());
    }
    // Bob's own alarm on alice's entry (sharing 5.5.4): his, through her next edit.
    let w1 = format!("{mount}w1.ics");
    let sync = |token: String| {
        format!(
            r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
        )
    };
    let r = srv
        .send_as("bob", "REPORT", &mount, &sync(String::new()), &[XML])
        .await;
    let token = r
        .xml()
        .child("DAV:", "sync-token")
        .map(|t| t.text.clone())
        .expect("token");
    let before = srv.send_as("bob", "GET", &w1, "", &[]).await;
    before.expect(200);
    let alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nDESCRIPTION:bob's reminder\r\nEND:VALARM\r\n";
    let with_alarm = before
        .text()
        .replace("END:VEVENT", &format!("{alarm}END:VEVENT"));
    srv.send_as(
        "bob",
        "PUT",
        &w1,
        &with_alarm,
        &[
            ("Content-Type", "text/calendar"),
            ("If-Match", &before.etag()),
        ],
    )
    .await
    .expect(204);
    let mine = srv.send_as("bob", "GET", &w1, "", &[]).await;
    assert!(mine.text().contains("bob's reminder"), "{}", mine.text());
    let r = srv
        .send_as("bob", "REPORT", &mount, &sync(token), &[XML])
        .await;
    assert!(
        r.text().contains("w1.ics"),
        "his other devices' sync reports the entry: {}",
        r.text()
    );
    assert_ne!(
        mine.etag(),
        before.etag(),
        "his other devices see the change"
    );
    let listed = propfind(&srv, "bob", &w1, "0", "<D:getetag/>").await;
    let listed_etag = responses(&listed.xml())
        .first()
        .and_then(|(_, r)| prop_text(r, "DAV:", "getetag"));
    assert_eq!(listed_etag, Some(mine.etag()), "PROPFIND and GET agree");
    let hers = srv
        .send(srv.req("GET", "/dav/calendars/alice/work/w1.ics"))
        .await;
    assert!(!hers.text().contains("bob's reminder"), "{}", hers.text());
    srv.put_ics(
        "/dav/calendars/alice/work/w1.ics",
        &ev("w1", "Quarterly review").replace("SUMMARY:", "LOCATION:Room 2\r\nSUMMARY:"),
    )
    .await
    .expect(204);
    let after = srv.send_as("bob", "GET", &w1, "", &[]).await;
    assert!(
        after.text().contains("Room 2") && after.text().contains("bob's reminder"),
        "{}",
        after.text()
    );
    // A stale ETag, or a change of content, is still refused.
    srv.send_as(
        "bob",
        "PUT",
        &w1,
        &with_alarm,
        &[
            ("Content-Type", "text/calendar"),
            ("If-Match", &before.etag()),
        ],
    )
    .await
    .expect(412);
    srv.send_as(
        "bob",
        "PUT",
        &w1,
        &after.text().replace("Room 2", "Room 9"),
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(403);
    srv.send_as(
        "bob",
        "PROPPATCH",
        &mount,
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Alice's work</D:displayname></D:prop></D:set></D:propertyupdate>"#,
        &[XML],
    )
    .await
    .expect(207);
    let mine = propfind(&srv, "bob", &mount, "0", "<D:displayname/>").await;
    assert!(mine.text().contains("Alice's work"), "{}", mine.text());
    let hers = propfind(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        "0",
        "<D:displayname/>",
    )
    .await;
    assert!(hers.text().contains(">Work<"), "{}", hers.text());

    // Read-write: bob's new event lands in alice's calendar.
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        &share_body("/dav/principals/bob/", "read-write"),
    )
    .await
    .expect(200);
    srv.send_as(
        "bob",
        "PUT",
        &format!("{mount}b1.ics"),
        &ev("b1", "Added by bob"),
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(201);
    let hers = srv
        .send(srv.req("GET", "/dav/calendars/alice/work/b1.ics"))
        .await;
    hers.expect(200);
    assert!(hers.text().contains("Added by bob"));
    // A sharee's write schedules as the owner (sharing 5.5.5): dave is invited by alice.
    let meeting = ev("m1", "Planning with dave").replace(
        "END:VEVENT",
        "ORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:alice@example.org\r\nATTENDEE:mailto:dave@example.org\r\nEND:VEVENT",
    );
    srv.send_as(
        "bob",
        "PUT",
        &format!("{mount}m1.ics"),
        &meeting,
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(201);
    let r = propfind(
        &srv,
        "dave",
        "/dav/calendars/dave/inbox/",
        "1",
        "<D:getetag/>",
    )
    .await;
    let mut inbox = String::new();
    for (href, _) in responses(&r.xml()) {
        if href.ends_with(".ics") {
            inbox.push_str(&srv.send_as("dave", "GET", &href, "", &[]).await.text());
        }
    }
    assert!(
        inbox.contains("METHOD:REQUEST") && inbox.contains("ORGANIZER:mailto:alice@example.org"),
        "{inbox}"
    );
    // ... and no sharee organizes in alice's calendar.
    let r = srv
        .send_as(
            "bob",
            "PUT",
            &format!("{mount}m2.ics"),
            &meeting
                .replace("UID:m1", "UID:m2")
                .replace("ORGANIZER:mailto:alice", "ORGANIZER:mailto:bob"),
            &[("Content-Type", "text/calendar")],
        )
        .await;
    r.expect(403);
    assert!(r.text().contains("organizer-allowed"), "{}", r.text());
    // ... but never through a Destination into her home.
    srv.send_as(
        "bob",
        "COPY",
        &format!("{mount}b1.ics"),
        "",
        &[(
            "Destination",
            &format!("{}/dav/calendars/alice/calendar/x.ics", srv.base),
        )],
    )
    .await
    .expect(403);

    // Carol declines: no mount, and alice sees the answer.
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        &share_body("/dav/principals/carol/", "read"),
    )
    .await
    .expect(200);
    let carol_uid = notifications(&srv, "carol")
        .await
        .first()
        .map(|(_, _, b)| between(b, "<CS:uid>", "</CS:uid>").to_string())
        .expect("carol's invite");
    post(
        &srv,
        "carol",
        "/dav/calendars/carol/",
        &reply_body(&carol_uid, false),
    )
    .await
    .expect(200);
    let r = propfind(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        "0",
        "<CS:invite/>",
    )
    .await;
    assert!(r.text().contains("<CS:invite-declined/>"), "{}", r.text());
    let r = propfind(
        &srv,
        "carol",
        "/dav/calendars/carol/",
        "1",
        "<D:resourcetype/>",
    )
    .await;
    assert!(!r.text().contains("shared~"), "{}", r.text());

    // Strangers cannot use bob's mount name.
    let mount_name = mount
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    srv.send_as(
        "dave",
        "PROPFIND",
        &format!("/dav/calendars/dave/{mount_name}/"),
        "",
        &[("Depth", "0")],
    )
    .await
    .expect(404);
    srv.send_as(
        "dave",
        "MKCALENDAR",
        &format!("/dav/calendars/dave/{mount_name}/"),
        "",
        &[],
    )
    .await
    .expect(404);

    // Bob leaves the share by deleting his mount; alice's calendar is untouched.
    srv.send_as("bob", "DELETE", &mount, "", &[])
        .await
        .expect(204);
    // His next home sync says it is gone.
    let (r, _) = home_sync(&srv, "bob", &home_token).await;
    let gone = responses(&r.xml())
        .into_iter()
        .find(|(h, _)| mount.starts_with(h.as_str()) && h.contains("shared~"))
        .unwrap_or_else(|| panic!("the mount's removal in bob's home sync: {}", r.text()));
    assert!(format!("{:?}", gone.1).contains("404"), "{:?}", gone.1);
    propfind(&srv, "bob", &mount, "0", "<D:displayname/>")
        .await
        .expect(404);
    srv.send(srv.req("GET", "/dav/calendars/alice/work/w1.ics"))
        .await
        .expect(200);
    // Alice unshares with carol: carol is told.
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        r#"<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:remove><D:href>mailto:carol@example.org</D:href></CS:remove></CS:share>"#,
    )
    .await
    .expect(200);
    assert!(
        notifications(&srv, "carol")
            .await
            .iter()
            .any(|(_, _, b)| b.contains("<CS:invite-deleted/>"))
    );
}

/// A sync-collection of `user`'s home (level 1, displayname) from `token` ("" to begin):
/// the answer and the next token.
async fn home_sync(srv: &TestServer, user: &str, token: &str) -> (Resp, String) {
    let home = format!("/dav/calendars/{user}/");
    let r = srv
        .send_as(
            user,
            "REPORT",
            &home,
            &format!(
                r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:displayname/></D:prop></D:sync-collection>"#
            ),
            &[XML],
        )
        .await;
    r.expect(207);
    let next = r
        .xml()
        .child("DAV:", "sync-token")
        .map(|t| t.text.clone())
        .expect("a sync token");
    (r, next)
}

async fn access_requests(srv: TestServer) {
    srv.add_users(&["carol", "dave"]);
    srv.put_ics(
        "/dav/calendars/alice/calendar/a1.ics",
        &ev("a1", "Alice's day"),
    )
    .await
    .expect(201);
    let json = ("Content-Type", "application/json");

    // Dave asks for read-write; alice sees it in her notifications and the API.
    let r = srv
        .send_as(
            "dave",
            "POST",
            "/api/share/requests",
            r#"{"owner":"alice","access":"read-write","message":"for the project","calendars":["calendar"]}"#,
            &[json],
        )
        .await;
    r.expect(201);
    let req: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let notes = notifications(&srv, "alice").await;
    let (_, t, body) = notes
        .iter()
        .find(|(_, _, b)| b.contains("access-request"))
        .expect("the request in alice's notifications");
    assert!(t.contains("access-request"), "{t}");
    assert!(
        body.contains("<D:href>/dav/principals/dave/</D:href>") && body.contains("for the project"),
        "{body}"
    );
    // One open request per pair.
    srv.send_as(
        "dave",
        "POST",
        "/api/share/requests",
        r#"{"owner":"alice","access":"read"}"#,
        &[json],
    )
    .await
    .expect(409);
    // Only alice answers it.
    let id = req["id"].clone();
    srv.send_as(
        "bob",
        "POST",
        &format!("/api/share/requests/{id}/grant"),
        "{}",
        &[json],
    )
    .await
    .expect(404);
    srv.send_as(
        "dave",
        "POST",
        &format!("/api/share/requests/{id}/grant"),
        "{}",
        &[json],
    )
    .await
    .expect(404);
    // A grant may name only calendars alice has (checked before anything is decided).
    let r = srv
        .send_as(
            "alice",
            "POST",
            &format!("/api/share/requests/{id}/grant"),
            r#"{"access":"read","calendars":["nope"]}"#,
            &[json],
        )
        .await;
    r.expect(400);
    assert!(r.text().contains("no calendar"), "{}", r.text());
    // Alice grants less than asked: read, on the calendar dave named (not her tasks).
    let r = srv
        .send_as(
            "alice",
            "POST",
            &format!("/api/share/requests/{id}/grant"),
            r#"{"access":"read"}"#,
            &[json],
        )
        .await;
    r.expect(200);
    let granted: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(
        granted["mounts"].as_array().map(Vec::len),
        Some(1),
        "only the calendar named: {granted}"
    );
    let mount = granted["mounts"]
        .as_array()
        .and_then(|m| m.first())
        .and_then(|m| m.as_str())
        .expect("a mount")
        .to_string();
    assert!(
        notifications(&srv, "dave")
            .await
            .iter()
            .any(|(_, _, b)| b.contains("<X:granted><CS:access><CS:read/></CS:access></X:granted>")),
        "dave is told"
    );
    assert!(
        !notifications(&srv, "alice")
            .await
            .iter()
            .any(|(_, _, b)| b.contains("access-request")),
        "an answered request leaves the owner's notifications"
    );
    // Dave sees alice's calendar, read only.
    let r = srv
        .send_as(
            "dave",
            "REPORT",
            &mount,
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#,
            &[("Depth", "1"), XML],
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("Alice's day"), "{}", r.text());
    srv.send_as(
        "dave",
        "PUT",
        &format!("{mount}d.ics"),
        &ev("d", "dave's"),
        &[("Content-Type", "text/calendar")],
    )
    .await
    .expect(403);
    let r = srv
        .send_as("dave", "GET", "/api/share/requests", "", &[])
        .await;
    assert!(r.text().contains("\"status\":\"granted\""), "{}", r.text());
    // Answered once is answered.
    srv.send_as(
        "alice",
        "POST",
        &format!("/api/share/requests/{id}/refuse"),
        "",
        &[],
    )
    .await
    .expect(409);

    // Carol asks over CalDAV; alice refuses over CalDAV; carol gets nothing but the answer.
    let r = post(
        &srv,
        "carol",
        "/dav/principals/alice/",
        r#"<X:request-access xmlns:X="urn:x-convene:ns" xmlns:CS="http://calendarserver.org/ns/"><CS:read/><X:message>please</X:message></X:request-access>"#,
    )
    .await;
    r.expect(201);
    let carol_uid = between(&r.text(), "<CS:uid>", "</CS:uid>").to_string();
    post(
        &srv,
        "bob",
        "/dav/calendars/bob/",
        &format!(r#"<X:access-reply xmlns:X="urn:x-convene:ns" xmlns:CS="http://calendarserver.org/ns/"><CS:in-reply-to>{carol_uid}</CS:in-reply-to><X:granted><CS:read/></X:granted></X:access-reply>"#),
    )
    .await
    .expect(404);
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/",
        &format!(r#"<X:access-reply xmlns:X="urn:x-convene:ns" xmlns:CS="http://calendarserver.org/ns/"><CS:in-reply-to>{carol_uid}</CS:in-reply-to><X:refused/></X:access-reply>"#),
    )
    .await
    .expect(200);
    assert!(
        notifications(&srv, "carol")
            .await
            .iter()
            .any(|(_, _, b)| b.contains("<X:refused/>"))
    );
    let r = propfind(
        &srv,
        "carol",
        "/dav/calendars/carol/",
        "1",
        "<D:resourcetype/>",
    )
    .await;
    assert!(!r.text().contains("shared~"), "{}", r.text());

    // Bob asks and withdraws: alice's notification goes, and it can no longer be granted.
    let r = srv
        .send_as(
            "bob",
            "POST",
            "/api/share/requests",
            r#"{"owner":"alice","access":"read"}"#,
            &[json],
        )
        .await;
    r.expect(201);
    let bid = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["id"].clone();
    srv.send_as(
        "alice",
        "DELETE",
        &format!("/api/share/requests/{bid}"),
        "",
        &[],
    )
    .await
    .expect(404);
    srv.send_as(
        "bob",
        "DELETE",
        &format!("/api/share/requests/{bid}"),
        "",
        &[],
    )
    .await
    .expect(204);
    assert!(
        !notifications(&srv, "alice")
            .await
            .iter()
            .any(|(_, _, b)| b.contains("/dav/principals/bob/")),
    );
    srv.send_as(
        "alice",
        "POST",
        &format!("/api/share/requests/{bid}/grant"),
        "{}",
        &[json],
    )
    .await
    .expect(409);

    // A request that expires: listed as expired, not grantable; a new one may be made.
    let r = srv
        .send_as(
            "bob",
            "POST",
            "/api/share/requests",
            r#"{"owner":"alice","access":"free-busy","expires_in_seconds":1}"#,
            &[json],
        )
        .await;
    r.expect(201);
    let eid = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["id"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = srv
        .send_as("alice", "GET", "/api/share/requests", "", &[])
        .await;
    assert!(r.text().contains("\"status\":\"expired\""), "{}", r.text());
    srv.send_as(
        "alice",
        "POST",
        &format!("/api/share/requests/{eid}/grant"),
        "{}",
        &[json],
    )
    .await
    .expect(409);
    let r = srv
        .send_as(
            "bob",
            "POST",
            "/api/share/requests",
            r#"{"owner":"alice","access":"free-busy"}"#,
            &[json],
        )
        .await;
    r.expect(201);
    let fid = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["id"].clone();
    // Free-busy only: the free-busy REPORT answers, nothing else does.
    let r = srv
        .send_as(
            "alice",
            "POST",
            &format!("/api/share/requests/{fid}/grant"),
            "{}",
            &[json],
        )
        .await;
    r.expect(200);
    let fb_mount = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["mounts"][0]
        .as_str()
        .expect("mount")
        .to_string();
    srv.send_as(
        "bob",
        "REPORT",
        &fb_mount,
        r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20200101T000000Z" end="20400101T000000Z"/></C:free-busy-query>"#,
        &[XML],
    )
    .await
    .expect(200);
    srv.send_as(
        "bob",
        "REPORT",
        &fb_mount,
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#,
        &[("Depth", "1"), XML],
    )
    .await
    .expect(403);
    let r = propfind(&srv, "bob", &fb_mount, "1", "<D:getetag/>").await;
    assert!(
        !r.text().contains(".ics"),
        "no members for free-busy: {}",
        r.text()
    );
}

/// Requests cannot be spammed: at most 20 a day per requester, withdrawn ones included.
async fn request_limit(srv: TestServer) {
    let json = ("Content-Type", "application/json");
    let mut opened = 0;
    for _ in 0..30 {
        let r = srv
            .send_as(
                "bob",
                "POST",
                "/api/share/requests",
                r#"{"owner":"alice","access":"read"}"#,
                &[json],
            )
            .await;
        if r.status.as_u16() == 429 {
            break;
        }
        r.expect(201);
        opened += 1;
        let id = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["id"].clone();
        srv.send_as(
            "bob",
            "DELETE",
            &format!("/api/share/requests/{id}"),
            "",
            &[],
        )
        .await
        .expect(204);
    }
    assert_eq!(opened, 20);
}

both_backends!(cs_sharing, calendar_sharing);
both_backends!(access_request_limit, request_limit);
both_backends!(access_request_flow, access_requests);

/// Alarms are per user on a shared calendar, in both directions (as for delegated entries): a
/// sharee does not see the sharer's alarms, and a read-write sharee's real edit keeps the
/// sharer's alarms on the sharer's event while the sharee's own stay theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_on_a_shared_calendar_are_each_users_own() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    srv.send_as("alice", "MKCALENDAR", "/dav/calendars/alice/work/", "", &[])
        .await
        .expect(201);
    let hers = "/dav/calendars/alice/work/a1.ics";
    let alarm = |who: &str| {
        format!(
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nDESCRIPTION:{who}'s reminder\r\nEND:VALARM\r\n"
        )
    };
    let body = ev("a1", "Planning").replace("END:VEVENT", &format!("{}END:VEVENT", alarm("alice")));
    srv.put_ics(hers, &body).await.expect(201);
    post(
        &srv,
        "alice",
        "/dav/calendars/alice/work/",
        &share_body("mailto:bob@example.org", "read-write"),
    )
    .await
    .expect(200);
    let notes = notifications(&srv, "bob").await;
    let uid = between(&notes[0].2, "<CS:uid>", "</CS:uid>").to_string();
    let r = post(&srv, "bob", "/dav/calendars/bob/", &reply_body(&uid, true)).await;
    r.expect(200);
    let mount = r
        .xml()
        .child("DAV:", "href")
        .map(|h| h.text.clone())
        .expect("mount");
    let his = format!("{mount}a1.ics");

    let seen = srv.send_as("bob", "GET", &his, "", &[]).await;
    seen.expect(200);
    assert!(seen.text().contains("Planning"), "{}", seen.text());
    assert!(!seen.text().contains("alice's reminder"), "{}", seen.text());

    // Bob renames the event and adds his own alarm in the same write.
    let edited = seen
        .text()
        .replace("SUMMARY:Planning", "SUMMARY:Planning (room 4)")
        .replace("END:VEVENT", &format!("{}END:VEVENT", alarm("bob")));
    let r = srv
        .send_as(
            "bob",
            "PUT",
            &his,
            &edited,
            &[("Content-Type", "text/calendar")],
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let alice_sees = srv.send(srv.req("GET", hers)).await.text();
    assert!(
        alice_sees.contains("Planning (room 4)")
            && alice_sees.contains("alice's reminder")
            && !alice_sees.contains("bob's reminder"),
        "{alice_sees}"
    );
    let bob_sees = srv.send_as("bob", "GET", &his, "", &[]).await.text();
    assert!(
        bob_sees.contains("Planning (room 4)")
            && bob_sees.contains("bob's reminder")
            && !bob_sees.contains("alice's reminder"),
        "{bob_sees}"
    );
}
