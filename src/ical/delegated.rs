//! Delegated entries (schedule sharing, issue 6): who an owner's event is shared with by the
//! CalDAV convention, the recipient's copy of it (styled with the owner's colour, avatar and
//! name, and reduced to what its CLASS lets a recipient see), and whether a recipient's write
//! changes only what is theirs (alarms and transparency).
//!
//! The convention: an ATTENDEE with `ROLE=NON-PARTICIPANT` and `RSVP=FALSE` is "for
//! information": they get a delegated entry, never an invitation (scheduling skips them).
//!
//! Pure: no I/O, no SQL, no HTTP. Must never panic on any input, and must never put into a
//! copy anything its CLASS withholds (details of a PRIVATE event, attachments or comments of a
//! CONFIDENTIAL one).

use icalrs::tree::cst::IcalItem;
use icalrs::tree::line::IcalLine;

use super::itip::{
    comp_name, is_main, lines, main_components, main_components_mut, named, param, remove_alarms,
    remove_props, replace_prop, value_of,
};

/// Whether an ATTENDEE line is "for information" (the sharing convention).
pub fn is_informational(line: &IcalLine<'_>) -> bool {
    let is =
        |name: &str, want: &str| param(line, name).is_some_and(|v| v.eq_ignore_ascii_case(want));
    is("ROLE", "NON-PARTICIPANT") && is("RSVP", "FALSE")
}

/// The addresses an object shares with by the convention, in order, without repeats.
pub fn informational_addresses(body: &[u8]) -> Vec<String> {
    // Most objects share with nobody: a byte scan spares them a parse.
    if !body
        .windows(15)
        .any(|w| w.eq_ignore_ascii_case(b"NON-PARTICIPANT"))
    {
        return vec![];
    }
    let Some(root) = super::parse_stored(body) else {
        return vec![];
    };
    let mut out: Vec<String> = vec![];
    for c in main_components(&root) {
        for l in lines(c).filter_map(|l| named(l, "ATTENDEE")) {
            let a = l.raw_value_str().trim().to_string();
            if is_informational(l) && !out.iter().any(|o| super::itip::same_address(o, &a)) {
                out.push(a);
            }
        }
    }
    out
}

/// The addresses of attendees who take part (invited by scheduling, not for information).
pub fn participant_addresses(body: &[u8]) -> Vec<String> {
    let Some(root) = super::parse_stored(body) else {
        return vec![];
    };
    let mut out = vec![];
    for c in main_components(&root) {
        for l in lines(c).filter_map(|l| named(l, "ATTENDEE")) {
            if !is_informational(l) {
                out.push(l.raw_value_str().trim().to_string());
            }
        }
    }
    out
}

/// A recipient named in an object by the convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `mailto:` address or principal URL.
    pub address: String,
    /// A group or department (CUTYPE=GROUP).
    pub group: bool,
    pub label: Option<String>,
}

/// The object with exactly these "for information" recipients: every informational ATTENDEE
/// line is removed from each main component and these are added, so the object itself says
/// whom it is shared with (clients show them; the sharing worker reads them).
pub fn with_recipients(body: &[u8], recipients: &[Recipient]) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    let mut any = false;
    for c in main_components_mut(&mut root) {
        any = true;
        c.items.retain(|i| {
            !matches!(i, IcalItem::Prop(l) if l.name.get().eq_ignore_ascii_case("ATTENDEE") && is_informational(l))
        });
        for r in recipients {
            let cutype = if r.group { "GROUP" } else { "INDIVIDUAL" };
            let cn = r
                .label
                .as_deref()
                .map(|l| format!(";CN={}", quoted(l)))
                .unwrap_or_default();
            c.push_raw(&format!(
                "ATTENDEE;CUTYPE={cutype};ROLE=NON-PARTICIPANT;RSVP=FALSE{cn}:{}",
                one_line(&r.address)
            ))
            .ok()?;
        }
    }
    any.then(|| root.to_bytes())
}

pub use super::privacy::{Class, Detail, Privacy};

/// How the recipient's copy shows whose it is.
#[derive(Debug, Clone)]
pub struct Style<'s> {
    /// The owner's name as people read it.
    pub owner_label: &'s str,
    /// The owner's calendar-user address (`mailto:` or principal URL).
    pub owner_address: &'s str,
    /// RFC 7986 COLOR: a CSS3 colour name.
    pub colour_name: &'s str,
    /// The avatar's absolute URL (RFC 7986 IMAGE, DISPLAY=BADGE).
    pub avatar_url: &'s str,
    /// Prefix SUMMARY with `[Owner] ` (the recipient's choice).
    pub prefix_summary: bool,
    pub privacy: Privacy,
}

