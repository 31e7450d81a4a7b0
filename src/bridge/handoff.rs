//! The login proxy's session hand-off between the portal and a system's own host, as
//! oauth2-proxy and Authentik's outposts do it: the portal, where the person is signed in,
//! issues a one-time code for one of its sessions and one system; that system's host redeems
//! it once and sets a host-only cookie of its own, sealed under the server key, that names the
//! portal session. Requests on the system host then ask the store whether that portal session
//! still lives, at most once a clock second for a cookie (`RECHECK_SECONDS`), so signing out
//! of the portal closes every system at once on this instance and within the second on any
//! other on a shared database; any instance can serve any request.
//!
//! No HTTP here: codes and cookie values are strings; the edges carry them.
//!
//! Must never: keep a code in clear, redeem a code twice or for another system, accept a
//! cookie that was not sealed here for this system, or trust a checked session for longer
//! than `RECHECK_SECONDS` (or at all once it was ended here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::auth::ServerKey;
use crate::auth::seal::Sealer;
use crate::bridge::single_flight::SingleFlight;
use crate::store::{BindingStore as _, Handoff, Session, SessionStore as _, Store, User};

/// How long a checked host session is trusted before the store is asked again: within the
/// clock second it was checked in.
pub const RECHECK_SECONDS: i64 = 1;
/// Checked host sessions kept at most (then the stale ones go, or all).
const MAX_RECENT: usize = 10_000;

/// How long a code may wait to be redeemed.
pub const CODE_SECONDS: i64 = 60;
const COOKIE_PURPOSE: &str = "login proxy host session v1";

/// A `next` path that stays on the host it is used on (no `//host`, `/\\host`, scheme, or
/// control character).
pub fn local_path(p: &str) -> Option<&str> {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.len() <= 2048
        && !p.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(p)
}

/// Issues and redeems hand-off codes, and seals the system hosts' cookies.
pub struct Handoffs {
    hash_key: [u8; 32],
    sealer: Sealer,
    /// Host sessions checked recently: by sealed cookie, when, for which system.
    recent: Mutex<HashMap<String, Recent>>,
    /// The cookies being checked now.
    checking: SingleFlight<String>,
    /// Sessions looked up in the store (misses of `recent`), for metrics and tests.
    lookups: std::sync::atomic::AtomicU64,
}

/// A host session as checked at `at`, for `system`.
struct Recent {
    at: i64,
    system: String,
    who: Arc<HostSession>,
}

impl std::fmt::Debug for Handoffs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoffs(<redacted>)")
    }
}

/// A signed-in person on a system host: the portal session and its user.
#[derive(Debug)]
pub struct HostSession {
    pub session: Session,
    pub user: User,
}

