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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_lists_what_each_person_may_use() {
    let mut srv = TestServer::start(common::Backend::Sqlite).await;
    srv.add_users(&["carol"]);
    srv.cli_ok(&["org", "group-add", "eng"], "");
    srv.cli_ok(&["org", "member-add", "eng", "bob"], "");
    srv.restart_with_config(SYSTEMS).await;

    let list = |who: &'static str| {
        let srv = &srv;
        async move {
            let r = srv
                .send_as(who, "GET", "/api/bridge/systems", "", &[])
                .await;
            r.expect(200);
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")
        }
    };
    let bob = list("bob").await;
    assert_eq!(names(&bob), vec!["tasks", "ci"], "{bob}");
    assert_eq!(bob[1]["login"], "form");
    assert_eq!(bob[1]["icon"], "https://ci.example.org/logo.png");
    assert_eq!(names(&list("carol").await), vec!["tasks"]);
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
