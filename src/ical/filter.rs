//! CalDAV query filters (RFC 4791 9.7) as data, and their evaluation against one calendar
//! object. The `caldav` module parses the XML into these types; evaluation here reads the
//! object's syntax tree for properties and parameters and the recurrence index for time ranges.
//!
//! Pure: no I/O, no SQL, no XML.

use icalrs::recur::IcalRecurDateTime;
use icalrs::tree::cst::{IcalCst, IcalItem};
use icalrs::tree::line::IcalLine;
use icalrs::tz::IcalTz;

use super::index::{IndexLimits, Instance, NEG_INF, POS_INF, expand_components};
use super::zones::Zone;

/// A time range `[start, end)` in Unix seconds; a missing bound is unbounded (RFC 4791 9.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    pub fn new(start: Option<i64>, end: Option<i64>) -> TimeRange {
        TimeRange {
            start: start.unwrap_or(NEG_INF),
            end: end.unwrap_or(POS_INF),
        }
    }
}

/// Collations (RFC 4790) CalDAV servers must support (RFC 4791 7.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collation {
    AsciiCasemap,
    Octet,
    UnicodeCasemap,
}

impl Collation {
    pub fn parse(name: &str) -> Option<Collation> {
        match name {
            "i;ascii-casemap" => Some(Collation::AsciiCasemap),
            "i;octet" => Some(Collation::Octet),
            "i;unicode-casemap" => Some(Collation::UnicodeCasemap),
            _ => None,
        }
    }

