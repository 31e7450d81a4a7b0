//! One contract for every storage backend (sabre/dav's model): the same assertions run against
//! embedded SQLite and a real PostgreSQL, so the adapters cannot drift apart.

mod common;

use convene::store::*;

struct Fixture {
    store: Store,
    /// A second, independent connection pool on the same database: a second instance.
    other: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn open(backend: common::Backend) -> Fixture {
    match backend {
        common::Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("c.db").display());
            Fixture {
                store: Store::open(&url).await.unwrap(),
                other: Store::open(&url).await.unwrap(),
                _dir: Some(dir),
            }
        }
        common::Backend::Postgres => {
            let url = common::fresh_pg_database().await;
            Fixture {
                store: Store::open(&url).await.unwrap(),
                other: Store::open(&url).await.unwrap(),
                _dir: None,
            }
        }
    }
}

fn obj(uid: &str, body: &str) -> NewObject {
    NewObject {
        data: body.as_bytes().to_vec(),
        etag: format!("\"{body}\""),
        content_type: "text/calendar".into(),
        uid: Some(uid.into()),
        component: Some("VEVENT".into()),
        index: None,
        schedule_tag: None,
    }
}

fn indexed(uid: &str, spans: &[(i64, i64)], complete_until: i64) -> NewObject {
    use convene::ical::index::{Instance, MatchRule, ObjectIndex};
    let instances: Vec<Instance> = spans
        .iter()
        .map(|&(start, end)| Instance {
            start,
            end,
            rule: MatchRule::Overlap,
            floating: false,
        })
        .collect();
    NewObject {
        index: Some(ObjectIndex {
            first_start: instances.iter().map(|i| i.start).min().unwrap_or(0),
            last_end: if complete_until < i64::MAX / 4 {
                i64::MAX / 4
            } else {
                instances.iter().map(|i| i.end).max().unwrap_or(0)
            },
            complete_until,
            instances,
        }),
        ..obj(uid, uid)
    }
}

fn cal(name: &str) -> NewCollection {
    NewCollection {
        name: name.into(),
        kind: ResourceKind::Calendar,
        supported_components: Some("VEVENT".into()),
        props: vec![],
    }
}

async fn user(s: &Store, name: &str) -> User {
    s.create_user(NewUser {
        name: name.into(),
        email: Some(format!("{name}@example.org")),
        display_name: None,
        password_hash: Some("h".into()),
    })
    .await
    .unwrap()
}

macro_rules! contract {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(open(common::Backend::Sqlite).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(open(common::Backend::Postgres).await).await;
            }
        }
    };
}

