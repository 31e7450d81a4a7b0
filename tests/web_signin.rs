//! The server-rendered pages with a password sign-in, through real HTTP with a cookie jar, on
//! both backends: the sign-in form and its CSRF cookie, the session cookie's attributes, no
//! open redirect through `next`, the account page creating, listing and revoking app
//! passwords (the new one works in CalDAV until revoked), CSRF on every form, app passwords
//! refused for the web, Login Flow v2 granted from a signed-in session, and sign-out.

mod common;

use common::{Backend, TestServer, form, input_value};

async fn get(c: &reqwest::Client, srv: &TestServer, path: &str) -> common::Resp {
    srv.send(c.get(srv.url(path))).await
}

async fn post(c: &reqwest::Client, srv: &TestServer, path: &str, body: String) -> common::Resp {
    srv.send(
        c.post(srv.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// Sign in as alice with the password form; returns the account page's CSRF token.
async fn sign_in(c: &reqwest::Client, srv: &TestServer, next: &str) -> common::Resp {
    let page = get(c, srv, &format!("/login?next={next}")).await;
    page.expect(200);
    let csrf = input_value(&page.text(), "csrf").expect("csrf");
    let next = input_value(&page.text(), "next").expect("next");
    post(
        c,
        srv,
        "/login",
        form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", &csrf),
            ("next", &next),
        ]),
    )
    .await
}

async fn pages(mut srv: TestServer) {
    let c = TestServer::browser();

    // The account page needs a session.
    let r = get(&c, &srv, "/account").await;
    r.expect(303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/login?next=/account")
    );

    // The sign-in form: labelled fields, a CSRF cookie that is HttpOnly and SameSite=Strict,
    // no caching, no framing.
    let r = get(&c, &srv, "/login").await;
    r.expect(200);
    let html = r.text();
    assert!(
        html.contains("<label>User name <input name=\"user\""),
        "{html}"
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert!(
        r.header("content-security-policy")
            .unwrap_or_default()
            .contains("frame-ancestors 'none'")
    );
    let set = r.headers_all("set-cookie").join("\n");
    assert!(
        set.contains("convene_login_csrf=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict"),
        "{set}"
    );
    let csrf = input_value(&html, "csrf").expect("csrf");

    // A post without the cookie's token (a cross-site form) is refused, the right one works.
    let stranger = TestServer::browser();
    post(
        &stranger,
        &srv,
        "/login",
        form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", &csrf),
        ]),
    )
    .await
    .expect(403);
    post(
        &c,
        &srv,
        "/login",
        form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", "forged"),
        ]),
    )
    .await
    .expect(403);
    // Wrong password: 401, no session.
    post(
        &c,
        &srv,
        "/login",
        form(&[("user", "alice"), ("password", "nope"), ("csrf", &csrf)]),
    )
    .await
    .expect(401);
    get(&c, &srv, "/account").await.expect(303);

    // No open redirect: `next` pointing elsewhere falls back to the account page, both in the
    // form and after sign-in.
    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let page = get(
            &c,
            &srv,
            &format!(
                "/login?next={}",
                form(&[("x", evil)]).trim_start_matches("x=")
            ),
        )
        .await;
        assert_eq!(
            input_value(&page.text(), "next").as_deref(),
            Some("/account"),
            "{evil}"
        );
    }
    let page = get(&c, &srv, "/login").await;
    let csrf = input_value(&page.text(), "csrf").expect("csrf");
    let r = post(
        &c,
        &srv,
        "/login",
        form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", &csrf),
            ("next", "//evil.example/"),
        ]),
    )
    .await;
    r.expect(303);
    assert_eq!(r.header("location").as_deref(), Some("/account"));
    let set = r.headers_all("set-cookie").join("\n");
    assert!(
        set.contains("convene_session=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Lax")
            && !set.contains("Secure"),
        "{set}"
    );

    // The account page: signed in, no app passwords yet.
    let r = get(&c, &srv, "/account").await;
    r.expect(200);
    let html = r.text();
    assert!(
        html.contains("<strong id=\"user\">alice</strong>"),
        "{html}"
    );
    assert!(html.contains("id=\"no-app-passwords\""));
    let csrf = input_value(&html, "csrf").expect("session csrf");

    // Create: without the CSRF token refused; with it, shown once and usable in CalDAV.
    post(
        &c,
        &srv,
        "/account/app-passwords",
        form(&[("name", "Phone"), ("scope", "caldav")]),
    )
    .await
    .expect(400);
    post(
        &c,
        &srv,
        "/account/app-passwords",
        form(&[("csrf", "forged"), ("name", "Phone"), ("scope", "caldav")]),
    )
    .await
    .expect(403);
    let r = post(
        &c,
        &srv,
        "/account/app-passwords",
        form(&[
            ("csrf", &csrf),
            ("name", "Phone <script>"),
            ("scope", "caldav"),
            ("expires_days", "30"),
        ]),
    )
    .await;
    r.expect(200);
    let html = r.text();
    assert!(
        html.contains("Phone &lt;script&gt;"),
        "names are escaped: {html}"
    );
    let pw = html
        .split("<code id=\"new-password\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("new password shown")
        .to_string();
    assert!(pw.starts_with("cvp_"), "{pw}");
    let dav = |p: &str| {
        srv.send(
            srv.req_as("alice", p, "PROPFIND", "/dav/calendars/alice/")
                .header("Depth", "0"),
        )
    };
    assert_eq!(dav(&pw).await.status, 207);
    // Listed (never shown again), with its access level and expiry.
    let html = get(&c, &srv, "/account").await.text();
    assert!(!html.contains(&pw));
    assert!(
        html.contains("CalDAV only") && !html.contains("no expiry"),
        "{html}"
    );
    let id = html
        .split("/account/app-passwords/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("revoke form")
        .to_string();

    // An app password cannot open a web session.
    let page = get(&TestServer::browser(), &srv, "/login").await;
    let other = TestServer::browser();
    let page2 = get(&other, &srv, "/login").await;
    let csrf2 = input_value(&page2.text(), "csrf").expect("csrf");
    drop(page);
    post(
        &other,
        &srv,
        "/login",
        form(&[("user", "alice"), ("password", &pw), ("csrf", &csrf2)]),
    )
    .await
    .expect(401);

    // Revoke: CSRF checked, then the password stops working at once.
    post(
        &c,
        &srv,
        &format!("/account/app-passwords/{id}/revoke"),
        form(&[("csrf", "forged")]),
    )
    .await
    .expect(403);
    assert_eq!(dav(&pw).await.status, 207);
    let r = post(
        &c,
        &srv,
        &format!("/account/app-passwords/{id}/revoke"),
        form(&[("csrf", &csrf)]),
    )
    .await;
    r.expect(303);
    assert_eq!(dav(&pw).await.status, 401);
    post(
        &c,
        &srv,
        &format!("/account/app-passwords/{id}/revoke"),
        form(&[("csrf", &csrf)]),
    )
    .await
    .expect(404);

    // The Apple profile from the account page holds a fresh CalDAV password.
    // It makes an app password, so a GET (a link, an image) does nothing.
    let before = srv.cli_ok(&["app-password", "list", "alice"], "");
    get(&c, &srv, "/account/apple-profile").await.expect(405);
    srv.send(
        c.post(srv.url("/account/apple-profile"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", "forged")])),
    )
    .await
    .expect(403);
    assert_eq!(before, srv.cli_ok(&["app-password", "list", "alice"], ""));
    let r = srv
        .send(
            c.post(srv.url("/account/apple-profile"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[("csrf", &csrf)])),
        )
        .await;
    r.expect(200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-apple-aspen-config")
    );
    assert!(r.text().contains("cvp_"));

    // Login Flow v2 from a signed-in browser: one button, no password typed.
    let start: serde_json::Value = serde_json::from_slice(
        &srv.send(
            srv.client
                .post(srv.url("/index.php/login/v2"))
                .header("User-Agent", "DAVx5/4.4"),
        )
        .await
        .body,
    )
    .expect("json");
    let login = start["login"].as_str().expect("login").to_string();
    let token = start["poll"]["token"].as_str().expect("token").to_string();
    let page = srv.send(c.get(&login)).await;
    page.expect(200);
    let html = page.text();
    assert!(
        html.contains("Signed in as <strong>alice</strong>") && !html.contains("name=\"password\""),
        "{html}"
    );
    let flow_csrf = input_value(&html, "csrf").expect("flow csrf");
    let session_csrf = input_value(&html, "session_csrf").expect("session csrf");
    // Whoever started the flow knows its token, so the flow's token alone (a cross-site form
    // riding on alice's session) grants nothing.
    let r = srv
        .send(
            c.post(&login)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[("csrf", &flow_csrf)])),
        )
        .await;
    r.expect(403);
    let r = srv
        .send(
            c.post(&login)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("csrf", &flow_csrf),
                    ("session_csrf", &session_csrf),
                ])),
        )
        .await;
    r.expect(200);
    let r = srv
        .send(
            srv.client
                .post(srv.url("/index.php/login/v2/poll"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[("token", &token)])),
        )
        .await;
    r.expect(200);
    let granted: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(granted["loginName"], "alice");
    assert_eq!(
        dav(granted["appPassword"].as_str().expect("password"))
            .await
            .status,
        207
    );

    // Sign out: CSRF checked; afterwards the session is gone for good.
    post(&c, &srv, "/logout", form(&[("csrf", "forged")]))
        .await
        .expect(403);
    let r = post(&c, &srv, "/logout", form(&[("csrf", &csrf)])).await;
    r.expect(303);
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    get(&c, &srv, "/account").await.expect(303);

    // Behind a TLS proxy the session cookie is Secure; a session survives a restart (it is
    // in the store, not in memory).
    let secure = TestServer::browser();
    let r = srv
        .send(
            secure
                .get(srv.url("/login"))
                .header("X-Forwarded-Proto", "https"),
        )
        .await;
    let csrf = input_value(&r.text(), "csrf").expect("csrf");
    let r = srv
        .send(
            secure
                .post(srv.url("/login"))
                .header("X-Forwarded-Proto", "https")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Cookie", format!("__Host-convene_login_csrf={csrf}"))
                .body(form(&[
                    ("user", "alice"),
                    ("password", "alice-password"),
                    ("csrf", &csrf),
                ])),
        )
        .await;
    r.expect(303);
    assert!(
        r.headers_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("__Host-convene_session=") && c.contains("; Secure"))
    );
    let r = sign_in(&c, &srv, "/account").await;
    r.expect(303);
    srv.restart_with_config("").await;
    let dav = |p: &str| {
        srv.send(
            srv.req_as("alice", p, "PROPFIND", "/dav/calendars/alice/")
                .header("Depth", "0"),
        )
    };
    get(&c, &srv, "/account").await.expect(200);

    // A disabled account loses everything at once: its session, its password, its app
    // passwords. Enabled again, the password works (the session stays ended).
    let app = srv.cli_ok(&["app-password", "add", "alice", "Tablet"], "");
    let app = app
        .split_whitespace()
        .find(|w| w.starts_with("cvp_"))
        .expect("app password")
        .to_string();
    assert_eq!(dav(&app).await.status, 207);
    assert!(
        srv.cli_ok(&["user", "disable", "alice"], "")
            .contains("disabled alice")
    );
    assert!(
        srv.cli_ok(&["user", "list"], "")
            .contains("alice\talice@example.org\tAlice A\tdisabled")
    );
    get(&c, &srv, "/account").await.expect(303);
    assert_eq!(dav("alice-password").await.status, 401);
    assert_eq!(dav(&app).await.status, 401);
    srv.cli_ok(&["user", "enable", "alice"], "");
    assert_eq!(dav("alice-password").await.status, 207);
    get(&c, &srv, "/account").await.expect(303);
    let (code, _, err) = srv.cli(&["user", "disable", "nobody"], "");
    assert!(code != 0 && err.contains("no such user"), "{err}");
}

