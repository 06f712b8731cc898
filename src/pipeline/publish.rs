//! Publish: the approved task becomes the branch `feature/task-<task_id>`, one commit built on
//! the run's snapshot of `origin/BASE_BRANCH` (git layer), and a labelled pull request (GitHub
//! layer); the commit message, PR title, body and labels; [`Publisher`], the git and GitHub
//! implementation of [`Publishing`].

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use super::repository::{BranchChange, Publishing, with_repo};
use crate::agents::Chain;
use crate::consensus::{self, Consensus, Thresholds};
use crate::git::{GitError, MergePreview, Pushed, Repo};
use crate::github::{GitHub, GitHubError, NewPullRequest, Posted, PullRequest};
use crate::task::{FileChange, Stage, Task};

pub use crate::task::{BranchCommit, DraftPr};

/// Longest PR title text after the `[Autonomous] ` prefix (72 characters: what git tooling and GitHub show untruncated).
const TITLE_MAX_CHARS: usize = 72;

/// The clone the daemon reads and publishes from.
#[derive(Clone)]
pub struct PublisherConfig {
    /// Local clone of the target repository (REPO_PATH).
    pub repo_path: PathBuf,
    /// Branch PRs target (BASE_BRANCH).
    pub base_branch: String,
    /// GITHUB_TOKEN, for fetch and push over https.
    pub token: Option<SecretString>,
    /// Clone URL of the fork task branches are pushed to (PUSH_REPOSITORY); `None`: origin.
    pub push_url: Option<String>,
    /// `owner/name` of that fork, as PR heads name it (`<owner>:<branch>`); `None`: origin.
    pub head_repository: Option<String>,
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

/// Publishes approved tasks: the clone at REPO_PATH (git2, on blocking threads) and GitHub.
/// Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    config: Arc<PublisherConfig>,
    /// `None` in a dry run: nothing is pushed and no PR is opened.
    github: Option<Arc<GitHub>>,
    /// REVIEWERS: users, and teams as `org/team`.
    reviewers: Arc<Vec<String>>,
}

impl Publisher {
    /// A publisher for the clone and base branch in `config`; `github: None` makes a dry-run
    /// publisher (commits locally, pushes nothing, opens no PR).
    pub fn new(config: PublisherConfig, github: Option<Arc<GitHub>>) -> Publisher {
        Publisher {
            config: Arc::new(config),
            github,
            reviewers: Arc::new(Vec::new()),
        }
    }

    /// The same publisher requesting reviews of every PR it opens from `reviewers` (REVIEWERS:
    /// a login, or `org/team` for a team of the repository's organisation).
    pub fn with_reviewers(mut self, reviewers: Vec<String>) -> Publisher {
        self.reviewers = Arc::new(reviewers);
        self
    }
}

#[async_trait]
impl Publishing for Publisher {
    fn is_dry_run(&self) -> bool {
        self.github.is_none()
    }

    fn base_branch(&self) -> &str {
        &self.config.base_branch
    }

    fn head_repository(&self) -> Option<&str> {
        self.config.head_repository.as_deref()
    }

