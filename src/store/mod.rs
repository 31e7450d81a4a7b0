//! Persistence: users, the WebDAV resource tree (homes, collections, calendars, objects), dead
//! and writable properties, and the per-collection change log behind sync tokens and ctags.
//!
//! Capabilities are separate traits (`UserStore`, `ResourceReader`, `ResourceWriter`,
//! `SyncReader`); two adapters implement all of them from one body of portable SQL
//! (`store::sql`): SQLite (embedded default, WAL) and PostgreSQL (several stateless instances on
//! one database). All state that must agree across instances (sequence numbers, ETags,
//! tombstones) lives in the database; nothing here caches.
//!
//! Must never: know HTTP or XML, or log calendar data or password hashes.

mod facade;
pub mod listing;
mod postgres;
mod sql;
mod sqlite;
mod sqlite_direct;

use std::fmt;
use std::sync::Arc;

use crate::ical::index::{Instance, ObjectIndex};

pub use facade::Store;
pub use listing::SharedListing;
use listing::{Listing, ListingCache};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
}

/// What a resource is. Homes are the per-user roots under `/dav/calendars/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Home,
    Calendar,
    Collection,
    Object,
    /// RFC 6638 schedule inbox: holds the scheduling messages delivered to the owner.
    Inbox,
    /// RFC 6638 schedule outbox: the POST target for free-busy look-ups.
    Outbox,
    /// CalendarServer notification collection (sharing invitations, access requests).
    Notification,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Home => "home",
            ResourceKind::Calendar => "calendar",
            ResourceKind::Collection => "collection",
            ResourceKind::Object => "object",
            ResourceKind::Inbox => "inbox",
            ResourceKind::Outbox => "outbox",
            ResourceKind::Notification => "notification",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "home" => ResourceKind::Home,
            "calendar" => ResourceKind::Calendar,
            "collection" => ResourceKind::Collection,
            "object" => ResourceKind::Object,
            "inbox" => ResourceKind::Inbox,
            "outbox" => ResourceKind::Outbox,
            "notification" => ResourceKind::Notification,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown resource kind {other}"
                )));
            }
        })
    }
    pub fn is_collection(self) -> bool {
        self != ResourceKind::Object
    }
}

/// A published ICS feed of one calendar. The token is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: i64,
    pub owner: UserId,
    pub calendar: ResourceId,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The most any reader of the feed sees (the privacy rule may show less).
    pub detail: crate::ical::privacy::Detail,
}

/// A queued outgoing mail, claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: i64,
    pub recipient: String,
    /// The whole RFC 5322 message, as it goes to the relay.
    pub message: Vec<u8>,
    /// Tries before this one.
    pub attempts: i64,
    pub origin: Option<MailOrigin>,
}

/// What an organizer's outgoing invitation or cancellation is about, so that what becomes of
/// it can be recorded on their event (RFC 6638 SCHEDULE-STATUS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailOrigin {
    pub owner: UserId,
    pub uid: String,
    /// The attendee's calendar address as the event writes it (`mailto:...`).
    pub attendee: String,
}

/// An app password's record: never the password, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub user: UserId,
    pub name: String,
    /// The random public part of the password that finds this row.
    pub lookup: String,
    /// HMAC-SHA256 of the whole password under the server key, hex.
    pub hash: String,
    /// `caldav` or `all`.
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewAppPassword {
    pub user: UserId,
    pub name: String,
    pub lookup: String,
    pub hash: String,
    pub scope: String,
    pub expires_at: Option<i64>,
}

/// A web sign-in. The cookie's token is never stored, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub user: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    /// The OpenID Connect ID token the session began with (the hint for logout).
    pub id_token: Option<String>,
    /// The provider's refresh token, sealed under the server key.
    pub refresh_sealed: Option<String>,
    /// When the provider must next confirm the person (by a refresh).
    pub refresh_due: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user: UserId,
    pub expires_at: i64,
    pub id_token: Option<String>,
    pub refresh_sealed: Option<String>,
    pub refresh_due: Option<i64>,
}

/// Resource metadata (never the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: ResourceId,
    pub uuid: String,
    pub owner: UserId,
    pub parent: Option<ResourceId>,
    pub name: String,
    pub kind: ResourceKind,
    pub content_type: Option<String>,
    /// Quoted strong ETag of the stored bytes.
    pub etag: Option<String>,
    pub size: i64,
    pub uid: Option<String>,
    pub component: Option<String>,
    /// Comma-separated component names a calendar accepts.
    pub supported_components: Option<String>,
    /// Last change number inside this collection: the sync token and ctag source.
    pub sync_seq: i64,
    /// Change number of this resource inside its parent.
    pub mod_seq: i64,
    /// Tokens below this number can no longer be answered (tombstones pruned).
    pub tomb_floor: i64,
    pub created_at: i64,
    pub modified_at: i64,
    /// Time-range index coverage (objects in calendars): instances are complete up to here.
    pub complete_until: Option<i64>,
    /// Earliest instance start and latest instance end (objects in calendars; open-ended
    /// rules end at the far future).
    pub first_start: Option<i64>,
    pub last_end: Option<i64>,
    /// RFC 6638 3.2.10 Schedule-Tag (quoted) of a scheduling object resource.
    pub schedule_tag: Option<String>,
}

