//! The store: every SQL statement of the program lives here (PostgreSQL through sqlx).
//!
//! Owns the `tasks`, `task_stages` and `llm_calls` tables (see `migrations/`). This file holds the connection,
//! task loading, the read queries and the statistics the CLI prints; the queue protocol is split
//! by concept:
//! - `claim`: leases with fencing tokens — `claim_next`, `renew` and every write a worker
//!   makes (`save_stage`, `set_pr_url`, `finish`, `release`, `retry_later`, …), each fenced by
//!   the claim's token in the same statement;
//! - `control`: what a person does to a task (`cancel`, `retry`, `approve`, `reject`);
//! - `events`: LISTEN/NOTIFY ([`TaskEvents`]) for instant pickup and cancellation;
//! - `outbox`: the notification events (written by triggers) and their deliveries per sink;
//! - `pr_watch`: which opened PRs are due for a look, and what a look saw;
//! - `revision`: revisions of an opened PR — requested by the watch, run and ended under the
//!   task's lease;
//! - `spend`: the ledger of LLM calls (`llm_calls`) the budget caps and cost reports read;
//! - `status`: the read-only views of the operator (a page of the queue, workers, spend per
//!   day / role / model, waiting tasks, a liveness ping);
//!
//! Every statement is one whole SQL constant, checked at run time (`sqlx::query`/`query_as`, bind
//! parameters only); rows become [`Task`], [`StageRecord`], [`StatusStats`] and [`StageCost`]
//! through their `sqlx::FromRow` derives, statuses and stages bind as their text
//! (`sqlx::Type`). Timestamps are `timestamptz` and every statement reads the clock as `now()`.

mod claim;
mod control;
mod events;
mod issues;
mod outbox;
mod pr_watch;
mod revision;
mod spend;
mod status;
mod task_file;

pub use claim::{Lease, worker_id};
pub use control::Cancelled;
pub use events::{CANCEL_CHANNEL, Event, TASKS_CHANNEL, TaskEvents};
pub use issues::{IssueTask, NewIssueTask};
pub use outbox::{DayReport, EventKind, OutboxEvent};
pub use pr_watch::{PrCounts, WatchedPr};
pub use revision::{RevisionAsk, RevisionRequest};
pub use spend::{Call, StageCost};
pub use status::{DayRow, QueueFilter, QueueRow, SpendRow, WaitingRow, WorkerRow};
pub use task_file::{TaskFileError, parse_task_file, validate_new_task};

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::task::{NewTask, Stage, StageRecord, Task, TaskStatus};

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
    /// A fenced write or `renew` with a [`Lease`] that is no longer current (names `tasks.id`):
    /// the lease expired and another worker reclaimed the task (its fencing token moved on), or
    /// the task left in_progress (finished, released, cancelled). Nothing was changed; the worker
    /// must stop working on the task without further writes.
    #[error(
        "lease on task #{0} lost (reclaimed by another worker, or the task is no longer in progress)"
    )]
    LeaseLost(i32),
    /// A task or a request the store refuses before touching the database (see
    /// [`validate_new_task`]); the message names the entry and the field.
    #[error("invalid input: {0}")]
    Invalid(String),
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

/// One row of `stats`: count and mean consensus score of one status, and
/// what those tasks cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct StatusStats {
    pub status: TaskStatus,
    pub count: i64,
    pub avg_score: Option<f64>,
    /// USD the tasks now in this status have spent on LLM calls (the ledger's total).
    pub cost_usd: f64,
}

/// One role's row of `stats`: its LLM calls over every task, and how many were corrective
/// retries (an answer that did not validate, sent back).
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RoleCalls {
    pub stage: Stage,
    pub calls: i64,
    pub corrections: i64,
}

