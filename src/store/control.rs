//! What a person does to a task from the CLI: cancel it, retry it after it failed or was
//! cancelled, or decide a needs_review task (approve its change for publishing, or reject it).
//! Each is a single statement that locks the task's row first (`FOR UPDATE`), so it serializes
//! with claims and with the worker's fenced writes.

use super::{Store, StoreError};
use crate::task::TaskStatus;

/// What [`Store::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The task was pending: it is cancelled now.
    Now,
    /// The task is in_progress: `cancel_requested` is set and `autonomous_dev_cancel` NOTIFYed;
    /// its worker stops at the next stage boundary and calls [`Store::finish_cancelled`] (a
    /// task reclaimed after its worker died is cancelled by the reclaiming worker).
    Requested,
    /// The task had already ended (completed, failed, needs_review or cancelled); unchanged.
    AlreadyFinished(TaskStatus),
}

/// $1 task_id. Returns the status the task had before (no row: unknown task_id). A pending or
/// blocked task becomes cancelled; an in_progress one gets `cancel_requested` (the 0003 trigger
/// NOTIFYs).
const CANCEL: &str = "\
    WITH target AS ( \
        SELECT id, status FROM tasks WHERE task_id = $1 FOR UPDATE), \
    changed AS ( \
        UPDATE tasks t \
        SET status = CASE WHEN target.status IN ('pending', 'blocked') THEN 'cancelled' \
                          ELSE t.status END, \
            completed_at = CASE WHEN target.status IN ('pending', 'blocked') THEN now() \
                                ELSE t.completed_at END, \
            cancel_requested = t.cancel_requested OR target.status = 'in_progress' \
        FROM target \
        WHERE t.id = target.id AND target.status IN ('pending', 'blocked', 'in_progress') \
        RETURNING t.id) \
    SELECT status FROM target";

/// $1 task_id, $2 whether to delete its stage records. Returns the status the task had before
/// (no row: unknown task_id); only a failed or cancelled task is reset (a data-modifying CTE
/// runs to completion even though the final SELECT does not read it). pr_url is kept (the PR
/// may still exist on GitHub); the outcome columns (result, consensus_score, completed_at) and
/// started_at are cleared. The 0003 trigger NOTIFYs `autonomous_dev_tasks`.
const RETRY: &str = "\
    WITH target AS ( \
        SELECT id, status FROM tasks WHERE task_id = $1 FOR UPDATE), \
    reset AS ( \
        UPDATE tasks t \
        SET status = 'pending', \
            attempts = 0, \
            error = NULL, \
            cancel_requested = false, \
            locked_by = NULL, \
            lease_expires_at = NULL, \
            started_at = NULL, \
            completed_at = NULL, \
            result = NULL, \
            consensus_score = NULL, \
            approved_by = NULL, \
            budget_since = now(), \
            run_after = now() \
        FROM target \
        WHERE t.id = target.id AND target.status IN ('failed', 'cancelled') \
        RETURNING t.id), \
    wiped AS ( \
        DELETE FROM task_stages WHERE $2 AND task IN (SELECT id FROM reset)) \
    SELECT status FROM target";

/// $1 task_id, $2 the approver. Returns the status the task had before (no row: unknown
/// task_id); only a needs_review task changes: pending and claimable now with `approved_by` set,
/// its stage records kept (the next run resumes after them and publishes), its outcome columns
/// cleared as a retry's are. The 0003 trigger NOTIFYs `autonomous_dev_tasks`.
const APPROVE: &str = "\
    WITH target AS ( \
        SELECT id, status FROM tasks WHERE task_id = $1 FOR UPDATE), \
    approved AS ( \
        UPDATE tasks t \
        SET status = 'pending', \
            approved_by = $2, \
            attempts = 0, \
            error = NULL, \
            locked_by = NULL, \
            lease_expires_at = NULL, \
            started_at = NULL, \
            completed_at = NULL, \
            result = NULL, \
            consensus_score = NULL, \
            budget_since = now(), \
            run_after = now() \
        FROM target \
        WHERE t.id = target.id AND target.status = 'needs_review' \
        RETURNING t.id) \
    SELECT status FROM target";

/// $1 task_id, $2 the error to record. Returns the status the task had before (no row: unknown
/// task_id); only a needs_review task changes: failed now with that error, its outcome (the
/// votes) kept.
const REJECT: &str = "\
    WITH target AS ( \
        SELECT id, status FROM tasks WHERE task_id = $1 FOR UPDATE), \
    rejected AS ( \
        UPDATE tasks t \
        SET status = 'failed', \
            error = $2, \
            completed_at = now() \
        FROM target \
        WHERE t.id = target.id AND target.status = 'needs_review' \
        RETURNING t.id) \
    SELECT status FROM target";

/// A dependency is lost when it failed, was cancelled or blocked, or completed with its PR
/// closed unmerged. Pending tasks with a lost dependency become blocked, their error naming
/// each (`blocked by a (failed), b (PR closed unmerged)`); returns their task_ids.
const BLOCK: &str = "\
    UPDATE tasks t \
    SET status = 'blocked', error = lost.reason \
    FROM ( \
        SELECT x.task, 'blocked by ' || string_agg( \
                   d.task_id || ' (' || CASE WHEN d.status = 'completed' \
                                             THEN 'PR closed unmerged' ELSE d.status END || ')', \
                   ', ' ORDER BY d.task_id) AS reason \
        FROM task_dependencies x JOIN tasks d ON d.id = x.depends_on \
        WHERE d.status IN ('failed', 'cancelled', 'blocked') \
           OR (d.status = 'completed' AND d.pr_state = 'closed') \
        GROUP BY x.task) lost \
    WHERE t.id = lost.task \
      AND (t.status = 'pending' OR (t.status = 'blocked' AND t.error IS DISTINCT FROM lost.reason)) \
    RETURNING t.task_id, t.error";

