//! The PostgreSQL backend: many `serve` workers on one database, through a
//! pool of connections (r2d2 over the `postgres` crate). Compare-and-swap is
//! a single conditional statement; a records transaction locks the invoice
//! rows it reads (`SELECT … FOR UPDATE`), so two workers applying to one
//! invoice take turns. Migrations run on open, under an advisory lock, so
//! workers starting together migrate once.

use super::pg_session::{SessionManager, SessionTx};
use super::{
    AccountRow, CustomerRow, DeadLetter, Job, MerchantPutError, NewJob, OutboxRow, OutgoingEmail,
    RecordsTx, StoreError, StoreResult, TokenRow, TxAbort, TxBody,
};
use anyhow::{Context, Result};
use r2d2_postgres::PostgresConnectionManager;

// The backend's half of each of the store's concerns (`db::stores`).
mod jobs;
mod kv;
mod merchants;
mod outbox;
mod pacing;
mod records;
mod tokens;

type Pool = r2d2::Pool<SessionManager>;
type Conn = r2d2::PooledConnection<SessionManager>;

/// Each version's statements; `schema_version` counts how far a database has come.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/v01_base.sql"),
    include_str!("../migrations/postgres/v02_queue.sql"),
    include_str!("../migrations/postgres/v03_pacing.sql"),
    include_str!("../migrations/postgres/v04_dead_letters.sql"),
    include_str!("../migrations/postgres/v05_platform_tokens.sql"),
    include_str!("../migrations/postgres/v06_job_accounts.sql"),
    // The plugin's records, emails and cursors by merchant, not by account (S6).
    super::BY_MERCHANT,
    include_str!("../migrations/postgres/v08_emails_sent.sql"),
    // What Stripe said of an account is its merchant's (S18).
    include_str!("../migrations/postgres/v09_accounts_by_merchant.sql"),
    // Which invoice each pay-link token opens, by its SHA-256 (S12).
    include_str!("../migrations/postgres/v10_pay_links.sql"),
    // Whether Stripe restricted an account, and what it needs.
    include_str!("../migrations/postgres/v11_account_health.sql"),
];

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
            // No empty query before every checkout: that was ~10 of the ~26
            // statements of a webhook (docs/speed.md, counted with
            // log_statement=all). A connection the server closed fails its
            // next statement as `Unavailable` (retried by the caller), and
            // r2d2 drops it.
            .test_on_check_out(false)
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
