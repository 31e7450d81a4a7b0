//! Calendar sharing (the CalendarServer sharing extension, `calendarserver-caldav-sharing`) and
//! access requests (issue 6).
//!
//! - A sharer POSTs `CS:share` to their calendar; each sharee gets a `CS:invite-notification`
//!   in their notification collection; they answer with `CS:invite-reply` POSTed to their home.
//!   An accepted share appears in the sharee's **own** home as `shared~...` (Apple reads only
//!   the first home), resolved to the sharer's calendar with the access granted. The sharee's
//!   name, colour, order and transparency for it are their own (per-viewer properties).
//!   DELETE of the mount unsubscribes. The sharer sees `CS:invite` and `CS:shared-owner`.
//! - An access request ("may I see your calendar?") reaches the owner as a notification
//!   (`X:access-request` in Convene's namespace) and through the API; a grant shares the
//!   owner's calendars with the requester, accepted at once, at the level granted.
//!
//! Must never: let a sharee reach anything but the calendar shared with them, with more than
//! the access granted; let anyone answer an invite or request addressed to someone else.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use http::StatusCode;

use super::{
    Dav, DavResponse, Node, Target, default_collections, escape, home_href, internal,
    need_privilege, principal_href,
};
use crate::dav::{self, DavError, NS_CALDAV, NS_CS, NS_DAV, Privilege};
use crate::store::{
    AccessRequest, CalendarShare, CalendarShareStore, InviteStatus, NewObject, RequestStatus,
    Resource, ResourceId, ResourceKind, ResourceReader, ResourceWriter, ShareAccess, StoredProp,
    User, UserId, UserStore, WriteCondition,
};

use crate::dav::NS_CONVENE;
/// Sharees' mounts of shared calendars are named `shared~...`.
pub const MOUNT_PREFIX: &str = "shared~";

/// How many access requests one user may open per day.
const REQUESTS_PER_DAY: i64 = 20;
/// How long an access request stays open unless told otherwise.
pub const DEFAULT_REQUEST_SECONDS: i64 = 14 * 86_400;

/// A sharee's view of a shared calendar, set on the request by `check_access`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub name: String,
    pub calendar: ResourceId,
    pub access: ShareAccess,
    pub share: CalendarShare,
}

/// What PROPFIND needs to render sharing state (rendering is synchronous).
#[derive(Debug, Default)]
pub struct ShareView {
    /// Calendars of the viewer's that have sharees.
    pub shared: HashSet<ResourceId>,
    /// CS:invite contents by node href.
    pub invites: HashMap<String, String>,
    /// CS:shared-url by mount href.
    pub shared_urls: HashMap<String, String>,
    /// The sharee's personal parts (alarms, transparency) of the mount's members: etag, body.
    pub personal: HashMap<ResourceId, (String, Vec<u8>)>,
}

/// Whether resolved segments (`calendars`, user, name, ...) are inside a sharee's mount.
pub fn is_mount_segs(segs: &[String]) -> bool {
    segs.get(2).is_some_and(|n| n.starts_with(MOUNT_PREFIX))
}

/// [`is_mount_segs`] for an href.
pub fn href_is_mount(href: &str) -> bool {
    dav::decode_segments(href)
        .is_ok_and(|s| s.first().is_some_and(|d| d == "dav") && is_mount_segs(&s[1..]))
}

fn access_xml(a: ShareAccess) -> &'static str {
    match a {
        ShareAccess::ReadWrite => "<CS:access><CS:read-write/></CS:access>",
        ShareAccess::Read => "<CS:access><CS:read/></CS:access>",
        ShareAccess::FreeBusy => {
            "<CS:access><X:free-busy xmlns:X=\"urn:x-convene:ns\"/></CS:access>"
        }
    }
}

fn status_xml(s: InviteStatus) -> &'static str {
    match s {
        InviteStatus::NoResponse => "<CS:invite-noresponse/>",
        InviteStatus::Accepted => "<CS:invite-accepted/>",
        InviteStatus::Declined => "<CS:invite-declined/>",
    }
}

/// A user's calendar-user address as sharing shows it.
fn address_of(u: &User) -> String {
    match &u.email {
        Some(e) => format!("mailto:{e}"),
        None => principal_href(&u.name),
    }
}

fn common_name(u: &User) -> String {
    format!(
        "<CS:common-name>{}</CS:common-name>",
        escape(u.display_name.as_deref().unwrap_or(&u.name))
    )
}

/// The access an element names (`CS:read`, `CS:read-write`, `X:free-busy`), if any.
fn access_in(el: &dav::Element) -> Option<ShareAccess> {
    if el.child(NS_CS, "read-write").is_some() {
        Some(ShareAccess::ReadWrite)
    } else if el.child(NS_CS, "read").is_some() {
        Some(ShareAccess::Read)
    } else if el.child(NS_CONVENE, "free-busy").is_some() {
        Some(ShareAccess::FreeBusy)
    } else {
        None
    }
}

