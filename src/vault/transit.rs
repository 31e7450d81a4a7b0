//! A key-encryption key kept by an external KMS: OpenBao's (or HashiCorp Vault's) transit
//! engine. The key file then holds each KEK only wrapped by transit (`ID vault:v1:…`); the
//! server asks transit to unwrap it at start and keeps it in memory only. Whoever copies the
//! database and the key file still needs the KMS (and a token it accepts) to open anything,
//! and revoking the token or disabling the transit key closes the vault.
//!
//! Must never: log or write the token or an unwrapped KEK, or send them anywhere but the
//! configured transit address.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::VaultError;
use crate::crypto::Key;

/// `[vault.transit]` in the configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitConfig {
    /// The KMS address, for example `https://bao.example.org:8200`.
    pub url: String,
    /// The transit key's name.
    pub key: String,
    /// A file holding the token (mode 0600); without it, `CONVENE_TRANSIT_TOKEN`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The transit engine's mount (default `transit`).
    #[serde(default)]
    pub mount: Option<String>,
}

/// A transit client with its token.
pub struct Transit {
    client: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for Transit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transit")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn failed(m: impl std::fmt::Display) -> VaultError {
    VaultError::Transit(m.to_string())
}

/// Whether a key-file value is a transit ciphertext rather than a key.
pub fn is_wrapped(value: &str) -> bool {
    value.starts_with("vault:v")
}

impl Transit {
    /// The client for `cfg`, its token from the file or from `env_token`.
    pub fn new(cfg: &TransitConfig, env_token: Option<&str>) -> Result<Transit, VaultError> {
        let token = match (&cfg.token_file, env_token) {
            (Some(path), _) => {
                super::check_private(path).map_err(|m| VaultError::KeyFile(path.clone(), m))?;
                Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| VaultError::KeyFile(path.clone(), e.to_string()))?
                        .trim()
                        .to_string(),
                )
            }
            (None, Some(t)) => Zeroizing::new(t.trim().to_string()),
            (None, None) => {
                return Err(failed(
                    "[vault.transit] needs token_file or CONVENE_TRANSIT_TOKEN",
                ));
            }
        };
        let mount = cfg.mount.as_deref().unwrap_or("transit");
        let ok_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'))
        };
        if !ok_name(mount) || !ok_name(&cfg.key) {
            return Err(failed(
                "the transit mount and key are names (letters, digits, - _ /)",
            ));
        }
        if !(cfg.url.starts_with("https://") || cfg.url.starts_with("http://")) {
            return Err(failed("the transit url is http(s)://HOST[:PORT]"));
        }
        Ok(Transit {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(failed)?,
            base: format!("{}/v1/{mount}", cfg.url.trim_end_matches('/'))
                + &format!("/{{op}}/{}", cfg.key),
            token,
        })
    }

    async fn call(
        &self,
        op: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, VaultError> {
        let url = self.base.replace("{op}", op);
        let r = self
            .client
            .post(&url)
            .header("X-Vault-Token", self.token.as_str())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| failed(format!("transit {op}: {}", e.without_url())))?;
        let status = r.status();
        // An answer is a few hundred bytes: read at most 64 KiB of it.
        let mut r = r;
        let mut bytes = Zeroizing::new(Vec::new());
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| failed(format!("transit {op}: {}", e.without_url())))?
        {
            if bytes.len() + chunk.len() > 64 * 1024 {
                return Err(failed(format!("transit {op}: the answer is too large")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| failed(format!("transit {op} answered {status}, not JSON")))?;
        if !status.is_success() {
            let why = v["errors"]
                .as_array()
                .and_then(|e| e.first())
                .and_then(|e| e.as_str())
                .unwrap_or("refused")
                .to_string();
            return Err(failed(format!("transit {op} answered {status}: {why}")));
        }
        Ok(v)
    }

    /// Unwrap a KEK the key file holds wrapped.
    pub async fn unwrap(&self, ciphertext: &str) -> Result<Key, VaultError> {
        let v = self
            .call("decrypt", serde_json::json!({ "ciphertext": ciphertext }))
            .await?;
        let b64 = Zeroizing::new(
            v["data"]["plaintext"]
                .as_str()
                .ok_or_else(|| failed("transit decrypt: no plaintext"))?
                .to_string(),
        );
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| failed("transit decrypt: not base64"))?,
        );
        Key::from_bytes(&raw).ok_or_else(|| failed("transit decrypt: not a 256-bit key"))
    }

    /// Wrap a (new) KEK for the key file.
    pub async fn wrap(&self, key: &Key) -> Result<String, VaultError> {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.expose()));
        let v = self
            .call("encrypt", serde_json::json!({ "plaintext": b64.as_str() }))
            .await?;
        v["data"]["ciphertext"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| failed("transit encrypt: no ciphertext"))
    }
}
