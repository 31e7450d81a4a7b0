//! Partial retrieval of calendar data (RFC 4791 9.6.1): only the components and properties a
//! client names in `CALDAV:comp`/`CALDAV:prop`, and `limit-recurrence-set` (9.6.6), which keeps
//! the master plus only the overrides that touch a time range. Lines that are kept are copied
//! as written.
//!
//! Pure: no I/O, no SQL, no XML.

use icalrs::tree::cst::{IcalCst, IcalItem};

use super::filter::TimeRange;
use super::index::{IndexLimits, expand_components};
use super::subcomponents;

/// What `CALDAV:comp` selects (RFC 4791 9.6.1: neither `allprop` nor `prop` means no
/// properties; neither `allcomp` nor `comp` means no components).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompSelect {
    pub name: String,
    pub all_props: bool,
    pub props: Vec<String>,
    pub all_comps: bool,
    pub comps: Vec<CompSelect>,
}

fn name_of(c: &IcalCst<'_>) -> String {
    c.begin
        .as_ref()
        .map(|b| b.raw_value_str().trim().to_ascii_uppercase())
        .unwrap_or_default()
}

fn select<'a>(c: &IcalCst<'a>, sel: &CompSelect) -> IcalCst<'a> {
    let mut out = c.clone();
    out.items = c
        .items
        .iter()
        .filter_map(|item| match item {
            IcalItem::Prop(line) => {
                let keep = sel.all_props
                    || sel
                        .props
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(line.name.get()));
                keep.then(|| IcalItem::Prop(line.clone()))
            }
            IcalItem::Component(sub) => {
                if sel.all_comps {
                    return Some(IcalItem::Component(sub.clone()));
                }
                let n = name_of(sub);
                sel.comps
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&n))
                    .map(|s| IcalItem::Component(Box::new(select(sub, s))))
            }
            IcalItem::Opaque(b) => sel.all_props.then(|| IcalItem::Opaque(b.clone())),
        })
        .collect();
    out
}

/// Apply a component/property selection to a stored body.
pub fn select_parts(body: &[u8], sel: &CompSelect) -> Option<String> {
    let root = super::parse_stored(body)?;
    if !name_of(&root).eq_ignore_ascii_case(&sel.name) {
        return Some(String::new());
    }
    Some(select(&root, sel).to_string())
}

/// RFC 4791 9.6.6: keep the master component and the overrides whose instance overlaps the
/// range (the instance they replace, or where they move it).
pub fn limit_recurrence_set(body: &[u8], range: TimeRange, limits: IndexLimits) -> Option<String> {
    let root = super::parse_stored(body)?;
    let decoded = root.decode();
    let expansion = expand_components(&decoded.components, limits).ok()?;
    let subs: Vec<&IcalCst<'_>> = subcomponents(&root).collect();
    let touching: Vec<usize> = expansion
        .occurrences
        .iter()
        .filter(|o| o.instance.matches(range.start, range.end))
        .map(|o| o.source)
        .collect();
    let is_override = |c: &IcalCst<'_>| {
        c.items.iter().any(
            |i| matches!(i, IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case("RECURRENCE-ID")),
        )
    };
    let mut out = root.clone();
    let mut index = 0usize;
    out.items.retain(|item| match item {
        IcalItem::Component(_) => {
            let keep = subs
                .get(index)
                .is_none_or(|c| !is_override(c) || touching.contains(&index));
            index += 1;
            keep
        }
        _ => true,
    });
    Some(out.to_string())
}

/// RFC 4791 9.6.7: in VFREEBUSY components, keep only the FREEBUSY periods that overlap the
/// range, and drop a FREEBUSY property left with none. Everything else is copied as written.
pub fn limit_freebusy_set(body: &[u8], range: TimeRange) -> Option<String> {
    // Pass one computes each FREEBUSY line's new value (None: drop the line); pass two parses
    // again, borrowing those values, and writes the result.
    let mut values: Vec<Option<String>> = vec![];
    {
        let root = super::parse_stored(body)?;
        visit_freebusy(&root, false, &mut |line| {
            let kept: Vec<&str> = line
                .split(',')
                .filter(|p| period_overlaps(p.trim(), range))
                .collect();
            values.push((!kept.is_empty()).then(|| kept.join(",")));
        });
    }
    let mut root = super::parse_stored(body)?;
    let mut next = values.iter();
    rewrite_freebusy(&mut root, false, &mut next);
    Some(root.to_string())
}

fn is_freebusy_line(item: &IcalItem<'_>) -> bool {
    matches!(item, IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case("FREEBUSY"))
}

fn visit_freebusy(c: &IcalCst<'_>, inside: bool, f: &mut dyn FnMut(&str)) {
    let inside = inside || name_of(c) == "VFREEBUSY";
    for item in &c.items {
        match item {
            IcalItem::Prop(l) if inside && is_freebusy_line(item) => f(&l.raw_value_str()),
            IcalItem::Component(sub) => visit_freebusy(sub, inside, f),
            _ => {}
        }
    }
}

