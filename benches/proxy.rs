//! Login-proxy benchmark (not a test): what Convene's proxy adds to a request, beside direct
//! access to the same app and beside nginx as a plain reverse proxy on the same machine.
//!
//! The app is Debian nginx with `auth_basic` serving a 10 KB page and a 1 MB file. Three
//! ways in, each with the same HTTP client:
//! - direct, with the person's Basic credential;
//! - nginx as a reverse proxy that adds the credential (`proxy_set_header Authorization`);
//! - Convene's login proxy on the system's host, signed in by the hand-off, the credential
//!   from the vault.
//!
//! For each way and body, three phases: 1 user; 50 users back to back (each asks again as
//! soon as an answer is read: the machine runs flat out, its two cores shared by the load
//! generator, the app and the proxy, so the queue is most of the latency); and 50 users paced
//! at half the rate direct access carried back to back (the users spread over a fixed
//! schedule, as a busy but not saturated server sees them). For each, p50 and p99 latency
//! (whole body read), how busy the machine was, and the CPU time each proxy (nginx, Convene)
//! spent in its own turns, per request.
//!
//! The ways take turns, a tenth of the requests at a time, so that whatever else the machine
//! does falls on all of them alike, and direct access runs twice (an A/A control): a target
//! missed by less than direct differed from itself is shown as missed within the noise, apart
//! from a clear miss. Targets (issue 23), in every phase: Convene's p50 overhead within 2x of
//! nginx's, p99 at most 5 ms added; and memory bounded with 1,000 proxied connections open at
//! once (each has asked for the 1 MB file and reads nothing more).
//!
//! Run: `cargo bench --bench proxy -- [--requests N]` (release build; needs Debian nginx,
//! `conformance/debian-peers.sh install`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const USER_PW: &str = "bench-app-password";
/// Turns the three ways take at each body and concurrency.
const ROUNDS: usize = 10;
/// Requests each user makes in a turn at least.
const MIN_PER_USER: usize = 10;

fn free_port() -> u16 {
    for _ in 0..200 {
        let p = 20000 + (rand_u16() % 12000);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    (t ^ std::process::id()) as u16
}

fn wait_port(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {port}");
}

/// nginx with a private configuration in `dir`, stopped (SIGTERM to the master) on drop.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &std::path::Path, server: &str) -> Nginx {
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\ndaemon off;\n\
                 worker_rlimit_nofile 8192;\nevents {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{server}}}\n"
            ),
        )
        .expect("nginx.conf");
        let child = Command::new("nginx")
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
            .args(["-e", &format!("{d}/error.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian: conformance/debian-peers.sh install)");
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time, in ns, of the processes `pids` and their children (all their threads), from
/// the scheduler's accounting (`/proc/PID/task/TID/schedstat`).
fn cpu_ns(pids: &[u32]) -> u64 {
    let mut all: Vec<u32> = pids.to_vec();
    for p in pids {
        if let Ok(c) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            all.extend(c.split_whitespace().filter_map(|v| v.parse::<u32>().ok()));
        }
    }
    all.into_iter().map(process_cpu_ns).sum()
}

/// CPU time, in ns, of the process `pid` (all its threads, not its children).
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .unwrap_or(0)
        })
        .sum()
}

/// How the users of a phase ask.
#[derive(Clone, Copy)]
enum Shape {
    /// Each user asks again as soon as an answer is read: the machine runs flat out, and the
    /// latency is mostly the queue.
    BackToBack,
    /// Each user asks once every `period`, the users spread evenly over it (a fixed schedule,
    /// as wrk2 keeps: a request the previous one delayed is timed from when it was due, so a
    /// slow proxy cannot hide its queue by asking less).
    Paced(Duration),
}

/// The machine's busy and total CPU time so far, in clock ticks (`/proc/stat`).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The share of the machine's CPU time that was busy between two readings.
fn busy_share(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total > 0.0 { busy / total } else { 0.0 }
}

/// One request's time until its answer's head was in, and until its whole body was read.
#[derive(Clone, Copy)]
struct Timing {
    head: Duration,
    whole: Duration,
}

