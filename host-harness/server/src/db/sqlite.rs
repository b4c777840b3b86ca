//! The SQLite backend: one file, one process (WAL, `synchronous = FULL`).
//! Schema versions are counted in `user_version`.

use super::{
    AccountRow, Backend, CustomerRow, DeadLetter, Job, MerchantPutError, NewJob, OutboxRow,
    OutgoingEmail, RecordsTx, StoreError, StoreResult, TokenRow, TxAbort, TxBody,
};
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};

/// The schema as it was before versions were counted (`user_version` 0).
const SCHEMA_V1: &str = include_str!("migrations/sqlite/v01_base.sql");

/// One connection behind a mutex: handlers are short, and SQLite serialises
/// writers anyway.
pub struct Sqlite {
    conn: Mutex<Connection>,
    /// Each account's next free Stripe turn. In memory: a SQLite store has
    /// one worker, and a turn is worth nothing after a restart.
    turns: Mutex<std::collections::HashMap<String, i64>>,
}

impl Sqlite {
    /// Opens (or makes) the database, readable by this user only: SQLite
    /// gives its `-wal` and `-shm` files the database file's mode, so the
    /// file is made `0600` first, and one made before, open to others, is
    /// closed (security review S11).
    pub fn open(path: &Path) -> Result<Self> {
        private_file(path)
            .with_context(|| format!("making {} private to this user", path.display()))?;
        let conn = Connection::open(path)
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn)
    }

    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            turns: Mutex::default(),
        })
    }

    /// The connection; a poisoned lock still holds a consistent SQLite handle.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every version after the first: its number, its statements, and what it
/// brings (for the error when it cannot be applied).
const STEPS: &[(i64, &str, &str)] = &[
    // Version 2: merchants are data, and invoices and customers belong to one
    // (their ids are the platform's, unique within a merchant only). Rows kept
    // from version 1 belong to the default merchant.
    (2, include_str!("migrations/sqlite/v02_merchants.sql"), "merchants"),
    // Version 3: the durable work queue.
    (3, include_str!("migrations/sqlite/v03_queue.sql"), "the work queue"),
    // Version 4: jobs that failed for good, kept for an operator.
    (4, include_str!("migrations/sqlite/v04_dead_letters.sql"), "dead letters"),
    // Version 5: the platform's API tokens, as hashes.
    (5, include_str!("migrations/sqlite/v05_platform_tokens.sql"), "platform tokens"),
    // Version 6: the account a job was queued for.
    (6, include_str!("migrations/sqlite/v06_job_accounts.sql"), "jobs' accounts"),
    // Version 7: records by merchant, not by account (see `db::BY_MERCHANT`).
    (7, super::BY_MERCHANT, "records by merchant"),
    // Version 8: when the relay took each email.
    (8, include_str!("migrations/sqlite/v08_emails_sent.sql"), "emails sent"),
    // Version 9: what Stripe said of an account is its merchant's (security
    // review S18); rows move to the merchant that has the account.
    (9, include_str!("migrations/sqlite/v09_accounts_by_merchant.sql"), "accounts by merchant"),
    // Version 10: which invoice each pay-link token opens (by its SHA-256),
    // so that the host can refuse a revoked or expired link (S12).
    (10, include_str!("migrations/sqlite/v10_pay_links.sql"), "pay links"),
];

/// Brings the schema to the newest version, one step per version, each in
/// its own transaction; `user_version` says how far a database has come.
fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1 {
        conn.execute_batch(SCHEMA_V1)?;
        // Databases made before kv entries could expire gain the column.
        let has_expiry: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('kv') WHERE name = 'expires_ms'")?
            .exists([])?;
        if !has_expiry {
            conn.execute_batch("ALTER TABLE kv ADD COLUMN expires_ms INTEGER")?;
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_ms) WHERE expires_ms IS NOT NULL;
             PRAGMA user_version = 1;",
        )?;
    }
    for &(step, statements, what) in STEPS {
        if version < step {
            conn.execute_batch(&format!(
                "BEGIN; {statements} PRAGMA user_version = {step}; COMMIT;"
            ))
            .with_context(|| format!("migrating the database to version {step} ({what})"))?;
        }
    }
    Ok(())
}

fn failure(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Failed(e.to_string()),
    }
}

/// An entry past its expiry reads as absent.
const KV_SELECT: &str = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2
     AND (expires_ms IS NULL OR expires_ms > ?3)";
const KV_UPSERT: &str = "INSERT INTO kv (ns, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms";

/// Creates `path` as `0600` if missing, or takes group and other access away.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the database was readable by other users; it is not any more");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

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

