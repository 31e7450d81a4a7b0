//! The sharing worker's pass over a calendar larger than its page, driven in-process on each
//! backend while the owner keeps writing: a pass ends at the change number it started from
//! (an owner who never stops writing cannot keep it going), and a whole pass never removes the
//! copy of a member that exists but moved past the pass's end while the pages were read.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use convene::share::copies_calendar_name;
use convene::store::*;

/// Members in the calendar: three pages of the worker's 200.
const N: usize = 600;
const PAGES: usize = N.div_ceil(200);

fn ev(k: usize, rev: usize) -> NewObject {
    let body = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:pg-{k}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300105T100000Z\r\n\
         DURATION:PT1H\r\nSUMMARY:Item {k} rev {rev}.\r\n\
         ATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:bob@example.org\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    NewObject {
        etag: format!("\"{k}-{rev}\""),
        data: body.into_bytes(),
        content_type: "text/calendar".into(),
        uid: Some(format!("pg-{k}")),
        component: Some("VEVENT".into()),
        index: None,
        schedule_tag: None,
    }
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

/// The copies `who` holds of alice's entries: (name, body).
async fn copies(s: &Store, who: &User) -> Vec<String> {
    let Some(home) = s.home(who.id).await.expect("home") else {
        return vec![];
    };
    let Some(mount) = s
        .child(home.id, &copies_calendar_name("alice"))
        .await
        .expect("mount")
    else {
        return vec![];
    };
    let members = s.children(mount.id).await.expect("children");
    let ids: Vec<ResourceId> = members.iter().map(|r| r.id).collect();
    s.object_datas(&ids)
        .await
        .expect("bodies")
        .into_iter()
        .map(|(_, b)| String::from_utf8(b).expect("utf-8"))
        .collect()
}

/// Rewrites members, from the last in `order` backwards, until told to stop (bounded).
fn writer(
    s: Store,
    cal: ResourceId,
    order: Vec<usize>,
    rev: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let h = tokio::spawn(async move {
        for (i, k) in order.iter().rev().cycle().take(20 * N).enumerate() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            s.put_object(
                cal,
                &format!("e{k}.ics"),
                ev(*k, rev + i / N),
                WriteCondition::None,
            )
            .await
            .expect("owner's write");
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (count, h)
}

async fn pager(backend: common::Backend) {
    let (url, _dir) = match backend {
        common::Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("c.db").display());
            (url, Some(dir))
        }
        common::Backend::Postgres => (common::fresh_pg_database().await, None),
    };
    let s = Store::open(&url).await.expect("store");
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let carol = user(&s, "carol").await;
    let defaults = convene::caldav::default_collections();
    let home = s.ensure_home(alice.id, &defaults).await.expect("home");
    let cal = s
        .child(home.id, "calendar")
        .await
        .expect("calendar")
        .expect("calendar");
    for k in 0..N {
        s.put_object(cal.id, &format!("e{k}.ics"), ev(k, 0), WriteCondition::None)
            .await
            .expect("put");
    }
    let sharing = common::sharing_worker(&s, convene::clock::system());
    let first = sharing.pass().await.expect("first pass");
    assert_eq!(first.pages, PAGES, "{first:?}");
    assert_eq!(copies(&s, &bob).await.len(), N);

    // An incremental pass while the owner keeps writing: it reads what was there when it
    // began, and stops there.
    for k in 0..N {
        s.put_object(cal.id, &format!("e{k}.ics"), ev(k, 1), WriteCondition::None)
            .await
            .expect("put");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let order: Vec<usize> = (0..N).collect();
    let (written, w) = writer(s.clone(), cal.id, order.clone(), 2, stop.clone());
    let busy = sharing.pass().await.expect("pass under writes");
    stop.store(true, Ordering::SeqCst);
    w.await.expect("writer");
    let during = written.load(Ordering::SeqCst);
    assert!(
        busy.pages <= PAGES,
        "the pass read past its start: {busy:?}, {during} writes meanwhile"
    );
    sharing.pass().await.expect("catch-up pass");
    assert_eq!(copies(&s, &bob).await.len(), N);

    // A whole pass (a rule was added) while the owner rewrites the members the pager has not
    // reached yet: those move past the pass's end unread, and must keep their copies.
    for k in 0..N {
        s.put_object(
            cal.id,
            &format!("e{k}.ics"),
            ev(k, 100),
            WriteCondition::None,
        )
        .await
        .expect("put");
    }
    sharing.pass().await.expect("pass");
    s.add_share_rule(alice.id, cal.id, RuleKind::User, "carol")
        .await
        .expect("rule");
    stop.store(false, Ordering::SeqCst);
    let (written, w) = writer(s.clone(), cal.id, order, 200, stop.clone());
    let whole = sharing.pass().await.expect("whole pass under writes");
    stop.store(true, Ordering::SeqCst);
    w.await.expect("writer");
    let moved = written.load(Ordering::SeqCst);
    let bobs = copies(&s, &bob).await;
    assert_eq!(
        bobs.len(),
        N,
        "a whole pass removed copies of live members ({moved} rewritten during it, {whole:?})"
    );
    assert!(whole.pages <= PAGES, "{whole:?}");

    // The next pass brings everything to the owner's last word.
    sharing.pass().await.expect("settling pass");
    for who in [&bob, &carol] {
        let held = copies(&s, who).await;
        assert_eq!(held.len(), N, "{}", who.name);
        for k in 0..N {
            let body = s
                .child(cal.id, &format!("e{k}.ics"))
                .await
                .expect("member")
                .expect("member");
            let data = s.object_data(body.id).await.expect("data").expect("data");
            let text = String::from_utf8(data).expect("utf-8");
            let summary = text
                .lines()
                .find_map(|l| l.strip_prefix("SUMMARY:"))
                .expect("summary")
                .trim_end();
            assert!(
                held.iter().any(|c| c.contains(summary)),
                "{} lacks {summary}",
                who.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    pager(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    pager(common::Backend::Postgres).await;
}
