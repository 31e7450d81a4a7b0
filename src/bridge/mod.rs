//! The single-sign-on bridge's domain: each user's credentials for the business systems,
//! kept in the vault (ADR 0009). `Credentials` joins the key-encryption keys to the store:
//! it recognises the wrong KEK at start, gives each user a data key on first use, seals and
//! opens fields bound to their user, system and field, erases them, and re-wraps every data
//! key under a new KEK (`convene vault rotate`).
//!
//! `systems` is the registry of business systems an admin registers, and who may use each;
//! `handoff` hands a portal session to a system's host in the login proxy; `grants` keeps
//! what a person may do on a system, and the credential released for it, for a minute;
//! `single_flight` lets one request at a time look up what the others then find remembered.
//!
//! No HTTP here: the binding API, the login proxy and the launcher are built on this.
//!
//! Must never: log or return a secret other than to the caller that asked for it by user,
//! system and field, or keep an unwrapped data key beyond one call.

pub mod grants;
pub mod handoff;
pub mod single_flight;
pub mod systems;

use std::future::Future;
use std::pin::Pin;

use crate::crypto::Secret;
use crate::store::{
    AuditOutcome, AuditPurpose, BindingState, BindingStore as _, Store, StoreError, StoredKey,
    UserId, VaultStore as _,
};
use crate::vault::{self, Keyring, VaultError, WrappedKey};
use systems::{LoginMethod, System};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a {0} login takes no binding (HTTP Basic, form and IMAP logins do)")]
    Unsupported(&'static str),
}

/// What one real login with a credential answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCheck {
    Accepted,
    Refused,
    /// The system could not be asked, or answered neither yes nor no (why, for the person).
    Unreachable(String),
}

/// The outbound side of the bridge (implemented at the edge, `proxy`): one real login to a
/// system's registered origin, following no redirect.
pub trait Verifier: Send + Sync {
    fn verify<'a>(
        &'a self,
        system: &'a System,
        username: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = LoginCheck> + Send + 'a>>;
}

/// What a mail system said of a person's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    Count(u32),
    Refused,
    Unreachable(String),
}

/// The outbound side of the mail reminder (implemented at the edge, `proxy`): the unread
/// count of a person's inbox, by an IMAP login with their credential.
pub trait MailCounter: Send + Sync {
    fn unread<'a>(
        &'a self,
        system: &'a System,
        username: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = Unread> + Send + 'a>>;
}

/// The unread count of `user`'s inbox at mail system `system`, with their vaulted credential
/// (released for it, audited as `mail`). `None` when it is not bound (or needs updating); a
/// refused login marks the binding, as through the login proxy.
pub async fn unread(
    creds: &Credentials,
    counter: &dyn MailCounter,
    (user, system): (UserId, &System),
    now: i64,
) -> Result<Option<Unread>, BridgeError> {
    let name = system.cfg.name.as_str();
    let Some((u, p)) = bound_credential(creds, user, name).await? else {
        return Ok(None);
    };
    let username = String::from_utf8_lossy(u.expose()).into_owned();
    let answer = counter.unread(system, &username, &p).await;
    let outcome = match &answer {
        Unread::Count(_) => LoginCheck::Accepted,
        Unread::Refused => LoginCheck::Refused,
        Unread::Unreachable(why) => LoginCheck::Unreachable(why.clone()),
    };
    audit(creds, (user, name), AuditPurpose::Mail, &outcome, now).await?;
    if answer == Unread::Refused {
        creds
            .store
            .set_binding(user, name, BindingState::NeedsUpdate, now)
            .await?;
    }
    Ok(Some(answer))
}

/// Record one release of `user`'s secrets for `system` in the audit, with what came of it.
async fn audit(
    creds: &Credentials,
    (user, system): (UserId, &str),
    purpose: AuditPurpose,
    check: &LoginCheck,
    now: i64,
) -> Result<(), BridgeError> {
    let outcome = match check {
        LoginCheck::Accepted => AuditOutcome::Accepted,
        LoginCheck::Refused => AuditOutcome::Refused,
        LoginCheck::Unreachable(_) => AuditOutcome::Unreachable,
    };
    Ok(creds
        .store
        .record_release(user, system, purpose, outcome, now)
        .await?)
}

/// Names of the vaulted fields of a binding.
const USERNAME: &str = "username";
const PASSWORD: &str = "password";

/// `user`'s vaulted credential for `system` when the binding is `bound` (not one that needs
/// updating): `(username, password)`.
async fn bound_credential(
    creds: &Credentials,
    user: UserId,
    system: &str,
) -> Result<Option<(Secret, Secret)>, BridgeError> {
    let bound = creds
        .store
        .bindings_of(user)
        .await?
        .iter()
        .any(|b| b.system == system && b.state == BindingState::Bound);
    if !bound {
        return Ok(None);
    }
    Ok(
        match (
            creds.get(user, system, USERNAME).await?,
            creds.get(user, system, PASSWORD).await?,
        ) {
            (Some(u), Some(p)) => Some((u, p)),
            _ => None,
        },
    )
}

