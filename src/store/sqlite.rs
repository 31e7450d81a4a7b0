//! SQLite adapter: the embedded default. WAL journal, foreign keys on, one writer at a time
//! (transactions begin IMMEDIATE so a reader never has to upgrade its lock mid-transaction).
//!
//! Write transactions go through a pool of exactly one connection, so concurrent writers queue
//! in the pool (async, in order) instead of inside SQLite, whose busy handler sleeps in steps
//! of up to 100 ms and made the slowest PUTs under concurrency wait that long. Reads use the
//! other pool and never wait for a writer (WAL).
//!
//! The statements every request runs go in place through `sqlite_direct` instead. Its object
//! write takes SQLite's write lock directly when it is free, and otherwise queues for that one
//! writer connection like any transaction here.

use std::str::FromStr;
use std::time::Duration;

use crate::store::sqlite_direct::Direct;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Page cache of each sqlx connection, in KiB (negative: SQLite's unit for KiB). These carry
/// only the statements off the hot path, so a small cache costs little; at SQLite's default
/// (2 MiB each) the nine of them could come to hold 18 MiB as a long-running server touches
/// the whole file. (In the 10,000-event benchmark they stayed small either way.)
const SIDE_CACHE_KIB: &str = "-512";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    /// The hot statements, run in place (see `sqlite_direct`); none for an in-memory store.
    direct: Option<std::sync::Arc<Direct>>,
}

impl SqliteStore {
    pub async fn open(url: &str) -> crate::store::Result<Self> {
        Self::open_with(Self::options(url)?).await
    }

    fn options(url: &str) -> crate::store::Result<SqliteConnectOptions> {
        Ok(SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma(
                "wal_autocheckpoint",
                super::sqlite_direct::WAL_AUTOCHECKPOINT,
            )
            .pragma(
                "journal_size_limit",
                super::sqlite_direct::WAL_SIZE_LIMIT.to_string(),
            )
            .pragma("cache_size", SIDE_CACHE_KIB))
    }

    async fn open_with(opts: SqliteConnectOptions) -> crate::store::Result<Self> {
        // A ping before every acquire costs a round trip to the connection's thread; a local
        // file connection does not go stale, so it is skipped.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("schemas/sqlite").run(&pool).await?;
        let direct = match opts.get_filename() {
            p if p.as_os_str().is_empty() || p.to_str() == Some(":memory:") => None,
            p => Some(std::sync::Arc::new(Direct::open(p)?)),
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(still_usable(conn)))
            .connect_with(opts)
            .await?;
        Ok(SqliteStore {
            pool,
            writer,
            direct,
        })
    }

    /// The in-place connections (`sqlite_direct`), when the database is a file.
    pub(crate) fn direct(&self) -> Option<&Direct> {
        self.direct.as_deref()
    }

    /// The in-place connections, shared, for work moved off the runtime threads.
    pub(crate) fn direct_shared(&self) -> Option<std::sync::Arc<Direct>> {
        self.direct.clone()
    }

    /// An object written in place. Most writes find SQLite's write lock free and take it at
    /// once; only when another writer holds it does this one queue behind the sqlx writer
    /// (holding the one sqlx writer connection, so writes through either library never
    /// overlap) and try again, waiting for the lock.
    pub(crate) async fn put_object_in_place(
        &self,
        d: &Direct,
        parent: crate::store::ResourceId,
        name: &str,
        obj: &crate::store::NewObject,
        cond: &crate::store::WriteCondition,
    ) -> crate::store::Result<(crate::store::Resource, bool)> {
        if let Some(done) = d.put_object(parent, name, obj, cond, false)? {
            return Ok(done);
        }
        let _gate = self.writer.acquire().await?;
        if let Some(done) = d.put_object(parent, name, obj, cond, true)? {
            return Ok(done);
        }
        Err(crate::store::StoreError::Direct(
            "the write lock stayed busy".into(),
        ))
    }

    async fn begin(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    async fn close_extra(&self) {
        self.writer.close().await
    }
}

/// Whether the writer connection may go back to the pool. A transaction dropped without its
/// commit leaves a rollback queued on the connection; a ping waits for it. SQLite rolls a
/// transaction back by itself after some errors (a full disk, an I/O error), and then that
/// queued rollback fails and sqlx still counts the connection as inside a transaction: every
/// later `BEGIN` on it would fail, and as the pool's only writer it would stop every write
/// until a restart. Such a connection is closed instead, and the pool opens a fresh one.
async fn still_usable(conn: &mut sqlx::SqliteConnection) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    let usable = !conn.is_in_transaction();
    if !usable {
        tracing::warn!("a writer connection left inside a failed transaction is replaced");
    }
    Ok(usable)
}

