//! The pipeline: a fixed state machine PM → Architect → Engineer → QA → Security → Consensus →
//! Publish, run for one claimed task.
//!
//! Votes rest on evidence (`evidence.rs`): the Engineer's files are verified in a sandbox and
//! repaired on failure before QA votes; deterministic gates run before Security votes; a failed
//! verification or a workflow change holds an approval for review, a secret or a refused file
//! fails the task before anything is pushed. Every model call passes the cost guard
//! (`budget.rs`).
//!
//! Each stage's input is the task plus every earlier stage's output (the context chain,
//! [`agents::Chain`]); its output is persisted in `task_stages` (with the base commit it read)
//! before the next stage starts, so a task released mid-way resumes from its first stage
//! without a record, on the recorded base. The pipeline ends the
//! task itself (`TaskState::finish`); the daemon only releases it when interrupted.
//!
//! The machine meets the world at its edges, all traits: the task's state ([`TaskState`],
//! implemented for the store), the repository ([`Repository`] for reads at one base commit,
//! [`Publishing`] for the branch and the PR) and verification ([`Verifying`], implemented by the
//! sandbox's [`crate::verify::Verifier`]). The daemon runs it through [`TaskRunner`].

mod budget;
mod evidence;
mod failure;
mod publish;
mod repository;
mod revise;
mod state;
mod verifying;

pub use budget::{Budget, PlanMeter, Spent};
pub use failure::RetryPolicy;
pub use publish::{BranchCommit, DraftPr, PublishError, Publisher, PublisherConfig};
pub use repository::{BranchChange, GitRepository, Publishing, Repository, Snapshot};
pub use state::TaskState;
pub use verifying::Verifying;

use std::sync::Arc;

use async_trait::async_trait;
use tracing::{Instrument, info, warn};

use crate::agents::{self, Answer, Chain, Input, RepoContext, Role};
use crate::consensus::{self, Consensus, Decision, Thresholds, Vote};
use crate::gates::GateConfig;
use crate::llm::Provider;
use crate::shutdown::Shutdown;
use crate::store::{Finish, Lease, StoreError};
use crate::task::{Outcome, Publication, PullRequestRef, Stage, StageRecord, Task, TaskStatus};

use failure::{Retry, TaskFailure};
use repository::{RunSnapshot, SnapshotLookups};

/// Bound on the repository listing shown to the Architect, in bytes of paths.
pub(crate) const LISTING_MAX_BYTES: usize = 64 * 1024;
/// Bound on each current file shown to the Engineer, in bytes.
const FILE_MAX_BYTES: usize = 64 * 1024;

/// Why the pipeline stopped without recording an end; the daemon releases the task to pending
/// (or, for a lost lease, leaves it to the worker that owns it now).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Shutdown was triggered; stopped at a stage boundary.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// The task's state could not be written (including `StoreError::LeaseLost`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a run ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A final status: completed, needs_review, failed or cancelled.
    Finished(TaskStatus),
    /// A transient failure: back to pending, to run again later.
    RetryLater,
    /// A rate limit, exhausted quota, provider overload or the daily budget stopped the task:
    /// back to pending without spending an attempt; no LLM or GitHub work should start for this
    /// long.
    Paused {
        wait: std::time::Duration,
        why: PauseReason,
    },
}

/// Why all work pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// A rate limit or an exhausted quota outlasted the clients' own waiting.
    RateLimited,
    /// The provider is overloaded (529).
    Overloaded,
    /// DAILY_BUDGET_USD is spent: until midnight UTC.
    DailyBudget,
}

impl std::fmt::Display for PauseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PauseReason::RateLimited => "rate limit or exhausted quota",
            PauseReason::Overloaded => "provider overloaded",
            PauseReason::DailyBudget => "daily budget spent (DAILY_BUDGET_USD), until midnight UTC",
        })
    }
}

/// The states of the machine, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Run(Stage),
    Consensus,
}