/// Properties a copy never takes from the owner's object: the attendee list, the owner's own
/// styling, and our own labels (rewritten below).
const NEVER_COPIED: &[&str] = &["ORGANIZER", "ATTENDEE", "COLOR", "IMAGE", "X-CONVENE-OWNER"];

/// RFC 5545 3.3.11 TEXT escaping, for text we put into a value.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value: quoted, without the characters a quoted value cannot hold.
fn quoted(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{clean}\"")
}

/// A value of ours that goes into a line as is: no line breaks.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The recipient's copy of an owner's object, or `None` if it cannot be read.
pub fn delegated_copy(body: &[u8], style: &Style<'_>) -> Option<Vec<u8>> {
    let mut root = super::parse_stored(body)?;
    remove_props(&mut root, "METHOD");
    for c in main_components_mut(&mut root) {
        let detail = style.privacy.detail(Class::of(c));
        match detail {
            Detail::Full => {
                c.items.retain(|i| match i {
                    IcalItem::Prop(l) => !NEVER_COPIED
                        .iter()
                        .any(|n| l.name.get().eq_ignore_ascii_case(n)),
                    IcalItem::Component(s) => comp_name(s) != "VALARM",
                    _ => true,
                });
            }
            Detail::TimeAndSummary | Detail::Busy => super::privacy::reduce_component(c, detail)?,
        }
        remove_alarms(c);
        if let Some(s) = value_of(c, "SUMMARY") {
            let text = if style.prefix_summary {
                format!("[{}] {s}", escape_text(style.owner_label))
            } else {
                s
            };
            replace_prop(c, "SUMMARY", &one_line(&text))?;
        }
        replace_prop(c, "COLOR", &one_line(style.colour_name))?;
        remove_props(c, "IMAGE");
        c.push_raw(&format!(
            "IMAGE;VALUE=URI;DISPLAY=BADGE:{}",
            one_line(style.avatar_url)
        ))
        .ok()?;
        remove_props(c, "X-CONVENE-OWNER");
        c.push_raw(&format!(
            "X-CONVENE-OWNER;CN={}:{}",
            quoted(style.owner_label),
            one_line(style.owner_address)
        ))
        .ok()?;
    }
    Some(root.to_bytes())
}

/// Properties a recipient's client may change on its copy without changing the shared
/// content: alarms are components; these are the lines clients rewrite on their own.
fn is_personal_or_volatile(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    matches!(
        n.as_str(),
        "DTSTAMP" | "TRANSP" | "LAST-MODIFIED" | "SEQUENCE" | "CREATED"
    ) || n.starts_with("X-")
}

type Shape = Vec<(Option<String>, Vec<(String, String, String)>)>;

/// What a recipient may not change: per component (by RECURRENCE-ID), the sorted
/// (name, TZID, value) of every line that is not personal or volatile.
fn shared_shape(body: &[u8]) -> Option<Shape> {
    let root = super::parse_stored(body)?;
    let mut out: Shape = super::subcomponents(&root)
        .filter(|c| is_main(c))
        .map(|c| {
            let mut props: Vec<(String, String, String)> = lines(c)
                .filter(|l| !is_personal_or_volatile(l.name.get()))
                .map(|l| {
                    (
                        l.name.get().to_ascii_uppercase(),
                        param(l, "TZID").unwrap_or_default(),
                        l.raw_value_str().trim().to_string(),
                    )
                })
                .collect();
            props.sort();
            (value_of(c, "RECURRENCE-ID"), props)
        })
        .collect();
    out.sort();
    Some(out)
}