/// Timings of `total` GETs of `url` by `users` concurrent clients (one connection pool,
/// keep-alive), grouped by user.
async fn load(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    users: usize,
    total: usize,
    shape: Shape,
) -> Vec<Timing> {
    let per = total.div_ceil(users);
    let start = tokio::time::Instant::now();
    let mut tasks = vec![];
    for user in 0..users {
        let client = client.clone();
        let url = url.to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(per);
            for k in 0..per {
                let mut rb = client.get(&url);
                for (k, v) in &headers {
                    rb = rb.header(k, v);
                }
                let t = match shape {
                    Shape::BackToBack => Instant::now(),
                    Shape::Paced(period) => {
                        let due = start + period.mul_f64(k as f64 + user as f64 / users as f64);
                        if tokio::time::Instant::now() < due {
                            // On time: timed from when it leaves (not the timer's lateness).
                            tokio::time::sleep_until(due).await;
                            Instant::now()
                        } else {
                            // Late because the last answer was: timed from when it was due.
                            due.into_std()
                        }
                    }
                };
                let r = rb.send().await.expect("request");
                let head = t.elapsed();
                assert!(r.status().is_success(), "{url}: {}", r.status());
                let body = r.bytes().await.expect("body");
                assert!(body.len() >= 10_000);
                out.push(Timing {
                    head,
                    whole: t.elapsed(),
                });
            }
            out
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all
}

/// A measured value against its target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    /// Over the target by less than direct access differed from itself (the A/A control,
    /// overall or from turn to turn): a miss this run cannot tell from none.
    WithinNoise,
    Missed,
}

impl Verdict {
    fn of(value: f64, bound: f64, noise: f64) -> Verdict {
        if value <= bound {
            Verdict::Met
        } else if value <= bound + noise {
            Verdict::WithinNoise
        } else {
            Verdict::Missed
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::WithinNoise => "missed within noise",
            Verdict::Missed => "MISSED",
        }
    }
}

/// The standard error of the mean of the turn-by-turn differences `a - b` (each turn's value
/// picked by `f`).
fn standard_error(a: &[(f64, f64)], b: &[(f64, f64)], f: impl Fn(&(f64, f64)) -> f64) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(x) - f(y)).collect();
    if d.len() < 2 {
        return 0.0;
    }
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var / n).sqrt()
}

/// One way in: its name, base URL and the headers each request carries.
type Way = (&'static str, String, Vec<(&'static str, String)>);

