//! Leases with fencing tokens: the claim, its renewal, and every write a worker makes.
//!
//! The protocol follows the PostgreSQL job queues (River, Oban, graphile-worker, pg-boss) plus
//! Kleppmann's fencing tokens ("How to do distributed locking", 2016):
//! - [`Store::claim_next`] takes the first claimable task in ONE statement with
//!   `FOR UPDATE SKIP LOCKED` — a pending task whose `run_after` has come, or an in_progress task
//!   whose lease expired (its worker crashed, hung or lost the network) — and increments its
//!   `fencing_token`. The [`Lease`] it returns carries that token.
//! - Every write a worker makes names the lease in the same statement
//!   (`WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'`), so a worker whose lease
//!   was reclaimed cannot change anything: it gets [`StoreError::LeaseLost`] and must stop.
//! - A write with an expired lease that nobody reclaimed yet still succeeds: no one else holds
//!   the task, so the work is not duplicated.
//! - The worker renews its lease ([`Store::renew`]) well before it expires (e.g. every third of
//!   the lease) while a stage runs; a stage longer than the lease without renewal is paid twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Finish, Store, StoreError, check_outcome, token_column};
use crate::task::{StageRecord, Task};

/// Proof of a claim: the task's row id and the fencing token this claim received.
///
/// Returned by [`Store::claim_next`]; every fenced write takes it. Stale once another claim of
/// the same task happens (the token moved on) or the task leaves in_progress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// `tasks.id` of the claimed task.
    pub task: i32,
    /// `tasks.fencing_token` after this claim (1 for the first claim of a task).
    pub token: i64,
    /// Worker id given to the claim (`tasks.locked_by`), e.g. `host:pid:n`.
    pub worker: String,
}

/// A worker id `host:pid:slot` for [`Store::claim_next`]: unique across the daemons sharing a
/// database as long as host names are. The host name is read from
/// `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown-host`.
pub fn worker_id(slot: u32) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{host}:{}:{slot}", std::process::id())
}

// Every write a worker makes ends in the fence `WHERE id = $1 AND fencing_token = $2 AND
// status = 'in_progress'` ($1 tasks.id, $2 the lease's token): it changes nothing unless the
// lease is still the task's current one. A task returned to the queue (release, retry_later)
// ends cancelled instead when cancellation was requested meanwhile, so a request is never lost.

/// The claim, in one statement: the first claimable task by priority DESC, created_at, id —
/// pending with `run_after` come and every dependency done (completed with its PR merged, or
/// completed without a PR), or in_progress with an expired lease — locked with
/// `FOR UPDATE SKIP LOCKED` so concurrent claimers skip each other's rows (served by
/// `idx_tasks_claim`). $1 worker id, $2 lease length (interval).
const CLAIM: &str = "\
    UPDATE tasks \
    SET status = 'in_progress', \
        locked_by = $1, \
        lease_expires_at = now() + $2, \
        fencing_token = fencing_token + 1, \
        started_at = COALESCE(started_at, now()), \
        attempts = attempts + 1 \
    WHERE id = ( \
        SELECT id FROM tasks \
        WHERE (status = 'pending' AND run_after <= now() \
               AND NOT EXISTS ( \
                   SELECT 1 FROM task_dependencies x JOIN tasks d ON d.id = x.depends_on \
                   WHERE x.task = tasks.id \
                     AND NOT (d.status = 'completed' \
                              AND (d.pr_url IS NULL \
                                   OR d.pr_state IS NOT DISTINCT FROM 'merged')))) \
           OR (status = 'in_progress' AND lease_expires_at < now()) \
        ORDER BY priority DESC, created_at, id \
        LIMIT 1 \
        FOR UPDATE SKIP LOCKED) \
    RETURNING id, task_id, description, status, priority, labels, attempts, created_at, \
              updated_at, started_at, completed_at, pr_url, consensus_score, result, error, \
              run_after, locked_by, lease_expires_at, fencing_token, cancel_requested, \
              approved_by, pr_state, pr_state_at, issue_number, reviewers";

