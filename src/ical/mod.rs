//! iCalendar (RFC 5545) facade: parse and validate calendar object resources, and extract what
//! the server needs to index them (UID, component type).
//!
//! The parser is `ical-rs` (lossless CST; see ARCHITECTURE.md for why), pinned and used only
//! here, so swapping it touches one file. Calendar bytes are never rewritten by this module:
//! the store keeps the client's bytes; we only read them.
//!
//! Pure: no I/O, no SQL, no HTTP. Must never panic on any input.

pub mod bundle;
pub mod delegated;
pub mod density;
pub mod expand;
pub mod filter;
pub mod freebusy;
pub mod index;
pub mod itip;
pub mod partial;
pub mod privacy;
pub mod repair;
pub mod values;
pub mod zones;

use icalrs::tree::cst::{IcalCst, IcalItem};

/// The component type of a calendar object resource (RFC 4791 4.1: one type per resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    Event,
    Todo,
    Journal,
    FreeBusy,
    Availability,
    Other(String),
}

impl ComponentKind {
    pub fn from_name(name: &str) -> ComponentKind {
        match name.to_ascii_uppercase().as_str() {
            "VEVENT" => ComponentKind::Event,
            "VTODO" => ComponentKind::Todo,
            "VJOURNAL" => ComponentKind::Journal,
            "VFREEBUSY" => ComponentKind::FreeBusy,
            "VAVAILABILITY" => ComponentKind::Availability,
            other => ComponentKind::Other(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ComponentKind::Event => "VEVENT",
            ComponentKind::Todo => "VTODO",
            ComponentKind::Journal => "VJOURNAL",
            ComponentKind::FreeBusy => "VFREEBUSY",
            ComponentKind::Availability => "VAVAILABILITY",
            ComponentKind::Other(n) => n,
        }
    }
}

/// Why a body is not an acceptable calendar object resource. Each maps to a CalDAV
/// precondition in `caldav` (syntax → `valid-calendar-data`, structure →
/// `valid-calendar-object-resource`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcalError {
    #[error("iCalendar syntax error on line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("calendar data is not valid UTF-8 near byte {0}")]
    NotUtf8(usize),
    #[error("body is not a VCALENDAR object")]
    NotVcalendar,
    #[error("body holds more than one VCALENDAR")]
    SeveralCalendars,
    #[error("METHOD is not allowed in a stored calendar object (RFC 4791 4.1)")]
    MethodPresent,
    #[error("calendar object has no VEVENT, VTODO, VJOURNAL or VFREEBUSY component")]
    NoComponents,
    #[error("component {0} has no UID")]
    MissingUid(String),
    #[error(
        "all components of one resource must share one UID (RFC 4791 4.1); found '{0}' and '{1}'"
    )]
    SeveralUids(String, String),
    #[error("all components of one resource must be of one type (RFC 4791 4.1); found {0} and {1}")]
    MixedComponents(String, String),
    #[error("UID is empty")]
    EmptyUid,
    #[error("calendar-timezone must hold exactly one VTIMEZONE (RFC 4791 5.2.2)")]
    NotOneTimezone,
    #[error("VTIMEZONE '{0}' is not usable: {1}")]
    BadTimezone(String, String),
    #[error("TZID '{0}' has no VTIMEZONE in the object and is not a known time zone")]
    UnknownTimezone(String),
    #[error("the recurrence set has more than {0} instances within the indexing horizon")]
    TooManyInstances(usize),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("the file holds more than {0} objects; import it in parts")]
    TooManyObjects(usize),
    #[error("components are nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("a recurrence rule would generate more than {0} candidates in one period")]
    RuleTooDense(u64),
}

/// Deepest component nesting accepted. Real objects nest three deep (VCALENDAR, VEVENT,
/// VALARM), four with a VLOCATION in an alarm (RFC 9074); the parser recurses once per level,
/// so the depth is checked on the bytes before it runs.
pub const MAX_NESTING: usize = 16;

