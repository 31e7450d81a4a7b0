//! `SyncReader` over the portable SQL: the change log (RFC 6578). Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_sync {
    ($store:ty, $db:ty) => {
        impl SyncReader for $store {
            async fn changes_since(
                &self,
                parent: ResourceId,
                since: Option<i64>,
                limit: Option<usize>,
            ) -> Result<Vec<Change>> {
                // Without a token every live member is reported and no tombstone is.
                let after = since.unwrap_or(-1);
                let cap: i64 = limit.map(|l| l as i64 + 1).unwrap_or(i64::MAX);
                let rows = sqlx::query($crate::store::sql::CHANGES_SINCE)
                .bind(parent.0)
                .bind(after)
                .bind(cap)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<Change> = rows
                    .iter()
                    .map(|r| map_resource(r).map(|res| Change::Live(Arc::new(res))))
                    .collect::<Result<_>>()?;
                if let Some(since) = since {
                    let dead = sqlx::query(
                        "SELECT name, seq FROM tombstones WHERE parent_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(parent.0)
                    .bind(since)
                    .bind(cap)
                    .fetch_all(&self.pool)
                    .await?;
                    for d in dead {
                        out.push(Change::Deleted {
                            name: d.try_get("name")?,
                            seq: d.try_get("seq")?,
                        });
                    }
                    out.sort_by_key(Change::seq);
                }
                if let Some(l) = limit {
                    out.truncate(l + 1);
                }
                Ok(out)
            }
        }
    };
}
pub(crate) use impl_sync;
