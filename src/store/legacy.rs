//! The pre-lease worker API, unfenced: kept only so the daemon and pipeline build until they
//! move to [`Lease`](super::Lease)s (`claim_next`, `save_stage`, `finish`, `release`). Remove
//! once nothing calls it.
//!
//! A task claimed here has no lease (`lease_expires_at` NULL): it is never reclaimed, and its
//! writes only check `status = 'in_progress'`, so a stale worker is not fenced out.

use super::{Finish, Store, StoreError, check_outcome, now_utc, token_column};
use crate::task::{StageRecord, Task};

/// Upsert of one stage of task $1; a re-run replaces the earlier record.
const SAVE_STAGE: &str = concat!(
    "INSERT INTO task_stages (task, stage, output, score, model, input_tokens, output_tokens, \
                              cache_creation_input_tokens, cache_read_input_tokens, duration_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (task, stage) DO UPDATE \
         SET output = EXCLUDED.output, score = EXCLUDED.score, model = EXCLUDED.model, \
             input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, \
             cache_creation_input_tokens = EXCLUDED.cache_creation_input_tokens, \
             cache_read_input_tokens = EXCLUDED.cache_read_input_tokens, \
             duration_ms = EXCLUDED.duration_ms, \
             created_at = ",
    now_utc!()
);

/// Ends task $1, only while it is in_progress.
const FINISH: &str = concat!(
    "UPDATE tasks \
     SET status = $2, consensus_score = $3, result = $4, pr_url = COALESCE($5, pr_url), \
         error = $6, lease_expires_at = NULL, completed_at = ",
    now_utc!(),
    " WHERE id = $1 AND status = 'in_progress'"
);

/// Returns task $1 to the queue, only while it is in_progress (attempts kept, as before leases).
const RELEASE: &str = "\
    UPDATE tasks SET status = 'pending', started_at = NULL, locked_by = NULL, \
        lease_expires_at = NULL \
    WHERE id = $1 AND status = 'in_progress'";

impl Store {
    /// Pre-lease claim: like [`Store::claim_next`] but without a worker id or lease (never
    /// reclaimed). Use `claim_next`.
    pub async fn legacy_claim_next(&self) -> Result<Option<Task>, StoreError> {
        self.claim(None, None).await
    }

    /// Pre-lease, unfenced [`Store::save_stage`] of task `id`. Use `save_stage`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (`#id`) if there is no such task.
    pub async fn legacy_save_stage(&self, id: i32, record: &StageRecord) -> Result<(), StoreError> {
        let usage = record.usage;
        let result = sqlx::query(SAVE_STAGE)
            .bind(id)
            .bind(record.stage.as_str())
            .bind(&record.output)
            .bind(record.score)
            .bind(&record.model)
            .bind(token_column(usage.input_tokens))
            .bind(token_column(usage.output_tokens))
            .bind(token_column(usage.cache_creation_input_tokens))
            .bind(token_column(usage.cache_read_input_tokens))
            .bind(record.duration_ms)
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::NotFound(format!("#{id}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Pre-lease, unfenced [`Store::finish`] of task `id`. Use `finish`.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a status that is not an outcome;
    /// [`StoreError::NotInProgress`] if the task is not in_progress.
    pub async fn legacy_finish(&self, id: i32, finish: &Finish) -> Result<(), StoreError> {
        check_outcome(finish)?;
        let done = sqlx::query(FINISH)
            .bind(id)
            .bind(finish.status.as_str())
            .bind(finish.consensus_score)
            .bind(&finish.result)
            .bind(&finish.pr_url)
            .bind(&finish.error)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotInProgress(id));
        }
        Ok(())
    }

    /// Pre-lease, unfenced [`Store::release`] of task `id` (attempts kept). Use `release`.
    ///
    /// # Errors
    /// [`StoreError::NotInProgress`] if the task is not in_progress.
    pub async fn legacy_release(&self, id: i32) -> Result<(), StoreError> {
        let done = sqlx::query(RELEASE).bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotInProgress(id));
        }
        Ok(())
    }
}
