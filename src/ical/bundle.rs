//! Whole-calendar files: splitting an imported `.ics` (many events, shared VTIMEZONEs, an
//! Outlook `METHOD:PUBLISH`) into calendar object resources, one per UID (RFC 4791 4.1), and
//! joining stored objects back into one document for export and ICS subscription feeds.
//!
//! Components are moved as parsed lines, so what is kept keeps its bytes.
//!
//! Pure: no I/O. Must never panic on any input.

use icalrs::tree::cst::{IcalCst, IcalItem};

use super::IcalError;

/// One resource cut out of an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub uid: String,
    pub data: Vec<u8>,
}

/// A component the split could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The component's UID, or its position (`#3 VEVENT`) when it has none.
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub pieces: Vec<Piece>,
    pub skipped: Vec<Skipped>,
}

fn name_of(c: &IcalCst<'_>) -> String {
    c.begin
        .as_ref()
        .map(|b| b.raw_value_str().trim().to_ascii_uppercase())
        .unwrap_or_default()
}

fn value_of(c: &IcalCst<'_>, name: &str) -> Option<String> {
    c.items.iter().find_map(|i| match i {
        IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case(name) => {
            Some(l.raw_value_str().trim().to_string())
        }
        _ => None,
    })
}

/// TZIDs a component (and its subcomponents) refers to.
fn tzids(c: &IcalCst<'_>, out: &mut Vec<String>) {
    for item in &c.items {
        match item {
            IcalItem::Prop(l) => {
                for p in &l.params {
                    if p.name.get().eq_ignore_ascii_case("TZID") {
                        for v in &p.values {
                            let t = v.get().trim().trim_matches('"').to_string();
                            if !out.contains(&t) {
                                out.push(t);
                            }
                        }
                    }
                }
            }
            IcalItem::Component(sub) => tzids(sub, out),
            IcalItem::Opaque(_) => {}
        }
    }
}

/// Cut a calendar file into one VCALENDAR per UID, each with the VTIMEZONEs its components
/// use. Components without a UID are skipped and listed; so is anything unparseable. A file
/// of more than `max_pieces` UIDs is refused (`TooManyObjects`) before any piece is built.
pub fn split_calendar(body: &[u8], max_pieces: usize) -> Result<Split, IcalError> {
    let text = super::strip_bom(body);
    let mut split = Split::default();
    super::check_nesting(text)?;
    for (n, parsed) in IcalCst::parse_many(text).enumerate() {
        let root = match parsed {
            Ok(r) => r,
            Err(e) => {
                if n == 0 {
                    return Err(IcalError::Syntax {
                        line: super::line_of(text, super::parse_error_text(&e)),
                        message: e.to_string(),
                    });
                }
                split.skipped.push(Skipped {
                    what: format!("calendar #{}", n + 1),
                    reason: e.to_string(),
                });
                break;
            }
        };
        if name_of(&root) != "VCALENDAR" {
            return Err(IcalError::NotVcalendar);
        }
        split_one(&root, &mut split, max_pieces)?;
    }
    Ok(split)
}

