//! The emails the plugin sent, and which the relay took.

use super::*;
use crate::db::OutboxStore;
use crate::ports::EmailStore;

const OUTBOX_SELECT: &str = "SELECT ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms, id, sent_ms FROM outbox";

fn outbox_row(r: &postgres::Row) -> OutboxRow {
    OutboxRow {
        merchant: r.get(0),
        dedupe_key: r.get(1),
        to: r.get(2),
        cc: r.get(3),
        subject: r.get(4),
        text: r.get(5),
        html: r.get(6),
        created_ms: r.get(7),
        id: r.get(8),
        sent_ms: r.get(9),
    }
}

impl OutboxStore for Postgres {
    fn outbox_row(&self, ns: &str, id: i64) -> StoreResult<Option<OutboxRow>> {
        let row = self
            .conn()?
            .query_opt(
                &format!("{OUTBOX_SELECT} WHERE ns = $1 AND id = $2"),
                &[&ns, &id],
            )
            .map_err(failure)?;
        Ok(row.as_ref().map(outbox_row))
    }

    fn mark_sent(&self, id: i64, now_ms: i64) -> StoreResult<()> {
        self.conn()?
            .execute(
                "UPDATE outbox SET sent_ms = $2 WHERE id = $1 AND sent_ms IS NULL",
                &[&id, &now_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn outbox(&self, ns: &str) -> StoreResult<Vec<OutboxRow>> {
        let rows = self
            .conn()?
            .query(
                &format!("{OUTBOX_SELECT} WHERE ns = $1 ORDER BY id"),
                &[&ns],
            )
            .map_err(failure)?;
        Ok(rows.iter().map(outbox_row).collect())
    }
}

/// The runtime's half of the outbox: keeping an email, and whom a merchant
/// may email (its customers on record).
impl EmailStore for Postgres {
    /// One statement: the email, and its job when a relay sends it.
    fn outbox_insert(&self, e: &OutgoingEmail) -> StoreResult<bool> {
        let row = self
            .conn()?
            .query_one(
                "WITH email AS (
                     INSERT INTO outbox (ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (ns, dedupe_key) DO NOTHING
                     RETURNING id, ns, created_ms),
                 job AS (
                     INSERT INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
                     SELECT ns, $10, id::text, created_ms, created_ms, '' FROM email WHERE $9
                     ON CONFLICT (merchant, kind, subject) DO NOTHING)
                 SELECT count(*) FROM email",
                &[
                    &e.ns, &e.dedupe_key, &e.recipients, &e.cc, &e.subject, &e.text_body,
                    &e.html_body, &e.created_ms, &e.deliver, &crate::db::EMAIL_JOB,
                ],
            )
            .map_err(failure)?;
        Ok(row.get::<_, i64>(0) == 1)
    }

    fn customer_has_address(&self, merchant: &str, address: &str) -> StoreResult<bool> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT 1 FROM customers WHERE merchant = $1 AND (
                     lower(doc::jsonb->>'email') = lower($2)
                     OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(
                                    CASE WHEN jsonb_typeof(doc::jsonb->'billingEmails') = 'array'
                                         THEN doc::jsonb->'billingEmails' ELSE '[]'::jsonb END) e
                                WHERE lower(e) = lower($2)))
                 LIMIT 1",
                &[&merchant, &address],
            )
            .map_err(failure)?;
        Ok(row.is_some())
    }
}