async fn users(f: Fixture) {
    let s = &f.store;
    let a = user(s, "ann").await;
    assert!(matches!(
        s.create_user(NewUser {
            name: "ann".into(),
            ..Default::default()
        })
        .await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.user_by_name("ann").await.unwrap().unwrap().id, a.id);
    assert_eq!(s.user_by_id(a.id).await.unwrap().unwrap().name, "ann");
    assert!(s.user_by_name("nobody").await.unwrap().is_none());
    s.set_password(a.id, "h2").await.unwrap();
    assert_eq!(
        s.user_by_id(a.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("h2")
    );
    user(s, "bea").await;
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["ann", "bea"]);
    // Deleting a user removes their tree.
    let home = s.ensure_home(a.id, &[cal("c")]).await.unwrap();
    let c = s.child(home.id, "c").await.unwrap().unwrap();
    s.put_object(c.id, "x.ics", obj("x", "1"), WriteCondition::None)
        .await
        .unwrap();
    s.delete_user(a.id).await.unwrap();
    assert!(s.resource(c.id).await.unwrap().is_none());
    assert!(matches!(
        s.delete_user(a.id).await,
        Err(StoreError::NotFound)
    ));
}
contract!(user_accounts, users);

async fn homes_and_objects(f: Fixture) {
    let s = &f.store;
    let u = user(s, "u").await;
    let home = s
        .ensure_home(u.id, &[cal("calendar"), cal("tasks")])
        .await
        .unwrap();
    // Idempotent, also from a second instance: no duplicate defaults.
    let again = f
        .other
        .ensure_home(u.id, &[cal("calendar"), cal("tasks")])
        .await
        .unwrap();
    assert_eq!(home.id, again.id);
    let kids = s.children(home.id).await.unwrap();
    assert_eq!(
        kids.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        vec!["calendar", "tasks"]
    );
    let c = &kids[0];

    let (r, created) = s
        .put_object(c.id, "a.ics", obj("a", "v1"), WriteCondition::MustNotExist)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(r.etag.as_deref(), Some("\"v1\""));
    assert!(matches!(
        s.put_object(c.id, "a.ics", obj("a", "v2"), WriteCondition::MustNotExist)
            .await,
        Err(StoreError::PreconditionFailed)
    ));
    assert!(matches!(
        s.put_object(
            c.id,
            "a.ics",
            obj("a", "v2"),
            WriteCondition::EtagIn(vec!["\"v0\"".into()])
        )
        .await,
        Err(StoreError::PreconditionFailed)
    ));
    let (_, created) = s
        .put_object(
            c.id,
            "a.ics",
            obj("a", "v2"),
            WriteCondition::EtagIn(vec!["\"v1\"".into()]),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(s.object_data(r.id).await.unwrap().unwrap(), b"v2");
    // UID conflict names the holder; the failed write stored nothing.
    match s
        .put_object(c.id, "b.ics", obj("a", "v3"), WriteCondition::None)
        .await
    {
        Err(StoreError::UidConflict(holder)) => assert_eq!(holder, "a.ics"),
        other => panic!("expected a UID conflict, got {other:?}"),
    }
    assert!(s.child(c.id, "b.ics").await.unwrap().is_none());
    // The same UID in another calendar is fine.
    s.put_object(kids[1].id, "a.ics", obj("a", "v1"), WriteCondition::None)
        .await
        .unwrap();

    assert!(matches!(
        s.delete(&r, WriteCondition::EtagIn(vec!["\"v1\"".into()]))
            .await,
        Err(StoreError::PreconditionFailed)
    ));
    s.delete(&r, WriteCondition::EtagIn(vec!["\"v2\"".into()]))
        .await
        .unwrap();
    assert!(s.child(c.id, "a.ics").await.unwrap().is_none());
}
contract!(homes_objects_conditions, homes_and_objects);

async fn change_log(f: Fixture) {
    let s = &f.store;
    let u = user(s, "u").await;
    let home = s.ensure_home(u.id, &[cal("c")]).await.unwrap();
    let c = s.child(home.id, "c").await.unwrap().unwrap();
    let home_seq0 = s.resource(home.id).await.unwrap().unwrap().sync_seq;
    for i in 0..5 {
        s.put_object(
            c.id,
            &format!("{i}.ics"),
            obj(&i.to_string(), "x"),
            WriteCondition::None,
        )
        .await
        .unwrap();
    }
    let c1 = s.resource(c.id).await.unwrap().unwrap();
    assert_eq!(c1.sync_seq, 5);
    // The home saw its calendar change (Apple's home-level sync and ctag).
    let home1 = s.resource(home.id).await.unwrap().unwrap();
    assert!(home1.sync_seq > home_seq0);
    assert_eq!(
        s.child(home.id, "c").await.unwrap().unwrap().mod_seq,
        home1.sync_seq
    );

    let all = s.changes_since(c.id, None, None).await.unwrap();
    assert_eq!(all.len(), 5);
    let seqs: Vec<i64> = all.iter().map(Change::seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);

    let victim = s.child(c.id, "1.ics").await.unwrap().unwrap();
    s.delete(&victim, WriteCondition::None).await.unwrap();
    s.put_object(c.id, "3.ics", obj("3", "y"), WriteCondition::None)
        .await
        .unwrap();
    let since = s.changes_since(c.id, Some(5), None).await.unwrap();
    assert_eq!(since.len(), 2);
    assert!(matches!(&since[0], Change::Deleted { name, seq: 6 } if name == "1.ics"));
    assert!(matches!(&since[1], Change::Live(r) if r.name == "3.ics" && r.mod_seq == 7));
    // A limit returns one extra so the caller can tell that more exist.
    let limited = s.changes_since(c.id, Some(0), Some(2)).await.unwrap();
    assert_eq!(limited.len(), 3);
    // Recreating a deleted name clears its tombstone.
    s.put_object(c.id, "1.ics", obj("1", "z"), WriteCondition::None)
        .await
        .unwrap();
    let since = s.changes_since(c.id, Some(5), None).await.unwrap();
    assert!(since.iter().all(|c| !matches!(c, Change::Deleted { .. })));
}
contract!(change_log_and_tombstones, change_log);

async fn transfer(f: Fixture) {
    let s = &f.store;
    let u = user(s, "u").await;
    let home = s.ensure_home(u.id, &[cal("a"), cal("b")]).await.unwrap();
    let a = s.child(home.id, "a").await.unwrap().unwrap();
    let b = s.child(home.id, "b").await.unwrap().unwrap();
    let (x, _) = s
        .put_object(a.id, "x.ics", obj("x", "1"), WriteCondition::None)
        .await
        .unwrap();
    s.patch_props(
        x.id,
        u.id,
        vec![StoredProp {
            ns: "urn:t".into(),
            local: "p".into(),
            xml: b"<p xmlns=\"urn:t\"/>".to_vec(),
        }],
        vec![],
    )
    .await
    .unwrap();
    assert!(s.transfer(&x, b.id, "y.ics", true, false).await.unwrap());
    let y = s.child(b.id, "y.ics").await.unwrap().unwrap();
    assert_eq!(s.object_data(y.id).await.unwrap().unwrap(), b"1");
    assert_eq!(
        s.props(y.id, u.id).await.unwrap().len(),
        1,
        "dead properties are copied"
    );
    // Copy into the same calendar collides on UID.
    assert!(matches!(
        s.transfer(&x, a.id, "z.ics", true, false).await,
        Err(StoreError::UidConflict(_))
    ));
    // Overwrite F.
    assert!(matches!(
        s.transfer(&x, b.id, "y.ics", false, false).await,
        Err(StoreError::PreconditionFailed)
    ));
    // Move with overwrite; the source is gone and tombstoned.
    let before = s.resource(a.id).await.unwrap().unwrap().sync_seq;
    assert!(!s.transfer(&x, b.id, "y.ics", true, true).await.unwrap());
    assert!(s.child(a.id, "x.ics").await.unwrap().is_none());
    // The source as it was read is gone: a second move or a delete of it (racing requests
    // that resolved the old path) finds nothing, and leaves the moved resource alone.
    assert!(matches!(
        s.transfer(&x, b.id, "w.ics", true, true).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete(&x, WriteCondition::None).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.child(b.id, "y.ics").await.unwrap().is_some());
    let ch = s.changes_since(a.id, Some(before), None).await.unwrap();
    assert!(matches!(&ch[0], Change::Deleted { name, .. } if name == "x.ics"));
    // A collection cannot be moved into itself.
    let sub = s
        .create_collection(
            home.id,
            NewCollection {
                name: "p".into(),
                kind: ResourceKind::Collection,
                supported_components: None,
                props: vec![],
            },
        )
        .await
        .unwrap();
    let inner = s
        .create_collection(
            sub.id,
            NewCollection {
                name: "q".into(),
                kind: ResourceKind::Collection,
                supported_components: None,
                props: vec![],
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        s.transfer(&sub, inner.id, "p", true, true).await,
        Err(StoreError::Cycle)
    ));
    // Deep copy of a collection tree.
    s.put_object(
        inner.id,
        "f",
        NewObject {
            uid: None,
            component: None,
            ..obj("f", "file")
        },
        WriteCondition::None,
    )
    .await
    .unwrap();
    s.transfer(&sub, home.id, "p2", false, false).await.unwrap();
    let p2 = s.child(home.id, "p2").await.unwrap().unwrap();
    let q2 = s.child(p2.id, "q").await.unwrap().unwrap();
    assert!(s.child(q2.id, "f").await.unwrap().is_some());
}
contract!(copy_and_move, transfer);

async fn props(f: Fixture) {
    let s = &f.store;
    let u = user(s, "u").await;
    let v = user(s, "v").await;
    let home = s.ensure_home(u.id, &[cal("c")]).await.unwrap();
    let c = s.child(home.id, "c").await.unwrap().unwrap();
    let p = |l: &str, x: &str| StoredProp {
        ns: "urn:t".into(),
        local: l.into(),
        xml: x.as_bytes().to_vec(),
    };
    s.patch_props(
        c.id,
        u.id,
        vec![p("a", "<a>1</a>"), p("b", "<b>ü</b>")],
        vec![],
    )
    .await
    .unwrap();
    s.patch_props(c.id, v.id, vec![p("a", "<a>other</a>")], vec![])
        .await
        .unwrap();
    let mine = s.props(c.id, u.id).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[1].xml, "<b>ü</b>".as_bytes());
    assert_eq!(
        s.props(c.id, v.id).await.unwrap()[0].xml,
        b"<a>other</a>",
        "properties are per user"
    );
    s.patch_props(
        c.id,
        u.id,
        vec![p("a", "<a>2</a>")],
        vec![("urn:t".into(), "b".into())],
    )
    .await
    .unwrap();
    let mine = s.props(c.id, u.id).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].xml, b"<a>2</a>");
    // Batch read for a Depth 1 listing: members only, this viewer only.
    let batch = s.child_props(home.id, u.id).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].0, c.id);
    assert_eq!(batch[0].1.xml, b"<a>2</a>");
    assert_eq!(s.child_props(c.id, u.id).await.unwrap().len(), 0);
}
contract!(per_user_properties, props);

