//! The one body of SQL both adapters run. Queries are written in the common subset of SQLite
//! and PostgreSQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`, epoch-second integers), and
//! `impl_sql_store!` stamps them onto each adapter with its concrete pool type, so there is no
//! `sqlx::Any` (which fails on some column types). This body knows nothing of SQLite's
//! in-place path: which statements also run there is the list of `route!` calls in the
//! `Store` facade. One file per capability (`users`, `resources`, `index`, `sync`, `mail`,
//! `accounts`, `sharing`, `org`, `vault`, `bindings`), each a macro this one expands beside the shared helpers.
//!
//! Statements built with a varying number of binds (IN lists, multi-row inserts) are not kept
//! prepared (`persistent(false)`): every distinct length would otherwise take a slot in each
//! connection's statement cache and hold its compiled program in memory.
//!
//! Concurrency model: every write transaction first bumps the `sync_seq` of the parent
//! collection with an `UPDATE ... RETURNING`. On PostgreSQL that row lock serialises writers
//! per collection, so change numbers inside a collection commit in order and a sync token can
//! never skip a write that commits later. On SQLite transactions begin IMMEDIATE (one writer).

pub(crate) mod accounts;
pub(crate) mod bindings;
pub(crate) mod index;
pub(crate) mod mail;
pub(crate) mod org;
pub(crate) mod resources;
pub(crate) mod sharing;
pub(crate) mod sync;
pub(crate) mod users;
pub(crate) mod vault;

/// Resource columns, without the body.
macro_rules! res_cols {
    () => {
        "id, uuid, owner_id, parent_id, name, kind, content_type, etag, size, uid, component, \
         supported_components, sync_seq, mod_seq, tomb_floor, created_at, modified_at, complete_until, \
         first_start, last_end, schedule_tag"
    };
}
pub(crate) use res_cols;

/// `ical::index::POS_INF` as an SQL literal: `resources_incomplete` indexes only rows below
/// it, and a query uses a partial index only when its WHERE clause names the same literal.
macro_rules! pos_inf {
    () => {
        "2305843009213693951"
    };
}
pub(crate) use pos_inf;

/// Index rows of one calendar that meet `[$4, $3]`: those starting inside the window (less
/// `LONG_SPAN`, bound as `$2`), and the few longer rows that start before it and reach into it.
/// The second arm names `long_span = 1` so that it runs on the partial `instances_long` index
/// (`sqlite_direct`'s plan test holds SQLite to that).
pub(crate) const INSTANCES_BETWEEN: &str = "SELECT resource_id, start_at, end_at, rule, floating FROM instances \
     WHERE parent_id = $1 AND start_at <= $3 AND start_at >= $2 \
     UNION ALL \
     SELECT resource_id, start_at, end_at, rule, floating FROM instances \
     WHERE parent_id = $1 AND long_span = 1 AND start_at < $2 AND end_at >= $4";

/// A collection's members changed after `$2`, oldest first, at most `$3`: objects through
/// the partial `resources_changes`, collections (a home's calendars) through the partial
/// `resources_collections`. The two arms split on `kind` so that each runs on its own index
/// (`sqlite_direct`'s plan test holds SQLite to that).
pub(crate) const CHANGES_SINCE: &str = concat!(
    "SELECT * FROM (SELECT ",
    res_cols!(),
    " FROM resources WHERE parent_id = $1 AND kind = 'object' AND mod_seq > $2 \
     UNION ALL SELECT ",
    res_cols!(),
    " FROM resources WHERE parent_id = $1 AND kind <> 'object' AND mod_seq > $2) AS changed \
     ORDER BY mod_seq LIMIT $3"
);

