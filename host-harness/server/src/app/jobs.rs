//! The queue's work, run by `serve`'s workers: finalizes and syncs that
//! failed with a retryable error, and emails to relay, each held by one
//! worker at a time and retried with backoff (`queue.rs` has the pure rules).

use super::*;
use crate::db::{Job, NewJob};
use crate::mailer::SendError;
use crate::queue::{Failure, LEASE_MS, SYNC_PERIODS, backoff_ms, retry_after};
use std::time::Duration;

impl App {
    /// The host's clock now, as the store keeps times.
    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from(self.runtime.env().clock.now_ms()).unwrap_or(i64::MAX)
    }

    /// Queues `kind` of `subject` for the merchant, to run after the
    /// backoff of a first try that failed with `e`.
    pub(crate) fn queue(
        &self,
        scope: &Scope,
        kind: JobKind,
        subject: &str,
        e: &PluginError,
    ) -> anyhow::Result<()> {
        let now = self.now_ms();
        let queued = self.db.enqueue_job(&NewJob {
            merchant: &scope.id,
            kind: kind.name(),
            subject,
            run_at_ms: now + backoff_ms(0, 1, Failure::of(e), retry_after(e)),
            created_ms: now,
            error: &e.message(),
            account: &scope.merchant.account_id,
        })?;
        tracing::info!(
            kind = kind.name(),
            subject,
            queued,
            error = %e.message(),
            "queued for a retry"
        );
        Ok(())
    }

    /// Queues a catch-up sync for every connected merchant whose sync this
    /// `period` has not been queued yet: the first worker to ask claims the
    /// period (a compare-and-swap on an entry that expires with it), so
    /// each merchant is synced once a period however many workers run, by
    /// whichever is free.
    pub fn queue_syncs(&self, period: Duration) -> anyhow::Result<()> {
        let now = self.now_ms();
        let db = &self.db;
        let until = now.saturating_add(i64::try_from(period.as_millis()).unwrap_or(i64::MAX));
        for scope in self.connected_scopes()? {
            let id = &scope.id;
            if db.kv_compare_and_swap(SYNC_PERIODS, id, None, b"queued", Some(until), now)? {
                db.enqueue_job(&NewJob {
                    merchant: id,
                    kind: JobKind::Sync.name(),
                    subject: "",
                    run_at_ms: now,
                    created_ms: now,
                    error: "",
                    account: &scope.merchant.account_id,
                })?;
            }
        }
        Ok(())
    }

    /// `workers` threads that run queued jobs for as long as the process.
    pub fn run_queue(self: &Arc<Self>, workers: usize) {
        for _ in 0..workers {
            let app = self.clone();
            std::thread::spawn(move || {
                loop {
                    match app.run_next_job() {
                        Ok(true) => {}
                        Ok(false) => std::thread::sleep(Duration::from_millis(200)),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "work queue");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
            });
        }
    }

    /// Runs the next due job, if there is one (false: nothing due).
    pub fn run_next_job(&self) -> anyhow::Result<bool> {
        let db = &self.db;
        let now = self.now_ms();
        let Some(job) = db.claim_job(now, now + LEASE_MS)? else {
            return Ok(false);
        };
        let span = tracing::info_span!("job", merchant = %job.merchant, invoice = %job.subject, attempts = job.attempts);
        let _in_span = span.enter();
        let result = self.run_job(&job)?;
        let metrics = &self.metrics;
        match result {
            JobResult::Done => {
                db.finish_job(job.id)?;
                metrics.job(&job.kind, "done");
                tracing::info!("job done");
            }
            JobResult::Retry(e) => {
                let wait = backoff_ms(job.id, job.attempts, Failure::of(&e), retry_after(&e));
                let at = self.now_ms() + wait;
                db.retry_job(job.id, at, &e.message())?;
                metrics.job(&job.kind, "retried");
                tracing::info!(error = %e.message(), "job will be tried again");
            }
            JobResult::Rescheduled(at) => {
                db.retry_job(job.id, at, "")?;
                metrics.job(&job.kind, "rescheduled");
                tracing::info!(run_at_ms = at, "job waits again, as the plugin asked");
            }
            JobResult::Again(why) => {
                let wait = backoff_ms(job.id, job.attempts, Failure::Transient, None);
                db.retry_job(job.id, self.now_ms() + wait, &why)?;
                metrics.job(&job.kind, "retried");
                tracing::info!(error = %why, "job will be tried again");
            }
            JobResult::GaveUp(why) => {
                db.bury_job(job.id, &why, self.now_ms())?;
                metrics.job(&job.kind, "failed");
                tracing::error!(error = %why, "job failed for good; kept as a dead letter");
            }
        }
        Ok(true)
    }

    fn run_job(&self, job: &Job) -> anyhow::Result<JobResult> {
        let Some(scope) = self.scope(&job.merchant)? else {
            return Ok(JobResult::GaveUp(format!(
                "merchant {} is gone",
                job.merchant
            )));
        };
        let kind = JobKind::parse(&job.kind);
        if kind != Some(JobKind::Email)
            && let Some(why) = self.account_moved(&scope, job)
        {
            return Ok(JobResult::GaveUp(why));
        }
        match kind {
            Some(JobKind::Email) => self.send_email(&scope, job),
            Some(JobKind::Finalize) => self.run_finalize(&scope, &job.subject),
            Some(JobKind::Collect) => self.run_collect(&scope, &job.subject),
            Some(JobKind::Sync) => Ok(match self.sync_one(&scope)? {
                Ok(_) => JobResult::Done,
                Err(e) => JobResult::of(e),
            }),
            None => Ok(JobResult::GaveUp(format!("unknown job kind {}", job.kind))),
        }
    }

    /// Why a job must not run on the merchant as it is now (security review
    /// S5): it lost its connected account (a job never runs on the
    /// platform's account for a merchant that is not the platform's own
    /// default), or it has another account than the one the job was queued
    /// for, whose customers and records are not this job's.
    fn account_moved(&self, scope: &Scope, job: &Job) -> Option<String> {
        let now = scope.merchant.account_id.as_str();
        if !scope.connected(&self.platform) {
            return Some(format!(
                "merchant {} has no connected account any more",
                scope.id
            ));
        }
        match job.account.as_deref() {
            Some(queued) if queued != now => Some(format!(
                "merchant {} moved from account {queued} to {}; the job was for the first",
                scope.id,
                if now.is_empty() {
                    "the platform's"
                } else {
                    now
                }
            )),
            _ => None,
        }
    }

    /// Sends one email of the outbox to the relay, unless it was sent
    /// meanwhile; the relay's 4xx, a lost connection or a timeout is tried
    /// again, up to `mailer::TRIES`.
    fn send_email(&self, scope: &Scope, job: &Job) -> anyhow::Result<JobResult> {
        let db = &self.db;
        let Ok(id) = job.subject.parse::<i64>() else {
            return Ok(JobResult::GaveUp(format!("no email {}", job.subject)));
        };
        let Some(row) = db.outbox_row(&scope.id, id)? else {
            return Ok(JobResult::GaveUp(format!("email {id} is gone")));
        };
        if row.sent_ms.is_some() {
            return Ok(JobResult::Done);
        }
        let Some(mailer) = &self.mailer else {
            return Ok(JobResult::GaveUp("no SMTP relay is configured".into()));
        };
        // The email and its job are on disk before the relay has it.
        db.make_durable()?;
        match mailer.send(&row) {
            Ok(()) => {
                db.mark_sent(id, self.now_ms())?;
                self.metrics.email_delivery("sent");
                Ok(JobResult::Done)
            }
            Err(e @ SendError::Transient(_)) if job.attempts < crate::mailer::TRIES => {
                self.metrics.email_delivery("retried");
                Ok(JobResult::Again(e.message().to_string()))
            }
            Err(e) => {
                self.metrics.email_delivery("failed");
                Ok(JobResult::GaveUp(format!(
                    "email to {} not sent after {} tries: {}",
                    row.to,
                    job.attempts,
                    e.message()
                )))
            }
        }
    }

    /// Finalizes the invoice unless that was done meanwhile (the platform
    /// called again, or another worker ran the job).
    fn run_finalize(&self, scope: &Scope, id: &str) -> anyhow::Result<JobResult> {
        let sent = self
            .records(scope)
            .parsed_invoice(id)?
            .is_some_and(|(_, st)| st.status != "DRAFT");
        if sent {
            return Ok(JobResult::Done);
        }
        Ok(match self.finalize_now(scope, id)? {
            Finalized::Done => JobResult::Done,
            Finalized::Missing => JobResult::GaveUp(format!("invoice {id} is gone")),
            Finalized::Failed(e) => JobResult::of(e),
        })
    }
}

