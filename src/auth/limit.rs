//! Brute-force protection: failed logins are counted per user name and per client address in
//! a sliding window; past the limit, further attempts get 429 until the window moves on,
//! without touching the password hash (so an attacker cannot even spend the server's CPU).
//!
//! Kept in memory per instance: with several instances the effective limit is that many times
//! higher, which still turns an online guessing attack from millions of tries into hundreds.
//!
//! Must never: grow without bound (the tables are capped and pruned).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    pub per_user: usize,
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_secs(15 * 60),
            per_user: 10,
            per_address: 50,
        }
    }
}

const MAX_KEYS: usize = 100_000;

#[derive(Default)]
struct Table(HashMap<String, VecDeque<Instant>>);

impl Table {
    /// When the key may try again, if it is over `limit` now.
    fn blocked(
        &mut self,
        key: &str,
        limit: usize,
        window: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let q = self.0.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= limit {
            q.front()
                .map(|t| window.saturating_sub(now.duration_since(*t)))
        } else {
            None
        }
    }

    fn record(&mut self, key: &str, limit: usize, window: Duration, now: Instant) {
        if self.0.len() >= MAX_KEYS {
            self.0
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if self.0.len() >= MAX_KEYS {
                self.0.clear();
            }
        }
        let q = self.0.entry(key.to_string()).or_default();
        q.push_back(now);
        while q.len() > limit {
            q.pop_front();
        }
    }
}

pub struct LoginLimiter {
    limits: Limits,
    users: Mutex<Table>,
    addresses: Mutex<Table>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> LoginLimiter {
        LoginLimiter {
            limits,
            users: Mutex::new(Table::default()),
            addresses: Mutex::new(Table::default()),
        }
    }

    /// `Err(retry_after)` when this user or address has failed too often lately.
    pub fn check(&self, user: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let l = self.limits;
        let user_key = user.to_lowercase();
        if let Some(d) = self
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .blocked(&user_key, l.per_user, l.window, now)
        {
            return Err(d);
        }
        if let Some(a) = addr
            && let Some(d) = self
                .addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .blocked(&a.to_string(), l.per_address, l.window, now)
        {
            return Err(d);
        }
        Ok(())
    }

    pub fn failed(&self, user: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let l = self.limits;
        self.users.lock().unwrap_or_else(|e| e.into_inner()).record(
            &user.to_lowercase(),
            l.per_user,
            l.window,
            now,
        );
        if let Some(a) = addr {
            self.addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(&a.to_string(), l.per_address, l.window, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_per_user_and_per_address() {
        let l = LoginLimiter::new(Limits {
            window: Duration::from_secs(60),
            per_user: 3,
            per_address: 5,
        });
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check("Ann", Some(a)).is_ok());
            l.failed("Ann", Some(a));
        }
        assert!(l.check("ann", Some(a)).is_err(), "per user, caseless");
        assert!(l.check("bob", Some(a)).is_ok());
        l.failed("bob", Some(a));
        l.failed("carl", Some(a));
        assert!(l.check("dora", Some(a)).is_err(), "per address");
        assert!(l.check("dora", None).is_ok());
    }
}