/// Whether `proposed` differs from the recipient's `current` copy only in what is theirs:
/// alarms, transparency, and the lines clients rewrite by themselves.
pub fn only_personal_changes(current: &[u8], proposed: &[u8]) -> bool {
    match (shared_shape(current), shared_shape(proposed)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A CSS3 colour name near `#RRGGBB` (RFC 7986 COLOR takes names only).
pub fn css_colour_name(hex: &str) -> &'static str {
    const NAMES: &[(&str, (u8, u8, u8))] = &[
        ("maroon", (128, 0, 0)),
        ("darkred", (139, 0, 0)),
        ("brown", (165, 42, 42)),
        ("firebrick", (178, 34, 34)),
        ("crimson", (220, 20, 60)),
        ("indianred", (205, 92, 92)),
        ("sienna", (160, 82, 45)),
        ("saddlebrown", (139, 69, 19)),
        ("chocolate", (210, 105, 30)),
        ("peru", (205, 133, 63)),
        ("darkgoldenrod", (184, 134, 11)),
        ("goldenrod", (218, 165, 32)),
        ("olive", (128, 128, 0)),
        ("olivedrab", (107, 142, 35)),
        ("darkolivegreen", (85, 107, 47)),
        ("forestgreen", (34, 139, 34)),
        ("green", (0, 128, 0)),
        ("darkgreen", (0, 100, 0)),
        ("seagreen", (46, 139, 87)),
        ("mediumseagreen", (60, 179, 113)),
        ("teal", (0, 128, 128)),
        ("darkcyan", (0, 139, 139)),
        ("lightseagreen", (32, 178, 170)),
        ("cadetblue", (95, 158, 160)),
        ("steelblue", (70, 130, 180)),
        ("royalblue", (65, 105, 225)),
        ("dodgerblue", (30, 144, 255)),
        ("mediumblue", (0, 0, 205)),
        ("navy", (0, 0, 128)),
        ("darkslateblue", (72, 61, 139)),
        ("slateblue", (106, 90, 205)),
        ("rebeccapurple", (102, 51, 153)),
        ("indigo", (75, 0, 130)),
        ("darkviolet", (148, 0, 211)),
        ("purple", (128, 0, 128)),
        ("darkmagenta", (139, 0, 139)),
        ("mediumvioletred", (199, 21, 133)),
        ("palevioletred", (219, 112, 147)),
        ("slategray", (112, 128, 144)),
        ("dimgray", (105, 105, 105)),
        ("darkorange", (255, 140, 0)),
        ("orangered", (255, 69, 0)),
        ("tomato", (255, 99, 71)),
        ("gold", (255, 215, 0)),
        ("yellowgreen", (154, 205, 50)),
        ("turquoise", (64, 224, 208)),
        ("orchid", (218, 112, 214)),
        ("hotpink", (255, 105, 180)),
    ];
    let Some(rgb) = parse_hex(hex) else {
        return "slategray";
    };
    let dist = |(r, g, b): (u8, u8, u8)| {
        let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).pow(2);
        d(r, rgb.0) + d(g, rgb.1) + d(b, rgb.2)
    };
    NAMES
        .iter()
        .min_by_key(|(_, c)| dist(*c))
        .map_or("slategray", |(n, _)| n)
}

