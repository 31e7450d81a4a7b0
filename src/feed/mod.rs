//! Read-only ICS subscription feeds: a calendar published as one `text/calendar` document at a
//! secret URL, for clients that only subscribe to web calendars (Outlook, Google). The same
//! document is the calendar's export.
//!
//! A feed token is 256 random bits, shown once; only its SHA-256 is stored, so a leaked
//! database does not leak working URLs. A plain (unkeyed) hash is enough because the token
//! is uniformly random and long: there is nothing to guess or pre-compute.
//!
//! Must never: store or log a token, or answer for a calendar the feed does not name.

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::dav::{self, XmlLimits};
use crate::ical::privacy::{Detail, Privacy, non_owner_view};
use crate::store::{Feed, FeedStore, Resource, ResourceReader, Result, User};

/// Tokens start with this, so one found in a log or a paste is recognisable.
pub const TOKEN_PREFIX: &str = "cvf_";

/// A fresh feed token (shown to the owner once).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The path a feed is served at.
pub fn feed_path(token: &str) -> String {
    format!("/feeds/{token}.ics")
}

/// Publish `calendar` (which must be `owner`'s): returns the feed and its token.
pub async fn create<S: FeedStore>(
    store: &S,
    owner: &User,
    calendar: &Resource,
    label: &str,
    detail: Detail,
) -> Result<(Feed, String)> {
    let token = new_token();
    let feed = store
        .create_feed(owner.id, calendar.id, label, &token_hash(&token), detail)
        .await?;
    Ok((feed, token))
}

/// The feed a token opens and the calendar it shows, if the token is live.
pub async fn open<S: FeedStore + ResourceReader>(
    store: &S,
    token: &str,
) -> Result<Option<(Feed, Resource)>> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    let Some(feed) = store.use_feed(&token_hash(token)).await? else {
        return Ok(None);
    };
    let cal = store.resource(feed.calendar).await?;
    Ok(cal.map(|c| (feed, c)))
}

/// A validator that changes whenever anything in the calendar does (its change number).
pub fn etag(calendar: &Resource) -> String {
    format!("\"{}-{}\"", calendar.uuid, calendar.sync_seq)
}

/// The calendar's display name as its owner set it, if any.
pub async fn display_name<S: ResourceReader>(
    store: &S,
    calendar: &Resource,
) -> Result<Option<String>> {
    let props = store.props(calendar.id, calendar.owner).await?;
    Ok(props
        .iter()
        .find(|p| p.ns == dav::NS_DAV && p.local == "displayname")
        .and_then(|p| dav::xml::parse(&p.xml, XmlLimits::default()).ok())
        .map(|e| e.text)
        .filter(|t| !t.trim().is_empty()))
}

/// The whole calendar as one iCalendar document (VTIMEZONEs once each, then every object).
/// `reader`: for a feed, the privacy rule and the feed's detail (a feed's readers are not the
/// owner); `None` for the owner's own export.
pub async fn render<S: ResourceReader>(
    store: &S,
    calendar: &Resource,
    reader: Option<(&Privacy, Detail)>,
) -> Result<Vec<u8>> {
    let ids: Vec<_> = store
        .children(calendar.id)
        .await?
        .into_iter()
        .filter(|c| !c.kind.is_collection())
        .map(|c| c.id)
        .collect();
    let bodies: Vec<Vec<u8>> = store
        .object_datas(&ids)
        .await?
        .into_iter()
        .map(|(_, b)| match reader {
            Some((privacy, floor)) => match non_owner_view(&b, privacy, floor) {
                std::borrow::Cow::Owned(v) => v,
                std::borrow::Cow::Borrowed(_) => b,
            },
            None => b,
        })
        .collect();
    let name = display_name(store, calendar).await?;
    Ok(crate::ical::bundle::join_calendar(&bodies, name.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
