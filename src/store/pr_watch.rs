//! The PR watch's rows: which opened pull requests are due for a look (completed tasks whose PR
//! is not merged or closed, least recently looked at first), and what a look saw — a new state
//! with its ETag, or "not modified".

use super::{Store, StoreError};
use crate::task::{ChecksSeen, FeedbackCursor, Outcome, PrSeen, PrState, Publication};

/// A pull request due for a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedPr {
    pub task_id: String,
    /// The PR's number in the target repository.
    pub number: u64,
    /// The ETag of the last answer, sent back as If-None-Match.
    pub etag: Option<String>,
    /// The state last seen; `None` before the first look.
    pub state: Option<PrState>,
    /// How far its conversation was read; `None` before the first read.
    pub cursor: Option<FeedbackCursor>,
    /// Its head commit as last seen.
    pub head: Option<String>,
    /// Its head's checks as last seen.
    pub checks: Option<ChecksSeen>,
    /// The head at which a conflict with the base was acted on.
    pub conflict_head: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WatchRow {
    task_id: String,
    #[sqlx(json(nullable))]
    result: Option<Outcome>,
    pr_etag: Option<String>,
    pr_state: Option<PrState>,
    #[sqlx(json(nullable))]
    feedback_cursor: Option<FeedbackCursor>,
    pr_head: Option<String>,
    #[sqlx(json(nullable))]
    checks_seen: Option<ChecksSeen>,
    conflict_head: Option<String>,
}

/// $1 seconds since the last look, $2 most rows. Completed tasks with a PR not merged or
/// closed, not looked at within $1 s, least recently looked at first.
const DUE: &str = "\
    SELECT task_id, result, pr_etag, pr_state, feedback_cursor, pr_head, checks_seen, \
           conflict_head \
    FROM tasks \
    WHERE status = 'completed' AND pr_url IS NOT NULL \
      AND (pr_state IS NULL OR pr_state = 'open') \
      AND (pr_checked_at IS NULL OR pr_checked_at <= now() - make_interval(secs => $1)) \
    ORDER BY pr_checked_at NULLS FIRST, id \
    LIMIT $2";

/// $1 task_id. A 304: only the time of the look.
const NOT_MODIFIED: &str = "UPDATE tasks SET pr_checked_at = now() WHERE task_id = $1";

/// $1 task_id, $2 state, $3 since, $4 ETag, $5 head. What a 200 said.
const SEEN: &str = "\
    UPDATE tasks \
    SET pr_state = $2, pr_state_at = $3, pr_etag = $4, pr_head = COALESCE($5, pr_head), \
        pr_checked_at = now() \
    WHERE task_id = $1";

/// $1 the states. Tasks per PR state, in $1's order (zero counts included).
const PR_COUNTS: &str = "\
    SELECT count(t.id) \
    FROM unnest($1::varchar[]) WITH ORDINALITY AS s(state, n) \
    LEFT JOIN tasks t ON t.pr_state = s.state \
    GROUP BY s.state, s.n \
    ORDER BY s.n";

impl Store {
    /// At most `limit` PRs not looked at for `every`, least recently looked at first. A row
    /// whose outcome names no opened PR (written by hand) is skipped.
    pub async fn prs_due(
        &self,
        every: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<WatchedPr>, StoreError> {
        let rows: Vec<WatchRow> = sqlx::query_as(DUE)
            .bind(every.as_secs_f64())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match row.result {
                Some(Outcome::Approved {
                    publication: Publication::Opened(pr),
                    ..
                }) => Some(WatchedPr {
                    task_id: row.task_id,
                    number: pr.number,
                    etag: row.pr_etag,
                    state: row.pr_state,
                    cursor: row.feedback_cursor,
                    head: row.pr_head,
                    checks: row.checks_seen,
                    conflict_head: row.conflict_head,
                }),
                _ => None,
            })
            .collect())
    }

    /// Records what a look at task `task_id`'s PR saw.
    pub async fn record_pr(&self, task_id: &str, seen: &PrSeen) -> Result<(), StoreError> {
        let query = match seen {
            PrSeen::NotModified => sqlx::query(NOT_MODIFIED).bind(task_id),
            PrSeen::State {
                state,
                since,
                etag,
                head,
                ..
            } => sqlx::query(SEEN)
                .bind(task_id)
                .bind(*state)
                .bind(*since)
                .bind(etag.as_deref())
                .bind(head.as_deref()),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// How many tasks' PRs are open, merged and closed unmerged, as last seen.
    pub async fn pr_counts(&self) -> Result<PrCounts, StoreError> {
        let states = [PrState::Open, PrState::Merged, PrState::Closed];
        let counts: Vec<i64> = sqlx::query_scalar(PR_COUNTS)
            .bind(states)
            .fetch_all(&self.pool)
            .await?;
        let [open, merged, closed] = counts[..] else {
            return Err(StoreError::Invalid("PR counts: expected 3 rows".into()));
        };
        Ok(PrCounts {
            open,
            merged,
            closed,
        })
    }
}

/// Tasks by the state of their PR (`stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrCounts {
    pub open: i64,
    pub merged: i64,
    pub closed: i64,
}
