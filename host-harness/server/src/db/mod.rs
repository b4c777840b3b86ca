//! The host's store: the plugin's kv, the email outbox, the merchants, and
//! the billing platform's invoices and customers. Two backends behind one
//! trait: SQLite (embedded, the default: one file, one process) and
//! PostgreSQL (`postgres://…`: many `serve` workers on one database).
//! Migrations run when a store is opened.

mod group_sync;
mod pg_session;
mod pg_tls;
pub mod postgres;
pub mod sqlite;
mod store;
mod stores;
pub mod turns;

pub use store::Db;
pub use stores::{
    Backend, JobStore, KvListing, MerchantStore, OutboxStore, PacingStore, RecordStore, TokenStore,
};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRow {
    pub charges_enabled: bool,
    pub details_submitted: bool,
    pub disconnected: bool,
    /// Charges disabled or requirements past due: collection is paused.
    pub restricted: bool,
}

/// What an `account.updated` says, as the records keep it.
#[derive(Debug, Clone, Copy)]
pub struct AccountNews {
    pub charges_enabled: bool,
    pub details_submitted: bool,
    pub restricted: bool,
}

/// The queue's kind of a `collection-scheduled` wake-up; its subject is
/// `{invoice}@{due ms}`, so that two schedules of one invoice are two jobs.
pub const COLLECT_JOB: &str = "collect";

/// The run time of a wake-up parked until the merchant's account is
/// restored: never, until `wake_parked_collections` sets it.
pub const PARKED: i64 = i64::MAX;

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
    fn account_updated(&mut self, merchant: &str, id: &str, news: AccountNews) -> StoreResult<()>;
    /// Queues a wake-up of the plugin for the invoice (`on-collection-due`),
    /// in the same transaction as the transitions that asked for it; one
    /// already queued for the same time is kept.
    fn schedule_collection(&mut self, job: &NewJob) -> StoreResult<()>;
    /// Drops every queued wake-up of the invoice (it was paid or stopped).
    fn cancel_collections(&mut self, merchant: &str, invoice: &str) -> StoreResult<()>;
    /// The merchant's account was restored: its parked wake-ups run now.
    fn wake_parked_collections(&mut self, merchant: &str, now_ms: i64) -> StoreResult<()>;
    fn account_disconnected(&mut self, merchant: &str, id: &str) -> StoreResult<()>;
    fn set_sync_cursor(&mut self, key: &str, cursor: &str) -> StoreResult<()>;
    /// The invoices of the platform customer linked to `stripe_customer`:
    /// (id, document, state), in id order.
    fn invoices_of_stripe_customer(
        &mut self,
        merchant: &str,
        stripe_customer: &str,
    ) -> StoreResult<Vec<(String, String, String)>>;
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

    /// Collections, on each store: queued in a records transaction, one per
    /// subject; parked ones wait for the account to be restored; paying
    /// drops an invoice's, and no other invoice's.
    #[test]
    fn collections_are_queued_parked_woken_and_dropped_by_invoice() {
        for target in targets("collections") {
            let db = Db::open(&target).unwrap_or_else(|e| panic!("{e:#}"));
            let job = |subject: &'static str, run_at_ms| NewJob {
                merchant: "m",
                kind: COLLECT_JOB,
                subject,
                run_at_ms,
                created_ms: 0,
                error: "",
                account: "acct_M",
            };
            db.records_tx(&mut |tx| {
                tx.schedule_collection(&job("inv_1@100", 100))?;
                tx.schedule_collection(&job("inv_1@100", 100))?;
                tx.schedule_collection(&job("inv_1@restored", PARKED))?;
                tx.schedule_collection(&job("inv_10@100", 100))?;
                Ok::<(), TxAbort>(())
            })
            .unwrap();
            assert_eq!(db.queued_of_kind(COLLECT_JOB).unwrap(), 3, "{target}");
            db.records_tx(&mut |tx| {
                tx.cancel_collections("m", "inv_1")?;
                Ok::<(), TxAbort>(())
            })
            .unwrap();
            let due = db.claim_job(i64::MAX - 1, i64::MAX - 1).unwrap().unwrap();
            assert_eq!(due.subject, "inv_10@100", "{target}");
            db.finish_job(due.id).unwrap();
            db.records_tx(&mut |tx| {
                tx.schedule_collection(&job("inv_2@restored", PARKED))?;
                Ok::<(), TxAbort>(())
            })
            .unwrap();
            assert_eq!(db.claim_job(1_000_000, 2_000_000).unwrap(), None, "parked");
            db.records_tx(&mut |tx| {
                tx.wake_parked_collections("m", 500)?;
                Ok::<(), TxAbort>(())
            })
            .unwrap();
            let woken = db.claim_job(500, 1_000).unwrap().unwrap();
            assert_eq!(woken.subject, "inv_2@restored", "{target}");
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
