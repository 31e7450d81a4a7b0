//! The one write path for a calendar object: validated, stamped with a DTSTAMP if it lacks
//! one, indexed, planned for scheduling, stored under its condition, the hooks told, then
//! the scheduling messages sent. Re-stores made by the server itself (a folded reply, a
//! recorded delivery status, a recipient's personal change) index and store the same way.
//!
//! Must never: store an object the index was not computed from, or store anything before
//! validation passed.

use super::{Calendars, Error, Refusal, home};
use crate::ical::{self, IcalError};
use crate::store::{NewObject, Resource, ResourceId, ResourceWriter, StoreError, WriteCondition};

/// The media type every calendar object is stored with.
const CALENDAR_TYPE: &str = "text/calendar; charset=utf-8";

/// What scheduling reads of a write request (RFC 6638 3.2.10).
#[derive(Debug, Clone, Default)]
pub struct ScheduleHeaders {
    /// If-Schedule-Tag-Match: the Schedule-Tag the client read.
    pub schedule_tag_match: Option<String>,
    /// Whether the request's If-Match, if it has one, holds for the stored object.
    pub if_match_holds: bool,
}

/// One calendar object write.
pub struct ObjectWrite<'w> {
    /// The calendar it goes into.
    pub parent: &'w Resource,
    pub name: &'w str,
    /// The object it replaces, as read.
    pub existing: Option<&'w Resource>,
    pub body: &'w [u8],
    /// The media type the client gave, if any.
    pub content_type: Option<&'w str>,
    pub schedule: ScheduleHeaders,
    /// The condition the write is made under, unless scheduling sets its own.
    pub cond: WriteCondition,
    /// The calendar is someone else's, shared with the acting user (Sharing 5.5.5: its
    /// organizer can then only be the owner).
    pub shared: bool,
    /// The calendar-user address of a delegate writing for the owner: named as `SENT-BY` on
    /// the owner's ORGANIZER lines, so attendees see who acted (RFC 5545 3.2.18).
    pub sent_by: Option<String>,
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

