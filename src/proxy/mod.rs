//! The bridge's outbound edge: requests to business systems with a person's vaulted
//! credential, only ever to the origins the registry checked.
//!
//! - `LoginVerifier` (the `bridge::Verifier` port): one real login to verify a binding, by
//!   HTTP Basic or by replaying the system's login form (`form`).
//! - `gateway`: the login proxy, every system on a host of its own, signed in as the person.
//! - `imap`: an IMAP login and the inbox's unread count (`MailCounter`), for the mail reminder.
//!
//! Must never: follow a redirect while holding a credential (another origin could collect it),
//! send a credential to an origin the system did not register, or log one.

pub mod form;
pub mod gateway;
pub mod imap;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::bridge::systems::{LoginMethod, System};
use crate::bridge::{LoginCheck, Verifier};
use crate::crypto::Secret;

/// The host (IPv6 without its brackets) and port of an authority `host[:port]` or
/// `[v6][:port]`, `default` when it names none; `None` for anything else.
fn host_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().ok()?),
                None if after.is_empty() => (host, default),
                None => return None,
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default),
        },
    };
    (!host.is_empty()).then_some((host, port))
}

/// The client for the bridge's one-off logins (verification, form replay): never follows a
/// redirect, gives up after `timeout`, trusts `extra_roots` (DER, `[bridge] ca_file`) beside
/// the public roots.
pub fn http_client(
    timeout: Duration,
    extra_roots: &[Vec<u8>],
) -> Result<reqwest::Client, reqwest::Error> {
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout);
    for der in extra_roots {
        client = client.add_root_certificate(reqwest::Certificate::from_der(der)?);
    }
    client.build()
}

/// Checks a credential with one real login: a GET of the system's address with HTTP Basic,
/// or its login form replayed.
pub struct LoginVerifier {
    client: reqwest::Client,
    timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

impl LoginVerifier {
    /// `client` from `http_client`; `tls` trusts the same roots.
    pub fn new(
        client: reqwest::Client,
        timeout: Duration,
        tls: tokio_rustls::TlsConnector,
    ) -> LoginVerifier {
        LoginVerifier {
            client,
            timeout,
            tls,
        }
    }

    async fn basic(&self, system: &System, username: &str, password: &Secret) -> LoginCheck {
        let url = &system.cfg.url;
        let Ok(password) = std::str::from_utf8(password.expose()) else {
            return LoginCheck::Refused;
        };
        // An address that answers without credentials would "accept" any password.
        match self.client.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                return LoginCheck::Unreachable(
                    "the system's address does not ask for credentials: register one that does"
                        .into(),
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(system = %system.cfg.name, error = %e.without_url(), "a business system could not be reached");
                return LoginCheck::Unreachable("the system could not be reached".into());
            }
        }
        match self
            .client
            .get(url)
            .basic_auth(username, Some(password))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => LoginCheck::Accepted,
            Ok(r) if r.status().as_u16() == 401 => LoginCheck::Refused,
            // Forbidden is not "wrong password": the credential may be right and the address
            // closed to it, so nothing is concluded (and nothing kept).
            Ok(r) if r.status().as_u16() == 403 => LoginCheck::Unreachable(
                "the system answered 403 Forbidden: its address is not open to this account".into(),
            ),
            Ok(r) => LoginCheck::Unreachable(format!("the system answered {}", r.status())),
            Err(e) => {
                tracing::warn!(system = %system.cfg.name, error = %e.without_url(), "a business system could not be reached");
                LoginCheck::Unreachable("the system could not be reached".into())
            }
        }
    }

    async fn check(&self, system: &System, username: &str, password: &Secret) -> LoginCheck {
        match system.cfg.login {
            LoginMethod::Form => {
                form::login(&self.client, system, username, password)
                    .await
                    .check
            }
            LoginMethod::Imap => {
                imap::verify(system, username, password, self.timeout, &self.tls).await
            }
            _ => self.basic(system, username, password).await,
        }
    }
}

impl crate::bridge::MailCounter for LoginVerifier {
    fn unread<'a>(
        &'a self,
        system: &'a System,
        username: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = crate::bridge::Unread> + Send + 'a>> {
        Box::pin(imap::session(
            system,
            username,
            password,
            true,
            self.timeout,
            &self.tls,
        ))
    }
}

impl Verifier for LoginVerifier {
    fn verify<'a>(
        &'a self,
        system: &'a System,
        username: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = LoginCheck> + Send + 'a>> {
        Box::pin(self.check(system, username, password))
    }
}