/// The provider and model that answer one stage.
#[derive(Clone)]
pub struct RoleModel {
    pub provider: Arc<dyn Provider>,
    pub model: String,
}

/// One [`RoleModel`] per stage (roles may mix providers, e.g. the Architect on Anthropic and
/// the rest on a local model).
#[derive(Clone)]
pub struct Roles([RoleModel; 5]);

impl Roles {
    /// Builds the table by asking `f` for each stage, in pipeline order.
    pub fn new(f: impl FnMut(Stage) -> RoleModel) -> Roles {
        Roles(Stage::ALL.map(f))
    }

    /// The provider and model of `stage`.
    pub fn get(&self, stage: Stage) -> &RoleModel {
        &self.0[stage as usize]
    }
}

/// How the pipeline decides, verifies, gates, spends and retries.
pub struct PipelineSettings {
    /// CONSENSUS_THRESHOLD / CONDITIONAL_THRESHOLD.
    pub thresholds: Thresholds,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// The caps on LLM spend and the price table.
    pub budget: Budget,
    /// Limits and policy of the deterministic gates.
    pub gates: GateConfig,
    /// What runs the repository's checks (the product: [`crate::verify::Verifier`], the
    /// sandbox); `None` when verification is turned off (VERIFY=false: every change is recorded
    /// as not verified).
    pub verifier: Option<Arc<dyn Verifying>>,
    /// VERIFY_OPTIONAL: an approval of a change that was not verified (VERIFY=false, or no
    /// check command on the base) may be published; otherwise it is held for review.
    pub verify_optional: bool,
    /// REPAIR_ROUNDS: Engineer answers after a failed verification or edits that did not apply.
    pub repair_rounds: u32,
    /// REPO_MAP_TOKENS: the repository map's budget in estimated tokens, shown to every role
    /// instead of the bare listing; 0 shows the bare listing.
    pub repo_map_tokens: usize,
    /// MAX_LOOKUPS: most look-up calls (`read_file`, `search`, `find_symbol`) the Architect and
    /// the Engineer may each make before they submit; 0 offers them none.
    pub max_lookups: u32,
}

/// What the daemon runs a claimed task with: the worker's seam. [`Pipeline`] is the product's;
/// the daemon holds an `Arc<dyn TaskRunner>`.
#[async_trait]
pub trait TaskRunner: Send + Sync {
    /// Runs `task`, claimed under `lease`, to its end and records it (every write fenced by
    /// the lease), stopping at a stage boundary once `shutdown` is triggered. Errors:
    /// [`PipelineError::Interrupted`] (the caller releases the task), a store error
    /// ([`StoreError::LeaseLost`]: another worker owns the task; nothing more was written).
    async fn run(
        &self,
        task: &Task,
        lease: &Lease,
        shutdown: &Shutdown,
    ) -> Result<Ended, PipelineError>;

    /// How long to stop claiming because today's spend reached DAILY_BUDGET_USD; `None` when
    /// work may go on.
    async fn budget_pause(&self) -> Result<Option<std::time::Duration>, StoreError>;
}

/// Everything needed to run tasks; shared by the daemon's workers.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn TaskState>,
    roles: Roles,
    repository: Arc<dyn Repository>,
    publisher: Arc<dyn Publishing>,
    settings: Arc<PipelineSettings>,
}

impl Pipeline {
    /// A pipeline reading and writing its task's state through `store`, asking `roles`,
    /// reading the repository through snapshots of `repository`, publishing through
    /// `publisher`, deciding, verifying, gating and spending by `settings`.
    pub fn new(
        store: Arc<dyn TaskState>,
        roles: Roles,
        repository: Arc<dyn Repository>,
        publisher: Arc<dyn Publishing>,
        settings: PipelineSettings,
    ) -> Pipeline {
        Pipeline {
            store,
            roles,
            repository,
            publisher,
            settings: Arc::new(settings),
        }
    }

