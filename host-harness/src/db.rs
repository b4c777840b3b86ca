//! The host's SQLite database: the plugin's kv, the email outbox, and the
//! billing platform's invoices and customers. One connection behind a mutex:
//! handlers are short, and SQLite serialises writers anyway.

use anyhow::{Context, Result};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The schema as it was before versions were counted (`user_version` 0).
const SCHEMA_V1: &str = "
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

/// Version 2: merchants are data, and invoices and customers belong to one
/// (their ids are the platform's, unique within a merchant only). Rows kept
/// from version 1 belong to the default merchant.
const SCHEMA_V2: &str = "
CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    account_id TEXT UNIQUE,
    settings TEXT NOT NULL
);
ALTER TABLE invoices RENAME TO invoices_v1;
CREATE TABLE invoices (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (merchant, id)
);
INSERT INTO invoices (merchant, id, doc, state)
    SELECT 'default', id, doc, state FROM invoices_v1;
DROP TABLE invoices_v1;
ALTER TABLE customers RENAME TO customers_v1;
CREATE TABLE customers (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    stripe_customer_id TEXT,
    card_on_file TEXT,
    PRIMARY KEY (merchant, id)
);
INSERT INTO customers (merchant, id, doc, stripe_customer_id, card_on_file)
    SELECT 'default', id, doc, stripe_customer_id, card_on_file FROM customers_v1;
DROP TABLE customers_v1;
";

/// The merchant that rows from before version 2 belong to.
pub const DEFAULT_MERCHANT: &str = "default";

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
        migrate(&conn)?;
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
    if version < 2 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V2} PRAGMA user_version = 2; COMMIT;"
        ))
        .context("migrating the database to version 2 (merchants)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_merchants_keeps_its_records_under_the_default_merchant() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(
            "INSERT INTO invoices (id, doc, state) VALUES ('inv_01', '{}', '{\"status\":\"PAID\"}');
             INSERT INTO customers (id, doc, stripe_customer_id) VALUES ('c1', '{}', 'cus_1');",
        )
        .unwrap();
        let db = Db::init(conn).unwrap();
        let conn = db.conn();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
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
