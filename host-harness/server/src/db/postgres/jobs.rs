//! The durable work queue and its dead letters.

use super::*;
use crate::db::JobStore;

impl JobStore for Postgres {
    fn enqueue_job(&self, job: &NewJob) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(INSERT_JOB, &job_params(job))
            .map_err(failure)?;
        Ok(n == 1)
    }

    /// One statement: the inner `SELECT … FOR UPDATE SKIP LOCKED` passes
    /// over rows another worker is claiming right now.
    fn claim_job(&self, now_ms: i64, lease_until_ms: i64) -> StoreResult<Option<Job>> {
        let row = self
            .conn()?
            .query_opt(
                "UPDATE jobs SET locked_until_ms = $2, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE run_at_ms <= $1
                             AND (locked_until_ms IS NULL OR locked_until_ms <= $1)
                             ORDER BY run_at_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, merchant, kind, subject, attempts, account",
                &[&now_ms, &lease_until_ms],
            )
            .map_err(failure)?;
        Ok(row.map(|r| Job {
            id: r.get(0),
            merchant: r.get(1),
            kind: r.get(2),
            subject: r.get(3),
            attempts: r.get(4),
            account: r.get(5),
        }))
    }

    fn finish_job(&self, id: i64) -> StoreResult<()> {
        self.conn()?
            .execute("DELETE FROM jobs WHERE id = $1", &[&id])
            .map(drop)
            .map_err(failure)
    }

    fn retry_job(&self, id: i64, run_at_ms: i64, error: &str) -> StoreResult<()> {
        self.conn()?
            .execute(
                "UPDATE jobs SET run_at_ms = $2, locked_until_ms = NULL, last_error = $3 WHERE id = $1",
                &[&id, &run_at_ms, &error],
            )
            .map(drop)
            .map_err(failure)
    }

    fn queue_stats(&self, now_ms: i64) -> StoreResult<(i64, i64)> {
        let row = self
            .conn()?
            .query_one(
                "SELECT count(*), coalesce($1 - min(created_ms), 0) FROM jobs",
                &[&now_ms],
            )
            .map_err(failure)?;
        Ok((row.get(0), row.get(1)))
    }

    fn queued_of_kind(&self, kind: &str) -> StoreResult<i64> {
        let row = self
            .conn()?
            .query_one("SELECT count(*) FROM jobs WHERE kind = $1", &[&kind])
            .map_err(failure)?;
        Ok(row.get(0))
    }

    fn cancel_job(&self, merchant: &str, kind: &str, subject: &str) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                "DELETE FROM jobs WHERE merchant = $1 AND kind = $2 AND subject = $3",
                &[&merchant, &kind, &subject],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }

    /// One statement: the row leaves the queue and lands in the dead letters together.
    fn bury_job(&self, id: i64, error: &str, now_ms: i64) -> StoreResult<()> {
        self.conn()?
            .execute(
                "WITH gone AS (DELETE FROM jobs WHERE id = $1
                               RETURNING merchant, kind, subject, attempts, created_ms)
                 INSERT INTO dead_letters (merchant, kind, subject, attempts, created_ms, died_ms, error)
                 SELECT merchant, kind, subject, attempts, created_ms, $2, $3 FROM gone",
                &[&id, &now_ms, &error],
            )
            .map(drop)
            .map_err(failure)
    }

    fn dead_letters(&self, merchant: &str) -> StoreResult<Vec<DeadLetter>> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, kind, subject, attempts, created_ms, died_ms, error
                 FROM dead_letters WHERE merchant = $1 ORDER BY id",
                &[&merchant],
            )
            .map_err(failure)?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                id: r.get(0),
                kind: r.get(1),
                subject: r.get(2),
                attempts: r.get(3),
                created_ms: r.get(4),
                died_ms: r.get(5),
                error: r.get(6),
            })
            .collect())
    }

    /// One statement: the dead letter leaves and its job is queued, due now.
    fn revive_dead_letter(&self, merchant: &str, id: i64, now_ms: i64) -> StoreResult<bool> {
        let row = self
            .conn()?
            .query_opt(
                "WITH gone AS (DELETE FROM dead_letters WHERE id = $1 AND merchant = $2
                               RETURNING merchant, kind, subject, created_ms, error),
                 queued AS (INSERT INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
                            SELECT merchant, kind, subject, $3, created_ms, error FROM gone
                            ON CONFLICT (merchant, kind, subject) DO NOTHING)
                 SELECT count(*) FROM gone",
                &[&id, &merchant, &now_ms],
            )
            .map_err(failure)?;
        Ok(row.is_some_and(|r| r.get::<_, i64>(0) > 0))
    }

    fn dead_letter_count(&self) -> StoreResult<i64> {
        let row = self
            .conn()?
            .query_one("SELECT count(*) FROM dead_letters", &[])
            .map_err(failure)?;
        Ok(row.get(0))
    }
}

/// Queues a job unless the same one (merchant, kind, subject) is queued.
pub(super) const INSERT_JOB: &str =
    "INSERT INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error, account)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (merchant, kind, subject) DO NOTHING";

/// `INSERT_JOB`'s parameters.
pub(super) fn job_params<'a>(job: &'a NewJob) -> [&'a (dyn postgres::types::ToSql + Sync); 7] {
    [
        &job.merchant,
        &job.kind,
        &job.subject,
        &job.run_at_ms,
        &job.created_ms,
        &job.error,
        &job.account,
    ]
}
