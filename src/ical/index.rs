//! The time-range index of a calendar object: every instance of its main component as a span
//! of instants plus the RFC 4791 9.9 rule that says how a time-range query matches it.
//!
//! Computed once on write, so queries never re-parse objects; recurrence sets (RRULE, RDATE,
//! EXDATE, RECURRENCE-ID overrides) are expanded up to a horizon and the object records how far
//! its instances are complete (`complete_until`). Expansion is bounded: more instances than the
//! configured cap inside the horizon is an error (an "RRULE bomb" is a 4xx, not a hung worker).
//!
//! Pure: no I/O, no SQL, no HTTP.

use icalrs::component::IcalComponent;
use icalrs::param::IcalParam;
use icalrs::prop::{IcalProp, IcalPropKind, IcalPropName};
use icalrs::recur::IcalRecurDateTime;
use icalrs::recur::set::IcalRecurSet;
use icalrs::tree::cst::IcalCst;
use icalrs::tz::IcalTz;
use icalrs::value::IcalValue;

use super::zones::Zone;
use super::{ComponentKind, IcalError};

/// Instants are Unix seconds; these stand for "no bound".
pub const NEG_INF: i64 = i64::MIN / 4;
pub const POS_INF: i64 = i64::MAX / 4;
const DAY: i64 = 86_400;

/// How a time-range `[a, b)` matches an instance `(start, end)` (RFC 4791 9.9 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MatchRule {
    /// `a < end && b > start` (VEVENT with DTEND or positive duration; DATE events).
    Overlap = 0,
    /// `a <= start && b > start` (DATE-TIME DTSTART without end, zero DURATION, VJOURNAL, VTODO
    /// with DTSTART only).
    Point = 1,
    /// VTODO DTSTART+DURATION: `a <= end && (b > start || b >= end)`.
    TodoStartDuration = 2,
    /// VTODO DTSTART+DUE: `(a < end || a <= start) && (b > start || b >= end)`.
    TodoStartDue = 3,
    /// VTODO DUE only: `a < end && b >= end`.
    TodoDue = 4,
    /// VTODO COMPLETED and/or CREATED: `(a <= start || a <= end) && (b >= start || b >= end)`.
    TodoCompletedCreated = 5,
    /// VTODO CREATED only: `b > start`.
    TodoCreated = 6,
    /// VTODO with none of these: always matches.
    Always = 7,
}

impl MatchRule {
    pub fn from_code(c: i64) -> MatchRule {
        match c {
            1 => MatchRule::Point,
            2 => MatchRule::TodoStartDuration,
            3 => MatchRule::TodoStartDue,
            4 => MatchRule::TodoDue,
            5 => MatchRule::TodoCompletedCreated,
            6 => MatchRule::TodoCreated,
            7 => MatchRule::Always,
            _ => MatchRule::Overlap,
        }
    }
}

/// One instance of the main component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub start: i64,
    pub end: i64,
    pub rule: MatchRule,
    /// Floating (or DATE) times: `start`/`end` are civil seconds, to be read in the calendar's
    /// time zone at query time (RFC 4791 9.9, "floating").
    pub floating: bool,
}

