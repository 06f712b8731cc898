//! The daemon: CONCURRENCY workers, each claiming the highest-priority pending task, running it
//! through the pipeline, and claiming again at once while work remains; an idle worker waits
//! POLL_INTERVAL or until woken. On shutdown they stop claiming, and a task a worker cannot
//! finish goes back to pending (never stays in_progress).

mod shutdown;
pub mod systemd;

pub use shutdown::Shutdown;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{Instrument, error, info, warn};

use crate::pipeline::{Pipeline, PipelineError};
use crate::store::{Store, StoreError};
use crate::task::Task;

/// How long to wait before claiming again after the database failed, doubling to a minute.
const DB_RETRY_START: Duration = Duration::from_secs(1);
const DB_RETRY_MAX: Duration = Duration::from_secs(60);

/// How the claim loop behaves.
#[derive(Debug, Clone, Copy)]
pub struct DaemonSettings {
    /// Wait between claims when the queue is empty (POLL_INTERVAL).
    pub poll_interval: Duration,
    /// Tasks run at once in this process (CONCURRENCY, at least 1).
    pub concurrency: usize,
    /// Exit when no pending task is left instead of polling (`run --once`).
    pub once: bool,
}

/// The claim loop and its workers.
pub struct Daemon {
    store: Store,
    pipeline: Pipeline,
    settings: DaemonSettings,
    wakeup: Notify,
    busy: Mutex<BTreeSet<String>>,
}

impl Daemon {
    pub fn new(store: Store, pipeline: Pipeline, settings: DaemonSettings) -> Daemon {
        Daemon {
            store,
            pipeline,
            settings,
            wakeup: Notify::new(),
            busy: Mutex::default(),
        }
    }

    /// Wakes idle workers to claim now (a task was just inserted).
    pub fn wake(&self) {
        self.wakeup.notify_waiters();
    }

    /// Runs the workers until `shutdown` is triggered (or, with `once`, until the queue is
    /// empty). Errors only if the database fails in `once` mode; the long-running daemon waits
    /// out database outages with backoff instead.
    pub async fn run(&self, shutdown: &Shutdown) -> Result<(), StoreError> {
        let workers = (0..self.settings.concurrency.max(1)).map(|n| {
            self.worker(shutdown)
                .instrument(tracing::info_span!("worker", worker = n))
        });
        let results = futures::future::join_all(workers).await;
        systemd::stopping();
        results.into_iter().collect()
    }

    async fn worker(&self, shutdown: &Shutdown) -> Result<(), StoreError> {
        let mut db_backoff = DB_RETRY_START;
        while !shutdown.is_triggered() {
            match self.store.legacy_claim_next().await {
                Ok(Some(task)) => {
                    db_backoff = DB_RETRY_START;
                    let span = tracing::info_span!("task", task_id = %task.task_id);
                    self.process(task, shutdown).instrument(span).await;
                }
                Ok(None) if self.settings.once => {
                    info!("no pending task left");
                    break;
                }
                Ok(None) => self.idle(self.settings.poll_interval, shutdown).await,
                Err(e) if self.settings.once => return Err(e),
                Err(e) => {
                    error!(error = %e, retry_in_s = db_backoff.as_secs(), "cannot claim a task");
                    systemd::status("database unreachable, retrying");
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
            _ = self.wakeup.notified() => {}
            _ = shutdown.triggered() => {}
        }
    }

    /// Runs one claimed task; on shutdown (or a store failure mid-task) releases it to pending.
    async fn process(&self, task: Task, shutdown: &Shutdown) {
        info!(priority = task.priority, attempt = task.attempts, "claimed");
        self.set_busy(&task.task_id, true);
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
        self.set_busy(&task.task_id, false);
    }

    async fn release(&self, task: &Task, why: &str) {
        match self.store.legacy_release(task.id).await {
            Ok(()) => warn!(
                reason = why,
                "released back to pending; completed stages are kept"
            ),
            Err(e) => error!(reason = why, error = %e, "could not release the task"),
        }
    }

    /// Keeps systemd's STATUS= line saying which tasks are running.
    fn set_busy(&self, task_id: &str, busy: bool) {
        let mut set = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy {
            set.insert(task_id.to_owned());
        } else {
            set.remove(task_id);
        }
        let status = if set.is_empty() {
            "idle, waiting for tasks".to_owned()
        } else {
            format!(
                "processing {}",
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        systemd::status(&status);
    }
}
