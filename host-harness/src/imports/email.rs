//! `email`: messages go to the store's `outbox` table (and the log). A second message
//! with the same dedupe key is dropped by the table's UNIQUE constraint.

use super::HostState;
use crate::bindings::billing::stripe_plugin::email::{Delivery, EmailError, Host, Message};
use crate::db::OutgoingEmail;

impl Host for HostState {
    fn send(&mut self, msg: Message) -> Result<Delivery, EmailError> {
        self.off_the_clock(|host| queue(host, &msg))
    }
}

fn queue(host: &HostState, msg: &Message) -> Result<Delivery, EmailError> {
    if msg.to.is_empty() {
        return Err(EmailError::Rejected("no recipient".into()));
    }
    let email = OutgoingEmail {
        ns: &host.namespace,
        dedupe_key: &msg.dedupe_key,
        recipients: msg.to.join(", "),
        cc: msg.cc.join(", "),
        subject: &msg.subject,
        text_body: &msg.text_body,
        html_body: msg.html_body.as_deref(),
        created_ms: i64::try_from(host.env.clock.now_ms()).unwrap_or(i64::MAX),
    };
    let inserted = host
        .env
        .db
        .outbox_insert(&email)
        .map_err(|e| EmailError::Unavailable(e.to_string()))?;
    host.env.metrics.email(inserted);
    if !inserted {
        return Ok(Delivery::Duplicate);
    }
    tracing::info!(
        account = %host.namespace,
        subject = %msg.subject,
        dedupe_key = %msg.dedupe_key,
        "email queued"
    );
    Ok(Delivery::Sent)
}
