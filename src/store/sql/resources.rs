//! `ResourceReader` and `ResourceWriter` over the portable SQL: the resource tree, bodies, properties, and writes checked inside their transaction. Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_resources {
    ($store:ty, $db:ty) => {
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
                if r.kind == ResourceKind::Calendar {
                    // Its sharees' mounts go with it: a change of each sharee's home.
                    let rows = sqlx::query(
                        "SELECT sharee_id, mount FROM calendar_shares WHERE calendar_id = $1 AND status = 'accepted'",
                    )
                    .bind(r.id.0)
                    .fetch_all(&mut *tx)
                    .await?;
                    for row in &rows {
                        let mount: String = row.try_get("mount")?;
                        note_mount(&mut tx, UserId(row.try_get("sharee_id")?), &mount).await?;
                    }
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
    };
}
pub(crate) use impl_resources;