impl Backend for Arc<Sqlite> {
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(KV_SELECT).map_err(failure)?;
        stmt.query_row(params![ns, key, now_ms], |r| r.get(0))
            .optional()
            .map_err(failure)
    }

    fn kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        expires_ms: Option<i64>,
    ) -> StoreResult<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(KV_UPSERT).map_err(failure)?;
        stmt.execute(params![ns, key, value, expires_ms])
            .map(drop)
            .map_err(failure)
    }

    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")
            .map_err(failure)?;
        stmt.execute(params![ns, key]).map(drop).map_err(failure)
    }

    /// In an IMMEDIATE transaction, so two hosts on one file never both win.
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failure)?;
        let current: Option<Vec<u8>> = tx
            .prepare_cached(KV_SELECT)
            .and_then(|mut stmt| {
                stmt.query_row(params![ns, key, now_ms], |r| r.get(0))
                    .optional()
            })
            .map_err(failure)?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        tx.prepare_cached(KV_UPSERT)
            .and_then(|mut stmt| stmt.execute(params![ns, key, new, expires_ms]))
            .map_err(failure)?;
        tx.commit().map_err(failure)?;
        Ok(true)
    }

    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("DELETE FROM kv WHERE expires_ms IS NOT NULL AND expires_ms <= ?1")
            .map_err(failure)?;
        stmt.execute(params![now_ms]).map(drop).map_err(failure)
    }

    fn kv_rows(&self) -> StoreResult<Vec<(String, String, Vec<u8>)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT ns, key, value FROM kv ORDER BY ns, key")
            .map_err(failure)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(failure)?;
        rows.collect::<rusqlite::Result<_>>().map_err(failure)
    }

    fn outbox_insert(&self, e: &OutgoingEmail) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failure)?;
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO outbox (ns, dedupe_key, recipients, cc, subject, text_body, html_body, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.ns, e.dedupe_key, e.recipients, e.cc, e.subject, e.text_body, e.html_body,
                    e.created_ms
                ],
            )
            .map_err(failure)?;
        if n == 1 && e.deliver {
            tx.execute(
                "INSERT OR IGNORE INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?4, '')",
                params![e.ns, super::EMAIL_JOB, tx.last_insert_rowid().to_string(), e.created_ms],
            )
            .map_err(failure)?;
        }
        tx.commit().map_err(failure)?;
        Ok(n == 1)
    }

    fn outbox_row(&self, ns: &str, id: i64) -> StoreResult<Option<OutboxRow>> {
        self.conn()
            .query_row(
                &format!("{OUTBOX_SELECT} WHERE ns = ?1 AND id = ?2"),
                params![ns, id],
                outbox_row,
            )
            .optional()
            .map_err(failure)
    }

    fn mark_sent(&self, id: i64, now_ms: i64) -> StoreResult<()> {
        self.conn()
            .execute(
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

    fn legacy_host_secret(&self, name: &str) -> StoreResult<Option<String>> {
        self.conn()
            .query_row(
                "SELECT value FROM host_secrets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn delete_legacy_host_secret(&self, name: &str) -> StoreResult<()> {
        self.conn()
            .execute("DELETE FROM host_secrets WHERE name = ?1", [name])
            .map(drop)
            .map_err(failure)
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

    fn merchant_settings(&self, id: &str) -> StoreResult<Option<String>> {
        self.conn()
            .query_row("SELECT settings FROM merchants WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(failure)
    }

    fn merchant_by_account(&self, account: &str) -> StoreResult<Option<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id, settings FROM merchants WHERE account_id = ?1")
            .map_err(failure)?;
        stmt.query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(failure)
    }

    fn merchant_ids(&self) -> StoreResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id FROM merchants ORDER BY id")
            .map_err(failure)?;
        let ids = stmt.query_map([], |r| r.get(0)).map_err(failure)?;
        ids.collect::<rusqlite::Result<_>>().map_err(failure)
    }

    fn put_merchant(
        &self,
        id: &str,
        account: Option<&str>,
        settings: &str,
    ) -> Result<(), MerchantPutError> {
        let result = self.conn().execute(
            "INSERT INTO merchants (id, account_id, settings) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id,
             settings = excluded.settings",
            params![id, account, settings],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(MerchantPutError::AccountTaken)
            }
            Err(e) => Err(MerchantPutError::Store(failure(e))),
        }
    }

    fn customer(&self, merchant: &str, id: &str) -> StoreResult<Option<CustomerRow>> {
        self.conn()
            .query_row(
                "SELECT doc, stripe_customer_id, card_on_file FROM customers
                 WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(failure)
    }

    fn put_customer(&self, merchant: &str, id: &str, doc: &str) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO customers (merchant, id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (merchant, id) DO UPDATE SET doc = excluded.doc",
                params![merchant, id, doc],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account(&self, merchant: &str, id: &str) -> StoreResult<Option<AccountRow>> {
        self.conn()
            .query_row(
                "SELECT charges_enabled, details_submitted, disconnected FROM accounts
                 WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| {
                    Ok(AccountRow {
                        charges_enabled: r.get(0)?,
                        details_submitted: r.get(1)?,
                        disconnected: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(failure)
    }

    fn invoice(&self, merchant: &str, id: &str) -> StoreResult<Option<(String, String)>> {
        self.conn()
            .query_row(
                "SELECT doc, state FROM invoices WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(failure)
    }

    fn insert_invoice(
        &self,
        merchant: &str,
        id: &str,
        doc: &str,
        state: &str,
    ) -> StoreResult<bool> {
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO invoices (merchant, id, doc, state) VALUES (?1, ?2, ?3, ?4)",
                params![merchant, id, doc, state],
            )
            .map_err(failure)?;
        Ok(n == 1)
    }

    fn set_amount_due(&self, merchant: &str, id: &str, amount_due: &str) -> StoreResult<()> {
        self.conn()
            .execute(
                "UPDATE invoices SET doc = json_set(doc, '$.amountDue', ?3)
                 WHERE merchant = ?1 AND id = ?2",
                params![merchant, id, amount_due],
            )
            .map(drop)
            .map_err(failure)
    }

    fn pay_link_invoice(&self, merchant: &str, token_sha256: &str) -> StoreResult<Option<String>> {
        self.conn()
            .query_row(
                "SELECT invoice FROM pay_links WHERE merchant = ?1 AND token_sha256 = ?2",
                [merchant, token_sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn sync_cursor(&self, key: &str) -> StoreResult<Option<String>> {
        self.conn()
            .query_row(
                "SELECT cursor FROM sync_cursors WHERE merchant = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn enqueue_job(&self, job: &NewJob) -> StoreResult<bool> {
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error, account)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![job.merchant, job.kind, job.subject, job.run_at_ms, job.created_ms, job.error, job.account],
            )
            .map_err(failure)?;
        Ok(n == 1)
    }

    fn claim_job(&self, now_ms: i64, lease_until_ms: i64) -> StoreResult<Option<Job>> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failure)?;
        let job = tx
            .query_row(
                "UPDATE jobs SET locked_until_ms = ?2, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE run_at_ms <= ?1
                             AND (locked_until_ms IS NULL OR locked_until_ms <= ?1)
                             ORDER BY run_at_ms, id LIMIT 1)
                 RETURNING id, merchant, kind, subject, attempts, account",
                params![now_ms, lease_until_ms],
                |r| {
                    Ok(Job {
                        id: r.get(0)?,
                        merchant: r.get(1)?,
                        kind: r.get(2)?,
                        subject: r.get(3)?,
                        attempts: r.get(4)?,
                        account: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(failure)?;
        tx.commit().map_err(failure)?;
        Ok(job)
    }

    fn finish_job(&self, id: i64) -> StoreResult<()> {
        self.conn()
            .execute("DELETE FROM jobs WHERE id = ?1", [id])
            .map(drop)
            .map_err(failure)
    }

    fn retry_job(&self, id: i64, run_at_ms: i64, error: &str) -> StoreResult<()> {
        self.conn()
            .execute(
                "UPDATE jobs SET run_at_ms = ?2, locked_until_ms = NULL, last_error = ?3 WHERE id = ?1",
                params![id, run_at_ms, error],
            )
            .map(drop)
            .map_err(failure)
    }

    fn queue_stats(&self, now_ms: i64) -> StoreResult<(i64, i64)> {
        self.conn()
            .query_row(
                "SELECT count(*), coalesce(?1 - min(created_ms), 0) FROM jobs",
                [now_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(failure)
    }

    fn cancel_job(&self, merchant: &str, kind: &str, subject: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM jobs WHERE merchant = ?1 AND kind = ?2 AND subject = ?3",
                params![merchant, kind, subject],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }

    fn bury_job(&self, id: i64, error: &str, now_ms: i64) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failure)?;
        tx.execute(
            "INSERT INTO dead_letters (merchant, kind, subject, attempts, created_ms, died_ms, error)
             SELECT merchant, kind, subject, attempts, created_ms, ?2, ?3 FROM jobs WHERE id = ?1",
            params![id, now_ms, error],
        )
        .map_err(failure)?;
        tx.execute("DELETE FROM jobs WHERE id = ?1", [id])
            .map_err(failure)?;
        tx.commit().map_err(failure)
    }

    fn dead_letters(&self, merchant: &str) -> StoreResult<Vec<DeadLetter>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, kind, subject, attempts, created_ms, died_ms, error
                 FROM dead_letters WHERE merchant = ?1 ORDER BY id",
            )
            .map_err(failure)?;
        let rows = stmt
            .query_map([merchant], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    attempts: r.get(3)?,
                    created_ms: r.get(4)?,
                    died_ms: r.get(5)?,
                    error: r.get(6)?,
                })
            })
            .map_err(failure)?;
        rows.collect::<Result<_, _>>().map_err(failure)
    }

    fn revive_dead_letter(&self, merchant: &str, id: i64, now_ms: i64) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failure)?;
        tx.execute(
            "INSERT OR IGNORE INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
             SELECT merchant, kind, subject, ?3, created_ms, error FROM dead_letters
             WHERE id = ?1 AND merchant = ?2",
            params![id, merchant, now_ms],
        )
        .map_err(failure)?;
        let n = tx
            .execute(
                "DELETE FROM dead_letters WHERE id = ?1 AND merchant = ?2",
                params![id, merchant],
            )
            .map_err(failure)?;
        tx.commit().map_err(failure)?;
        Ok(n > 0)
    }

    fn dead_letter_count(&self) -> StoreResult<i64> {
        self.conn()
            .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))
            .map_err(failure)
    }

    fn put_token(&self, t: &TokenRow) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO platform_tokens (id, sha256, merchant, label, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.id, t.sha256, t.merchant, t.label, t.created_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, sha256, merchant, label, created_ms, revoked_ms
                 FROM platform_tokens ORDER BY created_ms, id",
            )
            .map_err(failure)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    sha256: r.get(1)?,
                    merchant: r.get(2)?,
                    label: r.get(3)?,
                    created_ms: r.get(4)?,
                    revoked_ms: r.get(5)?,
                })
            })
            .map_err(failure)?;
        rows.collect::<Result<_, _>>().map_err(failure)
    }

    fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE platform_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }

    fn pace(
        &self,
        account: &str,
        now_ms: i64,
        interval_ms: i64,
        max_wait_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let next_free = turns.get(account).copied();
        let taken = super::turns::take_turn(next_free, now_ms, interval_ms, max_wait_ms);
        Ok(taken.map(|(slot, next)| {
            turns.insert(account.to_string(), next);
            slot
        }))
    }

    fn records_tx(&self, body: TxBody<'_, TxAbort>) -> Result<(), TxAbort> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failure)?;
        let mut writes = SqliteTx(&tx);
        body(&mut writes)?;
        tx.commit().map_err(failure)?;
        Ok(())
    }
}

