//! IMAP with a person's vaulted password: a login to verify a binding, and the unread count
//! of their inbox (`STATUS INBOX (UNSEEN)`), for the launcher's mail reminder. Read-only: no
//! mailbox is selected, so no flag changes.
//!
//! `imaps://` speaks TLS from the first byte (RFC 8314), the server's certificate checked
//! against the bridge's roots (`proxy::tls`) and the system's host name.
//!
//! Must never: send a password over plain IMAP to anything but a loopback address (the
//! registry refuses such a system), or wait more than the timeout on a slow server.

use std::time::Duration;

use crate::bridge::systems::System;
use crate::bridge::{LoginCheck, Unread};
use crate::crypto::Secret;

use super::tls::Stream;

/// Whether the system's address is `imaps`, its host and port (`imap://HOST[:PORT]`,
/// 143 by default; `imaps://`, 993).
fn address(system: &System) -> Option<(bool, String, u16)> {
    let (scheme, rest) = system.cfg.url.split_once("://")?;
    let tls = scheme.eq_ignore_ascii_case("imaps");
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = super::host_port(authority, if tls { 993 } else { 143 })?;
    Some((tls, host.to_string(), port))
}

/// Log in as `username` and, with `count`, read the inbox's unread count.
pub async fn session(
    system: &System,
    username: &str,
    password: &Secret,
    count: bool,
    timeout: Duration,
    tls: &tokio_rustls::TlsConnector,
) -> Unread {
    let Some((secure, host, port)) = address(system) else {
        return Unread::Unreachable("the system's address is not imap(s)://HOST:PORT".into());
    };
    let Ok(password) = std::str::from_utf8(password.expose()) else {
        return Unread::Refused;
    };
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|_| Unread::Unreachable("the mail server could not be reached".into()))?;
        let stream = if secure {
            let s = super::tls::wrap(tls, &host, tcp).await.map_err(|e| {
                tracing::warn!(system = %system.cfg.name, error = %e, "TLS with a mail server failed");
                Unread::Unreachable("TLS with the mail server failed".into())
            })?;
            Stream::Tls(Box::new(s))
        } else {
            Stream::Plain(tcp)
        };
        let mut client = async_imap::Client::new(stream);
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
    tls: &tokio_rustls::TlsConnector,
) -> LoginCheck {
    match session(system, username, password, false, timeout, tls).await {
        Unread::Count(_) => LoginCheck::Accepted,
        Unread::Refused => LoginCheck::Refused,
        Unread::Unreachable(why) => LoginCheck::Unreachable(why),
    }
}
