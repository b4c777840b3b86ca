//! The SQLite backend: one file, one process. WAL with `synchronous =
//! NORMAL` and group commit: a commit does not sync, and
//! [`KvStore::make_durable`] syncs the WAL for every writer that asks, before
//! anything leaves the process (see `db::group_sync`). What is answered is
//! as durable as with `synchronous = FULL`. Schema versions are counted in
//! `user_version`.

use super::{
    AccountRow, CustomerRow, DeadLetter, Job, MerchantPutError, NewJob, OutboxRow, OutgoingEmail,
    RecordsTx, StoreError, StoreResult, TokenRow, TxAbort, TxBody,
};
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

// The backend's half of each of the store's concerns (`db::stores`).
mod jobs;
mod kv;
mod merchants;
mod outbox;
mod pacing;
mod records;
mod tokens;

/// The schema as it was before versions were counted (`user_version` 0).
const SCHEMA_V1: &str = include_str!("../migrations/sqlite/v01_base.sql");

/// One connection behind a mutex: handlers are short, and SQLite serialises
/// writers anyway.
pub struct Sqlite {
    conn: Mutex<Connection>,
    /// Each account's next free Stripe turn. In memory: a SQLite store has
    /// one worker, and a turn is worth nothing after a restart.
    turns: Mutex<std::collections::HashMap<String, i64>>,
    /// The WAL's group commit; none in memory.
    wal: Option<Wal>,
}

/// The write-ahead log's file, synced for many commits at once.
struct Wal {
    path: std::path::PathBuf,
    file: Mutex<Option<std::fs::File>>,
    group: super::group_sync::GroupSync,
    /// How many times the WAL was synced.
    syncs: std::sync::atomic::AtomicU64,
}

impl Wal {
    fn sync(&self) -> std::io::Result<()> {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            let wal = std::fs::File::open(&self.path)?;
            // The WAL is made anew when the store is opened; its name in
            // the directory must survive a power loss too (SQLite syncs the
            // directory itself only at its own first sync of the WAL, which
            // at NORMAL may come only at a checkpoint).
            if let Some(dir) = self.path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                std::fs::File::open(dir)?.sync_all()?;
            }
            *file = Some(wal);
        }
        file.as_ref().map_or(Ok(()), std::fs::File::sync_data)
    }
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
        // The migrations commit at FULL; every commit after them syncs
        // through the group (`make_durable`).
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut db = Self::init(conn)?;
        db.conn().pragma_update(None, "synchronous", "NORMAL")?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        db.wal = Some(Wal {
            path: wal.into(),
            file: Mutex::new(None),
            group: Default::default(),
            syncs: Default::default(),
        });
        Ok(db)
    }

    /// How many times the WAL was synced since the store was opened.
    pub fn wal_syncs(&self) -> u64 {
        self.wal
            .as_ref()
            .map_or(0, |w| w.syncs.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Every commit so far on disk (see `db::group_sync`).
    fn durable(&self) -> StoreResult<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let committed = self.conn().total_changes();
        wal.group
            .durable(committed, || wal.sync())
            .map_err(|e| StoreError::Unavailable(format!("syncing the WAL: {e}")))
    }

    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement of the store stays prepared (rusqlite keeps 16).
        conn.set_prepared_statement_cache_capacity(128);
        migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            turns: Mutex::default(),
            wal: None,
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
    (
        2,
        include_str!("../migrations/sqlite/v02_merchants.sql"),
        "merchants",
    ),
    // Version 3: the durable work queue.
    (
        3,
        include_str!("../migrations/sqlite/v03_queue.sql"),
        "the work queue",
    ),
    // Version 4: jobs that failed for good, kept for an operator.
    (
        4,
        include_str!("../migrations/sqlite/v04_dead_letters.sql"),
        "dead letters",
    ),
    // Version 5: the platform's API tokens, as hashes.
    (
        5,
        include_str!("../migrations/sqlite/v05_platform_tokens.sql"),
        "platform tokens",
    ),
    // Version 6: the account a job was queued for.
    (
        6,
        include_str!("../migrations/sqlite/v06_job_accounts.sql"),
        "jobs' accounts",
    ),
    // Version 7: records by merchant, not by account (see `db::BY_MERCHANT`).
    (7, super::BY_MERCHANT, "records by merchant"),
    // Version 8: when the relay took each email.
    (
        8,
        include_str!("../migrations/sqlite/v08_emails_sent.sql"),
        "emails sent",
    ),
    // Version 9: what Stripe said of an account is its merchant's (security
    // review S18); rows move to the merchant that has the account.
    (
        9,
        include_str!("../migrations/sqlite/v09_accounts_by_merchant.sql"),
        "accounts by merchant",
    ),
    // Version 10: which invoice each pay-link token opens (by its SHA-256),
    // so that the host can refuse a revoked or expired link (S12).
    (
        10,
        include_str!("../migrations/sqlite/v10_pay_links.sql"),
        "pay links",
    ),
    // Version 11: whether Stripe restricted an account, and what it needs.
    (
        11,
        include_str!("../migrations/sqlite/v11_account_health.sql"),
        "account health",
    ),
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

/// `execute` and `query_row` through the connection's statement cache
/// (rusqlite's own parse the SQL at every call; on the webhook path that
/// parsing showed in the profile).
trait Cached {
    fn exec_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DEFAULT_MERCHANT;
    use crate::ports::KvStore;
    use std::os::unix::fs::MetadataExt;

    /// An empty directory of this test's own, and the database path in it.
    fn scratch(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sqlite-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host.db");
        (dir, path)
    }

    /// Security review S6: records kept by account move to the merchant
    /// that has the account; the platform account's to `default` (the step
    /// of version 7, run on rows as an older version wrote them).
    #[test]
    fn version_7_moves_records_from_accounts_to_merchants() {
        let (dir, path) = scratch("v7");
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
        let (dir, path) = scratch("mode");
        let db = Sqlite::open(&path).unwrap();
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

    /// Group commit: a write is synced when durability is asked for, once;
    /// reads and a second ask sync nothing; what was written is there after
    /// the store is opened again.
    #[test]
    fn writes_are_synced_once_when_asked_and_survive_reopening() {
        let (dir, path) = scratch("sync");
        let db = Sqlite::open(&path).unwrap();
        let synchronous: i64 = db
            .conn()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL: commits leave syncing to the group");
        db.make_durable().unwrap();
        let before = db.wal_syncs();
        db.kv_set("ns", "k", b"v", None).unwrap();
        db.kv_set("ns", "k2", b"v2", None).unwrap();
        db.make_durable().unwrap();
        assert_eq!(db.wal_syncs(), before + 1, "two commits, one sync");
        db.kv_get("ns", "k", 0).unwrap();
        db.make_durable().unwrap();
        assert_eq!(db.wal_syncs(), before + 1, "nothing new to sync");
        drop(db);
        let db = Sqlite::open(&path).unwrap();
        assert_eq!(
            db.kv_get("ns", "k2", 0).unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert_eq!(Sqlite::in_memory().unwrap().wal_syncs(), 0);
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
        assert_eq!(version, 11);
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
