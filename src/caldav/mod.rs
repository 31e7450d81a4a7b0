//! The CalDAV protocol (RFC 4791, with the WebDAV methods of RFC 4918, RFC 3744's read-side
//! ACL properties, RFC 5397, RFC 5689 and RFC 6578) over the `dav` wire format and the `store`
//! ports. One entry point, [`handle`], takes an authenticated request and returns a response;
//! it is plain data in, plain data out, so it is testable without a server.
//!
//! URL space (all under `/dav`):
//! - `/dav/` the root; `/dav/principals/{user}/` principals;
//! - `/dav/calendars/{user}/` the user's calendar home, holding calendars and plain
//!   collections, which hold objects.
//!
//! Layout: [`handle`] checks access and dispatches on the method; `resolve` turns a path into
//! a `Target` and decides who may reach it; `method/` holds one file per method and
//! `report/` one per report; `render` gives live property values; `schedule`, `sharing`,
//! `sharing`, `delegation` and `groups` are the features behind them. What an object may be
//! and what writing one implies (validation, indexing, scheduling) is `calendar`'s.
//!
//! Must never: touch SQL (only `store` traits), panic on client input, or let one user read or
//! write another user's home except through what that user shared or delegated (403 with
//! `need-privileges`).

mod delegation;
mod groups;
mod method;
mod principal;
pub mod props;
pub mod query;
mod render;
mod report;
mod resolve;
pub mod sharing;
mod stream;

pub use crate::calendar::{ImportReport, SkippedItem};

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::dav::{
    self, DavCondition, DavError, Depth, EtagMatch, Multistatus, NS_CALDAV, NS_CS, NS_DAV, PatchOp,
    Precondition, Privilege, PropertyName, PropfindRequest, XmlLimits, escape,
};
use crate::ical::{self, IcalError};
use crate::store::{
    Change, DelegateStore, NewCollection, NewObject, Resource, ResourceId, ResourceKind,
    ResourceReader, ResourceWriter, Store, StoreError, StoredProp, SyncReader, User, UserStore,
    WriteCondition,
};
use props::Prop;
use {method::*, report::*, resolve::*};

pub const DAV_ROOT: &str = "/dav";
const SYNC_TOKEN_PREFIX: &str = "https://convene.invalid/sync/";
/// Largest dead property value stored (its standalone XML); a bigger one gets 507.
pub const MAX_PROPERTY_BYTES: usize = 64 * 1024;
/// Most bytes of dead properties one resource holds for one viewer; past it, 507.
pub const MAX_PROPERTIES_BYTES: usize = 1024 * 1024;

use crate::calendar::home::DEFAULT_COMPONENTS;

/// Server-wide protocol settings (from configuration).
#[derive(Debug, Clone)]
pub struct DavSettings {
    /// What a calendar object may be (size, index horizon, max-instances).
    pub calendar: crate::calendar::Limits,
    pub xml: XmlLimits,
    pub max_props_per_request: usize,
    /// What non-owners see of CONFIDENTIAL and PRIVATE events (`ical::privacy`).
    pub privacy: ical::privacy::Privacy,
}

impl Default for DavSettings {
    fn default() -> Self {
        DavSettings {
            calendar: crate::calendar::Limits::default(),
            xml: XmlLimits::default(),
            max_props_per_request: 1000,
            privacy: ical::privacy::Privacy::default(),
        }
    }
}

/// CalDAV preconditions (RFC 4791 5.3.2.1, 5.3.1.1, 7.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalCondition {
    ValidCalendarData,
    ValidCalendarObjectResource,
    SupportedCalendarData,
    SupportedCalendarComponent,
    NoUidConflict(String),
    MaxResourceSize,
    CalendarCollectionLocationOk,
    /// RFC 6638 5.1: what was POSTed to the outbox is not a message it accepts.
    ValidSchedulingMessage,
    /// RFC 6638 5.1: the ORGANIZER of an outbox request is not the poster.
    OrganizerAllowed,
    /// RFC 6638 3.2.2.1: an attendee changed more of a scheduling object than their own part.
    AllowedAttendeeSchedulingObjectChange,
    /// RFC 4791 7.8: the filter is not one the RFC allows.
    ValidFilter,
    /// RFC 4791 7.5.1: a text-match names a collation the server does not have.
    SupportedCollation,
    /// RFC 4791 5.3.2.1: the recurrence set has more instances than the server keeps.
    MaxInstances,
    /// RFC 6638 3.2.4.1: another scheduling object resource in the home has the UID.
    UniqueSchedulingObjectResource,
}

