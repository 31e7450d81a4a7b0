//! Live property values (RFC 4918, 3744, 4791, 6638, 6578 and the CalendarServer extensions)
//! rendered for one node.
//!
//! Must never: reveal a property of another user's resource that its privacy rule withholds.

use crate::caldav::*;

pub(in crate::caldav) const SUPPORTED_PRIVILEGES: &str = "<D:supported-privilege-set><D:supported-privilege><D:privilege><D:all/></D:privilege><D:abstract/><D:description xml:lang=\"en\">Any operation</D:description><D:supported-privilege><D:privilege><D:read/></D:privilege><D:description xml:lang=\"en\">Read any object</D:description><D:supported-privilege><D:privilege><C:read-free-busy/></D:privilege><D:description xml:lang=\"en\">Read free/busy</D:description></D:supported-privilege></D:supported-privilege><D:supported-privilege><D:privilege><D:write/></D:privilege><D:description xml:lang=\"en\">Write any object</D:description><D:supported-privilege><D:privilege><D:write-properties/></D:privilege><D:description xml:lang=\"en\">Write properties</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:write-content/></D:privilege><D:description xml:lang=\"en\">Write content</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:bind/></D:privilege><D:description xml:lang=\"en\">Add members</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:unbind/></D:privilege><D:description xml:lang=\"en\">Remove members</D:description></D:supported-privilege></D:supported-privilege><D:supported-privilege><D:privilege><D:read-acl/></D:privilege><D:description xml:lang=\"en\">Read ACL</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege><D:description xml:lang=\"en\">Read own privileges</D:description></D:supported-privilege><D:supported-privilege><D:privilege><C:schedule-deliver/></D:privilege><D:description xml:lang=\"en\">Receive scheduling messages</D:description></D:supported-privilege><D:supported-privilege><D:privilege><C:schedule-send/></D:privilege><D:description xml:lang=\"en\">Send scheduling messages</D:description></D:supported-privilege></D:supported-privilege></D:supported-privilege-set>";

impl<'a> Dav<'a> {
    pub(in crate::caldav) fn privileges_xml(&self, node: &Node<'_>) -> String {
        let (own, kind) = match node {
            Node::Res { owner, res, .. } => (
                owner.id == self.user.id
                    || self
                        .delegation
                        .as_ref()
                        .is_some_and(|d| d.write && d.owner.id == owner.id),
                Some(res.kind),
            ),
            _ => (false, None),
        };
        let mount = matches!(node, Node::Res { href, .. } if href_in_copies(href));
        let shared_access = match (&self.delegation, node) {
            (Some(Delegation { mount: Some(m), .. }), Node::Res { href, .. })
                if sharing::href_is_mount(href) =>
            {
                Some(m.access)
            }
            _ => None,
        };
        let privs: &[Privilege] = if let Some(a) = shared_access {
            use crate::store::ShareAccess;
            match a {
                ShareAccess::ReadWrite => &[
                    Privilege::Read,
                    Privilege::Write,
                    Privilege::WriteProperties,
                    Privilege::WriteContent,
                    Privilege::Bind,
                    Privilege::Unbind,
                    Privilege::ReadCurrentUserPrivilegeSet,
                    Privilege::ReadFreeBusy,
                ],
                // The sharee's own name, colour and order for the calendar are theirs.
                ShareAccess::Read => &[
                    Privilege::Read,
                    Privilege::WriteProperties,
                    Privilege::ReadCurrentUserPrivilegeSet,
                    Privilege::ReadFreeBusy,
                ],
                ShareAccess::FreeBusy => &[
                    Privilege::ReadCurrentUserPrivilegeSet,
                    Privilege::ReadFreeBusy,
                ],
            }
        } else if own && mount {
            // Delegated entries: the owner's content. The recipient names and colours the
            // calendar, and keeps their own alarms on entries (checked on PUT).
            &[
                Privilege::Read,
                Privilege::WriteProperties,
                Privilege::ReadAcl,
                Privilege::ReadCurrentUserPrivilegeSet,
                Privilege::ReadFreeBusy,
            ]
        } else if own {
            &[
                Privilege::Read,
                Privilege::Write,
                Privilege::WriteProperties,
                Privilege::WriteContent,
                Privilege::Bind,
                Privilege::Unbind,
                Privilege::ReadAcl,
                Privilege::ReadCurrentUserPrivilegeSet,
                Privilege::ReadFreeBusy,
            ]
        } else {
            &[Privilege::Read, Privilege::ReadCurrentUserPrivilegeSet]
        };
        let mut s = String::from("<D:current-user-privilege-set>");
        let sched: &[Privilege] = match kind {
            Some(ResourceKind::Inbox) if own => &[Privilege::ScheduleDeliver],
            Some(ResourceKind::Outbox) if own => &[Privilege::ScheduleSend],
            _ => &[],
        };
        for p in privs.iter().chain(sched) {
            s.push_str("<D:privilege>");
            s.push_str(p.prefixed());
            s.push_str("</D:privilege>");
        }
        s.push_str("</D:current-user-privilege-set>");
        s
    }

