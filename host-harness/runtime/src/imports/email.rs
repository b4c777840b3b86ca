//! `email`: messages go to the store's `outbox` table (and the log). A second message
//! with the same dedupe key is dropped by the table's UNIQUE constraint.

use super::HostState;
use crate::bindings::billing::stripe_plugin::email::{Delivery, EmailError, Host, Message};
use crate::ports::OutgoingEmail;

impl Host for HostState {
    fn send(&mut self, msg: Message) -> Result<Delivery, EmailError> {
        self.take(super::Use::Email).map_err(|cap| {
            EmailError::Rejected(format!("over this call's cap of {}", cap.name()))
        })?;
        self.off_the_clock(|host| queue(host, &msg))
    }
}

fn queue(host: &HostState, msg: &Message) -> Result<Delivery, EmailError> {
    if msg.to.is_empty() {
        return Err(EmailError::Rejected("no recipient".into()));
    }
    if let Some(bad) = msg.to.iter().chain(&msg.cc).find(|a| !plain_address(a)) {
        return Err(EmailError::Rejected(format!(
            "recipient {} is not a plain address",
            crate::escape::escape_controls(bad)
        )));
    }
    for address in msg.to.iter().chain(&msg.cc) {
        if !may_write_to(host, address)? {
            tracing::warn!(
                merchant = %host.namespace,
                "an email to an address that is neither the merchant's nor one of its customers' was refused"
            );
            host.env.observer.gate_refusal("email-recipient");
            return Err(EmailError::Rejected(format!(
                "{} is neither the merchant's address nor one of its customers'",
                crate::escape::escape_controls(address)
            )));
        }
    }
    let subject = one_line(&msg.subject);
    let email = OutgoingEmail {
        ns: &host.namespace,
        dedupe_key: &msg.dedupe_key,
        recipients: msg.to.join(", "),
        cc: msg.cc.join(", "),
        subject: &subject,
        text_body: &msg.text_body,
        html_body: msg.html_body.as_deref(),
        created_ms: i64::try_from(host.env.clock.now_ms()).unwrap_or(i64::MAX),
        deliver: host.env.mail == super::MailDelivery::Relay,
    };
    let inserted = host
        .env
        .store
        .outbox_insert(&email)
        .map_err(|e| EmailError::Unavailable(e.to_string()))?;
    host.env.observer.email(inserted);
    if !inserted {
        return Ok(Delivery::Duplicate);
    }
    tracing::info!(
        account = %host.namespace,
        subject = %subject,
        dedupe_key = %msg.dedupe_key,
        "email queued"
    );
    Ok(Delivery::Sent)
}

/// Whether a call may email `address` (security review S7): the merchant's
/// notification address, an address of the customer the call is about, or
/// one of the merchant's customers' on record. Never anyone else.
fn may_write_to(host: &HostState, address: &str) -> Result<bool, EmailError> {
    if host
        .addresses
        .iter()
        .any(|a| a.eq_ignore_ascii_case(address))
    {
        return Ok(true);
    }
    host.env
        .store
        .customer_has_address(&host.namespace, address)
        .map_err(|e| EmailError::Unavailable(e.to_string()))
}

/// An address as a mail header carries it: `local@domain`, no spaces, no
/// control characters, no second address or display name smuggled in.
fn plain_address(a: &str) -> bool {
    let forbidden = |c: char| c.is_control() || c.is_whitespace() || "<>,;\"()[]\\".contains(c);
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && a.len() <= 254
                && !a.chars().any(forbidden)
        }
        None => false,
    }
}

/// A subject on one line: CR, LF and other control characters become
/// spaces, so no header can be added through it (security review S16).
fn one_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_stays_one_line_and_an_address_stays_one_address() {
        assert_eq!(
            one_line("Payment failed\r\nBcc: x@evil.test"),
            "Payment failed  Bcc: x@evil.test"
        );
        assert!(plain_address("finance@merchant.example"));
        for bad in [
            "a@b\r\nBcc: x@evil.test",
            "Eve <eve@evil.test>",
            "a@b, c@d",
            "nobody",
            "a@@b",
            "a b@c",
        ] {
            assert!(!plain_address(bad), "{bad:?}");
        }
    }
}
