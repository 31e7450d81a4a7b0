//! `MailOutboxStore` over the portable SQL: the durable iMIP outbox. Expanded by `impl_sql_store!` into each adapter's module, beside the
//! shared helpers it uses.

macro_rules! impl_mail {
    ($store:ty, $db:ty) => {
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
    };
}
pub(crate) use impl_mail;