    /// Render one property of a node, or `None` if it does not exist there (404 propstat).
    pub(in crate::caldav) fn render(
        &self,
        prop: &Prop,
        node: &Node<'_>,
        stored: &[StoredProp],
    ) -> Option<String> {
        if prop.is_stored() {
            let n = prop.name();
            if let Some(s) = stored.iter().find(|s| s.ns == n.ns && s.local == n.local) {
                return Some(String::from_utf8_lossy(&s.xml).into_owned());
            }
        }
        if let Node::ProxyGroup {
            owner,
            write,
            members,
        } = node
            && let Some(answer) = self.render_proxy_group(prop, owner, *write, members)
        {
            return answer;
        }
        if let Node::Group(g) = node
            && let Some(answer) = self.render_group(prop, g)
        {
            return answer;
        }
        if let Node::Principal(u) = node
            && let Some(x) = self.render_links(prop, u)
        {
            return Some(x);
        }
        self.render_webdav(prop, node)
            .or_else(|| self.render_acl(prop, node))
            .or_else(|| self.render_caldav(prop, node))
            .or_else(|| self.render_cs(prop, node))
    }

    /// WebDAV (RFC 4918), sync (RFC 6578), resource ids (RFC 5842) and the report set (RFC 3253).
    fn render_webdav(&self, prop: &Prop, node: &Node<'_>) -> Option<String> {
        let res = match node {
            Node::Res { res, .. } => Some(*res),
            _ => None,
        };
        let coll = node.is_collection();
        let kind = res.map(|r| r.kind);
        Some(match prop {
            Prop::ResourceType => {
                let inner = match node {
                    Node::Principal(_) => "<D:collection/><D:principal/>",
                    Node::Res { res, .. } if res.kind == ResourceKind::Calendar => {
                        let extra = self.sharing_resourcetype(node);
                        return Some(format!(
                            "<D:resourcetype><D:collection/><C:calendar/>{extra}</D:resourcetype>"
                        ));
                    }
                    Node::Res { res, .. } => match res.kind {
                        ResourceKind::Inbox => "<D:collection/><C:schedule-inbox/>",
                        ResourceKind::Outbox => "<D:collection/><C:schedule-outbox/>",
                        ResourceKind::Notification => "<D:collection/><CS:notification/>",
                        ResourceKind::Object => "",
                        _ => "<D:collection/>",
                    },
                    _ => "<D:collection/>",
                };
                format!("<D:resourcetype>{inner}</D:resourcetype>")
            }
            Prop::DisplayName => match node {
                Node::Principal(u) => format!(
                    "<D:displayname>{}</D:displayname>",
                    escape(u.display_name.as_deref().unwrap_or(&u.name))
                ),
                _ => return None,
            },
            Prop::GetEtag => format!("<D:getetag>{}</D:getetag>", escape(&self.view_etag(res?)?)),
            Prop::GetContentType => {
                let r = res?;
                let ct = if r.kind == ResourceKind::Object {
                    r.content_type.as_deref()?
                } else {
                    return None;
                };
                format!("<D:getcontenttype>{}</D:getcontenttype>", escape(ct))
            }
            Prop::GetContentLength => {
                let r = res?;
                if r.kind != ResourceKind::Object {
                    return None;
                }
                format!("<D:getcontentlength>{}</D:getcontentlength>", r.size)
            }
            Prop::GetLastModified => format!(
                "<D:getlastmodified>{}</D:getlastmodified>",
                http_date(res?.modified_at)
            ),
            Prop::CreationDate => format!(
                "<D:creationdate>{}</D:creationdate>",
                rfc3339(res?.created_at)
            ),
            Prop::SupportedLock => "<D:supportedlock/>".into(),
            Prop::LockDiscovery => "<D:lockdiscovery/>".into(),
            Prop::SupportedReportSet => {
                let reports: &[&str] = match (node, kind) {
                    (Node::Res { .. }, Some(ResourceKind::Calendar)) => &[
                        "<C:calendar-multiget/>",
                        "<C:calendar-query/>",
                        "<C:free-busy-query/>",
                        "<D:sync-collection/>",
                    ],
                    (Node::Res { .. }, Some(ResourceKind::Object | ResourceKind::Outbox)) => &[],
                    (Node::Res { .. }, Some(ResourceKind::Inbox)) => {
                        &["<C:calendar-multiget/>", "<D:sync-collection/>"]
                    }
                    (Node::Res { .. }, _) => &["<D:sync-collection/>"],
                    _ => &[
                        "<D:principal-property-search/>",
                        "<D:principal-search-property-set/>",
                        "<D:expand-property/>",
                        "<CS:calendarserver-principal-search/>",
                    ],
                };
                let mut s = String::from("<D:supported-report-set>");
                for r in reports {
                    s.push_str("<D:supported-report><D:report>");
                    s.push_str(r);
                    s.push_str("</D:report></D:supported-report>");
                }
                s.push_str("</D:supported-report-set>");
                s
            }
            Prop::SyncToken => {
                let r = res?;
                if !coll {
                    return None;
                }
                format!(
                    "<D:sync-token>{}</D:sync-token>",
                    escape(&Self::sync_token(r, r.sync_seq))
                )
            }
            Prop::ResourceId => format!(
                "<D:resource-id><D:href>urn:uuid:{}</D:href></D:resource-id>",
                res?.uuid
            ),
            _ => return None,
        })
    }

