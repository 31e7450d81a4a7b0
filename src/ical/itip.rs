//! iTIP (RFC 5546) as RFC 6638 implicit scheduling needs it: who organizes and who attends a
//! scheduling object resource, and what the server derives from it — an attendee's copy, the
//! REQUEST, REPLY and CANCEL messages, a reply folded into the organizer's copy, and the
//! SCHEDULE-STATUS the organizer sees.
//!
//! Every edit is made on ical-rs's lossless tree, so the lines we do not touch keep their
//! bytes (folding, escapes, parameter quoting, X-properties).
//!
//! Pure: no I/O, no SQL, no HTTP. Must never panic on any input: an unparseable body gives
//! `None`, never a half-built message.

use icalrs::tree::codec::mode::Escaper;
use icalrs::tree::cst::{IcalCst, IcalItem};
use icalrs::tree::leaf::IcalLeaf;
use icalrs::tree::line::IcalLine;
use icalrs::tree::param::node::IcalParamNode;

use super::expand::utc_text;
use super::filter::{TimeRange, line_instant};

/// The iTIP methods implicit scheduling sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Request,
    Reply,
    Cancel,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Reply => "REPLY",
            Method::Cancel => "CANCEL",
        }
    }
}

/// RFC 6638 7.1 SCHEDULE-AGENT: who delivers messages for this calendar user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleAgent {
    /// The default: the server schedules.
    Server,
    /// The client does it itself; the server must not.
    Client,
    /// Nobody does.
    None,
}

/// An ORGANIZER or ATTENDEE of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The calendar-user address as written (`mailto:bob@example.org`).
    pub address: String,
    /// PARTSTAT, upper case; `NEEDS-ACTION` when absent (RFC 5545 3.2.12).
    pub partstat: String,
    pub agent: ScheduleAgent,
    /// RFC 6638 7.2 SCHEDULE-FORCE-SEND was given.
    pub force_send: bool,
}

/// The scheduling-relevant part of one main component (the master or an override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentParties {
    /// RECURRENCE-ID value as written, `None` for the master.
    pub recurrence_id: Option<String>,
    pub organizer: Option<Party>,
    pub attendees: Vec<Party>,
}

/// Who is involved in a scheduling object resource (RFC 6638 3.1: one with an ORGANIZER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduling {
    pub uid: String,
    pub organizer: Party,
    pub components: Vec<ComponentParties>,
}

