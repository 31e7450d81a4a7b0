//! Generated avatars and account colours: a stable colour derived from an account name, and
//! an SVG badge with the person's initials on it, for people without a directory photo.
//! Pure: no I/O.
//!
//! Must never: put unescaped text into the SVG (names come from the directory or from users).

use sha2::{Digest, Sha256};

/// A stable `#RRGGBB` for an account: a hue from a hash of the name, at a saturation and
/// lightness that keep white text readable.
pub fn colour_for(name: &str) -> String {
    let h = Sha256::digest(name.as_bytes());
    let hue = f64::from(u16::from_be_bytes([h[0], h[1]]) % 360);
    let (r, g, b) = hsl_to_rgb(hue, 0.55, 0.42);
    format!("#{r:02X}{g:02X}{b:02X}")
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match h as u32 {
        0..=59 => (c, x, 0.0),
        60..=119 => (x, c, 0.0),
        120..=179 => (0.0, c, x),
        180..=239 => (0.0, x, c),
        240..=299 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

/// Up to two initials from a display name (or the account name).
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let mut out: String = match words.as_slice() {
        [] => String::new(),
        [one] => one.chars().take(2).collect(),
        [first, .., last] => first.chars().take(1).chain(last.chars().take(1)).collect(),
    };
    out = out.to_uppercase();
    out
}

/// A 96x96 SVG badge: the account's colour and the initials.
pub fn svg(account: &str, display: Option<&str>) -> String {
    let text = initials(display.unwrap_or(account));
    let escaped: String = text
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"96\" height=\"96\" viewBox=\"0 0 96 96\"><rect width=\"96\" height=\"96\" rx=\"48\" fill=\"{}\"/><text x=\"48\" y=\"60\" font-family=\"sans-serif\" font-size=\"36\" text-anchor=\"middle\" fill=\"#FFFFFF\">{escaped}</text></svg>",
        colour_for(account)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_colours_and_initials() {
        assert_eq!(colour_for("alice"), colour_for("alice"));
        assert_ne!(colour_for("alice"), colour_for("bob"));
        assert!(colour_for("x").starts_with('#') && colour_for("x").len() == 7);
        assert_eq!(initials("Carol Clark"), "CC");
        assert_eq!(initials("Jean Claude van Damme"), "JD");
        assert_eq!(initials("olivia"), "OL");
        assert_eq!(initials(""), "");
        let s = svg("x", Some("<b> &"));
        assert!(s.contains("&lt;&amp;") && !s.contains("<b>"), "{s}");
    }
}