struct SqliteTx<'a, 'c>(&'a Transaction<'c>);

impl RecordsTx for SqliteTx<'_, '_> {
    fn invoice_state(&mut self, merchant: &str, id: &str) -> StoreResult<Option<String>> {
        self.0
            .query_row(
                "SELECT state FROM invoices WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn save_invoice_state(&mut self, merchant: &str, id: &str, state: &str) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE invoices SET state = ?3 WHERE merchant = ?1 AND id = ?2",
                params![merchant, id, state],
            )
            .map(drop)
            .map_err(failure)
    }

    fn link_customer(&mut self, merchant: &str, id: &str, stripe_id: &str) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT INTO customers (merchant, id, doc, stripe_customer_id)
                 VALUES (?1, ?2, '{}', ?3) ON CONFLICT (merchant, id)
                 DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id",
                params![merchant, id, stripe_id],
            )
            .map(drop)
            .map_err(failure)
    }

    fn unlink_customer(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE customers SET stripe_customer_id = NULL WHERE merchant = ?1 AND id = ?2",
                [merchant, id],
            )
            .map(drop)
            .map_err(failure)
    }

    fn set_card_on_file(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
        payment_method: Option<&str>,
    ) -> StoreResult<()> {
        self.0
            .execute(
                "UPDATE customers SET card_on_file = ?3
                 WHERE merchant = ?1 AND stripe_customer_id = ?2",
                params![merchant, stripe_customer, payment_method],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account_updated(
        &mut self,
        merchant: &str,
        id: &str,
        charges: bool,
        details: bool,
    ) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT INTO accounts (merchant, id, charges_enabled, details_submitted) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (merchant, id) DO UPDATE SET charges_enabled = excluded.charges_enabled,
                 details_submitted = excluded.details_submitted, disconnected = 0",
                params![merchant, id, charges, details],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account_disconnected(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT INTO accounts (merchant, id, disconnected) VALUES (?1, ?2, 1)
                 ON CONFLICT (merchant, id) DO UPDATE SET disconnected = 1, charges_enabled = 0",
                [merchant, id],
            )
            .map(drop)
            .map_err(failure)
    }

    fn set_sync_cursor(&mut self, key: &str, cursor: &str) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT INTO sync_cursors (merchant, cursor) VALUES (?1, ?2)
                 ON CONFLICT (merchant) DO UPDATE SET cursor = excluded.cursor",
                params![key, cursor],
            )
            .map(drop)
            .map_err(failure)
    }

    fn index_pay_link(
        &mut self,
        merchant: &str,
        token_sha256: &str,
        invoice: &str,
    ) -> StoreResult<()> {
        self.0
            .execute(
                "INSERT OR IGNORE INTO pay_links (merchant, token_sha256, invoice) VALUES (?1, ?2, ?3)",
                params![merchant, token_sha256, invoice],
            )
            .map(drop)
            .map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DEFAULT_MERCHANT;
    use std::os::unix::fs::MetadataExt;

    /// Security review S6: records kept by account move to the merchant
    /// that has the account; the platform account's to `default` (the step
    /// of version 7, run on rows as an older version wrote them).
    #[test]
    fn version_7_moves_records_from_accounts_to_merchants() {
        let dir = std::env::temp_dir().join(format!("sqlite-v7-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host.db");
        drop(Sqlite::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO merchants (id, account_id, settings) VALUES ('alpha', 'acct_A', '{}'), ('default', NULL, '{}');
             INSERT INTO kv (ns, key, value) VALUES ('acct_A', 'invoice:i', x'01'), ('', 'invoice:j', x'02'), ('host:x', 'k', x'03');
             INSERT INTO outbox (ns, dedupe_key, recipients, cc, subject, text_body, created_ms)
                 VALUES ('acct_A', 'd', 'a@b', '', 's', 't', 1);
             INSERT INTO sync_cursors (merchant, cursor) VALUES ('acct_A', 'c');",
        )
        .unwrap();
        conn.execute_batch(crate::db::BY_MERCHANT).unwrap();
        let ns: Vec<String> = conn
            .prepare("SELECT ns FROM kv ORDER BY key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ns, ["alpha", "default", "host:x"]);
        let outbox: String = conn
            .query_row("SELECT ns FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(outbox, "alpha");
        let cursor: String = conn
            .query_row("SELECT merchant FROM sync_cursors", [], |r| r.get(0))
            .unwrap();
        assert_eq!(cursor, "alpha");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Security review S11: the database holds customers, emails with pay
    /// links and the host's secrets; no other user may read it.
    #[test]
    fn the_database_and_its_wal_are_readable_by_this_user_only() {
        let dir = std::env::temp_dir().join(format!("sqlite-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host.db");
        let db = Arc::new(Sqlite::open(&path).unwrap());
        db.kv_set("ns", "k", b"v", None).unwrap();
        for file in ["host.db", "host.db-wal", "host.db-shm"] {
            let mode = std::fs::metadata(dir.join(file)).unwrap().mode();
            assert_eq!(mode & 0o077, 0, "{file} is {mode:o}");
        }
        drop(db);
        // One made before, open to all, is closed when opened.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        drop(Sqlite::open(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o077, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_from_before_merchants_keeps_its_records_under_the_default_merchant() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(
            "INSERT INTO invoices (id, doc, state) VALUES ('inv_01', '{}', '{\"status\":\"PAID\"}');
             INSERT INTO customers (id, doc, stripe_customer_id) VALUES ('c1', '{}', 'cus_1');",
        )
        .unwrap();
        let db = Sqlite::init(conn).unwrap();
        let conn = db.conn();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 10);
        let invoice: (String, String) = conn
            .query_row(
                "SELECT merchant, state FROM invoices WHERE id = 'inv_01'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            invoice,
            (DEFAULT_MERCHANT.into(), r#"{"status":"PAID"}"#.into())
        );
        let customer: (String, String) = conn
            .query_row(
                "SELECT merchant, stripe_customer_id FROM customers WHERE id = 'c1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(customer, (DEFAULT_MERCHANT.into(), "cus_1".into()));
        // Opening it again migrates nothing twice.
        drop(conn);
        migrate(&db.conn()).unwrap();
    }
}
