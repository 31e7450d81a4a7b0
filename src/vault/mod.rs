//! The credential vault's keys and envelopes (the binding unit's storage format). Every user
//! has a data key of their own; it is stored only wrapped (sealed) under the key-encryption
//! key (KEK), which is never in the database: it comes from a key file or the environment.
//! Each vaulted field is sealed under its user's data key with associated data that names the
//! format version, the user, the business system and the field, so a row copied to another
//! user, system or field does not open. Every blob names the key that sealed it (the KEK id
//! in a wrapped data key, the data key id in a field), so `convene vault rotate` can re-wrap
//! the data keys under a new KEK while the old one still opens them, and the fields stay as
//! they are.
//!
//! The KEKs may also be kept wrapped by an external KMS (`transit`: OpenBao's transit engine),
//! which unwraps them at start.
//!
//! Must never: write a KEK or an unwrapped data key anywhere, print a key or a secret, or
//! return a secret whose binding does not match.

pub mod transit;

use std::path::{Path, PathBuf};

use crate::crypto::{Key, Secret};

/// The envelope format; part of every blob and of the associated data.
const VERSION: u8 = 1;
/// Bytes of a data key's id.
const KEY_ID_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key file {0}: {1}")]
    KeyFile(PathBuf, String),
    #[error("the vault needs a key-encryption key: set [vault] key_file or CONVENE_VAULT_KEY")]
    NoKey,
    #[error(
        "the key-encryption key {0:?} is not the one this vault was sealed with ({1:?}), and no older key given opens it"
    )]
    WrongKey(String, String),
    #[error(
        "a vaulted value does not open: it was not sealed for this user, system and field, or it was changed"
    )]
    Tampered,
    #[error("the data key was wrapped under key {0:?}, which is not in the key file")]
    UnknownKey(String),
    #[error("the KMS holding the key-encryption key: {0}")]
    Transit(String),
}

/// `[vault]` in the configuration.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// A file of `ID HEX` lines (64 hex digits each): the first line is the current KEK, the
    /// others older ones that still open what they wrapped (until `convene vault rotate`).
    /// Without it, `CONVENE_VAULT_KEY` (`ID HEX`, or 64 hex digits under the id `env`).
    pub key_file: Option<PathBuf>,
    /// The KEKs in the key file are wrapped by this KMS (`ID vault:v1:…` lines), and unwrapped
    /// by it at start.
    #[serde(default)]
    pub transit: Option<transit::TransitConfig>,
}

/// The KEKs: the current one, and older ones kept for unwrapping until rotation.
#[derive(Debug)]
pub struct Keyring {
    current: (String, Key),
    older: Vec<(String, Key)>,
}

/// A data key as stored: the KEK that wrapped it, its own id, and the sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub key_id: String,
    pub blob: Vec<u8>,
}

/// One line `ID HEX`, or (`default_id`) a bare key.
fn parse_line(line: &str, default_id: Option<&str>) -> Result<(String, Key), String> {
    let mut parts = line.split_whitespace();
    let (id, hex) = match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(hex), None) => (id.to_string(), hex),
        (Some(hex), None, None) if default_id.is_some() => {
            (default_id.unwrap_or_default().to_string(), hex)
        }
        _ => return Err("each line is `ID HEX` (a name, then 64 hex digits)".into()),
    };
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err("a key id is 1 to 64 printable characters".into());
    }
    let key = Key::from_hex(hex).ok_or("a key is 64 hex digits")?;
    Ok((id, key))
}

