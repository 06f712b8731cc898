//! The pipeline's state machine in process, without the daemon binary: the real [`Pipeline`]
//! over a real [`Store`] (PostgreSQL, `#[sqlx::test]`), a scripted in-process
//! [`Provider`] that records which tools it was asked for (and can act on the task while a
//! call is in flight), and an in-memory repository edge that counts snapshots and records what
//! is published. Covered: resume from each stage, resume on the recorded base commit (on a
//! fresh one when records carry none or the recorded commit is gone; from the first record on
//! another base when they disagree), cancellation and shutdown at a stage
//! boundary, a PM reject, and a lease lost while a stage's model call is in flight.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use autonomous_dev::consensus::Thresholds;
use autonomous_dev::cost::PriceTable;
use autonomous_dev::gates::GateConfig;
use autonomous_dev::git::{GitError, Listing};
use autonomous_dev::github::PullRequest;
use autonomous_dev::llm::{LlmError, Provider, ToolCall, ToolRequest};
use autonomous_dev::pipeline::{
    BranchChange, BranchCommit, Budget, DraftPr, Ended, Pipeline, PipelineError, PipelineSettings,
    PublishError, Publishing, Repository, RetryPolicy, RoleModel, Roles, Snapshot,
};
use autonomous_dev::shutdown::Shutdown;
use autonomous_dev::store::{Lease, Store, StoreError};
use autonomous_dev::task::{FileChange, NewTask, Stage, StageRecord, Task, TaskStatus, Usage};
use common::Script;

/// A model every role's price table knows.
const MODEL: &str = "claude-sonnet-4-5";
/// Lease of the claims made here: zero, and never renewed (no daemon heartbeat runs), so it
/// has expired by the time a stage runs and a second claim can take the task over. Fenced
/// writes still succeed until someone does (the fence is the token, not the clock).
const LEASE: Duration = Duration::ZERO;

/// The tool each stage's role is forced to call, in pipeline order.
const TOOLS: [&str; 5] = [
    "submit_prd",
    "submit_design",
    "submit_implementation",
    "submit_review",
    "submit_security_review",
];

/// What the scripted model does to the task while one tool's call is in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum During {
    /// A person asks to cancel the task.
    Cancel,
    /// Another worker claims the task, whose lease has expired (its fencing token moves on).
    Reclaim,
    /// SIGTERM: the daemon's shutdown is triggered.
    Shutdown,
}

/// An in-process model answering every tool as `common::answer` scripts it, recording the
/// tools asked in order.
struct ScriptedProvider {
    script: Script,
    asked: Mutex<Vec<String>>,
    /// `(tool, what)`: do `what` when `tool` is asked, before answering.
    during: Option<(&'static str, During)>,
    store: Store,
    /// The lease the reclaiming worker got.
    reclaimed: Mutex<Option<Lease>>,
    /// The shutdown the run is given.
    shutdown: Shutdown,
}

impl ScriptedProvider {
    fn new(store: &Store, script: Script) -> ScriptedProvider {
        ScriptedProvider {
            script,
            asked: Mutex::default(),
            during: None,
            store: store.clone(),
            reclaimed: Mutex::default(),
            shutdown: Shutdown::new(Duration::ZERO),
        }
    }

    fn during(mut self, tool: &'static str, what: During) -> ScriptedProvider {
        self.during = Some((tool, what));
        self
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Provider for ScriptedProvider {
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError> {
        let tool = request.tool_choice.clone();
        self.asked.lock().unwrap().push(tool.clone());
        if let Some((at, what)) = self.during
            && at == tool
        {
            match what {
                During::Cancel => {
                    self.store.cancel(TASK_ID).await.expect("cancel");
                }
                During::Shutdown => self.shutdown.trigger(),
                During::Reclaim => {
                    let (_, lease) = self
                        .store
                        .claim_next("other-worker", Duration::from_secs(600))
                        .await
                        .expect("claim")
                        .expect("the expired lease is claimable");
                    *self.reclaimed.lock().unwrap() = Some(lease);
                }
            }
        }
        Ok(ToolCall {
            id: format!("call_{}", self.asked.lock().unwrap().len()),
            name: tool.clone(),
            input: common::answer(&tool, TASK_ID, self.script),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 50,
                ..Usage::default()
            },
        })
    }
}

/// The base branch in memory; counts the snapshots taken and records the commits
/// `snapshot_at` was asked for.
struct FakeRepository {
    files: BTreeMap<String, String>,
    snapshots: Mutex<usize>,
    pinned_at: Mutex<Vec<String>>,
}

/// The files at `base` ([`BASE`] for a fresh snapshot, the asked commit for a pinned one).
struct FakeSnapshot {
    files: BTreeMap<String, String>,
    base: String,
}

const BASE: &str = "0123456789abcdef0123456789abcdef01234567";

#[async_trait]
impl Repository for FakeRepository {
    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>, PublishError> {
        *self.snapshots.lock().unwrap() += 1;
        Ok(Arc::new(FakeSnapshot {
            files: self.files.clone(),
            base: BASE.to_owned(),
        }))
    }

