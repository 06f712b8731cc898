//! Tasks from GitHub issues: the target repository's open issues labelled ISSUES_LABEL become
//! tasks `gh-<number>` (description: title and body; priority from a `priority:N` label, else
//! ISSUES_PRIORITY; the other labels carried to the PR; the author recorded and, with write
//! permission, asked to review the PR). Only an issue labelled by a person with write
//! permission (the `labeled` event's actor, GitHub's collaborator permission API) becomes a
//! task, so a stranger cannot spend the LLM budget. An issue closed or unlabelled while its task
//! has not ended cancels the task; an edit updates a task no role has seen yet — only when the
//! issue's author has write permission, since GitHub does not say who edited: a stranger's
//! issue stays what the person who labelled it read.
//!
//! Each sweep is one conditional request for the list (a 304 costs nothing of the rate limit;
//! GitHub changes the list's ETag when an issue in it is opened, closed, labelled, unlabelled,
//! edited or commented on). The issue hears from the daemon through the notification outbox:
//! a trigger writes the `queued` event with the task, and the task's outcome events carry the
//! issue number (`notify/`, its issue sink). `tasks import --github` runs one sweep.
//!
//! Data flows store → issues → github → store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::github::{GitHub, GitHubError, Issue};
use crate::shutdown::Shutdown;
use crate::store::{Cancelled, IssueTask, NewIssueTask, Store, StoreError};
use crate::task::TaskStatus;

/// How issues become tasks.
#[derive(Debug, Clone)]
pub struct IssueSettings {
    /// The label that makes an issue a task (ISSUES_LABEL).
    pub label: String,
    /// The priority of a task whose issue has no `priority:N` label (ISSUES_PRIORITY).
    pub default_priority: i32,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum IssueWatchError {
    #[error("GitHub: {0}")]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IssueSweep {
    /// GitHub answered 304: nothing changed.
    pub not_modified: bool,
    /// Tasks created.
    pub created: u32,
    /// Pending tasks whose description followed an edit.
    pub updated: u32,
    /// Tasks cancelled (their issue closed or unlabelled).
    pub cancelled: u32,
    /// Issues left alone: labelled by someone without write permission.
    pub ignored: u32,
}

/// Turns `store`'s labelled issues on `github` into tasks.
pub struct IssueWatch {
    store: Store,
    github: Arc<GitHub>,
    settings: IssueSettings,
    /// The token's login, asked of GitHub once: its own account is not requested as reviewer.
    login: OnceCell<String>,
    /// Issues ignored (no write permission), by number, at the `updated_at` seen: asked again
    /// only when the issue changes.
    ignored: Mutex<HashMap<u64, Option<DateTime<Utc>>>>,
}

impl IssueWatch {
    pub fn new(store: Store, github: Arc<GitHub>, settings: IssueSettings) -> IssueWatch {
        IssueWatch {
            store,
            github,
            settings,
            login: OnceCell::new(),
            ignored: Mutex::new(HashMap::new()),
        }
    }

    /// Sweeps every `every` until `shutdown`; a failed sweep is logged and the next tries
    /// again (a rate limit included: the list is one request a sweep).
    pub async fn run(&self, every: Duration, shutdown: &Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(e) = self.sweep(true).await {
                warn!(error = %e, label = %self.settings.label, "issue watch: cannot read the labelled issues or record their tasks");
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.triggered() => {}
            }
        }
    }

    /// One sweep: lists the open issues with the label (with the last ETag when
    /// `conditional`), creates the tasks of new ones labelled by a person with write
    /// permission, updates the descriptions of unstarted tasks, cancels the tasks of issues
    /// closed or unlabelled. The ETag is recorded only after the whole sweep, so a failed one
    /// is done again.
    ///
    /// Errors: [`IssueWatchError`] for GitHub's or the database's failures.
    pub async fn sweep(&self, conditional: bool) -> Result<IssueSweep, IssueWatchError> {
        let label = &self.settings.label;
        let etag = match conditional {
            true => self.store.issue_watch_etag(label).await?,
            false => None,
        };
        let mut sweep = IssueSweep::default();
        let Some((issues, etag)) = self.github.open_issues(label, etag.as_deref()).await? else {
            sweep.not_modified = true;
            return Ok(sweep);
        };
        let tasks: HashMap<i64, IssueTask> = self
            .store
            .issue_tasks()
            .await?
            .into_iter()
            .map(|t| (i64::from(t.issue_number), t))
            .collect();
        let mut writers = HashMap::new();
        for issue in &issues {
            match tasks.get(&(issue.number as i64)) {
                Some(task) => {
                    let description = description(issue);
                    if task.status == TaskStatus::Pending
                        && task.unstarted
                        && task.description != description
                        && self.author_can_write(issue, &mut writers).await?
                        && self
                            .store
                            .update_issue_description(&task.task_id, &description)
                            .await?
                    {
                        info!(task_id = %task.task_id, issue = issue.number, "the issue was edited: the pending task's description follows");
                        sweep.updated += 1;
                    }
                }
                None => match self.create(issue, &mut writers).await? {
                    true => sweep.created += 1,
                    false => sweep.ignored += 1,
                },
            }
        }
        let open: HashSet<u64> = issues.iter().map(|i| i.number).collect();
        for task in tasks.values() {
            let number = u64::try_from(task.issue_number).unwrap_or_default();
            if open.contains(&number) || !ends_with_issue(task.status) {
                continue;
            }
            // Not in the list: closed or unlabelled — or beyond its last page. Ask the issue.
            let why = match self.github.issue(number).await {
                Ok(issue) if !issue.open => "closed",
                Ok(issue) if !issue.labels.contains(label) => "unlabelled",
                Ok(_) => continue,
                Err(e) if matches!(e.status(), Some(404 | 410)) => "deleted",
                Err(e) => return Err(e.into()),
            };
            match self.store.cancel(&task.task_id).await? {
                Cancelled::AlreadyFinished(_) => {}
                _ => {
                    info!(task_id = %task.task_id, issue = number, why, "the issue is no longer labelled and open: its task is cancelled");
                    sweep.cancelled += 1;
                }
            }
        }
        self.store
            .set_issue_watch_etag(label, etag.as_deref())
            .await?;
        if sweep != (IssueSweep::default()) {
            info!(
                label = %label,
                created = sweep.created,
                updated = sweep.updated,
                cancelled = sweep.cancelled,
                ignored = sweep.ignored,
                "issue watch sweep"
            );
        }
        Ok(sweep)
    }