impl Calendars<'_> {
    /// Validate a body for a calendar: size, media type, iCalendar, component type.
    pub fn check_body<'b>(
        &self,
        parent: &Resource,
        content_type: Option<&str>,
        body: &'b [u8],
    ) -> Result<ical::Validated<'b>, Error> {
        let max = self.limits.max_resource_size;
        if body.len() > max {
            return Err(Error::refused(
                Refusal::MaxResourceSize,
                format!("calendar object exceeds {max} bytes"),
            ));
        }
        if let Some(ct) = content_type {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("text/calendar") {
                return Err(Error::refused(
                    Refusal::SupportedCalendarData,
                    format!("calendars accept text/calendar, not {media}"),
                ));
            }
        }
        let validated = ical::validate(body).map_err(|e| {
            let refusal = match e {
                IcalError::Syntax { .. }
                | IcalError::NotUtf8(_)
                | IcalError::NotVcalendar
                | IcalError::TooDeep(_) => Refusal::ValidCalendarData,
                _ => Refusal::ValidCalendarObjectResource,
            };
            Error::refused(refusal, e.to_string())
        })?;
        let kind = validated.summary.kind.name();
        let supported = parent.supported_components.as_deref();
        if !home::takes(supported, kind) {
            let allowed = supported.unwrap_or(home::DEFAULT_COMPONENTS);
            return Err(Error::refused(
                Refusal::SupportedCalendarComponent,
                format!("this calendar accepts {allowed}, not {kind}"),
            ));
        }
        Ok(validated)
    }

    /// The limits an object is indexed under when it is written now.
    pub fn index_limits(&self) -> ical::index::IndexLimits {
        ical::index::IndexLimits::on_write(
            self.now() + self.limits.index_horizon_days * 86_400,
            self.limits.max_instances,
        )
    }

    /// The time-range index of a body (RFC 4791 5.3.2.1 max-instances).
    pub fn index_body(&self, body: &[u8]) -> Result<ical::index::ObjectIndex, Error> {
        ical::index::index_object(body, self.index_limits()).map_err(Error::of_index)
    }

    /// The one write path for a calendar object in a calendar of the acting user's (their
    /// own, or one shared with or delegated to them). CalDAV's PUT, the JSON APIs and import
    /// write through here.
    pub async fn write_object(&self, w: ObjectWrite<'_>) -> Result<Written, Error> {
        let v = self.check_body(w.parent, w.content_type, w.body)?;
        // RFC 5545 requires a DTSTAMP; one a client left out is the time the object arrived.
        // Added after validation, so an error names the client's own lines.
        let stamped = ical::repair::add_missing_dtstamp(w.body, self.now());
        let body: &[u8] = stamped.as_deref().unwrap_or(w.body);
        let marked = w
            .sent_by
            .as_deref()
            .and_then(|sender| ical::itip::set_sent_by(body, &|a| self.is_my_address(a), sender));
        let stamped = marked.or(stamped);
        let body: &[u8] = stamped.as_deref().unwrap_or(w.body);
        if w.shared
            && let Some(sched) = ical::itip::scheduling(body)
            && !self.is_my_address(&sched.organizer.address)
        {
            return Err(Error::refused(
                Refusal::OrganizerAllowed,
                "in a shared calendar the organizer must be the calendar's owner",
            ));
        }
        let index = v.index(self.index_limits()).map_err(Error::of_index)?;
        let s = v.summary;
        let plan = self
            .plan_put(w.parent, w.existing, body, s.kind.name(), &w.schedule)
            .await?;
        // RFC 4791 5.3.4: when the server changed the bytes, no ETag is returned, so the
        // client knows to fetch them.
        let rewritten = plan.data.is_some() || stamped.is_some();
        let data = plan.data.or(stamped).unwrap_or_else(|| w.body.to_vec());
        let etag = crate::dav::etag_of(&data);
        let stored = plan.after.as_ref().map(|_| data.clone());
        let obj = NewObject {
            data,
            etag: etag.clone(),
            content_type: CALENDAR_TYPE.to_string(),
            uid: Some(s.uid),
            component: Some(s.kind.name().to_string()),
            index: Some(index),
            schedule_tag: plan.schedule_tag.clone(),
        };
        let cond = plan.cond.unwrap_or(w.cond);
        let created = self.store_new(w.parent, w.name, obj, cond).await?;
        if let (Some(after), Some(stored)) = (plan.after, stored) {
            Box::pin(self.after_put(after, &stored)).await;
        }
        Ok(Written {
            created,
            etag: (!rewritten).then_some(etag),
            schedule_tag: plan.schedule_tag,
        })
    }

    /// Store an object under its condition, and tell the hooks.
    pub(super) async fn store_new(
        &self,
        parent: &Resource,
        name: &str,
        obj: NewObject,
        cond: WriteCondition,
    ) -> Result<bool, Error> {
        match self.store.put_object(parent.id, name, obj, cond).await {
            Ok((_, created)) => {
                self.hooks.object_changed(parent.id);
                Ok(created)
            }
            Err(StoreError::PreconditionFailed) => Err(Error::PreconditionFailed(
                "the resource's ETag does not match the request".into(),
            )),
            Err(StoreError::UidConflict(holder)) => Err(Error::refused(
                Refusal::UidConflict { holder },
                "another resource in this calendar has the same UID",
            )),
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// A recipient's write on a delegated entry or a shared event: only what is theirs
    /// (alarms, transparency, client bookkeeping) is taken from `body` and kept on the
    /// owner's content `current`. Refused when `body` changes anything else.
    pub async fn write_personal(
        &self,
        parent: &Resource,
        res: &Resource,
        body: &[u8],
        content_type: Option<&str>,
        cond: WriteCondition,
    ) -> Result<(), Error> {
        self.check_body(parent, content_type, body)?;
        let current = self.store_data(res).await?.unwrap_or_default();
        if !ical::delegated::only_personal_changes(&current, body) {
            return Err(Error::refused(
                Refusal::OwnersContent,
                "this entry belongs to its owner: only your alarms and transparency can change",
            ));
        }
        let data = ical::itip::keep_personal(&current, body).unwrap_or(current);
        self.restore(res, data, None, cond).await
    }

    async fn store_data(&self, res: &Resource) -> Result<Option<Vec<u8>>, Error> {
        use crate::store::ResourceReader;
        Ok(self.store.object_data(res.id).await?)
    }

    /// Store `data` as the new body of `res` (same name, UID and type), re-indexed. The
    /// server's own writes go through here; a write that lost a race on its condition is
    /// refused with `PreconditionFailed`.
    pub async fn restore(
        &self,
        res: &Resource,
        data: Vec<u8>,
        schedule_tag: Option<String>,
        cond: WriteCondition,
    ) -> Result<(), Error> {
        let Some(parent) = res.parent else {
            return Ok(());
        };
        let index = self.index_body(&data)?;
        let obj = NewObject {
            etag: crate::dav::etag_of(&data),
            data,
            content_type: CALENDAR_TYPE.into(),
            uid: res.uid.clone(),
            component: res.component.clone(),
            index: Some(index),
            schedule_tag,
        };
        match self.store.put_object(parent, &res.name, obj, cond).await {
            Ok(_) => {
                self.hooks.object_changed(parent);
                Ok(())
            }
            Err(StoreError::PreconditionFailed) => Err(Error::PreconditionFailed(
                "the resource's ETag does not match the request".into(),
            )),
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// Store a new object the server made (a delivered invitation, an imported event) under
    /// `name`, indexed. `Ok(false)` when the name or the UID is already taken.
    pub async fn create(
        &self,
        calendar: &Resource,
        name: &str,
        data: Vec<u8>,
        uid: &str,
        kind: &str,
        schedule_tag: Option<String>,
    ) -> Result<bool, Error> {
        let index = self.index_body(&data)?;
        let obj = NewObject {
            etag: crate::dav::etag_of(&data),
            data,
            content_type: CALENDAR_TYPE.into(),
            uid: Some(uid.to_string()),
            component: Some(kind.to_string()),
            index: Some(index),
            schedule_tag,
        };
        match self
            .store
            .put_object(calendar.id, name, obj, WriteCondition::MustNotExist)
            .await
        {
            Ok(_) => {
                self.hooks.object_changed(calendar.id);
                Ok(true)
            }
            Err(StoreError::PreconditionFailed) | Err(StoreError::UidConflict(_)) => Ok(false),
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// Store an object the server derived from another (a recipient's copy of a delegated
    /// entry) at `name` in `calendar`, indexed, under `cond`. No scheduling and no hooks: the
    /// derived object is the end of the line.
    pub async fn store_derived(
        &self,
        calendar: ResourceId,
        name: &str,
        data: Vec<u8>,
        kind: (Option<&str>, Option<&str>),
        cond: WriteCondition,
    ) -> Result<(), Error> {
        let (uid, component) = kind;
        let index = self.index_body(&data)?;
        let obj = NewObject {
            etag: crate::dav::etag_of(&data),
            data,
            content_type: CALENDAR_TYPE.into(),
            uid: uid.map(str::to_string),
            component: component.map(str::to_string),
            index: Some(index),
            schedule_tag: None,
        };
        match self.store.put_object(calendar, name, obj, cond).await {
            Ok(_) => Ok(()),
            Err(StoreError::PreconditionFailed) => Err(Error::PreconditionFailed(
                "the copy changed meanwhile".into(),
            )),
            Err(StoreError::UidConflict(holder)) => Err(Error::refused(
                Refusal::UidConflict { holder },
                "another object of the calendar has the same UID",
            )),
            Err(e) => Err(Error::Store(e)),
        }
    }
}