fn pct(v: &[Duration], p: f64) -> f64 {
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

/// Raise this process's descriptor limit to its hard limit (1,000 held connections).
#[allow(unsafe_code)]
fn raise_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::main]
async fn main() {
    raise_descriptor_limit();
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // The paced phase's rate, as a share of what direct access carried back to back.
    let pace: f64 = args
        .iter()
        .position(|a| a == "--pace")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0 && *v <= 1.0)
        .unwrap_or(0.5);
    // Every way's percentiles from p50 to the slowest, and the same of the time until the
    // answer's head was in and of the rest of the body, on stderr.
    let verbose = args.iter().any(|a| a == "--verbose");
    let bin = env!("CARGO_BIN_EXE_convene");
    let dir = tempfile::tempdir().expect("tempdir");

    // The app: nginx auth_basic with a 10 KB page and a 1 MB file.
    let app_dir = dir.path().join("app");
    std::fs::create_dir_all(app_dir.join("www")).expect("www");
    std::fs::write(app_dir.join("www/page.html"), "x".repeat(10 * 1024)).expect("page");
    std::fs::write(app_dir.join("www/file.bin"), vec![7u8; 1024 * 1024]).expect("file");
    let hash = Command::new("openssl")
        .args(["passwd", "-apr1", USER_PW])
        .output()
        .expect("openssl");
    std::fs::write(
        app_dir.join("htpasswd"),
        format!("alice:{}", String::from_utf8_lossy(&hash.stdout)),
    )
    .expect("htpasswd");
    let app_port = free_port();
    let _app = Nginx::start(
        &app_dir,
        &format!(
            "  server {{ listen 127.0.0.1:{app_port}; keepalive_requests 100000;\n    location / {{ auth_basic \"App\"; auth_basic_user_file {}/htpasswd; root {}/www; }}\n  }}\n",
            app_dir.display(),
            app_dir.display()
        ),
    );
    wait_port(app_port);
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{USER_PW}"))
        )
    };

    // nginx as a plain reverse proxy that adds the credential.
    let ngx_dir = dir.path().join("front");
    std::fs::create_dir_all(&ngx_dir).expect("front");
    let ngx_port = free_port();
    let _front = Nginx::start(
        &ngx_dir,
        &format!(
            "  upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}\n  server {{ listen 127.0.0.1:{ngx_port}; keepalive_requests 100000;\n    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Authorization \"{basic}\"; }}\n  }}\n"
        ),
    );
    wait_port(ngx_port);

    // Convene with the app registered and its login proxy on.
    let data = dir.path().join("convene");
    let conv_port = free_port();
    let keys = dir.path().join("vault.keys");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&keys, format!("k1 {}\n", "3b".repeat(32))).expect("keys");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let config = dir.path().join("convene.toml");
    std::fs::write(
        &config,
        format!(
            "max_connections = 4096\n\n[vault]\nkey_file = \"{}\"\n\n[bridge]\napps_url = \"http://{{system}}.apps.localhost:{conv_port}\"\n\n[[systems]]\nname = \"files\"\nlabel = \"Files\"\nurl = \"http://127.0.0.1:{app_port}/page.html\"\nlogin = \"basic\"\n",
            keys.display()
        ),
    )
    .expect("config");
    let base_args = [
        "--data-dir".to_string(),
        data.display().to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    let mut add = Command::new(bin)
        .args(&base_args)
        .args(["user", "add", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"alice-password")
        .expect("password");
    assert!(add.wait().expect("user add").success());
    let mut server = Command::new(bin)
        .args(&base_args)
        .args(["serve", "--listen", &format!("127.0.0.1:{conv_port}")])
        .env("CONVENE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("convene serve");
    wait_port(conv_port);
    let portal = format!("http://127.0.0.1:{conv_port}");
    let host = format!("http://files.apps.localhost:{conv_port}");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .resolve("files.apps.localhost", any)
        .build()
        .expect("client");
    let bound = browser
        .put(format!("{portal}/api/bridge/bindings/files"))
        .basic_auth("alice", Some("alice-password"))
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"username":"alice","password":"{USER_PW}"}}"#))
        .send()
        .await
        .expect("bind");
    assert_eq!(bound.status(), 200, "binding");
    // Sign in at the portal and take the hand-off: the system host's cookie.
    let login = browser
        .get(format!("{portal}/login"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("login");
    let csrf = login
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf")
        .to_string();
    let r = browser
        .post(format!("{portal}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "user=alice&password=alice-password&csrf={csrf}&next=%2Faccount"
        ))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 303, "sign-in");
    let r = browser
        .get(format!("{portal}/bridge/open/files?next=/page.html"))
        .send()
        .await
        .expect("open");
    let handoff = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("hand-off")
        .to_string();
    let r = browser.get(&handoff).send().await.expect("hand-off");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("host cookie")
        .to_string();

    let client = reqwest::Client::builder()
        .resolve("files.apps.localhost", any)
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let (app_pid, own_pid) = (_app.0.id(), std::process::id());
    // Whose CPU each way's turns are charged to: the proxy in between, if any.
    let proxies: [Vec<u32>; 4] = [vec![], vec![_front.0.id()], vec![server.id()], vec![]];
    let ways: [Way; 4] = [
        (
            "direct",
            format!("http://127.0.0.1:{app_port}"),
            vec![("Authorization", basic.clone())],
        ),
        ("nginx", format!("http://127.0.0.1:{ngx_port}"), vec![]),
        ("convene", host.clone(), vec![("Cookie", cookie.clone())]),
        // Direct once more, taking its turns like the others: how far two runs of the same
        // thing differ here (an A/A control), so a difference smaller than that is read as
        // none.
        (
            "direct again",
            format!("http://127.0.0.1:{app_port}"),
            vec![("Authorization", basic.clone())],
        ),
    ];
    let mut rows = vec![];
    let mut verdicts = vec![];
    for (body, path, n) in [
        ("10 KB page", "/page.html", requests),
        ("1 MB download", "/file.bin", requests / 2),
    ] {
        // Requests a second direct access carried with 50 users back to back: the paced
        // phase asks at half of it.
        let mut direct_rate = 0.0;
        for (users, paced) in [(1usize, false), (50, false), (50, true)] {
            let shape = if paced {
                Shape::Paced(Duration::from_secs_f64(users as f64 / (direct_rate * pace)))
            } else {
                Shape::BackToBack
            };
            // The ways take turns, a slice of the requests at a time, so that whatever else
            // the machine does falls on all of them alike.
            let mut lat: Vec<Vec<Duration>> = vec![vec![]; ways.len()];
            // Until the head was in, and from there to the body's end (for `--verbose`).
            let mut heads: Vec<Vec<Duration>> = vec![vec![]; ways.len()];
            let mut bodies: Vec<Vec<Duration>> = vec![vec![]; ways.len()];
            // In each way's turns (for `--verbose`): how busy the machine was, and the CPU
            // time the app and the load generator spent.
            let mut way_busy = vec![(0u64, 0u64); ways.len()];
            let mut app_cpu = vec![0u64; ways.len()];
            let mut own_cpu = vec![0u64; ways.len()];
            // The proxies' CPU time during their own turns, and the requests they served.
            let mut cpu = vec![0u64; ways.len()];
            let mut served = vec![0usize; ways.len()];
            // Each turn's p50 and p99, by way: how much a difference moves from turn to turn.
            let mut per_turn_p: Vec<Vec<(f64, f64)>> = vec![vec![]; ways.len()];
            for (_, base, headers) in &ways {
                // Warm the pools and the caches.
                let _ = load(
                    &client,
                    &format!("{base}{path}"),
                    headers,
                    users,
                    users * 2,
                    Shape::BackToBack,
                )
                .await;
            }
            // Each user makes several requests a turn, so that the turn's first burst (every
            // user asking at once on a fresh start) is a small part of what is measured.
            let per_turn = (n / ROUNDS).max(users * MIN_PER_USER);
            let mut direct_time = Duration::ZERO;
            let busy_before = machine_jiffies();
            for _ in 0..ROUNDS {
                for (i, (_, base, headers)) in ways.iter().enumerate() {
                    let url = format!("{base}{path}");
                    let before = cpu_ns(&proxies[i]);
                    let (app_before, own_before) = (cpu_ns(&[app_pid]), process_cpu_ns(own_pid));
                    let jiffies = machine_jiffies();
                    let t = Instant::now();
                    let l = load(&client, &url, headers, users, per_turn, shape).await;
                    let after = machine_jiffies();
                    way_busy[i].0 += after.0.saturating_sub(jiffies.0);
                    way_busy[i].1 += after.1.saturating_sub(jiffies.1);
                    app_cpu[i] += cpu_ns(&[app_pid]).saturating_sub(app_before);
                    own_cpu[i] += process_cpu_ns(own_pid).saturating_sub(own_before);
                    if i == 0 {
                        direct_time += t.elapsed();
                    }
                    cpu[i] += cpu_ns(&proxies[i]).saturating_sub(before);
                    served[i] += l.len();
                    let mut turn: Vec<Duration> = l.iter().map(|t| t.whole).collect();
                    turn.sort();
                    per_turn_p[i].push((pct(&turn, 0.50), pct(&turn, 0.99)));
                    lat[i].extend(turn);
                    heads[i].extend(l.iter().map(|t| t.head));
                    bodies[i].extend(l.iter().map(|t| t.whole.saturating_sub(t.head)));
                }
            }
            let busy = busy_share(busy_before, machine_jiffies());
            if users > 1 && !paced {
                direct_rate = served[0] as f64 / direct_time.as_secs_f64().max(1e-3);
            }
            let p: Vec<(&str, f64, f64)> = ways
                .iter()
                .zip(&mut lat)
                .map(|((name, _, _), l)| {
                    l.sort();
                    (*name, pct(l, 0.50), pct(l, 0.99))
                })
                .collect();
            if verbose {
                for (i, (name, _, _)) in ways.iter().enumerate() {
                    let l = &lat[i];
                    heads[i].sort();
                    bodies[i].sort();
                    let (h, b) = (&heads[i], &bodies[i]);
                    let n = served[i].max(1) as f64 * 1000.0;
                    eprintln!(
                        "    {body} {users} {name:<12} p50 {:.3} p90 {:.3} p95 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} | head p50 {:.3} p90 {:.3} p99 {:.3} | rest of body p50 {:.3} p90 {:.3} p99 {:.3} | machine {:.0}% busy, CPU a request: app {:.0} us, load generator {:.0} us",
                        pct(l, 0.5),
                        pct(l, 0.9),
                        pct(l, 0.95),
                        pct(l, 0.99),
                        pct(l, 0.999),
                        pct(l, 1.0),
                        pct(h, 0.5),
                        pct(h, 0.9),
                        pct(h, 0.99),
                        pct(b, 0.5),
                        pct(b, 0.9),
                        pct(b, 0.99),
                        100.0 * busy_share((0, 0), way_busy[i]),
                        app_cpu[i] as f64 / n,
                        own_cpu[i] as f64 / n,
                    );
                }
            }
            let (d50, d99) = (p[0].1, p[0].2);
            let (n50, n99) = (p[1].1 - d50, p[1].2 - d99);
            let (c50, c99) = (p[2].1 - d50, p[2].2 - d99);
            // The noise: how far direct access differed from itself overall, or twice the
            // standard error of that difference over the turns, whichever is larger (one
            // overall difference can come out near zero by chance, as nginx's own overhead
            // does where the app is the bottleneck).
            let a50 = (p[3].1 - d50)
                .abs()
                .max(2.0 * standard_error(&per_turn_p[3], &per_turn_p[0], |x| x.0));
            let a99 = (p[3].2 - d99)
                .abs()
                .max(2.0 * standard_error(&per_turn_p[3], &per_turn_p[0], |x| x.1));
            // p50: within 2x of nginx's overhead (nginx adding nothing, 2x of nothing);
            // p99: at most 5 ms added.
            let p50_bound = 2.0 * n50.max(0.0);
            let p50_v = Verdict::of(c50, p50_bound, a50);
            let p99_v = Verdict::of(c99, 5.0, a99);
            verdicts.extend([p50_v, p99_v]);
            let per_request = |i: usize| cpu[i] as f64 / served[i].max(1) as f64 / 1000.0;
            let how = match shape {
                Shape::BackToBack => "back to back".to_string(),
                Shape::Paced(period) => {
                    format!("paced, {:.0} a second", users as f64 / period.as_secs_f64())
                }
            };
            rows.push(format!(
                "  {body:<14} {users:>2} users {how:<22} machine {:>3.0}% busy  direct p50 {d50:7.3} p99 {d99:7.3} (A/A +-{a50:.3} +-{a99:.3}) | nginx +{n50:6.3} +{n99:6.3} | convene +{c50:6.3} +{c99:6.3}  target p50 <= {p50_bound:.3} [{}], p99 <= +5 [{}]{} | proxy CPU a request: nginx {:.0} us, convene {:.0} us",
                busy * 100.0,
                p50_v.word(),
                p99_v.word(),
                if n99 > 5.0 { " (nginx's own p99 adds more than 5)" } else { "" },
                per_request(1),
                per_request(2),
            ));
        }
    }

    // 1,000 proxied connections open at once, each in the middle of the 1 MB download.
    let pid = server.id();
    let before = rss_kib(pid);
    let mut held = vec![];
    for _ in 0..1000 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", conv_port))
            .await
            .expect("connect");
        s.write_all(
            format!("GET /file.bin HTTP/1.1\r\nHost: files.apps.localhost:{conv_port}\r\nCookie: {cookie}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
        held.push(s);
    }
    let mut first = [0u8; 1024];
    let mut answered = 0;
    for s in &mut held {
        if tokio::time::timeout(Duration::from_secs(10), s.read(&mut first))
            .await
            .is_ok_and(|r| r.is_ok_and(|n| n > 0))
        {
            answered += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib(pid);
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    let grown_mib = (during.saturating_sub(before)) as f64 / 1024.0;
    // Bounded: at most 256 KiB a connection (the socket buffers and one chunk in flight
    // each way), never the body.
    let mem_ok = answered == 1000 && grown_mib <= 250.0;
    verdicts.push(if mem_ok {
        Verdict::Met
    } else {
        Verdict::Missed
    });
    rows.push(format!(
        "  1,000 open proxied downloads: {answered} answered, server RSS {:.1} MiB before, {:.1} MiB with them open (+{grown_mib:.1} MiB), {:.1} MiB after  target <= +250 MiB [{}]",
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        after as f64 / 1024.0,
        if mem_ok { "met" } else { "MISSED" }
    ));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.wait();

    let table = format!(
        "login proxy overhead (release build; latency in ms, whole body read; overheads against direct; A/A: how far direct differed from itself, overall or twice the standard error over the ten turns, the larger: the noise; proxy CPU: the proxy process's CPU time in its own turns, per request)\n{}",
        rows.join("\n")
    );
    println!("{table}");
    eprintln!("{table}");
    let count = |v: Verdict| verdicts.iter().filter(|x| **x == v).count();
    println!(
        "bench-proxy: ok ({} of {} targets met, {} missed by less than the A/A noise, {} missed)",
        count(Verdict::Met),
        verdicts.len(),
        count(Verdict::WithinNoise),
        count(Verdict::Missed)
    );
}