impl Keyring {
    /// The keys from the configured file, or else from `env` (the value of
    /// `CONVENE_VAULT_KEY`). The file must not be readable by others.
    pub async fn load(
        cfg: &VaultConfig,
        env: Option<&str>,
        kms: Option<&transit::Transit>,
    ) -> Result<Keyring, VaultError> {
        let mut keys = vec![];
        if let Some(path) = &cfg.key_file {
            let err = |m: String| VaultError::KeyFile(path.clone(), m);
            check_private(path).map_err(err)?;
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?,
            );
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [id, wrapped] if transit::is_wrapped(wrapped) => {
                        let kms = kms.ok_or_else(|| {
                            err(format!(
                                "key {id:?} is wrapped by a KMS: configure [vault.transit]"
                            ))
                        })?;
                        keys.push((id.to_string(), kms.unwrap(wrapped).await?));
                    }
                    _ => keys.push(parse_line(line, None).map_err(err)?),
                }
            }
        } else if let Some(v) = env {
            keys.push(
                parse_line(v, Some("env"))
                    .map_err(|m| VaultError::KeyFile("CONVENE_VAULT_KEY".into(), m))?,
            );
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or(VaultError::NoKey)?;
        Ok(Keyring {
            current,
            older: keys.collect(),
        })
    }

    /// A keyring of the given keys, the first current (tests, tools).
    pub fn of(keys: Vec<(String, Key)>) -> Option<Keyring> {
        let mut keys = keys.into_iter();
        Some(Keyring {
            current: keys.next()?,
            older: keys.collect(),
        })
    }

    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    fn kek(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .find(|(i, _)| i == id)
            .map(|(_, k)| k)
    }

    fn wrap_aad(user: i64, key_id: &str) -> Vec<u8> {
        format!("convene-vault/{VERSION}\0data-key\0user={user}\0key={key_id}").into_bytes()
    }

    /// A new data key for `user`, and its wrapped form to store.
    pub fn new_data_key(&self, user: i64) -> (Key, WrappedKey) {
        let key = Key::random();
        let key_id = hex::encode(rand::random::<[u8; KEY_ID_LEN]>());
        let blob = self
            .current
            .1
            .seal(&Self::wrap_aad(user, &key_id), key.expose());
        let wrapped = WrappedKey {
            kek_id: self.current.0.clone(),
            key_id,
            blob,
        };
        (key, wrapped)
    }

    /// `user`'s data key, unwrapped.
    pub fn unwrap_key(&self, user: i64, w: &WrappedKey) -> Result<Key, VaultError> {
        let kek = self
            .kek(&w.kek_id)
            .ok_or_else(|| VaultError::UnknownKey(w.kek_id.clone()))?;
        let raw = kek
            .open(&Self::wrap_aad(user, &w.key_id), &w.blob)
            .ok_or(VaultError::Tampered)?;
        Key::from_bytes(raw.expose()).ok_or(VaultError::Tampered)
    }

    /// The same data key wrapped under the current KEK, when it is under another one now
    /// (`convene vault rotate`); the fields sealed under it are untouched.
    pub fn rewrap(&self, user: i64, w: &WrappedKey) -> Result<Option<WrappedKey>, VaultError> {
        if w.kek_id == self.current.0 {
            return Ok(None);
        }
        let key = self.unwrap_key(user, w)?;
        Ok(Some(WrappedKey {
            kek_id: self.current.0.clone(),
            key_id: w.key_id.clone(),
            blob: self
                .current
                .1
                .seal(&Self::wrap_aad(user, &w.key_id), key.expose()),
        }))
    }

    /// What the vault keeps to recognise its KEK at start: sealed under the current KEK.
    pub fn check_value(&self) -> Vec<u8> {
        self.current.1.seal(b"convene-vault check", b"convene")
    }

    /// Whether the KEK with `kek_id` that sealed `check` is in this keyring and opens it: a
    /// server given the wrong key stops at start instead of failing on every secret.
    pub fn verify(&self, kek_id: &str, check: &[u8]) -> Result<(), VaultError> {
        let opened = self
            .kek(kek_id)
            .and_then(|k| k.open(b"convene-vault check", check));
        match opened {
            Some(v) if v.expose() == b"convene" => Ok(()),
            _ => Err(VaultError::WrongKey(
                self.current.0.clone(),
                kek_id.to_string(),
            )),
        }
    }
}

fn field_aad(user: i64, key_id: &str, system: &str, field: &str) -> Vec<u8> {
    format!(
        "convene-vault/{VERSION}\0field\0user={user}\0key={key_id}\0system={system}\0field={field}"
    )
    .into_bytes()
}

/// Seal one field of `user`'s binding to `system` under their data key (`key_id` names it):
/// version ‖ key id ‖ sealed.
pub fn seal_field(
    data_key: &Key,
    key_id: &str,
    (user, system, field): (i64, &str, &str),
    secret: &[u8],
) -> Vec<u8> {
    let mut out = vec![VERSION];
    let mut id = [0u8; KEY_ID_LEN];
    if let Ok(raw) = hex::decode(key_id)
        && raw.len() == KEY_ID_LEN
    {
        id.copy_from_slice(&raw);
    }
    out.extend_from_slice(&id);
    out.extend(data_key.seal(&field_aad(user, key_id, system, field), secret));
    out
}

/// The data key id a field blob was sealed under.
pub fn field_key_id(blob: &[u8]) -> Option<String> {
    (blob.first() == Some(&VERSION) && blob.len() > 1 + KEY_ID_LEN)
        .then(|| hex::encode(&blob[1..1 + KEY_ID_LEN]))
}

/// Open one field; `Tampered` unless it was sealed for exactly this user, system and field
/// under this data key.
pub fn open_field(
    data_key: &Key,
    (user, system, field): (i64, &str, &str),
    blob: &[u8],
) -> Result<Secret, VaultError> {
    let key_id = field_key_id(blob).ok_or(VaultError::Tampered)?;
    data_key
        .open(
            &field_aad(user, &key_id, system, field),
            &blob[1 + KEY_ID_LEN..],
        )
        .ok_or(VaultError::Tampered)
}