    /// [`GONE`] is not available (as [`autonomous_dev::git::Repo::fetch_commit`] answers).
    async fn snapshot_at(&self, commit: &str) -> Result<Arc<dyn Snapshot>, PublishError> {
        self.pinned_at.lock().unwrap().push(commit.to_owned());
        if commit == GONE {
            return Err(PublishError::Git(GitError::MissingCommit(
                commit.to_owned(),
            )));
        }
        *self.snapshots.lock().unwrap() += 1;
        Ok(Arc::new(FakeSnapshot {
            files: self.files.clone(),
            base: commit.to_owned(),
        }))
    }
}

#[async_trait]
impl Snapshot for FakeSnapshot {
    fn base(&self) -> &str {
        &self.base
    }

    async fn listing(&self, _max_bytes: usize) -> Result<Listing, PublishError> {
        Ok(Listing {
            paths: self.files.keys().cloned().collect(),
            truncated: false,
        })
    }

    async fn read_files(
        &self,
        paths: Vec<String>,
        _max_bytes: usize,
    ) -> Result<Vec<FileChange>, PublishError> {
        Ok(paths
            .into_iter()
            .filter_map(|path| {
                let content = self.files.get(&path)?.clone();
                Some(FileChange { path, content })
            })
            .collect())
    }

    async fn executables(&self, _paths: Vec<String>) -> Result<Vec<String>, PublishError> {
        Ok(Vec::new()) // The in-memory base has no file modes: nothing is executable.
    }

    async fn export(&self, _files: Vec<FileChange>, _dir: PathBuf) -> Result<(), PublishError> {
        unreachable!("verification is off in these tests")
    }
}

/// Records the branches pushed (with their base) and the PRs opened.
#[derive(Default)]
struct FakePublishing {
    pushed: Mutex<Vec<(String, BranchChange)>>,
    opened: Mutex<Vec<DraftPr>>,
}

#[async_trait]
impl Publishing for FakePublishing {
    fn is_dry_run(&self) -> bool {
        false
    }

    fn base_branch(&self) -> &str {
        "main"
    }

    async fn push_branch(
        &self,
        base: &str,
        change: BranchChange,
    ) -> Result<BranchCommit, PublishError> {
        let branch = change.branch.clone();
        self.pushed.lock().unwrap().push((base.to_owned(), change));
        Ok(BranchCommit {
            branch,
            commit: "f".repeat(40),
            pushed: true,
            reused: false,
        })
    }

    async fn open_pull_request(
        &self,
        draft: &DraftPr,
    ) -> Result<(PullRequest, bool), PublishError> {
        self.opened.lock().unwrap().push(draft.clone());
        Ok((
            PullRequest {
                number: 7,
                url: "https://github.test/o/r/pull/7".into(),
            },
            true,
        ))
    }

    async fn label(&self, _number: u64, _labels: &[String]) -> Result<(), PublishError> {
        Ok(())
    }

    async fn request_reviewers(&self, _number: u64, _task: &[String]) -> Result<(), PublishError> {
        Ok(())
    }

