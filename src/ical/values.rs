//! Value checks a stored object must pass beyond its structure (RFC 5545 3.3): dates and
//! times in range (no month 13 or hour 25), an end not before its start, a positive and
//! sane duration, a recurrence rule that parses with an interval of at least one, and UTC
//! offsets within a day. Each failure names the property, so the client's 403 says what to
//! fix.
//!
//! Pure: no I/O. Reads the lines as written; never rewrites them.

use icalrs::tree::cst::{IcalCst, IcalItem};
use icalrs::tree::line::IcalLine;

/// Longest DURATION accepted (about 100 years), in seconds.
const MAX_DURATION_SECONDS: i64 = 100 * 366 * 24 * 3600;

/// A DATE (`YYYYMMDD`) or DATE-TIME (`YYYYMMDDTHHMMSS[Z]`), as comparable civil seconds, if
/// well formed and in range.
fn civil(value: &str) -> Option<(i64, bool)> {
    let v = value.trim();
    let b = v.as_bytes();
    let digits = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 8 {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in {
        return None;
    }
    let date_seconds = ((y * 12 + m) * 31 + d) * 86_400;
    match b.len() {
        8 => Some((date_seconds, false)),
        15 | 16 => {
            if b[8] != b'T' || (b.len() == 16 && b[15] != b'Z') {
                return None;
            }
            let (h, mi, s) = (digits(&b[9..11])?, digits(&b[11..13])?, digits(&b[13..15])?);
            if h > 23 || mi > 59 || s > 60 {
                return None;
            }
            Some((date_seconds + h * 3600 + mi * 60 + s, true))
        }
        _ => None,
    }
}

/// RFC 5545 3.3.6 DURATION in seconds (sign included), if well formed.
pub(crate) fn duration_seconds(value: &str) -> Option<i64> {
    let v = value.trim();
    let (sign, rest) = match v.as_bytes().first() {
        Some(b'-') => (-1, &v[1..]),
        Some(b'+') => (1, &v[1..]),
        _ => (1, v),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut in_time = false;
    let mut any = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => number.push(c),
            'T' if !in_time && number.is_empty() => in_time = true,
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                let scale = match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(scale)?)?;
                any = true;
            }
        }
    }
    (any && number.is_empty()).then_some(sign * total)
}

/// `±HHMM[SS]` within a day.
fn utc_offset_ok(value: &str) -> bool {
    let v = value.trim().as_bytes();
    if !matches!(v.first(), Some(b'+' | b'-')) || !(v.len() == 5 || v.len() == 7) {
        return false;
    }
    if !v[1..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = |i: usize| i32::from(v[i] - b'0') * 10 + i32::from(v[i + 1] - b'0');
    n(1) < 24 && n(3) < 60 && (v.len() == 5 || n(5) < 60)
}

fn named<'l>(c: &'l IcalCst<'_>, name: &str) -> Option<&'l IcalLine<'l>> {
    c.items.iter().find_map(|i| match i {
        IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case(name) => Some(l),
        _ => None,
    })
}

fn tzid(l: &IcalLine<'_>) -> Option<String> {
    l.params
        .iter()
        .find(|p| p.name.get().eq_ignore_ascii_case("TZID"))
        .and_then(|p| {
            p.values
                .first()
                .map(|v| v.get().trim_matches('"').to_string())
        })
}

/// The first invalid value in a component and those inside it, as a message.
pub fn problem(c: &IcalCst<'_>) -> Option<String> {
    let mut stack = vec![c];
    let mut seen = 0usize;
    while let Some(c) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        for item in &c.items {
            match item {
                IcalItem::Prop(l) => {
                    if let Some(p) = line_problem(l) {
                        return Some(p);
                    }
                }
                IcalItem::Component(sub) => stack.push(sub),
                IcalItem::Opaque(_) => {}
            }
        }
        if let Some(p) = span_problem(c) {
            return Some(p);
        }
    }
    None
}

