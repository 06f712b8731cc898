//! LISTEN/NOTIFY: instant pickup of new tasks and of cancellation requests.
//!
//! Migration 0003's triggers NOTIFY [`TASKS_CHANNEL`] with the task_id when a task becomes
//! pending and claimable now (insert, release, retry) and [`CANCEL_CHANNEL`] when a cancellation
//! is requested. PostgreSQL delivers a notification only to sessions listening when the
//! notifying transaction commits, and never again: notifications are a wake-up, not a queue.
//! The daemon keeps its poll as the fallback (tasks scheduled for later and expired leases are
//! never NOTIFYed; see `Store::next_wakeup`).

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};

use super::{ACQUIRE_TIMEOUT, Store, StoreError};

/// Channel NOTIFYed with the task_id when a task becomes claimable pending.
pub const TASKS_CHANNEL: &str = "autonomous_dev_tasks";
/// Channel NOTIFYed with the task_id when cancellation of an in_progress task is requested.
pub const CANCEL_CHANNEL: &str = "autonomous_dev_cancel";

/// One notification, or the news that some may have been missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Task (task_id) became pending and claimable: claim now.
    NewTask(String),
    /// Cancellation of task (task_id) was requested: the worker holding it should stop.
    Cancel(String),
    /// The connection was lost and has been re-established (LISTENing again). Notifications
    /// sent in between are lost for good: do a claim pass and check `cancel_requested` now.
    Reconnected,
}

/// A listener on [`TASKS_CHANNEL`] and [`CANCEL_CHANNEL`], on its own database connection (not
/// one of the store's pool). Created by [`Store::listener`].
///
/// Reconnection: sqlx's [`PgListener`] notices a dropped connection and reconnects, LISTENing to
/// the same channels again; its docs warn that notifications sent while the connection was lost
/// are not returned (NOTIFY is not stored for absent listeners). This wrapper makes the gap
/// visible: [`TaskEvents::recv`] returns [`Event::Reconnected`] once it listens again, after
/// which nothing more is missed. A failed reconnect is returned as an error; the next `recv`
/// builds a fresh listener and, on success, also returns [`Event::Reconnected`].
pub struct TaskEvents {
    /// Pool of one connection for the listener (sqlx reconnects through it).
    pool: PgPool,
    /// `None` after an error: rebuilt by the next `recv`.
    listener: Option<PgListener>,
}

impl std::fmt::Debug for TaskEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEvents")
            .field("listening", &self.listener.is_some())
            .finish()
    }
}

impl TaskEvents {
    /// Waits for the next event (notifications of other channels are skipped).
    ///
    /// Usable in `tokio::select!` next to the poll timer; if the future is dropped while a
    /// notification is being read, at worst that wake-up is missed (the poll covers it).
    ///
    /// # Errors
    /// [`StoreError::Database`] if the connection failed and could not be re-established; call
    /// `recv` again later (it reconnects and then returns [`Event::Reconnected`]).
    pub async fn recv(&mut self) -> Result<Event, StoreError> {
        let listener = match self.listener.as_mut() {
            Some(listener) => listener,
            None => {
                self.listener = Some(listen(&self.pool).await?);
                return Ok(Event::Reconnected);
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let task_id = notification.payload().to_string();
                    match notification.channel() {
                        TASKS_CHANNEL => return Ok(Event::NewTask(task_id)),
                        CANCEL_CHANNEL => return Ok(Event::Cancel(task_id)),
                        _ => continue,
                    }
                }
                // sqlx already reconnected and LISTENs again (eager reconnect, its default).
                Ok(None) => return Ok(Event::Reconnected),
                Err(e) => {
                    self.listener = None;
                    return Err(e.into());
                }
            }
        }
    }
}

/// A listener on both channels, connected through `pool`.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([TASKS_CHANNEL, CANCEL_CHANNEL]).await?;
    Ok(listener)
}

impl Store {
    /// Opens a [`TaskEvents`] listening on [`TASKS_CHANNEL`] and [`CANCEL_CHANNEL`] on a
    /// dedicated connection (same server and credentials as the store). LISTEN is active when
    /// this returns: every notification committed afterwards is received.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the connection or LISTEN fails.
    pub async fn listener(&self) -> Result<TaskEvents, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let listener = listen(&pool).await?;
        Ok(TaskEvents {
            pool,
            listener: Some(listener),
        })
    }
}
