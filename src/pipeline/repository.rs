//! The pipeline's edges towards the target repository, as traits: [`Repository`] takes a
//! [`Snapshot`] — the base branch fetched once, at a known commit — that every read of a run
//! works from (listing, current files, the look-ups, the verification worktree);
//! [`Publishing`] pushes the task's branch on that commit, opens or adopts its PR and labels it.
//! A resumed run pins its snapshot at the base its recorded stages carry
//! ([`Repository::snapshot_at`]), so one task's stages and publish never mix bases.
//! [`GitRepository`] and [`super::Publisher`] implement them over the clone (git2, on blocking
//! threads) and GitHub.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::publish::{BranchCommit, DraftPr, PublishError, PublisherConfig};
use crate::git::{GitError, Listing, MergePreview, Repo};
use crate::github::{Posted, PullRequest};
use crate::task::{FileChange, LookupCall, LookupOutput, StageRecord};

/// Takes snapshots of the base branch.
#[async_trait]
pub trait Repository: Send + Sync {
    /// Fetches the base branch (BASE_BRANCH) once and returns a snapshot of it at the commit
    /// fetched. Errors: the fetch's (network, credentials, a base missing on origin).
    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>, PublishError>;

    /// A snapshot pinned at `commit` (hex SHA-1, as [`Snapshot::base`] gave it): the base a
    /// resumed run's recorded stages were produced on. It does not move to the newest base;
    /// the commit is fetched only when the clone lacks it.
    ///
    /// Errors: [`GitError::MissingCommit`] (in [`PublishError::Git`]) when the commit is no
    /// longer available (malformed, rewritten away, collected); a fetch's errors otherwise.
    async fn snapshot_at(&self, commit: &str) -> Result<Arc<dyn Snapshot>, PublishError>;
}

/// The base branch at one commit. Reads never fetch: two reads of a snapshot see the same tree.
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// The base commit, hex SHA-1.
    fn base(&self) -> &str;

    /// Tracked file paths at the base, sorted, at most `max_bytes` of paths (each counted with
    /// a newline), `truncated` when some were left out.
    async fn listing(&self, max_bytes: usize) -> Result<Listing, PublishError>;

    /// The repository map of the base ranked for the task's `text`, within `budget_tokens`
    /// (estimated; [`crate::repomap`]), built once per base tree and cached. `None`: this
    /// snapshot has no map, and the bare listing is shown. Errors: reading the base.
    async fn repo_map(
        &self,
        text: String,
        budget_tokens: usize,
    ) -> Result<Option<crate::repomap::Rendered>, PublishError> {
        let _ = (text, budget_tokens);
        Ok(None)
    }

    /// Content at the base of those `paths` that exist there as UTF-8 text files, each cut to
    /// `max_bytes` (followed by [`crate::git::TRUNCATION_MARKER`]); missing, binary and invalid
    /// paths are left out.
    async fn read_files(
        &self,
        paths: Vec<String>,
        max_bytes: usize,
    ) -> Result<Vec<FileChange>, PublishError>;

    /// Those of `paths` that are executable files (mode 100755) at the base.
    async fn executables(&self, paths: Vec<String>) -> Result<Vec<String>, PublishError>;

    /// Runs look-up `call` on the base's blobs, `written` (path → content a conversation wrote)
    /// shadowing them ([`crate::git::Repo::lookup`]). `Ok(Err(reason))`: a tool error for the
    /// model (a refused path, a missing file, a bad regex). Without an implementation every
    /// look-up is refused. Errors: reading the base.
    async fn lookup(
        &self,
        call: LookupCall,
        written: BTreeMap<String, String>,
    ) -> Result<Result<LookupOutput, String>, PublishError> {
        let _ = (call, written);
        Ok(Err("this snapshot answers no look-ups".into()))
    }

    /// Writes the base's tree with `files` applied into `dir` (an empty directory): a fresh
    /// worktree to verify the change in. Errors: a hostile path, before anything is written.
    async fn export(&self, files: Vec<FileChange>, dir: PathBuf) -> Result<(), PublishError>;
}

/// What a task's branch commits: the branch name, the files and the commit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchChange {
    /// `feature/task-<task_id>`.
    pub branch: String,
    /// Whole files, at least one.
    pub files: Vec<FileChange>,
    pub message: String,
}

