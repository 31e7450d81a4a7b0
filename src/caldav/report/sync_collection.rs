//! sync-collection (RFC 6578) on a calendar and on the calendar home (whose members include
//! the calendars shared with its owner, mounted there).

use crate::caldav::*;

impl<'a> Dav<'a> {
    pub(in crate::caldav) async fn sync_collection(
        &self,
        owner: &User,
        coll: &Resource,
        href: &str,
        sc: dav::SyncCollection,
    ) -> Result<DavResponse, DavError> {
        // RFC 6578 3.3: an infinite sync of a collection that holds collections (a home, a
        // plain collection) would need their members too; it is refused, not answered as
        // level 1. A calendar holds only objects, so there both levels are the same.
        if sc.level_infinite && matches!(coll.kind, ResourceKind::Home | ResourceKind::Collection) {
            return Err(DavError::with(
                403,
                DavCondition::SyncTraversalSupported,
                "sync-level infinite is not supported on a collection of collections; sync each calendar",
            ));
        }
        let since = Self::sync_token_seq(sc.token.as_deref(), coll)?;
        if sc.limit == Some(0) {
            return Err(DavError::with(
                507,
                DavCondition::NumberOfMatchesWithinLimits,
                "a limit of 0 results cannot make progress",
            ));
        }
        // The token we hand out is read *before* the changes, so a write that lands in between
        // is reported again next time rather than skipped.
        let current = self
            .store
            .resource(coll.id)
            .await
            .map_err(internal)?
            .ok_or_else(DavError::not_found)?;
        // An initial sync without a limit lists every live member: the listing has them.
        let listed = match (since, sc.limit) {
            (None, None) => self.store.listing(&current).await.map_err(internal)?,
            _ => None,
        };
        let mut changes = match listed {
            Some(listing) => {
                let l = listing.read().unwrap_or_else(|e| e.into_inner());
                l.members()
                    .filter(|r| r.mod_seq <= current.sync_seq)
                    .map(|r| Change::Live(r.clone()))
                    .collect()
            }
            None => self
                .store
                .changes_since(coll.id, since, sc.limit)
                .await
                .map_err(internal)?,
        };
        let mut ms = Multistatus::new();
        let mut token_seq = current.sync_seq;
        let truncated = matches!(sc.limit, Some(l) if changes.len() > l);
        if truncated {
            let l = sc.limit.unwrap_or(0);
            changes.truncate(l);
            token_seq = changes
                .last()
                .map(Change::seq)
                .unwrap_or(since.unwrap_or(0));
        } else {
            changes.retain(|c| c.seq() <= token_seq);
        }
        // Calendars shared with this user are members of their home: new, changed in access
        // or gone, each is a change of the home (the store records it so).
        let mounts = if coll.kind == ResourceKind::Home
            && owner.id == self.user.id
            && self.delegation.is_none()
        {
            self.mounts_for_listing().await?
        } else {
            vec![]
        };
        if changes.len() > STREAM_MIN_MEMBERS && mounts.is_empty() {
            let token = Self::sync_token(&current, token_seq);
            return Ok(self.stream_report(
                ms,
                changes,
                (sc.props.clone(), DataSpec::plain()),
                owner.clone(),
                href.to_string(),
                truncated,
                Some(token),
            ));
        }
        let live = changes.iter().filter_map(|c| match c {
            Change::Live(r) if r.kind == ResourceKind::Object => Some(r.id),
            _ => None,
        });
        let mut bodies = self.prefetch_bodies(live, &sc.props).await?;
        for c in &changes {
            match c {
                Change::Live(r) => {
                    self.report_response(
                        &mut ms,
                        owner,
                        r,
                        Self::child_href(href, r),
                        Wanted {
                            names: &sc.props,
                            spec: &DataSpec::plain(),
                        },
                        &mut bodies,
                    )
                    .await?
                }
                Change::Deleted { name, .. } => {
                    let mut h = href.to_string();
                    h.push_str(&dav::encode_path(name));
                    h.push('/');
                    if let Some(mount) = mounts.iter().find(|(_, _, m)| *m == h) {
                        self.mount_response(&mut ms, mount, &sc.props, &mut bodies)
                            .await?;
                    } else {
                        h.pop();
                        ms.status_response(&h, 404, None);
                    }
                }
            }
        }
        if since.is_none() {
            // An initial sync lists every member: the mounts too.
            for mount in &mounts {
                self.mount_response(&mut ms, mount, &sc.props, &mut bodies)
                    .await?;
            }
        }
        if truncated {
            // RFC 6578 3.6: a 507 response for the request-URI says more remain; the token
            // resumes exactly after the last change listed.
            ms.status_response(href, 507, None);
        }
        let token = Self::sync_token(&current, token_seq);
        Ok(DavResponse::xml(
            StatusCode::MULTI_STATUS,
            ms.finish(Some(&token)),
        ))
    }

    /// A calendar shared with this user, as a member of their home.
    async fn mount_response(
        &self,
        ms: &mut Multistatus,
        (sharer, cal, href): &(User, Resource, String),
        props: &[PropertyName],
        bodies: &mut Bodies,
    ) -> Result<(), DavError> {
        self.report_response(
            ms,
            sharer,
            cal,
            href.clone(),
            Wanted {
                names: props,
                spec: &DataSpec::plain(),
            },
            bodies,
        )
        .await
    }

    /// The change number a client's sync token stands for (RFC 6578 3.2), or `None` for an
    /// initial sync. A token of another collection, from the future or older than the
    /// tombstones kept is refused with `valid-sync-token`.
    fn sync_token_seq(token: Option<&str>, coll: &Resource) -> Result<Option<i64>, DavError> {
        let invalid = || {
            DavError::with(
                403,
                DavCondition::ValidSyncToken,
                "the sync token is not valid for this collection; sync again without a token",
            )
        };
        match token {
            None => Ok(None),
            Some(t) => {
                let rest = t.strip_prefix(SYNC_TOKEN_PREFIX).ok_or_else(invalid)?;
                let (uuid, seq) = rest.rsplit_once('/').ok_or_else(invalid)?;
                let seq: i64 = seq.parse().map_err(|_| invalid())?;
                if uuid != coll.uuid || seq > coll.sync_seq || seq < coll.tomb_floor || seq < 0 {
                    return Err(invalid());
                }
                Ok(Some(seq))
            }
        }
    }
}
