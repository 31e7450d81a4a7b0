//! `VaultStore` over the portable SQL: the vault's check value, wrapped data keys and sealed
//! fields, as opaque bytes. Expanded by `impl_sql_store!` into each adapter's module.

macro_rules! impl_vault {
    ($store:ty, $db:ty) => {
        fn map_stored_key(r: &DbRow) -> Result<StoredKey> {
            Ok(StoredKey {
                kek_id: r.try_get("kek_id")?,
                key_id: r.try_get("key_id")?,
                wrapped: r.try_get("wrapped")?,
            })
        }

        impl VaultStore for $store {
            async fn vault_check(&self) -> Result<Option<(String, Vec<u8>)>> {
                let row = sqlx::query("SELECT kek_id, blob FROM vault_check WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Ok((r.try_get("kek_id")?, r.try_get("blob")?)))
                    .transpose()
            }

            async fn set_vault_check(&self, kek_id: &str, blob: &[u8]) -> Result<()> {
                sqlx::query(
                    "INSERT INTO vault_check (id, kek_id, blob) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET kek_id = excluded.kek_id, blob = excluded.blob",
                )
                .bind(kek_id)
                .bind(blob)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn data_key(&self, user: UserId) -> Result<Option<StoredKey>> {
                let row = sqlx::query("SELECT kek_id, key_id, wrapped FROM vault_keys WHERE user_id = $1")
                    .bind(user.0)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(map_stored_key).transpose()
            }

            async fn add_data_key(&self, user: UserId, key: &StoredKey) -> Result<StoredKey> {
                sqlx::query(
                    "INSERT INTO vault_keys (user_id, kek_id, key_id, wrapped) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user.0)
                .bind(&key.kek_id)
                .bind(&key.key_id)
                .bind(&key.wrapped)
                .execute(&self.pool)
                .await?;
                self.data_key(user).await?.ok_or(StoreError::NotFound)
            }

            async fn data_keys_not_under(&self, kek_id: &str) -> Result<Vec<(UserId, StoredKey)>> {
                let rows = sqlx::query(
                    "SELECT user_id, kek_id, key_id, wrapped FROM vault_keys WHERE kek_id <> $1 ORDER BY user_id",
                )
                .bind(kek_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((UserId(r.try_get("user_id")?), map_stored_key(r)?)))
                    .collect()
            }

            async fn rewrap_data_key(
                &self,
                user: UserId,
                old_kek: &str,
                key: &StoredKey,
            ) -> Result<bool> {
                let r = sqlx::query(
                    "UPDATE vault_keys SET kek_id = $3, wrapped = $4 \
                     WHERE user_id = $1 AND kek_id = $2 AND key_id = $5",
                )
                .bind(user.0)
                .bind(old_kek)
                .bind(&key.kek_id)
                .bind(&key.wrapped)
                .bind(&key.key_id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn put_secret(
                &self,
                user: UserId,
                system: &str,
                field: &str,
                blob: &[u8],
                now: i64,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO vault_secrets (user_id, system, field, blob, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id, system, field) DO UPDATE SET blob = excluded.blob, \
                     updated_at = excluded.updated_at",
                )
                .bind(user.0)
                .bind(system)
                .bind(field)
                .bind(blob)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn secret(&self, user: UserId, system: &str, field: &str) -> Result<Option<Vec<u8>>> {
                let row = sqlx::query(
                    "SELECT blob FROM vault_secrets WHERE user_id = $1 AND system = $2 AND field = $3",
                )
                .bind(user.0)
                .bind(system)
                .bind(field)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Ok(r.try_get("blob")?)).transpose()
            }

            async fn remove_secrets(&self, user: UserId, system: Option<&str>) -> Result<u64> {
                let r = sqlx::query(
                    "DELETE FROM vault_secrets WHERE user_id = $1 AND ($2 IS NULL OR system = $2)",
                )
                .bind(user.0)
                .bind(system)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }
        }
    };
}
pub(crate) use impl_vault;