impl Scheduling {
    /// Every attendee address, each once (first spelling kept), across all components.
    pub fn attendees(&self) -> Vec<&Party> {
        let mut out: Vec<&Party> = vec![];
        for c in &self.components {
            for a in &c.attendees {
                if !out.iter().any(|o| same_address(&o.address, &a.address)) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// The attendee's PARTSTAT in each component they are in, by RECURRENCE-ID.
    pub fn partstats_of(&self, address: &str) -> Vec<(Option<String>, String)> {
        self.components
            .iter()
            .filter_map(|c| {
                c.attendees
                    .iter()
                    .find(|a| same_address(&a.address, address))
                    .map(|a| (c.recurrence_id.clone(), a.partstat.clone()))
            })
            .collect()
    }

    pub fn has_attendee(&self, address: &str) -> bool {
        self.components.iter().any(|c| {
            c.attendees
                .iter()
                .any(|a| same_address(&a.address, address))
        })
    }
}

/// Calendar-user addresses compare case-insensitively in the `mailto:` scheme and its address
/// (RFC 6638 leaves matching to the server; mail addresses are case-insensitive in practice).
pub fn normalize_address(address: &str) -> String {
    let a = address.trim().trim_matches('"');
    match a.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => {
            format!("mailto:{}", a[7..].trim().to_lowercase())
        }
        _ => a.to_string(),
    }
}

pub fn same_address(a: &str, b: &str) -> bool {
    normalize_address(a) == normalize_address(b)
}

pub(super) fn comp_name(c: &IcalCst<'_>) -> String {
    c.begin
        .as_ref()
        .map(|b| b.raw_value_str().trim().to_ascii_uppercase())
        .unwrap_or_default()
}

pub(super) fn is_main(c: &IcalCst<'_>) -> bool {
    matches!(comp_name(c).as_str(), "VEVENT" | "VTODO" | "VJOURNAL")
}

pub(super) fn named<'l>(line: &'l IcalLine<'_>, name: &str) -> Option<&'l IcalLine<'l>> {
    line.name.get().eq_ignore_ascii_case(name).then_some(line)
}

pub(super) fn lines<'c, 'a>(c: &'c IcalCst<'a>) -> impl Iterator<Item = &'c IcalLine<'a>> {
    c.items.iter().filter_map(|i| match i {
        IcalItem::Prop(l) => Some(l),
        _ => None,
    })
}

pub(super) fn value_of(c: &IcalCst<'_>, name: &str) -> Option<String> {
    lines(c).find_map(|l| named(l, name).map(|l| l.raw_value_str().trim().to_string()))
}

pub(super) fn param(line: &IcalLine<'_>, name: &str) -> Option<String> {
    line.params
        .iter()
        .find(|p| p.name.get().eq_ignore_ascii_case(name))
        .map(|p| {
            p.values
                .first()
                .map(|v| v.get().trim().trim_matches('"').to_string())
                .unwrap_or_default()
        })
}

fn party(line: &IcalLine<'_>) -> Party {
    let agent = match param(line, "SCHEDULE-AGENT")
        .map(|v| v.to_ascii_uppercase())
        .as_deref()
    {
        Some("CLIENT") => ScheduleAgent::Client,
        Some("NONE") => ScheduleAgent::None,
        // "For information" (Convene's sharing convention): a delegated entry, not an
        // invitation, so nothing is scheduled to them.
        _ if super::delegated::is_informational(line) => ScheduleAgent::None,
        _ => ScheduleAgent::Server,
    };
    Party {
        address: line.raw_value_str().trim().to_string(),
        partstat: param(line, "PARTSTAT")
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_else(|| "NEEDS-ACTION".into()),
        agent,
        force_send: param(line, "SCHEDULE-FORCE-SEND").is_some(),
    }
}

fn parties(c: &IcalCst<'_>) -> ComponentParties {
    ComponentParties {
        recurrence_id: value_of(c, "RECURRENCE-ID"),
        organizer: lines(c).find_map(|l| named(l, "ORGANIZER").map(party)),
        attendees: lines(c)
            .filter_map(|l| named(l, "ATTENDEE").map(party))
            .collect(),
    }
}

pub(super) fn main_components<'c, 'a>(
    root: &'c IcalCst<'a>,
) -> impl Iterator<Item = &'c IcalCst<'a>> {
    super::subcomponents(root).filter(|c| is_main(c))
}

pub(super) fn main_components_mut<'c, 'a>(
    root: &'c mut IcalCst<'a>,
) -> impl Iterator<Item = &'c mut IcalCst<'a>> {
    root.items.iter_mut().filter_map(|i| match i {
        IcalItem::Component(c) if is_main(c) => Some(&mut **c),
        _ => None,
    })
}

/// The METHOD of an iTIP message, upper case.
pub fn method_of(body: &[u8]) -> Option<String> {
    let root = super::parse_stored(body)?;
    value_of(&root, "METHOD").map(|m| m.to_ascii_uppercase())
}

/// The SUMMARY of the first main component, unescaped, for a mail subject (one line).
pub fn summary(body: &[u8]) -> Option<String> {
    let root = super::parse_stored(body)?;
    let raw = main_components(&root).find_map(|c| value_of(c, "SUMMARY"))?;
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') | Some('N') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            },
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    Some(out)
}

/// Who organizes and attends `body`; `None` when it does not parse or has no ORGANIZER (then
/// it is not a scheduling object resource and nothing is sent).
pub fn scheduling(body: &[u8]) -> Option<Scheduling> {
    // Most objects have no organizer: a byte scan spares them a second parse on every PUT.
    if !body
        .windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"ORGANIZER"))
    {
        return None;
    }
    let root = super::parse_stored(body)?;
    let mut uid = None;
    let mut components = vec![];
    for c in main_components(&root) {
        uid = uid.or_else(|| value_of(c, "UID"));
        components.push(parties(c));
    }
    let organizer = components
        .iter()
        .find(|c| c.recurrence_id.is_none())
        .or(components.first())
        .and_then(|c| c.organizer.clone())
        .or_else(|| components.iter().find_map(|c| c.organizer.clone()))?;
    Some(Scheduling {
        uid: uid?,
        organizer,
        components,
    })
}

fn has_attendee(c: &IcalCst<'_>, address: &str) -> bool {
    lines(c)
        .any(|l| named(l, "ATTENDEE").is_some_and(|l| same_address(&l.raw_value_str(), address)))
}

fn set_param(line: &mut IcalLine<'_>, name: &str, value: &str) {
    let leaf = IcalLeaf::from(value.to_string());
    match line
        .params
        .iter_mut()
        .find(|p| p.name.get().eq_ignore_ascii_case(name))
    {
        Some(p) => p.values = vec![leaf],
        None => line.params.push(IcalParamNode {
            name: IcalLeaf::from(name.to_string()),
            values: vec![leaf],
            escaper: Escaper::default(),
        }),
    }
}

/// RFC 6638 7: these parameters are for the organizer's server, never for recipients.
fn strip_schedule_params(c: &mut IcalCst<'_>) {
    for item in &mut c.items {
        if let IcalItem::Prop(l) = item
            && (l.name.get().eq_ignore_ascii_case("ATTENDEE")
                || l.name.get().eq_ignore_ascii_case("ORGANIZER"))
        {
            l.params.retain(|p| {
                let n = p.name.get();
                !(n.eq_ignore_ascii_case("SCHEDULE-STATUS")
                    || n.eq_ignore_ascii_case("SCHEDULE-FORCE-SEND")
                    || n.eq_ignore_ascii_case("SCHEDULE-AGENT"))
            });
        }
    }
}