    /// Substring match (RFC 4791 9.7.5).
    pub fn contains(self, haystack: &str, needle: &str) -> bool {
        match self {
            Collation::Octet => haystack.contains(needle),
            Collation::AsciiCasemap => haystack
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            // RFC 5051 titlecase folding; lower-casing is the practical equivalent for the
            // scripts clients search in.
            Collation::UnicodeCasemap => haystack.to_lowercase().contains(&needle.to_lowercase()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    pub value: String,
    pub collation: Collation,
    pub negate: bool,
}

impl TextMatch {
    fn matches(&self, text: &str) -> bool {
        self.collation.contains(text, &self.value) != self.negate
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub text: Option<TextMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub time_range: Option<TimeRange>,
    pub text: Option<TextMatch>,
    pub params: Vec<ParamFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub time_range: Option<TimeRange>,
    pub props: Vec<PropFilter>,
    pub comps: Vec<CompFilter>,
}

impl CompFilter {
    /// Only a component name and perhaps a time range: answerable from the index alone.
    pub fn is_simple(&self) -> bool {
        !self.is_not_defined && self.props.is_empty() && self.comps.is_empty()
    }
}

/// How floating times are read: the calendar's (or the query's) time zone (RFC 4791 9.9).
#[derive(Debug, Clone)]
pub struct EvalContext {
    pub floating_zone: Zone,
    pub limits: IndexLimits,
}

/// Convert a window to the civil clock of floating instances.
pub fn window_for(inst: &Instance, tr: TimeRange, floating_zone: &Zone) -> (i64, i64) {
    if !inst.floating {
        return (tr.start, tr.end);
    }
    let shift = |t: i64| {
        if t <= NEG_INF || t >= POS_INF {
            t
        } else {
            t + floating_zone.offset_at(t)
        }
    };
    (shift(tr.start), shift(tr.end))
}

pub fn instance_matches(inst: &Instance, tr: TimeRange, floating_zone: &Zone) -> bool {
    let (a, b) = window_for(inst, tr, floating_zone);
    inst.matches(a, b)
}

fn name_of(c: &IcalCst<'_>) -> String {
    c.begin
        .as_ref()
        .map(|b| b.raw_value_str().trim().to_ascii_uppercase())
        .unwrap_or_default()
}

use super::subcomponents;

fn props_named<'c, 'a>(
    c: &'c IcalCst<'a>,
    name: &'c str,
) -> impl Iterator<Item = &'c IcalLine<'a>> {
    c.items.iter().filter_map(move |i| match i {
        IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case(name) => Some(l),
        _ => None,
    })
}

/// RFC 5545 3.3.11 text unescaping.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn param_values(line: &IcalLine<'_>, name: &str) -> Option<Vec<String>> {
    line.params
        .iter()
        .find(|p| p.name.get().eq_ignore_ascii_case(name))
        .map(|p| {
            p.values
                .iter()
                .map(|v| v.get().trim_matches('"').to_string())
                .collect()
        })
}

/// The instant a DATE or DATE-TIME line names, and whether it is floating.
pub(crate) fn line_instant(line: &IcalLine<'_>, carried: &[IcalTz]) -> Option<(i64, bool)> {
    let raw = line.raw_value_str();
    let text = raw.trim();
    let civil = IcalRecurDateTime::parse(text).ok()?;
    let zone = if !text.contains('T') {
        Zone::Floating
    } else if text.ends_with(['Z', 'z']) {
        Zone::Utc
    } else {
        param_values(line, "TZID")
            .and_then(|v| v.first().and_then(|t| Zone::for_tzid(t, carried)))
            .unwrap_or(Zone::Floating)
    };
    Some((zone.instant(civil), zone.is_floating()))
}

struct Object {
    carried: Vec<IcalTz>,
    /// The recurrence set within the query horizon: each instance with its RECURRENCE-ID (on
    /// the series' clock) and whether an override describes it.
    occurrences: Vec<(Option<i64>, bool, Instance)>,
}

impl Object {
    fn all(&self) -> Vec<Instance> {
        self.occurrences.iter().map(|(_, _, i)| *i).collect()
    }

    /// The instances main component `c` describes (RFC 4791 9.9: a comp-filter's tests hold
    /// for one instance together): an override its own, the series those no override
    /// replaced.
    fn instances_of(&self, c: &IcalCst<'_>) -> Vec<Instance> {
        match props_named(c, "RECURRENCE-ID").next() {
            None => self
                .occurrences
                .iter()
                .filter(|(_, over, _)| !over)
                .map(|(_, _, i)| *i)
                .collect(),
            Some(l) => {
                let Some((rid, _)) = line_instant(l, &self.carried) else {
                    return vec![];
                };
                self.occurrences
                    .iter()
                    .filter(|(r, over, _)| *over && *r == Some(rid))
                    .map(|(_, _, i)| *i)
                    .collect()
            }
        }
    }
}

/// Evaluate a VCALENDAR comp-filter against one object body. Returns `None` when the body
/// does not parse (such an object never matches).
pub fn matches(body: &[u8], filter: &CompFilter, ctx: &EvalContext) -> Option<bool> {
    matches_checked(body, filter, ctx).ok().flatten()
}

/// `matches`, with the one error a caller must not swallow: the set has more instances near
/// the window than the limits allow (`TooManyInstances`), which no answer can be given for.
pub fn matches_checked(
    body: &[u8],
    filter: &CompFilter,
    ctx: &EvalContext,
) -> Result<Option<bool>, super::IcalError> {
    let Some(root) = super::parse_stored(body) else {
        return Ok(None);
    };
    let decoded = root.decode();
    let carried: Vec<IcalTz> = super::carried_zones(&decoded.components);
    let occurrences = match expand_components(&decoded.components, ctx.limits) {
        Ok(e) => e
            .occurrences
            .into_iter()
            .map(|o| (o.recurrence_id, o.from_override, o.instance))
            .collect(),
        Err(e @ super::IcalError::TooManyInstances(_)) if has_time_range(filter) => {
            return Err(e);
        }
        Err(_) => vec![],
    };
    let obj = Object {
        carried,
        occurrences,
    };
    if name_of(&root) != filter.name.to_ascii_uppercase() {
        return Ok(Some(filter.is_not_defined));
    }
    Ok(Some(eval_within(&obj, &root, filter, ctx, 0, &obj.all())))
}

fn is_main_name(name: &str) -> bool {
    matches!(name, "VEVENT" | "VTODO" | "VJOURNAL")
}

/// Whether any component filter in `f` has a time range (only those need instances).
fn has_time_range(f: &CompFilter) -> bool {
    let mut stack = vec![f];
    while let Some(c) = stack.pop() {
        if c.time_range.is_some() {
            return true;
        }
        stack.extend(c.comps.iter());
    }
    false
}

/// Does component `c` (already known to carry the filter's name) satisfy the filter's body?
/// `insts`: the instances `c` stands for (a main component's own; its alarms', the same).
fn eval_within(
    obj: &Object,
    c: &IcalCst<'_>,
    f: &CompFilter,
    ctx: &EvalContext,
    depth: usize,
    insts: &[Instance],
) -> bool {
    if let Some(tr) = f.time_range
        && !component_in_range(obj, c, tr, ctx, depth, insts)
    {
        return false;
    }
    for pf in &f.props {
        if !eval_prop(obj, c, pf, ctx) {
            return false;
        }
    }
    for cf in &f.comps {
        let want = cf.name.to_ascii_uppercase();
        let named: Vec<&IcalCst<'_>> = subcomponents(c).filter(|s| name_of(s) == want).collect();
        if cf.is_not_defined {
            if !named.is_empty() {
                return false;
            }
            continue;
        }
        if !named.iter().any(|s| {
            if depth == 0 && is_main_name(&want) {
                eval_within(obj, s, cf, ctx, depth + 1, &obj.instances_of(s))
            } else {
                eval_within(obj, s, cf, ctx, depth + 1, insts)
            }
        }) {
            return false;
        }
    }
    true
}

fn component_in_range(
    obj: &Object,
    c: &IcalCst<'_>,
    tr: TimeRange,
    ctx: &EvalContext,
    depth: usize,
    insts: &[Instance],
) -> bool {
    let name = name_of(c);
    if name == "VALARM" {
        return alarm_in_range(obj, c, tr, ctx, insts);
    }
    // A main component: any instance it describes (RFC 4791 9.9). An override whose
    // RECURRENCE-ID names no instance of the set is judged by its own DTSTART and DTEND.
    let orphan = depth == 1 && insts.is_empty() && props_named(c, "RECURRENCE-ID").next().is_some();
    if (depth == 1 || depth == 0) && !orphan {
        return insts
            .iter()
            .any(|i| instance_matches(i, tr, &ctx.floating_zone));
    }
    // Other nested components with their own DTSTART/DTEND.
    let start = props_named(c, "DTSTART")
        .next()
        .and_then(|l| line_instant(l, &obj.carried));
    let end = props_named(c, "DTEND")
        .next()
        .and_then(|l| line_instant(l, &obj.carried));
    match (start, end) {
        (Some((s, fl)), Some((e, _))) => {
            let i = Instance {
                start: s,
                end: e,
                rule: super::index::MatchRule::Overlap,
                floating: fl,
            };
            instance_matches(&i, tr, &ctx.floating_zone)
        }
        (Some((s, fl)), None) => {
            let i = Instance {
                start: s,
                end: s,
                rule: super::index::MatchRule::Point,
                floating: fl,
            };
            instance_matches(&i, tr, &ctx.floating_zone)
        }
        _ => false,
    }
}

/// RFC 4791 9.9 VALARM: any trigger time `t` (with repeats) such that `start <= t < end`.
fn alarm_in_range(
    obj: &Object,
    alarm: &IcalCst<'_>,
    tr: TimeRange,
    ctx: &EvalContext,
    insts: &[Instance],
) -> bool {
    let Some(trigger) = props_named(alarm, "TRIGGER").next() else {
        return false;
    };
    let raw = trigger.raw_value_str().trim().to_string();
    let repeat: i64 = props_named(alarm, "REPEAT")
        .next()
        .and_then(|l| l.raw_value_str().trim().parse().ok())
        .unwrap_or(0)
        .clamp(0, 1000);
    let every = props_named(alarm, "DURATION")
        .next()
        .and_then(|l| duration_seconds(l.raw_value_str().trim()))
        .unwrap_or(0);
    let hit = |t: i64, floating: bool| {
        (0..=repeat).any(|k| {
            let at = t + k * every;
            let i = Instance {
                start: at,
                end: at,
                rule: super::index::MatchRule::Point,
                floating,
            };
            instance_matches(&i, tr, &ctx.floating_zone)
        })
    };
    let absolute = param_values(trigger, "VALUE")
        .is_some_and(|v| v.iter().any(|x| x.eq_ignore_ascii_case("DATE-TIME")))
        || (raw.len() >= 15 && raw.as_bytes()[0].is_ascii_digit());
    if absolute {
        return line_instant(trigger, &obj.carried).is_some_and(|(t, fl)| hit(t, fl));
    }
    let Some(offset) = duration_seconds(&raw) else {
        return false;
    };
    let related_end = param_values(trigger, "RELATED")
        .is_some_and(|v| v.iter().any(|x| x.eq_ignore_ascii_case("END")));
    insts.iter().any(|i| {
        let base = if related_end { i.end } else { i.start };
        base > NEG_INF && base < POS_INF && hit(base + offset, i.floating)
    })
}

/// RFC 5545 3.3.6 duration to seconds (weeks and days as 7 and 1 nominal days).
pub fn duration_seconds(text: &str) -> Option<i64> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let mut total: i64 = 0;
    let mut num: i64 = 0;
    let mut seen = false;
    for ch in rest.chars() {
        match ch {
            '0'..='9' => {
                num = num
                    .checked_mul(10)?
                    .checked_add(i64::from(ch as u8 - b'0'))?;
                seen = true;
            }
            'T' | 't' => {}
            'W' | 'w' => total += num * 7 * 86_400,
            'D' | 'd' => total += num * 86_400,
            'H' | 'h' => total += num * 3600,
            'M' | 'm' => total += num * 60,
            'S' | 's' => total += num,
            _ => return None,
        }
        if ch.is_ascii_alphabetic() && ch != 'T' && ch != 't' {
            num = 0;
        }
    }
    seen.then_some(if neg { -total } else { total })
}

fn eval_prop(obj: &Object, c: &IcalCst<'_>, f: &PropFilter, ctx: &EvalContext) -> bool {
    let lines: Vec<&IcalLine<'_>> = props_named(c, &f.name).collect();
    if f.is_not_defined {
        return lines.is_empty();
    }
    lines.iter().any(|line| {
        if let Some(tr) = f.time_range {
            // RFC 4791 9.9 for date-time properties: start <= value < end.
            match line_instant(line, &obj.carried) {
                Some((t, fl)) => {
                    let i = Instance {
                        start: t,
                        end: t,
                        rule: super::index::MatchRule::Point,
                        floating: fl,
                    };
                    if !instance_matches(&i, tr, &ctx.floating_zone) {
                        return false;
                    }
                }
                None => return false,
            }
        }
        if let Some(tm) = &f.text
            && !tm.matches(&unescape(&line.raw_value_str()))
        {
            return false;
        }
        f.params
            .iter()
            .all(|pf| match param_values(line, &pf.name) {
                None => pf.is_not_defined,
                Some(_) if pf.is_not_defined => false,
                Some(values) => match &pf.text {
                    None => true,
                    Some(tm) => values.iter().any(|v| tm.matches(v)),
                },
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> EvalContext {
        EvalContext {
            floating_zone: Zone::Utc,
            limits: IndexLimits::on_write(1_900_000_000, 5000),
        }
    }

    fn vcal(inner: CompFilter) -> CompFilter {
        CompFilter {
            name: "VCALENDAR".into(),
            is_not_defined: false,
            time_range: None,
            props: vec![],
            comps: vec![inner],
        }
    }

    fn comp(name: &str) -> CompFilter {
        CompFilter {
            name: name.into(),
            is_not_defined: false,
            time_range: None,
            props: vec![],
            comps: vec![],
        }
    }

    fn prop(name: &str) -> PropFilter {
        PropFilter {
            name: name.into(),
            is_not_defined: false,
            time_range: None,
            text: None,
            params: vec![],
        }
    }

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\nSUMMARY:Team Meeting\\, weekly\r\nATTENDEE;PARTSTAT=ACCEPTED;CN=\"Doe, Jane\":mailto:jane@example.com\r\nCATEGORIES:WORK,TEAM\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn m(f: CompFilter) -> bool {
        matches(EVENT.as_bytes(), &f, &ctx()).unwrap()
    }

    #[test]
    fn text_match_with_collations_and_negation() {
        let mut e = comp("VEVENT");
        let mut p = prop("SUMMARY");
        p.text = Some(TextMatch {
            value: "meeting, WEEKLY".into(),
            collation: Collation::AsciiCasemap,
            negate: false,
        });
        e.props.push(p.clone());
        assert!(
            m(vcal(e.clone())),
            "unescaped value, ASCII case-insensitive substring"
        );
        p.text = Some(TextMatch {
            value: "meeting".into(),
            collation: Collation::Octet,
            negate: false,
        });
        e.props = vec![p.clone()];
        assert!(!m(vcal(e.clone())), "i;octet is case-sensitive");
        p.text = Some(TextMatch {
            value: "meeting".into(),
            collation: Collation::Octet,
            negate: true,
        });
        e.props = vec![p];
        assert!(m(vcal(e)), "negate-condition");
    }

    #[test]
    fn is_not_defined_and_params() {
        let mut e = comp("VEVENT");
        let mut p = prop("LOCATION");
        p.is_not_defined = true;
        e.props.push(p);
        assert!(m(vcal(e.clone())));
        let mut att = prop("ATTENDEE");
        att.params.push(ParamFilter {
            name: "PARTSTAT".into(),
            is_not_defined: false,
            text: Some(TextMatch {
                value: "accepted".into(),
                collation: Collation::AsciiCasemap,
                negate: false,
            }),
        });
        e.props = vec![att.clone()];
        assert!(m(vcal(e.clone())));
        att.params[0].text.as_mut().unwrap().value = "DECLINED".into();
        e.props = vec![att];
        assert!(!m(vcal(e)));
        let mut todo = comp("VTODO");
        todo.is_not_defined = true;
        assert!(m(vcal(todo)));
    }

    #[test]
    fn time_ranges_on_event_and_alarm() {
        let mut e = comp("VEVENT");
        e.time_range = Some(TimeRange::new(Some(1_704_448_800 + 3599), None));
        assert!(m(vcal(e.clone())));
        e.time_range = Some(TimeRange::new(Some(1_704_452_400), None));
        assert!(!m(vcal(e.clone())), "DTEND is exclusive");
        let mut alarm = comp("VALARM");
        // Trigger at 09:45Z.
        alarm.time_range = Some(TimeRange::new(Some(1_704_447_900), Some(1_704_447_901)));
        let mut e2 = comp("VEVENT");
        e2.comps.push(alarm.clone());
        assert!(m(vcal(e2.clone())));
        alarm.time_range = Some(TimeRange::new(Some(1_704_447_901), Some(1_704_448_800)));
        e2.comps = vec![alarm];
        assert!(!m(vcal(e2)));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("-PT15M"), Some(-900));
        assert_eq!(duration_seconds("P1DT2H"), Some(93_600));
        assert_eq!(duration_seconds("P2W"), Some(1_209_600));
        assert_eq!(duration_seconds("PT"), None);
        assert_eq!(duration_seconds("X"), None);
    }
}
