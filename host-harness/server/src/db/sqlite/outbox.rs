//! The emails the plugin sent, and which the relay took.

use super::*;
use crate::db::OutboxStore;
use crate::ports::EmailStore;

const OUTBOX_SELECT: &str = "SELECT ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms, id, sent_ms FROM outbox";

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        merchant: r.get(0)?,
        dedupe_key: r.get(1)?,
        to: r.get(2)?,
        cc: r.get(3)?,
        subject: r.get(4)?,
        text: r.get(5)?,
        html: r.get(6)?,
        created_ms: r.get(7)?,
        id: r.get(8)?,
        sent_ms: r.get(9)?,
    })
}

impl OutboxStore for Sqlite {
    fn outbox_row(&self, ns: &str, id: i64) -> StoreResult<Option<OutboxRow>> {
        self.conn()
            .row_cached(
                &format!("{OUTBOX_SELECT} WHERE ns = ?1 AND id = ?2"),
                params![ns, id],
                outbox_row,
            )
            .optional()
            .map_err(failure)
    }

    fn mark_sent(&self, id: i64, now_ms: i64) -> StoreResult<()> {
        self.conn()
            .exec_cached(
                "UPDATE outbox SET sent_ms = ?2 WHERE id = ?1 AND sent_ms IS NULL",
                params![id, now_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn outbox(&self, ns: &str) -> StoreResult<Vec<OutboxRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("{OUTBOX_SELECT} WHERE ns = ?1 ORDER BY id"))
            .map_err(failure)?;
        let rows = stmt.query_map([ns], outbox_row).map_err(failure)?;
        rows.collect::<rusqlite::Result<_>>().map_err(failure)
    }
}

/// The runtime's half of the outbox: keeping an email, and whom a merchant
/// may email (its customers on record).
impl EmailStore for Sqlite {
    fn outbox_insert(&self, e: &OutgoingEmail) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failure)?;
        let n = tx
            .exec_cached(
                "INSERT OR IGNORE INTO outbox (ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.ns, e.dedupe_key, e.recipients, e.cc, e.subject, e.text_body, e.html_body,
                    e.created_ms
                ],
            )
            .map_err(failure)?;
        if n == 1 && e.deliver {
            tx.exec_cached(
                "INSERT OR IGNORE INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?4, '')",
                params![e.ns, crate::db::EMAIL_JOB, tx.last_insert_rowid().to_string(), e.created_ms],
            )
            .map_err(failure)?;
        }
        tx.commit().map_err(failure)?;
        Ok(n == 1)
    }

    fn customer_has_address(&self, merchant: &str, address: &str) -> StoreResult<bool> {
        self.conn()
            .prepare_cached(
                "SELECT 1 FROM customers WHERE merchant = ?1 AND (
                     lower(json_extract(doc, '$.email')) = lower(?2)
                     OR EXISTS (SELECT 1 FROM json_each(doc, '$.billingEmails')
                                WHERE lower(value) = lower(?2)))
                 LIMIT 1",
            )
            .and_then(|mut s| s.exists(params![merchant, address]))
            .map_err(failure)
    }
}
