//! PROPFIND (RFC 4918 9.1): the properties of a resource and, by Depth, of its members,
//! streamed when a listing is large.

use crate::caldav::*;

/// Does answering this PROPFIND need the stored (dead or client-set) properties?
/// Whether a PROPFIND asks for anything sharing state decides (resourcetype, CS:invite, ...):
/// polling requests (getctag, sync-token, getetag) do not, and cost no sharing query.
pub(in crate::caldav) fn needs_sharing(req: &PropfindRequest) -> bool {
    match req {
        PropfindRequest::Prop(names) => names.iter().any(|n| {
            matches!(
                Prop::from_name(n),
                Prop::ResourceType | Prop::Invite | Prop::SharedUrl | Prop::AllowedSharingModes
            )
        }),
        _ => true,
    }
}

pub(in crate::caldav) fn needs_stored(req: &PropfindRequest) -> bool {
    match req {
        PropfindRequest::Prop(names) => names.iter().any(|n| Prop::from_name(n).is_stored()),
        _ => true,
    }
}

/// Where a streamed listing reads its members from: the in-memory listing, or pages of SQL
/// for a collection too big to cache.
pub(in crate::caldav) enum MemberSource {
    Listing(crate::store::SharedListing),
    Store(ResourceId),
}

/// What a report asks of each member: properties, and how to shape calendar-data.
#[derive(Clone, Copy)]
pub(in crate::caldav) struct Wanted<'a> {
    pub(in crate::caldav) names: &'a [PropertyName],
    pub(in crate::caldav) spec: &'a DataSpec,
}

impl<'a> Dav<'a> {
    /// Properties of one node for a PROPFIND request: (found, not found).
    pub(in crate::caldav) fn propfind_props(
        &self,
        req: &PropfindRequest,
        node: &Node<'_>,
        stored: &[StoredProp],
    ) -> (Vec<String>, Vec<String>) {
        let mut found = vec![];
        let mut missing = vec![];
        match req {
            PropfindRequest::Prop(names) => {
                for n in names {
                    let p = Prop::from_name(n);
                    match self.render(&p, node, stored) {
                        Some(x) => found.push(x),
                        None => missing.push(n.empty_element()),
                    }
                }
            }
            PropfindRequest::AllProp { include } => {
                for p in Prop::live().filter(Prop::in_allprop) {
                    if let Some(x) = self.render(&p, node, stored) {
                        found.push(x);
                    }
                }
                for s in stored {
                    let p = Prop::from_name(&PropertyName::new(&s.ns, &s.local));
                    if !p.in_allprop() {
                        found.push(String::from_utf8_lossy(&s.xml).into_owned());
                    }
                }
                for n in include {
                    let p = Prop::from_name(n);
                    if p.in_allprop() || p.is_stored() {
                        continue;
                    }
                    match self.render(&p, node, stored) {
                        Some(x) => found.push(x),
                        None => missing.push(n.empty_element()),
                    }
                }
            }
            PropfindRequest::PropName => {
                for p in Prop::live() {
                    if p.is_stored() {
                        continue;
                    }
                    if self.render(&p, node, stored).is_some() {
                        found.push(p.name().empty_element());
                    }
                }
                for s in stored {
                    found.push(PropertyName::new(&s.ns, &s.local).empty_element());
                }
            }
        }
        (found, missing)
    }

    pub(in crate::caldav) async fn stored_props(
        &self,
        node: &Node<'_>,
    ) -> Result<Vec<StoredProp>, DavError> {
        match node {
            // Properties are the owner's: a delegate sees the names and colours the owner set.
            // A sharee's mount: the name and colour are the sharee's own.
            Node::Res { res, href, .. }
                if res.kind == ResourceKind::Calendar && sharing::href_is_mount(href) =>
            {
                self.store
                    .props(res.id, self.user.id)
                    .await
                    .map_err(internal)
            }
            Node::Res { res, .. } => self.store.props(res.id, res.owner).await.map_err(internal),
            _ => Ok(vec![]),
        }
    }

    pub(in crate::caldav) async fn write_node(
        &self,
        ms: &mut Multistatus,
        req: &PropfindRequest,
        node: &Node<'_>,
    ) -> Result<(), DavError> {
        // Polling clients ask for live properties only (getctag, sync-token, getetag): then
        // the property table is not read at all.
        let stored = if needs_stored(req) {
            self.stored_props(node).await?
        } else {
            vec![]
        };
        let (found, missing) = self.propfind_props(req, node, &stored);
        ms.propstat_response(&node.href(), &found, &[(404, missing)]);
        Ok(())
    }

