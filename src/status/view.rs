//! The typed views every operator surface shows: `tasks list --json`, `tasks show --json`,
//! `stats --json`, `status --json`, and the status page, which renders the same values as
//! HTML. Each is a serde-serialised struct whose JSON shape is documented in README
//! ("JSON output") and only grows (fields are added, never renamed or removed). Times are RFC
//! 3339 instants in UTC, money is USD as a number, durations are milliseconds.
//!
//! No view carries a secret or more task text than `tasks show` prints: a stage's vote,
//! rationale, usage and evidence (verification summaries and output tails, gate reports), never
//! the role's prompt or its whole output.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::agents::{Chain, EngineerEvidence, SecurityEvidence};
use crate::metrics::Pause;
use crate::store::{
    DayRow, QueueFilter, QueueRow, RoleCalls, SpendRow, StageCost, StatusStats, Store, StoreError,
    WaitingRow, WorkerRow,
};
use crate::task::{
    Lookup, Outcome, PrState, Revision, RevisionEnd, RevisionStatus, RevisionTrigger, Stage,
    StageRecord, Task, TaskStatus, Usage,
};

/// Days of history the spend view and the chart cover (today included).
pub const SPEND_DAYS: i32 = 30;

/// A task's pull request: its URL and state as the PR watch last saw it (`None` before the
/// first look).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrView {
    pub url: String,
    pub state: Option<PrState>,
}

/// One task in a list: `tasks list --json`'s entries and the queue page's rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSummary {
    pub task_id: String,
    pub status: TaskStatus,
    pub priority: i32,
    pub labels: Vec<String>,
    /// The description's first line, at most 100 characters.
    pub title: String,
    /// Claims so far.
    pub attempts: i32,
    /// Mean of the scoring roles' scores, 0–100; `null` before consensus.
    pub consensus_score: Option<f64>,
    /// USD spent on its LLM calls.
    pub cost_usd: f64,
    pub pr: Option<PrView>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The last error (failed tasks, or one waiting to be retried).
    pub error: Option<String>,
}

/// Characters of a title.
const TITLE_CHARS: usize = 100;

fn title(description: &str) -> String {
    let line = description.lines().next().unwrap_or("").trim();
    line.chars().take(TITLE_CHARS).collect()
}

fn pr(url: Option<String>, state: Option<PrState>) -> Option<PrView> {
    url.map(|url| PrView { url, state })
}

impl From<QueueRow> for TaskSummary {
    fn from(row: QueueRow) -> TaskSummary {
        TaskSummary {
            title: title(&row.description),
            task_id: row.task_id,
            status: row.status,
            priority: row.priority,
            labels: row.labels,
            attempts: row.attempts,
            consensus_score: row.consensus_score,
            cost_usd: row.cost_usd,
            pr: pr(row.pr_url, row.pr_state),
            created_at: row.created_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
            error: row.error,
        }
    }
}

/// A page of the queue (`tasks list --json` is one page holding every match).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskPage {
    /// Tasks matching the filter in all.
    pub total: i64,
    /// Matches skipped before this page.
    pub offset: i64,
    /// The page's size; `null`: every match.
    pub limit: Option<i64>,
    /// In the claim's order: highest priority first, then oldest.
    pub tasks: Vec<TaskSummary>,
}

impl TaskPage {
    /// The page of the queue `filter` selects.
    ///
    /// # Errors
    /// The store's ([`StoreError::Invalid`] for a negative limit or offset).
    pub async fn load(store: &Store, filter: &QueueFilter) -> Result<TaskPage, StoreError> {
        let (rows, total) = store.queue_page(filter).await?;
        Ok(TaskPage {
            total,
            offset: filter.offset,
            limit: filter.limit,
            tasks: rows.into_iter().map(TaskSummary::from).collect(),
        })
    }
}

/// A task this one depends on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DependencyView {
    pub task_id: String,
    pub status: TaskStatus,
    pub pr_state: Option<PrState>,
}

