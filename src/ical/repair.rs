//! What the server adds to a client's calendar object before storing it, and only this: a
//! DTSTAMP on each VEVENT, VTODO, VJOURNAL and VFREEBUSY that lacks one. RFC 5545 requires
//! it, some clients and scripts omit it, and refusing the object would refuse an otherwise
//! good event; the stamp is the time the server received it. A caller that stores the result
//! must not return an ETag for it (RFC 4791 5.3.4): the bytes are no longer the client's.
//!
//! Pure: works on the lines, leaves every other byte as it was.

/// The components that must carry a DTSTAMP (RFC 5545 3.6.1, 3.6.2, 3.6.3, 3.6.4).
const STAMPED: [&str; 4] = ["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"];

/// `body` with `DTSTAMP:` `now` (epoch seconds, written in UTC) after the BEGIN line of each
/// such component (directly under VCALENDAR) that has none, or `None` when every one has.
/// Line endings follow the BEGIN line's.
pub fn add_missing_dtstamp(body: &[u8], now: i64) -> Option<Vec<u8>> {
    // Byte offsets just after the BEGIN lines that need a stamp, with that line's ending.
    let mut inserts: Vec<(usize, &[u8])> = vec![];
    let mut depth = 0usize;
    // The open component that needs checking: (offset after its BEGIN line, ending, stamped).
    let mut open: Option<(usize, &[u8], bool)> = None;
    let mut at = 0usize;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let start = at;
        at += line.len();
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        let ending = &line[content.len()..];
        let name_end = content
            .iter()
            .position(|&b| b == b':' || b == b';')
            .unwrap_or(content.len());
        let name = &content[..name_end];
        let value = content.get(name_end + 1..).unwrap_or_default();
        if name.eq_ignore_ascii_case(b"BEGIN") {
            depth += 1;
            if depth == 2
                && STAMPED
                    .iter()
                    .any(|c| value.eq_ignore_ascii_case(c.as_bytes()))
            {
                let ending: &[u8] = if ending.is_empty() { b"\r\n" } else { ending };
                open = Some((start + line.len(), ending, false));
            }
        } else if name.eq_ignore_ascii_case(b"END") {
            if depth == 2
                && let Some((after, ending, stamped)) = open.take()
                && !stamped
            {
                inserts.push((after, ending));
            }
            depth = depth.saturating_sub(1);
        } else if depth == 2
            && name.eq_ignore_ascii_case(b"DTSTAMP")
            && let Some(o) = open.as_mut()
        {
            o.2 = true;
        }
    }
    if inserts.is_empty() {
        return None;
    }
    let stamp = super::expand::utc_text(now);
    let mut out = Vec::with_capacity(body.len() + inserts.len() * (stamp.len() + 10));
    let mut from = 0;
    for (after, ending) in inserts {
        out.extend_from_slice(&body[from..after]);
        out.extend_from_slice(b"DTSTAMP:");
        out.extend_from_slice(stamp.as_bytes());
        out.extend_from_slice(ending);
        from = after;
    }
    out.extend_from_slice(&body[from..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06 12:00:00 UTC.
    const NOW: i64 = 1_796_558_400;
    const STAMP: &str = "20261206T120000Z";

    fn text(b: Option<Vec<u8>>) -> Option<String> {
        b.map(|b| String::from_utf8(b).expect("utf-8"))
    }

    #[test]
    fn a_stamped_object_is_left_alone() {
        let body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20300101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(add_missing_dtstamp(body.as_bytes(), NOW), None);
    }

    #[test]
    fn each_component_without_one_gets_one_after_its_begin() {
        // A master without, an override with, a to-do without; a VALARM's lines and a
        // folded DESCRIPTION that mentions DTSTAMP do not count.
        let body = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:a\nDTSTART:20300101T100000Z\nDESCRIPTION:see\n DTSTAMP:no\nBEGIN:VALARM\nDTSTAMP:20240101T000000Z\nEND:VALARM\nEND:VEVENT\nBEGIN:VEVENT\nUID:a\nRECURRENCE-ID:20300102T100000Z\ndtstamp:20240101T000000Z\nEND:VEVENT\nBEGIN:VTODO\r\nUID:b\r\nEND:VTODO\r\nEND:VCALENDAR\n";
        let out = text(add_missing_dtstamp(body.as_bytes(), NOW)).expect("repaired");
        assert_eq!(
            out,
            body.replacen(
                "BEGIN:VEVENT\nUID:a\nDTSTART",
                &format!("BEGIN:VEVENT\nDTSTAMP:{STAMP}\nUID:a\nDTSTART"),
                1
            )
            .replace(
                "BEGIN:VTODO\r\n",
                &format!("BEGIN:VTODO\r\nDTSTAMP:{STAMP}\r\n")
            )
        );
    }

    #[test]
    fn time_zones_need_none() {
        let body =
            "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
        assert_eq!(add_missing_dtstamp(body.as_bytes(), NOW), None);
    }
}
