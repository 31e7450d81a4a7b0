//! `UserStore` over the portable SQL: accounts. Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_users {
    ($store:ty, $db:ty) => {
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
    };
}
pub(crate) use impl_users;
