//! PUT: a calendar object validated, indexed and scheduled (RFC 4791 5.3.2, RFC 6638 3), or a
//! plain WebDAV resource.

use crate::caldav::*;

/// One calendar object write (`Dav::write_calendar_object`).
pub struct ObjectWrite<'w> {
    /// The calendar it goes into.
    pub parent: &'w Resource,
    pub name: &'w str,
    /// The object it replaces, as read.
    pub existing: Option<&'w Resource>,
    pub body: &'w [u8],
    pub content_type: Option<&'w str>,
    /// The request headers scheduling reads (`If-Schedule-Tag-Match`, `Schedule-Reply`).
    pub headers: &'w HeaderMap,
    /// The object's path segments, to name a UID conflict's holder.
    pub href_segs: &'w [String],
    /// The condition the write is made under, unless scheduling sets its own.
    pub cond: WriteCondition,
}

/// What a calendar object write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub created: bool,
    /// The stored bytes' ETag, or `None` when the server changed the client's bytes (RFC
    /// 4791 5.3.4: the client must fetch them).
    pub etag: Option<String>,
    pub schedule_tag: Option<String>,
}

impl<'a> Dav<'a> {
    /// Validate a body for a calendar collection: size, media type, iCalendar, components.
    pub(in crate::caldav) fn check_calendar_body<'b>(
        &self,
        parent: &Resource,
        content_type: Option<&str>,
        body: &'b [u8],
    ) -> Result<ical::Validated<'b>, DavError> {
        if body.len() > self.settings.max_resource_size {
            return Err(DavError::with(
                403,
                CalCondition::MaxResourceSize,
                format!(
                    "calendar object exceeds {} bytes",
                    self.settings.max_resource_size
                ),
            ));
        }
        if let Some(ct) = content_type {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("text/calendar") {
                return Err(DavError::with(
                    403,
                    CalCondition::SupportedCalendarData,
                    format!("calendars accept text/calendar, not {media}"),
                ));
            }
        }
        let validated = ical::validate(body).map_err(|e| {
            let cond = match e {
                IcalError::Syntax { .. }
                | IcalError::NotUtf8(_)
                | IcalError::NotVcalendar
                | IcalError::TooDeep(_) => CalCondition::ValidCalendarData,
                _ => CalCondition::ValidCalendarObjectResource,
            };
            DavError::with(403, cond, e.to_string())
        })?;
        let allowed = parent
            .supported_components
            .as_deref()
            .unwrap_or(DEFAULT_COMPONENTS);
        if !allowed
            .split(',')
            .any(|c| c.eq_ignore_ascii_case(validated.summary.kind.name()))
        {
            return Err(DavError::with(
                403,
                CalCondition::SupportedCalendarComponent,
                format!(
                    "this calendar accepts {allowed}, not {}",
                    validated.summary.kind.name()
                ),
            ));
        }
        Ok(validated)
    }

    pub fn index_limits(&self) -> ical::index::IndexLimits {
        ical::index::IndexLimits::on_write(
            crate::store::now_epoch() + self.settings.index_horizon_days * 86_400,
            self.settings.max_instances,
        )
    }

    /// Compute the time-range index of a validated body (RFC 4791 5.3.2.1 max-instances).
    pub(in crate::caldav) fn index_body(
        &self,
        body: &[u8],
    ) -> Result<ical::index::ObjectIndex, DavError> {
        ical::index::index_object(body, self.index_limits()).map_err(index_error)
    }

    /// The index of a body `check_calendar_body` accepted, from the parse it already made.
    pub(in crate::caldav) fn index_validated(
        &self,
        v: &ical::Validated<'_>,
    ) -> Result<ical::index::ObjectIndex, DavError> {
        v.index(self.index_limits()).map_err(index_error)
    }

    pub(in crate::caldav) fn write_condition(headers: &HeaderMap) -> WriteCondition {
        if let Some(im) = header_str(headers, "if-match") {
            return match EtagMatch::parse(im) {
                EtagMatch::Any => WriteCondition::MustExist,
                EtagMatch::List(l) => WriteCondition::EtagIn(l),
            };
        }
        if let Some(inm) = header_str(headers, "if-none-match") {
            return match EtagMatch::parse(inm) {
                EtagMatch::Any => WriteCondition::MustNotExist,
                EtagMatch::List(l) => WriteCondition::EtagNotIn(l),
            };
        }
        WriteCondition::None
    }

    pub(in crate::caldav) fn uid_conflict_href(segs: &[String], holder: &str) -> String {
        let parent: Vec<&str> = segs[..segs.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(holder))
            .collect();
        href_of(&parent, false)
    }

    pub(in crate::caldav) async fn put(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
        if header_str(&req.headers, "content-range").is_some() {
            return Err(DavError::bad_request("partial PUT is not supported"));
        }
        let mut existing = None;
        let (parent, segs) = match self.resolve(&req.path).await? {
            Target::Res { res, segs, .. } if res.kind == ResourceKind::Object => {
                let parent = self.parent_of(&res).await?;
                existing = Some(res);
                (parent, segs)
            }
            Target::Res { .. } => return Err(DavError::new(405, "cannot PUT to a collection")),
            Target::Missing {
                parent: Some(p),
                segs,
                ..
            } => (p, segs),
            Target::Missing { parent: None, .. } => {
                return Err(DavError::new(409, "parent collection does not exist"));
            }
            _ => return Err(need_privilege(&req.path, Privilege::WriteContent)),
        };
        if in_copies(&segs) {
            return Box::pin(self.put_personal(req, &parent, existing, &segs)).await;
        }
        let mut mount_cond = None;
        if let Some(Delegation { mount: Some(m), .. }) = &self.delegation {
            match &existing {
                Some(res) => match Box::pin(self.put_in_mount(req, m, res)).await? {
                    Ok(done) => return Ok(done),
                    Err(cond) => mount_cond = Some(cond),
                },
                None if m.access != crate::store::ShareAccess::ReadWrite => {
                    return Err(need_privilege(&req.path, Privilege::Bind));
                }
                None => {}
            }
        }
        let name = segs.last().cloned().unwrap_or_default();
        let content_type = header_str(&req.headers, "content-type");
        let cond = mount_cond.unwrap_or_else(|| Self::write_condition(&req.headers));
        let (created, etag, schedule_tag) = match parent.kind {
            ResourceKind::Calendar => {
                let w = self
                    .write_calendar_object(ObjectWrite {
                        parent: &parent,
                        name: &name,
                        existing: existing.as_ref(),
                        body: &req.body,
                        content_type,
                        headers: &req.headers,
                        href_segs: &segs,
                        cond,
                    })
                    .await?;
                (w.created, w.etag, w.schedule_tag)
            }
            ResourceKind::Collection => {
                // A plain WebDAV resource: stored as sent.
                let etag = etag_of(&req.body);
                let obj = NewObject {
                    data: req.body.to_vec(),
                    etag: etag.clone(),
                    content_type: content_type
                        .unwrap_or("application/octet-stream")
                        .to_string(),
                    uid: None,
                    component: None,
                    index: None,
                    schedule_tag: None,
                };
                let created = self.store_object(&parent, &name, obj, cond, &segs).await?;
                (created, Some(etag), None)
            }
            ResourceKind::Inbox | ResourceKind::Outbox | ResourceKind::Notification => {
                return Err(need_privilege(&req.path, Privilege::Bind));
            }
            _ => {
                return Err(DavError::forbidden(
                    "resources can only be created inside a calendar or collection",
                ));
            }
        };
        let mut r = DavResponse::new(if created {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        })
        .header(header::CONTENT_LENGTH, "0");
        if let Some(etag) = &etag {
            r = r.header(header::ETAG, etag);
        }
        if let Some(tag) = &schedule_tag {
            r = r.header(header::HeaderName::from_static("schedule-tag"), tag);
        }
        Ok(r)
    }

    /// The one write path for a calendar object in a calendar of the acting user's (their
    /// own, or one shared with or delegated to them): validated, stamped with a DTSTAMP if it
    /// lacks one, indexed, planned for scheduling, stored under its condition, then the
    /// scheduling messages sent. CalDAV's PUT and the JSON APIs write through here.
    pub async fn write_calendar_object(&self, w: ObjectWrite<'_>) -> Result<Written, DavError> {
        let v = self.check_calendar_body(w.parent, w.content_type, w.body)?;
        // RFC 5545 requires a DTSTAMP; one a client left out is the time the object arrived.
        // Added after validation, so an error names the client's own lines.
        let stamped = ical::repair::add_missing_dtstamp(w.body, crate::store::now_epoch());
        let body: &[u8] = stamped.as_deref().unwrap_or(w.body);
        // Sharing 5.5.5: in a shared calendar the organizer can only be its owner.
        if let Some(Delegation { mount: Some(_), .. }) = &self.delegation
            && let Some(sched) = ical::itip::scheduling(body)
            && !self.acting().is_my_address(&sched.organizer.address)
        {
            return Err(DavError::with(
                403,
                CalCondition::OrganizerAllowed,
                "in a shared calendar the organizer must be the calendar's owner",
            ));
        }
        let index = self.index_validated(&v)?;
        let s = v.summary;
        let plan = self
            .acting()
            .plan_put(w.existing, body, s.kind.name(), w.headers)
            .await?;
        // RFC 6638 3.2.? / RFC 4791 5.3.4: when the server changed the bytes, no ETag is
        // returned, so the client knows to fetch them.
        let rewritten = plan.data.is_some() || stamped.is_some();
        let data = plan.data.or(stamped).unwrap_or_else(|| w.body.to_vec());
        let etag = etag_of(&data);
        let stored = plan.after.as_ref().map(|_| data.clone());
        let obj = NewObject {
            data,
            etag: etag.clone(),
            content_type: "text/calendar; charset=utf-8".to_string(),
            uid: Some(s.uid),
            component: Some(s.kind.name().to_string()),
            index: Some(index),
            schedule_tag: plan.schedule_tag.clone(),
        };
        let cond = plan.cond.unwrap_or(w.cond);
        let created = self
            .store_object(w.parent, w.name, obj, cond, w.href_segs)
            .await?;
        if let (Some(after), Some(stored)) = (plan.after, stored) {
            Box::pin(self.acting().after_put(after, &stored)).await;
        }
        Ok(Written {
            created,
            etag: (!rewritten).then_some(etag),
            schedule_tag: plan.schedule_tag,
        })
    }

    /// Store an object under its condition; the store's refusals as CalDAV answers.
    async fn store_object(
        &self,
        parent: &Resource,
        name: &str,
        obj: NewObject,
        cond: WriteCondition,
        href_segs: &[String],
    ) -> Result<bool, DavError> {
        match self.store.put_object(parent.id, name, obj, cond).await {
            Ok((_, created)) => Ok(created),
            Err(StoreError::PreconditionFailed) => Err(DavError::new(
                412,
                "the resource's ETag does not match the request",
            )),
            Err(StoreError::UidConflict(holder)) => Err(DavError::with(
                403,
                CalCondition::NoUidConflict(Self::uid_conflict_href(href_segs, &holder)),
                "another resource in this calendar has the same UID",
            )),
            Err(StoreError::AlreadyExists) => Err(DavError::new(405, "cannot PUT to a collection")),
            Err(e) => Err(internal(e)),
        }
    }

    /// A recipient's PUT on a delegated entry: accepted only when it changes what is theirs
    /// (alarms, transparency, client bookkeeping), which is then kept on the owner's content.
    pub(in crate::caldav) async fn put_personal(
        &self,
        req: &DavRequest,
        parent: &Resource,
        existing: Option<Resource>,
        segs: &[String],
    ) -> Result<DavResponse, DavError> {
        let Some(res) = existing else {
            return Err(denied(
                &req.path.clone(),
                Privilege::Bind,
                "entries in a shared calendar come from their owner",
            ));
        };
        let content_type = header_str(&req.headers, "content-type");
        self.check_calendar_body(parent, content_type, &req.body)?;
        let current = self
            .store
            .object_data(res.id)
            .await
            .map_err(internal)?
            .unwrap_or_default();
        if !ical::delegated::only_personal_changes(&current, &req.body) {
            return Err(denied(
                &Self::res_href(segs, &res),
                Privilege::WriteContent,
                "this entry belongs to its owner: only your alarms and transparency can change",
            ));
        }
        let data = ical::itip::keep_personal(&current, &req.body).unwrap_or(current);
        let index = self.index_body(&data)?;
        let obj = NewObject {
            etag: etag_of(&data),
            data,
            content_type: "text/calendar; charset=utf-8".into(),
            uid: res.uid.clone(),
            component: res.component.clone(),
            index: Some(index),
            schedule_tag: None,
        };
        match self
            .store
            .put_object(
                parent.id,
                &res.name,
                obj,
                Self::write_condition(&req.headers),
            )
            .await
        {
            // The stored bytes are not the client's: no ETag, so it fetches them.
            Ok(_) => {
                Ok(DavResponse::new(StatusCode::NO_CONTENT).header(header::CONTENT_LENGTH, "0"))
            }
            Err(StoreError::PreconditionFailed) => Err(DavError::new(
                412,
                "the resource's ETag does not match the request",
            )),
            Err(e) => Err(internal(e)),
        }
    }
}