/// The deepest component nesting in `input` as the parser would see it, or an error as soon
/// as it passes `MAX_NESTING`. It reads logical lines the way `ical-rs` tokenises them (blank
/// lines skipped, folded continuations joined, leading whitespace stripped, quoted-printable
/// soft breaks followed) and errs on the side of depth: every line whose name may be BEGIN
/// counts, and only a line whose name is exactly END closes. No allocation, no recursion.
pub fn check_nesting(input: &[u8]) -> Result<(), IcalError> {
    let mut depth = 0usize;
    let mut rest = input;
    while !rest.is_empty() {
        let (content, tail) = physical(rest);
        rest = tail;
        let first = strip_wsp(content);
        if first.is_empty() {
            continue;
        }
        // The head of the logical line: enough bytes to tell BEGIN and END apart.
        let mut head = [0u8; 6];
        let mut n = 0;
        for &b in first.iter().take(6) {
            head[n] = b;
            n += 1;
        }
        if first.ends_with(b"=") && head_is_quoted_printable(first) {
            // Soft line breaks: the continuation lines belong to this one.
            let mut last = first;
            while last.ends_with(b"=") && !rest.is_empty() {
                let (c, t) = physical(rest);
                rest = t;
                last = c;
            }
        } else {
            while matches!(rest.first(), Some(b' ' | b'\t')) {
                let (c, t) = physical(&rest[1..]);
                rest = t;
                for &b in c {
                    if n == head.len() {
                        break;
                    }
                    head[n] = b;
                    n += 1;
                }
            }
        }
        let head = &head[..n];
        if head.len() >= 5 && head[..5].eq_ignore_ascii_case(b"BEGIN") {
            depth += 1;
            if depth > MAX_NESTING {
                return Err(IcalError::TooDeep(MAX_NESTING));
            }
        } else if head.len() >= 4
            && head[..3].eq_ignore_ascii_case(b"END")
            && matches!(head[3], b':' | b';')
        {
            depth = depth.saturating_sub(1);
        }
    }
    Ok(())
}

/// Whether a line's name and parameters declare quoted-printable, as `ical-rs` reads them
/// (the head ends at the first colon outside double quotes).
fn head_is_quoted_printable(line: &[u8]) -> bool {
    let mut quoted = false;
    let mut colon = None;
    for (i, &b) in line.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b':' if !quoted => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(colon) = colon.or_else(|| memchr::memchr(b':', line)) else {
        return false;
    };
    line[..colon].split(|&b| b == b';').any(|t| {
        t.eq_ignore_ascii_case(b"QUOTED-PRINTABLE")
            || t.eq_ignore_ascii_case(b"ENCODING=QUOTED-PRINTABLE")
    })
}

/// One physical line (without its ending) and what follows it.
fn physical(rest: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'\n', rest) {
        Some(lf) => {
            let content = &rest[..lf];
            (
                content.strip_suffix(b"\r").unwrap_or(content),
                &rest[lf + 1..],
            )
        }
        None => (rest, &[]),
    }
}

fn strip_wsp(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', tail @ ..] = bytes {
        bytes = tail;
    }
    bytes
}

/// What validation learned about a calendar object resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub uid: String,
    pub kind: ComponentKind,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// 1-based line number of the first occurrence of `needle` in `hay`, or 1.
fn line_of(hay: &[u8], needle: &str) -> usize {
    let n = needle.trim_end_matches(['\r', '\n']).as_bytes();
    let pos = if n.is_empty() {
        None
    } else {
        hay.windows(n.len()).position(|w| w == n)
    };
    match pos {
        Some(p) => hay[..p].iter().filter(|b| **b == b'\n').count() + 1,
        None => 1,
    }
}

fn parse_error_text(e: &icalrs::tree::error::IcalParseError) -> &str {
    use icalrs::tree::error::IcalParseError as P;
    match e {
        P::MissingCrlf(d)
        | P::MissingPropertyColon(d)
        | P::NonUtf8Header(d)
        | P::ExpectedBegin(d)
        | P::MissingEnd(d) => d,
    }
}

/// Parse a stored body (already validated) for reading: a leading BOM is skipped.
pub(crate) fn parse_stored(body: &[u8]) -> Option<IcalCst<'_>> {
    let input = strip_bom(body);
    check_nesting(input).ok()?;
    IcalCst::parse(input).ok()
}