async fn concurrent(f: Fixture) {
    // Two instances write into one calendar at once: every change gets its own number, and a
    // client syncing from any token sees every change exactly once.
    let u = user(&f.store, "u").await;
    let home = f.store.ensure_home(u.id, &[cal("c")]).await.unwrap();
    let c = f.store.child(home.id, "c").await.unwrap().unwrap();
    let mut tasks = vec![];
    for i in 0..40 {
        let s = if i % 2 == 0 {
            f.store.clone()
        } else {
            f.other.clone()
        };
        let cid = c.id;
        tasks.push(tokio::spawn(async move {
            s.put_object(
                cid,
                &format!("{i}.ics"),
                obj(&format!("u{i}"), "x"),
                WriteCondition::None,
            )
            .await
            .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = f.store.changes_since(c.id, None, None).await.unwrap();
    assert_eq!(all.len(), 40);
    let mut seqs: Vec<i64> = all.iter().map(Change::seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 40, "change numbers are unique");
    assert_eq!(f.store.resource(c.id).await.unwrap().unwrap().sync_seq, 40);
}
contract!(concurrent_writers, concurrent);

async fn time_index(f: Fixture) {
    let s = &f.store;
    let u = user(s, "u").await;
    let home = s.ensure_home(u.id, &[cal("a"), cal("b")]).await.unwrap();
    let a = s.child(home.id, "a").await.unwrap().unwrap();
    let b = s.child(home.id, "b").await.unwrap().unwrap();
    const H: i64 = 3600;
    const INF: i64 = i64::MAX / 4;
    let (short, _) = s
        .put_object(
            a.id,
            "short.ics",
            indexed("short", &[(100 * H, 101 * H)], INF),
            WriteCondition::None,
        )
        .await
        .unwrap();
    let (long, _) = s
        .put_object(
            a.id,
            "long.ics",
            indexed("long", &[(0, 1000 * H)], INF),
            WriteCondition::None,
        )
        .await
        .unwrap();
    let (weekly, _) = s
        .put_object(
            a.id,
            "weekly.ics",
            indexed("weekly", &[(10 * H, 11 * H), (178 * H, 179 * H)], 200 * H),
            WriteCondition::None,
        )
        .await
        .unwrap();
    // Rows are candidates; the exact RFC 4791 rule decides (as the query layer does).
    let ids = |rows: Vec<InstanceRow>| {
        let mut v: Vec<ResourceId> = rows.into_iter().map(|r| r.resource).collect();
        v.sort();
        v.dedup();
        v
    };
    // A window around "short" finds it and the long span (which started long before).
    let mut want = vec![short.id, long.id];
    want.sort();
    let exact = |rows: Vec<InstanceRow>, a: i64, b: i64| {
        let mut v: Vec<ResourceId> = rows
            .into_iter()
            .filter(|r| r.instance.matches(a, b))
            .map(|r| r.resource)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(
        exact(
            s.instances_between(a.id, 99 * H, 102 * H).await.unwrap(),
            99 * H,
            102 * H
        ),
        want
    );
    // Far from every row, nothing is a candidate.
    assert!(
        s.instances_between(a.id, 5000 * H, 5001 * H)
            .await
            .unwrap()
            .is_empty()
    );
    let rows = s.instances_between(a.id, 177 * H, 180 * H).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| r.resource == weekly.id && r.instance.start == 178 * H)
    );
    // Beyond its coverage the weekly object is reported for expansion; inside it, not.
    let inc = s.incomplete_objects(a.id, 300 * H, 400 * H).await.unwrap();
    assert_eq!(
        inc.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![weekly.id]
    );
    assert!(
        s.incomplete_objects(a.id, 0, 150 * H)
            .await
            .unwrap()
            .is_empty()
    );
    // Rewriting replaces the rows.
    s.put_object(
        a.id,
        "short.ics",
        indexed("short", &[(500 * H, 501 * H)], INF),
        WriteCondition::None,
    )
    .await
    .unwrap();
    assert!(!ids(s.instances_between(a.id, 99 * H, 102 * H).await.unwrap()).contains(&short.id));
    // A rewrite whose instances are the same keeps exactly one row per instance, with the
    // new bytes; one that changes only the coverage stores the new coverage.
    let weekly_rows = |rows: Vec<InstanceRow>| {
        rows.into_iter()
            .filter(|r| r.resource == weekly.id)
            .map(|r| (r.instance.start, r.instance.end))
            .collect::<Vec<_>>()
    };
    for (body, until) in [
        ("weekly v2", 200 * H),
        ("weekly v3", 300 * H),
        ("weekly v4", 200 * H),
    ] {
        let mut o = indexed("weekly", &[(10 * H, 11 * H), (178 * H, 179 * H)], until);
        o.data = body.as_bytes().to_vec();
        o.etag = format!("\"{body}\"");
        s.put_object(a.id, "weekly.ics", o, WriteCondition::None)
            .await
            .unwrap();
        assert_eq!(
            weekly_rows(s.instances_between(a.id, 0, 400 * H).await.unwrap()),
            vec![(10 * H, 11 * H), (178 * H, 179 * H)]
        );
        let w = s.child(a.id, "weekly.ics").await.unwrap().unwrap();
        assert_eq!(w.complete_until, Some(until));
        assert_eq!(s.object_data(w.id).await.unwrap().unwrap(), body.as_bytes());
    }
    // Move and copy carry the index to the destination calendar.
    s.transfer(&short, b.id, "moved.ics", false, true)
        .await
        .unwrap();
    assert_eq!(
        ids(s.instances_between(b.id, 499 * H, 502 * H).await.unwrap()),
        vec![short.id]
    );
    assert!(
        s.instances_between(a.id, 499 * H, 502 * H)
            .await
            .unwrap()
            .iter()
            .all(|r| r.resource != short.id)
    );
    s.transfer(&weekly, b.id, "copied.ics", false, false)
        .await
        .unwrap();
    let copied = s.child(b.id, "copied.ics").await.unwrap().unwrap();
    assert_eq!(copied.complete_until, Some(200 * H));
    assert!(ids(s.instances_between(b.id, 177 * H, 180 * H).await.unwrap()).contains(&copied.id));
    // Deleting removes the rows.
    s.delete(&copied, WriteCondition::None).await.unwrap();
    assert!(!ids(s.instances_between(b.id, 177 * H, 180 * H).await.unwrap()).contains(&copied.id));
}
contract!(time_range_index, time_index);

/// The in-memory listing must answer exactly as the SQL does, after every kind of change made
/// by another instance (it learns of them only through the collection's change number).
async fn listing(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let u = user(s, "u").await;
    let home = s.ensure_home(u.id, &[cal("a"), cal("b")]).await.unwrap();
    let a = s.child(home.id, "a").await.unwrap().unwrap();
    let b = s.child(home.id, "b").await.unwrap().unwrap();
    const H: i64 = 3600;
    const INF: i64 = i64::MAX / 4;
    let key = |rows: Vec<InstanceRow>| {
        let mut v: Vec<(i64, i64, i64)> = rows
            .into_iter()
            .map(|r| (r.resource.0, r.instance.start, r.instance.end))
            .collect();
        v.sort();
        v
    };
    let check = |step: &'static str| async move {
        let coll = s.resource(a.id).await.unwrap().unwrap();
        let shared = s.listing(&coll).await.unwrap().expect("fits the budget");
        let (members, windows, incomplete) = {
            let l = shared.read().unwrap();
            assert!(
                l.seq() >= coll.sync_seq,
                "{step}: listing older than the row"
            );
            let members: Vec<(String, Option<String>)> = l
                .members()
                .map(|r| (r.name.clone(), r.etag.clone()))
                .collect();
            let windows: Vec<_> = [(0, 50 * H), (99 * H, 102 * H), (170 * H, 600 * H)]
                .iter()
                .map(|&(x, y)| key(l.instances_between(x, y).collect()))
                .collect();
            let mut inc: Vec<i64> = l.incomplete(300 * H, 400 * H).map(|r| r.id.0).collect();
            inc.sort();
            (members, windows, inc)
        };
        let sql_members: Vec<(String, Option<String>)> = s
            .children(a.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.etag))
            .collect();
        assert_eq!(members, sql_members, "{step}: members");
        for (i, &(x, y)) in [(0, 50 * H), (99 * H, 102 * H), (170 * H, 600 * H)]
            .iter()
            .enumerate()
        {
            let sql = key(s.instances_between(a.id, x, y).await.unwrap());
            assert_eq!(windows[i], sql, "{step}: window {i}");
        }
        let mut sql_inc: Vec<i64> = s
            .incomplete_objects(a.id, 300 * H, 400 * H)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id.0)
            .collect();
        sql_inc.sort();
        assert_eq!(incomplete, sql_inc, "{step}: incomplete");
    };
    check("empty").await;
    let put = |name: &'static str, o: NewObject| async move {
        other
            .put_object(a.id, name, o, WriteCondition::None)
            .await
            .unwrap()
            .0
    };
    put("short.ics", indexed("short", &[(100 * H, 101 * H)], INF)).await;
    put("long.ics", indexed("long", &[(0, 1000 * H)], INF)).await;
    let weekly = put(
        "weekly.ics",
        indexed("weekly", &[(10 * H, 11 * H), (178 * H, 179 * H)], 200 * H),
    )
    .await;
    check("created").await;
    put("short.ics", indexed("short", &[(500 * H, 501 * H)], INF)).await;
    check("rewritten").await;
    other.delete(&weekly, WriteCondition::None).await.unwrap();
    check("deleted").await;
    // Deleted and created again under the same name, then renamed within the collection.
    put("weekly.ics", indexed("weekly2", &[(20 * H, 21 * H)], INF)).await;
    let again = other.child(a.id, "weekly.ics").await.unwrap().unwrap();
    other
        .transfer(&again, a.id, "renamed.ics", false, true)
        .await
        .unwrap();
    check("recreated and renamed").await;
    // Moved out and copied in.
    let short = other.child(a.id, "short.ics").await.unwrap().unwrap();
    other
        .transfer(&short, b.id, "moved.ics", false, true)
        .await
        .unwrap();
    let moved = other.child(b.id, "moved.ics").await.unwrap().unwrap();
    other
        .transfer(&moved, a.id, "copy.ics", false, false)
        .await
        .unwrap();
    check("moved and copied").await;
    // A listing read with an older row is still at least as new as that row.
    let stale = a.clone();
    let l = s.listing(&stale).await.unwrap().unwrap();
    assert!(l.read().unwrap().seq() >= stale.sync_seq);
    // A collection bigger than the budget is not cached: callers use the SQL path.
    let tiny = f.other.clone().with_listing_budget(2);
    let coll = tiny.resource(a.id).await.unwrap().unwrap();
    assert!(tiny.listing(&coll).await.unwrap().is_none());
}
contract!(listing_matches_sql, listing);