/// $3 lease length from now (interval).
const RENEW: &str = "\
    UPDATE tasks \
    SET lease_expires_at = now() + $3 \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

/// Upsert of one stage, written only while the lease holds. `FOR SHARE` keeps a concurrent
/// reclaim from slipping between the check and the insert (the claim's UPDATE waits, or this
/// statement re-checks the token after the claim commits and inserts nothing).
const SAVE_STAGE: &str = "\
    INSERT INTO task_stages (task, stage, output, score, model, input_tokens, output_tokens, \
                             cache_creation_input_tokens, cache_read_input_tokens, duration_ms, \
                             evidence, base_commit, lookups) \
    SELECT id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
    FROM tasks \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress' \
    FOR SHARE \
    ON CONFLICT (task, stage) DO UPDATE \
        SET output = EXCLUDED.output, \
            score = EXCLUDED.score, \
            model = EXCLUDED.model, \
            input_tokens = EXCLUDED.input_tokens, \
            output_tokens = EXCLUDED.output_tokens, \
            cache_creation_input_tokens = EXCLUDED.cache_creation_input_tokens, \
            cache_read_input_tokens = EXCLUDED.cache_read_input_tokens, \
            duration_ms = EXCLUDED.duration_ms, \
            evidence = EXCLUDED.evidence, \
            base_commit = EXCLUDED.base_commit, \
            lookups = EXCLUDED.lookups, \
            created_at = now()";

/// $3 the pull request's URL.
const SET_PR_URL: &str = "\
    UPDATE tasks \
    SET pr_url = $3 \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

/// $3 status, $4 consensus_score, $5 result, $6 pr_url (NULL keeps the saved one), $7 error.
const FINISH: &str = "\
    UPDATE tasks \
    SET status = $3, \
        consensus_score = $4, \
        result = $5, \
        pr_url = COALESCE($6, pr_url), \
        error = $7, \
        lease_expires_at = NULL, \
        completed_at = now() \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

/// Back to pending with the claim's attempt given back — or cancelled if that was requested.
const RELEASE: &str = "\
    UPDATE tasks \
    SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
        completed_at = CASE WHEN cancel_requested THEN now() END, \
        locked_by = CASE WHEN cancel_requested THEN locked_by END, \
        lease_expires_at = NULL, \
        attempts = GREATEST(attempts - 1, 0) \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

/// Back to pending, claimable after a delay — or cancelled if that was requested. $3 delay
/// (interval), $4 error, $5 whether the attempt counts.
const RETRY_LATER: &str = "\
    UPDATE tasks \
    SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
        completed_at = CASE WHEN cancel_requested THEN now() END, \
        locked_by = CASE WHEN cancel_requested THEN locked_by END, \
        lease_expires_at = NULL, \
        run_after = now() + $3, \
        error = $4, \
        attempts = CASE WHEN $5 THEN attempts ELSE GREATEST(attempts - 1, 0) END \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

const CANCEL_REQUESTED: &str = "\
    SELECT cancel_requested \
    FROM tasks \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

const FINISH_CANCELLED: &str = "\
    UPDATE tasks \
    SET status = 'cancelled', \
        lease_expires_at = NULL, \
        completed_at = now() \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

/// The earliest time a task becomes claimable: a pending task's run_after or an in_progress
/// task's lease expiry.
const NEXT_WAKEUP: &str = "\
    SELECT min(t) FROM ( \
        SELECT min(run_after) AS t FROM tasks WHERE status = 'pending' \
        UNION ALL \
        SELECT min(lease_expires_at) FROM tasks WHERE status = 'in_progress') AS due";