/// A stored property: a standalone XML element (namespace declarations included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProp {
    pub ns: String,
    pub local: String,
    pub xml: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct NewObject {
    pub data: Vec<u8>,
    pub etag: String,
    pub content_type: String,
    pub uid: Option<String>,
    pub component: Option<String>,
    /// The time-range index of a calendar object (none for plain resources).
    pub index: Option<ObjectIndex>,
    /// RFC 6638 Schedule-Tag (quoted) to store with a scheduling object resource.
    pub schedule_tag: Option<String>,
}

/// Spans longer than this are kept in the "long" lookup so window scans stay narrow.
pub const LONG_SPAN: i64 = 7 * 86_400;

/// One index row: an instance of an object's main component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceRow {
    pub resource: ResourceId,
    pub instance: Instance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCollection {
    pub name: String,
    pub kind: ResourceKind,
    pub supported_components: Option<String>,
    pub props: Vec<StoredProp>,
}

/// Preconditions checked inside the write transaction, so two writers cannot both pass them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    None,
    /// `If-None-Match: *`
    MustNotExist,
    /// `If-Match: *`
    MustExist,
    /// `If-Match` with ETags (quoted).
    EtagIn(Vec<String>),
    /// `If-None-Match` with ETags.
    EtagNotIn(Vec<String>),
}

/// One entry of a sync-collection answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Shared: an initial sync of a large collection lists its cached members without
    /// copying them.
    Live(Arc<Resource>),
    Deleted {
        name: String,
        seq: i64,
    },
}

impl Change {
    pub fn seq(&self) -> i64 {
        match self {
            Change::Live(r) => r.mod_seq,
            Change::Deleted { seq, .. } => *seq,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("UID already used by {0}")]
    UidConflict(String),
    #[error("destination is inside the source")]
    Cycle,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// From the SQLite hot path (`sqlite_direct`), which does not go through sqlx.
    #[error("database error: {0}")]
    Direct(String),
}

impl StoreError {
    /// A failure caused by a concurrent request, not by the store: a unique constraint
    /// another writer won, a deadlock or serialization failure (PostgreSQL), a busy database
    /// or a parent deleted under the write (SQLite). The request can be answered 409 and
    /// retried; nothing was written.
    pub fn is_race(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                let code = db.code();
                matches!(
                    code.as_deref(),
                    // PostgreSQL: unique and foreign-key violations, serialization, deadlock.
                    Some("23505" | "23503" | "40001" | "40P01")
                    // SQLite (extended codes): unique, primary key, foreign key; busy, locked.
                    | Some("2067" | "1555" | "787" | "5" | "517" | "6")
                )
            }
            StoreError::Direct(m) => {
                m.contains("UNIQUE constraint")
                    || m.contains("FOREIGN KEY constraint")
                    || m.contains("database is locked")
                    || m.contains("database is busy")
            }
            _ => false,
        }
    }

    /// The database's disk (or its configured size) is full: nothing was written, and the
    /// client is told so (507), not that the server failed.
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => matches!(
                db.code().as_deref(),
                // PostgreSQL disk_full; SQLite SQLITE_FULL.
                Some("53100" | "13")
            ),
            StoreError::Database(sqlx::Error::Io(e)) => e.kind() == std::io::ErrorKind::StorageFull,
            StoreError::Direct(m) => m.contains("database or disk is full"),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Accounts.
#[allow(async_fn_in_trait)] // callers use concrete types; futures stay Send there
pub trait UserStore {
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;
    /// The user whose email is `email`, compared case-insensitively (calendar-user addresses).
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn set_password(&self, id: UserId, hash: &str) -> Result<()>;
    /// Disable (or enable again) an account; a disabled one cannot log in by any means.
    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<()>;
    /// Deletes the user and everything they own.
    async fn delete_user(&self, id: UserId) -> Result<()>;
}

