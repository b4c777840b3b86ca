//! The plugin's kv, by merchant, with expiry.

use super::*;
use crate::db::KvListing;
use crate::ports::KvStore;

/// An entry past its expiry reads as absent.
const KV_SELECT: &str = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2
     AND (expires_ms IS NULL OR expires_ms > ?3)";
const KV_UPSERT: &str = "INSERT INTO kv (ns, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms";

impl KvStore for Sqlite {
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

    fn make_durable(&self) -> StoreResult<()> {
        self.durable()
    }

    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("DELETE FROM kv WHERE expires_ms IS NOT NULL AND expires_ms <= ?1")
            .map_err(failure)?;
        stmt.execute(params![now_ms]).map(drop).map_err(failure)
    }
}

impl KvListing for Sqlite {
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
}