/// A key file others can read is refused.
fn check_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "readable by others (mode {:o}); chmod 600 it",
                mode & 0o777
            ));
        }
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str]) -> (Keyring, Vec<Key>) {
        let keys: Vec<Key> = ids.iter().map(|_| Key::random()).collect();
        let ring = Keyring::of(
            ids.iter()
                .map(|i| i.to_string())
                .zip(keys.iter().cloned())
                .collect(),
        )
        .expect("keys");
        (ring, keys)
    }

    #[test]
    fn a_field_opens_only_for_its_user_system_and_field() {
        let (ring, _) = ring(&["k1"]);
        let (dek, wrapped) = ring.new_data_key(7);
        let blob = seal_field(&dek, &wrapped.key_id, (7, "hr", "password"), b"s3cret-pw");
        assert!(!blob.windows(9).any(|w| w == b"s3cret-pw"), "no plaintext");
        let dek = ring.unwrap_key(7, &wrapped).expect("unwrap");
        assert_eq!(
            open_field(&dek, (7, "hr", "password"), &blob)
                .expect("opens")
                .expose(),
            b"s3cret-pw"
        );
        for other in [
            (8, "hr", "password"),
            (7, "mail", "password"),
            (7, "hr", "username"),
        ] {
            assert!(open_field(&dek, other, &blob).is_err(), "{other:?}");
        }
        // Another user's data key does not open it, nor does this one wrapped for another.
        let (other_dek, _) = ring.new_data_key(8);
        assert!(open_field(&other_dek, (7, "hr", "password"), &blob).is_err());
        assert!(matches!(
            ring.unwrap_key(8, &wrapped),
            Err(VaultError::Tampered)
        ));
    }

    #[test]
    fn rotation_rewraps_data_keys_and_fields_stay_readable() {
        let (old, keys) = ring(&["2025"]);
        let (dek, wrapped) = old.new_data_key(1);
        let blob = seal_field(&dek, &wrapped.key_id, (1, "wiki", "password"), b"pw-one");
        // The new key first, the old one kept until rotation is done.
        let new = Keyring::of(vec![
            ("2026".into(), Key::random()),
            ("2025".into(), keys[0].clone()),
        ])
        .expect("keys");
        let rewrapped = new.rewrap(1, &wrapped).expect("rewrap").expect("changed");
        assert_eq!(rewrapped.kek_id, "2026");
        assert_eq!(
            new.rewrap(1, &rewrapped).expect("again"),
            None,
            "idempotent"
        );
        // After rotation the old key can go.
        let only_new = Keyring::of(vec![("2026".into(), new.current.1.clone())]).expect("key");
        let dek = only_new.unwrap_key(1, &rewrapped).expect("unwrap");
        assert_eq!(
            open_field(&dek, (1, "wiki", "password"), &blob)
                .expect("opens")
                .expose(),
            b"pw-one"
        );
        assert!(matches!(
            only_new.unwrap_key(1, &wrapped),
            Err(VaultError::UnknownKey(_))
        ));
    }

    #[test]
    fn the_wrong_kek_is_recognised_at_once() {
        let (ring1, _) = ring(&["a"]);
        let check = ring1.check_value();
        assert!(ring1.verify("a", &check).is_ok());
        let (ring2, _) = ring(&["a"]);
        assert!(matches!(
            ring2.verify("a", &check),
            Err(VaultError::WrongKey(_, _))
        ));
        let (ring3, _) = ring(&["b"]);
        assert!(ring3.verify("a", &check).is_err());
    }

    #[tokio::test]
    async fn key_files_are_private_and_well_formed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("kek");
        std::fs::write(
            &path,
            format!("# keys\nnew {}\nold {}\n", "11".repeat(32), "22".repeat(32)),
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let cfg = VaultConfig {
            key_file: Some(path.clone()),
            transit: None,
        };
        let e = Keyring::load(&cfg, None, None)
            .await
            .expect_err("world-readable");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let ring = Keyring::load(&cfg, None, None).await.expect("loads");
        assert_eq!(ring.current_id(), "new");
        assert_eq!(ring.older.len(), 1);
        std::fs::write(&path, "new 1234\n").expect("write");
        assert!(Keyring::load(&cfg, None, None).await.is_err());
        let from_env = Keyring::load(&VaultConfig::default(), Some(&"33".repeat(32)), None)
            .await
            .expect("env");
        assert_eq!(from_env.current_id(), "env");
        assert!(matches!(
            Keyring::load(&VaultConfig::default(), None, None).await,
            Err(VaultError::NoKey)
        ));
        assert!(!format!("{ring:?}").contains("1111"), "{ring:?}");
        // A wrapped key needs its KMS.
        std::fs::write(&path, "k1 vault:v1:AAAA\n").expect("write");
        let e = Keyring::load(&cfg, None, None)
            .await
            .expect_err("no transit configured");
        assert!(e.to_string().contains("[vault.transit]"), "{e}");
    }
}