/// Reading the resource tree.
#[allow(async_fn_in_trait)]
pub trait ResourceReader {
    async fn home(&self, owner: UserId) -> Result<Option<Resource>>;
    async fn resource(&self, id: ResourceId) -> Result<Option<Resource>>;
    async fn child(&self, parent: ResourceId, name: &str) -> Result<Option<Resource>>;
    async fn children(&self, parent: ResourceId) -> Result<Vec<Resource>>;
    /// Up to `limit` members of `parent` whose names sort after `after`, in name order: a
    /// page of a listing too big to hold at once.
    async fn children_after(
        &self,
        parent: ResourceId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Resource>>;
    /// Members of `parent` with these ids (in any order); unknown ids are skipped.
    async fn children_by_id(&self, parent: ResourceId, ids: &[ResourceId])
    -> Result<Vec<Resource>>;
    /// Members of `parent` with these names (in any order); unknown names are skipped.
    async fn children_by_name(&self, parent: ResourceId, names: &[String])
    -> Result<Vec<Resource>>;
    /// The home of `owner`, then its member named `names[0]`, then that one's member named
    /// `names[1]` (at most two names), stopping at the first that does not exist.
    async fn lookup_path(&self, owner: UserId, names: &[String]) -> Result<Vec<Resource>>;
    /// The objects with this UID in `owner`'s calendars (a user's copy of a scheduled event).
    async fn objects_by_uid(&self, owner: UserId, uid: &str) -> Result<Vec<Resource>>;
    async fn object_data(&self, id: ResourceId) -> Result<Option<Vec<u8>>>;
    /// The bodies of these objects, in one round trip per 500; ids without a body are skipped.
    async fn object_datas(&self, ids: &[ResourceId]) -> Result<Vec<(ResourceId, Vec<u8>)>>;
    async fn props(&self, id: ResourceId, viewer: UserId) -> Result<Vec<StoredProp>>;
    /// The properties of every member of `parent`, in one query (PROPFIND Depth 1).
    async fn child_props(
        &self,
        parent: ResourceId,
        viewer: UserId,
    ) -> Result<Vec<(ResourceId, StoredProp)>>;
}

/// Changing the resource tree. Every change bumps the sequence of its parent (and ancestors),
/// in the same transaction, so ctags and sync tokens never miss a write.
#[allow(async_fn_in_trait)]
pub trait ResourceWriter {
    /// Creates the user's home with a default calendar and task list if it does not exist.
    async fn ensure_home(&self, owner: UserId, defaults: &[NewCollection]) -> Result<Resource>;
    async fn create_collection(&self, parent: ResourceId, c: NewCollection) -> Result<Resource>;
    /// Returns the stored resource and whether it was created (vs replaced).
    async fn put_object(
        &self,
        parent: ResourceId,
        name: &str,
        obj: NewObject,
        cond: WriteCondition,
    ) -> Result<(Resource, bool)>;
    /// Delete `target`, which must still be where it was read (same parent and name, checked
    /// inside the transaction): a resource moved or replaced meanwhile is `NotFound`.
    async fn delete(&self, target: &Resource, cond: WriteCondition) -> Result<()>;
    /// Copy (`is_move` false) or move a resource, with its subtree, to `dest_parent/dest_name`.
    /// `overwrite` allows replacing an existing destination. Returns whether the destination
    /// was created. `src` must still be where it was read (checked inside the transaction),
    /// so of two racing moves of one source only one succeeds.
    async fn transfer(
        &self,
        src: &Resource,
        dest_parent: ResourceId,
        dest_name: &str,
        overwrite: bool,
        is_move: bool,
    ) -> Result<bool>;
    /// Apply property sets and removals atomically (RFC 4918 9.2).
    async fn patch_props(
        &self,
        id: ResourceId,
        viewer: UserId,
        set: Vec<StoredProp>,
        remove: Vec<(String, String)>,
    ) -> Result<()>;
}

/// The change log (RFC 6578).
#[allow(async_fn_in_trait)]
pub trait SyncReader {
    /// Members changed after `since` (all live members when `None`), ordered by change number,
    /// at most `limit` (+1 so the caller can tell that more exist).
    async fn changes_since(
        &self,
        parent: ResourceId,
        since: Option<i64>,
        limit: Option<usize>,
    ) -> Result<Vec<Change>>;
}

/// The time-range index (RFC 4791 9.9).
#[allow(async_fn_in_trait)]
pub trait IndexReader {
    /// Index rows of members of `parent` that may overlap `[from, to]`: rows starting in
    /// `[from - LONG_SPAN, to]`, plus long rows overlapping the window. Callers add their own
    /// slack and apply the exact match rule.
    async fn instances_between(
        &self,
        parent: ResourceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<InstanceRow>>;
    /// Every index row of members of `parent`, or of the members with these ids.
    async fn instances_of(
        &self,
        parent: ResourceId,
        ids: Option<&[ResourceId]>,
    ) -> Result<Vec<InstanceRow>>;
    /// Members whose index is incomplete before `to` and whose set may reach `[from, to]`:
    /// they must be expanded at query time.
    async fn incomplete_objects(
        &self,
        parent: ResourceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Resource>>;
}

/// ICS subscription feeds (secret URLs, stored as token hashes).
/// The durable queue of outgoing mail (iMIP now; reminders and notifications later).
#[allow(async_fn_in_trait)]
pub trait MailOutboxStore {
    /// Queue a message, due at once.
    async fn enqueue_mail(
        &self,
        recipient: &str,
        message: &[u8],
        origin: Option<&MailOrigin>,
    ) -> Result<i64>;
    /// Claim up to `limit` due, unsent messages for `lease_seconds` (another instance skips
    /// them until the lease ends), oldest first.
    async fn claim_mail(&self, now: i64, lease_seconds: i64, limit: i64)
    -> Result<Vec<OutboxMail>>;
    /// The relay took it: never sent again.
    async fn mail_sent(&self, id: i64, now: i64) -> Result<()>;
    /// It failed: try again at `next_attempt_at` (or, past the last try, `i64::MAX`: kept,
    /// never retried).
    async fn mail_failed(&self, id: i64, next_attempt_at: i64, error: &str) -> Result<()>;
    /// Messages not yet sent.
    async fn unsent_mail(&self) -> Result<i64>;
}

#[allow(async_fn_in_trait)]
pub trait FeedStore {
    async fn create_feed(
        &self,
        owner: UserId,
        calendar: ResourceId,
        label: &str,
        token_hash: &str,
        detail: crate::ical::privacy::Detail,
    ) -> Result<Feed>;
    async fn feeds_of(&self, owner: UserId) -> Result<Vec<Feed>>;
    /// The feed with this token hash, stamping its last use.
    async fn use_feed(&self, token_hash: &str) -> Result<Option<Feed>>;
    /// Revoke one of `owner`'s feeds; false when they have no such feed.
    async fn revoke_feed(&self, owner: UserId, id: i64) -> Result<bool>;
}

/// App passwords for CalDAV clients.
#[allow(async_fn_in_trait)]
pub trait AppPasswordStore {
    async fn create_app_password(&self, p: NewAppPassword) -> Result<AppPassword>;
    async fn app_password_by_lookup(&self, lookup: &str) -> Result<Option<AppPassword>>;
    async fn app_passwords_of(&self, user: UserId) -> Result<Vec<AppPassword>>;
    /// Revoke one of `user`'s app passwords; false when they have no such one.
    async fn revoke_app_password(&self, user: UserId, id: i64) -> Result<bool>;
    async fn touch_app_password(&self, id: i64, now: i64) -> Result<()>;
}

/// Web sessions, OpenID Connect identities and group memberships.
#[allow(async_fn_in_trait)]
pub trait SessionStore {
    async fn create_session(&self, s: NewSession) -> Result<Session>;
    /// The live (unexpired) session with this token hash, and its user.
    async fn session_by_hash(&self, token_hash: &str, now: i64) -> Result<Option<(Session, User)>>;
    /// The live (unexpired) session with this id, and its user.
    async fn session_by_id(&self, id: i64, now: i64) -> Result<Option<(Session, User)>>;
    /// After a refresh: new tokens and the next due time.
    async fn renew_session(
        &self,
        id: i64,
        id_token: Option<&str>,
        refresh_sealed: Option<&str>,
        refresh_due: Option<i64>,
    ) -> Result<()>;
    /// End one session; false when there was none.
    async fn delete_session(&self, id: i64) -> Result<bool>;
    /// End every session of a user (disabled, removed, or signed out everywhere).
    async fn delete_sessions_of(&self, user: UserId) -> Result<u64>;
    /// Drop expired sessions; returns how many.
    async fn purge_sessions(&self, now: i64) -> Result<u64>;
    /// The user an OpenID Connect identity is linked to.
    async fn user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<User>>;
    /// Link an identity to a user; `AlreadyExists` when the identity or the user (for this
    /// issuer) is linked already.
    async fn link_oidc(&self, issuer: &str, subject: &str, user: UserId) -> Result<()>;
    /// Whether a user has an identity at this issuer (`None`: at any issuer).
    async fn has_oidc(&self, issuer: Option<&str>, user: UserId) -> Result<bool>;
    /// Replace the groups `source` says the user is in.
    async fn set_user_groups(
        &self,
        user: UserId,
        source: GroupSource,
        groups: &[String],
    ) -> Result<()>;
    /// Every group the user is in, from any source, sorted and without repeats.
    async fn groups_of(&self, user: UserId) -> Result<Vec<String>>;
    /// The groups `source` named, each with its members, by name.
    async fn group_members(&self, source: GroupSource) -> Result<Vec<(String, Vec<User>)>>;
}

/// A user's vault data key as stored: wrapped under the key-encryption key `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kek_id: String,
    pub key_id: String,
    pub wrapped: Vec<u8>,
}

/// The credential vault's rows (ADR 0009): opaque sealed bytes; the store never sees a key.
#[allow(async_fn_in_trait)]
pub trait VaultStore {
    /// The check value sealed under the key-encryption key, and that key's id.
    async fn vault_check(&self) -> Result<Option<(String, Vec<u8>)>>;
    async fn set_vault_check(&self, kek_id: &str, blob: &[u8]) -> Result<()>;
    async fn data_key(&self, user: UserId) -> Result<Option<StoredKey>>;
    /// Store `key` unless the user has one already; the one that is stored afterwards (so two
    /// instances making a first key at once agree on one).
    async fn add_data_key(&self, user: UserId, key: &StoredKey) -> Result<StoredKey>;
    /// Every data key wrapped under another KEK than `kek_id` (what rotation re-wraps).
    async fn data_keys_not_under(&self, kek_id: &str) -> Result<Vec<(UserId, StoredKey)>>;
    /// Replace a data key's wrapping, if it is still wrapped under `old_kek`.
    async fn rewrap_data_key(&self, user: UserId, old_kek: &str, key: &StoredKey) -> Result<bool>;
    async fn put_secret(
        &self,
        user: UserId,
        system: &str,
        field: &str,
        blob: &[u8],
        now: i64,
    ) -> Result<()>;
    async fn secret(&self, user: UserId, system: &str, field: &str) -> Result<Option<Vec<u8>>>;
    /// Erase a user's secrets for one system (or all of them); how many went.
    async fn remove_secrets(&self, user: UserId, system: Option<&str>) -> Result<u64>;
}

/// Where a person's account in a business system stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    /// A real login with the vaulted credential succeeded.
    Bound,
    /// A login failed: the credential is not used again until the person updates it (the
    /// system's lockout is never tripped by the bridge).
    NeedsUpdate,
}

impl BindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Bound => "bound",
            BindingState::NeedsUpdate => "needs-update",
        }
    }
    pub fn parse(s: &str) -> Option<BindingState> {
        match s {
            "bound" => Some(BindingState::Bound),
            "needs-update" => Some(BindingState::NeedsUpdate),
            _ => None,
        }
    }
}

