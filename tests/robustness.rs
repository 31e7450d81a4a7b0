//! Nothing on a request path may panic: seeded mutations of the iCalendar corpus and of WebDAV
//! request bodies are fed to the validator, the index, expansion, the filter evaluator and the
//! XML parser. A bounded, deterministic complement to fuzzing: every input that ever panicked
//! here stays in the corpus.

use convene::dav::{XmlLimits, xml};
use convene::ical;
use convene::ical::filter::{CompFilter, EvalContext, TimeRange};
use convene::ical::index::IndexLimits;
use convene::ical::zones::Zone;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPICE: &[&str] = &[
    "RRULE:FREQ=SECONDLY\r\n",
    "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\r\n",
    "RRULE:FREQ=MONTHLY;BYDAY=-5FR;BYSETPOS=-1,1,400\r\n",
    "RRULE:FREQ=WEEKLY;INTERVAL=0\r\n",
    "RRULE:FREQ=DAILY;UNTIL=19000101T000000Z\r\n",
    "RRULE:FREQ=HOURLY;BYHOUR=25;BYMINUTE=61\r\n",
    "EXDATE:garbage\r\n",
    "RDATE;VALUE=PERIOD:20240101T000000Z/PT1H,20240102T000000Z/20240101T000000Z\r\n",
    "DTSTART;TZID=Nowhere/Special:20240101T100000\r\n",
    "DTSTART:99999999T999999Z\r\n",
    "DTEND:20240101\r\n",
    "DURATION:-P99999999W\r\n",
    "RECURRENCE-ID;RANGE=THISANDFUTURE:20240101T000000Z\r\n",
    "BEGIN:VALARM\r\nTRIGGER:-P1D\r\nREPEAT:99999\r\nDURATION:PT0S\r\nEND:VALARM\r\n",
    "BEGIN:VEVENT\r\n",
    "END:VEVENT\r\n",
    " folded continuation\r\n",
    "\u{00e9}\u{1F600};;;:::\r\n",
];

fn corpus() -> Vec<Vec<u8>> {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ical-corpus");
    let mut out = vec![];
    for dir in ["valid", "invalid", "original"] {
        let mut entries: Vec<_> = std::fs::read_dir(base.join(dir))
            .unwrap()
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            if e.path().extension().is_some_and(|x| x == "ics") {
                out.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            2 => {
                // Insert a hostile line at a line boundary.
                let spice = SPICE[rng.below(SPICE.len())].as_bytes();
                let positions: Vec<usize> = v
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1)
                    .collect();
                let at = if positions.is_empty() {
                    0
                } else {
                    positions[rng.below(positions.len())]
                };
                v.splice(at..at, spice.iter().copied());
            }
            3 if v.len() > 2 => {
                // Duplicate a slice.
                let a = rng.below(v.len());
                let b = (a + rng.below(200)).min(v.len());
                let piece = v[a..b].to_vec();
                v.splice(a..a, piece);
            }
            4 => v.retain(|b| *b != b'\r'),
            _ => {}
        }
    }
    v
}

#[test]
fn calendar_code_never_panics_on_mutated_input() {
    let limits = IndexLimits::on_write(1_900_000_000, 2000);
    let filter = CompFilter {
        name: "VCALENDAR".into(),
        is_not_defined: false,
        time_range: None,
        props: vec![],
        comps: vec![CompFilter {
            name: "VEVENT".into(),
            is_not_defined: false,
            time_range: Some(TimeRange::new(Some(1_704_067_200), Some(1_735_689_600))),
            props: vec![],
            comps: vec![],
        }],
    };
    let ctx = EvalContext {
        floating_zone: Zone::Utc,
        limits,
    };
    let seeds = corpus();
    assert!(seeds.len() >= 10);
    let mut rng = Rng(0xC0FF_EE00_2026_1127);
    for _ in 0..1000 {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base);
        let _ = ical::validate_object(&input);
        let _ = ical::index::index_object(&input, limits);
        let _ = ical::filter::matches(&input, &filter, &ctx);
        let _ = ical::expand::expand(
            &input,
            TimeRange::new(Some(1_704_067_200), Some(1_706_745_600)),
            limits,
            &Zone::Utc,
        );
        let _ = ical::freebusy::busy_periods(
            &input,
            TimeRange::new(Some(1_704_067_200), Some(1_706_745_600)),
            limits,
            &Zone::Utc,
        );
        let _ = ical::validate_timezone(&input);
    }
}

#[test]
fn xml_parser_never_panics_on_mutated_requests() {
    let seeds: Vec<&[u8]> = vec![
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><C:x xmlns:C="urn:c"/></D:prop></D:propfind>"#,
        br#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a b="1">x &amp; &#65; <![CDATA[<y>]]></Z:a></D:prop></D:set></D:propertyupdate>"#,
        br#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240101T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
    ];
    let mut rng = Rng(0x0DD_BA11);
    for _ in 0..5000 {
        let seed = seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        let _ = xml::parse(&input, XmlLimits::default());
        let _ = convene::dav::parse_propfind(&input, XmlLimits::default());
        let _ = convene::dav::parse_proppatch(&input, XmlLimits::default());
    }
}

/// Every input a `cargo fuzz` target ever crashed on (fixtures/fuzz-crashes/<target>/) goes
/// through the same calls as that target, in every `cargo test`.
#[test]
fn recorded_fuzz_crashes_stay_fixed() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz-crashes");
    let limits = IndexLimits::on_write(1_900_000_000, 2000);
    let range = TimeRange::new(Some(1_704_067_200), Some(1_706_745_600));
    for target in ["ical_validate_index", "recurrence", "dav_xml"] {
        let Ok(dir) = std::fs::read_dir(base.join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            let input = std::fs::read(entry.path()).unwrap();
            let _ = ical::validate_object(&input);
            let _ = ical::index::index_object(&input, limits);
            let _ = ical::expand::expand(&input, range, limits, &Zone::Utc);
            let _ = xml::parse(&input, XmlLimits::default());
            let _ = convene::dav::parse_propfind(&input, XmlLimits::default());
        }
    }
}