/// Blocked tasks with no lost dependency left (one was retried) become pending again (the
/// 0003 trigger NOTIFYs); returns their task_ids.
const UNBLOCK: &str = "\
    UPDATE tasks t \
    SET status = 'pending', error = NULL \
    WHERE t.status = 'blocked' \
      AND NOT EXISTS ( \
          SELECT 1 FROM task_dependencies x JOIN tasks d ON d.id = x.depends_on \
          WHERE x.task = t.id \
            AND (d.status IN ('failed', 'cancelled', 'blocked') \
                 OR (d.status = 'completed' AND d.pr_state = 'closed'))) \
    RETURNING t.task_id";

impl Store {
    /// Cancels task `task_id`: a pending or blocked task at once ([`Cancelled::Now`]); an
    /// in_progress one by request ([`Cancelled::Requested`]: flag set, `autonomous_dev_cancel`
    /// NOTIFYed with the task_id; the worker finishes it as cancelled); an ended one is left
    /// alone ([`Cancelled::AlreadyFinished`]). Idempotent.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such task.
    pub async fn cancel(&self, task_id: &str) -> Result<Cancelled, StoreError> {
        let before: TaskStatus = sqlx::query_scalar(CANCEL)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(task_id.to_string()))?;
        Ok(match before {
            TaskStatus::Pending | TaskStatus::Blocked => Cancelled::Now,
            TaskStatus::InProgress => Cancelled::Requested,
            other => Cancelled::AlreadyFinished(other),
        })
    }

    /// Puts a failed or cancelled task back in the queue: pending, attempts 0, error cleared,
    /// claimable now, cancellation request cleared. With `fresh` its stage records are deleted
    /// (everything is asked again); otherwise the next claim resumes after the last recorded
    /// stage. Its budget starts again (MAX_TASK_COST_USD counts calls from now). NOTIFYs
    /// `autonomous_dev_tasks`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such task; [`StoreError::Invalid`] naming the
    /// status for any other status (nothing is changed).
    pub async fn retry(&self, task_id: &str, fresh: bool) -> Result<(), StoreError> {
        let before: TaskStatus = sqlx::query_scalar(RETRY)
            .bind(task_id)
            .bind(fresh)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(task_id.to_string()))?;
        match before {
            TaskStatus::Failed | TaskStatus::Cancelled => Ok(()),
            other => Err(StoreError::Invalid(format!(
                "task '{task_id}' is {other}: only a failed or cancelled task can be retried"
            ))),
        }
    }

    /// Approves needs_review task `task_id` on behalf of `by` (a person's name, as the PR body
    /// will show it): the task goes back to pending with `approved_by` set, and the next run
    /// publishes its recorded change as its PR instead of holding it again. NOTIFYs
    /// `autonomous_dev_tasks`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such task; [`StoreError::Invalid`] naming the
    /// status for any other status (nothing is changed).
    pub async fn approve(&self, task_id: &str, by: &str) -> Result<(), StoreError> {
        let before = self.decide(APPROVE, task_id, by).await?;
        only_needs_review(task_id, before, "approved")
    }

    /// Rejects needs_review task `task_id` for `reason`: it fails with the error
    /// `rejected by a person: <reason>`, its votes kept.
    ///
    /// # Errors
    /// As [`Store::approve`].
    pub async fn reject(&self, task_id: &str, reason: &str) -> Result<(), StoreError> {
        let error = format!("rejected by a person: {reason}");
        let before = self.decide(REJECT, task_id, &error).await?;
        only_needs_review(task_id, before, "rejected")
    }

    /// Runs [`APPROVE`] or [`REJECT`]: the status before.
    async fn decide(
        &self,
        sql: &'static str,
        task_id: &str,
        value: &str,
    ) -> Result<TaskStatus, StoreError> {
        sqlx::query_scalar(sql)
            .bind(task_id)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(task_id.to_string()))
    }

    /// Follows the dependencies: pending tasks with a lost dependency (failed, cancelled,
    /// blocked, or its PR closed unmerged) become blocked with the reason as their error, and
    /// blocked tasks whose dependencies are no longer lost become pending. Returns
    /// `(blocked: (task_id, reason), unblocked: task_id)`. Run before each claim.
    pub async fn follow_dependencies(
        &self,
    ) -> Result<(Vec<(String, String)>, Vec<String>), StoreError> {
        let blocked = sqlx::query_as(BLOCK).fetch_all(&self.pool).await?;
        let unblocked = sqlx::query_scalar(UNBLOCK).fetch_all(&self.pool).await?;
        Ok((blocked, unblocked))
    }
}

/// `Ok` when the task was needs_review; otherwise the error saying that only such a task can be
/// `done` (approved, rejected).
fn only_needs_review(task_id: &str, before: TaskStatus, done: &str) -> Result<(), StoreError> {
    match before {
        TaskStatus::NeedsReview => Ok(()),
        other => Err(StoreError::Invalid(format!(
            "task '{task_id}' is {other}: only a needs_review task can be {done}"
        ))),
    }
}
