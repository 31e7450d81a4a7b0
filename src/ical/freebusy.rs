//! Free/busy time (RFC 4791 7.10, RFC 5545 3.6.4): the busy periods an object contributes to
//! a time range, honouring TRANSP and STATUS, and the VFREEBUSY answer built from them.
//!
//! Pure: no I/O, no SQL, no HTTP.

use icalrs::tree::cst::{IcalCst, IcalItem};

use super::filter::{TimeRange, instance_matches};
use super::index::{IndexLimits, expand_components};
use super::zones::Zone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BusyType {
    Busy,
    BusyTentative,
    BusyUnavailable,
}

impl BusyType {
    fn fbtype(self) -> &'static str {
        match self {
            BusyType::Busy => "BUSY",
            BusyType::BusyTentative => "BUSY-TENTATIVE",
            BusyType::BusyUnavailable => "BUSY-UNAVAILABLE",
        }
    }
}

fn prop_upper(c: &IcalCst<'_>, name: &str) -> Option<String> {
    c.items.iter().find_map(|i| match i {
        IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case(name) => {
            Some(l.raw_value_str().trim().to_ascii_uppercase())
        }
        _ => None,
    })
}

/// Busy periods (UTC, clipped to the range) of one VEVENT object.
pub fn busy_periods(
    body: &[u8],
    range: TimeRange,
    limits: IndexLimits,
    floating_zone: &Zone,
) -> Vec<(i64, i64, BusyType)> {
    let Some(root) = super::parse_stored(body) else {
        return vec![];
    };
    let decoded = root.decode();
    let Ok(expansion) = expand_components(&decoded.components, limits) else {
        return vec![];
    };
    let sources: Vec<&IcalCst<'_>> = super::subcomponents(&root).collect();
    let mut out = vec![];
    for occ in &expansion.occurrences {
        let Some(src) = sources.get(occ.source) else {
            continue;
        };
        let is_event = src
            .begin
            .as_ref()
            .is_some_and(|b| b.raw_value_str().trim().eq_ignore_ascii_case("VEVENT"));
        if !is_event {
            continue;
        }
        if prop_upper(src, "TRANSP").as_deref() == Some("TRANSPARENT") {
            continue;
        }
        let kind = match prop_upper(src, "STATUS").as_deref() {
            Some("CANCELLED") => continue,
            Some("TENTATIVE") => BusyType::BusyTentative,
            _ => BusyType::Busy,
        };
        let i = occ.instance;
        if i.end <= i.start || !instance_matches(&i, range, floating_zone) {
            continue;
        }
        let (mut s, mut e) = (i.start, i.end);
        if i.floating {
            s -= floating_zone.offset_at(s);
            e -= floating_zone.offset_at(e);
        }
        out.push((s.max(range.start), e.min(range.end), kind));
    }
    out
}

use super::expand::utc_text as utc;

/// Who a VFREEBUSY answers in an iTIP REPLY (RFC 6638 5, RFC 5546 3.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeBusyReply<'a> {
    pub uid: &'a str,
    pub organizer: &'a str,
    pub attendee: &'a str,
}

/// Merge overlapping periods of each type and write the VFREEBUSY calendar.
pub fn vfreebusy(periods: Vec<(i64, i64, BusyType)>, range: TimeRange, now: i64) -> String {
    write_vfreebusy(periods, range, now, None)
}

/// The same, as the METHOD:REPLY a schedule outbox POST answers with.
pub fn vfreebusy_reply(
    periods: Vec<(i64, i64, BusyType)>,
    range: TimeRange,
    now: i64,
    reply: &FreeBusyReply<'_>,
) -> String {
    write_vfreebusy(periods, range, now, Some(reply))
}

fn write_vfreebusy(
    mut periods: Vec<(i64, i64, BusyType)>,
    range: TimeRange,
    now: i64,
    reply: Option<&FreeBusyReply<'_>>,
) -> String {
    periods.sort();
    let mut merged: Vec<(i64, i64, BusyType)> = vec![];
    for p in periods {
        match merged.iter_mut().rev().find(|m| m.2 == p.2) {
            Some(m) if p.0 <= m.1 => m.1 = m.1.max(p.1),
            _ => merged.push(p),
        }
    }
    merged.sort_by_key(|m| (m.0, m.2));
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene//CalDAV//EN\r\n");
    if reply.is_some() {
        s.push_str("METHOD:REPLY\r\n");
    }
    s.push_str("BEGIN:VFREEBUSY\r\n");
    if let Some(r) = reply {
        // The addresses come from a parsed content line: no line breaks to inject.
        s.push_str(&format!(
            "UID:{}\r\nORGANIZER:{}\r\nATTENDEE:{}\r\n",
            r.uid, r.organizer, r.attendee
        ));
    }
    s.push_str(&format!(
        "DTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\n",
        utc(now),
        utc(range.start),
        utc(range.end)
    ));
    for (a, b, t) in merged {
        s.push_str(&format!(
            "FREEBUSY;FBTYPE={}:{}/{}\r\n",
            t.fbtype(),
            utc(a),
            utc(b)
        ));
    }
    s.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_and_cancelled_are_free_tentative_is_marked() {
        let lim = IndexLimits::on_write(1_900_000_000, 100);
        let r = TimeRange::new(Some(1_704_412_800), Some(1_704_499_200)); // 2024-01-05
        let ev = |extra: &str| {
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
            )
        };
        assert_eq!(
            busy_periods(ev("").as_bytes(), r, lim, &Zone::Utc),
            vec![(1_704_448_800, 1_704_452_400, BusyType::Busy)]
        );
        assert!(
            busy_periods(ev("TRANSP:TRANSPARENT\r\n").as_bytes(), r, lim, &Zone::Utc).is_empty()
        );
        assert!(busy_periods(ev("STATUS:CANCELLED\r\n").as_bytes(), r, lim, &Zone::Utc).is_empty());
        assert_eq!(
            busy_periods(ev("STATUS:TENTATIVE\r\n").as_bytes(), r, lim, &Zone::Utc)[0].2,
            BusyType::BusyTentative
        );
        let out = vfreebusy(
            vec![(10, 20, BusyType::Busy), (15, 30, BusyType::Busy)],
            TimeRange::new(Some(0), Some(100)),
            0,
        );
        assert!(
            out.contains("FREEBUSY;FBTYPE=BUSY:19700101T000010Z/19700101T000030Z"),
            "{out}"
        );
    }
}
