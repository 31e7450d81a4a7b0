//! End-to-end protocol tests: real HTTP against a spawned `convene`, on SQLite and PostgreSQL.

mod common;

use common::*;
use futures_util::StreamExt;

const CAL: &str = "/dav/calendars/alice/calendar/";

async fn discovery(srv: TestServer) {
    // RFC 6764 5: well-known redirect; 308 for a PROPFIND (method and body kept), 301 for
    // a browser's GET; the bare host sends a PROPFIND the same way.
    let r = srv.send(srv.req("PROPFIND", "/.well-known/caldav")).await;
    r.expect(308);
    assert_eq!(r.header("location").as_deref(), Some("/dav/"));
    srv.send(srv.req("GET", "/.well-known/caldav"))
        .await
        .expect(301);
    let r = srv.send(srv.req("PROPFIND", "/")).await;
    r.expect(308);
    assert_eq!(r.header("location").as_deref(), Some("/dav/"));
    srv.send(srv.req("GET", "/")).await.expect(200);

    // Unauthenticated requests get a Basic challenge.
    let r = srv
        .send(srv.client.request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            srv.url("/dav/"),
        ))
        .await;
    r.expect(401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let r = srv
        .send(srv.req_as("alice", "wrong", "PROPFIND", "/dav/"))
        .await;
    r.expect(401);

    // OPTIONS lists what is implemented.
    let r = srv.send(srv.req("OPTIONS", "/dav/")).await;
    r.expect(200);
    let dav = r.header("dav").unwrap();
    for c in [
        "1",
        "3",
        "access-control",
        "calendar-access",
        "extended-mkcol",
    ] {
        assert!(
            dav.split(',').any(|x| x.trim() == c),
            "DAV header lacks {c}: {dav}"
        );
    }
    assert!(
        !dav.split(',').any(|x| x.trim() == "2"),
        "locking is not implemented"
    );

    let r = srv
        .propfind(
            "/dav/",
            "0",
            r#"<propfind xmlns="DAV:"><prop><current-user-principal/><principal-collection-set/></prop></propfind>"#,
        )
        .await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    let cup = found_prop(resp, "DAV:", "current-user-principal").unwrap();
    assert_eq!(
        cup.child("DAV:", "href").unwrap().text,
        "/dav/principals/alice/"
    );

    let r = srv
        .propfind(
            "/dav/principals/alice/",
            "0",
            r#"<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><displayname/><principal-URL/><C:calendar-home-set/><C:calendar-user-address-set/><supported-report-set/><owner/><resourcetype/></prop></propfind>"#,
        )
        .await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    assert_eq!(prop_text(resp, "DAV:", "displayname").unwrap(), "Alice A");
    let home = found_prop(resp, "urn:ietf:params:xml:ns:caldav", "calendar-home-set").unwrap();
    assert_eq!(
        home.child("DAV:", "href").unwrap().text,
        "/dav/calendars/alice/"
    );
    let addrs = found_prop(
        resp,
        "urn:ietf:params:xml:ns:caldav",
        "calendar-user-address-set",
    )
    .unwrap();
    assert!(
        addrs
            .children
            .iter()
            .any(|h| h.text == "mailto:alice@example.org")
    );
    assert!(found_prop(resp, "DAV:", "principal-URL").is_some());
    assert!(found_prop(resp, "DAV:", "supported-report-set").is_some());
    assert!(
        found_prop(resp, "DAV:", "resourcetype")
            .unwrap()
            .child("DAV:", "principal")
            .is_some()
    );

    // The home exists on first use with a calendar and a task list.
    let r = srv
        .propfind(
            "/dav/calendars/alice/",
            "1",
            r#"<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><resourcetype/><C:supported-calendar-component-set/><current-user-privilege-set/></prop></propfind>"#,
        )
        .await;
    r.expect(207);
    let ms = r.xml();
    let all = responses(&ms);
    let cal = all
        .iter()
        .find(|(h, _)| h == CAL)
        .expect("default calendar");
    let comps = found_prop(
        &cal.1,
        "urn:ietf:params:xml:ns:caldav",
        "supported-calendar-component-set",
    )
    .unwrap();
    assert_eq!(comps.children[0].attr("name"), Some("VEVENT"));
    let tasks = all
        .iter()
        .find(|(h, _)| h == "/dav/calendars/alice/tasks/")
        .expect("task list");
    let comps = found_prop(
        &tasks.1,
        "urn:ietf:params:xml:ns:caldav",
        "supported-calendar-component-set",
    )
    .unwrap();
    assert_eq!(comps.children[0].attr("name"), Some("VTODO"));
    // Thunderbird decides read-only from this: the owner can write.
    let privs = found_prop(&cal.1, "DAV:", "current-user-privilege-set").unwrap();
    assert!(
        privs
            .children
            .iter()
            .any(|p| p.child("DAV:", "write").is_some())
    );
}
both_backends!(discovery_and_home, discovery);