    /// How long to stop claiming because today's spend reached DAILY_BUDGET_USD; `None` when
    /// work may go on.
    pub async fn budget_pause(&self) -> Result<Option<std::time::Duration>, StoreError> {
        self.settings.budget.daily_pause(self.store.as_ref()).await
    }

    /// Runs `task`, claimed under `lease`, to its end and records it (every write fenced by the
    /// lease): completed with a PR, needs_review, failed, cancelled, or — after a transient
    /// failure with attempts left — back to pending with a backoff.
    pub async fn run(
        &self,
        task: &Task,
        lease: &Lease,
        shutdown: &Shutdown,
    ) -> Result<Ended, PipelineError> {
        if let Some(revision) = self.store.open_revision(lease).await? {
            return self.revise(task, lease, revision, shutdown).await;
        }
        let failure = match self.stages(task, lease, shutdown).await {
            Ok(finish) => {
                self.store.finish(lease, &finish).await?;
                if let Outcome::Approved {
                    publication: Publication::Opened(_),
                    ..
                } = &finish.result
                {
                    crate::metrics::global().prs_opened.inc();
                }
                return Ok(Ended::Finished(finish.status));
            }
            Err(Stop::Interrupted) => return Err(PipelineError::Interrupted),
            Err(Stop::Store(e)) => return Err(PipelineError::Store(e)),
            Err(Stop::Cancelled) => {
                info!("cancelled at a stage boundary");
                self.store.finish_cancelled(lease).await?;
                return Ok(Ended::Finished(TaskStatus::Cancelled));
            }
            Err(Stop::Failed(failure)) => failure,
        };
        if let Some(later) = self.retry_later(task, lease, &failure).await? {
            return Ok(later);
        }
        let error = failure.to_string();
        warn!(%error, "task failed");
        let finish = Finish {
            status: TaskStatus::Failed,
            consensus_score: None,
            result: failure.result(),
            pr_url: None,
            error: Some(error),
        };
        self.store.finish(lease, &finish).await?;
        Ok(Ended::Finished(TaskStatus::Failed))
    }

    /// Puts the task back to pending when the retry policy retries `failure` (after a backoff,
    /// or snoozed without spending an attempt) and says how the run ended; `None` when the
    /// failure is permanent.
    async fn retry_later(
        &self,
        task: &Task,
        lease: &Lease,
        failure: &TaskFailure,
    ) -> Result<Option<Ended>, PipelineError> {
        let retry @ (Retry::After { delay } | Retry::Snooze { delay }) =
            self.settings.retry.decide(failure, task.attempts)
        else {
            return Ok(None);
        };
        let error = failure.to_string();
        let spend_attempt = retry.spends_attempt();
        warn!(%error, retry_in_s = delay.as_secs(), attempt = task.attempts, "transient failure, will retry");
        self.store
            .retry_later(lease, delay, &error, spend_attempt)
            .await?;
        Ok(Some(if spend_attempt {
            Ended::RetryLater
        } else {
            Ended::Paused {
                wait: delay,
                why: failure.pause_reason(),
            }
        }))
    }

