//! Brute-force protection that an outsider cannot turn against the owner.
//!
//! Every password attempt takes a slot *before* the password is checked (`LoginLimiter::begin`,
//! under one lock), so parallel guesses are counted as they arrive, not after the hash queue
//! has evaluated them; a success gives its slot back. Slots are counted in a sliding window:
//! - per (user name, client address): the owner's own typos, and one attacker on one account;
//! - per client address: one attacker spraying many accounts;
//! - per user name from clients not known to be the owner's: many addresses on one account.
//!
//! Slots are per distinct credential: concurrent or repeated attempts with the same password
//! (a client opening several connections, or retrying a saved wrong password) share one slot,
//! up to `MAX_JOINED` in flight, so a client's parallel requests are not mistaken for
//! guessing, and a guess only counts once however often it is sent. The credential is held
//! only as a 64-bit keyed hash, in memory, under a key made at start.
//!
//! A client is known for a user once it logged in as them (`KNOWN_FOR`): the per-user limit
//! never applies to it, and app passwords (256 random bits, not guessable) never meet the
//! per-user limit either. So failures from elsewhere can slow guessing at one account without
//! locking out the devices that already work.
//!
//! Kept in memory per instance: with several instances the effective limit is that many times
//! higher, which still turns an online guessing attack from millions of tries into hundreds.
//!
//! Must never: grow without bound (the tables are capped and pruned); check a password
//! before its slot is taken.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
// Monotonic, and paused with tokio's test clock.
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    /// Attempts per (user, address).
    pub per_user_address: usize,
    /// Attempts per address, whatever the user.
    pub per_address: usize,
    /// Attempts per user from clients not known to be theirs.
    pub per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_secs(15 * 60),
            per_user_address: 10,
            per_address: 50,
            per_user: 100,
        }
    }
}

/// How long a successful login keeps its client known.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

const MAX_KEYS: usize = 100_000;

/// Attempts with one credential that may be in flight at once (beyond, 429).
const MAX_JOINED: u32 = 32;

/// One distinct credential tried within the window.
struct Slot {
    at: Instant,
    fingerprint: u64,
    in_flight: u32,
    failed: bool,
}

/// Tables are keyed by a keyed hash of what they count (user, address, or both), so a
/// request allocates no key.
#[derive(Default)]
struct Table(HashMap<u64, VecDeque<Slot>>);

enum Taken {
    New,
    Joined,
}

impl Table {
    fn prune(&mut self, key: u64, window: Duration, now: Instant) {
        if let Some(q) = self.0.get_mut(&key) {
            // Failed credentials leave when the window moves on; unsettled ones stay.
            q.retain(|s| s.in_flight > 0 || now.duration_since(s.at) < window);
        }
    }

    /// Take a slot for `fingerprint` under `key`, or join the one it already has; `Err` with
    /// the wait when `limit` distinct credentials are counted or too many joined.
    fn take(
        &mut self,
        key: u64,
        fingerprint: u64,
        limit: usize,
        window: Duration,
        now: Instant,
    ) -> Result<Taken, Duration> {
        self.prune(key, window, now);
        if self.0.len() >= MAX_KEYS && !self.0.contains_key(&key) {
            self.0.retain(|_, q| !q.is_empty());
            if self.0.len() >= MAX_KEYS {
                self.0.retain(|_, q| q.iter().any(|s| s.in_flight > 0));
            }
        }
        let q = self.0.entry(key).or_default();
        let wait = |q: &VecDeque<Slot>| {
            q.iter()
                .map(|s| window.saturating_sub(now.duration_since(s.at)))
                .min()
                .unwrap_or(window)
        };
        if let Some(s) = q.iter_mut().find(|s| s.fingerprint == fingerprint) {
            if s.in_flight >= MAX_JOINED {
                return Err(Duration::from_secs(1));
            }
            s.in_flight += 1;
            s.at = now;
            return Ok(Taken::Joined);
        }
        if q.len() >= limit {
            return Err(wait(q));
        }
        q.push_back(Slot {
            at: now,
            fingerprint,
            in_flight: 1,
            failed: false,
        });
        Ok(Taken::New)
    }

