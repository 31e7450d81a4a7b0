//! Authentication: turning credentials into a `User`. HTTP Basic against local users with
//! argon2id hashes or their app passwords (`app_password`), with brute-force limits (`limit`);
//! LDAP and OIDC sessions plug in behind `Authenticator`.
//!
//! CalDAV clients send Basic on every request and argon2id costs tens of milliseconds, so
//! successful verifications are cached under a keyed hash (HMAC-SHA256 with a per-process
//! random key) of user id, stored hash and password. The cache never holds a password, and a
//! password change or account removal misses it at once because the stored hash or the user
//! lookup changes.
//!
//! Must never: log a password or a hash, or compare secrets in variable time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
// Monotonic, and paused with tokio's test clock.
use tokio::time::Instant;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub mod app_password;
pub mod limit;
pub mod oidc;
pub mod seal;

use crate::store::{AppPasswordStore, Store, StoreError, User, UserStore};
pub use app_password::{Scope, ServerKey};

/// Who is asking, and what their credential allows.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub scope: Scope,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("credential store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("directory unavailable: {0}")]
    Directory(#[from] crate::directory::DirectoryError),
    #[error("password hashing failed")]
    Hash,
    #[error("a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    PasswordLength,
}

/// Shortest password an account may be given (NIST SP 800-63B 5.1.1.2: at least 8). App
/// passwords are generated, and directory passwords are the directory's.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest: argon2 hashes anything, but a megabyte "password" is only a way to burn CPU.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Whether `password` may be set as an account's password.
pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(AuthError::PasswordLength)
    }
}

/// The value of the first cookie a request carries (its `Cookie` headers, RFC 6265 5.4)
/// whose name `wanted` accepts: the one reader of session cookies, for the portal and for
/// the login proxy's system hosts alike.
pub fn request_cookie(headers: &http::HeaderMap, wanted: impl Fn(&str) -> bool) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| wanted(k))
        .map(|(_, v)| v.trim_matches('"'))
}

/// Basic credentials from an `Authorization` header.
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Parse `Basic base64(user:pass)` (RFC 7617). Returns `None` for anything else.
    pub fn from_basic_header(value: &str) -> Option<Credentials> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

/// Anything that can check a username and password.
#[allow(async_fn_in_trait)]
pub trait Authenticator {
    /// `Ok(None)` means the credentials are wrong (or the account cannot log in).
    async fn authenticate(&self, creds: &Credentials) -> Result<Option<Authenticated>, AuthError>;
}

/// Argon2id with 7 MiB of memory and 5 passes: one of OWASP's equal-strength settings for
/// Argon2id (with the crate's default, 19 MiB and 2 passes), chosen for the smaller memory.
/// Every verification holds that memory for its duration, and at 19 MiB one login alone was
/// a third of the server's peak RSS at 10,000 events.
const ARGON2_MEMORY_KIB: u32 = 7 * 1024;
const ARGON2_PASSES: u32 = 5;

