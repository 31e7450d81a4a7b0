//! iMIP (RFC 6047) against a real SMTP server on loopback (aiosmtpd from PyPI, started from the
//! test venv that `conformance/run-all.sh` provides): invitations, cancellations and replies
//! to people outside the server arrive as mail Outlook shows as an invitation, and an
//! emailed reply posted to `/api/imip` updates the organizer's event.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Resp, TestServer, python};
use mail_parser::{MessageParser, MimeHeaders};

/// A real SMTP server writing what it receives into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp() -> Smtp {
    start_smtp_at(None)
}

/// A relay on `port` (or on a free port).
fn start_smtp_at(fixed: Option<u16>) -> Smtp {
    let py = python();
    let ok = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "aiosmtpd is not importable with {py}: run the tests through conformance/run-all.sh (it installs the pinned venv) or set CONVENE_TEST_PYTHON"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    for _ in 0..5 {
        let port = fixed.unwrap_or_else(common::free_port);
        let mut child = Command::new(&py)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Smtp {
                    child,
                    port,
                    maildir,
                    _dir: dir,
                };
            }
            if child.try_wait().ok().flatten().is_some() {
                break; // the port was taken: try another
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("aiosmtpd did not start");
}

/// Wait (bounded) until the Maildir holds `n` messages; return them all, oldest first.
fn messages(maildir: &Path, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(maildir.join("new"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| {
                            let t = e
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH);
                            (t, e.path())
                        })
                        .collect()
                })
                .unwrap_or_default();
        if files.len() >= n || Instant::now() > deadline {
            files.sort();
            return files
                .into_iter()
                .map(|(_, p)| std::fs::read(p).expect("message"))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (subject, recipient, reply-to, the text/calendar part and its method parameter, whether an
/// .ics attachment is present)
fn inspect(raw: &[u8]) -> (String, String, String, String, String, bool) {
    let m = MessageParser::default().parse(raw).expect("parse mail");
    let subject = m.subject().unwrap_or_default().to_string();
    let to = m
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    let reply_to = m
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    let mut calendar = String::new();
    let mut method = String::new();
    let mut attachment = false;
    for part in m.parts.iter() {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let full = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default());
        if full.eq_ignore_ascii_case("text/calendar") {
            calendar = String::from_utf8_lossy(part.contents()).into_owned();
            method = ct.attribute("method").unwrap_or_default().to_string();
        }
        if full.eq_ignore_ascii_case("application/ics")
            && part.attachment_name() == Some("invite.ics")
        {
            attachment = true;
        }
    }
    (subject, to, reply_to, calendar, method, attachment)
}

/// The stored object at `path`, as alice reads it, with folds undone.
async fn unfolded(srv: &TestServer, path: &str) -> String {
    srv.send(srv.req("GET", path))
        .await
        .text()
        .replace("\r\n ", "")
}

async fn post_reply(srv: &TestServer, user: &str, body: &str) -> Resp {
    srv.send(
        srv.req_as(user, &format!("{user}-password"), "POST", "/api/imip")
            .header("Content-Type", "text/calendar")
            .body(body.to_string()),
    )
    .await
}

async fn imip(mut srv: TestServer) {
    let smtp = start_smtp();
    srv.restart_with_config(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"calendar@example.org\"\n",
        smtp.port
    ))
    .await;

    // An invitation to someone outside the server goes out by mail.
    let event = |attendees: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:launch-1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300105T100000Z\r\nDTEND:20300105T110000Z\r\nSUMMARY:Launch review\r\nORGANIZER;CN=Alice:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\n{attendees}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    let path = "/dav/calendars/alice/calendar/launch.ics";
    srv.put_ics(
        path,
        &event("ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:ext@elsewhere.test\r\n"),
    )
    .await
    .expect(201);
    let stored = unfolded(&srv, path).await;
    assert!(
        // Queued in the durable outbox: 1.0 (pending), not 1.1 (sent), until the relay has it.
        stored.contains("SCHEDULE-STATUS=1.0:mailto:ext@elsewhere.test"),
        "{stored}"
    );
    let mail = messages(&smtp.maildir, 1);
    assert_eq!(mail.len(), 1);
    let (subject, to, reply_to, calendar, method, attachment) = inspect(&mail[0]);
    assert_eq!(subject, "Invitation: Launch review");
    assert_eq!(to, "ext@elsewhere.test");
    assert_eq!(reply_to, "alice@example.org");
    assert!(method.eq_ignore_ascii_case("REQUEST"), "{method}");
    assert!(
        calendar.contains("METHOD:REQUEST") && calendar.contains("UID:launch-1"),
        "{calendar}"
    );
    assert!(!calendar.contains("SCHEDULE-STATUS"), "{calendar}");
    assert!(attachment, "no invite.ics attachment");

    // The answer comes back by mail; the organizer's mail reader posts it to /api/imip.
    let reply = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:launch-1\r\nDTSTAMP:20240102T000000Z\r\nDTSTART:20300105T100000Z\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:EXT@elsewhere.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    // Only the organizer may post it, only for someone invited, and only a REPLY.
    post_reply(&srv, "bob", reply).await.expect(403);
    post_reply(
        &srv,
        "alice",
        &reply.replace("EXT@elsewhere.test", "stranger@elsewhere.test"),
    )
    .await
    .expect(404);
    post_reply(
        &srv,
        "alice",
        &reply.replace("METHOD:REPLY", "METHOD:REQUEST"),
    )
    .await
    .expect(403);
    post_reply(&srv, "alice", "garbage").await.expect(403);
    let r = post_reply(&srv, "alice", reply).await;
    r.expect(200);
    assert!(r.text().contains("\"applied\":1"), "{}", r.text());
    let stored = unfolded(&srv, path).await;
    assert!(
        stored
            .contains("PARTSTAT=ACCEPTED;RSVP=TRUE;SCHEDULE-STATUS=2.0:mailto:ext@elsewhere.test"),
        "{stored}"
    );

    // Taking them off the event cancels by mail.
    srv.put_ics(path, &event("")).await.expect(204);
    let mail = messages(&smtp.maildir, 2);
    let (subject, to, _, calendar, method, _) = inspect(&mail[1]);
    assert_eq!(
        (subject.as_str(), to.as_str()),
        ("Cancelled: Launch review", "ext@elsewhere.test")
    );
    assert!(
        method.eq_ignore_ascii_case("CANCEL") && calendar.contains("STATUS:CANCELLED"),
        "{calendar}"
    );

    // A local attendee answering an outside organizer replies by mail.
    let invite = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:partner-1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300106T100000Z\r\nDTEND:20300106T110000Z\r\nSUMMARY:Partner call\r\nORGANIZER:mailto:ext@elsewhere.test\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let bob_path = "/dav/calendars/bob/calendar/partner.ics";
    srv.send(
        srv.req_as("bob", "bob-password", "PUT", bob_path)
            .header("Content-Type", "text/calendar")
            .body(invite.to_string()),
    )
    .await
    .expect(201);
    srv.send(
        srv.req_as("bob", "bob-password", "PUT", bob_path)
            .header("Content-Type", "text/calendar")
            .body(invite.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")),
    )
    .await
    .expect(204);
    let mail = messages(&smtp.maildir, 3);
    assert_eq!(
        mail.len(),
        3,
        "storing the invitation unanswered must not send anything"
    );
    let (subject, to, reply_to, calendar, method, _) = inspect(&mail[2]);
    assert_eq!(
        (subject.as_str(), to.as_str()),
        ("Accepted: Partner call", "ext@elsewhere.test")
    );
    assert_eq!(reply_to, "bob@example.org");
    assert!(
        method.eq_ignore_ascii_case("REPLY")
            && calendar.contains("PARTSTAT=ACCEPTED:mailto:bob@example.org"),
        "{calendar}"
    );
}
both_backends!(imip_through_smtp, imip);

/// An invitation made while the relay is down is kept, says so (SCHEDULE-STATUS 1.0, not
/// "sent"), survives a restart, is delivered once when the relay is back, and then says 1.1;
/// one the relay never takes is given up after `max_attempts` and says 5.1.
async fn outbox(mut srv: TestServer) {
    let down = start_smtp();
    let port = down.port;
    drop(down);
    let config = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"calendar@example.org\"\nretry_base_seconds = 1\n"
    );
    srv.restart_with_config(&config).await;
    let path = "/dav/calendars/alice/calendar/offline.ics";
    srv.put_ics(
        path,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:offline-1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300105T100000Z\r\nDTEND:20300105T110000Z\r\nSUMMARY:Offline\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\nATTENDEE;RSVP=TRUE:mailto:ext@elsewhere.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .await
    .expect(201);
    let stored = unfolded(&srv, path).await;
    assert!(
        stored.contains("SCHEDULE-STATUS=1.0:mailto:ext@elsewhere.test"),
        "{stored}"
    );
    // The worker tries, fails (nothing listens) and keeps it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(srv.terminate().success());
    let smtp = start_smtp_at(Some(port));
    srv.spawn_server().await;
    let mail = messages(&smtp.maildir, 1);
    assert_eq!(mail.len(), 1, "the queued invitation was lost");
    let (subject, to, ..) = inspect(&mail[0]);
    assert_eq!(
        (subject.as_str(), to.as_str()),
        ("Invitation: Offline", "ext@elsewhere.test")
    );
    // The organizer's event now says the relay took it (1.1 "sent").
    status_becomes(&srv, path, "1.1").await;
    // Sent once: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let arrived = std::fs::read_dir(smtp.maildir.join("new"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(arrived, 1, "sent more than once");

    // A relay that never comes back: after `max_attempts` the message is given up, and the
    // event says so (5.1), not "pending" for ever.
    drop(smtp);
    srv.restart_with_config(&format!("{config}max_attempts = 2\n"))
        .await;
    let lost = "/dav/calendars/alice/calendar/lost.ics";
    srv.put_ics(
        lost,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:lost-1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300106T100000Z\r\nDTEND:20300106T110000Z\r\nSUMMARY:Lost\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\nATTENDEE;RSVP=TRUE:mailto:ext@elsewhere.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .await
    .expect(201);
    status_becomes(&srv, lost, "5.1").await;
    // The first event keeps what it said.
    assert!(
        unfolded(&srv, path)
            .await
            .contains("SCHEDULE-STATUS=1.1:mailto:ext@elsewhere.test")
    );
}
both_backends!(imip_outbox, outbox);

/// Wait (at most 20 s) until alice's event at `path` records `code` for the outside attendee.
async fn status_becomes(srv: &TestServer, path: &str, code: &str) {
    let want = format!("SCHEDULE-STATUS={code}:mailto:ext@elsewhere.test");
    let mut last = String::new();
    for _ in 0..200 {
        last = unfolded(srv, path).await;
        if last.contains(&want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never said {code}: {last}");
}
