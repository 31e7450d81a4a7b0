//! The bridge's outbound edge: requests to business systems with a person's vaulted
//! credential. For now, the verification of a binding: one real login (HTTP Basic) to the
//! system's own address, whose origin the registry has checked.
//!
//! Must never: follow a redirect while holding a credential (another origin could collect it),
//! send a credential to an origin the system did not register, or log one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::bridge::systems::System;
use crate::bridge::{LoginCheck, Verifier};
use crate::crypto::Secret;

/// Checks HTTP Basic credentials with one GET of the system's address.
pub struct BasicVerifier {
    client: reqwest::Client,
}

impl BasicVerifier {
    pub fn new(timeout: Duration) -> Result<BasicVerifier, reqwest::Error> {
        Ok(BasicVerifier {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .build()?,
        })
    }

    async fn check(&self, system: &System, username: &str, password: &Secret) -> LoginCheck {
        let url = &system.cfg.url;
        let Ok(password) = std::str::from_utf8(password.expose()) else {
            return LoginCheck::Refused;
        };
        match self
            .client
            .get(url)
            .basic_auth(username, Some(password))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => LoginCheck::Accepted,
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => LoginCheck::Refused,
            Ok(r) => LoginCheck::Unreachable(format!("the system answered {}", r.status())),
            Err(e) => {
                tracing::warn!(system = %system.cfg.name, error = %e.without_url(), "a business system could not be reached");
                LoginCheck::Unreachable("the system could not be reached".into())
            }
        }
    }
}

impl Verifier for BasicVerifier {
    fn verify<'a>(
        &'a self,
        system: &'a System,
        username: &'a str,
        password: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = LoginCheck> + Send + 'a>> {
        Box::pin(self.check(system, username, password))
    }
}