    /// Creates the task of `issue` when the person who labelled it may write to the
    /// repository; false when it is ignored (`writers` caches permissions for the sweep).
    async fn create(
        &self,
        issue: &Issue,
        writers: &mut HashMap<String, bool>,
    ) -> Result<bool, IssueWatchError> {
        if self
            .ignored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&issue.number)
            == Some(&issue.updated_at)
        {
            return Ok(false);
        }
        let label = &self.settings.label;
        let labeller = self.github.labeller(issue.number, label).await?;
        let allowed = match &labeller {
            Some(login) => self.can_write(login, writers).await?,
            None => false,
        };
        if !allowed {
            info!(issue = issue.number, labelled_by = ?labeller, "issue watch: labelled by a user without write permission; no task");
            self.ignored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(issue.number, issue.updated_at);
            return Ok(false);
        }
        let own = self.login.get_or_try_init(|| self.github.login()).await?;
        let mut reviewers = Vec::new();
        if let Some(author) = &issue.author
            && author != own
            && self.author_can_write(issue, writers).await?
        {
            reviewers.push(author.clone());
        }
        let (priority, labels) = priority_and_labels(issue, &self.settings);
        let task = NewIssueTask {
            issue_number: i32::try_from(issue.number)
                .map_err(|_| StoreError::Invalid(format!("issue number {}", issue.number)))?,
            description: description(issue),
            priority,
            labels,
            author: issue.author.clone(),
            reviewers,
        };
        if self.store.add_issue_task(&task).await? {
            info!(task_id = %task.task_id(), issue = issue.number, labelled_by = ?labeller, priority, "task created from the issue");
        }
        Ok(true)
    }

    /// True when `issue`'s author may write to the repository.
    async fn author_can_write(
        &self,
        issue: &Issue,
        writers: &mut HashMap<String, bool>,
    ) -> Result<bool, GitHubError> {
        match &issue.author {
            Some(author) => self.can_write(author, writers).await,
            None => Ok(false),
        }
    }

    async fn can_write(
        &self,
        login: &str,
        writers: &mut HashMap<String, bool>,
    ) -> Result<bool, GitHubError> {
        if let Some(may) = writers.get(login) {
            return Ok(*may);
        }
        let may = self.github.can_write(login).await?;
        writers.insert(login.to_owned(), may);
        Ok(may)
    }
}

/// A task whose issue's closing cancels it: one that has not ended.
fn ends_with_issue(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Pending | TaskStatus::InProgress | TaskStatus::Blocked
    )
}

/// The task's description: the issue's title, a blank line, its body.
fn description(issue: &Issue) -> String {
    let body = issue.body.trim();
    if body.is_empty() {
        issue.title.trim().to_owned()
    } else {
        format!("{}\n\n{body}", issue.title.trim())
    }
}

/// The priority from a `priority:N` label (the last one that parses), else the default; the
/// other labels, without the watched one, carried to the PR.
fn priority_and_labels(issue: &Issue, settings: &IssueSettings) -> (i32, Vec<String>) {
    let mut priority = settings.default_priority;
    let mut labels = Vec::new();
    for label in &issue.labels {
        if let Some(n) = label.strip_prefix("priority:") {
            if let Ok(n) = n.trim().parse() {
                priority = n;
            }
        } else if *label != settings.label && !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    (priority, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(labels: &[&str], body: &str) -> Issue {
        Issue {
            number: 7,
            title: " Add a flag ".into(),
            body: body.into(),
            author: Some("alice".into()),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            open: true,
            updated_at: None,
        }
    }

    fn settings() -> IssueSettings {
        IssueSettings {
            label: "autonomous".into(),
            default_priority: 3,
        }
    }

    #[test]
    fn the_priority_comes_from_its_label_and_the_watched_label_is_not_carried() {
        let i = issue(&["autonomous", "bug", "priority:9", "bug"], "");
        assert_eq!(
            priority_and_labels(&i, &settings()),
            (9, vec!["bug".to_owned()])
        );
        let i = issue(&["priority:high", "docs"], "");
        assert_eq!(
            priority_and_labels(&i, &settings()),
            (3, vec!["docs".to_owned()])
        );
    }

    #[test]
    fn the_description_is_the_title_and_the_body() {
        assert_eq!(description(&issue(&[], "")), "Add a flag");
        assert_eq!(
            description(&issue(&[], "  It should.\n")),
            "Add a flag\n\nIt should."
        );
    }
}
