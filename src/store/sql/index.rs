//! `IndexReader` over the portable SQL: the time-range index rows. Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_index {
    ($store:ty, $db:ty) => {
        impl IndexReader for $store {
            async fn instances_between(
                &self,
                parent: ResourceId,
                from: i64,
                to: i64,
            ) -> Result<Vec<InstanceRow>> {
                let rows = sqlx::query($crate::store::sql::INSTANCES_BETWEEN)
                .bind(parent.0)
                .bind(from.saturating_sub(LONG_SPAN))
                .bind(to)
                .bind(from)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(map_instance).collect()
            }

            async fn instances_of(
                &self,
                parent: ResourceId,
                ids: Option<&[ResourceId]>,
            ) -> Result<Vec<InstanceRow>> {
                macro_rules! cols {
                    () => {
                        "SELECT resource_id, start_at, end_at, rule, floating FROM instances \
                         WHERE parent_id = "
                    };
                }
                const COLS_BY_ID: &str =
                    "SELECT resource_id, start_at, end_at, rule, floating FROM instances \
                     WHERE +parent_id = ";
                let Some(ids) = ids else {
                    // A whole calendar can hold millions of rows: decode them as they stream
                    // in rather than buffering every driver row first.
                    use futures_util::TryStreamExt as _;
                    let mut out = vec![];
                    let mut rows = sqlx::query(concat!(cols!(), "$1"))
                        .bind(parent.0)
                        .fetch(&self.pool);
                    while let Some(r) = rows.try_next().await? {
                        out.push(map_instance(&r)?);
                    }
                    return Ok(out);
                };
                let mut out = vec![];
                for chunk in ids.chunks(500) {
                    // `+parent_id` keeps the planner off the (parent_id, start_at) index: the
                    // resource_id lookup is the narrow one.
                    let mut qb = sqlx::QueryBuilder::<$db>::new(COLS_BY_ID);
                    qb.push_bind(parent.0).push(" AND resource_id IN (");
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(id.0);
                    }
                    sep.push_unseparated(")");
                    for r in qb.build().persistent(false).fetch_all(&self.pool).await? {
                        out.push(map_instance(&r)?);
                    }
                }
                Ok(out)
            }

            async fn incomplete_objects(
                &self,
                parent: ResourceId,
                from: i64,
                to: i64,
            ) -> Result<Vec<Resource>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = $1 AND complete_until < $3 \
                     AND complete_until < ",
                    pos_inf!(),
                    " AND first_start <= $3 AND last_end >= $2"
                ))
                .bind(parent.0)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(map_resource).collect()
            }
        }
    };
}
pub(crate) use impl_index;