crate::store::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk in the middle of a write transaction must cost that write only. SQLite
    /// rolls such a transaction back by itself; the one writer connection must still begin,
    /// delete (which makes room) and write afterwards, in the same process. The file's page
    /// limit stands in for the full disk here; `tests/hostile.rs` fills a real tmpfs.
    #[tokio::test]
    async fn the_writer_survives_a_full_disk_inside_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("full.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        sqlx::query("CREATE TABLE filler (b BLOB NOT NULL)")
            .execute(&store.pool)
            .await
            .unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        store.close().await;
        let limited = SqliteStore::options(&url)
            .unwrap()
            .pragma("max_page_count", (pages + 8).to_string());
        let store = SqliteStore::open_with(limited).await.unwrap();
        let insert = |store: SqliteStore| async move {
            let mut tx = store.begin().await?;
            sqlx::query("INSERT INTO filler (b) VALUES (zeroblob(6000))")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        let mut failed = None;
        for _ in 0..100 {
            if let Err(e) = insert(store.clone()).await {
                failed = Some(crate::store::StoreError::from(e));
                break;
            }
        }
        let failed = failed.expect("the page limit was never reached");
        assert!(failed.is_full(), "{failed}");
        let mut tx = store
            .begin()
            .await
            .expect("the writer begins after a full disk");
        sqlx::query("DELETE FROM filler")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        insert(store.clone())
            .await
            .expect("a write after room was made");
    }

    /// Migration 0013 rebuilds `resources` with foreign keys off. On a store written under
    /// the earlier schema, every row, every reference to it, and the high-water mark of its
    /// ids (so a deleted resource's id is never handed out again) must come through, and the
    /// connection that ran it must have its foreign keys back on.
    #[tokio::test]
    async fn rebuilding_resources_keeps_rows_references_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str(&url)
                    .unwrap()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true),
            )
            .await
            .unwrap();
        sqlx::migrate!("schemas/sqlite")
            .run_to(12, &old)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO users (name, created_at) VALUES ('ann', 0)",
            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, created_at, modified_at) \
             VALUES ('home-uuid', 1, NULL, '', 'home', 0, 0)",
            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, sync_seq, created_at, modified_at) \
             VALUES ('cal-uuid', 1, 1, 'work', 'calendar', 5, 0, 0)",
            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, data, etag, uid, mod_seq, \
             created_at, modified_at, first_start, last_end, complete_until, schedule_tag) \
             VALUES ('obj-uuid', 1, 2, 'a.ics', 'object', x'42', '\"e\"', 'uid-a', 4, 1, 2, 10, 20, 30, '\"s\"')",
            "INSERT INTO instances (resource_id, ord, parent_id, start_at, end_at, rule, floating, long_span) \
             VALUES (3, 0, 2, 10, 20, 0, 0, 0)",
            "INSERT INTO props (resource_id, user_id, ns, local, xml) VALUES (2, 0, 'DAV:', 'displayname', x'00')",
            "INSERT INTO tombstones (parent_id, name, seq) VALUES (2, 'gone.ics', 3)",
            // The newest resource, deleted: its id must not come back.
            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, created_at, modified_at) \
             VALUES ('gone-uuid', 1, 2, 'gone.ics', 'object', 0, 0)",
            "DELETE FROM resources WHERE id = 4",
        ] {
            sqlx::query(sql).execute(&old).await.unwrap();
        }
        old.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let pool = &store.pool;
        let one = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(pool)
                .await
                .unwrap()
        };
        assert_eq!(one("SELECT count(*) FROM resources").await, 3);
        let row: (String, Vec<u8>, String, i64, i64, i64, String) = sqlx::query_as(
            "SELECT uuid, data, uid, mod_seq, first_start, complete_until, schedule_tag \
             FROM resources WHERE id = 3",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            row,
            (
                "obj-uuid".into(),
                vec![0x42],
                "uid-a".into(),
                4,
                10,
                30,
                "\"s\"".into()
            )
        );
        assert_eq!(
            one("SELECT seq FROM sqlite_sequence WHERE name = 'resources'").await,
            4
        );
        assert_eq!(one("PRAGMA foreign_keys").await, 1);
        let problems: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(pool)
            .await
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let indexes: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE tbl_name = 'resources'")
                .fetch_all(pool)
                .await
                .unwrap();
        let indexes: Vec<&str> = indexes.iter().map(|(n,)| n.as_str()).collect();
        assert!(indexes.contains(&"resources_uuid"), "{indexes:?}");
        assert!(
            !indexes.iter().any(|n| n.starts_with("sqlite_autoindex")),
            "{indexes:?}"
        );
        // Collections' uuids stay unique.
        let dup = sqlx::query(
            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, created_at, modified_at) \
             VALUES ('cal-uuid', 1, 1, 'other', 'calendar', 0, 0)",
        )
        .execute(pool)
        .await;
        assert!(dup.is_err(), "a second calendar took an existing uuid");
        // References still point at the rebuilt table: deleting the calendar cascades.
        sqlx::query("DELETE FROM resources WHERE id = 2")
            .execute(pool)
            .await
            .unwrap();
        for (table, sql) in [
            ("instances", "SELECT count(*) FROM instances"),
            ("props", "SELECT count(*) FROM props"),
            ("tombstones", "SELECT count(*) FROM tombstones"),
        ] {
            assert_eq!(one(sql).await, 0, "{table} kept rows of a deleted calendar");
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, created_at, modified_at) \
             VALUES ('next', 1, 1, 'next', 'calendar', 0, 0) RETURNING id",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(id, 5, "ids continue after the deleted one");
    }
}