async fn propfind_rules(srv: TestServer) {
    let r = srv.propfind(CAL, "infinity", "").await;
    r.expect(403);
    assert!(r.text().contains("propfind-finite-depth"));

    let r = srv
        .propfind(CAL, "0", r#"<propfind xmlns="DAV:"><prop><getctag xmlns="http://calendarserver.org/ns/"/><x:nope xmlns:x="urn:nope"/></prop></propfind>"#)
        .await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    assert!(found_prop(resp, "http://calendarserver.org/ns/", "getctag").is_some());
    assert!(missing_prop(resp, "urn:nope", "nope"));

    let r = srv
        .propfind(CAL, "0", r#"<propfind xmlns="DAV:"><propname/></propfind>"#)
        .await;
    r.expect(207);
    assert!(r.text().contains("sync-token"));
    let r = srv.propfind(CAL, "0", "").await;
    r.expect(207);
    assert!(r.text().contains("resourcetype"));

    // Malformed XML is 400 with a message; nothing panics.
    for bad in [
        "<propfind xmlns=\"DAV:\"><prop>",
        "<x:propfind/>",
        "not xml at all",
        "<!DOCTYPE a [<!ENTITY b \"c\">]><a/>",
    ] {
        let r = srv.propfind(CAL, "0", bad).await;
        r.expect(400);
        assert!(r.text().contains("message"));
    }
    let deep = "<a xmlns=\"DAV:\">".repeat(200) + &"</a>".repeat(200);
    srv.propfind(CAL, "0", &deep).await.expect(400);
}
both_backends!(propfind, propfind_rules);

async fn proppatch_rules(srv: TestServer) {
    // Dead property stored and returned byte-exact (inner content, namespaces).
    let body = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:note a="1"><Z:b>x &amp; y</Z:b> <q xmlns="urn:q">ü</q></Z:note><D:displayname>Work</D:displayname><A:calendar-color xmlns:A="http://apple.com/ns/ical/">#FF0000FF</A:calendar-color></D:prop></D:set></D:propertyupdate>"#;
    let r = srv.send(srv.req("PROPPATCH", CAL).body(body)).await;
    r.expect(207);
    assert!(r.text().contains("200 OK"));
    let r = srv
        .propfind(CAL, "0", r#"<propfind xmlns="DAV:"><prop><Z:note xmlns:Z="urn:z"/><displayname/><calendar-color xmlns="http://apple.com/ns/ical/"/></prop></propfind>"#)
        .await;
    r.expect(207);
    let t = r.text();
    assert!(
        t.contains(r#"<Z:b>x &amp; y</Z:b> <q xmlns="urn:q">ü</q></Z:note>"#),
        "{t}"
    );
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    assert_eq!(prop_text(resp, "DAV:", "displayname").unwrap(), "Work");
    assert_eq!(
        prop_text(resp, "http://apple.com/ns/ical/", "calendar-color").unwrap(),
        "#FF0000FF"
    );

    // Atomic: a protected property fails the whole request; nothing else changes.
    let body = r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Changed</D:displayname><D:getetag>x</D:getetag></D:prop></D:set></D:propertyupdate>"#;
    let r = srv.send(srv.req("PROPPATCH", CAL).body(body)).await;
    r.expect(207);
    let t = r.text();
    assert!(
        t.contains("403 Forbidden") && t.contains("424 Failed Dependency"),
        "{t}"
    );
    let r = srv
        .propfind(
            CAL,
            "0",
            r#"<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>"#,
        )
        .await;
    assert!(r.text().contains(">Work<"));

    // Remove.
    let body = r#"<D:propertyupdate xmlns:D="DAV:"><D:remove><D:prop><Z:note xmlns:Z="urn:z"/></D:prop></D:remove></D:propertyupdate>"#;
    srv.send(srv.req("PROPPATCH", CAL).body(body))
        .await
        .expect(207);
    let r = srv
        .propfind(
            CAL,
            "0",
            r#"<propfind xmlns="DAV:"><prop><Z:note xmlns:Z="urn:z"/></prop></propfind>"#,
        )
        .await;
    assert!(missing_prop(&responses(&r.xml())[0].1, "urn:z", "note"));

    // calendar-timezone must be valid iCalendar.
    let body = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>nonsense</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"#;
    let r = srv.send(srv.req("PROPPATCH", CAL).body(body)).await;
    assert!(r.text().contains("403"));

    // Properties are per user: bob cannot PROPPATCH alice's calendar.
    let r = srv
        .send(
            srv.req_as("bob", "bob-password", "PROPPATCH", CAL)
                .body(body),
        )
        .await;
    r.expect(403);
}
both_backends!(proppatch, proppatch_rules);

async fn calendar_properties(srv: TestServer) {
    // Every calendar collection property a client reads is present (RFC 4791 5.2, RFC 6638
    // 9.1, RFC 7809, RFC 5842, CalendarServer ctag, Apple colour/order).
    const C: &str = "urn:ietf:params:xml:ns:caldav";
    let body = r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><D:prop><C:supported-calendar-data/><C:max-resource-size/><C:min-date-time/><C:max-date-time/><C:max-instances/><C:max-attendees-per-instance/><C:schedule-calendar-transp/><CS:getctag/><D:sync-token/><D:resource-id/><D:owner/><D:acl/><D:supported-report-set/></D:prop></D:propfind>"#;
    let r = srv.propfind(CAL, "0", body).await;
    r.expect(207);
    let ms = r.xml();
    let (_, resp) = &responses(&ms)[0];
    for (ns, name) in [
        (C, "supported-calendar-data"),
        (C, "max-resource-size"),
        (C, "min-date-time"),
        (C, "max-date-time"),
        (C, "max-instances"),
        (C, "max-attendees-per-instance"),
        (C, "schedule-calendar-transp"),
        ("http://calendarserver.org/ns/", "getctag"),
        ("DAV:", "sync-token"),
        ("DAV:", "resource-id"),
        ("DAV:", "owner"),
        ("DAV:", "acl"),
    ] {
        assert!(
            found_prop(resp, ns, name).is_some(),
            "{name} missing:\n{}",
            r.text()
        );
    }
    let reports = found_prop(resp, "DAV:", "supported-report-set").unwrap();
    let listed: Vec<String> = reports
        .children
        .iter()
        .filter_map(|r| r.child("DAV:", "report"))
        .filter_map(|r| r.children.first().map(|c| c.local.clone()))
        .collect();
    for want in [
        "calendar-multiget",
        "calendar-query",
        "free-busy-query",
        "sync-collection",
    ] {
        assert!(listed.iter().any(|l| l == want), "{want} not in {listed:?}");
    }

    // Writable ones persist: time-zone id (RFC 7809), transparency, description, order.
    let set = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop><C:calendar-timezone-id>Europe/Berlin</C:calendar-timezone-id><C:schedule-calendar-transp><C:transparent/></C:schedule-calendar-transp><C:calendar-description>Team dates</C:calendar-description><A:calendar-order>3</A:calendar-order></D:prop></D:set></D:propertyupdate>"#;
    let r = srv.send(srv.req("PROPPATCH", CAL).body(set)).await;
    r.expect(207);
    assert!(
        !r.text().contains("403") && !r.text().contains("424"),
        "{}",
        r.text()
    );
    let get = r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:prop><C:calendar-timezone-id/><C:schedule-calendar-transp/><C:calendar-description/><A:calendar-order/></D:prop></D:propfind>"#;
    let ms = srv.propfind(CAL, "0", get).await.xml();
    let (_, resp) = &responses(&ms)[0];
    assert_eq!(
        prop_text(resp, C, "calendar-timezone-id").unwrap(),
        "Europe/Berlin"
    );
    assert!(
        found_prop(resp, C, "schedule-calendar-transp")
            .unwrap()
            .child(C, "transparent")
            .is_some()
    );
    assert_eq!(
        prop_text(resp, C, "calendar-description").unwrap(),
        "Team dates"
    );
    assert_eq!(
        prop_text(resp, "http://apple.com/ns/ical/", "calendar-order").unwrap(),
        "3"
    );
    // Bad values are refused and change nothing.
    let bad = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop><A:calendar-order>first</A:calendar-order></D:prop></D:set></D:propertyupdate>"#;
    let r = srv.send(srv.req("PROPPATCH", CAL).body(bad)).await;
    assert!(r.text().contains("409"), "{}", r.text());
    let ms = srv.propfind(CAL, "0", get).await.xml();
    assert_eq!(
        prop_text(
            &responses(&ms)[0].1,
            "http://apple.com/ns/ical/",
            "calendar-order"
        )
        .unwrap(),
        "3"
    );
}
both_backends!(calendar_collection_properties, calendar_properties);

async fn collections(srv: TestServer) {
    // MKCALENDAR with initial properties.
    let body = r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Chores</D:displayname><C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;
    srv.send(
        srv.req("MKCALENDAR", "/dav/calendars/alice/chores/")
            .body(body),
    )
    .await
    .expect(201);
    let again = srv
        .send(
            srv.req("MKCALENDAR", "/dav/calendars/alice/chores/")
                .body(body),
        )
        .await;
    again.expect(403);
    assert!(again.text().contains("resource-must-be-null"));
    // supported-calendar-component-set is honoured on PUT.
    let r = srv
        .put_ics("/dav/calendars/alice/chores/e.ics", &event("e", "x"))
        .await;
    r.expect(403);
    assert!(r.text().contains("supported-calendar-component"));
    srv.put_ics("/dav/calendars/alice/chores/t.ics", &todo("t"))
        .await
        .expect(201);

    // Extended MKCOL creating a calendar.
    let body = r#"<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype><D:displayname>Ext</D:displayname></D:prop></D:set></D:mkcol>"#;
    srv.send(
        srv.req("MKCOL", "/dav/calendars/alice/ext/")
            .header("Content-Type", "application/xml")
            .body(body),
    )
    .await
    .expect(201);
    let r = srv
        .propfind(
            "/dav/calendars/alice/ext/",
            "0",
            r#"<propfind xmlns="DAV:"><prop><resourcetype/><displayname/></prop></propfind>"#,
        )
        .await;
    let t = r.text();
    assert!(t.contains("calendar") && t.contains(">Ext<"), "{t}");

    // A protected property in extended MKCOL: 403 with a mkcol-response, nothing created.
    let body = r#"<D:mkcol xmlns:D="DAV:"><D:set><D:prop><D:displayname>X</D:displayname><D:getetag>no</D:getetag></D:prop></D:set></D:mkcol>"#;
    let r = srv
        .send(
            srv.req("MKCOL", "/dav/calendars/alice/bad/")
                .header("Content-Type", "application/xml")
                .body(body),
        )
        .await;
    r.expect(403);
    let root = r.xml();
    assert!(root.is("DAV:", "mkcol-response"), "{}", r.text());
    assert!(r.text().contains("424 Failed Dependency"));
    srv.send(
        srv.req("PROPFIND", "/dav/calendars/alice/bad/")
            .header("Depth", "0"),
    )
    .await
    .expect(404);

    // Plain MKCOL; nesting a calendar in a calendar is refused.
    srv.send(srv.req("MKCOL", "/dav/calendars/alice/plain/"))
        .await
        .expect(201);
    let r = srv
        .send(srv.req("MKCALENDAR", "/dav/calendars/alice/calendar/inner/"))
        .await;
    r.expect(403);
    assert!(r.text().contains("calendar-collection-location-ok"));
    srv.send(srv.req("MKCOL", "/dav/calendars/alice/missing/deeper/"))
        .await
        .expect(409);

    // DELETE a collection removes its members.
    srv.send(srv.req("DELETE", "/dav/calendars/alice/chores/"))
        .await
        .expect(204);
    srv.send(srv.req("GET", "/dav/calendars/alice/chores/t.ics"))
        .await
        .expect(404);
    srv.send(srv.req("DELETE", "/dav/calendars/alice/"))
        .await
        .expect(403);
}
both_backends!(mkcol_mkcalendar_delete, collections);

async fn put_get_conditions(srv: TestServer) {
    let path = "/dav/calendars/alice/calendar/a.ics";
    let body = event("a", "First");
    let r = srv
        .send(
            srv.req("PUT", path)
                .header("If-None-Match", "*")
                .header("Content-Type", "text/calendar")
                .body(body.clone()),
        )
        .await;
    r.expect(201);
    let etag1 = r.etag();
    assert!(etag1.starts_with('"') && !etag1.starts_with("W/"));
    srv.send(
        srv.req("PUT", path)
            .header("If-None-Match", "*")
            .header("Content-Type", "text/calendar")
            .body(body.clone()),
    )
    .await
    .expect(412);

    let r = srv.send(srv.req("GET", path)).await;
    r.expect(200);
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(r.etag(), etag1);
    assert!(r.header("last-modified").is_some());
    let r = srv.send(srv.req("HEAD", path)).await;
    r.expect(200);
    assert_eq!(r.etag(), etag1);
    srv.send(srv.req("GET", path).header("If-None-Match", &etag1))
        .await
        .expect(304);

    let body2 = event("a", "Second");
    srv.send(
        srv.req("PUT", path)
            .header("If-Match", "\"nope\"")
            .header("Content-Type", "text/calendar")
            .body(body2.clone()),
    )
    .await
    .expect(412);
    let r = srv
        .send(
            srv.req("PUT", path)
                .header("If-Match", &etag1)
                .header("Content-Type", "text/calendar")
                .body(body2.clone()),
        )
        .await;
    r.expect(204);
    let etag2 = r.etag();
    assert_ne!(etag1, etag2);
    // The failed conditional writes lost nothing: the second body is stored.
    assert_eq!(srv.send(srv.req("GET", path)).await.body, body2.as_bytes());

    // Bad calendar data: 403 with the precondition and the line; stored data untouched.
    let bad = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nNO COLON HERE\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = srv.put_ics(path, bad).await;
    r.expect(403);
    let t = r.text();
    assert!(
        t.contains("valid-calendar-data") && t.contains("line 5"),
        "{t}"
    );
    let two = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:y\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = srv.put_ics(path, two).await;
    r.expect(403);
    assert!(r.text().contains("valid-calendar-object-resource"));
    let r = srv
        .send(
            srv.req("PUT", path)
                .header("Content-Type", "text/plain")
                .body(body2.clone()),
        )
        .await;
    r.expect(403);
    assert!(r.text().contains("supported-calendar-data"));
    assert_eq!(srv.send(srv.req("GET", path)).await.body, body2.as_bytes());

    // Same UID under another name: no-uid-conflict naming the holder.
    let r = srv
        .put_ics("/dav/calendars/alice/calendar/other.ics", &body2)
        .await;
    r.expect(403);
    let t = r.text();
    assert!(
        t.contains("no-uid-conflict") && t.contains("/dav/calendars/alice/calendar/a.ics"),
        "{t}"
    );

    // PUT into a missing collection: 409.
    srv.put_ics("/dav/calendars/alice/nope/a.ics", &body2)
        .await
        .expect(409);

    // DELETE with a wrong ETag: 412; right: 204.
    srv.send(srv.req("DELETE", path).header("If-Match", &etag1))
        .await
        .expect(412);
    srv.send(srv.req("DELETE", path).header("If-Match", &etag2))
        .await
        .expect(204);
    srv.send(srv.req("GET", path)).await.expect(404);

    // Huge bodies are refused with 413 from the Content-Length alone, before any byte of the
    // body is read (a raw request, so the client cannot trip over the early answer).
    use std::io::{Read, Write};
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "PUT /dav/calendars/alice/calendar/huge.ics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\n\r\n",
        21 * 1024 * 1024
    )
    .unwrap();
    let mut head = [0u8; 64];
    let n = sock.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    srv.send(srv.req("GET", "/dav/calendars/alice/calendar/huge.ics"))
        .await
        .expect(404);
    // A chunked body without Content-Length is cut off at the limit; the client may see the
    // 413 or a closed connection, but nothing is stored either way.
    let stream = futures_util::stream::iter(
        (0..22).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'X'; 1024 * 1024]))),
    );
    // A one-off client, so the connection the server closes is not reused by later requests.
    let r = reqwest::Client::new()
        .put(srv.url("/dav/calendars/alice/calendar/huge2.ics"))
        .basic_auth("alice", Some("alice-password"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
    }
    srv.send(srv.req("GET", "/dav/calendars/alice/calendar/huge2.ics"))
        .await
        .expect(404);
}
both_backends!(put_get_delete_conditions, put_get_conditions);

