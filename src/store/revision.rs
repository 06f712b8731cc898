//! Revisions' rows (`revisions`, `revision_stages`, `tasks.feedback_cursor` and
//! `tasks.checks_seen`): the PR watch
//! requests a revision of a completed task — one transaction that inserts it and puts the task
//! back in the queue, where the usual claim and lease serve it — and the pipeline reads it,
//! records its stages and its head, and ends it, which completes the task again. Every write of
//! the pipeline is fenced by the task's lease like the task's own (`claim.rs`).

use sqlx::types::Json;

use super::claim::{bind_record, fenced_result};
use super::{Lease, Store, StoreError};
use crate::task::{
    ChecksSeen, Feedback, FeedbackCursor, Revision, RevisionEnd, RevisionStatus, RevisionTrigger,
    Stage, StageRecord,
};

/// A revision the PR watch asks for.
#[derive(Debug, Clone, Copy)]
pub struct RevisionAsk<'a> {
    pub trigger: RevisionTrigger,
    /// The conversation or the failed checks it answers.
    pub feedback: &'a Feedback,
    /// The conversation read up to here (recorded whatever the answer), if it was read.
    pub cursor: Option<FeedbackCursor>,
    /// The checks as seen now (recorded whatever the answer), for a check revision.
    pub checks: Option<&'a ChecksSeen>,
    /// The head whose conflict with the base is acted on (recorded whatever the answer), for
    /// a conflict revision.
    pub conflict_head: Option<&'a str>,
    /// Most revisions of this trigger per PR (MAX_REVISIONS, MAX_CI_FIXES).
    pub max: u32,
}

/// What [`Store::request_revision`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionRequest {
    /// Revision `number` was inserted and the task is pending again.
    Requested { number: i32 },
    /// `max` revisions of this trigger were made already: none was inserted.
    Exhausted,
    /// The checks fail as they did before the last check revision ([`Feedback::failure_key`]):
    /// none was inserted.
    Repeated,
    /// The task is not completed (it is running, or was retried or cancelled meanwhile):
    /// nothing changed.
    Busy,
}

/// $1 task_id. The completed task, locked for the request.
const LOCK_COMPLETED: &str = "\
    SELECT id FROM tasks WHERE task_id = $1 AND status = 'completed' FOR UPDATE";

/// $1 tasks.id, $2 trigger.
const REVISION_COUNT: &str = "SELECT count(*) FROM revisions WHERE task = $1 AND trigger = $2";

/// $1 tasks.id. The conversation or checks of the task's last check revision.
const LAST_CHECK_FEEDBACK: &str = "\
    SELECT feedback FROM revisions WHERE task = $1 AND trigger = 'check' \
    ORDER BY number DESC LIMIT 1";

/// $1 tasks.id, $2 number, $3 trigger, $4 feedback.
const INSERT_REVISION: &str = "\
    INSERT INTO revisions (task, number, trigger, feedback) VALUES ($1, $2, $3, $4)";

/// $1 tasks.id, $2 cursor, $3 checks, $4 conflict head (each NULL: unchanged). The task back
/// in the queue for its revision: claimable now, with its attempts and its budget
/// (MAX_TASK_COST_USD per revision) counted afresh.
const REQUEUE: &str = "\
    UPDATE tasks \
    SET status = 'pending', run_after = now(), attempts = 0, budget_since = now(), \
        error = NULL, feedback_cursor = COALESCE($2, feedback_cursor), \
        checks_seen = COALESCE($3, checks_seen), conflict_head = COALESCE($4, conflict_head) \
    WHERE id = $1";

/// $1 task_id, $2 cursor, $3 checks, $4 conflict head (each NULL: unchanged).
const SET_SEEN: &str = "\
    UPDATE tasks \
    SET feedback_cursor = COALESCE($2, feedback_cursor), checks_seen = COALESCE($3, checks_seen), \
        conflict_head = COALESCE($4, conflict_head) \
    WHERE task_id = $1";

/// $1 tasks.id. Revisions so far (all triggers).
const ALL_COUNT: &str = "SELECT count(*) FROM revisions WHERE task = $1";