    pub(in crate::caldav) async fn propfind(
        &self,
        req: &DavRequest,
    ) -> Result<DavResponse, DavError> {
        // RFC 4918 10.2 says a missing Depth means infinity; like most servers we answer it
        // as 1 because clients that omit it expect that, and refuse an explicit infinity.
        let depth = match Depth::parse(header_str(&req.headers, "depth"))? {
            Some(Depth::Infinity) => {
                return Err(DavError::with(
                    403,
                    DavCondition::PropfindFiniteDepth,
                    "Depth: infinity is not supported; use 0 or 1",
                ));
            }
            Some(d) => d,
            None => Depth::One,
        };
        let pf = dav::parse_propfind(&req.body, self.settings.xml)?;
        if let PropfindRequest::Prop(names) | PropfindRequest::AllProp { include: names } = &pf
            && names.len() > self.settings.max_props_per_request
        {
            return Err(DavError::bad_request("too many properties requested"));
        }
        // Free-busy sharees see the calendar, never its members.
        let depth = match &self.delegation {
            Some(Delegation { mount: Some(m), .. })
                if m.access == crate::store::ShareAccess::FreeBusy =>
            {
                Depth::Zero
            }
            _ => depth,
        };
        let target = self.resolve(&req.path).await?;
        let mut ms = Multistatus::new();
        match target {
            Target::Root => {
                self.write_node(&mut ms, &pf, &Node::Root).await?;
                if depth == Depth::One {
                    self.write_node(&mut ms, &pf, &Node::Principals).await?;
                    self.write_node(&mut ms, &pf, &Node::Homes).await?;
                }
            }
            Target::Principals => {
                self.write_node(&mut ms, &pf, &Node::Principals).await?;
                if depth == Depth::One {
                    // Only the caller's own principal is listed; others are found by search.
                    self.write_node(&mut ms, &pf, &Node::Principal(self.user))
                        .await?;
                }
            }
            Target::Principal(u) => {
                self.prefetch_links(&u).await?;
                self.write_node(&mut ms, &pf, &Node::Principal(&u)).await?;
                if depth == Depth::One {
                    // RFC: the proxy groups are the principal's members (CalendarServer proxy 5.2).
                    for write in [false, true] {
                        let node = self.proxy_group_node(&u, write).await?;
                        self.write_node(&mut ms, &pf, &node).await?;
                    }
                }
            }
            Target::ProxyGroup { owner, write } => {
                let node = self.proxy_group_node(&owner, write).await?;
                self.write_node(&mut ms, &pf, &node).await?;
            }
            Target::Group(g) => {
                self.write_node(&mut ms, &pf, &Node::Group(&g)).await?;
            }
            Target::Homes => {
                self.write_node(&mut ms, &pf, &Node::Homes).await?;
                if depth == Depth::One {
                    let home = self
                        .store
                        .ensure_home(self.user.id, &default_collections())
                        .await
                        .map_err(internal)?;
                    let href = home_href(&self.user.name);
                    self.write_node(
                        &mut ms,
                        &pf,
                        &Node::Res {
                            owner: self.user,
                            res: &home,
                            href,
                        },
                    )
                    .await?;
                }
            }
            Target::Res { owner, res, segs } => {
                let href = Self::res_href(&segs, &res);
                if needs_sharing(&pf) {
                    self.prefetch_sharing(&owner, &res, &href).await?;
                }
                let node = Node::Res {
                    owner: &owner,
                    res: &res,
                    href: href.clone(),
                };
                self.write_node(&mut ms, &pf, &node).await?;
                if depth == Depth::One && res.kind.is_collection() {
                    return self.list_members(ms, pf, owner, &res, href).await;
                }
            }
            Target::Missing { .. } => return Err(DavError::not_found()),
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// The members of a collection in a Depth 1 PROPFIND, after its own response: from the
    /// cached listing, or streamed when there are many; a home also lists the calendars
    /// shared with its owner.
    async fn list_members(
        &self,
        mut ms: Multistatus,
        pf: PropfindRequest,
        owner: User,
        res: &Resource,
        href: String,
    ) -> Result<DavResponse, DavError> {
        // Two queries for the whole listing, never one per member.
        let needs_stored = needs_stored(&pf);
        let mut props: std::collections::HashMap<_, Vec<StoredProp>> =
            std::collections::HashMap::new();
        if needs_stored {
            for (id, p) in self
                .store
                .child_props(res.id, res.owner)
                .await
                .map_err(internal)?
            {
                props.entry(id).or_default().push(p);
            }
        }
        let mut emit = |child: &Resource| {
            let stored = props.remove(&child.id).unwrap_or_default();
            self.member_response(&mut ms, &pf, &owner, &href, child, &stored);
        };
        match self.store.listing(res).await.map_err(internal)? {
            Some(listing)
                if listing.read().unwrap_or_else(|e| e.into_inner()).len()
                    <= STREAM_MIN_MEMBERS =>
            {
                let l = listing.read().unwrap_or_else(|e| e.into_inner());
                l.members().for_each(|c| emit(c));
            }
            // Large, or too large to be cached at all: streamed.
            listing => {
                let source = match listing {
                    Some(l) => MemberSource::Listing(l),
                    None => MemberSource::Store(res.id),
                };
                return Ok(self.stream_members(ms, source, pf, owner, href, props));
            }
        }
        // Calendars shared with this user appear in their own home.
        if res.kind == ResourceKind::Home && owner.id == self.user.id && self.delegation.is_none() {
            for (sharer, cal, mount_href) in self.mounts_for_listing().await? {
                let node = Node::Res {
                    owner: &sharer,
                    res: &cal,
                    href: mount_href,
                };
                self.write_node(&mut ms, &pf, &node).await?;
            }
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// One member's response in a Depth 1 listing.
    pub(in crate::caldav) fn member_response(
        &self,
        ms: &mut Multistatus,
        pf: &PropfindRequest,
        owner: &User,
        parent_href: &str,
        child: &Resource,
        stored: &[StoredProp],
    ) {
        let node = Node::Res {
            owner,
            res: child,
            href: Self::child_href(parent_href, child),
        };
        let (found, missing) = self.propfind_props(pf, &node, stored);
        ms.propstat_response(&node.href(), &found, &[(404, missing)]);
    }

    /// PROPFIND Depth 1 over a large collection, streamed: the collection's own response
    /// goes first, then members in batches of `STREAM_BATCH`, walked by name with the listing
    /// locked only while a batch is written. The writer task stops when the client goes away.
    pub(in crate::caldav) fn stream_members(
        &self,
        mut ms: Multistatus,
        source: MemberSource,
        pf: PropfindRequest,
        owner: User,
        href: String,
        mut props: std::collections::HashMap<ResourceId, Vec<StoredProp>>,
    ) -> DavResponse {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHANNEL);
        let head = Bytes::from(ms.take_chunk());
        let (store, settings, user) =
            (self.store.clone(), self.settings.clone(), self.user.clone());
        let personal = self.personal_parts();
        tokio::spawn(async move {
            let dav = Dav::background(&store, &settings, &user);
            dav.set_personal_parts(personal);
            if tx.send(head).await.is_err() {
                return;
            }
            let mut after: Option<String> = None;
            loop {
                let mut batch = Multistatus::new();
                batch.take_chunk();
                let mut emit = |child: &Resource| {
                    let stored = props.remove(&child.id).unwrap_or_default();
                    dav.member_response(&mut batch, &pf, &owner, &href, child, &stored);
                };
                match &source {
                    MemberSource::Listing(listing) => {
                        let l = listing.read().unwrap_or_else(|e| e.into_inner());
                        for child in l.members_after(after.as_deref()).take(STREAM_BATCH) {
                            emit(child);
                            after = Some(child.name.clone());
                        }
                    }
                    MemberSource::Store(parent) => {
                        let page = match store
                            .children_after(*parent, after.as_deref(), STREAM_BATCH)
                            .await
                        {
                            Ok(p) => p,
                            Err(e) => {
                                // The status line is gone: ending the body early is all that
                                // is left, and the client sees a truncated document.
                                tracing::error!(error = %e, "streamed listing failed");
                                return;
                            }
                        };
                        for child in &page {
                            emit(child);
                        }
                        after = page.last().map(|c| c.name.clone()).or(after);
                    }
                }
                let chunk = batch.take_chunk();
                if chunk.is_empty() {
                    break;
                }
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            let _ = tx
                .send(Bytes::from_static(Multistatus::tail().as_bytes()))
                .await;
        });
        let mut r = DavResponse::xml(StatusCode::MULTI_STATUS, String::new());
        r.stream = Some(rx);
        r
    }
}