/// Parse exactly one VCALENDAR, strictly.
fn parse_one(body: &[u8]) -> Result<IcalCst<'_>, IcalError> {
    let input = strip_bom(body);
    check_nesting(input)?;
    let mut calendars = IcalCst::parse_many(input);
    let first = match calendars.next() {
        None => return Err(IcalError::NotVcalendar),
        Some(Err(e)) => {
            return Err(IcalError::Syntax {
                line: line_of(input, parse_error_text(&e)),
                message: e.to_string(),
            });
        }
        Some(Ok(c)) => c,
    };
    match calendars.next() {
        None => {}
        Some(Ok(_)) => return Err(IcalError::SeveralCalendars),
        Some(Err(e)) => {
            return Err(IcalError::Syntax {
                line: line_of(input, parse_error_text(&e)),
                message: e.to_string(),
            });
        }
    }
    if component_name(&first).as_deref() != Some("VCALENDAR") {
        return Err(IcalError::NotVcalendar);
    }
    Ok(first)
}

fn component_name(c: &IcalCst<'_>) -> Option<String> {
    c.begin
        .as_ref()
        .map(|b| b.raw_value_str().trim().to_ascii_uppercase())
}

fn prop_value<'c>(c: &'c IcalCst<'_>, name: &str) -> Option<std::borrow::Cow<'c, str>> {
    c.items.iter().find_map(|i| match i {
        IcalItem::Prop(line) if line.name.get().eq_ignore_ascii_case(name) => {
            Some(line.raw_value_str())
        }
        _ => None,
    })
}

fn has_prop(c: &IcalCst<'_>, name: &str) -> bool {
    c.items
        .iter()
        .any(|i| matches!(i, IcalItem::Prop(line) if line.name.get().eq_ignore_ascii_case(name)))
}

/// The components directly inside `c`.
pub(crate) fn subcomponents<'c, 'a>(c: &'c IcalCst<'a>) -> impl Iterator<Item = &'c IcalCst<'a>> {
    c.items.iter().filter_map(|i| match i {
        IcalItem::Component(sub) => Some(&**sub),
        _ => None,
    })
}

/// Validate a calendar object resource body (RFC 4791 4.1 and 5.3.2) and summarise it.
pub fn validate_object(body: &[u8]) -> Result<ObjectSummary, IcalError> {
    validate(body).map(|v| v.summary)
}

/// A body `validate` accepted: its summary, and the parse it came from, so that indexing it
/// (the PUT path) does not parse it a second time.
pub struct Validated<'a> {
    pub summary: ObjectSummary,
    cst: IcalCst<'a>,
}

impl Validated<'_> {
    /// The body's time-range index (what `index::index_object` computes from the bytes).
    pub fn index(&self, limits: index::IndexLimits) -> Result<index::ObjectIndex, IcalError> {
        index::index_components(&self.cst.decode().components, limits)
    }
}

/// Validate a calendar object resource body, keeping its parse for `Validated::index`.
pub fn validate(body: &[u8]) -> Result<Validated<'_>, IcalError> {
    if let Err(e) = std::str::from_utf8(strip_bom(body)) {
        // Folds may split a UTF-8 sequence (RFC 5545 3.1 allows it); only reject when the
        // unfolded text is still not UTF-8.
        let unfolded = unfold(strip_bom(body));
        if std::str::from_utf8(&unfolded).is_err() {
            return Err(IcalError::NotUtf8(e.valid_up_to()));
        }
    }
    // RFC 5545 3.1: no control character but HTAB inside a line (and CR LF between lines).
    // Stored, one would reach some readers and be dropped by others (XML cannot carry it).
    if let Some(at) = body
        .iter()
        .position(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f)
    {
        return Err(IcalError::Syntax {
            line: 1 + body[..at].iter().filter(|&&b| b == b'\n').count(),
            message: format!(
                "a raw control character (0x{:02X}) is not allowed in iCalendar",
                body[at]
            ),
        });
    }
    let cal = parse_one(body)?;
    if has_prop(&cal, "METHOD") {
        return Err(IcalError::MethodPresent);
    }
    let mut uid: Option<String> = None;
    let mut kind: Option<ComponentKind> = None;
    for sub in subcomponents(&cal) {
        let name = component_name(sub).unwrap_or_default();
        if name == "VTIMEZONE" {
            continue;
        }
        let this_kind = ComponentKind::from_name(&name);
        if let ComponentKind::Other(n) = &this_kind
            && (n.starts_with("X-") || n.starts_with("IANA"))
        {
            // Unknown extension components are carried, not indexed.
            continue;
        }
        let this_uid = prop_value(sub, "UID")
            .map(|u| u.trim().to_string())
            .ok_or_else(|| IcalError::MissingUid(name.clone()))?;
        if this_uid.is_empty() {
            return Err(IcalError::EmptyUid);
        }
        match &uid {
            None => uid = Some(this_uid),
            Some(u) if *u != this_uid => return Err(IcalError::SeveralUids(u.clone(), this_uid)),
            Some(_) => {}
        }
        match &kind {
            None => kind = Some(this_kind),
            Some(k) if *k != this_kind => {
                return Err(IcalError::MixedComponents(
                    k.name().to_string(),
                    this_kind.name().to_string(),
                ));
            }
            Some(_) => {}
        }
    }
    check_timezones(&cal)?;
    for sub in subcomponents(&cal) {
        if let Some(p) = values::problem(sub) {
            return Err(IcalError::InvalidValue(p));
        }
        // RFC 5545 3.6.1: without METHOD (always, here), a VEVENT has a DTSTART.
        if component_name(sub).as_deref() == Some("VEVENT") && !has_prop(sub, "DTSTART") {
            return Err(IcalError::InvalidValue("a VEVENT needs a DTSTART".into()));
        }
    }
    check_rule_density(&cal)?;
    match (uid, kind) {
        (Some(uid), Some(kind)) => Ok(Validated {
            summary: ObjectSummary { uid, kind },
            cst: cal,
        }),
        _ => Err(IcalError::NoComponents),
    }
}

