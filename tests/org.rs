//! A directory without LDAP, on both backends: Convene's own groups, department tree and
//! managers, edited from the CLI and the admin JSON API, so that group, department and manager
//! shares work on a fresh install; edits that cannot work (cycles, unknown names, a manager
//! rule without a manager) are refused; a membership change reaches shares at once, not at
//! the next directory refresh.

mod common;

use common::{Resp, TestServer};

fn ev(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300110T100000Z\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

async fn api(srv: &TestServer, who: &str, method: &str, path: &str, body: &str) -> Resp {
    srv.send_as(who, method, path, body, JSON).await
}

fn value(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn has(copies: &[(String, String)], needle: &str) -> bool {
    copies.iter().any(|(_, d)| d.contains(needle))
}

/// The CLI must refuse, naming why.
fn cli_refuses(srv: &TestServer, args: &[&str], why: &str) {
    let (code, out, err) = srv.cli(args, "");
    assert_ne!(code, 0, "{args:?} was accepted: {out}");
    assert!(err.contains(why), "{args:?}: {err}");
}

async fn org_chart_without_ldap(mut srv: TestServer) {
    srv.add_users(&["carol", "dave"]);
    srv.restart_with_config("admins = [\"alice\"]\n").await;

    let r = api(&srv, "bob", "GET", "/api/directory", "").await;
    r.expect(200);
    let v = value(&r);
    assert_eq!(v["source"], "local");
    assert_eq!(v["editable"], true);

    // Nothing that cannot work is accepted: an unknown group, a manager rule with no manager.
    api(
        &srv,
        "alice",
        "POST",
        "/api/share/rules",
        r#"{"calendar":"calendar","kind":"group","target":"eng"}"#,
    )
    .await
    .expect(400);
    let r = api(
        &srv,
        "bob",
        "POST",
        "/api/share/rules",
        r#"{"calendar":"calendar","kind":"manager"}"#,
    )
    .await;
    r.expect(400);
    assert!(r.text().contains("no manager"), "{}", r.text());

    // The chart from the CLI: a department tree with a head, a person's place, a group.
    srv.cli_ok(&["org", "department-set", "Engineering"], "");
    srv.cli_ok(
        &[
            "org",
            "department-set",
            "Platform",
            "--parent",
            "Engineering",
            "--head",
            "carol",
        ],
        "",
    );
    srv.cli_ok(
        &[
            "org",
            "person-set",
            "bob",
            "--title",
            "Engineer",
            "--department",
            "Platform",
            "--manager",
            "carol",
        ],
        "",
    );
    srv.cli_ok(
        &["org", "group-add", "eng", "--description", "Engineers"],
        "",
    );
    srv.cli_ok(&["org", "member-add", "eng", "bob"], "");
    cli_refuses(
        &srv,
        &[
            "org",
            "department-set",
            "Engineering",
            "--parent",
            "Platform",
        ],
        "below itself",
    );
    cli_refuses(
        &srv,
        &["org", "person-set", "carol", "--manager", "bob"],
        "cannot come back",
    );
    cli_refuses(
        &srv,
        &["org", "person-set", "dave", "--department", "Nowhere"],
        "no such department",
    );
    cli_refuses(
        &srv,
        &["org", "member-add", "eng", "nobody"],
        "no such account",
    );
    cli_refuses(&srv, &["org", "group-add", "a/b"], "no '/'");
    let shown = srv.cli_ok(&["org", "show"], "");
    assert!(
        shown.contains("department\tPlatform\tparent=Engineering\thead=carol"),
        "{shown}"
    );
    assert!(shown.contains("group\teng\tbob"), "{shown}");

    // The read API answers from it, as it does from LDAP.
    let r = api(&srv, "dave", "GET", "/api/directory/people/bob", "").await;
    r.expect(200);
    let bob = value(&r);
    assert_eq!(bob["manager"], "carol");
    assert_eq!(bob["title"], "Engineer");
    assert_eq!(bob["groups"], serde_json::json!(["eng"]));
    assert_eq!(
        bob["departments"],
        serde_json::json!(["Platform", "Engineering"])
    );
    let r = api(&srv, "dave", "GET", "/api/directory/departments", "").await;
    let deps = value(&r);
    let eng = deps
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == "Engineering"))
        .expect("Engineering listed");
    assert_eq!(eng["children"], serde_json::json!(["Platform"]));
    let r = api(&srv, "dave", "GET", "/api/directory/people?q=bo", "").await;
    assert!(r.text().contains("\"uid\":\"bob\""), "{}", r.text());
    // The group is a principal clients can address.
    let r = srv
        .propfind(
            "/dav/groups/eng/",
            "0",
            r#"<D:propfind xmlns:D="DAV:"><D:prop><D:group-member-set/></D:prop></D:propfind>"#,
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("/dav/principals/bob/"), "{}", r.text());

    // A group share reaches the members.
    srv.put_ics("/dav/calendars/alice/calendar/g.ics", &ev("g", "Eng sync"))
        .await
        .expect(201);
    api(
        &srv,
        "alice",
        "POST",
        "/api/share/rules",
        r#"{"calendar":"calendar","kind":"group","target":"eng"}"#,
    )
    .await
    .expect(201);
    common::copies_of(&srv, "bob", "alice", "the group share", |c| {
        has(c, "Eng sync")
    })
    .await;

    // The manager rule now has a manager to reach.
    let r = srv
        .send(
            srv.req_as(
                "bob",
                "bob-password",
                "PUT",
                "/dav/calendars/bob/calendar/m.ics",
            )
            .header("Content-Type", "text/calendar")
            .body(ev("m", "Bob's one-to-one")),
        )
        .await;
    r.expect(201);
    api(
        &srv,
        "bob",
        "POST",
        "/api/share/rules",
        r#"{"calendar":"calendar","kind":"manager"}"#,
    )
    .await
    .expect(201);
    common::copies_of(&srv, "carol", "bob", "the manager share", |c| {
        has(c, "one-to-one")
    })
    .await;

    // Edits through the API: only an admin, only JSON, and the member sees the share at
    // once (the refresh interval is 300 s; the copy is bounded at 30 s).
    api(
        &srv,
        "bob",
        "PUT",
        "/api/directory/groups/eng/members/dave",
        "",
    )
    .await
    .expect(403);
    srv.send_as(
        "alice",
        "PUT",
        "/api/directory/groups/ops",
        "description=x",
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .await
    .expect(415);
    api(
        &srv,
        "alice",
        "PUT",
        "/api/directory/groups/eng/members/dave",
        "",
    )
    .await
    .expect(204);
    common::copies_of(&srv, "dave", "alice", "the share after joining", |c| {
        has(c, "Eng sync")
    })
    .await;
    api(
        &srv,
        "alice",
        "PUT",
        "/api/directory/departments/Engineering",
        r#"{"parent":"Platform"}"#,
    )
    .await
    .expect(400);
    api(
        &srv,
        "alice",
        "PUT",
        "/api/directory/people/dave",
        r#"{"department":"Engineering","manager":"carol"}"#,
    )
    .await
    .expect(204);
    let r = api(&srv, "alice", "GET", "/api/directory/people/carol", "").await;
    assert_eq!(value(&r)["reports"], serde_json::json!(["bob", "dave"]));
    // Leaving the group withdraws the copy.
    api(
        &srv,
        "alice",
        "DELETE",
        "/api/directory/groups/eng/members/dave",
        "",
    )
    .await
    .expect(204);
    common::copies_of(&srv, "dave", "alice", "the share withdrawn", |c| {
        !has(c, "Eng sync")
    })
    .await;
    api(&srv, "alice", "DELETE", "/api/directory/groups/nope", "")
        .await
        .expect(404);
    let r = api(&srv, "alice", "POST", "/api/directory/refresh", "").await;
    r.expect(200);
}

both_backends!(a_directory_without_ldap, org_chart_without_ldap);
