//! Nextcloud Login Flow v2, which DAVx5 (and Nextcloud-aware clients) use to set an account up
//! with one tap: the client starts a flow, opens the returned login URL in a browser, and polls
//! with a secret token; the person signs in there and grants access, which makes an app
//! password for the client; the next poll returns it, once.
//!
//! Flows live in this process's memory for 20 minutes at most (a client polls the instance it
//! started on; with several instances, route `/index.php/login/v2` sticky). The poll token is
//! 256 random bits, the flow id in the URL another 256, and each form carries a per-flow
//! CSRF token.
//!
//! Must never: hand out a password to anyone but the poller holding the token, more than once;
//! keep a finished flow; trust a `next` or return URL (there is none).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
// Monotonic, and paused with tokio's test clock.
use tokio::time::Instant;

use base64::Engine as _;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

const LIFETIME: Duration = Duration::from_secs(20 * 60);
const MAX_FLOWS: usize = 10_000;
/// Flows one client address may have pending at once.
const PER_ADDRESS: usize = 5;

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What a granted flow hands to its poller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub login_name: String,
    pub app_password: String,
}

struct Flow {
    address: Option<std::net::IpAddr>,
    poll_token: String,
    csrf: String,
    client: String,
    started: Instant,
    grant: Option<Grant>,
}

#[derive(Default)]
pub struct LoginFlows(Mutex<HashMap<String, Flow>>);

/// A started flow: the id in the login URL, and the poll token.
pub struct Started {
    pub id: String,
    pub poll_token: String,
}

impl LoginFlows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flow>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a flow for a client (its name, from User-Agent, is shown on the grant page)
    /// at `address`. `None` when that address has `PER_ADDRESS` flows pending. When the
    /// table is full the oldest ungranted flow makes room, so a flood cannot keep everyone
    /// else from starting one.
    pub fn start(&self, client: &str, address: Option<std::net::IpAddr>) -> Option<Started> {
        let mut flows = self.lock();
        flows.retain(|_, f| f.started.elapsed() < LIFETIME);
        if address.is_some()
            && flows.values().filter(|f| f.address == address).count() >= PER_ADDRESS
        {
            return None;
        }
        if flows.len() >= MAX_FLOWS {
            let oldest = flows
                .iter()
                .filter(|(_, f)| f.grant.is_none())
                .min_by_key(|(_, f)| f.started)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    flows.remove(&id);
                }
                None => return None,
            }
        }
        let id = random_token();
        let poll_token = random_token();
        let client: String = client
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        flows.insert(
            id.clone(),
            Flow {
                address,
                poll_token: poll_token.clone(),
                csrf: random_token(),
                client,
                started: Instant::now(),
                grant: None,
            },
        );
        Some(Started { id, poll_token })
    }

    /// The client name and CSRF token of a live, ungranted flow.
    pub fn page(&self, id: &str) -> Option<(String, String)> {
        let flows = self.lock();
        let f = flows.get(id)?;
        (f.started.elapsed() < LIFETIME && f.grant.is_none())
            .then(|| (f.client.clone(), f.csrf.clone()))
    }

    /// Does `csrf` belong to the live flow `id`?
    pub fn csrf_ok(&self, id: &str, csrf: &str) -> bool {
        self.page(id)
            .is_some_and(|(_, c)| bool::from(c.as_bytes().ct_eq(csrf.as_bytes())))
    }

    pub fn grant(&self, id: &str, grant: Grant) -> bool {
        let mut flows = self.lock();
        match flows.get_mut(id) {
            Some(f) if f.grant.is_none() && f.started.elapsed() < LIFETIME => {
                f.grant = Some(grant);
                true
            }
            _ => false,
        }
    }

    /// The grant for this poll token, once; the flow is gone afterwards.
    pub fn poll(&self, token: &str) -> Option<Grant> {
        let mut flows = self.lock();
        let id = flows
            .iter()
            .find(|(_, f)| {
                f.started.elapsed() < LIFETIME
                    && bool::from(f.poll_token.as_bytes().ct_eq(token.as_bytes()))
            })
            .map(|(id, _)| id.clone())?;
        let granted = flows.get(&id).is_some_and(|f| f.grant.is_some());
        if !granted {
            return None;
        }
        flows.remove(&id).and_then(|f| f.grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_handed_out_once_to_the_token_holder() {
        let flows = LoginFlows::default();
        let s = flows.start("DAVx5/4.4\u{7}", None).expect("started");
        let (client, csrf) = flows.page(&s.id).expect("page");
        assert_eq!(client, "DAVx5/4.4");
        assert!(flows.csrf_ok(&s.id, &csrf) && !flows.csrf_ok(&s.id, "forged"));
        assert_eq!(flows.poll(&s.poll_token), None, "not granted yet");
        let g = Grant {
            login_name: "ann".into(),
            app_password: "cvp_x".into(),
        };
        assert!(flows.grant(&s.id, g.clone()));
        assert!(!flows.grant(&s.id, g.clone()), "granted once");
        assert_eq!(flows.poll("wrong"), None);
        assert_eq!(flows.poll(&s.poll_token), Some(g));
        assert_eq!(flows.poll(&s.poll_token), None, "handed out once");
        assert!(flows.page(&s.id).is_none());
    }

    #[test]
    fn a_flood_cannot_keep_others_from_starting() {
        let flows = LoginFlows::default();
        let flooder = Some("198.51.100.7".parse().expect("ip"));
        for _ in 0..PER_ADDRESS {
            assert!(flows.start("x", flooder).is_some());
        }
        assert!(flows.start("x", flooder).is_none(), "per address");
        // A full table (many addresses) still lets a new flow in, in place of the oldest.
        for i in 0..MAX_FLOWS {
            let a = std::net::IpAddr::from(std::net::Ipv6Addr::from(i as u128 + 1));
            flows.start("x", Some(a)).expect("room");
        }
        let me = flows
            .start("DAVx5", Some("192.0.2.1".parse().expect("ip")))
            .expect("started");
        assert!(flows.page(&me.id).is_some());
        assert!(flows.lock().len() <= MAX_FLOWS);
    }
}
