//! One privacy rule for every non-owner view, through real HTTP: a PRIVATE event shows as busy
//! and a CONFIDENTIAL one as times and summary to a read delegate, to a calendar sharee (what
//! an access-request grant also makes), in the calendar's export and in a subscription feed,
//! while the owner and a read-write delegate (who acts as the owner) see it whole. A
//! text-match cannot test what is withheld, and a sharee cannot write a reduced view back.

mod common;

use common::{TestServer, responses};

const SECRET: &str = "Oncology results";

fn event(uid: &str, class: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T100000Z\r\nDTEND:20300101T110000Z\r\nCLASS:{class}\r\nSUMMARY:Title {uid}\r\nDESCRIPTION:{SECRET} of {uid}\r\nLOCATION:Clinic {uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn members(hrefs: &[&str]) -> String {
    let mut s =
        String::from("<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><D:group-member-set>");
    for h in hrefs {
        s.push_str(&format!("<D:href>{h}</D:href>"));
    }
    s.push_str("</D:group-member-set></D:prop></D:set></D:propertyupdate>");
    s
}

const QUERY_ALL: &str = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>"#;

fn query_text(text: &str) -> String {
    format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="DESCRIPTION"><C:text-match>{text}</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
    )
}

/// What `user` reads of `calendar` (a path in someone's home or a mount): the bodies by GET
/// and by calendar-query, and how many events a text-match on the secret finds.
async fn reads(srv: &TestServer, user: &str, calendar: &str) -> (String, usize) {
    let r = srv
        .send_as(user, "REPORT", calendar, QUERY_ALL, &[("Depth", "1")])
        .await;
    r.expect(207);
    let mut all = r.text();
    for (href, _) in responses(&r.xml()) {
        let g = srv.send_as(user, "GET", &href, "", &[]).await;
        g.expect(200);
        all.push_str(&g.text());
    }
    let q = srv
        .send_as(
            user,
            "REPORT",
            calendar,
            &query_text("Oncology"),
            &[("Depth", "1")],
        )
        .await;
    q.expect(207);
    (all, responses(&q.xml()).len())
}

fn assert_reduced(who: &str, seen: &str) {
    for withheld in ["private", "confidential"] {
        assert!(
            !seen.contains(&format!("{SECRET} of {withheld}")),
            "{who} saw the {withheld} description: {seen}"
        );
        assert!(
            !seen.contains(&format!("Clinic {withheld}")),
            "{who} saw the {withheld} location"
        );
    }
    assert!(
        !seen.contains("Title private"),
        "{who} saw a PRIVATE summary"
    );
    assert!(
        seen.contains("Busy"),
        "{who}: the PRIVATE event shows as busy"
    );
    assert!(
        seen.contains("Title confidential"),
        "{who}: CONFIDENTIAL keeps its summary"
    );
    assert!(seen.contains("Title public"), "{who}: PUBLIC in full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_non_owner_view_follows_the_class() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol", "dave"]);
    for (uid, class) in [
        ("private", "PRIVATE"),
        ("confidential", "CONFIDENTIAL"),
        ("public", "PUBLIC"),
    ] {
        srv.put_ics(
            &format!("/dav/calendars/alice/calendar/{uid}.ics"),
            &event(uid, class),
        )
        .await
        .expect(201);
    }
    // The owner sees everything, and her text-match finds the two withheld descriptions.
    let (own, found) = reads(&srv, "alice", "/dav/calendars/alice/calendar/").await;
    assert!(own.contains("Title private") && own.contains(&format!("{SECRET} of private")));
    assert_eq!(found, 3);

    // A read delegate (carol) and a read-write delegate (dave).
    srv.send(
        srv.req("PROPPATCH", "/dav/principals/alice/calendar-proxy-read/")
            .header("Content-Type", "application/xml")
            .body(members(&["/dav/principals/carol/"])),
    )
    .await
    .expect(207);
    srv.send(
        srv.req("PROPPATCH", "/dav/principals/alice/calendar-proxy-write/")
            .header("Content-Type", "application/xml")
            .body(members(&["/dav/principals/dave/"])),
    )
    .await
    .expect(207);
    let (seen, found) = reads(&srv, "carol", "/dav/calendars/alice/calendar/").await;
    assert_reduced("a read delegate", &seen);
    assert_eq!(
        found, 1,
        "a text-match tested what a read delegate may not see"
    );
    let (seen, _) = reads(&srv, "dave", "/dav/calendars/alice/calendar/").await;
    assert!(
        seen.contains(&format!("{SECRET} of private")),
        "a write delegate acts as the owner"
    );

    // A calendar sharee (CalendarServer sharing, as an access-request grant also makes).
    let share = r#"<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>mailto:bob@example.org</D:href><CS:summary>Alice</CS:summary><CS:read-write/></CS:set></CS:share>"#;
    srv.send(
        srv.req("POST", "/dav/calendars/alice/calendar/")
            .header("Content-Type", "application/xml")
            .body(share),
    )
    .await
    .expect(200);
    let notes = srv
        .send_as(
            "bob",
            "PROPFIND",
            "/dav/calendars/bob/notification/",
            r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#,
            &[("Depth", "1")],
        )
        .await;
    let note = responses(&notes.xml())
        .into_iter()
        .map(|(h, _)| h)
        .find(|h| h.ends_with(".xml"))
        .expect("an invitation");
    let invite = srv.send_as("bob", "GET", &note, "", &[]).await.text();
    let uid = invite
        .split("<CS:uid>")
        .nth(1)
        .and_then(|s| s.split("</CS:uid>").next())
        .expect("uid")
        .to_string();
    let reply = format!(
        r#"<CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:href>mailto:alice@example.org</D:href><CS:invite-accepted/><CS:hosturl><D:href>/dav/calendars/alice/calendar/</D:href></CS:hosturl><CS:in-reply-to>{uid}</CS:in-reply-to></CS:invite-reply>"#
    );
    let r = srv
        .send_as(
            "bob",
            "POST",
            "/dav/calendars/bob/",
            &reply,
            &[("Content-Type", "application/xml")],
        )
        .await;
    r.expect(200);
    let mount = r
        .xml()
        .child("DAV:", "href")
        .map(|h| h.text.clone())
        .expect("mount");
    let (seen, found) = reads(&srv, "bob", &mount).await;
    assert_reduced("a sharee", &seen);
    assert_eq!(found, 1);
    // A read-write sharee cannot write the reduced view back over the owner's details.
    let private_href = format!("{}private.ics", mount);
    let reduced = srv
        .send_as("bob", "GET", &private_href, "", &[])
        .await
        .text();
    let moved = reduced.replace("DTSTART:20300101T100000Z", "DTSTART:20300101T090000Z");
    let r = srv
        .send_as(
            "bob",
            "PUT",
            &private_href,
            &moved,
            &[("Content-Type", "text/calendar")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    let owner = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/private.ics"))
        .await;
    assert!(owner.text().contains(&format!("{SECRET} of private")));

    // Feeds: the rule at `full`, and less for everyone at `busy`.
    for (detail, public_shown) in [("full", true), ("titles", true), ("busy", false)] {
        let r = srv
            .send(
                srv.req("POST", "/api/feeds")
                    .header("Content-Type", "application/json")
                    .body(format!(r#"{{"calendar":"calendar","detail":"{detail}"}}"#)),
            )
            .await;
        r.expect(201);
        let path = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["path"]
            .as_str()
            .expect("path")
            .to_string();
        let feed = srv.send(srv.client.get(srv.url(&path))).await;
        feed.expect(200);
        let t = feed.text();
        assert!(
            !t.contains(&format!("{SECRET} of private")) && !t.contains("Title private"),
            "{detail}: {t}"
        );
        assert!(
            !t.contains(&format!("{SECRET} of confidential")),
            "{detail}: {t}"
        );
        assert_eq!(t.contains("Title public"), public_shown, "{detail}: {t}");
        assert_eq!(
            t.contains("Clinic public"),
            detail == "full",
            "{detail}: {t}"
        );
    }
    // The owner's own export is whole.
    let export = srv
        .send(
            srv.req("GET", "/dav/calendars/alice/calendar/")
                .header("Accept", "text/calendar"),
        )
        .await;
    assert!(export.text().contains(&format!("{SECRET} of private")));
}