/// How a task ends (`Store::finish`; `pr_url: None` keeps a URL saved by `Store::set_pr_url`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// `completed`, `failed` or `needs_review`.
    pub status: TaskStatus,
    pub consensus_score: Option<f64>,
    /// How the task ended; stored as JSONB in `tasks.result`.
    pub result: crate::task::Outcome,
    pub pr_url: Option<String>,
    pub error: Option<String>,
}

/// How long to wait for the server, or for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The only message for a DATABASE_URL that does not parse (the URL itself is never shown).
const BAD_URL: &str = "DATABASE_URL is not a valid PostgreSQL connection string \
                       (expected postgres://user:password@host:port/database)";

/// Set-based load without `--update`: new task_ids are inserted, existing ones left alone.
/// $1 task_ids, $2 descriptions, $3 priorities, $4 labels, $5 reviewers (one JSON array of
/// strings per task each).
const LOAD_INSERT_ONLY: &str = "\
    INSERT INTO tasks (task_id, description, priority, labels, reviewers) \
    SELECT t.task_id, t.description, t.priority, \
           ARRAY(SELECT jsonb_array_elements_text(t.labels)), \
           ARRAY(SELECT jsonb_array_elements_text(t.reviewers)) \
    FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::jsonb[], $5::jsonb[]) \
         WITH ORDINALITY AS t(task_id, description, priority, labels, reviewers, ord) \
    ORDER BY t.ord \
    ON CONFLICT (task_id) DO NOTHING \
    RETURNING task_id, (xmax = 0) AS inserted";

/// Load with `--update`: like [`LOAD_INSERT_ONLY`], but an existing task still pending gets the
/// file's description, priority, labels and reviewers (rows left unchanged are not returned, so they count
/// as skipped, as do non-pending ones). `xmax = 0` tells an inserted row from an updated one.
const LOAD_UPSERT: &str = "\
    INSERT INTO tasks (task_id, description, priority, labels, reviewers) \
    SELECT t.task_id, t.description, t.priority, \
           ARRAY(SELECT jsonb_array_elements_text(t.labels)), \
           ARRAY(SELECT jsonb_array_elements_text(t.reviewers)) \
    FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::jsonb[], $5::jsonb[]) \
         WITH ORDINALITY AS t(task_id, description, priority, labels, reviewers, ord) \
    ORDER BY t.ord \
    ON CONFLICT (task_id) DO UPDATE \
        SET description = EXCLUDED.description, \
            priority = EXCLUDED.priority, \
            labels = EXCLUDED.labels, \
            reviewers = EXCLUDED.reviewers \
        WHERE tasks.status = 'pending' \
          AND (tasks.description, tasks.priority, tasks.labels, tasks.reviewers) \
              IS DISTINCT FROM \
              (EXCLUDED.description, EXCLUDED.priority, EXCLUDED.labels, EXCLUDED.reviewers) \
    RETURNING task_id, (xmax = 0) AS inserted";

/// $1 task_ids. Those of them that exist.
const KNOWN_TASK_IDS: &str = "SELECT task_id FROM tasks WHERE task_id = ANY($1)";

/// $1 task_ids. Forgets their dependencies (before [`ADD_DEPENDENCIES`] sets the file's).
const CLEAR_DEPENDENCIES: &str = "\
    DELETE FROM task_dependencies \
    WHERE task IN (SELECT id FROM tasks WHERE task_id = ANY($1))";

/// $1 task_ids, $2 the task_ids each depends on (pairwise).
const ADD_DEPENDENCIES: &str = "\
    INSERT INTO task_dependencies (task, depends_on) \
    SELECT t.id, d.id \
    FROM UNNEST($1::text[], $2::text[]) AS e(task_id, dependency) \
    JOIN tasks t ON t.task_id = e.task_id \
    JOIN tasks d ON d.task_id = e.dependency \
    ON CONFLICT DO NOTHING";