    fn settle(&mut self, key: u64, fingerprint: u64, outcome: Outcome) {
        let Some(q) = self.0.get_mut(&key) else {
            return;
        };
        if let Some(i) = q.iter().position(|s| s.fingerprint == fingerprint) {
            let s = &mut q[i];
            s.in_flight = s.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Succeeded => {
                    q.remove(i);
                }
                Outcome::Failed => s.failed = true,
                Outcome::Abandoned if !s.failed && s.in_flight == 0 => {
                    q.remove(i);
                }
                Outcome::Abandoned => {}
            }
        }
        if q.is_empty() {
            self.0.remove(&key);
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Succeeded,
    Failed,
    Abandoned,
}

#[derive(Default)]
struct Tables {
    pairs: Table,
    addresses: Table,
    users: Table,
    /// (user, address) pairs that logged in, with when.
    known: HashMap<u64, Instant>,
}

pub struct LoginLimiter {
    limits: Limits,
    tables: Mutex<Tables>,
    /// Keys the credential fingerprints; made at start, never stored.
    hasher: std::collections::hash_map::RandomState,
}

/// Whether the secret presented is an app password (never subject to the per-user limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    Password,
    AppPassword,
}

/// A slot taken for one attempt. `succeeded` gives it back; `failed` keeps it counted;
/// dropping it unsettled (the backend failed) gives it back too.
pub struct Attempt<'l> {
    limiter: &'l LoginLimiter,
    fingerprint: u64,
    keys: Keys,
    settled: bool,
}

struct Keys {
    pair: u64,
    address: Option<u64>,
    user: Option<u64>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            tables: Mutex::new(Tables::default()),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Take a slot for an attempt to log in as `user` with `password` from `addr`, or
    /// `Err(retry_after)` when one of the limits that apply is reached.
    pub fn begin(
        &self,
        user: &str,
        password: &str,
        addr: Option<IpAddr>,
        secret: Secret,
    ) -> Result<Attempt<'_>, Duration> {
        use std::hash::BuildHasher as _;
        let now = Instant::now();
        let l = self.limits;
        let user = user.to_lowercase();
        let fingerprint = self.hasher.hash_one((0u8, &user, password));
        let pair = self.hasher.hash_one((1u8, &user, addr));
        let address = addr.map(|a| self.hasher.hash_one((2u8, a)));
        let user_key = self.hasher.hash_one((3u8, &user));
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let known = t
            .known
            .get(&pair)
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
        let per_user = !known && secret == Secret::Password;
        // Each table in turn; what was taken is given back if a later one refuses.
        t.pairs
            .take(pair, fingerprint, l.per_user_address, l.window, now)?;
        if let Some(a) = address
            && let Err(wait) = t
                .addresses
                .take(a, fingerprint, l.per_address, l.window, now)
        {
            t.pairs.settle(pair, fingerprint, Outcome::Abandoned);
            return Err(wait);
        }
        if per_user
            && let Err(wait) = t
                .users
                .take(user_key, fingerprint, l.per_user, l.window, now)
        {
            t.pairs.settle(pair, fingerprint, Outcome::Abandoned);
            if let Some(a) = address {
                t.addresses.settle(a, fingerprint, Outcome::Abandoned);
            }
            return Err(wait);
        }
        Ok(Attempt {
            limiter: self,
            fingerprint,
            keys: Keys {
                pair,
                address,
                user: per_user.then_some(user_key),
            },
            settled: false,
        })
    }

    fn settle(&self, fingerprint: u64, keys: &Keys, outcome: Outcome) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        t.pairs.settle(keys.pair, fingerprint, outcome);
        if let Some(a) = keys.address {
            t.addresses.settle(a, fingerprint, outcome);
        }
        if let Some(u) = keys.user {
            t.users.settle(u, fingerprint, outcome);
        }
    }
}