impl Store {
    /// Claims the first claimable task for `worker` with a lease of `lease_for`, in one
    /// statement (`FOR UPDATE SKIP LOCKED`, so concurrent claimers never share a task).
    ///
    /// Claimable: pending with `run_after <= now`, or in_progress with `lease_expires_at < now`
    /// (reclaim: its worker crashed or stalled; the old lease becomes stale). Order: priority
    /// DESC, then created_at, then id. The claim sets in_progress, `locked_by = worker`,
    /// `lease_expires_at = now + lease_for`, `fencing_token + 1`, `attempts + 1`, and
    /// `started_at` unless already set (the first claim's time is kept).
    ///
    /// `None` when nothing is claimable (or every candidate is being claimed by someone else).
    /// A returned task with `queue.cancel_requested` set was reclaimed after a cancellation
    /// request: end it with [`Store::finish_cancelled`] without running anything. The daemon
    /// decides from `task.attempts` (which counts this claim) whether to give up.
    pub async fn claim_next(
        &self,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<(Task, Lease)>, StoreError> {
        let task: Option<Task> = sqlx::query_as(CLAIM)
            .bind(worker)
            .bind(interval(lease_for))
            .fetch_optional(&self.pool)
            .await?;
        Ok(task.map(|task| {
            let lease = Lease {
                task: task.id,
                token: task.queue.fencing_token,
                worker: worker.to_string(),
            };
            (task, lease)
        }))
    }

    /// Extends the lease to now + `lease_for` (it may already have expired, as long as nobody
    /// reclaimed the task).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] if the task was reclaimed or is no longer in_progress.
    pub async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<(), StoreError> {
        let done = sqlx::query(RENEW)
            .bind(lease.task)
            .bind(lease.token)
            .bind(interval(lease_for))
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Records a completed stage of the leased task (replaces an earlier record of the same
    /// stage). `record.created_at` is ignored: the database stamps the time. Token counts above
    /// `i32::MAX` are stored as `i32::MAX`.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing written) if the lease is stale.
    pub async fn save_stage(&self, lease: &Lease, record: &StageRecord) -> Result<(), StoreError> {
        let query = sqlx::query(SAVE_STAGE).bind(lease.task).bind(lease.token);
        let done = bind_record(query, record).execute(&self.pool).await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Saves the task's pull request URL as soon as the PR exists (before [`Store::finish`]), so
    /// a retry or a reclaim finds the PR instead of opening another.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing written) if the lease is stale.
    pub async fn set_pr_url(&self, lease: &Lease, url: &str) -> Result<(), StoreError> {
        let done = sqlx::query(SET_PR_URL)
            .bind(lease.task)
            .bind(lease.token)
            .bind(url)
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Ends the leased task: status, consensus_score, result, error, pr_url (a `None` keeps the
    /// URL saved by [`Store::set_pr_url`]), completed_at = now (UTC); the lease is cleared and
    /// `locked_by` kept (who finished it).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] unless `finish.status` is completed, failed or needs_review;
    /// [`StoreError::LeaseLost`] (nothing written) if the lease is stale.
    pub async fn finish(&self, lease: &Lease, finish: &Finish) -> Result<(), StoreError> {
        check_outcome(finish)?;
        let done = sqlx::query(FINISH)
            .bind(lease.task)
            .bind(lease.token)
            .bind(finish.status)
            .bind(finish.consensus_score)
            .bind(Json(&finish.result))
            .bind(&finish.pr_url)
            .bind(&finish.error)
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Gives the task back (the daemon is stopping, or the database failed mid-task): pending,
    /// lease and `locked_by` cleared, `attempts - 1` so an interrupted claim does not burn an
    /// attempt; its stages are kept (the next claim resumes after them) and `started_at` too. A
    /// task whose cancellation was requested ends cancelled instead. NOTIFYs
    /// `autonomous_dev_tasks` (migration 0003's trigger).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing written) if the lease is stale.
    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let done = sqlx::query(RELEASE)
            .bind(lease.task)
            .bind(lease.token)
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Transient failure: back to pending, not claimable before now + `delay`, `error` kept for
    /// `tasks show`; lease and `locked_by` cleared. `spend_attempt = false` (rate limit, quota
    /// wait: not the task's fault) gives the claim's attempt back (`attempts - 1`). A task whose
    /// cancellation was requested ends cancelled instead. Whether attempts are exhausted (then
    /// [`Store::finish`] as failed instead) is the caller's policy, from `task.attempts`.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing written) if the lease is stale.
    pub async fn retry_later(
        &self,
        lease: &Lease,
        delay: Duration,
        error: &str,
        spend_attempt: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(RETRY_LATER)
            .bind(lease.task)
            .bind(lease.token)
            .bind(interval(delay))
            .bind(error)
            .bind(spend_attempt)
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Whether someone asked to cancel the leased task ([`Store::cancel`]); checked at every
    /// stage boundary (also a cheap check that the lease still holds).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] if the lease is stale.
    pub async fn cancel_requested(&self, lease: &Lease) -> Result<bool, StoreError> {
        let requested: Option<bool> = sqlx::query_scalar(CANCEL_REQUESTED)
            .bind(lease.task)
            .bind(lease.token)
            .fetch_optional(&self.pool)
            .await?;
        requested.ok_or(StoreError::LeaseLost(lease.task))
    }

    /// Ends the leased task as cancelled (after [`Store::cancel_requested`] said so, or a claim
    /// returned a task with `queue.cancel_requested`): completed_at = now, lease cleared, stages
    /// and pr_url kept.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing written) if the lease is stale.
    pub async fn finish_cancelled(&self, lease: &Lease) -> Result<(), StoreError> {
        let done = sqlx::query(FINISH_CANCELLED)
            .bind(lease.task)
            .bind(lease.token)
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// The earliest time at which a task becomes claimable — a pending task's `run_after`
    /// or an in_progress task's lease expiry — so the daemon can sleep until then instead of
    /// polling blindly (neither event is NOTIFYed). In the past if something is claimable now;
    /// `None` if no task is pending or leased.
    pub async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due = sqlx::query_scalar(NEXT_WAKEUP)
            .fetch_one(&self.pool)
            .await?;
        Ok(due)
    }
}

/// `query` with a stage record's columns bound next, in the order `SAVE_STAGE` and
/// `SAVE_REVISION_STAGE` list them: stage, output, score, model, the four token counts,
/// duration_ms, evidence, base_commit, lookups.
pub(super) fn bind_record<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    record: &'q StageRecord,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let usage = record.usage;
    query
        .bind(record.stage)
        .bind(&record.output)
        .bind(record.score)
        .bind(&record.model)
        .bind(token_column(usage.input_tokens))
        .bind(token_column(usage.output_tokens))
        .bind(token_column(usage.cache_creation_input_tokens))
        .bind(token_column(usage.cache_read_input_tokens))
        .bind(record.duration_ms)
        .bind(&record.evidence)
        .bind(&record.base_commit)
        .bind(sqlx::types::Json(&record.lookups))
}

/// A fenced write changed `rows` rows: one means the lease held, none that it is stale.
pub(super) fn fenced_result(rows: u64, lease: &Lease) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::LeaseLost(lease.task))
    } else {
        Ok(())
    }
}

/// `d` cut to whole microseconds: PostgreSQL's `interval` has no finer unit, and sqlx refuses
/// to encode a `Duration` with nanoseconds (a jittered backoff has them).
pub(super) fn interval(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_whole_microseconds() {
        assert_eq!(
            interval(Duration::new(20, 123_456_789)),
            Duration::new(20, 123_456_000)
        );
    }

    #[test]
    fn worker_ids_name_host_pid_and_slot() {
        let id = worker_id(3);
        let suffix = format!(":{}:3", std::process::id());
        assert!(id.ends_with(&suffix), "{id}");
        assert!(id.len() > suffix.len(), "{id}");
    }
}