/// `#RRGGBB` or `#RRGGBBAA` (the alpha is ignored).
pub fn parse_hex(hex: &str) -> Option<(u8, u8, u8)> {
    let h = hex.strip_prefix('#')?;
    if !(h.len() == 6 || h.len() == 8) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
    Some((byte(0)?, byte(2)?, byte(4)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Budget\\, Q1\r\nDESCRIPTION:Secret numbers\r\nLOCATION:Room 4\r\nATTACH:https://files.example.org/plan.pdf\r\nCOMMENT:bring the plan\r\nORGANIZER:mailto:alice@example.org\r\nATTENDEE;ROLE=NON-PARTICIPANT;RSVP=FALSE:mailto:bob@example.org\r\nATTENDEE;CUTYPE=GROUP;ROLE=NON-PARTICIPANT;RSVP=false:/dav/departments/Sales/\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:dave@example.org\r\nX-APPLE-KEEP:yes\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:owner's alarm\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn style(prefix: bool) -> Style<'static> {
        Style {
            owner_label: "Alice, A.",
            owner_address: "mailto:alice@example.org",
            colour_name: "steelblue",
            avatar_url: "https://cal.example.org/api/directory/people/alice/photo",
            prefix_summary: prefix,
            privacy: Privacy::default(),
        }
    }

    fn text(b: Option<Vec<u8>>) -> String {
        String::from_utf8(b.expect("copy")).expect("utf-8")
    }

    #[test]
    fn convention() {
        assert_eq!(
            informational_addresses(EV.as_bytes()),
            vec!["mailto:bob@example.org", "/dav/departments/Sales/"]
        );
        assert_eq!(
            participant_addresses(EV.as_bytes()),
            vec!["mailto:dave@example.org"]
        );
        let s = super::super::itip::scheduling(EV.as_bytes()).expect("scheduling");
        let agents: Vec<_> = s.attendees().iter().map(|a| a.agent).collect();
        assert_eq!(
            agents,
            vec![
                super::super::itip::ScheduleAgent::None,
                super::super::itip::ScheduleAgent::None,
                super::super::itip::ScheduleAgent::Server
            ]
        );
        assert!(informational_addresses(b"BEGIN:VCALENDAR").is_empty());
    }

    #[test]
    fn public_copy_is_styled() {
        let c = text(delegated_copy(EV.as_bytes(), &style(false)));
        assert!(c.contains("SUMMARY:Budget\\, Q1\r\n"), "{c}");
        assert!(c.contains("COLOR:steelblue\r\n"), "{c}");
        assert!(
            c.contains("IMAGE;VALUE=URI;DISPLAY=BADGE:https://cal.example.org/api/directory/people/alice/photo\r\n"),
            "{c}"
        );
        assert!(
            c.contains("X-CONVENE-OWNER;CN=\"Alice, A.\":mailto:alice@example.org\r\n"),
            "{c}"
        );
        assert!(c.contains("DESCRIPTION:Secret numbers") && c.contains("ATTACH:"));
        assert!(!c.contains("ATTENDEE") && !c.contains("ORGANIZER") && !c.contains("VALARM"));
        assert!(c.contains("X-APPLE-KEEP:yes\r\n"));
        assert!(super::super::validate_object(c.as_bytes()).is_ok(), "{c}");
        let p = text(delegated_copy(EV.as_bytes(), &style(true)));
        assert!(p.contains("SUMMARY:[Alice\\, A.] Budget\\, Q1\r\n"), "{p}");
    }

    #[test]
    fn class_limits_what_is_copied() {
        let conf = EV.replace("SUMMARY:", "CLASS:CONFIDENTIAL\r\nSUMMARY:");
        let c = text(delegated_copy(conf.as_bytes(), &style(false)));
        assert!(c.contains("SUMMARY:Budget\\, Q1") && c.contains("DTSTART:20260105T100000Z"));
        for leak in [
            "Secret", "Room 4", "ATTACH", "COMMENT", "X-APPLE", "ATTENDEE",
        ] {
            assert!(!c.contains(leak), "{leak} leaked: {c}");
        }
        let private = EV.replace("SUMMARY:", "CLASS:PRIVATE\r\nSUMMARY:");
        let p = text(delegated_copy(private.as_bytes(), &style(true)));
        assert!(p.contains("SUMMARY:[Alice\\, A.] Busy\r\n"), "{p}");
        for leak in ["Budget", "Secret", "Room 4", "ATTACH", "COMMENT"] {
            assert!(!p.contains(leak), "{leak} leaked: {p}");
        }
        let odd = EV.replace("SUMMARY:", "CLASS:X-SECRET\r\nSUMMARY:");
        assert!(!text(delegated_copy(odd.as_bytes(), &style(false))).contains("Budget"));
        let open = Privacy {
            confidential: Detail::Full,
            private: Detail::TimeAndSummary,
        };
        let mut s = style(false);
        s.privacy = open;
        assert!(text(delegated_copy(private.as_bytes(), &s)).contains("SUMMARY:Budget"));
    }

    #[test]
    fn personal_changes() {
        let c = text(delegated_copy(EV.as_bytes(), &style(false)));
        let alarm = c.replace(
            "END:VEVENT",
            "TRANSP:TRANSPARENT\r\nX-MOZ-LASTACK:20260101T000000Z\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT1H\r\nDESCRIPTION:mine\r\nEND:VALARM\r\nEND:VEVENT",
        );
        assert!(only_personal_changes(c.as_bytes(), alarm.as_bytes()));
        let moved = c.replace("DTSTART:20260105T100000Z", "DTSTART:20260105T090000Z");
        assert!(!only_personal_changes(c.as_bytes(), moved.as_bytes()));
        let renamed = c.replace("SUMMARY:Budget", "SUMMARY:Mine");
        assert!(!only_personal_changes(c.as_bytes(), renamed.as_bytes()));
        assert!(!only_personal_changes(c.as_bytes(), b"garbage"));
    }

    #[test]
    fn setting_recipients() {
        let r = [
            Recipient {
                address: "mailto:carol@example.org".into(),
                group: false,
                label: Some("Carol \"C\"".into()),
            },
            Recipient {
                address: "/dav/groups/ops/".into(),
                group: true,
                label: None,
            },
        ];
        let out = text(with_recipients(EV.as_bytes(), &r));
        assert_eq!(
            informational_addresses(out.as_bytes()),
            vec!["mailto:carol@example.org", "/dav/groups/ops/"]
        );
        assert!(out.contains("ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=NON-PARTICIPANT;RSVP=FALSE;CN=\"Carol C\":mailto:carol@example.org\r\n"), "{out}");
        assert!(out.contains("ATTENDEE;PARTSTAT=ACCEPTED:mailto:dave@example.org"));
        let none = text(with_recipients(out.as_bytes(), &[]));
        assert!(informational_addresses(none.as_bytes()).is_empty());
        assert!(super::super::validate_object(none.as_bytes()).is_ok());
    }

    #[test]
    fn colours() {
        assert_eq!(css_colour_name("#4682B4"), "steelblue");
        assert_eq!(css_colour_name("#4682B4FF"), "steelblue");
        assert_eq!(css_colour_name("#FF0000"), "orangered");
        assert_eq!(css_colour_name("nonsense"), "slategray");
        assert_eq!(parse_hex("#12345"), None);
    }
}
