//! Where a request path leads (`Target`, `Node`), who may go there (`check_access`), and the
//! hrefs of what it finds.
//!
//! Must never: answer for a path outside the requester's reach; every other handler starts from
//! what `resolve` returns.

use crate::caldav::*;

/// What a request path names.
pub(in crate::caldav) enum Target {
    Root,
    Principals,
    Principal(User),
    /// A principal's calendar-proxy-read or -write group (CalendarServer delegation).
    ProxyGroup {
        owner: User,
        write: bool,
    },
    /// A directory group or department, or a provider's group.
    Group(groups::GroupInfo),
    Homes,
    Res {
        owner: User,
        res: Resource,
        segs: Vec<String>,
    },
    /// The last segment does not exist; `parent` is `None` when an intermediate one is missing.
    Missing {
        parent: Option<Resource>,
        segs: Vec<String>,
    },
}

/// A resource plus what is needed to describe it.
pub(in crate::caldav) enum Node<'a> {
    Root,
    Principals,
    Principal(&'a User),
    ProxyGroup {
        owner: &'a User,
        write: bool,
        /// Principal hrefs of the members.
        members: Vec<String>,
    },
    Group(&'a groups::GroupInfo),
    Homes,
    Res {
        owner: &'a User,
        res: &'a Resource,
        href: String,
    },
}

impl Node<'_> {
    pub(in crate::caldav) fn href(&self) -> String {
        match self {
            Node::Root => format!("{DAV_ROOT}/"),
            Node::Principals => href_of(&["principals"], true),
            Node::Principal(u) => principal_href(&u.name),
            Node::ProxyGroup { owner, write, .. } => delegation::group_href(&owner.name, *write),
            Node::Group(g) => g.href(),
            Node::Homes => href_of(&["calendars"], true),
            Node::Res { href, .. } => href.clone(),
        }
    }
    pub(in crate::caldav) fn is_collection(&self) -> bool {
        match self {
            Node::Res { res, .. } => res.kind.is_collection(),
            Node::ProxyGroup { .. } | Node::Group(_) => false,
            _ => true,
        }
    }
}

/// Build an href from decoded segments.
/// The href of resolved segments (`calendars`, user, ...), as a collection.
pub(in crate::caldav) fn href_of_segs(segs: &[String]) -> String {
    let v: Vec<&str> = segs.iter().map(String::as_str).collect();
    href_of(&v, true)
}

pub(in crate::caldav) fn href_of(segments: &[&str], collection: bool) -> String {
    let mut s = String::from(DAV_ROOT);
    for seg in segments {
        s.push('/');
        s.push_str(&dav::encode_path(seg));
    }
    s.push(if collection { '/' } else { '\0' });
    if s.ends_with('\0') {
        s.pop();
    }
    s
}

/// Whether resolved segments (`calendars`, user, calendar, ...) are a recipient's calendar of
/// delegated entries (`from~OWNER`) or inside one: the owner's content, read-only here.
pub(in crate::caldav) fn in_copies(segs: &[String]) -> bool {
    segs.get(2)
        .is_some_and(|n| crate::share::copies_owner(n).is_some())
}

/// [`in_copies`] for an href.
pub(in crate::caldav) fn href_in_copies(href: &str) -> bool {
    dav::decode_segments(href)
        .is_ok_and(|s| s.first().is_some_and(|d| d == "dav") && in_copies(&s[1..]))
}

