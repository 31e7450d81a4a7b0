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
                self.outbox_post(&res, &req.path, &req.body, &req.headers)
                    .await
            }
            // Convene's import: a whole .ics file POSTed to a calendar (README documents it).
            (PostBody::Calendar, Target::Res { res, .. }, _)
                if res.kind == ResourceKind::Calendar =>
            {
                let report = self
                    .calendars()
                    .import(&res, &req.body, &mut |_, _| {})
                    .await?;
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

    /// POST to the schedule outbox (RFC 6638 5): a VFREEBUSY request, answered for each
    /// attendee from the time-range index of their opaque calendars. The outbox's owner, or
    /// their read-write delegate booking for them, may ask (the ORGANIZER is then the owner).
    async fn outbox_post(
        &self,
        outbox: &Resource,
        href: &str,
        body: &[u8],
        headers: &HeaderMap,
    ) -> Result<DavResponse, DavError> {
        let for_owner = match &self.delegation {
            None => outbox.owner == self.user.id,
            Some(d) => d.write && d.mount.is_none() && outbox.owner == d.owner.id,
        };
        if !for_owner {
            return Err(need_privilege(href, Privilege::ScheduleSend));
        }
        if let Some(ct) = header_str(headers, "content-type") {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("text/calendar") {
                return Err(DavError::with(
                    415,
                    CalCondition::SupportedCalendarData,
                    format!("the outbox accepts text/calendar, not {media}"),
                ));
            }
        }
        let req = ical::itip::freebusy_request(body).map_err(|e| match e {
            ical::itip::OutboxError::NotCalendar => {
                DavError::with(400, CalCondition::ValidCalendarData, e.to_string())
            }
            _ => DavError::with(403, CalCondition::ValidSchedulingMessage, e.to_string()),
        })?;
        let calendars = self.calendars();
        if !calendars.is_my_address(&req.organizer) {
            return Err(DavError::with(
                403,
                CalCondition::OrganizerAllowed,
                "the ORGANIZER is not one of the outbox owner's calendar user addresses",
            ));
        }
        let now = calendars.now();
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<C:schedule-response xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">",
        );
        for attendee in req.attendees.iter().take(100) {
            xml.push_str("<C:response><C:recipient><D:href>");
            xml.push_str(&escape(attendee));
            xml.push_str("</D:href></C:recipient>");
            match calendars.user_for_address(attendee).await? {
                Some(user) => {
                    let periods = self.busy_of(&user, req.range).await?;
                    let text = ical::freebusy::vfreebusy_reply(
                        periods,
                        req.range,
                        now,
                        &ical::freebusy::FreeBusyReply {
                            uid: &req.uid,
                            organizer: &req.organizer,
                            attendee,
                        },
                    );
                    xml.push_str(
                        "<C:request-status>2.0;Success</C:request-status><C:calendar-data>",
                    );
                    xml.push_str(&xml_text_exact(text.as_bytes()));
                    xml.push_str("</C:calendar-data>");
                }
                None => {
                    xml.push_str("<C:request-status>3.7;Invalid calendar user</C:request-status>")
                }
            }
            xml.push_str("</C:response>");
        }
        xml.push_str("</C:schedule-response>");
        Ok(DavResponse::xml(StatusCode::OK, xml))
    }

    /// Busy periods of every calendar of `user` that counts for free-busy (RFC 6638 9.1:
    /// schedule-calendar-transp opaque, the default).
    async fn busy_of(
        &self,
        user: &User,
        range: ical::filter::TimeRange,
    ) -> Result<Vec<(i64, i64, ical::freebusy::BusyType)>, DavError> {
        let Some(home) = self.store.home(user.id).await.map_err(internal)? else {
            return Ok(vec![]);
        };
        let mut periods = vec![];
        for cal in self.store.children(home.id).await.map_err(internal)? {
            if cal.kind != ResourceKind::Calendar {
                continue;
            }
            let transparent = self
                .store
                .props(cal.id, user.id)
                .await
                .map_err(internal)?
                .iter()
                .any(|p| {
                    p.local == "schedule-calendar-transp"
                        && String::from_utf8_lossy(&p.xml).contains("transparent")
                });
            if !transparent {
                periods.extend(self.busy_periods(&cal, range).await?);
            }
        }
        Ok(periods)
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
