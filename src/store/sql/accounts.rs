//! `FeedStore`, `AppPasswordStore` and `SessionStore` over the portable SQL: subscription feeds, app passwords, web sessions, OpenID Connect links and group memberships. Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_accounts {
    ($store:ty, $db:ty) => {
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

            async fn session_by_id(&self, id: i64, now: i64) -> Result<Option<(Session, User)>> {
                let row = sqlx::query(
                    "SELECT s.id AS sid, s.user_id, s.created_at AS s_created, s.expires_at, s.id_token, \
                     s.refresh_sealed, s.refresh_due, u.* FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.id = $1 AND s.expires_at > $2",
                )
                .bind(id)
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

            async fn set_user_groups(&self, user: UserId, source: GroupSource, groups: &[String]) -> Result<()> {
                let mut tx = self.tx().await?;
                sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND source = $2")
                    .bind(user.0)
                    .bind(source.as_str())
                    .execute(&mut *tx)
                    .await?;
                for g in groups {
                    sqlx::query(
                        "INSERT INTO user_groups (user_id, source, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(user.0)
                    .bind(source.as_str())
                    .bind(g)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn group_members(&self, source: GroupSource) -> Result<Vec<(String, Vec<User>)>> {
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
            async fn group_members_impl(&self, source: GroupSource) -> Result<Vec<(String, Vec<User>)>> {
                let rows = sqlx::query(
                    "SELECT g.name AS group_name, u.* FROM user_groups g JOIN users u ON u.id = g.user_id \
                     WHERE g.source = $1 ORDER BY g.name, u.name",
                )
                .bind(source.as_str())
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
    };
}
pub(crate) use impl_accounts;