impl Attempt<'_> {
    /// The password was right: the slot is given back and the client becomes known.
    pub fn succeeded(mut self) {
        self.settled = true;
        let now = Instant::now();
        let mut t = self
            .limiter
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let keys = &self.keys;
        t.pairs
            .settle(keys.pair, self.fingerprint, Outcome::Succeeded);
        if let Some(a) = keys.address {
            t.addresses.settle(a, self.fingerprint, Outcome::Succeeded);
        }
        if let Some(u) = keys.user {
            t.users.settle(u, self.fingerprint, Outcome::Succeeded);
        }
        if t.known.len() >= MAX_KEYS && !t.known.contains_key(&keys.pair) {
            t.known.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            if t.known.len() >= MAX_KEYS {
                t.known.clear();
            }
        }
        t.known.insert(keys.pair, now);
    }

    /// The password was wrong: the slot stays counted for the window.
    pub fn failed(mut self) {
        self.settled = true;
        self.limiter
            .settle(self.fingerprint, &self.keys, Outcome::Failed);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter
                .settle(self.fingerprint, &self.keys, Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(Limits {
            window: Duration::from_secs(60),
            per_user_address: 3,
            per_address: 5,
            per_user: 4,
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn slots_are_taken_before_the_check_so_parallel_guesses_count() {
        let l = limiter();
        // Three attempts in flight at once, none settled yet: the fourth is refused.
        let held: Vec<_> = (0..3)
            .map(|i| {
                l.begin(
                    "Ann",
                    &format!("guess {i}"),
                    ip("10.0.0.1"),
                    Secret::Password,
                )
                .expect("slot")
            })
            .collect();
        assert!(
            l.begin("ann", "guess 3", ip("10.0.0.1"), Secret::Password)
                .is_err()
        );
        for a in held {
            a.failed();
        }
        assert!(
            l.begin("ann", "guess 4", ip("10.0.0.1"), Secret::Password)
                .is_err()
        );
    }

    #[test]
    fn a_success_gives_its_slot_back() {
        let l = limiter();
        for _ in 0..10 {
            l.begin("ann", "right", ip("10.0.0.1"), Secret::Password)
                .expect("slot")
                .succeeded();
        }
    }

    #[test]
    fn one_credential_takes_one_slot_however_often_it_is_sent() {
        let l = limiter();
        // A client's parallel requests with its one password, before any has been checked.
        let joined: Vec<_> = (0..MAX_JOINED)
            .map(|_| {
                l.begin("ann", "pw", ip("10.0.0.1"), Secret::Password)
                    .expect("joined")
            })
            .collect();
        assert!(
            l.begin("ann", "pw", ip("10.0.0.1"), Secret::Password)
                .is_err()
        );
        for a in joined {
            a.failed();
        }
        // A saved wrong password retried counts once: two other guesses still fit.
        for g in ["pw", "pw", "other", "third"] {
            l.begin("ann", g, ip("10.0.0.1"), Secret::Password)
                .expect("slot")
                .failed();
        }
        assert!(
            l.begin("ann", "fourth", ip("10.0.0.1"), Secret::Password)
                .is_err()
        );
    }

    #[test]
    fn per_address_limits_spraying() {
        let l = limiter();
        for u in ["a", "b", "c", "d", "e"] {
            l.begin(u, "x", ip("10.0.0.9"), Secret::Password)
                .expect("slot")
                .failed();
        }
        assert!(l.begin("f", "x", ip("10.0.0.9"), Secret::Password).is_err());
        assert!(l.begin("f", "x", ip("10.0.0.8"), Secret::Password).is_ok());
    }

    #[test]
    fn outsiders_cannot_lock_out_known_devices_or_app_passwords() {
        let l = limiter();
        l.begin("ann", "right", ip("192.0.2.1"), Secret::Password)
            .expect("slot")
            .succeeded();
        for i in 0..10 {
            let guess = format!("guess {i}");
            if let Ok(a) = l.begin(
                "ann",
                &guess,
                ip(&format!("198.51.100.{i}")),
                Secret::Password,
            ) {
                a.failed();
            }
        }
        // A new address with a password meets the per-user limit...
        assert!(
            l.begin("ann", "right", ip("203.0.113.5"), Secret::Password)
                .is_err()
        );
        // ...but the device that already worked, and app passwords, do not.
        assert!(
            l.begin("ann", "right", ip("192.0.2.1"), Secret::Password)
                .is_ok()
        );
        assert!(
            l.begin("ann", "cvp_x", ip("203.0.113.5"), Secret::AppPassword)
                .is_ok()
        );
    }

    #[test]
    fn an_unsettled_attempt_is_not_counted() {
        let l = limiter();
        for i in 0..10 {
            drop(
                l.begin("ann", &format!("g{i}"), ip("10.0.0.1"), Secret::Password)
                    .expect("slot"),
            );
        }
    }
}
