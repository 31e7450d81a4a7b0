//! Group principals (RFC 3744 4): the directory's groups at `/dav/groups/NAME/` and its
//! departments at `/dav/departments/NAME/`, and groups an identity provider names (recorded on
//! accounts at sign-in) at `/dav/groups/NAME/` too. Each lists its members in
//! `DAV:group-member-set` (people, and for a department its sub-departments) and says
//! `calendar-user-type` GROUP, so a client (or a share rule) can address "Sales" as one.
//!
//! Read-only: membership is the directory's or the provider's, never changed over DAV.
//!
//! Must never: touch SQL or LDAP directly (the store and the org chart answer), or
//! list a disabled account as a member.

use super::delegation::hrefs_xml;
use super::props::Prop;
use super::{Dav, href_of, internal, principal_href};
use crate::dav::{DavError, escape};
use crate::store::{SessionStore as _, UserStore as _};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Group,
    Department,
}

impl GroupKind {
    pub fn segment(self) -> &'static str {
        match self {
            GroupKind::Group => "groups",
            GroupKind::Department => "departments",
        }
    }
    pub fn of_segment(s: &str) -> Option<GroupKind> {
        match s {
            "groups" => Some(GroupKind::Group),
            "departments" => Some(GroupKind::Department),
            _ => None,
        }
    }
}

pub fn group_href(kind: GroupKind, name: &str) -> String {
    href_of(&[kind.segment(), name], true)
}

/// A group principal as rendered.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub kind: GroupKind,
    pub name: String,
    pub description: Option<String>,
    /// Principal hrefs of the members.
    pub members: Vec<String>,
}

impl GroupInfo {
    pub fn href(&self) -> String {
        group_href(self.kind, &self.name)
    }
}

impl Dav<'_> {
    /// Every group principal: the directory's groups and departments, and provider groups.
    pub(super) async fn group_principals(&self) -> Result<Vec<GroupInfo>, DavError> {
        let mut out: Vec<GroupInfo> = Vec::new();
        if let Some(org) = self.org {
            match org.snapshot().await {
                Ok(snap) => {
                    for g in &snap.groups {
                        out.push(GroupInfo {
                            kind: GroupKind::Group,
                            name: g.name.clone(),
                            description: g.description.clone(),
                            members: g.members.iter().map(|m| principal_href(m)).collect(),
                        });
                    }
                    for d in &snap.departments {
                        let mut members: Vec<String> = snap
                            .people
                            .iter()
                            .filter(|p| p.department.as_deref() == Some(d.name.as_str()))
                            .map(|p| principal_href(&p.uid))
                            .collect();
                        members.extend(
                            snap.departments
                                .iter()
                                .filter(|c| c.parent.as_deref() == Some(d.name.as_str()))
                                .map(|c| group_href(GroupKind::Department, &c.name)),
                        );
                        out.push(GroupInfo {
                            kind: GroupKind::Department,
                            name: d.name.clone(),
                            description: d.description.clone(),
                            members,
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "directory unavailable for group principals"),
            }
        }
        // Groups an identity provider named, from the accounts that signed in with them.
        for (name, members) in self
            .store
            .group_members(crate::store::GroupSource::Oidc)
            .await
            .map_err(internal)?
        {
            let hrefs: Vec<String> = members
                .iter()
                .filter(|u| !u.disabled)
                .map(|u| principal_href(&u.name))
                .collect();
            match out
                .iter_mut()
                .find(|g| g.kind == GroupKind::Group && g.name == name)
            {
                Some(g) => {
                    for h in hrefs {
                        if !g.members.contains(&h) {
                            g.members.push(h);
                        }
                    }
                }
                None => out.push(GroupInfo {
                    kind: GroupKind::Group,
                    name,
                    description: None,
                    members: hrefs,
                }),
            }
        }
        // Disabled accounts are not members.
        let disabled: Vec<String> = self
            .store
            .list_users()
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|u| u.disabled)
            .map(|u| principal_href(&u.name))
            .collect();
        for g in &mut out {
            g.members.retain(|m| !disabled.contains(m));
            g.members.sort();
        }
        out.sort_by(|a, b| (a.kind.segment(), &a.name).cmp(&(b.kind.segment(), &b.name)));
        Ok(out)
    }

    pub(super) async fn group_principal(
        &self,
        kind: GroupKind,
        name: &str,
    ) -> Result<Option<GroupInfo>, DavError> {
        Ok(self
            .group_principals()
            .await?
            .into_iter()
            .find(|g| g.kind == kind && g.name == name))
    }

    /// A property of a group principal: `Some(None)` for one that a group does not have,
    /// `None` to fall through to the common ones.
    pub(super) fn render_group(&self, prop: &Prop, g: &GroupInfo) -> Option<Option<String>> {
        Some(Some(match prop {
            Prop::ResourceType => "<D:resourcetype><D:principal/></D:resourcetype>".into(),
            Prop::DisplayName => format!("<D:displayname>{}</D:displayname>", escape(&g.name)),
            Prop::PrincipalUrl => format!(
                "<D:principal-URL><D:href>{}</D:href></D:principal-URL>",
                escape(&g.href())
            ),
            Prop::GroupMemberSet => hrefs_xml("D:group-member-set", &g.members),
            Prop::GroupMembership => "<D:group-membership/>".into(),
            Prop::AlternateUriSet => "<D:alternate-URI-set/>".into(),
            Prop::CalendarUserType => "<C:calendar-user-type>GROUP</C:calendar-user-type>".into(),
            Prop::CalendarUserAddressSet => format!(
                "<C:calendar-user-address-set><D:href>{}</D:href></C:calendar-user-address-set>",
                escape(&g.href())
            ),
            Prop::RecordType => "<CS:record-type>groups</CS:record-type>".into(),
            Prop::Owner => "<D:owner/>".into(),
            Prop::CalendarHomeSet
            | Prop::ScheduleInboxUrl
            | Prop::ScheduleOutboxUrl
            | Prop::EmailAddressSet
            | Prop::NotificationUrl
            | Prop::FirstName
            | Prop::LastName => return Some(None),
            _ => return None,
        }))
    }
}

/// Does a search text match a group (its name or description, caseless)?
pub fn group_matches(g: &GroupInfo, text: &str) -> bool {
    g.name.to_lowercase().contains(text)
        || g.description
            .as_deref()
            .is_some_and(|d| d.to_lowercase().contains(text))
}
