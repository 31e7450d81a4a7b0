//! PUT: a calendar object validated, indexed and scheduled (RFC 4791 5.3.2, RFC 6638 3), or a
//! plain WebDAV resource.

use crate::caldav::*;
use crate::calendar::ObjectWrite;
use crate::store::CalendarShareStore;

impl<'a> Dav<'a> {
    /// Validate a body for a calendar collection: size, media type, iCalendar, components.
    pub(in crate::caldav) fn check_calendar_body<'b>(
        &self,
        parent: &Resource,
        content_type: Option<&str>,
        body: &'b [u8],
    ) -> Result<ical::Validated<'b>, DavError> {
        Ok(self.calendars().check_body(parent, content_type, body)?)
    }

    pub fn index_limits(&self) -> ical::index::IndexLimits {
        self.calendars().index_limits()
    }

    /// What scheduling reads of the request's headers (RFC 6638 3.2.10).
    pub(in crate::caldav) fn schedule_headers(
        headers: &HeaderMap,
        existing: Option<&Resource>,
    ) -> crate::calendar::ScheduleHeaders {
        let etag = existing.and_then(|e| e.etag.as_deref());
        crate::calendar::ScheduleHeaders {
            schedule_tag_match: header_str(headers, "if-schedule-tag-match").map(str::to_string),
            if_match_holds: header_str(headers, "if-match")
                .is_none_or(|im| EtagMatch::parse(im).matches(etag)),
        }
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
        // A sharee's edit of the sharer's event keeps the sharer's alarms and transparency;
        // the sharee's own are kept as theirs (alarms are per user).
        let sharer_parts = match (&mount_cond, &existing) {
            (Some(_), Some(res)) => {
                let current = self
                    .store
                    .object_data(res.id)
                    .await
                    .map_err(internal)?
                    .unwrap_or_default();
                ical::itip::keep_personal(&req.body, &current)
            }
            _ => None,
        };
        let body: &[u8] = sharer_parts.as_deref().unwrap_or(&req.body);
        let cond = mount_cond.unwrap_or_else(|| Self::write_condition(&req.headers));
        let (created, etag, schedule_tag) = match parent.kind {
            ResourceKind::Calendar => {
                let w = self
                    .calendars()
                    .write_object(ObjectWrite {
                        parent: &parent,
                        name: &name,
                        existing: existing.as_ref(),
                        body,
                        content_type,
                        schedule: Self::schedule_headers(&req.headers, existing.as_ref()),
                        cond,
                        shared: matches!(&self.delegation, Some(Delegation { mount: Some(_), .. })),
                        sent_by: self
                            .delegation
                            .as_ref()
                            .filter(|d| d.mount.is_none())
                            .map(|_| crate::calendar::address::preferred(self.user)),
                    })
                    .await
                    .map_err(|e| calendar_error_at(e, &segs))?;
                if let (Some(_), Some(res)) = (&sharer_parts, &existing) {
                    self.store
                        .set_personal_data(res.id, self.user.id, &etag_of(&req.body), &req.body)
                        .await
                        .map_err(internal)?;
                }
                // What the sharee sees is not what was stored: no ETag (RFC 4791 5.3.4).
                let etag = w.etag.filter(|_| sharer_parts.is_none());
                (w.created, etag, w.schedule_tag)
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
    /// (alarms, transparency, client bookkeeping), which is then kept on the owner's content
    /// (`Calendars::write_personal`).
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
        self.calendars()
            .write_personal(
                parent,
                &res,
                &req.body,
                content_type,
                Self::write_condition(&req.headers),
            )
            .await
            .map_err(|e| calendar_error_at(e, segs))?;
        // The stored bytes are not the client's: no ETag, so it fetches them.
        Ok(DavResponse::new(StatusCode::NO_CONTENT).header(header::CONTENT_LENGTH, "0"))
    }
}
