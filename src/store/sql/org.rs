//! `OrgStore` over the portable SQL: Convene's own departments, groups and people. Expanded by
//! `impl_sql_store!` into each adapter's module, beside the shared helpers it uses.

macro_rules! impl_org {
    ($store:ty, $db:ty) => {
        /// The id of the account named `name`, if there is one.
        async fn account_id(tx: &mut Tx, name: Option<&str>) -> Result<Option<i64>> {
            let Some(name) = name else { return Ok(None) };
            sqlx::query("SELECT id FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(Into::into)
        }

        impl OrgStore for $store {
            async fn org_chart(
                &self,
            ) -> Result<(Vec<OrgDepartment>, Vec<OrgGroup>, Vec<(String, OrgPerson)>)> {
                let rows = sqlx::query(
                    "SELECT d.name, d.parent, d.description, u.name AS head FROM org_departments d \
                     LEFT JOIN users u ON u.id = d.head_id ORDER BY d.name",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut departments = Vec::with_capacity(rows.len());
                for r in &rows {
                    departments.push(OrgDepartment {
                        name: r.try_get("name")?,
                        parent: r.try_get("parent")?,
                        description: r.try_get("description")?,
                        head: r.try_get("head")?,
                    });
                }
                let rows = sqlx::query(
                    "SELECT g.name, g.description, u.name AS member FROM org_groups g \
                     LEFT JOIN org_group_members m ON m.group_name = g.name \
                     LEFT JOIN users u ON u.id = m.user_id ORDER BY g.name, u.name",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut groups: Vec<OrgGroup> = Vec::new();
                for r in &rows {
                    let name: String = r.try_get("name")?;
                    let member: Option<String> = r.try_get("member")?;
                    if groups.last().is_none_or(|g| g.name != name) {
                        groups.push(OrgGroup {
                            name,
                            description: r.try_get("description")?,
                            members: vec![],
                        });
                    }
                    if let (Some(m), Some(g)) = (member, groups.last_mut()) {
                        g.members.push(m);
                    }
                }
                let rows = sqlx::query(
                    "SELECT u.name, p.title, p.department, m.name AS manager FROM org_people p \
                     JOIN users u ON u.id = p.user_id LEFT JOIN users m ON m.id = p.manager_id \
                     ORDER BY u.name",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut people = Vec::with_capacity(rows.len());
                for r in &rows {
                    people.push((
                        r.try_get("name")?,
                        OrgPerson {
                            title: r.try_get("title")?,
                            department: r.try_get("department")?,
                            manager: r.try_get("manager")?,
                        },
                    ));
                }
                Ok((departments, groups, people))
            }

            async fn put_department(&self, d: &OrgDepartment) -> Result<()> {
                let mut tx = self.tx().await?;
                let head = account_id(&mut tx, d.head.as_deref()).await?;
                sqlx::query(
                    "INSERT INTO org_departments (name, parent, description, head_id) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET parent = excluded.parent, \
                     description = excluded.description, head_id = excluded.head_id",
                )
                .bind(&d.name)
                .bind(&d.parent)
                .bind(&d.description)
                .bind(head)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn remove_department(&self, name: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM org_departments WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn put_group(&self, name: &str, description: Option<&str>) -> Result<()> {
                sqlx::query(
                    "INSERT INTO org_groups (name, description) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description",
                )
                .bind(name)
                .bind(description)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn remove_group(&self, name: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM org_groups WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn set_group_member(&self, group: &str, user: UserId, member: bool) -> Result<bool> {
                let r = if member {
                    sqlx::query(
                        "INSERT INTO org_group_members (group_name, user_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                } else {
                    sqlx::query("DELETE FROM org_group_members WHERE group_name = $1 AND user_id = $2")
                }
                .bind(group)
                .bind(user.0)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn put_person(&self, user: UserId, p: &OrgPerson) -> Result<()> {
                let mut tx = self.tx().await?;
                let manager = account_id(&mut tx, p.manager.as_deref()).await?;
                sqlx::query(
                    "INSERT INTO org_people (user_id, title, department, manager_id) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id) DO UPDATE SET title = excluded.title, \
                     department = excluded.department, manager_id = excluded.manager_id",
                )
                .bind(user.0)
                .bind(&p.title)
                .bind(&p.department)
                .bind(manager)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_org;
