//! Delegation, as CalendarServer's calendar-proxy extension has it: each principal has two
//! group principals, `calendar-proxy-read` and `calendar-proxy-write`, whose
//! `DAV:group-member-set` the owner edits (the PROPPATCH Apple Calendar sends from its
//! Delegation tab). Members read, or read and write, the owner's calendars, and a write
//! delegate schedules as the owner (the "secretary" case). Each member principal shows the
//! groups in `DAV:group-membership` and the owners in `CS:calendar-proxy-read-for` /
//! `-write-for`.
//!
//! Must never: touch SQL, let anyone but the owner change a group, or grant more than the
//! group says (a read delegate never writes).

use std::collections::HashMap;
use std::sync::Mutex;

use http::StatusCode;

use super::props::Prop;
use super::{Dav, DavResponse, Node, internal, need_privilege, principal_href};
use crate::calendar::address::principal_name;
use crate::dav::{DavError, Multistatus, NS_DAV, PatchOp, Privilege, escape};
use crate::store::{DelegateStore, User, UserId, UserStore};

pub const PROXY_READ: &str = "calendar-proxy-read";
pub const PROXY_WRITE: &str = "calendar-proxy-write";

/// The href of `owner`'s read or write proxy group.
pub fn group_href(owner: &str, write: bool) -> String {
    format!(
        "{}{}/",
        principal_href(owner),
        if write { PROXY_WRITE } else { PROXY_READ }
    )
}

/// What a principal's delegation properties show (hrefs).
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Groups the principal is a member of (DAV:group-membership).
    groups: Vec<String>,
    read_for: Vec<String>,
    write_for: Vec<String>,
}

/// Links fetched for this request, by principal. Rendering is synchronous, so the links of a
/// principal are fetched (`prefetch_links`) before it is rendered; one not fetched renders
/// empty lists.
#[derive(Debug, Default)]
pub struct LinkCache(
    Mutex<HashMap<UserId, Links>>,
    /// Sharing state of the calendars being rendered.
    pub(super) Mutex<super::sharing::ShareView>,
);

impl LinkCache {
    fn get(&self, id: UserId) -> Links {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }
}

pub(super) fn hrefs_xml(tag: &str, hrefs: &[String]) -> String {
    if hrefs.is_empty() {
        return format!("<{tag}/>");
    }
    let mut s = format!("<{tag}>");
    for h in hrefs {
        s.push_str(&format!("<D:href>{}</D:href>", escape(h)));
    }
    s.push_str(&format!("</{tag}>"));
    s
}

