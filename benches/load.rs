//! Load benchmark (not a test): generates a seeded calendar of N events, loads it through HTTP
//! and measures what clients do all day, reporting latency, throughput and the *server's* CPU
//! time per request (from /proc, so a slow load client cannot flatter the numbers), plus peak
//! RSS.
//!
//! Run: `cargo bench --bench load -- [--events N] [--url URL --user U --password P]`.
//! Without `--url` it starts its own Convene (release build, fresh SQLite store). With `--url`
//! it runs the same workload against another CalDAV server (for example Radicale or Xandikos
//! from PyPI) at that calendar-home URL; pass `--pid PID` to also get that server's CPU time.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;

struct Target {
    client: reqwest::Client,
    base: String,
    home: String,
    user: String,
    password: String,
    pid: Option<u32>,
}

impl Target {
    fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{}", self.base, path),
            )
            .basic_auth(&self.user, Some(&self.password))
    }
}

/// utime + stime of a process, in seconds (Linux /proc).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Phase {
    name: String,
    requests: usize,
    wall: Duration,
    lat_ms: Vec<f64>,
    cpu: Option<f64>,
    /// The server's peak RSS so far, read as the phase ends.
    peak_kib: Option<u64>,
}

impl Phase {
    fn print(&mut self) {
        self.lat_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let rps = self.requests as f64 / self.wall.as_secs_f64().max(1e-9);
        let cpu = self
            .cpu
            .map(|c| format!("{:.3} ms CPU/req", c * 1000.0 / self.requests.max(1) as f64))
            .unwrap_or_else(|| "cpu n/a".into());
        println!(
            "{:<34} {:>6} req  {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  {}  {}",
            self.name,
            self.requests,
            rps,
            percentile(&self.lat_ms, 0.5),
            percentile(&self.lat_ms, 0.99),
            cpu,
            self.peak_kib
                .map(|k| format!("peak RSS {:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_default()
        );
    }
}

/// A small seeded PRNG (xorshift) so runs are repeatable without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

/// 15% recurring, 40% with a TZID, spread over two years from 2026-01-01.
fn event(rng: &mut Rng, k: usize) -> String {
    let day = rng.below(730) as i64;
    let hour = 7 + rng.below(11) as i64;
    let start = 1_767_225_600 + day * 86_400 + hour * 3600;
    let len = [1800, 3600, 5400, 7200][rng.below(4) as usize];
    let civil = |t: i64| {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    };
    let zoned = rng.below(100) < 40;
    let recurring = rng.below(100) < 15;
    let (tz, dtstart, dtend) = if zoned {
        (
            BERLIN,
            format!("DTSTART;TZID=Europe/Berlin:{}", civil(start)),
            format!("DTEND;TZID=Europe/Berlin:{}", civil(start + len)),
        )
    } else {
        (
            "",
            format!("DTSTART:{}Z", civil(start)),
            format!("DTEND:{}Z", civil(start + len)),
        )
    };
    let rrule = if recurring {
        [
            "RRULE:FREQ=WEEKLY\r\n",
            "RRULE:FREQ=DAILY;COUNT=30\r\n",
            "RRULE:FREQ=MONTHLY;BYDAY=2TU\r\n",
        ][rng.below(3) as usize]
    } else {
        ""
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene bench//EN\r\n{tz}BEGIN:VEVENT\r\nUID:bench-{k}@convene.test\r\nDTSTAMP:20260101T000000Z\r\n{dtstart}\r\n{dtend}\r\n{rrule}SUMMARY:Meeting {k} about topic {}\r\nDESCRIPTION:Agenda item {} with a few words of description\r\nLOCATION:Room {}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        rng.below(1000),
        rng.below(1000),
        rng.below(50)
    )
}

/// One request: method, path, body, headers.
type Job = (String, String, Option<String>, Vec<(&'static str, String)>);

async fn timed(t: &Arc<Target>, name: &str, concurrency: usize, jobs: Vec<Job>) -> Phase {
    let cpu0 = cpu_seconds(t.pid);
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(jobs.into_iter().collect::<Vec<_>>()));
    let n = queue.lock().unwrap().len();
    let mut handles = vec![];
    for _ in 0..concurrency {
        let t = t.clone();
        let q = queue.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut failed = 0usize;
            loop {
                let job = q.lock().unwrap().pop();
                let Some((method, path, body, headers)) = job else {
                    break;
                };
                let mut rb = t.req(&method, &path);
                for (k, v) in headers {
                    rb = rb.header(k, v);
                }
                if let Some(b) = body {
                    rb = rb.body(b);
                }
                let s = Instant::now();
                // A failed request is counted, not fatal: a slower peer may time out under
                // the 50-client workload, and that is part of its result.
                match rb.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(s.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(r) => {
                        eprintln!("{method} {path}: {}", r.status());
                        failed += 1;
                    }
                    Err(e) => {
                        eprintln!("{method} {path}: {e}");
                        failed += 1;
                    }
                }
            }
            (lat, failed)
        }));
    }
    let mut lat_ms = vec![];
    let mut failed = 0;
    for h in handles {
        let (l, f) = h.await.unwrap();
        lat_ms.extend(l);
        failed += f;
    }
    let wall = started.elapsed();
    let cpu = match (cpu0, cpu_seconds(t.pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Phase {
        name: if failed > 0 {
            format!("{name} ({failed} failed)")
        } else {
            name.to_string()
        },
        requests: n,
        wall,
        lat_ms,
        cpu,
        peak_kib: peak_rss_kib(t.pid),
    }
}

fn xml() -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/xml".into()),
        ("Depth", "1".into()),
    ]
}