/// Most observances one VTIMEZONE may hold.
const MAX_OBSERVANCES: usize = 64;

/// A VTIMEZONE whose observances recur other than yearly (or with too many observances)
/// would make offset resolution walk an unbounded number of transitions from its DTSTART, so
/// it is refused on write and ignored on read (real zones recur yearly, RFC 5545 3.6.5).
fn vtimezone_problem(c: &IcalCst<'_>) -> Option<String> {
    let observances: Vec<&IcalCst<'_>> = subcomponents(c).collect();
    if observances.len() > MAX_OBSERVANCES {
        return Some(format!("more than {MAX_OBSERVANCES} observances"));
    }
    for o in observances {
        for item in &o.items {
            if let IcalItem::Prop(line) = item
                && line.name.get().eq_ignore_ascii_case("RRULE")
                && !line
                    .raw_value_str()
                    .to_ascii_uppercase()
                    .contains("FREQ=YEARLY")
            {
                return Some("observance rules must recur yearly".into());
            }
        }
    }
    None
}

/// The zones an object carries that are safe to resolve against: sane observances
/// and a bounded number of transitions (`decoded_zone_is_safe`).
/// Every reader takes its custom zones from here; an unsafe zone is ignored, as if absent.
pub(crate) fn carried_zones(
    components: &[icalrs::component::IcalComponent<'_>],
) -> Vec<icalrs::tz::IcalTz> {
    components
        .iter()
        .filter(|c| decoded_zone_is_safe(c))
        .filter_map(icalrs::tz::IcalTz::of_component)
        .collect()
}

/// The same check on the decoded model, used to drop unsafe zones before expansion.
pub(crate) fn decoded_zone_is_safe(c: &icalrs::component::IcalComponent<'_>) -> bool {
    if !c.name.eq_ignore_ascii_case("VTIMEZONE") {
        return true;
    }
    c.components.len() <= MAX_OBSERVANCES
        && c.components.iter().all(|o| {
            o.props.iter().all(|p| match (&*p.name, &p.value) {
                (n, icalrs::value::IcalValue::Recur(r)) if n.eq_ignore_ascii_case("RRULE") => {
                    observance_rule_is_sane(&r.0)
                }
                (n, _) if n.eq_ignore_ascii_case("RRULE") => false,
                _ => true,
            })
        })
        && icalrs::tz::IcalTz::of_component(c).is_none_or(|z| density::zone_problem(&z).is_none())
}

/// A VTIMEZONE observance rule the zone code can walk in bounded time: yearly, and every BY
/// part within RFC 5545's ranges. A rule that can never match (found by fuzzing: `BYDAY=-0SU`)
/// would otherwise be searched year after year for an occurrence that does not exist.
fn observance_rule_is_sane(rule: &str) -> bool {
    let rule = rule.to_ascii_uppercase();
    let mut yearly = false;
    for part in rule.split(';') {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let numbers = |lo: i64, hi: i64| {
            value.split(',').all(|v| {
                v.trim()
                    .parse::<i64>()
                    .is_ok_and(|n| n != 0 && n.abs() >= lo && n.abs() <= hi)
            })
        };
        let ok = match key.trim() {
            "FREQ" => {
                yearly = value.trim() == "YEARLY";
                yearly
            }
            "BYMONTH" => numbers(1, 12),
            "BYMONTHDAY" => numbers(1, 31),
            "BYYEARDAY" => numbers(1, 366),
            "BYWEEKNO" => numbers(1, 53),
            "BYSETPOS" => numbers(1, 366),
            "INTERVAL" | "COUNT" => value.trim().parse::<u32>().is_ok_and(|n| n >= 1),
            "BYDAY" => value.split(',').all(|d| {
                let d = d.trim();
                // By bytes, checked: a multibyte character there (found by fuzzing:
                // `BYDAY=-\u{3ea}U`) is no weekday, and must not split a character.
                let cut = d.len().saturating_sub(2);
                let (Some(ord), Some(day)) = (d.get(..cut), d.get(cut..)) else {
                    return false;
                };
                let weekday = matches!(day, "SU" | "MO" | "TU" | "WE" | "TH" | "FR" | "SA");
                let ordinal =
                    ord.is_empty() || ord.parse::<i64>().is_ok_and(|n| n != 0 && n.abs() <= 53);
                weekday && ordinal
            }),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    yearly
}

/// RFC 5545 3.2.19 / RFC 4791 4.1: every TZID used needs a VTIMEZONE in the object. Clients
/// that omit it for a well-known zone (IANA or Windows names, possibly padded) are tolerated,
/// since the server resolves those from the tz database; an unknown zone without a definition
/// cannot be placed in time and is refused.
fn check_timezones(cal: &IcalCst<'_>) -> Result<(), IcalError> {
    for tz in subcomponents(cal).filter(|c| component_name(c).as_deref() == Some("VTIMEZONE")) {
        if let Some(problem) = vtimezone_problem(tz) {
            let id = prop_value(tz, "TZID")
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            return Err(IcalError::BadTimezone(id, problem));
        }
    }
    let defined: Vec<String> = subcomponents(cal)
        .filter(|c| component_name(c).as_deref() == Some("VTIMEZONE"))
        .filter_map(|c| prop_value(c, "TZID").map(|t| t.trim().to_string()))
        .collect();
    let mut stack: Vec<&IcalCst<'_>> = subcomponents(cal)
        .filter(|c| component_name(c).as_deref() != Some("VTIMEZONE"))
        .collect();
    let mut visited = 0usize;
    while let Some(c) = stack.pop() {
        visited += 1;
        if visited > 10_000 {
            break;
        }
        for item in &c.items {
            match item {
                IcalItem::Prop(line) => {
                    for p in &line.params {
                        if !p.name.get().eq_ignore_ascii_case("TZID") {
                            continue;
                        }
                        for v in &p.values {
                            let t = v.get().trim_matches('"').trim();
                            if !defined.iter().any(|d| d == t) && zones::iana_name(t).is_none() {
                                return Err(IcalError::UnknownTimezone(t.to_string()));
                            }
                        }
                    }
                }
                IcalItem::Component(sub) => stack.push(sub),
                IcalItem::Opaque(_) => {}
            }
        }
    }
    Ok(())
}

/// Every RRULE and EXRULE must be cheap to expand (`density::rule_is_bounded`), and every
/// custom VTIMEZONE (one whose TZID the tz database does not know, so its own rules are used)
/// must have a bounded number of transitions. Checked from the rules' parts, before any
/// expansion allocates.
fn check_rule_density(cal: &IcalCst<'_>) -> Result<(), IcalError> {
    let mut custom_zone = false;
    for sub in subcomponents(cal) {
        if component_name(sub).as_deref() == Some("VTIMEZONE") {
            let id = prop_value(sub, "TZID")
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            custom_zone |= zones::iana_name(&id).is_none();
            continue;
        }
        let mut stack = vec![sub];
        while let Some(c) = stack.pop() {
            for item in &c.items {
                match item {
                    IcalItem::Prop(line)
                        if line.name.get().eq_ignore_ascii_case("RRULE")
                            || line.name.get().eq_ignore_ascii_case("EXRULE") =>
                    {
                        if let Ok(rule) = icalrs::recur::IcalRecurRule::parse(&line.raw_value_str())
                            && !density::rule_is_bounded(&rule)
                        {
                            return Err(IcalError::RuleTooDense(density::MAX_PERIOD_CANDIDATES));
                        }
                    }
                    IcalItem::Component(inner) => stack.push(inner),
                    _ => {}
                }
            }
        }
    }
    if custom_zone {
        let decoded = cal.decode();
        for c in &decoded.components {
            if let Some(zone) = icalrs::tz::IcalTz::of_component(c)
                && zones::iana_name(&zone.id).is_none()
                && let Some(problem) = density::zone_problem(&zone)
            {
                return Err(IcalError::BadTimezone(zone.id.clone(), problem));
            }
        }
    }
    Ok(())
}

/// Validate a `calendar-timezone` property value (RFC 4791 5.2.2): a VCALENDAR holding exactly
/// one VTIMEZONE. Returns its TZID.
pub fn validate_timezone(body: &[u8]) -> Result<String, IcalError> {
    let cal = parse_one(body)?;
    let tzs: Vec<_> = subcomponents(&cal)
        .filter(|c| component_name(c).as_deref() == Some("VTIMEZONE"))
        .collect();
    // Exactly one VTIMEZONE and nothing beside it (RFC 4791 5.2.2, 9.8).
    if tzs.len() != 1 || subcomponents(&cal).count() != 1 {
        return Err(IcalError::NotOneTimezone);
    }
    if let Some(problem) = vtimezone_problem(tzs[0]) {
        let id = prop_value(tzs[0], "TZID")
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        return Err(IcalError::BadTimezone(id, problem));
    }
    check_rule_density(&cal)?;
    prop_value(tzs[0], "TZID")
        .map(|t| t.trim().to_string())
        .ok_or(IcalError::NotOneTimezone)
}

/// The zone a `calendar-timezone` value (a VCALENDAR with one VTIMEZONE) stands for: the tz
/// database's zone when its TZID is known there, else the VTIMEZONE's own rules.
pub fn zone_of_vtimezone(body: &[u8]) -> Option<zones::Zone> {
    let tzid = validate_timezone(body).ok()?;
    let cal = parse_one(body).ok()?;
    let decoded = cal.decode();
    let carried = carried_zones(&decoded.components);
    zones::Zone::for_tzid(&tzid, &carried)
}

/// RFC 5545 3.1 unfolding at the byte level (CRLF or LF followed by one space or tab).
fn unfold(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r'
            && bytes.get(i + 1) == Some(&b'\n')
            && matches!(bytes.get(i + 2), Some(b' ' | b'\t'))
        {
            i += 3;
        } else if bytes[i] == b'\n' && matches!(bytes.get(i + 1), Some(b' ' | b'\t')) {
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PUT path indexes from the validation's parse: it must index exactly what a fresh
    /// parse of the bytes indexes, for every valid body in the corpus.
    #[test]
    fn index_from_validation_matches_index_of_bytes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ical-corpus/valid");
        let limits = index::IndexLimits::on_write(1_900_000_000, 5000);
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            let Ok(v) = validate(&body) else { continue };
            let fresh = index::index_object(&body, limits);
            assert_eq!(v.index(limits).ok(), fresh.ok(), "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} valid fixtures indexed");
    }

    /// The value checks refuse nothing real clients write: every valid fixture (RFC 5545's
    /// examples, Outlook, Apple, custom zones, overrides) still validates.
    #[test]
    fn every_valid_fixture_validates() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ical-corpus/valid");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            if let Err(e) = validate(&body) {
                panic!("{}: {e}", path.display());
            }
        }
    }

    fn cal(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n")
    }

    #[test]
    fn accepts_event_with_override_sharing_uid() {
        let c = cal(
            "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20240102T100000Z\r\nDTSTART:20240102T110000Z\r\nEND:VEVENT\r\n",
        );
        let s = validate_object(c.as_bytes()).unwrap();
        assert_eq!(s.uid, "a");
        assert_eq!(s.kind, ComponentKind::Event);
    }

    #[test]
    fn rejects_what_rfc4791_forbids() {
        let two =
            cal("BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nEND:VEVENT\r\n");
        assert!(matches!(
            validate_object(two.as_bytes()),
            Err(IcalError::SeveralUids(..))
        ));
        let mixed =
            cal("BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nBEGIN:VTODO\r\nUID:a\r\nEND:VTODO\r\n");
        assert!(matches!(
            validate_object(mixed.as_bytes()),
            Err(IcalError::MixedComponents(..))
        ));
        let method = cal("METHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\n");
        assert_eq!(
            validate_object(method.as_bytes()),
            Err(IcalError::MethodPresent)
        );
        let no_uid = cal("BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\n");
        assert!(matches!(
            validate_object(no_uid.as_bytes()),
            Err(IcalError::MissingUid(_))
        ));
        assert_eq!(
            validate_object(cal("").as_bytes()),
            Err(IcalError::NoComponents)
        );
        assert!(validate_object(b"hello").is_err());
    }

    #[test]
    fn syntax_error_names_the_line() {
        let bad = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nTHIS LINE HAS NO COLON\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        match validate_object(bad.as_bytes()) {
            Err(IcalError::Syntax { line, .. }) => assert_eq!(line, 5),
            other => panic!("expected a syntax error, got {other:?}"),
        }
        let open = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\n";
        assert!(validate_object(open.as_bytes()).is_err());
    }

    #[test]
    fn tolerates_bom_and_lf() {
        let c = "\u{feff}BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\nEND:VEVENT\nEND:VCALENDAR\n";
        assert_eq!(validate_object(c.as_bytes()).unwrap().uid, "x");
    }

    #[test]
    fn tzids_need_a_definition_unless_well_known() {
        let ev = |tz: &str, vtz: &str| {
            cal(&format!(
                "{vtz}BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID={tz}:20240101T100000\r\nEND:VEVENT\r\n"
            ))
        };
        assert!(validate_object(ev("Europe/Berlin", "").as_bytes()).is_ok());
        assert!(validate_object(ev("W. Europe Standard Time ", "").as_bytes()).is_ok());
        assert_eq!(
            validate_object(ev("Mars/Olympus", "").as_bytes()),
            Err(IcalError::UnknownTimezone("Mars/Olympus".into()))
        );
        let vtz = "BEGIN:VTIMEZONE\r\nTZID:Mars/Olympus\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
        assert!(validate_object(ev("Mars/Olympus", vtz).as_bytes()).is_ok());
    }

    #[test]
    fn timezone_property() {
        let c = cal("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\n");
        assert_eq!(validate_timezone(c.as_bytes()).unwrap(), "Europe/Berlin");
        assert!(validate_timezone(cal("").as_bytes()).is_err());
    }
}