fn line_problem(l: &IcalLine<'_>) -> Option<String> {
    let name = l.name.get().to_ascii_uppercase();
    let value = l.raw_value_str();
    let bad = |what: &str| Some(format!("{name}: {what} ('{}')", value.trim()));
    let dates = |v: &str| match name.as_str() {
        "DTSTART" | "DTEND" | "DUE" | "RECURRENCE-ID" | "DTSTAMP" | "CREATED" | "LAST-MODIFIED"
        | "COMPLETED" => civil(v).is_some(),
        // A PERIOD's start, or the value itself.
        "EXDATE" | "RDATE" => v
            .split(',')
            .all(|x| civil(x.split('/').next().unwrap_or("")).is_some()),
        _ => true,
    };
    if !dates(&value) {
        return bad("not a valid date or date-time");
    }
    match name.as_str() {
        "DURATION" => match duration_seconds(&value) {
            Some(s) if s.abs() <= MAX_DURATION_SECONDS => None,
            _ => bad("not a valid duration of at most 100 years"),
        },
        "RRULE" | "EXRULE" if rule_part_problem(&value).is_some() => {
            rule_part_problem(&value).map(|p| format!("{name}: {p}"))
        }
        "RRULE" | "EXRULE" => match icalrs::recur::IcalRecurRule::parse(&value) {
            Ok(r) if r.interval >= 1 => {
                let until = value
                    .to_ascii_uppercase()
                    .split(';')
                    .find_map(|p| p.strip_prefix("UNTIL=").map(str::to_string));
                match until {
                    Some(u) if civil(&u).is_none() => bad("UNTIL is not a valid date or date-time"),
                    _ => None,
                }
            }
            Ok(_) => bad("INTERVAL must be at least 1"),
            Err(e) => Some(format!("{name}: {e}")),
        },
        "TZOFFSETFROM" | "TZOFFSETTO" if !utc_offset_ok(&value) => {
            bad("not a UTC offset within a day")
        }
        "SUMMARY" | "DESCRIPTION" | "LOCATION" | "COMMENT" | "CATEGORIES" | "RESOURCES"
        | "CONTACT" | "TZNAME"
            if !escapes_ok(&value) =>
        {
            bad("a backslash must start one of the escapes \\\\ \\; \\, \\n (RFC 5545 3.3.11)")
        }
        _ => None,
    }
}

/// RFC 5545 3.3.11: in TEXT, a backslash escapes only a backslash, `;`, `,` or a newline
/// (`\n` or `\N`). Anything else is read differently by different clients, or dropped.
fn escapes_ok(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | ';' | ',' | 'n' | 'N')) {
            return false;
        }
    }
    true
}

/// A BY list or FREQ of a recurrence rule that RFC 5545 3.3.10's grammar does not allow (the
/// parser below it reads `BYDAY=+1,3MO` as one Monday a month).
fn rule_part_problem(rule: &str) -> Option<String> {
    const DAYS: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];
    let signed = |v: &str, lo: i64, hi: i64| {
        let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
        !digits.is_empty()
            && digits.len() <= 3
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<i64>().is_ok_and(|n| (lo..=hi).contains(&n))
    };
    let unsigned = |v: &str, lo: i64, hi: i64| {
        !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
            && v.parse::<i64>().is_ok_and(|n| (lo..=hi).contains(&n))
    };
    for part in rule.trim().split(';').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=')?;
        let key = key.trim().to_ascii_uppercase();
        let items = || value.split(',').map(|v| v.trim().to_ascii_uppercase());
        let ok = match key.as_str() {
            "FREQ" => matches!(
                value.trim().to_ascii_uppercase().as_str(),
                "SECONDLY" | "MINUTELY" | "HOURLY" | "DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY"
            ),
            "BYDAY" => items().all(|d| {
                // ASCII only, so the split below is on a character boundary.
                let day = d
                    .is_ascii()
                    .then(|| d.len().checked_sub(2))
                    .flatten()
                    .map(|i| d.split_at(i));
                day.is_some_and(|(n, w)| DAYS.contains(&w) && (n.is_empty() || signed(n, 1, 53)))
            }),
            "BYMONTHDAY" => items().all(|v| signed(&v, 1, 31)),
            "BYYEARDAY" | "BYSETPOS" => items().all(|v| signed(&v, 1, 366)),
            "BYWEEKNO" => items().all(|v| signed(&v, 1, 53)),
            "BYMONTH" => items().all(|v| unsigned(&v, 1, 12)),
            "BYHOUR" => items().all(|v| unsigned(&v, 0, 23)),
            "BYMINUTE" => items().all(|v| unsigned(&v, 0, 59)),
            "BYSECOND" => items().all(|v| unsigned(&v, 0, 60)),
            "WKST" => DAYS.contains(&value.trim().to_ascii_uppercase().as_str()),
            _ => true,
        };
        if !ok {
            return Some(format!("{key}={value} is not a valid rule part"));
        }
    }
    None
}

