//! LDAP login against a real OpenLDAP slapd on loopback (`conformance/slapd.sh`, started by
//! `conformance/run-all.sh`, which sets `CONVENE_TEST_LDAP_URL`): a directory person logs in
//! with Basic and is provisioned, SSHA and ARGON2 hashes both work, and wrong, empty and
//! injected credentials are refused. Local accounts keep their own passwords.

mod common;

use common::TestServer;

fn ldap_url() -> String {
    std::env::var("CONVENE_TEST_LDAP_URL").unwrap_or_else(|_| {
        panic!(
            "CONVENE_TEST_LDAP_URL is not set: run the tests through conformance/run-all.sh, which starts slapd (or start one with conformance/slapd.sh start DIR PORT)"
        )
    })
}

async fn status(srv: &TestServer, user: &str, pw: &str, path: &str) -> u16 {
    srv.send(srv.req_as(user, pw, "PROPFIND", path).header("Depth", "0"))
        .await
        .status
        .as_u16()
}

async fn ldap(mut srv: TestServer) {
    srv.restart_with_config(&format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"cn=reader,ou=services,dc=example,dc=org\"\nbind_password = \"reader-secret\"\nuser_base = \"ou=people,dc=example,dc=org\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\nrecheck_seconds = 0\n",
        ldap_url()
    ))
    .await;

    // A directory person with no local account logs in, and gets one with their mail.
    assert_eq!(
        status(&srv, "carol", "carol-pass", "/dav/calendars/carol/").await,
        207
    );
    let users = srv.cli_ok(&["user", "list"], "");
    assert!(
        users.contains("carol\tcarol@example.org\tCarol Clark"),
        "{users}"
    );
    // Again (from the cache), and an ARGON2-hashed password verified by slapd.
    assert_eq!(
        status(&srv, "carol", "carol-pass", "/dav/calendars/carol/").await,
        207
    );
    assert_eq!(
        status(&srv, "frank", "frank-pass", "/dav/calendars/frank/").await,
        207
    );
    // Wrong, empty and injected credentials are refused.
    assert_eq!(
        status(&srv, "carol", "wrong", "/dav/calendars/carol/").await,
        401
    );
    assert_eq!(status(&srv, "dave", "", "/dav/calendars/dave/").await, 401);
    assert_eq!(status(&srv, "*", "carol-pass", "/dav/").await, 401);
    assert_eq!(
        status(&srv, "carol)(uid=*", "carol-pass", "/dav/").await,
        401
    );
    assert_eq!(status(&srv, "nobody", "nobody-pass", "/dav/").await, 401);
    // Local accounts keep their own passwords; the directory cannot take over their names.
    assert_eq!(
        status(&srv, "alice", "alice-password", "/dav/calendars/alice/").await,
        207
    );
    let users = srv.cli_ok(&["user", "list"], "");
    assert!(
        !users.contains("dave") && !users.contains("nobody"),
        "{users}"
    );
    // A provisioned person schedules like anyone: their address is their directory mail.
    let r = srv
        .send(
            srv.req_as("carol", "carol-pass", "PROPFIND", "/dav/principals/carol/")
                .header("Depth", "0")
                .body(r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-user-address-set/></D:prop></D:propfind>"#),
        )
        .await;
    r.expect(207);
    assert!(r.text().contains("mailto:carol@example.org"));

    // The directory API: people search (injection-safe) and groups with their members.
    let get = |path: &str| srv.send(srv.req("GET", path));
    let r = get("/api/directory/people?q=fisch").await;
    r.expect(200);
    let people: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(people.as_array().map(Vec::len), Some(1), "{people}");
    assert_eq!(people[0]["uid"], "frank");
    assert_eq!(people[0]["mail"], "frank@example.org");
    assert_eq!(people[0]["principal"], "/dav/principals/frank/");
    let r = get("/api/directory/people?q=*)(uid%3D*").await;
    r.expect(200);
    assert_eq!(r.text(), "[]", "a filter injected through the search");
    get("/api/directory/people?q=a").await.expect(400);
    let r = get("/api/directory/groups").await;
    r.expect(200);
    let groups: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let sales = groups
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "sales"))
        .expect("sales group");
    assert_eq!(sales["members"], serde_json::json!(["dave"]));
    srv.send(srv.client.get(srv.url("/api/directory/groups")))
        .await
        .expect(401);

    // Directory people are principals before their first login: found by attendee search,
    // and invitations to their mail are delivered to them.
    let r = srv
        .report(
            "/dav/principals/",
            r#"<C:calendarserver-principal-search xmlns:C="http://calendarserver.org/ns/" context="attendee"><C:search-token>green</C:search-token><D:prop xmlns:D="DAV:"><D:displayname/></D:prop></C:calendarserver-principal-search>"#,
        )
        .await;
    r.expect(207);
    assert!(
        r.text().contains("<D:href>/dav/principals/gina/</D:href>")
            && r.text().contains("Gina Green"),
        "{}",
        r.text()
    );
    // The RFC 3744 search (Thunderbird's, python-caldav's) finds them too.
    let r = srv
        .report(
            "/dav/principals/",
            r#"<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/></D:prop><D:match>ivanov</D:match></D:property-search><D:prop><D:displayname/></D:prop></D:principal-property-search>"#,
        )
        .await;
    r.expect(207);
    assert!(
        r.text().contains("<D:href>/dav/principals/ivan/</D:href>"),
        "{}",
        r.text()
    );
    let invite = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:dir-1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300105T100000Z\r\nDTEND:20300105T110000Z\r\nSUMMARY:Welcome\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:hank@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    srv.put_ics("/dav/calendars/alice/calendar/dir-1.ics", invite)
        .await
        .expect(201);
    let stored = srv
        .send(srv.req("GET", "/dav/calendars/alice/calendar/dir-1.ics"))
        .await
        .text()
        .replace("\r\n ", "");
    assert!(
        stored.contains("SCHEDULE-STATUS=1.2:mailto:hank@example.org"),
        "{stored}"
    );
    let r = srv
        .send(
            srv.req_as(
                "hank",
                "hank-pass",
                "PROPFIND",
                "/dav/calendars/hank/inbox/",
            )
            .header("Depth", "1"),
        )
        .await;
    r.expect(207);
    assert_eq!(r.text().matches(".ics</D:href>").count(), 1, "{}", r.text());

    // Someone removed from the directory loses access at once, app passwords included. (Each
    // backend's run removes its own person: they share one slapd.)
    let gone = if srv.db_args[0] == "--data-dir" {
        "erin"
    } else {
        "dave"
    };
    let pw = format!("{gone}-pass");
    let r = srv
        .send(
            srv.req_as(gone, &pw, "POST", "/api/app-passwords")
                .header("Content-Type", "application/json")
                .body(r#"{"name":"Phone"}"#),
        )
        .await;
    r.expect(201);
    let app: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let app = app["password"].as_str().expect("password").to_string();
    let home = format!("/dav/calendars/{gone}/");
    assert_eq!(status(&srv, gone, &app, &home).await, 207);
    let out = std::process::Command::new("ldapdelete")
        .args([
            "-x",
            "-H",
            &ldap_url(),
            "-D",
            "cn=admin,dc=example,dc=org",
            "-w",
            "admin-secret",
        ])
        .arg(format!("uid={gone},ou=people,dc=example,dc=org"))
        .output()
        .expect("ldapdelete (ldap-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status(&srv, gone, &app, &home).await,
        401,
        "app password still works"
    );
    assert_eq!(
        status(&srv, gone, &pw, &home).await,
        401,
        "directory password still works"
    );
}
both_backends!(ldap_login, ldap);