impl Precondition for CalCondition {
    fn element(self) -> (&'static str, &'static str, String) {
        let (name, body) = match self {
            CalCondition::ValidCalendarData => ("valid-calendar-data", String::new()),
            CalCondition::ValidCalendarObjectResource => {
                ("valid-calendar-object-resource", String::new())
            }
            CalCondition::SupportedCalendarData => ("supported-calendar-data", String::new()),
            CalCondition::SupportedCalendarComponent => {
                ("supported-calendar-component", String::new())
            }
            CalCondition::NoUidConflict(href) => (
                "no-uid-conflict",
                format!("<D:href xmlns:D=\"DAV:\">{}</D:href>", escape(&href)),
            ),
            CalCondition::MaxResourceSize => ("max-resource-size", String::new()),
            CalCondition::CalendarCollectionLocationOk => {
                ("calendar-collection-location-ok", String::new())
            }
            CalCondition::ValidSchedulingMessage => ("valid-scheduling-message", String::new()),
            CalCondition::OrganizerAllowed => ("organizer-allowed", String::new()),
            CalCondition::AllowedAttendeeSchedulingObjectChange => {
                ("allowed-attendee-scheduling-object-change", String::new())
            }
            CalCondition::ValidFilter => ("valid-filter", String::new()),
            CalCondition::SupportedCollation => ("supported-collation", String::new()),
            CalCondition::MaxInstances => ("max-instances", String::new()),
            CalCondition::UniqueSchedulingObjectResource => {
                ("unique-scheduling-object-resource", String::new())
            }
        };
        (NS_CALDAV, name, body)
    }
}

pub struct DavRequest {
    pub method: Method,
    /// Request path as received (percent-encoded), without query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
pub struct DavResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// A body written while it is sent (large multistatus responses): chunks in order, after
    /// `body`. Memory stays bounded by the channel, whatever the number of members.
    pub stream: Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

impl DavResponse {
    pub fn new(status: StatusCode) -> Self {
        DavResponse {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            stream: None,
        }
    }

    fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    fn xml(status: StatusCode, body: String) -> Self {
        let mut r = DavResponse::new(status);
        r.body = Bytes::from(body);
        r.header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
    }

