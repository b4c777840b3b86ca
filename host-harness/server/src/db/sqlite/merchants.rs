//! Merchants as data, and the legacy host secrets.

use super::*;
use crate::db::MerchantStore;

impl MerchantStore for Sqlite {
    fn legacy_host_secret(&self, name: &str) -> StoreResult<Option<String>> {
        self.conn()
            .row_cached(
                "SELECT value FROM host_secrets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(failure)
    }

    fn delete_legacy_host_secret(&self, name: &str) -> StoreResult<()> {
        self.conn()
            .exec_cached("DELETE FROM host_secrets WHERE name = ?1", [name])
            .map(drop)
            .map_err(failure)
    }

    fn merchant_settings(&self, id: &str) -> StoreResult<Option<String>> {
        self.conn()
            .row_cached("SELECT settings FROM merchants WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(failure)
    }

    fn merchant_by_account(&self, account: &str) -> StoreResult<Option<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id, settings FROM merchants WHERE account_id = ?1")
            .map_err(failure)?;
        stmt.query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(failure)
    }

    fn merchant_ids(&self) -> StoreResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id FROM merchants ORDER BY id")
            .map_err(failure)?;
        let ids = stmt.query_map([], |r| r.get(0)).map_err(failure)?;
        ids.collect::<rusqlite::Result<_>>().map_err(failure)
    }

    fn put_merchant(
        &self,
        id: &str,
        account: Option<&str>,
        settings: &str,
    ) -> Result<(), MerchantPutError> {
        let result = self.conn().exec_cached(
            "INSERT INTO merchants (id, account_id, settings) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id,
             settings = excluded.settings",
            params![id, account, settings],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(MerchantPutError::AccountTaken)
            }
            Err(e) => Err(MerchantPutError::Store(failure(e))),
        }
    }
}
