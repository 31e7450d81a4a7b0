//! calendar-query, expand and free-busy-query over real HTTP, on SQLite and PostgreSQL, with
//! fixture events whose expected answers are written out by hand (RFC 4791 appendix B style).

mod common;

use common::*;

const CAL: &str = "/dav/calendars/alice/calendar/";
const TASKS: &str = "/dav/calendars/alice/tasks/";

fn wrap(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n")
}

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

async fn seed(srv: &TestServer) {
    let items = [
        (
            "single.ics",
            wrap(
                "BEGIN:VEVENT\r\nUID:single\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\nSUMMARY:Budget review\r\nLOCATION:Room 1\r\nEND:VEVENT\r\n",
            ),
        ),
        (
            "weekly.ics",
            wrap(&format!(
                "{BERLIN}BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20240318T090000\r\nDTEND;TZID=Europe/Berlin:20240318T100000\r\nRRULE:FREQ=WEEKLY\r\nEXDATE;TZID=Europe/Berlin:20240325T090000\r\nSUMMARY:Standup\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240401T090000\r\nDTSTART;TZID=Europe/Berlin:20240402T140000\r\nDTEND;TZID=Europe/Berlin:20240402T150000\r\nSUMMARY:Standup (moved)\r\nEND:VEVENT\r\n"
            )),
        ),
        (
            "allday.ics",
            wrap(
                "BEGIN:VEVENT\r\nUID:allday\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;VALUE=DATE:20240110\r\nDTEND;VALUE=DATE:20240111\r\nSUMMARY:Holiday\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n",
            ),
        ),
        (
            "tentative.ics",
            wrap(
                "BEGIN:VEVENT\r\nUID:tentative\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240105T150000Z\r\nDTEND:20240105T160000Z\r\nSUMMARY:Maybe\r\nSTATUS:TENTATIVE\r\nEND:VEVENT\r\n",
            ),
        ),
    ];
    for (name, body) in items {
        srv.put_ics(&format!("{CAL}{name}"), &body)
            .await
            .expect(201);
    }
    let todos = [
        (
            "due.ics",
            wrap(
                "BEGIN:VTODO\r\nUID:due\r\nDTSTAMP:20240101T000000Z\r\nDUE:20240120T120000Z\r\nSUMMARY:File taxes\r\nEND:VTODO\r\n",
            ),
        ),
        (
            "open.ics",
            wrap(
                "BEGIN:VTODO\r\nUID:open\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Someday\r\nEND:VTODO\r\n",
            ),
        ),
    ];
    for (name, body) in todos {
        srv.put_ics(&format!("{TASKS}{name}"), &body)
            .await
            .expect(201);
    }
}

fn query_body(inner: &str, prop: &str) -> String {
    format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>{prop}</D:prop><C:filter><C:comp-filter name="VCALENDAR">{inner}</C:comp-filter></C:filter></C:calendar-query>"#
    )
}

fn event_range(start: &str, end: &str) -> String {
    format!(
        r#"<C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter>"#
    )
}