    pub fn from_error(e: &DavError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        DavResponse::xml(status, e.body())
    }
}

fn select_error(e: crate::calendar::query::SelectError) -> DavError {
    use crate::calendar::query::SelectError;
    match e {
        SelectError::Store(e) => internal(e),
        SelectError::Ical(e) => index_error(e),
    }
}

/// A domain refusal as CalDAV says it. `href_segs`: the written object's path, to name the
/// holder of a conflicting UID beside it.
fn calendar_error_at(e: crate::calendar::Error, href_segs: &[String]) -> DavError {
    use crate::calendar::{Error, Refusal};
    let condition = |r: Refusal| match r {
        Refusal::ValidCalendarData => CalCondition::ValidCalendarData,
        Refusal::ValidCalendarObjectResource => CalCondition::ValidCalendarObjectResource,
        Refusal::SupportedCalendarData => CalCondition::SupportedCalendarData,
        Refusal::SupportedCalendarComponent => CalCondition::SupportedCalendarComponent,
        Refusal::UidConflict { holder } => {
            CalCondition::NoUidConflict(Dav::uid_conflict_href(href_segs, &holder))
        }
        Refusal::MaxResourceSize => CalCondition::MaxResourceSize,
        Refusal::MaxInstances => CalCondition::MaxInstances,
        Refusal::UniqueSchedulingObjectResource => CalCondition::UniqueSchedulingObjectResource,
        Refusal::ValidSchedulingMessage => CalCondition::ValidSchedulingMessage,
        Refusal::OrganizerAllowed => CalCondition::OrganizerAllowed,
        Refusal::AllowedAttendeeSchedulingObjectChange | Refusal::OwnersContent => {
            CalCondition::AllowedAttendeeSchedulingObjectChange
        }
    };
    match e {
        Error::Refused {
            refusal: Refusal::OwnersContent,
            message,
        } => {
            let segs: Vec<&str> = href_segs.iter().map(String::as_str).collect();
            denied(&href_of(&segs, false), Privilege::WriteContent, &message)
        }
        Error::Refused { refusal, message } => DavError::with(403, condition(refusal), message),
        Error::Malformed { refusal, message } => DavError::with(400, condition(refusal), message),
        Error::PreconditionFailed(m) => DavError::new(412, m),
        Error::NotFound(m) => DavError::new(404, m),
        Error::TooLarge(m) => DavError::new(413, m),
        Error::Store(StoreError::AlreadyExists) => DavError::new(405, "cannot PUT to a collection"),
        Error::Store(e) => internal(e),
    }
}

impl From<crate::calendar::Error> for DavError {
    fn from(e: crate::calendar::Error) -> DavError {
        calendar_error_at(e, &[])
    }
}

fn internal(e: StoreError) -> DavError {
    match e {
        StoreError::NotFound => DavError::not_found(),
        e if e.is_full() => {
            tracing::error!(error = %e, "the store is full");
            DavError::new(507, "the server's storage is full; nothing was written")
        }
        e if e.is_race() => {
            tracing::info!(error = %e, "a concurrent request won");
            DavError::new(
                409,
                "a concurrent request changed this resource or its collection; try again",
            )
        }
        e => {
            tracing::error!(error = %e, "store failure");
            DavError::new(500, "internal storage error")
        }
    }
}

fn need_privilege(href: &str, privilege: Privilege) -> DavError {
    denied(href, privilege, "you do not have access to this resource")
}

/// 403 `need-privileges` with a message that says why.
fn denied(href: &str, privilege: Privilege, why: &str) -> DavError {
    DavError::with(
        403,
        DavCondition::NeedPrivileges {
            href: href.to_string(),
            privilege,
        },
        why,
    )
}

pub use crate::dav::etag_of;

fn http_date(epoch: i64) -> String {
    httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64),
    )
}

