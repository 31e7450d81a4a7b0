//! PostgreSQL adapter: several stateless Convene instances can share one database. Writers to
//! one collection serialise on its row (see `store::sql`), so change numbers commit in order.

use sqlx::postgres::{PgPool, PgPoolOptions};

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str) -> crate::store::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        sqlx::migrate!("schemas/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    async fn begin(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn close_extra(&self) {}
}

crate::store::sql::impl_sql_store!(PgStore, sqlx::Postgres);