/// One recorded stage: who answered, the vote, why, what it took, what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    pub role: Stage,
    pub model: String,
    /// 0–100 for the scoring roles; `null` for the PM.
    pub score: Option<f64>,
    /// The PM's `approve` / `reject`; `null` for the scoring roles.
    pub vote: Option<String>,
    pub rationale: String,
    /// Wall time of the stage, retries included, in milliseconds.
    pub duration_ms: i64,
    pub usage: Usage,
    pub recorded_at: Option<DateTime<Utc>>,
    /// The base commit (hex) the stage read the repository at.
    pub base_commit: Option<String>,
    /// The look-ups the role made before it submitted (tool, arguments, result size in bytes,
    /// the error it was told if refused), in order.
    pub lookups: Vec<Lookup>,
    /// The Engineer's rounds (the first answer, then each repair) and its final verification.
    pub engineer_evidence: Option<EngineerEvidence>,
    /// Security's gates and the final verification of what is committed.
    pub security_evidence: Option<SecurityEvidence>,
    /// Why the stored output or evidence could not be read (the rest is shown as stored).
    pub unreadable: Option<String>,
}

impl From<&StageRecord> for StageView {
    fn from(record: &StageRecord) -> StageView {
        let mut chain = Chain::default();
        let mut problems = Vec::new();
        if let Err(e) = chain.restore(record.stage, record.output.clone()) {
            problems.push(format!("output: {e}"));
        }
        let mut engineer_evidence = None;
        let mut security_evidence = None;
        if let Some(evidence) = record.evidence.clone() {
            let read = match record.stage {
                Stage::Engineer => serde_json::from_value(evidence).map(|e| {
                    engineer_evidence = Some(e);
                }),
                Stage::Security => serde_json::from_value(evidence).map(|e| {
                    security_evidence = Some(e);
                }),
                _ => Ok(()),
            };
            if let Err(e) = read {
                problems.push(format!("evidence: {e}"));
            }
        }
        StageView {
            role: record.stage,
            model: record.model.clone(),
            score: record.score,
            vote: chain.pm.as_ref().map(|pm| pm.vote.as_str().to_owned()),
            rationale: chain.rationale(record.stage).to_owned(),
            duration_ms: record.duration_ms,
            usage: record.usage,
            recorded_at: record.created_at,
            base_commit: record.base_commit.clone(),
            lookups: record.lookups.clone(),
            engineer_evidence,
            security_evidence,
            unreadable: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }
}

/// One task in full: `tasks show --json` and the task page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub summary: TaskSummary,
    pub description: String,
    /// Who approved what consensus left for review (`tasks approve`).
    pub approved_by: Option<String>,
    /// The GitHub issue it came from (ISSUES_LABEL); its PR closes it.
    pub issue_number: Option<i32>,
    /// Reviewers requested on its PR besides REVIEWERS.
    pub reviewers: Vec<String>,
    /// When the PR entered its state, by GitHub's clock.
    pub pr_state_at: Option<DateTime<Utc>>,
    /// A pending task is not claimed before this.
    pub run_after: DateTime<Utc>,
    /// The worker holding the task (in progress), or the one that ended it.
    pub worker: Option<String>,
    /// End of the current lease, while in progress.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A person asked to cancel it; its worker stops at the next stage boundary.
    pub cancel_requested: bool,
    pub dependencies: Vec<DependencyView>,
    /// In pipeline order.
    pub stages: Vec<StageView>,
    /// Per stage over the task's whole life: calls, corrective retries, tokens, USD.
    pub costs: Vec<StageCost>,
    /// How the task ended (the stored outcome, README's "The outcome" shape); `null` while it
    /// has not.
    pub outcome: Option<Outcome>,
    /// The revisions of its PR, oldest first.
    pub revisions: Vec<RevisionView>,
}