fn rfc3339(epoch: i64) -> String {
    // creationdate is RFC 3339 (RFC 4918 15.1); computed without a calendar crate: days from
    // the epoch to a civil date (Howard Hinnant's algorithm).
    let secs = epoch.max(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub fn principal_href(user: &str) -> String {
    crate::calendar::address::principal_path(user)
}

pub fn home_href(user: &str) -> String {
    href_of(&["calendars", user], true)
}

pub use crate::calendar::home::default_collections;

/// Properties to store and (namespace, name) pairs to remove, after validation.
type PatchPlan = (Vec<StoredProp>, Vec<(String, String)>);

/// Listings with more members than this are streamed (PROPFIND Depth 1).
const STREAM_MIN_MEMBERS: usize = 2_000;
/// Members written per streamed chunk, and chunks buffered ahead of the client.
const STREAM_BATCH: usize = 500;
const STREAM_CHANNEL: usize = 2;

/// Object bodies fetched ahead for a report, by resource.
/// Keyed with a fast hash: a multiget fills and reads one per member it answers.
type Bodies = std::collections::HashMap<ResourceId, Vec<u8>, foldhash::fast::RandomState>;

/// The handler's view of the world: the store, the settings and who is asking.
pub struct Dav<'a> {
    pub store: &'a Store,
    pub settings: &'a DavSettings,
    pub user: &'a User,
    /// The SMTP relay for iMIP, when one is configured.
    pub mailer: Option<&'a crate::mail::Mailer>,
    /// The LDAP directory, when one is configured: its people are calendar users (principals,
    /// attendees) before their first login.
    pub directory: Option<&'a crate::directory::LdapDirectory>,
    /// The org chart (groups and departments as principals); none for background readers.
    pub org: Option<&'a crate::org::OrgChart>,
    /// Set by [`handle`] when the request is in the home of someone this user is a delegate of.
    pub delegation: Option<Delegation>,
    /// Per-request cache of principals' delegation links, filled before rendering them.
    pub links: delegation::LinkCache,
    /// Where "now" comes from.
    pub clock: &'a dyn crate::clock::Clock,
    /// Told when a calendar object changes (the sharing worker listens).
    pub hooks: &'a dyn crate::calendar::Hooks,
}

/// The user acts in `owner`'s home as their delegate (calendar-proxy), or in a calendar of
/// `owner`'s shared with them and mounted in their own home (`mount`).
#[derive(Debug, Clone)]
pub struct Delegation {
    pub owner: User,
    pub write: bool,
    pub mount: Option<sharing::Mount>,
}

/// Handle one authenticated WebDAV/CalDAV request.
pub async fn handle(outer: &Dav<'_>, req: DavRequest) -> DavResponse {
    // Access is decided before the body is even parsed, so another user's home answers 403
    // whatever is sent to it (unless this user is that user's delegate).
    let delegation = match outer.check_access(&req).await {
        Ok(d) => d,
        Err(e) => return DavResponse::from_error(&e),
    };
    let dav = &Dav {
        store: outer.store,
        settings: outer.settings,
        user: outer.user,
        mailer: outer.mailer,
        directory: outer.directory,
        org: outer.org,
        delegation,
        links: delegation::LinkCache::default(),
        clock: outer.clock,
        hooks: outer.hooks,
    };
    if let Some(Delegation { mount: Some(m), .. }) = &dav.delegation
        && let Err(e) = dav.load_personal(m.calendar).await
    {
        return DavResponse::from_error(&e);
    }
    let result = match req.method.as_str() {
        "OPTIONS" => Ok(options()),
        "PROPFIND" => dav.propfind(&req).await,
        "PROPPATCH" => dav.proppatch(&req).await,
        "GET" => dav.get(&req, true).await,
        "HEAD" => dav.get(&req, false).await,
        "PUT" => dav.put(&req).await,
        "DELETE" => dav.delete(&req).await,
        "MKCOL" => dav.mkcol(&req, false).await,
        "MKCALENDAR" => dav.mkcol(&req, true).await,
        "COPY" => dav.copy_move(&req, false).await,
        "MOVE" => dav.copy_move(&req, true).await,
        "REPORT" => dav.report(&req).await,
        // Boxed, as the other rare paths: see `future_size` below.
        "POST" => Box::pin(dav.post(&req)).await,
        _ => Err(DavError::new(
            405,
            format!("method {} is not supported", req.method),
        )),
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = DavResponse::from_error(&e);
            if e.status == 405 {
                r = r.header(header::ALLOW, ALLOW);
            }
            r
        }
    }
}

const ALLOW: &str = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, COPY, MOVE, REPORT, POST";

/// RFC 4918 10.1 and RFC 4791 5.1: advertise only what is implemented.
pub fn options() -> DavResponse {
    DavResponse::new(StatusCode::OK)
        .header(
            header::HeaderName::from_static("dav"),
            "1, 3, access-control, calendar-access, calendar-auto-schedule, calendar-proxy, calendarserver-sharing, extended-mkcol",
        )
        .header(header::ALLOW, ALLOW)
        .header(header::CONTENT_LENGTH, "0")
}

/// Escape stored bytes as XML character data so that a client's XML parser hands back exactly
/// those bytes: CR is written as `&#13;` because XML 1.0 2.11 would otherwise fold CRLF to LF.
fn xml_text_exact(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() + data.len() / 16);
    push_xml_text_exact(&mut out, data);
    out
}

/// What `push_xml_text_exact` writes for each byte: 0 copies it, anything else indexes
/// `XML_TEXT_REPLACEMENTS`. C0 controls other than tab and LF cannot appear in XML 1.0 at all,
/// so they are dropped.
const XML_TEXT_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = 1;
        c += 1;
    }
    t[b'\t' as usize] = 0;
    t[b'\n' as usize] = 0;
    t[b'\r' as usize] = 2;
    t[b'&' as usize] = 3;
    t[b'<' as usize] = 4;
    t[b'>' as usize] = 5;
    t
};
const XML_TEXT_REPLACEMENTS: [&str; 6] = ["", "", "&#13;", "&amp;", "&lt;", "&gt;"];

/// No byte but CR needs `push_xml_text_exact`'s attention. Written as comparisons folded
/// over fixed chunks, without an early exit, so that the compiler checks many bytes at once.
fn only_cr_to_escape(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|chunk| {
        !chunk.iter().fold(false, |bad, &b| {
            bad | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
                | (b == b'&')
                | (b == b'<')
                | (b == b'>')
        })
    })
}

