//! App passwords: one random password per CalDAV client, so a phone or a desktop calendar never
//! holds the account's own password and can be revoked alone.
//!
//! Format: `cvp_` + 8 characters of public lookup + 32 characters of secret (base64url; 48 +
//! 192 random bits). The store keeps the lookup and an HMAC-SHA256 of the whole password under
//! the server key, never the password. A database copy alone cannot be used to log in, nor
//! brute-forced without the key.
//!
//! Must never: store, log or return a password after creation; compare hashes in variable time.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::store::{AppPassword, AppPasswordStore, NewAppPassword, User};

/// App passwords start with this, so one found in a log or a paste is recognisable.
pub const PREFIX: &str = "cvp_";
const LOOKUP_LEN: usize = 8;
const SECRET_LEN: usize = 32;

/// What an app password may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// CalDAV (and the feeds it reads) only: not the account APIs.
    CalDav,
    /// Everything the account's password can do.
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CalDav => "caldav",
            Scope::All => "all",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "caldav" => Some(Scope::CalDav),
            "all" => Some(Scope::All),
            _ => None,
        }
    }
}

/// The server key app passwords are hashed under (32 bytes).
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    pub fn from_bytes(b: [u8; 32]) -> ServerKey {
        ServerKey(b)
    }
    pub fn random() -> ServerKey {
        ServerKey(rand::random())
    }
    /// From 64 hex characters.
    pub fn from_hex(s: &str) -> Option<ServerKey> {
        let v = hex::decode(s.trim()).ok()?;
        Some(ServerKey(v.try_into().ok()?))
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The stored form of a password.
    pub fn hash(&self, password: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(password.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A subkey for one purpose (`label`), so hashes, seals and CSRF tokens never share a key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(b"convene subkey\0");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Does `password` hash to `stored`? Constant time in the hash.
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        let Ok(expected) = hex::decode(stored) else {
            return false;
        };
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(password.as_bytes());
        mac.verify_slice(&expected).is_ok()
    }
}

/// Create an app password for `user`: returns the password (to show once) and its record.
pub async fn create<S: AppPasswordStore>(
    store: &S,
    key: &ServerKey,
    user: &User,
    name: &str,
    scope: Scope,
    expires_days: Option<u32>,
    now: i64,
) -> Result<(String, AppPassword), CreateError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(CreateError::Name);
    }
    let (password, lookup) = generate();
    let ap = store
        .create_app_password(NewAppPassword {
            user: user.id,
            name: name.to_string(),
            lookup,
            hash: key.hash(&password),
            scope: scope.as_str().to_string(),
            expires_at: expires_days.map(|d| now.saturating_add(i64::from(d) * 86_400)),
        })
        .await?;
    Ok((password, ap))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the name must be 1-100 characters, without control characters")]
    Name,
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A fresh app password and its lookup part.
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; 30];
    rand::rng().fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let lookup = text[..LOOKUP_LEN].to_string();
    (format!("{PREFIX}{text}"), lookup)
}

/// The lookup part of something that looks like an app password.
pub fn lookup_of(password: &str) -> Option<&str> {
    let rest = password.strip_prefix(PREFIX)?;
    (rest.len() == LOOKUP_LEN + SECRET_LEN && rest.is_ascii()).then(|| &rest[..LOOKUP_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_hash_and_verify() {
        let (pw, lookup) = generate();
        assert!(pw.starts_with(PREFIX));
        assert_eq!(pw.len(), PREFIX.len() + LOOKUP_LEN + SECRET_LEN);
        assert_eq!(lookup_of(&pw), Some(lookup.as_str()));
        assert_eq!(lookup_of("cvp_short"), None);
        assert_eq!(lookup_of("an ordinary password"), None);
        let key = ServerKey::random();
        let h = key.hash(&pw);
        assert!(key.verify(&pw, &h));
        assert!(!key.verify(&format!("{pw}x"), &h));
        assert!(
            !ServerKey::random().verify(&pw, &h),
            "another key must not verify"
        );
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        assert_eq!(
            ServerKey::from_hex(&key.to_hex()).map(|k| k.hash("a")),
            Some(key.hash("a"))
        );
    }
}