/// One revision of a task's PR (`revisions` row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevisionView {
    pub number: i32,
    /// `review`, `check` or `conflict`.
    pub trigger: RevisionTrigger,
    /// `pending`, `pushed`, `not_approved` or `failed`.
    pub status: RevisionStatus,
    /// How many notes of the conversation it answers.
    pub new_notes: usize,
    /// The checks it fixes (a check revision).
    pub failed_checks: Vec<String>,
    /// The PR branch's tip it was built on.
    pub head_commit: Option<String>,
    /// How it ended (`end`: `pushed`, `merged`, `not_approved`, `failed`, with the commit,
    /// the consensus and the verification); `null` while pending.
    pub outcome: Option<RevisionEnd>,
    /// USD its LLM calls cost.
    pub cost_usd: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Revision> for RevisionView {
    fn from(r: &Revision) -> RevisionView {
        RevisionView {
            number: r.number,
            trigger: r.trigger,
            status: r.status,
            new_notes: r.feedback.new_notes().count(),
            failed_checks: r.feedback.checks.iter().map(|c| c.name.clone()).collect(),
            head_commit: r.head_commit.clone(),
            outcome: r.outcome.clone(),
            cost_usd: r.cost_usd,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

impl TaskDetail {
    /// Task `task_id` with its stages, costs, dependencies and revisions; `None` if there is
    /// none.
    ///
    /// # Errors
    /// The store's.
    pub async fn load(store: &Store, task_id: &str) -> Result<Option<TaskDetail>, StoreError> {
        let Some(task) = store.get_task(task_id).await? else {
            return Ok(None);
        };
        let stages = store.stages(task.id).await?;
        let costs = store.stage_costs(task.id).await?;
        let dependencies = store.dependencies(task.id).await?;
        let revisions = store.revisions(task.id).await?;
        Ok(Some(TaskDetail::new(
            task,
            &dependencies,
            &stages,
            costs,
            &revisions,
        )))
    }

    /// The view of `task` with what the store holds of it.
    pub fn new(
        task: Task,
        dependencies: &[(String, TaskStatus, Option<PrState>)],
        stages: &[StageRecord],
        costs: Vec<StageCost>,
        revisions: &[Revision],
    ) -> TaskDetail {
        let summary = TaskSummary {
            title: title(&task.description),
            task_id: task.task_id,
            status: task.status,
            priority: task.priority,
            labels: task.labels,
            attempts: task.attempts,
            consensus_score: task.consensus_score,
            cost_usd: costs.iter().map(|c| c.cost_usd).sum(),
            pr: pr(task.pr_url, task.pr_state),
            created_at: task.created_at,
            started_at: task.started_at,
            completed_at: task.completed_at,
            error: task.error,
        };
        TaskDetail {
            summary,
            description: task.description,
            approved_by: task.approved_by,
            issue_number: task.issue_number,
            reviewers: task.reviewers,
            pr_state_at: task.pr_state_at,
            run_after: task.queue.run_after,
            worker: task.queue.locked_by,
            lease_expires_at: task.queue.lease_expires_at,
            cancel_requested: task.queue.cancel_requested,
            dependencies: dependencies
                .iter()
                .map(|(task_id, status, pr_state)| DependencyView {
                    task_id: task_id.clone(),
                    status: *status,
                    pr_state: *pr_state,
                })
                .collect(),
            stages: stages.iter().map(StageView::from).collect(),
            costs,
            outcome: task.result,
            revisions: revisions.iter().map(RevisionView::from).collect(),
        }
    }
}

/// Tasks by the state of their PR, as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrCountsView {
    pub open: i64,
    pub merged: i64,
    pub closed: i64,
}

/// One role's calls in `stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleView {
    pub role: Stage,
    pub calls: i64,
    /// Corrective retries among `calls`.
    pub corrections: i64,
    /// Share (0–1) of answers valid at the first try: 1 − corrections / (calls − corrections);
    /// `null` when none was asked.
    pub first_try_valid: Option<f64>,
}

impl From<&RoleCalls> for RoleView {
    fn from(r: &RoleCalls) -> RoleView {
        let asked = r.calls - r.corrections;
        RoleView {
            role: r.stage,
            calls: r.calls,
            corrections: r.corrections,
            first_try_valid: (asked > 0)
                .then(|| asked.saturating_sub(r.corrections) as f64 / asked as f64),
        }
    }
}

/// `stats --json`: per status, totals, PRs, per role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsView {
    /// Every status in lifecycle order: `status`, `count`, `avg_score` (0–100 or `null`),
    /// `cost_usd` (what the tasks now in it spent).
    pub statuses: Vec<StatusStats>,
    pub total_cost_usd: f64,
    /// USD spent since midnight UTC.
    pub spent_today_usd: f64,
    pub prs: PrCountsView,
    /// Every role in pipeline order.
    pub roles: Vec<RoleView>,
}

