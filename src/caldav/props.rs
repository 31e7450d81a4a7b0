//! The property vocabulary Convene knows (RFC 4918 15, RFC 3744 5, RFC 5397, RFC 6578 4,
//! RFC 4791 5.2 and 6.2, RFC 6638, RFC 7809, RFC 5842, CalendarServer ctag, Apple iCal), as one closed
//! enum with a dead-property case. Clark names stop at `Prop::from_name`.

use crate::dav::{NS_APPLE, NS_CALDAV, NS_CS, NS_DAV, PropertyName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    // RFC 4918
    ResourceType,
    DisplayName,
    GetEtag,
    GetContentType,
    GetContentLength,
    GetLastModified,
    CreationDate,
    SupportedLock,
    LockDiscovery,
    // RFC 3744, RFC 5397
    CurrentUserPrincipal,
    PrincipalUrl,
    PrincipalCollectionSet,
    Owner,
    CurrentUserPrivilegeSet,
    Acl,
    AclRestrictions,
    SupportedPrivilegeSet,
    InheritedAclSet,
    GroupMembership,
    GroupMemberSet,
    AlternateUriSet,
    // RFC 3253 3.1.5
    SupportedReportSet,
    // RFC 6578
    SyncToken,
    // RFC 5842
    ResourceId,
    // RFC 4791
    CalendarHomeSet,
    CalendarUserAddressSet,
    CalendarUserType,
    CalendarDescription,
    CalendarTimezone,
    SupportedCalendarComponentSet,
    SupportedCalendarData,
    MaxResourceSize,
    MinDateTime,
    MaxDateTime,
    MaxInstances,
    MaxAttendeesPerInstance,
    CalendarData,
    // RFC 6638 2.1, 2.2, 9.1, 9.2, 3.2.10
    ScheduleInboxUrl,
    ScheduleOutboxUrl,
    ScheduleCalendarTransp,
    ScheduleDefaultCalendarUrl,
    ScheduleTag,
    // RFC 7809 5.2
    CalendarTimezoneId,
    // CalendarServer
    GetCtag,
    EmailAddressSet,
    NotificationUrl,
    /// Delegation (calendar-proxy): whose calendars this principal may read or write for.
    CalendarProxyReadFor,
    CalendarProxyWriteFor,
    FirstName,
    LastName,
    RecordType,
    /// CalendarServer sharing 5.2.2-5.2.4: who a calendar is shared with, whether it can be,
    /// and (on a sharee's mount) the sharer's calendar.
    Invite,
    AllowedSharingModes,
    SharedUrl,
    // Apple iCal
    CalendarColor,
    CalendarOrder,
    /// Anything else: a dead property.
    Dead(PropertyName),
}

