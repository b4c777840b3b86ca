//! The host's store: the plugin's kv, the email outbox, the merchants, and
//! the billing platform's invoices and customers. Two backends behind one
//! trait: SQLite (embedded, the default: one file, one process) and
//! PostgreSQL (`postgres://…`: many `serve` workers on one database).
//! Migrations run when a store is opened.

mod pg_session;
mod pg_tls;
pub mod postgres;
pub mod sqlite;
mod store;
pub mod turns;

pub use store::Db;


/// The merchant that rows from before merchants were data belong to.
pub const DEFAULT_MERCHANT: &str = "default";

pub use crate::ports::{OutgoingEmail, StoreError, StoreResult};

/// Whether a store target names a PostgreSQL server (shared by many
/// workers) rather than a SQLite file.
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// The step that moves the plugin's kv, the outbox and the sync cursors from
/// accounts to merchants (security review S6), the same on both backends:
/// rows of an account go to the merchant that has it; rows of the
/// platform's own account ("") to the merchant `default`, when that one
/// runs on it.
pub const BY_MERCHANT: &str = include_str!("migrations/by_merchant.sql");

/// The queue's job kind of an email to send (its subject: the outbox id).
pub const EMAIL_JOB: &str = "email";

/// One email as the outbox keeps it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    pub id: i64,
    /// The merchant whose email it is.
    pub merchant: String,
    pub dedupe_key: String,
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub created_ms: i64,
    /// When the relay took it; none while it is not sent (or never will
    /// be, without a relay).
    pub sent_ms: Option<i64>,
}

/// A stored customer: the platform's document, its Stripe link, its card.
pub type CustomerRow = (String, Option<String>, Option<String>);

/// What a connected account's last `account.updated` said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountRow {
    pub charges_enabled: bool,
    pub details_submitted: bool,
    pub disconnected: bool,
}

/// Why merchant settings were not stored.
#[derive(Debug)]
pub enum MerchantPutError {
    /// Another merchant has this connected account.
    AccountTaken,
    Store(StoreError),
}

/// The writes of one transaction over the records (see `Records::apply`).
/// Reads lock what they read until the transaction ends.
pub trait RecordsTx {
    fn invoice_state(&mut self, merchant: &str, id: &str) -> StoreResult<Option<String>>;
    fn save_invoice_state(&mut self, merchant: &str, id: &str, state: &str) -> StoreResult<()>;
    fn link_customer(&mut self, merchant: &str, id: &str, stripe_id: &str) -> StoreResult<()>;
    fn unlink_customer(&mut self, merchant: &str, id: &str) -> StoreResult<()>;
    fn set_card_on_file(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
        payment_method: Option<&str>,
    ) -> StoreResult<()>;
    fn account_updated(
        &mut self,
        merchant: &str,
        id: &str,
        charges: bool,
        details: bool,
    ) -> StoreResult<()>;
    fn account_disconnected(&mut self, merchant: &str, id: &str) -> StoreResult<()>;
    fn set_sync_cursor(&mut self, key: &str, cursor: &str) -> StoreResult<()>;
    /// Remembers which invoice the pay-link token with this SHA-256 opens.
    fn index_pay_link(
        &mut self,
        merchant: &str,
        token_sha256: &str,
        invoice: &str,
    ) -> StoreResult<()>;
}

/// The body of a records transaction: it commits when this returns `Ok`.
pub type TxBody<'a, E> = &'a mut dyn FnMut(&mut dyn RecordsTx) -> std::result::Result<(), E>;

/// What a backend stores. Each method is one statement or one transaction.
pub trait Backend: Send + Sync {
    fn kv_get(&self, ns: &str, key: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>>;
    fn kv_set(&self, ns: &str, key: &str, value: &[u8], expires_ms: Option<i64>)
    -> StoreResult<()>;
    fn kv_delete(&self, ns: &str, key: &str) -> StoreResult<()>;
    /// Writes `new` if the live value is `expected` (None: absent or
    /// expired), atomically against every other writer of the database.
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool>;
    fn kv_purge_expired(&self, now_ms: i64) -> StoreResult<()>;
    /// Every kv entry, expired or not (tests and operators).
    fn kv_rows(&self) -> StoreResult<Vec<(String, String, Vec<u8>)>>;

    /// False when the dedupe key was sent before.
    fn outbox_insert(&self, email: &OutgoingEmail) -> StoreResult<bool>;
    fn outbox(&self, ns: &str) -> StoreResult<Vec<OutboxRow>>;
    /// One email of the merchant's, by its id.
    fn outbox_row(&self, ns: &str, id: i64) -> StoreResult<Option<OutboxRow>>;
    fn mark_sent(&self, id: i64, now_ms: i64) -> StoreResult<()>;

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

    fn customer(&self, merchant: &str, id: &str) -> StoreResult<Option<CustomerRow>>;
    /// Whether one of the merchant's customers has `address` as its email
    /// or one of its billing emails (case-insensitively).
    fn customer_has_address(&self, merchant: &str, address: &str) -> StoreResult<bool>;
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

    /// Keeps a new platform token (its hash only).
    fn put_token(&self, token: &TokenRow) -> StoreResult<()>;
    /// Every platform token, revoked ones included, oldest first.
    fn tokens(&self) -> StoreResult<Vec<TokenRow>>;
    /// Revokes token `id` at `now_ms`; false when there is no such token
    /// still valid.
    fn revoke_token(&self, id: &str, now_ms: i64) -> StoreResult<bool>;

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

/// Work to queue.
pub struct NewJob<'a> {
    pub merchant: &'a str,
    /// What to do (`finalize`).
    pub kind: &'a str,
    /// What to do it to (an invoice id).
    pub subject: &'a str,
    pub run_at_ms: i64,
    pub created_ms: i64,
    pub error: &'a str,
    /// The connected account the work is for ("" for the platform's own):
    /// the job runs only while its merchant still has this account.
    pub account: &'a str,
}

/// A queued job, held by the worker that claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub merchant: String,
    pub kind: String,
    pub subject: String,
    /// Runs so far, this one included.
    pub attempts: i32,
    /// The account it was queued for; none for a job from before accounts
    /// were kept (or revived from a dead letter).
    pub account: Option<String>,
}