impl<'a> Dav<'a> {
    /// A handler for a task that outlives the request (streamed answers): it reads and
    /// renders only, so it needs no mailer, directory or delegation.
    pub(in crate::caldav) fn background<'b>(
        store: &'b Store,
        settings: &'b DavSettings,
        user: &'b User,
    ) -> Dav<'b> {
        Dav {
            store,
            settings,
            user,
            mailer: None,
            directory: None,
            org: None,
            delegation: None,
            links: delegation::LinkCache::default(),
            clock: &crate::clock::SystemClock,
            hooks: &crate::calendar::NoHooks,
        }
    }

    /// The calendar domain, acting as the home's owner (also when their delegate writes).
    pub fn calendars(&self) -> crate::calendar::Calendars<'_> {
        crate::calendar::Calendars {
            store: self.store,
            user: self.delegation.as_ref().map_or(self.user, |d| &d.owner),
            limits: &self.settings.calendar,
            mailer: self.mailer,
            directory: self.directory,
            clock: self.clock,
            hooks: self.hooks,
        }
    }

    pub(in crate::caldav) fn is_self(&self, name: &str) -> bool {
        name == self.user.name
    }

    /// RFC 3744: a user holds every privilege on their own home; on another user's, what that
    /// user's delegation grants (read, or read and write), and otherwise nothing.
    pub(in crate::caldav) async fn check_access(
        &self,
        req: &DavRequest,
    ) -> Result<Option<Delegation>, DavError> {
        let raw_path = req.path.as_str();
        let segs = dav::decode_segments(raw_path)?;
        if let [d, c, name, m, rest @ ..] = segs.as_slice()
            && d == "dav"
            && c == "calendars"
            && self.is_self(name)
            && m.starts_with(sharing::MOUNT_PREFIX)
        {
            return self
                .check_mount_access(req, m, rest.is_empty())
                .await
                .map(Some);
        }
        let name = match segs.as_slice() {
            [d, c, name, ..] if d == "dav" && c == "calendars" && !self.is_self(name) => name,
            _ => return Ok(None),
        };
        let owner = self.store.user_by_name(name).await.map_err(internal)?;
        let grant = match &owner {
            Some(o) if !o.disabled => self
                .store
                .delegation(o.id, self.user.id)
                .await
                .map_err(internal)?,
            _ => None,
        };
        let (Some(owner), Some(write)) = (owner, grant) else {
            return Err(need_privilege(raw_path, Privilege::Read));
        };
        let writes = matches!(
            req.method.as_str(),
            "PUT" | "DELETE" | "PROPPATCH" | "MKCOL" | "MKCALENDAR" | "COPY" | "MOVE" | "POST"
        );
        if writes && !write {
            return Err(need_privilege(raw_path, Privilege::Write));
        }
        Ok(Some(Delegation {
            owner,
            write,
            mount: None,
        }))
    }

    /// A path in one of this user's mounts of a calendar shared with them: what the share's
    /// access allows. The mount itself can always be renamed, recoloured and left.
    pub(in crate::caldav) async fn check_mount_access(
        &self,
        req: &DavRequest,
        mount: &str,
        on_mount: bool,
    ) -> Result<Delegation, DavError> {
        use crate::store::ShareAccess;
        let Some((m, owner)) = self.mount_of(mount).await? else {
            return Err(DavError::not_found());
        };
        let method = req.method.as_str();
        let reading = matches!(method, "GET" | "HEAD" | "PROPFIND" | "REPORT" | "OPTIONS");
        let allowed = match (method, m.access) {
            ("PROPPATCH" | "DELETE", _) if on_mount => true,
            // Free-busy only: the calendar itself, for the free-busy REPORT (checked there).
            (_, ShareAccess::FreeBusy) => on_mount && matches!(method, "PROPFIND" | "REPORT"),
            // Sharing 5.5.5: a sharee never moves an object out of the shared calendar.
            ("MOVE", _) => false,
            // Any sharee may keep their own alarms on an entry (checked in PUT).
            ("PUT", _) if !on_mount => true,
            _ if reading => true,
            (_, ShareAccess::ReadWrite) => true,
            _ => false,
        };
        if !allowed {
            return Err(need_privilege(
                &req.path,
                if reading {
                    Privilege::Read
                } else {
                    Privilege::WriteContent
                },
            ));
        }
        Ok(Delegation {
            owner,
            write: m.access == ShareAccess::ReadWrite,
            mount: Some(m),
        })
    }

    pub(in crate::caldav) async fn resolve(&self, raw_path: &str) -> Result<Target, DavError> {
        let segs = dav::decode_segments(raw_path)?;
        let Some((first, rest)) = segs.split_first() else {
            return Err(DavError::not_found());
        };
        if first != "dav" {
            return Err(DavError::not_found());
        }
        match rest {
            [] => Ok(Target::Root),
            [p] if p == "principals" => Ok(Target::Principals),
            [p, name] if p == "principals" => {
                match self.store.user_by_name(name).await.map_err(internal)? {
                    Some(u) => Ok(Target::Principal(u)),
                    None => Err(DavError::not_found()),
                }
            }
            [p, name, group] if p == "principals" => {
                let write = match group.as_str() {
                    delegation::PROXY_READ => false,
                    delegation::PROXY_WRITE => true,
                    _ => return Err(DavError::not_found()),
                };
                match self.store.user_by_name(name).await.map_err(internal)? {
                    Some(owner) => Ok(Target::ProxyGroup { owner, write }),
                    None => Err(DavError::not_found()),
                }
            }
            [g, name] if groups::GroupKind::of_segment(g).is_some() => {
                let kind = groups::GroupKind::of_segment(g).ok_or_else(DavError::not_found)?;
                match Box::pin(self.group_principal(kind, name)).await? {
                    Some(info) => Ok(Target::Group(info)),
                    None => Err(DavError::not_found()),
                }
            }
            [c] if c == "calendars" => Ok(Target::Homes),
            [c, name, m, rest @ ..]
                if c == "calendars"
                    && self.is_self(name)
                    && m.starts_with(sharing::MOUNT_PREFIX) =>
            {
                match &self.delegation {
                    Some(Delegation {
                        owner,
                        mount: Some(mt),
                        ..
                    }) if mt.name == *m => {
                        let segs = vec![c.clone(), name.clone(), m.clone()];
                        self.resolve_mount(mt, owner, rest, segs).await
                    }
                    // Only a request addressed to the mount reaches through it (never a
                    // Destination header).
                    _ => Err(need_privilege(raw_path, Privilege::Bind)),
                }
            }
            [c, name, path @ ..] if c == "calendars" => {
                let owner = match &self.delegation {
                    _ if self.is_self(name) => self.user.clone(),
                    Some(d) if d.mount.is_none() && d.owner.name == *name => d.owner.clone(),
                    _ => return Err(need_privilege(raw_path, Privilege::Read)),
                };
                // The home and the first two levels below it come in one query.
                let head = &path[..path.len().min(2)];
                let mut chain = self
                    .store
                    .lookup_path(owner.id, head)
                    .await
                    .map_err(internal)?;
                if chain.is_empty() {
                    let home = self
                        .store
                        .ensure_home(owner.id, &default_collections())
                        .await
                        .map_err(internal)?;
                    chain = vec![home];
                    if !head.is_empty() {
                        chain = self
                            .store
                            .lookup_path(owner.id, head)
                            .await
                            .map_err(internal)?;
                    }
                }
                let Some(mut current) = chain.pop() else {
                    return Err(DavError::not_found());
                };
                let found = chain.len();
                let mut segs: Vec<String> = vec!["calendars".into(), name.clone()];
                segs.extend(path[..found].iter().cloned());
                for (i, seg) in path.iter().enumerate().skip(found) {
                    let last = i + 1 == path.len();
                    // Below the first two levels, or not looked up yet: ask the store.
                    let child = if current.kind.is_collection() && i >= head.len() {
                        self.store.child(current.id, seg).await.map_err(internal)?
                    } else {
                        None
                    };
                    segs.push(seg.clone());
                    match child {
                        Some(c) => current = c,
                        None if last && current.kind.is_collection() => {
                            return Ok(Target::Missing {
                                parent: Some(current),
                                segs,
                            });
                        }
                        None => {
                            return Ok(Target::Missing { parent: None, segs });
                        }
                    }
                }
                Ok(Target::Res {
                    owner,
                    res: current,
                    segs,
                })
            }
            _ => Err(DavError::not_found()),
        }
    }

    pub(in crate::caldav) fn res_href(segs: &[String], res: &Resource) -> String {
        let v: Vec<&str> = segs.iter().map(String::as_str).collect();
        href_of(&v, res.kind.is_collection())
    }

    pub(in crate::caldav) fn child_href(parent_href: &str, child: &Resource) -> String {
        let mut h = String::with_capacity(parent_href.len() + child.name.len() + 8);
        h.push_str(parent_href);
        if !h.ends_with('/') {
            h.push('/');
        }
        dav::push_encoded_path(&mut h, &child.name);
        if child.kind.is_collection() {
            h.push('/');
        }
        h
    }

    pub(in crate::caldav) fn sync_token(res: &Resource, seq: i64) -> String {
        format!("{SYNC_TOKEN_PREFIX}{}/{seq}", res.uuid)
    }

    /// The collection holding a resource.
    pub(in crate::caldav) async fn parent_of(&self, res: &Resource) -> Result<Resource, DavError> {
        let Some(parent) = res.parent else {
            return Err(DavError::not_found());
        };
        self.store
            .resource(parent)
            .await
            .map_err(internal)?
            .ok_or_else(DavError::not_found)
    }
}
