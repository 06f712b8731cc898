//! Publish: the approved task becomes the branch `feature/task-<task_id>`, one commit built on
//! `origin/BASE_BRANCH` (git layer), and a labelled pull request (GitHub layer). Also the
//! repository reads the roles need (listing, current files), because they share the clone.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;

use crate::agents::Chain;
use crate::consensus::{self, Consensus, Thresholds};
use crate::git::{GitError, Listing, Repo};
use crate::github::{GitHub, GitHubError, NewPullRequest, PullRequest};
use crate::task::{FileChange, Stage, Task};

/// Longest PR title text after the `[Autonomous] ` prefix (from the issue: 72 characters).
const TITLE_MAX_CHARS: usize = 72;

/// Where and how to publish.
pub struct PublisherConfig {
    /// Local clone of the target repository (REPO_PATH).
    pub repo_path: PathBuf,
    /// Branch PRs target (BASE_BRANCH).
    pub base_branch: String,
    /// GITHUB_TOKEN, for fetch and push over https.
    pub token: Option<SecretString>,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error("the git worker thread failed: {0}")]
    Worker(String),
    #[error("nothing to publish: the Engineer wrote no file")]
    Empty,
    #[error("a dry run opens no pull request")]
    DryRun,
}

/// The pull request a task asks for: what `tasks show` displays after a dry run, and what is
/// opened on GitHub otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftPr {
    pub title: String,
    /// Head branch, `feature/task-<task_id>`.
    pub head: String,
    /// Base branch (BASE_BRANCH).
    pub base: String,
    /// Markdown.
    pub body: String,
    pub labels: Vec<String>,
}

/// The task's branch commit: pushed to origin, or (dry run) only committed locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BranchCommit {
    pub branch: String,
    pub commit: String,
    /// False in a dry run.
    pub pushed: bool,
    /// True when origin already had this exact content (a retried publish).
    pub reused: bool,
}

/// Publishes approved tasks and reads the target repository. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    config: Arc<PublisherConfig>,
    /// `None` in a dry run: nothing is pushed and no PR is opened.
    github: Option<Arc<GitHub>>,
}

impl Publisher {
    /// A publisher for the clone and base branch in `config`; `github: None` makes a dry-run
    /// publisher (commits locally, pushes nothing, opens no PR).
    pub fn new(config: PublisherConfig, github: Option<GitHub>) -> Publisher {
        Publisher {
            config: Arc::new(config),
            github: github.map(Arc::new),
        }
    }

    /// True when this publisher pushes nothing and opens no PR.
    pub fn is_dry_run(&self) -> bool {
        self.github.is_none()
    }

    /// Fetches the base branch and lists its tracked files (at most `max_bytes` of paths).
    pub async fn listing(&self, max_bytes: usize) -> Result<Listing, PublishError> {
        self.with_repo(move |repo| {
            repo.fetch_base()?;
            repo.list_files(max_bytes)
        })
        .await
    }

    /// Fetches the base branch and returns the current content of those `paths` that exist there
    /// (each cut to `max_bytes`).
    pub async fn read_files(
        &self,
        paths: Vec<String>,
        max_bytes: usize,
    ) -> Result<Vec<FileChange>, PublishError> {
        self.with_repo(move |repo| {
            repo.fetch_base()?;
            repo.read_files(&paths, max_bytes)
        })
        .await
    }

    /// Fetches the base branch and writes its tree with `files` applied into `dir` (a fresh
    /// worktree for verification); the user's checkout is not touched.
    pub async fn export(&self, files: Vec<FileChange>, dir: PathBuf) -> Result<(), PublishError> {
        self.with_repo(move |repo| {
            repo.fetch_base()?;
            repo.export(&files, &dir)
        })
        .await
    }

    /// The PR this task asks for (title, head, base, body, labels).
    pub fn draft(
        &self,
        task: &Task,
        chain: &Chain,
        consensus: &Consensus,
        thresholds: Thresholds,
    ) -> DraftPr {
        DraftPr {
            title: pr_title(task),
            head: branch_name(task),
            base: self.config.base_branch.clone(),
            body: pr_body(task, chain, consensus, thresholds, &files_list(chain)),
            labels: labels(task, chain, consensus, thresholds),
        }
    }