#[tokio::test]
async fn pages_sqlite() {
    pages(TestServer::start(Backend::Sqlite).await).await;
}

#[tokio::test]
async fn pages_postgres() {
    pages(TestServer::start(Backend::Postgres).await).await;
}

/// The session cookie's value of a response, if it sets one.
fn session_cookie(r: &common::Resp) -> Option<String> {
    r.headers_all("set-cookie")
        .iter()
        .find_map(|c| c.strip_prefix("convene_session="))
        .and_then(|c| c.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Session fixation: an attacker who plants their own session token in a victim's browser
/// gains nothing when the victim signs in. The sign-in always starts a new session with a new
/// token; the planted one stays the attacker's own.
#[tokio::test]
async fn a_planted_session_is_never_the_victims() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // The attacker's own session token.
    let sign_in_as = |user: &'static str, planted: Option<String>| {
        let srv = &srv;
        let plain = &plain;
        async move {
            let page = srv.send(plain.get(srv.url("/login"))).await;
            let csrf = input_value(&page.text(), "csrf").expect("csrf");
            let login_cookie = page
                .headers_all("set-cookie")
                .iter()
                .find_map(|c| c.split(';').next().map(str::to_string))
                .expect("login csrf cookie");
            let mut cookies = login_cookie;
            if let Some(p) = planted {
                cookies.push_str(&format!("; convene_session={p}"));
            }
            srv.send(
                plain
                    .post(srv.url("/login"))
                    .header("Cookie", cookies)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("user", user),
                        ("password", &format!("{user}-password")),
                        ("csrf", &csrf),
                        ("next", "/account"),
                    ])),
            )
            .await
        }
    };
    let r = sign_in_as("bob", None).await;
    r.expect(303);
    let attackers = session_cookie(&r).expect("bob's session");
    // The victim signs in with the attacker's token planted.
    let r = sign_in_as("alice", Some(attackers.clone())).await;
    r.expect(303);
    let victims = session_cookie(&r).expect("a new session for alice");
    assert_ne!(victims, attackers, "the planted token was kept");
    let whose = |token: String| {
        let srv = &srv;
        let plain = &plain;
        async move {
            srv.send(
                plain
                    .get(srv.url("/account"))
                    .header("Cookie", format!("convene_session={token}")),
            )
            .await
            .text()
        }
    };
    let page = whose(attackers).await;
    assert!(page.contains("bob") && !page.contains("alice"), "{page}");
    assert!(whose(victims).await.contains("alice"));
}
