//! The store a host runs on: SQLite or PostgreSQL behind the `Backend`
//! trait, chosen by the target's form; the runtime's `HostStore` is the
//! same backend.

use super::{Backend, is_postgres, postgres, sqlite};
use crate::ports::HostStore;
use anyhow::Result;
use std::sync::Arc;

/// The store a host runs on.
pub struct Db {
    backend: Arc<dyn Backend>,
    /// Kept for tests and the bench, which look inside SQLite directly.
    sqlite: Option<Arc<sqlite::Sqlite>>,
}

impl Db {
    /// `target` is a SQLite path, `:memory:`, or a `postgres://` URL.
    pub fn open(target: &str) -> Result<Self> {
        if is_postgres(target) {
            return Ok(Self::with(
                Arc::new(postgres::Postgres::open(target)?),
                None,
            ));
        }
        let db = Arc::new(if target == ":memory:" {
            sqlite::Sqlite::in_memory()?
        } else {
            sqlite::Sqlite::open(std::path::Path::new(target))?
        });
        Ok(Self::with(db.clone(), Some(db)))
    }

    pub fn in_memory() -> Result<Self> {
        Self::open(":memory:")
    }

    fn with(backend: Arc<dyn Backend>, sqlite: Option<Arc<sqlite::Sqlite>>) -> Self {
        Self { backend, sqlite }
    }

    /// The SQLite connection, for tests and the bench that look inside it.
    pub fn sqlite(&self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>> {
        match &self.sqlite {
            Some(s) => Ok(s.conn()),
            None => anyhow::bail!("this store is not SQLite"),
        }
    }

    /// The part of this store the runtime's imports use (kv, the outbox's
    /// inserts): the backend itself.
    pub fn host_store(&self) -> Arc<dyn HostStore> {
        self.backend.clone()
    }

    /// One kv value, live or expired, read outside any plugin call.
    pub fn kv_peek(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.backend.kv_get(ns, key, i64::MIN)?)
    }
}

impl std::ops::Deref for Db {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}
