//! DELETE (RFC 4918 9.6), with the scheduling it implies (RFC 6638 3.2.3).

use crate::caldav::*;

impl<'a> Dav<'a> {
    pub(in crate::caldav) async fn delete(
        &self,
        req: &DavRequest,
    ) -> Result<DavResponse, DavError> {
        match self.resolve(&req.path).await? {
            Target::Res { res, .. }
                if matches!(
                    res.kind,
                    ResourceKind::Inbox | ResourceKind::Outbox | ResourceKind::Notification
                ) =>
            {
                Err(need_privilege(&req.path, Privilege::Unbind))
            }
            Target::Res { segs, .. }
                if segs.len() == 3
                    && sharing::is_mount_segs(&segs)
                    && let Some(Delegation { mount: Some(m), .. }) = &self.delegation =>
            {
                Box::pin(self.leave_mount(m)).await
            }
            Target::Res { segs, .. } if in_copies(&segs) => Err(denied(
                &req.path.clone(),
                Privilege::Unbind,
                "a shared entry is removed by its owner, not by a recipient",
            )),
            Target::Res { res, .. } if res.parent.is_some() => {
                // A scheduling object's deletion is sent on (RFC 6638 3.2.3), also when it
                // goes with its calendar: the organizer's meetings are cancelled, and an
                // attendee's are declined.
                let old: Vec<Vec<u8>> = match (res.schedule_tag.as_ref(), res.kind) {
                    (Some(_), _) => self
                        .store
                        .object_data(res.id)
                        .await
                        .map_err(internal)?
                        .into_iter()
                        .collect(),
                    (None, ResourceKind::Calendar) => self.scheduling_bodies(&res).await?,
                    _ => vec![],
                };
                match self
                    .store
                    .delete(&res, Self::write_condition(&req.headers))
                    .await
                {
                    Ok(()) => {
                        if let Some(parent) = res.parent {
                            self.hooks.object_changed(parent);
                        }
                        // `Schedule-Reply: F`: the attendee asks that no reply be sent.
                        let silent = header_str(&req.headers, "schedule-reply")
                            .is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
                        for body in old {
                            Box::pin(self.calendars().after_delete(&body, silent)).await;
                        }
                        Ok(DavResponse::new(StatusCode::NO_CONTENT))
                    }
                    Err(StoreError::PreconditionFailed) => Err(DavError::new(
                        412,
                        "the resource's ETag does not match the request",
                    )),
                    Err(StoreError::NotFound) => Err(DavError::not_found()),
                    Err(e) => Err(internal(e)),
                }
            }
            Target::Missing { .. } => Err(DavError::not_found()),
            _ => Err(need_privilege(&req.path, Privilege::Unbind)),
        }
    }

    /// The bodies of a calendar's scheduling objects (those with a Schedule-Tag), read before
    /// the calendar is deleted so that what their deletion implies can still be sent.
    async fn scheduling_bodies(&self, calendar: &Resource) -> Result<Vec<Vec<u8>>, DavError> {
        let ids: Vec<ResourceId> = self
            .store
            .children(calendar.id)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|r| r.schedule_tag.is_some())
            .map(|r| r.id)
            .collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(self
            .store
            .object_datas(&ids)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(_, body)| body)
            .collect())
    }
}
