//! The store a host runs on: SQLite or PostgreSQL behind the `Backend`
//! trait, chosen by the target's form, and the runtime's `HostStore` on it.

use super::{Backend, OutgoingEmail, StoreResult, is_postgres, postgres, sqlite};
use anyhow::Result;

/// The store a host runs on.
pub struct Db {
    backend: Box<dyn Backend>,
    /// Kept for tests and the bench, which look inside SQLite directly.
    sqlite: Option<std::sync::Arc<sqlite::Sqlite>>,
}

impl Db {
    /// `target` is a SQLite path, `:memory:`, or a `postgres://` URL.
    pub fn open(target: &str) -> Result<Self> {
        if is_postgres(target) {
            return Ok(Self::with(
                Box::new(postgres::Postgres::open(target)?),
                None,
            ));
        }
        let db = std::sync::Arc::new(if target == ":memory:" {
            sqlite::Sqlite::in_memory()?
        } else {
            sqlite::Sqlite::open(std::path::Path::new(target))?
        });
        Ok(Self::with(Box::new(db.clone()), Some(db)))
    }

    pub fn in_memory() -> Result<Self> {
        Self::open(":memory:")
    }

    fn with(backend: Box<dyn Backend>, sqlite: Option<std::sync::Arc<sqlite::Sqlite>>) -> Self {
        Self {
            backend,
            sqlite,
        }
    }

    /// The SQLite connection, for tests and the bench that look inside it.
    pub fn sqlite(&self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>> {
        match &self.sqlite {
            Some(s) => Ok(s.conn()),
            None => anyhow::bail!("this store is not SQLite"),
        }
    }

    /// One kv value, live or expired, read outside any plugin call.
    pub fn kv_peek(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.backend.kv_get(ns, key, i64::MIN)?)
    }
}

/// The runtime's kv and outbox, on this store.
impl crate::ports::HostStore for Db {
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        self.backend.kv_get(ns, key, now_ms)
    }
    fn kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        expires_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.backend.kv_set(ns, key, value, expires_ms)
    }
    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.backend.kv_delete(ns, key)
    }
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.backend
            .kv_compare_and_swap(ns, key, expected, new, expires_ms, now_ms)
    }
    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()> {
        self.backend.kv_purge_expired(now_ms)
    }
    fn outbox_insert(&self, email: &OutgoingEmail) -> StoreResult<bool> {
        self.backend.outbox_insert(email)
    }
    fn customer_has_address(&self, ns: &str, address: &str) -> StoreResult<bool> {
        self.backend.customer_has_address(ns, address)
    }
}

impl std::ops::Deref for Db {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

