//! The store's parts by concern, each a trait both backends implement:
//! kv, outbox, merchants, records, jobs, tokens, pacing. `Backend` is all
//! of them, with the runtime's `HostStore` (kv, and the outbox's inserts).

use super::{
    AccountRow, CustomerRow, DeadLetter, Job, MerchantPutError, NewJob, OutboxRow, StoreResult,
    TokenRow, TxAbort, TxBody,
};
use crate::ports::HostStore;

/// Every kv entry, for tests and operators (the runtime's `KvStore` has
/// the rest of the plugin's kv).
pub trait KvListing: Send + Sync {
    /// Every kv entry, expired or not.
    fn kv_rows(&self) -> StoreResult<Vec<(String, String, Vec<u8>)>>;
}

/// The emails the plugin sent, and which the relay took.
pub trait OutboxStore: Send + Sync {
    /// False when the dedupe key was sent before.
    fn outbox(&self, ns: &str) -> StoreResult<Vec<OutboxRow>>;
    /// One email of the merchant's, by its id.
    fn outbox_row(&self, ns: &str, id: i64) -> StoreResult<Option<OutboxRow>>;
    fn mark_sent(&self, id: i64, now_ms: i64) -> StoreResult<()>;
}

/// Merchants as data, and the legacy host secrets.
pub trait MerchantStore: Send + Sync {
    /// A host secret an older version kept in the store (the pay-link key):
    /// read to move it out, never written any more.
    fn legacy_host_secret(&self, name: &str) -> StoreResult<Option<String>>;
    fn delete_legacy_host_secret(&self, name: &str) -> StoreResult<()>;

    fn merchant_settings(&self, id: &str) -> StoreResult<Option<String>>;
    /// The merchant whose connected account is `account`: its id and settings.
    fn merchant_by_account(&self, account: &str) -> StoreResult<Option<(String, String)>>;
    fn merchant_ids(&self) -> StoreResult<Vec<String>>;
    fn put_merchant(
        &self,
        id: &str,
        account: Option<&str>,
        settings: &str,
    ) -> std::result::Result<(), MerchantPutError>;
}

/// The platform's customers and invoices, their accounts and cursors, and the transaction the plugin's transitions are applied in.
pub trait RecordStore: Send + Sync {
    fn customer(&self, merchant: &str, id: &str) -> StoreResult<Option<CustomerRow>>;
    fn put_customer(&self, merchant: &str, id: &str, doc: &str) -> StoreResult<()>;
    /// What Stripe said of the merchant's connected account `id`.
    fn account(&self, merchant: &str, id: &str) -> StoreResult<Option<AccountRow>>;
    /// The document and the host's state of an invoice.
    fn invoice(&self, merchant: &str, id: &str) -> StoreResult<Option<(String, String)>>;
    /// False when the id is taken.
    fn insert_invoice(&self, merchant: &str, id: &str, doc: &str, state: &str)
    -> StoreResult<bool>;
    fn set_amount_due(&self, merchant: &str, id: &str, amount_due: &str) -> StoreResult<()>;
    fn sync_cursor(&self, key: &str) -> StoreResult<Option<String>>;
    /// The invoice of the merchant's pay-link token with this SHA-256.
    fn pay_link_invoice(&self, merchant: &str, token_sha256: &str) -> StoreResult<Option<String>>;

    /// Runs `body` in one transaction.
    fn records_tx(&self, body: TxBody<'_, TxAbort>) -> std::result::Result<(), TxAbort>;
}

/// The durable work queue and its dead letters.
pub trait JobStore: Send + Sync {
    /// Queues work to retry; false when the same work is queued already.
    fn enqueue_job(&self, job: &NewJob) -> StoreResult<bool>;
    /// Takes the oldest job due at `now_ms` that no worker holds, and holds
    /// it until `lease_until_ms` (another worker takes it after that, should
    /// this one die). `SKIP LOCKED` on PostgreSQL: workers never wait on
    /// each other's jobs.
    fn claim_job(&self, now_ms: i64, lease_until_ms: i64) -> StoreResult<Option<Job>>;
    fn finish_job(&self, id: i64) -> StoreResult<()>;
    /// Lets the job go, to run again at `run_at_ms`.
    fn retry_job(&self, id: i64, run_at_ms: i64, error: &str) -> StoreResult<()>;
    /// Jobs queued, and the age of the oldest (ms).
    fn queue_stats(&self, now_ms: i64) -> StoreResult<(i64, i64)>;
    /// Drops the queued job of `kind` for `subject`, if any (the platform
    /// decided otherwise meanwhile); true when one was dropped.
    fn cancel_job(&self, merchant: &str, kind: &str, subject: &str) -> StoreResult<bool>;
    /// Moves a job that failed for good to the dead letters, with why.
    fn bury_job(&self, id: i64, error: &str, now_ms: i64) -> StoreResult<()>;
    /// The merchant's dead letters, oldest first.
    fn dead_letters(&self, merchant: &str) -> StoreResult<Vec<DeadLetter>>;
    /// Queues dead letter `id` of the merchant again, due now; false when
    /// there is no such dead letter.
    fn revive_dead_letter(&self, merchant: &str, id: i64, now_ms: i64) -> StoreResult<bool>;
    /// Dead letters of every merchant.
    fn dead_letter_count(&self) -> StoreResult<i64>;
    /// Jobs of `kind` queued (every merchant).
    fn queued_of_kind(&self, kind: &str) -> StoreResult<i64>;
}

/// The platform's API tokens, as hashes.
pub trait TokenStore: Send + Sync {
    /// Keeps a new platform token (its hash only).
    fn put_token(&self, token: &TokenRow) -> StoreResult<()>;
    /// Every platform token, revoked ones included, oldest first.
    fn tokens(&self) -> StoreResult<Vec<TokenRow>>;
    /// Revokes token `id` at `now_ms`; false when there is no such token
    /// still valid.
    fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool>;
}

/// Each account's schedule of Stripe requests.
pub trait PacingStore: Send + Sync {
    /// Takes `account`'s next turn to send a Stripe request
    /// ([`turns::take_turn`]): when it starts (ms), or `None` when
    /// it is more than `max_wait_ms` away. One schedule for every worker.
    fn pace(
        &self,
        account: &str,
        now_ms: i64,
        interval_ms: i64,
        max_wait_ms: i64,
    ) -> StoreResult<Option<i64>>;
}

/// What a backend stores. Each method is one statement or one transaction.
pub trait Backend:
    HostStore
    + KvListing
    + OutboxStore
    + MerchantStore
    + RecordStore
    + JobStore
    + TokenStore
    + PacingStore
{
}

impl<
    T: HostStore
        + KvListing
        + OutboxStore
        + MerchantStore
        + RecordStore
        + JobStore
        + TokenStore
        + PacingStore,
> Backend for T
{
}