    /// Commits the Engineer's files and QA's test files on `feature/task-<task_id>`, built on the
    /// freshly fetched base, and pushes it — unless origin already has the same content on that
    /// branch (a retried publish), or this is a dry run (committed locally only).
    pub async fn push_branch(
        &self,
        task: &Task,
        chain: &Chain,
        consensus: &Consensus,
    ) -> Result<BranchCommit, PublishError> {
        let files = chain.files_to_write();
        if files.is_empty() {
            return Err(PublishError::Empty);
        }
        let branch = branch_name(task);
        let message = commit_message(task, chain, consensus);
        let dry_run = self.is_dry_run();
        self.with_repo(move |repo| {
            if dry_run {
                repo.fetch_base()?;
                let committed = repo.commit(&branch, &files, &message)?;
                return Ok(BranchCommit {
                    branch,
                    commit: committed.commit,
                    pushed: false,
                    reused: false,
                });
            }
            let pushed = repo.publish_branch(&branch, &files, &message)?;
            Ok(BranchCommit {
                branch,
                commit: pushed.commit,
                pushed: true,
                reused: pushed.reused,
            })
        })
        .await
    }

    /// Opens `draft` as a PR, or adopts the open PR that already has its head branch (a retried
    /// publish), so a task never gets two. Returns the PR and whether it was created now.
    pub async fn open_pull_request(
        &self,
        draft: &DraftPr,
    ) -> Result<(PullRequest, bool), PublishError> {
        let github = self.github.as_ref().ok_or(PublishError::DryRun)?;
        let pr = NewPullRequest {
            title: draft.title.clone(),
            head: draft.head.clone(),
            base: draft.base.clone(),
            body: draft.body.clone(),
        };
        Ok(github.ensure_pull_request(&pr).await?)
    }

    /// Adds `labels` to PR `number` (idempotent on GitHub's side).
    pub async fn label(&self, number: u64, labels: &[String]) -> Result<(), PublishError> {
        let github = self.github.as_ref().ok_or(PublishError::DryRun)?;
        Ok(github.add_labels(number, labels).await?)
    }

    /// Runs a git operation on a blocking thread with the repository opened there.
    async fn with_repo<T, F>(&self, op: F) -> Result<T, PublishError>
    where
        T: Send + 'static,
        F: FnOnce(&Repo) -> Result<T, GitError> + Send + 'static,
    {
        let config = Arc::clone(&self.config);
        tokio::task::spawn_blocking(move || {
            let repo = Repo::open(&config.repo_path, &config.base_branch, config.token.clone())?;
            op(&repo)
        })
        .await
        .map_err(|e| PublishError::Worker(e.to_string()))?
        .map_err(PublishError::from)
    }
}

/// The deterministic branch of a task: `feature/task-<task_id>` (the design's branch strategy).
pub fn branch_name(task: &Task) -> String {
    format!("feature/task-{}", task.task_id)
}

/// `[Autonomous] <first line of the description, at most 72 characters>`.
pub fn pr_title(task: &Task) -> String {
    format!("[Autonomous] {}", task.title(TITLE_MAX_CHARS))
}

fn files_list(chain: &Chain) -> Vec<String> {
    chain.files_to_write().into_iter().map(|f| f.path).collect()
}

/// Commit message: `[Autonomous] <title>`, the Engineer's summary, and the trailers
/// `Task: <task_id>` and `Consensus: 82.5%`.
pub fn commit_message(task: &Task, chain: &Chain, consensus: &Consensus) -> String {
    let summary = chain
        .engineer
        .as_ref()
        .map(|e| e.summary.trim())
        .unwrap_or_default();
    format!(
        "{}\n\n{summary}\n\nTask: {}\nConsensus: {:.1}%\n",
        pr_title(task),
        task.task_id,
        consensus.score
    )
}

