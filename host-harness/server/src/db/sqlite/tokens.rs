//! The platform's API tokens, as hashes.

use super::*;
use crate::db::TokenStore;

impl TokenStore for Sqlite {
    fn put_token(&self, t: &TokenRow) -> StoreResult<()> {
        self.conn()
            .exec_cached(
                "INSERT INTO platform_tokens (id, sha256, merchant, label, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.id, t.sha256, t.merchant, t.label, t.created_ms],
            )
            .map(drop)
            .map_err(failure)
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, sha256, merchant, label, created_ms, revoked_ms
                 FROM platform_tokens ORDER BY created_ms, id",
            )
            .map_err(failure)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    sha256: r.get(1)?,
                    merchant: r.get(2)?,
                    label: r.get(3)?,
                    created_ms: r.get(4)?,
                    revoked_ms: r.get(5)?,
                })
            })
            .map_err(failure)?;
        rows.collect::<Result<_, _>>().map_err(failure)
    }

    fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let n = self
            .conn()
            .exec_cached(
                "UPDATE platform_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }
}