/// A one-time code with which the portal hands one of its sessions to a system's host in the
/// login proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// A keyed hash of the code (never the code).
    pub code_hash: String,
    /// The portal session it stands for.
    pub session: i64,
    pub system: String,
    /// Where on the system's host the person goes afterwards (a local path).
    pub next: String,
    pub expires_at: i64,
}

/// Why a vaulted secret was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPurpose {
    /// Checking a new or updated credential with one real login.
    Verify,
    /// Signing the person in through the bridge.
    Login,
    /// Reading the unread count of their inbox (the mail reminder).
    Mail,
}

/// What came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Accepted,
    Refused,
    Unreachable,
}

impl AuditPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditPurpose::Verify => "verify",
            AuditPurpose::Login => "login",
            AuditPurpose::Mail => "mail",
        }
    }
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Accepted => "accepted",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub system: String,
    pub state: BindingState,
    pub verified_at: i64,
}

/// One release of a secret, as recorded (purpose and outcome as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub user: UserId,
    pub system: String,
    pub purpose: String,
    pub outcome: String,
    pub at: i64,
}

/// Bindings of people to business systems, and the audit of every secret released.
#[allow(async_fn_in_trait)]
pub trait BindingStore {
    async fn set_binding(
        &self,
        user: UserId,
        system: &str,
        state: BindingState,
        at: i64,
    ) -> Result<()>;
    async fn bindings_of(&self, user: UserId) -> Result<Vec<Binding>>;
    /// False when there was none.
    async fn remove_binding(&self, user: UserId, system: &str) -> Result<bool>;
    async fn record_release(
        &self,
        user: UserId,
        system: &str,
        purpose: AuditPurpose,
        outcome: AuditOutcome,
        at: i64,
    ) -> Result<()>;
    /// The newest `limit` entries: one person's, or everyone's (`None`).
    async fn releases(&self, user: Option<UserId>, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Keep a one-time hand-off code (expired ones go at the same time).
    async fn add_handoff(&self, h: &Handoff, now: i64) -> Result<()>;
    /// Redeem a hand-off code: it is gone afterwards whatever the answer; `None` when there
    /// was none or it had expired.
    async fn take_handoff(&self, code_hash: &str, now: i64) -> Result<Option<Handoff>>;
    /// The systems registered with the CLI: name and entry (JSON), by name.
    async fn registered_systems(&self) -> Result<Vec<(String, String)>>;
    /// Register (or replace) a system's entry.
    async fn register_system(&self, name: &str, entry: &str, at: i64) -> Result<()>;
    /// False when there was none.
    async fn unregister_system(&self, name: &str) -> Result<bool>;
    /// Every system that has a binding or a vaulted secret.
    async fn systems_with_bindings(&self) -> Result<Vec<String>>;
    /// A system left the registry: every binding to it and every secret for it go (the
    /// audit stays); how many rows went.
    async fn forget_system(&self, system: &str) -> Result<u64>;
}

/// Where a membership in `user_groups` came from; each source is replaced whole by its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupSource {
    /// The OpenID provider's `groups` claim, at each sign-in.
    Oidc,
    /// The directory's groups (LDAP, or Convene's own org chart).
    Directory,
    /// The person's department and every department above it.
    Department,
}

