//! The one privacy rule for every view of an event by someone other than its owner: its
//! CLASS (RFC 5545 3.8.1.3) decides how much is shown, as CalendarServer does: PUBLIC in
//! full, CONFIDENTIAL and PRIVATE reduced as configured (`[sharing]`, by default the times and
//! summary, and the times only, shown as "Busy"). Delegated copies, calendar sharees, access
//! grants, read-only delegates and subscription feeds all read through here; a feed may ask
//! for less than the rule (`floor`), never for more.
//!
//! Pure: no I/O. Must never put into a reduced view anything its detail withholds.

use std::borrow::Cow;

use icalrs::tree::cst::{IcalCst, IcalItem};

use super::itip::{main_components_mut, replace_prop, value_of};

/// RFC 5545 3.8.1.3 CLASS. An unknown value is treated as PRIVATE, as the RFC says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Public,
    Confidential,
    Private,
}

impl Class {
    pub(super) fn of(c: &IcalCst<'_>) -> Class {
        match value_of(c, "CLASS")
            .map(|v| v.to_ascii_uppercase())
            .as_deref()
        {
            None | Some("PUBLIC") => Class::Public,
            Some("CONFIDENTIAL") => Class::Confidential,
            Some(_) => Class::Private,
        }
    }
}

/// How much of an event a non-owner sees, from most to least.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Detail {
    /// Everything (delegated copies still drop the owner's alarms and the attendee list).
    Full,
    /// The times and the summary.
    TimeAndSummary,
    /// The times only, as "Busy".
    Busy,
}

impl Detail {
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Full => "full",
            Detail::TimeAndSummary => "time-and-summary",
            Detail::Busy => "busy",
        }
    }

    pub fn parse(s: &str) -> Option<Detail> {
        match s {
            "full" => Some(Detail::Full),
            "time-and-summary" | "titles" => Some(Detail::TimeAndSummary),
            "busy" => Some(Detail::Busy),
            _ => None,
        }
    }
}

/// What each CLASS reveals to non-owners (configurable; PUBLIC is always `Full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privacy {
    pub confidential: Detail,
    pub private: Detail,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            confidential: Detail::TimeAndSummary,
            private: Detail::Busy,
        }
    }
}

impl Privacy {
    pub fn detail(&self, class: Class) -> Detail {
        match class {
            Class::Public => Detail::Full,
            Class::Confidential => self.confidential,
            Class::Private => self.private,
        }
    }
}

/// Properties that say when an entry is, and identify it; the only ones a reduced view keeps
/// (with SUMMARY for `TimeAndSummary`).
const TIMING: &[&str] = &[
    "UID",
    "DTSTAMP",
    "DTSTART",
    "DTEND",
    "DURATION",
    "DUE",
    "RRULE",
    "RDATE",
    "EXDATE",
    "RECURRENCE-ID",
    "SEQUENCE",
    "STATUS",
    "TRANSP",
    "CLASS",
    "CREATED",
    "LAST-MODIFIED",
];

/// Reduce one main component to `detail` (which is not `Full`): only the timing properties
/// (and SUMMARY, or "Busy" in its place), no subcomponents (alarms, locations).
pub(super) fn reduce_component(c: &mut IcalCst<'_>, detail: Detail) -> Option<()> {
    let keep_summary = detail == Detail::TimeAndSummary;
    c.items.retain(|i| match i {
        IcalItem::Prop(l) => {
            let n = l.name.get();
            TIMING.iter().any(|t| n.eq_ignore_ascii_case(t))
                || (keep_summary && n.eq_ignore_ascii_case("SUMMARY"))
        }
        IcalItem::Component(_) => false,
        _ => true,
    });
    if detail == Detail::Busy {
        replace_prop(c, "SUMMARY", "Busy")?;
    }
    Some(())
}

/// What a non-owner sees of a stored object: each main component at the detail its CLASS
/// allows, and no more than `floor`. The stored bytes, untouched, when nothing is withheld.
/// An object that cannot be read is shown as nothing rather than in full.
pub fn non_owner_view<'b>(body: &'b [u8], privacy: &Privacy, floor: Detail) -> Cow<'b, [u8]> {
    // Most objects have no CLASS at all: a byte scan spares them a parse.
    if floor == Detail::Full && !body.windows(5).any(|w| w.eq_ignore_ascii_case(b"CLASS")) {
        return Cow::Borrowed(body);
    }
    let Some(mut root) = super::parse_stored(body) else {
        return Cow::Owned(Vec::new());
    };
    let mut changed = false;
    for c in main_components_mut(&mut root) {
        let detail = privacy.detail(Class::of(c)).max(floor);
        if detail == Detail::Full {
            continue;
        }
        if reduce_component(c, detail).is_none() {
            return Cow::Owned(Vec::new());
        }
        changed = true;
    }
    if changed {
        Cow::Owned(root.to_bytes())
    } else {
        Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(class: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T100000Z\r\nDTEND:20300101T110000Z\r\n{class}SUMMARY:Doctor\r\nDESCRIPTION:results\r\nLOCATION:Clinic\r\nATTENDEE:mailto:doc@example.org\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:go\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    #[test]
    fn each_class_shows_what_the_rule_allows() {
        let p = Privacy::default();
        let public = event("");
        assert!(matches!(
            non_owner_view(public.as_bytes(), &p, Detail::Full),
            Cow::Borrowed(_)
        ));
        let private = event("CLASS:PRIVATE\r\n");
        let v = non_owner_view(private.as_bytes(), &p, Detail::Full);
        let v = String::from_utf8_lossy(&v);
        for gone in ["Doctor", "results", "Clinic", "doc@example.org", "VALARM"] {
            assert!(!v.contains(gone), "{gone} in {v}");
        }
        assert!(v.contains("SUMMARY:Busy") && v.contains("DTSTART:20300101T100000Z"));
        let confidential = event("CLASS:CONFIDENTIAL\r\n");
        let v = non_owner_view(confidential.as_bytes(), &p, Detail::Full);
        let v = String::from_utf8_lossy(&v);
        assert!(v.contains("SUMMARY:Doctor") && !v.contains("Clinic") && !v.contains("results"));
        // An unknown class is private; a floor reduces even public events.
        let odd = event("CLASS:X-SECRET\r\n");
        assert!(
            !String::from_utf8_lossy(&non_owner_view(odd.as_bytes(), &p, Detail::Full))
                .contains("Doctor")
        );
        let v = non_owner_view(public.as_bytes(), &p, Detail::Busy);
        assert!(!String::from_utf8_lossy(&v).contains("Doctor"));
        let v = non_owner_view(public.as_bytes(), &p, Detail::TimeAndSummary);
        let v = String::from_utf8_lossy(&v);
        assert!(v.contains("Doctor") && !v.contains("Clinic"));
    }
}
