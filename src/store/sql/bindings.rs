//! `BindingStore` over the portable SQL: people's bindings to business systems and the audit
//! of every secret released. Expanded by `impl_sql_store!` into each adapter's module.

macro_rules! impl_bindings {
    ($store:ty, $db:ty) => {
        impl BindingStore for $store {
            async fn set_binding(
                &self,
                user: UserId,
                system: &str,
                state: BindingState,
                at: i64,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO bridge_bindings (user_id, system, state, verified_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, system) DO UPDATE SET state = excluded.state, \
                     verified_at = excluded.verified_at",
                )
                .bind(user.0)
                .bind(system)
                .bind(state.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn bindings_of(&self, user: UserId) -> Result<Vec<Binding>> {
                let rows = sqlx::query(
                    "SELECT system, state, verified_at FROM bridge_bindings WHERE user_id = $1 ORDER BY system",
                )
                .bind(user.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let state: String = r.try_get("state")?;
                        Ok(Binding {
                            system: r.try_get("system")?,
                            state: BindingState::parse(&state).ok_or_else(|| {
                                StoreError::Corrupt(format!("unknown binding state {state}"))
                            })?,
                            verified_at: r.try_get("verified_at")?,
                        })
                    })
                    .collect()
            }

            async fn remove_binding(&self, user: UserId, system: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM bridge_bindings WHERE user_id = $1 AND system = $2")
                    .bind(user.0)
                    .bind(system)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn record_release(
                &self,
                user: UserId,
                system: &str,
                purpose: AuditPurpose,
                outcome: AuditOutcome,
                at: i64,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO bridge_audit (user_id, system, purpose, outcome, at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.0)
                .bind(system)
                .bind(purpose.as_str())
                .bind(outcome.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn releases(&self, user: Option<UserId>, limit: i64) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT user_id, system, purpose, outcome, at FROM bridge_audit \
                     WHERE $1 IS NULL OR user_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(user.map(|u| u.0))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditEntry {
                            user: UserId(r.try_get("user_id")?),
                            system: r.try_get("system")?,
                            purpose: r.try_get("purpose")?,
                            outcome: r.try_get("outcome")?,
                            at: r.try_get("at")?,
                        })
                    })
                    .collect()
            }

            async fn add_handoff(&self, h: &Handoff, now: i64) -> Result<()> {
                sqlx::query("DELETE FROM bridge_handoffs WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO bridge_handoffs (code_hash, session_id, system, next_path, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&h.code_hash)
                .bind(h.session)
                .bind(&h.system)
                .bind(&h.next)
                .bind(h.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_handoff(&self, code_hash: &str, now: i64) -> Result<Option<Handoff>> {
                let row = sqlx::query(
                    "DELETE FROM bridge_handoffs WHERE code_hash = $1 \
                     RETURNING code_hash, session_id, system, next_path, expires_at",
                )
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                let h = Handoff {
                    code_hash: r.try_get("code_hash")?,
                    session: r.try_get("session_id")?,
                    system: r.try_get("system")?,
                    next: r.try_get("next_path")?,
                    expires_at: r.try_get("expires_at")?,
                };
                Ok((h.expires_at > now).then_some(h))
            }

            async fn registered_systems(&self) -> Result<Vec<(String, String)>> {
                let rows = sqlx::query("SELECT name, entry FROM bridge_systems ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("name")?, r.try_get("entry")?)))
                    .collect()
            }

            async fn register_system(&self, name: &str, entry: &str, at: i64) -> Result<()> {
                sqlx::query(
                    "INSERT INTO bridge_systems (name, entry, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET entry = excluded.entry, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(entry)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn unregister_system(&self, name: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM bridge_systems WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn systems_with_bindings(&self) -> Result<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT system FROM bridge_bindings UNION SELECT system FROM vault_secrets ORDER BY 1",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
            }

            async fn forget_system(&self, system: &str) -> Result<u64> {
                let mut tx = self.tx().await?;
                let a = sqlx::query("DELETE FROM vault_secrets WHERE system = $1")
                    .bind(system)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let b = sqlx::query("DELETE FROM bridge_bindings WHERE system = $1")
                    .bind(system)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(a + b)
            }
        }
    };
}
pub(crate) use impl_bindings;
