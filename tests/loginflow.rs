//! Nextcloud Login Flow v2 as DAVx5 drives it, through real HTTP on both backends: start,
//! poll (nothing yet), the sign-in-and-grant page (CSRF, wrong password, success), poll (the
//! app password, once), and the password working for CalDAV at the Nextcloud DAV path.

mod common;

use common::{TestServer, form};

async fn post_form(srv: &TestServer, url: &str, body: String) -> common::Resp {
    srv.send(
        srv.client
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

async fn login_flow(srv: TestServer) {
    let r = srv
        .send(
            srv.client
                .post(srv.url("/index.php/login/v2"))
                .header("User-Agent", "DAVx5/4.4.3-ose (Android 14)"),
        )
        .await;
    r.expect(200);
    let start: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let token = start["poll"]["token"].as_str().expect("token").to_string();
    let endpoint = start["poll"]["endpoint"]
        .as_str()
        .expect("endpoint")
        .to_string();
    let login = start["login"].as_str().expect("login url").to_string();
    assert_eq!(endpoint, srv.url("/index.php/login/v2/poll"));
    assert!(login.starts_with(&srv.url("/login/v2/flow/")));

    // Nothing to collect before the person grants access.
    post_form(&srv, &endpoint, form(&[("token", &token)]))
        .await
        .expect(404);

    // The page: a form with a CSRF token, naming the client; framing forbidden.
    let r = srv.send(srv.client.get(&login)).await;
    r.expect(200);
    assert!(
        r.header("content-security-policy")
            .unwrap_or_default()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let html = r.text();
    assert!(html.contains("DAVx5/4.4.3-ose"), "{html}");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf token")
        .to_string();
    // A forged form, then a wrong password, are refused.
    post_form(
        &srv,
        &login,
        form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", "forged"),
        ]),
    )
    .await
    .expect(403);
    let r = post_form(
        &srv,
        &login,
        form(&[("user", "alice"), ("password", "nope"), ("csrf", &csrf)]),
    )
    .await;
    r.expect(401);
    assert!(r.text().contains("Wrong user name or password"));
    post_form(&srv, &endpoint, form(&[("token", &token)]))
        .await
        .expect(404);
    // The right one grants access.
    let r = post_form(
        &srv,
        &login,
        form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", &csrf),
        ]),
    )
    .await;
    r.expect(200);
    assert!(r.text().contains("Access granted"));

    // The poll hands over the app password once; a wrong token gets nothing.
    post_form(&srv, &endpoint, form(&[("token", "not-the-token")]))
        .await
        .expect(404);
    let r = post_form(&srv, &endpoint, form(&[("token", &token)])).await;
    r.expect(200);
    let got: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(got["server"], srv.url(""));
    assert_eq!(got["loginName"], "alice");
    let app_password = got["appPassword"].as_str().expect("password").to_string();
    assert!(app_password.starts_with("cvp_"));
    post_form(&srv, &endpoint, form(&[("token", &token)]))
        .await
        .expect(404);
    srv.send(srv.client.get(&login)).await.expect(404);

    // DAVx5 then looks at the Nextcloud DAV path, which leads to /dav/ (308: the PROPFIND is
    // repeated there with its body), and the password works.
    let r = srv
        .send(srv.req_as("alice", &app_password, "PROPFIND", "/remote.php/dav/"))
        .await;
    assert_eq!(r.status.as_u16(), 308);
    assert_eq!(r.header("location").as_deref(), Some("/dav/"));
    srv.send(
        srv.req_as("alice", &app_password, "PROPFIND", "/dav/calendars/alice/")
            .header("Depth", "0"),
    )
    .await
    .expect(207);
    // It is an ordinary app password: listed, and CalDAV-only.
    let list = srv.send(srv.req("GET", "/api/app-passwords")).await;
    assert!(list.text().contains("login flow"), "{}", list.text());
}
both_backends!(nextcloud_login_flow_v2, login_flow);
