//! `convene org`: Convene's own org chart from the command line (groups, departments, each
//! person's title, department and manager), the directory when no LDAP server is configured.
//! Every change is copied onto the accounts at once, so share rules see it; a server running
//! beside this process picks it up within its sharing interval.

use std::io::Write;

use clap::Subcommand;

use super::AppError;
use crate::org::{OrgChart, OrgError};
use crate::store::{OrgDepartment, OrgPerson};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Print the chart: departments (with parent and head), groups (with members), people.
    Show,
    /// Create a group, or change its description.
    GroupAdd {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a group (its shares stop reaching its members).
    GroupRemove { name: String },
    /// Put an account into a group.
    MemberAdd { group: String, user: String },
    /// Take an account out of a group.
    MemberRemove { group: String, user: String },
    /// Create or replace a department.
    DepartmentSet {
        name: String,
        /// The department it belongs to (none: at the top).
        #[arg(long)]
        parent: Option<String>,
        /// Its head's account name.
        #[arg(long)]
        head: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a department: those below it move to the top, its people keep no department.
    DepartmentRemove { name: String },
    /// Say what the chart holds of one account (each option left out is cleared).
    PersonSet {
        user: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// The manager's account name (the manager rule of sharing follows it).
        #[arg(long)]
        manager: Option<String>,
    },
}

fn usage(e: OrgError) -> AppError {
    match e {
        OrgError::Store(s) => AppError::Store(s),
        other => AppError::Usage(other.to_string()),
    }
}

pub(super) async fn org_command(org: &OrgChart, cmd: OrgCommand) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match cmd {
        OrgCommand::Show => {
            let snap = org.snapshot().await.map_err(usage)?;
            writeln!(out, "source: {}", org.source_name())?;
            for d in &snap.departments {
                writeln!(
                    out,
                    "department\t{}\tparent={}\thead={}",
                    d.name,
                    d.parent.as_deref().unwrap_or("-"),
                    d.head.as_deref().unwrap_or("-")
                )?;
            }
            for g in &snap.groups {
                writeln!(out, "group\t{}\t{}", g.name, g.members.join(","))?;
            }
            for p in &snap.people {
                if p.title.is_none() && p.department.is_none() && p.manager.is_none() {
                    continue;
                }
                writeln!(
                    out,
                    "person\t{}\ttitle={}\tdepartment={}\tmanager={}",
                    p.uid,
                    p.title.as_deref().unwrap_or("-"),
                    p.department.as_deref().unwrap_or("-"),
                    p.manager.as_deref().unwrap_or("-")
                )?;
            }
        }
        OrgCommand::GroupAdd { name, description } => {
            org.put_group(&name, description.as_deref())
                .await
                .map_err(usage)?;
            writeln!(out, "group {name} saved")?;
        }
        OrgCommand::GroupRemove { name } => {
            org.remove_group(&name).await.map_err(usage)?;
            writeln!(out, "group {name} removed")?;
        }
        OrgCommand::MemberAdd { group, user } => {
            let added = org.set_member(&group, &user, true).await.map_err(usage)?;
            let what = if added { "is now" } else { "was already" };
            writeln!(out, "{user} {what} in {group}")?;
        }
        OrgCommand::MemberRemove { group, user } => {
            let removed = org.set_member(&group, &user, false).await.map_err(usage)?;
            let what = if removed { "is no longer" } else { "was not" };
            writeln!(out, "{user} {what} in {group}")?;
        }
        OrgCommand::DepartmentSet {
            name,
            parent,
            head,
            description,
        } => {
            org.put_department(&OrgDepartment {
                name: name.clone(),
                parent,
                description,
                head,
            })
            .await
            .map_err(usage)?;
            writeln!(out, "department {name} saved")?;
        }
        OrgCommand::DepartmentRemove { name } => {
            org.remove_department(&name).await.map_err(usage)?;
            writeln!(out, "department {name} removed")?;
        }
        OrgCommand::PersonSet {
            user,
            title,
            department,
            manager,
        } => {
            org.put_person(
                &user,
                &OrgPerson {
                    title,
                    department,
                    manager,
                },
            )
            .await
            .map_err(usage)?;
            writeln!(out, "{user} saved")?;
        }
    }
    Ok(())
}
