//! The daemon: claims the highest-priority pending task, runs it through the pipeline, and claims
//! again at once while work remains; otherwise waits POLL_INTERVAL. On shutdown it stops
//! claiming, and a task it cannot finish goes back to pending (never stays in_progress).

mod shutdown;

pub use shutdown::Shutdown;

use std::time::Duration;

use tracing::{Instrument, error, info, warn};

use crate::pipeline::{Pipeline, PipelineError};
use crate::store::{Store, StoreError};
use crate::task::Task;

/// How long to wait before claiming again after the database failed, doubling to a minute.
const DB_RETRY_START: Duration = Duration::from_secs(1);
const DB_RETRY_MAX: Duration = Duration::from_secs(60);

/// The claim loop.
pub struct Daemon {
    store: Store,
    pipeline: Pipeline,
    poll_interval: Duration,
    once: bool,
}

impl Daemon {
    /// `once`: exit when no pending task is left instead of polling.
    pub fn new(store: Store, pipeline: Pipeline, poll_interval: Duration, once: bool) -> Daemon {
        Daemon {
            store,
            pipeline,
            poll_interval,
            once,
        }
    }

    /// Runs until `shutdown` is triggered (or, with `once`, until the queue is empty).
    /// Errors only if the database is unreachable in `once` mode; the long-running daemon waits
    /// out database outages with backoff instead.
    pub async fn run(&self, shutdown: &Shutdown) -> Result<(), StoreError> {
        let mut db_backoff = DB_RETRY_START;
        while !shutdown.is_triggered() {
            match self.store.legacy_claim_next().await {
                Ok(Some(task)) => {
                    db_backoff = DB_RETRY_START;
                    let span = tracing::info_span!("task", task_id = %task.task_id);
                    self.process(task, shutdown).instrument(span).await;
                }
                Ok(None) if self.once => {
                    info!("no pending task left");
                    break;
                }
                Ok(None) => self.idle(self.poll_interval, shutdown).await,
                Err(e) if self.once => return Err(e),
                Err(e) => {
                    error!(error = %e, retry_in_s = db_backoff.as_secs(), "cannot claim a task");
                    self.idle(db_backoff, shutdown).await;
                    db_backoff = (db_backoff * 2).min(DB_RETRY_MAX);
                }
            }
        }
        Ok(())
    }

    async fn idle(&self, duration: Duration, shutdown: &Shutdown) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.triggered() => {}
        }
    }

    /// Runs one claimed task; on shutdown (or a store failure mid-task) releases it to pending.
    async fn process(&self, task: Task, shutdown: &Shutdown) {
        info!(priority = task.priority, attempt = task.attempts, "claimed");
        let result = tokio::select! {
            result = self.pipeline.run(&task, shutdown) => result,
            _ = shutdown.deadline() => Err(PipelineError::Interrupted),
        };
        match result {
            Ok(status) => info!(%status, "task finished"),
            Err(PipelineError::Interrupted) => self.release(&task, "shutdown").await,
            Err(PipelineError::Store(e)) => {
                error!(error = %e, "database error while processing");
                self.release(&task, "database error").await;
            }
        }
    }

    async fn release(&self, task: &Task, why: &str) {
        match self.store.legacy_release(task.id).await {
            Ok(()) => warn!(
                reason = why,
                "released back to pending; completed stages are kept"
            ),
            Err(e) => {
                error!(reason = why, error = %e, "could not release the task; it stays in_progress")
            }
        }
    }
}
