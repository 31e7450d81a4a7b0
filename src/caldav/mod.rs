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
//! Must never: touch SQL (only `store` traits), panic on client input, or let one user read or
//! write another user's home (403 with `need-privileges`; sharing comes later).

mod delegation;
mod groups;
mod import;
pub mod outbox;
mod principal;
pub mod props;
pub mod query;
mod schedule;
pub mod sharing;
mod stream;

pub use import::{ImportReport, SkippedItem};

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::dav::{
    self, Condition, DavCondition, DavError, Depth, EtagMatch, Multistatus, NS_CALDAV, NS_CS,
    NS_DAV, PatchOp, Privilege, PropertyName, PropfindRequest, XmlLimits, escape,
};
use crate::ical::{self, IcalError};
use crate::store::{
    Change, DelegateStore, NewCollection, NewObject, Resource, ResourceId, ResourceKind,
    ResourceReader, ResourceWriter, Store, StoreError, StoredProp, SyncReader, User, UserStore,
    WriteCondition,
};
use props::Prop;

pub const DAV_ROOT: &str = "/dav";
const SYNC_TOKEN_PREFIX: &str = "https://convene.invalid/sync/";
/// Largest dead property value stored (its standalone XML); a bigger one gets 507.
pub const MAX_PROPERTY_BYTES: usize = 64 * 1024;
/// Most bytes of dead properties one resource holds for one viewer; past it, 507.
pub const MAX_PROPERTIES_BYTES: usize = 1024 * 1024;

/// Components a calendar accepts when MKCALENDAR does not say (RFC 4791 5.2.3).
const DEFAULT_COMPONENTS: &str = "VEVENT,VTODO,VJOURNAL";

/// Server-wide protocol settings (from configuration).
#[derive(Debug, Clone)]
pub struct DavSettings {
    pub max_resource_size: usize,
    pub xml: XmlLimits,
    pub max_props_per_request: usize,
    /// Recurrences are indexed this far ahead of now (the rolling horizon).
    pub index_horizon_days: i64,
    /// CALDAV:max-instances: most instances one object may generate within the horizon.
    pub max_instances: usize,
    /// What non-owners see of CONFIDENTIAL and PRIVATE events (`ical::privacy`).
    pub privacy: ical::privacy::Privacy,
}

/// How far ahead of now a recurring series is indexed when it is written: a year, as Apple
/// CalendarServer's `FreeBusyIndexExpandAheadDays` (365). The windows clients ask about all
/// day (week and month views, DAVx5's past-90-days sync, free-busy lookups) fall inside it.
/// A window beyond it still gets every answer: the few open-ended series it reaches are
/// expanded at query time. Three years cost each weekly series 156 index rows where it now
/// has 52, written on every PUT and held in every cached listing.
pub const DEFAULT_INDEX_HORIZON_DAYS: i64 = 366;

impl Default for DavSettings {
    fn default() -> Self {
        DavSettings {
            max_resource_size: 10 * 1024 * 1024,
            xml: XmlLimits::default(),
            max_props_per_request: 1000,
            index_horizon_days: DEFAULT_INDEX_HORIZON_DAYS,
            max_instances: 20_000,
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
}

impl From<CalCondition> for Condition {
    fn from(c: CalCondition) -> Self {
        let (name, body) = match c {
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
        };
        Condition {
            ns: NS_CALDAV,
            name,
            body,
        }
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

fn select_error(e: query::SelectError) -> DavError {
    match e {
        query::SelectError::Store(e) => internal(e),
        query::SelectError::Ical(e) => index_error(e),
    }
}

fn internal(e: StoreError) -> DavError {
    match e {
        StoreError::NotFound => DavError::not_found(),
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

/// Build an href from decoded segments.
/// The href of resolved segments (`calendars`, user, ...), as a collection.
fn href_of_segs(segs: &[String]) -> String {
    let v: Vec<&str> = segs.iter().map(String::as_str).collect();
    href_of(&v, true)
}

fn href_of(segments: &[&str], collection: bool) -> String {
    let mut s = String::from(DAV_ROOT);
    for seg in segments {
        s.push('/');
        s.push_str(&dav::encode_path(seg));
    }
    s.push(if collection { '/' } else { '\0' });
    if s.ends_with('\0') {
        s.pop();
    }
    s
}

pub fn principal_href(user: &str) -> String {
    href_of(&["principals", user], true)
}

pub fn home_href(user: &str) -> String {
    href_of(&["calendars", user], true)
}

/// What a request path names.
enum Target {
    Root,
    Principals,
    Principal(User),
    /// A principal's calendar-proxy-read or -write group (CalendarServer delegation).
    ProxyGroup {
        owner: User,
        write: bool,
    },
    /// A directory group or department, or a provider's group.
    Group(groups::GroupInfo),
    Homes,
    Res {
        owner: User,
        res: Resource,
        segs: Vec<String>,
    },
    /// The last segment does not exist; `parent` is `None` when an intermediate one is missing.
    Missing {
        parent: Option<Resource>,
        segs: Vec<String>,
    },
}

/// A resource plus what is needed to describe it.
enum Node<'a> {
    Root,
    Principals,
    Principal(&'a User),
    ProxyGroup {
        owner: &'a User,
        write: bool,
        /// Principal hrefs of the members.
        members: Vec<String>,
    },
    Group(&'a groups::GroupInfo),
    Homes,
    Res {
        owner: &'a User,
        res: &'a Resource,
        href: String,
    },
}

impl Node<'_> {
    fn href(&self) -> String {
        match self {
            Node::Root => format!("{DAV_ROOT}/"),
            Node::Principals => href_of(&["principals"], true),
            Node::Principal(u) => principal_href(&u.name),
            Node::ProxyGroup { owner, write, .. } => delegation::group_href(&owner.name, *write),
            Node::Group(g) => g.href(),
            Node::Homes => href_of(&["calendars"], true),
            Node::Res { href, .. } => href.clone(),
        }
    }
    fn is_collection(&self) -> bool {
        match self {
            Node::Res { res, .. } => res.kind.is_collection(),
            Node::ProxyGroup { .. } | Node::Group(_) => false,
            _ => true,
        }
    }
}

pub fn default_collections() -> Vec<NewCollection> {
    let name_prop = |name: &str| StoredProp {
        ns: NS_DAV.into(),
        local: "displayname".into(),
        xml: format!("<D:displayname xmlns:D=\"DAV:\">{name}</D:displayname>").into_bytes(),
    };
    vec![
        NewCollection {
            name: "calendar".into(),
            kind: ResourceKind::Calendar,
            supported_components: Some("VEVENT".into()),
            props: vec![name_prop("Calendar")],
        },
        NewCollection {
            name: "tasks".into(),
            kind: ResourceKind::Calendar,
            supported_components: Some("VTODO".into()),
            props: vec![name_prop("Tasks")],
        },
        NewCollection {
            name: "inbox".into(),
            kind: ResourceKind::Inbox,
            supported_components: None,
            props: vec![],
        },
        NewCollection {
            name: "outbox".into(),
            kind: ResourceKind::Outbox,
            supported_components: None,
            props: vec![],
        },
        NewCollection {
            name: "notification".into(),
            kind: ResourceKind::Notification,
            supported_components: None,
            props: vec![],
        },
    ]
}

/// Properties to store and (namespace, name) pairs to remove, after validation.
type PatchPlan = (Vec<StoredProp>, Vec<(String, String)>);

/// The properties principal-property-search can match on (RFC 3744 9.5).
const PRINCIPAL_SEARCH_PROPERTY_SET: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<D:principal-search-property-set xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">"#,
    r#"<D:principal-search-property><D:prop><D:displayname/></D:prop>"#,
    r#"<D:description xml:lang="en">Display name</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><C:calendar-user-address-set/></D:prop>"#,
    r#"<D:description xml:lang="en">Calendar address (mailto:)</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><CS:email-address-set xmlns:CS="http://calendarserver.org/ns/"/></D:prop>"#,
    r#"<D:description xml:lang="en">Email address</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><CS:first-name xmlns:CS="http://calendarserver.org/ns/"/></D:prop>"#,
    r#"<D:description xml:lang="en">First name</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><CS:last-name xmlns:CS="http://calendarserver.org/ns/"/></D:prop>"#,
    r#"<D:description xml:lang="en">Last name</D:description></D:principal-search-property>"#,
    r#"</D:principal-search-property-set>"#
);

/// A principal property principal-property-search matches against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalField {
    DisplayName,
    Address,
    /// CalendarServer's first-name and last-name: the first and last word of the display name.
    FirstName,
    LastName,
}
impl PrincipalField {
    fn of(ns: &str, local: &str) -> Option<PrincipalField> {
        match (ns, local) {
            (NS_DAV, "displayname") => Some(PrincipalField::DisplayName),
            (NS_CALDAV, "calendar-user-address-set") => Some(PrincipalField::Address),
            (NS_CS, "email-address-set") => Some(PrincipalField::Address),
            (NS_CS, "first-name") => Some(PrincipalField::FirstName),
            (NS_CS, "last-name") => Some(PrincipalField::LastName),
            _ => None,
        }
    }

    fn values(self, u: &User) -> Vec<String> {
        let display = u.display_name.clone().unwrap_or_else(|| u.name.clone());
        match self {
            PrincipalField::DisplayName => vec![display],
            PrincipalField::Address => {
                let mut v = vec![principal_href(&u.name)];
                if let Some(e) = &u.email {
                    v.push(e.clone());
                    v.push(format!("mailto:{e}"));
                }
                v
            }
            PrincipalField::FirstName => display
                .split_whitespace()
                .next()
                .map(str::to_string)
                .into_iter()
                .collect(),
            PrincipalField::LastName => display
                .split_whitespace()
                .last()
                .map(str::to_string)
                .into_iter()
                .collect(),
        }
    }
}

/// RFC 3744 9.4 / RFC 5323 match types, caseless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Contains,
    StartsWith,
    EndsWith,
    Equals,
}

impl MatchType {
    fn parse(s: Option<&str>) -> MatchType {
        match s {
            Some("starts-with") => MatchType::StartsWith,
            Some("ends-with") => MatchType::EndsWith,
            Some("equals") => MatchType::Equals,
            _ => MatchType::Contains,
        }
    }
    fn test(self, value: &str, text: &str) -> bool {
        let v = value.to_lowercase();
        match self {
            MatchType::Contains => v.contains(text),
            MatchType::StartsWith => v.starts_with(text),
            MatchType::EndsWith => v.ends_with(text),
            MatchType::Equals => v == text,
        }
    }
}

/// Does answering this PROPFIND need the stored (dead or client-set) properties?
/// Whether a PROPFIND asks for anything sharing state decides (resourcetype, CS:invite, ...):
/// polling requests (getctag, sync-token, getetag) do not, and cost no sharing query.
fn needs_sharing(req: &PropfindRequest) -> bool {
    match req {
        PropfindRequest::Prop(names) => names.iter().any(|n| {
            matches!(
                Prop::from_name(n),
                Prop::ResourceType | Prop::Invite | Prop::SharedUrl | Prop::AllowedSharingModes
            )
        }),
        _ => true,
    }
}

fn needs_stored(req: &PropfindRequest) -> bool {
    match req {
        PropfindRequest::Prop(names) => names.iter().any(|n| Prop::from_name(n).is_stored()),
        _ => true,
    }
}

/// Where a streamed listing reads its members from: the in-memory listing, or pages of SQL
/// for a collection too big to cache.
enum MemberSource {
    Listing(crate::store::SharedListing),
    Store(ResourceId),
}

/// Listings with more members than this are streamed (PROPFIND Depth 1).
const STREAM_MIN_MEMBERS: usize = 2_000;
/// Members written per streamed chunk, and chunks buffered ahead of the client.
const STREAM_BATCH: usize = 500;
const STREAM_CHANNEL: usize = 2;

/// What a report asks of each member: properties, and how to shape calendar-data.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    names: &'a [PropertyName],
    spec: &'a DataSpec,
}

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
    /// Set by [`handle`] when the request is in the home of someone this user is a delegate of.
    pub delegation: Option<Delegation>,
    /// Per-request cache of principals' delegation links, filled before rendering them.
    pub links: delegation::LinkCache,
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
        delegation,
        links: delegation::LinkCache::default(),
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

impl<'a> Dav<'a> {
    /// A handler for a task that outlives the request (streamed answers): it reads and
    /// renders only, so it needs no mailer, directory or delegation.
    fn background<'b>(store: &'b Store, settings: &'b DavSettings, user: &'b User) -> Dav<'b> {
        Dav {
            store,
            settings,
            user,
            mailer: None,
            directory: None,
            delegation: None,
            links: delegation::LinkCache::default(),
        }
    }