impl GroupSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupSource::Oidc => "oidc",
            GroupSource::Directory => "directory",
            GroupSource::Department => "department",
        }
    }
}

/// A department of Convene's own org chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgDepartment {
    pub name: String,
    pub parent: Option<String>,
    pub description: Option<String>,
    /// The head's account name.
    pub head: Option<String>,
}

/// A group of Convene's own org chart, with its members' account names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgGroup {
    pub name: String,
    pub description: Option<String>,
    pub members: Vec<String>,
}

/// What Convene's own org chart says of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgPerson {
    pub title: Option<String>,
    pub department: Option<String>,
    /// The manager's account name.
    pub manager: Option<String>,
}

/// Convene's own org chart, the directory when no LDAP server is configured. Names are
/// checked by the caller (`org`); the store keeps the references intact (a removed account or
/// department drops out of every row that named it).
#[allow(async_fn_in_trait)]
pub trait OrgStore {
    /// Every department and group, by name, and each account's entry (accounts without one
    /// are absent).
    async fn org_chart(
        &self,
    ) -> Result<(Vec<OrgDepartment>, Vec<OrgGroup>, Vec<(String, OrgPerson)>)>;
    /// Create or replace a department.
    async fn put_department(&self, d: &OrgDepartment) -> Result<()>;
    /// False when there was no such department.
    async fn remove_department(&self, name: &str) -> Result<bool>;
    /// Create a group or change its description.
    async fn put_group(&self, name: &str, description: Option<&str>) -> Result<()>;
    async fn remove_group(&self, name: &str) -> Result<bool>;
    /// Add (`member`) or remove an account; false when nothing changed.
    async fn set_group_member(&self, group: &str, user: UserId, member: bool) -> Result<bool>;
    /// Replace an account's entry.
    async fn put_person(&self, user: UserId, p: &OrgPerson) -> Result<()>;
}