fn split_one(root: &IcalCst<'_>, split: &mut Split, max_pieces: usize) -> Result<(), IcalError> {
    let zones: Vec<(String, &IcalCst<'_>)> = super::subcomponents(root)
        .filter(|c| name_of(c) == "VTIMEZONE")
        .filter_map(|c| value_of(c, "TZID").map(|t| (t, c)))
        .collect();
    // Groups by UID, in order of first appearance.
    let mut groups: Vec<(String, Vec<&IcalCst<'_>>)> = vec![];
    let mut by_uid: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, c) in super::subcomponents(root).enumerate() {
        let kind = name_of(c);
        if kind == "VTIMEZONE" {
            continue;
        }
        match value_of(c, "UID").filter(|u| !u.is_empty()) {
            Some(uid) => match by_uid.get(&uid) {
                Some(&g) => groups[g].1.push(c),
                None => {
                    if split.pieces.len() + groups.len() >= max_pieces {
                        return Err(IcalError::TooManyObjects(max_pieces));
                    }
                    by_uid.insert(uid.clone(), groups.len());
                    groups.push((uid, vec![c]));
                }
            },
            None => split.skipped.push(Skipped {
                what: format!("#{} {kind}", i + 1),
                reason: "the component has no UID".into(),
            }),
        }
    }
    // The envelope's own properties stay (VERSION, PRODID, X-WR-*), except METHOD: a stored
    // object carries none (RFC 4791 4.1), while Outlook exports say PUBLISH. Built once,
    // without the components: cloning the whole file per piece was quadratic.
    let envelope = IcalCst {
        begin: root.begin.clone(),
        items: root
            .items
            .iter()
            .filter(
                |i| matches!(i, IcalItem::Prop(l) if !l.name.get().eq_ignore_ascii_case("METHOD")),
            )
            .cloned()
            .collect(),
        end: root.end.clone(),
        trailing: std::borrow::Cow::Borrowed(""),
    };
    for (uid, members) in groups {
        let mut out = envelope.clone();
        let mut used = vec![];
        for m in &members {
            tzids(m, &mut used);
        }
        for (tzid, z) in &zones {
            if used.contains(tzid) {
                out.items.push(IcalItem::Component(Box::new((*z).clone())));
            }
        }
        for m in members {
            out.items.push(IcalItem::Component(Box::new(m.clone())));
        }
        split.pieces.push(Piece {
            uid,
            data: out.to_bytes(),
        });
    }
    Ok(())
}

/// Join stored objects into one calendar document: one VTIMEZONE per TZID, then every
/// component, under a VCALENDAR named `name` (X-WR-CALNAME, which Outlook and Google show).
/// Bodies that do not parse are left out.
pub fn join_calendar<B: AsRef<[u8]>>(bodies: &[B], name: Option<&str>) -> Vec<u8> {
    let mut head = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene//CalDAV//EN\r\nCALSCALE:GREGORIAN\r\n",
    );
    if let Some(n) = name {
        // A display name is free text: escape it as a TEXT value and keep it on one line.
        let escaped: String = n
            .chars()
            .filter(|c| !c.is_control())
            .flat_map(|c| match c {
                '\\' | ';' | ',' => vec!['\\', c],
                _ => vec![c],
            })
            .collect();
        head.push_str(&format!("X-WR-CALNAME:{escaped}\r\n"));
    }
    let mut zones: Vec<String> = vec![];
    let mut zone_bytes: Vec<u8> = vec![];
    let mut comp_bytes: Vec<u8> = vec![];
    for body in bodies {
        let Some(root) = super::parse_stored(body.as_ref()) else {
            continue;
        };
        for c in super::subcomponents(&root) {
            if name_of(c) == "VTIMEZONE" {
                let Some(tzid) = value_of(c, "TZID") else {
                    continue;
                };
                if zones.contains(&tzid) {
                    continue;
                }
                zones.push(tzid);
                zone_bytes.extend_from_slice(&c.to_bytes());
            } else {
                comp_bytes.extend_from_slice(&c.to_bytes());
            }
        }
    }
    let mut out = head.into_bytes();
    out.extend_from_slice(&zone_bytes);
    out.extend_from_slice(&comp_bytes);
    out.extend_from_slice(b"END:VCALENDAR\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft//Outlook//EN\r\nMETHOD:PUBLISH\r\nX-WR-CALNAME:Work\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VTIMEZONE\r\nTZID:Unused\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=W. Europe Standard Time:20240105T100000\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:Series\\, with comma\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240105T100000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID;TZID=W. Europe Standard Time:20240106T100000\r\nDTSTART;TZID=W. Europe Standard Time:20240106T120000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20240105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn splits_by_uid_with_the_zones_used() {
        let s = split_calendar(FILE.as_bytes(), 100).expect("split");
        assert_eq!(s.pieces.len(), 2);
        let a = String::from_utf8(s.pieces[0].data.clone()).expect("utf-8");
        assert_eq!(s.pieces[0].uid, "a");
        assert_eq!(a.matches("BEGIN:VEVENT").count(), 2, "{a}");
        assert!(
            a.contains("TZID:W. Europe Standard Time") && !a.contains("TZID:Unused"),
            "{a}"
        );
        assert!(
            !a.contains("METHOD") && a.contains("SUMMARY:Series\\, with comma"),
            "{a}"
        );
        assert!(crate::ical::validate_object(&s.pieces[0].data).is_ok());
        let b = String::from_utf8(s.pieces[1].data.clone()).expect("utf-8");
        assert!(!b.contains("VTIMEZONE"), "{b}");
        assert_eq!(s.skipped.len(), 1);
        assert!(s.skipped[0].reason.contains("no UID"));
        assert!(split_calendar(b"nonsense", 100).is_err());
    }

    #[test]
    fn joins_with_one_zone_each() {
        let s = split_calendar(FILE.as_bytes(), 100).expect("split");
        let bodies: Vec<Vec<u8>> = s.pieces.iter().map(|p| p.data.clone()).collect();
        let doubled = [bodies.clone(), bodies].concat();
        let out = String::from_utf8(join_calendar(&doubled, Some("Team; room, 1"))).expect("utf-8");
        assert_eq!(out.matches("BEGIN:VTIMEZONE").count(), 1, "{out}");
        assert_eq!(out.matches("BEGIN:VEVENT").count(), 6);
        assert!(out.contains("X-WR-CALNAME:Team\\; room\\, 1\r\n"));
        assert!(crate::ical::parse_stored(out.as_bytes()).is_some());
    }
}