fn rewrite_freebusy<'a>(
    c: &mut IcalCst<'a>,
    inside: bool,
    next: &mut std::slice::Iter<'a, Option<String>>,
) {
    let inside = inside || name_of(c) == "VFREEBUSY";
    let items = std::mem::take(&mut c.items);
    for mut item in items {
        let freebusy = inside && is_freebusy_line(&item);
        match &mut item {
            IcalItem::Prop(l) if freebusy => {
                match next.next() {
                    Some(Some(v)) => {
                        l.value = icalrs::tree::value::node::IcalValueNode::parse(v.as_bytes());
                        l.wire = Default::default();
                    }
                    // No period of this line overlaps: the property goes.
                    _ => continue,
                }
            }
            IcalItem::Component(sub) => rewrite_freebusy(sub, inside, next),
            _ => {}
        }
        c.items.push(item);
    }
}

/// Does a FREEBUSY period (`start/end` or `start/duration`, UTC) overlap the range? A period
/// that cannot be read is kept: dropping data we do not understand would lose it silently.
fn period_overlaps(period: &str, range: TimeRange) -> bool {
    let Some((a, b)) = period.split_once('/') else {
        return true;
    };
    let Some(start) = utc_seconds(a) else {
        return true;
    };
    let end = if b.starts_with(['P', '+', '-']) {
        super::filter::duration_seconds(b).map(|d| start.saturating_add(d))
    } else {
        utc_seconds(b)
    };
    let Some(end) = end else {
        return true;
    };
    start < range.end && end > range.start
}

fn utc_seconds(text: &str) -> Option<i64> {
    let t = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", text.trim()).ok()?;
    let dt = t.to_datetime().ok()?;
    Some(
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTART:20240101T090000Z\r\nDTEND:20240101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=10\r\nSUMMARY:Daily\r\nDESCRIPTION:long text\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID:20240103T090000Z\r\nDTSTART:20240103T120000Z\r\nDTEND:20240103T130000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID:20240108T090000Z\r\nDTSTART:20240108T120000Z\r\nDTEND:20240108T130000Z\r\nSUMMARY:Later\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn selects_named_properties_and_components() {
        let sel = CompSelect {
            name: "VCALENDAR".into(),
            all_props: true,
            props: vec![],
            all_comps: false,
            comps: vec![CompSelect {
                name: "VEVENT".into(),
                all_props: false,
                props: vec!["UID".into(), "SUMMARY".into()],
                all_comps: false,
                comps: vec![],
            }],
        };
        let out = select_parts(BODY.as_bytes(), &sel).unwrap();
        assert!(out.contains("PRODID:t") && out.contains("SUMMARY:Daily") && out.contains("UID:w"));
        assert!(
            !out.contains("DESCRIPTION") && !out.contains("VALARM") && !out.contains("RRULE"),
            "{out}"
        );
    }

    #[test]
    fn limit_freebusy_set_keeps_overlapping_periods_only() {
        let fb = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VFREEBUSY\r\nUID:f\r\nDTSTAMP:20240101T000000Z\r\nFREEBUSY;FBTYPE=BUSY:20240101T090000Z/20240101T100000Z,20240105T090000Z/PT1H\r\nFREEBUSY:20240110T090000Z/PT2H\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
        // 2024-01-05 00:00Z .. 2024-01-06 00:00Z
        let out = limit_freebusy_set(
            fb.as_bytes(),
            TimeRange::new(Some(1_704_412_800), Some(1_704_499_200)),
        )
        .unwrap();
        assert!(
            out.contains("FREEBUSY;FBTYPE=BUSY:20240105T090000Z/PT1H\r\n"),
            "{out}"
        );
        assert!(
            !out.contains("20240101T090000Z/") && !out.contains("20240110"),
            "{out}"
        );
        assert!(out.contains("UID:f\r\n") && out.contains("END:VFREEBUSY"));
        // Events are untouched.
        assert_eq!(
            limit_freebusy_set(BODY.as_bytes(), TimeRange::new(Some(0), Some(1))).unwrap(),
            BODY
        );
    }

    #[test]
    fn limit_recurrence_set_keeps_master_and_touching_overrides() {
        let lim = IndexLimits::on_write(1_900_000_000, 100);
        // 2024-01-03 00:00Z .. 2024-01-04 00:00Z
        let out = limit_recurrence_set(
            BODY.as_bytes(),
            TimeRange::new(Some(1_704_240_000), Some(1_704_326_400)),
            lim,
        )
        .unwrap();
        assert!(out.contains("SUMMARY:Daily") && out.contains("SUMMARY:Moved"));
        assert!(!out.contains("SUMMARY:Later"), "{out}");
    }
}