fn ldap_ca() -> String {
    std::env::var("CONVENE_TEST_LDAP_CA").unwrap_or_else(|_| {
        panic!("CONVENE_TEST_LDAP_CA is not set: run the tests through conformance/run-all.sh")
    })
}

fn ldap_config(extra: &str) -> String {
    format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"cn=reader,ou=services,dc=example,dc=org\"\nbind_password = \"reader-secret\"\nuser_base = \"ou=people,dc=example,dc=org\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\ndepartment_base = \"ou=departments,dc=example,dc=org\"\nrecheck_seconds = 0\n{extra}",
        ldap_url()
    )
}

async fn json_of(srv: &TestServer, path: &str) -> serde_json::Value {
    let r = srv.send(srv.req("GET", path)).await;
    r.expect(200);
    serde_json::from_slice(&r.body).expect("json")
}

/// The org chart over StartTLS with a configured CA: departments (nested), managers and
/// reports, photos (the directory's, or a generated badge), and group membership changes
/// reaching a person's account after the refresh interval.
#[tokio::test]
async fn directory_org_chart() {
    let mut srv = TestServer::start(common::Backend::Sqlite).await;

    // StartTLS against a certificate the system does not trust: the login cannot be checked.
    srv.restart_with_config(&ldap_config("starttls = true\n"))
        .await;
    assert_eq!(
        status(&srv, "carol", "carol-pass", "/dav/calendars/carol/").await,
        503
    );
    // With the CA configured it works.
    // People marked employeeType=disabled are outside the person filter.
    srv.restart_with_config(&ldap_config(&format!(
        "starttls = true\nca_file = \"{}\"\nrefresh_seconds = 1\navatar_url_attribute = \"labeledURI\"\nuser_filter = \"(&(objectClass=inetOrgPerson)(!(employeeType=disabled))(uid={{username}}))\"\n",
        ldap_ca()
    )))
    .await;
    assert_eq!(
        status(&srv, "carol", "carol-pass", "/dav/calendars/carol/").await,
        207
    );

    // Departments: the tree with heads and members.
    let deps = json_of(&srv, "/api/directory/departments").await;
    let dep = |n: &str| {
        deps.as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("department {n}: {deps}"))
    };
    assert_eq!(
        dep("Engineering")["children"],
        serde_json::json!(["Platform"])
    );
    assert_eq!(dep("Engineering")["head"], "carol");
    assert_eq!(dep("Platform")["parent"], "Engineering");
    assert_eq!(
        dep("Platform")["members"],
        serde_json::json!(["frank", "gina"])
    );
    assert_eq!(dep("Sales")["parent"], serde_json::Value::Null);

    // A person: title, manager, departments up the tree, direct reports.
    let frank = json_of(&srv, "/api/directory/people/frank").await;
    assert_eq!(frank["title"], "Platform Lead");
    assert_eq!(frank["manager"], "carol");
    assert_eq!(
        frank["departments"],
        serde_json::json!(["Platform", "Engineering"])
    );
    assert_eq!(frank["reports"], serde_json::json!(["gina"]));
    let carol = json_of(&srv, "/api/directory/people/carol").await;
    assert_eq!(carol["reports"], serde_json::json!(["frank", "ivan"]));
    srv.send(srv.req("GET", "/api/directory/people/nobody"))
        .await
        .expect(404);

    // Photos: carol's JPEG from the directory; a generated badge for gina.
    let r = srv
        .send(srv.req("GET", "/api/directory/people/carol/photo"))
        .await;
    r.expect(200);
    assert_eq!(r.header("content-type").as_deref(), Some("image/jpeg"));
    assert!(r.body.starts_with(&[0xFF, 0xD8]), "a JPEG");
    let r = srv
        .send(srv.req("GET", "/api/directory/people/gina/photo"))
        .await;
    r.expect(200);
    assert_eq!(r.header("content-type").as_deref(), Some("image/svg+xml"));
    assert!(r.text().contains(">GG</text>"), "{}", r.text());
    srv.send(srv.client.get(srv.url("/api/directory/people/carol/photo")))
        .await
        .expect(401);

    // gina signs in on the web with her directory password; her account shows her departments.
    let c = TestServer::browser();
    let page = srv.send(c.get(srv.url("/login"))).await;
    let csrf = common::input_value(&page.text(), "csrf").expect("csrf");
    srv.send(
        c.post(srv.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::form(&[
                ("user", "gina"),
                ("password", "gina-pass"),
                ("csrf", &csrf),
            ])),
    )
    .await
    .expect(303);
    let groups_of_gina = || async {
        let html = srv.send(c.get(srv.url("/account"))).await.text();
        html.split("<span id=\"groups\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_default()
            .to_string()
    };
    let mut seen = String::new();
    for _ in 0..100 {
        seen = groups_of_gina().await;
        if seen.contains("Platform") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "Engineering, Platform");

    // She joins the engineering group in LDAP: after the refresh interval it is on her account.
    ldapmodify(b"dn: cn=engineering,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=gina,ou=people,dc=example,dc=org\n");
    for _ in 0..100 {
        seen = groups_of_gina().await;
        if seen.contains("engineering") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "Engineering, Platform, engineering");

    // Disabled in the directory: her web session ends at once, and her password stops working.
    assert_eq!(
        status(&srv, "gina", "gina-pass", "/dav/calendars/gina/").await,
        207
    );
    ldapmodify(b"dn: uid=gina,ou=people,dc=example,dc=org\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n");
    let r = srv.send(c.get(srv.url("/account"))).await;
    r.expect(303);
    assert_eq!(
        status(&srv, "gina", "gina-pass", "/dav/calendars/gina/").await,
        401
    );

    // Group principals: departments list their people and sub-departments; groups follow
    // the directory; principal searches find them; they cannot be written.
    let prop = r#"<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:displayname/><D:group-member-set/><C:calendar-user-type/><D:resourcetype/></D:prop></D:propfind>"#;
    let r = srv
        .send(
            srv.req("PROPFIND", "/dav/departments/Engineering/")
                .header("Depth", "0")
                .body(prop),
        )
        .await;
    r.expect(207);
    let t = r.text();
    for want in [
        "<D:href>/dav/principals/carol/</D:href>",
        "<D:href>/dav/principals/ivan/</D:href>",
        "<D:href>/dav/departments/Platform/</D:href>",
        "<C:calendar-user-type>GROUP</C:calendar-user-type>",
        "<D:principal/>",
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
    assert!(
        !t.contains("/dav/principals/gina/"),
        "gina is in Platform, not directly in Engineering"
    );
    let r = srv
        .send(
            srv.req("PROPFIND", "/dav/groups/engineering/")
                .header("Depth", "0")
                .body(prop),
        )
        .await;
    r.expect(207);
    assert!(
        r.text().contains("<D:href>/dav/principals/gina/</D:href>"),
        "{}",
        r.text()
    );
    srv.send(
        srv.req("PROPFIND", "/dav/groups/nosuch/")
            .header("Depth", "0"),
    )
    .await
    .expect(404);
    let r = srv
        .report(
            "/dav/principals/",
            r#"<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/></D:prop><D:match>platf</D:match></D:property-search><D:prop><D:displayname/></D:prop></D:principal-property-search>"#,
        )
        .await;
    r.expect(207);
    assert!(
        r.text()
            .contains("<D:href>/dav/departments/Platform/</D:href>"),
        "{}",
        r.text()
    );
    let r = srv
        .report(
            "/dav/principals/",
            r#"<C:calendarserver-principal-search xmlns:C="http://calendarserver.org/ns/" context="attendee"><C:search-token>sales</C:search-token><D:prop xmlns:D="DAV:"><D:displayname/></D:prop></C:calendarserver-principal-search>"#,
        )
        .await;
    r.expect(207);
    assert!(
        r.text().contains("<D:href>/dav/groups/sales/</D:href>")
            && r.text()
                .contains("<D:href>/dav/departments/Sales/</D:href>"),
        "{}",
        r.text()
    );
    for m in ["PUT", "DELETE", "PROPPATCH", "MKCOL"] {
        let st = srv
            .send(srv.req(m, "/dav/groups/sales/"))
            .await
            .status
            .as_u16();
        assert!(
            matches!(st, 400 | 403 | 405),
            "{m} on a group principal: {st}"
        );
    }

    // `password_backends` without ldap: directory people cannot log in, local ones can.
    srv.restart_with_config(
        &ldap_config(&format!("starttls = true\nca_file = \"{}\"\n", ldap_ca()))
            .replace("[ldap]", "password_backends = [\"local\"]\n[ldap]"),
    )
    .await;
    assert_eq!(
        status(&srv, "carol", "carol-pass", "/dav/calendars/carol/").await,
        401
    );
    assert_eq!(
        status(&srv, "alice", "alice-password", "/dav/calendars/alice/").await,
        207
    );
}

fn ldapmodify(ldif: &[u8]) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            &ldap_url(),
            "-D",
            "cn=admin,dc=example,dc=org",
            "-w",
            "admin-secret",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ldapmodify (ldap-utils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ldif)
        .expect("write");
    assert!(child.wait().expect("ldapmodify").success());
}