impl StatsView {
    /// What `stats` prints.
    ///
    /// # Errors
    /// The store's.
    pub async fn load(store: &Store) -> Result<StatsView, StoreError> {
        let statuses = store.stats().await?;
        let roles = store.role_calls().await?;
        let prs = store.pr_counts().await?;
        Ok(StatsView {
            total_cost_usd: statuses.iter().map(|s| s.cost_usd).sum(),
            statuses,
            spent_today_usd: store.spend_today().await?,
            prs: PrCountsView {
                open: prs.open,
                merged: prs.merged,
                closed: prs.closed,
            },
            roles: roles.iter().map(RoleView::from).collect(),
        })
    }
}

/// How many tasks are in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub status: TaskStatus,
    pub count: i64,
}

/// Spend: today, per day, per role and model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendView {
    /// USD since midnight UTC.
    pub today_usd: f64,
    /// The last [`SPEND_DAYS`] UTC days, oldest first: `day` (`YYYY-MM-DD`), `finished` (tasks
    /// ended that day), `spent_usd`.
    pub days: Vec<DayRow>,
    /// Over the same days, per role and model: `stage`, `model`, `calls`, the four token
    /// counts, `cost_usd`.
    pub by_role_model: Vec<SpendRow>,
}

/// `status --json` and the status page's overview: the queue, the workers, spend, pauses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub generated_at: DateTime<Utc>,
    /// Every status in lifecycle order.
    pub counts: Vec<StatusCount>,
    pub prs: PrCountsView,
    /// In-progress tasks: `worker`, `task_id`, `stage` (the one running, `null` in consensus or
    /// publish), `since`, `lease_expires_at`.
    pub workers: Vec<WorkerRow>,
    pub spend: SpendView,
    /// The daemon's own pause of all claiming (`reason`, `until`), as the daemon serving the
    /// page knows it; always `null` from the CLI, which runs outside the daemon.
    pub pause: Option<Pause>,
    /// Pending tasks waiting out a backoff or a snooze: `task_id`, `run_after`, `error`,
    /// `attempts`; soonest first.
    pub waiting: Vec<WaitingRow>,
}

impl Overview {
    /// The overview now; `pause` is the daemon's (`None` outside it).
    ///
    /// # Errors
    /// The store's.
    pub async fn load(store: &Store, pause: Option<Pause>) -> Result<Overview, StoreError> {
        let counts = store.status_counts().await?;
        let prs = store.pr_counts().await?;
        Ok(Overview {
            generated_at: Utc::now(),
            counts: counts
                .into_iter()
                .map(|(status, count)| StatusCount { status, count })
                .collect(),
            prs: PrCountsView {
                open: prs.open,
                merged: prs.merged,
                closed: prs.closed,
            },
            workers: store.workers().await?,
            spend: SpendView {
                today_usd: store.spend_today().await?,
                days: store.daily(SPEND_DAYS).await?,
                by_role_model: store.spend_by_role(SPEND_DAYS).await?,
            },
            pause,
            waiting: store.waiting().await?,
        })
    }
}
