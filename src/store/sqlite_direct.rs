//! The SQLite hot path, called in place: the few statements every CalDAV request runs (the
//! account, the path, bodies, dead properties, the change log) and the object write, on
//! connections of our own through `rusqlite`, on the calling thread.
//!
//! Why it exists: sqlx runs each SQLite connection on a thread of its own and answers every
//! statement through channels, and its pool pings the connection each time one is returned.
//! On this kind of 2-core machine a round trip costs about 80 µs of CPU in thread switches, far
//! more than the statement (a few µs), and it was most of the cost of a request. Statements
//! here take microseconds, so running them on a runtime thread costs less than handing them
//! off. Everything else, and everything on PostgreSQL, stays on sqlx (`store::sql`). Which
//! statements run here is decided in one place: the `route!` calls of the `Store` facade.
//!
//! Both libraries link the one `libsqlite3-sys` (a `links` crate: Cargo allows a single copy),
//! so SQLite's per-process file locking sees every connection. The object write first tries to
//! take SQLite's write lock without waiting; only when another connection holds it does the
//! caller take the sqlx writer connection (`SqliteStore::put_object_in_place`) and wait its turn, so
//! writers still queue in order instead of in SQLite's sleeping busy handler.
//!
//! This module must never hold a connection across an `.await`. A statement whose cost grows
//! with a collection runs only in `load_listing`, which its caller moves to the blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::ical::index::{Instance, MatchRule};
use crate::store::listing::Listing;
use crate::store::sql::res_cols;
use crate::store::{
    Change, InstanceRow, LONG_SPAN, NewObject, Resource, ResourceId, ResourceKind, Result, Session,
    StoreError, StoredProp, User, UserId, WriteCondition, check_object_write, now,
};

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TREE_DEPTH: usize = 64;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Direct(e.to_string())
    }
}

/// Connections of our own to the store's file: a few readers and one writer.
pub struct Direct {
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    writer: Mutex<Connection>,
    _checkpointer: Checkpointer,
}

/// WAL frames (pages) at which a commit checkpoints by itself: a safety valve (64 MiB) only.
/// The checkpoints are made by `Checkpointer`, off the request path.
pub(crate) const WAL_AUTOCHECKPOINT: &str = "16000";

/// Bytes the WAL file is cut back to whenever the log starts over (`journal_size_limit`).
/// Above `WAL_RESTART_FRAMES` with room to spare, so in steady use the log starts over in
/// a file that keeps its size (see `checkpoint_tick`).
pub(crate) const WAL_SIZE_LIMIT: i64 = 16 << 20;

/// Bytes per WAL frame: a page (SQLite's default 4 KiB, which the store keeps) and its
/// 24-byte header.
const WAL_FRAME_BYTES: i64 = 4096 + 24;

/// WAL frames past which the checkpointer waits for readers so the log can start over.
const WAL_RESTART_FRAMES: i64 = 2048;

/// How long that wait may hold new writers back before it gives up until the next tick.
const RESTART_WAIT: Duration = Duration::from_millis(50);

/// How often the checkpointer looks for new commits.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies the WAL back into the database a few times a second, on a thread of its own.
///
/// Why: SQLite's own checkpoint runs inside the commit that crosses its threshold, so one
/// request in a thousand pages pays for copying them (a latency spike), and at 1,000 pages it
/// runs often enough to copy the same hot pages (the calendar's row, the index leaves writes
/// append to) over and over. A PASSIVE checkpoint here blocks neither readers nor the writer,
/// and copies each page once per interval however often it was written.
///
/// A PASSIVE checkpoint never makes the log start over: the next writer restarts it only if
/// no reader still reads from it, and under steady load one always does, so the file grew
/// without bound (69 MB after 40,000 mixed requests). Past `WAL_RESTART_FRAMES` the
/// checkpointer therefore runs a RESTART checkpoint (TRUNCATE for a log past
/// `WAL_SIZE_LIMIT`), which waits (at most `RESTART_WAIT`, holding new writers back) for the
/// readers to move to the database file, so that the next write starts the log over; if a
/// long reader outlasts the wait it tries again on the next tick.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

/// One checkpoint: whether it finished (every frame copied, and for RESTART and TRUNCATE no
/// reader left in the log, so it starts over), and the log's length in frames.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(bool, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        let (busy, log, copied) = (
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        );
        Ok((busy == 0 && copied >= log, log))
    })
}

