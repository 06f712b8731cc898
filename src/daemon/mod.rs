//! The daemon: CONCURRENCY workers, each claiming the highest-priority pending task, running it
//! through the pipeline, and claiming again at once while work remains; an idle worker waits
//! POLL_INTERVAL or until woken. On shutdown they stop claiming, and a task a worker cannot
//! finish goes back to pending (never stays in_progress).

mod systemd;

/// Re-exported for the CLI, which builds the daemon's shutdown.
pub use crate::shutdown::Shutdown;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{Instrument, debug, error, info, warn};

use crate::backoff::Backoff;
use crate::pipeline::{Ended, PauseReason, PipelineError, TaskRunner};
use crate::store::{Event, EventKind, Lease, Store, StoreError, worker_id};
use crate::task::{Task, TaskStatus};

/// How long to wait before claiming again after the database failed: the shared backoff from
/// 1 s, doubling to a minute.
const DB_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// Shortest sleep of an idle worker, so a wake-up time already past cannot spin the loop.
const MIN_IDLE: Duration = Duration::from_millis(200);

/// How the claim loop behaves.
#[derive(Debug, Clone, Copy)]
pub struct DaemonSettings {
    /// Wait between claims when the queue is empty (POLL_INTERVAL).
    pub poll_interval: Duration,
    /// Tasks run at once in this process (CONCURRENCY, at least 1).
    pub concurrency: usize,
    /// Exit when no pending task is left instead of polling (`run --once`).
    pub once: bool,
    /// How long a claim is valid without renewal (LEASE_SECONDS, default 60 s); a task whose
    /// lease expired (its daemon crashed or was killed) is reclaimed by any daemon.
    pub lease: Duration,
    /// How often a worker renews its lease (HEARTBEAT_SECONDS, default 10 s).
    pub heartbeat: Duration,
}

/// The claim loop and its workers.
pub struct Daemon {
    store: Store,
    /// What runs a claimed task (the product's [`crate::pipeline::Pipeline`]).
    pipeline: Arc<dyn TaskRunner>,
    settings: DaemonSettings,
    wakeup: Notify,
    busy: Mutex<BTreeSet<String>>,
    /// Until when no worker claims: a rate limit or exhausted quota was hit (exhausted quota
    /// pauses for the retry policy's quota wait, 5 hours by default).
    paused_until: Mutex<Option<(Instant, PauseReason)>>,
}

impl Daemon {
    /// A daemon claiming from `store` and running each claimed task through `pipeline`.
    pub fn new(store: Store, pipeline: Arc<dyn TaskRunner>, settings: DaemonSettings) -> Daemon {
        Daemon {
            store,
            pipeline,
            settings,
            wakeup: Notify::new(),
            busy: Mutex::default(),
            paused_until: Mutex::default(),
        }
    }

    /// Wakes idle workers to claim now (a task was just inserted).
    pub fn wake(&self) {
        self.wakeup.notify_waiters();
    }

    /// Tells systemd the daemon is ready and starts the watchdog heartbeat, then runs the
    /// workers until `shutdown` is triggered (or, with `once`, until the queue is
    /// empty), with a listener that wakes them when a task is inserted (LISTEN/NOTIFY; the poll
    /// stays as the fallback). Errors only if the database fails in `once` mode; the
    /// long-running daemon waits out database outages with backoff instead.
    pub async fn run(&self, shutdown: &Shutdown) -> Result<(), StoreError> {
        systemd::ready("idle, waiting for tasks");
        systemd::spawn_watchdog(shutdown);
        let workers = (0..self.settings.concurrency.max(1)).map(|n| {
            let worker = worker_id(u32::try_from(n).unwrap_or(u32::MAX));
            self.worker(worker, shutdown)
                .instrument(tracing::info_span!("worker", worker = n))
        });
        let workers = futures::future::join_all(workers);
        let result = if self.settings.once {
            workers.await
        } else {
            tokio::select! {
                results = workers => results,
                () = self.listen(shutdown) => unreachable!("the listener runs until shutdown"),
            }
        };
        systemd::stopping();
        result.into_iter().collect()
    }

