//! Time-zone resolution for TZID parameters: the VTIMEZONE the object carries under that name
//! (ical-rs resolves its observances), else IANA names through the bundled tz database (jiff),
//! with Windows names (Outlook/Exchange) mapped to IANA first.
//!
//! The rule for local times that do not exist or exist twice (RFC 5545 3.3.5): a time in a
//! spring-forward gap is read with the offset *before* the gap (02:30 on the New York
//! spring-forward day is 03:30 EDT); a time in a fall-back fold is the *first* occurrence.
//! Recurrence instances generated into a gap are kept and shifted the same way rather than
//! dropped: RFC 5545 3.3.10 can be read both ways, and dropping silently loses a meeting.
//!
//! Pure: no I/O beyond the compiled-in tz database.

use std::sync::{Arc, Mutex};

use icalrs::recur::IcalRecurDateTime;
use icalrs::tz::{IcalTz, IcalTzTransition, IcalTzTransitions};

/// Windows time-zone names (as Outlook writes them in TZID) to IANA, from CLDR windowsZones
/// ("001" territory). Outlook sometimes pads the name with spaces; callers trim first.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("US Eastern Standard Time", "America/Indianapolis"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("Greenland Standard Time", "America/Godthab"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("Coordinated Universal Time", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Central Asia Standard Time", "Asia/Almaty"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Myanmar Standard Time", "Asia/Rangoon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
];

/// The IANA name for a TZID as clients write it: IANA names as they are (some clients prefix
/// `/`), Windows names through the CLDR table. `None` when the tz database does not know it.
pub fn iana_name(tzid: &str) -> Option<String> {
    let t = tzid.trim().trim_start_matches('/');
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(t))
    {
        return Some((*iana).to_string());
    }
    jiff::tz::TimeZone::get(t).ok().map(|_| t.to_string())
}

/// A resolved clock for converting civil times to instants.
#[derive(Debug, Clone)]
pub enum Zone {
    Utc,
    /// No zone: a floating time or a date; instants are civil seconds, flagged floating.
    Floating,
    Iana(jiff::tz::TimeZone),
    /// A custom VTIMEZONE carried by the object.
    Custom(Box<CustomZone>),
}

/// A VTIMEZONE the object carries, with its transitions held once worked out: an expansion
/// asks for one instant per occurrence, and working the observances out from their first
/// onset on every call made a minutely series in a custom zone cost seconds. The held
/// transitions are shared by every object that carries the same VTIMEZONE (`SHARED`), so the
/// usual embedded Europe/Berlin costs its walk from 1970 once per process, not once per PUT.
#[derive(Debug)]
pub struct CustomZone {
    zone: IcalTz,
    held: Arc<Mutex<Held>>,
}

#[derive(Debug)]
struct Held {
    /// Civil time to offset, grown by the crate as later years are asked for.
    resolver: IcalTzTransitions,
    /// Instant to offset: the transitions through `through`, grown by doubling the span.
    list: Vec<IcalTzTransition>,
    through: Option<i32>,
    span: i32,
}

/// Distinct VTIMEZONEs whose transitions are kept for reuse; past it the cache starts over.
const SHARED_ZONES: usize = 64;

type Shared = Mutex<Vec<(IcalTz, Arc<Mutex<Held>>)>>;

/// The transitions of the VTIMEZONEs seen lately, by the zone's whole content (equal zones
/// share; a zone that differs in any observance has its own).
static SHARED: std::sync::LazyLock<Shared> = std::sync::LazyLock::new(Default::default);

fn shared_held(zone: &IcalTz) -> Arc<Mutex<Held>> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, h)) = shared.iter().find(|(z, _)| z == zone) {
        return h.clone();
    }
    if shared.len() >= SHARED_ZONES {
        shared.clear();
    }
    let held = Arc::new(Mutex::new(Held {
        resolver: IcalTzTransitions::of_zone(zone.clone()),
        list: Vec::new(),
        through: None,
        span: 1,
    }));
    shared.push((zone.clone(), held.clone()));
    held
}