/// What a sharing rule sends a calendar's events to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKind {
    /// One account, by name.
    User,
    /// A directory or provider group, by name.
    Group,
    /// A department (with those below it), by name.
    Department,
    /// The owner's manager in the directory (no target).
    Manager,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::User => "user",
            RuleKind::Group => "group",
            RuleKind::Department => "department",
            RuleKind::Manager => "manager",
        }
    }
    pub fn parse(s: &str) -> Option<RuleKind> {
        Some(match s {
            "user" => RuleKind::User,
            "group" => RuleKind::Group,
            "department" => RuleKind::Department,
            "manager" => RuleKind::Manager,
            _ => return None,
        })
    }
}

/// "Everything in this calendar also goes to ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRule {
    pub id: i64,
    pub owner: UserId,
    pub calendar: ResourceId,
    pub kind: RuleKind,
    pub target: String,
    pub created_at: i64,
}

/// The sharing worker's place in one calendar's change log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareCursor {
    pub seq: i64,
    /// Fingerprint of the recipients the rules and referenced groups stood for.
    pub audience: String,
    /// The groups and departments the calendar's events name (`group:NAME`, `department:NAME`).
    pub refs: String,
}

/// A calendar with changes the sharing worker has not carried to the copies yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCalendar {
    pub calendar: ResourceId,
    pub owner: UserId,
    pub sync_seq: i64,
    pub cursor: i64,
}

/// One recipient's copy of one owner object, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareCopy {
    /// The owner's calendar and member name.
    pub calendar: ResourceId,
    pub name: String,
    pub recipient: UserId,
    /// The recipient's calendar of the owner's entries (`from~OWNER`).
    pub mount: String,
    /// The copy's name there.
    pub copy_name: String,
}

/// A user's sharing settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareSettings {
    /// `#RRGGBB` others see this user's entries in; `None` for the derived default.
    pub colour: Option<String>,
    /// Prefix copies of others' entries with `[Owner] `.
    pub prefix_summary: bool,
}

/// Schedule sharing: rules, the worker's cursors and lease, the copy register, settings.
#[allow(async_fn_in_trait)]
pub trait ShareStore {
    /// Add a rule; an identical rule already there is returned instead.
    async fn add_share_rule(
        &self,
        owner: UserId,
        calendar: ResourceId,
        kind: RuleKind,
        target: &str,
    ) -> Result<ShareRule>;
    async fn share_rules_of(&self, owner: UserId) -> Result<Vec<ShareRule>>;
    async fn share_rules_for(&self, calendar: ResourceId) -> Result<Vec<ShareRule>>;
    async fn remove_share_rule(&self, owner: UserId, id: i64) -> Result<bool>;
    /// Calendars whose change number is past the worker's cursor and whose lease is free,
    /// plus every calendar with rules or references (for the audience check).
    async fn share_pending(&self, now: i64) -> Result<Vec<PendingCalendar>>;
    /// Calendars whose copies depend on rules or on group membership.
    async fn share_watched(&self) -> Result<Vec<(ResourceId, UserId, ShareCursor)>>;
    /// Take the calendar's lease until `until`; `None` if another worker holds it.
    async fn claim_share_cursor(
        &self,
        calendar: ResourceId,
        now: i64,
        until: i64,
    ) -> Result<Option<ShareCursor>>;
    /// Extend a lease this worker holds (taken or last extended until `held`) to `until`;
    /// false if the lease was lost (it expired and another worker took the calendar).
    async fn renew_share_lease(&self, calendar: ResourceId, held: i64, until: i64) -> Result<bool>;
    /// Record progress and give back the lease held until `held`; false, and nothing
    /// recorded, if the lease was lost meanwhile.
    async fn release_share_cursor(
        &self,
        calendar: ResourceId,
        cursor: &ShareCursor,
        held: i64,
    ) -> Result<bool>;
    /// The recipients holding a copy of each named member (all members when `names` is
    /// `None`).
    async fn share_copies(
        &self,
        calendar: ResourceId,
        names: Option<&[String]>,
    ) -> Result<Vec<(String, UserId)>>;
    async fn record_share_copy(&self, copy: &ShareCopy) -> Result<()>;
    /// Copies of calendars that no longer exist (deleted, or their owner was), at most 500.
    async fn orphaned_share_copies(&self) -> Result<Vec<ShareCopy>>;
    async fn forget_share_copy(
        &self,
        calendar: ResourceId,
        name: &str,
        recipient: UserId,
    ) -> Result<()>;
    async fn share_settings(&self, user: UserId) -> Result<ShareSettings>;
    /// Save a user's sharing style; when it changed, every copy of their entries is made
    /// again on the worker's next pass (their calendars' cursors start over).
    async fn set_share_settings(&self, user: UserId, s: &ShareSettings) -> Result<()>;
    /// Members of a group of any of `sources` (`ldap`, `oidc`, `department`).
    async fn members_of_group(&self, sources: &[GroupSource], name: &str) -> Result<Vec<User>>;
}

