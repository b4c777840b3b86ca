//! The plugin's kv, by merchant, with expiry.

use super::*;
use crate::db::KvListing;
use crate::ports::KvStore;

impl KvStore for Postgres {
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
}

impl KvListing for Postgres {
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
}