/// $1 tasks.id. The tasks it depends on: task_id, status, PR state.
const DEPENDENCIES_OF: &str = "\
    SELECT d.task_id, d.status, d.pr_state \
    FROM task_dependencies x JOIN tasks d ON d.id = x.depends_on \
    WHERE x.task = $1 \
    ORDER BY d.task_id";

/// Every dependency: (task_id, the task_id it depends on).
const ALL_DEPENDENCIES: &str = "\
    SELECT t.task_id, d.task_id \
    FROM task_dependencies x \
    JOIN tasks t ON t.id = x.task \
    JOIN tasks d ON d.id = x.depends_on \
    ORDER BY t.id, d.id";

/// One new task; no row back when the task_id exists.
const ADD_TASK: &str = "\
    INSERT INTO tasks (task_id, description, priority, labels, reviewers) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (task_id) DO NOTHING \
    RETURNING id";

/// $1: a status, or NULL for every task.
const LIST_TASKS: &str = "\
    SELECT id, task_id, description, status, priority, labels, attempts, created_at, updated_at, \
           started_at, completed_at, pr_url, consensus_score, result, error, run_after, \
           locked_by, lease_expires_at, fencing_token, cancel_requested, approved_by, \
           pr_state, pr_state_at, issue_number, reviewers \
    FROM tasks \
    WHERE ($1::varchar IS NULL OR status = $1) \
    ORDER BY priority DESC, created_at, id";

/// $1: a task_id.
const GET_TASK: &str = "\
    SELECT id, task_id, description, status, priority, labels, attempts, created_at, updated_at, \
           started_at, completed_at, pr_url, consensus_score, result, error, run_after, \
           locked_by, lease_expires_at, fencing_token, cancel_requested, approved_by, \
           pr_state, pr_state_at, issue_number, reviewers \
    FROM tasks \
    WHERE task_id = $1";

/// $1: tasks.id; $2: the stages in pipeline order.
const STAGES: &str = "\
    SELECT stage, output, evidence, score, model, input_tokens, output_tokens, \
           cache_creation_input_tokens, cache_read_input_tokens, duration_ms, created_at, \
           base_commit, lookups \
    FROM task_stages \
    WHERE task = $1 \
    ORDER BY array_position($2::varchar[], stage), id";

/// $1: every status in display order; one row per status, zero counts included; cost is the
/// ledger's total for the tasks now in that status.
const STATS: &str = "\
    SELECT s.status, count(t.id) AS count, avg(t.consensus_score) AS avg_score, \
           COALESCE(sum(c.cost_usd), 0) AS cost_usd \
    FROM UNNEST($1::varchar[]) WITH ORDINALITY AS s(status, ord) \
    LEFT JOIN tasks t ON t.status = s.status \
    LEFT JOIN (SELECT task, sum(cost_usd) AS cost_usd FROM llm_calls GROUP BY task) c \
        ON c.task = t.id \
    GROUP BY s.status, s.ord \
    ORDER BY s.ord";