/// $1 tasks.id, $2 the lease's token. The task's pending revision, read under its lease.
const OPEN_REVISION: &str = "\
    SELECT r.id, r.task, r.number, r.trigger, r.status, r.feedback, r.head_commit, r.outcome, \
           r.cost_usd, r.created_at, r.finished_at \
    FROM revisions r JOIN tasks t ON t.id = r.task \
    WHERE r.task = $1 AND r.status = 'pending' \
      AND t.fencing_token = $2 AND t.status = 'in_progress'";

/// $1 revisions.id, $2 the stages in order.
const REVISION_STAGES: &str = "\
    SELECT stage, output, evidence, score, model, input_tokens, output_tokens, \
           cache_creation_input_tokens, cache_read_input_tokens, duration_ms, created_at, \
           base_commit, lookups \
    FROM revision_stages \
    WHERE revision = $1 \
    ORDER BY array_position($2::varchar[], stage), id";

/// Upsert of one revision stage while the lease holds ($1 tasks.id, $2 token, $3 revision,
/// then the record's columns), as `SAVE_STAGE` of the task's own stages.
const SAVE_REVISION_STAGE: &str = "\
    INSERT INTO revision_stages (revision, stage, output, score, model, input_tokens, \
                                 output_tokens, cache_creation_input_tokens, \
                                 cache_read_input_tokens, duration_ms, evidence, base_commit, \
                                 lookups) \
    SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
    FROM tasks \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress' \
    FOR SHARE \
    ON CONFLICT (revision, stage) DO UPDATE \
        SET output = EXCLUDED.output, score = EXCLUDED.score, model = EXCLUDED.model, \
            input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, \
            cache_creation_input_tokens = EXCLUDED.cache_creation_input_tokens, \
            cache_read_input_tokens = EXCLUDED.cache_read_input_tokens, \
            duration_ms = EXCLUDED.duration_ms, evidence = EXCLUDED.evidence, \
            base_commit = EXCLUDED.base_commit, lookups = EXCLUDED.lookups, created_at = now()";

/// $1 tasks.id, $2 token, $3 revisions.id, $4 head commit.
const SET_HEAD: &str = "\
    UPDATE revisions SET head_commit = $4 \
    WHERE id = $3 AND status = 'pending' AND EXISTS ( \
        SELECT 1 FROM tasks WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress')";

/// $1 tasks.id, $2 token, $3 revisions.id, $4 status, $5 outcome, $6 cost.
const END_REVISION: &str = "\
    UPDATE revisions \
    SET status = $4, outcome = $5, cost_usd = $6, finished_at = now() \
    WHERE id = $3 AND status = 'pending' AND EXISTS ( \
        SELECT 1 FROM tasks WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress')";

/// $1 tasks.id, $2 token. The task completed again (its result and PR are the task's own).
const COMPLETE_AGAIN: &str = "\
    UPDATE tasks \
    SET status = 'completed', lease_expires_at = NULL, completed_at = now() \
    WHERE id = $1 AND fencing_token = $2 AND status = 'in_progress'";

/// $1 tasks.id. Every revision of the task, in order.
const REVISIONS: &str = "\
    SELECT id, task, number, trigger, status, feedback, head_commit, outcome, cost_usd, \
           created_at, finished_at \
    FROM revisions WHERE task = $1 ORDER BY number";

