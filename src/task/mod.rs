//! Domain types shared by every module: a task, its status, the pipeline stages, the token
//! usage a stage spent, and how a task ended (`outcome.rs`: the consensus, the branch and the
//! pull request; `gate_report.rs`: what the gates found). No I/O here.

mod gate_report;
mod outcome;

pub use gate_report::{GateReport, Refusal, SecretFinding};
pub use outcome::{
    BranchCommit, Consensus, Decision, DraftPr, Outcome, Publication, PullRequestRef, Vote,
};

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Lifecycle of a task, stored as text in `tasks.status` (CHECK constraint in the migration).
///
/// `pending → in_progress → completed | failed | needs_review`; `cancelled` is set by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    NeedsReview,
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::NeedsReview,
        TaskStatus::Cancelled,
    ];

    /// The text stored in the database (`pending`, `in_progress`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::NeedsReview => "needs_review",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    /// Parses the database text; the error names the accepted values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status '{s}' (expected one of: {})", all.join(", "))
            })
    }
}

/// A task to insert: what `tasks load` and `tasks add` accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Unique, human-chosen id such as `phase1-001` (at most 100 characters, as in the design).
    pub task_id: String,
    /// What to build; its first line becomes the PR title.
    pub description: String,
    /// Higher runs first.
    pub priority: i32,
    /// Labels added to the task's PR besides `autonomous` (e.g. `phase-1`).
    pub labels: Vec<String>,
}

/// A row of the `tasks` table. Timestamps are UTC (`TIMESTAMP` columns, as in the design).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Surrogate key (`SERIAL`).
    pub id: i32,
    pub task_id: String,
    pub description: String,
    pub status: TaskStatus,
    pub priority: i32,
    pub labels: Vec<String>,
    /// How many times the task has been claimed.
    pub attempts: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub pr_url: Option<String>,
    /// Mean of the scoring roles' scores, 0–100.
    pub consensus_score: Option<f64>,
    /// How the task ended: decision, votes and publish details (JSONB, written by the pipeline
    /// when the task ends); `None` while it has not.
    pub result: Option<Outcome>,
    /// Last error, for failed tasks.
    pub error: Option<String>,
    /// Lease, schedule and cancellation state (`migrations/0003_leases.sql`).
    pub queue: QueueState,
}

/// The queue columns of a task: who holds it, until when, and when it may run. Timestamps are UTC.
///
/// `Default` (epoch `run_after`, no lease, token 0) is for fixtures; the database always sets
/// `run_after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueState {
    /// A pending task is not claimable before this (retry backoff, quota waits).
    pub run_after: NaiveDateTime,
    /// Worker id of the last claim (`host:pid:n`); cleared when the task returns to pending, kept
    /// when it ends (who finished it).
    pub locked_by: Option<String>,
    /// End of the current lease, while in_progress; after it the task may be reclaimed. `None`
    /// when not in_progress (or claimed without a lease by the pre-lease API).
    pub lease_expires_at: Option<NaiveDateTime>,
    /// Incremented by every claim; the claim's `Lease` carries it and every write is checked
    /// against it.
    pub fencing_token: i64,
    /// Someone asked to cancel this in_progress task; its worker stops at the next stage
    /// boundary. A task reclaimed with this set should be ended with `finish_cancelled` at once.
    pub cancel_requested: bool,
}

impl Task {
    /// First line of the description, at most `max` characters — the PR title's text.
    pub fn title(&self, max: usize) -> String {
        let line = self.description.lines().next().unwrap_or("").trim();
        line.chars().take(max).collect()
    }
}

/// The LLM stages of the pipeline, in order. Stored as text in `task_stages.stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Pm,
    Architect,
    Engineer,
    Qa,
    Security,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Pm,
        Stage::Architect,
        Stage::Engineer,
        Stage::Qa,
        Stage::Security,
    ];

    /// The text stored in the database (`pm`, `architect`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pm => "pm",
            Stage::Architect => "architect",
            Stage::Engineer => "engineer",
            Stage::Qa => "qa",
            Stage::Security => "security",
        }
    }

    /// Display name of the role (`PM`, `Architect`, …).
    pub fn role_name(self) -> &'static str {
        match self {
            Stage::Pm => "PM",
            Stage::Architect => "Architect",
            Stage::Engineer => "Engineer",
            Stage::Qa => "QA",
            Stage::Security => "Security",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| format!("unknown stage '{s}'"))
    }
}

/// Tokens one stage spent, as the provider reported them (Anthropic's `usage` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_creation_input_tokens: u32,
    pub cache_read_input_tokens: u32,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }
}

/// One completed stage, as recorded in `task_stages`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRecord {
    pub stage: Stage,
    /// The role's structured output (its tool input), validated; the Engineer's with its edits
    /// resolved into whole files.
    pub output: serde_json::Value,
    /// What the stage rests on beyond the model's answer (verification runs, gate results),
    /// `None` for stages without.
    pub evidence: Option<serde_json::Value>,
    /// 0–100 for scoring roles; `None` for the PM, which votes approve/reject.
    pub score: Option<f64>,
    /// Model that answered.
    pub model: String,
    pub usage: Usage,
    /// Wall time of the stage including retries, in milliseconds.
    pub duration_ms: i64,
    /// When the stage was recorded (UTC); `None` before it is stored.
    pub created_at: Option<NaiveDateTime>,
}

/// A whole-file write proposed by the Engineer or QA: `path` is relative to the repository root
/// (validated by `git::check_path` before anything is written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileChange {
    /// Relative path with `/` separators, e.g. `src/lib.rs`.
    pub path: String,
    /// Complete new content of the file (UTF-8).
    pub content: String,
}