async fn long_names(srv: TestServer) {
    let uid = format!("{}@example.com", "u".repeat(300));
    let name = format!("{}@x y.ics", "n".repeat(260));
    let enc = format!(
        "/dav/calendars/alice/calendar/{}%40x%20y.ics",
        "n".repeat(260)
    );
    srv.put_ics(&enc, &event(&uid, "Long")).await.expect(201);
    let r = srv
        .propfind(
            CAL,
            "1",
            r#"<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>"#,
        )
        .await;
    let ms = r.xml();
    let hrefs: Vec<String> = responses(&ms).into_iter().map(|(h, _)| h).collect();
    assert!(hrefs.contains(&enc), "{hrefs:?}");
    let _ = name;
    // A client that sends '@' unencoded reaches the same resource.
    let raw = format!(
        "/dav/calendars/alice/calendar/{}@x%20y.ics",
        "n".repeat(260)
    );
    srv.send(srv.req("GET", &raw)).await.expect(200);
}
both_backends!(long_uids_and_hrefs, long_names);

async fn copy_move(srv: TestServer) {
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/second/"))
        .await
        .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/calendar/m.ics",
        &event("m", "Move me"),
    )
    .await
    .expect(201);
    let dest = srv.url("/dav/calendars/alice/second/m.ics");
    // COPY across calendars.
    srv.send(
        srv.req("COPY", "/dav/calendars/alice/calendar/m.ics")
            .header("Destination", &dest),
    )
    .await
    .expect(201);
    // Overwrite: F on an existing destination: 412.
    srv.send(
        srv.req("COPY", "/dav/calendars/alice/calendar/m.ics")
            .header("Destination", &dest)
            .header("Overwrite", "F"),
    )
    .await
    .expect(412);
    // COPY within the same calendar collides on UID.
    let r = srv
        .send(
            srv.req("COPY", "/dav/calendars/alice/calendar/m.ics")
                .header(
                    "Destination",
                    srv.url("/dav/calendars/alice/calendar/m2.ics"),
                ),
        )
        .await;
    r.expect(403);
    assert!(r.text().contains("no-uid-conflict"));
    // MOVE within a calendar (rename) keeps the bytes.
    srv.send(
        srv.req("MOVE", "/dav/calendars/alice/calendar/m.ics")
            .header(
                "Destination",
                srv.url("/dav/calendars/alice/calendar/renamed.ics"),
            ),
    )
    .await
    .expect(201);
    srv.send(srv.req("GET", "/dav/calendars/alice/calendar/m.ics"))
        .await
        .expect(404);
    let r = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/renamed.ics"))
        .await;
    r.expect(200);
    assert_eq!(r.body, event("m", "Move me").as_bytes());
    // MOVE across calendars onto an existing copy with Overwrite: T.
    srv.send(
        srv.req("MOVE", "/dav/calendars/alice/calendar/renamed.ics")
            .header("Destination", &dest),
    )
    .await
    .expect(204);
    // A VEVENT cannot be moved into a task list.
    let r = srv
        .send(
            srv.req("MOVE", "/dav/calendars/alice/second/m.ics")
                .header("Destination", srv.url("/dav/calendars/alice/tasks/m.ics")),
        )
        .await;
    r.expect(403);
    assert!(r.text().contains("supported-calendar-component"));
    // Never into another user's home.
    srv.send(
        srv.req("COPY", "/dav/calendars/alice/second/m.ics")
            .header("Destination", srv.url("/dav/calendars/bob/calendar/m.ics")),
    )
    .await
    .expect(403);
}
both_backends!(copy_and_move, copy_move);

