//! calendar-query (RFC 4791 7.8, 9.7): the XML filter parsed into `ical::filter` types and
//! checked against the RFC's rules. `calendar::query` plans and answers it.

use crate::dav::{DavError, Element, NS_CALDAV};
use crate::ical::filter::{Collation, CompFilter, ParamFilter, PropFilter, TextMatch, TimeRange};

fn valid_filter(msg: impl Into<String>) -> DavError {
    DavError::with(403, super::CalCondition::ValidFilter, msg)
}

/// Parse an RFC 4791 time-range attribute: a UTC DATE-TIME (`20240105T000000Z`).
pub fn parse_utc(value: &str) -> Result<i64, DavError> {
    let v = value.trim();
    let bad = || valid_filter(format!("time-range value '{v}' is not a UTC date-time"));
    if v.len() != 16 || !v.ends_with(['Z', 'z']) || v.as_bytes()[8] != b'T' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| v[r].parse::<i64>().map_err(|_| bad());
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant), then seconds.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + h * 3600 + mi * 60 + s)
}

fn time_range(el: &Element) -> Result<Option<TimeRange>, DavError> {
    let Some(tr) = el.child(NS_CALDAV, "time-range") else {
        return Ok(None);
    };
    let start = tr.attr("start").map(parse_utc).transpose()?;
    let end = tr.attr("end").map(parse_utc).transpose()?;
    if start.is_none() && end.is_none() {
        return Err(valid_filter("time-range needs a start or an end"));
    }
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(valid_filter("time-range end must be after its start"));
    }
    Ok(Some(TimeRange::new(start, end)))
}

fn text_match(el: &Element) -> Result<Option<TextMatch>, DavError> {
    let Some(tm) = el.child(NS_CALDAV, "text-match") else {
        return Ok(None);
    };
    let collation = match tm.attr("collation") {
        None => Collation::AsciiCasemap,
        Some(c) => Collation::parse(c).ok_or_else(|| {
            DavError::with(
                403,
                super::CalCondition::SupportedCollation,
                format!("collation '{c}' is not supported"),
            )
        })?,
    };
    let negate = tm
        .attr("negate-condition")
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    Ok(Some(TextMatch {
        value: tm.text.clone(),
        collation,
        negate,
    }))
}

fn name_attr(el: &Element) -> Result<String, DavError> {
    el.attr("name")
        .map(|n| n.to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| valid_filter(format!("{} needs a name", el.local)))
}

pub fn parse_comp_filter(el: &Element, depth: usize) -> Result<CompFilter, DavError> {
    if depth > 8 {
        return Err(valid_filter("comp-filter nesting is too deep"));
    }
    let mut f = CompFilter {
        name: name_attr(el)?,
        is_not_defined: el.child(NS_CALDAV, "is-not-defined").is_some(),
        time_range: time_range(el)?,
        props: vec![],
        comps: vec![],
    };
    for c in &el.children {
        if c.is(NS_CALDAV, "comp-filter") {
            f.comps.push(parse_comp_filter(c, depth + 1)?);
        } else if c.is(NS_CALDAV, "prop-filter") {
            let mut p = PropFilter {
                name: name_attr(c)?,
                is_not_defined: c.child(NS_CALDAV, "is-not-defined").is_some(),
                time_range: time_range(c)?,
                text: text_match(c)?,
                params: vec![],
            };
            for pf in c.children_named(NS_CALDAV, "param-filter") {
                p.params.push(ParamFilter {
                    name: name_attr(pf)?,
                    is_not_defined: pf.child(NS_CALDAV, "is-not-defined").is_some(),
                    text: text_match(pf)?,
                });
            }
            f.props.push(p);
        }
    }
    Ok(f)
}

/// Components a time-range may be applied to (RFC 4791 9.9, and RFC 7953's availability).
const TIMED_COMPONENTS: &[&str] = &[
    "VEVENT",
    "VTODO",
    "VJOURNAL",
    "VFREEBUSY",
    "VALARM",
    "VAVAILABILITY",
    "AVAILABLE",
];

/// Properties whose values are dates, date-times or periods: the only ones a prop-filter may
/// test with a time-range (RFC 4791 9.7.2; its own invalid example is a SUMMARY).
const DATED_PROPERTIES: &[&str] = &[
    "DTSTART",
    "DTEND",
    "DUE",
    "DTSTAMP",
    "CREATED",
    "LAST-MODIFIED",
    "COMPLETED",
    "RECURRENCE-ID",
    "EXDATE",
    "RDATE",
    "TRIGGER",
    "FREEBUSY",
    "ACKNOWLEDGED",
];

/// The components each component may hold in a filter; anything else cannot match and is a
/// malformed filter (RFC 4791 7.8 `valid-filter`: VEVENT inside VEVENT, VALARM directly under
/// VCALENDAR).
fn may_hold(parent: &str, child: &str) -> bool {
    match parent {
        "VCALENDAR" => !matches!(
            child,
            "VCALENDAR" | "VALARM" | "STANDARD" | "DAYLIGHT" | "AVAILABLE"
        ),
        "VEVENT" | "VTODO" => child == "VALARM",
        "VTIMEZONE" => matches!(child, "STANDARD" | "DAYLIGHT"),
        "VAVAILABILITY" => child == "AVAILABLE",
        _ => child.starts_with("X-"),
    }
}

/// A parsed calendar-query filter checked against RFC 4791's structure: it starts at
/// VCALENDAR, which takes no time-range; each comp-filter names a component its parent can
/// hold; a time-range only on a component or property that has times.
pub fn check_filter(f: &CompFilter) -> Result<(), DavError> {
    if f.name != "VCALENDAR" {
        return Err(valid_filter(
            "the filter must start with comp-filter VCALENDAR",
        ));
    }
    check_comp(f)
}

fn check_comp(f: &CompFilter) -> Result<(), DavError> {
    if f.time_range.is_some()
        && !TIMED_COMPONENTS.contains(&f.name.as_str())
        && !f.name.starts_with("X-")
    {
        return Err(valid_filter(format!("{} has no time-range", f.name)));
    }
    for p in &f.props {
        if p.time_range.is_some()
            && !DATED_PROPERTIES.contains(&p.name.as_str())
            && !p.name.starts_with("X-")
        {
            return Err(valid_filter(format!(
                "{} is not a date or time: it takes no time-range",
                p.name
            )));
        }
    }
    for c in &f.comps {
        if !may_hold(&f.name, &c.name) {
            return Err(valid_filter(format!("{} cannot hold {}", f.name, c.name)));
        }
        check_comp(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_range_values() {
        assert_eq!(parse_utc("19700101T000000Z").unwrap(), 0);
        assert_eq!(parse_utc("20240105T100000Z").unwrap(), 1_704_448_800);
        assert_eq!(parse_utc("20240229T123456Z").unwrap(), 1_709_210_096);
        for bad in [
            "20240105T100000",
            "2024-01-05",
            "20241305T100000Z",
            "garbageZ",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }
}