/// Bind `user`'s account in `system`: one real login with the credential (recorded in the
/// audit); only a credential the system accepted is vaulted and the binding marked bound. A
/// refused one is not kept (what was bound before stays), so the person can correct it.
pub async fn bind(
    creds: &Credentials,
    verifier: &dyn Verifier,
    (user, system): (UserId, &System),
    username: &str,
    password: &Secret,
    now: i64,
) -> Result<LoginCheck, BridgeError> {
    if !matches!(
        system.cfg.login,
        LoginMethod::Basic | LoginMethod::Form | LoginMethod::Imap
    ) {
        return Err(BridgeError::Unsupported(system.cfg.login.as_str()));
    }
    let name = system.cfg.name.as_str();
    let check = verifier.verify(system, username, password).await;
    audit(creds, (user, name), AuditPurpose::Verify, &check, now).await?;
    if check == LoginCheck::Accepted {
        creds
            .put(user, name, USERNAME, username.as_bytes(), now)
            .await?;
        creds
            .put(user, name, PASSWORD, password.expose(), now)
            .await?;
        creds
            .store
            .set_binding(user, name, BindingState::Bound, now)
            .await?;
    }
    Ok(check)
}

/// A login through the bridge with `user`'s vaulted credential was refused by `system`: the
/// binding needs updating, and the credential is not used again until the person updates it,
/// so the system's lockout is never tripped by the bridge (recorded in the audit).
///
/// `released_at` is when the refused credential left the vault: a binding updated since then
/// holds another credential and stays as it is.
pub async fn refused(
    creds: &Credentials,
    (user, system): (UserId, &str),
    released_at: i64,
    now: i64,
) -> Result<(), BridgeError> {
    let newer = creds
        .store
        .bindings_of(user)
        .await?
        .iter()
        .any(|b| b.system == system && b.verified_at > released_at);
    if newer {
        return Ok(());
    }
    audit(
        creds,
        (user, system),
        AuditPurpose::Login,
        &LoginCheck::Refused,
        now,
    )
    .await?;
    creds
        .store
        .set_binding(user, system, BindingState::NeedsUpdate, now)
        .await?;
    Ok(())
}

/// Why forward-auth lets nobody in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No binding (or one that needs updating): the person binds their account first.
    NotBound,
}

/// The vaulted credential of `user` for `system`, released for a login through a proxy in
/// front of it (recorded in the audit): `(username, password)`.
pub async fn release_for_login(
    creds: &Credentials,
    (user, system): (UserId, &str),
    now: i64,
) -> Result<Result<(Secret, Secret), Refusal>, BridgeError> {
    let Some((u, p)) = bound_credential(creds, user, system).await? else {
        return Ok(Err(Refusal::NotBound));
    };
    audit(
        creds,
        (user, system),
        AuditPurpose::Login,
        &LoginCheck::Accepted,
        now,
    )
    .await?;
    Ok(Ok((u, p)))
}

/// Every registered system: the configuration's entries, then those registered with the
/// CLI (from the store), checked together (the first problem, naming its system, is the
/// error).
pub async fn registry(
    store: &Store,
    configured: &[systems::SystemConfig],
) -> Result<systems::Registry, String> {
    let mut entries = configured.to_vec();
    for (name, entry) in store
        .registered_systems()
        .await
        .map_err(|e| e.to_string())?
    {
        entries.push(
            serde_json::from_str(&entry)
                .map_err(|e| format!("system {name:?} (registered with the CLI): {e}"))?,
        );
    }
    systems::Registry::new(&entries)
}

/// Register `entry` with the CLI (or replace the one of that name): checked with every other
/// system; a name the configuration file holds, or a login that carries a secret (`header`,
/// forward-auth), is refused: secrets stay in the configuration file. Takes effect at start.
pub async fn register(
    store: &Store,
    configured: &[systems::SystemConfig],
    entry: systems::SystemConfig,
    now: i64,
) -> Result<(), String> {
    if configured.iter().any(|c| c.name == entry.name) {
        return Err(format!(
            "system {:?} is in the configuration file: change it there",
            entry.name
        ));
    }
    if entry.login == LoginMethod::Header || entry.forward_auth_secret.is_some() {
        return Err("a header login or a forward-auth secret carries a secret: register it in the configuration file".into());
    }
    let mut entries = configured.to_vec();
    for (name, e) in store
        .registered_systems()
        .await
        .map_err(|e| e.to_string())?
    {
        if name != entry.name
            && let Ok(c) = serde_json::from_str::<systems::SystemConfig>(&e)
        {
            entries.push(c);
        }
    }
    entries.push(entry.clone());
    systems::Registry::new(&entries)?;
    let json = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
    store
        .register_system(&entry.name, &json, now)
        .await
        .map_err(|e| e.to_string())
}

