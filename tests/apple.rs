//! Replays what Apple Calendar sends at start-up and while polling (OS X 10.6, 10.7, 10.11 and
//! iOS 5, as recorded for Apple's own CalendarServer load tester; Apache-2.0, see
//! `fixtures/clients/apple-calendarserver-loadtest/LICENSE.txt`), with Convene's users and
//! paths substituted, and checks each answer is what the client needs:
//! - every property asked for in a PROPFIND comes back as 200 or 404, never an error;
//! - the principal properties Apple cannot work without are present;
//! - PROPPATCHes of colour, order, time zone, transparency, description, name and default
//!   alarms succeed and read back as written;
//! - reports, the home-level sync, the inbox and the notification collection answer 207.
//!
//! Every `.request` file in the fixture folders must be mapped to a step here: a new
//! recording that is not replayed fails the test.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Resp, TestServer, found_prop, responses};
use convene::dav::Element;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/clients/apple-calendarserver-loadtest"
);
const PRINCIPAL: &str = "/dav/principals/alice/";
const HOME: &str = "/dav/calendars/alice/";
const CAL: &str = "/dav/calendars/alice/calendar/";
use convene::dav::NS_CALDAV as NS_C;
use convene::dav::NS_CS;

/// Principal properties Apple Calendar needs to set an account up.
const PRINCIPAL_NEEDS: &[(&str, &str)] = &[
    (NS_C, "calendar-home-set"),
    (NS_C, "calendar-user-address-set"),
    ("DAV:", "current-user-principal"),
    ("DAV:", "displayname"),
    (NS_CS, "email-address-set"),
    (NS_CS, "notification-URL"),
    ("DAV:", "principal-collection-set"),
    ("DAV:", "principal-URL"),
    (NS_C, "schedule-inbox-URL"),
    (NS_C, "schedule-outbox-URL"),
    ("DAV:", "supported-report-set"),
];

struct Replay<'s> {
    srv: &'s TestServer,
    /// Hrefs of alice's events, for multigets.
    events: Vec<String>,
    replayed: usize,
}

fn xml_docs(text: &str) -> Vec<String> {
    // Some recordings hold several bodies, each starting with an XML declaration.
    let mut out: Vec<String> = text
        .split("<?xml")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<?xml{p}"))
        .collect();
    if out.is_empty() {
        out.push(text.to_string());
    }
    out
}