/// The hasher for new passwords. A stored hash names its own parameters and is checked with
/// those, so hashes made with other settings keep working.
fn hasher() -> Result<Argon2<'static>, AuthError> {
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
        .map_err(|_| AuthError::Hash)?;
    Ok(Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    hasher()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Successful verifications, keyed by an HMAC of (user id, stored hash, password).
pub struct VerifyCache {
    /// Keyed once with a random key: each lookup clones it instead of hashing the key's two
    /// pads again, a third of the HMAC's work on every authenticated request.
    mac: Hmac<Sha256>,
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifyCache {
    pub fn new(ttl: Duration) -> Self {
        let key: [u8; 64] = rand::random();
        VerifyCache {
            mac: <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key.into()),
            ttl,
            max_entries: 10_000,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key_for(&self, user: &User, hash: &str, password: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&user.id.0.to_be_bytes());
        mac.update(&(hash.len() as u64).to_be_bytes());
        mac.update(hash.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn hit(&self, k: &[u8; 32]) -> bool {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(k) {
            Some(exp) if *exp > now => true,
            Some(_) => {
                map.remove(k);
                false
            }
            None => false,
        }
    }

    fn insert(&self, k: [u8; 32]) {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max_entries {
            map.retain(|_, exp| *exp > now);
            if map.len() >= self.max_entries {
                map.clear();
            }
        }
        map.insert(k, now + self.ttl);
    }
}

/// The local account of a directory person, made (without a password) the first time they
/// log in or are referred to (as an attendee, in a principal search). The directory's uid is
/// the account name. `None` only if it vanished in a race.
pub async fn provision(
    store: &Store,
    person: &crate::directory::Person,
) -> Result<Option<User>, AuthError> {
    if let Some(u) = store.user_by_name(&person.uid).await? {
        return Ok(Some(u));
    }
    match store
        .create_user(crate::store::NewUser {
            name: person.uid.clone(),
            email: person.mail.clone(),
            display_name: person.display_name.clone(),
            password_hash: None,
        })
        .await
    {
        Ok(u) => {
            tracing::info!(user = %u.name, "provisioned from the directory");
            Ok(Some(u))
        }
        // Two first references at once: the other one made it.
        Err(StoreError::AlreadyExists) => Ok(store.user_by_name(&person.uid).await?),
        Err(e) => Err(e.into()),
    }
}

/// A user name must be usable in a URL path segment and an LDAP-style login: no slashes,
/// colons, control characters or surrounding whitespace.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.trim() == name
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_control())
        && name != "."
        && name != ".."
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the provider's user name {0:?} cannot be an account name here")]
    BadName(String),
    /// A local account with a password, or one linked to another identity, has this name:
    /// signing in as it through the provider would take it over.
    #[error("the account {0:?} exists here and is not linked to this identity")]
    Conflict(String),
    #[error("the account {0:?} is disabled")]
    Disabled(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The local account of a person the OpenID provider vouched for: the one linked to their
/// (issuer, subject); else, on first sign-in, a new account named by the username claim, or
/// an existing password-less account of that name (one the directory provisioned) not yet
/// linked at this issuer. Their groups are recorded each time.
pub async fn provision_oidc(store: &Store, id: &oidc::Identity) -> Result<User, ProvisionError> {
    use crate::store::SessionStore as _;
    let user = match store.user_by_oidc(&id.issuer, &id.subject).await? {
        Some(u) => u,
        None => {
            if !valid_user_name(&id.username) {
                return Err(ProvisionError::BadName(id.username.clone()));
            }
            let user = match store.user_by_name(&id.username).await? {
                Some(u) if u.password_hash.is_some() => {
                    return Err(ProvisionError::Conflict(id.username.clone()));
                }
                Some(u) => u,
                None => match store
                    .create_user(crate::store::NewUser {
                        name: id.username.clone(),
                        email: id.email.clone(),
                        display_name: id.name.clone(),
                        password_hash: None,
                    })
                    .await
                {
                    Ok(u) => {
                        tracing::info!(user = %u.name, "provisioned from the identity provider");
                        u
                    }
                    Err(StoreError::AlreadyExists) => store
                        .user_by_name(&id.username)
                        .await?
                        .ok_or_else(|| ProvisionError::Conflict(id.username.clone()))?,
                    Err(e) => return Err(e.into()),
                },
            };
            match store.link_oidc(&id.issuer, &id.subject, user.id).await {
                Ok(()) => user,
                Err(StoreError::AlreadyExists) => {
                    return Err(ProvisionError::Conflict(id.username.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if user.disabled {
        return Err(ProvisionError::Disabled(user.name));
    }
    store
        .set_user_groups(user.id, crate::store::GroupSource::Oidc, &id.groups)
        .await?;
    Ok(user)
}

/// The password checks a login may use, in order (`password_backends`). LDAP never signs
/// into an account that has a local password, whatever the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordBackend {
    Local,
    Ldap,
}

/// Local users with argon2id password hashes in the store.
pub struct LocalAuthenticator {
    store: Store,
    cache: VerifyCache,
    key: ServerKey,
    /// People without a local password are checked against the directory, and provisioned on
    /// their first login.
    ldap: Option<crate::directory::LdapDirectory>,
    /// Directory people confirmed present, until when (see `LdapConfig::recheck_seconds`).
    present: Mutex<HashMap<crate::store::UserId, Instant>>,
    /// argon2 verifications performed (cache misses), for metrics and tests.
    verifications: std::sync::atomic::AtomicU64,
    /// Verifications allowed to run at once. Each takes about 19 MiB and tens of ms of CPU:
    /// 50 clients reconnecting after a restart (or 50 wrong passwords) once took the process
    /// to 1 GiB. Waiters re-check the cache, so one credential is verified once.
    hashing: tokio::sync::Semaphore,
    backends: Vec<PasswordBackend>,
    /// Where "now" comes from (app-password expiry).
    clock: crate::clock::SharedClock,
}

/// How many argon2 verifications may run at once: one per core, at most four.
pub fn hashing_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

impl LocalAuthenticator {
    pub fn new(store: Store, cache_ttl: Duration) -> Self {
        LocalAuthenticator {
            store,
            cache: VerifyCache::new(cache_ttl),
            key: ServerKey::random(),
            ldap: None,
            present: Mutex::new(HashMap::new()),
            verifications: std::sync::atomic::AtomicU64::new(0),
            hashing: tokio::sync::Semaphore::new(hashing_slots()),
            backends: vec![PasswordBackend::Local, PasswordBackend::Ldap],
            clock: crate::clock::system(),
        }
    }

    /// Read time from `clock`.
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Which password checks run, in order (app passwords always work).
    pub fn with_backends(mut self, backends: Vec<PasswordBackend>) -> Self {
        self.backends = backends;
        self
    }

    /// Check people without a local password against this LDAP directory.
    pub fn with_ldap(mut self, ldap: crate::directory::LdapDirectory) -> Self {
        self.ldap = Some(ldap);
        self
    }

    /// For an account that came from the directory: is the person still there? Logins that
    /// bind prove it; the others (app passwords, cached binds) ask again once the last answer
    /// is older than the recheck interval.
    async fn still_in_directory(&self, user: &User) -> Result<bool, AuthError> {
        let Some(ldap) = self.ldap.as_ref().filter(|_| user.password_hash.is_none()) else {
            return Ok(true);
        };
        let now = Instant::now();
        if self
            .present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user.id)
            .is_some_and(|until| *until > now)
        {
            return Ok(true);
        }
        // Accounts of the identity provider answer to it (sessions refresh there), not to
        // LDAP. Asked only when the directory would be, so a fresh answer costs no query.
        {
            use crate::store::SessionStore as _;
            if self.store.has_oidc(None, user.id).await? {
                return Ok(true);
            }
        }
        // Boxed for the same reason as `via_directory`: an LDAP search's future is kilobytes.
        let found = Box::pin(ldap.find(&user.name)).await?.is_some();
        let mut present = self.present.lock().unwrap_or_else(|p| p.into_inner());
        if found {
            if present.len() > 100_000 {
                present.retain(|_, until| *until > now);
            }
            present.insert(user.id, now + ldap.recheck());
        } else {
            present.remove(&user.id);
            tracing::info!(user = %user.name, "no longer in the directory; access refused");
        }
        Ok(found)
    }

    /// For a web session: is the account still allowed in (enabled, and for a directory
    /// account, still in the directory)?
    pub async fn still_allowed(&self, user: &User) -> Result<bool, AuthError> {
        if user.disabled {
            return Ok(false);
        }
        self.still_in_directory(user).await
    }

    /// The directory path: a cached success, or a bind as the person; provisions a local
    /// account on the first success.
    async fn via_directory(
        &self,
        ldap: &crate::directory::LdapDirectory,
        known: Option<User>,
        creds: &Credentials,
    ) -> Result<Option<Authenticated>, AuthError> {
        if let Some(u) = &known {
            let key = self.cache.key_for(u, "ldap", &creds.password);
            if self.cache.hit(&key) {
                if !self.still_in_directory(u).await? {
                    return Ok(None);
                }
                return Ok(Some(Authenticated {
                    user: u.clone(),
                    scope: Scope::All,
                }));
            }
        }
        let Some(person) = ldap.verify(&creds.username, &creds.password).await? else {
            return Ok(None);
        };
        let Some(user) = provision(&self.store, &person).await? else {
            return Ok(None);
        };
        if user.disabled || user.password_hash.is_some() {
            // A local account of that name keeps its own password.
            return Ok(None);
        }
        self.cache
            .insert(self.cache.key_for(&user, "ldap", &creds.password));
        // The bind just proved they are there.
        self.present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.id, Instant::now() + ldap.recheck());
        Ok(Some(Authenticated {
            user,
            scope: Scope::All,
        }))
    }

    /// The server key app passwords are hashed under.
    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// Use the server key app passwords were hashed under.
    pub fn with_key(mut self, key: ServerKey) -> Self {
        self.key = key;
        self
    }

    /// An app password of `user`, if `password` is one of theirs and still valid.
    async fn app_password(&self, user: &User, password: &str) -> Result<Option<Scope>, AuthError> {
        let Some(lookup) = app_password::lookup_of(password) else {
            return Ok(None);
        };
        let Some(ap) = self.store.app_password_by_lookup(lookup).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if ap.user != user.id
            || !self.key.verify(password, &ap.hash)
            || ap.expires_at.is_some_and(|e| e <= now)
        {
            return Ok(None);
        }
        // "Last used" to the minute is enough, and spares a write on every request.
        if ap.last_used_at.is_none_or(|t| now - t >= 60) {
            self.store.touch_app_password(ap.id, now).await?;
        }
        Ok(Some(Scope::parse(&ap.scope).unwrap_or(Scope::CalDav)))
    }

    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Authenticator for LocalAuthenticator {
    async fn authenticate(&self, creds: &Credentials) -> Result<Option<Authenticated>, AuthError> {
        if creds.password.is_empty() {
            return Ok(None);
        }
        let known = self.store.user_by_name(&creds.username).await?;
        if let Some(user) = &known {
            if user.disabled {
                return Ok(None);
            }
            if let Some(scope) = self.app_password(user, &creds.password).await? {
                if !self.still_in_directory(user).await? {
                    return Ok(None);
                }
                return Ok(Some(Authenticated {
                    user: user.clone(),
                    scope,
                }));
            }
        }
        for backend in &self.backends {
            let found = match (backend, &self.ldap) {
                (PasswordBackend::Local, _) => self.local(known.as_ref(), creds).await?,
                (PasswordBackend::Ldap, Some(ldap))
                    if known.as_ref().is_none_or(|u| u.password_hash.is_none()) =>
                {
                    // Boxed: an LDAP bind's future is kilobytes, and inline it would make
                    // every request's future that size, cache hits included.
                    Box::pin(self.via_directory(ldap, known.clone(), creds)).await?
                }
                (PasswordBackend::Ldap, _) => None,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// A hash of a random password, made once with the current parameters: a login for a name
/// that does not exist verifies against it, so it takes as long as a wrong password for a
/// name that does (0.4 ms against 25 ms told which names exist).
fn decoy_hash() -> Option<&'static str> {
    static DECOY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let random: [u8; 16] = rand::random();
            hash_password(&hex::encode(random)).ok()
        })
        .as_deref()
}

impl LocalAuthenticator {
    /// Spend what a password check costs, through the same queue, and learn nothing.
    async fn equal_time(&self) {
        let Ok(_slot) = self.hashing.acquire().await else {
            return;
        };
        let _ = tokio::task::spawn_blocking(|| {
            if let Some(h) = decoy_hash() {
                verify_password("not the password", h);
            }
        })
        .await;
    }

    /// The account's own argon2id password.
    async fn local(
        &self,
        known: Option<&User>,
        creds: &Credentials,
    ) -> Result<Option<Authenticated>, AuthError> {
        let Some(user) = known.cloned() else {
            self.equal_time().await;
            return Ok(None);
        };
        let Some(hash) = user.password_hash.clone() else {
            return Ok(None);
        };
        let key = self.cache.key_for(&user, &hash, &creds.password);
        if self.cache.hit(&key) {
            return Ok(Some(Authenticated {
                user,
                scope: Scope::All,
            }));
        }
        // The semaphore is never closed; were it, refusing the login is the safe answer.
        let Ok(_slot) = self.hashing.acquire().await else {
            return Ok(None);
        };
        // Another request may have verified the same credential while this one waited.
        if self.cache.hit(&key) {
            return Ok(Some(Authenticated {
                user,
                scope: Scope::All,
            }));
        }
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let password = creds.password.clone();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        if ok {
            self.cache.insert(key);
            Ok(Some(Authenticated {
                user,
                scope: Scope::All,
            }))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let c = Credentials::from_basic_header("Basic YWxpY2U6czNjcjN0OmM=").unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.password, "s3cr3t:c");
        assert!(Credentials::from_basic_header("Bearer abc").is_none());
        assert!(Credentials::from_basic_header("Basic !!!").is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    /// A file-backed store with one user, ann, whose password is "pw".
    async fn store_with_ann() -> (tempfile::TempDir, Store, User) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let store = Store::open(&url).await.unwrap();
        let u = store
            .create_user(crate::store::NewUser {
                name: "ann".into(),
                password_hash: Some(hash_password("pw").unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        (dir, store, u)
    }

    #[tokio::test]
    async fn verifications_are_cached_and_invalidated_by_a_new_hash() {
        let (_dir, store, u) = store_with_ann().await;
        let auth = LocalAuthenticator::new(store.clone(), Duration::from_secs(60));
        let good = Credentials {
            username: "ann".into(),
            password: "pw".into(),
        };
        let bad = Credentials {
            username: "ann".into(),
            password: "nope".into(),
        };
        let empty = Credentials {
            username: "ann".into(),
            password: String::new(),
        };
        for _ in 0..100 {
            assert!(auth.authenticate(&good).await.unwrap().is_some());
        }
        assert_eq!(
            auth.verifications(),
            1,
            "a sync of 100 requests costs one argon2 run"
        );
        assert!(auth.authenticate(&bad).await.unwrap().is_none());
        assert!(auth.authenticate(&bad).await.unwrap().is_none());
        assert_eq!(auth.verifications(), 3, "failures are never cached");
        assert!(auth.authenticate(&empty).await.unwrap().is_none());
        assert_eq!(
            auth.verifications(),
            3,
            "empty passwords are refused before hashing"
        );
        store
            .set_password(u.id, &hash_password("pw2").unwrap())
            .await
            .unwrap();
        assert!(
            auth.authenticate(&good).await.unwrap().is_none(),
            "old password stops at once"
        );
    }

    /// An app password that expires in a day works until the clock passes that day: time
    /// comes from the clock port, held still here and moved by hand.
    #[tokio::test]
    async fn an_app_password_expires_by_the_clock() {
        let (_dir, store, u) = store_with_ann().await;
        use crate::clock::Clock as _;
        let clock = crate::clock::ManualClock::at(1_800_000_000);
        let key = ServerKey::random();
        let auth = LocalAuthenticator::new(store.clone(), Duration::from_secs(60))
            .with_key(key.clone())
            .with_clock(std::sync::Arc::new(clock.clone()));
        let (password, _) = app_password::create(
            &store,
            &key,
            &u,
            "Phone",
            Scope::CalDav,
            Some(1),
            clock.now(),
        )
        .await
        .unwrap();
        let creds = Credentials {
            username: "ann".into(),
            password,
        };
        assert!(auth.authenticate(&creds).await.unwrap().is_some());
        clock.advance(86_400 - 60);
        assert!(
            auth.authenticate(&creds).await.unwrap().is_some(),
            "still within its day"
        );
        clock.advance(120);
        assert!(
            auth.authenticate(&creds).await.unwrap().is_none(),
            "expired by the clock"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins_share_one_verification() {
        let (_dir, store, _) = store_with_ann().await;
        let auth = std::sync::Arc::new(LocalAuthenticator::new(
            store.clone(),
            Duration::from_secs(60),
        ));
        // Fifty clients reconnecting at once with the same password.
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move {
                    let creds = Credentials {
                        username: "ann".into(),
                        password: "pw".into(),
                    };
                    auth.authenticate(&creds).await.unwrap().is_some()
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap(), "every client signs in");
        }
        assert!(
            auth.verifications() as usize <= hashing_slots(),
            "{} argon2 runs for one credential; at most one per slot may start before the \
             first result is cached",
            auth.verifications()
        );
    }

    #[test]
    fn argon2_round_trip() {
        let h = hash_password("pw").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(verify_password("pw", &h));
        assert!(!verify_password("pW", &h));
    }

    /// Hashes stored with the earlier setting (the crate's default, 19 MiB) still log in.
    #[test]
    fn argon2_hashes_of_other_settings_still_verify() {
        let old = Argon2::default().hash_password(b"pw").unwrap().to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify_password("pw", &old));
        assert!(!verify_password("pw2", &old));
    }
}