pub(super) fn remove_props(c: &mut IcalCst<'_>, name: &str) {
    c.items
        .retain(|i| !matches!(i, IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case(name)));
}

pub(super) fn remove_alarms(c: &mut IcalCst<'_>) {
    c.items
        .retain(|i| !matches!(i, IcalItem::Component(s) if comp_name(s) == "VALARM"));
}

/// Replace every `name` line with one `name:value` line. The text is ours (a timestamp, a
/// number, an address from a parsed line), so it holds no line break.
pub(super) fn replace_prop(c: &mut IcalCst<'_>, name: &str, value: &str) -> Option<()> {
    remove_props(c, name);
    c.push_raw(&format!("{name}:{value}")).ok()?;
    Some(())
}

fn stamp(c: &mut IcalCst<'_>, now: i64) -> Option<()> {
    replace_prop(c, "DTSTAMP", &utc_text(now))
}

fn with_method(root: &mut IcalCst<'_>, method: Method) -> Option<()> {
    replace_prop(root, "METHOD", method.name())
}

/// The RECURRENCE-ID line of an override, as the head (`;TZID=...`) and value of an EXDATE.
fn exdate_for(c: &IcalCst<'_>) -> Option<String> {
    lines(c).find_map(|l| {
        named(l, "RECURRENCE-ID").map(|l| {
            let mut s = String::from("EXDATE");
            for p in &l.params {
                if !p.name.get().eq_ignore_ascii_case("RANGE") {
                    s.push(';');
                    s.push_str(&p.to_string());
                }
            }
            s.push(':');
            s.push_str(l.raw_value_str().trim());
            s
        })
    })
}

/// The attendee's view of the organizer's object (RFC 6638 3.2.1): the components they take
/// part in, an EXDATE in the master for each instance they were removed from, no VALARMs
/// (alarms are personal) and none of the scheduling parameters. `None` when they are in no
/// component.
pub fn attendee_copy(body: &[u8], address: &str) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let master_has = main_components(&root)
        .find(|c| value_of(c, "RECURRENCE-ID").is_none())
        .is_some_and(|c| has_attendee(c, address));
    let mut exdates = vec![];
    let mut kept = 0usize;
    root.items.retain(|item| match item {
        IcalItem::Component(c) if is_main(c) => {
            let has = has_attendee(c, address);
            let is_override = value_of(c, "RECURRENCE-ID").is_some();
            if !has && is_override && master_has {
                exdates.extend(exdate_for(c));
            }
            kept += usize::from(has);
            has
        }
        _ => true,
    });
    if kept == 0 {
        return None;
    }
    for c in main_components_mut(&mut root) {
        if value_of(c, "RECURRENCE-ID").is_none() {
            for e in &exdates {
                c.push_raw(e).ok()?;
            }
        }
        strip_schedule_params(c);
        remove_alarms(c);
    }
    Some(root.to_bytes())
}

/// A METHOD:REQUEST for one attendee (RFC 5546 3.2.2): their copy, stamped now.
pub fn request(body: &[u8], address: &str, now: i64) -> Option<Vec<u8>> {
    let copy = attendee_copy(body, address)?;
    let mut root = super::parse_stored(&copy)?;
    with_method(&mut root, Method::Request)?;
    for c in main_components_mut(&mut root) {
        stamp(c, now)?;
    }
    Some(root.to_bytes())
}

/// Whether the organizer has cancelled the whole event: the master component (the one without
/// a RECURRENCE-ID) says STATUS:CANCELLED (RFC 5546 3.2.5: that is sent as a CANCEL).
pub fn is_cancelled(body: &[u8]) -> bool {
    let Some(root) = super::parse_stored(body) else {
        return false;
    };
    root.items.iter().any(|item| match item {
        IcalItem::Component(c) if is_main(c) => {
            value_of(c, "RECURRENCE-ID").is_none()
                && value_of(c, "STATUS").is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED"))
        }
        _ => false,
    })
}

/// A METHOD:CANCEL for one attendee (RFC 5546 3.2.5): of the components they are in, or, with
/// `only`, of the overrides with those RECURRENCE-IDs (whether or not they are still listed
/// there: removing someone from one instance cancels it for them).
pub fn cancel(body: &[u8], address: &str, only: Option<&[String]>, now: i64) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut kept = 0usize;
    root.items.retain(|item| match item {
        IcalItem::Component(c) if is_main(c) => {
            let keep = match only {
                None => has_attendee(c, address),
                Some(rids) => value_of(c, "RECURRENCE-ID").is_some_and(|r| rids.contains(&r)),
            };
            kept += usize::from(keep);
            keep
        }
        _ => true,
    });
    if kept == 0 {
        return None;
    }
    with_method(&mut root, Method::Cancel)?;
    for c in main_components_mut(&mut root) {
        let seq = value_of(c, "SEQUENCE")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        remove_props(c, "ATTENDEE");
        remove_alarms(c);
        strip_schedule_params(c);
        c.push_raw(&format!("ATTENDEE:{}", address.trim())).ok()?;
        replace_prop(c, "STATUS", "CANCELLED")?;
        replace_prop(c, "SEQUENCE", &(seq.saturating_add(1)).to_string())?;
        stamp(c, now)?;
    }
    Some(root.to_bytes())
}