/// $1: every stage in pipeline order; one row per stage, zero counts included.
const ROLE_CALLS: &str = "\
    SELECT s.stage, count(c.id) AS calls, \
           count(c.id) FILTER (WHERE c.kind = 'correction') AS corrections \
    FROM UNNEST($1::varchar[]) WITH ORDINALITY AS s(stage, ord) \
    LEFT JOIN llm_calls c ON c.stage = s.stage \
    GROUP BY s.stage, s.ord \
    ORDER BY s.ord";

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

    /// Connects to DATABASE_URL (`postgres://` or `postgresql://`): opens one connection to check
    /// the server answers within 10 s, then keeps a pool of at most `max_connections`
    /// connections (at least 1), opened as needed. Waiting for a free pooled connection also
    /// gives up after 10 s (an error of the statement that waited). The daemon sizes the pool from
    /// CONCURRENCY (`cli/run.rs`); a CLI command needs one or two.
    ///
    /// # Errors
    /// [`StoreError::Connect`] naming the problem (unparsable URL, connection refused,
    /// authentication failed, timeout, …), never the URL (it may hold a password).
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Store, StoreError> {
        let url = url.expose_secret();
        let options = parse_url(url)?;
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                StoreError::Connect(format!(
                    "no answer from the server within {} s",
                    ACQUIRE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| StoreError::Connect(redact(&e.to_string(), url)))?;
        // The probe only proved the server is there; a failed goodbye changes nothing.
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Store { pool })
    }

    /// Applies `migrations/` (embedded at build time); idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!().run(&self.pool).await?;
        Ok(())
    }

    /// Inserts `tasks` in one transaction (a single set-based statement, then their
    /// dependencies). Existing task_ids are skipped and counted, or with `update` their
    /// description/priority/labels are overwritten if still pending and different (counted as
    /// updated; non-pending or unchanged ones are skipped). A task inserted or updated gets the
    /// file's `depends_on`; a skipped one keeps its own. An empty slice does nothing.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] if a task fails [`validate_new_task`], a task_id repeats in
    /// `tasks`, a dependency is neither in `tasks` nor loaded, or the dependencies (with those
    /// loaded before) form a cycle — naming the entry or the cycle; nothing is written then.
    /// [`StoreError::Database`] otherwise.
    pub async fn load_tasks(
        &self,
        tasks: &[NewTask],
        update: bool,
    ) -> Result<LoadReport, StoreError> {
        check_batch(tasks)?;
        if tasks.is_empty() {
            return Ok(LoadReport::default());
        }
        let task_ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        let descriptions: Vec<&str> = tasks.iter().map(|t| t.description.as_str()).collect();
        let priorities: Vec<i32> = tasks.iter().map(|t| t.priority).collect();
        let labels: Vec<serde_json::Value> =
            tasks.iter().map(|t| serde_json::json!(t.labels)).collect();
        let reviewers: Vec<serde_json::Value> = tasks
            .iter()
            .map(|t| serde_json::json!(t.reviewers))
            .collect();

        let in_file: HashSet<&str> = task_ids.iter().copied().collect();
        let outside: Vec<&str> = tasks
            .iter()
            .flat_map(|t| t.depends_on.iter().map(String::as_str))
            .filter(|d| !in_file.contains(d))
            .collect();

        let mut tx = self.pool.begin().await?;
        if !outside.is_empty() {
            let known: Vec<String> = sqlx::query_scalar(KNOWN_TASK_IDS)
                .bind(&outside)
                .fetch_all(&mut *tx)
                .await?;
            for (index, task) in tasks.iter().enumerate() {
                let unknown = task
                    .depends_on
                    .iter()
                    .find(|d| !in_file.contains(d.as_str()) && !known.contains(d));
                if let Some(unknown) = unknown {
                    return Err(StoreError::Invalid(format!(
                        "entry {} (task_id {:?}): field \"depends_on\": unknown task_id {unknown:?} \
                         (neither in the file nor loaded)",
                        index + 1,
                        task.task_id
                    )));
                }
            }
        }
        let statement = if update {
            LOAD_UPSERT
        } else {
            LOAD_INSERT_ONLY
        };
        let written: Vec<(String, bool)> = sqlx::query_as(statement)
            .bind(task_ids)
            .bind(descriptions)
            .bind(priorities)
            .bind(labels)
            .bind(reviewers)
            .fetch_all(&mut *tx)
            .await?;
        // The dependencies of the tasks written are the file's.
        let written_ids: Vec<&str> = written.iter().map(|(id, _)| id.as_str()).collect();
        let (edge_tasks, edge_dependencies): (Vec<&str>, Vec<&str>) = tasks
            .iter()
            .filter(|t| written_ids.contains(&t.task_id.as_str()))
            .flat_map(|t| {
                t.depends_on
                    .iter()
                    .map(move |d| (t.task_id.as_str(), d.as_str()))
            })
            .unzip();
        sqlx::query(CLEAR_DEPENDENCIES)
            .bind(&written_ids)
            .execute(&mut *tx)
            .await?;
        sqlx::query(ADD_DEPENDENCIES)
            .bind(edge_tasks)
            .bind(edge_dependencies)
            .execute(&mut *tx)
            .await?;
        let edges: Vec<(String, String)> =
            sqlx::query_as(ALL_DEPENDENCIES).fetch_all(&mut *tx).await?;
        if let Some(cycle) =
            task_file::find_cycle(edges.iter().map(|(t, d)| (t.as_str(), d.as_str())))
        {
            return Err(StoreError::Invalid(format!(
                "field \"depends_on\": with the tasks loaded before, the dependencies form a \
                 cycle: {} → {}",
                cycle.join(" → "),
                cycle[0]
            )));
        }
        tx.commit().await?;
        let inserted_flags: Vec<bool> = written.into_iter().map(|(_, inserted)| inserted).collect();

        let inserted = inserted_flags.iter().filter(|&&flag| flag).count() as u64;
        let updated = inserted_flags.len() as u64 - inserted;
        let skipped = tasks.len() as u64 - inserted - updated;
        Ok(LoadReport {
            inserted,
            skipped,
            updated,
        })
    }

    /// Inserts one task, without dependencies (a task file carries those: [`Store::load_tasks`]).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if its task_id exists; [`StoreError::Invalid`] if it fails
    /// [`validate_new_task`] or has `depends_on`.
    pub async fn add_task(&self, task: &NewTask) -> Result<(), StoreError> {
        validate_new_task(task).map_err(|e| StoreError::Invalid(e.0))?;
        if !task.depends_on.is_empty() {
            return Err(StoreError::Invalid(
                "a task added alone has no dependencies: load a task file with depends_on".into(),
            ));
        }
        let id: Option<i32> = sqlx::query_scalar(ADD_TASK)
            .bind(&task.task_id)
            .bind(&task.description)
            .bind(task.priority)
            .bind(&task.labels)
            .bind(&task.reviewers)
            .fetch_optional(&self.pool)
            .await?;
        match id {
            Some(_) => Ok(()),
            None => Err(StoreError::Duplicate(task.task_id.clone())),
        }
    }

    /// The tasks task `id` (`tasks.id`) depends on: (task_id, status, PR state), by task_id.
    pub async fn dependencies(
        &self,
        id: i32,
    ) -> Result<Vec<(String, TaskStatus, Option<crate::task::PrState>)>, StoreError> {
        Ok(sqlx::query_as(DEPENDENCIES_OF)
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Tasks, highest priority first (ties: oldest first, then lowest id), optionally of one
    /// status.
    pub async fn list_tasks(&self, status: Option<TaskStatus>) -> Result<Vec<Task>, StoreError> {
        let tasks = sqlx::query_as(LIST_TASKS)
            .bind(status)
            .fetch_all(&self.pool)
            .await?;
        Ok(tasks)
    }

    /// One task by its task_id; `None` if there is none.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        let task = sqlx::query_as(GET_TASK)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(task)
    }

    /// The recorded stages of a task (by `tasks.id`), in pipeline order (pm, architect, engineer,
    /// qa, security); empty for an unknown id.
    pub async fn stages(&self, id: i32) -> Result<Vec<StageRecord>, StoreError> {
        let stages = sqlx::query_as(STAGES)
            .bind(id)
            .bind(Stage::ALL)
            .fetch_all(&self.pool)
            .await?;
        Ok(stages)
    }

    /// Count, average consensus score and LLM cost for every status, in [`TaskStatus::ALL`]
    /// order (zero counts included; `avg_score` is `None` when no task of that status has a
    /// score).
    pub async fn stats(&self) -> Result<Vec<StatusStats>, StoreError> {
        let stats = sqlx::query_as(STATS)
            .bind(TaskStatus::ALL)
            .fetch_all(&self.pool)
            .await?;
        Ok(stats)
    }

    /// Every role's LLM calls and corrective retries over all tasks, in pipeline order (zero
    /// counts included).
    pub async fn role_calls(&self) -> Result<Vec<RoleCalls>, StoreError> {
        let calls = sqlx::query_as(ROLE_CALLS)
            .bind(Stage::ALL)
            .fetch_all(&self.pool)
            .await?;
        Ok(calls)
    }
}

