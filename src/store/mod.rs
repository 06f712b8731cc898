//! The store: every SQL statement of the program lives here (PostgreSQL through sqlx).
//!
//! Owns the `tasks` and `task_stages` tables (see `migrations/`), the claim protocol
//! (`FOR UPDATE SKIP LOCKED`), task loading and the statistics the CLI prints.

mod task_file;

pub use task_file::{TaskFileError, parse_task_file};

use secrecy::SecretString;
use sqlx::PgPool;

use crate::task::{NewTask, StageRecord, Task, TaskStatus};

/// Errors of the store. Messages never contain the connection string.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DATABASE_URL could not be parsed, or the server could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `tasks add` with a task_id that exists.
    #[error("task '{0}' already exists")]
    Duplicate(String),
    #[error("task '{0}' not found")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Counts printed by `tasks load`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub inserted: u64,
    pub skipped: u64,
    pub updated: u64,
}

/// One row of `stats`: the design's `get_stats` (count and mean consensus score per status).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusStats {
    pub status: TaskStatus,
    pub count: i64,
    pub avg_score: Option<f64>,
}

/// How a task ends (`Store::finish`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// `completed`, `failed` or `needs_review`.
    pub status: TaskStatus,
    pub consensus_score: Option<f64>,
    pub result: serde_json::Value,
    pub pr_url: Option<String>,
    pub error: Option<String>,
}

/// Handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Wraps an existing pool (tests use the pool `#[sqlx::test]` gives them).
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    /// Connects to DATABASE_URL. Errors name the problem, never the URL (it may hold a password).
    pub async fn connect(url: &SecretString) -> Result<Store, StoreError> {
        let _ = url;
        todo!()
    }

    /// Applies `migrations/` (embedded at build time); idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        todo!()
    }

    /// Inserts `tasks` in one transaction. Existing task_ids are skipped and counted, or with
    /// `update` their description/priority/labels are overwritten if still pending (counted as
    /// updated; non-pending ones are skipped).
    pub async fn load_tasks(
        &self,
        tasks: &[NewTask],
        update: bool,
    ) -> Result<LoadReport, StoreError> {
        let _ = (tasks, update);
        todo!()
    }

    /// Inserts one task; [`StoreError::Duplicate`] if its task_id exists.
    pub async fn add_task(&self, task: &NewTask) -> Result<(), StoreError> {
        let _ = task;
        todo!()
    }

    /// Tasks, highest priority first (ties: oldest first), optionally of one status.
    pub async fn list_tasks(&self, status: Option<TaskStatus>) -> Result<Vec<Task>, StoreError> {
        let _ = status;
        todo!()
    }

    /// One task by its task_id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        let _ = task_id;
        todo!()
    }

    /// The recorded stages of a task (by `tasks.id`), in pipeline order.
    pub async fn stages(&self, id: i32) -> Result<Vec<StageRecord>, StoreError> {
        let _ = id;
        todo!()
    }

    /// Count and average consensus score for every status (zero counts included).
    pub async fn stats(&self) -> Result<Vec<StatusStats>, StoreError> {
        todo!()
    }

    /// Claims the highest-priority pending task (ties: oldest, then lowest id) in one statement
    /// with `FOR UPDATE SKIP LOCKED`: sets in_progress, started_at, attempts + 1.
    pub async fn claim_next(&self) -> Result<Option<Task>, StoreError> {
        todo!()
    }

    /// Records a completed stage of task `id` (replaces an earlier record of the same stage).
    pub async fn save_stage(&self, id: i32, record: &StageRecord) -> Result<(), StoreError> {
        let _ = (id, record);
        todo!()
    }

    /// Ends an in_progress task: status, consensus_score, result, pr_url, error, completed_at.
    pub async fn finish(&self, id: i32, finish: &Finish) -> Result<(), StoreError> {
        let _ = (id, finish);
        todo!()
    }

    /// Returns an in_progress task to pending (the daemon is stopping); its stages are kept.
    pub async fn release(&self, id: i32) -> Result<(), StoreError> {
        let _ = id;
        todo!()
    }
}