/// Path lookup in one statement: the chain stops at the first missing level.
async fn path_lookup(f: Fixture) {
    let s = &f.store;
    let u = user(s, "u").await;
    let v = user(s, "v").await;
    assert!(s.lookup_path(u.id, &[]).await.unwrap().is_empty());
    let home = s.ensure_home(u.id, &[cal("a")]).await.unwrap();
    s.ensure_home(v.id, &[cal("a")]).await.unwrap();
    let a = s.child(home.id, "a").await.unwrap().unwrap();
    let (o, _) = s
        .put_object(a.id, "o.ics", obj("o", "o"), WriteCondition::None)
        .await
        .unwrap();
    let names = |v: Vec<Resource>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let p = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(s.lookup_path(u.id, &[]).await.unwrap()),
        vec![home.id]
    );
    assert_eq!(
        names(s.lookup_path(u.id, &p(&["a"])).await.unwrap()),
        vec![home.id, a.id]
    );
    assert_eq!(
        names(s.lookup_path(u.id, &p(&["a", "o.ics"])).await.unwrap()),
        vec![home.id, a.id, o.id]
    );
    assert_eq!(
        names(s.lookup_path(u.id, &p(&["a", "nope.ics"])).await.unwrap()),
        vec![home.id, a.id]
    );
    // A missing middle level hides the (non-existent) level below it.
    assert_eq!(
        names(s.lookup_path(u.id, &p(&["b", "o.ics"])).await.unwrap()),
        vec![home.id]
    );
    // Another user's tree is never reached.
    let theirs = s.lookup_path(v.id, &p(&["a", "o.ics"])).await.unwrap();
    assert_eq!(theirs.len(), 2);
    assert_ne!(theirs[1].id, a.id);
}
contract!(path_lookup_in_one_statement, path_lookup);

/// SQLite only: an object write that finds SQLite's write lock held by another connection
/// (another process, or a write outside the store's queue) waits for it and succeeds, rather
/// than failing with "database is locked". The in-place write first tries the lock without
/// waiting and then queues; this holds the lock across that first try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_object_write_waits_for_a_held_write_lock() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let (s, c) = sqlite_calendar(&path).await;
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            s.put_object(c, "a.ics", obj("a", "v1"), WriteCondition::None)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let (res, created) = writer.await.unwrap().expect("the write waits, then lands");
    assert!(created);
    assert_eq!(res.name, "a.ics");
    assert_eq!(
        s.child(c, "a.ics").await.unwrap().map(|r| r.id),
        Some(res.id)
    );
}