/// When the checkpointer may next hold writers back to empty the log: after each wait that
/// a reader outlasted, it lets twice as many ticks pass (up to `MAX_BACKOFF`), so a long
/// reader (a big REPORT streaming out) does not stall writes every tick it runs.
#[derive(Default)]
struct RestartBackoff {
    wait_ticks: u32,
    failures: u32,
}

const MAX_BACKOFF: u32 = 32;

impl RestartBackoff {
    fn ready(&mut self) -> bool {
        if self.wait_ticks == 0 {
            return true;
        }
        self.wait_ticks -= 1;
        false
    }

    fn record(&mut self, restarted: bool) {
        if restarted {
            *self = RestartBackoff::default();
        } else {
            self.failures = (self.failures + 1).min(6);
            self.wait_ticks = (1u32 << self.failures).min(MAX_BACKOFF);
        }
    }
}

/// One tick: true when the log needs no further work until the next commit.
fn checkpoint_tick(conn: &Connection, backoff: &mut RestartBackoff) -> rusqlite::Result<bool> {
    let (done, frames) = checkpoint(conn, "PASSIVE")?;
    if frames < WAL_RESTART_FRAMES {
        return Ok(done);
    }
    if !backoff.ready() {
        return Ok(false);
    }
    // RESTART makes the next writer start the log over at the top of the file, which keeps
    // its size: its pages stay in the kernel's page cache and are overwritten in place.
    // TRUNCATE empties the file, and then every frame written extends it again, so the
    // kernel allocates and zeroes a fresh page for each (`perf`: page-cache work fell from
    // 12% to 6% of the server's CPU in a PUT run). Only a log that outgrew the size limit
    // (a long reader held it) is truncated, to give the disk back at once.
    let mode = if frames * WAL_FRAME_BYTES > WAL_SIZE_LIMIT {
        "TRUNCATE"
    } else {
        "RESTART"
    };
    let (restarted, frames) = checkpoint(conn, mode)?;
    backoff.record(restarted);
    tracing::debug!(restarted, frames, "checkpointer: starting the log over");
    Ok(restarted)
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = open(path, false)?;
        conn.busy_timeout(RESTART_WAIT)?;
        // A checkpoint copies pages from the log to the file without the page cache.
        conn.pragma_update(None, "cache_size", "-64")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut seen: Option<i64> = None;
                let mut backoff = RestartBackoff::default();
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    // Changes when another connection commits; cheap (the WAL header).
                    let version: rusqlite::Result<i64> =
                        conn.query_row("PRAGMA data_version", [], |r| r.get(0));
                    let version = match version {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::debug!(error = %e, "checkpointer: data_version failed");
                            continue;
                        }
                    };
                    if seen == Some(version) {
                        continue;
                    }
                    match checkpoint_tick(&conn, &mut backoff) {
                        Ok(true) => seen = Some(version),
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "checkpoint failed; retried"),
                    }
                }
            })
            .map_err(|e| StoreError::Direct(format!("checkpointer thread: {e}")))?;
        Ok(Checkpointer {
            stop,
            thread: handle.thread().clone(),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn open(path: &Path, reader: bool) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.set_prepared_statement_cache_capacity(64);
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    c.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // One plan per statement whatever the bound values: otherwise a range on a bound value
    // (the change log's `mod_seq > ?`) makes SQLite compile the statement again on every run.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    if reader {
        c.pragma_update(None, "query_only", "ON")?;
    }
    Ok(c)
}

fn map_user(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId(r.get(0)?),
        name: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        password_hash: r.get(4)?,
        disabled: r.get::<_, i64>(5)? != 0,
        created_at: r.get(6)?,
    })
}

/// `resource_id, start_at, end_at, rule, floating`, in that order.
fn map_instance(r: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        resource: ResourceId(r.get(0)?),
        instance: Instance {
            start: r.get(1)?,
            end: r.get(2)?,
            rule: MatchRule::from_code(r.get(3)?),
            floating: r.get::<_, i64>(4)? != 0,
        },
    })
}

/// The columns `map_user` reads, in its order.
macro_rules! user_cols {
    () => {
        "id, name, email, display_name, password_hash, disabled, created_at"
    };
}