/// Publishes a task's change, exactly once: a deterministic branch, an identical branch
/// already on origin reused, the open PR with the same head adopted; and later its revisions:
/// fast-forward commits on that branch (merges of the base among them) and the PR comments
/// that go with them.
#[async_trait]
pub trait Publishing: Send + Sync {
    /// True when nothing is pushed and no PR is opened (`run --dry-run`).
    fn is_dry_run(&self) -> bool;

    /// The branch PRs target (BASE_BRANCH).
    fn base_branch(&self) -> &str;

    /// `owner/name` of the fork holding the head branch (PUSH_REPOSITORY); `None`: the
    /// target repository itself.
    fn head_repository(&self) -> Option<&str> {
        None
    }

    /// Commits `change` as one commit whose parent is `base` (the snapshot's commit, the one
    /// the change was read, gated and verified on) and pushes it — unless origin already has
    /// the same tree on that base on the branch (a retried publish: reused, not pushed), or
    /// this is a dry run (committed locally only).
    async fn push_branch(
        &self,
        base: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError>;

    /// Opens `draft` as a PR, or adopts the open PR that already has its head branch, so a
    /// task never gets two. Returns the PR and whether it was created now. Errors:
    /// [`PublishError::DryRun`] in a dry run; GitHub's.
    async fn open_pull_request(&self, draft: &DraftPr)
    -> Result<(PullRequest, bool), PublishError>;

    /// Adds `labels` to PR `number` (idempotent). Errors: [`PublishError::DryRun`] in a dry
    /// run; GitHub's.
    async fn label(&self, number: u64, labels: &[String]) -> Result<(), PublishError>;

    /// Requests reviews of PR `number` from REVIEWERS and the task's own `task` reviewers
    /// (users, and `org/team` teams); nothing when there is none. Errors:
    /// [`PublishError::DryRun`] in a dry run; GitHub's.
    async fn request_reviewers(&self, number: u64, task: &[String]) -> Result<(), PublishError>;

    /// The push remote's tip of `branch` (hex), fetched into the clone so a snapshot can be
    /// pinned at it; `None` when the branch is gone. Errors: git's.
    async fn branch_tip(&self, branch: &str) -> Result<Option<String>, PublishError>;

    /// A revision's commit: `change` committed on `head` (the PR branch's tip the revision was
    /// built on) and pushed as a fast-forward while the branch is still at `head` — or the
    /// commit an earlier attempt pushed, reused. Errors: [`crate::git::GitError::PushRejected`]
    /// when the branch moved; [`PublishError::DryRun`] in a dry run.
    async fn push_revision(
        &self,
        head: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError>;

    /// Merges the base (fetched now) into commit `head`, the tip of `branch`, locally: `None`
    /// when `head` contains the base already. Errors: git's
    /// ([`crate::git::GitError::Conflict`] for a conflict no text resolution can fix).
    async fn merge_base(
        &self,
        head: &str,
        branch: &str,
    ) -> Result<Option<MergePreview>, PublishError>;

    /// Pushes merge commit `commit` to `branch` as a fast-forward of `head` (or finds it
    /// pushed). Errors: as [`Publishing::push_revision`].
    async fn push_merge(
        &self,
        branch: &str,
        head: &str,
        commit: &str,
    ) -> Result<BranchCommit, PublishError>;

    /// A conflict revision's commit: the merge `preview` (a [`MergePreview`]'s commit) with
    /// `change`'s resolved files, as a merge commit with its parents, pushed as a fast-forward
    /// of the branch's tip. Errors: [`crate::git::GitError::Conflict`] when a file still holds
    /// conflict markers; as [`Publishing::push_revision`].
    async fn push_resolved_merge(
        &self,
        preview: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError>;

    /// The notes of PR `number`'s conversation, to find what the daemon wrote already.
    /// Errors: [`PublishError::DryRun`] in a dry run; GitHub's.
    async fn conversation(&self, number: u64) -> Result<Vec<Posted>, PublishError>;

    /// Posts a comment on PR `number` (not idempotent). Errors: as [`Publishing::label`].
    async fn comment(&self, number: u64, body: &str) -> Result<(), PublishError>;

    /// Replies in the inline thread of review comment `comment_id` of PR `number` (not
    /// idempotent). Errors: as [`Publishing::label`].
    async fn reply(&self, number: u64, comment_id: u64, body: &str) -> Result<(), PublishError>;
}

/// The clone at REPO_PATH as a [`Repository`]. Cheap to clone.
#[derive(Clone)]
pub struct GitRepository {
    config: Arc<PublisherConfig>,
}

impl GitRepository {
    /// The clone and base branch of `config`.
    pub fn new(config: PublisherConfig) -> GitRepository {
        GitRepository {
            config: Arc::new(config),
        }
    }
}

#[async_trait]
impl Repository for GitRepository {
    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>, PublishError> {
        let base = with_repo(&self.config, None, Repo::fetch_base).await?;
        Ok(Arc::new(GitSnapshot {
            config: Arc::clone(&self.config),
            base,
        }))
    }

    async fn snapshot_at(&self, commit: &str) -> Result<Arc<dyn Snapshot>, PublishError> {
        let base = commit.to_ascii_lowercase();
        let sha = base.clone();
        with_repo(&self.config, None, move |repo| repo.fetch_commit(&sha)).await?;
        Ok(Arc::new(GitSnapshot {
            config: Arc::clone(&self.config),
            base,
        }))
    }
}

/// A [`Snapshot`] of the clone: every read opens it pinned at `base` ([`Repo::at_commit`]).
struct GitSnapshot {
    config: Arc<PublisherConfig>,
    base: String,
}

#[async_trait]
impl Snapshot for GitSnapshot {
    fn base(&self) -> &str {
        &self.base
    }

    async fn listing(&self, max_bytes: usize) -> Result<Listing, PublishError> {
        with_repo(&self.config, Some(&self.base), move |repo| {
            repo.list_files(max_bytes)
        })
        .await
    }

    async fn repo_map(
        &self,
        text: String,
        budget_tokens: usize,
    ) -> Result<Option<crate::repomap::Rendered>, PublishError> {
        with_repo(&self.config, Some(&self.base), move |repo| {
            repo.repo_map(&text, budget_tokens).map(Some)
        })
        .await
    }

    async fn read_files(
        &self,
        paths: Vec<String>,
        max_bytes: usize,
    ) -> Result<Vec<FileChange>, PublishError> {
        with_repo(&self.config, Some(&self.base), move |repo| {
            repo.read_files(&paths, max_bytes)
        })
        .await
    }

    async fn executables(&self, paths: Vec<String>) -> Result<Vec<String>, PublishError> {
        with_repo(&self.config, Some(&self.base), move |repo| {
            repo.executables(&paths)
        })
        .await
    }

    async fn lookup(
        &self,
        call: LookupCall,
        written: BTreeMap<String, String>,
    ) -> Result<Result<LookupOutput, String>, PublishError> {
        with_repo(&self.config, Some(&self.base), move |repo| {
            repo.lookup(&call, &written)
        })
        .await
    }

    async fn export(&self, files: Vec<FileChange>, dir: PathBuf) -> Result<(), PublishError> {
        with_repo(&self.config, Some(&self.base), move |repo| {
            repo.export(&files, &dir)
        })
        .await
    }
}

/// Runs a git operation on a blocking thread with the clone of `config` opened there, pinned at
/// `base` when given.
pub(super) async fn with_repo<T, F>(
    config: &Arc<PublisherConfig>,
    base: Option<&str>,
    op: F,
) -> Result<T, PublishError>
where
    T: Send + 'static,
    F: FnOnce(&Repo) -> Result<T, GitError> + Send + 'static,
{
    let config = Arc::clone(config);
    let base = base.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut repo = Repo::open(&config.repo_path, &config.base_branch, config.token.clone())?
            .with_push_url(config.push_url.clone());
        if let Some(base) = base {
            repo = repo.at_commit(&base)?;
        }
        op(&repo)
    })
    .await
    .map_err(|e| PublishError::Worker(e.to_string()))?
    .map_err(PublishError::from)
}

/// A run's snapshot, shared by all its reads and its publish: for a fresh run taken when the
/// run first needs the repository; for a resumed run, the base its recorded stages carry
/// ([`RunSnapshot::resume`]).
pub(super) struct RunSnapshot<'a> {
    repository: &'a dyn Repository,
    snapshot: OnceCell<Arc<dyn Snapshot>>,
}