    async fn stages(
        &self,
        task: &Task,
        lease: &Lease,
        shutdown: &Shutdown,
    ) -> Result<Finish, Stop> {
        let recorded = self.store.stages(task.id).await?;
        let (snapshot, recorded) = RunSnapshot::resume(self.repository.as_ref(), recorded).await?;
        let mut chain = Self::recorded_chain(recorded)?;
        let mut repo = RepoContext::default();
        let mut state = State::Run(Stage::Pm);
        loop {
            state = match state {
                State::Run(stage) => {
                    if !chain.has(stage) {
                        self.boundary(lease, shutdown).await?;
                        let base = snapshot.get().await?;
                        self.prepare_map(task, &mut repo, base).await;
                        self.prepare_context(stage, &chain, &mut repo, base, &[])
                            .await?;
                        let span = tracing::info_span!("stage", stage = %stage);
                        let ran = self
                            .run_stage(stage, task, lease, &mut chain, &repo, base, None)
                            .instrument(span)
                            .await;
                        if let Err(stop) = &ran {
                            let outcome = match stop {
                                Stop::Failed(_) => "failed",
                                _ => "interrupted",
                            };
                            crate::metrics::global().stage_ended(stage, outcome, None);
                        }
                        ran?;
                    }
                    if stage == Stage::Pm && chain.pm_rejected() {
                        return Ok(self.rejected_by_pm(&chain));
                    }
                    next(stage)
                }
                State::Consensus => {
                    let thresholds = self.settings.thresholds;
                    let consensus = consensus::decide(votes(&chain, thresholds), thresholds)
                        .hold(evidence::holds(&chain, self.settings.verify_optional));
                    info!(
                        score = %consensus::score_text(consensus.score, Some(thresholds)),
                        decision = consensus.decision.as_str(),
                        held = consensus.held.len(),
                        "consensus"
                    );
                    self.boundary(lease, shutdown).await?;
                    return self
                        .conclude(task, lease, &chain, consensus, &snapshot)
                        .await;
                }
            };
        }
    }

