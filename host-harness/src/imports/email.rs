//! `email`: messages go to the `outbox` table (and the log). A second message
//! with the same dedupe key is dropped by the table's UNIQUE constraint.

use super::HostState;
use crate::bindings::billing::stripe_plugin::email::{Delivery, EmailError, Host, Message};
use rusqlite::params;

impl Host for HostState {
    fn send(&mut self, msg: Message) -> Result<Delivery, EmailError> {
        self.off_the_clock(|host| queue(host, &msg))
    }
}

fn queue(host: &HostState, msg: &Message) -> Result<Delivery, EmailError> {
    if msg.to.is_empty() {
        return Err(EmailError::Rejected("no recipient".into()));
    }
    let now = host.env.clock.now_ms() as i64;
    let conn = host.env.db.conn();
    let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO outbox (ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    host.namespace,
                    msg.dedupe_key,
                    msg.to.join(", "),
                    msg.cc.join(", "),
                    msg.subject,
                    msg.text_body,
                    msg.html_body,
                    now
                ],
            )
            .map_err(|e| EmailError::Unavailable(e.to_string()))?;
    host.env.metrics.email(inserted > 0);
    if inserted == 0 {
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