async fn multiget(srv: TestServer) {
    let e1 = event("g1", "One");
    srv.put_ics("/dav/calendars/alice/calendar/g1.ics", &e1)
        .await
        .expect(201);
    srv.put_ics("/dav/calendars/alice/calendar/g2.ics", &event("g2", "Two"))
        .await
        .expect(201);
    let body = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><D:href>/dav/calendars/alice/calendar/g1.ics</D:href><D:href>/dav/calendars/alice/calendar/g2.ics</D:href><D:href>/dav/calendars/alice/calendar/none.ics</D:href></C:calendar-multiget>"#;
    let r = srv.report(CAL, body).await;
    r.expect(207);
    let ms = r.xml();
    let all = responses(&ms);
    assert_eq!(all.len(), 3);
    let g1 = &all.iter().find(|(h, _)| h.ends_with("g1.ics")).unwrap().1;
    // calendar-data comes back byte-exact, CRLF included.
    assert_eq!(
        prop_text(g1, "urn:ietf:params:xml:ns:caldav", "calendar-data").unwrap(),
        e1
    );
    let none = &all.iter().find(|(h, _)| h.ends_with("none.ics")).unwrap().1;
    assert!(none.child("DAV:", "status").unwrap().text.contains("404"));
}
both_backends!(calendar_multiget, multiget);