    /// Wakes the workers on every new-task notification and after a listener reconnect (missed
    /// notifications are covered by that claim pass and by the poll). Never returns.
    async fn listen(&self, shutdown: &Shutdown) {
        let mut events = None;
        let mut interrupted = false;
        loop {
            if shutdown.is_triggered() {
                std::future::pending::<()>().await;
            }
            let listener = match &mut events {
                Some(listener) => listener,
                None => match self.store.listener().await {
                    Ok(listener) => {
                        crate::metrics::global().set_listener(true);
                        events.insert(listener)
                    }
                    Err(e) => {
                        crate::metrics::global().set_listener(false);
                        if !interrupted {
                            warn!(error = %e, "cannot LISTEN for new tasks; polling until it works again");
                            interrupted = true;
                        }
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                },
            };
            match listener.recv().await {
                Ok(Event::NewTask(_)) => self.wake(),
                Ok(Event::Reconnected) => {
                    crate::metrics::global().set_listener(true);
                    if interrupted {
                        info!("listening for new tasks again");
                        interrupted = false;
                    }
                    self.wake();
                }
                Ok(Event::Cancel(task_id)) => info!(task_id, "cancellation requested"),
                Err(e) => {
                    crate::metrics::global().set_listener(false);
                    if !interrupted {
                        warn!(error = %e, "task notifications interrupted; reconnecting, polling meanwhile");
                        interrupted = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn worker(&self, worker: String, shutdown: &Shutdown) -> Result<(), StoreError> {
        let mut db_failures = 0u32;
        let mut db_down = false;
        while !shutdown.is_triggered() {
            // Falls through to the pause below, which idles. An unreachable database shows in
            // the claim below, which handles it.
            if let Ok(Some(wait)) = self.pipeline.budget_pause().await {
                self.pause(wait, PauseReason::DailyBudget);
            }
            if self.settings.once && self.budget_spent() {
                warn!("daily budget (DAILY_BUDGET_USD) spent: stopping (--once)");
                break;
            }
            if let Some(pause) = self.pause_left() {
                self.idle(pause, shutdown).await;
                continue;
            }
            // Failures show in the claim below, which handles them.
            if let Ok((blocked, unblocked)) = self.store.follow_dependencies().await {
                for (task_id, reason) in blocked {
                    warn!(task_id, reason, "task blocked by its dependencies");
                }
                for task_id in unblocked {
                    info!(
                        task_id,
                        "task unblocked: its dependencies are no longer lost"
                    );
                }
            }
            match self.store.claim_next(&worker, self.settings.lease).await {
                Ok(claimed) => {
                    if db_down {
                        info!("database reachable again");
                        db_down = false;
                    }
                    db_failures = 0;
                    match claimed {
                        Some((task, lease)) => {
                            let span = tracing::info_span!("task", task_id = %task.task_id);
                            self.process(task, lease, shutdown).instrument(span).await;
                        }
                        None if self.settings.once => {
                            info!("no pending task left");
                            break;
                        }
                        None => self.idle(self.until_next_wakeup().await, shutdown).await,
                    }
                }
                Err(e) if self.settings.once => return Err(e),
                Err(e) => {
                    let wait = DB_BACKOFF.delay(db_failures);
                    if db_down {
                        debug!(error = %e, retry_in_ms = wait.as_millis() as u64, "claim failed again; the database is still unreachable");
                    } else {
                        error!(error = %e, "cannot claim a task; retrying with backoff until the database answers");
                        systemd::status("database unreachable, retrying");
                        db_down = true;
                    }
                    self.idle(wait, shutdown).await;
                    db_failures = db_failures.saturating_add(1);
                }
            }
        }
        Ok(())
    }

    /// How long an idle worker sleeps: POLL_INTERVAL, or less when a scheduled retry
    /// (`run_after`) or a lease expiry comes sooner — neither is announced by NOTIFY.
    async fn until_next_wakeup(&self) -> Duration {
        let poll = self.settings.poll_interval;
        match self.store.next_wakeup().await {
            Ok(Some(at)) => {
                let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                left.clamp(MIN_IDLE, poll.max(MIN_IDLE))
            }
            Ok(None) | Err(_) => poll,
        }
    }

    async fn idle(&self, duration: Duration, shutdown: &Shutdown) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.wakeup.notified() => {}
            _ = shutdown.triggered() => {}
        }
    }

    /// Runs one claimed task while renewing its lease. On shutdown (or a store failure) the
    /// task is released to pending; when the lease is lost, another worker owns the task and
    /// this one stops at once, writing nothing more.
    async fn process(&self, task: Task, lease: Lease, shutdown: &Shutdown) {
        let metrics = crate::metrics::global();
        metrics.picked_up(task.queue.run_after);
        if task.queue.cancel_requested {
            info!("cancelled before it resumed");
            match self.store.finish_cancelled(&lease).await {
                Ok(()) => metrics.task_finished(TaskStatus::Cancelled),
                Err(e) => error!(error = %e, "could not record the cancellation"),
            }
            return;
        }
        info!(
            priority = task.priority,
            attempt = task.attempts,
            token = lease.token,
            "claimed"
        );
        self.set_busy(&task.task_id, true);
        let result = tokio::select! {
            result = self.pipeline.run(&task, &lease, shutdown) => result,
            _ = shutdown.deadline() => Err(PipelineError::Interrupted),
            lost = self.heartbeat(&task.task_id, &lease) => Err(PipelineError::Store(lost)),
        };
        match result {
            Ok(Ended::Finished(status)) => {
                metrics.task_finished(status);
                info!(%status, "task finished")
            }
            Ok(Ended::RetryLater) => {
                metrics.retries.inc();
                info!("task returned to pending for a later attempt")
            }
            Ok(Ended::Paused { wait, why }) => {
                metrics.snoozes.inc();
                self.pause(wait, why)
            }
            Err(PipelineError::Store(StoreError::LeaseLost(_))) => {
                warn!("lease lost: another worker owns this task now; stopped without writing")
            }
            Err(PipelineError::Interrupted) => self.release(&lease, "shutdown").await,
            Err(PipelineError::Store(e)) => {
                error!(error = %e, "database error while processing");
                self.release(&lease, "database error").await;
            }
        }
        self.set_busy(&task.task_id, false);
    }

    /// Renews `lease` every heartbeat; returns only when the lease is lost. A database outage
    /// is retried at the next heartbeat (if it outlasts the lease, the renewal reports it lost).
    /// A renewal that lost only to this worker's own last write (the task left in_progress with
    /// the lease's token unchanged) never returns: the pipeline's result is the task's end.
    async fn heartbeat(&self, task_id: &str, lease: &Lease) -> StoreError {
        loop {
            tokio::time::sleep(self.settings.heartbeat).await;
            match self.store.renew(lease, self.settings.lease).await {
                Ok(()) => {}
                Err(lost @ StoreError::LeaseLost(_)) => {
                    let ended_here = matches!(
                        self.store.get_task(task_id).await,
                        Ok(Some(now)) if now.queue.fencing_token == lease.token
                            && now.status != TaskStatus::InProgress
                    );
                    if ended_here {
                        return std::future::pending().await;
                    }
                    return lost;
                }
                Err(e) => warn!(error = %e, "could not renew the lease; retrying"),
            }
        }
    }

    async fn release(&self, lease: &Lease, why: &str) {
        match self.store.release(lease).await {
            Ok(()) => warn!(
                reason = why,
                "released back to pending; completed stages are kept"
            ),
            Err(e) => {
                error!(reason = why, error = %e, "could not release the task; its lease will expire")
            }
        }
    }

    /// Stops all claiming for `wait` because of `why`; logged once per pause, not once per
    /// worker.
    fn pause(&self, wait: Duration, why: PauseReason) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|(current, _)| current < until) {
            warn!(
                pause_s = wait.as_secs(),
                reason = %why,
                "pausing all work; no task fails and no attempt is spent"
            );
            systemd::status(&format!("paused {} s: {why}", wait.as_secs()));
            if paused.is_none() {
                self.record(
                    EventKind::Paused,
                    format!("{why}, for {} s", wait.as_secs()),
                );
            }
            *paused = Some((until, why));
            let key = match why {
                PauseReason::RateLimited => "rate_limited",
                PauseReason::Overloaded => "overloaded",
                PauseReason::DailyBudget => "daily_budget",
            };
            let until = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            let reason = why.to_string();
            crate::metrics::global()
                .set_pause(Some((key, crate::metrics::Pause { reason, until })));
        }
    }

    /// True while a pause for the daily budget runs.
    fn budget_spent(&self) -> bool {
        let paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*paused, Some((until, PauseReason::DailyBudget)) if until > Instant::now())
    }

    /// Writes the daemon's event `kind` to the notification outbox in the background (a failure
    /// is logged; the work goes on).
    fn record(&self, kind: EventKind, detail: String) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.record_event(kind, &detail).await {
                warn!(error = %e, event = kind.as_str(), "cannot write the notification event");
            }
        });
    }

    /// What is left of a pause, if one is running.
    fn pause_left(&self) -> Option<Duration> {
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        let left = paused.map(|(until, _)| until.saturating_duration_since(Instant::now()));
        match left {
            Some(left) if !left.is_zero() => Some(left),
            Some(_) => {
                info!("pause over: claiming again");
                *paused = None;
                self.record(EventKind::Resumed, String::new());
                crate::metrics::global().set_pause(None);
                None
            }
            None => None,
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
        crate::metrics::global()
            .workers_busy
            .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
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
