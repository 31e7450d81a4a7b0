//! Any bytes a client can PUT: validation, indexing, filtering, expansion and free-busy must
//! return (an error is fine) and never panic or run away.
#![no_main]

use convene::ical;
use convene::ical::filter::{CompFilter, EvalContext, TimeRange};
use convene::ical::index::IndexLimits;
use convene::ical::zones::Zone;
use libfuzzer_sys::fuzz_target;

const LIMITS: IndexLimits = IndexLimits::on_write(1_900_000_000, 2000);

fuzz_target!(|data: &[u8]| {
    let range = TimeRange::new(Some(1_704_067_200), Some(1_706_745_600));
    let _ = ical::validate_timezone(data);
    if ical::validate_object(data).is_err() {
        return;
    }
    let _ = ical::index::index_object(data, LIMITS);
    let filter = CompFilter {
        name: "VCALENDAR".into(),
        is_not_defined: false,
        time_range: None,
        props: vec![],
        comps: vec![CompFilter {
            name: "VEVENT".into(),
            is_not_defined: false,
            time_range: Some(range),
            props: vec![],
            comps: vec![],
        }],
    };
    let ctx = EvalContext {
        floating_zone: Zone::Utc,
        limits: LIMITS,
    };
    let _ = ical::filter::matches(data, &filter, &ctx);
    let _ = ical::expand::expand(data, range, LIMITS, &Zone::Utc);
    let _ = ical::freebusy::busy_periods(data, range, LIMITS, &Zone::Utc);
});