/// Columns in `res_cols!` order, as `store::sql` maps them.
fn map_resource(r: &Row<'_>) -> rusqlite::Result<Result<Resource>> {
    let kind: String = r.get(5)?;
    let kind = match ResourceKind::parse(&kind) {
        Ok(k) => k,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(Resource {
        id: ResourceId(r.get(0)?),
        uuid: r.get(1)?,
        owner: UserId(r.get(2)?),
        parent: r.get::<_, Option<i64>>(3)?.map(ResourceId),
        name: r.get(4)?,
        kind,
        content_type: r.get(6)?,
        etag: r.get(7)?,
        size: r.get(8)?,
        uid: r.get(9)?,
        component: r.get(10)?,
        supported_components: r.get(11)?,
        sync_seq: r.get(12)?,
        mod_seq: r.get(13)?,
        tomb_floor: r.get(14)?,
        created_at: r.get(15)?,
        modified_at: r.get(16)?,
        complete_until: r.get(17)?,
        first_start: r.get(18)?,
        last_end: r.get(19)?,
        schedule_tag: r.get(20)?,
    }))
}

impl Direct {
    pub fn open(path: &Path) -> Result<Self> {
        let readers = (0..READERS)
            .map(|_| open(path, true).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(Direct {
            readers,
            next: AtomicUsize::new(0),
            writer: Mutex::new(open(path, false)?),
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Run a short read `f` on the writer connection when no write holds it, else on a free
    /// reader (or wait briefly for one: statements here are short).
    ///
    /// Why the writer first: a commit on one connection empties every other connection's page
    /// cache (SQLite WAL tracks changes per database, not per page), and the next read there
    /// reloads each page it touches. The writer's cache survives its own commits, so reads
    /// that follow writes (the next request's account and path) find their pages. Readers
    /// are taken first-free, not in turn, so that under concurrency few caches are refilled.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if let Ok(c) = self.writer.try_lock() {
            return f(&c);
        }
        self.read_long(f)
    }

    /// Run `f` on a reader only: for reads long enough that they must not hold back a write.
    fn read_long<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        for r in &self.readers {
            if let Ok(c) = r.try_lock() {
                return f(&c);
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let c = self.readers[start % self.readers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f(&c)
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        self.read(|c| {
            let sql = concat!("SELECT ", user_cols!(), " FROM users WHERE name = ?1");
            Ok(c.prepare_cached(sql)?
                .query_row(params![name], map_user)
                .optional()?)
        })
    }

    /// The live session with this id, and its user (the login proxy asks on every request).
    pub fn session_by_id(&self, id: i64, now: i64) -> Result<Option<(Session, User)>> {
        self.read(|c| {
            let sql = concat!(
                "SELECT u.id, u.name, u.email, u.display_name, u.password_hash, u.disabled, u.created_at, ",
                "s.id, s.user_id, s.created_at, s.expires_at, s.id_token, s.refresh_sealed, s.refresh_due ",
                "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1 AND s.expires_at > ?2"
            );
            Ok(c.prepare_cached(sql)?
                .query_row(params![id, now], |r| {
                    Ok((
                        Session {
                            id: r.get(7)?,
                            user: UserId(r.get(8)?),
                            created_at: r.get(9)?,
                            expires_at: r.get(10)?,
                            id_token: r.get(11)?,
                            refresh_sealed: r.get(12)?,
                            refresh_due: r.get(13)?,
                        },
                        map_user(r)?,
                    ))
                })
                .optional()?)
        })
    }

    pub fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        self.read(|c| {
            let sql = concat!("SELECT ", user_cols!(), " FROM users WHERE id = ?1");
            Ok(c.prepare_cached(sql)?
                .query_row(params![id.0], map_user)
                .optional()?)
        })
    }

    /// One resource row by a statement over its key (`store::sql` runs the same ones).
    fn resource_where(&self, cond: &str, args: impl rusqlite::Params) -> Result<Option<Resource>> {
        self.read(|c| {
            let sql = format!("SELECT {} FROM resources WHERE {cond}", res_cols!());
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(args)?;
            match rows.next()? {
                Some(r) => Ok(Some(map_resource(r)??)),
                None => Ok(None),
            }
        })
    }

    pub fn resource(&self, id: ResourceId) -> Result<Option<Resource>> {
        self.resource_where("id = ?1", params![id.0])
    }

    pub fn home(&self, owner: UserId) -> Result<Option<Resource>> {
        self.resource_where("owner_id = ?1 AND parent_id IS NULL", params![owner.0])
    }

    pub fn child(&self, parent: ResourceId, name: &str) -> Result<Option<Resource>> {
        self.resource_where("parent_id = ?1 AND name = ?2", params![parent.0, name])
    }

    pub fn object_data(&self, id: ResourceId) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT data FROM resources WHERE id = ?1")?
                    .query_row(params![id.0], |r| r.get::<_, Option<Vec<u8>>>(0))
                    .optional()?
                    .flatten(),
            )
        })
    }

    pub fn object_datas(&self, ids: &[ResourceId]) -> Result<Vec<(ResourceId, Vec<u8>)>> {
        self.read(|c| {
            // One statement per id, kept prepared (cheaper here than an IN list compiled anew),
            // inside one read transaction: one snapshot, and one round of WAL locks, not one
            // per statement.
            let tx = c.unchecked_transaction()?;
            let mut out = Vec::with_capacity(ids.len());
            {
                let mut st = tx.prepare_cached(
                    "SELECT data FROM resources WHERE id = ?1 AND data IS NOT NULL",
                )?;
                for id in ids {
                    if let Some(d) = st
                        .query_row(params![id.0], |r| r.get::<_, Vec<u8>>(0))
                        .optional()?
                    {
                        out.push((*id, d));
                    }
                }
            }
            tx.finish()?;
            Ok(out)
        })
    }

    /// Home, and up to two levels below it, as `store::sql` `lookup_path` (its statement, unsorted).
    pub fn lookup_path(&self, owner: UserId, names: &[String]) -> Result<Vec<Resource>> {
        self.read(|c| {
            let mut st = c.prepare_cached(concat!(
                "SELECT ",
                res_cols!(),
                ", 0 FROM resources WHERE owner_id = ?1 AND parent_id IS NULL \
                 UNION ALL SELECT ",
                res_cols!(),
                ", 1 FROM resources WHERE name = ?2 AND parent_id = \
                 (SELECT id FROM resources WHERE owner_id = ?1 AND parent_id IS NULL) \
                 UNION ALL SELECT ",
                res_cols!(),
                ", 2 FROM resources WHERE name = ?3 AND parent_id = \
                 (SELECT id FROM resources WHERE name = ?2 AND parent_id = \
                 (SELECT id FROM resources WHERE owner_id = ?1 AND parent_id IS NULL))"
            ))?;
            let mut rows = st.query(params![
                owner.0,
                names.first().map(String::as_str).unwrap_or(""),
                names.get(1).map(String::as_str).unwrap_or(""),
            ])?;
            // At most one row per depth. They are placed by depth here rather than sorted by
            // SQL: an ORDER BY made SQLite build a sorter on every request for three rows.
            let mut found: [Option<Resource>; 3] = [None, None, None];
            while let Some(r) = rows.next()? {
                let depth = r.get::<_, i64>(21)? as usize;
                if depth <= names.len()
                    && let Some(slot) = found.get_mut(depth)
                {
                    *slot = Some(map_resource(r)??);
                }
            }
            Ok(found.into_iter().map_while(|r| r).collect())
        })
    }

    /// Index rows of the given members (a listing's patch after a write), in one snapshot.
    pub fn instances_of(&self, parent: ResourceId, ids: &[ResourceId]) -> Result<Vec<InstanceRow>> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let mut out = Vec::new();
            {
                // `+parent_id`, as in `store::sql`: the resource_id lookup is the narrow one.
                let mut st = tx.prepare_cached(MEMBER_ROWS)?;
                for id in ids {
                    let rows = st.query_map(params![parent.0, id.0], map_instance)?;
                    for row in rows {
                        out.push(row?);
                    }
                }
            }
            tx.finish()?;
            Ok(out)
        })
    }

    /// A collection's whole listing, members and index rows read in one snapshot and moved
    /// straight into the listing as they stream (no intermediate row buffers: a 100,000-event
    /// calendar has over a million index rows). Callers run this off the runtime threads.
    pub fn load_listing(&self, parent: ResourceId, seq: i64) -> Result<Listing> {
        self.read_long(|c| {
            let tx = c.unchecked_transaction()?;
            let mut l = Listing::empty(seq);
            {
                let mut st = tx.prepare_cached(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = ?1"
                ))?;
                let mut rows = st.query(params![parent.0])?;
                while let Some(r) = rows.next()? {
                    l.add_member(map_resource(r)??);
                }
                let mut st = tx.prepare_cached(LISTING_ROWS)?;
                let mut rows = st.query(params![parent.0])?;
                while let Some(r) = rows.next()? {
                    l.add_row(map_instance(r)?);
                }
            }
            tx.finish()?;
            Ok(l)
        })
    }

    pub fn props(&self, id: ResourceId, viewer: UserId) -> Result<Vec<StoredProp>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT ns, local, xml FROM props WHERE resource_id = ?1 AND user_id = ?2 ORDER BY ns, local",
            )?;
            let rows = st.query_map(params![id.0, viewer.0], |r| {
                Ok(StoredProp {
                    ns: r.get(0)?,
                    local: r.get(1)?,
                    xml: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The change log of one collection after `since`, as `store::sql` `changes_since`; callers
    /// pass a limit, so the cost is bounded by it.
    pub fn changes_since(&self, parent: ResourceId, since: i64, cap: i64) -> Result<Vec<Change>> {
        self.read(|c| {
            let mut st = c.prepare_cached(crate::store::sql::CHANGES_SINCE)?;
            let mut rows = st.query(params![parent.0, since, cap])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(Change::Live(Arc::new(map_resource(r)??)));
            }
            let mut st = c.prepare_cached(
                "SELECT name, seq FROM tombstones WHERE parent_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let dead = st.query_map(params![parent.0, since, cap], |r| {
                Ok(Change::Deleted {
                    name: r.get(0)?,
                    seq: r.get(1)?,
                })
            })?;
            for d in dead {
                out.push(d?);
            }
            out.sort_by_key(Change::seq);
            Ok(out)
        })
    }

    /// `ResourceWriter::put_object` on the writer connection: the same statements as `store::sql`.
    ///
    /// Without `wait`, `None` when another connection holds SQLite's write lock: the caller
    /// then takes the write gate and calls again with `wait`, which waits for the lock as every
    /// other connection does. Trying first spares the gate's cost on every write; the sqlx
    /// pool pings its connection each time one is returned, a thread round trip.
    pub fn put_object(
        &self,
        parent: ResourceId,
        name: &str,
        obj: &NewObject,
        cond: &WriteCondition,
        wait: bool,
    ) -> Result<Option<(Resource, bool)>> {
        let c = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Rolled back on every early return, committed below.
        let Some(tx) = begin_write(&c, wait)? else {
            return Ok(None);
        };
        let (seq, owner) = touch(&tx, parent)?;
        let found: Vec<Resource> = {
            let mut st = tx.prepare_cached(concat!(
                "SELECT ",
                res_cols!(),
                " FROM resources WHERE parent_id = ?1 AND (name = ?2 OR uid = ?3)"
            ))?;
            let mut rows = st.query(params![parent.0, name, obj.uid])?;
            let mut v = Vec::new();
            while let Some(r) = rows.next()? {
                v.push(map_resource(r)??);
            }
            v
        };
        let existing = check_object_write(&found, name, obj.uid.as_deref(), cond)?;
        let now = now();
        let size = obj.data.len() as i64;
        let span = obj.index.as_ref();
        let (first, last, complete) = (
            span.map(|i| i.first_start),
            span.map(|i| i.last_end),
            span.map(|i| i.complete_until),
        );
        // The row written is built here rather than read back with RETURNING: SQLite buffers
        // RETURNING rows in a temporary b-tree, one more to open, fill and free per statement.
        // `put_returns_the_stored_row` holds this copy to what the table then says.
        let replaced = existing.is_some();
        // ?1 is the row's id (none for an INSERT, which leaves it unused); ?2..?13 are what
        // both statements write, the same numbers in each.
        let id: Option<i64> = existing.as_ref().map(|e| e.id.0);
        let written: [&dyn rusqlite::ToSql; 13] = [
            &id,
            &obj.data,
            &obj.etag,
            &size,
            &obj.uid,
            &obj.component,
            &obj.content_type,
            &seq,
            &now,
            &first,
            &last,
            &complete,
            &obj.schedule_tag,
        ];
        let base = match existing {
            Some(e) => {
                // A rewrite that keeps the UID and index coverage (most edits, and every
                // client re-PUT of unchanged bytes) leaves those columns (?5, ?12) out, so
                // SQLite leaves the three indexes on them alone instead of rewriting entries.
                let sql = if e.uid == obj.uid && e.complete_until == complete {
                    "UPDATE resources SET data = ?2, etag = ?3, size = ?4, component = ?6, \
                     content_type = ?7, mod_seq = ?8, modified_at = ?9, first_start = ?10, \
                     last_end = ?11, schedule_tag = ?13 WHERE id = ?1"
                } else {
                    "UPDATE resources SET data = ?2, etag = ?3, size = ?4, uid = ?5, component = ?6, \
                     content_type = ?7, mod_seq = ?8, modified_at = ?9, first_start = ?10, \
                     last_end = ?11, complete_until = ?12, schedule_tag = ?13 WHERE id = ?1"
                };
                tx.prepare_cached(sql)?.execute(&written[..])?;
                e
            }
            None => {
                tx.prepare_cached("DELETE FROM tombstones WHERE parent_id = ?1 AND name = ?2")?
                    .execute(params![parent.0, name])?;
                let uuid = uuid::Uuid::new_v4().to_string();
                let mut args = written.to_vec();
                args.extend_from_slice(&[&uuid, &owner.0, &parent.0, &name]);
                tx.prepare_cached(
                    "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, content_type, data, etag, \
                     size, uid, component, sync_seq, mod_seq, created_at, modified_at, \
                     first_start, last_end, complete_until, schedule_tag) \
                     VALUES (?14, ?15, ?16, ?17, 'object', ?7, ?2, ?3, ?4, ?5, ?6, 0, ?8, ?9, ?9, \
                     ?10, ?11, ?12, ?13)",
                )?
                .execute(&args[..])?;
                new_row(tx.last_insert_rowid(), uuid, owner, parent, name, now)
            }
        };
        // What both statements wrote (?2..?13), over the row's other columns.
        let res = Resource {
            content_type: Some(obj.content_type.clone()),
            etag: Some(obj.etag.clone()),
            size,
            uid: obj.uid.clone(),
            component: obj.component.clone(),
            mod_seq: seq,
            modified_at: now,
            complete_until: complete,
            first_start: first,
            last_end: last,
            schedule_tag: obj.schedule_tag.clone(),
            ..base
        };
        write_instances(&tx, &res, parent, span, replaced)?;
        tx.commit()?;
        Ok(Some((res, !replaced)))
    }
}

/// A row just inserted, before the columns the write sets (which the caller fills in).
fn new_row(
    id: i64,
    uuid: String,
    owner: UserId,
    parent: ResourceId,
    name: &str,
    now: i64,
) -> Resource {
    Resource {
        id: ResourceId(id),
        uuid,
        owner,
        parent: Some(parent),
        name: name.to_string(),
        kind: ResourceKind::Object,
        content_type: None,
        etag: None,
        size: 0,
        uid: None,
        component: None,
        supported_components: None,
        sync_seq: 0,
        mod_seq: 0,
        tomb_floor: 0,
        created_at: now,
        modified_at: now,
        complete_until: None,
        first_start: None,
        last_end: None,
        schedule_tag: None,
    }
}

/// Begin an immediate write transaction. Without `wait`, `None` when another writer holds
/// the database (the caller then takes the portable path, which waits).
fn begin_write(c: &rusqlite::Connection, wait: bool) -> Result<Option<rusqlite::Transaction<'_>>> {
    if !wait {
        c.busy_timeout(Duration::ZERO)?;
    }
    let begun = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate);
    if !wait {
        c.busy_timeout(BUSY_TIMEOUT)?;
    }
    match begun {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if !wait && e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(None)
        }
        other => Ok(Some(other?)),
    }
}