/// Parses DATABASE_URL; any problem gives the fixed [`BAD_URL`] message.
fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    let bad = || StoreError::Connect(BAD_URL.to_string());
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad());
    }
    PgConnectOptions::from_str(url).map_err(|_| bad())
}

/// `message` with the URL and its password (if any) replaced by `***`, in case a driver error
/// ever echoes them.
fn redact(message: &str, url: &str) -> String {
    let mut clean = message.replace(url, "***");
    if let Some(password) = url_password(url).filter(|p| !p.is_empty()) {
        clean = clean.replace(password, "***");
    }
    clean
}

/// The password part of `scheme://user:password@host/…`, as written (percent-encoded).
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1)
}

/// Refuses a [`Finish`] whose status is not an outcome of the pipeline.
fn check_outcome(finish: &Finish) -> Result<(), StoreError> {
    const OUTCOMES: [TaskStatus; 3] = [
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::NeedsReview,
    ];
    if OUTCOMES.contains(&finish.status) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "a task cannot finish as '{}' (expected completed, failed or needs_review)",
            finish.status
        )))
    }
}

/// Checks every task and that no task_id repeats, naming the entry (1-based) like a task file.
fn check_batch(tasks: &[NewTask]) -> Result<(), StoreError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, task) in tasks.iter().enumerate() {
        let number = index + 1;
        let name = format!("entry {number} (task_id {:?})", task.task_id);
        validate_new_task(task).map_err(|e| StoreError::Invalid(format!("{name}: {e}")))?;
        if let Some(first) = seen.insert(&task.task_id, number) {
            return Err(StoreError::Invalid(format!(
                "{name}: field \"task_id\": duplicate of entry {first}"
            )));
        }
    }
    Ok(())
}