    /// Principals and access control (RFC 3744, RFC 5397).
    fn render_acl(&self, prop: &Prop, node: &Node<'_>) -> Option<String> {
        let me = &self.user.name;
        Some(match prop {
            Prop::CurrentUserPrincipal => format!(
                "<D:current-user-principal><D:href>{}</D:href></D:current-user-principal>",
                escape(&principal_href(me))
            ),
            Prop::PrincipalUrl => match node {
                Node::Principal(u) => format!(
                    "<D:principal-URL><D:href>{}</D:href></D:principal-URL>",
                    escape(&principal_href(&u.name))
                ),
                _ => return None,
            },
            Prop::PrincipalCollectionSet => format!(
                "<D:principal-collection-set><D:href>{}</D:href></D:principal-collection-set>",
                escape(&href_of(&["principals"], true))
            ),
            Prop::Owner => match node {
                Node::Res { owner, .. } => format!(
                    "<D:owner><D:href>{}</D:href></D:owner>",
                    escape(&principal_href(&owner.name))
                ),
                Node::Principal(u) => format!(
                    "<D:owner><D:href>{}</D:href></D:owner>",
                    escape(&principal_href(&u.name))
                ),
                _ => "<D:owner/>".into(),
            },
            Prop::CurrentUserPrivilegeSet => self.privileges_xml(node),
            Prop::Acl => {
                let owner = match node {
                    Node::Res { owner, .. } => owner.name.clone(),
                    Node::Principal(u) => u.name.clone(),
                    _ => return Some(
                        "<D:acl><D:ace><D:principal><D:authenticated/></D:principal><D:grant><D:privilege><D:read/></D:privilege></D:grant><D:protected/></D:ace></D:acl>".into(),
                    ),
                };
                format!(
                    "<D:acl><D:ace><D:principal><D:href>{}</D:href></D:principal><D:grant><D:privilege><D:all/></D:privilege></D:grant><D:protected/></D:ace></D:acl>",
                    escape(&principal_href(&owner))
                )
            }
            Prop::AclRestrictions => {
                "<D:acl-restrictions><D:grant-only/><D:no-invert/></D:acl-restrictions>".into()
            }
            Prop::SupportedPrivilegeSet => SUPPORTED_PRIVILEGES.into(),
            Prop::InheritedAclSet => "<D:inherited-acl-set/>".into(),
            Prop::AlternateUriSet => match node {
                Node::Principal(_) => "<D:alternate-URI-set/>".into(),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// CalDAV (RFC 4791) and scheduling (RFC 6638).
    fn render_caldav(&self, prop: &Prop, node: &Node<'_>) -> Option<String> {
        let res = match node {
            Node::Res { res, .. } => Some(*res),
            _ => None,
        };
        let kind = res.map(|r| r.kind);
        let is_cal = kind == Some(ResourceKind::Calendar);
        Some(match prop {
            Prop::CalendarHomeSet => match node {
                Node::Principal(u) => format!(
                    "<C:calendar-home-set><D:href>{}</D:href></C:calendar-home-set>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::CalendarUserAddressSet => match node {
                Node::Principal(u) => {
                    let mut s = String::from("<C:calendar-user-address-set>");
                    if let Some(e) = &u.email {
                        s.push_str(&format!("<D:href>mailto:{}</D:href>", escape(e)));
                    }
                    s.push_str(&format!(
                        "<D:href>{}</D:href></C:calendar-user-address-set>",
                        escape(&principal_href(&u.name))
                    ));
                    s
                }
                _ => return None,
            },
            Prop::CalendarUserType => match node {
                Node::Principal(_) => "<C:calendar-user-type>INDIVIDUAL</C:calendar-user-type>".into(),
                _ => return None,
            },
            Prop::SupportedCalendarComponentSet if is_cal => {
                let mut s = String::from("<C:supported-calendar-component-set>");
                for c in res?
                    .supported_components
                    .as_deref()
                    .unwrap_or(DEFAULT_COMPONENTS)
                    .split(',')
                {
                    s.push_str(&format!("<C:comp name=\"{}\"/>", escape(c)));
                }
                s.push_str("</C:supported-calendar-component-set>");
                s
            }
            Prop::SupportedCalendarData if is_cal => "<C:supported-calendar-data><C:calendar-data content-type=\"text/calendar\" version=\"2.0\"/></C:supported-calendar-data>".into(),
            Prop::MaxResourceSize if is_cal => format!(
                "<C:max-resource-size>{}</C:max-resource-size>",
                self.settings.calendar.max_resource_size
            ),
            Prop::MinDateTime if is_cal => "<C:min-date-time>19000101T000000Z</C:min-date-time>".into(),
            Prop::MaxDateTime if is_cal => "<C:max-date-time>21001231T235959Z</C:max-date-time>".into(),
            Prop::MaxInstances if is_cal => format!(
                "<C:max-instances>{}</C:max-instances>",
                self.settings.calendar.max_instances
            ),
            Prop::MaxAttendeesPerInstance if is_cal => {
                "<C:max-attendees-per-instance>1000</C:max-attendees-per-instance>".into()
            }
            Prop::ScheduleCalendarTransp if is_cal => {
                "<C:schedule-calendar-transp><C:opaque/></C:schedule-calendar-transp>".into()
            }
            Prop::ScheduleInboxUrl => match node {
                Node::Principal(u) => format!(
                    "<C:schedule-inbox-URL><D:href>{}inbox/</D:href></C:schedule-inbox-URL>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::ScheduleOutboxUrl => match node {
                Node::Principal(u) => format!(
                    "<C:schedule-outbox-URL><D:href>{}outbox/</D:href></C:schedule-outbox-URL>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::ScheduleDefaultCalendarUrl if kind == Some(ResourceKind::Inbox) => match node {
                Node::Res { owner, .. } => format!(
                    "<C:schedule-default-calendar-URL><D:href>{}calendar/</D:href></C:schedule-default-calendar-URL>",
                    escape(&home_href(&owner.name))
                ),
                _ => return None,
            },
            Prop::ScheduleTag => format!(
                "<C:schedule-tag>{}</C:schedule-tag>",
                escape(res?.schedule_tag.as_deref()?)
            ),
            _ => return None,
        })
    }

    /// The CalendarServer extensions (principal names, notifications, sharing, ctag).
    fn render_cs(&self, prop: &Prop, node: &Node<'_>) -> Option<String> {
        let res = match node {
            Node::Res { res, .. } => Some(*res),
            _ => None,
        };
        let coll = node.is_collection();
        Some(match prop {
            Prop::EmailAddressSet => match node {
                Node::Principal(u) => match &u.email {
                    Some(e) => format!(
                        "<CS:email-address-set><D:href>{}</D:href></CS:email-address-set>",
                        escape(e)
                    ),
                    None => "<CS:email-address-set/>".into(),
                },
                _ => return None,
            },
            Prop::NotificationUrl => match node {
                Node::Principal(u) => format!(
                    "<CS:notification-URL><D:href>{}notification/</D:href></CS:notification-URL>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::FirstName | Prop::LastName => match node {
                Node::Principal(u) => {
                    let field = if *prop == Prop::FirstName {
                        PrincipalField::FirstName
                    } else {
                        PrincipalField::LastName
                    };
                    let local = if *prop == Prop::FirstName {
                        "first-name"
                    } else {
                        "last-name"
                    };
                    let v = field.values(u).into_iter().next()?;
                    format!("<CS:{local}>{}</CS:{local}>", escape(&v))
                }
                _ => return None,
            },
            Prop::RecordType => match node {
                Node::Principal(_) => "<CS:record-type>users</CS:record-type>".into(),
                _ => return None,
            },
            Prop::Invite | Prop::AllowedSharingModes | Prop::SharedUrl => {
                return self.render_sharing(prop, node);
            }
            Prop::GetCtag if coll && res.is_some() => {
                let r = res?;
                format!("<CS:getctag>{}-{}</CS:getctag>", r.uuid, r.sync_seq)
            }
            _ => return None,
        })
    }
}
