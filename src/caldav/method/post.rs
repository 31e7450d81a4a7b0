//! POST: the schedule outbox (RFC 6638 5), CalendarServer sharing bodies, access requests,
//! and whole-calendar import.

use crate::caldav::*;

impl<'a> Dav<'a> {
    /// POST: the schedule outbox (RFC 6638 5), and import into a calendar.
    pub(in crate::caldav) async fn post(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
        if header_str(&req.headers, "content-type").is_some_and(|c| c.contains("xml")) {
            let root = dav::xml::parse(&req.body, self.settings.xml)?;
            let target = self.resolve(&req.path).await?;
            return match (root.ns.as_str(), root.local.as_str(), target) {
                (NS_CS, "share", Target::Res { res, segs, .. }) => {
                    self.share_post(&res, &root, &segs).await
                }
                (NS_CS, "invite-reply", Target::Res { res, .. })
                    if res.kind == ResourceKind::Home && res.owner == self.user.id =>
                {
                    self.invite_reply(&root).await
                }
                (dav::NS_CONVENE, "request-access", Target::Principal(owner)) => {
                    self.access_post(Some(&owner), &root).await
                }
                (dav::NS_CONVENE, "access-reply", Target::Res { res, .. })
                    if res.kind == ResourceKind::Home
                        && res.owner == self.user.id
                        && self.delegation.is_none() =>
                {
                    self.access_post(None, &root).await
                }
                (_, _, Target::Missing { .. }) => Err(DavError::not_found()),
                _ => Err(DavError::new(
                    403,
                    "this POST body is not accepted here (CS:share on a calendar, CS:invite-reply on your home)",
                )),
            };
        }
        match self.resolve(&req.path).await? {
            Target::Res { res, .. } if res.kind == ResourceKind::Outbox => {
                self.outbox_post(&res, &req.body, &req.headers).await
            }
            // Convene's import: a whole .ics file POSTed to a calendar (README documents it).
            Target::Res { res, .. }
                if res.kind == ResourceKind::Calendar
                    && header_str(&req.headers, "content-type")
                        .is_some_and(|c| c.trim_start().starts_with("text/calendar")) =>
            {
                let report = self.import(&res, &req.body, &mut |_, _| {}).await?;
                let json = serde_json::to_vec(&report)
                    .map_err(|e| DavError::new(500, format!("report not serialisable: {e}")))?;
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json");
                r.body = Bytes::from(json);
                Ok(r)
            }
            Target::Missing { .. } => Err(DavError::not_found()),
            _ => Err(DavError::new(
                405,
                "POST is accepted only by a schedule outbox",
            )),
        }
    }

    /// The text of a calendar's `calendar-timezone` property, if set.
    pub(in crate::caldav) async fn calendar_timezone_text(
        &self,
        calendar: &Resource,
    ) -> Result<Option<String>, DavError> {
        let props = self
            .store
            .props(calendar.id, calendar.owner)
            .await
            .map_err(internal)?;
        Ok(props
            .iter()
            .find(|p| p.ns == NS_CALDAV && p.local == "calendar-timezone")
            .and_then(|p| dav::xml::parse(&p.xml, self.settings.xml).ok())
            .map(|el| el.text))
    }
}
