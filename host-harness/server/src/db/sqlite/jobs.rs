//! The durable work queue and its dead letters.

use super::*;
use crate::db::JobStore;

impl JobStore for Sqlite {
    fn enqueue_job(&self, job: &NewJob) -> StoreResult<bool> {
        let n = self
            .conn()
            .exec_cached(INSERT_JOB, job_params(job))
            .map_err(failure)?;
        Ok(n == 1)
    }

    fn claim_job(&self, now_ms: i64, lease_until_ms: i64) -> StoreResult<Option<Job>> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failure)?;
        let job = tx
            .row_cached(
                "UPDATE jobs SET locked_until_ms = ?2, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE run_at_ms <= ?1
                             AND (locked_until_ms IS NULL OR locked_until_ms <= ?1)
                             ORDER BY run_at_ms, id LIMIT 1)
                 RETURNING id, merchant, kind, subject, attempts, account",
                params![now_ms, lease_until_ms],
                |r| {
                    Ok(Job {
                        id: r.get(0)?,
                        merchant: r.get(1)?,
                        kind: r.get(2)?,
                        subject: r.get(3)?,
                        attempts: r.get(4)?,
                        account: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(failure)?;
        tx.commit().map_err(failure)?;
        Ok(job)
    }

    fn finish_job(&self, id: i64) -> StoreResult<()> {
        self.conn()
            .exec_cached("DELETE FROM jobs WHERE id = ?1", [id])
            .map(drop)
            .map_err(failure)
    }

    fn retry_job(&self, id: i64, run_at_ms: i64, error: &str) -> StoreResult<()> {
        self.conn()
            .exec_cached(
                "UPDATE jobs SET run_at_ms = ?2, locked_until_ms = NULL, last_error = ?3 WHERE id = ?1",
                params![id, run_at_ms, error],
            )
            .map(drop)
            .map_err(failure)
    }

    fn queue_stats(&self, now_ms: i64) -> StoreResult<(i64, i64)> {
        self.conn()
            .row_cached(
                "SELECT count(*), coalesce(?1 - min(created_ms), 0) FROM jobs",
                [now_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(failure)
    }

    fn queued_of_kind(&self, kind: &str) -> StoreResult<i64> {
        self.conn()
            .row_cached("SELECT count(*) FROM jobs WHERE kind = ?1", [kind], |r| {
                r.get(0)
            })
            .map_err(failure)
    }

    fn cancel_job(&self, merchant: &str, kind: &str, subject: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .exec_cached(
                "DELETE FROM jobs WHERE merchant = ?1 AND kind = ?2 AND subject = ?3",
                params![merchant, kind, subject],
            )
            .map_err(failure)?;
        Ok(n > 0)
    }

    fn bury_job(&self, id: i64, error: &str, now_ms: i64) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failure)?;
        tx.exec_cached(
            "INSERT INTO dead_letters (merchant, kind, subject, attempts, created_ms, died_ms, error)
             SELECT merchant, kind, subject, attempts, created_ms, ?2, ?3 FROM jobs WHERE id = ?1",
            params![id, now_ms, error],
        )
        .map_err(failure)?;
        tx.exec_cached("DELETE FROM jobs WHERE id = ?1", [id])
            .map_err(failure)?;
        tx.commit().map_err(failure)
    }

    fn dead_letters(&self, merchant: &str) -> StoreResult<Vec<DeadLetter>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, kind, subject, attempts, created_ms, died_ms, error
                 FROM dead_letters WHERE merchant = ?1 ORDER BY id",
            )
            .map_err(failure)?;
        let rows = stmt
            .query_map([merchant], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    attempts: r.get(3)?,
                    created_ms: r.get(4)?,
                    died_ms: r.get(5)?,
                    error: r.get(6)?,
                })
            })
            .map_err(failure)?;
        rows.collect::<Result<_, _>>().map_err(failure)
    }

    fn revive_dead_letter(&self, merchant: &str, id: i64, now_ms: i64) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(failure)?;
        tx.exec_cached(
            "INSERT OR IGNORE INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error)
             SELECT merchant, kind, subject, ?3, created_ms, error FROM dead_letters
             WHERE id = ?1 AND merchant = ?2",
            params![id, merchant, now_ms],
        )
        .map_err(failure)?;
        let n = tx
            .exec_cached(
                "DELETE FROM dead_letters WHERE id = ?1 AND merchant = ?2",
                params![id, merchant],
            )
            .map_err(failure)?;
        tx.commit().map_err(failure)?;
        Ok(n > 0)
    }

    fn dead_letter_count(&self) -> StoreResult<i64> {
        self.conn()
            .row_cached("SELECT count(*) FROM dead_letters", [], |r| r.get(0))
            .map_err(failure)
    }
}

/// Queues a job unless the same one (merchant, kind, subject) is queued.
pub(super) const INSERT_JOB: &str = "INSERT OR IGNORE INTO jobs (merchant, kind, subject, run_at_ms, created_ms, last_error, account)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// `INSERT_JOB`'s parameters.
pub(super) fn job_params<'a>(job: &'a NewJob) -> [&'a dyn rusqlite::ToSql; 7] {
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