impl Handoffs {
    pub fn new(key: &ServerKey) -> Handoffs {
        Handoffs {
            hash_key: key.derive("login proxy handoff code"),
            sealer: Sealer::new(key),
            recent: Mutex::new(HashMap::new()),
            checking: SingleFlight::default(),
            lookups: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn code_hash(&self, code: &str) -> String {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key).expect("HMAC takes any key");
        m.update(code.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// A code that hands portal session `session` to `system`'s host, which then sends the
    /// person to `next` (a local path, already checked).
    pub async fn issue(
        &self,
        store: &Store,
        session: i64,
        system: &str,
        next: &str,
        now: i64,
    ) -> crate::store::Result<String> {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        store
            .add_handoff(
                &Handoff {
                    code_hash: self.code_hash(&code),
                    session,
                    system: system.to_string(),
                    next: next.to_string(),
                    expires_at: now + CODE_SECONDS,
                },
                now,
            )
            .await?;
        Ok(code)
    }

    /// Redeem `code` on `system`'s host: the hand-off, once. A code for another system is
    /// used up all the same (it was shown to the wrong host).
    pub async fn redeem(
        &self,
        store: &Store,
        code: &str,
        system: &str,
        now: i64,
    ) -> crate::store::Result<Option<Handoff>> {
        if code.is_empty() || code.len() > 128 {
            return Ok(None);
        }
        Ok(store
            .take_handoff(&self.code_hash(code), now)
            .await?
            .filter(|h| h.system == system))
    }

    /// The cookie value of a system host's session: portal session `session`, for `system`.
    pub fn host_cookie(&self, session: i64, system: &str) -> String {
        self.sealer
            .seal(COOKIE_PURPOSE, format!("{session}\n{system}").as_bytes())
    }

    /// The live portal session behind a system host's cookie, if the cookie was sealed here
    /// for this system and the session is still live (not ended, not expired, its user not
    /// disabled, and not waiting for the identity provider to confirm it again: the portal
    /// does that, so the person is sent there).
    pub async fn host_session(
        &self,
        store: &Store,
        cookie: &str,
        system: &str,
        now: i64,
    ) -> crate::store::Result<Option<Arc<HostSession>>> {
        if let Some(who) = self.recently_checked(cookie, system, now) {
            return Ok(Some(who));
        }
        // One look-up for the requests that missed together; the rest find its answer.
        let _turn = self.checking.turn(&cookie.to_string()).await;
        if let Some(who) = self.recently_checked(cookie, system, now) {
            return Ok(Some(who));
        }
        let Some(plain) = self.sealer.open(COOKIE_PURPOSE, cookie) else {
            return Ok(None);
        };
        let Some((id, sys)) = std::str::from_utf8(&plain)
            .ok()
            .and_then(|t| t.split_once('\n'))
            .and_then(|(id, sys)| Some((id.parse::<i64>().ok()?, sys.to_string())))
        else {
            return Ok(None);
        };
        if sys != system {
            return Ok(None);
        }
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some((session, user)) = store.session_by_id(id, now).await? else {
            return Ok(None);
        };
        if user.disabled || session.refresh_due.is_some_and(|d| d <= now) {
            return Ok(None);
        }
        let who = Arc::new(HostSession { session, user });
        self.remember(cookie, system, now, who.clone());
        Ok(Some(who))
    }

    fn recently_checked(&self, cookie: &str, system: &str, now: i64) -> Option<Arc<HostSession>> {
        let recent = self.recent.lock().ok()?;
        let r = recent.get(cookie)?;
        (r.system == system && now - r.at < RECHECK_SECONDS && r.at <= now).then(|| r.who.clone())
    }

    fn remember(&self, cookie: &str, system: &str, now: i64, who: Arc<HostSession>) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        if recent.len() >= MAX_RECENT {
            recent.retain(|_, r| now - r.at < RECHECK_SECONDS);
            if recent.len() >= MAX_RECENT {
                recent.clear();
            }
        }
        recent.insert(
            cookie.to_string(),
            Recent {
                at: now,
                system: system.to_string(),
                who,
            },
        );
    }

    /// Sessions looked up in the store so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Portal session `id` has ended: no system host trusts it any longer.
    pub fn forget_session(&self, id: i64) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.retain(|_, r| r.who.session.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewSession, NewUser, UserStore as _};

    /// A check is trusted within its clock second only; a session ended here is not trusted
    /// at all; a cookie for another system or not sealed here opens nothing.
    #[tokio::test]
    async fn a_checked_session_is_trusted_for_its_second_only() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("h.db").display()))
            .await
            .expect("store");
        let ann = store
            .create_user(NewUser {
                name: "ann".into(),
                ..Default::default()
            })
            .await
            .expect("user");
        let new = |token: &str| NewSession {
            token_hash: token.into(),
            user: ann.id,
            expires_at: 10_000,
            id_token: None,
            refresh_sealed: None,
            refresh_due: None,
        };
        let s = store.create_session(new("t1")).await.expect("session");
        let h = Handoffs::new(&ServerKey::random());
        let cookie = h.host_cookie(s.id, "hr");
        let at = |now| h.host_session(&store, &cookie, "hr", now);
        assert_eq!(at(100).await.expect("ok").expect("live").user.name, "ann");
        assert!(
            h.host_session(&store, &cookie, "crm", 100)
                .await
                .expect("ok")
                .is_none()
        );
        assert!(
            h.host_session(&store, "forged", "hr", 100)
                .await
                .expect("ok")
                .is_none()
        );
        // Ended elsewhere (another instance): trusted until the second is over.
        store.delete_session(s.id).await.expect("delete");
        assert!(at(100).await.expect("ok").is_some());
        assert!(at(101).await.expect("ok").is_none());
        // Ended here: not trusted for a moment longer.
        let s = store.create_session(new("t2")).await.expect("session");
        let cookie = h.host_cookie(s.id, "hr");
        assert!(
            h.host_session(&store, &cookie, "hr", 200)
                .await
                .expect("ok")
                .is_some()
        );
        store.delete_session(s.id).await.expect("delete");
        h.forget_session(s.id);
        assert!(
            h.host_session(&store, &cookie, "hr", 200)
                .await
                .expect("ok")
                .is_none()
        );
    }

    /// Fifty requests on one cookie that arrive in a new second together make one look-up in
    /// the store; the rest use its answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_miss_together_look_the_session_up_once() {
        let (_dir, store, _, s) = crate::store::signed_in_store("ann", 10_000).await;
        let h = Arc::new(Handoffs::new(&ServerKey::random()));
        let cookie = h.host_cookie(s.id, "hr");
        for (second, now) in [100, 101].into_iter().enumerate() {
            let burst: Vec<_> = (0..50)
                .map(|_| {
                    let (h, store, cookie) = (h.clone(), store.clone(), cookie.clone());
                    tokio::spawn(async move {
                        h.host_session(&store, &cookie, "hr", now)
                            .await
                            .expect("ok")
                            .is_some()
                    })
                })
                .collect();
            for t in burst {
                assert!(t.await.expect("task"), "each request is signed in");
            }
            assert_eq!(h.lookups(), second as u64 + 1, "one look-up a second");
        }
    }
}
