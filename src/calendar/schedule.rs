//! RFC 6638 implicit scheduling: what a PUT or DELETE of a scheduling object resource sends,
//! and to whom; delivery into each local attendee's schedule inbox *and* calendar
//! (auto-schedule, RFC 6638 3.2.1 with `calendar-auto-schedule`); replies folded back into the
//! organizer's copy; Schedule-Tag; and the schedule outbox's free-busy look-up.
//!
//! The iTIP content itself is built by `ical::itip`; this module decides who gets what and
//! writes it through `calendar::write`.
//!
//! Deliveries run after the originating write has committed, one store transaction each, in
//! the request. A failure is logged and recorded as SCHEDULE-STATUS where the organizer can
//! see it; it never undoes the organizer's own write.
//!
//! Must never: touch SQL, deliver on behalf of a user who is not the organizer (or attendee)
//! named in the object, or let an attendee's write change what the organizer's copy says
//! beyond that attendee's own participation status.

use super::address::{self, mail_of};
use super::{Calendars, Error, Refusal, ScheduleHeaders, home};
use crate::ical::{
    self,
    itip::{self, ScheduleAgent, Scheduling, same_address},
};
use crate::store::{
    MailOrigin, MailOutboxStore, NewObject, Resource, ResourceKind, ResourceReader, ResourceWriter,
    StoreError, User, UserStore, WriteCondition,
};

/// RFC 6638 3.2.9 / RFC 5546 3.6 request-status codes the server records.
pub mod status {
    /// Queued for the SMTP relay as iMIP (the durable outbox sends it; RFC 6638 1.0
    /// "pending": it has not reached the relay yet, so 1.1 "sent" would not be true).
    pub const QUEUED: &str = "1.0";
    /// The relay took the queued iMIP message (RFC 6638 1.1 "sent").
    pub const SENT: &str = "1.1";
    /// Delivered to the attendee's inbox.
    pub const DELIVERED: &str = "1.2";
    /// No local calendar user has this address and no mail relay is configured, or the relay
    /// never took the message.
    pub const NOT_DELIVERED: &str = "5.1";
    /// The user exists but has nowhere to receive messages.
    pub const NO_SCHEDULING: &str = "5.3";
}

/// What this user is to a scheduling object resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Organizer,
    /// The attendee address (as written in the object) that is this user's.
    Attendee(String),
}

/// Decided before a PUT into a calendar is written.
pub(super) struct PutPlan {
    /// The bytes to store, when the server changes the client's (SCHEDULE-STATUS).
    pub data: Option<Vec<u8>>,
    pub schedule_tag: Option<String>,
    /// Replaces the request's If-Match/If-None-Match condition (If-Schedule-Tag-Match).
    pub cond: Option<WriteCondition>,
    pub after: Option<AfterPut>,
}

/// What to send once the PUT has committed.
pub(super) struct AfterPut {
    role: Role,
    old: Option<Vec<u8>>,
    kind: String,
    /// Attendees the client asked to be sent to regardless (SCHEDULE-FORCE-SEND, which the
    /// stored copy no longer carries).
    forced: Vec<String>,
}

fn new_tag() -> String {
    format!("\"{}\"", uuid::Uuid::new_v4().simple())
}

