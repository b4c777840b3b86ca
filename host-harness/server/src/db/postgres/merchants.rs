//! Merchants as data, and the legacy host secrets.

use super::*;
use crate::db::MerchantStore;

impl MerchantStore for Postgres {
    fn legacy_host_secret(&self, name: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt("SELECT value FROM host_secrets WHERE name = $1", &[&name])
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn delete_legacy_host_secret(&self, name: &str) -> StoreResult<()> {
        self.conn()?
            .execute("DELETE FROM host_secrets WHERE name = $1", &[&name])
            .map(drop)
            .map_err(failure)
    }

    fn merchant_settings(&self, id: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt("SELECT settings FROM merchants WHERE id = $1", &[&id])
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn merchant_by_account(&self, account: &str) -> StoreResult<Option<(String, String)>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT id, settings FROM merchants WHERE account_id = $1",
                &[&account],
            )
            .map_err(failure)?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn merchant_ids(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .conn()?
            .query("SELECT id FROM merchants ORDER BY id", &[])
            .map_err(failure)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn put_merchant(
        &self,
        id: &str,
        account: Option<&str>,
        settings: &str,
    ) -> Result<(), MerchantPutError> {
        let result = self.conn().map_err(MerchantPutError::Store)?.execute(
            "INSERT INTO merchants (id, account_id, settings) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id,
             settings = excluded.settings",
            &[&id, &account, &settings],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(MerchantPutError::AccountTaken)
            }
            Err(e) => Err(MerchantPutError::Store(failure(e))),
        }
    }
}
