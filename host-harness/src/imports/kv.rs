//! `kv`: rows of the `kv` table, namespaced by merchant. Compare-and-swap runs
//! in an IMMEDIATE transaction, so two hosts on one database never both win.
//! Time spent here is off the guest's clock (see `HostState::off_the_clock`).

use super::HostState;
use crate::runtime::billing::stripe_plugin::kv::{Host, KvError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

const SELECT: &str = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2";
const UPSERT: &str = "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value";

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

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.off_the_clock(|host| set(host, &key, &value))
    }

    fn delete(&mut self, key: String) -> Result<(), KvError> {
        self.off_the_clock(|host| delete(host, &key))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError> {
        self.off_the_clock(|host| compare_and_swap(host, &key, expected.as_deref(), &new))
    }
}

fn get(host: &HostState, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    let conn = host.env.db.conn();
    conn.prepare_cached(SELECT)
        .and_then(|mut stmt| {
            stmt.query_row(params![host.namespace, key], |r| r.get(0))
                .optional()
        })
        .map_err(failure)
}

fn set(host: &HostState, key: &str, value: &[u8]) -> Result<(), KvError> {
    let conn = host.env.db.conn();
    conn.prepare_cached(UPSERT)
        .and_then(|mut stmt| stmt.execute(params![host.namespace, key, value]))
        .map(drop)
        .map_err(failure)
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
) -> Result<bool, KvError> {
    let mut conn = host.env.db.conn();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failure)?;
    let current: Option<Vec<u8>> = tx
        .prepare_cached(SELECT)
        .and_then(|mut stmt| {
            stmt.query_row(params![host.namespace, key], |r| r.get(0))
                .optional()
        })
        .map_err(failure)?;
    if current.as_deref() != expected {
        return Ok(false);
    }
    tx.prepare_cached(UPSERT)
        .and_then(|mut stmt| stmt.execute(params![host.namespace, key, new]))
        .map_err(failure)?;
    tx.commit().map_err(failure)?;
    Ok(true)
}
