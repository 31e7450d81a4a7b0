//! Brute-force protection that an outsider cannot turn against the owner.
//!
//! Every password attempt takes a slot *before* the password is checked (`LoginLimiter::begin`,
//! under one lock), so parallel guesses are counted as they arrive, not after the hash queue
//! has evaluated them; a success gives its slot back. Slots are counted in a sliding window:
//! - per (user name, client address): the owner's own typos, and one attacker on one account;
//! - per client address: one attacker spraying many accounts;
//! - per user name from clients not known to be the owner's: many addresses on one account.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

type Slot = (Instant, u64);

#[derive(Default)]
struct Table(HashMap<String, VecDeque<Slot>>);

impl Table {
    fn prune(&mut self, key: &str, window: Duration, now: Instant) -> usize {
        let Some(q) = self.0.get_mut(key) else {
            return 0;
        };
        while q
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            q.pop_front();
        }
        q.len()
    }

    fn wait(&self, key: &str, window: Duration, now: Instant) -> Duration {
        self.0
            .get(key)
            .and_then(|q| q.front())
            .map(|(t, _)| window.saturating_sub(now.duration_since(*t)))
            .unwrap_or(window)
    }

    fn take(&mut self, key: &str, slot: Slot, window: Duration) {
        if self.0.len() >= MAX_KEYS {
            let now = slot.0;
            self.0.retain(|_, q| {
                q.back()
                    .is_some_and(|(t, _)| now.duration_since(*t) < window)
            });
            if self.0.len() >= MAX_KEYS {
                self.0.clear();
            }
        }
        self.0.entry(key.to_string()).or_default().push_back(slot);
    }

    fn give_back(&mut self, key: &str, id: u64) {
        if let Some(q) = self.0.get_mut(key) {
            q.retain(|(_, i)| *i != id);
            if q.is_empty() {
                self.0.remove(key);
            }
        }
    }
}

#[derive(Default)]
struct Tables {
    pairs: Table,
    addresses: Table,
    users: Table,
    /// (user, address) pairs that logged in, with when.
    known: HashMap<String, Instant>,
}

pub struct LoginLimiter {
    limits: Limits,
    tables: Mutex<Tables>,
    next: AtomicU64,
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
    id: u64,
    keys: Keys,
    settled: bool,
}

struct Keys {
    pair: String,
    address: Option<String>,
    user: Option<String>,
}

fn pair_key(user: &str, addr: Option<IpAddr>) -> String {
    match addr {
        Some(a) => format!("{user}\u{0}{a}"),
        None => format!("{user}\u{0}"),
    }
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            tables: Mutex::new(Tables::default()),
            next: AtomicU64::new(0),
        }
    }

    /// Take a slot for an attempt to log in as `user` from `addr`, or `Err(retry_after)`
    /// when one of the limits that apply is reached.
    pub fn begin(
        &self,
        user: &str,
        addr: Option<IpAddr>,
        secret: Secret,
    ) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let l = self.limits;
        let user = user.to_lowercase();
        let pair = pair_key(&user, addr);
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let known = t
            .known
            .get(&pair)
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
        if t.pairs.prune(&pair, l.window, now) >= l.per_user_address {
            return Err(t.pairs.wait(&pair, l.window, now));
        }
        let address = addr.map(|a| a.to_string());
        if let Some(a) = &address
            && t.addresses.prune(a, l.window, now) >= l.per_address
        {
            return Err(t.addresses.wait(a, l.window, now));
        }
        let per_user = !known && secret == Secret::Password;
        if per_user && t.users.prune(&user, l.window, now) >= l.per_user {
            return Err(t.users.wait(&user, l.window, now));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = (now, id);
        t.pairs.take(&pair, slot, l.window);
        if let Some(a) = &address {
            t.addresses.take(a, slot, l.window);
        }
        if per_user {
            t.users.take(&user, slot, l.window);
        }
        Ok(Attempt {
            limiter: self,
            id,
            keys: Keys {
                pair,
                address,
                user: per_user.then_some(user),
            },
            settled: false,
        })
    }

    fn give_back(&self, id: u64, keys: &Keys) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        t.pairs.give_back(&keys.pair, id);
        if let Some(a) = &keys.address {
            t.addresses.give_back(a, id);
        }
        if let Some(u) = &keys.user {
            t.users.give_back(u, id);
        }
    }
}

impl Attempt<'_> {
    /// The password was right: the slot is given back and the client becomes known.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.give_back(self.id, &self.keys);
        let now = Instant::now();
        let mut t = self
            .limiter
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if t.known.len() >= MAX_KEYS {
            t.known.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            if t.known.len() >= MAX_KEYS {
                t.known.clear();
            }
        }
        t.known.insert(self.keys.pair.clone(), now);
    }

    /// The password was wrong: the slot stays counted for the window.
    pub fn failed(mut self) {
        self.settled = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.give_back(self.id, &self.keys);
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
            .map(|_| {
                l.begin("Ann", ip("10.0.0.1"), Secret::Password)
                    .expect("slot")
            })
            .collect();
        assert!(l.begin("ann", ip("10.0.0.1"), Secret::Password).is_err());
        for a in held {
            a.failed();
        }
        assert!(l.begin("ann", ip("10.0.0.1"), Secret::Password).is_err());
    }

    #[test]
    fn a_success_gives_its_slot_back() {
        let l = limiter();
        for _ in 0..10 {
            l.begin("ann", ip("10.0.0.1"), Secret::Password)
                .expect("slot")
                .succeeded();
        }
    }

    #[test]
    fn per_address_limits_spraying() {
        let l = limiter();
        for u in ["a", "b", "c", "d", "e"] {
            l.begin(u, ip("10.0.0.9"), Secret::Password)
                .expect("slot")
                .failed();
        }
        assert!(l.begin("f", ip("10.0.0.9"), Secret::Password).is_err());
        assert!(l.begin("f", ip("10.0.0.8"), Secret::Password).is_ok());
    }

    #[test]
    fn outsiders_cannot_lock_out_known_devices_or_app_passwords() {
        let l = limiter();
        l.begin("ann", ip("192.0.2.1"), Secret::Password)
            .expect("slot")
            .succeeded();
        for i in 0..10 {
            if let Ok(a) = l.begin("ann", ip(&format!("198.51.100.{i}")), Secret::Password) {
                a.failed();
            }
        }
        // A new address with a password meets the per-user limit...
        assert!(l.begin("ann", ip("203.0.113.5"), Secret::Password).is_err());
        // ...but the device that already worked, and app passwords, do not.
        assert!(l.begin("ann", ip("192.0.2.1"), Secret::Password).is_ok());
        assert!(
            l.begin("ann", ip("203.0.113.5"), Secret::AppPassword)
                .is_ok()
        );
    }

    #[test]
    fn an_unsettled_attempt_is_not_counted() {
        let l = limiter();
        for _ in 0..10 {
            drop(
                l.begin("ann", ip("10.0.0.1"), Secret::Password)
                    .expect("slot"),
            );
        }
    }
}