impl App {
    /// The wake-up a `collection-scheduled` asked for: the plugin decides
    /// what is due (a retry, collection resumed, or nothing), and what it
    /// returns is applied as any call's transitions (`apply_collected`).
    fn run_collect(&self, scope: &Scope, subject: &str) -> anyhow::Result<JobResult> {
        let Some((invoice, due)) = subject.rsplit_once('@') else {
            return Ok(JobResult::GaveUp(format!("not a collection: {subject}")));
        };
        let records = self.records(scope);
        if records.invoice(invoice)?.is_none() {
            return Ok(JobResult::GaveUp(format!("invoice {invoice} is gone")));
        }
        let called = self
            .runtime
            .on_collection_due(&scope.id, &scope.merchant, invoice)?;
        let transitions = match called {
            Ok(t) => t,
            Err(e) => return Ok(JobResult::of(e)),
        };
        let due_ms = due.parse::<u64>().unwrap_or(0);
        records
            .apply_collected(invoice, due_ms, &transitions)
            .map_err(anyhow::Error::new)?;
        // Asked for again, as it is: this very job waits (a new one would
        // be this one, and finishing it would drop both).
        let again = transitions.iter().find_map(|t| match t {
            Transition::CollectionScheduled(c) => {
                let (s, at) = crate::state::collection_job(c);
                (s == subject).then_some(at)
            }
            _ => None,
        });
        Ok(again.map_or(JobResult::Done, JobResult::Rescheduled))
    }
}

enum JobResult {
    Done,
    /// Not failed: the plugin asked for this same wake-up again (an early
    /// one, or an account still restricted), so the job waits until `.0`.
    Rescheduled(i64),
    /// The plugin's retryable failure: waits as Stripe asked, if it did.
    Retry(PluginError),
    /// Another retryable failure (the SMTP relay's): the usual backoff.
    Again(String),
    GaveUp(String),
}

impl JobResult {
    /// A failed try: again later if a retry can help, else never.
    pub(crate) fn of(e: PluginError) -> Self {
        if e.retryable() {
            JobResult::Retry(e)
        } else {
            JobResult::GaveUp(e.message())
        }
    }
}
