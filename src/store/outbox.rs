//! The notification outbox's rows (`outbox`, `outbox_deliveries`, migration 0012): events are
//! written by triggers in the transaction of the state change that causes them; the sender takes
//! an event's delivery to one sink under a short lease (`FOR UPDATE SKIP LOCKED`, so two daemons
//! never send the same delivery at once), then records it delivered, or failed with the time of
//! the next attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::claim::interval;
use super::{Store, StoreError};

/// What an event is about, as `outbox.kind` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum EventKind {
    /// A task born of an issue was queued.
    Queued,
    /// A task's pull request was opened.
    PrOpened,
    /// A revision pushed a commit to the PR's branch.
    RevisionPushed,
    /// A task ended for a person to review.
    NeedsReview,
    Failed,
    /// A task waits on a dependency that failed or was closed unmerged.
    Blocked,
    DaemonStarted,
    DaemonStopped,
    /// All work paused (a rate limit, an exhausted quota, the daily budget).
    Paused,
    Resumed,
    /// The day's report (DAILY_REPORT_AT).
    DailyReport,
}

impl EventKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::PrOpened => "pr_opened",
            EventKind::RevisionPushed => "revision_pushed",
            EventKind::NeedsReview => "needs_review",
            EventKind::Failed => "failed",
            EventKind::Blocked => "blocked",
            EventKind::DaemonStarted => "daemon_started",
            EventKind::DaemonStopped => "daemon_stopped",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::DailyReport => "daily_report",
        }
    }
}

/// One event due for delivery to one sink.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxEvent {
    /// `outbox.id`: the idempotency key every payload carries.
    pub id: i64,
    pub kind: EventKind,
    /// The task it is about; `None` for the daemon's own events and the daily report.
    pub task_id: Option<String>,
    pub pr_url: Option<String>,
    pub detail: Option<String>,
    /// The GitHub issue of the task, when it was born of one.
    pub issue_number: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// Attempts so far for this sink.
    pub attempts: i32,
}

/// $1 sink, $2 how far back (interval). A delivery row for each event the sink has not seen.
const MATERIALIZE: &str = "\
    INSERT INTO outbox_deliveries (event, sink) \
    SELECT id, $1 FROM outbox WHERE created_at > now() - $2 \
    ON CONFLICT DO NOTHING";

/// $1 sink, $2 most rows, $3 lease (interval). Due deliveries, oldest event first, taken for
/// the lease.
const TAKE_DUE: &str = "\
    UPDATE outbox_deliveries d SET next_at = now() + $3 \
    FROM outbox o \
    WHERE o.id = d.event AND (d.event, d.sink) IN ( \
        SELECT event, sink FROM outbox_deliveries \
        WHERE sink = $1 AND delivered_at IS NULL AND next_at <= now() \
        ORDER BY event LIMIT $2 FOR UPDATE SKIP LOCKED) \
    RETURNING o.id, o.kind, o.task_id, o.pr_url, o.detail, o.issue_number, o.created_at, \
              d.attempts";

/// $1 event, $2 sink.
const DELIVERED: &str = "\
    UPDATE outbox_deliveries SET delivered_at = now(), attempts = attempts + 1, last_error = NULL \
    WHERE event = $1 AND sink = $2";

/// $1 event, $2 sink, $3 delay (interval), $4 error.
const FAILED: &str = "\
    UPDATE outbox_deliveries \
    SET attempts = attempts + 1, next_at = now() + $3, last_error = $4 \
    WHERE event = $1 AND sink = $2";

/// $1 how old (interval). Events older than that which every sink has had.
const PRUNE: &str = "\
    DELETE FROM outbox o WHERE created_at < now() - $1 \
      AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d \
                      WHERE d.event = o.id AND d.delivered_at IS NULL)";

/// $1 kind, $2 detail. An event of the daemon's own.
const RECORD: &str = "INSERT INTO outbox (kind, detail) VALUES ($1, $2)";

/// $1 the report. Today's report, unless one exists (one per UTC day).
const RECORD_REPORT: &str = "\
    INSERT INTO outbox (kind, detail) VALUES ('daily_report', $1) ON CONFLICT DO NOTHING";

/// True when today's report was written.
const REPORTED_TODAY: &str = "\
    SELECT EXISTS (SELECT 1 FROM outbox WHERE kind = 'daily_report' \
                   AND (created_at AT TIME ZONE 'UTC')::date = (now() AT TIME ZONE 'UTC')::date)";

