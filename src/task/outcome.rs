//! How a task ended: the typed value the pipeline writes to `tasks.result` (JSONB) and the CLI
//! reads back. Also its parts: the consensus and its votes, the branch commit, the pull request
//! (opened, or drafted in a dry run) and the gates' report of a refused change.
//!
//! The JSON shape is an object tagged by `decision`, with the fields of its variant beside the
//! tag — the shape every version of the daemon has written, so old rows read as they are:
//!
//! | `decision` | fields |
//! |---|---|
//! | `approved` | `consensus`, `branch`, and `pr` (`number`, `url`, `labels`) or, in a dry run, `dry_run_pr` |
//! | `conditional`, `rejected` | `consensus` |
//! | `rejected_by_pm` | `votes` |
//! | `budget_exceeded`, `error` | `error` |
//! | `refused_by_gates` | `error`, `gates` |
//!
//! A stored object of no known shape reads as [`Outcome::Unreadable`], never as an error, so one
//! odd row cannot break `tasks list`, `tasks show` or the daemon.

use serde::{Deserialize, Serialize};

use super::{GateReport, Stage};

/// What consensus decided (the thresholds are in `crate::consensus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Score ≥ approve threshold: open a PR.
    Approved,
    /// Conditional threshold ≤ score < approve threshold: a person decides (needs_review).
    Conditional,
    /// Score < conditional threshold: failed.
    Rejected,
    /// The PM voted reject; no later stage ran.
    RejectedByPm,
}

impl Decision {
    /// The stored text: `approved`, `conditional`, `rejected`, `rejected_by_pm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Conditional => "conditional",
            Decision::Rejected => "rejected",
            Decision::RejectedByPm => "rejected_by_pm",
        }
    }
}

/// One role's vote as shown in `tasks show` and the PR body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub role: Stage,
    /// 0–100; `None` for the PM.
    pub score: Option<f64>,
    /// `approve`/`reject` for the PM, the score's verdict for the others.
    pub vote: String,
    pub rationale: String,
}

/// The outcome of consensus: score (mean, 0–100), decision and the votes it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consensus {
    pub score: f64,
    pub decision: Decision,
    pub votes: Vec<Vote>,
    /// Why the decision is at most conditional whatever the score (`Consensus::hold`): a failed
    /// verification, a workflow change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

/// The pull request a task asks for: what `tasks show` displays after a dry run, and what is
/// opened on GitHub otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftPr {
    pub title: String,
    /// Head branch, `feature/task-<task_id>`.
    pub head: String,
    /// `owner/name` of the fork the head branch is in (PUSH_REPOSITORY): the PR's head is then
    /// `<owner>:<head>`. `None`: the target repository itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_repository: Option<String>,
    /// Base branch (BASE_BRANCH).
    pub base: String,
    /// Markdown.
    pub body: String,
    pub labels: Vec<String>,
}

impl DraftPr {
    /// The head as GitHub's create-PR API takes it: `<fork owner>:<branch>` from a fork
    /// ([`DraftPr::head_repository`]), else the branch.
    pub fn qualified_head(&self) -> String {
        match &self.head_repository {
            Some(fork) => format!("{}:{}", fork.split('/').next().unwrap_or(fork), self.head),
            None => self.head.clone(),
        }
    }
}

/// The task's branch commit: pushed to origin, or (dry run) only committed locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchCommit {
    pub branch: String,
    /// The commit's id, 40 hex digits.
    pub commit: String,
    /// False in a dry run.
    pub pushed: bool,
    /// True when origin already had this exact content (a retried publish).
    pub reused: bool,
}

/// The task's pull request on GitHub, as it was when the task ended: its number in the
/// repository, its web URL and the labels the daemon added (none when GitHub refused the token
/// permission to label, as it does an outside contributor's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    pub number: u64,
    /// `https://github.com/<owner>/<repo>/pull/<number>`.
    pub url: String,
    pub labels: Vec<String>,
}

