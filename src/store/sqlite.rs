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
        let opts = SqliteConnectOptions::from_str(url)?
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
            .pragma("cache_size", SIDE_CACHE_KIB);
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
            .connect_with(opts)
            .await?;
        Ok(SqliteStore {
            pool,
            writer,
            direct,
        })
    }

    fn direct(&self) -> Option<&Direct> {
        self.direct.as_deref()
    }

    /// The in-place connections, shared, for work moved off the runtime threads.
    pub(crate) fn direct_shared(&self) -> Option<std::sync::Arc<Direct>> {
        self.direct.clone()
    }

    /// Held while `direct` writes: the one sqlx writer connection, so writes through either
    /// library never overlap.
    async fn write_gate(
        &self,
    ) -> std::result::Result<Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>, sqlx::Error> {
        Ok(Some(self.writer.acquire().await?))
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

crate::store::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite);