/// An admin asks for the directory to be read again now.
async fn admin_refresh(srv: &TestServer) {
    let r = srv.send(srv.req("POST", "/api/directory/refresh")).await;
    r.expect(200);
    // Everyone can see when a change made in LDAP will show without one.
    let status = json_of(srv, "/api/directory").await;
    assert_eq!(status["source"], "ldap");
    let (at, next) = (
        status["memberships_copied_at"].as_i64().expect("copied at"),
        status["next_copy_at"].as_i64().expect("next copy at"),
    );
    assert_eq!(next - at, 3600, "{status}");
}

/// Sharing follows the directory: an event shared with the Sales department reaches its
/// members' own homes, and a person who joins Sales later receives it after an admin's
/// refresh (edits here are refused: LDAP owns the chart); a
/// calendar rule for a department gives and takes copies as people move (issue 6).
async fn sharing_follows_directory(mut srv: TestServer) {
    // Each run adds its own people: the backends' runs share one slapd.
    let tag = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    );
    let (rita, sam) = (format!("rita{tag}"), format!("sam{tag}"));
    let (boss, emp) = (format!("boss{tag}"), format!("emp{tag}"));
    for (uid, dept, manager) in [
        (&rita, "Sales", None),
        (&sam, "Engineering", None),
        (&boss, "Platform", None),
        (&emp, "Platform", Some(&boss)),
    ] {
        let manager = manager
            .map(|m| format!("manager: uid={m},ou=people,dc=example,dc=org\n"))
            .unwrap_or_default();
        ldapmodify(
            format!(
                "dn: uid={uid},ou=people,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {uid}@example.org\nuserPassword: {uid}-pass\ndepartmentNumber: {dept}\n{manager}"
            )
            .as_bytes(),
        );
    }
    // The refresh interval is long: an admin's refresh is what makes changes show at once.
    srv.restart_with_config(&format!(
        "admins = [\"alice\"]\n{}",
        ldap_config("refresh_seconds = 3600\n[sharing]\ninterval_seconds = 1\n")
    ))
    .await;
    // LDAP owns the chart: no edits here.
    let r = srv
        .send(
            srv.req("PUT", "/api/directory/groups/Sales")
                .header("Content-Type", "application/json")
                .body("{}"),
        )
        .await;
    r.expect(409);
    assert!(r.text().contains("LDAP"), "{}", r.text());
    // First logins make their accounts; the admin's refresh copies their departments.
    for uid in [&rita, &sam] {
        assert_eq!(
            status(
                &srv,
                uid,
                &format!("{uid}-pass"),
                &format!("/dav/calendars/{uid}/")
            )
            .await,
            207
        );
    }
    admin_refresh(&srv).await;
    let sales = "ATTENDEE;CUTYPE=GROUP;ROLE=NON-PARTICIPANT;RSVP=FALSE:/dav/departments/Sales/\r\n";
    let body = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:sales-kickoff\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300105T100000Z\r\nDURATION:PT1H\r\nSUMMARY:Sales kickoff\r\n{sales}END:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    srv.put_ics("/dav/calendars/alice/calendar/kickoff.ics", &body)
        .await
        .expect(201);
    let rita_pw = format!("{rita}-pass");
    let sam_pw = format!("{sam}-pass");
    common::copies_until(&srv, &rita, &rita_pw, "alice", "the Sales event", |c| {
        c.iter().any(|(_, d)| d.contains("Sales kickoff"))
    })
    .await;
    // A rule: alice's team calendar goes to Engineering, so sam gets it.
    srv.send(srv.req("MKCALENDAR", "/dav/calendars/alice/team/"))
        .await
        .expect(201);
    srv.put_ics(
        "/dav/calendars/alice/team/t.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:eng-sync\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300106T100000Z\r\nDURATION:PT1H\r\nSUMMARY:Eng sync\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .await
    .expect(201);
    srv.send(
        srv.req("POST", "/api/share/rules")
            .header("Content-Type", "application/json")
            .body(r#"{"calendar":"team","kind":"department","target":"Engineering"}"#),
    )
    .await
    .expect(201);
    common::copies_until(&srv, &sam, &sam_pw, "alice", "the Engineering rule", |c| {
        c.len() == 1 && c[0].1.contains("Eng sync")
    })
    .await;
    // Sam moves to Sales: after the refresh he has the Sales event (shared before he came)
    // and no longer the Engineering one.
    ldapmodify(
        format!(
            "dn: uid={sam},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Sales\n"
        )
        .as_bytes(),
    );
    admin_refresh(&srv).await;
    common::copies_until(&srv, &sam, &sam_pw, "alice", "the move to Sales", |c| {
        c.len() == 1 && c[0].1.contains("Sales kickoff")
    })
    .await;
    // Sharing a whole calendar with a department principal invites each member.
    srv.send(
        srv.req("POST", "/dav/calendars/alice/team/")
            .header("Content-Type", "application/xml")
            .body(r#"<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>/dav/departments/Sales/</D:href><CS:read/></CS:set></CS:share>"#),
    )
    .await
    .expect(200);
    for (uid, pw) in [(&rita, &rita_pw), (&sam, &sam_pw)] {
        let r = srv
            .send(
                srv.req_as(
                    uid,
                    pw,
                    "PROPFIND",
                    &format!("/dav/calendars/{uid}/notification/"),
                )
                .header("Depth", "1"),
            )
            .await;
        assert!(
            r.text().contains(".xml</D:href>"),
            "{uid} has no invitation: {}",
            r.text()
        );
    }
    // "To my manager": emp's rule sends her calendar to boss, her manager in the directory.
    for uid in [&boss, &emp] {
        assert_eq!(
            status(
                &srv,
                uid,
                &format!("{uid}-pass"),
                &format!("/dav/calendars/{uid}/")
            )
            .await,
            207
        );
    }
    let emp_pw = format!("{emp}-pass");
    srv.send(
        srv.req_as(&emp, &emp_pw, "POST", "/api/share/rules")
            .header("Content-Type", "application/json")
            .body(r#"{"calendar":"calendar","kind":"manager"}"#),
    )
    .await
    .expect(201);
    srv.send(
        srv.req_as(&emp, &emp_pw, "PUT", &format!("/dav/calendars/{emp}/calendar/leave.ics"))
            .header("Content-Type", "text/calendar")
            .body("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:leave\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20300301\r\nDTEND;VALUE=DATE:20300305\r\nSUMMARY:Annual leave\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    )
    .await
    .expect(201);
    common::copies_until(
        &srv,
        &boss,
        &format!("{boss}-pass"),
        &emp,
        "the report's leave",
        |c| c.iter().any(|(_, d)| d.contains("Annual leave")),
    )
    .await;
    // Rita is still there; bob (not in the directory) never got anything.
    common::copies_until(&srv, &rita, &rita_pw, "alice", "her copy kept", |c| {
        c.len() == 1
    })
    .await;
    assert_eq!(
        status(
            &srv,
            "bob",
            "bob-password",
            "/dav/calendars/bob/from~alice/"
        )
        .await,
        404
    );
}

both_backends!(sharing_directory, sharing_follows_directory);
