//! What a person may do on a system, as last checked, kept for a minute: whether they may use
//! it and, for an HTTP Basic system, the credential released from the vault for it. The login
//! proxy keeps one per portal session and system, forward-auth one per person and system; both
//! so release a credential (one vault read, one audit row) once a minute for a person who is
//! using a system, not once a request.
//!
//! The requests that find no grant together make one check (`single_flight`): the rest wait
//! for it and use what it leaves. A check that fails (the store, the vault, no binding) leaves
//! nothing, so the next request checks again.
//!
//! No I/O here: the caller's check reads the store and the vault.
//!
//! Must never: hand out a grant older than `GRANT_SECONDS` or one forgotten, or keep more
//! than `MAX_GRANTS` (the stale go first, then all).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use super::single_flight::SingleFlight;
use crate::crypto::Secret;

/// How long a check stands before the store and the vault are asked again.
pub const GRANT_SECONDS: i64 = 60;
/// Grants kept at most (then the stale ones are dropped, or all).
const MAX_GRANTS: usize = 10_000;

/// A person's Basic credential for a system, shared by the requests of one grant.
pub type BasicCredential = Arc<(Secret, Secret)>;

/// One check's outcome.
#[derive(Clone)]
pub struct Grant {
    /// Whether the person is among those who may use the system.
    pub allowed: bool,
    /// The Basic credential released for it (a Basic system the person may use).
    pub basic: Option<BasicCredential>,
    /// When it was checked (and the credential left the vault).
    pub checked_at: i64,
}

/// The grants of one edge, by its key.
pub struct Grants<K: Eq + Hash + Clone> {
    kept: Mutex<HashMap<K, Grant>>,
    checking: SingleFlight<K>,
}

impl<K: Eq + Hash + Clone> std::fmt::Debug for Grants<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone> Default for Grants<K> {
    fn default() -> Self {
        Grants {
            kept: Mutex::new(HashMap::new()),
            checking: SingleFlight::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Grants<K> {
    /// The grant for `key` checked within `GRANT_SECONDS` of `now`, or else `check`'s (whether
    /// the person may use the system, and the credential released), kept when it succeeds.
    pub async fn get_or_check<E, F, Fut>(&self, key: &K, now: i64, check: F) -> Result<Grant, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(bool, Option<BasicCredential>), E>>,
    {
        if let Some(g) = self.fresh(key, now) {
            return Ok(g);
        }
        let _turn = self.checking.turn(key).await;
        if let Some(g) = self.fresh(key, now) {
            return Ok(g);
        }
        let (allowed, basic) = check().await?;
        let grant = Grant {
            allowed,
            basic,
            checked_at: now,
        };
        self.keep(key.clone(), grant.clone(), now);
        Ok(grant)
    }

    /// Check again at the next request (a new hand-off, a refused or changed credential).
    pub fn forget(&self, key: &K) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.remove(key);
        }
    }

    /// Checks in flight or waiting (for tests and bounds).
    pub fn checking(&self) -> usize {
        self.checking.in_flight()
    }

    fn fresh(&self, key: &K, now: i64) -> Option<Grant> {
        let kept = self.kept.lock().ok()?;
        let g = kept.get(key)?;
        (now - g.checked_at < GRANT_SECONDS && g.checked_at <= now).then(|| g.clone())
    }

    fn keep(&self, key: K, grant: Grant, now: i64) {
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= MAX_GRANTS {
                kept.retain(|_, g| now - g.checked_at < GRANT_SECONDS);
                if kept.len() >= MAX_GRANTS {
                    kept.clear();
                }
            }
            kept.insert(key, grant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grant stands for its minute, then is checked again; a forgotten one at once; a
    /// failed check leaves nothing.
    #[tokio::test]
    async fn a_grant_stands_for_its_minute() {
        let grants = Grants::<u32>::default();
        let checks = std::sync::atomic::AtomicUsize::new(0);
        let check = || async {
            checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>((true, None))
        };
        for now in [100, 101, 100 + GRANT_SECONDS - 1] {
            assert!(
                grants
                    .get_or_check(&1, now, check)
                    .await
                    .expect("ok")
                    .allowed
            );
        }
        assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 1);
        grants
            .get_or_check(&1, 100 + GRANT_SECONDS, check)
            .await
            .expect("ok");
        assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 2);
        grants.forget(&1);
        grants
            .get_or_check(&1, 100 + GRANT_SECONDS, check)
            .await
            .expect("ok");
        assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 3);
        // A failed check is not kept.
        assert!(
            grants
                .get_or_check(&2, 500, || async {
                    Err::<(bool, Option<BasicCredential>), _>("store")
                })
                .await
                .is_err()
        );
        grants.get_or_check(&2, 500, check).await.expect("ok");
        assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert_eq!(grants.checking(), 0);
    }
}
