//! Convene: a standards-based CalDAV/iCalendar server.
//!
//! Module map (see ARCHITECTURE.md; a module may use only modules above it):
//! - `ical`, `dav`: pure wire formats (iCalendar, WebDAV XML). No I/O.
//! - `clock`: the time port (`Clock`): the system clock, or a manual one in tests.
//! - `crypto`: authenticated encryption of small secrets under zeroizing keys.
//! - `store`: persistence behind capability traits; SQLite and PostgreSQL adapters.
//! - `directory`: the organisation's LDAP directory (binds, people).
//! - `mail`: outgoing iMIP mail through an SMTP relay.
//! - `vault`: the credential vault's keys and envelopes (KEK, per-user data keys, fields).
//! - `auth`: credentials to users.
//! - `org`: the org chart (groups, departments, managers), from LDAP or Convene's own store.
//! - `calendar`: the calendar domain: one write path, scheduling, the query planner.
//! - `bridge`: the single-sign-on bridge's domain: vaulted credentials for business systems.
//! - `share`: delegated entries, carried into recipients' copies by a worker.
//! - `feed`: read-only ICS subscription feeds and whole-calendar export.
//! - `caldav`: the CalDAV/WebDAV protocol over `dav`, `ical` and the store ports.
//! - `web`: the HTTP edge (axum).
//! - `proxy`: the bridge's outbound edge (requests to business systems with a credential).
//! - `app`: composition root (CLI, configuration, wiring, shutdown).

// The server logs through `tracing`; the CLI writes its output through `io::stdout`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod app;
pub mod auth;
pub mod bridge;
pub mod caldav;
pub mod calendar;
pub mod clock;
pub mod crypto;
pub mod dav;
pub mod directory;
pub mod feed;
pub mod ical;
pub mod mail;
pub mod org;
pub mod proxy;
pub mod share;
pub mod store;
pub mod vault;
pub mod web;
