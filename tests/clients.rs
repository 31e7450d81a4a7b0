//! Thunderbird's and DAVx5's discovery and sync paths, scripted with the requests those
//! clients send: well-known -> current-user-principal -> calendar-home-set -> home Depth 1 ->
//! ctag or sync-collection -> calendar-multiget, then incremental sync as another client
//! edits. DAVx5 also reads every home-set href and calendar-timezone-id.

mod common;

use common::{Resp, TestServer, found_prop, prop_text, responses};
use convene::dav::Element;

use convene::dav::NS_APPLE as NS_A;
use convene::dav::NS_CALDAV as NS_C;
use convene::dav::NS_CS;

async fn propfind(srv: &TestServer, path: &str, depth: &str, props: &str) -> Element {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><D:propfind xmlns:D=\"DAV:\" xmlns:C=\"{NS_C}\" xmlns:CS=\"{NS_CS}\" xmlns:A=\"{NS_A}\"><D:prop>{props}</D:prop></D:propfind>"
    );
    let r = srv.propfind(path, depth, &body).await;
    r.expect(207);
    r.xml()
}

async fn report(srv: &TestServer, path: &str, body: &str) -> Resp {
    let r = srv.report(path, body).await;
    r.expect(207);
    r
}

fn href_in(e: &Element) -> Vec<String> {
    e.children_named("DAV:", "href")
        .map(|h| h.text.clone())
        .collect()
}