fn sync_body(token: &str, limit: Option<usize>, props: &str) -> String {
    let limit = limit
        .map(|l| format!("<D:limit><D:nresults>{l}</D:nresults></D:limit>"))
        .unwrap_or_default();
    format!(
        r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>{limit}<D:prop>{props}</D:prop></D:sync-collection>"#
    )
}

fn token_of(ms: &convene::dav::Element) -> String {
    ms.child("DAV:", "sync-token")
        .expect("sync-token")
        .text
        .clone()
}

async fn sync(srv: TestServer) {
    for i in 0..5 {
        srv.put_ics(&format!("{CAL}s{i}.ics"), &event(&format!("s{i}"), "S"))
            .await
            .expect(201);
    }
    // Initial sync lists everything.
    let r = srv.report(CAL, &sync_body("", None, "<D:getetag/>")).await;
    r.expect(207);
    let ms = r.xml();
    assert_eq!(responses(&ms).len(), 5);
    let t0 = token_of(&ms);

    // No change: empty answer, same token.
    let ms = srv
        .report(CAL, &sync_body(&t0, None, "<D:getetag/>"))
        .await
        .xml();
    assert!(responses(&ms).is_empty());
    assert_eq!(token_of(&ms), t0);

    // Change one, delete one: both reported, the delete as 404.
    srv.put_ics(&format!("{CAL}s1.ics"), &event("s1", "S changed"))
        .await
        .expect(204);
    srv.send(srv.req("DELETE", &format!("{CAL}s2.ics")))
        .await
        .expect(204);
    let ms = srv
        .report(CAL, &sync_body(&t0, None, "<D:getetag/>"))
        .await
        .xml();
    let all = responses(&ms);
    assert_eq!(all.len(), 2, "{all:?}");
    let del = &all.iter().find(|(h, _)| h.ends_with("s2.ics")).unwrap().1;
    assert!(del.child("DAV:", "status").unwrap().text.contains("404"));
    let t1 = token_of(&ms);

    // An empty <prop/> still lists members.
    let ms = srv.report(CAL, &sync_body("", None, "")).await.xml();
    assert_eq!(responses(&ms).len(), 4);

    // DAV:limit: 507 for the collection and a token that resumes exactly.
    for i in 10..17 {
        srv.put_ics(&format!("{CAL}s{i}.ics"), &event(&format!("s{i}"), "S"))
            .await
            .expect(201);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut token = t1.clone();
    for _round in 0..10 {
        let ms = srv
            .report(CAL, &sync_body(&token, Some(3), "<D:getetag/>"))
            .await
            .xml();
        let all = responses(&ms);
        let truncated = all.iter().any(|(h, r)| {
            h == CAL
                && r.child("DAV:", "status")
                    .is_some_and(|s| s.text.contains("507"))
        });
        for (h, _) in all.iter().filter(|(h, _)| h != CAL) {
            assert!(seen.insert(h.clone()), "{h} reported twice");
        }
        token = token_of(&ms);
        if !truncated {
            break;
        }
        assert_eq!(all.len(), 4, "3 members + the 507 marker");
    }
    assert_eq!(seen.len(), 7, "every change exactly once: {seen:?}");

    // Invalid and foreign tokens: 403 valid-sync-token.
    for bad in [
        "garbage",
        "https://convene.invalid/sync/00000000-0000-0000-0000-000000000000/1",
        &format!("{}999999", t0.rsplit_once('/').unwrap().0.to_string() + "/"),
    ] {
        let r = srv.report(CAL, &sync_body(bad, None, "<D:getetag/>")).await;
        r.expect(403);
        assert!(r.text().contains("valid-sync-token"));
    }

    // Home-level sync (Apple): a changed calendar is reported.
    let home = "/dav/calendars/alice/";
    let ms = srv
        .report(home, &sync_body("", None, "<D:getetag/>"))
        .await
        .xml();
    let ht = token_of(&ms);
    srv.put_ics(&format!("{CAL}h.ics"), &event("h", "H"))
        .await
        .expect(201);
    let ms = srv
        .report(
            home,
            &sync_body(
                &ht,
                None,
                "<CS:getctag xmlns:CS=\"http://calendarserver.org/ns/\"/>",
            ),
        )
        .await
        .xml();
    let all = responses(&ms);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, CAL);
    srv.send(srv.req("DELETE", "/dav/calendars/alice/tasks/"))
        .await
        .expect(204);
    let ms = srv
        .report(home, &sync_body(&token_of(&ms), None, ""))
        .await
        .xml();
    let all = responses(&ms);
    assert_eq!(all.len(), 1);
    assert!(
        all[0]
            .1
            .child("DAV:", "status")
            .unwrap()
            .text
            .contains("404")
    );
}
both_backends!(sync_collection, sync);

