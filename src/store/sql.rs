//! The one body of SQL both adapters run. Queries are written in the common subset of SQLite
//! and PostgreSQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`, epoch-second integers), and
//! `impl_sql_store!` stamps them onto each adapter with its concrete pool type, so there is no
//! `sqlx::Any` (which fails on some column types) and no second copy of the logic to drift.
//!
//! Statements built with a varying number of binds (IN lists, multi-row inserts) are not kept
//! prepared (`persistent(false)`): every distinct length would otherwise take a slot in each
//! connection's statement cache and hold its compiled program in memory.
//!
//! Concurrency model: every write transaction first bumps the `sync_seq` of the parent
//! collection with an `UPDATE ... RETURNING`. On PostgreSQL that row lock serialises writers
//! per collection, so change numbers inside a collection commit in order and a sync token can
//! never skip a write that commits later. On SQLite transactions begin IMMEDIATE (one writer).

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

        impl UserStore for $store {
            async fn create_user(&self, user: NewUser) -> Result<User> {
                let mut tx = self.tx().await?;
                let exists = sqlx::query("SELECT id FROM users WHERE name = $1")
                    .bind(&user.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                let row = sqlx::query(
                    "INSERT INTO users (name, email, display_name, password_hash, disabled, created_at) \
                     VALUES ($1, $2, $3, $4, 0, $5) RETURNING *",
                )
                .bind(&user.name)
                .bind(&user.email)
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(now())
                .fetch_one(&mut *tx)
                .await?;
                let u = map_user(&row)?;
                tx.commit().await?;
                Ok(u)
            }

            async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
                let row = sqlx::query("SELECT * FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_user).transpose()
            }

            async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
                let row = sqlx::query("SELECT * FROM users WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_user).transpose()
            }

            async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
                let row = sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1) ORDER BY id LIMIT 1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_user).transpose()
            }

            async fn list_users(&self) -> Result<Vec<User>> {
                let rows = sqlx::query("SELECT * FROM users ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(map_user).collect()
            }

            async fn set_password(&self, id: UserId, hash: &str) -> Result<()> {
                let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(hash)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<()> {
                let done = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(i64::from(disabled))
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_user(&self, id: UserId) -> Result<()> {
                let mut tx = self.tx().await?;
                sqlx::query("DELETE FROM props WHERE user_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                // Children first is not needed: the parent_id foreign key cascades.
                sqlx::query("DELETE FROM resources WHERE owner_id = $1 AND parent_id IS NULL")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }
        }

        impl ResourceReader for $store {
            async fn home(&self, owner: UserId) -> Result<Option<Resource>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE owner_id = $1 AND parent_id IS NULL"
                ))
                .bind(owner.0)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(map_resource).transpose()
            }

            async fn resource(&self, id: ResourceId) -> Result<Option<Resource>> {
                let row = sqlx::query(concat!("SELECT ", res_cols!(), " FROM resources WHERE id = $1"))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_resource).transpose()
            }

            async fn child(&self, parent: ResourceId, name: &str) -> Result<Option<Resource>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = $1 AND name = $2"
                ))
                .bind(parent.0)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(map_resource).transpose()
            }

            async fn children(&self, parent: ResourceId) -> Result<Vec<Resource>> {
                use futures_util::TryStreamExt as _;
                let mut out = vec![];
                let mut rows = sqlx::query(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = $1 ORDER BY name"
                ))
                .bind(parent.0)
                .fetch(&self.pool);
                while let Some(r) = rows.try_next().await? {
                    out.push(map_resource(&r)?);
                }
                Ok(out)
            }

            async fn children_after(
                &self,
                parent: ResourceId,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<Resource>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = $1 AND name > $2 ORDER BY name LIMIT $3"
                ))
                .bind(parent.0)
                .bind(after.unwrap_or(""))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(map_resource).collect()
            }

            async fn children_by_id(
                &self,
                parent: ResourceId,
                ids: &[ResourceId],
            ) -> Result<Vec<Resource>> {
                let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
                children_in(&self.pool, parent, "id", &ids).await
            }

            async fn children_by_name(
                &self,
                parent: ResourceId,
                names: &[String],
            ) -> Result<Vec<Resource>> {
                children_in(&self.pool, parent, "name", names).await
            }

            async fn objects_by_uid(&self, owner: UserId, uid: &str) -> Result<Vec<Resource>> {
                let rows = sqlx::query($crate::store::sql::OBJECTS_BY_UID)
                .bind(owner.0)
                .bind(uid)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(map_resource).collect()
            }

            async fn object_data(&self, id: ResourceId) -> Result<Option<Vec<u8>>> {
                let row = sqlx::query("SELECT data FROM resources WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => Ok(r.try_get::<Option<Vec<u8>>, _>("data")?),
                    None => Ok(None),
                }
            }

            async fn lookup_path(&self, owner: UserId, names: &[String]) -> Result<Vec<Resource>> {
                // One statement for the home and up to two levels below it (a calendar and an
                // object): the scalar subqueries are portable, and each level rides the
                // (parent_id, name) index.
                let rows = sqlx::query(concat!(
                    "SELECT ", res_cols!(), ", CAST(0 AS BIGINT) FROM resources WHERE owner_id = $1 AND parent_id IS NULL \
                     UNION ALL SELECT ", res_cols!(), ", CAST(1 AS BIGINT) FROM resources WHERE name = $2 AND parent_id = \
                     (SELECT id FROM resources WHERE owner_id = $1 AND parent_id IS NULL) \
                     UNION ALL SELECT ", res_cols!(), ", CAST(2 AS BIGINT) FROM resources WHERE name = $3 AND parent_id = \
                     (SELECT id FROM resources WHERE name = $2 AND parent_id = \
                     (SELECT id FROM resources WHERE owner_id = $1 AND parent_id IS NULL)) \
                     ORDER BY 22"
                ))
                .bind(owner.0)
                .bind(names.first().map(String::as_str).unwrap_or(""))
                .bind(names.get(1).map(String::as_str).unwrap_or(""))
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<Resource> = Vec::with_capacity(3);
                for r in &rows {
                    let depth: i64 = r.try_get(21)?;
                    // A level only counts when every level above it was found.
                    if depth as usize == out.len() && depth as usize <= names.len() {
                        out.push(map_resource(r)?);
                    }
                }
                Ok(out)
            }

            async fn object_datas(&self, ids: &[ResourceId]) -> Result<Vec<(ResourceId, Vec<u8>)>> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, data FROM resources WHERE data IS NOT NULL AND id IN (",
                    );
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(id.0);
                    }
                    sep.push_unseparated(")");
                    for r in qb.build().persistent(false).fetch_all(&self.pool).await? {
                        out.push((ResourceId(r.try_get(0)?), r.try_get(1)?));
                    }
                }
                Ok(out)
            }

            async fn props(&self, id: ResourceId, viewer: UserId) -> Result<Vec<StoredProp>> {
                let rows = sqlx::query(
                    "SELECT ns, local, xml FROM props WHERE resource_id = $1 AND user_id = $2 ORDER BY ns, local",
                )
                .bind(id.0)
                .bind(viewer.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(StoredProp {
                            ns: r.try_get("ns")?,
                            local: r.try_get("local")?,
                            xml: r.try_get("xml")?,
                        })
                    })
                    .collect()
            }

            async fn child_props(
                &self,
                parent: ResourceId,
                viewer: UserId,
            ) -> Result<Vec<(ResourceId, StoredProp)>> {
                let rows = sqlx::query(
                    "SELECT p.resource_id, p.ns, p.local, p.xml FROM props p \
                     JOIN resources r ON r.id = p.resource_id \
                     WHERE r.parent_id = $1 AND p.user_id = $2 ORDER BY p.resource_id, p.ns, p.local",
                )
                .bind(parent.0)
                .bind(viewer.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            ResourceId(r.try_get("resource_id")?),
                            StoredProp {
                                ns: r.try_get("ns")?,
                                local: r.try_get("local")?,
                                xml: r.try_get("xml")?,
                            },
                        ))
                    })
                    .collect()
            }
        }

        impl ResourceWriter for $store {
            async fn ensure_home(&self, owner: UserId, defaults: &[NewCollection]) -> Result<Resource> {
                if let Some(h) = self.home(owner).await? {
                    return Ok(h);
                }
                let mut tx = self.tx().await?;
                let now = now();
                let inserted = sqlx::query(
                    "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, sync_seq, mod_seq, created_at, modified_at) \
                     VALUES ($1, $2, NULL, $3, 'home', 0, 0, $4, $4) \
                     ON CONFLICT (owner_id) WHERE parent_id IS NULL DO NOTHING RETURNING id",
                )
                .bind(new_uuid())
                .bind(owner.0)
                .bind(owner.0.to_string())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = inserted {
                    let home = ResourceId(row.try_get("id")?);
                    for c in defaults {
                        let seq = touch(&mut tx, home).await?;
                        insert_collection(&mut tx, owner, Some(home), c, seq).await?;
                    }
                }
                tx.commit().await?;
                self.home(owner).await?.ok_or(StoreError::NotFound)
            }

            async fn create_collection(&self, parent: ResourceId, c: NewCollection) -> Result<Resource> {
                let mut tx = self.tx().await?;
                let seq = touch(&mut tx, parent).await?;
                if load_child(&mut tx, parent, &c.name).await?.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                let owner = load(&mut tx, parent).await?.owner;
                let res = insert_collection(&mut tx, owner, Some(parent), &c, seq).await?;
                clear_tombstone(&mut tx, parent, &c.name).await?;
                tx.commit().await?;
                Ok(res)
            }

            async fn put_object(
                &self,
                parent: ResourceId,
                name: &str,
                obj: NewObject,
                cond: WriteCondition,
            ) -> Result<(Resource, bool)> {
                let mut tx = self.tx().await?;
                let seq = touch(&mut tx, parent).await?;
                // The member of that name and any member holding the UID, in one statement.
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    res_cols!(),
                    " FROM resources WHERE parent_id = $1 AND (name = $2 OR uid = $3)"
                ))
                .bind(parent.0)
                .bind(name)
                .bind(&obj.uid)
                .fetch_all(&mut *tx)
                .await?;
                let found: Vec<Resource> = rows.iter().map(map_resource).collect::<Result<_>>()?;
                let existing = check_object_write(&found, name, obj.uid.as_deref(), &cond)?;
                let now = now();
                let size = obj.data.len() as i64;
                // The coverage columns go in with the row: one statement fewer per write.
                let span = obj.index.as_ref();
                let row = match &existing {
                    Some(e) => sqlx::query(concat!(
                        "UPDATE resources SET data = $2, etag = $3, size = $4, uid = $5, component = $6, \
                         content_type = $7, mod_seq = $8, modified_at = $9, first_start = $10, \
                         last_end = $11, complete_until = $12, schedule_tag = $13 WHERE id = $1 RETURNING ",
                        res_cols!()
                    ))
                    .bind(e.id.0)
                    .bind(&obj.data)
                    .bind(&obj.etag)
                    .bind(size)
                    .bind(&obj.uid)
                    .bind(&obj.component)
                    .bind(&obj.content_type)
                    .bind(seq)
                    .bind(now)
                    .bind(span.map(|i| i.first_start))
                    .bind(span.map(|i| i.last_end))
                    .bind(span.map(|i| i.complete_until))
                    .bind(&obj.schedule_tag)
                    .fetch_one(&mut *tx)
                    .await?,
                    None => {
                        // A live name never has a tombstone; only a new one can.
                        clear_tombstone(&mut tx, parent, name).await?;
                        sqlx::query(concat!(
                            "INSERT INTO resources (uuid, owner_id, parent_id, name, kind, content_type, data, etag, \
                             size, uid, component, sync_seq, mod_seq, created_at, modified_at, \
                             first_start, last_end, complete_until, schedule_tag) \
                             SELECT $1, owner_id, $2, $3, 'object', $4, $5, $6, $7, $8, $9, 0, $10, $11, $11, \
                             $12, $13, $14, $15 FROM resources WHERE id = $2 RETURNING ",
                            res_cols!()
                        ))
                        .bind(new_uuid())
                        .bind(parent.0)
                        .bind(name)
                        .bind(&obj.content_type)
                        .bind(&obj.data)
                        .bind(&obj.etag)
                        .bind(size)
                        .bind(&obj.uid)
                        .bind(&obj.component)
                        .bind(seq)
                        .bind(now)
                        .bind(span.map(|i| i.first_start))
                        .bind(span.map(|i| i.last_end))
                        .bind(span.map(|i| i.complete_until))
                        .bind(&obj.schedule_tag)
                        .fetch_one(&mut *tx)
                        .await?
                    }
                };
                let res = map_resource(&row)?;
                write_instances(&mut tx, res.id, parent, span, existing.is_some()).await?;
                tx.commit().await?;
                Ok((res, existing.is_none()))
            }

            async fn delete(&self, target: &Resource, cond: WriteCondition) -> Result<()> {
                let mut tx = self.tx().await?;
                claim(&mut tx, target).await?;
                let r = load(&mut tx, target.id).await?;
                let tag = r.etag.clone().or_else(|| Some(String::from("\"collection\"")));
                if !condition_holds(&cond, tag.as_deref()) {
                    return Err(StoreError::PreconditionFailed);
                }
                remove_resource(&mut tx, &r).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn transfer(
                &self,
                src: &Resource,
                dest_parent: ResourceId,
                dest_name: &str,
                overwrite: bool,
                is_move: bool,
            ) -> Result<bool> {
                let mut tx = self.tx().await?;
                claim(&mut tx, src).await?;
                let s = load(&mut tx, src.id).await?;
                let Some(src_parent) = s.parent else {
                    return Err(StoreError::Cycle);
                };
                // Refuse to put a collection inside itself (RFC 4918 9.8.5 / 9.9.4).
                let mut cursor = Some(dest_parent);
                for _ in 0..MAX_TREE_DEPTH {
                    let Some(c) = cursor else { break };
                    if c == s.id {
                        return Err(StoreError::Cycle);
                    }
                    cursor = load(&mut tx, c).await?.parent;
                }
                let existing = load_child(&mut tx, dest_parent, dest_name).await?;
                if let Some(e) = &existing {
                    if e.id == s.id {
                        return Err(StoreError::Cycle);
                    }
                    if !overwrite {
                        return Err(StoreError::PreconditionFailed);
                    }
                    remove_resource(&mut tx, e).await?;
                }
                if let Some(uid) = &s.uid
                    && (dest_parent != src_parent || !is_move)
                    && let Some(holder) =
                        uid_holder(&mut tx, dest_parent, uid, is_move.then_some(s.id)).await?
                {
                    return Err(StoreError::UidConflict(holder));
                }
                if is_move {
                    let seq = touch(&mut tx, src_parent).await?;
                    tombstone(&mut tx, src_parent, &s.name, seq).await?;
                    let dseq = touch(&mut tx, dest_parent).await?;
                    sqlx::query("UPDATE resources SET parent_id = $2, name = $3, mod_seq = $4 WHERE id = $1")
                        .bind(s.id.0)
                        .bind(dest_parent.0)
                        .bind(dest_name)
                        .bind(dseq)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE instances SET parent_id = $2 WHERE resource_id = $1")
                        .bind(s.id.0)
                        .bind(dest_parent.0)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    let dseq = touch(&mut tx, dest_parent).await?;
                    copy_tree(&mut tx, &s, dest_parent, dest_name, dseq).await?;
                }
                clear_tombstone(&mut tx, dest_parent, dest_name).await?;
                tx.commit().await?;
                Ok(existing.is_none())
            }

            async fn patch_props(
                &self,
                id: ResourceId,
                viewer: UserId,
                set: Vec<StoredProp>,
                remove: Vec<(String, String)>,
            ) -> Result<()> {
                let mut tx = self.tx().await?;
                let r = load(&mut tx, id).await?;
                if let Some(parent) = r.parent {
                    let seq = touch(&mut tx, parent).await?;
                    sqlx::query("UPDATE resources SET mod_seq = $2 WHERE id = $1")
                        .bind(id.0)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                }
                for p in &set {
                    put_prop(&mut tx, id, viewer, p).await?;
                }
                for (ns, local) in &remove {
                    sqlx::query(
                        "DELETE FROM props WHERE resource_id = $1 AND user_id = $2 AND ns = $3 AND local = $4",
                    )
                    .bind(id.0)
                    .bind(viewer.0)
                    .bind(ns)
                    .bind(local)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }

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

        impl MailOutboxStore for $store {
            async fn enqueue_mail(
                &self,
                recipient: &str,
                message: &[u8],
                origin: Option<&MailOrigin>,
            ) -> Result<i64> {
                let t = now();
                let row = sqlx::query(
                    "INSERT INTO mail_outbox (recipient, message, created_at, next_attempt_at, \
                       origin_owner, origin_uid, origin_attendee) \
                     VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
                )
                .bind(recipient)
                .bind(message)
                .bind(t)
                .bind(origin.map(|o| o.owner.0))
                .bind(origin.map(|o| o.uid.as_str()))
                .bind(origin.map(|o| o.attendee.as_str()))
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("id")?)
            }

            async fn claim_mail(
                &self,
                now: i64,
                lease_seconds: i64,
                limit: i64,
            ) -> Result<Vec<OutboxMail>> {
                // The outer conditions are checked again on the row as it is updated, so of
                // two instances claiming at once (PostgreSQL) only one gets each message.
                let rows = sqlx::query(
                    "UPDATE mail_outbox SET lease_until = $2 \
                     WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL \
                       AND next_attempt_at <= $1 AND lease_until <= $1 ORDER BY id LIMIT $3) \
                     AND sent_at IS NULL AND lease_until <= $1 \
                     RETURNING id, recipient, message, attempts, origin_owner, origin_uid, \
                       origin_attendee",
                )
                .bind(now)
                .bind(now.saturating_add(lease_seconds))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out = rows
                    .iter()
                    .map(|r| {
                        Ok(OutboxMail {
                            id: r.try_get("id")?,
                            recipient: r.try_get("recipient")?,
                            message: r.try_get("message")?,
                            attempts: r.try_get::<i64, _>("attempts").or_else(|_| {
                                r.try_get::<i32, _>("attempts").map(i64::from)
                            })?,
                            origin: match (
                                r.try_get::<Option<i64>, _>("origin_owner")?,
                                r.try_get::<Option<String>, _>("origin_uid")?,
                                r.try_get::<Option<String>, _>("origin_attendee")?,
                            ) {
                                (Some(owner), Some(uid), Some(attendee)) => Some(MailOrigin {
                                    owner: UserId(owner),
                                    uid,
                                    attendee,
                                }),
                                _ => None,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.sort_by_key(|m| m.id);
                Ok(out)
            }

            async fn mail_sent(&self, id: i64, now: i64) -> Result<()> {
                sqlx::query("UPDATE mail_outbox SET sent_at = $2, lease_until = 0 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mail_failed(&self, id: i64, next_attempt_at: i64, error: &str) -> Result<()> {
                sqlx::query(
                    "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                     lease_until = 0, last_error = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(next_attempt_at)
                .bind(error)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn unsent_mail(&self) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM mail_outbox WHERE sent_at IS NULL")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }
        }

        impl FeedStore for $store {
            async fn create_feed(
                &self,
                owner: UserId,
                calendar: ResourceId,
                label: &str,
                token_hash: &str,
                detail: crate::ical::privacy::Detail,
            ) -> Result<Feed> {
                let row = sqlx::query(
                    "INSERT INTO feeds (token_hash, owner_id, calendar_id, label, created_at, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     RETURNING id, owner_id, calendar_id, label, created_at, last_used_at, detail",
                )
                .bind(token_hash)
                .bind(owner.0)
                .bind(calendar.0)
                .bind(label)
                .bind(now())
                .bind(detail.as_str())
                .fetch_one(&self.pool)
                .await?;
                map_feed(&row)
            }

            async fn feeds_of(&self, owner: UserId) -> Result<Vec<Feed>> {
                let rows = sqlx::query(
                    "SELECT id, owner_id, calendar_id, label, created_at, last_used_at, detail FROM feeds \
                     WHERE owner_id = $1 ORDER BY id",
                )
                .bind(owner.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(map_feed).collect()
            }

            async fn use_feed(&self, token_hash: &str) -> Result<Option<Feed>> {
                let row = sqlx::query(
                    "UPDATE feeds SET last_used_at = $2 WHERE token_hash = $1 \
                     RETURNING id, owner_id, calendar_id, label, created_at, last_used_at, detail",
                )
                .bind(token_hash)
                .bind(now())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(map_feed).transpose()
            }

            async fn revoke_feed(&self, owner: UserId, id: i64) -> Result<bool> {
                let done = sqlx::query("DELETE FROM feeds WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }

        impl AppPasswordStore for $store {
            async fn create_app_password(&self, p: NewAppPassword) -> Result<AppPassword> {
                let row = sqlx::query(
                    "INSERT INTO app_passwords (user_id, name, lookup, hash, scope, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                )
                .bind(p.user.0)
                .bind(&p.name)
                .bind(&p.lookup)
                .bind(&p.hash)
                .bind(&p.scope)
                .bind(now())
                .bind(p.expires_at)
                .fetch_one(&self.pool)
                .await?;
                map_app_password(&row)
            }

            async fn app_password_by_lookup(&self, lookup: &str) -> Result<Option<AppPassword>> {
                let row = sqlx::query("SELECT * FROM app_passwords WHERE lookup = $1")
                    .bind(lookup)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_app_password).transpose()
            }

            async fn app_passwords_of(&self, user: UserId) -> Result<Vec<AppPassword>> {
                let rows = sqlx::query("SELECT * FROM app_passwords WHERE user_id = $1 ORDER BY id")
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(map_app_password).collect()
            }

            async fn revoke_app_password(&self, user: UserId, id: i64) -> Result<bool> {
                let done = sqlx::query("DELETE FROM app_passwords WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_app_password(&self, id: i64, now: i64) -> Result<()> {
                sqlx::query("UPDATE app_passwords SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }

        fn map_session(row: &DbRow) -> Result<Session> {
            Ok(Session {
                id: row.try_get("sid")?,
                user: UserId(row.try_get("user_id")?),
                created_at: row.try_get("s_created")?,
                expires_at: row.try_get("expires_at")?,
                id_token: row.try_get("id_token")?,
                refresh_sealed: row.try_get("refresh_sealed")?,
                refresh_due: row.try_get("refresh_due")?,
            })
        }

        impl SessionStore for $store {
            async fn create_session(&self, s: NewSession) -> Result<Session> {
                let created = now();
                let row = sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, id_token, refresh_sealed, refresh_due) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&s.token_hash)
                .bind(s.user.0)
                .bind(created)
                .bind(s.expires_at)
                .bind(&s.id_token)
                .bind(&s.refresh_sealed)
                .bind(s.refresh_due)
                .fetch_one(&self.pool)
                .await?;
                Ok(Session {
                    id: row.try_get(0)?,
                    user: s.user,
                    created_at: created,
                    expires_at: s.expires_at,
                    id_token: s.id_token,
                    refresh_sealed: s.refresh_sealed,
                    refresh_due: s.refresh_due,
                })
            }

            async fn session_by_hash(&self, token_hash: &str, now: i64) -> Result<Option<(Session, User)>> {
                let row = sqlx::query(
                    "SELECT s.id AS sid, s.user_id, s.created_at AS s_created, s.expires_at, s.id_token, \
                     s.refresh_sealed, s.refresh_due, u.* FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.expires_at > $2",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Ok((map_session(&r)?, map_user(&r)?))).transpose()
            }

            async fn renew_session(
                &self,
                id: i64,
                id_token: Option<&str>,
                refresh_sealed: Option<&str>,
                refresh_due: Option<i64>,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE sessions SET id_token = COALESCE($2, id_token), refresh_sealed = $3, refresh_due = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(id_token)
                .bind(refresh_sealed)
                .bind(refresh_due)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_session(&self, id: i64) -> Result<bool> {
                let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_sessions_of(&self, user: UserId) -> Result<u64> {
                let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(user.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn purge_sessions(&self, now: i64) -> Result<u64> {
                let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
                let row = sqlx::query(
                    "SELECT u.* FROM oidc_identities o JOIN users u ON u.id = o.user_id \
                     WHERE o.issuer = $1 AND o.subject = $2",
                )
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(map_user).transpose()
            }

            async fn link_oidc(&self, issuer: &str, subject: &str, user: UserId) -> Result<()> {
                let mut tx = self.tx().await?;
                let taken = sqlx::query(
                    "SELECT 1 FROM oidc_identities WHERE issuer = $1 AND (subject = $2 OR user_id = $3)",
                )
                .bind(issuer)
                .bind(subject)
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await?;
                if taken.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                sqlx::query("INSERT INTO oidc_identities (issuer, subject, user_id) VALUES ($1, $2, $3)")
                    .bind(issuer)
                    .bind(subject)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn has_oidc(&self, issuer: Option<&str>, user: UserId) -> Result<bool> {
                let row = sqlx::query(
                    "SELECT 1 FROM oidc_identities WHERE ($1 IS NULL OR issuer = $1) AND user_id = $2 LIMIT 1",
                )
                    .bind(issuer)
                    .bind(user.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn set_user_groups(&self, user: UserId, source: &str, groups: &[String]) -> Result<()> {
                let mut tx = self.tx().await?;
                sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND source = $2")
                    .bind(user.0)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;
                for g in groups {
                    sqlx::query(
                        "INSERT INTO user_groups (user_id, source, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(user.0)
                    .bind(source)
                    .bind(g)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn group_members(&self, source: &str) -> Result<Vec<(String, Vec<User>)>> {
                self.group_members_impl(source).await
            }

            async fn groups_of(&self, user: UserId) -> Result<Vec<String>> {
                let rows = sqlx::query("SELECT DISTINCT name FROM user_groups WHERE user_id = $1 ORDER BY name")
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
            }
        }

        impl $store {
            async fn group_members_impl(&self, source: &str) -> Result<Vec<(String, Vec<User>)>> {
                let rows = sqlx::query(
                    "SELECT g.name AS group_name, u.* FROM user_groups g JOIN users u ON u.id = g.user_id \
                     WHERE g.source = $1 ORDER BY g.name, u.name",
                )
                .bind(source)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(String, Vec<User>)> = Vec::new();
                for r in &rows {
                    let g: String = r.try_get("group_name")?;
                    let u = map_user(r)?;
                    match out.last_mut() {
                        Some((name, members)) if *name == g => members.push(u),
                        _ => out.push((g, vec![u])),
                    }
                }
                Ok(out)
            }
        }

        fn map_rule(r: &DbRow) -> Result<ShareRule> {
            let kind: String = r.try_get("kind")?;
            Ok(ShareRule {
                id: r.try_get("id")?,
                owner: UserId(r.try_get("owner_id")?),
                calendar: ResourceId(r.try_get("calendar_id")?),
                kind: RuleKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown rule kind {kind}")))?,
                target: r.try_get("target")?,
                created_at: r.try_get("created_at")?,
            })
        }

        impl ShareStore for $store {
            async fn add_share_rule(
                &self,
                owner: UserId,
                calendar: ResourceId,
                kind: RuleKind,
                target: &str,
            ) -> Result<ShareRule> {
                sqlx::query(
                    "INSERT INTO share_rules (owner_id, calendar_id, kind, target, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (calendar_id, kind, target) DO NOTHING",
                )
                .bind(owner.0)
                .bind(calendar.0)
                .bind(kind.as_str())
                .bind(target)
                .bind(now())
                .execute(&self.pool)
                .await?;
                let r = sqlx::query(
                    "SELECT * FROM share_rules WHERE calendar_id = $1 AND kind = $2 AND target = $3",
                )
                .bind(calendar.0)
                .bind(kind.as_str())
                .bind(target)
                .fetch_one(&self.pool)
                .await?;
                map_rule(&r)
            }

            async fn share_rules_of(&self, owner: UserId) -> Result<Vec<ShareRule>> {
                let rows = sqlx::query("SELECT * FROM share_rules WHERE owner_id = $1 ORDER BY id")
                    .bind(owner.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(map_rule).collect()
            }

            async fn share_rules_for(&self, calendar: ResourceId) -> Result<Vec<ShareRule>> {
                let rows = sqlx::query("SELECT * FROM share_rules WHERE calendar_id = $1 ORDER BY id")
                    .bind(calendar.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(map_rule).collect()
            }

            async fn remove_share_rule(&self, owner: UserId, id: i64) -> Result<bool> {
                let done = sqlx::query("DELETE FROM share_rules WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn share_pending(&self, now: i64) -> Result<Vec<PendingCalendar>> {
                // Recipients' mounts (`from~OWNER`) are never shared on.
                let rows = sqlx::query(
                    "SELECT r.id, r.owner_id, r.sync_seq, COALESCE(c.seq, 0) FROM resources r \
                     LEFT JOIN share_cursors c ON c.calendar_id = r.id \
                     WHERE r.kind = 'calendar' AND r.name NOT LIKE 'from~%' \
                     AND r.sync_seq > COALESCE(c.seq, 0) AND COALESCE(c.lease_until, 0) < $1 \
                     ORDER BY r.id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(PendingCalendar {
                            calendar: ResourceId(r.try_get(0)?),
                            owner: UserId(r.try_get(1)?),
                            sync_seq: r.try_get(2)?,
                            cursor: r.try_get(3)?,
                        })
                    })
                    .collect()
            }

            async fn share_watched(&self) -> Result<Vec<(ResourceId, UserId, ShareCursor)>> {
                // Driven by the two small tables, never by the resource table.
                let rows = sqlx::query(
                    "SELECT c.calendar_id, r.owner_id, c.seq, c.audience, c.refs FROM share_cursors c \
                     JOIN resources r ON r.id = c.calendar_id WHERE c.refs <> '' OR c.audience <> '' \
                     UNION \
                     SELECT s.calendar_id, s.owner_id, COALESCE(c.seq, 0), COALESCE(c.audience, ''), \
                     COALESCE(c.refs, '') FROM share_rules s LEFT JOIN share_cursors c ON c.calendar_id = s.calendar_id \
                     ORDER BY 1",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            ResourceId(r.try_get(0)?),
                            UserId(r.try_get(1)?),
                            ShareCursor {
                                seq: r.try_get(2)?,
                                audience: r.try_get(3)?,
                                refs: r.try_get(4)?,
                            },
                        ))
                    })
                    .collect()
            }

            async fn claim_share_cursor(
                &self,
                calendar: ResourceId,
                now: i64,
                until: i64,
            ) -> Result<Option<ShareCursor>> {
                let mut tx = self.tx().await?;
                let row = sqlx::query(
                    "INSERT INTO share_cursors (calendar_id, seq, audience, refs, lease_until) \
                     VALUES ($1, 0, '', '', $3) ON CONFLICT (calendar_id) DO UPDATE \
                     SET lease_until = $3 WHERE share_cursors.lease_until < $2 \
                     RETURNING seq, audience, refs",
                )
                .bind(calendar.0)
                .bind(now)
                .bind(until)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                row.map(|r| {
                    Ok(ShareCursor {
                        seq: r.try_get(0)?,
                        audience: r.try_get(1)?,
                        refs: r.try_get(2)?,
                    })
                })
                .transpose()
            }

            async fn renew_share_lease(
                &self,
                calendar: ResourceId,
                held: i64,
                until: i64,
            ) -> Result<bool> {
                // The expiry a worker set is its proof of holding the lease: a worker that
                // took over after it lapsed set another.
                let r = sqlx::query(
                    "UPDATE share_cursors SET lease_until = $3 \
                     WHERE calendar_id = $1 AND lease_until = $2",
                )
                .bind(calendar.0)
                .bind(held)
                .bind(until)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn release_share_cursor(
                &self,
                calendar: ResourceId,
                cursor: &ShareCursor,
                held: i64,
            ) -> Result<bool> {
                let r = sqlx::query(
                    "UPDATE share_cursors SET seq = $2, audience = $3, refs = $4, lease_until = 0 \
                     WHERE calendar_id = $1 AND lease_until = $5",
                )
                .bind(calendar.0)
                .bind(cursor.seq)
                .bind(&cursor.audience)
                .bind(&cursor.refs)
                .bind(held)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn share_copies(
                &self,
                calendar: ResourceId,
                names: Option<&[String]>,
            ) -> Result<Vec<(String, UserId)>> {
                let decode = |rows: Vec<DbRow>| -> Result<Vec<(String, UserId)>> {
                    rows.iter()
                        .map(|r| Ok((r.try_get(0)?, UserId(r.try_get(1)?))))
                        .collect()
                };
                let Some(names) = names else {
                    let rows = sqlx::query(
                        "SELECT name, recipient_id FROM share_copies WHERE calendar_id = $1 ORDER BY name, recipient_id",
                    )
                    .bind(calendar.0)
                    .fetch_all(&self.pool)
                    .await?;
                    return decode(rows);
                };
                let mut out = vec![];
                for chunk in names.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT name, recipient_id FROM share_copies WHERE calendar_id = ",
                    );
                    qb.push_bind(calendar.0).push(" AND name IN (");
                    let mut sep = qb.separated(", ");
                    for n in chunk {
                        sep.push_bind(n.clone());
                    }
                    sep.push_unseparated(")");
                    let rows = qb.build().persistent(false).fetch_all(&self.pool).await?;
                    out.extend(decode(rows)?);
                }
                Ok(out)
            }

            async fn record_share_copy(&self, copy: &ShareCopy) -> Result<()> {
                sqlx::query(
                    "INSERT INTO share_copies (calendar_id, name, recipient_id, mount, copy_name) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(copy.calendar.0)
                .bind(&copy.name)
                .bind(copy.recipient.0)
                .bind(&copy.mount)
                .bind(&copy.copy_name)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn orphaned_share_copies(&self) -> Result<Vec<ShareCopy>> {
                let rows = sqlx::query(
                    "SELECT calendar_id, name, recipient_id, mount, copy_name FROM share_copies s \
                     WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.id = s.calendar_id) LIMIT 500",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ShareCopy {
                            calendar: ResourceId(r.try_get(0)?),
                            name: r.try_get(1)?,
                            recipient: UserId(r.try_get(2)?),
                            mount: r.try_get(3)?,
                            copy_name: r.try_get(4)?,
                        })
                    })
                    .collect()
            }

            async fn forget_share_copy(
                &self,
                calendar: ResourceId,
                name: &str,
                recipient: UserId,
            ) -> Result<()> {
                sqlx::query(
                    "DELETE FROM share_copies WHERE calendar_id = $1 AND name = $2 AND recipient_id = $3",
                )
                .bind(calendar.0)
                .bind(name)
                .bind(recipient.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn share_settings(&self, user: UserId) -> Result<ShareSettings> {
                let row = sqlx::query("SELECT colour, prefix_summary FROM share_settings WHERE user_id = $1")
                    .bind(user.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => ShareSettings {
                        colour: r.try_get(0)?,
                        prefix_summary: r.try_get::<i64, _>(1)? != 0,
                    },
                    None => ShareSettings::default(),
                })
            }

            async fn set_share_settings(&self, user: UserId, st: &ShareSettings) -> Result<()> {
                sqlx::query(
                    "INSERT INTO share_settings (user_id, colour, prefix_summary) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET colour = excluded.colour, \
                     prefix_summary = excluded.prefix_summary",
                )
                .bind(user.0)
                .bind(&st.colour)
                .bind(i64::from(st.prefix_summary))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn members_of_group(&self, sources: &[&str], name: &str) -> Result<Vec<User>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT DISTINCT u.* FROM user_groups g JOIN users u ON u.id = g.user_id WHERE g.name = ",
                );
                qb.push_bind(name.to_string()).push(" AND g.source IN (");
                let mut sep = qb.separated(", ");
                for s in sources {
                    sep.push_bind(s.to_string());
                }
                sep.push_unseparated(") ORDER BY u.name");
                let rows = qb.build().persistent(false).fetch_all(&self.pool).await?;
                rows.iter().map(map_user).collect()
            }
        }

        fn map_calendar_share(r: &DbRow) -> Result<CalendarShare> {
            let access: String = r.try_get("access")?;
            let status: String = r.try_get("status")?;
            Ok(CalendarShare {
                id: r.try_get("id")?,
                calendar: ResourceId(r.try_get("calendar_id")?),
                owner: UserId(r.try_get("owner_id")?),
                sharee: UserId(r.try_get("sharee_id")?),
                access: ShareAccess::parse(&access)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown access {access}")))?,
                status: InviteStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown invite status {status}")))?,
                invite_uid: r.try_get("invite_uid")?,
                summary: r.try_get("summary")?,
                mount: r.try_get("mount")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn map_access_request(r: &DbRow) -> Result<AccessRequest> {
            let access: String = r.try_get("access")?;
            let status: String = r.try_get("status")?;
            let granted: Option<String> = r.try_get("granted")?;
            let bad = |what: &str, v: &str| StoreError::Corrupt(format!("unknown {what} {v}"));
            Ok(AccessRequest {
                id: r.try_get("id")?,
                requester: UserId(r.try_get("requester_id")?),
                owner: UserId(r.try_get("owner_id")?),
                access: ShareAccess::parse(&access).ok_or_else(|| bad("access", &access))?,
                status: RequestStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
                granted: match granted {
                    Some(g) => Some(ShareAccess::parse(&g).ok_or_else(|| bad("access", &g))?),
                    None => None,
                },
                message: r.try_get("message")?,
                uid: r.try_get("uid")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                decided_at: r.try_get("decided_at")?,
            })
        }

        impl CalendarShareStore for $store {
            async fn set_calendar_share(
                &self,
                calendar: ResourceId,
                owner: UserId,
                sharee: UserId,
                access: ShareAccess,
                summary: Option<&str>,
                accepted: bool,
            ) -> Result<(CalendarShare, bool)> {
                let mut tx = self.tx().await?;
                let existing = sqlx::query(
                    "SELECT * FROM calendar_shares WHERE calendar_id = $1 AND sharee_id = $2",
                )
                .bind(calendar.0)
                .bind(sharee.0)
                .fetch_optional(&mut *tx)
                .await?;
                let changed = match &existing {
                    Some(row) => {
                        let cur = map_calendar_share(row)?;
                        let status = if accepted { InviteStatus::Accepted } else { cur.status };
                        sqlx::query(
                            "UPDATE calendar_shares SET access = $2, summary = COALESCE($3, summary), status = $4 WHERE id = $1",
                        )
                        .bind(cur.id)
                        .bind(access.as_str())
                        .bind(summary)
                        .bind(status.as_str())
                        .execute(&mut *tx)
                        .await?;
                        cur.access != access || cur.status != status
                    }
                    None => {
                        let status = if accepted {
                            InviteStatus::Accepted
                        } else {
                            InviteStatus::NoResponse
                        };
                        let token = uuid::Uuid::new_v4().simple().to_string();
                        sqlx::query(
                            "INSERT INTO calendar_shares (calendar_id, owner_id, sharee_id, access, status, \
                             invite_uid, summary, mount, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(calendar.0)
                        .bind(owner.0)
                        .bind(sharee.0)
                        .bind(access.as_str())
                        .bind(status.as_str())
                        .bind(format!("urn:uuid:{token}"))
                        .bind(summary)
                        .bind(format!("shared~{}", &token[..16]))
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                        true
                    }
                };
                let row = sqlx::query(
                    "SELECT * FROM calendar_shares WHERE calendar_id = $1 AND sharee_id = $2",
                )
                .bind(calendar.0)
                .bind(sharee.0)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok((map_calendar_share(&row)?, changed))
            }

            async fn remove_calendar_share(
                &self,
                calendar: ResourceId,
                sharee: UserId,
            ) -> Result<Option<CalendarShare>> {
                let row = sqlx::query(
                    "DELETE FROM calendar_shares WHERE calendar_id = $1 AND sharee_id = $2 RETURNING *",
                )
                .bind(calendar.0)
                .bind(sharee.0)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(map_calendar_share).transpose()
            }

            async fn shares_of_calendar(&self, calendar: ResourceId) -> Result<Vec<CalendarShare>> {
                let rows = sqlx::query("SELECT * FROM calendar_shares WHERE calendar_id = $1 ORDER BY id")
                    .bind(calendar.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(map_calendar_share).collect()
            }

            async fn shared_calendar_ids(&self, owner: UserId) -> Result<Vec<ResourceId>> {
                let rows = sqlx::query(
                    "SELECT DISTINCT calendar_id FROM calendar_shares WHERE owner_id = $1 AND status <> 'declined'",
                )
                .bind(owner.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(ResourceId(r.try_get(0)?))).collect()
            }

            async fn share_by_invite(&self, invite_uid: &str) -> Result<Option<CalendarShare>> {
                let row = sqlx::query("SELECT * FROM calendar_shares WHERE invite_uid = $1")
                    .bind(invite_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_calendar_share).transpose()
            }

            async fn share_by_mount(&self, sharee: UserId, mount: &str) -> Result<Option<CalendarShare>> {
                let row = sqlx::query("SELECT * FROM calendar_shares WHERE sharee_id = $1 AND mount = $2")
                    .bind(sharee.0)
                    .bind(mount)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_calendar_share).transpose()
            }

            async fn shares_to(&self, sharee: UserId) -> Result<Vec<CalendarShare>> {
                let rows = sqlx::query("SELECT * FROM calendar_shares WHERE sharee_id = $1 ORDER BY id")
                    .bind(sharee.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(map_calendar_share).collect()
            }

            async fn set_share_status(&self, id: i64, status: InviteStatus) -> Result<()> {
                sqlx::query("UPDATE calendar_shares SET status = $2 WHERE id = $1")
                    .bind(id)
                    .bind(status.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn open_access_request(
                &self,
                requester: UserId,
                owner: UserId,
                access: ShareAccess,
                message: Option<&str>,
                uid: &str,
                expires_at: i64,
            ) -> Result<AccessRequest> {
                let mut tx = self.tx().await?;
                let now = now();
                sqlx::query(
                    "UPDATE access_requests SET status = 'expired', decided_at = $3 \
                     WHERE requester_id = $1 AND owner_id = $2 AND status = 'open' AND expires_at <= $3",
                )
                .bind(requester.0)
                .bind(owner.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let open = sqlx::query(
                    "SELECT id FROM access_requests WHERE requester_id = $1 AND owner_id = $2 AND status = 'open'",
                )
                .bind(requester.0)
                .bind(owner.0)
                .fetch_optional(&mut *tx)
                .await?;
                if open.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                let row = sqlx::query(
                    "INSERT INTO access_requests (requester_id, owner_id, access, status, message, uid, \
                     created_at, expires_at) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7) RETURNING *",
                )
                .bind(requester.0)
                .bind(owner.0)
                .bind(access.as_str())
                .bind(message)
                .bind(uid)
                .bind(now)
                .bind(expires_at)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                map_access_request(&row)
            }

            async fn access_request(&self, id: i64) -> Result<Option<AccessRequest>> {
                let row = sqlx::query("SELECT * FROM access_requests WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_access_request).transpose()
            }

            async fn access_request_by_uid(&self, uid: &str) -> Result<Option<AccessRequest>> {
                let row = sqlx::query("SELECT * FROM access_requests WHERE uid = $1")
                    .bind(uid)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_access_request).transpose()
            }

            async fn access_requests_of(&self, user: UserId) -> Result<Vec<AccessRequest>> {
                let rows = sqlx::query(
                    "SELECT * FROM access_requests WHERE requester_id = $1 OR owner_id = $1 ORDER BY id DESC LIMIT 500",
                )
                .bind(user.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(map_access_request).collect()
            }

            async fn decide_access_request(
                &self,
                id: i64,
                status: RequestStatus,
                granted: Option<ShareAccess>,
            ) -> Result<bool> {
                let now = now();
                let done = sqlx::query(
                    "UPDATE access_requests SET status = $2, granted = $3, decided_at = $4 \
                     WHERE id = $1 AND status = 'open' AND expires_at > $4",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(granted.map(ShareAccess::as_str))
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn personal_data_in(
                &self,
                calendar: ResourceId,
                user: UserId,
            ) -> Result<Vec<(ResourceId, String, Vec<u8>)>> {
                let rows = sqlx::query(
                    "SELECT p.resource_id, p.etag, p.data FROM personal_data p \
                     JOIN resources r ON r.id = p.resource_id WHERE r.parent_id = $1 AND p.user_id = $2",
                )
                .bind(calendar.0)
                .bind(user.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((ResourceId(r.try_get(0)?), r.try_get(1)?, r.try_get(2)?)))
                    .collect()
            }

            async fn set_personal_data(
                &self,
                resource: ResourceId,
                user: UserId,
                etag: &str,
                data: &[u8],
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO personal_data (resource_id, user_id, etag, data) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (resource_id, user_id) DO UPDATE SET etag = excluded.etag, data = excluded.data",
                )
                .bind(resource.0)
                .bind(user.0)
                .bind(etag)
                .bind(data)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn access_requests_since(&self, requester: UserId, since: i64) -> Result<i64> {
                let row = sqlx::query(
                    "SELECT COUNT(*) FROM access_requests WHERE requester_id = $1 AND created_at >= $2",
                )
                .bind(requester.0)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get(0)?)
            }
        }

        impl DelegateStore for $store {
            async fn set_delegates(&self, owner: UserId, write: bool, members: &[UserId]) -> Result<()> {
                let mut tx = self.tx().await?;
                sqlx::query("DELETE FROM delegates WHERE owner_id = $1 AND can_write = $2")
                    .bind(owner.0)
                    .bind(i64::from(write))
                    .execute(&mut *tx)
                    .await?;
                for m in members.iter().filter(|m| **m != owner) {
                    sqlx::query(
                        "INSERT INTO delegates (owner_id, delegate_id, can_write) VALUES ($1, $2, $3) \
                         ON CONFLICT (owner_id, delegate_id) DO UPDATE SET can_write = excluded.can_write",
                    )
                    .bind(owner.0)
                    .bind(m.0)
                    .bind(i64::from(write))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delegates_of(&self, owner: UserId) -> Result<Vec<(User, bool)>> {
                let rows = sqlx::query(
                    "SELECT u.*, d.can_write FROM delegates d JOIN users u ON u.id = d.delegate_id \
                     WHERE d.owner_id = $1 ORDER BY u.name",
                )
                .bind(owner.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((map_user(r)?, r.try_get::<i64, _>("can_write")? != 0)))
                    .collect()
            }

            async fn delegators_of(&self, delegate: UserId) -> Result<Vec<(User, bool)>> {
                let rows = sqlx::query(
                    "SELECT u.*, d.can_write FROM delegates d JOIN users u ON u.id = d.owner_id \
                     WHERE d.delegate_id = $1 ORDER BY u.name",
                )
                .bind(delegate.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((map_user(r)?, r.try_get::<i64, _>("can_write")? != 0)))
                    .collect()
            }

            async fn delegation(&self, owner: UserId, delegate: UserId) -> Result<Option<bool>> {
                let row = sqlx::query(
                    "SELECT can_write FROM delegates WHERE owner_id = $1 AND delegate_id = $2",
                )
                .bind(owner.0)
                .bind(delegate.0)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Ok(r.try_get::<i64, _>("can_write")? != 0)).transpose()
            }
        }

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
pub(crate) use impl_sql_store;

#[cfg(test)]
mod tests {
    #[test]
    fn pos_inf_literal_is_pos_inf() {
        assert_eq!(pos_inf!(), crate::ical::index::POS_INF.to_string());
    }
}