/// well-known -> context path -> current-user-principal -> calendar-home-set hrefs.
async fn discover(srv: &TestServer) -> Vec<String> {
    let r = srv
        .send(
            srv.req("PROPFIND", "/.well-known/caldav")
                .header("Depth", "0")
                .body("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:current-user-principal/></D:prop></D:propfind>"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 308);
    let context = r.header("location").expect("Location");
    let ms = propfind(
        srv,
        &context,
        "0",
        "<D:current-user-principal/><D:resourcetype/>",
    )
    .await;
    let (_, resp) = &responses(&ms)[0];
    let principal =
        href_in(&found_prop(resp, "DAV:", "current-user-principal").expect("principal"))
            .pop()
            .expect("href");
    assert_eq!(principal, "/dav/principals/alice/");
    let ms = propfind(
        srv,
        &principal,
        "0",
        "<C:calendar-home-set/><C:calendar-user-address-set/><D:displayname/><C:schedule-inbox-URL/><C:schedule-outbox-URL/><CS:email-address-set/>",
    )
    .await;
    let (_, resp) = &responses(&ms)[0];
    assert_eq!(
        prop_text(resp, "DAV:", "displayname").as_deref(),
        Some("Alice A")
    );
    href_in(&found_prop(resp, NS_C, "calendar-home-set").expect("home set"))
}

/// (href, etag) of every member a sync-collection reports live, and the new token.
async fn sync(srv: &TestServer, cal: &str, token: &str) -> (Vec<(String, Option<String>)>, String) {
    let body = format!(
        "<?xml version=\"1.0\"?><D:sync-collection xmlns:D=\"DAV:\"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getcontenttype/><D:getetag/></D:prop></D:sync-collection>"
    );
    let ms = report(srv, cal, &body).await.xml();
    let token = ms.child("DAV:", "sync-token").expect("token").text.clone();
    let items = responses(&ms)
        .into_iter()
        .map(|(h, r)| (h, prop_text(&r, "DAV:", "getetag")))
        .collect();
    (items, token)
}

async fn multiget(srv: &TestServer, cal: &str, hrefs: &[String]) -> Vec<(String, String)> {
    let mut body = String::from(
        "<?xml version=\"1.0\"?><C:calendar-multiget xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:prop><D:getetag/><C:calendar-data/></D:prop>",
    );
    for h in hrefs {
        body.push_str(&format!("<D:href>{h}</D:href>"));
    }
    body.push_str("</C:calendar-multiget>");
    let ms = report(srv, cal, &body).await.xml();
    responses(&ms)
        .into_iter()
        .map(|(h, r)| {
            (
                h,
                prop_text(&r, NS_C, "calendar-data").expect("calendar-data"),
            )
        })
        .collect()
}

async fn thunderbird(srv: TestServer) {
    srv.put_ics(
        "/dav/calendars/alice/calendar/a.ics",
        &common::event("a", "Existing"),
    )
    .await
    .expect(201);
    let homes = discover(&srv).await;
    assert_eq!(homes, vec!["/dav/calendars/alice/".to_string()]);
    // The home, Depth 1: which members are calendars, and may we write them?
    let ms = propfind(
        &srv,
        &homes[0],
        "1",
        "<D:resourcetype/><D:displayname/><D:current-user-privilege-set/><A:calendar-color/><C:supported-calendar-component-set/><CS:getctag/>",
    )
    .await;
    let cal = responses(&ms)
        .into_iter()
        .find(|(_, r)| {
            found_prop(r, "DAV:", "resourcetype")
                .is_some_and(|t| t.child(NS_C, "calendar").is_some())
                && prop_text(r, "DAV:", "displayname").as_deref() == Some("Calendar")
        })
        .map(|(h, r)| {
            let privs = found_prop(&r, "DAV:", "current-user-privilege-set").expect("privileges");
            assert!(
                privs
                    .children_named("DAV:", "privilege")
                    .any(|p| p.child("DAV:", "write").is_some())
            );
            h
        })
        .expect("a calendar");
    // Thunderbird checks the ctag, then syncs.
    let ctag = |ms: &Element| prop_text(&responses(ms)[0].1, NS_CS, "getctag").expect("ctag");
    let before = ctag(&propfind(&srv, &cal, "0", "<CS:getctag/><D:sync-token/>").await);
    let (items, token) = sync(&srv, &cal, "").await;
    assert_eq!(items.len(), 1);
    let data = multiget(&srv, &cal, &[items[0].0.clone()]).await;
    assert!(data[0].1.contains("SUMMARY:Existing"));
    // It creates an event (If-None-Match: *), another client changes and deletes others.
    let new = format!("{cal}tb-1.ics");
    let r = srv
        .send(
            srv.req("PUT", &new)
                .header("Content-Type", "text/calendar; charset=utf-8")
                .header("If-None-Match", "*")
                .body(common::event("tb-1", "From Thunderbird")),
        )
        .await;
    r.expect(201);
    assert!(r.header("etag").is_some());
    srv.put_ics(
        &format!("{cal}a.ics"),
        &common::event("a", "Changed elsewhere"),
    )
    .await
    .expect(204);
    let after = ctag(&propfind(&srv, &cal, "0", "<CS:getctag/>").await);
    assert_ne!(before, after);
    let (items, token2) = sync(&srv, &cal, &token).await;
    let hrefs: Vec<&str> = items.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(hrefs.len(), 2, "{hrefs:?}");
    assert!(hrefs.contains(&new.as_str()) && hrefs.contains(&format!("{cal}a.ics").as_str()));
    srv.send(srv.req("DELETE", &new)).await.expect(204);
    let (items, _) = sync(&srv, &cal, &token2).await;
    assert_eq!(
        items,
        vec![(new.clone(), None)],
        "a deletion is reported without an ETag"
    );
    // A stale If-Match is refused and changes nothing.
    let r = srv
        .send(
            srv.req("PUT", &format!("{cal}a.ics"))
                .header("Content-Type", "text/calendar")
                .header("If-Match", "\"stale\"")
                .body(common::event("a", "Lost update")),
        )
        .await;
    r.expect(412);
    let data = multiget(&srv, &cal, &[format!("{cal}a.ics")]).await;
    assert!(data[0].1.contains("Changed elsewhere"));
}

async fn davx5(srv: TestServer) {
    let homes = discover(&srv).await;
    // DAVx5 lists every home-set href, Depth 1, with everything it shows in its UI.
    let mut calendars = vec![];
    for home in &homes {
        let ms = propfind(
            &srv,
            home,
            "1",
            "<D:resourcetype/><D:displayname/><D:owner/><D:current-user-privilege-set/><A:calendar-color/><C:calendar-description/><C:calendar-timezone/><C:calendar-timezone-id/><C:supported-calendar-component-set/><CS:source/><CS:getctag/><D:sync-token/>",
        )
        .await;
        for (href, r) in responses(&ms) {
            if found_prop(&r, "DAV:", "resourcetype")
                .is_some_and(|t| t.child(NS_C, "calendar").is_some())
            {
                let comps: Vec<String> = found_prop(&r, NS_C, "supported-calendar-component-set")
                    .expect("components")
                    .children_named(NS_C, "comp")
                    .filter_map(|c| c.attr("name").map(str::to_string))
                    .collect();
                assert!(
                    prop_text(&r, "DAV:", "sync-token").is_some(),
                    "{href}: no sync-token"
                );
                calendars.push((href, comps));
            }
        }
    }
    assert!(
        calendars
            .iter()
            .any(|(h, c)| h.ends_with("/calendar/") && c == &["VEVENT"])
    );
    assert!(
        calendars
            .iter()
            .any(|(h, c)| h.ends_with("/tasks/") && c == &["VTODO"])
    );
    // It sets the time zone by id (RFC 7809) and reads it back.
    let cal = "/dav/calendars/alice/calendar/";
    let r = srv
        .send(
            srv.req("PROPPATCH", cal)
                .header("Content-Type", "application/xml")
                .body(format!("<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:C=\"{NS_C}\"><D:set><D:prop><C:calendar-timezone-id>Europe/Berlin</C:calendar-timezone-id></D:prop></D:set></D:propertyupdate>")),
        )
        .await;
    r.expect(207);
    let ms = propfind(&srv, cal, "0", "<C:calendar-timezone-id/>").await;
    assert_eq!(
        prop_text(&responses(&ms)[0].1, NS_C, "calendar-timezone-id").as_deref(),
        Some("Europe/Berlin")
    );
    // Tasks: a VTODO goes to the task list and syncs; the events calendar refuses it.
    let tasks = "/dav/calendars/alice/tasks/";
    let (_, t0) = sync(&srv, tasks, "").await;
    srv.put_ics(&format!("{tasks}t1.ics"), &common::todo("t1"))
        .await
        .expect(201);
    let r = srv
        .put_ics(&format!("{cal}t1.ics"), &common::todo("t1b"))
        .await;
    r.expect(403);
    assert!(r.text().contains("supported-calendar-component"));
    let (items, _) = sync(&srv, tasks, &t0).await;
    assert_eq!(items.len(), 1);
    let data = multiget(&srv, tasks, &[items[0].0.clone()]).await;
    assert!(data[0].1.contains("BEGIN:VTODO"));
}

both_backends!(thunderbird_discovery_and_sync, thunderbird);
both_backends!(davx5_discovery_and_sync, davx5);

/// Given only the host, a real client finds the principal and the calendars: the python
/// `caldav` library (from the venv the test command builds) pointed at `http://HOST:PORT/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_needs_only_the_host() {
    let srv = TestServer::start(common::Backend::Sqlite).await;
    srv.put_ics(
        "/dav/calendars/alice/calendar/h.ics",
        &common::event("h1", "Found from the host"),
    )
    .await
    .expect(201);
    let script = r#"
import sys, caldav
client = caldav.DAVClient(url=sys.argv[1], username="alice", password="alice-password")
principal = client.principal()
names = sorted(str(c.url) for c in principal.calendars())
events = [e.data for c in principal.calendars() for e in c.events()]
print(principal.url)
print(" ".join(names))
print(sum("Found from the host" in e for e in events))
"#;
    let out = std::process::Command::new(common::python())
        .args(["-c", script, &format!("{}/", srv.base)])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with("/dav/principals/alice/"), "{stdout}");
    assert!(
        lines[1].contains("/dav/calendars/alice/calendar/"),
        "{stdout}"
    );
    assert_eq!(lines[2], "1", "{stdout}");
}
