//! Email delivery from the durable outbox: each email the plugin queues is a
//! row of the outbox and, when a relay is configured, a job of the durable
//! queue (`email`, its outbox id) made in the same transaction. A runner
//! sends it to the SMTP relay with `lettre` (implicit TLS, or STARTTLS
//! required; plain SMTP only to a loopback relay), and marks the row sent.
//! A relay's 4xx, a refused or dropped connection or a timeout is tried
//! again with the queue's backoff; a 5xx, or the last of `TRIES`, makes the
//! job a dead letter an operator can list and retry. Delivery is at least
//! once: a worker killed between the relay's 250 and the row marked sent
//! sends it again, under the same `Message-ID` (derived from the merchant
//! and the email's dedupe key), so that the receiving system can drop the
//! repeat.
//!
//! Without a relay (the embedded default), emails stay in the outbox, and
//! `serve` says so at start.

use crate::db::OutboxRow;
use anyhow::{Context, Result, bail};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Tries of one email before it becomes a dead letter (with the queue's
/// backoff, doubling from 1 s: about four minutes of a relay refusing).
pub const TRIES: i32 = 8;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which the relay must offer
    /// (port 587).
    #[default]
    Starttls,
    /// No encryption: only to a relay on a loopback address (a local MTA).
    None,
}

/// Where and as whom emails are sent.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    /// `Name <address>` or an address: the sender of every email.
    pub from: String,
    /// User name and password, from a file or the environment, never argv.
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

/// Why an email was not sent.
#[derive(Debug)]
pub enum SendError {
    /// Trying again later can help: a 4xx, a refused or dropped connection,
    /// a timeout.
    Transient(String),
    /// It never will: a 5xx, an address the relay refuses, a malformed email.
    Permanent(String),
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient(m) | SendError::Permanent(m) => m,
        }
    }
}

/// The SMTP relay.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self> {
        let from: Mailbox = s
            .from
            .parse()
            .with_context(|| format!("the sender {} is not an email address", s.from))?;
        let builder = match s.security {
            SmtpSecurity::Tls => SmtpTransport::relay(&s.host)?,
            SmtpSecurity::Starttls => SmtpTransport::starttls_relay(&s.host)?,
            SmtpSecurity::None => {
                if !is_loopback(&s.host) {
                    bail!(
                        "SMTP without TLS is allowed only to a relay on a loopback address, not {}",
                        s.host
                    );
                }
                SmtpTransport::builder_dangerous(&s.host)
            }
        };
        let mut builder = builder.timeout(Some(s.timeout));
        if let Some(port) = s.port {
            builder = builder.port(port);
        }
        if let Some((user, password)) = &s.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one outbox row.
    pub fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let message = self.message(row).map_err(SendError::Permanent)?;
        self.transport.send(&message).map(drop).map_err(|e| {
            let text = e.to_string();
            if e.is_permanent() {
                SendError::Permanent(text)
            } else {
                SendError::Transient(text)
            }
        })
    }

    fn message(&self, row: &OutboxRow) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(row.subject.clone())
            .message_id(Some(message_id(
                &row.merchant,
                &row.dedupe_key,
                self.domain(),
            )));
        for to in split(&row.to) {
            b = b.to(to.parse().map_err(|e| format!("recipient {to}: {e}"))?);
        }
        for cc in split(&row.cc) {
            b = b.cc(cc.parse().map_err(|e| format!("copy {cc}: {e}"))?);
        }
        let built = match &row.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                row.text.clone(),
                html.clone(),
            )),
            None => b.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(row.text.clone()),
            ),
        };
        built.map_err(|e| e.to_string())
    }

    fn domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// The same email's `Message-ID` on every try: from its merchant and its
/// dedupe key, under the sender's domain.
pub fn message_id(merchant: &str, dedupe_key: &str, domain: &str) -> String {
    let mut h = Sha256::new();
    h.update(merchant.as_bytes());
    h.update([0]);
    h.update(dedupe_key.as_bytes());
    format!("<{}@{domain}>", hex::encode(&h.finalize()[..20]))
}

fn split(addresses: &str) -> impl Iterator<Item = &str> {
    addresses
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_email_has_one_message_id_and_two_have_two() {
        let a = message_id(
            "alpha",
            "payment-failed:inv_1:pi_1:merchant",
            "platform.example",
        );
        assert_eq!(
            a,
            message_id(
                "alpha",
                "payment-failed:inv_1:pi_1:merchant",
                "platform.example"
            )
        );
        assert_ne!(
            a,
            message_id(
                "beta",
                "payment-failed:inv_1:pi_1:merchant",
                "platform.example"
            )
        );
        assert_ne!(
            a,
            message_id(
                "alpha",
                "payment-failed:inv_1:pi_1:customer",
                "platform.example"
            )
        );
        assert!(
            a.starts_with('<') && a.ends_with("@platform.example>"),
            "{a}"
        );
    }

    #[test]
    fn plain_smtp_is_only_for_a_loopback_relay() {
        let settings = |host: &str| SmtpSettings {
            host: host.into(),
            port: Some(2525),
            security: SmtpSecurity::None,
            from: "Billing <billing@platform.example>".into(),
            credentials: None,
            timeout: Duration::from_secs(5),
        };
        assert!(Mailer::new(&settings("127.0.0.1")).is_ok());
        assert!(Mailer::new(&settings("localhost")).is_ok());
        assert!(Mailer::new(&settings("smtp.example.com")).is_err());
    }
}