    /// Who a write schedules as: the home's owner, also when their delegate writes (the
    /// "secretary" case of the calendar-proxy extension).
    fn acting(&self) -> Dav<'_> {
        Dav {
            store: self.store,
            settings: self.settings,
            user: self.delegation.as_ref().map_or(self.user, |d| &d.owner),
            mailer: self.mailer,
            directory: self.directory,
            delegation: None,
            links: delegation::LinkCache::default(),
        }
    }

    fn is_self(&self, name: &str) -> bool {
        name == self.user.name
    }

    /// RFC 3744: a user holds every privilege on their own home; on another user's, what that
    /// user's delegation grants (read, or read and write), and otherwise nothing.
    async fn check_access(&self, req: &DavRequest) -> Result<Option<Delegation>, DavError> {
        let raw_path = req.path.as_str();
        let segs = dav::decode_segments(raw_path)?;
        if let [d, c, name, m, rest @ ..] = segs.as_slice()
            && d == "dav"
            && c == "calendars"
            && self.is_self(name)
            && m.starts_with(sharing::MOUNT_PREFIX)
        {
            return self
                .check_mount_access(req, m, rest.is_empty())
                .await
                .map(Some);
        }
        let name = match segs.as_slice() {
            [d, c, name, ..] if d == "dav" && c == "calendars" && !self.is_self(name) => name,
            _ => return Ok(None),
        };
        let owner = self.store.user_by_name(name).await.map_err(internal)?;
        let grant = match &owner {
            Some(o) if !o.disabled => self
                .store
                .delegation(o.id, self.user.id)
                .await
                .map_err(internal)?,
            _ => None,
        };
        let (Some(owner), Some(write)) = (owner, grant) else {
            return Err(need_privilege(raw_path, Privilege::Read));
        };
        let writes = matches!(
            req.method.as_str(),
            "PUT" | "DELETE" | "PROPPATCH" | "MKCOL" | "MKCALENDAR" | "COPY" | "MOVE" | "POST"
        );
        if writes && !write {
            return Err(need_privilege(raw_path, Privilege::Write));
        }
        Ok(Some(Delegation {
            owner,
            write,
            mount: None,
        }))
    }

    /// A path in one of this user's mounts of a calendar shared with them: what the share's
    /// access allows. The mount itself can always be renamed, recoloured and left.
    async fn check_mount_access(
        &self,
        req: &DavRequest,
        mount: &str,
        on_mount: bool,
    ) -> Result<Delegation, DavError> {
        use crate::store::ShareAccess;
        let Some((m, owner)) = self.mount_of(mount).await? else {
            return Err(DavError::not_found());
        };
        let method = req.method.as_str();
        let reading = matches!(method, "GET" | "HEAD" | "PROPFIND" | "REPORT" | "OPTIONS");
        let allowed = match (method, m.access) {
            ("PROPPATCH" | "DELETE", _) if on_mount => true,
            // Free-busy only: the calendar itself, for the free-busy REPORT (checked there).
            (_, ShareAccess::FreeBusy) => on_mount && matches!(method, "PROPFIND" | "REPORT"),
            // Sharing 5.5.5: a sharee never moves an object out of the shared calendar.
            ("MOVE", _) => false,
            // Any sharee may keep their own alarms on an entry (checked in PUT).
            ("PUT", _) if !on_mount => true,
            _ if reading => true,
            (_, ShareAccess::ReadWrite) => true,
            _ => false,
        };
        if !allowed {
            return Err(need_privilege(
                &req.path,
                if reading {
                    Privilege::Read
                } else {
                    Privilege::WriteContent
                },
            ));
        }
        Ok(Delegation {
            owner,
            write: m.access == ShareAccess::ReadWrite,
            mount: Some(m),
        })
    }

    async fn resolve(&self, raw_path: &str) -> Result<Target, DavError> {
        let segs = dav::decode_segments(raw_path)?;
        let Some((first, rest)) = segs.split_first() else {
            return Err(DavError::not_found());
        };
        if first != "dav" {
            return Err(DavError::not_found());
        }
        match rest {
            [] => Ok(Target::Root),
            [p] if p == "principals" => Ok(Target::Principals),
            [p, name] if p == "principals" => {
                match self.store.user_by_name(name).await.map_err(internal)? {
                    Some(u) => Ok(Target::Principal(u)),
                    None => Err(DavError::not_found()),
                }
            }
            [p, name, group] if p == "principals" => {
                let write = match group.as_str() {
                    delegation::PROXY_READ => false,
                    delegation::PROXY_WRITE => true,
                    _ => return Err(DavError::not_found()),
                };
                match self.store.user_by_name(name).await.map_err(internal)? {
                    Some(owner) => Ok(Target::ProxyGroup { owner, write }),
                    None => Err(DavError::not_found()),
                }
            }
            [g, name] if groups::GroupKind::of_segment(g).is_some() => {
                let kind = groups::GroupKind::of_segment(g).ok_or_else(DavError::not_found)?;
                match Box::pin(self.group_principal(kind, name)).await? {
                    Some(info) => Ok(Target::Group(info)),
                    None => Err(DavError::not_found()),
                }
            }
            [c] if c == "calendars" => Ok(Target::Homes),
            [c, name, m, rest @ ..]
                if c == "calendars"
                    && self.is_self(name)
                    && m.starts_with(sharing::MOUNT_PREFIX) =>
            {
                match &self.delegation {
                    Some(Delegation {
                        owner,
                        mount: Some(mt),
                        ..
                    }) if mt.name == *m => {
                        let segs = vec![c.clone(), name.clone(), m.clone()];
                        self.resolve_mount(mt, owner, rest, segs).await
                    }
                    // Only a request addressed to the mount reaches through it (never a
                    // Destination header).
                    _ => Err(need_privilege(raw_path, Privilege::Bind)),
                }
            }
            [c, name, path @ ..] if c == "calendars" => {
                let owner = match &self.delegation {
                    _ if self.is_self(name) => self.user.clone(),
                    Some(d) if d.mount.is_none() && d.owner.name == *name => d.owner.clone(),
                    _ => return Err(need_privilege(raw_path, Privilege::Read)),
                };
                // The home and the first two levels below it come in one query.
                let head = &path[..path.len().min(2)];
                let mut chain = self
                    .store
                    .lookup_path(owner.id, head)
                    .await
                    .map_err(internal)?;
                if chain.is_empty() {
                    let home = self
                        .store
                        .ensure_home(owner.id, &default_collections())
                        .await
                        .map_err(internal)?;
                    chain = vec![home];
                    if !head.is_empty() {
                        chain = self
                            .store
                            .lookup_path(owner.id, head)
                            .await
                            .map_err(internal)?;
                    }
                }
                let Some(mut current) = chain.pop() else {
                    return Err(DavError::not_found());
                };
                let found = chain.len();
                let mut segs: Vec<String> = vec!["calendars".into(), name.clone()];
                segs.extend(path[..found].iter().cloned());
                for (i, seg) in path.iter().enumerate().skip(found) {
                    let last = i + 1 == path.len();
                    // Below the first two levels, or not looked up yet: ask the store.
                    let child = if current.kind.is_collection() && i >= head.len() {
                        self.store.child(current.id, seg).await.map_err(internal)?
                    } else {
                        None
                    };
                    segs.push(seg.clone());
                    match child {
                        Some(c) => current = c,
                        None if last && current.kind.is_collection() => {
                            return Ok(Target::Missing {
                                parent: Some(current),
                                segs,
                            });
                        }
                        None => {
                            return Ok(Target::Missing { parent: None, segs });
                        }
                    }
                }
                Ok(Target::Res {
                    owner,
                    res: current,
                    segs,
                })
            }
            _ => Err(DavError::not_found()),
        }
    }

    fn res_href(segs: &[String], res: &Resource) -> String {
        let v: Vec<&str> = segs.iter().map(String::as_str).collect();
        href_of(&v, res.kind.is_collection())
    }

    fn child_href(parent_href: &str, child: &Resource) -> String {
        let mut h = String::with_capacity(parent_href.len() + child.name.len() + 8);
        h.push_str(parent_href);
        if !h.ends_with('/') {
            h.push('/');
        }
        dav::push_encoded_path(&mut h, &child.name);
        if child.kind.is_collection() {
            h.push('/');
        }
        h
    }

    // -----------------------------------------------------------------------------------------
    // Properties

    fn sync_token(res: &Resource, seq: i64) -> String {
        format!("{SYNC_TOKEN_PREFIX}{}/{seq}", res.uuid)
    }

    fn privileges_xml(&self, node: &Node<'_>) -> String {
        let (own, kind) = match node {
            Node::Res { owner, res, .. } => (
                owner.id == self.user.id
                    || self
                        .delegation
                        .as_ref()
                        .is_some_and(|d| d.write && d.owner.id == owner.id),
                Some(res.kind),
            ),
            _ => (false, None),
        };
        let mount = matches!(node, Node::Res { href, .. } if href_in_copies(href));
        let shared_access = match (&self.delegation, node) {
            (Some(Delegation { mount: Some(m), .. }), Node::Res { href, .. })
                if sharing::href_is_mount(href) =>
            {
                Some(m.access)
            }
            _ => None,
        };
        let privs: &[Privilege] = if let Some(a) = shared_access {
            use crate::store::ShareAccess;
            match a {
                ShareAccess::ReadWrite => &[
                    Privilege::Read,
                    Privilege::Write,
                    Privilege::WriteProperties,
                    Privilege::WriteContent,
                    Privilege::Bind,
                    Privilege::Unbind,
                    Privilege::ReadCurrentUserPrivilegeSet,
                    Privilege::ReadFreeBusy,
                ],
                // The sharee's own name, colour and order for the calendar are theirs.
                ShareAccess::Read => &[
                    Privilege::Read,
                    Privilege::WriteProperties,
                    Privilege::ReadCurrentUserPrivilegeSet,
                    Privilege::ReadFreeBusy,
                ],
                ShareAccess::FreeBusy => &[
                    Privilege::ReadCurrentUserPrivilegeSet,
                    Privilege::ReadFreeBusy,
                ],
            }
        } else if own && mount {
            // Delegated entries: the owner's content. The recipient names and colours the
            // calendar, and keeps their own alarms on entries (checked on PUT).
            &[
                Privilege::Read,
                Privilege::WriteProperties,
                Privilege::ReadAcl,
                Privilege::ReadCurrentUserPrivilegeSet,
                Privilege::ReadFreeBusy,
            ]
        } else if own {
            &[
                Privilege::Read,
                Privilege::Write,
                Privilege::WriteProperties,
                Privilege::WriteContent,
                Privilege::Bind,
                Privilege::Unbind,
                Privilege::ReadAcl,
                Privilege::ReadCurrentUserPrivilegeSet,
                Privilege::ReadFreeBusy,
            ]
        } else {
            &[Privilege::Read, Privilege::ReadCurrentUserPrivilegeSet]
        };
        let mut s = String::from("<D:current-user-privilege-set>");
        let sched: &[Privilege] = match kind {
            Some(ResourceKind::Inbox) if own => &[Privilege::ScheduleDeliver],
            Some(ResourceKind::Outbox) if own => &[Privilege::ScheduleSend],
            _ => &[],
        };
        for p in privs.iter().chain(sched) {
            s.push_str("<D:privilege>");
            s.push_str(p.prefixed());
            s.push_str("</D:privilege>");
        }
        s.push_str("</D:current-user-privilege-set>");
        s
    }

    /// Render one property of a node, or `None` if it does not exist there (404 propstat).
    fn render(&self, prop: &Prop, node: &Node<'_>, stored: &[StoredProp]) -> Option<String> {
        if prop.is_stored() {
            let n = prop.name();
            if let Some(s) = stored.iter().find(|s| s.ns == n.ns && s.local == n.local) {
                return Some(String::from_utf8_lossy(&s.xml).into_owned());
            }
        }
        if let Node::ProxyGroup {
            owner,
            write,
            members,
        } = node
            && let Some(answer) = self.render_proxy_group(prop, owner, *write, members)
        {
            return answer;
        }
        if let Node::Group(g) = node
            && let Some(answer) = self.render_group(prop, g)
        {
            return answer;
        }
        if let Node::Principal(u) = node
            && let Some(x) = self.render_links(prop, u)
        {
            return Some(x);
        }
        let me = &self.user.name;
        let res = match node {
            Node::Res { res, .. } => Some(*res),
            _ => None,
        };
        let coll = node.is_collection();
        let kind = res.map(|r| r.kind);
        let is_cal = kind == Some(ResourceKind::Calendar);
        Some(match prop {
            Prop::ResourceType => {
                let inner = match node {
                    Node::Principal(_) => "<D:collection/><D:principal/>",
                    Node::Res { res, .. } if res.kind == ResourceKind::Calendar => {
                        let extra = self.sharing_resourcetype(node);
                        return Some(format!(
                            "<D:resourcetype><D:collection/><C:calendar/>{extra}</D:resourcetype>"
                        ));
                    }
                    Node::Res { res, .. } => match res.kind {
                        ResourceKind::Inbox => "<D:collection/><C:schedule-inbox/>",
                        ResourceKind::Outbox => "<D:collection/><C:schedule-outbox/>",
                        ResourceKind::Notification => "<D:collection/><CS:notification/>",
                        ResourceKind::Object => "",
                        _ => "<D:collection/>",
                    },
                    _ => "<D:collection/>",
                };
                format!("<D:resourcetype>{inner}</D:resourcetype>")
            }
            Prop::DisplayName => match node {
                Node::Principal(u) => format!(
                    "<D:displayname>{}</D:displayname>",
                    escape(u.display_name.as_deref().unwrap_or(&u.name))
                ),
                _ => return None,
            },
            Prop::GetEtag => format!("<D:getetag>{}</D:getetag>", escape(&self.view_etag(res?)?)),
            Prop::GetContentType => {
                let r = res?;
                let ct = if r.kind == ResourceKind::Object {
                    r.content_type.as_deref()?
                } else {
                    return None;
                };
                format!("<D:getcontenttype>{}</D:getcontenttype>", escape(ct))
            }
            Prop::GetContentLength => {
                let r = res?;
                if r.kind != ResourceKind::Object {
                    return None;
                }
                format!("<D:getcontentlength>{}</D:getcontentlength>", r.size)
            }
            Prop::GetLastModified => format!(
                "<D:getlastmodified>{}</D:getlastmodified>",
                http_date(res?.modified_at)
            ),
            Prop::CreationDate => format!(
                "<D:creationdate>{}</D:creationdate>",
                rfc3339(res?.created_at)
            ),
            Prop::SupportedLock => "<D:supportedlock/>".into(),
            Prop::LockDiscovery => "<D:lockdiscovery/>".into(),
            Prop::CurrentUserPrincipal => format!(
                "<D:current-user-principal><D:href>{}</D:href></D:current-user-principal>",
                escape(&principal_href(me))
            ),
            Prop::PrincipalUrl => match node {
                Node::Principal(u) => format!(
                    "<D:principal-URL><D:href>{}</D:href></D:principal-URL>",
                    escape(&principal_href(&u.name))
                ),
                _ => return None,
            },
            Prop::PrincipalCollectionSet => format!(
                "<D:principal-collection-set><D:href>{}</D:href></D:principal-collection-set>",
                escape(&href_of(&["principals"], true))
            ),
            Prop::Owner => match node {
                Node::Res { owner, .. } => format!(
                    "<D:owner><D:href>{}</D:href></D:owner>",
                    escape(&principal_href(&owner.name))
                ),
                Node::Principal(u) => format!(
                    "<D:owner><D:href>{}</D:href></D:owner>",
                    escape(&principal_href(&u.name))
                ),
                _ => "<D:owner/>".into(),
            },
            Prop::CurrentUserPrivilegeSet => self.privileges_xml(node),
            Prop::Acl => {
                let owner = match node {
                    Node::Res { owner, .. } => owner.name.clone(),
                    Node::Principal(u) => u.name.clone(),
                    _ => return Some(
                        "<D:acl><D:ace><D:principal><D:authenticated/></D:principal><D:grant><D:privilege><D:read/></D:privilege></D:grant><D:protected/></D:ace></D:acl>".into(),
                    ),
                };
                format!(
                    "<D:acl><D:ace><D:principal><D:href>{}</D:href></D:principal><D:grant><D:privilege><D:all/></D:privilege></D:grant><D:protected/></D:ace></D:acl>",
                    escape(&principal_href(&owner))
                )
            }
            Prop::AclRestrictions => {
                "<D:acl-restrictions><D:grant-only/><D:no-invert/></D:acl-restrictions>".into()
            }
            Prop::SupportedPrivilegeSet => SUPPORTED_PRIVILEGES.into(),
            Prop::InheritedAclSet => "<D:inherited-acl-set/>".into(),

            Prop::AlternateUriSet => match node {
                Node::Principal(_) => "<D:alternate-URI-set/>".into(),
                _ => return None,
            },
            Prop::SupportedReportSet => {
                let reports: &[&str] = match (node, kind) {
                    (Node::Res { .. }, Some(ResourceKind::Calendar)) => &[
                        "<C:calendar-multiget/>",
                        "<C:calendar-query/>",
                        "<C:free-busy-query/>",
                        "<D:sync-collection/>",
                    ],
                    (Node::Res { .. }, Some(ResourceKind::Object | ResourceKind::Outbox)) => &[],
                    (Node::Res { .. }, Some(ResourceKind::Inbox)) => {
                        &["<C:calendar-multiget/>", "<D:sync-collection/>"]
                    }
                    (Node::Res { .. }, _) => &["<D:sync-collection/>"],
                    _ => &[
                        "<D:principal-property-search/>",
                        "<D:principal-search-property-set/>",
                        "<D:expand-property/>",
                        "<CS:calendarserver-principal-search/>",
                    ],
                };
                let mut s = String::from("<D:supported-report-set>");
                for r in reports {
                    s.push_str("<D:supported-report><D:report>");
                    s.push_str(r);
                    s.push_str("</D:report></D:supported-report>");
                }
                s.push_str("</D:supported-report-set>");
                s
            }
            Prop::SyncToken => {
                let r = res?;
                if !coll {
                    return None;
                }
                format!(
                    "<D:sync-token>{}</D:sync-token>",
                    escape(&Self::sync_token(r, r.sync_seq))
                )
            }
            Prop::ResourceId => format!(
                "<D:resource-id><D:href>urn:uuid:{}</D:href></D:resource-id>",
                res?.uuid
            ),
            Prop::CalendarHomeSet => match node {
                Node::Principal(u) => format!(
                    "<C:calendar-home-set><D:href>{}</D:href></C:calendar-home-set>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::CalendarUserAddressSet => match node {
                Node::Principal(u) => {
                    let mut s = String::from("<C:calendar-user-address-set>");
                    if let Some(e) = &u.email {
                        s.push_str(&format!("<D:href>mailto:{}</D:href>", escape(e)));
                    }
                    s.push_str(&format!(
                        "<D:href>{}</D:href></C:calendar-user-address-set>",
                        escape(&principal_href(&u.name))
                    ));
                    s
                }
                _ => return None,
            },
            Prop::CalendarUserType => match node {
                Node::Principal(_) => "<C:calendar-user-type>INDIVIDUAL</C:calendar-user-type>".into(),
                _ => return None,
            },
            Prop::SupportedCalendarComponentSet if is_cal => {
                let mut s = String::from("<C:supported-calendar-component-set>");
                for c in res?
                    .supported_components
                    .as_deref()
                    .unwrap_or(DEFAULT_COMPONENTS)
                    .split(',')
                {
                    s.push_str(&format!("<C:comp name=\"{}\"/>", escape(c)));
                }
                s.push_str("</C:supported-calendar-component-set>");
                s
            }
            Prop::SupportedCalendarData if is_cal => "<C:supported-calendar-data><C:calendar-data content-type=\"text/calendar\" version=\"2.0\"/></C:supported-calendar-data>".into(),
            Prop::MaxResourceSize if is_cal => format!(
                "<C:max-resource-size>{}</C:max-resource-size>",
                self.settings.max_resource_size
            ),
            Prop::MinDateTime if is_cal => "<C:min-date-time>19000101T000000Z</C:min-date-time>".into(),
            Prop::MaxDateTime if is_cal => "<C:max-date-time>21001231T235959Z</C:max-date-time>".into(),
            Prop::MaxInstances if is_cal => format!(
                "<C:max-instances>{}</C:max-instances>",
                self.settings.max_instances
            ),
            Prop::MaxAttendeesPerInstance if is_cal => {
                "<C:max-attendees-per-instance>1000</C:max-attendees-per-instance>".into()
            }
            Prop::ScheduleCalendarTransp if is_cal => {
                "<C:schedule-calendar-transp><C:opaque/></C:schedule-calendar-transp>".into()
            }
            Prop::ScheduleInboxUrl => match node {
                Node::Principal(u) => format!(
                    "<C:schedule-inbox-URL><D:href>{}inbox/</D:href></C:schedule-inbox-URL>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::ScheduleOutboxUrl => match node {
                Node::Principal(u) => format!(
                    "<C:schedule-outbox-URL><D:href>{}outbox/</D:href></C:schedule-outbox-URL>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::ScheduleDefaultCalendarUrl if kind == Some(ResourceKind::Inbox) => match node {
                Node::Res { owner, .. } => format!(
                    "<C:schedule-default-calendar-URL><D:href>{}calendar/</D:href></C:schedule-default-calendar-URL>",
                    escape(&home_href(&owner.name))
                ),
                _ => return None,
            },
            Prop::ScheduleTag => format!(
                "<C:schedule-tag>{}</C:schedule-tag>",
                escape(res?.schedule_tag.as_deref()?)
            ),
            Prop::EmailAddressSet => match node {
                Node::Principal(u) => match &u.email {
                    Some(e) => format!(
                        "<CS:email-address-set><D:href>{}</D:href></CS:email-address-set>",
                        escape(e)
                    ),
                    None => "<CS:email-address-set/>".into(),
                },
                _ => return None,
            },
            Prop::NotificationUrl => match node {
                Node::Principal(u) => format!(
                    "<CS:notification-URL><D:href>{}notification/</D:href></CS:notification-URL>",
                    escape(&home_href(&u.name))
                ),
                _ => return None,
            },
            Prop::FirstName | Prop::LastName => match node {
                Node::Principal(u) => {
                    let field = if *prop == Prop::FirstName {
                        PrincipalField::FirstName
                    } else {
                        PrincipalField::LastName
                    };
                    let local = if *prop == Prop::FirstName {
                        "first-name"
                    } else {
                        "last-name"
                    };
                    let v = field.values(u).into_iter().next()?;
                    format!("<CS:{local}>{}</CS:{local}>", escape(&v))
                }
                _ => return None,
            },
            Prop::RecordType => match node {
                Node::Principal(_) => "<CS:record-type>users</CS:record-type>".into(),
                _ => return None,
            },
            Prop::Invite | Prop::AllowedSharingModes | Prop::SharedUrl => {
                return self.render_sharing(prop, node);
            }

            Prop::GetCtag if coll && res.is_some() => {
                let r = res?;
                format!("<CS:getctag>{}-{}</CS:getctag>", r.uuid, r.sync_seq)
            }
            _ => return None,
        })
    }

    /// Properties of one node for a PROPFIND request: (found, not found).
    fn propfind_props(
        &self,
        req: &PropfindRequest,
        node: &Node<'_>,
        stored: &[StoredProp],
    ) -> (Vec<String>, Vec<String>) {
        let mut found = vec![];
        let mut missing = vec![];
        match req {
            PropfindRequest::Prop(names) => {
                for n in names {
                    let p = Prop::from_name(n);
                    match self.render(&p, node, stored) {
                        Some(x) => found.push(x),
                        None => missing.push(n.empty_element()),
                    }
                }
            }
            PropfindRequest::AllProp { include } => {
                for p in Prop::live().filter(Prop::in_allprop) {
                    if let Some(x) = self.render(&p, node, stored) {
                        found.push(x);
                    }
                }
                for s in stored {
                    let p = Prop::from_name(&PropertyName::new(&s.ns, &s.local));
                    if !p.in_allprop() {
                        found.push(String::from_utf8_lossy(&s.xml).into_owned());
                    }
                }
                for n in include {
                    let p = Prop::from_name(n);
                    if p.in_allprop() || p.is_stored() {
                        continue;
                    }
                    match self.render(&p, node, stored) {
                        Some(x) => found.push(x),
                        None => missing.push(n.empty_element()),
                    }
                }
            }
            PropfindRequest::PropName => {
                for p in Prop::live() {
                    if p.is_stored() {
                        continue;
                    }
                    if self.render(&p, node, stored).is_some() {
                        found.push(p.name().empty_element());
                    }
                }
                for s in stored {
                    found.push(PropertyName::new(&s.ns, &s.local).empty_element());
                }
            }
        }
        (found, missing)
    }

    async fn stored_props(&self, node: &Node<'_>) -> Result<Vec<StoredProp>, DavError> {
        match node {
            // Properties are the owner's: a delegate sees the names and colours the owner set.
            // A sharee's mount: the name and colour are the sharee's own.
            Node::Res { res, href, .. }
                if res.kind == ResourceKind::Calendar && sharing::href_is_mount(href) =>
            {
                self.store
                    .props(res.id, self.user.id)
                    .await
                    .map_err(internal)
            }
            Node::Res { res, .. } => self.store.props(res.id, res.owner).await.map_err(internal),
            _ => Ok(vec![]),
        }
    }

    async fn write_node(
        &self,
        ms: &mut Multistatus,
        req: &PropfindRequest,
        node: &Node<'_>,
    ) -> Result<(), DavError> {
        // Polling clients ask for live properties only (getctag, sync-token, getetag): then
        // the property table is not read at all.
        let stored = if needs_stored(req) {
            self.stored_props(node).await?
        } else {
            vec![]
        };
        let (found, missing) = self.propfind_props(req, node, &stored);
        ms.propstat_response(&node.href(), &found, &[(404, missing)]);
        Ok(())
    }

    async fn propfind(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
        // RFC 4918 10.2 says a missing Depth means infinity; like most servers we answer it
        // as 1 because clients that omit it expect that, and refuse an explicit infinity.
        let depth = match Depth::parse(header_str(&req.headers, "depth"))? {
            Some(Depth::Infinity) => {
                return Err(DavError::with(
                    403,
                    DavCondition::PropfindFiniteDepth,
                    "Depth: infinity is not supported; use 0 or 1",
                ));
            }
            Some(d) => d,
            None => Depth::One,
        };
        let pf = dav::parse_propfind(&req.body, self.settings.xml)?;
        if let PropfindRequest::Prop(names) | PropfindRequest::AllProp { include: names } = &pf
            && names.len() > self.settings.max_props_per_request
        {
            return Err(DavError::bad_request("too many properties requested"));
        }
        // Free-busy sharees see the calendar, never its members.
        let depth = match &self.delegation {
            Some(Delegation { mount: Some(m), .. })
                if m.access == crate::store::ShareAccess::FreeBusy =>
            {
                Depth::Zero
            }
            _ => depth,
        };
        let target = self.resolve(&req.path).await?;
        let mut ms = Multistatus::new();
        match target {
            Target::Root => {
                self.write_node(&mut ms, &pf, &Node::Root).await?;
                if depth == Depth::One {
                    self.write_node(&mut ms, &pf, &Node::Principals).await?;
                    self.write_node(&mut ms, &pf, &Node::Homes).await?;
                }
            }
            Target::Principals => {
                self.write_node(&mut ms, &pf, &Node::Principals).await?;
                if depth == Depth::One {
                    // Only the caller's own principal is listed; others are found by search.
                    self.write_node(&mut ms, &pf, &Node::Principal(self.user))
                        .await?;
                }
            }
            Target::Principal(u) => {
                self.prefetch_links(&u).await?;
                self.write_node(&mut ms, &pf, &Node::Principal(&u)).await?;
                if depth == Depth::One {
                    // RFC: the proxy groups are the principal's members (CalendarServer proxy 5.2).
                    for write in [false, true] {
                        let node = self.proxy_group_node(&u, write).await?;
                        self.write_node(&mut ms, &pf, &node).await?;
                    }
                }
            }
            Target::ProxyGroup { owner, write } => {
                let node = self.proxy_group_node(&owner, write).await?;
                self.write_node(&mut ms, &pf, &node).await?;
            }
            Target::Group(g) => {
                self.write_node(&mut ms, &pf, &Node::Group(&g)).await?;
            }
            Target::Homes => {
                self.write_node(&mut ms, &pf, &Node::Homes).await?;
                if depth == Depth::One {
                    let home = self
                        .store
                        .ensure_home(self.user.id, &default_collections())
                        .await
                        .map_err(internal)?;
                    let href = home_href(&self.user.name);
                    self.write_node(
                        &mut ms,
                        &pf,
                        &Node::Res {
                            owner: self.user,
                            res: &home,
                            href,
                        },
                    )
                    .await?;
                }
            }
            Target::Res { owner, res, segs } => {
                let href = Self::res_href(&segs, &res);
                if needs_sharing(&pf) {
                    self.prefetch_sharing(&owner, &res, &href).await?;
                }
                let node = Node::Res {
                    owner: &owner,
                    res: &res,
                    href: href.clone(),
                };
                self.write_node(&mut ms, &pf, &node).await?;
                if depth == Depth::One && res.kind.is_collection() {
                    // Two queries for the whole listing, never one per member.
                    let needs_stored = needs_stored(&pf);
                    let mut props: std::collections::HashMap<_, Vec<StoredProp>> =
                        std::collections::HashMap::new();
                    if needs_stored {
                        for (id, p) in self
                            .store
                            .child_props(res.id, res.owner)
                            .await
                            .map_err(internal)?
                        {
                            props.entry(id).or_default().push(p);
                        }
                    }
                    let mut emit = |child: &Resource| {
                        let stored = props.remove(&child.id).unwrap_or_default();
                        self.member_response(&mut ms, &pf, &owner, &href, child, &stored);
                    };
                    match self.store.listing(&res).await.map_err(internal)? {
                        Some(listing)
                            if listing.read().unwrap_or_else(|e| e.into_inner()).len()
                                <= STREAM_MIN_MEMBERS =>
                        {
                            let l = listing.read().unwrap_or_else(|e| e.into_inner());
                            l.members().for_each(|c| emit(c));
                        }
                        // Large, or too large to be cached at all: streamed.
                        listing => {
                            let source = match listing {
                                Some(l) => MemberSource::Listing(l),
                                None => MemberSource::Store(res.id),
                            };
                            return Ok(self.stream_members(ms, source, pf, owner, href, props));
                        }
                    }
                    // Calendars shared with this user appear in their own home.
                    if res.kind == ResourceKind::Home
                        && owner.id == self.user.id
                        && self.delegation.is_none()
                    {
                        for (sharer, cal, mount_href) in self.mounts_for_listing().await? {
                            let node = Node::Res {
                                owner: &sharer,
                                res: &cal,
                                href: mount_href,
                            };
                            self.write_node(&mut ms, &pf, &node).await?;
                        }
                    }
                }
            }
            Target::Missing { .. } => return Err(DavError::not_found()),
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// One member's response in a Depth 1 listing.
    fn member_response(
        &self,
        ms: &mut Multistatus,
        pf: &PropfindRequest,
        owner: &User,
        parent_href: &str,
        child: &Resource,
        stored: &[StoredProp],
    ) {
        let node = Node::Res {
            owner,
            res: child,
            href: Self::child_href(parent_href, child),
        };
        let (found, missing) = self.propfind_props(pf, &node, stored);
        ms.propstat_response(&node.href(), &found, &[(404, missing)]);
    }

    /// PROPFIND Depth 1 over a large collection, streamed: the collection's own response
    /// goes first, then members in batches of `STREAM_BATCH`, walked by name with the listing
    /// locked only while a batch is written. The writer task stops when the client goes away.
    fn stream_members(
        &self,
        mut ms: Multistatus,
        source: MemberSource,
        pf: PropfindRequest,
        owner: User,
        href: String,
        mut props: std::collections::HashMap<ResourceId, Vec<StoredProp>>,
    ) -> DavResponse {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHANNEL);
        let head = Bytes::from(ms.take_chunk());
        let (store, settings, user) =
            (self.store.clone(), self.settings.clone(), self.user.clone());
        let personal = self.personal_parts();
        tokio::spawn(async move {
            let dav = Dav::background(&store, &settings, &user);
            dav.set_personal_parts(personal);
            if tx.send(head).await.is_err() {
                return;
            }
            let mut after: Option<String> = None;
            loop {
                let mut batch = Multistatus::new();
                batch.take_chunk();
                let mut emit = |child: &Resource| {
                    let stored = props.remove(&child.id).unwrap_or_default();
                    dav.member_response(&mut batch, &pf, &owner, &href, child, &stored);
                };
                match &source {
                    MemberSource::Listing(listing) => {
                        let l = listing.read().unwrap_or_else(|e| e.into_inner());
                        for child in l.members_after(after.as_deref()).take(STREAM_BATCH) {
                            emit(child);
                            after = Some(child.name.clone());
                        }
                    }
                    MemberSource::Store(parent) => {
                        let page = match store
                            .children_after(*parent, after.as_deref(), STREAM_BATCH)
                            .await
                        {
                            Ok(p) => p,
                            Err(e) => {
                                // The status line is gone: ending the body early is all that
                                // is left, and the client sees a truncated document.
                                tracing::error!(error = %e, "streamed listing failed");
                                return;
                            }
                        };
                        for child in &page {
                            emit(child);
                        }
                        after = page.last().map(|c| c.name.clone()).or(after);
                    }
                }
                let chunk = batch.take_chunk();
                if chunk.is_empty() {
                    break;
                }
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            let _ = tx
                .send(Bytes::from_static(Multistatus::tail().as_bytes()))
                .await;
        });
        let mut r = DavResponse::xml(StatusCode::MULTI_STATUS, String::new());
        r.stream = Some(rx);
        r
    }

    // -----------------------------------------------------------------------------------------
    // PROPPATCH / MKCOL properties

    /// Check one set/remove against the resource; `Err` carries the failure status and
    /// condition for that property.
    fn check_op(&self, op: &PatchOp, kind: ResourceKind) -> Result<Option<StoredProp>, DavError> {
        let name = op.name();
        let prop = Prop::from_name(&name);
        if !prop.is_stored() {
            return Err(DavError::with(
                403,
                DavCondition::CannotModifyProtectedProperty,
                format!("{name} is protected"),
            ));
        }
        let PatchOp::Set(el, xml) = op else {
            return Ok(None);
        };
        if xml.len() > MAX_PROPERTY_BYTES {
            return Err(DavError::new(
                507,
                format!("a property value holds at most {MAX_PROPERTY_BYTES} bytes"),
            ));
        }
        let is_cal = kind == ResourceKind::Calendar;
        let calendar_only = matches!(
            prop,
            Prop::CalendarDescription
                | Prop::CalendarTimezone
                | Prop::CalendarTimezoneId
                | Prop::ScheduleCalendarTransp
        );
        if calendar_only && !is_cal {
            return Err(DavError::with(
                403,
                DavCondition::CannotModifyProtectedProperty,
                format!("{name} applies to calendar collections only"),
            ));
        }
        match prop {
            Prop::CalendarTimezone => {
                ical::validate_timezone(el.text.as_bytes()).map_err(|e| {
                    DavError::with(403, CalCondition::ValidCalendarData, e.to_string())
                })?;
            }
            Prop::CalendarOrder
                if !el.text.trim().is_empty() && el.text.trim().parse::<i64>().is_err() =>
            {
                return Err(DavError::new(409, "calendar-order must be an integer"));
            }
            Prop::ScheduleCalendarTransp => {
                let ok = el.children.len() == 1
                    && el.children[0].ns == NS_CALDAV
                    && matches!(el.children[0].local.as_str(), "opaque" | "transparent");
                if !ok {
                    return Err(DavError::new(
                        409,
                        "schedule-calendar-transp must hold opaque or transparent",
                    ));
                }
            }
            _ => {}
        }
        Ok(Some(StoredProp {
            ns: name.ns,
            local: name.local,
            xml: xml.clone(),
        }))
    }

    /// Validate all operations; on any failure, report every property (failed ones with their
    /// status, the rest 424) and change nothing (RFC 4918 9.2).
    /// RFC 4918 9.2: 507 for each property set when the resource's dead properties (for this
    /// viewer) would pass `MAX_PROPERTIES_BYTES` after the patch.
    async fn check_property_room(
        &self,
        id: crate::store::ResourceId,
        viewer: crate::store::UserId,
        set: Vec<StoredProp>,
        remove: Vec<(String, String)>,
    ) -> Result<Result<PatchPlan, Vec<(PropertyName, DavError)>>, DavError> {
        if set.is_empty() {
            return Ok(Ok((set, remove)));
        }
        let current = self.store.props(id, viewer).await.map_err(internal)?;
        let replaced = |p: &StoredProp| {
            remove.iter().any(|(ns, l)| *ns == p.ns && *l == p.local)
                || set.iter().any(|s| s.ns == p.ns && s.local == p.local)
        };
        let kept: usize = current
            .iter()
            .filter(|p| !replaced(p))
            .map(|p| p.xml.len())
            .sum();
        let added: usize = set.iter().map(|p| p.xml.len()).sum();
        if kept.saturating_add(added) <= MAX_PROPERTIES_BYTES {
            return Ok(Ok((set, remove)));
        }
        Ok(Err(set
            .iter()
            .map(|p| {
                (
                    PropertyName::new(&p.ns, &p.local),
                    DavError::new(
                        507,
                        format!(
                            "a resource holds at most {MAX_PROPERTIES_BYTES} bytes of properties"
                        ),
                    ),
                )
            })
            .collect()))
    }

    fn plan_patch(
        &self,
        ops: &[PatchOp],
        kind: ResourceKind,
    ) -> Result<PatchPlan, Vec<(PropertyName, DavError)>> {
        let mut set = vec![];
        let mut remove = vec![];
        let mut failures = vec![];
        for op in ops {
            match self.check_op(op, kind) {
                Ok(Some(p)) => {
                    remove.retain(|(ns, l): &(String, String)| !(*ns == p.ns && *l == p.local));
                    set.retain(|s: &StoredProp| !(s.ns == p.ns && s.local == p.local));
                    set.push(p);
                }
                Ok(None) => {
                    let n = op.name();
                    set.retain(|s: &StoredProp| !(s.ns == n.ns && s.local == n.local));
                    remove.push((n.ns, n.local));
                }
                Err(e) => failures.push((op.name(), e)),
            }
        }
        if failures.is_empty() {
            Ok((set, remove))
        } else {
            Err(failures)
        }
    }

    /// Per-status property lists for a failed PROPPATCH/MKCOL: failed properties carry their
    /// own status, the rest 424 Failed Dependency (RFC 4918 9.2.1). Also returns the messages.
    fn failure_statuses(
        ops: &[PatchOp],
        failures: &[(PropertyName, DavError)],
    ) -> (Vec<(u16, Vec<String>)>, String) {
        let mut by_status: Vec<(u16, Vec<String>)> = vec![];
        let mut messages: Vec<&str> = vec![];
        for op in ops {
            let n = op.name();
            let status = match failures.iter().find(|(f, _)| *f == n) {
                Some((_, e)) => {
                    messages.push(&e.message);
                    e.status
                }
                None => 424,
            };
            match by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, v)) => v.push(n.empty_element()),
                None => by_status.push((status, vec![n.empty_element()])),
            }
        }
        (by_status, messages.join("; "))
    }

    fn patch_failure_body(
        href: &str,
        ops: &[PatchOp],
        failures: &[(PropertyName, DavError)],
    ) -> String {
        let (by_status, messages) = Self::failure_statuses(ops, failures);
        let mut ms = Multistatus::new();
        ms.propstat_response_described(href, &[], &by_status, Some(&messages));
        ms.finish(None)
    }

    async fn proppatch(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
        let ops = dav::parse_proppatch(&req.body, self.settings.xml)?;
        if ops.len() > self.settings.max_props_per_request {
            return Err(DavError::bad_request(
                "too many properties in one PROPPATCH",
            ));
        }
        let (res, segs) = match self.resolve(&req.path).await? {
            Target::Res { res, segs, .. } => (res, segs),
            Target::ProxyGroup { owner, write } => {
                let href = delegation::group_href(&owner.name, write);
                return self.patch_proxy_group(&owner, write, &ops, &href).await;
            }
            Target::Missing { .. } => return Err(DavError::not_found()),
            _ => return Err(need_privilege(&req.path, Privilege::WriteProperties)),
        };
        let href = Self::res_href(&segs, &res);
        let viewer = if res.kind == ResourceKind::Calendar && sharing::is_mount_segs(&segs) {
            self.user.id
        } else {
            res.owner
        };
        let plan = match self.plan_patch(&ops, res.kind) {
            Ok((set, remove)) => {
                self.check_property_room(res.id, viewer, set, remove)
                    .await?
            }
            Err(f) => Err(f),
        };
        match plan {
            Err(failures) => Ok(DavResponse::xml(
                StatusCode::MULTI_STATUS,
                Self::patch_failure_body(&href, &ops, &failures),
            )),
            Ok((set, remove)) => {
                self.store
                    .patch_props(res.id, viewer, set, remove)
                    .await
                    .map_err(internal)?;
                let mut ms = Multistatus::new();
                let names: Vec<String> = ops.iter().map(|o| o.name().empty_element()).collect();
                ms.propstat_response(&href, &names, &[]);
                Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
            }
        }
    }

    async fn mkcol(&self, req: &DavRequest, calendar: bool) -> Result<DavResponse, DavError> {
        let (parent, segs) = match self.resolve(&req.path).await? {
            Target::Missing {
                parent: Some(p),
                segs,
                ..
            } => (p, segs),
            Target::Missing { parent: None, .. } => {
                return Err(DavError::new(409, "parent collection does not exist"));
            }
            Target::Res { .. } | Target::Root | Target::Principals | Target::Homes => {
                return Err(DavError::new(405, "resource already exists"));
            }
            Target::Principal(_) | Target::ProxyGroup { .. } | Target::Group(_) => {
                return Err(DavError::new(405, "resource already exists"));
            }
        };
        if in_copies(&segs) || sharing::is_mount_segs(&segs) {
            return Err(need_privilege(&req.path, Privilege::Bind));
        }
        let name = segs.last().cloned().unwrap_or_default();
        let mut kind = if calendar {
            ResourceKind::Calendar
        } else {
            ResourceKind::Collection
        };
        let mut ops = vec![];
        let mut components: Option<String> = None;
        if !req.body.iter().all(u8::is_ascii_whitespace) {
            if !calendar {
                let ct = header_str(&req.headers, "content-type").unwrap_or("");
                if !(ct.is_empty() || ct.contains("xml")) {
                    return Err(DavError::new(415, "MKCOL body must be XML (RFC 5689)"));
                }
            }
            let (root, body_ops) = dav::parse_mkcol_body(&req.body, self.settings.xml)?;
            let expected = if calendar {
                (NS_CALDAV, "mkcalendar")
            } else {
                (NS_DAV, "mkcol")
            };
            if root.ns != expected.0 || root.local != expected.1 {
                return Err(DavError::new(
                    if calendar { 400 } else { 415 },
                    format!("expected {{{}}}{} body", expected.0, expected.1),
                ));
            }
            for op in body_ops {
                let n = op.name();
                match (Prop::from_name(&n), &op) {
                    (Prop::ResourceType, PatchOp::Set(el, _)) => {
                        let is_cal = el.child(NS_CALDAV, "calendar").is_some();
                        let unknown = el
                            .children
                            .iter()
                            .any(|c| !(c.is(NS_DAV, "collection") || c.is(NS_CALDAV, "calendar")));
                        if unknown {
                            return Err(DavError::with(
                                403,
                                DavCondition::ValidResourcetype,
                                "unsupported resource type",
                            ));
                        }
                        if is_cal {
                            kind = ResourceKind::Calendar;
                        }
                    }
                    (Prop::SupportedCalendarComponentSet, PatchOp::Set(el, _)) => {
                        let comps: Vec<String> = el
                            .children_named(NS_CALDAV, "comp")
                            .filter_map(|c| c.attr("name").map(|n| n.to_ascii_uppercase()))
                            .collect();
                        if comps.is_empty() {
                            return Err(DavError::bad_request(
                                "supported-calendar-component-set names no component",
                            ));
                        }
                        components = Some(comps.join(","));
                    }
                    _ => ops.push(op),
                }
            }
        }
        // RFC 4791 5.3.1: calendars may not nest, and nothing may be created in a calendar
        // except calendar object resources.
        if matches!(
            parent.kind,
            ResourceKind::Calendar
                | ResourceKind::Inbox
                | ResourceKind::Outbox
                | ResourceKind::Notification
        ) {
            return Err(DavError::with(
                403,
                CalCondition::CalendarCollectionLocationOk,
                "collections cannot be created inside a calendar or a scheduling mailbox",
            ));
        }
        if parent.kind == ResourceKind::Collection && kind == ResourceKind::Calendar {
            return Err(DavError::with(
                403,
                CalCondition::CalendarCollectionLocationOk,
                "calendars live directly in the calendar home",
            ));
        }
        let (set, _) = match self.plan_patch(&ops, kind) {
            Ok(p) => p,
            Err(failures) => {
                // RFC 5689 5.2 / RFC 4791 5.3.1.2: the response body holds the propstats.
                let (by_status, messages) = Self::failure_statuses(&ops, &failures);
                let root = if calendar {
                    "C:mkcalendar-response"
                } else {
                    "D:mkcol-response"
                };
                let mut body = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{root}{}>",
                    dav::root_namespace_decls()
                );
                for (status, props) in &by_status {
                    body.push_str(&dav::propstat_xml(*status, props));
                }
                body.push_str(&format!(
                    "<D:responsedescription>{}</D:responsedescription></{}>",
                    escape(&messages),
                    root
                ));
                return Ok(DavResponse::xml(StatusCode::FORBIDDEN, body));
            }
        };
        if kind == ResourceKind::Calendar && components.is_none() {
            components = Some(DEFAULT_COMPONENTS.into());
        }
        let created = self
            .store
            .create_collection(
                parent.id,
                NewCollection {
                    name,
                    kind,
                    supported_components: if kind == ResourceKind::Calendar {
                        components
                    } else {
                        None
                    },
                    props: set,
                },
            )
            .await;
        match created {
            Ok(_) => Ok(DavResponse::new(StatusCode::CREATED).header(header::CONTENT_LENGTH, "0")),
            Err(StoreError::AlreadyExists) => Err(DavError::new(405, "resource already exists")),
            Err(e) => Err(internal(e)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Content

    async fn get(&self, req: &DavRequest, with_body: bool) -> Result<DavResponse, DavError> {
        match self.resolve(&req.path).await? {
            Target::Res { res, .. } if res.kind == ResourceKind::Object => {
                let etag = self.view_etag(&res).unwrap_or_default().into_owned();
                if let Some(inm) = header_str(&req.headers, "if-none-match")
                    && EtagMatch::parse(inm).matches(Some(&etag))
                {
                    return Ok(
                        DavResponse::new(StatusCode::NOT_MODIFIED).header(header::ETAG, &etag)
                    );
                }
                let data = self.view_body(
                    res.id,
                    self.store
                        .object_data(res.id)
                        .await
                        .map_err(internal)?
                        // Deleted since the path was resolved.
                        .ok_or_else(DavError::not_found)?,
                );
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::ETAG, &etag)
                    .header(header::LAST_MODIFIED, &http_date(res.modified_at))
                    .header(
                        header::CONTENT_TYPE,
                        res.content_type
                            .as_deref()
                            .unwrap_or("application/octet-stream"),
                    )
                    .header(header::CONTENT_LENGTH, &data.len().to_string());
                if let Some(tag) = &res.schedule_tag {
                    r = r.header(header::HeaderName::from_static("schedule-tag"), tag);
                }
                if with_body {
                    r.body = Bytes::from(data);
                }
                Ok(r)
            }
            Target::Res { res, .. }
                if res.kind == ResourceKind::Calendar
                    && header_str(&req.headers, "accept")
                        .is_some_and(|a| a.contains("text/calendar")) =>
            {
                self.export(&res, req, with_body).await
            }
            Target::Res { res, segs, .. } => {
                let href = Self::res_href(&segs, &res);
                let mut listing = String::new();
                for c in self.store.children(res.id).await.map_err(internal)? {
                    listing.push_str(&Self::child_href(&href, &c));
                    listing.push('\n');
                }
                let len = listing.len().to_string();
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header(header::CONTENT_LENGTH, &len);
                if with_body {
                    r.body = Bytes::from(listing);
                }
                Ok(r)
            }
            Target::Missing { .. } => Err(DavError::not_found()),
            _ => {
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
                if with_body {
                    r.body = Bytes::from_static(b"Convene CalDAV server\n");
                }
                Ok(r)
            }
        }
    }

    /// Validate a body for a calendar collection: size, media type, iCalendar, components.
    fn check_calendar_body<'b>(
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
    fn index_body(&self, body: &[u8]) -> Result<ical::index::ObjectIndex, DavError> {
        ical::index::index_object(body, self.index_limits()).map_err(index_error)
    }

    /// The index of a body `check_calendar_body` accepted, from the parse it already made.
    fn index_validated(
        &self,
        v: &ical::Validated<'_>,
    ) -> Result<ical::index::ObjectIndex, DavError> {
        v.index(self.index_limits()).map_err(index_error)
    }

    fn write_condition(headers: &HeaderMap) -> WriteCondition {
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

    fn uid_conflict_href(segs: &[String], holder: &str) -> String {
        let parent: Vec<&str> = segs[..segs.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(holder))
            .collect();
        href_of(&parent, false)
    }

    async fn put(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
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
        let (uid, component, ct, index) = match parent.kind {
            ResourceKind::Calendar => {
                let v = self.check_calendar_body(&parent, content_type, &req.body)?;
                // Sharing 5.5.5: in a shared calendar the organizer can only be its owner.
                if let Some(Delegation { mount: Some(_), .. }) = &self.delegation
                    && let Some(sched) = ical::itip::scheduling(&req.body)
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
                        .plan_put(existing.as_ref(), &req.body, s.kind.name(), &req.headers)
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
        let rewritten = data.is_some();
        let data = data.unwrap_or_else(|| req.body.to_vec());
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
    async fn put_personal(
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

    async fn delete(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
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
                // A scheduling object's deletion is sent on (RFC 6638 3.2.3).
                let old = match res.schedule_tag {
                    Some(_) => self.store.object_data(res.id).await.map_err(internal)?,
                    None => None,
                };
                match self
                    .store
                    .delete(&res, Self::write_condition(&req.headers))
                    .await
                {
                    Ok(()) => {
                        if let Some(old) = old {
                            Box::pin(self.acting().after_delete(&old, &req.headers)).await;
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

    async fn copy_move(&self, req: &DavRequest, is_move: bool) -> Result<DavResponse, DavError> {
        let dest_raw = header_str(&req.headers, "destination")
            .ok_or_else(|| DavError::bad_request("Destination header is required"))?;
        let dest_path = dav::href_path(dest_raw).to_string();
        let overwrite = match header_str(&req.headers, "overwrite").map(str::trim) {
            None | Some("T") | Some("t") => true,
            Some("F") | Some("f") => false,
            Some(_) => return Err(DavError::bad_request("Overwrite must be T or F")),
        };
        let depth = Depth::parse(header_str(&req.headers, "depth"))?;
        if is_move && matches!(depth, Some(Depth::Zero | Depth::One)) {
            return Err(DavError::bad_request(
                "MOVE of a collection requires Depth: infinity",
            ));
        }
        let (src, src_segs) = match self.resolve(&req.path).await? {
            Target::Res { res, segs, .. } if res.parent.is_some() => (res, segs),
            Target::Missing { .. } => return Err(DavError::not_found()),
            _ => return Err(need_privilege(&req.path, Privilege::Unbind)),
        };
        let (dest_parent, dest_segs, dest_exists) = match self.resolve(&dest_path).await {
            Ok(Target::Missing {
                parent: Some(p),
                segs,
                ..
            }) => (p, segs, false),
            Ok(Target::Missing { parent: None, .. }) => {
                return Err(DavError::new(
                    409,
                    "destination's parent collection does not exist",
                ));
            }
            Ok(Target::Res { res, segs, .. }) if res.parent.is_some() => {
                let parent = self.parent_of(&res).await?;
                if res.id == src.id {
                    return Err(DavError::forbidden("source and destination are the same"));
                }
                (parent, segs, true)
            }
            Ok(_) => return Err(DavError::forbidden("cannot write to that destination")),
            Err(e) if e.status == 404 => {
                return Err(DavError::new(502, "destination is not on this server"));
            }
            Err(e) => return Err(e),
        };
        if in_copies(&dest_segs) || (is_move && in_copies(&src_segs)) {
            return Err(need_privilege(&dest_path, Privilege::Bind));
        }
        if dest_exists && !overwrite {
            return Err(DavError::new(412, "destination exists and Overwrite is F"));
        }
        // The scheduling mailboxes are the server's: never moved, copied, replaced or filled.
        let mailbox = |k: ResourceKind| {
            matches!(
                k,
                ResourceKind::Inbox | ResourceKind::Outbox | ResourceKind::Notification
            )
        };
        if mailbox(src.kind) || mailbox(dest_parent.kind) {
            return Err(need_privilege(&dest_path, Privilege::Bind));
        }
        if dest_exists
            && dest_segs.len() == 3
            && matches!(dest_segs[2].as_str(), "inbox" | "outbox" | "notification")
        {
            return Err(need_privilege(&dest_path, Privilege::Unbind));
        }
        // Calendar invariants hold for the destination as for PUT/MKCOL (RFC 4791 5.3.2).
        if dest_parent.kind == ResourceKind::Calendar {
            if src.kind.is_collection() {
                return Err(DavError::with(
                    403,
                    CalCondition::CalendarCollectionLocationOk,
                    "collections cannot be placed inside a calendar",
                ));
            }
            let data = self
                .store
                .object_data(src.id)
                .await
                .map_err(internal)?
                // Deleted since the path was resolved.
                .ok_or_else(DavError::not_found)?;
            self.check_calendar_body(&dest_parent, None, &data)?;
        } else if dest_parent.kind == ResourceKind::Home && !src.kind.is_collection() {
            return Err(DavError::forbidden(
                "resources can only be placed inside a calendar or collection",
            ));
        } else if dest_parent.kind == ResourceKind::Collection && src.kind == ResourceKind::Calendar
        {
            return Err(DavError::with(
                403,
                CalCondition::CalendarCollectionLocationOk,
                "calendars live directly in the calendar home",
            ));
        }
        let dest_name = dest_segs.last().cloned().unwrap_or_default();
        match self
            .store
            .transfer(&src, dest_parent.id, &dest_name, overwrite, is_move)
            .await
        {
            Ok(created) => Ok(DavResponse::new(if created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            })
            .header(header::CONTENT_LENGTH, "0")),
            Err(StoreError::PreconditionFailed) => {
                Err(DavError::new(412, "destination exists and Overwrite is F"))
            }
            Err(StoreError::Cycle) => Err(DavError::forbidden(
                "cannot copy or move a collection into itself",
            )),
            Err(StoreError::NotFound) => Err(DavError::not_found()),
            Err(StoreError::UidConflict(holder)) => Err(DavError::with(
                403,
                CalCondition::NoUidConflict(Self::uid_conflict_href(&dest_segs, &holder)),
                "another resource in the destination calendar has the same UID",
            )),
            Err(e) => Err(internal(e)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // REPORT

    async fn report(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
        let root = dav::xml::parse(&req.body, self.settings.xml)?;
        // The principal reports (RFC 3744 9.4, 9.5) search the principal collection, whatever
        // resource they are sent to (clients send them to the DAV root or a principal).
        if root.ns == NS_DAV
            && matches!(
                root.local.as_str(),
                "principal-property-search" | "principal-search-property-set"
            )
        {
            if let Target::Missing { .. } = self.resolve(&req.path).await? {
                return Err(DavError::not_found());
            }
            return if root.local == "principal-search-property-set" {
                Ok(DavResponse::xml(
                    StatusCode::OK,
                    PRINCIPAL_SEARCH_PROPERTY_SET.into(),
                ))
            } else {
                Box::pin(self.principal_search(&root)).await
            };
        }
        if root.ns == NS_CS && root.local == "calendarserver-principal-search" {
            if let Target::Missing { .. } = self.resolve(&req.path).await? {
                return Err(DavError::not_found());
            }
            return Box::pin(self.cs_principal_search(&req.path, &root)).await;
        }
        if root.ns == NS_DAV && root.local == "expand-property" {
            return match self.resolve(&req.path).await? {
                Target::Missing { .. } => Err(DavError::not_found()),
                Target::Root => self.expand_property(&Node::Root, &root).await,
                Target::Principals => self.expand_property(&Node::Principals, &root).await,
                Target::Homes => self.expand_property(&Node::Homes, &root).await,
                Target::Principal(u) => {
                    self.prefetch_links(&u).await?;
                    self.expand_property(&Node::Principal(&u), &root).await
                }
                Target::ProxyGroup { owner, write } => {
                    let node = self.proxy_group_node(&owner, write).await?;
                    self.expand_property(&node, &root).await
                }
                Target::Group(g) => self.expand_property(&Node::Group(&g), &root).await,
                Target::Res { owner, res, segs } => {
                    let href = Self::res_href(&segs, &res);
                    let node = Node::Res {
                        owner: &owner,
                        res: &res,
                        href,
                    };
                    self.expand_property(&node, &root).await
                }
            };
        }
        let (owner, res, segs) = match self.resolve(&req.path).await? {
            Target::Res { owner, res, segs } => (owner, res, segs),
            Target::Missing { .. } => return Err(DavError::not_found()),
            _ => {
                return Err(DavError::with(
                    403,
                    Condition {
                        ns: NS_DAV,
                        name: "supported-report",
                        body: String::new(),
                    },
                    "this report is not supported here",
                ));
            }
        };
        let href = Self::res_href(&segs, &res);
        if let Some(Delegation { mount: Some(m), .. }) = &self.delegation
            && m.access == crate::store::ShareAccess::FreeBusy
            && !(root.ns == NS_CALDAV && root.local == "free-busy-query")
        {
            return Err(need_privilege(&href, Privilege::Read));
        }
        match (root.ns.as_str(), root.local.as_str()) {
            (NS_DAV, "sync-collection") if res.kind.is_collection() => {
                let sc = dav::parse_sync_collection(&root)?;
                self.sync_collection(&owner, &res, &href, sc).await
            }
            (NS_CALDAV, "calendar-multiget") => self.multiget(&owner, &res, &href, &root).await,
            (NS_CALDAV, "free-busy-query") if res.kind == ResourceKind::Calendar => {
                self.free_busy(&res, &root).await
            }
            (NS_CALDAV, "calendar-query")
                if matches!(res.kind, ResourceKind::Calendar | ResourceKind::Object) =>
            {
                let depth = Depth::parse(header_str(&req.headers, "depth"))?;
                self.calendar_query(&owner, &res, &href, &root, depth).await
            }
            _ => Err(DavError::with(
                403,
                Condition {
                    ns: NS_DAV,
                    name: "supported-report",
                    body: String::new(),
                },
                format!("report {{{}}}{} is not supported here", root.ns, root.local),
            )),
        }
    }

    /// principal-property-search (RFC 3744 9.4): users whose searchable properties contain
    /// the match text, caseless. `test="anyof"` needs one property-search to match, the default
    /// `allof` every one. Without any property-search (not RFC 3744, but sent by clients to
    /// list principals) every principal matches.
    async fn principal_search(&self, root: &dav::Element) -> Result<DavResponse, DavError> {
        let any_of = root.attr("test") == Some("anyof");
        let mut searches: Vec<(Vec<PrincipalField>, String, MatchType)> = vec![];
        for ps in root.children_named(NS_DAV, "property-search") {
            let m = ps.child(NS_DAV, "match");
            let text = m.map(|m| m.text.trim().to_lowercase()).unwrap_or_default();
            let how = MatchType::parse(m.and_then(|m| m.attr("match-type")));
            let fields: Vec<PrincipalField> = ps
                .child(NS_DAV, "prop")
                .map(|p| {
                    p.children
                        .iter()
                        .filter_map(|c| PrincipalField::of(&c.ns, &c.local))
                        .collect()
                })
                .unwrap_or_default();
            if fields.is_empty() {
                return Err(DavError::bad_request(
                    "property-search names no searchable property (see principal-search-property-set)",
                ));
            }
            searches.push((fields, text, how));
        }
        let mut names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        // python-caldav (through 3.6) sends the wanted properties as siblings of an empty
        // DAV:prop; take them from there too rather than answer with bare hrefs.
        names.extend(
            root.children
                .iter()
                .filter(|c| {
                    !(c.ns == NS_DAV
                        && matches!(
                            c.local.as_str(),
                            "prop" | "property-search" | "apply-to-principal-collection-set"
                        ))
                })
                .map(PropertyName::of),
        );
        // Directory people are principals too, before their first login.
        if let Some(dir) = self.directory {
            for (_, text, _) in searches.iter().filter(|(_, t, _)| t.chars().count() >= 2) {
                match dir.search_people(text, 50).await {
                    Ok(people) => {
                        for p in people {
                            if let Err(e) = crate::auth::provision(self.store, &p).await {
                                tracing::warn!(error = %e, "provisioning a directory person failed");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "directory search failed"),
                }
            }
        }
        let users = self.store.list_users().await.map_err(internal)?;
        let mut ms = Multistatus::new();
        for u in users.iter().filter(|u| !u.disabled) {
            let hit = |(fields, text, how): &(Vec<PrincipalField>, String, MatchType)| {
                fields
                    .iter()
                    .any(|f| f.values(u).iter().any(|v| how.test(v, text)))
            };
            let selected = searches.is_empty()
                || if any_of {
                    searches.iter().any(hit)
                } else {
                    searches.iter().all(hit)
                };
            if !selected {
                continue;
            }
            let node = Node::Principal(u);
            let (found, missing) =
                self.propfind_props(&PropfindRequest::Prop(names.clone()), &node, &[]);
            ms.propstat_response(&node.href(), &found, &[(404, missing)]);
        }
        // Group principals match on their name (display name) or description.
        let texts: Vec<&String> = searches
            .iter()
            .filter(|(fields, _, _)| fields.contains(&PrincipalField::DisplayName))
            .map(|(_, t, _)| t)
            .collect();
        if !searches.is_empty() && !texts.is_empty() && (any_of || texts.len() == searches.len()) {
            for g in self.group_principals().await? {
                if texts.iter().any(|t| groups::group_matches(&g, t)) {
                    let node = Node::Group(&g);
                    let (found, missing) =
                        self.propfind_props(&PropfindRequest::Prop(names.clone()), &node, &[]);
                    ms.propstat_response(&node.href(), &found, &[(404, missing)]);
                }
            }
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// Properties for a report response, with calendar-data rendered from the stored bytes.
    async fn report_response(
        &self,
        ms: &mut Multistatus,
        owner: &User,
        res: &Resource,
        href: String,
        wanted: Wanted<'_>,
        bodies: &mut Bodies,
    ) -> Result<(), DavError> {
        let Wanted { names, spec } = wanted;
        let props: Vec<Prop> = names.iter().map(Prop::from_name).collect();
        let node = Node::Res { owner, res, href };
        // Only a request for a stored (dead or client-set) property needs the property table.
        let stored = if props.iter().any(Prop::is_stored) {
            self.stored_props(&node).await?
        } else {
            vec![]
        };
        // The found properties, as one string: a report writes this for every member, so the
        // common ones (ETag, calendar-data) are written in place rather than each as a string.
        let mut found = String::new();
        let mut missing = vec![];
        let is_object = res.kind == ResourceKind::Object && res.component.is_some();
        for (n, p) in names.iter().zip(&props) {
            match p {
                Prop::CalendarData if is_object => {
                    let data = match bodies.remove(&res.id) {
                        Some(d) => d,
                        None => self
                            .store
                            .object_data(res.id)
                            .await
                            .map_err(internal)?
                            .unwrap_or_default(),
                    };
                    let data = self.shape_data(self.view_body(res.id, data), spec)?;
                    found.reserve(data.len() + data.len() / 16 + 40);
                    found.push_str("<C:calendar-data>");
                    push_xml_text_exact(&mut found, &data);
                    found.push_str("</C:calendar-data>");
                }
                Prop::CalendarData => missing.push(n.empty_element()),
                Prop::GetEtag if res.kind == ResourceKind::Object => match self.view_etag(res) {
                    Some(etag) => {
                        found.push_str("<D:getetag>");
                        dav::push_text(&mut found, &etag);
                        found.push_str("</D:getetag>");
                    }
                    None => missing.push(n.empty_element()),
                },
                _ => match self.render(p, &node, &stored) {
                    Some(x) => found.push_str(&x),
                    None => missing.push(n.empty_element()),
                },
            }
        }
        let Node::Res { href, .. } = &node else {
            return Ok(());
        };
        if names.is_empty() {
            ms.status_response(href, 200, None);
        } else {
            ms.propstat_response_xml(href, &found, &[(404, missing)]);
        }
        Ok(())
    }

    async fn sync_collection(
        &self,
        owner: &User,
        coll: &Resource,
        href: &str,
        sc: dav::SyncCollection,
    ) -> Result<DavResponse, DavError> {
        if sc.level_infinite && coll.kind == ResourceKind::Home {
            // Members of a home are collections; infinite level would need their members too.
        }
        let invalid = || {
            DavError::with(
                403,
                DavCondition::ValidSyncToken,
                "the sync token is not valid for this collection; sync again without a token",
            )
        };
        let since = match &sc.token {
            None => None,
            Some(t) => {
                let rest = t.strip_prefix(SYNC_TOKEN_PREFIX).ok_or_else(invalid)?;
                let (uuid, seq) = rest.rsplit_once('/').ok_or_else(invalid)?;
                let seq: i64 = seq.parse().map_err(|_| invalid())?;
                if uuid != coll.uuid || seq > coll.sync_seq || seq < coll.tomb_floor || seq < 0 {
                    return Err(invalid());
                }
                Some(seq)
            }
        };
        if sc.limit == Some(0) {
            return Err(DavError::with(
                507,
                DavCondition::NumberOfMatchesWithinLimits,
                "a limit of 0 results cannot make progress",
            ));
        }
        // The token we hand out is read *before* the changes, so a write that lands in between
        // is reported again next time rather than skipped.
        let current = self
            .store
            .resource(coll.id)
            .await
            .map_err(internal)?
            .ok_or_else(DavError::not_found)?;
        // An initial sync without a limit lists every live member: the listing has them.
        let listed = match (since, sc.limit) {
            (None, None) => self.store.listing(&current).await.map_err(internal)?,
            _ => None,
        };
        let mut changes = match listed {
            Some(listing) => {
                let l = listing.read().unwrap_or_else(|e| e.into_inner());
                l.members()
                    .filter(|r| r.mod_seq <= current.sync_seq)
                    .map(|r| Change::Live(r.clone()))
                    .collect()
            }
            None => self
                .store
                .changes_since(coll.id, since, sc.limit)
                .await
                .map_err(internal)?,
        };
        let mut ms = Multistatus::new();
        let mut token_seq = current.sync_seq;
        let truncated = matches!(sc.limit, Some(l) if changes.len() > l);
        if truncated {
            let l = sc.limit.unwrap_or(0);
            changes.truncate(l);
            token_seq = changes
                .last()
                .map(Change::seq)
                .unwrap_or(since.unwrap_or(0));
        } else {
            changes.retain(|c| c.seq() <= token_seq);
        }
        if changes.len() > STREAM_MIN_MEMBERS {
            let token = Self::sync_token(&current, token_seq);
            return Ok(self.stream_report(
                ms,
                changes,
                (sc.props.clone(), DataSpec::plain()),
                owner.clone(),
                href.to_string(),
                truncated,
                Some(token),
            ));
        }
        let live = changes.iter().filter_map(|c| match c {
            Change::Live(r) if r.kind == ResourceKind::Object => Some(r.id),
            _ => None,
        });
        let mut bodies = self.prefetch_bodies(live, &sc.props).await?;
        for c in &changes {
            match c {
                Change::Live(r) => {
                    self.report_response(
                        &mut ms,
                        owner,
                        r,
                        Self::child_href(href, r),
                        Wanted {
                            names: &sc.props,
                            spec: &DataSpec::plain(),
                        },
                        &mut bodies,
                    )
                    .await?
                }
                Change::Deleted { name, .. } => {
                    let mut h = href.to_string();
                    h.push_str(&dav::encode_path(name));
                    ms.status_response(&h, 404, None);
                }
            }
        }
        if truncated {
            // RFC 6578 3.6: a 507 response for the request-URI says more remain; the token
            // resumes exactly after the last change listed.
            ms.status_response(href, 507, None);
        }
        let token = Self::sync_token(&current, token_seq);
        Ok(DavResponse::xml(
            StatusCode::MULTI_STATUS,
            ms.finish(Some(&token)),
        ))
    }

    async fn multiget(
        &self,
        owner: &User,
        res: &Resource,
        href: &str,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        let spec = self.data_spec(root, res).await?;
        let hrefs: Vec<&str> = root
            .children_named(NS_DAV, "href")
            .map(|h| h.text.trim())
            .collect();
        if hrefs.is_empty() {
            return Err(DavError::bad_request(
                "calendar-multiget needs at least one DAV:href",
            ));
        }
        // Members of the request collection (the usual case) are looked up in one query;
        // anything else goes through full path resolution.
        let own_segs = dav::decode_segments(href)?;
        let own_prefix = if href.ends_with('/') {
            href.to_string()
        } else {
            format!("{href}/")
        };
        let direct_name = |h: &str| -> Option<String> {
            let path = dav::href_path(h);
            // Clients spell members' hrefs as the collection's plus a name: decode only that.
            if let Some(rest) = path.strip_prefix(&own_prefix)
                && !rest.is_empty()
                && !rest.contains('/')
            {
                return res
                    .kind
                    .is_collection()
                    .then(|| dav::decode_segment(rest).ok())
                    .flatten();
            }
            let segs = dav::decode_segments(path).ok()?;
            (res.kind.is_collection()
                && segs.len() == own_segs.len() + 1
                && segs[..own_segs.len()] == own_segs[..])
                .then(|| segs[own_segs.len()].clone())
        };
        let direct: Vec<Option<String>> = hrefs.iter().map(|h| direct_name(h)).collect();
        let wanted: Vec<String> = direct.iter().flatten().cloned().collect();
        let found: std::collections::HashMap<String, Arc<Resource>, foldhash::fast::RandomState> =
            if wanted.is_empty() {
                Default::default()
            } else if let Some(listing) = self.store.listing(res).await.map_err(internal)? {
                let l = listing.read().unwrap_or_else(|e| e.into_inner());
                wanted
                    .into_iter()
                    .filter_map(|n| l.by_name(&n).map(|r| (n, r.clone())))
                    .collect()
            } else {
                self.store
                    .children_by_name(res.id, &wanted)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .map(|r| (r.name.clone(), Arc::new(r)))
                    .collect()
            };
        let items = found
            .values()
            .filter(|r| r.kind == ResourceKind::Object)
            .map(|r| r.id);
        let mut bodies = self.prefetch_bodies(items, &names).await?;
        let mut ms = Multistatus::new();
        for (h, direct) in hrefs.into_iter().zip(direct) {
            if let Some(name) = direct {
                match found.get(&name) {
                    Some(item) if item.kind == ResourceKind::Object => {
                        let item_href = Self::child_href(href, item);
                        self.report_response(
                            &mut ms,
                            owner,
                            item,
                            item_href,
                            Wanted {
                                names: &names,
                                spec: &spec,
                            },
                            &mut bodies,
                        )
                        .await?;
                    }
                    _ => ms.status_response(h, 404, None),
                }
                continue;
            }
            let path = dav::href_path(h);
            let target = match self.resolve(path).await {
                Ok(t) => t,
                Err(e) => {
                    ms.status_response(h, e.status, None);
                    continue;
                }
            };
            match target {
                Target::Res {
                    res: item, segs, ..
                } if item.kind == ResourceKind::Object
                    && (item.parent == Some(res.id)
                        || item.id == res.id
                        || res.kind != ResourceKind::Object) =>
                {
                    let item_href = Self::res_href(&segs, &item);
                    self.report_response(
                        &mut ms,
                        owner,
                        &item,
                        item_href,
                        Wanted {
                            names: &names,
                            spec: &spec,
                        },
                        &mut Bodies::default(),
                    )
                    .await?;
                }
                _ => ms.status_response(h, 404, None),
            }
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// calendar-query (RFC 4791 7.8): the filter answered from the time-range index where it
    /// can be, parsing only the objects it cannot decide.
    async fn calendar_query(
        &self,
        owner: &User,
        res: &Resource,
        href: &str,
        root: &dav::Element,
        depth: Option<Depth>,
    ) -> Result<DavResponse, DavError> {
        let names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        let filter_el = root
            .child(NS_CALDAV, "filter")
            .ok_or_else(|| DavError::bad_request("calendar-query needs a CALDAV:filter"))?;
        let vcal = filter_el
            .child(NS_CALDAV, "comp-filter")
            .ok_or_else(|| DavError::bad_request("CALDAV:filter needs a comp-filter"))?;
        let filter = query::parse_comp_filter(vcal, 0)?;
        if filter.name != "VCALENDAR" {
            return Err(DavError::with(
                403,
                Condition {
                    ns: NS_CALDAV,
                    name: "valid-filter",
                    body: String::new(),
                },
                "the filter must start with comp-filter VCALENDAR",
            ));
        }
        let (calendar, single) = if res.kind == ResourceKind::Object {
            (self.parent_of(res).await?, Some(res.clone()))
        } else {
            (res.clone(), None)
        };
        let query_tz = root.child(NS_CALDAV, "timezone").map(|t| t.text.clone());
        let cal_tz = self.calendar_timezone_text(&calendar).await?;
        let mut limits = self.index_limits();
        let ctx_zone = query::floating_zone(query_tz.as_deref(), cal_tz.as_deref());
        // Expansion at query time must reach the end of any time range asked about.
        limits.horizon = limits
            .horizon
            .max(max_range_end(&filter).saturating_add(86_400));
        // ...and needs only the occurrences near the earliest window asked about.
        limits.from = min_range_start(&filter);
        let ctx = ical::filter::EvalContext {
            floating_zone: ctx_zone,
            limits,
        };
        let spec = self.data_spec(root, &calendar).await?;
        let mut ms = Multistatus::new();
        // RFC 4791 7.8: Depth 0 on a collection selects nothing but the collection itself.
        if single.is_none() && depth == Some(Depth::Zero) {
            return Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)));
        }
        let selected = query::select(self.store, &calendar, &filter, &ctx, self.non_owner())
            .await
            .map_err(select_error)?;
        let cal_href = match &single {
            Some(_) => href
                .rsplit_once('/')
                .map(|(p, _)| format!("{p}/"))
                .unwrap_or_default(),
            None => href.to_string(),
        };
        let selected: Vec<Arc<Resource>> = selected
            .into_iter()
            .filter(|c| single.as_ref().is_none_or(|s| s.id == c.id))
            .collect();
        if selected.len() > STREAM_MIN_MEMBERS {
            let items = selected.into_iter().map(Change::Live).collect();
            return Ok(self.stream_report(
                ms,
                items,
                (names, spec),
                owner.clone(),
                cal_href,
                false,
                None,
            ));
        }
        let mut bodies = self
            .prefetch_bodies(selected.iter().map(|r| r.id), &names)
            .await?;
        for child in selected {
            let h = Self::child_href(&cal_href, &child);
            let wanted = Wanted {
                names: &names,
                spec: &spec,
            };
            self.report_response(&mut ms, owner, &child, h, wanted, &mut bodies)
                .await?;
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// The bodies a report will write, in one round trip, when it asks for calendar-data.
    async fn prefetch_bodies(
        &self,
        items: impl Iterator<Item = ResourceId>,
        names: &[PropertyName],
    ) -> Result<Bodies, DavError> {
        if !names
            .iter()
            .any(|n| Prop::from_name(n) == Prop::CalendarData)
        {
            return Ok(Bodies::default());
        }
        let ids: Vec<ResourceId> = items.collect();
        Ok(self
            .store
            .object_datas(&ids)
            .await
            .map_err(internal)?
            .into_iter()
            .collect())
    }

    /// Apply a report's calendar-data request (RFC 4791 9.6) to stored bytes.
    fn shape_data(&self, data: Vec<u8>, spec: &DataSpec) -> Result<Vec<u8>, DavError> {
        let mut data = data;
        let reshaped = match (spec.expand, spec.limit_recurrence) {
            (Some(range), _) => {
                ical::expand::expand(&data, range, self.expand_limits(range), &spec.zone)
                    .map_err(index_error)?
            }
            (None, Some(range)) => {
                ical::partial::limit_recurrence_set(&data, range, self.expand_limits(range))
            }
            (None, None) => None,
        };
        if let Some(x) = reshaped {
            data = x.into_bytes();
        }
        if let Some(range) = spec.limit_freebusy
            && let Some(x) = ical::partial::limit_freebusy_set(&data, range)
        {
            data = x.into_bytes();
        }
        if let Some(sel) = &spec.select
            && let Some(x) = ical::partial::select_parts(&data, sel)
        {
            data = x.into_bytes();
        }
        Ok(data)
    }

    /// The collection holding a resource.
    async fn parent_of(&self, res: &Resource) -> Result<Resource, DavError> {
        let Some(parent) = res.parent else {
            return Err(DavError::not_found());
        };
        self.store
            .resource(parent)
            .await
            .map_err(internal)?
            .ok_or_else(DavError::not_found)
    }

    /// Query-time expansion for a window: up to its end, and (when it has a start) only the
    /// occurrences near it are collected, so a long past costs steps, not instances.
    fn expand_limits(&self, range: ical::filter::TimeRange) -> ical::index::IndexLimits {
        let mut l = self.index_limits();
        if range.end < ical::index::POS_INF {
            l.horizon = l.horizon.max(range.end.saturating_add(86_400));
        }
        if range.start > ical::index::NEG_INF {
            l.from = range.start;
        }
        l
    }

    /// What a report asks of `calendar-data` (RFC 4791 9.6): for now, `expand`.
    async fn data_spec(
        &self,
        root: &dav::Element,
        collection: &Resource,
    ) -> Result<DataSpec, DavError> {
        let Some(cd) = root
            .child(NS_DAV, "prop")
            .and_then(|p| p.child(NS_CALDAV, "calendar-data"))
        else {
            return Ok(DataSpec::plain());
        };
        let range_of = |el: &dav::Element| -> Result<ical::filter::TimeRange, DavError> {
            let start = el.attr("start").map(query::parse_utc).transpose()?;
            let end = el.attr("end").map(query::parse_utc).transpose()?;
            match (start, end) {
                (Some(s), Some(e)) => Ok(ical::filter::TimeRange::new(Some(s), Some(e))),
                _ => Err(DavError::bad_request(format!(
                    "CALDAV:{} needs start and end",
                    el.local
                ))),
            }
        };
        let expand = cd.child(NS_CALDAV, "expand").map(range_of).transpose()?;
        let limit_recurrence = cd
            .child(NS_CALDAV, "limit-recurrence-set")
            .map(range_of)
            .transpose()?;
        let limit_freebusy = cd
            .child(NS_CALDAV, "limit-freebusy-set")
            .map(range_of)
            .transpose()?;
        let select = cd
            .child(NS_CALDAV, "comp")
            .map(parse_comp_select)
            .transpose()?;
        let zone = if expand.is_some() {
            let calendar = if collection.kind == ResourceKind::Object {
                self.parent_of(collection).await?
            } else {
                collection.clone()
            };
            let tz = self.calendar_timezone_text(&calendar).await?;
            query::floating_zone(None, tz.as_deref())
        } else {
            ical::zones::Zone::Utc
        };
        Ok(DataSpec {
            expand,
            limit_recurrence,
            limit_freebusy,
            select,
            zone,
        })
    }

    /// free-busy-query (RFC 4791 7.10): busy time from the index's candidates, honouring
    /// TRANSP and STATUS. Only the owner reaches this for now (read-free-busy is in read).
    async fn free_busy(
        &self,
        cal: &Resource,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let tr_el = root
            .child(NS_CALDAV, "time-range")
            .ok_or_else(|| DavError::bad_request("free-busy-query needs a CALDAV:time-range"))?;
        let start = tr_el.attr("start").map(query::parse_utc).transpose()?;
        let end = tr_el.attr("end").map(query::parse_utc).transpose()?;
        let (Some(start), Some(end)) = (start, end) else {
            return Err(DavError::bad_request(
                "the free-busy time-range needs start and end",
            ));
        };
        if end <= start {
            return Err(DavError::bad_request(
                "the free-busy time-range end must follow its start",
            ));
        }
        let range = ical::filter::TimeRange::new(Some(start), Some(end));
        let periods = self.busy_periods(cal, range).await?;
        let text = ical::freebusy::vfreebusy(periods, range, crate::store::now_epoch());
        let mut resp = DavResponse::new(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8");
        resp.body = Bytes::from(text);
        Ok(resp)
    }

    /// Busy periods of one calendar's events in `range` (RFC 4791 7.10), from the index.
    async fn busy_periods(
        &self,
        cal: &Resource,
        range: ical::filter::TimeRange,
    ) -> Result<Vec<(i64, i64, ical::freebusy::BusyType)>, DavError> {
        let tz = self.calendar_timezone_text(cal).await?;
        let zone = query::floating_zone(None, tz.as_deref());
        let filter = ical::filter::CompFilter {
            name: "VCALENDAR".into(),
            is_not_defined: false,
            time_range: None,
            props: vec![],
            comps: vec![ical::filter::CompFilter {
                name: "VEVENT".into(),
                is_not_defined: false,
                time_range: Some(range),
                props: vec![],
                comps: vec![],
            }],
        };
        let ctx = ical::filter::EvalContext {
            floating_zone: zone.clone(),
            limits: self.expand_limits(range),
        };
        let candidates = query::select(self.store, cal, &filter, &ctx, None)
            .await
            .map_err(select_error)?;
        let ids: Vec<ResourceId> = candidates.iter().map(|r| r.id).collect();
        let mut periods = vec![];
        for (i, (_, body)) in self
            .store
            .object_datas(&ids)
            .await
            .map_err(internal)?
            .into_iter()
            .enumerate()
        {
            // A client that has gone drops this future at the next yield: the work stops
            // with it instead of running to the end.
            if i % 32 == 31 {
                tokio::task::yield_now().await;
            }
            periods.extend(ical::freebusy::busy_periods(
                &body, range, ctx.limits, &zone,
            ));
        }
        Ok(periods)
    }

    /// The whole calendar as one iCalendar document (GET with `Accept: text/calendar`).
    async fn export(
        &self,
        cal: &Resource,
        req: &DavRequest,
        with_body: bool,
    ) -> Result<DavResponse, DavError> {
        let etag = crate::feed::etag(cal);
        if let Some(inm) = header_str(&req.headers, "if-none-match")
            && EtagMatch::parse(inm).matches(Some(&etag))
        {
            return Ok(DavResponse::new(StatusCode::NOT_MODIFIED).header(header::ETAG, &etag));
        }
        let reader = self.non_owner().map(|p| (p, ical::privacy::Detail::Full));
        let body = crate::feed::render(self.store, cal, reader)
            .await
            .map_err(internal)?;
        let mut r = DavResponse::new(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8")
            .header(header::ETAG, &etag)
            .header(header::CONTENT_LENGTH, &body.len().to_string())
            .header(
                header::CONTENT_DISPOSITION,
                &format!(
                    "attachment; filename=\"{}.ics\"",
                    cal.name.replace(['"', '\\'], "_")
                ),
            );
        if with_body {
            r.body = Bytes::from(body);
        }
        Ok(r)
    }

    /// POST: the schedule outbox (RFC 6638 5), and import into a calendar.
    async fn post(&self, req: &DavRequest) -> Result<DavResponse, DavError> {
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
    async fn calendar_timezone_text(
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

const SUPPORTED_PRIVILEGES: &str = "<D:supported-privilege-set><D:supported-privilege><D:privilege><D:all/></D:privilege><D:abstract/><D:description xml:lang=\"en\">Any operation</D:description><D:supported-privilege><D:privilege><D:read/></D:privilege><D:description xml:lang=\"en\">Read any object</D:description><D:supported-privilege><D:privilege><C:read-free-busy/></D:privilege><D:description xml:lang=\"en\">Read free/busy</D:description></D:supported-privilege></D:supported-privilege><D:supported-privilege><D:privilege><D:write/></D:privilege><D:description xml:lang=\"en\">Write any object</D:description><D:supported-privilege><D:privilege><D:write-properties/></D:privilege><D:description xml:lang=\"en\">Write properties</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:write-content/></D:privilege><D:description xml:lang=\"en\">Write content</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:bind/></D:privilege><D:description xml:lang=\"en\">Add members</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:unbind/></D:privilege><D:description xml:lang=\"en\">Remove members</D:description></D:supported-privilege></D:supported-privilege><D:supported-privilege><D:privilege><D:read-acl/></D:privilege><D:description xml:lang=\"en\">Read ACL</D:description></D:supported-privilege><D:supported-privilege><D:privilege><D:read-current-user-privilege-set/></D:privilege><D:description xml:lang=\"en\">Read own privileges</D:description></D:supported-privilege><D:supported-privilege><D:privilege><C:schedule-deliver/></D:privilege><D:description xml:lang=\"en\">Receive scheduling messages</D:description></D:supported-privilege><D:supported-privilege><D:privilege><C:schedule-send/></D:privilege><D:description xml:lang=\"en\">Send scheduling messages</D:description></D:supported-privilege></D:supported-privilege></D:supported-privilege-set>";

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

/// What a REPORT asks of calendar-data.
#[derive(Clone)]
pub struct DataSpec {
    pub expand: Option<ical::filter::TimeRange>,
    pub limit_recurrence: Option<ical::filter::TimeRange>,
    pub limit_freebusy: Option<ical::filter::TimeRange>,
    pub select: Option<ical::partial::CompSelect>,
    pub zone: ical::zones::Zone,
}

impl DataSpec {
    fn plain() -> Self {
        DataSpec {
            expand: None,
            limit_recurrence: None,
            limit_freebusy: None,
            select: None,
            zone: ical::zones::Zone::Utc,
        }
    }
}

/// `CALDAV:comp` (RFC 4791 9.6.1) as a selection.
fn parse_comp_select(el: &dav::Element) -> Result<ical::partial::CompSelect, DavError> {
    fn inner(el: &dav::Element, depth: usize) -> Result<ical::partial::CompSelect, DavError> {
        if depth > 8 {
            return Err(DavError::bad_request("CALDAV:comp nesting is too deep"));
        }
        let name = el
            .attr("name")
            .ok_or_else(|| DavError::bad_request("CALDAV:comp needs a name"))?
            .to_ascii_uppercase();
        let mut comps = vec![];
        for c in el.children_named(NS_CALDAV, "comp") {
            comps.push(inner(c, depth + 1)?);
        }
        Ok(ical::partial::CompSelect {
            name,
            all_props: el.child(NS_CALDAV, "allprop").is_some(),
            props: el
                .children_named(NS_CALDAV, "prop")
                .filter_map(|p| p.attr("name").map(str::to_string))
                .collect(),
            all_comps: el.child(NS_CALDAV, "allcomp").is_some(),
            comps,
        })
    }
    inner(el, 0)
}

/// The latest bound of any time range in a filter (for query-time expansion).
/// The earliest start of the component time ranges in a filter (`NEG_INF` if it has none,
/// or one is open at the start): occurrences ending well before it cannot decide a match.
fn min_range_start(f: &ical::filter::CompFilter) -> i64 {
    let mut starts = vec![];
    let mut stack = vec![f];
    while let Some(c) = stack.pop() {
        if let Some(t) = c.time_range {
            starts.push(t.start);
        }
        stack.extend(c.comps.iter());
    }
    starts.into_iter().min().unwrap_or(ical::index::NEG_INF)
}

fn max_range_end(f: &ical::filter::CompFilter) -> i64 {
    let mine = f
        .time_range
        .map(|t| {
            if t.end >= ical::index::POS_INF {
                t.start
            } else {
                t.end
            }
        })
        .unwrap_or(0);
    let props = f
        .props
        .iter()
        .filter_map(|p| p.time_range)
        .map(|t| {
            if t.end >= ical::index::POS_INF {
                t.start
            } else {
                t.end
            }
        })
        .max()
        .unwrap_or(0);
    f.comps
        .iter()
        .map(max_range_end)
        .fold(mine.max(props), i64::max)
}

/// Whether resolved segments (`calendars`, user, calendar, ...) are a recipient's calendar of
/// delegated entries (`from~OWNER`) or inside one: the owner's content, read-only here.
fn in_copies(segs: &[String]) -> bool {
    segs.get(2)
        .is_some_and(|n| crate::share::copies_owner(n).is_some())
}

/// [`in_copies`] for an href.
fn href_in_copies(href: &str) -> bool {
    dav::decode_segments(href)
        .is_ok_and(|s| s.first().is_some_and(|d| d == "dav") && in_copies(&s[1..]))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The response to a body that could not be indexed (RFC 4791 5.3.2.1 max-instances).
fn index_error(e: IcalError) -> DavError {
    match e {
        IcalError::TooManyInstances(_) | IcalError::RuleTooDense(_) => DavError::with(
            403,
            Condition {
                ns: NS_CALDAV,
                name: "max-instances",
                body: String::new(),
            },
            e.to_string(),
        ),
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