impl Dav<'_> {
    /// Fetch `u`'s delegation links into the request cache.
    pub(super) async fn prefetch_links(&self, u: &User) -> Result<(), DavError> {
        let mut links = Links::default();
        for (owner, write) in self.store.delegators_of(u.id).await.map_err(internal)? {
            links.groups.push(group_href(&owner.name, write));
            let list = if write {
                &mut links.write_for
            } else {
                &mut links.read_for
            };
            list.push(principal_href(&owner.name));
        }
        self.links
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(u.id, links);
        Ok(())
    }

    /// One of `owner`'s proxy groups, with its members.
    pub(super) async fn proxy_group_node<'u>(
        &self,
        owner: &'u User,
        write: bool,
    ) -> Result<Node<'u>, DavError> {
        let members = self
            .store
            .delegates_of(owner.id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|(_, w)| *w == write)
            .map(|(u, _)| principal_href(&u.name))
            .collect();
        Ok(Node::ProxyGroup {
            owner,
            write,
            members,
        })
    }

    /// The hrefs of a principal's delegation property, from the cache.
    pub(super) fn link_hrefs(&self, prop: &Prop, u: &User) -> Option<Vec<String>> {
        let links = self.links.get(u.id);
        Some(match prop {
            Prop::GroupMembership => links.groups,
            Prop::CalendarProxyReadFor => links.read_for,
            Prop::CalendarProxyWriteFor => links.write_for,
            _ => return None,
        })
    }

    /// A principal's delegation properties, from the cache.
    pub(super) fn render_links(&self, prop: &Prop, u: &User) -> Option<String> {
        let tag = match prop {
            Prop::GroupMembership => "D:group-membership",
            Prop::CalendarProxyReadFor => "CS:calendar-proxy-read-for",
            Prop::CalendarProxyWriteFor => "CS:calendar-proxy-write-for",
            _ => return None,
        };
        Some(hrefs_xml(tag, &self.link_hrefs(prop, u)?))
    }

    /// A proxy group's own properties; `None` for properties it shares with every resource.
    pub(super) fn render_proxy_group(
        &self,
        prop: &Prop,
        owner: &User,
        write: bool,
        members: &[String],
    ) -> Option<Option<String>> {
        let kind = if write { PROXY_WRITE } else { PROXY_READ };
        Some(Some(match prop {
            Prop::ResourceType => {
                format!("<D:resourcetype><D:principal/><CS:{kind}/></D:resourcetype>")
            }
            Prop::DisplayName => format!(
                "<D:displayname>{} ({})</D:displayname>",
                escape(owner.display_name.as_deref().unwrap_or(&owner.name)),
                if write {
                    "delegates, read-write"
                } else {
                    "delegates, read-only"
                }
            ),
            Prop::PrincipalUrl => format!(
                "<D:principal-URL><D:href>{}</D:href></D:principal-URL>",
                escape(&group_href(&owner.name, write))
            ),
            Prop::GroupMemberSet => hrefs_xml("D:group-member-set", members),
            Prop::GroupMembership => "<D:group-membership/>".into(),
            Prop::Owner => format!(
                "<D:owner><D:href>{}</D:href></D:owner>",
                escape(&principal_href(&owner.name))
            ),
            Prop::CalendarHomeSet
            | Prop::CalendarUserAddressSet
            | Prop::ScheduleInboxUrl
            | Prop::ScheduleOutboxUrl
            | Prop::EmailAddressSet
            | Prop::NotificationUrl => return Some(None),
            _ => return None,
        }))
    }

    /// PROPPATCH of a proxy group: only its owner, and only DAV:group-member-set (a set of
    /// principal hrefs; a remove empties the group).
    pub(super) async fn patch_proxy_group(
        &self,
        owner: &User,
        write: bool,
        ops: &[PatchOp],
        href: &str,
    ) -> Result<DavResponse, DavError> {
        if owner.id != self.user.id {
            return Err(need_privilege(href, Privilege::WriteProperties));
        }
        let mut members: Option<Vec<UserId>> = None;
        for op in ops {
            let name = op.name();
            let value = match op {
                PatchOp::Set(el, _) => Some(el),
                PatchOp::Remove(_) => None,
            };
            if !(name.ns == NS_DAV && name.local == "group-member-set") {
                return Err(DavError::new(
                    403,
                    format!(
                        "only DAV:group-member-set can be changed on a proxy group, not {{{}}}{}",
                        name.ns, name.local
                    ),
                ));
            }
            let mut ids = vec![];
            if let Some(el) = value {
                for h in el.children_named(NS_DAV, "href") {
                    let user = match principal_name(h.text.trim()) {
                        Some(n) => self.store.user_by_name(&n).await.map_err(internal)?,
                        None => None,
                    };
                    match user {
                        Some(u) if !u.disabled => ids.push(u.id),
                        _ => {
                            return Err(DavError::new(
                                409,
                                format!("{} is not a user principal here", h.text.trim()),
                            ));
                        }
                    }
                }
            }
            members = Some(ids);
        }
        if let Some(ids) = members {
            self.store
                .set_delegates(owner.id, write, &ids)
                .await
                .map_err(internal)?;
        }
        let mut ms = Multistatus::new();
        let names: Vec<String> = ops.iter().map(|op| op.name().empty_element()).collect();
        ms.propstat_response(href, &names, &[]);
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }
}