/// Remove a system registered with the CLI, with every binding to it and every secret for it;
/// false when there was none.
pub async fn unregister(store: &Store, name: &str) -> Result<bool, BridgeError> {
    let gone = store.unregister_system(name).await?;
    if gone {
        store.forget_system(name).await?;
    }
    Ok(gone)
}

/// Erase the bindings and secrets of every system no longer registered; the systems erased.
pub async fn forget_unregistered(
    store: &Store,
    registry: &systems::Registry,
) -> Result<Vec<String>, BridgeError> {
    let mut gone = vec![];
    for name in store.systems_with_bindings().await? {
        if registry.get(&name).is_none() {
            store.forget_system(&name).await?;
            gone.push(name);
        }
    }
    Ok(gone)
}

/// Remove `user`'s binding to `system` and erase its secrets; false when there was none.
pub async fn unbind(creds: &Credentials, user: UserId, system: &str) -> Result<bool, BridgeError> {
    let erased = creds.erase(user, Some(system)).await?;
    let removed = creds.store.remove_binding(user, system).await?;
    Ok(erased > 0 || removed)
}

/// The vault over this server's store.
pub struct Credentials {
    store: Store,
    keys: Keyring,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("kek", &self.keys.current_id())
            .finish_non_exhaustive()
    }
}

fn stored(w: WrappedKey) -> StoredKey {
    StoredKey {
        kek_id: w.kek_id,
        key_id: w.key_id,
        wrapped: w.blob,
    }
}

fn wrapped(s: StoredKey) -> WrappedKey {
    WrappedKey {
        kek_id: s.kek_id,
        key_id: s.key_id,
        blob: s.wrapped,
    }
}

impl Credentials {
    /// The vault with these keys: `WrongKey` when the vault was sealed under a KEK the keyring
    /// does not hold (or holds different bytes under its id). A new vault is marked with the
    /// current KEK.
    pub async fn open(store: Store, keys: Keyring) -> Result<Credentials, BridgeError> {
        match store.vault_check().await? {
            Some((kek_id, check)) => keys.verify(&kek_id, &check)?,
            None => {
                store
                    .set_vault_check(keys.current_id(), &keys.check_value())
                    .await?
            }
        }
        Ok(Credentials { store, keys })
    }

    /// Seal and store one field of `user`'s binding to `system`.
    pub async fn put(
        &self,
        user: UserId,
        system: &str,
        field: &str,
        secret: &[u8],
        now: i64,
    ) -> Result<(), BridgeError> {
        let (key, key_id) = match self.store.data_key(user).await? {
            Some(k) => {
                let id = k.key_id.clone();
                (self.keys.unwrap_key(user.0, &wrapped(k))?, id)
            }
            None => {
                let (_, w) = self.keys.new_data_key(user.0);
                // Another instance may have made the user's key first: the stored one counts.
                let kept = self.store.add_data_key(user, &stored(w)).await?;
                let id = kept.key_id.clone();
                (self.keys.unwrap_key(user.0, &wrapped(kept))?, id)
            }
        };
        let blob = vault::seal_field(&key, &key_id, (user.0, system, field), secret);
        self.store
            .put_secret(user, system, field, &blob, now)
            .await?;
        Ok(())
    }

    /// The field, opened; `None` when there is none. `Tampered` when the row was not sealed
    /// for this user, system and field.
    pub async fn get(
        &self,
        user: UserId,
        system: &str,
        field: &str,
    ) -> Result<Option<Secret>, BridgeError> {
        let Some(blob) = self.store.secret(user, system, field).await? else {
            return Ok(None);
        };
        let k = self
            .store
            .data_key(user)
            .await?
            .ok_or(VaultError::Tampered)?;
        if vault::field_key_id(&blob).as_deref() != Some(k.key_id.as_str()) {
            return Err(VaultError::Tampered.into());
        }
        let key = self.keys.unwrap_key(user.0, &wrapped(k))?;
        Ok(Some(vault::open_field(
            &key,
            (user.0, system, field),
            &blob,
        )?))
    }

    /// Erase `user`'s secrets for `system` (all systems: `None`).
    pub async fn erase(&self, user: UserId, system: Option<&str>) -> Result<u64, BridgeError> {
        Ok(self.store.remove_secrets(user, system).await?)
    }

    /// Re-wrap every data key under the current KEK and mark the vault with it; how many were
    /// re-wrapped. The older KEKs may leave the key file afterwards.
    pub async fn rotate(&self) -> Result<usize, BridgeError> {
        let mut n = 0;
        for (user, k) in self
            .store
            .data_keys_not_under(self.keys.current_id())
            .await?
        {
            let old = k.kek_id.clone();
            if let Some(new) = self.keys.rewrap(user.0, &wrapped(k))?
                && self.store.rewrap_data_key(user, &old, &stored(new)).await?
            {
                n += 1;
            }
        }
        self.store
            .set_vault_check(self.keys.current_id(), &self.keys.check_value())
            .await?;
        Ok(n)
    }
}