    /// A stage boundary: stop here on shutdown or when a person asked to cancel the task.
    async fn boundary(&self, lease: &Lease, shutdown: &Shutdown) -> Result<(), Stop> {
        if shutdown.is_triggered() {
            return Err(Stop::Interrupted);
        }
        if self.store.cancel_requested(lease).await? {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// Rebuilds the chain from the stages recorded for the task that the run reuses (resume).
    fn recorded_chain(records: Vec<StageRecord>) -> Result<Chain, Stop> {
        let mut chain = Chain::default();
        for record in records {
            chain
                .restore(record.stage, record.output)
                .and_then(|()| chain.restore_evidence(record.stage, record.evidence))
                .map_err(|error| {
                    Stop::Failed(TaskFailure::Corrupt {
                        stage: record.stage,
                        error,
                    })
                })?;
        }
        if chain.completed() > 0 {
            info!(stages = chain.completed(), "resuming after recorded stages");
        }
        Ok(chain)
    }

    /// Before the run's first stage: the repository map ranked for the task, in place of the
    /// bare listing, in the prefix every role of the run shares (computed once per run, and
    /// deterministic for a base and a task, so a resumed run shares it too). REPO_MAP_TOKENS
    /// 0, a snapshot without a map, or a failure to build it (logged) leave the bare listing.
    async fn prepare_map(&self, task: &Task, repo: &mut RepoContext, base: &dyn Snapshot) {
        if repo.listed || repo.map.is_some() || self.settings.repo_map_tokens == 0 {
            return;
        }
        match base
            .repo_map(task.description.clone(), self.settings.repo_map_tokens)
            .await
        {
            Ok(Some(rendered)) => {
                info!(
                    tokens = rendered.tokens,
                    shown = rendered.shown.len(),
                    files = rendered.total_files,
                    "repository map"
                );
                repo.show_map(rendered);
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "repository map not built; showing the bare listing"),
        }
    }

    /// Reads from the run's snapshot the repository context a stage needs and that is not
    /// loaded yet: the listing (part of every role's shared prefix), and the current content of
    /// the Architect's files, then of `also` (a revision's), for the Engineer. The first read
    /// also checks the repository's `.autonomous-dev.toml` ([`TaskFailure::RepoConfig`] when
    /// malformed).
    async fn prepare_context(
        &self,
        stage: Stage,
        chain: &Chain,
        repo: &mut RepoContext,
        base: &dyn Snapshot,
        also: &[String],
    ) -> Result<(), Stop> {
        if !repo.listed {
            // Before the run's first LLM call: a malformed repository config fails the task.
            evidence::repo_config(base).await?;
            if repo.map.is_none() {
                let listing = base.listing(LISTING_MAX_BYTES).await?;
                repo.listing = listing.paths;
                repo.truncated = listing.truncated;
            }
            repo.listed = true;
        }
        if stage == Stage::Engineer {
            let mut named = chain
                .architect
                .as_ref()
                .map(|a| a.files.clone())
                .unwrap_or_default();
            named.extend(also.iter().cloned());
            repo.files = base.read_files(named, FILE_MAX_BYTES).await?;
        }
        Ok(())
    }

    /// Runs one stage and records it (with the task's stages, or with `revision`'s): the
    /// role's answer, plus for the Engineer the verify-and-repair loop and for Security the
    /// gates computed before it is asked.
    #[allow(clippy::too_many_arguments)]
    async fn run_stage(
        &self,
        stage: Stage,
        task: &Task,
        lease: &Lease,
        chain: &mut Chain,
        repo: &RepoContext,
        base: &dyn Snapshot,
        revision: Option<i32>,
    ) -> Result<(), Stop> {
        let role = self.roles.get(stage);
        info!(model = %role.model, "stage started");
        let meter = budget::StageMeter {
            store: self.store.as_ref(),
            budget: &self.settings.budget,
            task: task.id,
            stage,
        };
        if stage == Stage::Security {
            chain.security_evidence = Some(self.security_evidence(chain, base).await?);
        }
        let input = Input { task, chain, repo };
        let mut record = match stage {
            Stage::Pm => ask::<agents::Pm>(role, input, &meter).await?,
            Stage::Architect => {
                let lookups = SnapshotLookups::new(base, self.settings.max_lookups);
                let answer = agents::ask_with::<agents::Architect>(
                    role.provider.as_ref(),
                    &role.model,
                    input,
                    &meter,
                    &lookups,
                )
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
                record::<agents::Architect>(role, answer)?
            }
            Stage::Engineer => self.engineer(role, input, &meter, base).await?,
            Stage::Qa => ask::<agents::Qa>(role, input, &meter).await?,
            Stage::Security => {
                let mut record = ask::<agents::Security>(role, input, &meter).await?;
                record.evidence = Some(evidence::to_json(&chain.security_evidence, stage)?);
                record
            }
        };
        record.base_commit = Some(base.base().to_owned());
        match revision {
            None => self.store.save_stage(lease, &record).await?,
            Some(revision) => {
                self.store
                    .save_revision_stage(lease, revision, &record)
                    .await?
            }
        }
        let took = std::time::Duration::from_millis(u64::try_from(record.duration_ms).unwrap_or(0));
        crate::metrics::global().stage_ended(stage, "recorded", Some(took));
        chain
            .restore(stage, record.output.clone())
            .and_then(|()| chain.restore_evidence(stage, record.evidence.clone()))
            .map_err(|error| Stop::Failed(TaskFailure::Corrupt { stage, error }))?;
        info!(
            vote = %vote_text(chain, stage, self.settings.thresholds),
            duration_ms = record.duration_ms,
            input_tokens = record.usage.input_tokens,
            output_tokens = record.usage.output_tokens,
            cache_read_input_tokens = record.usage.cache_read_input_tokens,
            "stage finished"
        );
        Ok(())
    }

    fn rejected_by_pm(&self, chain: &Chain) -> Finish {
        let votes = votes(chain, self.settings.thresholds);
        info!(
            decision = Decision::RejectedByPm.as_str(),
            "the PM rejected the task"
        );
        Finish {
            status: TaskStatus::Failed,
            consensus_score: None,
            result: Outcome::RejectedByPm { votes },
            pr_url: None,
            error: Some("rejected by the PM".into()),
        }
    }

    /// Acts on the consensus: publish when approved (and still approved once the change is
    /// checked again, [`Pipeline::recheck`]) or when a person approved what it left for review
    /// ([`Task::approved_by`]), otherwise needs_review or failed.
    async fn conclude(
        &self,
        task: &Task,
        lease: &Lease,
        chain: &Chain,
        consensus: Consensus,
        snapshot: &RunSnapshot<'_>,
    ) -> Result<Finish, Stop> {
        let consensus = match consensus.decision {
            Decision::Approved => {
                let base = snapshot.get().await?;
                let consensus = self.recheck(chain, consensus, base).await?;
                if consensus.decision == Decision::Approved {
                    return self.publish(task, lease, chain, consensus, base).await;
                }
                consensus
            }
            _ => consensus,
        };
        if consensus.decision == Decision::Conditional
            && let Some(by) = &task.approved_by
        {
            info!(approved_by = %by, "publishing the change a person approved");
            let base = snapshot.get().await?;
            return self.publish(task, lease, chain, consensus, base).await;
        }
        let score = consensus.score;
        let (status, error, result) = match consensus.decision {
            Decision::Approved => unreachable!("an approval was published above"),
            Decision::Conditional => (
                TaskStatus::NeedsReview,
                None,
                Outcome::Conditional { consensus },
            ),
            Decision::Rejected | Decision::RejectedByPm => (
                TaskStatus::Failed,
                Some(format!(
                    "rejected by consensus ({}%)",
                    consensus::score_text(score, Some(self.settings.thresholds))
                )),
                Outcome::Rejected { consensus },
            ),
        };
        Ok(Finish {
            status,
            consensus_score: Some(score),
            result,
            pr_url: None,
            error,
        })
    }

    /// Pushes the branch, built on the snapshot's base commit (the one the change was read,
    /// gated and verified on, so the PR's diff is what was verified; a resumed run is pinned at
    /// the base its records carry, [`RunSnapshot::resume`]), and opens (or adopts)
    /// the PR; pr_url is saved as soon as the PR exists, before labelling. A dry run stops
    /// after the local commit and records the draft.
    async fn publish(
        &self,
        task: &Task,
        lease: &Lease,
        chain: &Chain,
        consensus: Consensus,
        base: &dyn Snapshot,
    ) -> Result<Finish, Stop> {
        let thresholds = self.settings.thresholds;
        let repo = evidence::repo_config(base).await?;
        let draft = publish::draft(
            task,
            chain,
            &consensus,
            thresholds,
            (
                self.publisher.base_branch(),
                self.publisher.head_repository(),
            ),
            &repo.labels,
        );
        let change = publish::branch_change(task, chain, &consensus)?;
        let branch = self.publisher.push_branch(base.base(), change).await?;
        if self.publisher.is_dry_run() {
            info!(branch = %branch.branch, commit = %branch.commit, "dry run: branch committed locally, no PR");
            return Ok(Finish {
                status: TaskStatus::Completed,
                consensus_score: Some(consensus.score),
                result: Outcome::Approved {
                    consensus,
                    branch,
                    publication: Publication::DryRun(draft),
                },
                pr_url: None,
                error: None,
            });
        }
        let (pr, created) = self.publisher.open_pull_request(&draft).await?;
        self.store.set_pr_url(lease, &pr.url).await?;
        let labels = match self.publisher.label(pr.number, &draft.labels).await {
            Ok(()) => draft.labels,
            // The PR exists: a token that may open PRs but not label them (an outside
            // contributor's, with PUSH_REPOSITORY) must not fail the task over its labels.
            Err(PublishError::GitHub(e)) if e.is_forbidden() => {
                warn!(pr_url = %pr.url, error = %e, "GitHub refused to label the pull request; it stays unlabelled");
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        if created {
            // The PR exists: a reviewer GitHub refuses (the author, not a collaborator) is
            // logged, not a failure of the task.
            if let Err(e) = self
                .publisher
                .request_reviewers(pr.number, &task.reviewers)
                .await
            {
                warn!(pr_url = %pr.url, error = %e, "cannot request the reviewers");
            }
            info!(pr_url = %pr.url, branch = %branch.branch, "pull request opened");
        } else {
            info!(pr_url = %pr.url, branch = %branch.branch, "adopted the open pull request");
        }
        Ok(Finish {
            status: TaskStatus::Completed,
            consensus_score: Some(consensus.score),
            pr_url: Some(pr.url.clone()),
            result: Outcome::Approved {
                consensus,
                branch,
                publication: Publication::Opened(PullRequestRef {
                    number: pr.number,
                    url: pr.url,
                    labels,
                }),
            },
            error: None,
        })
    }
}

#[async_trait]
impl TaskRunner for Pipeline {
    async fn run(
        &self,
        task: &Task,
        lease: &Lease,
        shutdown: &Shutdown,
    ) -> Result<Ended, PipelineError> {
        Pipeline::run(self, task, lease, shutdown).await
    }

    async fn budget_pause(&self) -> Result<Option<std::time::Duration>, StoreError> {
        Pipeline::budget_pause(self).await
    }
}

/// Runs role `R` and turns its answer into the stage record to persist.
async fn ask<R: Role>(
    role: &RoleModel,
    input: Input<'_>,
    meter: &dyn agents::Meter,
) -> Result<StageRecord, Stop> {
    let answer = agents::ask::<R>(role.provider.as_ref(), &role.model, input, meter)
        .await
        .map_err(|e| Stop::Failed(e.into()))?;
    record::<R>(role, answer)
}

/// The stage record of role `R`'s answer, with its look-ups (no evidence).
fn record<R: Role>(role: &RoleModel, answer: Answer<R::Output>) -> Result<StageRecord, Stop> {
    let Answer {
        output,
        usage,
        duration,
        lookups,
    } = answer;
    let score = agents::Scored::vote_score(&output);
    let output = serde_json::to_value(&output).map_err(|e| {
        Stop::Failed(TaskFailure::Corrupt {
            stage: R::STAGE,
            error: e.to_string(),
        })
    })?;
    Ok(StageRecord {
        stage: R::STAGE,
        output,
        evidence: None,
        score,
        model: role.model.clone(),
        usage,
        duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        created_at: None,
        base_commit: None,
        lookups,
    })
}

/// The state after `stage`: the next stage in [`Stage::ALL`] order, consensus after the last.
fn next(stage: Stage) -> State {
    Stage::ALL
        .get(stage as usize + 1)
        .map_or(State::Consensus, |&next| State::Run(next))
}

/// The votes of every recorded stage, in pipeline order.
fn votes(chain: &Chain, thresholds: Thresholds) -> Vec<Vote> {
    Stage::ALL
        .into_iter()
        .filter(|stage| chain.has(*stage))
        .map(|stage| Vote {
            role: stage,
            score: chain.score(stage),
            vote: vote_text(chain, stage, thresholds),
            rationale: chain.rationale(stage).to_owned(),
        })
        .collect()
}

/// The vote word of `stage`: the PM's approve/reject, else the verdict of its score.
fn vote_text(chain: &Chain, stage: Stage, thresholds: Thresholds) -> String {
    match (stage, &chain.pm, chain.score(stage)) {
        (Stage::Pm, Some(pm), _) => pm.vote.as_str().to_owned(),
        (_, _, Some(score)) => consensus::verdict(score, thresholds).to_owned(),
        _ => "-".to_owned(),
    }
}

/// How `stages` ends early.
enum Stop {
    Interrupted,
    Cancelled,
    Store(StoreError),
    Failed(TaskFailure),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl From<publish::PublishError> for Stop {
    fn from(e: publish::PublishError) -> Self {
        Stop::Failed(TaskFailure::Publish(e))
    }
}

impl From<TaskFailure> for Stop {
    fn from(e: TaskFailure) -> Self {
        Stop::Failed(e)
    }
}
