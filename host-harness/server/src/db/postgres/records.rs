//! The platform's customers and invoices, their accounts and cursors, and
//! the transaction the plugin's transitions are applied in.

use super::*;
use crate::db::{AccountNews, COLLECT_JOB, PARKED, RecordStore};

struct PostgresTx<'a, 'c>(&'a mut SessionTx<'c>);

impl PostgresTx<'_, '_> {
    fn run(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<()> {
        self.0.execute(sql, params).map(drop).map_err(failure)
    }
}

impl RecordsTx for PostgresTx<'_, '_> {
    fn invoice_state(&mut self, merchant: &str, id: &str) -> StoreResult<Option<String>> {
        let row = self
            .0
            .query_opt(
                "SELECT state FROM invoices WHERE merchant = $1 AND id = $2 FOR UPDATE",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn save_invoice_state(&mut self, merchant: &str, id: &str, state: &str) -> StoreResult<()> {
        self.run(
            "UPDATE invoices SET state = $3 WHERE merchant = $1 AND id = $2",
            &[&merchant, &id, &state],
        )
    }

    fn link_customer(&mut self, merchant: &str, id: &str, stripe_id: &str) -> StoreResult<()> {
        self.run(
            "INSERT INTO customers (merchant, id, doc, stripe_customer_id)
             VALUES ($1, $2, '{}', $3) ON CONFLICT (merchant, id)
             DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id",
            &[&merchant, &id, &stripe_id],
        )
    }

    fn invoices_of_stripe_customer(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
    ) -> StoreResult<Vec<(String, String, String)>> {
        let rows = self
            .0
            .query(
                "SELECT i.id, i.doc, i.state FROM invoices i JOIN customers c
                 ON c.merchant = i.merchant AND c.id = (i.doc::jsonb ->> 'customerId')
                 WHERE i.merchant = $1 AND c.stripe_customer_id = $2 ORDER BY i.id",
                &[&merchant, &stripe_customer],
            )
            .map_err(failure)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn unlink_customer(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.run(
            "UPDATE customers SET stripe_customer_id = NULL WHERE merchant = $1 AND id = $2",
            &[&merchant, &id],
        )
    }

    fn set_card_on_file(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
        payment_method: Option<&str>,
    ) -> StoreResult<()> {
        self.run(
            "UPDATE customers SET card_on_file = $3 WHERE merchant = $1 AND stripe_customer_id = $2",
            &[&merchant, &stripe_customer, &payment_method],
        )
    }

    fn account_updated(&mut self, merchant: &str, id: &str, news: AccountNews) -> StoreResult<()> {
        self.run(
            "INSERT INTO accounts (merchant, id, charges_enabled, details_submitted, restricted)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (merchant, id) DO UPDATE SET charges_enabled = excluded.charges_enabled,
             details_submitted = excluded.details_submitted, restricted = excluded.restricted,
             disconnected = FALSE",
            &[
                &merchant,
                &id,
                &news.charges_enabled,
                &news.details_submitted,
                &news.restricted,
            ],
        )
    }

    fn schedule_collection(&mut self, job: &NewJob) -> StoreResult<()> {
        self.run(super::jobs::INSERT_JOB, &super::jobs::job_params(job))
    }

    fn wake_parked_collections(&mut self, merchant: &str, now_ms: i64) -> StoreResult<()> {
        self.run(
            "UPDATE jobs SET run_at_ms = $3 WHERE merchant = $1 AND kind = $2 AND run_at_ms = $4",
            &[&merchant, &COLLECT_JOB, &now_ms, &PARKED],
        )
    }

    fn cancel_collections(&mut self, merchant: &str, invoice: &str) -> StoreResult<()> {
        // Subjects `{invoice}@{ms}`: '@' < 'A', so the range holds exactly them.
        self.run(
            "DELETE FROM jobs WHERE merchant = $1 AND kind = $2 AND subject >= $3 AND subject < $4",
            &[
                &merchant,
                &COLLECT_JOB,
                &format!("{invoice}@"),
                &format!("{invoice}A"),
            ],
        )
    }

    fn account_disconnected(&mut self, merchant: &str, id: &str) -> StoreResult<()> {
        self.run(
            "INSERT INTO accounts (merchant, id, disconnected) VALUES ($1, $2, TRUE)
             ON CONFLICT (merchant, id) DO UPDATE SET disconnected = TRUE, charges_enabled = FALSE",
            &[&merchant, &id],
        )
    }

    fn set_sync_cursor(&mut self, key: &str, cursor: &str) -> StoreResult<()> {
        self.run(
            "INSERT INTO sync_cursors (merchant, cursor) VALUES ($1, $2)
             ON CONFLICT (merchant) DO UPDATE SET cursor = excluded.cursor",
            &[&key, &cursor],
        )
    }

    fn index_pay_link(
        &mut self,
        merchant: &str,
        token_sha256: &str,
        invoice: &str,
    ) -> StoreResult<()> {
        self.run(
            "INSERT INTO pay_links (merchant, token_sha256, invoice) VALUES ($1, $2, $3)
             ON CONFLICT (merchant, token_sha256) DO NOTHING",
            &[&merchant, &token_sha256, &invoice],
        )
    }
}

impl RecordStore for Postgres {
    fn customer(&self, merchant: &str, id: &str) -> StoreResult<Option<CustomerRow>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT doc, stripe_customer_id, card_on_file FROM customers
                 WHERE merchant = $1 AND id = $2",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    fn put_customer(&self, merchant: &str, id: &str, doc: &str) -> StoreResult<()> {
        self.conn()?
            .execute(
                "INSERT INTO customers (merchant, id, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (merchant, id) DO UPDATE SET doc = excluded.doc",
                &[&merchant, &id, &doc],
            )
            .map(drop)
            .map_err(failure)
    }

    fn account(&self, merchant: &str, id: &str) -> StoreResult<Option<AccountRow>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT charges_enabled, details_submitted, disconnected, restricted
                 FROM accounts WHERE merchant = $1 AND id = $2",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| AccountRow {
            charges_enabled: r.get(0),
            details_submitted: r.get(1),
            disconnected: r.get(2),
            restricted: r.get(3),
        }))
    }

    fn invoice(&self, merchant: &str, id: &str) -> StoreResult<Option<(String, String)>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT doc, state FROM invoices WHERE merchant = $1 AND id = $2",
                &[&merchant, &id],
            )
            .map_err(failure)?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn insert_invoice(
        &self,
        merchant: &str,
        id: &str,
        doc: &str,
        state: &str,
    ) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO invoices (merchant, id, doc, state) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (merchant, id) DO NOTHING",
                &[&merchant, &id, &doc, &state],
            )
            .map_err(failure)?;
        Ok(n == 1)
    }

    fn set_amount_due(&self, merchant: &str, id: &str, amount_due: &str) -> StoreResult<()> {
        self.conn()?
            .execute(
                "UPDATE invoices SET doc = jsonb_set(doc::jsonb, '{amountDue}', to_jsonb($3::text))::text
                 WHERE merchant = $1 AND id = $2",
                &[&merchant, &id, &amount_due],
            )
            .map(drop)
            .map_err(failure)
    }

    fn pay_link_invoice(&self, merchant: &str, token_sha256: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT invoice FROM pay_links WHERE merchant = $1 AND token_sha256 = $2",
                &[&merchant, &token_sha256],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn sync_cursor(&self, key: &str) -> StoreResult<Option<String>> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT cursor FROM sync_cursors WHERE merchant = $1",
                &[&key],
            )
            .map_err(failure)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn records_tx(&self, body: TxBody<'_, TxAbort>) -> Result<(), TxAbort> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(failure)?;
        body(&mut PostgresTx(&mut tx))?;
        tx.commit().map_err(failure)?;
        Ok(())
    }
}
