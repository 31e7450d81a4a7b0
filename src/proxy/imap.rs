//! IMAP with a person's vaulted password: a login to verify a binding, and the unread count
//! of their inbox (`STATUS INBOX (UNSEEN)`), for the launcher's mail reminder. Read-only: no
//! mailbox is selected, so no flag changes.
//!
//! Must never: send a password over plain IMAP to anything but a loopback address (the
//! registry refuses such a system), or wait more than the timeout on a slow server.

use std::time::Duration;

use crate::bridge::systems::System;
use crate::bridge::{LoginCheck, Unread};
use crate::crypto::Secret;

/// `imap://HOST:PORT` of the system.
fn address(system: &System) -> Option<(String, u16)> {
    let rest = system.cfg.url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 143),
    };
    Some((host.trim_matches(['[', ']']).to_string(), port))
}

/// Log in as `username` and, with `count`, read the inbox's unread count.
pub async fn session(
    system: &System,
    username: &str,
    password: &Secret,
    count: bool,
    timeout: Duration,
) -> Unread {
    let Some((host, port)) = address(system) else {
        return Unread::Unreachable("the system's address is not imap://HOST:PORT".into());
    };
    let Ok(password) = std::str::from_utf8(password.expose()) else {
        return Unread::Refused;
    };
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|_| Unread::Unreachable("the mail server could not be reached".into()))?;
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .ok()
            .flatten()
            .ok_or_else(|| Unread::Unreachable("the mail server did not greet".into()))?;
        let mut session = match client.login(username, password).await {
            Ok(s) => s,
            Err((async_imap::error::Error::No(_), _)) => return Err(Unread::Refused),
            Err((e, _)) => {
                tracing::warn!(system = %system.cfg.name, error = %e, "an IMAP login failed");
                return Err(Unread::Unreachable(
                    "the mail server failed the login".into(),
                ));
            }
        };
        let n = if count {
            session
                .status("INBOX", "(UNSEEN)")
                .await
                .ok()
                .and_then(|m| m.unseen)
                .ok_or_else(|| Unread::Unreachable("the inbox could not be read".into()))?
        } else {
            0
        };
        let _ = session.logout().await;
        Ok(n)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(n)) => Unread::Count(n),
        Ok(Err(u)) => u,
        Err(_) => Unread::Unreachable("the mail server did not answer in time".into()),
    }
}

/// A binding check: one IMAP login.
pub async fn verify(
    system: &System,
    username: &str,
    password: &Secret,
    timeout: Duration,
) -> LoginCheck {
    match session(system, username, password, false, timeout).await {
        Unread::Count(_) => LoginCheck::Accepted,
        Unread::Refused => LoginCheck::Refused,
        Unread::Unreachable(why) => LoginCheck::Unreachable(why),
    }
}