/// A METHOD:REPLY from one attendee (RFC 5546 3.2.3): each component they are in, with their
/// own ATTENDEE line only.
pub fn reply(body: &[u8], address: &str, now: i64) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut kept = 0usize;
    root.items.retain(|item| match item {
        IcalItem::Component(c) if is_main(c) => {
            let has = has_attendee(c, address);
            kept += usize::from(has);
            has
        }
        _ => true,
    });
    if kept == 0 {
        return None;
    }
    with_method(&mut root, Method::Reply)?;
    for c in main_components_mut(&mut root) {
        c.items.retain(|i| match i {
            IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case("ATTENDEE") => {
                same_address(&l.raw_value_str(), address)
            }
            _ => true,
        });
        remove_alarms(c);
        strip_schedule_params(c);
        stamp(c, now)?;
    }
    Some(root.to_bytes())
}

/// Fold an attendee's answers (PARTSTAT by RECURRENCE-ID) into the organizer's copy (RFC 6638
/// 3.2.2 / RFC 5546 3.2.3). `None` when nothing changes.
pub fn apply_reply(
    organizer_body: &[u8],
    address: &str,
    answers: &[(Option<String>, String)],
) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(organizer_body)?;
    let mut changed = false;
    for c in main_components_mut(&mut root) {
        let rid = value_of(c, "RECURRENCE-ID");
        // An answer for an instance the organizer has no override for applies to nothing
        // here; an answer for the master also covers overrides the attendee did not answer.
        let answer = answers
            .iter()
            .find(|(r, _)| *r == rid)
            .or_else(|| answers.iter().find(|(r, _)| r.is_none()));
        let Some((_, partstat)) = answer else {
            continue;
        };
        for item in &mut c.items {
            if let IcalItem::Prop(l) = item
                && l.name.get().eq_ignore_ascii_case("ATTENDEE")
                && same_address(&l.raw_value_str(), address)
                && param(l, "PARTSTAT").is_none_or(|p| !p.eq_ignore_ascii_case(partstat))
            {
                set_param(l, "PARTSTAT", partstat);
                set_param(l, "SCHEDULE-STATUS", "2.0");
                changed = true;
            }
        }
    }
    changed.then(|| root.to_bytes())
}

/// The attendee's PARTSTAT on this component's ATTENDEE line for `address`, upper case.
fn partstat_in(c: &IcalCst<'_>, address: &str) -> Option<String> {
    lines(c)
        .filter(|l| named(l, "ATTENDEE").is_some() && same_address(&l.raw_value_str(), address))
        .map(|l| {
            param(l, "PARTSTAT")
                .unwrap_or_else(|| "NEEDS-ACTION".into())
                .to_ascii_uppercase()
        })
        .next()
}

/// Most overrides one attendee write may add to the organizer's copy (answered dates, and
/// dates removed by EXDATE). Each is a copy of the master, so without a bound a body of
/// many small EXDATE values would multiply into a large one.
pub const MAX_ANSWERED_DATES: usize = 100;

/// A copy of the master component, and the RECURRENCE-IDs of the overrides beside it.
fn master_and_overrides<'a>(
    root: &IcalCst<'a>,
) -> Option<(IcalCst<'a>, std::collections::HashSet<String>)> {
    let overrides = main_components(root)
        .filter_map(|c| value_of(c, "RECURRENCE-ID"))
        .collect();
    let master = main_components(root)
        .find(|c| value_of(c, "RECURRENCE-ID").is_none())?
        .clone();
    Some((master, overrides))
}

/// `line` as a raw logical line without its ending.
fn raw_line(line: &IcalLine<'_>) -> String {
    line.to_string().trim_end_matches(['\r', '\n']).to_string()
}

/// One instance of `master` as an override: the master's properties and subcomponents without
/// its recurrence rules, at the instance given by `when` (the RECURRENCE-ID, DTSTART and
/// DTEND or DURATION lines).
fn override_of<'a>(master: &IcalCst<'a>, when: &[String]) -> Option<IcalCst<'a>> {
    let mut o = master.clone();
    for name in [
        "RRULE",
        "RDATE",
        "EXDATE",
        "EXRULE",
        "RECURRENCE-ID",
        "DTSTART",
        "DTEND",
        "DURATION",
    ] {
        remove_props(&mut o, name);
    }
    for l in when {
        o.push_raw(l).ok()?;
    }
    Some(o)
}

