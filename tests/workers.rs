//! The background workers driven in-process with a paused clock (`convene::clock::ManualClock`):
//! time moves only when the test moves it, so what happens when a lease lapses or a retry
//! comes due is checked at the second, without sleeping.
//! - the iMIP outbox: a message the relay will not take is tried again only when its backoff
//!   is over, and given up after `max_attempts`;
//! - the sharing worker: a calendar a dead instance holds is left alone until its lease
//!   lapses, then taken over.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use convene::calendar::outbox::send_due;
use convene::clock::{Clock, ManualClock};
use convene::mail::{Mailer, SmtpConfig, SmtpSecurity};
use convene::share::copies_calendar_name;
use convene::store::*;

async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    (Store::open(&url).await.expect("store"), dir)
}

async fn user(s: &Store, name: &str) -> User {
    s.create_user(NewUser {
        name: name.into(),
        email: Some(format!("{name}@example.org")),
        display_name: None,
        password_hash: None,
    })
    .await
    .expect("user")
}

/// A relay that hangs up: a loopback socket that accepts each connection and closes it at
/// once (every send fails), counting the connections.
async fn relay_that_hangs_up() -> (u16, Arc<AtomicUsize>) {
    let port = common::free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_retries_on_its_backoff_and_gives_up() {
    let (s, _dir) = sqlite_store().await;
    let (port, tries) = relay_that_hangs_up().await;
    let mailer = Mailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "calendar@example.org".into(),
        retry_base_seconds: 30,
        max_attempts: 3,
    })
    .expect("mailer");
    let settings = convene::calendar::Limits::default();
    let clock = ManualClock::at(2_000_000_000);
    s.enqueue_mail("ext@elsewhere.test", b"Subject: x\r\n\r\nx\r\n", None)
        .await
        .expect("queued");
    // One round at the given second: how many connections it made.
    let round = |at_offset: i64| {
        let (s, mailer, settings, clock, tries) = (&s, &mailer, &settings, &clock, tries.clone());
        async move {
            clock.set(2_000_000_000 + at_offset);
            let before = tries.load(Ordering::SeqCst);
            assert_eq!(
                send_due(s, mailer, settings, clock).await,
                0,
                "the relay took it?"
            );
            tries.load(Ordering::SeqCst) - before
        }
    };
    assert!(round(0).await > 0, "the first try is at once");
    // Backoff: 30 s, then 60 s; nothing is tried a second early.
    assert_eq!(round(29).await, 0, "tried before its backoff was over");
    assert!(round(30).await > 0, "not tried when due");
    assert_eq!(round(89).await, 0, "the second wait doubles");
    assert!(round(90).await > 0, "the third try");
    // Three tries were the most: kept, never tried again.
    assert_eq!(round(1_000_000).await, 0, "tried after it was given up");
    assert_eq!(
        s.unsent_mail().await.expect("count"),
        1,
        "a given-up message is kept"
    );
    assert!(clock.now() > 2_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_held_by_a_dead_instance_is_taken_over_when_its_lease_lapses() {
    let (s, _dir) = sqlite_store().await;
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let defaults = convene::caldav::default_collections();
    let home = s.ensure_home(alice.id, &defaults).await.expect("home");
    let cal = s
        .child(home.id, "calendar")
        .await
        .expect("read")
        .expect("calendar");
    let body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:l1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300105T100000Z\r\nDURATION:PT1H\r\nSUMMARY:Leased\r\nATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:bob@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    s.put_object(
        cal.id,
        "l1.ics",
        NewObject {
            etag: "\"l1\"".into(),
            data: body.as_bytes().to_vec(),
            content_type: "text/calendar".into(),
            uid: Some("l1".into()),
            component: Some("VEVENT".into()),
            index: None,
            schedule_tag: None,
        },
        WriteCondition::None,
    )
    .await
    .expect("put");
    let clock = ManualClock::at(2_000_000_000);
    // Another instance took the calendar for 120 s and died.
    assert!(
        s.claim_share_cursor(cal.id, clock.now(), clock.now() + 120)
            .await
            .expect("claim")
            .is_some()
    );
    let sharing = common::sharing_worker(&s, Arc::new(clock.clone()));
    let copies = || async {
        let Some(h) = s.home(bob.id).await.expect("home") else {
            return 0;
        };
        match s
            .child(h.id, &copies_calendar_name("alice"))
            .await
            .expect("read")
        {
            Some(c) => s.children(c.id).await.expect("children").len(),
            None => 0,
        }
    };
    sharing.pass().await.expect("pass");
    assert_eq!(copies().await, 0, "took a calendar another instance holds");
    // The lease holds through its last second (`until`, 120 s on) ...
    clock.advance(120);
    sharing.pass().await.expect("pass");
    assert_eq!(copies().await, 0, "took it before the lease lapsed");
    // ... and is free the second after.
    clock.advance(1);
    sharing.pass().await.expect("pass");
    assert_eq!(copies().await, 1, "the lapsed lease was not taken over");
}