    // Revisions are tested through the binary (tests/it/revision.rs); these runs make none.
    async fn branch_tip(&self, _branch: &str) -> Result<Option<String>, PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn push_revision(
        &self,
        _head: &str,
        _change: BranchChange,
    ) -> Result<BranchCommit, PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn merge_base(
        &self,
        _head: &str,
        _branch: &str,
    ) -> Result<Option<autonomous_dev::git::MergePreview>, PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn push_merge(
        &self,
        _branch: &str,
        _head: &str,
        _commit: &str,
    ) -> Result<BranchCommit, PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn push_resolved_merge(
        &self,
        _preview: &str,
        _change: BranchChange,
    ) -> Result<BranchCommit, PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn conversation(
        &self,
        _number: u64,
    ) -> Result<Vec<autonomous_dev::github::Posted>, PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn comment(&self, _number: u64, _body: &str) -> Result<(), PublishError> {
        unreachable!("no revision in these tests")
    }

    async fn reply(&self, _number: u64, _id: u64, _body: &str) -> Result<(), PublishError> {
        unreachable!("no revision in these tests")
    }
}

const TASK_ID: &str = "phase1-001";

/// A pipeline over `store`, every role answered by `provider`, reading `repository` and
/// publishing to `publishing`; verification off, one repair round.
fn pipeline(
    store: &Store,
    provider: &Arc<ScriptedProvider>,
    repository: &Arc<FakeRepository>,
    publishing: &Arc<FakePublishing>,
) -> Pipeline {
    let roles = Roles::new(|_| RoleModel {
        provider: Arc::clone(provider) as Arc<dyn Provider>,
        model: MODEL.into(),
    });
    Pipeline::new(
        Arc::new(store.clone()),
        roles,
        Arc::clone(repository) as Arc<dyn Repository>,
        Arc::clone(publishing) as Arc<dyn Publishing>,
        PipelineSettings {
            thresholds: Thresholds {
                approve: 80.0,
                conditional: 60.0,
            },
            retry: RetryPolicy::default(),
            budget: Budget {
                prices: PriceTable::anthropic(),
                max_task_usd: 2.0,
                daily_usd: None,
            },
            gates: GateConfig {
                max_file_bytes: 1024 * 1024,
                max_files_changed: 50,
                allow_workflow_changes: false,
                own_secrets: Default::default(),
            },
            // Not verified, and published all the same: the state machine is under test here.
            verifier: None,
            verify_optional: true,
            repair_rounds: 1,
            repo_map_tokens: 4096,
            max_lookups: 8,
        },
    )
}

fn repository() -> Arc<FakeRepository> {
    Arc::new(FakeRepository {
        files: BTreeMap::from([("README.md".to_owned(), "# Target\n".to_owned())]),
        snapshots: Mutex::default(),
        pinned_at: Mutex::default(),
    })
}

/// Adds task `task_id` and claims it under a [`LEASE`]-long lease.
async fn claimed(store: &Store, task_id: &str) -> (Task, Lease) {
    store
        .add_task(&NewTask {
            task_id: task_id.into(),
            description: "Write the docs".into(),
            priority: 0,
            labels: vec![],
            depends_on: vec![],
            reviewers: vec![],
        })
        .await
        .expect("add");
    store
        .claim_next("worker", LEASE)
        .await
        .expect("claim")
        .expect("claimable")
}

async fn status(store: &Store, task_id: &str) -> Task {
    store.get_task(task_id).await.expect("get").expect("exists")
}

/// Every stage record of an approved run of [`TASK_ID`], made by running the pipeline once on
/// a scratch task with the same task_id-derived answers.
async fn approved_records(store: &Store) -> Vec<StageRecord> {
    let provider = Arc::new(ScriptedProvider::new(store, Script::Approve));
    let (task, lease) = claimed(store, "scratch").await;
    let ended = pipeline(
        store,
        &provider,
        &repository(),
        &Arc::new(FakePublishing::default()),
    )
    .run(&task, &lease, &provider.shutdown)
    .await
    .expect("run");
    assert_eq!(ended, Ended::Finished(TaskStatus::Completed));
    let records = store.stages(task.id).await.expect("stages");
    assert_eq!(records.len(), 5);
    records
}

#[sqlx::test]
async fn a_resumed_task_asks_only_the_stages_not_recorded(pool: PgPool) {
    let store = Store::from_pool(pool);
    let records = approved_records(&store).await;
    for recorded in 0..=5 {
        let task_id = format!("{TASK_ID}-resume-{recorded}");
        let (task, lease) = claimed(&store, &task_id).await;
        for record in &records[..recorded] {
            store.save_stage(&lease, record).await.expect("save");
        }
        let provider = Arc::new(ScriptedProvider::new(&store, Script::Approve));
        let (repository, publishing) = (repository(), Arc::new(FakePublishing::default()));
        let ended = pipeline(&store, &provider, &repository, &publishing)
            .run(&task, &lease, &provider.shutdown)
            .await
            .expect("run");

        assert_eq!(ended, Ended::Finished(TaskStatus::Completed), "{recorded}");
        assert_eq!(
            provider.asked(),
            TOOLS[recorded..],
            "resumed after {recorded}"
        );
        assert_eq!(store.stages(task.id).await.expect("stages").len(), 5);
        let done = status(&store, &task_id).await;
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(
            done.pr_url.as_deref(),
            Some("https://github.test/o/r/pull/7")
        );
        // One snapshot per run, taken for the first stage or (all recorded) for the publish;
        // the branch is built on its base commit.
        assert_eq!(*repository.snapshots.lock().unwrap(), 1, "{recorded}");
        let pushed = publishing.pushed.lock().unwrap();
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].0, BASE);
        assert_eq!(pushed[0].1.branch, format!("feature/task-{task_id}"));
        assert_eq!(publishing.opened.lock().unwrap().len(), 1);
    }
}