/// Answers an attendee gave for instances the organizer's copy has no override for: each gets
/// one, made from the organizer's master at the instance's own RECURRENCE-ID, DTSTART and end
/// as the attendee's copy has them, so the organizer's copy can say what the attendee said
/// for that date (RFC 5546 3.2.3). `None` when there is nothing to add.
pub fn add_answered_overrides(
    organizer_body: &[u8],
    attendee_body: &[u8],
    address: &str,
) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(organizer_body)?;
    let (master, have) = master_and_overrides(&root)?;
    let master_answer = partstat_in(&master, address)?;
    let theirs = super::parse_stored(attendee_body)?;
    let mut added = vec![];
    for c in main_components(&theirs) {
        let Some(rid) = value_of(c, "RECURRENCE-ID") else {
            continue;
        };
        if have.contains(&rid) || partstat_in(c, address).is_none_or(|p| p == master_answer) {
            continue;
        }
        if added.len() == MAX_ANSWERED_DATES {
            break;
        }
        let when: Vec<String> = lines(c)
            .filter(|l| {
                ["RECURRENCE-ID", "DTSTART", "DTEND", "DURATION"]
                    .iter()
                    .any(|n| named(l, n).is_some())
            })
            .map(raw_line)
            .collect();
        added.push(override_of(&master, &when)?);
    }
    if added.is_empty() {
        return None;
    }
    for o in added {
        root.push_component(o);
    }
    Some(root.to_bytes())
}

/// The length of `c` as a DURATION value, from its DTSTART and DTEND when both are written
/// the same way (both dates, or date-times in one zone); `None` otherwise.
fn duration_of(c: &IcalCst<'_>) -> Option<String> {
    let line = |n: &str| lines(c).find(|l| named(l, n).is_some());
    if let Some(d) = line("DURATION") {
        return Some(d.raw_value_str().trim().to_string());
    }
    let (start, end) = (line("DTSTART")?, line("DTEND")?);
    let zone = |l: &IcalLine<'_>| param(l, "TZID");
    if zone(start) != zone(end) {
        return None;
    }
    let (sv, ev) = (start.raw_value_str(), end.raw_value_str());
    let (sv, ev) = (sv.trim(), ev.trim());
    if sv.len() == 8 && ev.len() == 8 {
        let d = |v: &str| jiff::civil::Date::strptime("%Y%m%d", v).ok();
        let days = (d(ev)? - d(sv)?).get_days();
        return Some(format!("P{}D", days.max(0)));
    }
    let t = |v: &str| {
        jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", v.trim_end_matches(['Z', 'z'])).ok()
    };
    let secs = t(ev)?.duration_since(t(sv)?).as_secs();
    Some(format!("PT{}S", secs.max(0)))
}

