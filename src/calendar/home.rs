//! What a calendar home holds when it is made: a calendar for events, one for tasks, the
//! schedule inbox and outbox, and the notification collection. Collection properties are
//! stored in their WebDAV form (the store's representation of a dead property).
//!
//! Must never: make a home with no calendar that takes invitations.

use crate::store::{NewCollection, ResourceKind, StoredProp};

/// Components a calendar accepts when its maker does not say (RFC 4791 5.2.3).
pub const DEFAULT_COMPONENTS: &str = "VEVENT,VTODO,VJOURNAL";

/// Does a calendar that accepts `supported` (or the default) take `kind`?
pub fn takes(supported: Option<&str>, kind: &str) -> bool {
    supported
        .unwrap_or(DEFAULT_COMPONENTS)
        .split(',')
        .any(|c| c.eq_ignore_ascii_case(kind))
}

pub fn default_collections() -> Vec<NewCollection> {
    let name_prop = |name: &str| StoredProp {
        ns: "DAV:".into(),
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