/// The sharing worker's lease: one worker at a time, renewed only by the worker holding it,
/// and a worker that lost it (it lapsed and another took the calendar) can neither renew it
/// nor record its progress over the new holder's.
async fn share_lease(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let a = user(s, "ann").await;
    let home = s.ensure_home(a.id, &[]).await.unwrap();
    let c = s.create_collection(home.id, cal("work")).await.unwrap();
    let first = s.claim_share_cursor(c.id, 1000, 1120).await.unwrap();
    assert_eq!(first, Some(ShareCursor::default()));
    assert_eq!(
        other.claim_share_cursor(c.id, 1010, 1130).await.unwrap(),
        None
    );
    assert!(!other.renew_share_lease(c.id, 1130, 1200).await.unwrap());
    assert!(s.renew_share_lease(c.id, 1120, 1180).await.unwrap());
    // Still held at 1150 thanks to the renewal; lapsed at 1200.
    assert_eq!(
        other.claim_share_cursor(c.id, 1150, 1270).await.unwrap(),
        None
    );
    assert!(
        other
            .claim_share_cursor(c.id, 1200, 1320)
            .await
            .unwrap()
            .is_some()
    );
    let stale = ShareCursor {
        seq: 7,
        audience: "old".into(),
        refs: String::new(),
    };
    assert!(!s.renew_share_lease(c.id, 1180, 1300).await.unwrap());
    assert!(!s.release_share_cursor(c.id, &stale, 1180).await.unwrap());
    let done = ShareCursor {
        seq: 9,
        audience: "new".into(),
        refs: String::new(),
    };
    assert!(other.release_share_cursor(c.id, &done, 1320).await.unwrap());
    assert_eq!(
        s.claim_share_cursor(c.id, 1330, 1450).await.unwrap(),
        Some(done)
    );
}

contract!(share_lease_held_by_one, share_lease);