/// Every (namespace, name) of the properties a PROPFIND/REPORT body asks for.
fn asked(body: &str) -> Vec<(String, String)> {
    let root = convene::dav::xml::parse(body.as_bytes(), convene::dav::XmlLimits::default())
        .expect("recorded body parses");
    root.child("DAV:", "prop")
        .map(|p| {
            p.children
                .iter()
                .map(|c| (c.ns.clone(), c.local.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Each asked property is answered, in some response, as 200 or 404 and nothing else.
#[track_caller]
fn all_answered(what: &str, ms: &Element, wanted: &[(String, String)]) {
    let rs = responses(ms);
    assert!(!rs.is_empty(), "{what}: no responses");
    for (href, r) in &rs {
        if r.child("DAV:", "propstat").is_none() {
            continue; // a status-only response (a member gone, a 507)
        }
        for (ns, local) in wanted {
            let mut statuses = vec![];
            for ps in r.children_named("DAV:", "propstat") {
                if ps
                    .child("DAV:", "prop")
                    .and_then(|p| p.child(ns, local))
                    .is_some()
                {
                    statuses.push(
                        ps.child("DAV:", "status")
                            .map(|s| s.text.clone())
                            .unwrap_or_default(),
                    );
                }
            }
            assert_eq!(
                statuses.len(),
                1,
                "{what}: {href} answers {{{ns}}}{local} {statuses:?}"
            );
            assert!(
                statuses[0].contains(" 200 ") || statuses[0].contains(" 404 "),
                "{what}: {href} {{{ns}}}{local}: {}",
                statuses[0]
            );
        }
    }
}

/// The text of an element and its descendants, whitespace-trimmed, for value comparison.
fn value_of(e: &Element) -> String {
    let mut s = e.text.clone();
    for c in &e.children {
        s.push_str(&format!("<{}>", c.local));
        s.push_str(&value_of(c));
    }
    s.trim().replace("\r\n", "\n")
}

impl Replay<'_> {
    async fn send(
        &self,
        method: &str,
        path: &str,
        depth: Option<&str>,
        body: String,
        ct: &str,
    ) -> Resp {
        let mut rb = self
            .srv
            .req(method, path)
            .header("Content-Type", ct)
            .header("User-Agent", "Mac OS X/10.11 (15A284) CalendarAgent/361")
            .body(body);
        if let Some(d) = depth {
            rb = rb.header("Depth", d);
        }
        self.srv.send(rb).await
    }

    async fn propfind(&mut self, what: &str, path: &str, depth: &str, body: &str) -> Element {
        let r = self
            .send(
                "PROPFIND",
                path,
                Some(depth),
                body.to_string(),
                "application/xml",
            )
            .await;
        r.expect(207);
        let ms = r.xml();
        all_answered(what, &ms, &asked(body));
        self.replayed += 1;
        ms
    }

    async fn report(&mut self, what: &str, path: &str, depth: &str, body: &str) -> Element {
        let r = self
            .send(
                "REPORT",
                path,
                Some(depth),
                body.to_string(),
                "application/xml",
            )
            .await;
        assert!(
            r.status.as_u16() == 207 || r.status.as_u16() == 200,
            "{what}: {} {}",
            r.status,
            r.text()
        );
        self.replayed += 1;
        r.xml()
    }

    async fn proppatch(&mut self, what: &str, path: &str, body: &str) {
        let r = self
            .send("PROPPATCH", path, None, body.to_string(), "application/xml")
            .await;
        r.expect(207);
        let ms = r.xml();
        for (_, resp) in responses(&ms) {
            for ps in resp.children_named("DAV:", "propstat") {
                let st = ps
                    .child("DAV:", "status")
                    .map(|s| s.text.clone())
                    .unwrap_or_default();
                assert!(st.contains(" 200 "), "{what}: {st}\n{}", r.text());
            }
        }
        // It persists: read back, the same value.
        let sent = convene::dav::xml::parse(body.as_bytes(), convene::dav::XmlLimits::default())
            .expect("recorded PROPPATCH parses");
        let props: Vec<Element> = sent
            .child("DAV:", "set")
            .and_then(|s| s.child("DAV:", "prop"))
            .map(|p| p.children.clone())
            .unwrap_or_default();
        let mut q = String::from("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>");
        for p in &props {
            q.push_str(&format!("<X:{} xmlns:X=\"{}\"/>", p.local, p.ns));
        }
        q.push_str("</D:prop></D:propfind>");
        let back = self
            .send("PROPFIND", path, Some("0"), q, "application/xml")
            .await;
        back.expect(207);
        let ms = back.xml();
        let (_, resp) = &responses(&ms)[0];
        for p in &props {
            let got = found_prop(resp, &p.ns, &p.local)
                .unwrap_or_else(|| panic!("{what}: {{{}}}{} not read back", p.ns, p.local));
            assert_eq!(
                value_of(&got),
                value_of(p),
                "{what}: {{{}}}{} changed",
                p.ns,
                p.local
            );
        }
        self.replayed += 1;
    }

    async fn step(&mut self, client: &str, file: &str, text: &str) {
        let what = format!("{client}/{file}");
        let name = file
            .trim_end_matches(".request")
            .trim_end_matches(".request.xml");
        let depth1 = name.contains("depth1") || name.ends_with("_d1");
        match name {
            n if n.ends_with("_hrefs") => {} // a fragment, used by its multiget below
            n if n.contains("well_known") => {
                // RFC 6764: the well-known URI leads to the context path, where the request is
                // repeated.
                let r = self
                    .send(
                        "PROPFIND",
                        "/.well-known/caldav",
                        Some("0"),
                        text.to_string(),
                        "application/xml",
                    )
                    .await;
                assert_eq!(r.status.as_u16(), 308, "{what}");
                assert_eq!(r.header("location").as_deref(), Some("/dav/"));
                let ms = self.propfind(&what, "/dav/", "0", text).await;
                let (_, resp) = &responses(&ms)[0];
                assert!(
                    found_prop(resp, "DAV:", "current-user-principal").is_some(),
                    "{what}"
                );
            }
            n if n.contains("principal_propfind_initial")
                || n.contains("principal_initial_propfind") =>
            {
                self.propfind(&what, "/dav/principals/", "0", text).await;
            }
            n if n.contains("principal_propfind") => {
                let ms = self.propfind(&what, PRINCIPAL, "0", text).await;
                let (_, resp) = &responses(&ms)[0];
                let wanted = asked(text);
                for (ns, local) in PRINCIPAL_NEEDS {
                    if wanted.iter().any(|(a, b)| a == ns && b == local) {
                        assert!(
                            found_prop(resp, ns, local).is_some(),
                            "{what}: {{{ns}}}{local} missing"
                        );
                    }
                }
            }
            n if n.contains("principal_expand") => {
                let ms = self.report(&what, PRINCIPAL, "0", text).await;
                let (_, resp) = &responses(&ms)[0];
                assert!(
                    found_prop(resp, NS_CS, "calendar-proxy-read-for").is_some(),
                    "{what}"
                );
                assert!(
                    found_prop(resp, NS_CS, "calendar-proxy-write-for").is_some(),
                    "{what}"
                );
            }
            n if n.contains("principals_report") => {
                let ms = self.report(&what, "/dav/principals/", "0", text).await;
                assert_eq!(ms.local, "principal-search-property-set", "{what}");
            }
            n if n.contains("principal_search") || n.contains("principal_property_search") => {
                let body = text
                    .replace("%(search)s", "bob")
                    .replace("{context}", "attendee")
                    .replace("{searchTokens}", "<C:search-token>bob</C:search-token>")
                    .replace("%(displayname)s", "bob")
                    .replace("%(email)s", "bob")
                    .replace("%(firstname)s", "bob")
                    .replace("%(lastname)s", "bob");
                let ms = self.report(&what, "/dav/principals/", "0", &body).await;
                let hrefs: Vec<String> = responses(&ms).into_iter().map(|(h, _)| h).collect();
                assert_eq!(hrefs, vec!["/dav/principals/bob/".to_string()], "{what}");
                all_answered(&what, &ms, &asked(&body));
            }
            n if n.contains("create_calendar") => {
                let path = format!("{HOME}apple-{}/", client.to_lowercase());
                let body = text
                    .replace("{order}", "7")
                    .replace("{component_type}", "VEVENT")
                    .replace("{color}", "FD8208FF")
                    .replace("{name}", "Apple work");
                let r = self
                    .send("MKCALENDAR", &path, None, body, "application/xml")
                    .await;
                r.expect(201);
                let ms = self
                    .propfind(&what, &path, "0", "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\" xmlns:A=\"http://apple.com/ns/ical/\"><D:prop><D:displayname/><A:calendar-color/><A:calendar-order/></D:prop></D:propfind>")
                    .await;
                let (_, resp) = &responses(&ms)[0];
                assert_eq!(
                    found_prop(resp, "DAV:", "displayname")
                        .map(|e| e.text)
                        .as_deref(),
                    Some("Apple work")
                );
                assert_eq!(
                    found_prop(resp, "http://apple.com/ns/ical/", "calendar-color")
                        .map(|e| e.text)
                        .as_deref(),
                    Some("#FD8208FF")
                );
            }
            n if n.contains("calendarhome") && n.contains("proppatch") => {
                for doc in xml_docs(text) {
                    self.proppatch(&what, HOME, &doc).await;
                }
            }
            n if n.contains("calendar") && n.contains("proppatch") => {
                for doc in xml_docs(text) {
                    self.proppatch(&what, CAL, &doc).await;
                }
            }
            n if n.contains("calendarhome") && n.contains("sync") => {
                let first = text.replace("%(sync-token)s", "");
                let ms = self.report(&what, HOME, "1", &first).await;
                let token = ms
                    .child("DAV:", "sync-token")
                    .map(|t| t.text.clone())
                    .expect("sync-token");
                let names: BTreeSet<String> = responses(&ms).into_iter().map(|(h, _)| h).collect();
                assert!(
                    names.contains(CAL) && names.contains(&format!("{HOME}inbox/")),
                    "{what}: {names:?}"
                );
                all_answered(&what, &ms, &asked(&first));
                self.report(&what, HOME, "1", &text.replace("%(sync-token)s", &token))
                    .await;
            }
            n if n.contains("calendarhome") && n.contains("propfind") => {
                let ms = self.propfind(&what, HOME, "1", text).await;
                let names: BTreeSet<String> = responses(&ms).into_iter().map(|(h, _)| h).collect();
                for m in ["calendar/", "inbox/", "outbox/", "notification/"] {
                    assert!(
                        names.contains(&format!("{HOME}{m}")),
                        "{what}: no {m} in {names:?}"
                    );
                }
            }
            n if n.contains("calendar_sync") => {
                let first = text.replace("%(sync-token)s", "");
                let ms = self.report(&what, CAL, "1", &first).await;
                assert!(ms.child("DAV:", "sync-token").is_some(), "{what}");
            }
            n if n.contains("calendar_multiget") => {
                let frag = std::fs::read_to_string(
                    Path::new(DIR)
                        .join(client)
                        .join(format!("{name}_hrefs.request")),
                )
                .expect("hrefs fragment");
                let hrefs: String = self
                    .events
                    .iter()
                    .map(|h| frag.replace("%(href)s", h))
                    .collect();
                let ms = self
                    .report(&what, CAL, "1", &text.replace("%(hrefs)s", &hrefs))
                    .await;
                assert_eq!(responses(&ms).len(), self.events.len(), "{what}");
                for (_, r) in responses(&ms) {
                    assert!(found_prop(&r, NS_C, "calendar-data").is_some(), "{what}");
                }
            }
            n if n.contains("query") => {
                let body = text
                    .replace("%(start)s", "20240101T000000Z")
                    .replace("%(end)s", "20240201T000000Z")
                    .replace("%(start-date)s", "20240101");
                self.report(&what, CAL, "1", &body).await;
            }
            n if n.contains("calendar") && n.contains("propfind") => {
                let ms = self
                    .propfind(&what, CAL, if depth1 { "1" } else { "0" }, text)
                    .await;
                if !depth1 {
                    let (_, resp) = &responses(&ms)[0];
                    assert!(found_prop(resp, NS_CS, "getctag").is_some(), "{what}");
                }
            }
            n if n.contains("inbox") => {
                self.propfind(&what, &format!("{HOME}inbox/"), "1", text)
                    .await;
            }
            n if n.contains("notification") && n.contains("sync") => {
                let ms = self
                    .report(
                        &what,
                        &format!("{HOME}notification/"),
                        "1",
                        &text.replace("%(sync-token)s", ""),
                    )
                    .await;
                assert!(ms.child("DAV:", "sync-token").is_some(), "{what}");
            }
            n if n.contains("notification") && n.contains("propfind") => {
                self.propfind(
                    &what,
                    &format!("{HOME}notification/"),
                    if depth1 { "1" } else { "0" },
                    text,
                )
                .await;
            }
            n if n.starts_with("post_") => {
                let body = text
                    .replace("METHOD:REPLY", "METHOD:REQUEST")
                    .replace("%(vfreebusy-uid)s", "fb-apple")
                    .replace("%(start)s", "20240105T000000Z")
                    .replace("%(end)s", "20240106T000000Z")
                    .replace("%(now)s", "20240101T000000Z")
                    .replace("%(attendees)s", "ATTENDEE:mailto:bob@example.org\n")
                    .replace("%(event-mask)s", "")
                    .replace("%(organizer)s", "mailto:alice@example.org")
                    .replace("%(summary)s", "Availability")
                    .replace(
                        "ATTENDEE:urn:uuid:30000000-0000-0000-0000-000000000005",
                        "ATTENDEE:mailto:bob@example.org",
                    )
                    .replace(
                        "ORGANIZER:mailto:user01@example.com",
                        "ORGANIZER:mailto:alice@example.org",
                    );
                let r = self
                    .send(
                        "POST",
                        &format!("{HOME}outbox/"),
                        None,
                        body,
                        "text/calendar",
                    )
                    .await;
                r.expect(200);
                assert!(r.text().contains("2.0;Success"), "{what}: {}", r.text());
                self.replayed += 1;
            }
            other => panic!("{client}/{other}: a recorded request with no replay step"),
        }
    }
}

async fn apple(srv: TestServer) {
    let mut events = vec![];
    for i in 0..3 {
        let path = format!("{CAL}apple-{i}.ics");
        srv.put_ics(&path, &common::event(&format!("apple-{i}"), "Recorded"))
            .await
            .expect(201);
        events.push(path);
    }
    let mut replay = Replay {
        srv: &srv,
        events,
        replayed: 0,
    };
    let mut files = 0;
    for client in ["OS_X_10_6", "OS_X_10_7", "OS_X_10_11", "iOS_5"] {
        let mut names: Vec<String> = std::fs::read_dir(Path::new(DIR).join(client))
            .expect("fixture folder")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".request"))
            .collect();
        // Start-up before polling, as the client does.
        names.sort_by_key(|n| (!n.starts_with("startup"), n.clone()));
        for n in names {
            let text = std::fs::read_to_string(Path::new(DIR).join(client).join(&n)).expect("read");
            replay.step(client, &n, &text).await;
            files += 1;
        }
    }
    assert!(files >= 75, "only {files} recordings found");
    eprintln!(
        "replayed {} requests from {files} recordings",
        replay.replayed
    );
    assert!(
        replay.replayed >= 73,
        "only {} requests replayed",
        replay.replayed
    );
}
both_backends!(apple_calendar_recordings, apple);
