//! Calendar-user addresses (RFC 6638 2.4.1): a `mailto:` of the user's email, or the URL of
//! their principal, absolute or as a path.
//!
//! Must never: take an address for a user it does not name (a principal URL names exactly
//! one user; a `mailto:` only the user with that email).

use crate::ical::itip;
use crate::store::User;

/// Where principals live; a principal URL is this, the user's name, and a slash.
pub const PRINCIPALS_PATH: &str = "/dav/principals/";

/// The path of `name`'s principal.
pub fn principal_path(name: &str) -> String {
    format!("{PRINCIPALS_PATH}{}/", crate::dav::encode_path(name))
}

/// `NAME` from `.../dav/principals/NAME/`, absolute or a path.
pub fn principal_name(address: &str) -> Option<String> {
    let prefix = PRINCIPALS_PATH.trim_end_matches('/');
    let at = address.find(prefix)?;
    let rest = &address[at + prefix.len()..];
    let name = rest.trim_start_matches('/').trim_end_matches('/');
    if name.is_empty() || name.contains('/') {
        return None;
    }
    crate::dav::decode_segments(&format!("/{name}"))
        .ok()
        .and_then(|s| s.into_iter().next())
}

/// Does `address` name `user` (their email, or their principal URL)?
pub fn names_user(address: &str, user: &User) -> bool {
    let norm = itip::normalize_address(address);
    if let Some(mail) = norm.strip_prefix("mailto:") {
        return user
            .email
            .as_deref()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case(mail));
    }
    principal_name(&norm).is_some_and(|n| n == user.name)
}

/// The user's preferred calendar-user address.
pub fn preferred(user: &User) -> String {
    match &user.email {
        Some(e) => format!("mailto:{e}"),
        None => principal_path(&user.name),
    }
}

/// The mail address of a calendar-user address, without the scheme, when it has one.
pub fn mail_of(address: &str) -> Option<String> {
    itip::normalize_address(address)
        .strip_prefix("mailto:")
        .filter(|m| m.contains('@'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_addresses() {
        assert_eq!(
            principal_name("https://cal.example.org/dav/principals/bob/").as_deref(),
            Some("bob")
        );
        assert_eq!(
            principal_name("/dav/principals/a%40b/").as_deref(),
            Some("a@b")
        );
        assert_eq!(principal_name("/dav/principals/").as_deref(), None);
        assert_eq!(principal_name("mailto:bob@example.org"), None);
        assert_eq!(principal_path("a b"), "/dav/principals/a%20b/");
        assert_eq!(
            mail_of("MAILTO:Bob@Example.org").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(mail_of("mailto:nobody"), None);
    }
}