/// The iMIP outbox: a queued message is claimed by one instance at a time, sent once, and a
/// failed one waits for its next attempt; nothing is lost across instances.
async fn mail_outbox(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let organizer = user(s, "organizer").await;
    let origin = MailOrigin {
        owner: organizer.id,
        uid: "meeting-1".into(),
        attendee: "mailto:ext@elsewhere.test".into(),
    };
    let a = s
        .enqueue_mail("ext@elsewhere.test", b"message one", Some(&origin))
        .await
        .unwrap();
    let b = other
        .enqueue_mail("ext@elsewhere.test", b"message two", None)
        .await
        .unwrap();
    let now = now_epoch();
    let claimed = s.claim_mail(now, 120, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![a, b],
        "oldest first"
    );
    assert_eq!(claimed[0].message, b"message one");
    assert_eq!(
        (claimed[0].origin.as_ref(), claimed[1].origin.as_ref()),
        (Some(&origin), None),
        "what a message is about comes back with it"
    );
    assert!(
        other.claim_mail(now, 120, 10).await.unwrap().is_empty(),
        "held by the first claim"
    );
    s.mail_sent(a, now).await.unwrap();
    s.mail_failed(b, now + 60, "relay down").await.unwrap();
    assert!(
        other
            .claim_mail(now + 30, 120, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = other.claim_mail(now + 60, 120, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (b, 1));
    // A lease that lapsed (the instance died mid-send) lets another take it.
    let retaken = s.claim_mail(now + 200, 120, 10).await.unwrap();
    assert_eq!(retaken.iter().map(|m| m.id).collect::<Vec<_>>(), vec![b]);
    s.mail_sent(b, now + 200).await.unwrap();
    assert!(
        s.claim_mail(now + 10_000, 120, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.unsent_mail().await.unwrap(), 0);
}

contract!(mail_outbox_sends_once, mail_outbox);

/// A file-backed SQLite store at `path` with one calendar, for the tests of its WAL.
async fn sqlite_calendar(path: &std::path::Path) -> (Store, ResourceId) {
    let s = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let u = user(&s, "u").await;
    let home = s.ensure_home(u.id, &[cal("c")]).await.unwrap();
    let c = s.child(home.id, "c").await.unwrap().unwrap();
    (s, c.id)
}

/// The body of object `k` of `put_large_objects`: about 8 KB.
fn large_object(k: usize) -> NewObject {
    obj(&format!("o{k}"), &format!("{k}{}", "x".repeat(8000)))
}

/// Objects `o0.ics` .. of about 8 KB each, written one by one.
async fn put_large_objects(s: &Store, c: ResourceId, n: usize) {
    for k in 0..n {
        s.put_object(
            c,
            &format!("o{k}.ics"),
            large_object(k),
            WriteCondition::None,
        )
        .await
        .unwrap();
    }
}

/// The size of `file` once `done` holds for it, or after 5 s, polled every 50 ms.
async fn size_once(file: &std::path::Path, done: impl Fn(u64) -> bool) -> u64 {
    let size = || std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    for _ in 0..100 {
        if done(size()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    size()
}

/// SQLite only: a reader that holds its snapshot through a burst of writes keeps every
/// frame in the WAL; once it lets go, the checkpointer cuts the log back to the size limit
/// (16 MiB) without waiting for another write. A PASSIVE checkpoint alone copies the frames
/// but leaves the file at its high-water mark, and under steady load the log never starts
/// over (69 MB seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_emptied_once_a_long_reader_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let wal = dir.path().join("c.db-wal");
    let (s, c) = sqlite_calendar(&path).await;
    // A reader that keeps its snapshot: no checkpoint can empty the log while it reads.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM resources", [], |r| r.get(0))
        .unwrap();
    put_large_objects(&s, c, 1000).await;
    let grown = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let limit = 16 << 20;
    assert!(grown > limit, "the burst left only {grown} bytes of WAL");
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let size = size_once(&wal, |n| n <= limit).await;
    assert!(
        size <= limit,
        "the WAL still holds {size} bytes (grown to {grown}): it was never emptied"
    );
    let back = s.child(c, "o999.ics").await.unwrap().unwrap();
    assert_eq!(back.size, large_object(999).data.len() as i64);
}

/// SQLite only: writes reach the database file by a checkpoint made off the request path,
/// within moments, not when the WAL reaches the safety valve (64 MiB). Without the
/// checkpointer the main file would stay at its size after migrations while 1.6 MB of
/// objects sit in the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_checkpointed_in_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let (s, c) = sqlite_calendar(&path).await;
    put_large_objects(&s, c, 200).await;
    let size = size_once(&path, |n| n >= 1_600_000).await;
    assert!(
        size >= 1_600_000,
        "the database file holds {size} bytes: the WAL was not checkpointed"
    );
}

/// A user with a home and one calendar, `work`.
async fn with_calendar(s: &Store, name: &str) -> (User, Resource) {
    let u = user(s, name).await;
    let home = s.ensure_home(u.id, &[cal("work")]).await.unwrap();
    let work = s.child(home.id, "work").await.unwrap().expect("work");
    (u, work)
}

/// Subscription feeds: made, listed to their owner only, found by token hash (stamping the
/// use, seen by another instance), revoked by their owner only, and gone with the calendar.
async fn feeds(f: Fixture) {
    use convene::ical::privacy::Detail;
    let (s, other) = (&f.store, &f.other);
    let (ann, work) = with_calendar(s, "ann").await;
    let bob = user(s, "bob").await;
    let feed = s
        .create_feed(ann.id, work.id, "Outlook", "hash-1", Detail::Busy)
        .await
        .unwrap();
    assert_eq!(
        (
            feed.owner,
            feed.calendar,
            feed.label.as_str(),
            feed.detail,
            feed.last_used_at
        ),
        (ann.id, work.id, "Outlook", Detail::Busy, None)
    );
    assert_eq!(s.feeds_of(ann.id).await.unwrap(), vec![feed.clone()]);
    assert!(s.feeds_of(bob.id).await.unwrap().is_empty());
    let used = other.use_feed("hash-1").await.unwrap().expect("found");
    assert_eq!(used.id, feed.id);
    assert!(s.feeds_of(ann.id).await.unwrap()[0].last_used_at.is_some());
    assert_eq!(s.use_feed("hash-2").await.unwrap(), None);
    assert!(!s.revoke_feed(bob.id, feed.id).await.unwrap(), "not bob's");
    assert!(other.revoke_feed(ann.id, feed.id).await.unwrap());
    assert_eq!(s.use_feed("hash-1").await.unwrap(), None);
    // A feed of a calendar that is deleted goes with it.
    s.create_feed(ann.id, work.id, "again", "hash-3", Detail::Full)
        .await
        .unwrap();
    s.delete(&work, WriteCondition::None).await.unwrap();
    assert_eq!(s.use_feed("hash-3").await.unwrap(), None);
}

contract!(subscription_feeds, feeds);

/// App passwords: found by their lookup part, listed and revoked by their user only, stamped
/// when used, and gone with the user.
async fn app_passwords(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let ann = user(s, "ann").await;
    let bob = user(s, "bob").await;
    let p = s
        .create_app_password(NewAppPassword {
            user: ann.id,
            name: "Phone".into(),
            lookup: "lk1".into(),
            hash: "h1".into(),
            scope: "caldav".into(),
            expires_at: Some(2_000_000_000),
        })
        .await
        .unwrap();
    assert_eq!(
        (
            p.user,
            p.name.as_str(),
            p.scope.as_str(),
            p.expires_at,
            p.last_used_at
        ),
        (ann.id, "Phone", "caldav", Some(2_000_000_000), None)
    );
    assert_eq!(
        other.app_password_by_lookup("lk1").await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(s.app_password_by_lookup("lk2").await.unwrap(), None);
    s.touch_app_password(p.id, 1_900_000_000).await.unwrap();
    assert_eq!(
        other.app_passwords_of(ann.id).await.unwrap()[0].last_used_at,
        Some(1_900_000_000)
    );
    assert!(s.app_passwords_of(bob.id).await.unwrap().is_empty());
    assert!(
        !s.revoke_app_password(bob.id, p.id).await.unwrap(),
        "not bob's"
    );
    assert!(s.revoke_app_password(ann.id, p.id).await.unwrap());
    assert_eq!(other.app_password_by_lookup("lk1").await.unwrap(), None);
    // Removing the user removes theirs.
    let q = s
        .create_app_password(NewAppPassword {
            user: bob.id,
            name: "Laptop".into(),
            lookup: "lk3".into(),
            hash: "h3".into(),
            scope: "all".into(),
            expires_at: None,
        })
        .await
        .unwrap();
    s.delete_user(bob.id).await.unwrap();
    assert_eq!(s.app_password_by_lookup(&q.lookup).await.unwrap(), None);
}

contract!(app_password_records, app_passwords);

/// Web sessions (live until they expire, renewed, ended one by one or all of a user's),
/// OpenID Connect links (one identity to one user per issuer) and group memberships per
/// source.
async fn sessions(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let ann = user(s, "ann").await;
    let bob = user(s, "bob").await;
    let new = |hash: &str, who: &User, expires_at: i64| NewSession {
        token_hash: hash.into(),
        user: who.id,
        expires_at,
        id_token: Some("idt".into()),
        refresh_sealed: None,
        refresh_due: None,
    };
    let a = s.create_session(new("t1", &ann, 1_000)).await.unwrap();
    s.create_session(new("t2", &ann, 2_000)).await.unwrap();
    s.create_session(new("t3", &bob, 2_000)).await.unwrap();
    let (found, who) = other
        .session_by_hash("t1", 500)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(
        (found.id, who.id, found.id_token.as_deref()),
        (a.id, ann.id, Some("idt"))
    );
    assert_eq!(
        s.session_by_hash("t1", 1_000).await.unwrap(),
        None,
        "expired"
    );
    s.renew_session(a.id, Some("idt2"), Some("sealed"), Some(900))
        .await
        .unwrap();
    let (renewed, _) = s.session_by_hash("t1", 500).await.unwrap().expect("live");
    assert_eq!(
        (
            renewed.id_token.as_deref(),
            renewed.refresh_sealed.as_deref(),
            renewed.refresh_due
        ),
        (Some("idt2"), Some("sealed"), Some(900))
    );
    assert_eq!(s.purge_sessions(1_500).await.unwrap(), 1, "t1 had expired");
    assert_eq!(s.delete_sessions_of(ann.id).await.unwrap(), 1);
    assert_eq!(s.session_by_hash("t2", 0).await.unwrap(), None);
    let (b, _) = s
        .session_by_hash("t3", 0)
        .await
        .unwrap()
        .expect("bob's stays");
    assert!(other.delete_session(b.id).await.unwrap());
    assert!(!s.delete_session(b.id).await.unwrap());

    // OpenID Connect identities.
    s.link_oidc("https://idp", "sub-ann", ann.id).await.unwrap();
    assert_eq!(
        other
            .user_by_oidc("https://idp", "sub-ann")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ann.id)
    );
    assert_eq!(
        s.user_by_oidc("https://other", "sub-ann").await.unwrap(),
        None
    );
    assert!(matches!(
        s.link_oidc("https://idp", "sub-ann", bob.id).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        s.link_oidc("https://idp", "sub-ann-2", ann.id).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(s.has_oidc(Some("https://idp"), ann.id).await.unwrap());
    assert!(s.has_oidc(None, ann.id).await.unwrap());
    assert!(!s.has_oidc(None, bob.id).await.unwrap());

    // Groups, per source, replaced whole.
    s.set_user_groups(ann.id, GroupSource::Oidc, &["staff".into(), "eng".into()])
        .await
        .unwrap();
    s.set_user_groups(ann.id, GroupSource::Directory, &["staff".into()])
        .await
        .unwrap();
    s.set_user_groups(bob.id, GroupSource::Oidc, &["staff".into()])
        .await
        .unwrap();
    assert_eq!(other.groups_of(ann.id).await.unwrap(), vec!["eng", "staff"]);
    let members = s.group_members(GroupSource::Oidc).await.unwrap();
    let names = |g: &str| {
        members
            .iter()
            .find(|(n, _)| n == g)
            .map(|(_, us)| us.iter().map(|u| u.name.clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        (names("staff"), names("eng")),
        (
            vec!["ann".to_string(), "bob".to_string()],
            vec!["ann".to_string()]
        )
    );
    s.set_user_groups(ann.id, GroupSource::Oidc, &[])
        .await
        .unwrap();
    assert_eq!(
        s.groups_of(ann.id).await.unwrap(),
        vec!["staff"],
        "ldap's stays"
    );
}

contract!(sessions_identities_groups, sessions);

/// Calendar shares (one per calendar and sharee, access changed in place, found by invite,
/// mount and sharee), access requests (one open per pair, decided once) and a sharee's
/// personal data.
async fn calendar_shares(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let (ann, work) = with_calendar(s, "ann").await;
    let bob = user(s, "bob").await;
    let (share, new) = s
        .set_calendar_share(
            work.id,
            ann.id,
            bob.id,
            ShareAccess::Read,
            Some("Ann's"),
            false,
        )
        .await
        .unwrap();
    assert!(new);
    assert_eq!(
        (share.access, share.status, share.summary.as_deref()),
        (ShareAccess::Read, InviteStatus::NoResponse, Some("Ann's"))
    );
    assert!(share.mount.starts_with("shared~"), "{}", share.mount);
    let (same, changed) = other
        .set_calendar_share(
            work.id,
            ann.id,
            bob.id,
            ShareAccess::Read,
            Some("Ann's"),
            false,
        )
        .await
        .unwrap();
    assert_eq!((same.id, changed), (share.id, false));
    let (rw, changed) = s
        .set_calendar_share(work.id, ann.id, bob.id, ShareAccess::ReadWrite, None, false)
        .await
        .unwrap();
    assert_eq!(
        (rw.id, rw.access, changed),
        (share.id, ShareAccess::ReadWrite, true)
    );
    assert_eq!(
        other
            .share_by_invite(&share.invite_uid)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(share.id)
    );
    assert_eq!(
        s.share_by_mount(bob.id, &share.mount)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(share.id)
    );
    assert_eq!(s.share_by_mount(ann.id, &share.mount).await.unwrap(), None);
    s.set_share_status(share.id, InviteStatus::Accepted)
        .await
        .unwrap();
    assert_eq!(
        other.shares_to(bob.id).await.unwrap()[0].status,
        InviteStatus::Accepted
    );
    assert_eq!(s.shared_calendar_ids(ann.id).await.unwrap(), vec![work.id]);
    assert_eq!(s.shares_of_calendar(work.id).await.unwrap().len(), 1);

    // Personal data of the sharee, per member.
    let (member, _) = s
        .put_object(work.id, "m.ics", obj("m", "m"), WriteCondition::None)
        .await
        .unwrap();
    s.set_personal_data(member.id, bob.id, "\"e1\"", b"alarm 1")
        .await
        .unwrap();
    s.set_personal_data(member.id, bob.id, "\"e2\"", b"alarm 2")
        .await
        .unwrap();
    assert_eq!(
        other.personal_data_in(work.id, bob.id).await.unwrap(),
        vec![(member.id, "\"e2\"".to_string(), b"alarm 2".to_vec())]
    );
    assert!(
        s.personal_data_in(work.id, ann.id)
            .await
            .unwrap()
            .is_empty()
    );

    let removed = s.remove_calendar_share(work.id, bob.id).await.unwrap();
    assert_eq!(removed.map(|x| x.id), Some(share.id));
    assert!(s.shares_to(bob.id).await.unwrap().is_empty());
    assert_eq!(
        s.remove_calendar_share(work.id, bob.id).await.unwrap(),
        None
    );

    // Access requests.
    let far = now_epoch() + 86_400;
    let r = s
        .open_access_request(access_request(
            (bob.id, ann.id),
            ShareAccess::ReadWrite,
            Some("please"),
            &["work".to_string(), "team".to_string()],
            "req-1",
            far,
        ))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.message.as_deref()),
        (RequestStatus::Open, Some("please"))
    );
    assert_eq!(r.calendars, vec!["work", "team"]);
    assert!(matches!(
        other
            .open_access_request(access_request(
                (bob.id, ann.id),
                ShareAccess::Read,
                None,
                &[],
                "req-2",
                far
            ))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        s.access_request_by_uid("req-1")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(r.id)
    );
    assert_eq!(s.access_requests_of(ann.id).await.unwrap().len(), 1);
    assert_eq!(s.access_requests_of(bob.id).await.unwrap().len(), 1);
    assert_eq!(s.access_requests_since(bob.id, 0).await.unwrap(), 1);
    assert!(
        s.decide_access_request(r.id, RequestStatus::Granted, Some(ShareAccess::Read))
            .await
            .unwrap()
    );
    assert!(
        !other
            .decide_access_request(r.id, RequestStatus::Refused, None)
            .await
            .unwrap(),
        "decided once"
    );
    let decided = s.access_request(r.id).await.unwrap().expect("kept");
    assert_eq!(
        (decided.status, decided.granted),
        (RequestStatus::Granted, Some(ShareAccess::Read))
    );
    // Closed, so the pair may ask again; an expired open one does not stand in the way.
    s.open_access_request(access_request(
        (bob.id, ann.id),
        ShareAccess::Read,
        None,
        &[],
        "req-3",
        now_epoch() - 1,
    ))
    .await
    .unwrap();
    s.open_access_request(access_request(
        (bob.id, ann.id),
        ShareAccess::Read,
        None,
        &[],
        "req-4",
        far,
    ))
    .await
    .unwrap();
}

contract!(calendar_shares_and_access_requests, calendar_shares);

/// An access request from `who.0` to `who.1`.
fn access_request<'a>(
    who: (UserId, UserId),
    access: ShareAccess,
    message: Option<&'a str>,
    calendars: &'a [String],
    uid: &'a str,
    expires_at: i64,
) -> NewAccessRequest<'a> {
    NewAccessRequest {
        requester: who.0,
        owner: who.1,
        access,
        message,
        calendars,
        uid,
        expires_at,
    }
}

/// Delegates: the read and write groups are set whole, a member moved from one to the other
/// changes group, the owner is never their own delegate, and both directions agree.
async fn delegates(f: Fixture) {
    let (s, other) = (&f.store, &f.other);
    let ann = user(s, "ann").await;
    let bob = user(s, "bob").await;
    let cid = user(s, "cid").await;
    s.set_delegates(ann.id, false, &[bob.id, cid.id, ann.id])
        .await
        .unwrap();
    assert_eq!(other.delegation(ann.id, bob.id).await.unwrap(), Some(false));
    assert_eq!(
        s.delegation(ann.id, ann.id).await.unwrap(),
        None,
        "not her own"
    );
    s.set_delegates(ann.id, true, &[bob.id]).await.unwrap();
    let mut of = s
        .delegates_of(ann.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, w)| (u.name, w))
        .collect::<Vec<_>>();
    of.sort();
    assert_eq!(
        of,
        vec![("bob".to_string(), true), ("cid".to_string(), false)]
    );
    assert_eq!(
        other
            .delegators_of(bob.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(u, w)| (u.name, w))
            .collect::<Vec<_>>(),
        vec![("ann".to_string(), true)]
    );
    s.set_delegates(ann.id, false, &[]).await.unwrap();
    assert_eq!(s.delegation(ann.id, cid.id).await.unwrap(), None);
    assert_eq!(
        s.delegation(ann.id, bob.id).await.unwrap(),
        Some(true),
        "write stays"
    );
    assert_eq!(
        s.delegation(bob.id, ann.id).await.unwrap(),
        None,
        "one direction"
    );
}

contract!(delegates_read_and_write, delegates);

/// Convene's own org chart: departments (a tree, a head), groups with members, people with a
/// department and a manager; a removed account or department leaves every row that named it.
async fn org_chart(f: Fixture) {
    let s = &f.store;
    let ann = user(s, "ann").await;
    let bob = user(s, "bob").await;
    let top = OrgDepartment {
        name: "Eng".into(),
        parent: None,
        description: Some("Engineering".into()),
        head: Some("ann".into()),
    };
    s.put_department(&top).await.unwrap();
    let sub = OrgDepartment {
        name: "Web".into(),
        parent: Some("Eng".into()),
        description: None,
        head: None,
    };
    s.put_department(&sub).await.unwrap();
    s.put_group("staff", Some("Everyone")).await.unwrap();
    assert!(s.set_group_member("staff", ann.id, true).await.unwrap());
    assert!(!s.set_group_member("staff", ann.id, true).await.unwrap());
    assert!(s.set_group_member("staff", bob.id, true).await.unwrap());
    s.put_group("empty", None).await.unwrap();
    let bob_entry = OrgPerson {
        title: Some("Dev".into()),
        department: Some("Web".into()),
        manager: Some("ann".into()),
    };
    s.put_person(bob.id, &bob_entry).await.unwrap();
    let (deps, groups, people) = f.other.org_chart().await.unwrap();
    assert_eq!(deps, vec![top.clone(), sub.clone()]);
    assert_eq!(
        groups,
        vec![
            OrgGroup {
                name: "empty".into(),
                description: None,
                members: vec![]
            },
            OrgGroup {
                name: "staff".into(),
                description: Some("Everyone".into()),
                members: vec!["ann".into(), "bob".into()]
            }
        ]
    );
    assert_eq!(people, vec![("bob".to_string(), bob_entry)]);
    // Replacing is whole; removing a department and an account clears what named them.
    s.put_department(&OrgDepartment {
        description: None,
        ..top.clone()
    })
    .await
    .unwrap();
    assert!(s.remove_department("Web").await.unwrap());
    assert!(!s.remove_department("Web").await.unwrap());
    s.delete_user(ann.id).await.unwrap();
    let (deps, groups, people) = s.org_chart().await.unwrap();
    assert_eq!(deps.len(), 1);
    assert_eq!(
        (deps[0].head.as_deref(), deps[0].description.as_deref()),
        (None, None)
    );
    assert_eq!(groups[1].members, vec!["bob".to_string()]);
    assert_eq!(
        people[0].1,
        OrgPerson {
            title: Some("Dev".into()),
            department: None,
            manager: None,
        }
    );
    assert!(s.remove_group("staff").await.unwrap());
    assert!(!s.set_group_member("staff", bob.id, false).await.unwrap());
}

contract!(org_chart_tables, org_chart);

/// The login proxy's hand-off codes (one use, expiry, gone with their session), the session
/// lookup by id, and the systems registered with the CLI.
async fn bridge_handoffs_and_systems(f: Fixture) {
    use convene::store::{BindingStore as _, Handoff};
    let (s, other) = (&f.store, &f.other);
    let ann = user(s, "ann").await;
    let sess = s
        .create_session(NewSession {
            token_hash: "h1".into(),
            user: ann.id,
            expires_at: 5_000,
            id_token: None,
            refresh_sealed: None,
            refresh_due: None,
        })
        .await
        .unwrap();
    let (found, who) = other.session_by_id(sess.id, 100).await.unwrap().unwrap();
    assert_eq!((found.id, who.id), (sess.id, ann.id));
    assert!(
        other.session_by_id(sess.id, 5_000).await.unwrap().is_none(),
        "expired"
    );
    let code = |hash: &str, expires_at: i64| Handoff {
        code_hash: hash.into(),
        session: sess.id,
        system: "hr".into(),
        next: "/payslip".into(),
        expires_at,
    };
    s.add_handoff(&code("c1", 160), 100).await.unwrap();
    s.add_handoff(&code("c2", 110), 100).await.unwrap();
    // Once, from any instance.
    assert_eq!(
        other.take_handoff("c1", 120).await.unwrap(),
        Some(code("c1", 160))
    );
    assert_eq!(s.take_handoff("c1", 120).await.unwrap(), None);
    // Expired: gone, and not redeemed.
    assert_eq!(s.take_handoff("c2", 120).await.unwrap(), None);
    s.add_handoff(&code("c3", 900), 100).await.unwrap();
    s.delete_session(sess.id).await.unwrap();
    assert_eq!(
        s.take_handoff("c3", 120).await.unwrap(),
        None,
        "gone with the session"
    );

    s.register_system("payroll", r#"{"name":"payroll"}"#, 1)
        .await
        .unwrap();
    s.register_system("payroll", r#"{"name":"payroll","label":"P"}"#, 2)
        .await
        .unwrap();
    assert_eq!(
        other.registered_systems().await.unwrap(),
        vec![(
            "payroll".to_string(),
            r#"{"name":"payroll","label":"P"}"#.to_string()
        )]
    );
    assert!(other.unregister_system("payroll").await.unwrap());
    assert!(!s.unregister_system("payroll").await.unwrap());
}

contract!(bridge_handoff_tables, bridge_handoffs_and_systems);