impl Instance {
    /// Does the time-range `[a, b)` (bounds already in this instance's clock) select it?
    pub fn matches(&self, a: i64, b: i64) -> bool {
        let (s, e) = (self.start, self.end);
        match self.rule {
            MatchRule::Overlap => a < e && b > s,
            MatchRule::Point => a <= s && b > s,
            MatchRule::TodoStartDuration => a <= e && (b > s || b >= e),
            MatchRule::TodoStartDue => (a < e || a <= s) && (b > s || b >= e),
            MatchRule::TodoDue => a < e && b >= e,
            MatchRule::TodoCompletedCreated => (a <= s || a <= e) && (b >= s || b >= e),
            MatchRule::TodoCreated => b > s,
            MatchRule::Always => true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct IndexLimits {
    /// Instances are expanded up to this instant (the rolling horizon).
    pub horizon: i64,
    /// On write (`from` is `NEG_INF`): a set denser than this many instances in a year is
    /// refused; a sparser one with more before the horizon is indexed this far, and answered
    /// beyond by query-time expansion. At query time: more than this many instances in the
    /// window asked about is refused.
    pub max_instances: usize,
    /// Query-time expansion: occurrences that end before this instant (less 30 days, for
    /// floating times and alarms that fire after their event) are stepped over, not
    /// collected. `NEG_INF` on write.
    pub from: i64,
    /// Query-time expansion: occurrences that start after this instant (plus 30 days, for
    /// floating times and alarms that fire before their event) are stepped over, not
    /// collected, so a dense set is refused only for what lies near the window. `POS_INF`
    /// on write.
    pub to: i64,
}

impl IndexLimits {
    /// Limits for indexing on write.
    pub const fn on_write(horizon: i64, max_instances: usize) -> IndexLimits {
        IndexLimits {
            horizon,
            max_instances,
            from: NEG_INF,
            to: POS_INF,
        }
    }
}

/// Most rule steps one query-time expansion may take to reach its window (an hourly series
/// that began 20 years ago takes 175,000).
const QUERY_STEP_CAP: usize = 2_000_000;

/// A year, for the density of a set.
const YEAR: i64 = 366 * 86_400;

/// What the index holds for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIndex {
    pub instances: Vec<Instance>,
    /// Instances are complete up to this instant; beyond it the object must be expanded at query
    /// time. `POS_INF` when the set is finite and fully expanded.
    pub complete_until: i64,
    /// Earliest start and latest end over the whole (possibly infinite) set, for candidate
    /// selection beyond the horizon.
    pub first_start: i64,
    pub last_end: i64,
}

fn prop_kind(p: &IcalProp<'_>) -> Option<IcalPropKind> {
    match &p.name {
        IcalPropName::Kind(k) => Some(*k),
        IcalPropName::Unknown(_) => None,
    }
}

fn find<'c, 'a>(c: &'c IcalComponent<'a>, kind: IcalPropKind) -> Option<&'c IcalProp<'a>> {
    c.props.iter().find(|p| prop_kind(p) == Some(kind))
}

fn has(c: &IcalComponent<'_>, kind: IcalPropKind) -> bool {
    find(c, kind).is_some()
}

fn date_text<'v>(p: &'v IcalProp<'_>) -> Option<&'v str> {
    match &p.value {
        IcalValue::Date(d) => Some(&d.0),
        IcalValue::DateTime(d) => Some(&d.0),
        IcalValue::DateTimeList(l) => l.0.first().map(|d| d.as_ref()),
        IcalValue::Unknown(_) => None,
        _ => None,
    }
}

fn tzid_param<'p>(p: &'p IcalProp<'_>) -> Option<&'p str> {
    p.params.iter().find_map(|param| match param {
        IcalParam::TzId(t) => Some(t.as_ref()),
        _ => None,
    })
}

/// A date or date-time property: its civil value, its clock and whether it is a DATE.
struct When {
    civil: IcalRecurDateTime,
    zone: Zone,
    is_date: bool,
}

impl When {
    fn instant(&self) -> i64 {
        self.zone.instant(self.civil)
    }
}

fn when(p: &IcalProp<'_>, carried: &[IcalTz]) -> Option<When> {
    let text = date_text(p)?.trim();
    let civil = IcalRecurDateTime::parse(text).ok()?;
    let is_date = !text.contains('T');
    let zone = if is_date {
        Zone::Floating
    } else if text.ends_with(['Z', 'z']) {
        Zone::Utc
    } else {
        match tzid_param(p) {
            // An unknown TZID is read as floating rather than rejected: tolerant of what
            // clients send, and the object still appears in queries near its local time.
            Some(tz) => Zone::for_tzid(tz, carried).unwrap_or(Zone::Floating),
            None => Zone::Floating,
        }
    };
    Some(When {
        civil,
        zone,
        is_date,
    })
}

fn duration_secs(p: &IcalProp<'_>) -> Option<i64> {
    match &p.value {
        IcalValue::Duration(d) => d.seconds(),
        _ => None,
    }
}

/// The shape of one (non-recurring) component instance relative to its start: the rule and
/// the end offset from start, or fixed instants where the rule uses other properties.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Span relative to the start instance: `end = start + len`.
    FromStart { rule: MatchRule, len: i64 },
    /// Instants not tied to DTSTART (VTODO DUE-only, COMPLETED/CREATED, none).
    Fixed {
        rule: MatchRule,
        start: i64,
        end: i64,
        floating: bool,
    },
    /// The component never matches a time-range (VJOURNAL without DTSTART).
    Never,
}

fn shape(
    kind: &ComponentKind,
    c: &IcalComponent<'_>,
    start: Option<&When>,
    carried: &[IcalTz],
) -> Shape {
    let start_instant = start.map(When::instant);
    let end_prop = |k| find(c, k).and_then(|p| when(p, carried));
    let duration = find(c, IcalPropKind::Duration).and_then(duration_secs);
    match kind {
        ComponentKind::Todo => {
            let due = end_prop(IcalPropKind::Due);
            match (start, start_instant) {
                (Some(_), Some(s)) => {
                    if let Some(d) = duration {
                        Shape::FromStart {
                            rule: MatchRule::TodoStartDuration,
                            len: d.max(0),
                        }
                    } else if let Some(due) = due {
                        Shape::FromStart {
                            rule: MatchRule::TodoStartDue,
                            len: (due.instant() - s).max(0),
                        }
                    } else {
                        Shape::FromStart {
                            rule: MatchRule::Point,
                            len: 0,
                        }
                    }
                }
                _ => {
                    if let Some(due) = due {
                        let e = due.instant();
                        return Shape::Fixed {
                            rule: MatchRule::TodoDue,
                            start: e,
                            end: e,
                            floating: due.zone.is_floating(),
                        };
                    }
                    let completed = end_prop(IcalPropKind::Completed);
                    let created = end_prop(IcalPropKind::Created);
                    match (completed, created) {
                        (Some(co), Some(cr)) => Shape::Fixed {
                            rule: MatchRule::TodoCompletedCreated,
                            start: cr.instant(),
                            end: co.instant(),
                            floating: false,
                        },
                        (Some(co), None) => Shape::Fixed {
                            rule: MatchRule::TodoCompletedCreated,
                            start: co.instant(),
                            end: co.instant(),
                            floating: false,
                        },
                        (None, Some(cr)) => Shape::Fixed {
                            rule: MatchRule::TodoCreated,
                            start: cr.instant(),
                            end: POS_INF,
                            floating: false,
                        },
                        (None, None) => Shape::Fixed {
                            rule: MatchRule::Always,
                            start: NEG_INF,
                            end: POS_INF,
                            floating: false,
                        },
                    }
                }
            }
        }
        ComponentKind::Journal => match start {
            Some(w) if w.is_date => Shape::FromStart {
                rule: MatchRule::Overlap,
                len: DAY,
            },
            Some(_) => Shape::FromStart {
                rule: MatchRule::Point,
                len: 0,
            },
            None => Shape::Never,
        },
        _ => {
            // VEVENT (and, by the same reading, VFREEBUSY/VAVAILABILITY spans).
            let Some(w) = start else { return Shape::Never };
            let s = w.instant();
            if let Some(end) = end_prop(IcalPropKind::DtEnd) {
                let len = (end.instant() - s).max(0);
                // RFC 4791 9.9: with DTEND the test is always "start < DTEND AND end > DTSTART".
                Shape::FromStart {
                    rule: MatchRule::Overlap,
                    len,
                }
            } else if let Some(d) = duration {
                if d > 0 {
                    Shape::FromStart {
                        rule: MatchRule::Overlap,
                        len: d,
                    }
                } else {
                    Shape::FromStart {
                        rule: MatchRule::Point,
                        len: 0,
                    }
                }
            } else if w.is_date {
                Shape::FromStart {
                    rule: MatchRule::Overlap,
                    len: DAY,
                }
            } else {
                Shape::FromStart {
                    rule: MatchRule::Point,
                    len: 0,
                }
            }
        }
    }
}

fn instance_from(shape: Shape, start: i64, floating: bool) -> Option<Instance> {
    match shape {
        Shape::FromStart { rule, len } => Some(Instance {
            start,
            end: start.saturating_add(len),
            rule,
            floating,
        }),
        Shape::Fixed {
            rule,
            start,
            end,
            floating,
        } => Some(Instance {
            start,
            end,
            rule,
            floating,
        }),
        Shape::Never => None,
    }
}

fn is_main(kind: &ComponentKind) -> bool {
    !matches!(kind, ComponentKind::Other(_))
}

fn component_kind(c: &IcalComponent<'_>) -> ComponentKind {
    ComponentKind::from_name(&c.name)
}

/// Index a calendar object resource body that `validate_object` accepted.
pub fn index_object(body: &[u8], limits: IndexLimits) -> Result<ObjectIndex, IcalError> {
    let input = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    super::check_nesting(input)?;
    let cst = IcalCst::parse(input).map_err(|e| IcalError::Syntax {
        line: 1,
        message: e.to_string(),
    })?;
    let cal = cst.decode();
    index_components(&cal.components, limits)
}

/// One occurrence of an object's main component, with where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub instance: Instance,
    /// The instance identity (what RECURRENCE-ID names), as an instant on the series' clock
    /// (civil seconds when floating). `None` for a non-recurring object.
    pub recurrence_id: Option<i64>,
    /// Index, among the components passed in, of the component describing this occurrence
    /// (the series, or the override that replaced the instance).
    pub source: usize,
    /// An override (a component with a RECURRENCE-ID) describes it, not the series.
    pub from_override: bool,
}