    /// The clone is pinned at `base` ([`crate::git::Repo::at_commit`]): the branch is built on the commit
    /// the change was verified on, and [`crate::git::Repo::publish_branch`] compares origin's branch with
    /// that same base, so a retried publish of a change verified on the same base reuses the
    /// pushed commit.
    async fn push_branch(
        &self,
        base: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError> {
        let BranchChange {
            branch,
            files,
            message,
        } = change;
        let dry_run = self.is_dry_run();
        with_repo(&self.config, Some(base), move |repo| {
            if dry_run {
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

    async fn open_pull_request(
        &self,
        draft: &DraftPr,
    ) -> Result<(PullRequest, bool), PublishError> {
        let github = self.github()?;
        let pr = NewPullRequest {
            title: draft.title.clone(),
            head: draft.head.clone(),
            base: draft.base.clone(),
            body: draft.body.clone(),
        };
        Ok(github.ensure_pull_request(&pr).await?)
    }

    async fn label(&self, number: u64, labels: &[String]) -> Result<(), PublishError> {
        Ok(self.github()?.add_labels(number, labels).await?)
    }

    async fn request_reviewers(&self, number: u64, task: &[String]) -> Result<(), PublishError> {
        let mut reviewers: Vec<&String> = self.reviewers.iter().collect();
        reviewers.extend(task.iter().filter(|r| !self.reviewers.contains(r)));
        if reviewers.is_empty() {
            return Ok(());
        }
        let (teams, users): (Vec<&String>, Vec<&String>) =
            reviewers.into_iter().partition(|r| r.contains('/'));
        let users: Vec<String> = users.into_iter().cloned().collect();
        let teams: Vec<String> = teams
            .into_iter()
            .filter_map(|t| t.split_once('/').map(|(_, slug)| slug.to_owned()))
            .collect();
        Ok(self
            .github()?
            .request_reviewers(number, &users, &teams)
            .await?)
    }

    async fn branch_tip(&self, branch: &str) -> Result<Option<String>, PublishError> {
        let branch = branch.to_owned();
        with_repo(&self.config, None, move |repo| repo.fetch_branch(&branch)).await
    }

    async fn push_revision(
        &self,
        head: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError> {
        self.push_pinned(head, change, Repo::push_revision).await
    }

    async fn merge_base(
        &self,
        head: &str,
        branch: &str,
    ) -> Result<Option<MergePreview>, PublishError> {
        let (head, branch) = (head.to_owned(), branch.to_owned());
        with_repo(&self.config, None, move |repo| {
            repo.merge_base_into(&head, &branch)
        })
        .await
    }

    async fn push_merge(
        &self,
        branch: &str,
        head: &str,
        commit: &str,
    ) -> Result<BranchCommit, PublishError> {
        self.github()?;
        let (branch, head, commit) = (branch.to_owned(), head.to_owned(), commit.to_owned());
        with_repo(&self.config, None, move |repo| {
            Ok(pushed(repo.push_merge(&branch, &head, &commit)?))
        })
        .await
    }

    async fn push_resolved_merge(
        &self,
        preview: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError> {
        self.push_pinned(preview, change, Repo::push_resolved_merge)
            .await
    }

    async fn conversation(&self, number: u64) -> Result<Vec<Posted>, PublishError> {
        Ok(self.github()?.conversation(number).await?)
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), PublishError> {
        self.github()?.comment(number, body).await?;
        Ok(())
    }

    async fn reply(&self, number: u64, comment_id: u64, body: &str) -> Result<(), PublishError> {
        self.github()?.reply(number, comment_id, body).await?;
        Ok(())
    }
}

/// What a push to the remote made of `branch`.
fn pushed(push: Pushed) -> BranchCommit {
    BranchCommit {
        branch: push.branch,
        commit: push.commit,
        pushed: true,
        reused: push.reused,
    }
}

impl Publisher {
    /// `change` pushed by `push` (a revision's commit, or a resolved merge) with the clone
    /// pinned at `commit`; [`PublishError::DryRun`] in a dry run.
    async fn push_pinned(
        &self,
        commit: &str,
        change: BranchChange,
        push: fn(&Repo, &str, &[FileChange], &str) -> Result<Pushed, GitError>,
    ) -> Result<BranchCommit, PublishError> {
        self.github()?;
        let BranchChange {
            branch,
            files,
            message,
        } = change;
        with_repo(&self.config, Some(commit), move |repo| {
            Ok(pushed(push(repo, &branch, &files, &message)?))
        })
        .await
    }

    /// The GitHub client; [`PublishError::DryRun`] in a dry run.
    fn github(&self) -> Result<&GitHub, PublishError> {
        self.github.as_deref().ok_or(PublishError::DryRun)
    }
}

/// The PR `task` asks for (title, head, base, body, labels — `repo_labels` from the
/// repository's `.autonomous-dev.toml` among them), against branch `base`, from the fork
/// `head_repository` (`owner/name`) when there is one.
pub fn draft(
    task: &Task,
    chain: &Chain,
    consensus: &Consensus,
    thresholds: Thresholds,
    (base, head_repository): (&str, Option<&str>),
    repo_labels: &[String],
) -> DraftPr {
    DraftPr {
        title: pr_title(task),
        head: branch_name(task),
        head_repository: head_repository.map(str::to_owned),
        base: base.to_owned(),
        body: pr_body(task, chain, consensus, thresholds, &files_list(chain)),
        labels: labels(task, chain, consensus, thresholds, repo_labels),
    }
}

/// What the task's branch commits: the Engineer's files and QA's test files on
/// `feature/task-<task_id>`, with [`commit_message`]. Errors: [`PublishError::Empty`] when
/// there is no file to write.
pub fn branch_change(
    task: &Task,
    chain: &Chain,
    consensus: &Consensus,
) -> Result<BranchChange, PublishError> {
    let files = chain.files_to_write();
    if files.is_empty() {
        return Err(PublishError::Empty);
    }
    Ok(BranchChange {
        branch: branch_name(task),
        files,
        message: commit_message(task, chain, consensus),
    })
}

/// The deterministic branch of a task: `feature/task-<task_id>`: one name per task, so a retried publish finds its own branch.
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
/// `Task: <task_id>` and `Consensus: 82.50%` (the score as [`consensus::score_text`] shows it:
/// two decimals, truncated; the thresholds are not at hand here, so the guard for thresholds
/// finer than hundredths does not apply to the trailer).
pub fn commit_message(task: &Task, chain: &Chain, consensus: &Consensus) -> String {
    let summary = chain
        .engineer
        .as_ref()
        .map(|e| e.summary.trim())
        .unwrap_or_default();
    format!(
        "{}\n\n{summary}\n\nTask: {}\nConsensus: {}%\n",
        pr_title(task),
        task.task_id,
        consensus::score_text(consensus.score, None)
    )
}

/// PR labels: `autonomous`, the task's labels, the repository's (`repo_labels`, its
/// `.autonomous-dev.toml`), `consensus-approved` (score ≥ the approve threshold),
/// `human-approved` (a person approved it, [`Task::approved_by`]), `security-review` (Security
/// score < 80), and `security-review` also when the gates saw CI/automation or dependency
/// changes; each once.
pub fn labels(
    task: &Task,
    chain: &Chain,
    consensus: &Consensus,
    thresholds: Thresholds,
    repo_labels: &[String],
) -> Vec<String> {
    let mut labels = vec!["autonomous".to_owned()];
    labels.extend(task.labels.iter().cloned());
    labels.extend(repo_labels.iter().cloned());
    if consensus.score >= thresholds.approve {
        labels.push("consensus-approved".into());
    }
    if task.approved_by.is_some() {
        labels.push("human-approved".into());
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

/// The PR body, Markdown: who approved it when a person did ([`Task::approved_by`]) and what
/// had held it, consensus score (as [`consensus::score_text`] shows it against `thresholds`)
/// and the thresholds themselves (in full, e.g. `80%`, `72.5%`), a table of votes (role, score,
/// rationale), the verification (command, result, repair rounds, output tail), the gates, the
/// PRD, the architecture summary, security findings and the files changed.
pub fn pr_body(
    task: &Task,
    chain: &Chain,
    consensus: &Consensus,
    thresholds: Thresholds,
    files: &[String],
) -> String {
    let mut body = format!(
        "Opened by **autonomous-dev** for task `{}`.\n\n",
        task.task_id
    );
    if let Some(issue) = task.issue_number {
        // GitHub closes the issue when the PR is merged into the default branch.
        body.push_str(&format!("Closes #{issue}.\n\n"));
    }
    if let Some(by) = &task.approved_by {
        let mut why = Vec::new();
        if consensus.score < thresholds.approve {
            why.push(format!(
                "its score is below the approve threshold of {}%",
                thresholds.approve
            ));
        }
        why.extend(consensus.held.iter().cloned());
        body.push_str(&format!(
            "## Approved by a person\n\n`{}` approved this change with `tasks approve`; \
             consensus had left it for review: {}.\n\n",
            by.replace('`', "'"),
            table_cell(&why.join("; "))
        ));
    }
    body.push_str(&format!(
        "## Consensus: {}% ({})\n\nApprove threshold {}%, review threshold {}%.\n\n\
         | Role | Score | Vote | Rationale |\n|---|---|---|---|\n",
        consensus::score_text(consensus.score, Some(thresholds)),
        consensus::verdict(consensus.score, thresholds),
        thresholds.approve,
        thresholds.conditional,
    ));
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
pub(super) fn table_cell(text: &str) -> String {
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
            approved_by: None,
            pr_state: None,
            pr_state_at: None,
            issue_number: None,
            reviewers: vec![],
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
            labels(&task, &safe, &consensus(85.0), t, &[]),
            ["autonomous", "phase-1", "consensus-approved"]
        );
        assert_eq!(
            labels(&task, &risky, &consensus(85.0), t, &[]),
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
            message.ends_with("\n\nTask: phase1-001\nConsensus: 82.50%\n"),
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
        assert!(body.contains("## Consensus: 82.50% (approve)"), "{body}");
        assert!(
            body.contains("Approve threshold 80%, review threshold 60%."),
            "{body}"
        );
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