impl CustomZone {
    fn new(zone: IcalTz) -> CustomZone {
        CustomZone {
            held: shared_held(&zone),
            zone,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Nothing panics while holding it; a poisoned cache is still a correct cache.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instant a civil time names (RFC 5545 3.3.5's reading of gaps and folds).
    fn instant(&self, local: IcalRecurDateTime) -> i64 {
        self.held().resolver.resolve(local).literal_instant(local)
    }

    /// The offset in force at an instant, in seconds east of UTC.
    fn offset_at(&self, instant: i64) -> i64 {
        // A local time is less than a day from its instant: the transitions through the
        // next year hold the one in force.
        let year = IcalRecurDateTime::from_seconds(instant)
            .year
            .saturating_add(1);
        let mut held = self.held();
        if held.through.is_none_or(|t| year > t) {
            let through = year.saturating_add(held.span);
            held.list = self.zone.transitions(through);
            held.through = Some(through);
            held.span = held.span.saturating_mul(2);
        }
        let i = held
            .list
            .partition_point(|t| t.local.seconds() - i64::from(t.from) <= instant);
        let offset = match (i.checked_sub(1), held.list.first()) {
            (Some(i), _) => held.list[i].to,
            (None, Some(t)) => t.from,
            (None, None) => 0,
        };
        i64::from(offset)
    }
}

impl Clone for CustomZone {
    fn clone(&self) -> CustomZone {
        CustomZone {
            zone: self.zone.clone(),
            held: self.held.clone(),
        }
    }
}

impl Zone {
    /// Resolve a TZID: the object's own VTIMEZONE of that name first (RFC 5545 3.6.5: it
    /// defines the object's local times, also where the tz database knows the name and says
    /// otherwise), then the tz database (IANA and Windows names, for objects that carry none).
    pub fn for_tzid(tzid: &str, carried: &[IcalTz]) -> Option<Zone> {
        let t = tzid.trim();
        if let Some(z) = carried
            .iter()
            .find(|z| z.id.trim() == t && !z.observances.is_empty())
        {
            return Some(Zone::Custom(Box::new(CustomZone::new(z.clone()))));
        }
        let name = iana_name(tzid)?;
        jiff::tz::TimeZone::get(&name).ok().map(Zone::Iana)
    }

    pub fn is_floating(&self) -> bool {
        matches!(self, Zone::Floating)
    }

    /// The instant (Unix seconds) a civil time names on this clock (see the module doc for
    /// gaps and folds). Floating times give their civil seconds.
    pub fn instant(&self, local: IcalRecurDateTime) -> i64 {
        match self {
            Zone::Utc | Zone::Floating => local.seconds(),
            Zone::Iana(tz) => {
                match jiff::civil::DateTime::new(
                    local.year as i16,
                    local.month as i8,
                    local.day as i8,
                    local.hour as i8,
                    local.minute as i8,
                    local.second.min(59) as i8,
                    0,
                ) {
                    // jiff's "compatible" disambiguation is RFC 5545 3.3.5's reading.
                    Ok(dt) => tz
                        .to_timestamp(dt)
                        .map(|t| t.as_second())
                        .unwrap_or_else(|_| local.seconds()),
                    Err(_) => local.seconds(),
                }
            }
            Zone::Custom(z) => z.instant(local),
        }
    }

    /// The UTC offset in force at an instant, in seconds east of UTC.
    pub fn offset_at(&self, instant: i64) -> i64 {
        match self {
            Zone::Utc | Zone::Floating => 0,
            Zone::Iana(tz) => jiff::Timestamp::from_second(instant)
                .map(|t| i64::from(tz.to_offset(t).seconds()))
                .unwrap_or(0),
            Zone::Custom(z) => z.offset_at(instant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u8, d: u8, h: u8, mi: u8) -> IcalRecurDateTime {
        IcalRecurDateTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: 0,
        }
    }

    #[test]
    fn windows_and_padded_names_map_to_iana() {
        assert_eq!(
            iana_name("W. Europe Standard Time").as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(
            iana_name("Europe/Berlin ").as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(
            iana_name("/America/New_York").as_deref(),
            Some("America/New_York")
        );
        assert_eq!(iana_name("Custom Berlin"), None);
    }

    #[test]
    fn gap_reads_forward_and_fold_reads_first() {
        let ny = Zone::for_tzid("America/New_York", &[]).unwrap();
        // 2024-03-10 02:30 does not exist: read as 03:30 EDT = 07:30Z.
        assert_eq!(ny.instant(at(2024, 3, 10, 2, 30)), 1_710_055_800);
        // 2024-11-03 01:30 happens twice: the first, EDT = 05:30Z.
        assert_eq!(ny.instant(at(2024, 11, 3, 1, 30)), 1_730_611_800);
        assert_eq!(ny.offset_at(1_730_611_800), -4 * 3600);
    }
}