/// A token count for an INTEGER column (saturating; counts never come near 2^31).
fn token_column(tokens: u32) -> i32 {
    i32::try_from(tokens).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_get_a_fixed_message_without_the_url() {
        for url in [
            "mysql://user:hunter2@localhost/db",
            "postgres://user:hunter2@localhost:notaport/db",
            "hunter2",
            "",
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains("DATABASE_URL is not a valid"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(parse_url("postgresql://u:p@localhost:5432/db").is_ok());
    }

    #[test]
    fn redact_removes_url_and_password() {
        let url = "postgres://bob:s3cr%40t@db.example:5432/app?sslmode=require";
        assert_eq!(url_password(url), Some("s3cr%40t"));
        assert_eq!(url_password("postgres://bob@db/app"), None);
        assert_eq!(url_password("postgres://db/app"), None);
        let message = format!("failed for {url}; password s3cr%40t rejected");
        let clean = redact(&message, url);
        assert!(!clean.contains("s3cr"), "{clean}");
        assert!(!clean.contains("db.example"), "{clean}");
    }

    #[test]
    fn batch_check_names_the_entry() {
        let task = |id: &str| NewTask {
            task_id: id.to_string(),
            description: "d".to_string(),
            priority: 0,
            labels: vec![],
            depends_on: vec![],
            reviewers: vec![],
        };
        let e = check_batch(&[task("a"), task("b"), task("a")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 3 (task_id \"a\")") && e.contains("duplicate of entry 1"));
        let e = check_batch(&[task("ok"), task("bad id")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("entry 2") && e.contains("field \"task_id\""),
            "{e}"
        );
    }
}