async fn isolation(srv: TestServer) {
    srv.put_ics(&format!("{CAL}p.ics"), &event("p", "Private"))
        .await
        .expect(201);
    for (m, p) in [
        ("GET", "/dav/calendars/alice/calendar/p.ics"),
        ("PROPFIND", "/dav/calendars/alice/"),
        ("DELETE", "/dav/calendars/alice/calendar/p.ics"),
        ("PUT", "/dav/calendars/alice/calendar/q.ics"),
        ("REPORT", "/dav/calendars/alice/calendar/"),
        ("MKCALENDAR", "/dav/calendars/alice/new/"),
        ("PROPFIND", "/dav/calendars/nobody/"),
    ] {
        let r = srv
            .send(
                srv.req_as("bob", "bob-password", m, p)
                    .header("Depth", "0")
                    .body(event("q", "x")),
            )
            .await;
        assert_eq!(r.status.as_u16(), 403, "{m} {p}: {}", r.text());
    }
    assert_eq!(
        srv.send(srv.req("GET", "/dav/calendars/alice/calendar/p.ics"))
            .await
            .body,
        event("p", "Private").as_bytes()
    );
}
both_backends!(users_cannot_reach_other_homes, isolation);

async fn corpus(srv: TestServer) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ical-corpus/valid");
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    let path = "/dav/calendars/alice/corpus/";
    let mk = r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="VTODO"/><C:comp name="VJOURNAL"/><C:comp name="VFREEBUSY"/><C:comp name="VAVAILABILITY"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;
    srv.send(srv.req("MKCALENDAR", path).body(mk))
        .await
        .expect(201);
    for e in entries {
        let bytes = std::fs::read(e.path()).unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let href = format!("{path}{name}");
        let r = srv
            .send(
                srv.req("PUT", &href)
                    .header("Content-Type", "text/calendar")
                    .body(bytes.clone()),
            )
            .await;
        assert!(r.status.is_success(), "{name}: {}", r.text());
        let got = srv.send(srv.req("GET", &href)).await;
        assert_eq!(got.body, bytes, "{name} did not round-trip byte-exact");
        n += 1;
    }
    assert!(n >= 8, "corpus too small: {n}");
    let bad = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/ical-corpus/invalid/09_malformed.ics"),
    )
    .unwrap();
    let r = srv
        .send(
            srv.req("PUT", &format!("{CAL}bad.ics"))
                .header("Content-Type", "text/calendar")
                .body(bad),
        )
        .await;
    r.expect(403);
    assert!(
        r.text().contains("valid-calendar-data") && r.text().contains("line"),
        "{}",
        r.text()
    );
    let outlook = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/ical-corpus/invalid/06_outlook.ics"),
    )
    .unwrap();
    let r = srv
        .send(
            srv.req("PUT", &format!("{CAL}itip.ics"))
                .header("Content-Type", "text/calendar")
                .body(outlook),
        )
        .await;
    r.expect(403);
    assert!(r.text().contains("METHOD"), "{}", r.text());
}
both_backends!(ical_corpus_round_trip, corpus);

/// RFC 3744 9.4/9.5: finding people by name or address (Apple Calendar's invitee lookup).
async fn search_hrefs(srv: &TestServer, body: &str) -> Vec<String> {
    let r = srv.report("/dav/", body).await;
    r.expect(207);
    let mut hrefs: Vec<String> = responses(&r.xml()).into_iter().map(|(h, _)| h).collect();
    hrefs.sort();
    hrefs
}