impl<'a> RunSnapshot<'a> {
    /// A snapshot taken (one fetch of the newest base) on first use.
    pub(super) fn new(repository: &'a dyn Repository) -> RunSnapshot<'a> {
        RunSnapshot {
            repository,
            snapshot: OnceCell::new(),
        }
    }

    /// The run's snapshot given the stages recorded by earlier runs of the task (in pipeline
    /// order), and the records the run may reuse: a stage is reused only on the base it was
    /// produced on, so all stages and the publish of one task share one base commit.
    ///
    /// - No record carries a base (a fresh task, or records from before migration 0006): all
    ///   are reused and the snapshot is taken fresh on first use, as before bases were
    ///   recorded.
    /// - Otherwise the first recorded base is the run's: the snapshot is pinned at it
    ///   ([`Repository::snapshot_at`], taken now), and the records are reused up to the first
    ///   one recorded on another base (which should not happen; each stage's input holds the
    ///   earlier ones, so it and every later record are run again and replaced; logged). Records
    ///   without a base (made before 0006) are reused on any base.
    /// - The pinned commit is no longer available ([`GitError::MissingCommit`]): no record is
    ///   reused and the snapshot is taken fresh — every stage reads the repository, so every
    ///   stage runs again on the new base (logged) rather than mixing bases.
    ///
    /// Errors: [`Repository::snapshot_at`]'s other errors (network, credentials), transient:
    /// the run stops before any stage and is retried.
    pub(super) async fn resume(
        repository: &'a dyn Repository,
        mut records: Vec<StageRecord>,
    ) -> Result<(RunSnapshot<'a>, Vec<StageRecord>), PublishError> {
        let Some(base) = records.iter().find_map(|r| r.base_commit.clone()) else {
            return Ok((RunSnapshot::new(repository), records));
        };
        let on_base = |r: &StageRecord| r.base_commit.as_ref().is_none_or(|b| *b == base);
        if let Some(other) = records.iter().position(|r| !on_base(r)) {
            let record = &records[other];
            warn!(
                %base,
                stage = %record.stage,
                stage_base = record.base_commit.as_deref().unwrap_or_default(),
                "recorded stages disagree on the base commit: running this stage and the later \
                 ones again on the first stage's base"
            );
            records.truncate(other);
        }
        match repository.snapshot_at(&base).await {
            Ok(snapshot) => {
                info!(%base, "resuming on the recorded base commit");
                let run = RunSnapshot {
                    repository,
                    snapshot: OnceCell::new_with(Some(snapshot)),
                };
                Ok((run, records))
            }
            Err(PublishError::Git(GitError::MissingCommit(_))) => {
                warn!(
                    %base,
                    discarded = records.len(),
                    "the recorded base commit is no longer available: running every stage again \
                     on a fresh snapshot"
                );
                Ok((RunSnapshot::new(repository), Vec::new()))
            }
            Err(e) => Err(e),
        }
    }

    /// The run's snapshot, taken (one fetch) on first use.
    pub(super) async fn get(&self) -> Result<&dyn Snapshot, PublishError> {
        let snapshot = self
            .snapshot
            .get_or_try_init(|| self.repository.snapshot())
            .await?;
        Ok(snapshot.as_ref())
    }
}

/// A role's look-ups ([`crate::agents::Lookups`]) answered on a run's snapshot: at most `limit`
/// (MAX_LOOKUPS), reading the base's blobs with the files the conversation has written so far
/// ([`SnapshotLookups::set_written`]) shadowing them. A snapshot that cannot be read refuses the
/// look-up (logged); the role goes on without it.
pub(super) struct SnapshotLookups<'a> {
    snapshot: &'a dyn Snapshot,
    limit: u32,
    written: std::sync::Mutex<BTreeMap<String, String>>,
}

impl<'a> SnapshotLookups<'a> {
    /// Look-ups on `snapshot`, at most `limit` per role, nothing written yet.
    pub(super) fn new(snapshot: &'a dyn Snapshot, limit: u32) -> SnapshotLookups<'a> {
        SnapshotLookups {
            snapshot,
            limit,
            written: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The files the conversation has written (path → whole content), read instead of the
    /// base's from now on.
    pub(super) fn set_written(&self, written: &BTreeMap<String, String>) {
        *self.written.lock().unwrap_or_else(|e| e.into_inner()) = written.clone();
    }
}

#[async_trait]
impl crate::agents::Lookups for SnapshotLookups<'_> {
    fn limit(&self) -> u32 {
        self.limit
    }

    async fn run(&self, call: &LookupCall) -> Result<LookupOutput, String> {
        let written = self
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match self.snapshot.lookup(call.clone(), written).await {
            Ok(answer) => answer,
            Err(error) => {
                warn!(%error, "a look-up could not read the base");
                Err(format!("the repository could not be read: {error}"))
            }
        }
    }
}
