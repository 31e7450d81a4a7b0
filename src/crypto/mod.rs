//! Authenticated encryption for small secrets: XChaCha20-Poly1305 (a random 192-bit nonce per
//! seal, so nonces never need tracking) with associated data that binds a sealed value to
//! where it belongs, and 256-bit keys that are wiped from memory when dropped and never
//! printed.
//!
//! Pure: no I/O beyond the operating system's random numbers.
//!
//! Must never: reuse a nonce, return plaintext that failed authentication, or let a key or
//! an opened secret reach `Debug`/`Display`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A 256-bit key, wiped on drop; its `Debug` says only that it is one.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A fresh random key.
    pub fn random() -> Key {
        Key(Zeroizing::new(rand::random()))
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Key> {
        let mut k = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return None;
        }
        k.copy_from_slice(bytes);
        Some(Key(k))
    }

    /// A key from 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<Key> {
        let mut raw = Zeroizing::new(hex::decode(text.trim()).ok()?);
        let key = Key::from_bytes(&raw);
        raw.zeroize();
        key
    }

    /// The key's bytes, for wrapping it under another key.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    /// Seal `plaintext` so that only this key, with exactly this `aad`, opens it:
    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only fails for inputs beyond 2^38 bytes.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// What `seal` sealed under this key and `aad`; `None` for anything else (another key,
    /// other associated data, a changed byte).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Secret> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
            .map(|p| Secret(Zeroizing::new(p)))
    }
}

/// An opened secret: wiped on drop, never printed.
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_binding() {
        let k = Key::random();
        let sealed = k.seal(b"user=1|field=password", b"hunter22");
        assert!(!sealed.windows(8).any(|w| w == b"hunter22"));
        assert_eq!(
            k.open(b"user=1|field=password", &sealed)
                .as_ref()
                .map(Secret::expose),
            Some(&b"hunter22"[..])
        );
        assert!(k.open(b"user=2|field=password", &sealed).is_none());
        assert!(
            Key::random()
                .open(b"user=1|field=password", &sealed)
                .is_none()
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(k.open(b"user=1|field=password", &flipped).is_none());
        assert!(k.open(b"", &sealed[..10]).is_none());
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(k.seal(b"a", b"x"), k.seal(b"a", b"x"));
    }

    #[test]
    fn keys_and_secrets_are_never_printed() {
        let k = Key::from_hex(&"ab".repeat(32)).expect("a key");
        assert_eq!(format!("{k:?}"), "Key(<redacted>)");
        assert_eq!(
            format!("{:?}", Secret::new(b"pw".to_vec())),
            "Secret(<redacted>)"
        );
        assert!(Key::from_hex("abcd").is_none());
        assert!(Key::from_hex(&"zz".repeat(32)).is_none());
    }
}