#[sqlx::test]
async fn a_cancellation_requested_during_a_stage_stops_at_the_next_boundary(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (task, lease) = claimed(&store, TASK_ID).await;
    let provider = Arc::new(
        ScriptedProvider::new(&store, Script::Approve).during("submit_design", During::Cancel),
    );
    let publishing = Arc::new(FakePublishing::default());
    let ended = pipeline(&store, &provider, &repository(), &publishing)
        .run(&task, &lease, &provider.shutdown)
        .await
        .expect("run");

    assert_eq!(ended, Ended::Finished(TaskStatus::Cancelled));
    assert_eq!(provider.asked(), ["submit_prd", "submit_design"]);
    // The stage in flight is kept; nothing after it ran or was published.
    let stages: Vec<Stage> = store
        .stages(task.id)
        .await
        .expect("stages")
        .iter()
        .map(|r| r.stage)
        .collect();
    assert_eq!(stages, [Stage::Pm, Stage::Architect]);
    assert_eq!(status(&store, TASK_ID).await.status, TaskStatus::Cancelled);
    assert!(publishing.pushed.lock().unwrap().is_empty());
}

#[sqlx::test]
async fn a_pm_reject_fails_the_task_and_asks_nobody_else(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (task, lease) = claimed(&store, TASK_ID).await;
    let provider = Arc::new(ScriptedProvider::new(&store, Script::PmReject));
    let publishing = Arc::new(FakePublishing::default());
    let ended = pipeline(&store, &provider, &repository(), &publishing)
        .run(&task, &lease, &provider.shutdown)
        .await
        .expect("run");

    assert_eq!(ended, Ended::Finished(TaskStatus::Failed));
    assert_eq!(provider.asked(), ["submit_prd"]);
    let done = status(&store, TASK_ID).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(done.error.is_some(), "a failed task says why");
    assert_eq!(store.stages(task.id).await.expect("stages").len(), 1);
    assert!(publishing.pushed.lock().unwrap().is_empty());
    assert!(publishing.opened.lock().unwrap().is_empty());
}