/// What a calendar share or an access grant lets the sharee do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShareAccess {
    /// Free-busy only: the free-busy-query REPORT on the calendar.
    FreeBusy,
    Read,
    ReadWrite,
}

impl ShareAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareAccess::FreeBusy => "free-busy",
            ShareAccess::Read => "read",
            ShareAccess::ReadWrite => "read-write",
        }
    }
    pub fn parse(s: &str) -> Option<ShareAccess> {
        Some(match s {
            "free-busy" => ShareAccess::FreeBusy,
            "read" => ShareAccess::Read,
            "read-write" => ShareAccess::ReadWrite,
            _ => return None,
        })
    }
}

/// A sharee's answer to a sharing invite (CalendarServer sharing 6.6-6.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    NoResponse,
    Accepted,
    Declined,
}

impl InviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InviteStatus::NoResponse => "noresponse",
            InviteStatus::Accepted => "accepted",
            InviteStatus::Declined => "declined",
        }
    }
    pub fn parse(s: &str) -> Option<InviteStatus> {
        Some(match s {
            "noresponse" => InviteStatus::NoResponse,
            "accepted" => InviteStatus::Accepted,
            "declined" => InviteStatus::Declined,
            _ => return None,
        })
    }
}

/// A calendar shared with one sharee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarShare {
    pub id: i64,
    pub calendar: ResourceId,
    pub owner: UserId,
    pub sharee: UserId,
    pub access: ShareAccess,
    pub status: InviteStatus,
    pub invite_uid: String,
    pub summary: Option<String>,
    /// The calendar's name in the sharee's home (`shared~...`).
    pub mount: String,
    pub created_at: i64,
}

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Open,
    Granted,
    Refused,
    Withdrawn,
    Expired,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Granted => "granted",
            RequestStatus::Refused => "refused",
            RequestStatus::Withdrawn => "withdrawn",
            RequestStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<RequestStatus> {
        Some(match s {
            "open" => RequestStatus::Open,
            "granted" => RequestStatus::Granted,
            "refused" => RequestStatus::Refused,
            "withdrawn" => RequestStatus::Withdrawn,
            "expired" => RequestStatus::Expired,
            _ => return None,
        })
    }
}

/// "May I see your calendar?"
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub id: i64,
    pub requester: UserId,
    pub owner: UserId,
    pub access: ShareAccess,
    pub status: RequestStatus,
    pub granted: Option<ShareAccess>,
    pub message: Option<String>,
    pub uid: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    /// The owner's calendars asked for, by name; empty: all of them.
    pub calendars: Vec<String>,
}

/// An access request to open.
#[derive(Debug, Clone, Copy)]
pub struct NewAccessRequest<'a> {
    pub requester: UserId,
    pub owner: UserId,
    pub access: ShareAccess,
    pub message: Option<&'a str>,
    /// The owner's calendars asked for, by name; empty: all of them.
    pub calendars: &'a [String],
    pub uid: &'a str,
    pub expires_at: i64,
}

