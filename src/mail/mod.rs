//! Outgoing mail: iTIP messages for calendar users outside this server, sent as iMIP (RFC 6047)
//! through the configured SMTP relay.
//!
//! The MIME layout is the one Outlook, Gmail and Apple Mail show as an invitation with
//! Accept/Decline buttons: `multipart/mixed` holding a `multipart/alternative` (a plain-text
//! summary, then the `text/calendar; method=...` part) and the same calendar again as an
//! `application/ics` attachment for clients that only offer attachments.
//!
//! Must never: log relay credentials or message bodies, or send anything but the iTIP message
//! it was handed to the one recipient it was handed.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

/// How the relay is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP: only for a relay on the same host or a trusted network.
    None,
    /// STARTTLS on the submission port (587), required.
    #[default]
    Starttls,
    /// Implicit TLS (465).
    Tls,
}

/// The `[smtp]` section of the configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The envelope and header sender, for example `calendar@example.org`.
    pub from: String,
    /// The first wait before a failed message is tried again; it doubles, up to an hour.
    #[serde(default = "default_retry_base_seconds")]
    pub retry_base_seconds: u64,
    /// Tries before a message is given up (kept, never tried again, and the organizer's event
    /// says so: SCHEDULE-STATUS 5.1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_retry_base_seconds() -> u64 {
    30
}

fn default_max_attempts() -> u32 {
    10
}

impl std::fmt::Debug for SmtpConfig {
    // The password stays out of every log and error message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("retry_base_seconds", &self.retry_base_seconds)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail address '{0}'")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("the relay refused or failed: {0}")]
    Relay(String),
}

/// One iMIP message to send.
#[derive(Debug, Clone)]
pub struct Imip<'a> {
    /// `REQUEST`, `REPLY` or `CANCEL` (the `method` parameter of the calendar part).
    pub method: &'a str,
    /// The recipient's mail address (without `mailto:`).
    pub to: &'a str,
    /// The calendar user the message is from, as (name, mail address): shown as the sender's
    /// name and used as Reply-To, so a plain mail answer reaches them.
    pub on_behalf_of: Option<(&'a str, &'a str)>,
    pub subject: String,
    pub text: String,
    /// The iTIP object, `METHOD` included.
    pub calendar: &'a [u8],
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Rings when a message is queued, so the outbox worker sends it at once.
    queued: std::sync::Arc<tokio::sync::Notify>,
    /// `SmtpConfig::retry_base_seconds`.
    pub retry_base_seconds: i64,
    /// `SmtpConfig::max_attempts`.
    pub max_attempts: i64,
}

impl Mailer {
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer, MailError> {
        let builder = match cfg.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            }
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                    .map_err(|e| MailError::Relay(e.to_string()))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
                .map_err(|e| MailError::Relay(e.to_string()))?,
        };
        let mut builder = builder
            .port(cfg.port)
            .timeout(Some(std::time::Duration::from_secs(20)));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|_| MailError::Address(cfg.from.clone()))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
            queued: std::sync::Arc::new(tokio::sync::Notify::new()),
            retry_base_seconds: i64::try_from(cfg.retry_base_seconds.clamp(1, 3600)).unwrap_or(30),
            max_attempts: i64::from(cfg.max_attempts.clamp(1, 100)),
        })
    }

    /// The message as it is sent.
    pub fn build(&self, msg: &Imip<'_>) -> Result<Message, MailError> {
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|_| MailError::Address(msg.to.to_string()))?;
        let from = match msg.on_behalf_of {
            Some((name, _)) if !name.is_empty() => Mailbox::new(
                Some(format!("{name} (via Convene)")),
                self.from.email.clone(),
            ),
            _ => self.from.clone(),
        };
        let mut b = Message::builder().from(from).to(to).subject(&msg.subject);
        if let Some((_, addr)) = msg.on_behalf_of
            && let Ok(reply_to) = addr.parse::<Mailbox>()
        {
            b = b.reply_to(reply_to);
        }
        let calendar_type = ContentType::parse(&format!(
            "text/calendar; method={}; charset=UTF-8",
            msg.method
        ))
        .map_err(|e| MailError::Build(e.to_string()))?;
        let ics_type =
            ContentType::parse("application/ics").map_err(|e| MailError::Build(e.to_string()))?;
        let body = MultiPart::mixed()
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(msg.text.clone()))
                    .singlepart(
                        SinglePart::builder()
                            .header(calendar_type)
                            .body(msg.calendar.to_vec()),
                    ),
            )
            .singlepart(Attachment::new("invite.ics".into()).body(msg.calendar.to_vec(), ics_type));
        b.multipart(body)
            .map_err(|e| MailError::Build(e.to_string()))
    }

    pub async fn send(&self, msg: &Imip<'_>) -> Result<(), MailError> {
        let m = self.build(msg)?;
        self.transport
            .send(m)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Relay(e.to_string()))
    }

    /// The message as bytes, to be queued and sent later with `send_queued`.
    pub fn render(&self, msg: &Imip<'_>) -> Result<Vec<u8>, MailError> {
        Ok(self.build(msg)?.formatted())
    }

    /// Send a message `render` made to its one recipient.
    pub async fn send_queued(&self, recipient: &str, message: &[u8]) -> Result<(), MailError> {
        let to: lettre::Address = recipient
            .parse()
            .map_err(|_| MailError::Address(recipient.to_string()))?;
        let envelope = lettre::address::Envelope::new(Some(self.from.email.clone()), vec![to])
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send_raw(&envelope, message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Relay(e.to_string()))
    }

    /// Wake the outbox worker (a message was queued).
    pub fn wake(&self) {
        self.queued.notify_one();
    }

    /// Wait until `wake` is called (or was, since the last wait).
    pub async fn woken(&self) {
        self.queued.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let cfg = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            security: SmtpSecurity::None,
            username: Some("u".into()),
            password: Some("hunter2-secret".into()),
            from: "calendar@example.org".into(),
            retry_base_seconds: 30,
            max_attempts: 10,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let m = Mailer::new(&cfg).expect("mailer");
        let msg = m
            .build(&Imip {
                method: "REQUEST",
                to: "bob@example.org",
                on_behalf_of: Some(("Alice", "alice@example.org")),
                subject: "Invitation: Plan".into(),
                text: "Plan".into(),
                calendar: b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n",
            })
            .expect("message");
        let raw = String::from_utf8(msg.formatted()).expect("utf-8");
        assert!(
            raw.contains("Content-Type: text/calendar; method=REQUEST; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("Reply-To: alice@example.org"), "{raw}");
        assert!(
            m.build(&Imip {
                to: "not an address",
                ..Imip {
                    method: "REQUEST",
                    to: "",
                    on_behalf_of: None,
                    subject: String::new(),
                    text: String::new(),
                    calendar: b"",
                }
            })
            .is_err()
        );
    }
}