async fn principal_search(srv: TestServer) {
    let srv = &srv;
    let search = |body: &'static str| search_hrefs(srv, body);
    let by_name = r#"<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:property-search><D:prop><D:displayname/></D:prop><D:match>alice a</D:match></D:property-search><D:prop><D:displayname/><C:calendar-home-set/></D:prop></D:principal-property-search>"#;
    assert_eq!(search(by_name).await, vec!["/dav/principals/alice/"]);
    let r = srv.report("/dav/principals/", by_name).await;
    let ms = r.xml();
    let hit = &responses(&ms)[0].1;
    assert_eq!(
        prop_text(hit, "DAV:", "displayname").as_deref(),
        Some("Alice A")
    );
    let home = found_prop(hit, "urn:ietf:params:xml:ns:caldav", "calendar-home-set").unwrap();
    assert_eq!(home.children[0].text, "/dav/calendars/alice/");
    // python-caldav's shape: the wanted properties beside an empty DAV:prop.
    let sibling = r#"<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:property-search><D:prop><D:displayname/></D:prop><D:match>bob</D:match></D:property-search><D:prop/><C:calendar-home-set/><D:displayname/></D:principal-property-search>"#;
    let r = srv.report("/dav/", sibling).await;
    let ms = r.xml();
    let hit = &responses(&ms)[0].1;
    assert_eq!(
        prop_text(hit, "DAV:", "displayname").as_deref(),
        Some("bob")
    );
    assert!(found_prop(hit, "urn:ietf:params:xml:ns:caldav", "calendar-home-set").is_some());
    // Address search; anyof versus allof.
    let by_mail = r#"<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:property-search><D:prop><C:calendar-user-address-set/></D:prop><D:match>BOB@example</D:match></D:property-search><D:prop><D:displayname/></D:prop></D:principal-property-search>"#;
    assert_eq!(search(by_mail).await, vec!["/dav/principals/bob/"]);
    let any = r#"<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" test="anyof"><D:property-search><D:prop><D:displayname/></D:prop><D:match>Alice</D:match></D:property-search><D:property-search><D:prop><C:calendar-user-address-set/></D:prop><D:match>bob@</D:match></D:property-search><D:prop><D:displayname/></D:prop></D:principal-property-search>"#;
    assert_eq!(
        search(any).await,
        vec!["/dav/principals/alice/", "/dav/principals/bob/"]
    );
    let all = any.replace(r#" test="anyof""#, "");
    assert!(search(Box::leak(all.into_boxed_str())).await.is_empty());
    let nobody = r#"<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/></D:prop><D:match>zelda</D:match></D:property-search><D:prop><D:displayname/></D:prop></D:principal-property-search>"#;
    assert!(search(nobody).await.is_empty());
    // Listing everyone (no property-search), as python-caldav and DAVx5 do.
    let list = r#"<D:principal-property-search xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:principal-property-search>"#;
    assert_eq!(
        search(list).await,
        vec!["/dav/principals/alice/", "/dav/principals/bob/"]
    );
    // A search on a property that cannot be searched is refused with a message.
    let bad = r#"<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:getetag/></D:prop><D:match>x</D:match></D:property-search></D:principal-property-search>"#;
    srv.report("/dav/", bad).await.expect(400);
    // The searchable set is advertised.
    let r = srv
        .report(
            "/dav/principals/",
            r#"<D:principal-search-property-set xmlns:D="DAV:"/>"#,
        )
        .await;
    r.expect(200);
    let set = r.xml();
    // Display name, calendar-user address, email, first and last name.
    assert_eq!(
        set.children_named("DAV:", "principal-search-property")
            .count(),
        5
    );
}
both_backends!(principal_property_search, principal_search);

/// A collection bigger than the streaming threshold: the Depth 1 listing arrives as a stream
/// (chunked, no Content-Length) and is still one complete, well-formed multistatus naming every
/// member exactly once, with the properties asked for.
async fn streamed_listing(mut srv: TestServer) {
    const N: usize = 2_300;
    fill_listing(&srv, N).await;
    check_streamed_listing(&srv, N).await;
    // With the listing cache off, the stream pages through SQL instead.
    srv.restart_with_config("listing_cache_rows = 0\n").await;
    check_streamed_listing(&srv, N).await;
}

async fn fill_listing(srv: &TestServer, n: usize) {
    let puts = futures_util::stream::iter(0..n).map(|k| async move {
        srv.put_ics(&format!("{CAL}s{k:05}.ics"), &event(&format!("s{k}"), "S"))
            .await
            .expect(201);
    });
    puts.buffer_unordered(8).collect::<Vec<()>>().await;
}

async fn check_streamed_listing(srv: &TestServer, n: usize) {
    let r = srv
        .send(
            srv.req("PROPFIND", CAL)
                .header("Depth", "1")
                .header("Content-Type", "application/xml")
                .body(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#),
        )
        .await;
    r.expect(207);
    assert!(
        r.header("content-length").is_none(),
        "expected a streamed body"
    );
    let ms = r.xml();
    let all = responses(&ms);
    assert_eq!(all.len(), n + 1);
    let mut members: Vec<&String> = all.iter().map(|(h, _)| h).filter(|h| *h != CAL).collect();
    members.sort();
    members.dedup();
    assert_eq!(members.len(), n);
    assert_eq!(members[0], &format!("{CAL}s00000.ics"));
    assert!(
        all.iter()
            .filter(|(h, _)| h != CAL)
            .all(|(_, resp)| prop_text(resp, "DAV:", "getetag").is_some_and(|e| e.starts_with('"')))
    );
}
both_backends!(streamed_depth1_listing, streamed_listing);

/// An initial sync-collection of a big collection is streamed too, ends with its token, and
/// that token resumes exactly (RFC 6578).
async fn streamed_sync(srv: TestServer) {
    const N: usize = 2_300;
    fill_listing(&srv, N).await;
    let sync = |token: String| {
        format!(
            r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
        )
    };
    let r = srv.report(CAL, &sync(String::new())).await;
    r.expect(207);
    assert!(
        r.header("content-length").is_none(),
        "expected a streamed body"
    );
    let ms = r.xml();
    let all = responses(&ms);
    assert_eq!(all.len(), N);
    assert!(
        all.iter()
            .all(|(_, resp)| prop_text(resp, "DAV:", "getetag").is_some())
    );
    let token = ms.child("DAV:", "sync-token").expect("token").text.clone();
    srv.put_ics(&format!("{CAL}s00007.ics"), &event("s7", "Changed"))
        .await
        .expect(204);
    let r = srv.report(CAL, &sync(token)).await;
    r.expect(207);
    let changed: Vec<String> = responses(&r.xml()).into_iter().map(|(h, _)| h).collect();
    assert_eq!(changed, vec![format!("{CAL}s00007.ics")]);
    // A calendar-query selecting them all is streamed the same way, bodies included.
    let r = srv
        .report(
            CAL,
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>"#,
        )
        .await;
    r.expect(207);
    assert!(
        r.header("content-length").is_none(),
        "expected a streamed body"
    );
    let all = responses(&r.xml());
    assert_eq!(all.len(), N);
    assert!(all.iter().all(|(_, resp)| {
        prop_text(resp, "urn:ietf:params:xml:ns:caldav", "calendar-data")
            .is_some_and(|d| d.contains("BEGIN:VEVENT"))
    }));
}
both_backends!(streamed_sync_collection, streamed_sync);

/// RFC 4791 5.3.2.1: a resource over the configured size is refused with max-resource-size,
/// which the calendar also advertises; nothing already stored is lost.
async fn resource_size_limit(mut srv: TestServer) {
    srv.put_ics(&format!("{CAL}small.ics"), &event("small", "kept"))
        .await
        .expect(201);
    srv.restart_with_config("max_resource_size = 1000\n").await;
    let r = srv
        .propfind(
            CAL,
            "0",
            r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:max-resource-size/></D:prop></D:propfind>"#,
        )
        .await;
    let ms = r.xml();
    assert_eq!(
        prop_text(
            &responses(&ms)[0].1,
            "urn:ietf:params:xml:ns:caldav",
            "max-resource-size"
        )
        .as_deref(),
        Some("1000")
    );
    let big = event("big", &"x".repeat(2000));
    let r = srv.put_ics(&format!("{CAL}big.ics"), &big).await;
    r.expect(403);
    assert!(r.text().contains("max-resource-size"), "{}", r.text());
    // Overwriting the small one with a big body is refused too, and the old body stays.
    srv.put_ics(
        &format!("{CAL}small.ics"),
        &event("small", &"y".repeat(2000)),
    )
    .await
    .expect(403);
    let kept = srv.send(srv.req("GET", &format!("{CAL}small.ics"))).await;
    assert!(kept.text().contains("SUMMARY:kept"));
}
both_backends!(max_resource_size, resource_size_limit);

/// A client that sends a body without credentials, takes the 401 and goes on on the same
/// connection (python-requests and niquests do) must get an answer to its next request: the
/// unread body is drained instead of leaving hyper to drop the connection under it.
async fn unauthenticated_body_keeps_connection(srv: TestServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let body = "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded reads: until `n` answers are in, the server closes, or `wait` passes.
    async fn read_answers(
        sock: &mut tokio::net::TcpStream,
        got: &mut Vec<u8>,
        buf: &mut [u8],
        n: usize,
        wait: std::time::Duration,
    ) {
        let deadline = tokio::time::Instant::now() + wait;
        while String::from_utf8_lossy(got).matches("HTTP/1.1 ").count() < n {
            match tokio::time::timeout_at(deadline, sock.read(buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(k)) => got.extend_from_slice(&buf[..k]),
            }
        }
    }
    // The head first, and a moment for the server to answer before the body arrives (it may
    // also wait for the body: both are fine).
    let head = format!(
        "PUT /dav/calendars/alice/calendar/x.ics HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.expect("write head");
    let moment = std::time::Duration::from_millis(300);
    read_answers(&mut sock, &mut got, &mut buf, 1, moment).await;
    // Then the body, and the next request on the same connection.
    let rest = format!("{body}OPTIONS /dav/ HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let _ = sock.write_all(rest.as_bytes()).await;
    read_answers(
        &mut sock,
        &mut got,
        &mut buf,
        2,
        std::time::Duration::from_secs(10),
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        text.contains("HTTP/1.1 200"),
        "the second request got no answer:\n{text}"
    );
}
both_backends!(
    unauthenticated_body_connection_reuse,
    unauthenticated_body_keeps_connection
);

/// MKCALENDAR where something already is answers its precondition (RFC 4791 5.3.1.2, 403
/// `resource-must-be-null`) while MKCOL keeps RFC 4918's 405; a PROPFIND naming two of prop,
/// allprop and propname is malformed (RFC 4918 14.20, 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkcalendar_on_an_existing_url_and_a_two_headed_propfind() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let r = srv
        .send(srv.req("MKCALENDAR", "/dav/calendars/alice/calendar/"))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    assert!(r.text().contains("resource-must-be-null"), "{}", r.text());
    srv.send(srv.req("MKCOL", "/dav/calendars/alice/calendar/"))
        .await
        .expect(405);
    for body in [
        r#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:propname/></D:propfind>"#,
        r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop><D:propname/></D:propfind>"#,
    ] {
        let r = srv.propfind("/dav/calendars/alice/", "0", body).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text());
    }
    // One of them, with an include beside allprop, is still fine.
    srv.propfind(
        "/dav/calendars/alice/",
        "0",
        r#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:getetag/></D:include></D:propfind>"#,
    )
    .await
    .expect(207);
}

/// RFC 6578 3.3: `sync-level infinite` on a collection of collections (the home) is refused
/// with `sync-traversal-supported` instead of being answered as level 1; on a calendar, which
/// holds only objects, it is the same as level 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_sync_is_refused_where_it_would_need_more_levels() {
    let srv = TestServer::start(Backend::Sqlite).await;
    srv.put_ics(&format!("{CAL}s.ics"), &event("s1", "Synced"))
        .await
        .expect(201);
    let body = r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>infinite</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#;
    let r = srv.report("/dav/calendars/alice/", body).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    assert!(
        r.text().contains("sync-traversal-supported"),
        "{}",
        r.text()
    );
    let r = srv.report(CAL, body).await;
    r.expect(207);
    assert!(r.text().contains("s.ics"), "{}", r.text());
}

/// A doubled slash in a request path names the same resource for every method: GET, PUT and
/// DELETE agree (RFC 3986 does not make `//` a different segment for a server that has no
/// empty names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_slash_names_the_same_resource() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let doubled = "/dav/calendars/alice//calendar//slash.ics";
    srv.put_ics(doubled, &common::event("slash", "Doubled"))
        .await
        .expect(201);
    srv.send(srv.req("GET", "/dav/calendars/alice/calendar/slash.ics"))
        .await
        .expect(200);
    srv.send(srv.req("GET", doubled)).await.expect(200);
    srv.put_ics(doubled, &common::event("slash", "Doubled again"))
        .await
        .expect(204);
    srv.send(srv.req("DELETE", doubled)).await.expect(204);
    srv.send(srv.req("GET", "/dav/calendars/alice/calendar/slash.ics"))
        .await
        .expect(404);
}
