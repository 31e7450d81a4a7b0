//! Sealing small secrets under the server key (`crypto::Key`: XChaCha20-Poly1305 with a random
//! 192-bit nonce) with the purpose as associated data, so a value sealed for one use (a pending sign-in
//! cookie) cannot be replayed as another (a stored refresh token). Output is base64url, fit
//! for cookies and text columns.
//!
//! Must never: reuse a nonce (each seal draws a fresh one), or return plaintext that failed
//! authentication.

use base64::Engine as _;

use super::ServerKey;
use crate::crypto::Key;

/// An AEAD key derived from the server key.
pub struct Sealer(Key);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &ServerKey) -> Sealer {
        let derived: [u8; 32] = key.derive("seal v1");
        Sealer(Key::from_bytes(&derived).unwrap_or_else(Key::random))
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.0.seal(purpose.as_bytes(), plaintext))
    }

    /// `None` for anything not sealed by this key for this purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        self.0
            .open(purpose.as_bytes(), &raw)
            .map(|s| s.expose().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Sealer::new(&ServerKey::random());
        let sealed = s.seal("a", b"secret refresh token");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            s.open("a", &sealed).as_deref(),
            Some(&b"secret refresh token"[..])
        );
        assert_eq!(s.open("b", &sealed), None, "purpose is bound");
        assert_ne!(s.seal("a", b"x"), s.seal("a", b"x"), "fresh nonce");
        let mut bytes = sealed.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.open("a", &String::from_utf8(bytes).unwrap_or_default()),
            None
        );
        assert_eq!(
            Sealer::new(&ServerKey::random()).open("a", &s.seal("a", b"x")),
            None
        );
        assert_eq!(s.open("a", "not base64 !"), None);
    }
}
