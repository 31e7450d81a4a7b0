//! Sharing benchmark (not a test, issue 6): one event shared with a department of N people
//! (default 500). Reports the owner's PUT latency (the fan-out must not be in it), the time
//! until the last recipient's copy exists, the same for an edit, and the server CPU the
//! fan-out cost.
//!
//! Run: `cargo bench --bench share -- [--recipients N]`. It starts its own Convene (release
//! build, fresh SQLite store). The recipients are made directly in the store (they never log
//! in; only their department membership matters), the owner through the CLI.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convene::store::{NewUser, OrgStore, ResourceReader, Store, UserId, UserStore};

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn event(summary: &str, start: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//convene bench//EN\r\nBEGIN:VEVENT\r\nUID:dept-share\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\nATTENDEE;CUTYPE=GROUP;ROLE=NON-PARTICIPANT;RSVP=FALSE:/dav/departments/Bench/\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Whether `user`'s copy of the owner's entry holds `needle`.
async fn has_copy(store: &Store, user: UserId, needle: &str) -> bool {
    let Some(mount) = store
        .lookup_path(user, &["from~owner".to_string()])
        .await
        .ok()
        .and_then(|c| c.get(1).cloned())
    else {
        return false;
    };
    let kids = store.children(mount.id).await.unwrap_or_default();
    let ids: Vec<_> = kids.iter().map(|k| k.id).collect();
    store
        .object_datas(&ids)
        .await
        .unwrap_or_default()
        .iter()
        .any(|(_, d)| String::from_utf8_lossy(d).contains(needle))
}

/// Wait until every recipient's copy holds `needle`; the time it took. Bounded at 120 s.
/// The worker writes copies in account order, so only the last recipient is polled (a
/// poller reading all 500 would compete with the server for the 2 cores); then all are
/// checked once.
async fn until_all(
    store: &Store,
    recipients: &[UserId],
    needle: &str,
    since: Instant,
) -> Option<Duration> {
    let last = *recipients.last()?;
    for _ in 0..12_000 {
        if has_copy(store, last, needle).await {
            let took = since.elapsed();
            for u in recipients {
                if !has_copy(store, *u, needle).await {
                    return None;
                }
            }
            return Some(took);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--recipients")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let bin = env!("CARGO_BIN_EXE_convene");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path").to_string();
    let mut add = Command::new(bin)
        .args([
            "--data-dir",
            &data,
            "user",
            "add",
            "owner",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("convene user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"owner-password")
        .expect("password");
    assert!(add.wait().expect("user add").success());
    let url = format!("sqlite://{}/convene.db", data);
    let store = Store::open(&url).await.expect("store");
    let mut recipients = Vec::with_capacity(n);
    // The department is Convene's own org chart's (no LDAP here): the server copies its
    // memberships onto the accounts when it starts, as it does after every edit.
    store
        .put_department(&convene::store::OrgDepartment {
            name: "Bench".into(),
            parent: None,
            description: None,
            head: None,
        })
        .await
        .expect("department");
    for k in 0..n {
        let u = store
            .create_user(NewUser {
                name: format!("member{k:04}"),
                email: Some(format!("member{k:04}@example.org")),
                display_name: None,
                password_hash: None,
            })
            .await
            .expect("create user");
        store
            .put_person(
                u.id,
                &convene::store::OrgPerson {
                    department: Some("Bench".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("membership");
        recipients.push(u.id);
    }
    let port = 21000 + (std::process::id() % 9000) as u16;
    let mut child = Command::new(bin)
        .args([
            "--data-dir",
            &data,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("CONVENE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let pid = child.id();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let client = reqwest::Client::new();
    let put = |body: String| {
        client
            .put(format!(
                "http://127.0.0.1:{port}/dav/calendars/owner/calendar/dept.ics"
            ))
            .basic_auth("owner", Some("owner-password"))
            .header("Content-Type", "text/calendar")
            .body(body)
            .send()
    };
    // Warm up (the owner's home, the password check), then an unshared PUT as the baseline.
    let plain_put = |name: &str| {
        client
            .put(format!("http://127.0.0.1:{port}/dav/calendars/owner/calendar/{name}.ics"))
            .basic_auth("owner", Some("owner-password"))
            .header("Content-Type", "text/calendar")
            .body(
                event("Plain", "20300101T090000Z")
                    .replace("UID:dept-share", &format!("UID:{name}"))
                    .replace(
                        "ATTENDEE;CUTYPE=GROUP;ROLE=NON-PARTICIPANT;RSVP=FALSE:/dav/departments/Bench/\r\n",
                        "",
                    ),
            )
            .send()
    };
    let r = plain_put("warm").await.expect("PUT");
    assert!(r.status().is_success(), "plain PUT {}", r.status());
    let t0 = Instant::now();
    let r = plain_put("plain").await.expect("PUT");
    assert!(r.status().is_success(), "plain PUT {}", r.status());
    let plain = t0.elapsed();

    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let t1 = Instant::now();
    let r = put(event("All hands", "20300105T100000Z"))
        .await
        .expect("PUT");
    let put_first = t1.elapsed();
    assert!(r.status().is_success(), "shared PUT {}", r.status());
    let first = until_all(&store, &recipients, "All hands", t1).await;
    let cpu1 = cpu_seconds(pid).unwrap_or(0.0);

    let t2 = Instant::now();
    let r = put(event("All hands (moved)", "20300106T100000Z"))
        .await
        .expect("PUT");
    let put_edit = t2.elapsed();
    assert!(r.status().is_success(), "edit PUT {}", r.status());
    let edit = until_all(&store, &recipients, "All hands (moved)", t2).await;
    let cpu2 = cpu_seconds(pid).unwrap_or(0.0);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let or_never = |d: Option<Duration>| match d {
        Some(d) => format!("{:.1} ms", ms(d)),
        None => "not within 120 s".to_string(),
    };
    let table = format!(
        "department share, {n} recipients (release build, SQLite)\n\
         \x20 owner PUT, nothing shared      {:8.2} ms\n\
         \x20 owner PUT, shared (first)      {:8.2} ms\n\
         \x20 last copy visible after        {}\n\
         \x20 owner PUT, edit                {:8.2} ms\n\
         \x20 last copy updated after        {}\n\
         \x20 server CPU: {:.3} s for the first fan-out ({:.2} ms a copy), {:.3} s for the edit",
        ms(plain),
        ms(put_first),
        or_never(first),
        ms(put_edit),
        or_never(edit),
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1000.0 / n.max(1) as f64,
        cpu2 - cpu1
    );
    println!("{table}");
    // Standard error too, so a CI log that keeps only the summary line keeps the table.
    eprintln!("{table}");
    println!(
        "bench-share: {} ({n} recipients: owner PUT {:.2} ms, last copy after {}, edit reached all after {})",
        if first.is_some() && edit.is_some() {
            "ok"
        } else {
            "FAILED"
        },
        ms(put_first),
        or_never(first),
        or_never(edit)
    );
    let _ = std::io::stdout().flush();
    let _ = child.kill();
    let _ = child.wait();
    store.close().await;
    if first.is_none() || edit.is_none() {
        std::process::exit(1);
    }
}
