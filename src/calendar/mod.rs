//! The calendar domain: what a calendar object is allowed to be and what writing one implies,
//! with no HTTP and no XML. [`Calendars`] is one acting user's view of the store; through it
//! every writer (CalDAV, the JSON APIs, import, scheduling deliveries, and the modules still to
//! come) validates, indexes, stores and schedules an object the same way, and the workers
//! hear of it through the [`Hooks`] port. The query planner (`query`) answers a filter from
//! the time-range index.
//!
//! Layout: `write` (the one write path), `import` (a whole file at once), `schedule` (RFC 6638 implicit scheduling and iMIP),
//! `outbox` (the iMIP mail worker), `query` (the planner), `address` (calendar-user addresses), `home` (what a new home holds).
//!
//! Must never: touch SQL (only `store` traits) or speak a wire protocol (refusals are typed
//! [`Refusal`]s the protocol turns into its own conditions); write into another user's
//! calendar except as scheduling delivery of a message that user was sent.

pub mod address;
pub mod home;
pub mod import;
pub mod outbox;
pub mod query;
pub mod schedule;
pub mod write;

pub use import::{ImportReport, MAX_IMPORT_OBJECTS, SkippedItem};
pub use write::{ObjectWrite, ScheduleHeaders, Written};

use crate::clock::Clock;
use crate::directory::LdapDirectory;
use crate::ical::IcalError;
use crate::mail::Mailer;
use crate::store::{ResourceId, Store, StoreError, User};

/// Limits on what a calendar object may be (from configuration).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest calendar object accepted, in bytes (RFC 4791 max-resource-size).
    pub max_resource_size: usize,
    /// How far ahead recurrences are expanded into the index on write, in days.
    pub index_horizon_days: i64,
    /// Most instances one object may have inside the horizon (RFC 4791 max-instances).
    pub max_instances: usize,
}

/// How far ahead of now a recurring series is indexed when it is written: a year, as Apple
/// CalendarServer's `FreeBusyIndexExpandAheadDays` (365). The windows clients ask about all
/// day (week and month views, DAVx5's past-90-days sync, free-busy lookups) fall inside it.
/// A window beyond it still gets every answer: the few open-ended series it reaches are
/// expanded at query time. Three years cost each weekly series 156 index rows where it now
/// has 52, written on every PUT and held in every cached listing.
pub const DEFAULT_INDEX_HORIZON_DAYS: i64 = 366;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_resource_size: 10 * 1024 * 1024,
            index_horizon_days: DEFAULT_INDEX_HORIZON_DAYS,
            max_instances: 20_000,
        }
    }
}

/// What the workers are told after a calendar object changed (written or removed). Every
/// method has a no-op default, so a hook implements only what it needs.
pub trait Hooks: Send + Sync {
    /// An object of `calendar` was written or removed.
    fn object_changed(&self, _calendar: ResourceId) {}
}

/// No worker listens (the CLI's import, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// One acting user's calendars: the store, the limits, and the services scheduling reaches
/// (the mail relay, the directory), with the clock and the hooks.
#[derive(Clone, Copy)]
pub struct Calendars<'a> {
    pub store: &'a Store,
    pub user: &'a User,
    pub limits: &'a Limits,
    pub mailer: Option<&'a Mailer>,
    pub directory: Option<&'a LdapDirectory>,
    pub clock: &'a dyn Clock,
    pub hooks: &'a dyn Hooks,
}

impl<'a> Calendars<'a> {
    /// The same services, acting as `user`.
    pub fn as_user<'b>(&self, user: &'b User) -> Calendars<'b>
    where
        'a: 'b,
    {
        Calendars { user, ..*self }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Why the domain refuses a calendar object or a scheduling message (RFC 4791 5.3.2.1,
/// RFC 6638 3.2 and 5.1); the protocol names each in its own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not iCalendar, or not the iCalendar the object claims.
    ValidCalendarData,
    /// iCalendar, but not one calendar object resource (RFC 4791 4.1).
    ValidCalendarObjectResource,
    /// A media type other than text/calendar.
    SupportedCalendarData,
    /// A component type the calendar does not take.
    SupportedCalendarComponent,
    /// Another object of the calendar has this UID; `holder` is its member name.
    UidConflict {
        holder: String,
    },
    MaxResourceSize,
    /// More instances than the server keeps, or a rule too dense to expand.
    MaxInstances,
    /// Not a scheduling message the server accepts here.
    ValidSchedulingMessage,
    /// The ORGANIZER is not someone this user may act as.
    OrganizerAllowed,
    /// An attendee changed more of a scheduling object than their own part.
    AllowedAttendeeSchedulingObjectChange,
    /// Another scheduling object resource in the home has the UID (RFC 6638 3.2.4.1).
    UniqueSchedulingObjectResource,
    /// The object is its owner's: a recipient may change only what is theirs (alarms,
    /// transparency).
    OwnersContent,
}

/// A domain operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused for what it says (the protocol's 403 with a condition).
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    /// The request cannot be read at all (the protocol's 400).
    #[error("{message}")]
    Malformed { refusal: Refusal, message: String },
    /// A condition the client set (ETag, Schedule-Tag) does not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    NotFound(String),
    /// More than the server takes in one request (the protocol's 413).
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Error {
        Error::Refused {
            refusal,
            message: message.into(),
        }
    }

    /// An object that could not be indexed: too many instances, or not valid.
    pub fn of_index(e: IcalError) -> Error {
        let refusal = match e {
            IcalError::TooManyInstances(_) | IcalError::RuleTooDense(_) => Refusal::MaxInstances,
            _ => Refusal::ValidCalendarData,
        };
        Error::refused(refusal, e.to_string())
    }
}
