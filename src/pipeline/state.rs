//! The pipeline's edge towards the task's state: everything a run reads and writes of its task —
//! recorded stages, fenced stage saves and ends, cancellation requests, the spend ledger the
//! cost guard reads and records, and a revision's rows — as the [`TaskState`] trait, implemented for [`Store`] by
//! delegation. The pipeline depends on this trait, not on the database, so the state machine can
//! be driven over any implementation.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::{Call, Finish, Lease, Store, StoreError};
use crate::task::{Revision, RevisionEnd, StageRecord};

/// What a run reads and writes of its task's state. Every write takes the run's [`Lease`] and
/// is fenced by it: once another claim moved the task's fencing token on (or the task left
/// in_progress), a write changes nothing and returns [`StoreError::LeaseLost`].
#[async_trait]
pub trait TaskState: Send + Sync {
    /// The stages recorded for task `task` (`tasks.id`), in pipeline order.
    async fn stages(&self, task: i32) -> Result<Vec<StageRecord>, StoreError>;

    /// Records one stage's output (fenced).
    async fn save_stage(&self, lease: &Lease, record: &StageRecord) -> Result<(), StoreError>;

    /// Saves the PR's URL as soon as the PR exists, before the task ends (fenced).
    async fn set_pr_url(&self, lease: &Lease, url: &str) -> Result<(), StoreError>;

    /// Ends the task with `finish` (fenced).
    async fn finish(&self, lease: &Lease, finish: &Finish) -> Result<(), StoreError>;

    /// Ends the task as cancelled, as a person asked (fenced).
    async fn finish_cancelled(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Puts the task back to pending, due in `delay`, with `error` recorded; `spend_attempt`
    /// false gives the attempt back (a pause, not a failure). Fenced.
    async fn retry_later(
        &self,
        lease: &Lease,
        delay: Duration,
        error: &str,
        spend_attempt: bool,
    ) -> Result<(), StoreError>;

    /// True when a person asked to cancel the task (fenced read: a lost lease is an error).
    async fn cancel_requested(&self, lease: &Lease) -> Result<bool, StoreError>;

    /// USD spent on task `task` (`tasks.id`) since its creation or last manual retry.
    async fn task_spend(&self, task: i32) -> Result<f64, StoreError>;

    /// USD spent by all tasks today (UTC).
    async fn spend_today(&self) -> Result<f64, StoreError>;

    /// Records one LLM call in the ledger.
    async fn record_call(&self, call: &Call<'_>) -> Result<(), StoreError>;

    /// The pending revision of the task claimed under `lease`, if any (fenced read).
    async fn open_revision(&self, lease: &Lease) -> Result<Option<Revision>, StoreError>;

    /// The stages revision `revision` recorded, in pipeline order.
    async fn revision_stages(&self, revision: i32) -> Result<Vec<StageRecord>, StoreError>;

    /// Records one stage of revision `revision` (fenced).
    async fn save_revision_stage(
        &self,
        lease: &Lease,
        revision: i32,
        record: &StageRecord,
    ) -> Result<(), StoreError>;

    /// Records the PR branch tip revision `revision` is built on (fenced).
    async fn set_revision_head(
        &self,
        lease: &Lease,
        revision: i32,
        head: &str,
    ) -> Result<(), StoreError>;

    /// Ends revision `revision` with `end` and its cost, completing its task again (fenced).
    async fn end_revision(
        &self,
        lease: &Lease,
        revision: i32,
        end: &RevisionEnd,
        cost_usd: f64,
    ) -> Result<(), StoreError>;
}

#[async_trait]
impl TaskState for Store {
    async fn stages(&self, task: i32) -> Result<Vec<StageRecord>, StoreError> {
        Store::stages(self, task).await
    }

    async fn save_stage(&self, lease: &Lease, record: &StageRecord) -> Result<(), StoreError> {
        Store::save_stage(self, lease, record).await
    }

    async fn set_pr_url(&self, lease: &Lease, url: &str) -> Result<(), StoreError> {
        Store::set_pr_url(self, lease, url).await
    }

    async fn finish(&self, lease: &Lease, finish: &Finish) -> Result<(), StoreError> {
        Store::finish(self, lease, finish).await
    }

    async fn finish_cancelled(&self, lease: &Lease) -> Result<(), StoreError> {
        Store::finish_cancelled(self, lease).await
    }

    async fn retry_later(
        &self,
        lease: &Lease,
        delay: Duration,
        error: &str,
        spend_attempt: bool,
    ) -> Result<(), StoreError> {
        Store::retry_later(self, lease, delay, error, spend_attempt).await
    }

    async fn cancel_requested(&self, lease: &Lease) -> Result<bool, StoreError> {
        Store::cancel_requested(self, lease).await
    }

    async fn task_spend(&self, task: i32) -> Result<f64, StoreError> {
        Store::task_spend(self, task).await
    }

    async fn spend_today(&self) -> Result<f64, StoreError> {
        Store::spend_today(self).await
    }

    async fn record_call(&self, call: &Call<'_>) -> Result<(), StoreError> {
        Store::record_call(self, call).await
    }

    async fn open_revision(&self, lease: &Lease) -> Result<Option<Revision>, StoreError> {
        Store::open_revision(self, lease).await
    }

    async fn revision_stages(&self, revision: i32) -> Result<Vec<StageRecord>, StoreError> {
        Store::revision_stages(self, revision).await
    }

    async fn save_revision_stage(
        &self,
        lease: &Lease,
        revision: i32,
        record: &StageRecord,
    ) -> Result<(), StoreError> {
        Store::save_revision_stage(self, lease, revision, record).await
    }

    async fn set_revision_head(
        &self,
        lease: &Lease,
        revision: i32,
        head: &str,
    ) -> Result<(), StoreError> {
        Store::set_revision_head(self, lease, revision, head).await
    }

    async fn end_revision(
        &self,
        lease: &Lease,
        revision: i32,
        end: &RevisionEnd,
        cost_usd: f64,
    ) -> Result<(), StoreError> {
        Store::end_revision(self, lease, revision, end, cost_usd).await
    }
}