/// The index rows of an object just written. An edit that moves no instance (a new title, an
/// alarm, the same bytes again) keeps its rows: rewriting them would dirty four b-trees for
/// nothing.
fn write_instances(
    tx: &rusqlite::Transaction<'_>,
    res: &Resource,
    parent: ResourceId,
    span: Option<&crate::ical::index::ObjectIndex>,
    replaced: bool,
) -> Result<()> {
    let same_instances = match span {
        Some(index) if replaced => stored_instances(tx, res.id)? == index.instances,
        _ => false,
    };
    if replaced && !same_instances {
        tx.prepare_cached("DELETE FROM instances WHERE resource_id = ?1")?
            .execute(params![res.id.0])?;
    }
    if let Some(index) = span.filter(|_| !same_instances) {
        let mut st = tx.prepare_cached(
            "INSERT INTO instances (resource_id, ord, parent_id, start_at, end_at, rule, floating, long_span) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (ord, i) in (0i64..).zip(&index.instances) {
            st.execute(params![
                res.id.0,
                ord,
                parent.0,
                i.start,
                i.end,
                i.rule as i64,
                i64::from(i.floating),
                i64::from(i.end.saturating_sub(i.start) > LONG_SPAN),
            ])?;
        }
    }
    Ok(())
}

/// A calendar's index rows, for its listing: read from `instances_window` alone, which
/// carries every column (the plan test below holds SQLite to that).
const LISTING_ROWS: &str =
    "SELECT resource_id, start_at, end_at, rule, floating FROM instances WHERE parent_id = ?1";

