//! Domain types shared by every module: a task, its status, the pipeline stages, the token
//! usage a stage spent, and how a task ended (`outcome.rs`: the consensus, the branch and the
//! pull request; `gate_report.rs`: what the gates found; `revision.rs`: a revision of an open
//! PR and the conversation it answers; `lookup.rs`: the look-up tools' inputs, results and
//! records). No I/O here.

mod gate_report;
mod lookup;
mod outcome;
mod revision;

pub use gate_report::{GateReport, Refusal, SecretFinding};
pub use lookup::{
    FIND_SYMBOL, FindSymbol, Hit, LOOKUP_TOOLS, Lookup, LookupCall, LookupOutput, MAX_HIT_BYTES,
    MAX_READ_BYTES, MAX_READ_LINES, MAX_REGEX_BYTES, MAX_SEARCH_HITS, MAX_SYMBOLS, READ_FILE,
    ReadFile, SEARCH, Search, SymbolHit,
};
pub use outcome::{
    BranchCommit, Consensus, Decision, DraftPr, Outcome, Publication, PullRequestRef, Vote,
};
pub use revision::{
    ChecksSeen, FailedCheck, Feedback, FeedbackCursor, Note, NoteKind, OWN_MARKER, Revision,
    RevisionEnd, RevisionStatus, RevisionTrigger,
};

use std::fmt;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Lifecycle of a task, stored as text in `tasks.status` (a VARCHAR with a CHECK constraint in
/// the migration). Its one spelling — `pending`, `in_progress`, `completed`, `failed`,
/// `needs_review`, `cancelled`, `blocked` — is shared by the database (`sqlx::Type`), JSON
/// (serde), the CLI's `--status` (clap) and `Display`.
///
/// `pending → in_progress → completed | failed | needs_review`; `cancelled` is set by a person;
/// `pending ⇄ blocked` follows the task's dependencies (`depends_on`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    NeedsReview,
    Cancelled,
    /// Pending, but a task it depends on failed, was cancelled, or had its PR closed unmerged;
    /// pending again once that task is retried.
    Blocked,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::NeedsReview,
        TaskStatus::Cancelled,
        TaskStatus::Blocked,
    ];
}

/// The stored text (`in_progress`, …), as clap spells the value.
impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display_value(self, f)
    }
}

/// Writes a [`ValueEnum`] variant's name (every variant of this module's enums has one).
fn display_value(value: &impl ValueEnum, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let name = value.to_possible_value().expect("no variant is skipped");
    f.write_str(name.get_name())
}

/// A task to insert: what `tasks load` and `tasks add` accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Unique, human-chosen id such as `phase1-001` (at most 100 characters: the column is `VARCHAR(100)`).
    pub task_id: String,
    /// What to build; its first line becomes the PR title.
    pub description: String,
    /// Higher runs first.
    pub priority: i32,
    /// Labels added to the task's PR besides `autonomous` (e.g. `phase-1`).
    pub labels: Vec<String>,
    /// task_ids of the tasks that must be done first (completed with the PR merged, or without
    /// a PR): in the same file or already loaded.
    pub depends_on: Vec<String>,
    /// Reviews requested on the task's PR besides REVIEWERS: logins, and `org/team` teams
    /// ([`check_reviewer`]).
    pub reviewers: Vec<String>,
}

/// Checks a reviewer as REVIEWERS and a task's `reviewers` take it: a GitHub login, or a team
/// of the repository's organisation as `org/team`; each part 1–100 characters of ASCII
/// letters, digits, `-`, `_` and `.` (GitHub's logins and team slugs).
///
/// Errors: a message saying the expected form.
pub fn check_reviewer(value: &str) -> Result<(), String> {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let ok = match value.split_once('/') {
        Some((org, team)) => part(org) && part(team),
        None => part(value),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?}: expected a login or org/team"))
    }
}