#[sqlx::test]
async fn a_lease_lost_during_a_stage_stops_the_run_without_writing(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (task, lease) = claimed(&store, TASK_ID).await;
    let provider = Arc::new(
        ScriptedProvider::new(&store, Script::Approve)
            .during("submit_implementation", During::Reclaim),
    );
    let publishing = Arc::new(FakePublishing::default());
    let result = pipeline(&store, &provider, &repository(), &publishing)
        .run(&task, &lease, &provider.shutdown)
        .await;

    assert!(
        matches!(result, Err(PipelineError::Store(StoreError::LeaseLost(_)))),
        "{result:?}"
    );
    assert_eq!(
        provider.asked(),
        ["submit_prd", "submit_design", "submit_implementation"]
    );
    // The Engineer's answer was not recorded; the task belongs to the other worker, untouched.
    let reclaimed = provider
        .reclaimed
        .lock()
        .unwrap()
        .clone()
        .expect("reclaimed");
    assert!(reclaimed.token > lease.token);
    assert_eq!(store.stages(task.id).await.expect("stages").len(), 2);
    let now = status(&store, TASK_ID).await;
    assert_eq!(now.status, TaskStatus::InProgress);
    assert_eq!(now.queue.fencing_token, reclaimed.token);
    assert_eq!(now.queue.locked_by.as_deref(), Some("other-worker"));
    assert_eq!(now.error, None);
    assert!(publishing.pushed.lock().unwrap().is_empty());
}

#[sqlx::test]
async fn a_shutdown_during_a_stage_keeps_it_and_stops_at_the_next_boundary(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (task, lease) = claimed(&store, TASK_ID).await;
    let provider = Arc::new(
        ScriptedProvider::new(&store, Script::Approve).during("submit_design", During::Shutdown),
    );
    let publishing = Arc::new(FakePublishing::default());
    let result = pipeline(&store, &provider, &repository(), &publishing)
        .run(&task, &lease, &provider.shutdown)
        .await;

    assert!(
        matches!(result, Err(PipelineError::Interrupted)),
        "{result:?}"
    );
    assert_eq!(provider.asked(), ["submit_prd", "submit_design"]);
    assert_eq!(store.stages(task.id).await.expect("stages").len(), 2);
    // Still in_progress under this lease: releasing it is the daemon's part.
    let now = status(&store, TASK_ID).await;
    assert_eq!(now.status, TaskStatus::InProgress);
    assert_eq!(now.queue.fencing_token, lease.token);
    assert!(publishing.pushed.lock().unwrap().is_empty());
}

/// A stage record rewritten after the Security stage (by anything that can write the
/// database) never reaches the remote: the publish checks the files against the blob ids
/// recorded with the gates, and gates them again.
#[sqlx::test]
async fn a_change_rewritten_after_the_gates_is_not_published(pool: PgPool) {
    let store = Store::from_pool(pool);
    let records = approved_records(&store).await;
    let engineer = Stage::Engineer as usize;
    let workflow = serde_json::json!([{
        "path": ".github/workflows/x.yml",
        "content": "on: push\njobs: {}\n",
    }]);
    // (task, tampered records, status, error or held reason it must name)
    let mut rewritten = records.clone();
    rewritten[engineer].output["files"] = workflow.clone();
    // Evidence recorded before blob ids were kept: only the gates run again.
    let mut old_evidence = rewritten.clone();
    let security = Stage::Security as usize;
    let evidence = old_evidence[security].evidence.as_mut().expect("evidence");
    evidence.as_object_mut().unwrap().remove("files");
    let cases = [
        (
            "rewritten",
            rewritten,
            TaskStatus::Failed,
            "not the one gated and verified",
        ),
        (
            "old-evidence",
            old_evidence,
            TaskStatus::NeedsReview,
            "workflow",
        ),
    ];
    for (name, records, expected, why) in cases {
        let task_id = format!("{TASK_ID}-{name}");
        let (task, lease) = claimed(&store, &task_id).await;
        for record in &records {
            store.save_stage(&lease, record).await.expect("save");
        }
        let provider = Arc::new(ScriptedProvider::new(&store, Script::Approve));
        let (repository, publishing) = (repository(), Arc::new(FakePublishing::default()));
        pipeline(&store, &provider, &repository, &publishing)
            .run(&task, &lease, &provider.shutdown)
            .await
            .expect("run");

        let done = status(&store, &task_id).await;
        assert_eq!(done.status, expected, "{name}: {done:?}");
        let said = format!("{:?} {:?}", done.error, done.result);
        assert!(said.contains(why), "{name}: {said}");
        assert!(publishing.pushed.lock().unwrap().is_empty(), "{name}");
        assert!(provider.asked().is_empty(), "{name}");
    }
}

