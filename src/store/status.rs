//! What the operator's views read: a page of the queue with each task's cost, counts by status,
//! the workers' current tasks, spend per day / role / model, the tasks waiting out a backoff or
//! a snooze, and a liveness probe. Read-only statements for `autonomous-dev status`, the
//! `--json` outputs, the status page and `/metrics`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Store, StoreError};
use crate::task::{PrState, Stage, TaskStatus};

/// Which tasks a page of the queue shows, and which slice of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Only tasks of this status; `None`: every status.
    pub status: Option<TaskStatus>,
    /// Only tasks carrying this label (exact match); `None`: any.
    pub label: Option<String>,
    /// Most rows returned; `None`: all of them.
    pub limit: Option<i64>,
    /// Rows skipped first (paging), at least 0.
    pub offset: i64,
}

/// One task as the queue shows it: the `tasks` row's summary plus what the task's LLM calls
/// cost (the ledger's total, USD).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QueueRow {
    pub task_id: String,
    /// The whole description (the views show its first line).
    pub description: String,
    pub status: TaskStatus,
    pub priority: i32,
    pub labels: Vec<String>,
    pub attempts: i32,
    /// Mean of the scoring roles' scores, 0–100.
    pub consensus_score: Option<f64>,
    pub pr_url: Option<String>,
    pub pr_state: Option<PrState>,
    /// USD spent on the task's LLM calls over its whole life.
    pub cost_usd: f64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// A task being worked on: who holds it, which stage it is in, since when, until when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    /// The worker id of the claim (`host:pid:n`).
    pub worker: String,
    pub task_id: String,
    /// The first stage without a record: the one running now (`None`: every stage is recorded,
    /// the task is in consensus or publishing).
    pub stage: Option<Stage>,
    /// When the current stage began: the last stage record's time, else the task's first claim.
    pub since: Option<DateTime<Utc>>,
    /// End of the lease; after it another daemon may reclaim the task.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct WorkerQueryRow {
    worker: String,
    task_id: String,
    recorded: Vec<Stage>,
    since: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
}

/// One UTC day: tasks that ended that day and USD spent that day.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DayRow {
    /// The UTC date, `YYYY-MM-DD` in JSON.
    pub day: NaiveDate,
    /// Tasks whose `completed_at` (any final status) falls on the day.
    pub finished: i64,
    /// USD of the LLM calls made that day.
    pub spent_usd: f64,
}

/// Spend of one role on one model over a period: calls, tokens by kind, USD.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SpendRow {
    /// The role's stage; `None` (JSON `null`) for the calls of `autonomous-dev plan`, made for
    /// no task.
    pub stage: Option<Stage>,
    pub model: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cost_usd: f64,
}

impl SpendRow {
    /// Who made the calls, as the views name it: the role (`PM`, …) or `planner`.
    pub fn role(&self) -> &'static str {
        self.stage.map_or("planner", Stage::role_name)
    }
}

/// A pending task not claimable before a time: a backoff after a transient failure, or a
/// snooze (rate limit, quota, overload, the daily budget).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WaitingRow {
    pub task_id: String,
    /// Claimable again from this instant.
    pub run_after: DateTime<Utc>,
    /// The failure that sent it back (why it waits).
    pub error: Option<String>,
    pub attempts: i32,
}

/// $1 status or NULL, $2 label or NULL. How many tasks match the filter.
const QUEUE_COUNT: &str = "\
    SELECT count(*) FROM tasks \
    WHERE ($1::varchar IS NULL OR status = $1) AND ($2::text IS NULL OR $2 = ANY(labels))";

/// $1 status or NULL, $2 label or NULL, $3 limit or NULL (all), $4 offset. The page, in the
/// claim's order (priority first), each with its ledger total.
const QUEUE_PAGE: &str = "\
    SELECT t.task_id, t.description, t.status, t.priority, t.labels, t.attempts, \
           t.consensus_score, t.pr_url, t.pr_state, \
           COALESCE((SELECT sum(c.cost_usd) FROM llm_calls c WHERE c.task = t.id), 0) \
               AS cost_usd, \
           t.created_at, t.started_at, t.completed_at, t.error \
    FROM tasks t \
    WHERE ($1::varchar IS NULL OR t.status = $1) AND ($2::text IS NULL OR $2 = ANY(t.labels)) \
    ORDER BY t.priority DESC, t.created_at, t.id \
    LIMIT $3 OFFSET $4";

/// $1 every status in display order. Tasks per status, zero counts included.
const STATUS_COUNTS: &str = "\
    SELECT s.status, count(t.id) \
    FROM UNNEST($1::varchar[]) WITH ORDINALITY AS s(status, ord) \
    LEFT JOIN tasks t ON t.status = s.status \
    GROUP BY s.status, s.ord \
    ORDER BY s.ord";

/// In-progress tasks: their worker, recorded stages, when the last was recorded, the lease.
const WORKERS: &str = "\
    SELECT t.locked_by AS worker, t.task_id, \
           ARRAY(SELECT s.stage FROM task_stages s WHERE s.task = t.id) AS recorded, \
           COALESCE((SELECT max(s.created_at) FROM task_stages s WHERE s.task = t.id), \
                    t.started_at) AS since, \
           t.lease_expires_at \
    FROM tasks t \
    WHERE t.status = 'in_progress' AND t.locked_by IS NOT NULL \
    ORDER BY t.locked_by, t.id";

