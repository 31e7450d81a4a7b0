//! OpenID Connect sign-in against a real provider: panva's `oidc-provider` (npm, OpenID
//! Certified), started per test on loopback by `conformance/oidc.sh` with a real login form
//! that the test fills in with a cookie jar. Covers the whole code flow with PKCE (the
//! provider requires it), provisioning from claims, a wrong state, a wrong `iss`, a replayed
//! code, ID tokens with a bad signature or audience from a second, hostile provider instance,
//! refresh (and a refused refresh ending the session), an account takeover attempt through the
//! username claim, RP-initiated logout, and no secret in the server's log.

mod common;

use std::process::Command;

use common::{Backend, TestServer, form, input_value};

struct Provider {
    dir: tempfile::TempDir,
    issuer: String,
}

impl Provider {
    /// A provider whose client `convene` redirects to `srv`'s callback.
    fn start(srv_port: u16, env: &[(&str, &str)]) -> Provider {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = common::free_port();
            let out = Command::new("bash")
                .args(["conformance/oidc.sh", "start"])
                .arg(dir.path())
                .arg(port.to_string())
                .env(
                    "OIDC_REDIRECT_URIS",
                    format!("http://127.0.0.1:{srv_port}/auth/callback"),
                )
                .env(
                    "OIDC_POST_LOGOUT_URIS",
                    format!("http://127.0.0.1:{srv_port}/login"),
                )
                .envs(env.iter().copied())
                .output()
                .expect("run conformance/oidc.sh");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if let Some(issuer) = text.lines().find_map(|l| l.strip_prefix("OIDC_ISSUER=")) {
                return Provider {
                    issuer: issuer.to_string(),
                    dir,
                };
            }
            eprintln!(
                "provider start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("the OpenID provider did not start (conformance/oidc.sh; needs Node.js and npm)");
    }

    fn stop(&self) {
        let _ = Command::new("bash")
            .args(["conformance/oidc.sh", "stop"])
            .arg(self.dir.path())
            .status();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn oidc_config(srv: &TestServer, p: &Provider) -> String {
    format!(
        "[oidc]\nissuer = \"{}\"\nclient_id = \"convene\"\nclient_secret = \"convene-secret\"\nredirect_url = \"http://127.0.0.1:{port}/auth/callback\"\npost_logout_redirect_url = \"http://127.0.0.1:{port}/login\"\n",
        p.issuer,
        port = srv.port()
    )
}

/// A server on a fixed port with a provider that redirects to it.
async fn setup(backend: Backend, env: &[(&str, &str)]) -> (TestServer, Provider) {
    let mut srv = TestServer::start(backend).await;
    srv.fixed_port = Some(srv.port());
    srv.log_filter = "debug,tower_http=debug,sqlx=warn,hyper=info,reqwest=info".into();
    let p = Provider::start(srv.port(), env);
    srv.restart_with_config(&oidc_config(&srv, &p)).await;
    (srv, p)
}

fn location(r: &common::Resp) -> String {
    r.header("location").expect("a redirect")
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    }
}

/// Through the provider's login form, up to (not including) the callback: returns the
/// callback URL the provider sent the browser to, and the pending sign-in cookie.
async fn to_callback_with_cookie(
    srv: &TestServer,
    p: &Provider,
    c: &reqwest::Client,
    user: &str,
) -> (String, String) {
    let r = srv
        .send(c.get(srv.url("/auth/oidc/start?next=/account")))
        .await;
    r.expect(303);
    let pending = r
        .headers_all("set-cookie")
        .iter()
        .find_map(|c| c.strip_prefix("convene_oidc="))
        .and_then(|c| c.split(';').next())
        .expect("pending cookie")
        .to_string();
    let auth = location(&r);
    assert!(auth.starts_with(&format!("{}/auth?", p.issuer)), "{auth}");
    assert!(
        auth.contains("code_challenge_method=S256")
            && auth.contains("nonce=")
            && auth.contains("state="),
        "{auth}"
    );
    let mut url = auth;
    for _ in 0..6 {
        let r = srv.send(c.get(&url)).await;
        if r.status == 200 {
            // The login form.
            let html = r.text();
            let action = html
                .split("action=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("login form")
                .to_string();
            let r = srv
                .send(
                    c.post(absolute(&p.issuer, &action))
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(form(&[
                            ("username", user),
                            ("password", &format!("{user}-pass")),
                        ])),
                )
                .await;
            assert_eq!(r.status, 303, "{}", r.text());
            url = absolute(&p.issuer, &location(&r));
            continue;
        }
        assert_eq!(r.status, 303, "{url}: {}", r.text());
        let next = absolute(&p.issuer, &location(&r));
        if next.starts_with(&srv.url("/auth/callback")) {
            return (next, pending);
        }
        url = next;
    }
    panic!("the provider never redirected back");
}

async fn to_callback(srv: &TestServer, p: &Provider, c: &reqwest::Client, user: &str) -> String {
    to_callback_with_cookie(srv, p, c, user).await.0
}

fn with_param(url: &str, key: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').expect("query");
    let q: Vec<String> = query
        .split('&')
        .map(|kv| {
            if kv.starts_with(&format!("{key}=")) {
                format!("{key}={value}")
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{base}?{}", q.join("&"))
}

async fn code_flow(backend: Backend) {
    let (srv, p) = setup(backend, &[]).await;
    let c = TestServer::browser();

    // Sign in as olivia, who has no account yet: provisioned from the claims.
    let cb = to_callback(&srv, &p, &c, "olivia").await;
    assert!(cb.contains("iss="), "RFC 9207 iss in the response: {cb}");
    let code = cb
        .split("code=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("code")
        .to_string();
    let r = srv.send(c.get(&cb)).await;
    r.expect(303);
    assert_eq!(location(&r), "/account");
    let session_cookie = r
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("convene_session="))
        .expect("session cookie");
    let token = session_cookie
        .split(';')
        .next()
        .and_then(|s| s.split('=').nth(1))
        .expect("token")
        .to_string();
    let r = srv.send(c.get(srv.url("/account"))).await;
    r.expect(200);
    let html = r.text();
    assert!(
        html.contains("<strong id=\"user\">olivia</strong> (Olivia Olsen)"),
        "{html}"
    );
    assert!(
        html.contains("<span id=\"groups\">sales, staff</span>"),
        "{html}"
    );
    let users = srv.cli_ok(&["user", "list"], "");
    assert!(
        users.contains("olivia\tolivia@example.org\tOlivia Olsen"),
        "{users}"
    );

    // The callback works once: the same URL again finds no sign-in in progress.
    srv.send(c.get(&cb)).await.expect(400);

    // A wrong state, or another issuer named in the response, are refused and sign no one in.
    for (key, value) in [("state", "forged"), ("iss", "http%3A%2F%2F127.0.0.1%3A1")] {
        let fresh = TestServer::browser();
        let cb = to_callback(&srv, &p, &fresh, "olivia").await;
        let r = srv.send(fresh.get(with_param(&cb, key, value))).await;
        r.expect(401);
        assert!(
            r.headers_all("set-cookie")
                .iter()
                .all(|c| !c.starts_with("convene_session=") || c.contains("Max-Age=0"))
        );
        srv.send(fresh.get(srv.url("/account"))).await.expect(303);
    }

    // A replayed code: a second browser that stole the pending cookie and the callback URL
    // gets nothing, because the provider takes a code only once.
    let thief = TestServer::browser();
    let (cb, pending) = to_callback_with_cookie(&srv, &p, &thief, "olivia").await;
    srv.send(thief.get(&cb)).await.expect(303);
    let replay = srv
        .send(
            srv.client
                .get(&cb)
                .header("Cookie", format!("convene_oidc={pending}")),
        )
        .await;
    replay.expect(401);
    assert!(
        replay.text().contains("refused the authorization code"),
        "{}",
        replay.text()
    );

    // An account that exists with a password is not taken over by a provider account that
    // claims its name.
    let m = TestServer::browser();
    let cb = to_callback(&srv, &p, &m, "mallory").await;
    let r = srv.send(m.get(&cb)).await;
    r.expect(403);
    srv.send(m.get(srv.url("/account"))).await.expect(303);
    assert_eq!(
        srv.send(
            srv.req("PROPFIND", "/dav/calendars/alice/")
                .header("Depth", "0")
        )
        .await
        .status,
        207
    );

    // RP-initiated logout: the session ends here, and the browser goes to the provider with
    // the ID token as a hint; after confirming there, a new sign-in needs the password again.
    let csrf =
        input_value(&srv.send(c.get(srv.url("/account"))).await.text(), "csrf").expect("csrf");
    let r = srv
        .send(
            c.post(srv.url("/logout"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[("csrf", &csrf)])),
        )
        .await;
    r.expect(303);
    let end = location(&r);
    assert!(
        end.starts_with(&format!("{}/session/end?", p.issuer)) && end.contains("id_token_hint="),
        "{end}"
    );
    srv.send(c.get(srv.url("/account"))).await.expect(303);
    let confirm = srv.send(c.get(&end)).await;
    confirm.expect(200);
    let html = confirm.text();
    let xsrf = input_value(&html, "xsrf").expect("provider's logout form");
    let action = html
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("action")
        .to_string();
    let r = srv
        .send(
            c.post(absolute(&p.issuer, &action))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[("xsrf", &xsrf), ("logout", "yes")])),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let mut url = absolute(&p.issuer, &location(&r));
    for _ in 0..3 {
        if url.starts_with(&srv.url("/login")) {
            break;
        }
        let r = srv.send(c.get(&url)).await;
        url = absolute(&p.issuer, &location(&r));
    }
    assert!(
        url.starts_with(&srv.url("/login")),
        "back at the sign-in page: {url}"
    );
    let r = srv.send(c.get(srv.url("/auth/oidc/start"))).await;
    let r = srv.send(c.get(location(&r))).await;
    r.expect(303);
    assert!(
        location(&r).starts_with("/interaction/"),
        "the provider asks for the password again"
    );

    // Nothing secret reached the log: the code, the session token, the client secret, the
    // provider password, ID or refresh tokens.
    let log = srv.log_text();
    assert!(log.contains("web session started"), "the log was captured");
    for secret in [
        code.as_str(),
        token.as_str(),
        "convene-secret",
        "olivia-pass",
        "eyJ",
    ] {
        assert!(!log.contains(secret), "{secret} appears in the server log");
    }
    drop(p);
}

#[tokio::test]
async fn oidc_code_flow_sqlite() {
    code_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn oidc_code_flow_postgres() {
    code_flow(Backend::Postgres).await;
}

/// A hostile provider instance: its ID tokens are signed with a key it does not publish, or
/// are for another client. Both are refused and nobody is signed in.
#[tokio::test]
async fn oidc_bad_id_tokens_refused() {
    for (tamper, expect) in [("signature", "signature"), ("audience", "audience")] {
        let (srv, p) = setup(Backend::Sqlite, &[("OIDC_TAMPER", tamper)]).await;
        let c = TestServer::browser();
        let cb = to_callback(&srv, &p, &c, "olivia").await;
        let r = srv.send(c.get(&cb)).await;
        r.expect(401);
        let html = r.text().to_lowercase();
        assert!(
            html.contains("id token is not valid") && html.contains(expect),
            "{tamper}: {html}"
        );
        srv.send(c.get(srv.url("/account"))).await.expect(303);
        assert!(!srv.cli_ok(&["user", "list"], "").contains("olivia"));
    }
}

/// With a short access-token lifetime the server re-confirms the person with a refresh; when
/// the provider can no longer be asked, the session ends.
#[tokio::test]
async fn oidc_refresh() {
    let (srv, p) = setup(Backend::Sqlite, &[("OIDC_ACCESS_TOKEN_TTL", "1")]).await;
    let c = TestServer::browser();
    let cb = to_callback(&srv, &p, &c, "carol").await;
    srv.send(c.get(&cb)).await.expect(303);
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        srv.send(c.get(srv.url("/account"))).await.expect(200);
    }
    assert!(
        srv.log_text()
            .contains("session refreshed with the provider")
    );
    p.stop();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = srv.send(c.get(srv.url("/account"))).await;
    r.expect(303);
    assert_eq!(location(&r), "/login?next=/account");
}