/// An attendee who removed instances by adding EXDATEs to their copy declined them (RFC 6638
/// 3.2.2.3): `new` with a declining override for each instance newly excluded, for the REPLY
/// and the organizer's copy. `None` when no EXDATE was added.
pub fn declined_exdates(old: &[u8], new: &[u8], address: &str) -> Option<Vec<u8>> {
    let exdates = |root: &IcalCst<'_>| -> Vec<(String, Vec<String>)> {
        main_components(root)
            .filter(|c| value_of(c, "RECURRENCE-ID").is_none())
            .flat_map(|c| lines(c).filter(|l| named(l, "EXDATE").is_some()))
            .flat_map(|l| {
                let head: Vec<String> = l.params.iter().map(|p| p.to_string()).collect();
                l.raw_value_str()
                    .split(',')
                    .map(|v| (v.trim().to_string(), head.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let before: std::collections::HashSet<String> = exdates(&super::parse_stored(old)?)
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    let mut root = super::parse_stored(new)?;
    let after = exdates(&root);
    let (master, overridden) = master_and_overrides(&root)?;
    partstat_in(&master, address)?;
    let length = duration_of(&master)?;
    let mut added = vec![];
    for (value, head) in after {
        if before.contains(&value) || overridden.contains(&value) {
            continue;
        }
        if added.len() == MAX_ANSWERED_DATES {
            break;
        }
        let params: String = head.iter().map(|p| format!(";{p}")).collect();
        let when = vec![
            format!("RECURRENCE-ID{params}:{value}"),
            format!("DTSTART{params}:{value}"),
            format!("DURATION:{length}"),
        ];
        let mut o = override_of(&master, &when)?;
        for item in &mut o.items {
            if let IcalItem::Prop(l) = item
                && l.name.get().eq_ignore_ascii_case("ATTENDEE")
                && same_address(&l.raw_value_str(), address)
            {
                set_param(l, "PARTSTAT", "DECLINED");
            }
        }
        added.push(o);
    }
    if added.is_empty() {
        return None;
    }
    for o in added {
        root.push_component(o);
    }
    Some(root.to_bytes())
}

/// RFC 6638 3.2.9 / 7.3: on an attendee's copy, record on the ORGANIZER lines how their reply
/// was delivered. `None` when nothing changes.
pub fn set_organizer_status(body: &[u8], code: &str) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut changed = false;
    for c in main_components_mut(&mut root) {
        for item in &mut c.items {
            if let IcalItem::Prop(l) = item
                && l.name.get().eq_ignore_ascii_case("ORGANIZER")
                && param(l, "SCHEDULE-STATUS").as_deref() != Some(code)
            {
                set_param(l, "SCHEDULE-STATUS", code);
                changed = true;
            }
        }
    }
    changed.then(|| root.to_bytes())
}

/// Mark who acted for the organizer (RFC 5545 3.2.18, RFC 6638: a delegate's write): every
/// ORGANIZER line naming `organizer` gets `SENT-BY` set to `sender`. `None` when nothing
/// changes.
pub fn set_sent_by(body: &[u8], organizer: &dyn Fn(&str) -> bool, sender: &str) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut changed = false;
    for c in main_components_mut(&mut root) {
        for item in &mut c.items {
            if let IcalItem::Prop(l) = item
                && l.name.get().eq_ignore_ascii_case("ORGANIZER")
                && organizer(&l.raw_value_str())
                && param(l, "SENT-BY").is_none_or(|s| !same_address(&s, sender))
            {
                // A cal-address parameter value is quoted (RFC 5545 3.2.18).
                set_param(l, "SENT-BY", &format!("\"{sender}\""));
                changed = true;
            }
        }
    }
    changed.then(|| root.to_bytes())
}

/// RFC 6638 3.2.9: record on each ATTENDEE line of the organizer's copy how delivery went, and
/// drop SCHEDULE-FORCE-SEND (a one-shot request). `status` maps an address and the line's
/// current status to the new code; `None` leaves that line's status alone. `None` when nothing
/// changes.
pub fn set_schedule_status(
    body: &[u8],
    status: &dyn Fn(&str, Option<&str>) -> Option<String>,
) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut changed = false;
    for c in main_components_mut(&mut root) {
        for item in &mut c.items {
            let IcalItem::Prop(l) = item else { continue };
            let name = l.name.get();
            let is_attendee = name.eq_ignore_ascii_case("ATTENDEE");
            if !is_attendee && !name.eq_ignore_ascii_case("ORGANIZER") {
                continue;
            }
            let before = l.params.len();
            l.params
                .retain(|p| !p.name.get().eq_ignore_ascii_case("SCHEDULE-FORCE-SEND"));
            changed |= l.params.len() != before;
            let current = param(l, "SCHEDULE-STATUS");
            if is_attendee
                && let Some(code) = status(&l.raw_value_str(), current.as_deref())
                && current.as_deref() != Some(code.as_str())
            {
                set_param(l, "SCHEDULE-STATUS", &code);
                changed = true;
            }
        }
    }
    changed.then(|| root.to_bytes())
}

/// Keep what is the attendee's own on their copy when the organizer's update replaces it: their
/// VALARMs and TRANSP, per RECURRENCE-ID.
pub fn keep_personal(new_copy: &[u8], old_copy: &[u8]) -> Option<Vec<u8>> {
    let old = super::parse_stored(old_copy)?;
    let mut root = super::parse_stored(new_copy)?;
    let personal: Vec<(Option<String>, Vec<IcalCst<'_>>, Option<String>)> = main_components(&old)
        .map(|c| {
            let alarms = super::subcomponents(c)
                .filter(|s| comp_name(s) == "VALARM")
                .cloned()
                .collect();
            (value_of(c, "RECURRENCE-ID"), alarms, value_of(c, "TRANSP"))
        })
        .collect();
    for c in main_components_mut(&mut root) {
        let rid = value_of(c, "RECURRENCE-ID");
        let Some((_, alarms, transp)) = personal.iter().find(|(r, _, _)| *r == rid) else {
            continue;
        };
        remove_alarms(c);
        for a in alarms {
            c.push_component(a.clone());
        }
        if let Some(t) = transp {
            replace_prop(c, "TRANSP", t)?;
        }
    }
    Some(root.to_bytes())
}

/// The body without its VALARMs (alarms are personal: someone else's view shows none of the
/// owner's). `None` when it has none.
pub fn without_alarms(body: &[u8]) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut changed = false;
    for c in main_components_mut(&mut root) {
        let before = c.items.len();
        remove_alarms(c);
        changed |= c.items.len() != before;
    }
    changed.then(|| root.to_bytes())
}

/// A free-busy request POSTed to a schedule outbox (RFC 6638 5, RFC 5546 3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeBusyRequest {
    pub uid: String,
    pub organizer: String,
    pub attendees: Vec<String>,
    pub range: TimeRange,
}