/// PR labels: `autonomous`, the task's labels, `consensus-approved` (score ≥ the approve
/// threshold), `security-review` (Security score < 80) — from the design's PR metadata — and
/// `security-review` also when the gates saw CI/automation or dependency changes (the issue).
pub fn labels(
    task: &Task,
    chain: &Chain,
    consensus: &Consensus,
    thresholds: Thresholds,
) -> Vec<String> {
    let mut labels = vec!["autonomous".to_owned()];
    labels.extend(task.labels.iter().cloned());
    if consensus.score >= thresholds.approve {
        labels.push("consensus-approved".into());
    }
    let gated = chain
        .security_evidence
        .as_ref()
        .is_some_and(|e| e.gates.needs_security_review_label());
    if gated || chain.security.as_ref().is_some_and(|s| s.score() < 80) {
        labels.push("security-review".into());
    }
    let mut seen = std::collections::HashSet::new();
    labels.retain(|label| seen.insert(label.clone()));
    labels
}

/// The PR body, Markdown: consensus score, a table of votes (role, score, rationale), the
/// verification (command, result, repair rounds, output tail), the gates, the PRD, the
/// architecture summary, security findings and the files changed.
pub fn pr_body(
    task: &Task,
    chain: &Chain,
    consensus: &Consensus,
    thresholds: Thresholds,
    files: &[String],
) -> String {
    let mut body = format!(
        "Opened by **autonomous-dev** for task `{}`.\n\n## Consensus: {:.1}% ({})\n\n\
         Approve threshold {:.0}%, review threshold {:.0}%.\n\n\
         | Role | Score | Vote | Rationale |\n|---|---|---|---|\n",
        task.task_id,
        consensus.score,
        consensus::verdict(consensus.score, thresholds),
        thresholds.approve,
        thresholds.conditional,
    );
    for vote in &consensus.votes {
        let score = vote
            .score
            .map_or_else(|| "–".to_owned(), |s| format!("{s:.0}"));
        body.push_str(&format!(
            "| {} | {score} | {} | {} |\n",
            vote.role.role_name(),
            vote.vote,
            table_cell(&vote.rationale)
        ));
    }
    if let Some(verification) = chain.verification() {
        let repairs = chain.engineer_evidence.as_ref().map_or(0, |e| e.repairs());
        body.push_str(&format!(
            "\n## Verification\n\n{} (sandboxed, no network; {repairs} repair round(s))\n",
            verification.summary()
        ));
        if !verification.output_tail.trim().is_empty() {
            body.push_str(&format!(
                "\n<details><summary>Last lines of the output</summary>\n\n```text\n{}\n```\n\n</details>\n",
                verification.output_tail.trim_end().replace("```", "` ` `")
            ));
        }
    }
    if let Some(evidence) = &chain.security_evidence {
        body.push_str(&format!(
            "\n## Gates\n\n{}\n",
            evidence.gates.markdown().trim()
        ));
    }
    if let Some(pm) = &chain.pm {
        body.push_str(&format!("\n## PRD\n\n{}\n", pm.prd.trim()));
        if !pm.acceptance_criteria.is_empty() {
            body.push_str("\n### Acceptance criteria\n\n");
            for criterion in &pm.acceptance_criteria {
                body.push_str(&format!("- {}\n", criterion.trim()));
            }
        }
    }
    if let Some(architect) = &chain.architect {
        body.push_str(&format!(
            "\n## Architecture\n\n{}\n",
            architect.design.trim()
        ));
        if !architect.risks.is_empty() {
            body.push_str("\n**Risks:**\n\n");
            for risk in &architect.risks {
                body.push_str(&format!("- {}\n", risk.trim()));
            }
        }
    }
    if let Some(security) = &chain.security {
        body.push_str(&format!("\n## {} review\n\n", Stage::Security.role_name()));
        if security.findings.is_empty() {
            body.push_str("No findings.\n");
        }
        for finding in &security.findings {
            body.push_str(&format!("- {}\n", finding.trim()));
        }
    }
    body.push_str("\n## Files changed\n\n");
    for path in files {
        body.push_str(&format!("- `{path}`\n"));
    }
    body
}