const TABLE: &[(&str, &str, Prop)] = &[
    (NS_DAV, "resourcetype", Prop::ResourceType),
    (NS_DAV, "displayname", Prop::DisplayName),
    (NS_DAV, "getetag", Prop::GetEtag),
    (NS_DAV, "getcontenttype", Prop::GetContentType),
    (NS_DAV, "getcontentlength", Prop::GetContentLength),
    (NS_DAV, "getlastmodified", Prop::GetLastModified),
    (NS_DAV, "creationdate", Prop::CreationDate),
    (NS_DAV, "supportedlock", Prop::SupportedLock),
    (NS_DAV, "lockdiscovery", Prop::LockDiscovery),
    (NS_DAV, "current-user-principal", Prop::CurrentUserPrincipal),
    (NS_DAV, "principal-URL", Prop::PrincipalUrl),
    (
        NS_DAV,
        "principal-collection-set",
        Prop::PrincipalCollectionSet,
    ),
    (NS_DAV, "owner", Prop::Owner),
    (
        NS_DAV,
        "current-user-privilege-set",
        Prop::CurrentUserPrivilegeSet,
    ),
    (NS_DAV, "acl", Prop::Acl),
    (NS_DAV, "acl-restrictions", Prop::AclRestrictions),
    (
        NS_DAV,
        "supported-privilege-set",
        Prop::SupportedPrivilegeSet,
    ),
    (NS_DAV, "inherited-acl-set", Prop::InheritedAclSet),
    (NS_DAV, "group-membership", Prop::GroupMembership),
    (NS_DAV, "group-member-set", Prop::GroupMemberSet),
    (NS_DAV, "alternate-URI-set", Prop::AlternateUriSet),
    (NS_DAV, "supported-report-set", Prop::SupportedReportSet),
    (NS_DAV, "sync-token", Prop::SyncToken),
    (NS_DAV, "resource-id", Prop::ResourceId),
    (NS_CALDAV, "calendar-home-set", Prop::CalendarHomeSet),
    (
        NS_CALDAV,
        "calendar-user-address-set",
        Prop::CalendarUserAddressSet,
    ),
    (NS_CALDAV, "calendar-user-type", Prop::CalendarUserType),
    (NS_CALDAV, "calendar-description", Prop::CalendarDescription),
    (NS_CALDAV, "calendar-timezone", Prop::CalendarTimezone),
    (
        NS_CALDAV,
        "supported-calendar-component-set",
        Prop::SupportedCalendarComponentSet,
    ),
    (
        NS_CALDAV,
        "supported-calendar-data",
        Prop::SupportedCalendarData,
    ),
    (NS_CALDAV, "max-resource-size", Prop::MaxResourceSize),
    (NS_CALDAV, "min-date-time", Prop::MinDateTime),
    (NS_CALDAV, "max-date-time", Prop::MaxDateTime),
    (NS_CALDAV, "max-instances", Prop::MaxInstances),
    (
        NS_CALDAV,
        "max-attendees-per-instance",
        Prop::MaxAttendeesPerInstance,
    ),
    (NS_CALDAV, "calendar-data", Prop::CalendarData),
    (
        NS_CALDAV,
        "schedule-calendar-transp",
        Prop::ScheduleCalendarTransp,
    ),
    (NS_CALDAV, "calendar-timezone-id", Prop::CalendarTimezoneId),
    (NS_CALDAV, "schedule-inbox-URL", Prop::ScheduleInboxUrl),
    (NS_CALDAV, "schedule-outbox-URL", Prop::ScheduleOutboxUrl),
    (
        NS_CALDAV,
        "schedule-default-calendar-URL",
        Prop::ScheduleDefaultCalendarUrl,
    ),
    (NS_CALDAV, "schedule-tag", Prop::ScheduleTag),
    (NS_CS, "getctag", Prop::GetCtag),
    (NS_CS, "email-address-set", Prop::EmailAddressSet),
    (NS_CS, "notification-URL", Prop::NotificationUrl),
    (NS_CS, "calendar-proxy-read-for", Prop::CalendarProxyReadFor),
    (
        NS_CS,
        "calendar-proxy-write-for",
        Prop::CalendarProxyWriteFor,
    ),
    (NS_CS, "first-name", Prop::FirstName),
    (NS_CS, "last-name", Prop::LastName),
    (NS_CS, "record-type", Prop::RecordType),
    (NS_CS, "invite", Prop::Invite),
    (NS_CS, "allowed-sharing-modes", Prop::AllowedSharingModes),
    (NS_CS, "shared-url", Prop::SharedUrl),
    (NS_APPLE, "calendar-color", Prop::CalendarColor),
    (NS_APPLE, "calendar-order", Prop::CalendarOrder),
];

impl Prop {
    pub fn from_name(name: &PropertyName) -> Prop {
        TABLE
            .iter()
            .find(|(ns, local, _)| *ns == name.ns && *local == name.local)
            .map(|(_, _, p)| p.clone())
            .unwrap_or_else(|| Prop::Dead(name.clone()))
    }

    pub fn name(&self) -> PropertyName {
        match self {
            Prop::Dead(n) => n.clone(),
            known => TABLE
                .iter()
                .find(|(_, _, p)| p == known)
                .map(|(ns, local, _)| PropertyName::new(ns, local))
                .unwrap_or_else(|| PropertyName::new(NS_DAV, "unknown")),
        }
    }

    /// Stored verbatim in the property table (client-writable).
    pub fn is_stored(&self) -> bool {
        matches!(
            self,
            Prop::DisplayName
                | Prop::CalendarDescription
                | Prop::CalendarTimezone
                | Prop::CalendarTimezoneId
                | Prop::ScheduleCalendarTransp
                | Prop::CalendarColor
                | Prop::CalendarOrder
                | Prop::Dead(_)
        )
    }

    /// Returned for `allprop` (RFC 4918 9.1: the RFC 4918 live properties plus dead ones).
    pub fn in_allprop(&self) -> bool {
        matches!(
            self,
            Prop::ResourceType
                | Prop::DisplayName
                | Prop::GetEtag
                | Prop::GetContentType
                | Prop::GetContentLength
                | Prop::GetLastModified
                | Prop::CreationDate
                | Prop::SupportedLock
                | Prop::LockDiscovery
        )
    }

    /// Every live property, for `propname` and `allprop`.
    pub fn live() -> impl Iterator<Item = Prop> {
        TABLE
            .iter()
            .map(|(_, _, p)| p.clone())
            .filter(|p| *p != Prop::CalendarData)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (ns, local, p) in TABLE {
            let n = PropertyName::new(ns, local);
            assert_eq!(&Prop::from_name(&n), p);
            assert_eq!(p.name(), n);
        }
        let d = PropertyName::new("urn:x", "y");
        assert_eq!(Prop::from_name(&d), Prop::Dead(d.clone()));
        assert!(Prop::Dead(d).is_stored());
        assert!(!Prop::GetEtag.is_stored());
    }
}