/// The day's numbers of the daily report (UTC day).
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct DayReport {
    /// PRs opened today (their tasks' `pr_opened` events).
    pub prs_opened: i64,
    /// PRs seen merged today.
    pub prs_merged: i64,
    /// USD spent today.
    pub spent_usd: f64,
    /// The task that took longest among those ended today, and its seconds.
    pub slowest_task: Option<String>,
    pub slowest_seconds: Option<f64>,
    /// The task that spent most today, and its USD.
    pub costliest_task: Option<String>,
    pub costliest_usd: Option<f64>,
}

/// The day's numbers (UTC day).
const DAY_REPORT: &str = "\
    WITH day AS (SELECT date_trunc('day', now(), 'UTC') AS start), \
    slowest AS ( \
        SELECT task_id, extract(epoch FROM completed_at - started_at)::float8 AS seconds \
        FROM tasks, day WHERE completed_at >= day.start AND started_at IS NOT NULL \
        ORDER BY completed_at - started_at DESC LIMIT 1), \
    costliest AS ( \
        SELECT t.task_id, sum(c.cost_usd) AS usd \
        FROM llm_calls c JOIN tasks t ON t.id = c.task, day WHERE c.created_at >= day.start \
        GROUP BY t.task_id ORDER BY usd DESC LIMIT 1) \
    SELECT \
        (SELECT count(*) FROM outbox, day WHERE kind = 'pr_opened' AND created_at >= day.start) \
            AS prs_opened, \
        (SELECT count(*) FROM tasks, day WHERE pr_state = 'merged' AND pr_state_at >= day.start) \
            AS prs_merged, \
        (SELECT COALESCE(sum(cost_usd), 0)::float8 FROM llm_calls, day \
            WHERE created_at >= day.start) AS spent_usd, \
        (SELECT task_id FROM slowest) AS slowest_task, \
        (SELECT seconds FROM slowest) AS slowest_seconds, \
        (SELECT task_id FROM costliest) AS costliest_task, \
        (SELECT usd FROM costliest)::float8 AS costliest_usd";

impl Store {
    /// Today's (UTC) numbers for the daily report.
    pub async fn day_report(&self) -> Result<DayReport, StoreError> {
        Ok(sqlx::query_as(DAY_REPORT).fetch_one(&self.pool).await?)
    }

    /// Writes an event of the daemon's own (started, stopped, paused, resumed) with `detail`.
    pub async fn record_event(&self, kind: EventKind, detail: &str) -> Result<(), StoreError> {
        sqlx::query(RECORD)
            .bind(kind)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// True when today's (UTC) daily report was written.
    pub async fn reported_today(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(REPORTED_TODAY)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Writes today's daily report `report`, unless one exists; true when written.
    pub async fn record_report(&self, report: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(RECORD_REPORT)
            .bind(report)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives sink `sink` a delivery of every event of the last `since` it has none of yet
    /// (events older than that, from before the sink was configured, are not sent to it).
    pub async fn materialize_deliveries(
        &self,
        sink: &str,
        since: Duration,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(MATERIALIZE)
            .bind(sink)
            .bind(interval(since))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Takes at most `limit` deliveries due for `sink`, oldest event first, for `lease` (so a
    /// crashed sender's deliveries become due again after it).
    pub async fn take_deliveries(
        &self,
        sink: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut taken: Vec<OutboxEvent> = sqlx::query_as(TAKE_DUE)
            .bind(sink)
            .bind(limit)
            .bind(interval(lease))
            .fetch_all(&self.pool)
            .await?;
        // RETURNING keeps no order.
        taken.sort_by_key(|e| e.id);
        Ok(taken)
    }

    /// Deletes the events older than `age` that no sink still has to get (with their
    /// deliveries); how many.
    pub async fn prune_outbox(&self, age: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(PRUNE)
            .bind(interval(age))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records event `event` delivered to `sink`.
    pub async fn delivered(&self, event: i64, sink: &str) -> Result<(), StoreError> {
        sqlx::query(DELIVERED)
            .bind(event)
            .bind(sink)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed delivery of `event` to `sink`, tried again after `delay`.
    pub async fn delivery_failed(
        &self,
        event: i64,
        sink: &str,
        delay: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(FAILED)
            .bind(event)
            .bind(sink)
            .bind(interval(delay))
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