/// $1 days (including today, UTC). One row per day, oldest first, zero days included: one
/// scan of the tasks ended and one of the calls made since the first day.
const DAILY: &str = "\
    WITH span AS ( \
        SELECT date_trunc('day', now() AT TIME ZONE 'UTC') - ($1::int4 - 1) * interval '1 day' \
                   AS first, \
               date_trunc('day', now() AT TIME ZONE 'UTC') AS last), \
    ended AS ( \
        SELECT date_trunc('day', completed_at AT TIME ZONE 'UTC') AS day, count(*) AS n \
        FROM tasks, span \
        WHERE completed_at >= span.first AT TIME ZONE 'UTC' \
        GROUP BY 1), \
    spent AS ( \
        SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, sum(cost_usd) AS usd \
        FROM llm_calls, span \
        WHERE created_at >= span.first AT TIME ZONE 'UTC' \
        GROUP BY 1) \
    SELECT d.day::date AS day, COALESCE(ended.n, 0) AS finished, \
           COALESCE(spent.usd, 0) AS spent_usd \
    FROM span, generate_series(span.first, span.last, interval '1 day') AS d(day) \
    LEFT JOIN ended ON ended.day = d.day \
    LEFT JOIN spent ON spent.day = d.day \
    ORDER BY d.day";

/// $1 days (including today, UTC), $2 every stage in pipeline order. Spend per role and model;
/// the calls of `plan` (stage NULL) last.
const SPEND_BY_ROLE: &str = "\
    SELECT stage, model, count(*) AS calls, \
           sum(input_tokens)::int8 AS input_tokens, \
           sum(output_tokens)::int8 AS output_tokens, \
           sum(cache_creation_input_tokens)::int8 AS cache_creation_input_tokens, \
           sum(cache_read_input_tokens)::int8 AS cache_read_input_tokens, \
           sum(cost_usd) AS cost_usd \
    FROM llm_calls \
    WHERE created_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') \
                         - ($1::int4 - 1) * interval '1 day') AT TIME ZONE 'UTC' \
    GROUP BY stage, model \
    ORDER BY array_position($2::varchar[], stage), model";

/// Pending tasks scheduled for later, soonest first.
const WAITING: &str = "\
    SELECT task_id, run_after, error, attempts \
    FROM tasks \
    WHERE status = 'pending' AND run_after > now() \
    ORDER BY run_after, id";

impl Store {
    /// A page of the queue matching `filter`, in the claim's order (priority DESC, then oldest),
    /// and how many tasks match in all.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a negative limit or offset; [`StoreError::Database`].
    pub async fn queue_page(
        &self,
        filter: &QueueFilter,
    ) -> Result<(Vec<QueueRow>, i64), StoreError> {
        if filter.offset < 0 || filter.limit.is_some_and(|l| l < 0) {
            return Err(StoreError::Invalid(
                "a page's limit and offset must not be negative".into(),
            ));
        }
        let total: i64 = sqlx::query_scalar(QUEUE_COUNT)
            .bind(filter.status)
            .bind(filter.label.as_deref())
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query_as(QUEUE_PAGE)
            .bind(filter.status)
            .bind(filter.label.as_deref())
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        Ok((rows, total))
    }

    /// How many tasks are in each status, in [`TaskStatus::ALL`] order (zero counts included).
    pub async fn status_counts(&self) -> Result<Vec<(TaskStatus, i64)>, StoreError> {
        Ok(sqlx::query_as(STATUS_COUNTS)
            .bind(TaskStatus::ALL)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The in-progress tasks with their worker, current stage, since when and lease expiry, by
    /// worker id.
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        let rows: Vec<WorkerQueryRow> = sqlx::query_as(WORKERS).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|row| WorkerRow {
                stage: Stage::ALL
                    .into_iter()
                    .find(|stage| !row.recorded.contains(stage)),
                worker: row.worker,
                task_id: row.task_id,
                since: row.since,
                lease_expires_at: row.lease_expires_at,
            })
            .collect())
    }

    /// The last `days` UTC days (today included), oldest first: tasks ended and USD spent
    /// each day.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] unless `days` is 1 to 366.
    pub async fn daily(&self, days: i32) -> Result<Vec<DayRow>, StoreError> {
        check_days(days)?;
        Ok(sqlx::query_as(DAILY)
            .bind(days)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Spend per role and model over the last `days` UTC days (today included), in pipeline
    /// order.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] unless `days` is 1 to 366.
    pub async fn spend_by_role(&self, days: i32) -> Result<Vec<SpendRow>, StoreError> {
        check_days(days)?;
        Ok(sqlx::query_as(SPEND_BY_ROLE)
            .bind(days)
            .bind(Stage::ALL)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Pending tasks not claimable before a later time (backoff or snooze), soonest first.
    pub async fn waiting(&self) -> Result<Vec<WaitingRow>, StoreError> {
        Ok(sqlx::query_as(WAITING).fetch_all(&self.pool).await?)
    }

    /// Whether the database answers a statement (liveness, `/healthz`).
    ///
    /// # Errors
    /// [`StoreError::Database`] when it does not (no free connection within 10 s included).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn check_days(days: i32) -> Result<(), StoreError> {
    if (1..=366).contains(&days) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "a period of {days} days (expected 1 to 366)"
        )))
    }
}