/// Where an approved change went: a pull request opened (or adopted), or — in a dry run — the
/// draft of the one that would have been. Stored as the key `pr` or `dry_run_pr` beside the
/// approval's other fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Publication {
    #[serde(rename = "pr")]
    Opened(PullRequestRef),
    #[serde(rename = "dry_run_pr")]
    DryRun(DraftPr),
}

/// How a task ended, stored in `tasks.result` (module docs: the JSON shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Outcome {
    /// Consensus approved and the change was published: the branch commit and the PR (opened,
    /// or drafted in a dry run).
    Approved {
        consensus: Consensus,
        branch: BranchCommit,
        #[serde(flatten)]
        publication: Publication,
    },
    /// Consensus approved conditionally, or an approval was held by evidence
    /// (`consensus.held`): needs_review, nothing pushed.
    Conditional { consensus: Consensus },
    /// Consensus rejected the change: failed.
    Rejected { consensus: Consensus },
    /// The PM voted reject; `votes` holds its vote (no later stage ran).
    RejectedByPm { votes: Vec<Vote> },
    /// A call would have taken the task past MAX_TASK_COST_USD; `error` says by how much.
    BudgetExceeded { error: String },
    /// A gate refused the change before anything was pushed (a secret, a binary or oversized
    /// file, too many files): `error` is the refusal, `gates` the whole report.
    RefusedByGates { error: String, gates: GateReport },
    /// Any other failure that ended the task; `error` is its message.
    Error { error: String },
    /// A stored value of no known shape (written by hand, or by a later version), kept as it
    /// is so that it is shown and written back unchanged. The pipeline never writes one.
    #[serde(untagged)]
    Unreadable(serde_json::Value),
}

impl Outcome {
    /// The stored `decision` text (`approved`, …, `error`); `unreadable` for an
    /// [`Outcome::Unreadable`] value.
    pub fn decision(&self) -> &'static str {
        match self {
            Outcome::Approved { .. } => Decision::Approved.as_str(),
            Outcome::Conditional { .. } => Decision::Conditional.as_str(),
            Outcome::Rejected { .. } => Decision::Rejected.as_str(),
            Outcome::RejectedByPm { .. } => Decision::RejectedByPm.as_str(),
            Outcome::BudgetExceeded { .. } => "budget_exceeded",
            Outcome::RefusedByGates { .. } => "refused_by_gates",
            Outcome::Error { .. } => "error",
            Outcome::Unreadable(_) => "unreadable",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_publication_sits_beside_the_decision() {
        let outcome = Outcome::Approved {
            consensus: Consensus {
                score: 82.5,
                decision: Decision::Approved,
                votes: Vec::new(),
                held: Vec::new(),
            },
            branch: BranchCommit {
                branch: "feature/task-t".into(),
                commit: "0".repeat(40),
                pushed: true,
                reused: true,
            },
            publication: Publication::Opened(PullRequestRef {
                number: 3,
                url: "https://github.com/o/r/pull/3".into(),
                labels: vec!["autonomous".into()],
            }),
        };
        let stored = serde_json::to_value(&outcome).unwrap();
        assert_eq!(stored["decision"], "approved");
        assert_eq!(stored["pr"]["number"], 3);
        assert_eq!(stored["consensus"]["decision"], "approved");
        assert!(stored.get("dry_run_pr").is_none() && stored.get("held").is_none());
        assert_eq!(serde_json::from_value::<Outcome>(stored).unwrap(), outcome);
    }

    #[test]
    fn an_unknown_shape_is_kept_as_it_is() {
        for odd in [
            json!({ "decision": "merged" }),
            json!({ "decision": "error" }),
            json!({ "decision": "approved", "consensus": 1 }),
            json!({ "no": "decision" }),
            json!(null),
        ] {
            let outcome: Outcome = serde_json::from_value(odd.clone()).unwrap();
            assert_eq!(outcome, Outcome::Unreadable(odd.clone()));
            assert_eq!(outcome.decision(), "unreadable");
            assert_eq!(serde_json::to_value(&outcome).unwrap(), odd);
        }
        let known: Outcome =
            serde_json::from_value(json!({ "decision": "error", "error": "boom" })).unwrap();
        assert_eq!(
            known,
            Outcome::Error {
                error: "boom".into()
            }
        );
    }
}
