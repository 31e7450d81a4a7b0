//! Recurrence expansion: the fuzzer writes the RRULE, RDATE/EXDATE and DTSTART lines of an
//! otherwise valid event (in an IANA, Windows or floating zone), so it spends its time on rule
//! arithmetic rather than on getting past the parser. Expansion must stay under its caps.
#![no_main]

use convene::ical;
use convene::ical::filter::TimeRange;
use convene::ical::index::IndexLimits;
use convene::ical::zones::Zone;
use libfuzzer_sys::fuzz_target;

const LIMITS: IndexLimits = IndexLimits::on_write(1_900_000_000, 5000);

/// Keep one line per field: CR/LF from the input would start new properties.
fn line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace(['\r', '\n'], "")
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'|');
    let rule = line(parts.next().unwrap_or_default());
    let start = line(parts.next().unwrap_or_default());
    let extra = line(parts.next().unwrap_or_default());
    let zone = parts.next().and_then(|z| z.first()).copied().unwrap_or(0);
    let dtstart = match zone % 4 {
        0 => format!("DTSTART:{start}"),
        1 => format!("DTSTART;TZID=Europe/Berlin:{start}"),
        2 => format!("DTSTART;TZID=W. Europe Standard Time:{start}"),
        _ => format!("DTSTART;VALUE=DATE:{start}"),
    };
    let body = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VEVENT\r\nUID:fuzz\r\n\
         DTSTAMP:20240101T000000Z\r\n{dtstart}\r\nDURATION:PT1H\r\nRRULE:{rule}\r\n{extra}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let bytes = body.as_bytes();
    if ical::validate_object(bytes).is_err() {
        return;
    }
    if let Ok(index) = ical::index::index_object(bytes, LIMITS) {
        assert!(index.instances.len() <= LIMITS.max_instances + 1);
    }
    let range = TimeRange::new(Some(1_704_067_200), Some(1_735_689_600));
    let _ = ical::expand::expand(bytes, range, LIMITS, &Zone::Utc);
    let _ = ical::partial::limit_recurrence_set(bytes, range, LIMITS);
});