impl Dav<'_> {
    /// The accepted share behind a `shared~...` segment of this user's home.
    pub(super) async fn mount_of(&self, name: &str) -> Result<Option<(Mount, User)>, DavError> {
        let Some(share) = self
            .store
            .share_by_mount(self.user.id, name)
            .await
            .map_err(internal)?
            .filter(|s| s.status == InviteStatus::Accepted)
        else {
            return Ok(None);
        };
        let Some(owner) = self
            .store
            .user_by_id(share.owner)
            .await
            .map_err(internal)?
            .filter(|o| !o.disabled)
        else {
            return Ok(None);
        };
        Ok(Some((
            Mount {
                name: name.to_string(),
                calendar: share.calendar,
                access: share.access,
                share,
            },
            owner,
        )))
    }

    /// Read this sharee's personal parts of the mounted calendar's members (once a request).
    pub(super) async fn load_personal(&self, calendar: ResourceId) -> Result<(), DavError> {
        let rows = self
            .store
            .personal_data_in(calendar, self.user.id)
            .await
            .map_err(internal)?;
        let mut view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
        view.personal = rows.into_iter().map(|(id, e, d)| (id, (e, d))).collect();
        Ok(())
    }

    /// The personal parts read for this request, for a task that outlives it (streaming).
    pub(super) fn personal_parts(&self) -> HashMap<ResourceId, (String, Vec<u8>)> {
        self.links
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .personal
            .clone()
    }

    pub(super) fn set_personal_parts(&self, p: HashMap<ResourceId, (String, Vec<u8>)>) {
        self.links
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .personal = p;
    }

    /// The ETag this user sees for a member: the sharer's, or, when the sharee has personal
    /// parts on it, one derived from both (so their other devices see the change too).
    pub(super) fn view_etag<'r>(&self, res: &'r Resource) -> Option<Cow<'r, str>> {
        let owner = res.etag.as_deref()?;
        let view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
        Some(match view.personal.get(&res.id) {
            Some((mine, _)) => Cow::Owned(super::etag_of(format!("{owner}/{mine}").as_bytes())),
            None => Cow::Borrowed(owner),
        })
    }

    /// This request reads a calendar shared with its user (through a `shared~` mount).
    pub(super) fn is_sharee(&self) -> bool {
        matches!(&self.delegation, Some(d) if d.mount.is_some())
    }

    /// The privacy rule this request reads under, when its user is not the owner of what it
    /// reads: sharees (any access) and read-only delegates. `None` for the owner and for
    /// read-write delegates, who act as the owner.
    pub(super) fn non_owner(&self) -> Option<&crate::ical::privacy::Privacy> {
        match &self.delegation {
            Some(d) if d.mount.is_some() || !d.write => Some(&self.settings.privacy),
            _ => None,
        }
    }

    /// The body this user sees: the sharer's content with the sharee's alarms and
    /// transparency laid over it (per RECURRENCE-ID).
    pub(super) fn view_body(&self, id: ResourceId, data: Vec<u8>) -> Vec<u8> {
        let data = match self.non_owner() {
            Some(p) => {
                let reduced = match crate::ical::privacy::non_owner_view(
                    &data,
                    p,
                    crate::ical::privacy::Detail::Full,
                ) {
                    std::borrow::Cow::Owned(v) => Some(v),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                reduced.unwrap_or(data)
            }
            None => data,
        };
        let view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
        match view.personal.get(&id) {
            Some((_, mine)) => crate::ical::itip::keep_personal(&data, mine).unwrap_or(data),
            // Alarms are per user: a sharee who has set none sees none of the sharer's.
            None if self.is_sharee() => crate::ical::itip::without_alarms(&data).unwrap_or(data),
            None => data,
        }
    }

    /// A sharee's PUT on an existing entry: a change of their alarms or transparency only is
    /// kept as theirs (any access level); anything else needs read-write and goes to the
    /// sharer's object. `None` when the normal write path should take it, with the
    /// condition to use (the client's If-Match was against the view's ETag).
    pub(super) async fn put_in_mount(
        &self,
        req: &super::DavRequest,
        mount: &Mount,
        res: &Resource,
    ) -> Result<Result<DavResponse, crate::store::WriteCondition>, DavError> {
        let current_view = self.view_etag(res);
        if let Some(im) = super::header_str(&req.headers, "if-match")
            && !crate::dav::EtagMatch::parse(im).matches(current_view.as_deref())
        {
            return Err(DavError::new(
                412,
                "the resource's ETag does not match the request",
            ));
        }
        let owner_body = self
            .store
            .object_data(res.id)
            .await
            .map_err(internal)?
            .unwrap_or_default();
        // The sharee compares against what they were shown, which for a CONFIDENTIAL or
        // PRIVATE entry is the reduced view; such an entry only takes their personal changes,
        // since writing a view back would erase what it withholds.
        let seen = crate::ical::privacy::non_owner_view(
            &owner_body,
            &self.settings.privacy,
            crate::ical::privacy::Detail::Full,
        );
        let withheld = matches!(seen, std::borrow::Cow::Owned(_));
        if crate::ical::delegated::only_personal_changes(&seen, &req.body) {
            self.store
                .set_personal_data(res.id, self.user.id, &super::etag_of(&req.body), &req.body)
                .await
                .map_err(internal)?;
            // Re-store the sharer's unchanged bytes: the change number moves, so the sharee's
            // other devices see the entry in their next sync (everyone else refetches the
            // same bytes under the same ETag).
            let cond = WriteCondition::EtagIn(res.etag.clone().into_iter().collect());
            match self
                .calendars()
                .restore(res, owner_body, res.schedule_tag.clone(), cond)
                .await
            {
                // The sharer wrote meanwhile, which moved it anyway.
                Ok(()) | Err(crate::calendar::Error::PreconditionFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
            // The stored view is not the client's bytes: no ETag, so it fetches them.
            return Ok(Ok(
                DavResponse::new(StatusCode::NO_CONTENT).header(http::header::CONTENT_LENGTH, "0")
            ));
        }
        if mount.access != ShareAccess::ReadWrite || withheld {
            return Err(need_privilege(&req.path, Privilege::WriteContent));
        }
        Ok(Err(WriteCondition::EtagIn(
            res.etag.clone().into_iter().collect(),
        )))
    }

    /// Resolve a path inside a mount to the sharer's resources; hrefs stay the sharee's.
    pub(super) async fn resolve_mount(
        &self,
        mount: &Mount,
        owner: &User,
        rest: &[String],
        mut segs: Vec<String>,
    ) -> Result<Target, DavError> {
        let Some(mut current) = self
            .store
            .resource(mount.calendar)
            .await
            .map_err(internal)?
        else {
            return Err(DavError::not_found());
        };
        for (i, seg) in rest.iter().enumerate() {
            segs.push(seg.clone());
            match self.store.child(current.id, seg).await.map_err(internal)? {
                Some(c) => current = c,
                None if i + 1 == rest.len() => {
                    return Ok(Target::Missing {
                        parent: Some(current),
                        segs,
                    });
                }
                None => return Ok(Target::Missing { parent: None, segs }),
            }
        }
        Ok(Target::Res {
            owner: owner.clone(),
            res: current,
            segs,
        })
    }

    /// Fill the per-request sharing view for a PROPFIND of `res` (a home or calendar).
    pub(super) async fn prefetch_sharing(
        &self,
        owner: &User,
        res: &Resource,
        href: &str,
    ) -> Result<(), DavError> {
        if !matches!(res.kind, ResourceKind::Home | ResourceKind::Calendar) {
            return Ok(());
        }
        if let Some(d) = &self.delegation
            && let Some(m) = &d.mount
        {
            let host = self.calendar_href(owner, m.calendar).await?;
            let mut view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
            view.shared_urls.insert(href.to_string(), host);
            view.invites.insert(
                href.to_string(),
                format!(
                    "<CS:organizer><D:href>{}</D:href>{}</CS:organizer><CS:user><D:href>{}</D:href>{}{}{}</CS:user>",
                    escape(&address_of(owner)),
                    common_name(owner),
                    escape(&address_of(self.user)),
                    common_name(self.user),
                    status_xml(m.share.status),
                    access_xml(m.access)
                ),
            );
            return Ok(());
        }
        if owner.id != self.user.id {
            return Ok(());
        }
        let shared = self
            .store
            .shared_calendar_ids(owner.id)
            .await
            .map_err(internal)?;
        let mut invites = HashMap::new();
        for cal in &shared {
            let Some(c) = self.store.resource(*cal).await.map_err(internal)? else {
                continue;
            };
            let mut xml = String::new();
            for s in self
                .store
                .shares_of_calendar(*cal)
                .await
                .map_err(internal)?
            {
                if let Some(u) = self.store.user_by_id(s.sharee).await.map_err(internal)? {
                    xml.push_str(&format!(
                        "<CS:user><D:href>{}</D:href>{}{}{}{}</CS:user>",
                        escape(&address_of(&u)),
                        common_name(&u),
                        status_xml(s.status),
                        access_xml(s.access),
                        s.summary
                            .as_deref()
                            .map(|t| format!("<CS:summary>{}</CS:summary>", escape(t)))
                            .unwrap_or_default()
                    ));
                }
            }
            invites.insert(
                format!("{}{}/", home_href(&owner.name), dav::encode_path(&c.name)),
                xml,
            );
        }
        let mut view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
        view.shared.extend(shared);
        view.invites.extend(invites);
        Ok(())
    }

    async fn calendar_href(&self, owner: &User, cal: ResourceId) -> Result<String, DavError> {
        let name = self
            .store
            .resource(cal)
            .await
            .map_err(internal)?
            .map(|r| r.name)
            .unwrap_or_default();
        Ok(format!(
            "{}{}/",
            home_href(&owner.name),
            dav::encode_path(&name)
        ))
    }

    /// The sharee's accepted mounts, as nodes for their home's Depth 1 listing.
    pub(super) async fn mounts_for_listing(
        &self,
    ) -> Result<Vec<(User, Resource, String)>, DavError> {
        let mut out = vec![];
        for s in self.store.shares_to(self.user.id).await.map_err(internal)? {
            if s.status != InviteStatus::Accepted {
                continue;
            }
            let (Some(owner), Some(cal)) = (
                self.store.user_by_id(s.owner).await.map_err(internal)?,
                self.store.resource(s.calendar).await.map_err(internal)?,
            ) else {
                continue;
            };
            if owner.disabled {
                continue;
            }
            let href = format!(
                "{}{}/",
                home_href(&self.user.name),
                dav::encode_path(&s.mount)
            );
            let host = format!("{}{}/", home_href(&owner.name), dav::encode_path(&cal.name));
            let mut view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
            view.shared_urls.insert(href.clone(), host);
            view.invites.insert(
                href.clone(),
                format!(
                    "<CS:organizer><D:href>{}</D:href>{}</CS:organizer>",
                    escape(&address_of(&owner)),
                    common_name(&owner)
                ),
            );
            drop(view);
            out.push((owner, cal, href));
        }
        Ok(out)
    }

    /// Sharing properties of a node, if it has them.
    pub(super) fn render_sharing(&self, prop: &super::Prop, node: &Node<'_>) -> Option<String> {
        let Node::Res { res, href, owner } = node else {
            return None;
        };
        if res.kind != ResourceKind::Calendar || crate::share::copies_owner(&res.name).is_some() {
            return None;
        }
        let view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
        let mount = href_is_mount(href);
        match prop {
            super::Prop::Invite => view
                .invites
                .get(href)
                .map(|x| format!("<CS:invite>{x}</CS:invite>")),
            super::Prop::AllowedSharingModes if owner.id == self.user.id && !mount => Some(
                "<CS:allowed-sharing-modes><CS:can-be-shared/></CS:allowed-sharing-modes>".into(),
            ),
            super::Prop::SharedUrl if mount => view.shared_urls.get(href).map(|u| {
                format!(
                    "<CS:shared-url><D:href>{}</D:href></CS:shared-url>",
                    escape(u)
                )
            }),
            _ => None,
        }
    }

    /// The extra `DAV:resourcetype` child of a calendar: `CS:shared` on a sharee's mount,
    /// `CS:shared-owner` on a calendar its owner shares.
    pub(super) fn sharing_resourcetype(&self, node: &Node<'_>) -> &'static str {
        let Node::Res { res, href, .. } = node else {
            return "";
        };
        if res.kind != ResourceKind::Calendar {
            return "";
        }
        if href_is_mount(href) {
            return "<CS:shared/>";
        }
        let view = self.links.1.lock().unwrap_or_else(|e| e.into_inner());
        if view.shared.contains(&res.id) {
            "<CS:shared-owner/>"
        } else {
            ""
        }
    }

    /// Resolve a sharee named by href: a principal URL, `mailto:`, or a group principal
    /// (every member).
    async fn sharees_of(&self, href: &str) -> Result<Vec<User>, DavError> {
        let h = href.trim();
        // `get`, not slicing: a multibyte character there must not panic.
        if let Some(mail) = h
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .and_then(|_| h.get(7..))
        {
            return Ok(self
                .store
                .user_by_email(mail.trim())
                .await
                .map_err(internal)?
                .into_iter()
                .collect());
        }
        let segs = dav::decode_segments(dav::href_path(h)).unwrap_or_default();
        match segs.as_slice() {
            [d, p, name] if d == "dav" && p == "principals" => Ok(self
                .store
                .user_by_name(name)
                .await
                .map_err(internal)?
                .into_iter()
                .collect()),
            [d, g, name] if d == "dav" && (g == "groups" || g == "departments") => {
                use crate::store::GroupSource;
                use crate::store::ShareStore as _;
                let sources: &[GroupSource] = if g == "groups" {
                    &[GroupSource::Directory, GroupSource::Oidc]
                } else {
                    &[GroupSource::Department]
                };
                self.store
                    .members_of_group(sources, name)
                    .await
                    .map_err(internal)
            }
            _ => Ok(vec![]),
        }
    }

    /// POST `CS:share` on one of the user's calendars (sharing 5.3.2).
    pub(super) async fn share_post(
        &self,
        cal: &Resource,
        root: &dav::Element,
        segs: &[String],
    ) -> Result<DavResponse, DavError> {
        if cal.owner != self.user.id
            || self.delegation.is_some()
            || cal.kind != ResourceKind::Calendar
            || crate::share::copies_owner(&cal.name).is_some()
        {
            return Err(need_privilege(
                &super::href_of_segs(segs),
                Privilege::WriteAcl,
            ));
        }
        let host = format!(
            "{}{}/",
            home_href(&self.user.name),
            dav::encode_path(&cal.name)
        );
        for el in &root.children {
            let is_set = el.ns == NS_CS && el.local == "set";
            let is_remove = el.ns == NS_CS && el.local == "remove";
            if !is_set && !is_remove {
                continue;
            }
            let href = el
                .child(NS_DAV, "href")
                .map(|h| h.text.clone())
                .ok_or_else(|| DavError::bad_request("CS:set and CS:remove need a DAV:href"))?;
            let sharees = self.sharees_of(&href).await?;
            if sharees.is_empty() {
                // CS:invite-invalid: nobody by that address here. Nothing is stored.
                tracing::info!("share with an unknown address ignored");
                continue;
            }
            for u in sharees.iter().filter(|u| u.id != self.user.id) {
                if is_set {
                    let access = access_in(el).ok_or_else(|| {
                        DavError::bad_request("CS:set needs CS:read or CS:read-write")
                    })?;
                    let summary = el.child(NS_CS, "summary").map(|s| s.text.clone());
                    let (share, changed) = self
                        .store
                        .set_calendar_share(
                            cal.id,
                            self.user.id,
                            u.id,
                            access,
                            summary.as_deref(),
                            false,
                        )
                        .await
                        .map_err(internal)?;
                    if changed {
                        self.send_invite(&share, u, &host, cal, status_xml(share.status))
                            .await?;
                    }
                } else if let Some(share) = self
                    .store
                    .remove_calendar_share(cal.id, u.id)
                    .await
                    .map_err(internal)?
                {
                    // CS:invite-deleted: the calendar is no longer shared with them.
                    self.send_invite(&share, u, &host, cal, "<CS:invite-deleted/>")
                        .await?;
                }
            }
        }
        Ok(DavResponse::new(StatusCode::OK).header(http::header::CONTENT_LENGTH, "0"))
    }

    /// A `CS:invite-notification` to a sharee; `state` is its status element
    /// (`CS:invite-noresponse`, `CS:invite-accepted`, `CS:invite-deleted`, ...).
    async fn send_invite(
        &self,
        share: &CalendarShare,
        to: &User,
        host: &str,
        cal: &Resource,
        state: &str,
    ) -> Result<(), DavError> {
        let comps = cal
            .supported_components
            .as_deref()
            .unwrap_or(super::DEFAULT_COMPONENTS)
            .split(',')
            .map(|c| format!("<C:comp name=\"{}\"/>", escape(c.trim())))
            .collect::<String>();
        let inner = format!(
            "<CS:invite-notification shared-type=\"calendar\"><CS:uid>{}</CS:uid><D:href>{}</D:href>{}{}<CS:hosturl><D:href>{}</D:href></CS:hosturl><CS:organizer><D:href>{}</D:href>{}</CS:organizer>{}<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set></CS:invite-notification>",
            escape(&share.invite_uid),
            escape(&address_of(to)),
            state,
            access_xml(share.access),
            escape(host),
            escape(&address_of(self.user)),
            common_name(self.user),
            share
                .summary
                .as_deref()
                .map(|t| format!("<CS:summary>{}</CS:summary>", escape(t)))
                .unwrap_or_default(),
        );
        deliver_notification(
            self.store,
            self.clock.now(),
            to.id,
            &notification_name(&share.invite_uid),
            &inner,
            "<CS:invite-notification shared-type=\"calendar\"/>",
        )
        .await
    }

    /// POST `CS:invite-reply` on the sharee's home (sharing 5.4.1).
    pub(super) async fn invite_reply(&self, root: &dav::Element) -> Result<DavResponse, DavError> {
        if self.delegation.is_some() {
            return Err(need_privilege(
                &home_href(&self.user.name),
                Privilege::Write,
            ));
        }
        let uid = root
            .child(NS_CS, "in-reply-to")
            .map(|e| e.text.trim().to_string())
            .ok_or_else(|| DavError::bad_request("CS:invite-reply needs CS:in-reply-to"))?;
        let accept = if root.child(NS_CS, "invite-accepted").is_some() {
            true
        } else if root.child(NS_CS, "invite-declined").is_some() {
            false
        } else {
            return Err(DavError::bad_request(
                "CS:invite-reply needs CS:invite-accepted or CS:invite-declined",
            ));
        };
        // Only the invite's own sharee may answer it; anyone else learns nothing.
        let Some(share) = self
            .store
            .share_by_invite(&uid)
            .await
            .map_err(internal)?
            .filter(|s| s.sharee == self.user.id)
        else {
            return Err(DavError::new(404, "no invitation of yours has that uid"));
        };
        let status = if accept {
            InviteStatus::Accepted
        } else {
            InviteStatus::Declined
        };
        self.store
            .set_share_status(share.id, status)
            .await
            .map_err(internal)?;
        let owner = self
            .store
            .user_by_id(share.owner)
            .await
            .map_err(internal)?
            .ok_or_else(DavError::not_found)?;
        let host = self.calendar_href(&owner, share.calendar).await?;
        if accept {
            self.seed_mount_props(&share).await?;
        }
        // The invitation is answered: it leaves the sharee's notifications.
        remove_notification(self.store, self.user.id, &notification_name(&uid)).await?;
        let summary = root.child(NS_CS, "summary").map(|s| s.text.clone());
        self.reply_to_sharer(&owner, &uid, status, &host, summary.as_deref())
            .await?;
        if !accept {
            return Ok(DavResponse::new(StatusCode::OK).header(http::header::CONTENT_LENGTH, "0"));
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<CS:shared-as xmlns:D=\"DAV:\" xmlns:CS=\"{NS_CS}\"><D:href>{}{}/</D:href></CS:shared-as>",
            escape(&home_href(&self.user.name)),
            escape(&dav::encode_path(&share.mount))
        );
        let mut r = DavResponse::new(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/xml; charset=utf-8");
        r.body = Bytes::from(body);
        Ok(r)
    }

    /// A `CS:invite-reply` notification to the sharer (sharing 5.4.1).
    async fn reply_to_sharer(
        &self,
        owner: &User,
        uid: &str,
        status: InviteStatus,
        host: &str,
        summary: Option<&str>,
    ) -> Result<(), DavError> {
        let inner = format!(
            "<CS:invite-reply><D:href>{}</D:href>{}{}<CS:hosturl><D:href>{}</D:href></CS:hosturl><CS:in-reply-to>{}</CS:in-reply-to>{}</CS:invite-reply>",
            escape(&address_of(self.user)),
            common_name(self.user),
            status_xml(status),
            escape(host),
            escape(uid),
            summary
                .map(|t| format!("<CS:summary>{}</CS:summary>", escape(t)))
                .unwrap_or_default()
        );
        deliver_notification(
            self.store,
            self.clock.now(),
            owner.id,
            &format!("reply-{}", notification_name(uid)),
            &inner,
            "<CS:invite-reply/>",
        )
        .await
    }

    /// A new mount starts with the sharer's name and colour (the sharee's to change) and, as
    /// the extension advises, transparent for the sharee's free-busy.
    async fn seed_mount_props(&self, share: &CalendarShare) -> Result<(), DavError> {
        let existing = self
            .store
            .props(share.calendar, share.sharee)
            .await
            .map_err(internal)?;
        if !existing.is_empty() {
            return Ok(());
        }
        let owner_props = self
            .store
            .props(share.calendar, share.owner)
            .await
            .map_err(internal)?;
        // Named for its owner by default ("Alice Doe: Calendar"), in the owner's colour; the
        // sharee may rename and recolour it, and these are then theirs.
        let owner = self.store.user_by_id(share.owner).await.map_err(internal)?;
        let calendar = self
            .store
            .resource(share.calendar)
            .await
            .map_err(internal)?;
        let own_name = owner_props
            .iter()
            .find(|p| p.ns == NS_DAV && p.local == "displayname")
            .and_then(|p| dav::xml::parse(&p.xml, self.settings.xml).ok())
            .map(|el| el.text.trim().to_string())
            .filter(|t| !t.is_empty())
            .or_else(|| calendar.map(|c| c.name))
            .unwrap_or_default();
        let owner_label = owner
            .as_ref()
            .map(|u| u.display_name.clone().unwrap_or_else(|| u.name.clone()))
            .unwrap_or_default();
        let mut set: Vec<StoredProp> = owner_props
            .into_iter()
            .filter(|p| {
                matches!(
                    (p.ns.as_str(), p.local.as_str()),
                    ("http://apple.com/ns/ical/", "calendar-color")
                        | (NS_CALDAV, "calendar-description")
                )
            })
            .collect();
        set.push(StoredProp {
            ns: NS_DAV.into(),
            local: "displayname".into(),
            xml: format!(
                "<D:displayname xmlns:D=\"DAV:\">{}: {}</D:displayname>",
                escape(&owner_label),
                escape(&own_name)
            )
            .into_bytes(),
        });
        set.push(StoredProp {
            ns: NS_CALDAV.into(),
            local: "schedule-calendar-transp".into(),
            xml: format!(
                "<C:schedule-calendar-transp xmlns:C=\"{NS_CALDAV}\"><C:transparent/></C:schedule-calendar-transp>"
            )
            .into_bytes(),
        });
        self.store
            .patch_props(share.calendar, share.sharee, set, vec![])
            .await
            .map_err(internal)
    }

    /// DELETE of a mount: the sharee leaves the share (sharing 5.4.2).
    pub(super) async fn leave_mount(&self, mount: &Mount) -> Result<DavResponse, DavError> {
        self.store
            .set_share_status(mount.share.id, InviteStatus::Declined)
            .await
            .map_err(internal)?;
        if let Some(owner) = self
            .store
            .user_by_id(mount.share.owner)
            .await
            .map_err(internal)?
        {
            let host = self.calendar_href(&owner, mount.calendar).await?;
            self.reply_to_sharer(
                &owner,
                &mount.share.invite_uid,
                InviteStatus::Declined,
                &host,
                None,
            )
            .await?;
        }
        Ok(DavResponse::new(StatusCode::NO_CONTENT))
    }

    // ---------------------------------------------------------------------------------------
    // Access requests

    /// The owner's own calendars a grant shares: those named by the owner (each must exist),
    /// else those the request named (the ones that exist), else all of them. Never another
    /// user's copies held here.
    async fn granted_calendars(
        &self,
        req: &AccessRequest,
        named: Option<&[String]>,
    ) -> Result<Vec<Resource>, DavError> {
        if let Some(n) = named {
            check_calendar_names(n)?;
        }
        let home = self
            .store
            .ensure_home(self.user.id, &default_collections())
            .await
            .map_err(internal)?;
        let own: Vec<Resource> = self
            .store
            .children(home.id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|c| {
                c.kind == ResourceKind::Calendar && crate::share::copies_owner(&c.name).is_none()
            })
            .collect();
        let wanted: &[String] = match named {
            Some(n) if !n.is_empty() => {
                if let Some(missing) = n.iter().find(|x| !own.iter().any(|c| &c.name == *x)) {
                    return Err(DavError::bad_request(format!(
                        "you have no calendar {missing:?}"
                    )));
                }
                n
            }
            _ => &req.calendars,
        };
        if wanted.is_empty() {
            return Ok(own);
        }
        let chosen: Vec<Resource> = own
            .into_iter()
            .filter(|c| wanted.contains(&c.name))
            .collect();
        if chosen.is_empty() {
            return Err(DavError::bad_request(
                "none of the calendars the request names is yours; name them in the grant",
            ));
        }
        Ok(chosen)
    }

    /// Ask `owner` for access to their calendars (`calendars`, by name; empty: all of them).
    pub async fn request_access(
        &self,
        owner: &User,
        access: ShareAccess,
        message: Option<&str>,
        calendars: &[String],
        lifetime_seconds: i64,
    ) -> Result<AccessRequest, DavError> {
        if owner.id == self.user.id || owner.disabled {
            return Err(DavError::bad_request("you cannot ask that user"));
        }
        let now = self.clock.now();
        let recent = self
            .store
            .access_requests_since(self.user.id, now - 86_400)
            .await
            .map_err(internal)?;
        if recent >= REQUESTS_PER_DAY {
            return Err(DavError::new(429, "too many access requests today"));
        }
        check_calendar_names(calendars)?;
        let message: Option<String> = message.map(|m| m.chars().take(500).collect());
        let uid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let req = match self
            .store
            .open_access_request(crate::store::NewAccessRequest {
                requester: self.user.id,
                owner: owner.id,
                access,
                message: message.as_deref(),
                calendars,
                uid: &uid,
                expires_at: now + lifetime_seconds.clamp(1, 90 * 86_400),
            })
            .await
        {
            Ok(r) => r,
            Err(crate::store::StoreError::AlreadyExists) => {
                return Err(DavError::new(
                    409,
                    "you already have an open request to this user",
                ));
            }
            Err(e) => return Err(internal(e)),
        };
        let inner = format!(
            "<X:access-request xmlns:X=\"{NS_CONVENE}\"><CS:uid>{}</CS:uid><D:href>{}</D:href>{}{}{}<X:expires>{}</X:expires></X:access-request>",
            escape(&uid),
            escape(&principal_href(&self.user.name)),
            common_name(self.user),
            access_xml(access),
            message
                .as_deref()
                .map(|m| format!("<X:message>{}</X:message>", escape(m)))
                .unwrap_or_default(),
            crate::ical::expand::utc_text(req.expires_at),
        );
        deliver_notification(
            self.store,
            self.clock.now(),
            owner.id,
            &notification_name(&uid),
            &inner,
            &format!("<X:access-request xmlns:X=\"{NS_CONVENE}\"/>"),
        )
        .await?;
        Ok(req)
    }

    /// The owner answers a request: `Some(level)` grants (at most... any level they choose),
    /// `None` refuses. A grant shares every calendar of the owner's, accepted at once.
    /// Grant (`grant`) or refuse an access request to this user. A grant shares `calendars`
    /// (by name) when the owner chooses, else those the request named, else every calendar
    /// of the owner's.
    pub async fn answer_access_request(
        &self,
        req: &AccessRequest,
        grant: Option<ShareAccess>,
        calendars: Option<&[String]>,
    ) -> Result<Vec<String>, DavError> {
        if req.owner != self.user.id {
            return Err(DavError::new(404, "no such request to you"));
        }
        let chosen = self.granted_calendars(req, calendars).await?;
        let status = if grant.is_some() {
            RequestStatus::Granted
        } else {
            RequestStatus::Refused
        };
        if !self
            .store
            .decide_access_request(req.id, status, grant)
            .await
            .map_err(internal)?
        {
            return Err(DavError::new(
                409,
                "the request is no longer open (answered, withdrawn or expired)",
            ));
        }
        let requester = self
            .store
            .user_by_id(req.requester)
            .await
            .map_err(internal)?
            .ok_or_else(DavError::not_found)?;
        let mut mounts = vec![];
        if let Some(level) = grant {
            for cal in chosen {
                let (share, _) = self
                    .store
                    .set_calendar_share(cal.id, self.user.id, requester.id, level, None, true)
                    .await
                    .map_err(internal)?;
                let host = format!(
                    "{}{}/",
                    home_href(&self.user.name),
                    dav::encode_path(&cal.name)
                );
                let accepted = status_xml(InviteStatus::Accepted);
                self.send_invite(&share, &requester, &host, &cal, accepted)
                    .await?;
                self.seed_mount_props(&share).await?;
                mounts.push(format!(
                    "{}{}/",
                    home_href(&requester.name),
                    dav::encode_path(&share.mount)
                ));
            }
        }
        remove_notification(self.store, self.user.id, &notification_name(&req.uid)).await?;
        let inner = format!(
            "<X:access-reply xmlns:X=\"{NS_CONVENE}\"><CS:in-reply-to>{}</CS:in-reply-to><D:href>{}</D:href>{}{}</X:access-reply>",
            escape(&req.uid),
            escape(&principal_href(&self.user.name)),
            common_name(self.user),
            match grant {
                Some(a) => format!("<X:granted>{}</X:granted>", access_xml(a)),
                None => "<X:refused/>".into(),
            }
        );
        deliver_notification(
            self.store,
            self.clock.now(),
            requester.id,
            &format!("reply-{}", notification_name(&req.uid)),
            &inner,
            &format!("<X:access-reply xmlns:X=\"{NS_CONVENE}\"/>"),
        )
        .await?;
        Ok(mounts)
    }

    /// The requester takes an open request back; the owner's notification goes.
    pub async fn withdraw_access_request(&self, req: &AccessRequest) -> Result<(), DavError> {
        if req.requester != self.user.id {
            return Err(DavError::new(404, "no such request of yours"));
        }
        if !self
            .store
            .decide_access_request(req.id, RequestStatus::Withdrawn, None)
            .await
            .map_err(internal)?
        {
            return Err(DavError::new(409, "the request is no longer open"));
        }
        remove_notification(self.store, req.owner, &notification_name(&req.uid)).await
    }

    /// CalDAV route for access requests: POST to the owner's principal
    /// `<X:request-access xmlns:X="urn:x-convene:ns"><CS:read/><X:message>...</X:message></X:request-access>`,
    /// and the owner's answer POSTed to their home:
    /// `<X:access-reply><CS:in-reply-to>UID</CS:in-reply-to><X:granted><CS:read/></X:granted></X:access-reply>`
    /// (or `<X:refused/>`).
    pub(super) async fn access_post(
        &self,
        target_user: Option<&User>,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        match (root.local.as_str(), target_user) {
            ("request-access", Some(owner)) => {
                let access = access_in(root).unwrap_or(ShareAccess::Read);
                let message = root.child(NS_CONVENE, "message").map(|m| m.text.clone());
                let req = self
                    .request_access(
                        owner,
                        access,
                        message.as_deref(),
                        &[],
                        DEFAULT_REQUEST_SECONDS,
                    )
                    .await?;
                let mut r = DavResponse::new(StatusCode::CREATED)
                    .header(http::header::CONTENT_TYPE, "application/xml; charset=utf-8");
                r.body = Bytes::from(format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<X:request-access-response xmlns:X=\"{NS_CONVENE}\" xmlns:CS=\"{NS_CS}\"><CS:uid>{}</CS:uid></X:request-access-response>",
                    escape(&req.uid)
                ));
                Ok(r)
            }
            ("access-reply", None) => {
                let uid = root
                    .child(NS_CS, "in-reply-to")
                    .map(|e| e.text.trim().to_string())
                    .ok_or_else(|| DavError::bad_request("X:access-reply needs CS:in-reply-to"))?;
                let Some(req) = self
                    .store
                    .access_request_by_uid(&uid)
                    .await
                    .map_err(internal)?
                    .filter(|r| r.owner == self.user.id)
                else {
                    return Err(DavError::new(404, "no such request to you"));
                };
                let grant = match root.child(NS_CONVENE, "granted") {
                    Some(g) => Some(access_in(g).ok_or_else(|| {
                        DavError::bad_request(
                            "X:granted needs CS:read, CS:read-write or X:free-busy",
                        )
                    })?),
                    None if root.child(NS_CONVENE, "refused").is_some() => None,
                    None => {
                        return Err(DavError::bad_request(
                            "X:access-reply needs X:granted or X:refused",
                        ));
                    }
                };
                self.answer_access_request(&req, grant, None).await?;
                Ok(DavResponse::new(StatusCode::OK).header(http::header::CONTENT_LENGTH, "0"))
            }
            _ => Err(DavError::bad_request("unexpected request body")),
        }
    }
}

fn notification_name(uid: &str) -> String {
    let safe: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{safe}.xml")
}

/// Put a CalendarServer notification into a user's notification collection (sharing 4), with
/// its `CS:notificationtype` property. A notification of the same name is replaced.
pub(super) async fn deliver_notification(
    store: &crate::store::Store,
    now: i64,
    to: UserId,
    name: &str,
    inner: &str,
    type_elem: &str,
) -> Result<(), DavError> {
    let coll = notification_collection(store, to).await?;
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<CS:notification xmlns:D=\"{NS_DAV}\" xmlns:CS=\"{NS_CS}\" xmlns:C=\"{NS_CALDAV}\"><CS:dtstamp>{}</CS:dtstamp>{inner}</CS:notification>",
        crate::ical::expand::utc_text(now)
    )
    .into_bytes();
    let obj = NewObject {
        etag: super::etag_of(&body),
        data: body,
        content_type: "application/xml; charset=utf-8".into(),
        uid: None,
        component: None,
        index: None,
        schedule_tag: None,
    };
    let (res, _) = store
        .put_object(coll.id, name, obj, WriteCondition::None)
        .await
        .map_err(internal)?;
    let prop = StoredProp {
        ns: NS_CS.into(),
        local: "notificationtype".into(),
        xml: format!(
            "<CS:notificationtype xmlns:CS=\"{NS_CS}\" xmlns:D=\"{NS_DAV}\">{type_elem}</CS:notificationtype>"
        )
        .into_bytes(),
    };
    store
        .patch_props(res.id, to, vec![prop], vec![])
        .await
        .map_err(internal)
}

async fn remove_notification(
    store: &crate::store::Store,
    user: UserId,
    name: &str,
) -> Result<(), DavError> {
    let coll = notification_collection(store, user).await?;
    if let Some(r) = store.child(coll.id, name).await.map_err(internal)? {
        match store.delete(&r, WriteCondition::None).await {
            Ok(()) | Err(crate::store::StoreError::NotFound) => {}
            Err(e) => return Err(internal(e)),
        }
    }
    Ok(())
}

async fn notification_collection(
    store: &crate::store::Store,
    user: UserId,
) -> Result<Resource, DavError> {
    let names = ["notification".to_string()];
    let mut chain = store.lookup_path(user, &names).await.map_err(internal)?;
    if chain.is_empty() {
        store
            .ensure_home(user, &default_collections())
            .await
            .map_err(internal)?;
        chain = store.lookup_path(user, &names).await.map_err(internal)?;
    }
    match chain.pop() {
        Some(c) if c.kind == ResourceKind::Notification => Ok(c),
        _ => Err(DavError::new(500, "the notification collection is missing")),
    }
}

/// Calendar names a request or grant may carry: at most 50, each a plain member name.
fn check_calendar_names(names: &[String]) -> Result<(), DavError> {
    let ok = names.len() <= 50
        && names.iter().all(|n| {
            !n.is_empty()
                && n.len() <= 255
                && !n.contains(['/', '\n', '\r'])
                && n.chars().all(|c| !c.is_control())
        });
    if ok {
        Ok(())
    } else {
        Err(DavError::bad_request(
            "calendars: at most 50 names, each without '/' or control characters",
        ))
    }
}
