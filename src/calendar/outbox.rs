//! The durable iMIP outbox: invitations, updates, cancellations and replies for people
//! outside this server are queued in the store (`MailOutboxStore`) in the same request that
//! schedules them, and this worker hands them to the SMTP relay. A message survives a relay
//! outage and a restart, is claimed under a lease so that of several instances only one sends
//! it, and is retried with backoff (`next_attempt`) up to `[smtp] max_attempts` times. What
//! becomes of an organizer's message is recorded on their event as the attendee's
//! SCHEDULE-STATUS: 1.1 once the relay took it, 5.1 once it was given up.
//!
//! Must never: send a message the relay has taken again; log a message body.

use std::time::Duration;

use super::schedule::status;
use super::{Calendars, Limits, NoHooks};
use crate::clock::{Clock, SharedClock};
use crate::mail::Mailer;
use crate::store::{MailOrigin, MailOutboxStore, Store, UserStore};
/// How long a claim keeps other instances off a message (longer than an SMTP session).
const LEASE_SECONDS: i64 = 120;
/// Messages claimed at once.
const BATCH: i64 = 20;

/// When a message that has failed `attempts_before` times and failed again at `now` is tried
/// next: `base` seconds (30 by default), doubling, at most an hour; `i64::MAX` once
/// `max_attempts` are spent.
pub fn next_attempt(attempts_before: i64, now: i64, base: i64, max_attempts: i64) -> i64 {
    if attempts_before + 1 >= max_attempts {
        return i64::MAX;
    }
    let delay = (base.max(1) << attempts_before.clamp(0, 7)).min(3600);
    now.saturating_add(delay)
}

/// Send what is due, then wait to be woken (a message queued here) or for `interval` (one
/// queued by another instance, or a retry coming due), until `stop` turns true.
pub async fn run(
    store: Store,
    mailer: Mailer,
    settings: Limits,
    clock: SharedClock,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        send_due(&store, &mailer, &settings, clock.as_ref()).await;
        tokio::select! {
            _ = mailer.woken() => {}
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Claim and send every message due now. Returns how many the relay took.
pub async fn send_due(
    store: &Store,
    mailer: &Mailer,
    settings: &Limits,
    clock: &dyn Clock,
) -> usize {
    let mut sent = 0;
    // Bounded: each round claims a batch or ends; a message claimed is not claimable again
    // within its lease, so the rounds run out.
    for _ in 0..1000 {
        let now = clock.now();
        let batch = match store.claim_mail(now, LEASE_SECONDS, BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading the mail outbox failed");
                return sent;
            }
        };
        if batch.is_empty() {
            return sent;
        }
        for m in batch {
            let outcome = match Box::pin(mailer.send_queued(&m.recipient, &m.message)).await {
                Ok(()) => {
                    sent += 1;
                    tracing::info!(id = m.id, "queued iMIP message handed to the relay");
                    let done = store.mail_sent(m.id, clock.now()).await;
                    if done.is_ok() {
                        record(store, settings, clock, m.origin.as_ref(), status::SENT).await;
                    }
                    done
                }
                Err(e) => {
                    let next = next_attempt(
                        m.attempts,
                        clock.now(),
                        mailer.retry_base_seconds,
                        mailer.max_attempts,
                    );
                    tracing::warn!(
                        id = m.id,
                        attempts = m.attempts + 1,
                        error = %e,
                        given_up = next == i64::MAX,
                        "iMIP message not sent; kept for another try"
                    );
                    let done = store.mail_failed(m.id, next, &e.to_string()).await;
                    if done.is_ok() && next == i64::MAX {
                        record(
                            store,
                            settings,
                            clock,
                            m.origin.as_ref(),
                            status::NOT_DELIVERED,
                        )
                        .await;
                    }
                    done
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "recording a mail outcome failed");
            }
        }
    }
    sent
}

/// Record `code` for the message's attendee on the organizer's event (logged on failure: the
/// message itself has gone, or been given up, either way).
async fn record(
    store: &Store,
    limits: &Limits,
    clock: &dyn Clock,
    origin: Option<&MailOrigin>,
    code: &str,
) {
    let Some(origin) = origin else { return };
    let organizer = match store.user_by_id(origin.owner).await {
        Ok(Some(u)) => u,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "reading an organizer failed");
            return;
        }
    };
    let calendars = Calendars {
        store,
        user: &organizer,
        limits,
        mailer: None,
        directory: None,
        clock,
        hooks: &NoHooks,
    };
    if let Err(e) = calendars
        .record_mail_outcome(&origin.uid, &origin.attendee, code)
        .await
    {
        tracing::warn!(error = %e, code, "recording what became of a message failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour_then_gives_up() {
        assert_eq!(next_attempt(0, 1000, 30, 10), 1030);
        assert_eq!(next_attempt(1, 1000, 30, 10), 1060);
        assert_eq!(next_attempt(6, 1000, 30, 10), 1000 + 1920);
        assert_eq!(next_attempt(7, 1000, 30, 10), 1000 + 3600);
        assert_eq!(next_attempt(8, 1000, 30, 10), 1000 + 3600);
        assert_eq!(next_attempt(9, 1000, 30, 10), i64::MAX);
        assert_eq!(next_attempt(0, 1000, 1, 10), 1001);
        assert_eq!(next_attempt(1, 1000, 1, 2), i64::MAX);
    }
}