/// A row of the `tasks` table (`SELECT` of its columns by name). Timestamps are instants
/// (`timestamptz` columns, migration 0005), shown in UTC.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub pr_url: Option<String>,
    /// Mean of the scoring roles' scores, 0–100.
    pub consensus_score: Option<f64>,
    /// How the task ended: decision, votes and publish details (JSONB, written by the pipeline
    /// when the task ends); `None` while it has not.
    #[sqlx(json(nullable))]
    pub result: Option<Outcome>,
    /// Last error, for failed tasks.
    pub error: Option<String>,
    /// Who approved the change consensus left for review (`tasks approve`): the next run
    /// publishes it instead of holding it again. `None`: no person has.
    pub approved_by: Option<String>,
    /// Its PR's state as last seen on GitHub; `None` before the first look (or without a PR).
    pub pr_state: Option<PrState>,
    /// When the PR entered that state (opened, merged or closed), by GitHub's clock.
    pub pr_state_at: Option<DateTime<Utc>>,
    /// The GitHub issue the task came from (ISSUES_LABEL, `tasks import --github`): its PR
    /// closes it. `None` for a loaded task.
    pub issue_number: Option<i32>,
    /// Requested on its PR besides REVIEWERS (the task file's `reviewers`; an issue's author
    /// with write permission).
    pub reviewers: Vec<String>,
    /// Lease, schedule and cancellation state (`migrations/0003_leases.sql`).
    #[sqlx(flatten)]
    pub queue: QueueState,
}

/// Where a task's pull request stands on GitHub, as the daemon last saw it (`tasks.pr_state`):
/// `open`, `merged`, or `closed` (closed without being merged). Watched until merged or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum PrState {
    Open,
    Merged,
    Closed,
}

impl PrState {
    /// The stored text: `open`, `merged`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrState::Open => "open",
            PrState::Merged => "merged",
            PrState::Closed => "closed",
        }
    }
}

/// What one look at a pull request on GitHub saw (the PR watch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrSeen {
    /// 304 Not Modified: nothing changed since the ETag sent.
    NotModified,
    /// The PR as GitHub answered: its state, since when (`merged_at`, `closed_at` or
    /// `created_at`), the answer's ETag, to send back as If-None-Match, and its head commit.
    State {
        state: PrState,
        since: Option<DateTime<Utc>>,
        etag: Option<String>,
        /// The head commit (`head.sha`).
        head: Option<String>,
        /// The PR does not merge into its base: `mergeable` is false or `mergeable_state`
        /// is `dirty` (GitHub computes both in the background; unknown counts as false).
        conflicted: bool,
    },
}

/// The queue columns of a task: who holds it, until when, and when it may run.
///
/// `Default` (epoch `run_after`, no lease, token 0) is for fixtures; the database always sets
/// `run_after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueState {
    /// A pending task is not claimable before this (retry backoff, quota waits).
    pub run_after: DateTime<Utc>,
    /// Worker id of the last claim (`host:pid:n`); cleared when the task returns to pending, kept
    /// when it ends (who finished it).
    pub locked_by: Option<String>,
    /// End of the current lease, while in_progress; after it the task may be reclaimed. `None`
    /// when not in_progress (or claimed without a lease by the pre-lease API).
    pub lease_expires_at: Option<DateTime<Utc>>,
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

/// The LLM stages of the pipeline, in order. Stored as text (`pm`, `architect`, `engineer`,
/// `qa`, `security`) in the VARCHAR columns `task_stages.stage` and `llm_calls.stage`; the same
/// spelling in JSON and `Display`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    sqlx::Type,
    ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
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

    /// Display name of the role (`PM`, `Architect`, …).
    pub const fn role_name(self) -> &'static str {
        match self {
            Stage::Pm => "PM",
            Stage::Architect => "Architect",
            Stage::Engineer => "Engineer",
            Stage::Qa => "QA",
            Stage::Security => "Security",
        }
    }
}

/// The stored text (`pm`, `architect`, …).
impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display_value(self, f)
    }
}

