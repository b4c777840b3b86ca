//! `kv`: rows of the `kv` table, namespaced by merchant. Compare-and-swap runs
//! in an IMMEDIATE transaction, so two hosts on one database never both win.
//! Time spent here is off the guest's clock (see `HostState::off_the_clock`).

use super::HostState;
use crate::bindings::billing::stripe_plugin::kv::{Host, KvError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// An entry past its expiry reads as absent.
const SELECT: &str = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2
     AND (expires_ms IS NULL OR expires_ms > ?3)";
const UPSERT: &str = "INSERT INTO kv (ns, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms";
/// Expired entries are removed now and then (every `PURGE_EVERY` writes with an expiry).
const PURGE: &str = "DELETE FROM kv WHERE expires_ms IS NOT NULL AND expires_ms <= ?1";
const PURGE_EVERY: u64 = 256;

fn failure(e: rusqlite::Error) -> KvError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            KvError::Unavailable("database busy".into())
        }
        other => KvError::Other(other.to_string()),
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.off_the_clock(|host| get(host, &key))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), KvError> {
        self.off_the_clock(|host| set(host, &key, &value, ttl_ms))
    }

    fn delete(&mut self, key: String) -> Result<(), KvError> {
        self.off_the_clock(|host| delete(host, &key))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, KvError> {
        self.off_the_clock(|host| compare_and_swap(host, &key, expected.as_deref(), &new, ttl_ms))
    }
}

fn now(host: &HostState) -> i64 {
    i64::try_from(host.env.clock.now_ms()).unwrap_or(i64::MAX)
}

/// When an entry written now with `ttl_ms` expires (None: never).
fn expiry(host: &HostState, ttl_ms: Option<u64>) -> Option<i64> {
    ttl_ms.map(|t| now(host).saturating_add(i64::try_from(t).unwrap_or(i64::MAX)))
}

fn get(host: &HostState, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    let conn = host.env.db.conn();
    conn.prepare_cached(SELECT)
        .and_then(|mut stmt| {
            stmt.query_row(params![host.namespace, key, now(host)], |r| r.get(0))
                .optional()
        })
        .map_err(failure)
}

fn set(host: &HostState, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), KvError> {
    let conn = host.env.db.conn();
    conn.prepare_cached(UPSERT)
        .and_then(|mut stmt| {
            stmt.execute(params![host.namespace, key, value, expiry(host, ttl_ms)])
        })
        .map_err(failure)?;
    purge_now_and_then(host, &conn, ttl_ms)
}

fn purge_now_and_then(
    host: &HostState,
    conn: &rusqlite::Connection,
    ttl_ms: Option<u64>,
) -> Result<(), KvError> {
    if ttl_ms.is_some() && host.env.db.tick().is_multiple_of(PURGE_EVERY) {
        conn.prepare_cached(PURGE)
            .and_then(|mut stmt| stmt.execute(params![now(host)]))
            .map_err(failure)?;
    }
    Ok(())
}

fn delete(host: &HostState, key: &str) -> Result<(), KvError> {
    let conn = host.env.db.conn();
    conn.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")
        .and_then(|mut stmt| stmt.execute(params![host.namespace, key]))
        .map(drop)
        .map_err(failure)
}

fn compare_and_swap(
    host: &HostState,
    key: &str,
    expected: Option<&[u8]>,
    new: &[u8],
    ttl_ms: Option<u64>,
) -> Result<bool, KvError> {
    let mut conn = host.env.db.conn();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failure)?;
    let current: Option<Vec<u8>> = tx
        .prepare_cached(SELECT)
        .and_then(|mut stmt| {
            stmt.query_row(params![host.namespace, key, now(host)], |r| r.get(0))
                .optional()
        })
        .map_err(failure)?;
    if current.as_deref() != expected {
        return Ok(false);
    }
    tx.prepare_cached(UPSERT)
        .and_then(|mut stmt| stmt.execute(params![host.namespace, key, new, expiry(host, ttl_ms)]))
        .map_err(failure)?;
    tx.commit().map_err(failure)?;
    purge_now_and_then(host, &conn, ttl_ms)?;
    Ok(true)
}
