//! calendar-query (RFC 4791 7.8, 9.7): the XML filter parsed into `ical::filter` types, and the
//! plan that answers it from the time-range index, parsing only the objects the index cannot
//! decide (beyond their indexed horizon, or filters on properties).

use crate::ical::privacy::{Detail, Privacy};
use std::collections::HashMap;
use std::sync::Arc;

use crate::dav::{DavError, Element, NS_CALDAV};
use crate::ical::filter::{
    Collation, CompFilter, EvalContext, ParamFilter, PropFilter, TextMatch, TimeRange,
    instance_matches,
};
use crate::ical::index::MatchRule;
use crate::ical::zones::Zone;
use crate::store::{IndexReader, InstanceRow, Resource, ResourceId, ResourceReader, Store};

/// Window slack for floating times: the widest UTC offsets are -12 and +14 hours.
const FLOATING_SLACK: i64 = 15 * 3600;

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

/// Why a selection has no answer: the store failed, or an object has more instances near
/// the window than the limits allow (403 `max-instances`, never a silent omission).
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Ical(#[from] crate::ical::IcalError),
}

/// The members of a calendar a filter selects, shared with the listing they came from. Only
/// objects the index cannot decide are parsed.
/// `non_owner`: the privacy rule when the asker is not the owner; property filters are then
/// evaluated on what they may see, so a text-match cannot test withheld details.
pub async fn select(
    store: &Store,
    calendar: &Resource,
    filter: &CompFilter,
    ctx: &EvalContext,
    non_owner: Option<&Privacy>,
) -> Result<Vec<Arc<Resource>>, SelectError> {
    if filter.is_not_defined {
        return Ok(vec![]);
    }
    // The common shape: VCALENDAR > one component filter with a time range. It is answered
    // from index rows near the window; only the resources those rows name are loaded.
    if let [main] = filter.comps.as_slice()
        && filter.props.is_empty()
        && filter.time_range.is_none()
        && !main.is_not_defined
        && let Some(tr) = main.time_range
    {
        return select_by_time(store, calendar, filter, main, tr, ctx).await;
    }
    let objects: Vec<Arc<Resource>> = match store.listing(calendar).await? {
        Some(listing) => {
            let l = listing.read().unwrap_or_else(|e| e.into_inner());
            l.members()
                .filter(|c| c.component.is_some())
                .cloned()
                .collect()
        }
        None => store
            .children(calendar.id)
            .await?
            .into_iter()
            .filter(|c| c.component.is_some())
            .map(Arc::new)
            .collect(),
    };
    let (main, rest_simple) = match filter.comps.as_slice() {
        [] => {
            return if filter.is_simple() {
                Ok(objects)
            } else {
                parse_all(store, objects, filter, ctx, non_owner).await
            };
        }
        [m] => (m, filter.props.is_empty() && filter.time_range.is_none()),
        _ => return parse_all(store, objects, filter, ctx, non_owner).await,
    };
    let of_type = |r: &Resource| r.component.as_deref() == Some(main.name.as_str());
    if main.is_not_defined {
        let kept: Vec<Arc<Resource>> = objects.into_iter().filter(|r| !of_type(r)).collect();
        return if rest_simple {
            Ok(kept)
        } else {
            parse_all(store, kept, filter, ctx, non_owner).await
        };
    }
    let typed: Vec<Arc<Resource>> = objects.into_iter().filter(|r| of_type(r)).collect();
    if rest_simple && main.props.is_empty() && main.comps.is_empty() {
        Ok(typed)
    } else {
        parse_all(store, typed, filter, ctx, non_owner).await
    }
}

