//! COPY and MOVE (RFC 4918 9.8, 9.9) within the requester's own home.

use crate::caldav::*;

impl<'a> Dav<'a> {
    pub(in crate::caldav) async fn copy_move(
        &self,
        req: &DavRequest,
        is_move: bool,
    ) -> Result<DavResponse, DavError> {
        let dest_raw = header_str(&req.headers, "destination")
            .ok_or_else(|| DavError::bad_request("Destination header is required"))?;
        let dest_path = dav::href_path(dest_raw).to_string();
        let overwrite = match header_str(&req.headers, "overwrite").map(str::trim) {
            None | Some("T") | Some("t") => true,
            Some("F") | Some("f") => false,
            Some(_) => return Err(DavError::bad_request("Overwrite must be T or F")),
        };
        let depth = Depth::parse(header_str(&req.headers, "depth"))?;
        if is_move && matches!(depth, Some(Depth::Zero | Depth::One)) {
            return Err(DavError::bad_request(
                "MOVE of a collection requires Depth: infinity",
            ));
        }
        let (src, src_segs) = match self.resolve(&req.path).await? {
            Target::Res { res, segs, .. } if res.parent.is_some() => (res, segs),
            Target::Missing { .. } => return Err(DavError::not_found()),
            _ => return Err(need_privilege(&req.path, Privilege::Unbind)),
        };
        let (dest_parent, dest_segs, dest_exists) = match self.resolve(&dest_path).await {
            Ok(Target::Missing {
                parent: Some(p),
                segs,
                ..
            }) => (p, segs, false),
            Ok(Target::Missing { parent: None, .. }) => {
                return Err(DavError::new(
                    409,
                    "destination's parent collection does not exist",
                ));
            }
            Ok(Target::Res { res, segs, .. }) if res.parent.is_some() => {
                let parent = self.parent_of(&res).await?;
                if res.id == src.id {
                    return Err(DavError::forbidden("source and destination are the same"));
                }
                (parent, segs, true)
            }
            Ok(_) => return Err(DavError::forbidden("cannot write to that destination")),
            Err(e) if e.status == 404 => {
                return Err(DavError::new(502, "destination is not on this server"));
            }
            Err(e) => return Err(e),
        };
        if in_copies(&dest_segs) || (is_move && in_copies(&src_segs)) {
            return Err(need_privilege(&dest_path, Privilege::Bind));
        }
        if dest_exists && !overwrite {
            return Err(DavError::new(412, "destination exists and Overwrite is F"));
        }
        // The scheduling mailboxes are the server's: never moved, copied, replaced or filled.
        let mailbox = |k: ResourceKind| {
            matches!(
                k,
                ResourceKind::Inbox | ResourceKind::Outbox | ResourceKind::Notification
            )
        };
        if mailbox(src.kind) || mailbox(dest_parent.kind) {
            return Err(need_privilege(&dest_path, Privilege::Bind));
        }
        if dest_exists
            && dest_segs.len() == 3
            && matches!(dest_segs[2].as_str(), "inbox" | "outbox" | "notification")
        {
            return Err(need_privilege(&dest_path, Privilege::Unbind));
        }
        self.check_destination(&src, &dest_parent).await?;
        let dest_name = dest_segs.last().cloned().unwrap_or_default();
        match self
            .store
            .transfer(&src, dest_parent.id, &dest_name, overwrite, is_move)
            .await
        {
            Ok(created) => Ok(DavResponse::new(if created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            })
            .header(header::CONTENT_LENGTH, "0")),
            Err(StoreError::PreconditionFailed) => {
                Err(DavError::new(412, "destination exists and Overwrite is F"))
            }
            Err(StoreError::Cycle) => Err(DavError::forbidden(
                "cannot copy or move a collection into itself",
            )),
            Err(StoreError::NotFound) => Err(DavError::not_found()),
            Err(StoreError::UidConflict(holder)) => Err(DavError::with(
                403,
                CalCondition::NoUidConflict(Self::uid_conflict_href(&dest_segs, &holder)),
                "another resource in the destination calendar has the same UID",
            )),
            Err(e) => Err(internal(e)),
        }
    }

    /// Calendar invariants hold for a COPY or MOVE destination as for PUT and MKCOL (RFC 4791
    /// 5.3.2): an object in a calendar must be a valid calendar object of a component the
    /// calendar takes; calendars stay directly in the home.
    async fn check_destination(
        &self,
        src: &Resource,
        dest_parent: &Resource,
    ) -> Result<(), DavError> {
        // Calendar invariants hold for the destination as for PUT/MKCOL (RFC 4791 5.3.2).
        if dest_parent.kind == ResourceKind::Calendar {
            if src.kind.is_collection() {
                return Err(DavError::with(
                    403,
                    CalCondition::CalendarCollectionLocationOk,
                    "collections cannot be placed inside a calendar",
                ));
            }
            let data = self
                .store
                .object_data(src.id)
                .await
                .map_err(internal)?
                // Deleted since the path was resolved.
                .ok_or_else(DavError::not_found)?;
            self.check_calendar_body(dest_parent, None, &data)?;
        } else if dest_parent.kind == ResourceKind::Home && !src.kind.is_collection() {
            return Err(DavError::forbidden(
                "resources can only be placed inside a calendar or collection",
            ));
        } else if dest_parent.kind == ResourceKind::Collection && src.kind == ResourceKind::Calendar
        {
            return Err(DavError::with(
                403,
                CalCondition::CalendarCollectionLocationOk,
                "calendars live directly in the calendar home",
            ));
        }
        Ok(())
    }
}
