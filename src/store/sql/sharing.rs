//! `ShareStore`, `CalendarShareStore` and `DelegateStore` over the portable SQL: delegated-entry rules and the worker's cursors, calendar shares and access requests, delegates. Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_sharing {
    ($store:ty, $db:ty) => {
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
                let mut tx = self.tx().await?;
                let before = sqlx::query(
                    "SELECT colour, prefix_summary FROM share_settings WHERE user_id = $1",
                )
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await?;
                let same = match &before {
                    Some(r) => {
                        r.try_get::<Option<String>, _>(0)? == st.colour
                            && (r.try_get::<i64, _>(1)? != 0) == st.prefix_summary
                    }
                    None => st.colour.is_none() && !st.prefix_summary,
                };
                sqlx::query(
                    "INSERT INTO share_settings (user_id, colour, prefix_summary) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET colour = excluded.colour, \
                     prefix_summary = excluded.prefix_summary",
                )
                .bind(user.0)
                .bind(&st.colour)
                .bind(i64::from(st.prefix_summary))
                .execute(&mut *tx)
                .await?;
                if !same {
                    // Every copy is styled from these: each of the owner's calendars is
                    // reconciled whole on the worker's next pass, edits or not.
                    sqlx::query(
                        "UPDATE share_cursors SET seq = 0 WHERE calendar_id IN \
                         (SELECT id FROM resources WHERE owner_id = $1 AND kind = 'calendar')",
                    )
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn members_of_group(&self, sources: &[GroupSource], name: &str) -> Result<Vec<User>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT DISTINCT u.* FROM user_groups g JOIN users u ON u.id = g.user_id WHERE g.name = ",
                );
                qb.push_bind(name.to_string()).push(" AND g.source IN (");
                let mut sep = qb.separated(", ");
                for s in sources {
                    sep.push_bind(s.as_str());
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
                calendars: r
                    .try_get::<String, _>("calendars")?
                    .split('\n')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        }

        /// A calendar shared with `sharee` appeared in their home, changed there or left it
        /// (`mount` is its name there): a change of the home, for home-level sync.
        async fn note_mount(tx: &mut Tx, sharee: UserId, mount: &str) -> Result<()> {
            let home: Option<i64> = sqlx::query(
                "SELECT id FROM resources WHERE owner_id = $1 AND parent_id IS NULL",
            )
            .bind(sharee.0)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            if let Some(home) = home {
                let seq = touch(tx, ResourceId(home)).await?;
                tombstone(tx, ResourceId(home), mount, seq).await?;
            }
            Ok(())
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
                let share = map_calendar_share(&row)?;
                if changed && share.status == InviteStatus::Accepted {
                    note_mount(&mut tx, sharee, &share.mount).await?;
                }
                tx.commit().await?;
                Ok((share, changed))
            }

            async fn remove_calendar_share(
                &self,
                calendar: ResourceId,
                sharee: UserId,
            ) -> Result<Option<CalendarShare>> {
                let mut tx = self.tx().await?;
                let row = sqlx::query(
                    "DELETE FROM calendar_shares WHERE calendar_id = $1 AND sharee_id = $2 RETURNING *",
                )
                .bind(calendar.0)
                .bind(sharee.0)
                .fetch_optional(&mut *tx)
                .await?;
                let share = row.as_ref().map(map_calendar_share).transpose()?;
                if let Some(s) = share.as_ref().filter(|s| s.status == InviteStatus::Accepted) {
                    note_mount(&mut tx, sharee, &s.mount).await?;
                }
                tx.commit().await?;
                Ok(share)
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
                let mut tx = self.tx().await?;
                let before = sqlx::query("SELECT * FROM calendar_shares WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(map_calendar_share)
                    .transpose()?;
                sqlx::query("UPDATE calendar_shares SET status = $2 WHERE id = $1")
                    .bind(id)
                    .bind(status.as_str())
                    .execute(&mut *tx)
                    .await?;
                // Accepted or no longer accepted: the mount came or went.
                if let Some(b) = before
                    && (b.status == InviteStatus::Accepted) != (status == InviteStatus::Accepted)
                {
                    note_mount(&mut tx, b.sharee, &b.mount).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn open_access_request(&self, req: NewAccessRequest<'_>) -> Result<AccessRequest> {
                let NewAccessRequest { requester, owner, access, message, calendars, uid, expires_at } = req;
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
                     created_at, expires_at, calendars) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8) RETURNING *",
                )
                .bind(requester.0)
                .bind(owner.0)
                .bind(access.as_str())
                .bind(message)
                .bind(uid)
                .bind(now)
                .bind(expires_at)
                .bind(calendars.join("\n"))
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
    };
}
pub(crate) use impl_sharing;
