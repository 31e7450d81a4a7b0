//! PUT: a calendar object validated, indexed and scheduled (RFC 4791 5.3.2, RFC 6638 3), or a
//! plain WebDAV resource.

use crate::caldav::*;

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
        let mut plan = None;
        let mut stamped = None;
        let (uid, component, ct, index) = match parent.kind {
            ResourceKind::Calendar => {
                let v = self.check_calendar_body(&parent, content_type, &req.body)?;
                // RFC 5545 requires a DTSTAMP; one a client left out is the time the object
                // arrived. Added after validation, so an error names the client's own lines.
                stamped = ical::repair::add_missing_dtstamp(&req.body, crate::store::now_epoch());
                let body: &[u8] = stamped.as_deref().unwrap_or(&req.body);
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
                plan = Some(
                    self.acting()
                        .plan_put(existing.as_ref(), body, s.kind.name(), &req.headers)
                        .await?,
                );
                (
                    Some(s.uid),
                    Some(s.kind.name().to_string()),
                    "text/calendar; charset=utf-8".to_string(),
                    Some(index),
                )
            }
            ResourceKind::Collection => (
                None,
                None,
                content_type
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                None,
            ),
            ResourceKind::Inbox | ResourceKind::Outbox | ResourceKind::Notification => {
                return Err(need_privilege(&req.path, Privilege::Bind));
            }
            _ => {
                return Err(DavError::forbidden(
                    "resources can only be created inside a calendar or collection",
                ));
            }
        };
        let (data, schedule_tag, cond, after) = match plan {
            Some(p) => (p.data, p.schedule_tag, p.cond, p.after),
            None => (None, None, None, None),
        };
        // RFC 6638 3.2.? / RFC 4791 5.3.4: when the server changed the bytes, no ETag is
        // returned, so the client knows to fetch them.
        let rewritten = data.is_some() || stamped.is_some();
        let data = data.or(stamped).unwrap_or_else(|| req.body.to_vec());
        let etag = etag_of(&data);
        let obj = NewObject {
            data,
            etag: etag.clone(),
            content_type: ct,
            uid,
            component,
            index,
            schedule_tag: schedule_tag.clone(),
        };
        let cond = cond
            .or(mount_cond)
            .unwrap_or_else(|| Self::write_condition(&req.headers));
        let stored = after.as_ref().map(|_| obj.data.clone());
        match self.store.put_object(parent.id, &name, obj, cond).await {
            Ok((_, created)) => {
                if let (Some(after), Some(stored)) = (after, stored) {
                    Box::pin(self.acting().after_put(after, &stored)).await;
                }
                let mut r = DavResponse::new(if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::NO_CONTENT
                })
                .header(header::CONTENT_LENGTH, "0");
                if !rewritten {
                    r = r.header(header::ETAG, &etag);
                }
                if let Some(tag) = &schedule_tag {
                    r = r.header(header::HeaderName::from_static("schedule-tag"), tag);
                }
                Ok(r)
            }
            Err(StoreError::PreconditionFailed) => Err(DavError::new(
                412,
                "the resource's ETag does not match the request",
            )),
            Err(StoreError::UidConflict(holder)) => Err(DavError::with(
                403,
                CalCondition::NoUidConflict(Self::uid_conflict_href(&segs, &holder)),
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
