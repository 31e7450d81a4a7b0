//! The organisation chart: people, groups, the department tree (with heads) and each person's
//! manager. From the LDAP directory when `[ldap]` is configured (read-only here: LDAP stays the
//! source), otherwise from Convene's own store, edited from the CLI and the JSON API, so group
//! and department shares and the manager rule work on a fresh install.
//!
//! Either way the chart is one `directory::Snapshot`, and memberships are copied onto the
//! accounts (`user_groups`, sources `directory` and `department`) where share rules read them:
//! after every edit of Convene's own chart at once, and from LDAP at each refresh or when an
//! admin asks for one.
//!
//! Must never: let an edit name a department, group or person that does not exist, make the
//! department tree or the manager chain a cycle, or edit a chart that LDAP owns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::directory::{Department, DirectoryError, Group, LdapDirectory, Person, Snapshot};
use crate::store::{
    GroupSource, OrgDepartment, OrgPerson, OrgStore as _, SessionStore as _, Store, StoreError,
    User, UserId, UserStore as _,
};

/// Longest name of a group or department, and of a title or description.
pub const MAX_NAME: usize = 100;
pub const MAX_TEXT: usize = 500;
/// Deepest department tree and longest manager chain an edit may make.
pub const MAX_DEPTH: usize = 32;

/// How often Convene's own chart is copied onto accounts without an edit (edits copy at
/// once; this only repairs what a crash between the two left behind).
const LOCAL_REFRESH: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the directory is LDAP: change it there")]
    ReadOnly,
    #[error("no such {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// Where the chart comes from.
#[derive(Clone)]
enum Source {
    Ldap(Box<LdapDirectory>),
    Local,
}

/// Each account's copied memberships (directory groups, departments) as last written.
type Copied = HashMap<UserId, (Vec<String>, Vec<String>)>;

struct Inner {
    source: Source,
    store: Store,
    copied: tokio::sync::Mutex<Copied>,
    clock: SharedClock,
    /// When memberships were last copied onto the accounts (epoch seconds).
    copied_at: std::sync::Mutex<Option<i64>>,
}

/// The org chart of this server (cheap to clone).
#[derive(Clone)]
pub struct OrgChart(Arc<Inner>);

impl OrgChart {
    /// Convene's own chart, in `store`.
    pub fn local(store: Store, clock: SharedClock) -> OrgChart {
        OrgChart::with(store, Source::Local, clock)
    }

    /// The LDAP directory's chart; memberships are copied into `store`.
    pub fn ldap(store: Store, dir: LdapDirectory, clock: SharedClock) -> OrgChart {
        OrgChart::with(store, Source::Ldap(Box::new(dir)), clock)
    }

    fn with(store: Store, source: Source, clock: SharedClock) -> OrgChart {
        OrgChart(Arc::new(Inner {
            source,
            store,
            copied: Default::default(),
            clock,
            copied_at: Default::default(),
        }))
    }

    /// When memberships were last copied onto the accounts, and when they next will be
    /// without an edit or an admin's refresh (epoch seconds): what a change made in LDAP
    /// waits for. `None` before the first copy.
    pub fn copy_times(&self) -> Option<(i64, i64)> {
        let at = (*self.0.copied_at.lock().unwrap_or_else(|e| e.into_inner()))?;
        let every = i64::try_from(self.refresh_interval().as_secs()).unwrap_or(i64::MAX);
        Some((at, at.saturating_add(every)))
    }

