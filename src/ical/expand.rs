//! `CALDAV:expand` (RFC 4791 9.6.5): a recurring object rewritten as its individual instances
//! inside a time range, each with a RECURRENCE-ID, overrides applied, every time in UTC, and no
//! RRULE/RDATE/EXDATE left. Built from the stored bytes; other lines of each component are
//! carried as they were written.
//!
//! Pure: no I/O, no SQL, no HTTP.

use icalrs::recur::IcalRecurDateTime;
use icalrs::tree::cst::{IcalCst, IcalItem};

use super::filter::{TimeRange, instance_matches};
use super::index::{IndexLimits, MatchRule, expand_components};
use super::zones::Zone;

const DROPPED: &[&str] = &[
    "RRULE",
    "RDATE",
    "EXDATE",
    "EXRULE",
    "DTSTART",
    "DTEND",
    "DURATION",
    "RECURRENCE-ID",
];

pub(crate) fn utc_text(t: i64) -> String {
    let c = IcalRecurDateTime::from_seconds(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

fn date_text(t: i64) -> String {
    let c = IcalRecurDateTime::from_seconds(t);
    format!("{:04}{:02}{:02}", c.year, c.month, c.day)
}

/// The expanded calendar text, `Ok(None)` if the body does not parse, or the error when the
/// set cannot be expanded within the limits (never the unexpanded master in its place).
pub fn expand(
    body: &[u8],
    range: TimeRange,
    limits: IndexLimits,
    floating_zone: &Zone,
) -> Result<Option<String>, super::IcalError> {
    let Some(root) = super::parse_stored(body) else {
        return Ok(None);
    };
    let decoded = root.decode();
    let expansion = expand_components(&decoded.components, limits)?;
    let sources: Vec<&IcalCst<'_>> = super::subcomponents(&root).collect();
    let mut out = root.clone();
    out.items.retain(|i| matches!(i, IcalItem::Prop(_)));
    for occ in &expansion.occurrences {
        if !instance_matches(&occ.instance, range, floating_zone) {
            continue;
        }
        let Some(src) = sources.get(occ.source) else {
            continue;
        };
        let is_date = src.items.iter().any(|i| {
            matches!(i, IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case("DTSTART")
                && !l.raw_value_str().contains('T'))
        });
        // Floating times become UTC through the calendar's zone (RFC 4791 9.6.5).
        let to_utc = |t: i64| {
            if occ.instance.floating && !is_date {
                t - floating_zone.offset_at(t)
            } else {
                t
            }
        };
        let fmt = |t: i64| {
            if is_date {
                (";VALUE=DATE", date_text(t))
            } else {
                ("", utc_text(to_utc(t)))
            }
        };
        let mut comp = (*src).clone();
        comp.items.retain(|i| match i {
            IcalItem::Prop(l) => !DROPPED.iter().any(|d| l.name.get().eq_ignore_ascii_case(d)),
            _ => true,
        });
        let (p, v) = fmt(occ.instance.start);
        let Ok(_) = comp.push_raw(&format!("DTSTART{p}:{v}")) else {
            return Ok(None);
        };
        if occ.instance.rule == MatchRule::Overlap && occ.instance.end > occ.instance.start {
            let (p, v) = fmt(occ.instance.end);
            let Ok(_) = comp.push_raw(&format!("DTEND{p}:{v}")) else {
                return Ok(None);
            };
        }
        if let Some(id) = occ.recurrence_id {
            let (p, v) = fmt(id);
            let Ok(_) = comp.push_raw(&format!("RECURRENCE-ID{p}:{v}")) else {
                return Ok(None);
            };
        }
        out.push_component(comp);
    }
    Ok(Some(out.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::index::POS_INF;

    #[test]
    fn weekly_series_with_override_expands_to_utc_instances() {
        let body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTART;TZID=Europe/Berlin:20240318T090000\r\nDTEND;TZID=Europe/Berlin:20240318T100000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240401T090000\r\nDTSTART;TZID=Europe/Berlin:20240401T140000\r\nDTEND;TZID=Europe/Berlin:20240401T150000\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let limits = IndexLimits::on_write(1_900_000_000, 1000);
        // 2024-03-25 00:00Z .. 2024-04-08 00:00Z: the 03-25 and (moved) 04-01 instances.
        let out = expand(
            body.as_bytes(),
            TimeRange::new(Some(1_711_324_800), Some(1_712_534_400)),
            limits,
            &Zone::Utc,
        )
        .unwrap()
        .unwrap();
        assert!(!out.contains("RRULE"));
        assert!(
            out.contains("DTSTART:20240325T080000Z")
                && out.contains("RECURRENCE-ID:20240325T080000Z"),
            "{out}"
        );
        assert!(
            out.contains("DTSTART:20240401T120000Z")
                && out.contains("RECURRENCE-ID:20240401T070000Z"),
            "{out}"
        );
        assert!(out.contains("SUMMARY:Moved"));
        assert_eq!(out.matches("BEGIN:VEVENT").count(), 2);
        assert!(!out.contains("DTSTART:20240318"));
        let none = expand(
            body.as_bytes(),
            TimeRange::new(Some(POS_INF - 10), None),
            limits,
            &Zone::Utc,
        )
        .unwrap()
        .unwrap();
        assert_eq!(none.matches("BEGIN:VEVENT").count(), 0);
    }
}