/// Tokens one stage spent, as the provider reported them (Anthropic's `usage` object). Read from
/// the INTEGER token columns of `task_stages` and `llm_calls` (non-negative by their CHECK
/// constraints; a negative value is a decode error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Usage {
    #[sqlx(try_from = "i32")]
    pub input_tokens: u32,
    #[sqlx(try_from = "i32")]
    pub output_tokens: u32,
    #[sqlx(try_from = "i32")]
    pub cache_creation_input_tokens: u32,
    #[sqlx(try_from = "i32")]
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
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    #[sqlx(flatten)]
    pub usage: Usage,
    /// Wall time of the stage including retries, in milliseconds.
    pub duration_ms: i64,
    /// When the stage was recorded; `None` before it is stored.
    pub created_at: Option<DateTime<Utc>>,
    /// The base commit (hex SHA-1) of the run's snapshot the stage read the repository at;
    /// a resumed run pins its snapshot to it. `None` for a record made before migration 0006
    /// added the column (base unknown) and before the pipeline sets it.
    pub base_commit: Option<String>,
    /// The look-ups the role made before it submitted, in order (`lookups`, JSONB; empty for
    /// roles without look-up tools and records made before migration 0014).
    #[sqlx(json)]
    pub lookups: Vec<Lookup>,
}

/// Why an LLM call was made, as the `llm_calls.kind` column stores it (`answer`, `correction`,
/// `feedback`, `lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum CallKind {
    /// A role's first request.
    Answer,
    /// A corrective retry: the previous answer did not validate (or called another tool) and
    /// was sent back with the reasons. What a schema the provider decodes to saves.
    Correction,
    /// A new answer after the pipeline's feedback on a valid one (a failed verification, edits
    /// that did not apply): a repair round.
    Feedback,
    /// An answer after the results of the model's look-ups (`read_file`, `search`,
    /// `find_symbol`) were sent back.
    Lookup,
}

/// One path component for [`PATH_PATTERN`]: no `/`, backslash or control character, and not
/// `.` or `..` (a first character other than `.`; or `.` and a second one other than `.`; or
/// `..` and more).
macro_rules! component {
    () => {
        concat!(
            r"(?:[^/\\\x00-\x1f\x7f-\x9f.][^/\\\x00-\x1f\x7f-\x9f]*",
            r"|\.[^/\\\x00-\x1f\x7f-\x9f.][^/\\\x00-\x1f\x7f-\x9f]*",
            r"|\.\.[^/\\\x00-\x1f\x7f-\x9f]+)"
        )
    };
}

/// JSON Schema `pattern` of a repository path, as much of `git::check_path` as a
/// regular expression without look-around says: relative, `/`-separated, every component
/// non-empty and neither `.` nor `..`, no backslash and no control character.
pub const PATH_PATTERN: &str = concat!("^", component!(), "(?:/", component!(), ")*$");

/// One component of [`GRAMMAR_PATH_PATTERN`]: ASCII letters, digits and `_.+@-`; not `.`, not
/// starting with `..`, and not `.git` followed by nothing or dots only, in any case (what
/// `git::check_path` refuses as naming the git directory), spelled without look-around: after
/// the dot, a first letter other than `g`; or `g` and a letter other than `i`; or `gi` and one
/// other than `t`; or `git` and more that is not only dots.
macro_rules! grammar_component {
    () => {
        concat!(
            "([A-Za-z0-9_+@-][A-Za-z0-9_.+@-]*",
            "|[.]([A-FH-Za-fh-z0-9_+@-][A-Za-z0-9_.+@-]*",
            "|[gG]([A-HJ-Za-hj-z0-9_.+@-][A-Za-z0-9_.+@-]*",
            "|[iI]([A-SU-Za-su-z0-9_.+@-][A-Za-z0-9_.+@-]*",
            "|[tT][.]*[A-Za-z0-9_+@-][A-Za-z0-9_.+@-]*)?)?))"
        )
    };
}

/// [`PATH_PATTERN`] narrowed to what llama.cpp's JSON-Schema-to-grammar converter compiles
/// faithfully (anchored; classes without quotes, backslashes or escapes): `/`-separated
/// components of `grammar_component!`. Stricter than `git::check_path`, so a local model
/// decoding to it writes only paths the validator accepts.
pub const GRAMMAR_PATH_PATTERN: &str =
    concat!("^", grammar_component!(), "(/", grammar_component!(), ")*$");

/// A whole-file write proposed by the Engineer or QA: `path` is relative to the repository root
/// (validated by `git::check_path` before anything is written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileChange {
    /// Relative path with `/` separators, e.g. `src/lib.rs`.
    #[schemars(pattern(PATH_PATTERN))]
    pub path: String,
    /// Complete new content of the file (UTF-8).
    pub content: String,
}