fn unquote(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// A stable member name for a user's copy of an event, from its UID (any characters) so a
/// repeated delivery finds the same name.
pub fn copy_name(uid: &str) -> String {
    format!("{}.ics", &crate::dav::etag_of(uid.as_bytes())[1..33])
}

impl Calendars<'_> {
    /// Is this calendar-user address one of the current user's (RFC 6638 2.4.1)?
    pub fn is_my_address(&self, address: &str) -> bool {
        address::names_user(address, self.user)
    }

    /// The local user a calendar-user address names: `mailto:` their email, or their
    /// principal URL (absolute or as a path).
    pub async fn user_for_address(&self, address: &str) -> Result<Option<User>, Error> {
        let norm = itip::normalize_address(address);
        if let Some(mail) = norm.strip_prefix("mailto:") {
            if let Some(u) = self.store.user_by_email(mail).await? {
                return Ok(Some(u));
            }
            return Ok(Box::pin(self.directory_person(|d| d.find_by_mail(mail))).await);
        }
        match address::principal_name(&norm) {
            Some(name) => self.store.user_by_name(&name).await.map_err(Error::from),
            None => Ok(None),
        }
    }

    /// A directory person, provisioned as a local user so they can be scheduled (and found)
    /// before their first login. A directory failure is logged and counts as nobody.
    pub async fn directory_person<'d, F, Fut>(&'d self, look: F) -> Option<User>
    where
        F: FnOnce(&'d crate::directory::LdapDirectory) -> Fut,
        Fut: std::future::Future<
                Output = Result<Option<crate::directory::Person>, crate::directory::DirectoryError>,
            >,
    {
        let dir = self.directory?;
        // Boxed: an LDAP search's future is kilobytes, and inline it would size the future of
        // every PUT and DELETE, the ones that schedule nothing too.
        let person = match Box::pin(look(dir)).await {
            Ok(p) => p?,
            Err(e) => {
                tracing::warn!(error = %e, "directory look-up failed");
                return None;
            }
        };
        match crate::auth::provision(self.store, &person).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "provisioning a directory person failed");
                None
            }
        }
    }

    fn role_in(&self, s: &Scheduling) -> Option<Role> {
        if self.is_my_address(&s.organizer.address) {
            return Some(Role::Organizer);
        }
        s.attendees()
            .into_iter()
            .find(|a| self.is_my_address(&a.address))
            .map(|a| Role::Attendee(a.address.clone()))
    }

    /// Decide how a PUT of `body` over `existing` is scheduled (RFC 6638 3.2), and check
    /// If-Schedule-Tag-Match (3.2.10) against the stored tag.
    pub(super) async fn plan_put(
        &self,
        parent: &Resource,
        existing: Option<&Resource>,
        body: &[u8],
        kind: &str,
        headers: &ScheduleHeaders,
    ) -> Result<PutPlan, Error> {
        let mut cond = None;
        if let Some(want) = &headers.schedule_tag_match {
            let current = existing.and_then(|e| e.schedule_tag.as_deref());
            if current.is_none_or(|c| unquote(c) != unquote(want)) {
                return Err(Error::PreconditionFailed(
                    "the Schedule-Tag does not match: the organizer changed the event since it was read".into(),
                ));
            }
            // Checked again inside the write: the ETag read with the tag must still hold.
            let etag = existing.and_then(|e| e.etag.clone()).unwrap_or_default();
            if !headers.if_match_holds {
                return Err(Error::PreconditionFailed(
                    "the resource's ETag does not match the request".into(),
                ));
            }
            cond = Some(WriteCondition::EtagIn(vec![etag]));
        }
        let new = itip::scheduling(body);
        // RFC 6638 3.2.4.1: one scheduling object resource per UID in a home, or a reply or a
        // cancellation could not tell which one it is for. (Within one calendar the store's
        // UID uniqueness answers first, as `no-uid-conflict`.)
        if let Some(n) = &new {
            let here = existing.map(|e| e.id);
            let elsewhere = self
                .store
                .objects_by_uid(self.user.id, &n.uid)
                .await?
                .into_iter()
                .any(|r| {
                    r.schedule_tag.is_some() && Some(r.id) != here && r.parent != Some(parent.id)
                });
            if elsewhere {
                return Err(Error::refused(
                    Refusal::UniqueSchedulingObjectResource,
                    "another scheduling object in this home has the same UID",
                ));
            }
        }
        let old = match existing {
            Some(e) if e.schedule_tag.is_some() || new.is_some() => {
                self.store.object_data(e.id).await?
            }
            _ => None,
        };
        let old_sched = old.as_deref().and_then(itip::scheduling);
        // RFC 6638 3.2.2.1: on an attendee's copy only their own participation may change.
        // Making themselves (or anyone else) the organizer would let them rewrite or cancel
        // the meeting for everyone.
        if let (Some(o), Some(n)) = (&old_sched, &new)
            && !self.is_my_address(&o.organizer.address)
            && !same_address(&o.organizer.address, &n.organizer.address)
        {
            return Err(Error::refused(
                Refusal::AllowedAttendeeSchedulingObjectChange,
                "an attendee cannot change the organizer of a scheduling object",
            ));
        }
        let role = new
            .as_ref()
            .and_then(|s| self.role_in(s))
            .or_else(|| old_sched.as_ref().and_then(|s| self.role_in(s)));
        let Some(role) = role else {
            return Ok(PutPlan {
                data: None,
                schedule_tag: None,
                cond,
                after: None,
            });
        };
        let (data, schedule_tag) = match (&role, &new) {
            (Role::Organizer, Some(s)) => {
                // Resolve every attendee once, so SCHEDULE-STATUS says what delivery will do.
                let mut statuses: Vec<(String, String)> = vec![];
                for a in s.attendees() {
                    if self.is_my_address(&a.address) || a.agent != ScheduleAgent::Server {
                        continue;
                    }
                    let code = match self.user_for_address(&a.address).await? {
                        Some(_) => status::DELIVERED,
                        None if self.mailer.is_some() && mail_of(&a.address).is_some() => {
                            status::QUEUED
                        }
                        None => status::NOT_DELIVERED,
                    };
                    statuses.push((a.address.clone(), code.to_string()));
                }
                let data = itip::set_schedule_status(body, &|addr, _| {
                    statuses
                        .iter()
                        .find(|(a, _)| same_address(a, addr))
                        .map(|(_, c)| c.clone())
                });
                // Only a scheduling object resource has a Schedule-Tag (RFC 6638 3.2.10): with
                // every attendee removed, the object is a plain event again.
                let invites = s
                    .attendees()
                    .iter()
                    .any(|a| !self.is_my_address(&a.address));
                (data, invites.then(new_tag))
            }
            // An attendee's answer: their copy records how the reply went (RFC 6638 7.3), and
            // keeps its tag.
            (Role::Attendee(me), Some(s))
                if s.organizer.agent == ScheduleAgent::Server
                    && (old_sched.as_ref().map(|o| o.partstats_of(me))
                        != Some(s.partstats_of(me))
                        || old
                            .as_deref()
                            .is_some_and(|o| itip::declined_exdates(o, body, me).is_some())) =>
            {
                let code = match self.user_for_address(&s.organizer.address).await? {
                    Some(_) => status::DELIVERED,
                    None if self.mailer.is_some() && mail_of(&s.organizer.address).is_some() => {
                        status::QUEUED
                    }
                    None => status::NOT_DELIVERED,
                };
                (
                    itip::set_organizer_status(body, code),
                    existing
                        .and_then(|e| e.schedule_tag.clone())
                        .or_else(|| Some(new_tag())),
                )
            }
            // An attendee's own change (their PARTSTAT, their alarms) keeps the tag: RFC 6638
            // 3.2.10, so a client holding it can still write after answering.
            _ => (
                None,
                existing
                    .and_then(|e| e.schedule_tag.clone())
                    .or_else(|| new.is_some().then(new_tag)),
            ),
        };
        Ok(PutPlan {
            data,
            schedule_tag,
            cond,
            after: Some(AfterPut {
                role,
                old,
                kind: kind.to_string(),
                forced: new
                    .as_ref()
                    .map(|s| {
                        s.attendees()
                            .into_iter()
                            .filter(|a| a.force_send)
                            .map(|a| a.address.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        })
    }

    /// Send what a committed PUT implies.
    pub(super) async fn after_put(&self, after: AfterPut, stored: &[u8]) {
        let result = match &after.role {
            Role::Organizer => {
                self.organizer_changed(
                    after.old.as_deref(),
                    Some(stored),
                    &after.kind,
                    &after.forced,
                )
                .await
            }
            Role::Attendee(me) => {
                self.attendee_changed(me, after.old.as_deref(), Some(stored))
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "scheduling after PUT failed");
        }
    }

    /// Send what the DELETE of a scheduling object implies (RFC 6638 3.2.3: CANCEL from the
    /// organizer; a DECLINED reply from an attendee unless `Schedule-Reply: F`).
    /// `silent`: the attendee asked that no reply be sent (`Schedule-Reply: F`).
    pub async fn after_delete(&self, old: &[u8], silent: bool) {
        let Some(s) = itip::scheduling(old) else {
            return;
        };
        let result = match self.role_in(&s) {
            Some(Role::Organizer) => self.organizer_changed(Some(old), None, "", &[]).await,
            Some(Role::Attendee(me)) => {
                if silent {
                    Ok(())
                } else {
                    self.attendee_changed(&me, Some(old), None).await
                }
            }
            None => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "scheduling after DELETE failed");
        }
    }

    /// The organizer stored `new` over `old` (or deleted `old`): REQUEST to every attendee
    /// still invited, CANCEL to the removed ones and for instances they were taken out of.
    async fn organizer_changed(
        &self,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        kind: &str,
        forced: &[String],
    ) -> Result<(), Error> {
        let now = self.now();
        let old_s = old.and_then(itip::scheduling);
        let new_s = new.and_then(itip::scheduling);
        // A PUT that changes nothing a recipient sees sends nothing (clients re-save freely).
        let unchanged = match (old, new) {
            (Some(o), Some(n)) => {
                itip::set_schedule_status(o, &|_, _| Some(String::new())).unwrap_or(o.to_vec())
                    == itip::set_schedule_status(n, &|_, _| Some(String::new()))
                        .unwrap_or(n.to_vec())
            }
            _ => false,
        };
        let uid = new_s
            .as_ref()
            .or(old_s.as_ref())
            .map(|s| s.uid.clone())
            .unwrap_or_default();
        // STATUS:CANCELLED on the whole event goes out as a CANCEL, not an update (RFC 5546
        // 3.2.5); the attendees' copies still follow, cancelled.
        let cancelled = new.is_some_and(itip::is_cancelled);
        let mut recipients: Vec<itip::Party> = vec![];
        for s in [&new_s, &old_s].into_iter().flatten() {
            for a in s.attendees() {
                if !recipients
                    .iter()
                    .any(|r| same_address(&r.address, &a.address))
                {
                    recipients.push(a.clone());
                }
            }
        }
        for a in recipients {
            if self.is_my_address(&a.address) || a.agent != ScheduleAgent::Server {
                continue;
            }
            let force = a.force_send || forced.iter().any(|f| same_address(f, &a.address));
            let invited = new_s.as_ref().is_some_and(|s| s.has_attendee(&a.address));
            let Some(user) = self.user_for_address(&a.address).await? else {
                // Outside this server: iMIP, when a relay is configured.
                match (new, invited) {
                    (Some(body), true) => {
                        if unchanged && !force {
                            continue;
                        }
                        if cancelled {
                            if let Some(msg) = itip::cancel(body, &a.address, None, now) {
                                self.send_imip(itip::Method::Cancel, &a.address, &msg).await;
                            }
                        } else if let Some(msg) = itip::request(body, &a.address, now) {
                            self.send_imip(itip::Method::Request, &a.address, &msg)
                                .await;
                        }
                        let dropped = dropped_instances(old_s.as_ref(), new_s.as_ref(), &a.address);
                        if !dropped.is_empty()
                            && let Some(msg) = itip::cancel(body, &a.address, Some(&dropped), now)
                        {
                            self.send_imip(itip::Method::Cancel, &a.address, &msg).await;
                        }
                    }
                    _ => {
                        if let Some(body) = old
                            && let Some(msg) = itip::cancel(body, &a.address, None, now)
                        {
                            self.send_imip(itip::Method::Cancel, &a.address, &msg).await;
                        }
                    }
                }
                continue;
            };
            match (new, invited) {
                (Some(body), true) => {
                    if unchanged && !force {
                        continue;
                    }
                    let msg = if cancelled {
                        itip::cancel(body, &a.address, None, now)
                    } else {
                        itip::request(body, &a.address, now)
                    };
                    if let Some(msg) = msg {
                        self.deliver_to_inbox(&user, &msg, kind).await?;
                    }
                    // Instances they were in before and are not now: cancel just those.
                    let dropped = dropped_instances(old_s.as_ref(), new_s.as_ref(), &a.address);
                    if !dropped.is_empty()
                        && let Some(msg) = itip::cancel(body, &a.address, Some(&dropped), now)
                    {
                        self.deliver_to_inbox(&user, &msg, kind).await?;
                    }
                    match itip::attendee_copy(body, &a.address) {
                        Some(copy) => self.upsert_copy(&user, &uid, copy, kind).await?,
                        None => self.remove_copy(&user, &uid).await?,
                    }
                }
                _ => {
                    if let Some(body) = old
                        && let Some(msg) = itip::cancel(body, &a.address, None, now)
                    {
                        self.deliver_to_inbox(&user, &msg, kind).await?;
                    }
                    self.remove_copy(&user, &uid).await?;
                }
            }
        }
        Ok(())
    }

    /// The attendee `me` stored `new` over `old` (or deleted `old`): if their answer changed,
    /// REPLY to the organizer and fold it into the organizer's copy.
    async fn attendee_changed(
        &self,
        me: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<(), Error> {
        let now = self.now();
        let before = old
            .and_then(itip::scheduling)
            .map(|s| s.partstats_of(me))
            .unwrap_or_default();
        let (body, answers): (Vec<u8>, Vec<(Option<String>, String)>) = match new {
            Some(n) => {
                // Instances the attendee took out with EXDATE are declined (RFC 6638 3.2.2.3).
                let declined = old.and_then(|o| itip::declined_exdates(o, n, me));
                let n = declined.as_deref().unwrap_or(n);
                let Some(s) = itip::scheduling(n) else {
                    return Ok(());
                };
                let answers = s.partstats_of(me);
                let unchanged = if old.is_some() {
                    answers == before
                } else {
                    answers.iter().all(|(_, p)| p == "NEEDS-ACTION")
                };
                if unchanged || s.organizer.agent != ScheduleAgent::Server {
                    return Ok(());
                }
                (n.to_vec(), answers)
            }
            None => {
                let Some(o) = old else { return Ok(()) };
                let declined: Vec<(Option<String>, String)> = before
                    .iter()
                    .map(|(r, _)| (r.clone(), "DECLINED".to_string()))
                    .collect();
                let body = itip::apply_reply(o, me, &declined).unwrap_or_else(|| o.to_vec());
                (body, declined)
            }
        };
        let Some(s) = itip::scheduling(&body) else {
            return Ok(());
        };
        let Some(organizer) = self.user_for_address(&s.organizer.address).await? else {
            // An organizer outside this server gets the answer by iMIP.
            if let Some(msg) = itip::reply(&body, me, now) {
                self.send_imip(itip::Method::Reply, &s.organizer.address, &msg)
                    .await;
            }
            return Ok(());
        };
        let kind = component_of(&body);
        // Only the organizer's own scheduling object that invites `me` takes the answer, and
        // without one there is nothing to answer: no REPLY reaches the organizer's inbox for
        // an event they never sent (UIDs are not secret).
        let mut targets = vec![];
        for copy in self.store.objects_by_uid(organizer.id, &s.uid).await? {
            let Some(data) = self.store.object_data(copy.id).await? else {
                continue;
            };
            let invites_me = itip::scheduling(&data).is_some_and(|o| {
                address::names_user(&o.organizer.address, &organizer) && o.has_attendee(me)
            });
            if invites_me {
                targets.push((copy, data));
            }
        }
        if targets.is_empty() {
            tracing::info!("a reply names an event its organizer does not hold; not delivered");
            return Ok(());
        }
        if let Some(msg) = itip::reply(&body, me, now) {
            self.deliver_to_inbox(&organizer, &msg, &kind).await?;
        }
        for (copy, data) in targets {
            // An answer for a date the organizer has no override for gets one.
            let widened = itip::add_answered_overrides(&data, &body, me);
            let base = widened.as_deref().unwrap_or(&data);
            let Some(updated) = itip::apply_reply(base, me, &answers).or(widened) else {
                continue;
            };
            let cond = WriteCondition::EtagIn(copy.etag.clone().into_iter().collect());
            // A PARTSTAT change keeps the organizer's Schedule-Tag (RFC 6638 3.2.10).
            self.refold(&copy, updated, copy.schedule_tag.clone(), cond)
                .await?;
        }
        Ok(())
    }

    /// Send an iTIP message by mail (RFC 6047). False when there is no relay, the address is
    /// not a mail address, or the relay failed (logged).
    async fn send_imip(&self, method: itip::Method, to: &str, msg: &[u8]) -> bool {
        let (Some(mailer), Some(rcpt)) = (self.mailer, mail_of(to)) else {
            return false;
        };
        let title = itip::summary(msg).unwrap_or_else(|| "(untitled)".into());
        let me = self.user.display_name.as_deref().unwrap_or(&self.user.name);
        let (subject, text) = match method {
            itip::Method::Request => (
                format!("Invitation: {title}"),
                format!(
                    "{me} invites you to \"{title}\".\n\nYour calendar program shows the details and lets you answer.\n"
                ),
            ),
            itip::Method::Cancel => (
                format!("Cancelled: {title}"),
                format!("{me} cancelled \"{title}\".\n"),
            ),
            itip::Method::Reply => {
                let answer = itip::scheduling(msg)
                    .and_then(|s| {
                        s.partstats_of(&address::preferred(self.user))
                            .into_iter()
                            .next()
                    })
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                let word = match answer.as_str() {
                    "ACCEPTED" => "Accepted",
                    "DECLINED" => "Declined",
                    "TENTATIVE" => "Tentative",
                    "COMPLETED" => "Completed",
                    "IN-PROCESS" => "In progress",
                    _ => "Answered",
                };
                (
                    format!("{word}: {title}"),
                    format!("{me} answered \"{title}\": {word}.\n"),
                )
            }
        };
        let from_mail = self.user.email.clone().unwrap_or_default();
        let imip = crate::mail::Imip {
            method: method.name(),
            to: &rcpt,
            on_behalf_of: Some((me, &from_mail)),
            subject,
            text,
            calendar: msg,
        };
        // Queued in the store, not sent here: it survives a relay outage and a restart, and
        // the outbox worker (`calendar::outbox`) hands it to the relay once.
        let message = match mailer.render(&imip) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, method = method.name(), "iMIP message not built");
                return false;
            }
        };
        // An organizer's message: what becomes of it is recorded on their event.
        let origin = (method != itip::Method::Reply)
            .then(|| itip::scheduling(msg))
            .flatten()
            .map(|s| MailOrigin {
                owner: self.user.id,
                uid: s.uid,
                attendee: to.to_string(),
            });
        match self
            .store
            .enqueue_mail(&rcpt, &message, origin.as_ref())
            .await
        {
            Ok(id) => {
                mailer.wake();
                tracing::info!(id, method = method.name(), "iMIP message queued");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, method = method.name(), "iMIP message not queued");
                false
            }
        }
    }

    /// An iMIP REPLY received by mail for one of the user's events (posted to `/api/imip`
    /// by whatever fetches their mail): folded into their copy like a local reply. The
    /// attendee must already be on the event. Returns how many copies changed.
    pub async fn incoming_imip(&self, body: &[u8]) -> Result<usize, Error> {
        if itip::method_of(body).as_deref() != Some("REPLY") {
            return Err(Error::refused(
                Refusal::ValidSchedulingMessage,
                "only METHOD:REPLY is accepted here",
            ));
        }
        let Some(s) = itip::scheduling(body) else {
            return Err(Error::Malformed {
                refusal: Refusal::ValidCalendarData,
                message: "the reply does not parse or has no ORGANIZER".into(),
            });
        };
        if !self.is_my_address(&s.organizer.address) {
            return Err(Error::refused(
                Refusal::OrganizerAllowed,
                "the reply is for an event you do not organize",
            ));
        }
        let attendees: Vec<String> = s.attendees().iter().map(|a| a.address.clone()).collect();
        let mut changed = 0usize;
        let mut known = false;
        for copy in self.store.objects_by_uid(self.user.id, &s.uid).await? {
            let Some(data) = self.store.object_data(copy.id).await? else {
                continue;
            };
            let Some(mine) = itip::scheduling(&data) else {
                continue;
            };
            if !self.is_my_address(&mine.organizer.address) {
                continue;
            }
            let mut updated = data.clone();
            for a in &attendees {
                // Only someone the organizer invited may answer.
                if !mine.has_attendee(a) {
                    continue;
                }
                known = true;
                if let Some(next) = itip::apply_reply(&updated, a, &s.partstats_of(a)) {
                    updated = next;
                }
            }
            if updated != data {
                let cond = WriteCondition::EtagIn(copy.etag.clone().into_iter().collect());
                self.refold(&copy, updated, copy.schedule_tag.clone(), cond)
                    .await?;
                changed += 1;
            }
        }
        if !known {
            return Err(Error::NotFound(
                "none of your events with this UID lists the replying attendee".into(),
            ));
        }
        self.deliver_to_inbox(self.user, body, &component_of_message(body))
            .await?;
        Ok(changed)
    }

    /// Store a body as a replacement of `res`, re-indexed.
    /// What became of an iMIP message to `attendee` about this user's event `uid` (`code`: 1.1
    /// sent, 5.1 given up), recorded as that attendee's SCHEDULE-STATUS on the event, only
    /// while it still says 1.0: anything else (a later message, the attendee's answer) says
    /// more. The organizer's Schedule-Tag stays (RFC 6638 3.2.10).
    pub async fn record_mail_outcome(
        &self,
        uid: &str,
        attendee: &str,
        code: &str,
    ) -> Result<(), Error> {
        for res in self.store.objects_by_uid(self.user.id, uid).await? {
            let Some(data) = self.store.object_data(res.id).await? else {
                continue;
            };
            if !itip::scheduling(&data).is_some_and(|s| self.is_my_address(&s.organizer.address)) {
                continue;
            }
            let Some(updated) = itip::set_schedule_status(&data, &|addr, current| {
                (same_address(addr, attendee) && current == Some(status::QUEUED))
                    .then(|| code.to_string())
            }) else {
                continue;
            };
            let cond = WriteCondition::EtagIn(res.etag.clone().into_iter().collect());
            self.refold(&res, updated, res.schedule_tag.clone(), cond)
                .await?;
        }
        Ok(())
    }

    /// Re-store `res` with the server's change; a concurrent write that got there first wins
    /// and carries its own state.
    async fn refold(
        &self,
        res: &Resource,
        data: Vec<u8>,
        schedule_tag: Option<String>,
        cond: WriteCondition,
    ) -> Result<(), Error> {
        match self.restore(res, data, schedule_tag, cond).await {
            Err(Error::PreconditionFailed(_)) => Ok(()),
            r => r,
        }
    }

    /// The user's home members named `name`, the home created on first use.
    async fn home_member(&self, user: &User, name: &str) -> Result<Option<Resource>, Error> {
        let names = [name.to_string()];
        let mut chain = self.store.lookup_path(user.id, &names).await?;
        if chain.is_empty() {
            self.store
                .ensure_home(user.id, &home::default_collections())
                .await?;
            chain = self.store.lookup_path(user.id, &names).await?;
        }
        Ok((chain.len() == 2).then(|| chain.remove(1)))
    }

    async fn deliver_to_inbox(&self, user: &User, msg: &[u8], kind: &str) -> Result<(), Error> {
        let Some(inbox) = self
            .home_member(user, "inbox")
            .await?
            .filter(|r| r.kind == ResourceKind::Inbox)
        else {
            tracing::info!(user = %user.name, "no schedule inbox; message not delivered");
            return Ok(());
        };
        let name = format!("{}.ics", uuid::Uuid::new_v4().simple());
        let obj = NewObject {
            etag: crate::dav::etag_of(msg),
            data: msg.to_vec(),
            content_type: "text/calendar; charset=utf-8".into(),
            // Several messages about one event may wait in an inbox: no UID uniqueness here.
            uid: None,
            component: (!kind.is_empty()).then(|| kind.to_string()),
            index: None,
            schedule_tag: None,
        };
        self.store
            .put_object(inbox.id, &name, obj, WriteCondition::MustNotExist)
            .await?;
        Ok(())
    }

    /// The calendar a new invitation lands in: `calendar` (or `tasks` for to-dos) when it takes
    /// the component, else the first calendar that does.
    async fn default_calendar(&self, user: &User, kind: &str) -> Result<Option<Resource>, Error> {
        let takes = |r: &Resource| {
            r.kind == ResourceKind::Calendar && home::takes(r.supported_components.as_deref(), kind)
        };
        let preferred = if kind.eq_ignore_ascii_case("VTODO") {
            "tasks"
        } else {
            "calendar"
        };
        if let Some(r) = self.home_member(user, preferred).await?
            && takes(&r)
        {
            return Ok(Some(r));
        }
        let Some(home) = self.store.home(user.id).await? else {
            return Ok(None);
        };
        Ok(self.store.children(home.id).await?.into_iter().find(takes))
    }

    /// Write the attendee's copy into their calendar (auto-schedule), keeping their alarms
    /// and transparency on an existing copy. The copy gets a new Schedule-Tag.
    async fn upsert_copy(
        &self,
        user: &User,
        uid: &str,
        copy: Vec<u8>,
        kind: &str,
    ) -> Result<(), Error> {
        let existing = self.store.objects_by_uid(user.id, uid).await?;
        if let Some(current) = existing.first() {
            // UIDs are not secret: only this organizer's copy of the event is theirs to
            // replace. Anything else with the UID (the attendee's own event, another
            // organizer's meeting) is left alone and gets no copy.
            let Some(old) = self.my_copy(current).await? else {
                tracing::info!(user = %user.name, "an object with the invitation's UID is not this organizer's; no copy written");
                return Ok(());
            };
            let merged = itip::keep_personal(&copy, &old).unwrap_or(copy);
            let cond = WriteCondition::EtagIn(current.etag.clone().into_iter().collect());
            return self.refold(current, merged, Some(new_tag()), cond).await;
        }
        let Some(cal) = self.default_calendar(user, kind).await? else {
            tracing::info!(user = %user.name, status = status::NO_SCHEDULING, "no calendar takes the invitation");
            return Ok(());
        };
        self.create(&cal, &copy_name(uid), copy, uid, kind, Some(new_tag()))
            .await?;
        // `false`: a concurrent delivery of the same invitation got there first.
        Ok(())
    }

    /// The body of `r` when it is a scheduling object organized by this user (the only kind
    /// of object delivery may replace or remove in another user's calendar).
    async fn my_copy(&self, r: &Resource) -> Result<Option<Vec<u8>>, Error> {
        let data = self.store.object_data(r.id).await?;
        Ok(data.filter(|d| {
            itip::scheduling(d).is_some_and(|s| self.is_my_address(&s.organizer.address))
        }))
    }

    async fn remove_copy(&self, user: &User, uid: &str) -> Result<(), Error> {
        for r in self.store.objects_by_uid(user.id, uid).await? {
            if self.my_copy(&r).await?.is_none() {
                continue;
            }
            match self.store.delete(&r, WriteCondition::None).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// RECURRENCE-IDs of overrides the attendee was in before and is not in now, while still
/// invited to the series.
fn dropped_instances(
    old: Option<&Scheduling>,
    new: Option<&Scheduling>,
    address: &str,
) -> Vec<String> {
    let (Some(old), Some(new)) = (old, new) else {
        return vec![];
    };
    let in_comp = |c: &itip::ComponentParties| {
        c.attendees
            .iter()
            .any(|a| same_address(&a.address, address))
    };
    let old_master = old
        .components
        .iter()
        .find(|c| c.recurrence_id.is_none())
        .is_some_and(in_comp);
    // Were they in that instance before: in its override, or in the master with no override.
    let had = |rid: &String| match old
        .components
        .iter()
        .find(|c| c.recurrence_id.as_ref() == Some(rid))
    {
        Some(c) => in_comp(c),
        None => old_master,
    };
    new.components
        .iter()
        .filter_map(|c| {
            let rid = c.recurrence_id.as_ref()?;
            (!in_comp(c) && had(rid)).then(|| rid.clone())
        })
        .collect()
}

/// The component type of an iTIP message (METHOD is allowed there, unlike in a resource).
fn component_of_message(body: &[u8]) -> String {
    ["VEVENT", "VTODO", "VJOURNAL"]
        .into_iter()
        .find(|k| {
            body.windows(6 + k.len())
                .any(|w| w.eq_ignore_ascii_case(format!("BEGIN:{k}").as_bytes()))
        })
        .unwrap_or("")
        .to_string()
}

fn component_of(body: &[u8]) -> String {
    ical::validate_object(body)
        .map(|s| s.kind.name().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names_are_stable_and_short() {
        assert_eq!(copy_name("x").len(), 36);
        assert_eq!(copy_name("x"), copy_name("x"));
    }
}