/// Makes text safe for one Markdown table cell: one line, `|` escaped.
fn table_cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{PmOutput, PmVote, SecurityOutput};
    use crate::consensus::{Decision, Vote};
    use crate::task::TaskStatus;

    fn task(description: &str, labels: &[&str]) -> Task {
        let now = chrono::Utc::now();
        Task {
            id: 1,
            task_id: "phase1-001".into(),
            description: description.into(),
            status: TaskStatus::InProgress,
            priority: 100,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            attempts: 1,
            created_at: now,
            updated_at: now,
            started_at: Some(now),
            completed_at: None,
            pr_url: None,
            consensus_score: None,
            result: None,
            error: None,
            queue: Default::default(),
        }
    }

    fn security(privilege_escalation: bool) -> SecurityOutput {
        SecurityOutput {
            introduces_privilege_escalation: privilege_escalation,
            destructive_operations_without_safeguards: false,
            unvalidated_external_api: false,
            missing_audit_logging: false,
            encryption_at_rest_and_in_transit: true,
            advanced_audit_logging: true,
            findings: vec!["uses TLS".into()],
            rationale: "fine".into(),
        }
    }

    fn consensus(score: f64) -> Consensus {
        let vote = |role, score: Option<f64>, vote: &str, rationale: &str| Vote {
            role,
            score,
            vote: vote.into(),
            rationale: rationale.into(),
        };
        Consensus {
            score,
            decision: Decision::Approved,
            votes: vec![
                vote(Stage::Pm, None, "approve", "clear | scoped\nwell"),
                vote(Stage::Architect, Some(90.0), "approve", "sound"),
            ],
            held: Vec::new(),
        }
    }

    #[test]
    fn title_is_the_first_line_cut_to_72_characters() {
        let long = format!("{}\n\nbody", "é".repeat(100));
        assert_eq!(
            pr_title(&task(&long, &[])),
            format!("[Autonomous] {}", "é".repeat(72))
        );
        assert_eq!(
            pr_title(&task("  Add X  \nmore", &[])),
            "[Autonomous] Add X"
        );
        assert_eq!(branch_name(&task("x", &[])), "feature/task-phase1-001");
    }

    #[test]
    fn labels_follow_the_design() {
        let t = Thresholds::default();
        let safe = Chain {
            security: Some(security(false)),
            ..Chain::default()
        };
        let risky = Chain {
            security: Some(security(true)),
            ..Chain::default()
        };
        let task = task("x", &["phase-1", "autonomous"]);
        assert_eq!(
            labels(&task, &safe, &consensus(85.0), t),
            ["autonomous", "phase-1", "consensus-approved"]
        );
        assert_eq!(
            labels(&task, &risky, &consensus(85.0), t),
            [
                "autonomous",
                "phase-1",
                "consensus-approved",
                "security-review"
            ]
        );
    }

    #[test]
    fn commit_message_carries_the_trailers() {
        let message = commit_message(&task("Add X", &[]), &Chain::default(), &consensus(82.5));
        assert!(message.starts_with("[Autonomous] Add X\n\n"));
        assert!(
            message.ends_with("\n\nTask: phase1-001\nConsensus: 82.5%\n"),
            "{message}"
        );
    }

    #[test]
    fn body_has_the_score_the_votes_table_and_the_prd() {
        let chain = Chain {
            pm: Some(PmOutput {
                prd: "The PRD.".into(),
                acceptance_criteria: vec!["works".into()],
                vote: PmVote::Approve,
                rationale: "clear".into(),
            }),
            security: Some(security(false)),
            ..Chain::default()
        };
        let body = pr_body(
            &task("Add X", &[]),
            &chain,
            &consensus(82.5),
            Thresholds::default(),
            &["src/x.rs".into()],
        );
        assert!(body.contains("## Consensus: 82.5% (approve)"), "{body}");
        assert!(
            body.contains("| PM | – | approve | clear \\| scoped well |"),
            "{body}"
        );
        assert!(
            body.contains("| Architect | 90 | approve | sound |"),
            "{body}"
        );
        assert!(
            body.contains("## PRD\n\nThe PRD.") && body.contains("- works"),
            "{body}"
        );
        assert!(
            body.contains("- uses TLS") && body.contains("- `src/x.rs`"),
            "{body}"
        );
    }
}
