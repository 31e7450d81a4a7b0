//! POST: the schedule outbox (RFC 6638 5), CalendarServer sharing bodies, access requests,
//! and whole-calendar import.

use crate::caldav::*;

/// What a POST carries, recognised once from its media type and root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PostBody {
    /// CalendarServer sharing: share or unshare a calendar.
    Share,
    /// CalendarServer sharing: a sharee's answer to an invitation.
    InviteReply,
    /// Convene: ask a user for access to their calendars.
    RequestAccess,
    /// Convene: the owner's answer to an access request.
    AccessReply,
    /// An XML body of no kind the server takes.
    OtherXml,
    /// iCalendar: a scheduling message for the outbox, or a whole file to import.
    Calendar,
    /// Anything else.
    Other,
}

impl PostBody {
    fn of(req: &DavRequest, xml: Option<&dav::Element>) -> PostBody {
        if let Some(root) = xml {
            return match (root.ns.as_str(), root.local.as_str()) {
                (NS_CS, "share") => PostBody::Share,
                (NS_CS, "invite-reply") => PostBody::InviteReply,
                (dav::NS_CONVENE, "request-access") => PostBody::RequestAccess,
                (dav::NS_CONVENE, "access-reply") => PostBody::AccessReply,
                _ => PostBody::OtherXml,
            };
        }
        if header_str(&req.headers, "content-type")
            .is_some_and(|c| c.trim_start().starts_with("text/calendar"))
        {
            PostBody::Calendar
        } else {
            PostBody::Other
        }
    }
}

impl<'a> Dav<'a> {
    /// POST: the schedule outbox (RFC 6638 5), CalendarServer sharing, access requests, and
    /// import into a calendar.
    pub(in crate::caldav) async fn post(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
        let xml = if header_str(&req.headers, "content-type").is_some_and(|c| c.contains("xml")) {
            Some(dav::xml::parse(&req.body, self.settings.xml)?)
        } else {
            None
        };
        let body = PostBody::of(req, xml.as_ref());
        let target = self.resolve(&req.path).await?;
        let own_home = |res: &Resource| res.kind == ResourceKind::Home && res.owner == self.user.id;
        match (body, target, xml.as_ref()) {
            (_, Target::Missing { .. }, _) => Err(DavError::not_found()),
            (PostBody::Share, Target::Res { res, segs, .. }, Some(root)) => {
                self.share_post(&res, root, &segs).await
            }
            (PostBody::InviteReply, Target::Res { res, .. }, Some(root)) if own_home(&res) => {
                self.invite_reply(root).await
            }
            (PostBody::RequestAccess, Target::Principal(owner), Some(root)) => {
                self.access_post(Some(&owner), root).await
            }
            (PostBody::AccessReply, Target::Res { res, .. }, Some(root))
                if own_home(&res) && self.delegation.is_none() =>
            {
                self.access_post(None, root).await
            }
            (
                PostBody::Share
                | PostBody::InviteReply
                | PostBody::RequestAccess
                | PostBody::AccessReply
                | PostBody::OtherXml,
                _,
                _,
            ) => Err(DavError::new(
                403,
                "this POST body is not accepted here (CS:share on a calendar, CS:invite-reply on your home)",
            )),
            (_, Target::Res { res, .. }, _) if res.kind == ResourceKind::Outbox => {
                self.outbox_post(&res, &req.body, &req.headers).await
            }
            // Convene's import: a whole .ics file POSTed to a calendar (README documents it).
            (PostBody::Calendar, Target::Res { res, .. }, _)
                if res.kind == ResourceKind::Calendar =>
            {
                let report = self.import(&res, &req.body, &mut |_, _| {}).await?;
                let json = serde_json::to_vec(&report)
                    .map_err(|e| DavError::new(500, format!("report not serialisable: {e}")))?;
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json");
                r.body = Bytes::from(json);
                Ok(r)
            }
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