/// A base commit older than [`BASE`] (the newest), recorded by an earlier run.
const OLD: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// A base commit recorded by an earlier run that origin no longer has (rewritten history).
const GONE: &str = "dead0000dead0000dead0000dead0000dead0000";

/// Runs [`TASK_ID`] to completion with its first three stages recorded (by an earlier run) on
/// `bases`. Returns the repository and publishing edges, the tools asked (in order) and each
/// stage's recorded base, in pipeline order.
async fn resume_after_three_on(
    store: &Store,
    bases: [Option<&str>; 3],
) -> (
    Arc<FakeRepository>,
    Arc<FakePublishing>,
    Vec<String>,
    Vec<Option<String>>,
) {
    let records = approved_records(store).await;
    let (task, lease) = claimed(store, TASK_ID).await;
    for (record, base) in records[..3].iter().zip(bases) {
        let mut record = record.clone();
        record.base_commit = base.map(str::to_owned);
        store.save_stage(&lease, &record).await.expect("save");
    }
    let provider = Arc::new(ScriptedProvider::new(store, Script::Approve));
    let (repository, publishing) = (repository(), Arc::new(FakePublishing::default()));
    let ended = pipeline(store, &provider, &repository, &publishing)
        .run(&task, &lease, &provider.shutdown)
        .await
        .expect("run");
    assert_eq!(ended, Ended::Finished(TaskStatus::Completed));
    let stages = store.stages(task.id).await.expect("stages");
    let recorded = stages.into_iter().map(|s| s.base_commit).collect();
    (repository, publishing, provider.asked(), recorded)
}

#[sqlx::test]
async fn a_resumed_task_runs_and_publishes_on_its_recorded_base(pool: PgPool) {
    let store = Store::from_pool(pool);
    let old = Some(OLD);
    let (repository, publishing, asked, bases) =
        resume_after_three_on(&store, [old, old, old]).await;

    assert_eq!(asked, TOOLS[3..]);
    assert_eq!(*repository.pinned_at.lock().unwrap(), [OLD]);
    assert_eq!(*repository.snapshots.lock().unwrap(), 1);
    assert_eq!(bases, vec![Some(OLD.to_owned()); 5]);
    let pushed = publishing.pushed.lock().unwrap();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].0, OLD);
}

#[sqlx::test]
async fn records_without_a_base_resume_on_a_fresh_snapshot(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (repository, publishing, asked, bases) =
        resume_after_three_on(&store, [None, None, None]).await;

    assert_eq!(asked, TOOLS[3..]);
    assert!(repository.pinned_at.lock().unwrap().is_empty());
    assert_eq!(*repository.snapshots.lock().unwrap(), 1);
    let new = Some(BASE.to_owned());
    assert_eq!(bases, [None, None, None, new.clone(), new]);
    assert_eq!(publishing.pushed.lock().unwrap()[0].0, BASE);
}

#[sqlx::test]
async fn a_resumed_task_whose_base_is_gone_runs_every_stage_again_on_a_fresh_snapshot(
    pool: PgPool,
) {
    let store = Store::from_pool(pool);
    let gone = Some(GONE);
    let (repository, publishing, asked, bases) =
        resume_after_three_on(&store, [gone, gone, gone]).await;

    // The pin was tried, failed, and no record of the lost base was reused.
    assert_eq!(*repository.pinned_at.lock().unwrap(), [GONE]);
    assert_eq!(asked, TOOLS);
    assert_eq!(bases, vec![Some(BASE.to_owned()); 5]);
    assert_eq!(publishing.pushed.lock().unwrap()[0].0, BASE);
}

#[sqlx::test]
async fn records_on_disagreeing_bases_run_again_from_the_first_that_disagrees(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (repository, publishing, asked, bases) =
        resume_after_three_on(&store, [Some(OLD), Some(BASE), Some(OLD)]).await;

    // Pinned at the first record's base; the Architect (recorded on another base) and every
    // later stage ran again on it.
    assert_eq!(*repository.pinned_at.lock().unwrap(), [OLD]);
    assert_eq!(asked, TOOLS[1..]);
    assert_eq!(bases, vec![Some(OLD.to_owned()); 5]);
    assert_eq!(publishing.pushed.lock().unwrap()[0].0, OLD);
}
