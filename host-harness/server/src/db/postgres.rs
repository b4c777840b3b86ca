//! The PostgreSQL backend: many `serve` workers on one database, through a
//! pool of connections (r2d2 over the `postgres` crate). Compare-and-swap is
//! a single conditional statement; a records transaction locks the invoice
//! rows it reads (`SELECT … FOR UPDATE`), so two workers applying to one
//! invoice take turns. Migrations run on open, under an advisory lock, so
//! workers starting together migrate once.

use super::pg_session::{SessionManager, SessionTx};
use super::{
    AccountRow, Backend, CustomerRow, DeadLetter, Job, MerchantPutError, NewJob, OutboxRow,
    OutgoingEmail, RecordsTx, StoreError, StoreResult, TokenRow, TxAbort, TxBody,
};
use anyhow::{Context, Result};
use r2d2_postgres::PostgresConnectionManager;

type Pool = r2d2::Pool<SessionManager>;
type Conn = r2d2::PooledConnection<SessionManager>;

/// Each version's statements; `schema_version` counts how far a database has come.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/v01_base.sql"),
    include_str!("migrations/postgres/v02_queue.sql"),
    include_str!("migrations/postgres/v03_pacing.sql"),
    include_str!("migrations/postgres/v04_dead_letters.sql"),
    include_str!("migrations/postgres/v05_platform_tokens.sql"),
    include_str!("migrations/postgres/v06_job_accounts.sql"),
    // The plugin's records, emails and cursors by merchant, not by account (S6).
    super::BY_MERCHANT,
    include_str!("migrations/postgres/v08_emails_sent.sql"),
    // What Stripe said of an account is its merchant's (S18).
    include_str!("migrations/postgres/v09_accounts_by_merchant.sql"),
    // Which invoice each pay-link token opens, by its SHA-256 (S12).
    include_str!("migrations/postgres/v10_pay_links.sql"),
];

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

pub struct Postgres {
    pool: Pool,
}

fn failure(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    let transient = e.is_closed()
        || e.code().is_some_and(|c| {
            [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(c)
        })
        || e.code().is_none();
    // The server's own words: `Display` of a server error says only "db error".
    let text = e.as_db_error().map_or_else(
        || e.to_string(),
        |d| format!("{} (SQLSTATE {})", d.message(), d.code().code()),
    );
    if transient {
        StoreError::Unavailable(text)
    } else {
        StoreError::Failed(text)
    }
}

/// Makes database `name` anew on the server at `server` (a URL) and returns
/// its URL: for tests and benchmarks that each want an empty store.
pub fn create_database(server: &str, name: &str) -> Result<String> {
    let (config, tls) = super::pg_tls::config(server)?;
    let mut client = config
        .connect(tls)
        .with_context(|| format!("connecting to {server}"))?;
    // Two calls: one batch would run both in one transaction, which
    // PostgreSQL refuses for these.
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
    client.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let mut url = url::Url::parse(server)?;
    url.set_path(name);
    Ok(url.to_string())
}

impl Postgres {
    pub fn open(url: &str) -> Result<Self> {
        let (config, tls) = super::pg_tls::config(url)?;
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(SessionManager(PostgresConnectionManager::new(config, tls)))
            .context("connecting to PostgreSQL")?;
        let store = Self { pool };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> StoreResult<Conn> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("no PostgreSQL connection: {e}")))
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // One migrator at a time, however many workers start at once.
        tx.execute("SELECT pg_advisory_xact_lock(7355608)", &[])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")?;
        let version: i32 = tx
            .query_opt("SELECT version FROM schema_version", &[])?
            .map_or(0, |r| r.get(0));
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(step)
                .with_context(|| format!("migrating PostgreSQL to version {}", i + 1))?;
        }
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(MIGRATIONS.len() as i32)],
        )?;
        tx.commit()?;
        Ok(())
    }
}

