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
    fn limit_recurrence_set_keeps_master_and_touching_overrides() {
        let lim = IndexLimits {
            horizon: 1_900_000_000,
            max_instances: 100,
        };
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