impl Store {
    /// Requests revision `ask` of completed task `task_id` (the PR watch), in one transaction:
    /// unless `ask.max` revisions of its trigger exist, or (for checks) the checks fail as
    /// they did before the last check revision, inserts the next revision and puts the task
    /// back to pending — claimable now, attempts and budget counted afresh. `ask.cursor` and
    /// `ask.checks` are recorded whatever the answer, except for a task not completed, which
    /// is left alone ([`RevisionRequest::Busy`]).
    pub async fn request_revision(
        &self,
        task_id: &str,
        ask: RevisionAsk<'_>,
    ) -> Result<RevisionRequest, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(id): Option<i32> = sqlx::query_scalar(LOCK_COMPLETED)
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(RevisionRequest::Busy);
        };
        let made: i64 = sqlx::query_scalar(REVISION_COUNT)
            .bind(id)
            .bind(ask.trigger)
            .fetch_one(&mut *tx)
            .await?;
        let refused = if made >= i64::from(ask.max) {
            Some(RevisionRequest::Exhausted)
        } else if ask.trigger == RevisionTrigger::Check {
            let last: Option<Json<Feedback>> = sqlx::query_scalar(LAST_CHECK_FEEDBACK)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            last.filter(|last| last.failure_key() == ask.feedback.failure_key())
                .map(|_| RevisionRequest::Repeated)
        } else {
            None
        };
        if let Some(refused) = refused {
            sqlx::query(SET_SEEN)
                .bind(task_id)
                .bind(ask.cursor.map(Json))
                .bind(ask.checks.map(Json))
                .bind(ask.conflict_head)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(refused);
        }
        let all: i64 = sqlx::query_scalar(ALL_COUNT)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let number = i32::try_from(all + 1).unwrap_or(i32::MAX);
        sqlx::query(INSERT_REVISION)
            .bind(id)
            .bind(number)
            .bind(ask.trigger)
            .bind(Json(ask.feedback))
            .execute(&mut *tx)
            .await?;
        sqlx::query(REQUEUE)
            .bind(id)
            .bind(ask.cursor.map(Json))
            .bind(ask.checks.map(Json))
            .bind(ask.conflict_head)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RevisionRequest::Requested { number })
    }

    /// Records what the watch read of task `task_id`'s PR without asking for a revision: the
    /// conversation up to `cursor`, its checks as `checks` (each `None`: unchanged).
    pub async fn set_seen(
        &self,
        task_id: &str,
        cursor: Option<FeedbackCursor>,
        checks: Option<&ChecksSeen>,
    ) -> Result<(), StoreError> {
        sqlx::query(SET_SEEN)
            .bind(task_id)
            .bind(cursor.map(Json))
            .bind(checks.map(Json))
            .bind(None::<&str>)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The pending revision of the task claimed under `lease`, if any (fenced read: a lost
    /// lease reads none).
    pub async fn open_revision(&self, lease: &Lease) -> Result<Option<Revision>, StoreError> {
        Ok(sqlx::query_as(OPEN_REVISION)
            .bind(lease.task)
            .bind(lease.token)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The stages revision `revision` recorded, in pipeline order.
    pub async fn revision_stages(&self, revision: i32) -> Result<Vec<StageRecord>, StoreError> {
        Ok(sqlx::query_as(REVISION_STAGES)
            .bind(revision)
            .bind(Stage::ALL)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records one stage of revision `revision` (fenced).
    pub async fn save_revision_stage(
        &self,
        lease: &Lease,
        revision: i32,
        record: &StageRecord,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(SAVE_REVISION_STAGE)
            .bind(lease.task)
            .bind(lease.token)
            .bind(revision);
        let done = bind_record(query, record).execute(&self.pool).await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Records the PR branch tip revision `revision` is built on (fenced).
    pub async fn set_revision_head(
        &self,
        lease: &Lease,
        revision: i32,
        head: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(SET_HEAD)
            .bind(lease.task)
            .bind(lease.token)
            .bind(revision)
            .bind(head)
            .execute(&self.pool)
            .await?;
        fenced_result(done.rows_affected(), lease)
    }

    /// Ends revision `revision` with `end` and its cost, and completes its task again, in one
    /// transaction (fenced: with a lost lease nothing changes).
    pub async fn end_revision(
        &self,
        lease: &Lease,
        revision: i32,
        end: &RevisionEnd,
        cost_usd: f64,
    ) -> Result<(), StoreError> {
        let status = match end {
            RevisionEnd::Pushed { .. } | RevisionEnd::Merged { .. } => RevisionStatus::Pushed,
            RevisionEnd::NotApproved { .. } => RevisionStatus::NotApproved,
            RevisionEnd::Failed { .. } => RevisionStatus::Failed,
        };
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query(END_REVISION)
            .bind(lease.task)
            .bind(lease.token)
            .bind(revision)
            .bind(status)
            .bind(Json(end))
            .bind(cost_usd)
            .execute(&mut *tx)
            .await?;
        fenced_result(ended.rows_affected(), lease)?;
        let completed = sqlx::query(COMPLETE_AGAIN)
            .bind(lease.task)
            .bind(lease.token)
            .execute(&mut *tx)
            .await?;
        fenced_result(completed.rows_affected(), lease)?;
        tx.commit().await?;
        Ok(())
    }

    /// Every revision of task `task` (`tasks.id`), oldest first.
    pub async fn revisions(&self, task: i32) -> Result<Vec<Revision>, StoreError> {
        Ok(sqlx::query_as(REVISIONS)
            .bind(task)
            .fetch_all(&self.pool)
            .await?)
    }
}