impl Backend for Postgres {
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT value FROM kv WHERE ns = $1 AND key = $2
                 AND (expires_ms IS NULL OR expires_ms > $3)",
                &[&ns, &key, &now_ms],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        expires_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.conn()?
            .execute(
                "INSERT INTO kv (ns, key, value, expires_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,
                 expires_ms = excluded.expires_ms",
                &[&ns, &key, &value, &expires_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.conn()?
            .execute("DELETE FROM kv WHERE ns = $1 AND key = $2", &[&ns, &key])
            .map(drop)
            .map_err(failure)
    }

    /// One statement each way. Absent: insert, or take over an expired entry
    /// (a concurrent insert makes this one conflict, and the live row fails
    /// the `WHERE`). Present: an `UPDATE` whose `WHERE` PostgreSQL evaluates
    /// again on the newest row after waiting for its lock, so of two swaps
    /// from one value only the first matches.
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = match expected {
            None => conn.execute(
                "INSERT INTO kv (ns, key, value, expires_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,
                 expires_ms = excluded.expires_ms
                 WHERE kv.expires_ms IS NOT NULL AND kv.expires_ms <= $5",
                &[&ns, &key, &new, &expires_ms, &now_ms],
            ),
            Some(old) => conn.execute(
                "UPDATE kv SET value = $3, expires_ms = $4
                 WHERE ns = $1 AND key = $2 AND value = $5
                 AND (expires_ms IS NULL OR expires_ms > $6)",
                &[&ns, &key, &new, &expires_ms, &old, &now_ms],
            ),
        }
        .map_err(failure)?;
        Ok(n == 1)
    }

    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()> {
        self.conn()?
            .execute(
                "DELETE FROM kv WHERE expires_ms IS NOT NULL AND expires_ms <= $1",
                &[&now_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn kv_rows(&self) -> StoreResult<Vec<(String, String, Vec<u8>)>> {
        let rows = self
            .conn()?
            .query("SELECT ns, key, value FROM kv ORDER BY ns, key", &[])
            .map_err(failure)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

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
                    &e.html_body, &e.created_ms, &e.deliver, &super::EMAIL_JOB,
                ],
            )
            .map_err(failure)?;
        Ok(row.get::<_, i64>(0) == 1)
    }

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

    fn legacy_host_secret(&self, name: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt("SELECT value FROM host_secrets WHERE name = $1", &[&name])
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn delete_legacy_host_secret(&self, name: &str) -> StoreResult<()> {
        self.conn()?
            .execute("DELETE FROM host_secrets WHERE name = $1", &[&name])
            .map(drop)
            .map_err(failure)
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

    fn merchant_settings(&self, id: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt("SELECT settings FROM merchants WHERE id = $1", &[&id])
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn merchant_by_account(&self, account: &str) -> StoreResult<Option<(String, String)>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT id, settings FROM merchants WHERE account_id = $1",
                &[&account],
            )
            .map_err(failure)?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn merchant_ids(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .conn()?
            .query("SELECT id FROM merchants ORDER BY id", &[])
            .map_err(failure)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn put_merchant(
        &self,
        id: &str,
        account: Option<&str>,
        settings: &str,
    ) -> Result<(), MerchantPutError> {
        let result = self.conn().map_err(MerchantPutError::Store)?.execute(
            "INSERT INTO merchants (id, account_id, settings) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id,
             settings = excluded.settings",
            &[&id, &account, &settings],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(MerchantPutError::AccountTaken)
            }
            Err(e) => Err(MerchantPutError::Store(failure(e))),
        }
    }

    fn customer(&self, merchant: &str, id: &str) -> StoreResult<Option<CustomerRow>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT doc, stripe_customer_id, card_on_file FROM customers
                 WHERE merchant = $1 AND id = $2",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    fn put_customer(&self, merchant: &str, id: &str, doc: &str) -> StoreResult<()> {
        self.conn()?
            .execute(
                "INSERT INTO customers (merchant, id, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (merchant, id) DO UPDATE SET doc = excluded.doc",
                &[&merchant, &id, &doc],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account(&self, merchant: &str, id: &str) -> StoreResult<Option<AccountRow>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT charges_enabled, details_submitted, disconnected FROM accounts
                 WHERE merchant = $1 AND id = $2",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| AccountRow {
            charges_enabled: r.get(0),
            details_submitted: r.get(1),
            disconnected: r.get(2),
        }))
    }