/// One member's index rows. `+parent_id`, as in `store::sql`: the key (resource_id, ord) is the
/// narrow lookup, not the calendar's window index.
const MEMBER_ROWS: &str = "SELECT resource_id, start_at, end_at, rule, floating FROM instances \
                           WHERE +parent_id = ?1 AND resource_id = ?2";

/// An object's index rows, in the order they were written.
fn stored_instances(tx: &rusqlite::Transaction<'_>, id: ResourceId) -> Result<Vec<Instance>> {
    let mut st = tx.prepare_cached(
        "SELECT start_at, end_at, rule, floating FROM instances WHERE resource_id = ?1 \
         ORDER BY ord",
    )?;
    let rows = st.query_map(params![id.0], |r| {
        Ok(Instance {
            start: r.get(0)?,
            end: r.get(1)?,
            rule: MatchRule::from_code(r.get(2)?),
            floating: r.get::<_, i64>(3)? != 0,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `store::sql` `touch`: bump the collection's change number and stamp it up the tree. Returns
/// the collection's new change number and its owner.
fn touch(tx: &rusqlite::Transaction<'_>, collection: ResourceId) -> Result<(i64, UserId)> {
    let now = now();
    let mut current = collection;
    let mut first: Option<(i64, UserId)> = None;
    let mut child_to_stamp: Option<ResourceId> = None;
    for _ in 0..MAX_TREE_DEPTH {
        // An UPDATE then a read of the row by its key, not UPDATE ... RETURNING: see
        // `put_object`.
        let bumped = tx
            .prepare_cached(
                "UPDATE resources SET sync_seq = sync_seq + 1, modified_at = ?2 WHERE id = ?1",
            )?
            .execute(params![current.0, now])?;
        if bumped == 0 {
            return Err(StoreError::NotFound);
        }
        let (seq, parent, owner): (i64, Option<i64>, i64) = tx
            .prepare_cached("SELECT sync_seq, parent_id, owner_id FROM resources WHERE id = ?1")?
            .query_row(params![current.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if let Some(child) = child_to_stamp {
            tx.prepare_cached("UPDATE resources SET mod_seq = ?2 WHERE id = ?1")?
                .execute(params![child.0, seq])?;
        }
        first.get_or_insert((seq, UserId(owner)));
        match parent {
            Some(p) => {
                child_to_stamp = Some(current);
                current = ResourceId(p);
            }
            None => break,
        }
    }
    first.ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::{LISTING_ROWS, MEMBER_ROWS};
    use crate::store::sql::{CHANGES_SINCE, INSTANCES_BETWEEN, OBJECTS_BY_UID};

    /// `put_object` builds the row it returns instead of reading it back (no RETURNING), so
    /// this holds that copy to what the table says, for a new object, an edit that keeps the
    /// UID and index coverage (the short UPDATE), and one that changes them (the long one).
    #[tokio::test]
    async fn put_returns_the_stored_row() {
        use crate::ical::index::{Instance, MatchRule, ObjectIndex, POS_INF};
        use crate::store::{
            NewCollection, NewObject, NewUser, ResourceKind, ResourceReader, ResourceWriter, Store,
            UserStore, WriteCondition,
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("put.db").display());
        let store = Store::open(&url).await.unwrap();
        let user = store
            .create_user(NewUser {
                name: "ann".into(),
                email: None,
                display_name: None,
                password_hash: None,
            })
            .await
            .unwrap();
        let home = store.ensure_home(user.id, &[]).await.unwrap();
        let cal = store
            .create_collection(
                home.id,
                NewCollection {
                    name: "work".into(),
                    kind: ResourceKind::Calendar,
                    supported_components: Some("VEVENT".into()),
                    props: vec![],
                },
            )
            .await
            .unwrap();
        let object = |uid: &str, data: &str, complete_until: i64| NewObject {
            data: data.as_bytes().to_vec(),
            etag: format!("\"{}\"", data.len()),
            content_type: "text/calendar; charset=utf-8".into(),
            uid: Some(uid.into()),
            component: Some("VEVENT".into()),
            index: Some(ObjectIndex {
                instances: vec![Instance {
                    start: 1_000,
                    end: 2_000,
                    rule: MatchRule::Overlap,
                    floating: false,
                }],
                complete_until,
                first_start: 1_000,
                last_end: 2_000,
            }),
            schedule_tag: Some("\"st-1\"".into()),
        };
        let steps = [
            ("a", "BEGIN:VCALENDAR one", POS_INF, true),
            ("a", "BEGIN:VCALENDAR one, edited", POS_INF, false),
            ("b", "BEGIN:VCALENDAR two", 5_000, false),
        ];
        for (uid, data, complete, created) in steps {
            let (put, was_created) = store
                .put_object(
                    cal.id,
                    "e.ics",
                    object(uid, data, complete),
                    WriteCondition::None,
                )
                .await
                .unwrap();
            assert_eq!(was_created, created, "{data}");
            let stored = store.resource(put.id).await.unwrap().unwrap();
            assert_eq!(put, stored, "{data}");
            let cal_now = store.resource(cal.id).await.unwrap().unwrap();
            assert_eq!(put.mod_seq, cal_now.sync_seq, "{data}");
            assert_eq!(put.owner, user.id);
        }
    }

    /// SQLite's plan for `sql`, one line per step, parameters left unbound.
    fn plan(c: &rusqlite::Connection, sql: &str) -> String {
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = st.raw_query();
        let mut out = String::new();
        while let Some(r) = rows.next().unwrap() {
            out.push_str(&r.get::<_, String>(3).unwrap());
            out.push('\n');
        }
        out
    }

    /// The statements whose speed rests on one index: if a schema change or a new SQLite made
    /// the planner pick another, results would stay right and only grow slow, so no other test
    /// would notice. Plans are taken on a migrated, empty file, as a new server has.
    #[tokio::test]
    async fn hot_statements_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let url = format!("sqlite://{}", path.display());
        let _store = crate::store::sqlite::SqliteStore::open(&url).await.unwrap();
        let c = super::open(&path, true).unwrap();

        let between = plan(&c, INSTANCES_BETWEEN);
        assert!(
            between.contains(
                "USING COVERING INDEX instances_window (parent_id=? AND start_at>? AND start_at<?)"
            ),
            "window arm: {between}"
        );
        assert!(
            between.contains("USING COVERING INDEX instances_long (parent_id=? AND start_at<?)"),
            "long-span arm must use the partial index: {between}"
        );

        let listing = plan(&c, LISTING_ROWS);
        assert!(
            listing.contains("USING COVERING INDEX instances_window (parent_id=?)"),
            "listing rows: {listing}"
        );

        let by_uid = plan(&c, OBJECTS_BY_UID);
        assert!(
            by_uid.contains("USING INDEX resources_uid (parent_id=? AND uid=?)"),
            "objects by UID: {by_uid}"
        );
        assert!(
            by_uid.contains("resources_owner_calendars (owner_id=?)"),
            "the owner's calendars: {by_uid}"
        );
        assert!(!by_uid.contains("SCAN"), "objects by UID scans: {by_uid}");

        let changes = plan(&c, CHANGES_SINCE);
        assert!(
            changes.contains("USING INDEX resources_changes (parent_id=? AND mod_seq>?)")
                && changes.contains("USING INDEX resources_collections (parent_id=?)")
                && !changes.contains("SCAN"),
            "change log: {changes}"
        );

        for sql in [
            MEMBER_ROWS,
            "DELETE FROM instances WHERE resource_id = ?1",
            "SELECT start_at FROM instances WHERE resource_id = ?1 ORDER BY ord",
        ] {
            let p = plan(&c, sql);
            assert!(
                p.contains("USING PRIMARY KEY (resource_id=?)") && !p.contains("TEMP B-TREE"),
                "{sql}: {p}"
            );
        }
    }
}
