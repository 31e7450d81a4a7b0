//! Sealing small secrets under the server key: XChaCha20-Poly1305 with a random 192-bit nonce
//! and the purpose as associated data, so a value sealed for one use (a pending sign-in
//! cookie) cannot be replayed as another (a stored refresh token). Output is base64url, fit
//! for cookies and text columns.
//!
//! Must never: reuse a nonce (each seal draws a fresh one), or return plaintext that failed
//! authentication.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::ServerKey;

const NONCE_LEN: usize = 24;

/// An AEAD key derived from the server key.
pub struct Sealer(XChaCha20Poly1305);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &ServerKey) -> Sealer {
        Sealer(XChaCha20Poly1305::new(&key.derive("seal v1").into()))
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            // Only fails for inputs beyond 2^38 bytes.
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// `None` for anything not sealed by this key for this purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        self.0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: purpose.as_bytes(),
                },
            )
            .ok()
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