/// DTEND (or DUE) before DTSTART, and a negative DURATION, in one component.
fn span_problem(c: &IcalCst<'_>) -> Option<String> {
    let start = named(c, "DTSTART")?;
    let (s, s_time) = civil(&start.raw_value_str())?;
    for end_name in ["DTEND", "DUE"] {
        if let Some(end) = named(c, end_name)
            && let Some((e, e_time)) = civil(&end.raw_value_str())
            && e_time == s_time
            && tzid(end) == tzid(start)
            && start.raw_value_str().trim().ends_with('Z')
                == end.raw_value_str().trim().ends_with('Z')
            && e < s
        {
            return Some(format!("{end_name} is before DTSTART"));
        }
    }
    if let Some(d) = named(c, "DURATION").and_then(|l| duration_seconds(&l.raw_value_str()))
        && d < 0
    {
        return Some("DURATION is negative".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_parts_follow_the_grammar() {
        for ok in [
            "FREQ=MONTHLY;BYDAY=1MO,-1FR",
            "FREQ=WEEKLY;BYDAY=MO,TU;WKST=SU",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1;BYSETPOS=-1",
            "FREQ=DAILY;BYHOUR=0,23;BYMINUTE=0,59;BYSECOND=60",
            "FREQ=YEARLY;BYWEEKNO=-53;BYYEARDAY=+366;X-NAME=1",
        ] {
            assert_eq!(rule_part_problem(ok), None, "{ok}");
        }
        for bad in [
            "FREQ=MONTHLY;BYDAY=+1,3MO",
            "FREQ=MONTHLY;BYDAY=54MO",
            "FREQ=FORTNIGHTLY",
            "FREQ=YEARLY;BYMONTH=13",
            "FREQ=MONTHLY;BYMONTHDAY=0",
            "FREQ=DAILY;BYHOUR=24",
            "FREQ=WEEKLY;WKST=XX",
            "FREQ=WEEKLY;BYDAY=-\u{3ea}U",
        ] {
            assert!(rule_part_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn text_escapes_are_rfc5545s() {
        assert!(escapes_ok(r"comma\, semi\; slash\\ line\n Line\N plain"));
        for bad in [r"C:\temp", r"ends with \", r"tab\t", r"colon\:"] {
            assert!(!escapes_ok(bad), "{bad}");
        }
    }

    #[test]
    fn dates_times_durations_offsets() {
        assert!(civil("20240229").is_some() && civil("20230229").is_none());
        assert!(civil("20241301T000000Z").is_none());
        assert!(civil("20240101T250000").is_none());
        assert!(civil("20240101T235960Z").is_some());
        assert_eq!(duration_seconds("PT1H30M"), Some(5400));
        assert_eq!(duration_seconds("-P1W"), Some(-7 * 86_400));
        assert_eq!(duration_seconds("P1H"), None);
        assert_eq!(duration_seconds("P99999999999999999999W"), None);
        assert!(utc_offset_ok("+0530") && utc_offset_ok("-120000"));
        assert!(!utc_offset_ok("+2500") && !utc_offset_ok("0100"));
    }
}