/// Calendar shares (CalendarServer sharing) and access requests.
#[allow(async_fn_in_trait)]
pub trait CalendarShareStore {
    /// Share (or change the access of a share of) a calendar; `true` when the row is new or
    /// its access changed. A new share waits for the sharee's answer unless `accepted`.
    async fn set_calendar_share(
        &self,
        calendar: ResourceId,
        owner: UserId,
        sharee: UserId,
        access: ShareAccess,
        summary: Option<&str>,
        accepted: bool,
    ) -> Result<(CalendarShare, bool)>;
    async fn remove_calendar_share(
        &self,
        calendar: ResourceId,
        sharee: UserId,
    ) -> Result<Option<CalendarShare>>;
    async fn shares_of_calendar(&self, calendar: ResourceId) -> Result<Vec<CalendarShare>>;
    /// The owner's calendars that have sharees.
    async fn shared_calendar_ids(&self, owner: UserId) -> Result<Vec<ResourceId>>;
    async fn share_by_invite(&self, invite_uid: &str) -> Result<Option<CalendarShare>>;
    async fn share_by_mount(&self, sharee: UserId, mount: &str) -> Result<Option<CalendarShare>>;
    /// Every share to this sharee.
    async fn shares_to(&self, sharee: UserId) -> Result<Vec<CalendarShare>>;
    async fn set_share_status(&self, id: i64, status: InviteStatus) -> Result<()>;
    /// Open a request; `AlreadyExists` when this pair has one open (expired ones are closed
    /// first).
    async fn open_access_request(&self, r: NewAccessRequest<'_>) -> Result<AccessRequest>;
    async fn access_request(&self, id: i64) -> Result<Option<AccessRequest>>;
    async fn access_request_by_uid(&self, uid: &str) -> Result<Option<AccessRequest>>;
    /// Requests this user made or received, newest first.
    async fn access_requests_of(&self, user: UserId) -> Result<Vec<AccessRequest>>;
    /// Close an open, unexpired request; `false` if it was not open any more.
    async fn decide_access_request(
        &self,
        id: i64,
        status: RequestStatus,
        granted: Option<ShareAccess>,
    ) -> Result<bool>;
    /// Requests this user opened since `since` (the rate limit).
    async fn access_requests_since(&self, requester: UserId, since: i64) -> Result<i64>;
    /// A sharee's personal parts of the members of a shared calendar: (member, etag, body).
    async fn personal_data_in(
        &self,
        calendar: ResourceId,
        user: UserId,
    ) -> Result<Vec<(ResourceId, String, Vec<u8>)>>;
    async fn set_personal_data(
        &self,
        resource: ResourceId,
        user: UserId,
        etag: &str,
        data: &[u8],
    ) -> Result<()>;
}

/// Delegation (calendar-proxy): who may read or write whose calendars.
#[allow(async_fn_in_trait)]
pub trait DelegateStore {
    /// Make `members` exactly the read (`write` false) or write delegates of `owner`. A user
    /// moved from one group to the other changes group; the owner is never their own delegate.
    async fn set_delegates(&self, owner: UserId, write: bool, members: &[UserId]) -> Result<()>;
    /// `owner`'s delegates, with whether each may write.
    async fn delegates_of(&self, owner: UserId) -> Result<Vec<(User, bool)>>;
    /// Whose delegate `delegate` is, with whether they may write.
    async fn delegators_of(&self, delegate: UserId) -> Result<Vec<(User, bool)>>;
    /// Whether `delegate` may act for `owner`: `None` not at all, else whether they may write.
    async fn delegation(&self, owner: UserId, delegate: UserId) -> Result<Option<bool>>;
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> i64 {
    now()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The checks an object write makes against the members of its collection that hold its name
/// or its UID: not over a collection, the caller's ETag condition, one UID per collection
/// (RFC 4791 5.3.2). Returns the member the write replaces, if any. Both SQL paths use it.
pub(crate) fn check_object_write(
    found: &[Resource],
    name: &str,
    uid: Option<&str>,
    cond: &WriteCondition,
) -> Result<Option<Resource>> {
    let existing = found.iter().find(|r| r.name == name).cloned();
    if let Some(e) = &existing
        && e.kind.is_collection()
    {
        return Err(StoreError::AlreadyExists);
    }
    if !condition_holds(cond, existing.as_ref().and_then(|e| e.etag.as_deref())) {
        return Err(StoreError::PreconditionFailed);
    }
    if let Some(uid) = uid
        && let Some(holder) = found
            .iter()
            .find(|r| r.uid.as_deref() == Some(uid) && r.name != name)
    {
        return Err(StoreError::UidConflict(holder.name.clone()));
    }
    Ok(existing)
}

/// Does an existing resource's ETag satisfy a write condition?
pub(crate) fn condition_holds(cond: &WriteCondition, current: Option<&str>) -> bool {
    match cond {
        WriteCondition::None => true,
        WriteCondition::MustNotExist => current.is_none(),
        WriteCondition::MustExist => current.is_some(),
        WriteCondition::EtagIn(list) => current.is_some_and(|c| list.iter().any(|e| e == c)),
        WriteCondition::EtagNotIn(list) => !current.is_some_and(|c| list.iter().any(|e| e == c)),
    }
}

/// For tests across the crate: a file-backed SQLite store with one user, `name`, signed in
/// (a session that lasts until `expires_at`).
#[cfg(test)]
pub(crate) async fn signed_in_store(
    name: &str,
    expires_at: i64,
) -> (tempfile::TempDir, Store, User, Session) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("store");
    let user = store
        .create_user(NewUser {
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("user");
    let session = store
        .create_session(NewSession {
            token_hash: format!("token of {name}"),
            user: user.id,
            expires_at,
            id_token: None,
            refresh_sealed: None,
            refresh_due: None,
        })
        .await
        .expect("session");
    (dir, store, user, session)
}