fn query(start: &str, end: &str) -> String {
    format!(
        r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let events: usize = arg("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // Requests in the mixed phase (a slow peer gets fewer, so a comparison ends).
    let mixed_requests: usize = arg("--mixed").and_then(|v| v.parse().ok()).unwrap_or(5000);
    // Multiplies the sample count of the read phases: more samples, steadier CPU per request.
    let scale: usize = arg("--scale")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 100);
    let mut own: Option<OwnServer> = None;
    let target = match arg("--url") {
        Some(url) => {
            let (base, home) = match url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
            {
                Some(i) => (url[..i].to_string(), url[i..].to_string()),
                None => (url.clone(), "/".to_string()),
            };
            Target {
                client: reqwest::Client::new(),
                base,
                home: if home.ends_with('/') {
                    home
                } else {
                    format!("{home}/")
                },
                user: arg("--user").unwrap_or_default(),
                password: arg("--password").unwrap_or_default(),
                pid: arg("--pid").and_then(|p| p.parse().ok()),
            }
        }
        None => {
            let bin = env!("CARGO_BIN_EXE_convene");
            let dir = tempfile::tempdir().unwrap();
            let mut add = Command::new(bin)
                .args([
                    "--data-dir",
                    dir.path().to_str().unwrap(),
                    "user",
                    "add",
                    "bench",
                    "--password-stdin",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            add.stdin
                .take()
                .unwrap()
                .write_all(b"bench-password")
                .unwrap();
            assert!(add.wait().unwrap().success());
            let port = 20000 + (std::process::id() % 10000) as u16;
            let child = Command::new(bin)
                .args([
                    "--data-dir",
                    dir.path().to_str().unwrap(),
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ])
                .env("CONVENE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let pid = child.id();
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            own = Some(OwnServer { child, _dir: dir });
            Target {
                client: reqwest::Client::new(),
                base: format!("http://127.0.0.1:{port}"),
                home: "/dav/calendars/bench/".into(),
                user: "bench".into(),
                password: "bench-password".into(),
                pid: Some(pid),
            }
        }
    };
    let t = Arc::new(target);
    let cal = format!("{}bench-{}/", t.home, std::process::id());
    let r = t.req("MKCALENDAR", &cal).send().await.expect("MKCALENDAR");
    assert!(r.status().is_success(), "MKCALENDAR {}", r.status());
    println!("target {} ({} events)", t.base, events);

    let mut rng = Rng(0x5eed_2026_1127);
    let bodies: Vec<String> = (0..events).map(|k| event(&mut rng, k)).collect();
    let put_jobs = |range: std::ops::Range<usize>| {
        range
            .map(|k| {
                (
                    "PUT".to_string(),
                    format!("{cal}e{k}.ics"),
                    Some(bodies[k].clone()),
                    vec![("Content-Type", "text/calendar".to_string())],
                )
            })
            .collect::<Vec<_>>()
    };
    let c1 = events.min(1000);
    timed(&t, "PUT c=1", 1, put_jobs(0..c1)).await.print();
    timed(&t, "PUT c=8", 8, put_jobs(c1..events)).await.print();

    let pf = r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getcontenttype/></D:prop></D:propfind>"#;
    timed(
        &t,
        "PROPFIND Depth 1",
        1,
        (0..10)
            .map(|_| ("PROPFIND".into(), cal.clone(), Some(pf.into()), xml()))
            .collect(),
    )
    .await
    .print();
    let pf0 = r#"<D:propfind xmlns:D="DAV:"><D:prop><CS:getctag xmlns:CS="http://calendarserver.org/ns/"/><D:sync-token/></D:prop></D:propfind>"#;
    let depth0 = vec![
        ("Depth", "0".to_string()),
        ("Content-Type", "application/xml".to_string()),
    ];
    timed(
        &t,
        "PROPFIND Depth 0 (ctag poll)",
        1,
        (0..100 * scale)
            .map(|_| {
                (
                    "PROPFIND".into(),
                    cal.clone(),
                    Some(pf0.into()),
                    depth0.clone(),
                )
            })
            .collect(),
    )
    .await
    .print();
    timed(
        &t,
        "GET",
        1,
        (0..100 * scale)
            .map(|i| {
                (
                    "GET".into(),
                    format!("{cal}e{}.ics", i % events),
                    None,
                    vec![],
                )
            })
            .collect(),
    )
    .await
    .print();
    let weeks: Vec<_> = (0..50 * scale)
        .map(|w| {
            let d = 2 + (w % 4) * 7;
            (
                "REPORT".to_string(),
                cal.clone(),
                Some(query(
                    &format!("202603{d:02}T000000Z"),
                    &format!("202603{:02}T000000Z", d + 7),
                )),
                xml(),
            )
        })
        .collect();
    timed(&t, "calendar-query week", 1, weeks).await.print();
    let months: Vec<_> = (0..20 * scale)
        .map(|m| {
            let mo = 1 + m % 12;
            (
                "REPORT".to_string(),
                cal.clone(),
                Some(query(
                    &format!("2026{mo:02}01T000000Z"),
                    &format!("2026{mo:02}28T000000Z"),
                )),
                xml(),
            )
        })
        .collect();
    timed(&t, "calendar-query month", 1, months).await.print();
    let mg = {
        let mut s = String::from(
            r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>"#,
        );
        for k in 0..100.min(events) {
            s.push_str(&format!("<D:href>{cal}e{k}.ics</D:href>"));
        }
        s + "</C:calendar-multiget>"
    };
    timed(
        &t,
        "multiget 100",
        1,
        (0..20 * scale)
            .map(|_| ("REPORT".into(), cal.clone(), Some(mg.clone()), xml()))
            .collect(),
    )
    .await
    .print();

    // Sync after 10 changes: take a token, change 10 objects, sync from the token.
    let token_req = r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#;
    let resp = t
        .req("REPORT", &cal)
        .header("Content-Type", "application/xml")
        .body(token_req)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = resp
        .split("<D:sync-token>")
        .nth(1)
        .and_then(|s| s.split("</D:sync-token>").next())
        .unwrap_or("")
        .to_string();
    timed(&t, "PUT 10 changes", 1, put_jobs(0..10.min(events)))
        .await
        .print();
    let sync_body = format!(
        r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
    );
    timed(
        &t,
        "sync after 10 changes",
        1,
        (0..50 * scale)
            .map(|_| ("REPORT".into(), cal.clone(), Some(sync_body.clone()), xml()))
            .collect(),
    )
    .await
    .print();

    // Mixed workload, 50 clients: polling PROPFIND Depth 0, week queries, GETs, PUTs, multigets.
    let mut mixed = vec![];
    let mut r2 = Rng(42);
    for i in 0..mixed_requests {
        let k = r2.below(events as u64) as usize;
        let job = match i % 10 {
            0..=3 => (
                "PROPFIND".to_string(),
                cal.clone(),
                Some(pf0.to_string()),
                depth0.clone(),
            ),
            4..=5 => ("GET".to_string(), format!("{cal}e{k}.ics"), None, vec![]),
            6..=7 => (
                "REPORT".to_string(),
                cal.clone(),
                Some(query("20260309T000000Z", "20260316T000000Z")),
                xml(),
            ),
            8 => (
                "PUT".to_string(),
                format!("{cal}e{k}.ics"),
                Some(bodies[k].clone()),
                vec![("Content-Type", "text/calendar".to_string())],
            ),
            _ => ("REPORT".to_string(), cal.clone(), Some(mg.clone()), xml()),
        };
        mixed.push(job);
    }
    let mut p = timed(&t, "mixed, 50 clients", 50, mixed).await;
    p.print();
    if let Some(cpu) = p.cpu {
        println!(
            "mixed workload server CPU: {:.3} s per 1,000 requests",
            cpu * 1000.0 / p.requests as f64
        );
    }
    if let Some(kib) = peak_rss_kib(t.pid) {
        println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    drop(own);
}

/// The server this benchmark started; stopped however the run ends.
struct OwnServer {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