async fn names(srv: &TestServer, path: &str, inner: &str) -> Vec<String> {
    let r = srv.report(path, &query_body(inner, "")).await;
    r.expect(207);
    let mut v: Vec<String> = responses(&r.xml())
        .into_iter()
        .map(|(h, _)| h.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

async fn filters(srv: TestServer) {
    seed(&srv).await;
    // Time ranges: a day, the excluded and the moved instance, far beyond the horizon.
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20240105T000000Z", "20240106T000000Z")
        )
        .await,
        vec!["single.ics", "tentative.ics"]
    );
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20240105T110000Z", "20240105T150000Z")
        )
        .await,
        Vec::<String>::new(),
        "end and start are exclusive"
    );
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20240325T000000Z", "20240326T000000Z")
        )
        .await,
        Vec::<String>::new(),
        "EXDATE"
    );
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20240401T000000Z", "20240402T000000Z")
        )
        .await,
        Vec::<String>::new(),
        "moved away"
    );
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20240402T120000Z", "20240402T130000Z")
        )
        .await,
        vec!["weekly.ics"],
        "moved here (14:00 CEST)"
    );
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20400102T080000Z", "20400102T090000Z")
        )
        .await,
        vec!["weekly.ics"],
        "2040-01-02 is a Monday: 09:00 CET = 08:00Z, far beyond the indexing horizon"
    );
    assert_eq!(
        names(
            &srv,
            CAL,
            &event_range("20240110T000000Z", "20240110T000001Z")
        )
        .await,
        vec!["allday.ics"]
    );
    // Open-ended range.
    assert_eq!(names(&srv, CAL, r#"<C:comp-filter name="VEVENT"><C:time-range start="20240106T000000Z"/></C:comp-filter>"#).await, vec!["allday.ics", "weekly.ics"]);

    // Property filters.
    let text = |v: &str, coll: &str| {
        format!(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="{coll}">{v}</C:text-match></C:prop-filter></C:comp-filter>"#
        )
    };
    assert_eq!(
        names(&srv, CAL, &text("standup", "i;ascii-casemap")).await,
        vec!["weekly.ics"]
    );
    assert!(
        names(&srv, CAL, &text("standup", "i;octet"))
            .await
            .is_empty()
    );
    let negated = r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match negate-condition="yes">e</C:text-match></C:prop-filter></C:comp-filter>"#;
    assert_eq!(
        names(&srv, CAL, negated).await,
        vec!["allday.ics", "weekly.ics"],
        "'Holiday' and the series' 'Standup' have no 'e'"
    );
    let no_location = r#"<C:comp-filter name="VEVENT"><C:prop-filter name="LOCATION"><C:is-not-defined/></C:prop-filter></C:comp-filter>"#;
    assert_eq!(
        names(&srv, CAL, no_location).await,
        vec!["allday.ics", "tentative.ics", "weekly.ics"]
    );
    let alarm = r#"<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range start="20240318T074500Z" end="20240318T075500Z"/></C:comp-filter></C:comp-filter>"#;
    assert_eq!(
        names(&srv, CAL, alarm).await,
        vec!["weekly.ics"],
        "alarm 10 minutes before 08:00Z"
    );

    // VTODO rules (RFC 4791 9.9): DUE only, and a to-do with no dates matches any range.
    let todo = |s: &str, e: &str| {
        format!(
            r#"<C:comp-filter name="VTODO"><C:time-range start="{s}" end="{e}"/></C:comp-filter>"#
        )
    };
    assert_eq!(
        names(&srv, TASKS, &todo("20240120T000000Z", "20240120T115959Z")).await,
        vec!["open.ics"],
        "b >= DUE fails: the window ends before the due time"
    );
    assert_eq!(
        names(&srv, TASKS, &todo("20240120T000000Z", "20240120T120000Z")).await,
        vec!["due.ics", "open.ics"]
    );

    // Bad filters: clear 4xx.
    let r = srv.report(CAL, &query_body(r#"<C:comp-filter name="VEVENT"><C:time-range start="2024-01-05"/></C:comp-filter>"#, "")).await;
    r.expect(403);
    assert!(r.text().contains("valid-filter"));
    let r = srv
        .report(CAL, &query_body(&text("x", "i;klingon"), ""))
        .await;
    r.expect(403);
    assert!(r.text().contains("supported-collation"));
}
both_backends!(calendar_query_filters, filters);

async fn expand_and_freebusy(srv: TestServer) {
    seed(&srv).await;
    let body = query_body(
        &event_range("20240325T000000Z", "20240409T000000Z"),
        r#"<C:calendar-data><C:expand start="20240325T000000Z" end="20240409T000000Z"/></C:calendar-data>"#,
    );
    let r = srv.report(CAL, &body).await;
    r.expect(207);
    let ms = r.xml();
    let all = responses(&ms);
    assert_eq!(all.len(), 1);
    let data = prop_text(&all[0].1, "urn:ietf:params:xml:ns:caldav", "calendar-data").unwrap();
    assert!(
        !data.contains("RRULE") && !data.contains("VTIMEZONE") && !data.contains("EXDATE"),
        "{data}"
    );
    assert!(
        data.contains("RECURRENCE-ID:20240401T070000Z")
            && data.contains("DTSTART:20240402T120000Z"),
        "{data}"
    );
    assert!(data.contains("RECURRENCE-ID:20240408T070000Z"), "{data}");
    assert_eq!(
        data.matches("BEGIN:VEVENT").count(),
        2,
        "03-25 is excluded: {data}"
    );

    // Partial retrieval (RFC 4791 9.6.1): only UID and SUMMARY of the VEVENTs.
    let body = r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:comp name="VCALENDAR"><C:allprop/><C:comp name="VEVENT"><C:prop name="UID"/><C:prop name="SUMMARY"/></C:comp></C:comp></C:calendar-data></D:prop><D:href>/dav/calendars/alice/calendar/weekly.ics</D:href></C:calendar-multiget>"#;
    let r = srv.report(CAL, body).await;
    r.expect(207);
    let data = prop_text(
        &responses(&r.xml())[0].1,
        "urn:ietf:params:xml:ns:caldav",
        "calendar-data",
    )
    .unwrap();
    assert!(
        data.contains("SUMMARY:Standup") && data.contains("UID:weekly"),
        "{data}"
    );
    assert!(
        !data.contains("DTSTART") && !data.contains("VTIMEZONE") && !data.contains("VALARM"),
        "{data}"
    );

    let fb = r#"<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20240105T000000Z" end="20240111T000000Z"/></C:free-busy-query>"#;
    let r = srv.report(CAL, fb).await;
    r.expect(200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/calendar")
    );
    let t = r.text();
    assert!(
        t.contains("FREEBUSY;FBTYPE=BUSY:20240105T100000Z/20240105T110000Z"),
        "{t}"
    );
    assert!(
        t.contains("FREEBUSY;FBTYPE=BUSY-TENTATIVE:20240105T150000Z/20240105T160000Z"),
        "{t}"
    );
    assert!(
        !t.contains("20240110"),
        "transparent all-day event is free: {t}"
    );
}
both_backends!(expand_and_free_busy, expand_and_freebusy);

async fn bombs(srv: TestServer) {
    let bomb = wrap(
        "BEGIN:VEVENT\r\nUID:bomb\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240101T000000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\n",
    );
    let r = srv.put_ics(&format!("{CAL}bomb.ics"), &bomb).await;
    r.expect(403);
    assert!(r.text().contains("max-instances"));
    srv.send(srv.req("GET", &format!("{CAL}bomb.ics")))
        .await
        .expect(404);
    // A VTIMEZONE whose observance recurs every second from 1601 would make offset resolution
    // walk billions of transitions: refused, and the server keeps answering.
    let zone_bomb = wrap(
        "BEGIN:VTIMEZONE\r\nTZID:Bomb\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nRRULE:FREQ=SECONDLY\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:zb\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Bomb:20240101T100000\r\nRRULE:FREQ=DAILY;UNTIL=20240110T000000Z\r\nEND:VEVENT\r\n",
    );
    let r = srv.put_ics(&format!("{CAL}zb.ics"), &zone_bomb).await;
    r.expect(403);
    assert!(
        r.text().contains("VTIMEZONE") && r.text().contains("valid-calendar"),
        "{}",
        r.text()
    );
    srv.send(srv.req("OPTIONS", "/dav/")).await.expect(200);
}
both_backends!(rrule_bomb_is_a_4xx, bombs);

/// RFC 4791 9.6.7: limit-freebusy-set trims FREEBUSY periods to the range, in a calendar that
/// stores VFREEBUSY components.
async fn limit_freebusy(srv: TestServer) {
    const FB: &str = "/dav/calendars/alice/published/";
    srv.send(srv.req("MKCALENDAR", FB).body(
        r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="VFREEBUSY"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#,
    ))
    .await
    .expect(201);
    let body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240101T000000Z\r\nDTEND:20240201T000000Z\r\nFREEBUSY;FBTYPE=BUSY:20240101T090000Z/20240101T100000Z,20240105T090000Z/PT1H\r\nFREEBUSY;FBTYPE=BUSY-TENTATIVE:20240120T090000Z/PT2H\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
    srv.put_ics(&format!("{FB}fb1.ics"), body).await.expect(201);
    let mg = format!(
        r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:limit-freebusy-set start="20240104T000000Z" end="20240110T000000Z"/></C:calendar-data></D:prop><D:href>{FB}fb1.ics</D:href></C:calendar-multiget>"#
    );
    let r = srv.report(FB, &mg).await;
    r.expect(207);
    let ms = r.xml();
    let data = prop_text(
        &responses(&ms)[0].1,
        "urn:ietf:params:xml:ns:caldav",
        "calendar-data",
    )
    .unwrap()
    .replace("\r\n", "\n");
    assert!(
        data.contains("FREEBUSY;FBTYPE=BUSY:20240105T090000Z/PT1H\n"),
        "{data}"
    );
    assert!(
        !data.contains("20240101T090000Z/") && !data.contains("BUSY-TENTATIVE"),
        "{data}"
    );
    assert!(data.contains("UID:fb1\n") && data.contains("DTSTART:20240101T000000Z\n"));
    // Without the element the object comes back byte for byte.
    let plain = srv.send(srv.req("GET", &format!("{FB}fb1.ics"))).await;
    assert_eq!(plain.text(), body);
}
both_backends!(limit_freebusy_set, limit_freebusy);

/// A calendar-query that RFC 4791 does not allow is refused with its precondition instead of
/// answered (7.8 `valid-filter`, 9.6 `supported-calendar-data`), the filters the RFC does
/// allow still answer, and an empty `<C:comp name="VCALENDAR"/>` means the whole object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_are_refused() {
    let srv = TestServer::start(Backend::Sqlite).await;
    seed(&srv).await;
    let query = |data: &str, filter: &str| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>{data}</D:prop><C:filter>{filter}</C:filter></C:calendar-query>"#
        )
    };
    let tr = r#"<C:time-range start="20240101T000000Z" end="20250101T000000Z"/>"#;
    for (what, filter) in [
        (
            "VEVENT inside VEVENT",
            r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:comp-filter name="VEVENT"/></C:comp-filter></C:comp-filter>"#.to_string(),
        ),
        (
            "a time-range in a SUMMARY prop-filter",
            format!(r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY">{tr}</C:prop-filter></C:comp-filter></C:comp-filter>"#),
        ),
        (
            "VALARM directly under VCALENDAR",
            r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VALARM"/></C:comp-filter>"#.to_string(),
        ),
        (
            "a time-range on VCALENDAR",
            format!(r#"<C:comp-filter name="VCALENDAR">{tr}</C:comp-filter>"#),
        ),
        (
            "a time-range on VTIMEZONE",
            format!(r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTIMEZONE">{tr}</C:comp-filter></C:comp-filter>"#),
        ),
        (
            "a filter that does not start at VCALENDAR",
            r#"<C:comp-filter name="VEVENT"/>"#.to_string(),
        ),
    ] {
        let r = srv.report(CAL, &query("", &filter)).await;
        assert_eq!(r.status.as_u16(), 403, "{what}: {}", r.text());
        assert!(r.text().contains("valid-filter"), "{what}: {}", r.text());
    }
    // What the RFC allows still answers.
    for (what, filter) in [
        (
            "VALARM in VEVENT with a time-range",
            format!(r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:comp-filter name="VALARM">{tr}</C:comp-filter></C:comp-filter></C:comp-filter>"#),
        ),
        (
            "a time-range on DTSTART",
            format!(r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="DTSTART">{tr}</C:prop-filter></C:comp-filter></C:comp-filter>"#),
        ),
        (
            "STANDARD in VTIMEZONE",
            r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTIMEZONE"><C:comp-filter name="STANDARD"/></C:comp-filter></C:comp-filter>"#.to_string(),
        ),
    ] {
        let r = srv.report(CAL, &query("", &filter)).await;
        assert_eq!(r.status.as_u16(), 207, "{what}: {}", r.text());
    }
    let single = r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="UID"><C:text-match collation="i;octet">single</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#;
    // CALDAV:timezone in a query, and calendar-timezone in a PROPPATCH, must be a VCALENDAR
    // with exactly one VTIMEZONE (RFC 4791 9.8, 5.2.2): not text, not a VEVENT beside it.
    let vtz = BERLIN;
    let with_event = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\n{vtz}BEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let good = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\n{vtz}END:VCALENDAR\r\n");
    let tz_query = |tz: &str| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>{}</C:filter><C:timezone>{}</C:timezone></C:calendar-query>"#,
            single,
            tz.replace('\r', "&#13;")
        )
    };
    for bad in ["not a calendar", with_event.as_str()] {
        let r = srv.report(CAL, &tz_query(bad)).await;
        assert_eq!(r.status.as_u16(), 403, "{bad}: {}", r.text());
        assert!(r.text().contains("valid-calendar-data"), "{}", r.text());
    }
    srv.report(CAL, &tz_query(&good)).await.expect(207);
    let patch = |tz: &str| {
        format!(
            r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>{}</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"#,
            tz.replace('\r', "&#13;")
        )
    };
    let r = srv
        .send(
            srv.req("PROPPATCH", CAL)
                .header("Content-Type", "application/xml")
                .body(patch(&with_event)),
        )
        .await;
    r.expect(207);
    assert!(
        r.text().contains("403 Forbidden") && r.text().contains("exactly one VTIMEZONE"),
        "{}",
        r.text()
    );
    let r = srv
        .send(
            srv.req("PROPPATCH", CAL)
                .header("Content-Type", "application/xml")
                .body(patch(&good)),
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("200 OK"), "{}", r.text());
    for data in [
        r#"<C:calendar-data content-type="application/calendar+json"/>"#,
        r#"<C:calendar-data content-type="text/calendar" version="1.0"/>"#,
    ] {
        let r = srv.report(CAL, &query(data, single)).await;
        assert_eq!(r.status.as_u16(), 403, "{data}: {}", r.text());
        assert!(r.text().contains("supported-calendar-data"), "{}", r.text());
    }
    let r = srv
        .report(
            CAL,
            &query(
                r#"<C:calendar-data content-type="text/calendar" version="2.0"><C:comp name="VCALENDAR"/></C:calendar-data>"#,
                single,
            ),
        )
        .await;
    r.expect(207);
    let data = responses(&r.xml())
        .into_iter()
        .filter_map(|(_, resp)| prop_text(&resp, "urn:ietf:params:xml:ns:caldav", "calendar-data"))
        .next()
        .unwrap_or_default();
    assert!(
        data.contains("BEGIN:VEVENT") && data.contains("SUMMARY:Budget review"),
        "an empty comp VCALENDAR answered: {data}"
    );
}

/// Open-ended and combined filters (RFC 4791 9.9): a time-range with only a start finds a
/// series whose first instance is beyond the index horizon; a time-range and a property
/// filter in one comp-filter must hold for the same instance, not for two different ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_ended_and_same_instance_filters() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    let far = wrap(
        "BEGIN:VEVENT\r\nUID:far\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20400105T100000Z\r\nDTEND:20400105T110000Z\r\nRRULE:FREQ=DAILY\r\nSUMMARY:Far future\r\nEND:VEVENT\r\n",
    );
    srv.put_ics(&format!("{CAL}far.ics"), &far)
        .await
        .expect(201);
    let open =
        r#"<C:comp-filter name="VEVENT"><C:time-range start="20400601T000000Z"/></C:comp-filter>"#;
    assert_eq!(names(&srv, CAL, open).await, vec!["far.ics"]);

    // A daily series whose override on the 3rd is renamed "changed": a one-day range on the
    // 5th plus SUMMARY "changed" must not match (the 5th is called "Daily").
    let daily = wrap(
        "BEGIN:VEVENT\r\nUID:daily\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T100000Z\r\nDTEND:20300101T110000Z\r\nRRULE:FREQ=DAILY;COUNT=10\r\nSUMMARY:Daily\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:daily\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID:20300103T100000Z\r\nDTSTART:20300103T100000Z\r\nDTEND:20300103T110000Z\r\nSUMMARY:changed\r\nEND:VEVENT\r\n",
    );
    srv.put_ics(&format!("{CAL}daily.ics"), &daily)
        .await
        .expect(201);
    let on = |day: &str| {
        format!(
            r#"<C:comp-filter name="VEVENT"><C:time-range start="{day}T000000Z" end="{day}T235959Z"/><C:prop-filter name="SUMMARY"><C:text-match>changed</C:text-match></C:prop-filter></C:comp-filter>"#
        )
    };
    assert!(names(&srv, CAL, &on("20300105")).await.is_empty());
    assert_eq!(names(&srv, CAL, &on("20300103")).await, vec!["daily.ics"]);
}
