//! The host's SQLite database: the plugin's kv, the email outbox, and the
//! billing platform's invoices and customers. One connection behind a mutex:
//! handlers are short, and SQLite serialises writers anyway.

use anyhow::{Context, Result};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    ns TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    recipients TEXT NOT NULL,
    cc TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT,
    created_ms INTEGER NOT NULL,
    UNIQUE (ns, dedupe_key)
);
CREATE TABLE IF NOT EXISTS host_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_cursors (
    merchant TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    stripe_customer_id TEXT,
    card_on_file TEXT
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    charges_enabled INTEGER NOT NULL DEFAULT 0,
    details_submitted INTEGER NOT NULL DEFAULT 0,
    disconnected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    state TEXT NOT NULL
);
";

pub struct Db {
    conn: Mutex<Connection>,
    /// Counts writes with an expiry, to purge expired kv entries now and then.
    ticks: std::sync::atomic::AtomicU64,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self> {
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
        conn.execute_batch(SCHEMA)?;
        // Databases made before kv entries could expire gain the column.
        let has_expiry: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('kv') WHERE name = 'expires_ms'")?
            .exists([])?;
        if !has_expiry {
            conn.execute_batch("ALTER TABLE kv ADD COLUMN expires_ms INTEGER")?;
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_ms) WHERE expires_ms IS NOT NULL",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            ticks: Default::default(),
        })
    }

    /// The next count of writes with an expiry.
    pub fn tick(&self) -> u64 {
        self.ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// One kv value, read outside any plugin call (tests and operators).
    /// The pay-link key made on first start and kept here (256 random bits
    /// from the OS), for a host configured without one.
    pub fn pay_link_key(&self) -> Result<String> {
        use rusqlite::OptionalExtension;
        let conn = self.conn();
        let kept: Option<String> = conn
            .query_row(
                "SELECT value FROM host_secrets WHERE name = 'pay-link'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(k) = kept {
            return Ok(k);
        }
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .context("reading /dev/urandom for a pay-link key")?;
        let key = format!("plk_{}", hex::encode(bytes));
        conn.execute(
            "INSERT OR IGNORE INTO host_secrets (name, value) VALUES ('pay-link', ?1)",
            [&key],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM host_secrets WHERE name = 'pay-link'",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
                [ns, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The connection; a poisoned lock still holds a consistent SQLite handle.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}