    fn invoice(&self, merchant: &str, id: &str) -> StoreResult<Option<(String, String)>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT doc, state FROM invoices WHERE merchant = $1 AND id = $2",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn insert_invoice(
        &self,
        merchant: &str,
        id: &str,
        doc: &str,
        state: &str,
    ) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO invoices (merchant, id, doc, state) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (merchant, id) DO NOTHING",
                &[&merchant, &id, &doc, &state],
            )
            .map_err(failure)?;
        Ok(n == 1)
    }

    fn set_amount_due(&self, merchant: &str, id: &str, amount_due: &str) -> StoreResult<()> {
        self.conn()?
            .execute(
                "UPDATE invoices SET doc = jsonb_set(doc::jsonb, '{amountDue}', to_jsonb($3::text))::text
                 WHERE merchant = $1 AND id = $2",
                &[&merchant, &id, &amount_due],
            )
            .map(drop)
            .map_err(failure)
    }

    fn pay_link_invoice(&self, merchant: &str, token_sha256: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT invoice FROM pay_links WHERE merchant = $1 AND token_sha256 = $2",
                &[&merchant, &token_sha256],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn sync_cursor(&self, key: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT cursor FROM sync_cursors WHERE merchant = $1",
                &[&key],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn enqueue_job(&self, job: &NewJob) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error, account)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (merchant, kind, subject) DO NOTHING",
                &[
                    &job.merchant,
                    &job.kind,
                    &job.subject,
                    &job.run_at_ms,
                    &job.created_ms,
                    &job.error,
                    &job.account,
                ],
            )
            .map_err(failure)?;
        Ok(n == 1)
    }

    /// One statement: the inner `SELECT … FOR UPDATE SKIP LOCKED` passes
    /// over rows another worker is claiming right now.
    fn claim_job(&self, now_ms: i64, lease_until_ms: i64) -> StoreResult<Option<Job>> {
        let row = self
            .conn()?
            .query_opt(
                "UPDATE jobs SET locked_until_ms = $2, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE run_at_ms <= $1
                             AND (locked_until_ms IS NULL OR locked_until_ms <= $1)
                             ORDER BY run_at_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, merchant, kind, subject, attempts, account",
                &[&now_ms, &lease_until_ms],
            )
            .map_err(failure)?;
        Ok(row.map(|r| Job {
            id: r.get(0),
            merchant: r.get(1),
            kind: r.get(2),
            subject: r.get(3),
            attempts: r.get(4),
            account: r.get(5),
        }))
    }

    fn finish_job(&self, id: i64) -> StoreResult<()> {
        self.conn()?
            .execute("DELETE FROM jobs WHERE id = $1", &[&id])
            .map(drop)
            .map_err(failure)
    }

    fn retry_job(&self, id: i64, run_at_ms: i64, error: &str) -> StoreResult<()> {
        self.conn()?
            .execute(
                "UPDATE jobs SET run_at_ms = $2, locked_until_ms = NULL, last_error = $3 WHERE id = $1",
                &[&id, &run_at_ms, &error],
            )
            .map(drop)
            .map_err(failure)
    }

    fn queue_stats(&self, now_ms: i64) -> StoreResult<(i64, i64)> {
        let row = self
            .conn()?
            .query_one(
                "SELECT count(*), coalesce($1 - min(created_ms), 0) FROM jobs",
                &[&now_ms],
            )
            .map_err(failure)?;
        Ok((row.get(0), row.get(1)))
    }

    fn cancel_job(&self, merchant: &str, kind: &str, subject: &str) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                "DELETE FROM jobs WHERE merchant = $1 AND kind = $2 AND subject = $3",
                &[&merchant, &kind, &subject],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }

    /// One statement: the row leaves the queue and lands in the dead letters together.
    fn bury_job(&self, id: i64, error: &str, now_ms: i64) -> StoreResult<()> {
        self.conn()?
            .execute(
                "WITH gone AS (DELETE FROM jobs WHERE id = $1
                               RETURNING merchant, kind, subject, attempts, created_ms)
                 INSERT INTO dead_letters (merchant, kind, subject, attempts, created_ms, died_ms, error)
                 SELECT merchant, kind, subject, attempts, created_ms, $2, $3 FROM gone",
                &[&id, &now_ms, &error],
            )
            .map(drop)
            .map_err(failure)
    }

    fn dead_letters(&self, merchant: &str) -> StoreResult<Vec<DeadLetter>> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, kind, subject, attempts, created_ms, died_ms, error
                 FROM dead_letters WHERE merchant = $1 ORDER BY id",
                &[&merchant],
            )
            .map_err(failure)?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                id: r.get(0),
                kind: r.get(1),
                subject: r.get(2),
                attempts: r.get(3),
                created_ms: r.get(4),
                died_ms: r.get(5),
                error: r.get(6),
            })
            .collect())
    }

    /// One statement: the dead letter leaves and its job is queued, due now.
    fn revive_dead_letter(&self, merchant: &str, id: i64, now_ms: i64) -> StoreResult<bool> {
        let row = self
            .conn()?
            .query_opt(
                "WITH gone AS (DELETE FROM dead_letters WHERE id = $1 AND merchant = $2
                               RETURNING merchant, kind, subject, created_ms, error),
                 queued AS (INSERT INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
                            SELECT merchant, kind, subject, $3, created_ms, error FROM gone
                            ON CONFLICT (merchant, kind, subject) DO NOTHING)
                 SELECT count(*) FROM gone",
                &[&id, &merchant, &now_ms],
            )
            .map_err(failure)?;
        Ok(row.is_some_and(|r| r.get::<_, i64>(0) > 0))
    }

    fn dead_letter_count(&self) -> StoreResult<i64> {
        let row = self
            .conn()?
            .query_one("SELECT count(*) FROM dead_letters", &[])
            .map_err(failure)?;
        Ok(row.get(0))
    }

    fn put_token(&self, t: &TokenRow) -> StoreResult<()> {
        self.conn()?
            .execute(
                "INSERT INTO platform_tokens (id, sha256, merchant, label, created_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&t.id, &t.sha256, &t.merchant, &t.label, &t.created_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, sha256, merchant, label, created_ms, revoked_ms
                 FROM platform_tokens ORDER BY created_ms, id",
                &[],
            )
            .map_err(failure)?;
        Ok(rows
            .iter()
            .map(|r| TokenRow {
                id: r.get(0),
                sha256: r.get(1),
                merchant: r.get(2),
                label: r.get(3),
                created_ms: r.get(4),
                revoked_ms: r.get(5),
            })
            .collect())
    }

    fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE platform_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &now_ms],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }

    /// `turns::take_turn` as one statement: the row's lock orders the
    /// workers, and a turn too far away updates nothing and returns no row.
    fn pace(
        &self,
        account: &str,
        now_ms: i64,
        interval_ms: i64,
        max_wait_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let row = self
            .conn()?
            .query_opt(
                "INSERT INTO stripe_pacing AS p (account, next_free_ms)
                 VALUES ($1, $2::BIGINT + $3::BIGINT)
                 ON CONFLICT (account) DO UPDATE
                 SET next_free_ms = GREATEST(p.next_free_ms, $2) + $3
                 WHERE GREATEST(p.next_free_ms, $2) <= $2 + $4::BIGINT
                 RETURNING next_free_ms - $3",
                &[&account, &now_ms, &interval_ms, &max_wait_ms],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn records_tx(&self, body: TxBody<'_, TxAbort>) -> Result<(), TxAbort> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(failure)?;
        body(&mut PostgresTx(&mut tx))?;
        tx.commit().map_err(failure)?;
        Ok(())
    }
}

struct PostgresTx<'a, 'c>(&'a mut SessionTx<'c>);

impl PostgresTx<'_, '_> {
    fn run(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<()> {
        self.0.execute(sql, params).map(drop).map_err(failure)
    }
}

impl RecordsTx for PostgresTx<'_, '_> {
    fn invoice_state(&mut self, merchant: &str, id: &str) -> StoreResult<Option<String>> {
        let row = self
            .0
            .query_opt(
                "SELECT state FROM invoices WHERE merchant = $1 AND id = $2 FOR UPDATE",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn save_invoice_state(&mut self, merchant: &str, id: &str, state: &str) -> StoreResult<()> {
        self.run(
            "UPDATE invoices SET state = $3 WHERE merchant = $1 AND id = $2",
            &[&merchant, &id, &state],
        )
    }

    fn link_customer(&mut self, merchant: &str, id: &str, stripe_id: &str) -> StoreResult<()> {
        self.run(
            "INSERT INTO customers (merchant, id, doc, stripe_customer_id)
             VALUES ($1, $2, '{}', $3) ON CONFLICT (merchant, id)
             DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id",
            &[&merchant, &id, &stripe_id],
        )
    }

    fn unlink_customer(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.run(
            "UPDATE customers SET stripe_customer_id = NULL WHERE merchant = $1 AND id = $2",
            &[&merchant, &id],
        )
    }

    fn set_card_on_file(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
        payment_method: Option<&str>,
    ) -> StoreResult<()> {
        self.run(
            "UPDATE customers SET card_on_file = $3 WHERE merchant = $1 AND stripe_customer_id = $2",
            &[&merchant, &stripe_customer, &payment_method],
        )
    }

    fn account_updated(
        &mut self,
        merchant: &str,
        id: &str,
        charges: bool,
        details: bool,
    ) -> StoreResult<()> {
        self.run(
            "INSERT INTO accounts (merchant, id, charges_enabled, details_submitted) VALUES ($1, $2, $3, $4)
             ON CONFLICT (merchant, id) DO UPDATE SET charges_enabled = excluded.charges_enabled,
             details_submitted = excluded.details_submitted, disconnected = FALSE",
            &[&merchant, &id, &charges, &details],
        )
    }

    fn account_disconnected(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.run(
            "INSERT INTO accounts (merchant, id, disconnected) VALUES ($1, $2, TRUE)
             ON CONFLICT (merchant, id) DO UPDATE SET disconnected = TRUE, charges_enabled = FALSE",
            &[&merchant, &id],
        )
    }

    fn set_sync_cursor(&mut self, key: &str, cursor: &str) -> StoreResult<()> {
        self.run(
            "INSERT INTO sync_cursors (merchant, cursor) VALUES ($1, $2)
             ON CONFLICT (merchant) DO UPDATE SET cursor = excluded.cursor",
            &[&key, &cursor],
        )
    }

    fn index_pay_link(
        &mut self,
        merchant: &str,
        token_sha256: &str,
        invoice: &str,
    ) -> StoreResult<()> {
        self.run(
            "INSERT INTO pay_links (merchant, token_sha256, invoice) VALUES ($1, $2, $3)
             ON CONFLICT (merchant, token_sha256) DO NOTHING",
            &[&merchant, &token_sha256, &invoice],
        )
    }
}