    /// `ldap` or `local`.
    pub fn source_name(&self) -> &'static str {
        match self.0.source {
            Source::Ldap(_) => "ldap",
            Source::Local => "local",
        }
    }

    /// Whether edits are taken (Convene's own chart).
    pub fn editable(&self) -> bool {
        matches!(self.0.source, Source::Local)
    }

    /// How often the chart is copied onto accounts without being asked.
    pub fn refresh_interval(&self) -> Duration {
        match &self.0.source {
            Source::Ldap(d) => d.refresh_interval(),
            Source::Local => LOCAL_REFRESH,
        }
    }

    /// The chart as it stands (LDAP's as last read, within its refresh interval).
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, OrgError> {
        match &self.0.source {
            Source::Ldap(d) => Ok(d.snapshot().await?),
            Source::Local => Ok(Arc::new(self.local_snapshot().await?)),
        }
    }

    async fn local_snapshot(&self) -> Result<Snapshot, OrgError> {
        let store = &self.0.store;
        let (departments, groups, people) = store.org_chart().await?;
        let mut entries: HashMap<String, OrgPerson> = people.into_iter().collect();
        let people = store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| !u.disabled)
            .map(|u| {
                let e = entries.remove(&u.name).unwrap_or_default();
                Person {
                    dn: String::new(),
                    mail: u.email,
                    display_name: u.display_name,
                    title: e.title,
                    department: e.department,
                    manager: e.manager,
                    avatar_url: None,
                    uid: u.name,
                }
            })
            .collect();
        Ok(Snapshot {
            people,
            groups: groups
                .into_iter()
                .map(|g| Group {
                    name: g.name,
                    description: g.description,
                    members: g.members,
                })
                .collect(),
            departments: departments
                .into_iter()
                .map(|d| Department {
                    name: d.name,
                    parent: d.parent,
                    description: d.description,
                    head: d.head,
                })
                .collect(),
        })
    }

    /// Read the chart now (LDAP's afresh) and copy memberships onto the accounts; the number
    /// of accounts whose memberships changed.
    pub async fn refresh(&self) -> Result<usize, OrgError> {
        if let Source::Ldap(d) = &self.0.source {
            d.forget_snapshot().await;
        }
        let snap = self.snapshot().await?;
        let mut copied = self.0.copied.lock().await;
        if copied.is_empty() {
            *copied = self.copied_in_store().await?;
        }
        let n = copy_memberships(&self.0.store, &snap, &mut copied).await?;
        *self.0.copied_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.0.clock.now());
        Ok(n)
    }

    /// What the store holds as copied, so a new process rewrites only what changed.
    async fn copied_in_store(&self) -> Result<Copied, StoreError> {
        let mut out: Copied = HashMap::new();
        for (source, second) in [
            (GroupSource::Directory, false),
            (GroupSource::Department, true),
        ] {
            for (group, members) in self.0.store.group_members(source).await? {
                for u in members {
                    let e = out.entry(u.id).or_default();
                    let list = if second { &mut e.1 } else { &mut e.0 };
                    list.push(group.clone());
                }
            }
        }
        Ok(out)
    }

    /// The manager of `uid`, when the chart names one.
    pub async fn manager_of(&self, uid: &str) -> Result<Option<String>, OrgError> {
        Ok(self
            .snapshot()
            .await?
            .people
            .iter()
            .find(|p| p.uid == uid)
            .and_then(|p| p.manager.clone()))
    }

    fn check_editable(&self) -> Result<(), OrgError> {
        if self.editable() {
            Ok(())
        } else {
            Err(OrgError::ReadOnly)
        }
    }

    async fn account(&self, name: &str) -> Result<User, OrgError> {
        self.0
            .store
            .user_by_name(name)
            .await?
            .ok_or_else(|| OrgError::NotFound(format!("account {name:?}")))
    }

    /// Create a group or change its description.
    pub async fn put_group(&self, name: &str, description: Option<&str>) -> Result<(), OrgError> {
        self.check_editable()?;
        check_name(name)?;
        check_text(description)?;
        self.0.store.put_group(name, description).await?;
        self.refresh().await?;
        Ok(())
    }

    pub async fn remove_group(&self, name: &str) -> Result<(), OrgError> {
        self.check_editable()?;
        if !self.0.store.remove_group(name).await? {
            return Err(OrgError::NotFound(format!("group {name:?}")));
        }
        self.refresh().await?;
        Ok(())
    }

    /// Add `user` to `group` (or take them out); `false` when they already were (were not).
    pub async fn set_member(
        &self,
        group: &str,
        user: &str,
        member: bool,
    ) -> Result<bool, OrgError> {
        self.check_editable()?;
        let snap = self.local_snapshot().await?;
        if !snap.groups.iter().any(|g| g.name == group) {
            return Err(OrgError::NotFound(format!("group {group:?}")));
        }
        let u = self.account(user).await?;
        let changed = self.0.store.set_group_member(group, u.id, member).await?;
        self.refresh().await?;
        Ok(changed)
    }

    /// Create or replace a department: its parent must exist and not lie below it, and its
    /// head must be an account.
    pub async fn put_department(&self, d: &OrgDepartment) -> Result<(), OrgError> {
        self.check_editable()?;
        check_name(&d.name)?;
        check_text(d.description.as_deref())?;
        let snap = self.local_snapshot().await?;
        if let Some(parent) = &d.parent {
            if !snap.departments.iter().any(|x| &x.name == parent) {
                return Err(OrgError::NotFound(format!("department {parent:?}")));
            }
            let above = snap.department_chain(parent);
            if above.contains(&d.name) {
                return Err(OrgError::Invalid(format!(
                    "{parent:?} is inside {:?}: a department cannot be below itself",
                    d.name
                )));
            }
            if above.len() >= MAX_DEPTH {
                return Err(OrgError::Invalid(format!(
                    "departments nest at most {MAX_DEPTH} deep"
                )));
            }
        }
        if let Some(h) = &d.head {
            self.account(h).await?;
        }
        self.0.store.put_department(d).await?;
        self.refresh().await?;
        Ok(())
    }

    /// Remove a department: the departments below it move to the top, its people keep no
    /// department.
    pub async fn remove_department(&self, name: &str) -> Result<(), OrgError> {
        self.check_editable()?;
        if !self.0.store.remove_department(name).await? {
            return Err(OrgError::NotFound(format!("department {name:?}")));
        }
        self.refresh().await?;
        Ok(())
    }

    /// Replace what the chart says of one account: its department must exist, its manager
    /// must be another account and the manager chain must not come back to it.
    pub async fn put_person(&self, name: &str, p: &OrgPerson) -> Result<(), OrgError> {
        self.check_editable()?;
        check_text(p.title.as_deref())?;
        let u = self.account(name).await?;
        let snap = self.local_snapshot().await?;
        if let Some(d) = &p.department
            && !snap.departments.iter().any(|x| &x.name == d)
        {
            return Err(OrgError::NotFound(format!("department {d:?}")));
        }
        if let Some(m) = &p.manager {
            self.account(m).await?;
            let mut cur = Some(m.clone());
            let mut steps = 0;
            while let Some(c) = cur {
                if c == u.name {
                    return Err(OrgError::Invalid(format!(
                        "{m:?} reports to {name:?}: a manager chain cannot come back to a person"
                    )));
                }
                steps += 1;
                if steps > MAX_DEPTH {
                    return Err(OrgError::Invalid(format!(
                        "manager chains are at most {MAX_DEPTH} long"
                    )));
                }
                cur = snap
                    .people
                    .iter()
                    .find(|x| x.uid == c)
                    .and_then(|x| x.manager.clone());
            }
        }
        self.0.store.put_person(u.id, p).await?;
        self.refresh().await?;
        Ok(())
    }
}