/// `xml_text_exact`, appended to `out`.
fn push_xml_text_exact(out: &mut String, data: &[u8]) {
    // Stored bodies were validated as UTF-8, so this is the fast check, not a repair.
    let text = match std::str::from_utf8(data) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(data),
    };
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 16);
    if only_cr_to_escape(bytes) {
        // The usual body: nothing to escape but the CR ending each line, found by memchr.
        let mut run = 0;
        for at in memchr::memchr_iter(b'\r', bytes) {
            out.push_str(&text[run..at]);
            out.push_str("&#13;");
            run = at + 1;
        }
        out.push_str(&text[run..]);
        return;
    }
    // Every byte replaced is ASCII, so the runs between them end on character boundaries and
    // are copied whole (a body is mostly such runs: one CR a line). A multiget writes a
    // hundred bodies, and this loop was a seventh of the mixed workload's instructions.
    let mut run = 0;
    let mut from = 0;
    while let Some(off) = bytes[from..]
        .iter()
        .position(|&b| XML_TEXT_CLASS[b as usize] != 0)
    {
        let at = from + off;
        out.push_str(&text[run..at]);
        out.push_str(XML_TEXT_REPLACEMENTS[XML_TEXT_CLASS[bytes[at] as usize] as usize]);
        run = at + 1;
        from = run;
    }
    out.push_str(&text[run..]);
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The response to a body that could not be indexed (RFC 4791 5.3.2.1 max-instances).
fn index_error(e: IcalError) -> DavError {
    match e {
        IcalError::TooManyInstances(_) | IcalError::RuleTooDense(_) => {
            DavError::with(403, CalCondition::MaxInstances, e.to_string())
        }
        other => DavError::with(403, CalCondition::ValidCalendarData, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creationdate_is_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn xml_text_keeps_crlf() {
        assert_eq!(xml_text_exact(b"A\r\nB<&"), "A&#13;\nB&lt;&amp;");
        assert_eq!(xml_text_exact("é\u{1}>ü\tx".as_bytes()), "é&gt;ü\tx");
        assert_eq!(xml_text_exact(b"a\xffb\r"), "a\u{fffd}b&#13;");
    }

    /// The table-driven escape agrees with the rule written out per character, for every
    /// ASCII byte in every position and around multibyte characters.
    #[test]
    fn xml_text_matches_the_rule_per_character() {
        let rule = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    '&' => "&amp;".to_string(),
                    '<' => "&lt;".to_string(),
                    '>' => "&gt;".to_string(),
                    '\r' => "&#13;".to_string(),
                    '\t' | '\n' => c.to_string(),
                    c if (c as u32) < 0x20 => String::new(),
                    c => c.to_string(),
                })
                .collect()
        };
        for b in 0u8..128 {
            let c = b as char;
            for s in [format!("{c}"), format!("é{c}x{c}"), format!("{c}{c}ü\r\n")] {
                assert_eq!(xml_text_exact(s.as_bytes()), rule(&s), "byte {b}");
            }
        }
    }

    #[test]
    fn hrefs() {
        assert_eq!(principal_href("a@b"), "/dav/principals/a%40b/");
        assert_eq!(
            href_of(&["calendars", "u", "c", "x y.ics"], false),
            "/dav/calendars/u/c/x%20y.ics"
        );
    }
}
#[cfg(test)]
mod future_size {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<'a, 'b, F, R>(_: F) -> usize
    where
        F: Fn(&'a Dav<'b>, DavRequest) -> R,
        'b: 'a,
    {
        std::mem::size_of::<R>()
    }

    /// Every request's future holds the largest of the methods' futures, and each await
    /// copies a callee's future into its caller's. With sqlx's PostgreSQL and transaction
    /// futures, LDAP searches, SMTP and the sharing and scheduling paths inline, `handle`'s
    /// future was 15.6 KiB, whatever the method. Those rare or slow parts are boxed where
    /// they are awaited; this keeps them so (5 KiB now, REPORT the largest).
    #[test]
    fn handle_future_stays_small() {
        let size = returned_size(handle);
        assert!(size <= 6 * 1024, "caldav::handle's future is {size} bytes");
    }
}
