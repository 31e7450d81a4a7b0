//! How much work a recurrence rule asks for, computed from the rule alone, before anything is
//! expanded. `ical-rs` builds each period's candidate set whole (days of the period × hours ×
//! minutes × seconds) and a zone's transitions from its first onset to the year asked about,
//! so both are bounded here from the rule's parts, never by generating and counting.
//!
//! Pure: no I/O.

use icalrs::recur::{IcalRecurFreq, IcalRecurRule};
use icalrs::tz::IcalTz;

/// Most candidates one period of a rule may produce (a daily rule at every minute of the
/// day is 1,440; a monthly one at every quarter hour is 2,976).
pub const MAX_PERIOD_CANDIDATES: u64 = 10_000;

/// Most onsets one VTIMEZONE observance rule may produce in a year. Real zones change twice a
/// year; a rule "the Sunday among days 1-7 of April" scans seven days.
pub const MAX_OBSERVANCE_ONSETS_PER_YEAR: u64 = 7;

/// Most transitions one zone may state up to `ZONE_HORIZON_YEAR`: a zone resolves a local
/// time by walking its transitions from the first, so this bounds every resolution.
pub const MAX_ZONE_TRANSITIONS: u64 = 4_000;

/// The year up to which a zone's transitions are counted against `MAX_ZONE_TRANSITIONS`.
const ZONE_HORIZON_YEAR: i64 = 2200;

fn distinct<T: Ord + Clone>(values: &[T]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len().max(1) as u64
}

/// The most candidates one period of `rule` makes `ical-rs` hold at once.
pub fn period_candidates(rule: &IcalRecurRule) -> u64 {
    let seconds = distinct(&rule.by_second);
    let minutes = distinct(&rule.by_minute);
    let hours = distinct(&rule.by_hour);
    let days: u64 = match rule.freq {
        IcalRecurFreq::Secondly => return 1,
        IcalRecurFreq::Minutely => return seconds,
        IcalRecurFreq::Hourly => return minutes.saturating_mul(seconds),
        IcalRecurFreq::Daily => 1,
        IcalRecurFreq::Weekly => 7,
        IcalRecurFreq::Monthly => 31,
        IcalRecurFreq::Yearly => 366,
    };
    days.saturating_mul(hours)
        .saturating_mul(minutes)
        .saturating_mul(seconds)
}

/// Whether a rule is cheap enough to expand.
pub fn rule_is_bounded(rule: &IcalRecurRule) -> bool {
    period_candidates(rule) <= MAX_PERIOD_CANDIDATES
}

/// The most onsets a yearly observance rule yields in one year (an upper bound).
pub fn onsets_per_year(rule: &IcalRecurRule) -> u64 {
    if rule.freq != IcalRecurFreq::Yearly {
        return u64::MAX;
    }
    let months = rule.by_month.len() as u64;
    let days = if !rule.by_year_day.is_empty() {
        distinct(&rule.by_year_day)
    } else if !rule.by_month_day.is_empty() {
        distinct(&rule.by_month_day).saturating_mul(if months == 0 { 12 } else { months })
    } else if !rule.by_week_no.is_empty() {
        distinct(&rule.by_week_no).saturating_mul(rule.by_day.len().max(1) as u64)
    } else if !rule.by_day.is_empty() {
        rule.by_day
            .iter()
            .map(|d| match (d.ordinal, months) {
                (Some(_), 0) => 1,
                (Some(_), m) => m,
                (None, 0) => 53,
                (None, m) => 5 * m,
            })
            .sum()
    } else {
        months.max(1)
    };
    days.saturating_mul(distinct(&rule.by_hour))
        .saturating_mul(distinct(&rule.by_minute))
        .saturating_mul(distinct(&rule.by_second))
}

/// Why a zone is too costly to resolve against, or `None` when it is bounded: each observance
/// rule yearly and at most `MAX_OBSERVANCE_ONSETS_PER_YEAR` onsets a year, and the zone's
/// transitions up to 2200 (rules and RDATEs) at most `MAX_ZONE_TRANSITIONS`.
pub fn zone_problem(zone: &IcalTz) -> Option<String> {
    let mut total: u64 = 0;
    for o in &zone.observances {
        total = total.saturating_add(o.onsets.dates.len() as u64);
        let first = o.onsets.start.map_or(1970, |s| i64::from(s.year));
        let years = (ZONE_HORIZON_YEAR - first).clamp(1, 10_000) as u64;
        for rule in &o.onsets.rules {
            let per_year = onsets_per_year(rule);
            if per_year > MAX_OBSERVANCE_ONSETS_PER_YEAR {
                return Some(format!(
                    "an observance rule yields more than {MAX_OBSERVANCE_ONSETS_PER_YEAR} onsets a year"
                ));
            }
            let yearly = years / u64::from(rule.interval.max(1)) + 1;
            let n = match rule.count {
                Some(c) => u64::from(c).min(yearly.saturating_mul(per_year)),
                None => yearly.saturating_mul(per_year),
            };
            total = total.saturating_add(n);
        }
    }
    (total > MAX_ZONE_TRANSITIONS)
        .then(|| format!("more than {MAX_ZONE_TRANSITIONS} transitions before {ZONE_HORIZON_YEAR}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> IcalRecurRule {
        IcalRecurRule::parse(text).expect("a rule")
    }

    #[test]
    fn the_by_part_bomb_is_counted_not_generated() {
        let bomb = rule(
            "FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23;BYMINUTE=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59",
        );
        assert_eq!(period_candidates(&bomb), 366 * 24 * 60);
        assert!(!rule_is_bounded(&bomb));
        for ok in [
            "FREQ=WEEKLY;BYDAY=MO,WE,FR",
            "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
            "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
            "FREQ=MINUTELY;INTERVAL=30",
        ] {
            assert!(rule_is_bounded(&rule(ok)), "{ok}");
        }
    }

    #[test]
    fn observance_onsets_a_year() {
        assert_eq!(
            onsets_per_year(&rule("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU")),
            1
        );
        assert_eq!(
            onsets_per_year(&rule(
                "FREQ=YEARLY;BYMONTH=4;BYDAY=SU;BYMONTHDAY=1,2,3,4,5,6,7"
            )),
            7
        );
        assert!(
            onsets_per_year(&rule(
                "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;BYMINUTE=0,10,20,30,40,50;BYHOUR=1,2"
            )) > 7
        );
        assert!(onsets_per_year(&rule("FREQ=YEARLY;BYDAY=SU")) > 7);
        assert_eq!(onsets_per_year(&rule("FREQ=MONTHLY;BYDAY=1SU")), u64::MAX);
    }
}