/// Why an outbox POST is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    #[error("the body is not an iCalendar object")]
    NotCalendar,
    #[error(
        "only METHOD:REQUEST with a VFREEBUSY is accepted here; {0} is scheduled implicitly by storing the object in a calendar"
    )]
    Unsupported(String),
    #[error("the VFREEBUSY request needs {0}")]
    Missing(&'static str),
}

/// Read a VFREEBUSY request. Floating times are read as UTC (the request names no zone).
pub fn freebusy_request(body: &[u8]) -> Result<FreeBusyRequest, OutboxError> {
    let root = super::parse_stored(body).ok_or(OutboxError::NotCalendar)?;
    if comp_name(&root) != "VCALENDAR" {
        return Err(OutboxError::NotCalendar);
    }
    let method = value_of(&root, "METHOD")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let fb = super::subcomponents(&root).find(|c| comp_name(c) == "VFREEBUSY");
    let (true, Some(fb)) = (method == "REQUEST", fb) else {
        let what = if method.is_empty() {
            "a message without METHOD".to_string()
        } else {
            format!("METHOD:{method}")
        };
        return Err(OutboxError::Unsupported(what));
    };
    let instant = |name: &str| {
        lines(fb)
            .find_map(|l| named(l, name))
            .and_then(|l| line_instant(l, &[]))
            .map(|(t, _)| t)
    };
    let start = instant("DTSTART").ok_or(OutboxError::Missing("DTSTART"))?;
    let end = instant("DTEND").ok_or(OutboxError::Missing("DTEND"))?;
    if end <= start {
        return Err(OutboxError::Missing("a DTEND after its DTSTART"));
    }
    let organizer = lines(fb)
        .find_map(|l| named(l, "ORGANIZER").map(|l| l.raw_value_str().trim().to_string()))
        .ok_or(OutboxError::Missing("ORGANIZER"))?;
    let attendees: Vec<String> = lines(fb)
        .filter_map(|l| named(l, "ATTENDEE").map(|l| l.raw_value_str().trim().to_string()))
        .collect();
    if attendees.is_empty() {
        return Err(OutboxError::Missing("at least one ATTENDEE"));
    }
    Ok(FreeBusyRequest {
        uid: value_of(fb, "UID").unwrap_or_default(),
        organizer,
        attendees,
        range: TimeRange::new(Some(start), Some(end)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:Plan\r\nORGANIZER;CN=Alice:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\nATTENDEE;CN=\"Bob, B.\";SCHEDULE-FORCE-SEND=REQUEST:MAILTO:Bob@Example.org\r\nATTENDEE:mailto:carol@example.org\r\nX-APPLE-KEEP:yes\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:m1\r\nRECURRENCE-ID:20260106T100000Z\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260106T120000Z\r\nDTEND:20260106T130000Z\r\nSUMMARY:Plan (moved)\r\nORGANIZER;CN=Alice:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\nATTENDEE:mailto:carol@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn text(b: Option<Vec<u8>>) -> String {
        String::from_utf8(b.expect("some")).expect("utf-8")
    }

    #[test]
    fn reads_parties() {
        let s = scheduling(ORG.as_bytes()).expect("scheduling object");
        assert_eq!(s.uid, "m1");
        assert_eq!(s.organizer.address, "mailto:alice@example.org");
        assert_eq!(s.attendees().len(), 3);
        assert!(s.has_attendee("mailto:bob@example.org"));
        assert_eq!(
            s.partstats_of("mailto:carol@example.org"),
            vec![
                (None, "NEEDS-ACTION".to_string()),
                (Some("20260106T100000Z".into()), "NEEDS-ACTION".into())
            ]
        );
        assert!(s.components[0].attendees[1].force_send);
        let plain = ORG.replace("ORGANIZER;CN=Alice:mailto:alice@example.org\r\n", "");
        assert!(scheduling(plain.as_bytes()).is_none());
    }

    #[test]
    fn attendee_copy_excludes_instances_they_left() {
        let bob = text(attendee_copy(ORG.as_bytes(), "mailto:bob@example.org"));
        assert!(bob.contains("EXDATE:20260106T100000Z\r\n"), "{bob}");
        assert!(!bob.contains("Plan (moved)"), "{bob}");
        assert!(!bob.contains("VALARM"), "{bob}");
        assert!(!bob.contains("SCHEDULE-FORCE-SEND"), "{bob}");
        // Untouched lines keep their bytes, quoting included.
        assert!(
            bob.contains("ATTENDEE;CN=\"Bob, B.\":MAILTO:Bob@Example.org\r\n"),
            "{bob}"
        );
        assert!(bob.contains("X-APPLE-KEEP:yes\r\n"));
        let carol = text(attendee_copy(ORG.as_bytes(), "mailto:carol@example.org"));
        assert!(
            carol.contains("Plan (moved)") && !carol.contains("EXDATE"),
            "{carol}"
        );
        assert!(attendee_copy(ORG.as_bytes(), "mailto:dave@example.org").is_none());
    }

    #[test]
    fn messages() {
        let req = text(request(ORG.as_bytes(), "mailto:bob@example.org", 0));
        assert!(req.contains("METHOD:REQUEST\r\n"), "{req}");
        assert!(req.contains("DTSTAMP:19700101T000000Z\r\n"), "{req}");
        let c = text(cancel(ORG.as_bytes(), "mailto:carol@example.org", None, 0));
        assert!(
            c.contains("METHOD:CANCEL\r\n") && c.contains("STATUS:CANCELLED\r\n"),
            "{c}"
        );
        assert_eq!(c.matches("ATTENDEE").count(), 2, "{c}");
        assert!(c.contains("SEQUENCE:1\r\n"), "{c}");
        let one = text(cancel(
            ORG.as_bytes(),
            "mailto:bob@example.org",
            Some(&["20260106T100000Z".to_string()]),
            0,
        ));
        assert_eq!(one.matches("BEGIN:VEVENT").count(), 1, "{one}");
        assert!(
            one.contains("RECURRENCE-ID:20260106T100000Z")
                && one.contains("ATTENDEE:mailto:bob@example.org")
        );
        let answered = ORG.replace(
            "ATTENDEE:mailto:carol@example.org",
            "ATTENDEE;PARTSTAT=TENTATIVE:mailto:carol@example.org",
        );
        let r = text(reply(answered.as_bytes(), "mailto:carol@example.org", 0));
        assert!(r.contains("METHOD:REPLY\r\n"), "{r}");
        assert!(
            !r.contains("ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice"),
            "{r}"
        );
        assert_eq!(r.matches("ATTENDEE").count(), 2, "{r}");
    }

    #[test]
    fn a_delegate_is_named_as_sent_by() {
        let out = text(set_sent_by(
            ORG.as_bytes(),
            &|a| same_address(a, "mailto:alice@example.org"),
            "mailto:bob@example.org",
        ));
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(
            unfolded
                .matches(
                    "ORGANIZER;CN=Alice;SENT-BY=\"mailto:bob@example.org\":mailto:alice@example.org"
                )
                .count(),
            2,
            "{out}"
        );
        let again = set_sent_by(
            out.as_bytes(),
            &|a| same_address(a, "mailto:alice@example.org"),
            "mailto:bob@example.org",
        );
        assert!(again.is_none(), "set twice");
    }

    #[test]
    fn reply_folds_into_organizer_copy() {
        let answers = vec![(None, "DECLINED".to_string())];
        let out = text(apply_reply(
            ORG.as_bytes(),
            "mailto:carol@example.org",
            &answers,
        ));
        assert_eq!(
            out.matches("PARTSTAT=DECLINED;SCHEDULE-STATUS=2.0:mailto:carol")
                .count(),
            2,
            "{out}"
        );
        // Applying the same answer again changes nothing.
        assert!(apply_reply(out.as_bytes(), "mailto:carol@example.org", &answers).is_none());
    }

    #[test]
    fn schedule_status_and_personal_parts() {
        let out = text(set_schedule_status(ORG.as_bytes(), &|a, _| {
            same_address(a, "mailto:bob@example.org").then(|| "1.2".to_string())
        }));
        assert!(
            out.contains("ATTENDEE;CN=\"Bob, B.\";SCHEDULE-STATUS=1.2:MAILTO:Bob@Example.org"),
            "{out}"
        );
        let bob_old = text(attendee_copy(ORG.as_bytes(), "mailto:bob@example.org"))
            .replace("END:VEVENT", "TRANSP:TRANSPARENT\r\nBEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER:-PT1H\r\nEND:VALARM\r\nEND:VEVENT");
        let bob_new = text(attendee_copy(
            ORG.replace("SUMMARY:Plan\r\n", "SUMMARY:Plan v2\r\n")
                .as_bytes(),
            "mailto:bob@example.org",
        ));
        let merged = text(keep_personal(bob_new.as_bytes(), bob_old.as_bytes()));
        assert!(
            merged.contains("Plan v2")
                && merged.contains("TRIGGER:-PT1H")
                && merged.contains("TRANSP:TRANSPARENT"),
            "{merged}"
        );
    }

    #[test]
    fn outbox_requests() {
        let fb = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:f\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T000000Z\r\nDTEND:20260106T000000\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:bob@example.org\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";
        let r = freebusy_request(fb.as_bytes()).expect("request");
        assert_eq!(r.attendees, vec!["mailto:bob@example.org"]);
        assert_eq!(r.range.end - r.range.start, 86_400);
        let counter = fb.replace("METHOD:REQUEST", "METHOD:COUNTER");
        assert!(matches!(
            freebusy_request(counter.as_bytes()),
            Err(OutboxError::Unsupported(_))
        ));
        assert_eq!(freebusy_request(b"garbage"), Err(OutboxError::NotCalendar));
    }
}
