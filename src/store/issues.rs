//! The issue watch's rows (migration 0013): the tasks born of GitHub issues (`tasks.issue_number`,
//! task_id `gh-<number>`), inserting one (its `queued` outbox event is written by a trigger in
//! the same transaction), a pending task's description following its issue's edits, and the
//! ETag of the last list of a label's open issues.

use super::{Store, StoreError};
use crate::task::TaskStatus;

/// A task born of an issue, as the issue watch compares it with the issue.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IssueTask {
    pub task_id: String,
    pub issue_number: i32,
    pub status: TaskStatus,
    pub description: String,
    /// No stage recorded yet: its description may still change.
    pub unstarted: bool,
}

/// A task to create from an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIssueTask {
    pub issue_number: i32,
    /// Title, a blank line, body.
    pub description: String,
    pub priority: i32,
    /// The issue's labels to carry to the PR.
    pub labels: Vec<String>,
    /// The issue's author.
    pub author: Option<String>,
    /// Requested on its PR besides REVIEWERS.
    pub reviewers: Vec<String>,
}

impl NewIssueTask {
    /// `gh-<number>`.
    pub fn task_id(&self) -> String {
        format!("gh-{}", self.issue_number)
    }
}

/// Every task born of an issue.
const ISSUE_TASKS: &str = "\
    SELECT task_id, issue_number, status, description, \
           NOT EXISTS (SELECT 1 FROM task_stages s WHERE s.task = t.id) AS unstarted \
    FROM tasks t WHERE issue_number IS NOT NULL \
    ORDER BY issue_number";

/// $1 task_id, $2 issue, $3 description, $4 priority, $5 labels, $6 author, $7 reviewers.
/// Nothing when the task_id or the issue has a task already.
const ADD_ISSUE_TASK: &str = "\
    INSERT INTO tasks (task_id, issue_number, description, priority, labels, issue_author, \
                       reviewers) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT DO NOTHING";

/// $1 task_id, $2 description. Only a pending task with no stage recorded.
const UPDATE_DESCRIPTION: &str = "\
    UPDATE tasks t SET description = $2 \
    WHERE task_id = $1 AND status = 'pending' AND description <> $2 \
      AND NOT EXISTS (SELECT 1 FROM task_stages s WHERE s.task = t.id)";

/// $1 label.
const ETAG: &str = "SELECT etag FROM issue_watch WHERE label = $1";

/// $1 label, $2 ETag.
const SET_ETAG: &str = "\
    INSERT INTO issue_watch (label, etag) VALUES ($1, $2) \
    ON CONFLICT (label) DO UPDATE SET etag = EXCLUDED.etag, looked_at = now()";

impl Store {
    /// Every task born of an issue, by issue number.
    pub async fn issue_tasks(&self) -> Result<Vec<IssueTask>, StoreError> {
        Ok(sqlx::query_as(ISSUE_TASKS).fetch_all(&self.pool).await?)
    }

    /// Inserts `task` as task `gh-<number>` (pending; its `queued` event written with it).
    /// False when the task_id or the issue has a task already (nothing written).
    ///
    /// Errors: [`StoreError::Invalid`] when it fails the rules of a loaded task
    /// ([`super::validate_new_task`]).
    pub async fn add_issue_task(&self, task: &NewIssueTask) -> Result<bool, StoreError> {
        let checked = crate::task::NewTask {
            task_id: task.task_id(),
            description: task.description.clone(),
            priority: task.priority,
            labels: task.labels.clone(),
            depends_on: Vec::new(),
            reviewers: task.reviewers.clone(),
        };
        super::validate_new_task(&checked).map_err(|e| StoreError::Invalid(e.0))?;
        let done = sqlx::query(ADD_ISSUE_TASK)
            .bind(&checked.task_id)
            .bind(task.issue_number)
            .bind(&task.description)
            .bind(task.priority)
            .bind(&task.labels)
            .bind(&task.author)
            .bind(&task.reviewers)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets task `task_id`'s description to `description` while it is pending with no stage
    /// recorded; true when it changed.
    pub async fn update_issue_description(
        &self,
        task_id: &str,
        description: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(UPDATE_DESCRIPTION)
            .bind(task_id)
            .bind(description)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The ETag of the last list of `label`'s open issues.
    pub async fn issue_watch_etag(&self, label: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<String>>(ETAG)
            .bind(label)
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    /// Records `etag` as the last list's of `label`.
    pub async fn set_issue_watch_etag(
        &self,
        label: &str,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(SET_ETAG)
            .bind(label)
            .bind(etag)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