/// Every occurrence up to the horizon, and how far that list is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub occurrences: Vec<Occurrence>,
    pub complete_until: i64,
    /// The set continues past the horizon (an open-ended rule, or cut at the horizon).
    pub open_ended: bool,
}

/// Index decoded components (the VCALENDAR's children).
pub fn index_components(
    components: &[IcalComponent<'_>],
    limits: IndexLimits,
) -> Result<ObjectIndex, IcalError> {
    let e = expand_components(components, limits)?;
    let mut idx = finish(
        e.occurrences.iter().map(|o| o.instance).collect(),
        e.complete_until,
    );
    if e.open_ended {
        idx.complete_until = idx.complete_until.min(limits.horizon);
        idx.last_end = POS_INF;
        // A set whose first instance lies beyond the horizon has none indexed yet; its first
        // start is then somewhere after the horizon, and saying so keeps it a candidate for
        // query-time expansion (an unbounded first start would hide it from every query).
        idx.first_start = idx.first_start.min(idx.complete_until);
    }
    Ok(idx)
}

/// Expand the main component's recurrence set (RRULE, RDATE, EXDATE, overrides) up to the
/// horizon, bounded by `max_instances`.
pub fn expand_components(
    components: &[IcalComponent<'_>],
    limits: IndexLimits,
) -> Result<Expansion, IcalError> {
    // Unsafe VTIMEZONEs (see `ical::decoded_zone_is_safe`) never reach the resolver.
    let sanitized: Vec<IcalComponent<'_>>;
    let components = if components.iter().all(super::decoded_zone_is_safe) {
        components
    } else {
        sanitized = components
            .iter()
            .filter(|c| super::decoded_zone_is_safe(c))
            .cloned()
            .collect();
        &sanitized
    };
    let carried: Vec<IcalTz> = super::carried_zones(components);
    let due_anchored: Vec<IcalComponent<'_>>;
    let (components, on_due) = match anchor_on_due(components) {
        Some(v) => {
            due_anchored = v;
            (&due_anchored[..], true)
        }
        None => (components, false),
    };
    let mains: Vec<usize> = (0..components.len())
        .filter(|&i| {
            let c = &components[i];
            is_main(&component_kind(c)) && !c.name.eq_ignore_ascii_case("VTIMEZONE")
        })
        .collect();
    let series_idx = mains
        .iter()
        .copied()
        .find(|&i| !has(&components[i], IcalPropKind::RecurrenceId))
        .or_else(|| mains.first().copied());
    let Some(series_idx) = series_idx else {
        return Ok(Expansion {
            occurrences: vec![],
            complete_until: POS_INF,
            open_ended: false,
        });
    };
    let series = &components[series_idx];
    let kind = component_kind(series);
    let start = find(series, IcalPropKind::DtStart).and_then(|p| when(p, &carried));
    let series_shape = if on_due {
        // RFC 4791 9.9's row for a VTODO with DUE alone, at each instance's due time.
        Shape::FromStart {
            rule: MatchRule::TodoDue,
            len: 0,
        }
    } else {
        shape(&kind, series, start.as_ref(), &carried)
    };
    let recurring = has(series, IcalPropKind::RRule) || has(series, IcalPropKind::RDate);

    let Some(start) = start.filter(|_| recurring) else {
        // A single instance (overrides of a non-recurring series are ignored, as clients do).
        return Ok(single_instance(series, series_idx, series_shape, &carried));
    };

    let uid = uid_of(series);
    let set = if uid.is_empty() {
        IcalRecurSet::of_component_in(series, &carried)
    } else {
        IcalRecurSet::of_uid(components, &uid)
    };
    // Each period's candidates are built whole by the expander: refuse a rule whose period
    // is too big before it allocates (a stored object from before this check included).
    if !set
        .rules
        .iter()
        .chain(&set.exrules)
        .all(super::density::rule_is_bounded)
    {
        return Err(IcalError::RuleTooDense(
            super::density::MAX_PERIOD_CANDIDATES,
        ));
    }
    let floating = start.zone.is_floating();
    let infinite = set
        .rules
        .iter()
        .any(|r| r.count.is_none() && r.until.is_none());
    // Overrides by their identity on the series clock, with their own shapes.
    let over_info = override_shapes(components, &mains, &set, &carried);
    let mut occurrences: Vec<Occurrence> = Vec::new();
    let mut complete_until = POS_INF;
    let mut steps = 0usize;
    let on_write = limits.from <= NEG_INF;
    let step_cap = if on_write {
        limits.max_instances.saturating_mul(4).max(10_000)
    } else {
        QUERY_STEP_CAP
    };
    let skip_before = limits.from.saturating_sub(30 * 86_400);
    let skip_after = limits.to.saturating_add(30 * 86_400);
    for occ in set.expand() {
        steps += 1;
        let s = start.zone.instant(occ.start);
        if s > limits.horizon {
            complete_until = limits.horizon;
            break;
        }
        if steps > step_cap {
            return Err(IcalError::TooManyInstances(limits.max_instances));
        }
        let over = occ
            .over
            .and_then(|i| set.overrides.get(i))
            .and_then(|o| over_info.iter().find(|(id, _, _)| *id == o.id));
        let (shape_here, source) = match over {
            Some((_, sh, i)) => (*sh, *i),
            None => (series_shape, series_idx),
        };
        if let Some(instance) = instance_from(shape_here, s, floating) {
            // An override may move an instance into the window from outside it, so the set
            // is walked to the horizon; only what lies near the window is kept.
            if instance.end < skip_before || instance.start > skip_after {
                continue;
            }
            if occurrences.len() == limits.max_instances {
                // Denser than `max_instances` a year, or (at query time) more than that in
                // the window: refused, never cut short silently.
                let first = occurrences.first().map_or(s, |o| o.instance.start);
                if !on_write || s.saturating_sub(first) < YEAR {
                    return Err(IcalError::TooManyInstances(limits.max_instances));
                }
                // A sparser set with a long past: indexed this far; windows after this are
                // answered by expanding the rule at query time.
                complete_until = s;
                break;
            }
            occurrences.push(Occurrence {
                instance,
                recurrence_id: Some(start.zone.instant(occ.id)),
                source,
                from_override: over.is_some(),
            });
        }
    }
    Ok(Expansion {
        occurrences,
        open_ended: infinite || complete_until != POS_INF,
        complete_until,
    })
}

/// A recurring VTODO with a DUE and no DTSTART recurs from its DUE, as Thunderbird and libical
/// read it (RFC 5545 anchors a recurrence set on DTSTART, which such a task does not have):
/// the components with that DUE copied as the series' DTSTART, or `None` when there is no such
/// task.
fn anchor_on_due<'a>(components: &[IcalComponent<'a>]) -> Option<Vec<IcalComponent<'a>>> {
    let i = components.iter().position(|c| {
        matches!(component_kind(c), ComponentKind::Todo)
            && !has(c, IcalPropKind::DtStart)
            && !has(c, IcalPropKind::RecurrenceId)
            && has(c, IcalPropKind::Due)
            && (has(c, IcalPropKind::RRule) || has(c, IcalPropKind::RDate))
    })?;
    let mut out = components.to_vec();
    let mut anchor = find(&out[i], IcalPropKind::Due)?.clone();
    anchor.name = IcalPropName::Kind(IcalPropKind::DtStart);
    out[i].props.push(anchor);
    Some(out)
}