#[cfg(test)]
mod observance_tests {
    use super::observance_rule_is_sane;

    #[test]
    fn observance_rules_must_be_able_to_match() {
        for ok in [
            "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
            "FREQ=YEARLY;BYMONTH=10;BYDAY=2SU;INTERVAL=1",
            "freq=yearly;bymonth=4;byday=su;bymonthday=1,2,3,4,5,6,7",
        ] {
            assert!(observance_rule_is_sane(ok), "{ok}");
        }
        // Found by `cargo fuzz` (fixtures/fuzz-crashes): an ordinal of zero never matches,
        // and walking the zone for it took seconds per object; a multibyte character where
        // the weekday goes made the check split a character, a panic.
        for bad in [
            "FREQ=YEARLY;BYMONTH=10;BYDAY=-0SU",
            "FREQ=YEARLY;BYMONTH=3;BYDAY=-\u{3ea}U",
            "FREQ=YEARLY;BYMONTH=13;BYDAY=1SU",
            "FREQ=YEARLY;BYMONTHDAY=0",
            "FREQ=YEARLY;BYDAY=1XX",
            "FREQ=YEARLY;INTERVAL=0",
            "FREQ=MONTHLY;BYDAY=1SU",
        ] {
            assert!(!observance_rule_is_sane(bad), "{bad}");
        }
    }
}