/// A group or department name: 1 to `MAX_NAME` characters, no slash (it is a URL segment of
/// its principal), no control character, no space at either end.
fn check_name(name: &str) -> Result<(), OrgError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name.trim() == name
        && !name.chars().any(|c| c == '/' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(OrgError::Invalid(format!(
            "{name:?}: a name has 1 to {MAX_NAME} characters, no '/' or control character, no space at either end"
        )))
    }
}

fn check_text(text: Option<&str>) -> Result<(), OrgError> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) => {
            Err(OrgError::Invalid(format!(
                "a title or description has at most {MAX_TEXT} characters and no control character"
            )))
        }
        _ => Ok(()),
    }
}

/// Copy the chart's group and department memberships (a department with those above it)
/// onto the accounts of the people in it. `last` remembers what was written, so an unchanged
/// membership costs nothing; people who left the chart lose theirs.
async fn copy_memberships(
    store: &Store,
    snap: &Snapshot,
    last: &mut Copied,
) -> Result<usize, StoreError> {
    let users = store.list_users().await?;
    let mut changed = 0;
    let mut seen = std::collections::HashSet::new();
    for user in &users {
        if !snap.people.iter().any(|p| p.uid == user.name) {
            continue;
        }
        seen.insert(user.id);
        let mut now = snap.memberships(&user.name);
        now.0.sort();
        now.1.sort();
        if last.get(&user.id) == Some(&now) {
            continue;
        }
        store
            .set_user_groups(user.id, GroupSource::Directory, &now.0)
            .await?;
        store
            .set_user_groups(user.id, GroupSource::Department, &now.1)
            .await?;
        last.insert(user.id, now);
        changed += 1;
    }
    let gone: Vec<_> = last
        .keys()
        .filter(|id| !seen.contains(id))
        .copied()
        .collect();
    for id in gone {
        store
            .set_user_groups(id, GroupSource::Directory, &[])
            .await?;
        store
            .set_user_groups(id, GroupSource::Department, &[])
            .await?;
        last.remove(&id);
        changed += 1;
    }
    Ok(changed)
}