/// The one instance of a series that does not recur.
fn single_instance(
    series: &IcalComponent<'_>,
    series_idx: usize,
    series_shape: Shape,
    carried: &[IcalTz],
) -> Expansion {
    let start = find(series, IcalPropKind::DtStart).and_then(|p| when(p, carried));
    let floating = start.as_ref().is_some_and(|w| w.zone.is_floating());
    let s = start.as_ref().map(When::instant).unwrap_or(NEG_INF);
    let occurrences = instance_from(series_shape, s, floating)
        .map(|instance| Occurrence {
            instance,
            recurrence_id: None,
            source: series_idx,
            from_override: false,
        })
        .into_iter()
        .collect();
    Expansion {
        occurrences,
        complete_until: POS_INF,
        open_ended: false,
    }
}

fn uid_of(c: &IcalComponent<'_>) -> String {
    find(c, IcalPropKind::Uid)
        .map(|p| match &p.value {
            IcalValue::Text(t) => t.0.to_string(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

/// The overrides among `mains`, by their identity on the series clock, with their own shapes
/// and their index in `components`.
fn override_shapes(
    components: &[IcalComponent<'_>],
    mains: &[usize],
    set: &IcalRecurSet,
    carried: &[IcalTz],
) -> Vec<(IcalRecurDateTime, Shape, usize)> {
    mains
        .iter()
        .copied()
        .filter(|&i| has(&components[i], IcalPropKind::RecurrenceId))
        .filter_map(|i| {
            let c = &components[i];
            let o = icalrs::recur::set::IcalRecurOverride::of_component(c, &set.zone, carried)?;
            let ostart = find(c, IcalPropKind::DtStart).and_then(|p| when(p, carried));
            Some((
                o.id,
                shape(&component_kind(c), c, ostart.as_ref(), carried),
                i,
            ))
        })
        .collect()
}

fn finish(instances: Vec<Instance>, complete_until: i64) -> ObjectIndex {
    let first_start = instances.iter().map(|i| i.start).min().unwrap_or(POS_INF);
    let last_end = instances.iter().map(|i| i.end).max().unwrap_or(NEG_INF);
    ObjectIndex {
        instances,
        complete_until,
        first_start,
        last_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Horizon 2030-03.
    const LIM: IndexLimits = IndexLimits::on_write(1_900_000_000, 5000);

    fn cal(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\n{body}END:VCALENDAR\r\n")
    }

    fn idx(body: &str) -> ObjectIndex {
        index_object(cal(body).as_bytes(), LIM).unwrap()
    }

    #[test]
    fn series_starting_beyond_the_horizon_stays_findable() {
        // Starts 2031, past LIM's horizon: nothing is indexed, but the coverage columns must
        // still admit it to query-time expansion for any window after the horizon.
        let i = idx(
            "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20310105T100000Z\r\nDTEND:20310105T110000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEND:VEVENT\r\n",
        );
        assert!(i.instances.is_empty());
        assert_eq!(i.complete_until, LIM.horizon);
        assert!(
            i.first_start <= LIM.horizon && i.last_end == POS_INF,
            "{i:?}"
        );
    }

    #[test]
    fn single_event_with_dtend() {
        let i = idx(
            "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\nEND:VEVENT\r\n",
        );
        assert_eq!(i.instances.len(), 1);
        let x = i.instances[0];
        assert_eq!(
            (x.start, x.end, x.rule, x.floating),
            (1_704_448_800, 1_704_452_400, MatchRule::Overlap, false)
        );
        assert!(x.matches(1_704_452_399, POS_INF));
        assert!(!x.matches(1_704_452_400, POS_INF), "end is exclusive");
        assert!(
            !x.matches(NEG_INF, 1_704_448_800),
            "start is exclusive on the window end"
        );
        assert_eq!(i.complete_until, POS_INF);
    }

    #[test]
    fn all_day_and_point_events() {
        let d = idx("BEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20240105\r\nEND:VEVENT\r\n")
            .instances[0];
        assert!(d.floating);
        assert_eq!(d.end - d.start, DAY);
        let p =
            idx("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240105T100000Z\r\nEND:VEVENT\r\n").instances[0];
        assert_eq!(p.rule, MatchRule::Point);
        assert!(
            p.matches(p.start, p.start + 1),
            "a zero-length event at the window start matches"
        );
    }

    #[test]
    fn weekly_in_a_zone_across_dst_with_exdate_and_override() {
        let body = "BEGIN:VEVENT\r\nUID:w\r\nDTSTART;TZID=Europe/Berlin:20240318T090000\r\nDTEND;TZID=Europe/Berlin:20240318T100000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20240325T090000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240401T090000\r\nDTSTART;TZID=Europe/Berlin:20240401T140000\r\nDTEND;TZID=Europe/Berlin:20240401T160000\r\nEND:VEVENT\r\n";
        let i = idx(body);
        let starts: Vec<i64> = i.instances.iter().map(|x| x.start).collect();
        // 03-18 09:00 CET = 08:00Z; 03-25 excluded; 04-01 moved to 14:00 CEST = 12:00Z; 04-08 09:00 CEST = 07:00Z.
        assert_eq!(starts, vec![1_710_748_800, 1_711_972_800, 1_712_559_600]);
        assert_eq!(
            i.instances[1].end - i.instances[1].start,
            2 * 3600,
            "the override keeps its own length"
        );
        assert_eq!(i.complete_until, POS_INF);
    }

    #[test]
    fn infinite_rules_stop_at_the_horizon() {
        let i = idx(
            "BEGIN:VEVENT\r\nUID:d\r\nDTSTART:20250101T090000Z\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\n",
        );
        assert!(i.complete_until <= LIM.horizon);
        assert_eq!(i.last_end, POS_INF);
        assert!(
            i.instances.len() > 1890 && i.instances.len() < 1910,
            "{}",
            i.instances.len()
        );
    }

    #[test]
    fn rrule_bomb_is_refused() {
        let r = index_object(
            cal("BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240101T000000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\n").as_bytes(),
            LIM,
        );
        assert!(matches!(r, Err(IcalError::TooManyInstances(_))));
    }

    #[test]
    fn todo_rules_follow_rfc4791_table() {
        let due_only =
            idx("BEGIN:VTODO\r\nUID:t\r\nDUE:20240105T100000Z\r\nEND:VTODO\r\n").instances[0];
        assert_eq!(due_only.rule, MatchRule::TodoDue);
        assert!(due_only.matches(NEG_INF, due_only.end), "b >= DUE");
        assert!(!due_only.matches(due_only.end, POS_INF), "a < DUE");
        let none = idx("BEGIN:VTODO\r\nUID:t\r\nSUMMARY:x\r\nEND:VTODO\r\n").instances[0];
        assert_eq!(none.rule, MatchRule::Always);
        let created =
            idx("BEGIN:VTODO\r\nUID:t\r\nCREATED:20240105T100000Z\r\nEND:VTODO\r\n").instances[0];
        assert_eq!(created.rule, MatchRule::TodoCreated);
        assert!(!created.matches(NEG_INF, created.start));
        // A recurring task with DUE and no DTSTART recurs from its DUE.
        let weekly = idx(
            "BEGIN:VTODO\r\nUID:r\r\nDUE:20240105T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VTODO\r\n",
        );
        let dues: Vec<(i64, i64, MatchRule)> = weekly
            .instances
            .iter()
            .map(|i| (i.start, i.end, i.rule))
            .collect();
        let week = 7 * DAY;
        let d0 = 1_704_448_800;
        assert_eq!(
            dues,
            vec![
                (d0, d0, MatchRule::TodoDue),
                (d0 + week, d0 + week, MatchRule::TodoDue),
                (d0 + 2 * week, d0 + 2 * week, MatchRule::TodoDue)
            ]
        );
        let journal_no_start = idx("BEGIN:VJOURNAL\r\nUID:j\r\nSUMMARY:x\r\nEND:VJOURNAL\r\n");
        assert!(journal_no_start.instances.is_empty());
    }

    #[test]
    fn windows_and_custom_zones() {
        let w = idx("BEGIN:VEVENT\r\nUID:o\r\nDTSTART;TZID=W. Europe Standard Time:20240710T090000\r\nEND:VEVENT\r\n").instances[0];
        assert_eq!(w.start, 1_720_594_800, "09:00 CEST = 07:00Z");
        let custom = "BEGIN:VTIMEZONE\r\nTZID:Custom Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:c\r\nDTSTART;TZID=Custom Berlin:20240710T090000\r\nEND:VEVENT\r\n";
        assert_eq!(idx(custom).instances[0].start, 1_720_594_800);
        // An IANA name with the object's own, different rules: the object's rules hold
        // (Brazil/East kept daylight time in this object: 11:00 -02 = 13:00Z, not 14:00Z).
        let brazil = "BEGIN:VTIMEZONE\r\nTZID:Brazil/East\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:-0200\r\nTZOFFSETTO:-0300\r\nDTSTART:19700215T000000\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYDAY=3SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0300\r\nTZOFFSETTO:-0200\r\nDTSTART:19701101T000000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=Brazil/East:20240110T110000\r\nEND:VEVENT\r\n";
        assert_eq!(idx(brazil).instances[0].start, 1_704_891_600);
        let bare =
            "BEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=Brazil/East:20240110T110000\r\nEND:VEVENT\r\n";
        assert_eq!(
            idx(bare).instances[0].start,
            1_704_895_200,
            "without one, the tz database: -03"
        );
        let floating =
            idx("BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20240710T090000\r\nEND:VEVENT\r\n").instances[0];
        assert!(floating.floating);
        assert_eq!(floating.start, 1_720_602_000, "civil seconds");
    }
}