/// An owner's objects with one UID, in any of their calendars: one `resources_uid` probe per
/// calendar, the calendars found through the partial `resources_owner_calendars` index.
pub(crate) const OBJECTS_BY_UID: &str = concat!(
    "SELECT ",
    res_cols!(),
    " FROM resources WHERE uid = $2 AND kind = 'object' \
     AND parent_id IN (SELECT id FROM resources WHERE owner_id = $1 AND kind = 'calendar') \
     ORDER BY id"
);

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use sqlx::Row as _;
        use $crate::store::sql::{pos_inf, res_cols};
        use $crate::store::*;

        type Tx = sqlx::Transaction<'static, $db>;
        type DbRow = <$db as sqlx::Database>::Row;

        const MAX_TREE_DEPTH: usize = 64;

        fn map_user(row: &DbRow) -> Result<User> {
            Ok(User {
                id: UserId(row.try_get("id")?),
                name: row.try_get("name")?,
                email: row.try_get("email")?,
                display_name: row.try_get("display_name")?,
                password_hash: row.try_get("password_hash")?,
                disabled: row.try_get::<i64, _>("disabled")? != 0,
                created_at: row.try_get("created_at")?,
            })
        }

        /// Columns by position, in `res_cols!` order: name lookups cost more than the rest of
        /// decoding on 10,000-row listings.
        fn map_resource(row: &DbRow) -> Result<Resource> {
            Ok(Resource {
                id: ResourceId(row.try_get(0)?),
                uuid: row.try_get(1)?,
                owner: UserId(row.try_get(2)?),
                parent: row.try_get::<Option<i64>, _>(3)?.map(ResourceId),
                name: row.try_get(4)?,
                kind: ResourceKind::parse(&row.try_get::<String, _>(5)?)?,
                content_type: row.try_get(6)?,
                etag: row.try_get(7)?,
                size: row.try_get(8)?,
                uid: row.try_get(9)?,
                component: row.try_get(10)?,
                supported_components: row.try_get(11)?,
                sync_seq: row.try_get(12)?,
                mod_seq: row.try_get(13)?,
                tomb_floor: row.try_get(14)?,
                created_at: row.try_get(15)?,
                modified_at: row.try_get(16)?,
                complete_until: row.try_get(17)?,
                first_start: row.try_get(18)?,
                last_end: row.try_get(19)?,
                schedule_tag: row.try_get(20)?,
            })
        }

        fn map_app_password(row: &DbRow) -> Result<AppPassword> {
            Ok(AppPassword {
                id: row.try_get("id")?,
                user: UserId(row.try_get("user_id")?),
                name: row.try_get("name")?,
                lookup: row.try_get("lookup")?,
                hash: row.try_get("hash")?,
                scope: row.try_get("scope")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                last_used_at: row.try_get("last_used_at")?,
            })
        }

        fn map_feed(row: &DbRow) -> Result<Feed> {
            Ok(Feed {
                id: row.try_get("id")?,
                owner: UserId(row.try_get("owner_id")?),
                calendar: ResourceId(row.try_get("calendar_id")?),
                label: row.try_get("label")?,
                created_at: row.try_get("created_at")?,
                last_used_at: row.try_get("last_used_at")?,
                // An unknown value (written by a newer version) shows the least.
                detail: crate::ical::privacy::Detail::parse(&row.try_get::<String, _>("detail")?)
                    .unwrap_or(crate::ical::privacy::Detail::Busy),
            })
        }

        /// Columns by position: resource_id, start_at, end_at, rule, floating.
        fn map_instance(r: &DbRow) -> Result<InstanceRow> {
            Ok(InstanceRow {
                resource: ResourceId(r.try_get(0)?),
                instance: crate::ical::index::Instance {
                    start: r.try_get(1)?,
                    end: r.try_get(2)?,
                    rule: crate::ical::index::MatchRule::from_code(r.try_get(3)?),
                    floating: r.try_get::<i64, _>(4)? != 0,
                },
            })
        }

        /// Write an object's index rows (coverage columns are the caller's), first removing
        /// the old ones unless the object is new.
        async fn write_instances(
            tx: &mut Tx,
            id: ResourceId,
            parent: ResourceId,
            index: Option<&crate::ical::index::ObjectIndex>,
            replace: bool,
        ) -> Result<()> {
            if replace {
                sqlx::query("DELETE FROM instances WHERE resource_id = $1")
                    .bind(id.0)
                    .execute(&mut **tx)
                    .await?;
            }
            let Some(index) = index else {
                return Ok(());
            };
            // Multi-row inserts: one round trip per 500 instances.
            let numbered: Vec<(i64, &crate::ical::index::Instance)> =
                (0i64..).zip(&index.instances).collect();
            for chunk in numbered.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO instances (resource_id, ord, parent_id, start_at, end_at, rule, floating, long_span) ",
                );
                qb.push_values(chunk, |mut b, (ord, i)| {
                    b.push_bind(id.0)
                        .push_bind(*ord)
                        .push_bind(parent.0)
                        .push_bind(i.start)
                        .push_bind(i.end)
                        .push_bind(i.rule as i64)
                        .push_bind(i64::from(i.floating))
                        .push_bind(i64::from(i.end.saturating_sub(i.start) > LONG_SPAN));
                });
                qb.build().persistent(false).execute(&mut **tx).await?;
            }
            Ok(())
        }

        fn new_uuid() -> String {
            uuid::Uuid::new_v4().to_string()
        }

        /// Lock `r`'s row for this transaction if it is still where it was read (same parent
        /// and name), else `NotFound`. On PostgreSQL the UPDATE waits for a concurrent writer
        /// of the row and then re-reads it, so of two racing moves or a move and a delete of
        /// one resource, the second finds it gone; SQLite's writers are serialised anyway.
        async fn claim(tx: &mut Tx, r: &Resource) -> Result<()> {
            let Some(parent) = r.parent else {
                return Ok(());
            };
            let done = sqlx::query(
                "UPDATE resources SET mod_seq = mod_seq WHERE id = $1 AND parent_id = $2 AND name = $3",
            )
            .bind(r.id.0)
            .bind(parent.0)
            .bind(&r.name)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        }

        async fn load(tx: &mut Tx, id: ResourceId) -> Result<Resource> {
            let row = sqlx::query(concat!("SELECT ", res_cols!(), " FROM resources WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            map_resource(&row)
        }

        async fn load_child(tx: &mut Tx, parent: ResourceId, name: &str) -> Result<Option<Resource>> {
            let row = sqlx::query(concat!(
                "SELECT ",
                res_cols!(),
                " FROM resources WHERE parent_id = $1 AND name = $2"
            ))
            .bind(parent.0)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
            row.as_ref().map(map_resource).transpose()
        }

        /// Record a change inside `collection`: bump its sequence and, since its content
        /// changed, its own change number in every ancestor (so home-level sync and ctags see
        /// it). Returns the new sequence number of `collection`.
        async fn touch(tx: &mut Tx, collection: ResourceId) -> Result<i64> {
            let now = now();
            let mut current = collection;
            let mut first: Option<i64> = None;
            let mut child_to_stamp: Option<ResourceId> = None;
            for _ in 0..MAX_TREE_DEPTH {
                let row = sqlx::query(
                    "UPDATE resources SET sync_seq = sync_seq + 1, modified_at = $2 \
                     WHERE id = $1 RETURNING sync_seq, parent_id",
                )
                .bind(current.0)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                let seq: i64 = row.try_get("sync_seq")?;
                let parent: Option<i64> = row.try_get("parent_id")?;
                if let Some(child) = child_to_stamp {
                    sqlx::query("UPDATE resources SET mod_seq = $2 WHERE id = $1")
                        .bind(child.0)
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                }
                first.get_or_insert(seq);
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

        async fn tombstone(tx: &mut Tx, parent: ResourceId, name: &str, seq: i64) -> Result<()> {
            sqlx::query(
                "INSERT INTO tombstones (parent_id, name, seq) VALUES ($1, $2, $3) \
                 ON CONFLICT (parent_id, name) DO UPDATE SET seq = excluded.seq",
            )
            .bind(parent.0)
            .bind(name)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn clear_tombstone(tx: &mut Tx, parent: ResourceId, name: &str) -> Result<()> {
            sqlx::query("DELETE FROM tombstones WHERE parent_id = $1 AND name = $2")
                .bind(parent.0)
                .bind(name)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn uid_holder(
            tx: &mut Tx,
            parent: ResourceId,
            uid: &str,
            except: Option<ResourceId>,
        ) -> Result<Option<String>> {
            let row = sqlx::query(
                "SELECT id, name FROM resources WHERE parent_id = $1 AND uid = $2",
            )
            .bind(parent.0)
            .bind(uid)
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(r) if Some(ResourceId(r.try_get("id")?)) != except => Ok(Some(r.try_get("name")?)),
                _ => Ok(None),
            }
        }

        async fn insert_collection(
            tx: &mut Tx,
            owner: UserId,
            parent: Option<ResourceId>,
            c: &NewCollection,
            mod_seq: i64,
        ) -> Result<Resource> {
            let now = now();
            let row = sqlx::query(concat!(
                "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, supported_components, \
                 sync_seq, mod_seq, created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8) \
                 RETURNING ",
                res_cols!()
            ))
            .bind(new_uuid())
            .bind(owner.0)
            .bind(parent.map(|p| p.0))
            .bind(&c.name)
            .bind(c.kind.as_str())
            .bind(&c.supported_components)
            .bind(mod_seq)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            let res = map_resource(&row)?;
            for p in &c.props {
                put_prop(tx, res.id, owner, p).await?;
            }
            Ok(res)
        }

        async fn put_prop(tx: &mut Tx, id: ResourceId, viewer: UserId, p: &StoredProp) -> Result<()> {
            sqlx::query(
                "INSERT INTO props (resource_id, user_id, ns, local, xml) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (resource_id, user_id, ns, local) DO UPDATE SET xml = excluded.xml",
            )
            .bind(id.0)
            .bind(viewer.0)
            .bind(&p.ns)
            .bind(&p.local)
            .bind(&p.xml)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn remove_resource(tx: &mut Tx, r: &Resource) -> Result<()> {
            if let Some(parent) = r.parent {
                let seq = touch(tx, parent).await?;
                tombstone(tx, parent, &r.name, seq).await?;
            }
            sqlx::query("DELETE FROM resources WHERE id = $1")
                .bind(r.id.0)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Copy `src` (and, for collections, its members) to `parent/name`.
        async fn copy_tree(
            tx: &mut Tx,
            src: &Resource,
            parent: ResourceId,
            name: &str,
            mod_seq: i64,
        ) -> Result<()> {
            // Iterative, bounded: (source, new parent, new name, change number).
            let mut work: Vec<(Resource, ResourceId, String, i64, usize)> =
                vec![(src.clone(), parent, name.to_string(), mod_seq, 0)];
            let now = now();
            while let Some((s, p, n, seq, depth)) = work.pop() {
                if depth > MAX_TREE_DEPTH {
                    return Err(StoreError::Corrupt("collection tree too deep".into()));
                }
                let row = sqlx::query(
                    "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, content_type, data, etag, \
                     size, uid, component, supported_components, sync_seq, mod_seq, created_at, modified_at, \
                     first_start, last_end, complete_until, schedule_tag) \
                     SELECT $1, owner_id, $2, $3, kind, content_type, data, etag, size, uid, component, \
                     supported_components, $4, $5, $6, $6, first_start, last_end, complete_until, schedule_tag \
                     FROM resources WHERE id = $7 RETURNING id",
                )
                .bind(new_uuid())
                .bind(p.0)
                .bind(&n)
                .bind(if s.kind.is_collection() { 1i64 } else { 0 })
                .bind(seq)
                .bind(now)
                .bind(s.id.0)
                .fetch_one(&mut **tx)
                .await?;
                let new_id: i64 = row.try_get("id")?;
                sqlx::query(
                    "INSERT INTO instances (resource_id, ord, parent_id, start_at, end_at, rule, floating, long_span) \
                     SELECT $1, ord, $2, start_at, end_at, rule, floating, long_span FROM instances WHERE resource_id = $3",
                )
                .bind(new_id)
                .bind(p.0)
                .bind(s.id.0)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO props (resource_id, user_id, ns, local, xml) \
                     SELECT $1, user_id, ns, local, xml FROM props WHERE resource_id = $2",
                )
                .bind(new_id)
                .bind(s.id.0)
                .execute(&mut **tx)
                .await?;
                if s.kind.is_collection() {
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        res_cols!(),
                        " FROM resources WHERE parent_id = $1"
                    ))
                    .bind(s.id.0)
                    .fetch_all(&mut **tx)
                    .await?;
                    for r in rows {
                        let child = map_resource(&r)?;
                        let cname = child.name.clone();
                        work.push((child, ResourceId(new_id), cname, 1, depth + 1));
                    }
                }
            }
            Ok(())
        }

        /// Members of `parent` whose `column` is one of `values`, 500 per query.
        async fn children_in<T>(
            pool: &sqlx::Pool<$db>,
            parent: ResourceId,
            column: &'static str,
            values: &[T],
        ) -> Result<Vec<Resource>>
        where
            T: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Clone + Send + Sync + 'static,
        {
            let mut out = Vec::with_capacity(values.len());
            for chunk in values.chunks(500) {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = "
                ));
                qb.push_bind(parent.0).push(" AND ").push(column).push(" IN (");
                let mut sep = qb.separated(", ");
                for v in chunk {
                    sep.push_bind(v.clone());
                }
                sep.push_unseparated(")");
                for r in qb.build().persistent(false).fetch_all(pool).await? {
                    out.push(map_resource(&r)?);
                }
            }
            Ok(out)
        }

        impl $store {
            async fn tx(&self) -> Result<Tx> {
                // Boxed: sqlx's acquire-and-begin future is some 3 KiB, and inline it would
                // size every store call's future that may open a transaction.
                Ok(Box::pin(self.begin()).await?)
            }

            pub async fn close(&self) {
                self.pool.close().await;
                self.close_extra().await
            }
        }

        $crate::store::sql::users::impl_users!($store, $db);
        $crate::store::sql::resources::impl_resources!($store, $db);
        $crate::store::sql::index::impl_index!($store, $db);
        $crate::store::sql::mail::impl_mail!($store, $db);
        $crate::store::sql::accounts::impl_accounts!($store, $db);
        $crate::store::sql::sharing::impl_sharing!($store, $db);
        $crate::store::sql::org::impl_org!($store, $db);
        $crate::store::sql::vault::impl_vault!($store, $db);
        $crate::store::sql::bindings::impl_bindings!($store, $db);
        $crate::store::sql::sync::impl_sync!($store, $db);
    };
}
pub(crate) use impl_sql_store;

#[cfg(test)]
mod tests {
    #[test]
    fn pos_inf_literal_is_pos_inf() {
        assert_eq!(pos_inf!(), crate::ical::index::POS_INF.to_string());
    }
}