async fn select_by_time(
    store: &Store,
    calendar: &Resource,
    filter: &CompFilter,
    main: &CompFilter,
    tr: TimeRange,
    ctx: &EvalContext,
) -> Result<Vec<Arc<Resource>>, SelectError> {
    let simple = main.props.is_empty() && main.comps.is_empty();
    let from = tr.start.saturating_sub(FLOATING_SLACK);
    let to = tr.end.saturating_add(FLOATING_SLACK);
    let complete = |r: &Resource| r.complete_until.is_none_or(|c| c >= tr.end);
    let of_type = |r: &Resource| r.component.as_deref() == Some(main.name.as_str());
    // Each member is decided once, however many of its instances fall in the window, and
    // only members that are returned or must be parsed are copied out of the listing.
    let mut decided: Vec<ResourceId> = vec![];
    let mut consider = |r: &Resource, row: &InstanceRow| {
        if of_type(r) && complete(r) && instance_matches(&row.instance, tr, &ctx.floating_zone) {
            decided.push(r.id);
        }
    };
    let mut undecided: Vec<Arc<Resource>> = vec![];
    let hits: Vec<Arc<Resource>>;
    // Objects whose index ends before the window (`incomplete`) must be expanded now.
    match store.listing(calendar).await? {
        Some(listing) => {
            let l = listing.read().unwrap_or_else(|e| e.into_inner());
            // Rows wholly before the widened window cannot match in any zone: skipped before
            // the member lookup (the scan starts a long span early). A to-do with only
            // CREATED, or none of the dates, matches whatever the window's start.
            let may_reach = |r: &InstanceRow| {
                r.instance.start.max(r.instance.end) >= from
                    || matches!(r.instance.rule, MatchRule::TodoCreated | MatchRule::Always)
            };
            for row in l.instances_between(from, to).filter(may_reach) {
                if let Some(r) = l.by_id(row.resource) {
                    consider(r, &row);
                }
            }
            decided.sort_unstable();
            decided.dedup();
            hits = decided
                .iter()
                .filter_map(|id| l.by_id(*id))
                .cloned()
                .collect();
            undecided.extend(
                l.incomplete(from, to)
                    .filter(|r| of_type(r) && !complete(r))
                    .cloned(),
            );
        }
        None => {
            let rows = store.instances_between(calendar.id, from, to).await?;
            let mut ids: Vec<ResourceId> = rows.iter().map(|r| r.resource).collect();
            ids.sort();
            ids.dedup();
            let near: HashMap<ResourceId, Arc<Resource>> = store
                .children_by_id(calendar.id, &ids)
                .await?
                .into_iter()
                .map(|r| (r.id, Arc::new(r)))
                .collect();
            for row in &rows {
                if let Some(r) = near.get(&row.resource) {
                    consider(r, row);
                }
            }
            decided.sort_unstable();
            decided.dedup();
            hits = decided
                .iter()
                .filter_map(|id| near.get(id))
                .cloned()
                .collect();
            undecided.extend(
                store
                    .incomplete_objects(calendar.id, from, to)
                    .await?
                    .into_iter()
                    .filter(|r| of_type(r) && !complete(r))
                    .map(Arc::new),
            );
        }
    }
    let mut out = if simple {
        hits
    } else {
        undecided.extend(hits);
        vec![]
    };
    undecided.sort_by_key(|r| r.id);
    undecided.dedup_by_key(|r| r.id);
    // Timing only: what the window tests is shown to everyone who may read the calendar.
    out.extend(parse_all(store, undecided, filter, ctx, None).await?);
    // Names are unique in a collection: an unstable sort gives the same order, in place.
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn parse_all(
    store: &Store,
    candidates: Vec<Arc<Resource>>,
    filter: &CompFilter,
    ctx: &EvalContext,
    non_owner: Option<&Privacy>,
) -> Result<Vec<Arc<Resource>>, SelectError> {
    let mut out = vec![];
    for r in candidates {
        let Some(body) = store.object_data(r.id).await? else {
            continue;
        };
        let seen = match non_owner {
            Some(p) => crate::ical::privacy::non_owner_view(&body, p, Detail::Full),
            None => std::borrow::Cow::Borrowed(&body[..]),
        };
        if crate::ical::filter::matches_checked(&seen, filter, ctx)?.unwrap_or(false) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The zone floating times are read in: the query's `CALDAV:timezone`, else the calendar's
/// `calendar-timezone`, else UTC (RFC 4791 9.8, 7.3).
pub fn floating_zone(query_tz: Option<&str>, calendar_tz: Option<&str>) -> Zone {
    for text in [query_tz, calendar_tz].into_iter().flatten() {
        if let Some(z) = crate::ical::zone_of_vtimezone(text.as_bytes()) {
            return z;
        }
    }
    Zone::Utc
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