/// A job that failed for good, kept for an operator to read and retry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub attempts: i32,
    pub created_ms: i64,
    pub died_ms: i64,
    pub error: String,
}

/// A platform token as the store keeps it: never the token, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRow {
    pub id: String,
    #[serde(skip)]
    pub sha256: String,
    /// The one merchant the token is for; none: every merchant.
    pub merchant: Option<String>,
    pub label: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// Why a records transaction was rolled back.
#[derive(Debug)]
pub enum TxAbort {
    Store(StoreError),
    /// The body refused (the caller's error, carried as text).
    Refused(String),
}

impl From<StoreError> for TxAbort {
    fn from(e: StoreError) -> Self {
        TxAbort::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the contention test runs: a SQLite file, and PostgreSQL when
    /// `STRIPE_PLUGIN_TEST_POSTGRES` names a server (as `tests/run` does).
    fn targets(name: &str) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!("cas-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = vec![dir.join("store.db").to_string_lossy().into_owned()];
        if let Ok(server) = std::env::var("STRIPE_PLUGIN_TEST_POSTGRES")
            && !server.is_empty()
        {
            let db = format!("cas_{name}_{}", std::process::id());
            out.push(postgres::create_database(&server, &db).unwrap());
        }
        out
    }

    /// An email to be sent is queued with its job in one transaction (a
    /// crash between the two would lose it), once however often it is
    /// queued; one kept in the outbox only has no job.
    #[test]
    fn an_email_to_send_comes_with_its_job_once() {
        for target in targets("mail") {
            let db = Db::open(&target).unwrap();
            let email = |key: &'static str, deliver| OutgoingEmail {
                ns: "alpha",
                dedupe_key: key,
                recipients: "a@b.example".into(),
                cc: String::new(),
                subject: "s",
                text_body: "t",
                html_body: None,
                created_ms: 10,
                deliver,
            };
            assert!(db.outbox_insert(&email("sent", true)).unwrap());
            assert!(!db.outbox_insert(&email("sent", true)).unwrap(), "{target}");
            assert!(db.outbox_insert(&email("kept", false)).unwrap());
            let job = db.claim_job(10, 1_000).unwrap().expect("the email's job");
            assert_eq!(
                (job.merchant.as_str(), job.kind.as_str()),
                ("alpha", EMAIL_JOB)
            );
            let row = db
                .outbox_row("alpha", job.subject.parse().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!((row.dedupe_key.as_str(), row.sent_ms), ("sent", None));
            db.mark_sent(row.id, 20).unwrap();
            assert_eq!(
                db.outbox_row("alpha", row.id).unwrap().unwrap().sent_ms,
                Some(20)
            );
            db.finish_job(job.id).unwrap();
            assert_eq!(
                db.claim_job(10, 1_000).unwrap(),
                None,
                "{target}: one job only"
            );
        }
    }

    /// Four stores opened on one database (as four workers would), eight
    /// threads each, every one adding 1 to one counter with
    /// compare-and-swap until it wins. A get-then-set loses increments.
    #[test]
    fn compare_and_swap_is_atomic_across_workers() {
        for target in targets("counter") {
            let stores: Vec<Db> = (0..4)
                .map(|_| Db::open(&target).unwrap_or_else(|e| panic!("{e:#}")))
                .collect();
            let per_thread = 25;
            std::thread::scope(|s| {
                for store in &stores {
                    for _ in 0..8 {
                        s.spawn(move || {
                            for _ in 0..per_thread {
                                loop {
                                    let now = 1;
                                    let old = store.kv_get("ns", "counter", now).unwrap();
                                    let n: u64 = old
                                        .as_deref()
                                        .map_or(0, |v| String::from_utf8_lossy(v).parse().unwrap());
                                    let new = (n + 1).to_string();
                                    let swapped = store.kv_compare_and_swap(
                                        "ns",
                                        "counter",
                                        old.as_deref(),
                                        new.as_bytes(),
                                        None,
                                        now,
                                    );
                                    match swapped {
                                        Ok(true) => break,
                                        Ok(false) | Err(StoreError::Unavailable(_)) => {}
                                        Err(e) => panic!("{e}"),
                                    }
                                }
                            }
                        });
                    }
                }
            });
            let total = stores[0].kv_peek("ns", "counter").unwrap().unwrap();
            assert_eq!(
                String::from_utf8(total).unwrap(),
                (4 * 8 * per_thread).to_string(),
                "{target}"
            );
        }
    }

    /// Sixteen threads take an account's Stripe turns at once, from four
    /// stores on one PostgreSQL database (four workers) or from one SQLite
    /// store (its one worker): every turn is given once, spaced by the
    /// interval, with no gap; one beyond the longest wait is refused.
    #[test]
    fn stripe_turns_are_one_schedule_for_every_worker() {
        for target in targets("pacing") {
            let workers = if target.starts_with("postgres") { 4 } else { 1 };
            let stores: Vec<Db> = (0..workers)
                .map(|_| Db::open(&target).unwrap_or_else(|e| panic!("{e:#}")))
                .collect();
            let turns = std::sync::Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for k in 0..16 {
                    let (store, turns) = (&stores[k % workers], &turns);
                    s.spawn(move || {
                        for _ in 0..25 {
                            let slot = store.pace("acct_a", 0, 10, i64::MAX / 2).unwrap();
                            turns.lock().unwrap().push(slot.unwrap());
                        }
                    });
                }
            });
            let mut turns = turns.into_inner().unwrap();
            turns.sort_unstable();
            let expected: Vec<i64> = (0..400).map(|n| n * 10).collect();
            assert_eq!(turns, expected, "{target}");
            assert_eq!(stores[0].pace("acct_a", 0, 10, 1_000).unwrap(), None);
            assert_eq!(
                stores[0].pace("acct_b", 0, 10, 1_000).unwrap(),
                Some(0),
                "another account has its own schedule"
            );
        }
    }

    /// 200 jobs, four stores on one database, four threads each claiming
    /// and finishing: every job is run once, none is lost.
    #[test]
    fn every_queued_job_is_claimed_once() {
        for target in targets("queue") {
            let stores: Vec<Db> = (0..4)
                .map(|_| Db::open(&target).unwrap_or_else(|e| panic!("{e:#}")))
                .collect();
            for i in 0..200 {
                let subject = format!("inv_{i}");
                let job = NewJob {
                    merchant: "m",
                    kind: "finalize",
                    subject: &subject,
                    run_at_ms: 0,
                    created_ms: 0,
                    error: "",
                    account: "",
                };
                assert!(stores[i % 4].enqueue_job(&job).unwrap());
                assert!(!stores[0].enqueue_job(&job).unwrap(), "queued once");
            }
            let claimed = std::sync::Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for store in &stores {
                    for _ in 0..4 {
                        s.spawn(|| {
                            loop {
                                match store.claim_job(10, 60_000) {
                                    Ok(Some(job)) => {
                                        claimed.lock().unwrap().push(job.subject.clone());
                                        store.finish_job(job.id).unwrap();
                                    }
                                    Ok(None) => break,
                                    Err(StoreError::Unavailable(_)) => {}
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        });
                    }
                }
            });
            let mut claimed = claimed.into_inner().unwrap();
            claimed.sort();
            claimed.dedup();
            assert_eq!(claimed.len(), 200, "{target}");
            assert_eq!(stores[0].queue_stats(10).unwrap().0, 0);
        }
    }

    #[test]
    fn a_job_retried_waits_for_its_time_and_a_held_one_is_not_taken() {
        let db = Db::in_memory().unwrap();
        let job = NewJob {
            merchant: "m",
            kind: "finalize",
            subject: "inv_1",
            run_at_ms: 100,
            created_ms: 50,
            error: "429",
            account: "acct_M",
        };
        db.enqueue_job(&job).unwrap();
        assert_eq!(db.claim_job(99, 1_000).unwrap(), None, "not due yet");
        let held = db.claim_job(100, 1_000).unwrap().unwrap();
        assert_eq!(held.attempts, 1);
        assert_eq!(
            db.claim_job(500, 1_500).unwrap(),
            None,
            "held by its worker"
        );
        db.retry_job(held.id, 2_000, "429 again").unwrap();
        assert_eq!(db.claim_job(1_999, 3_000).unwrap(), None);
        assert_eq!(db.queue_stats(1_050).unwrap(), (1, 1_000));
        let again = db.claim_job(2_000, 3_000).unwrap().unwrap();
        assert_eq!(again.attempts, 2);
        // A worker that died: its lease runs out, and another takes the job.
        assert_eq!(db.claim_job(3_000, 4_000).unwrap().unwrap().attempts, 3);
    }
}
