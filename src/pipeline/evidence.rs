//! The evidence the votes rest on, gathered by the pipeline rather than asked of a model:
//!
//! - the Engineer's stage is a loop — answer, apply its search/replace edits, refuse what the
//!   gates refuse, verify the result in the sandbox — repeated with the failure sent back, up to
//!   REPAIR_ROUNDS repairs;
//! - before Security is asked, the gates run over everything to be committed (Engineer's files
//!   and QA's tests), which is verified again when QA added tests;
//! - the check command is decided from the base branch's files (or VERIFY_COMMAND), never from
//!   the change; a change to a file that defines or steers the check is reported as "check
//!   definition changed";
//! - at consensus, a failed, timed-out or redefined verification, a change not verified at all
//!   (unless VERIFY_OPTIONAL), a workflow change (unless ALLOW_WORKFLOW_CHANGES) and files that
//!   builds, CI or agents execute hold an approval for review; a secret or a refused file has
//!   failed the task already, before anything is pushed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::failure::TaskFailure;
use super::{Pipeline, RoleModel, Snapshot, SnapshotLookups, Stop, Verifying, record};
use crate::agents::{
    self, Chain, Conversation, Engineer, EngineerEvidence, Input, Meter, Round, RoundOutcome,
    SecurityEvidence,
};
use crate::consensus::Consensus;
use crate::gates::{self, Changed, GateReport};
use crate::git::has_conflict_markers;
use crate::repo_config::{self, RepoConfig};
use crate::task::{FileChange, Stage, StageRecord};
use crate::verify::{
    CheckPlan, DETECTION_FILES, DETECTION_MAX_BYTES, Prepared, Verification, VerifyStatus,
    Worktree, steers_check,
};

impl Pipeline {
    /// The Engineer's stage: up to 1 + REPAIR_ROUNDS answers on one conversation, with up to
    /// MAX_LOOKUPS look-ups in all (on the snapshot, with the files written so far). Each answer's
    /// edits are applied to the files written so far (else the repository's); edits that do
    /// not apply, and a failed or timed-out verification, go back to the model while rounds are
    /// left. The record holds the resolved files (whole, no edits) and, as evidence, every round
    /// and the final verification.
    ///
    /// Errors: the role's (LLM, invalid answer, budget); [`TaskFailure::Edits`] when the last
    /// round's edits do not apply; [`TaskFailure::Gate`] when a gate refuses the files (a
    /// secret, a binary or oversized file, too many files).
    pub(super) async fn engineer(
        &self,
        role: &RoleModel,
        input: Input<'_>,
        meter: &dyn Meter,
        snapshot: &dyn Snapshot,
    ) -> Result<StageRecord, Stop> {
        let mut conversation = Conversation::<Engineer>::new(&role.model, input);
        let lookups = SnapshotLookups::new(snapshot, self.settings.max_lookups);
        let check = self.check(snapshot).await?;
        let mut base = BaseFiles::new();
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        let mut rounds = Vec::new();
        let last_round = self.settings.repair_rounds;
        for round in 0..=last_round {
            let mut answer = conversation
                .answer_with(role.provider.as_ref(), meter, &lookups)
                .await
                .map_err(|e| Stop::Failed(e.into()))?;
            let output = &answer.output;
            let paths = output.files.iter().map(|f| f.path.clone());
            read_base(snapshot, &mut base, paths.chain(output.edited_paths())).await?;
            // Edits apply to the files as the conversation left them, else as on the base.
            let mut current: BTreeMap<String, String> = base
                .iter()
                .filter_map(|(path, content)| Some((path.clone(), content.clone()?)))
                .collect();
            current.extend(written.clone());
            let files = match output.resolve(&current) {
                Ok(files) => files,
                Err(reason) => {
                    warn!(round, "the Engineer's edits do not apply");
                    rounds.push(Round {
                        round,
                        outcome: RoundOutcome::EditsRejected {
                            reason: reason.clone(),
                        },
                    });
                    if round == last_round {
                        return Err(TaskFailure::Edits { reason }.into());
                    }
                    conversation.reply(reason);
                    continue;
                }
            };
            written.extend(files.into_iter().map(|f| (f.path, f.content)));
            lookups.set_written(&written);
            // A conflict revision: every conflicted file must come back resolved.
            let conflicts = input
                .repo
                .revision
                .as_ref()
                .map_or(&[][..], |(_, feedback)| &feedback.conflicts[..]);
            let left: Vec<String> = conflicts
                .iter()
                .filter(|path| written.get(*path).is_none_or(|c| has_conflict_markers(c)))
                .cloned()
                .collect();
            if !left.is_empty() && round < last_round {
                warn!(round, files = ?left, "the Engineer's answer leaves conflict markers");
                let reason = agents::conflicts_left(&left);
                rounds.push(Round {
                    round,
                    outcome: RoundOutcome::EditsRejected {
                        reason: reason.clone(),
                    },
                });
                conversation.reply(reason);
                continue;
            }
            let all: Vec<FileChange> = written
                .iter()
                .map(|(path, content)| FileChange {
                    path: path.clone(),
                    content: content.clone(),
                })
                .collect();
            self.gates(&all, &base, snapshot).await?;
            let verification = verify(&check, &all, &base, snapshot).await?;
            info!(round, verification = %verification.summary(), "verification");
            rounds.push(Round {
                round,
                outcome: RoundOutcome::Verified {
                    verification: verification.clone(),
                },
            });
            if !verification.needs_repair() || round == last_round {
                answer.output.files = all;
                answer.output.edits.clear();
                let mut record = record::<Engineer>(role, answer)?;
                let evidence = EngineerEvidence {
                    rounds,
                    verification,
                };
                record.evidence = Some(to_json(&evidence, Stage::Engineer)?);
                return Ok(record);
            }
            conversation.reply(agents::repair_request(&verification, round + 1, last_round));
        }
        unreachable!("the last round always returns")
    }

    /// The gates and the verification of everything to be committed, computed before the
    /// Security role is asked. The Engineer's verification is reused unless QA added tests.
    ///
    /// Errors: [`TaskFailure::Gate`] when a gate refuses the change.
    pub(super) async fn security_evidence(
        &self,
        chain: &Chain,
        snapshot: &dyn Snapshot,
    ) -> Result<SecurityEvidence, Stop> {
        let files = chain.files_to_write();
        let (base, gates) = self.gate_on_base(&files, snapshot).await?;
        let engineer_files = chain.engineer.as_ref().map(|e| e.files.len()).unwrap_or(0);
        let verification = match &chain.engineer_evidence {
            Some(evidence) if files.len() == engineer_files => evidence.verification.clone(),
            _ => {
                let check = self.check(snapshot).await?;
                let verification = verify(&check, &files, &base, snapshot).await?;
                info!(verification = %verification.summary(), "verification with QA's tests");
                verification
            }
        };
        Ok(SecurityEvidence {
            gates,
            verification,
            files: blob_ids(&files),
        })
    }

    /// Checks again, right before the commit, what an approval would publish: the files must be
    /// exactly those gated and verified (their blob ids as recorded with the Security stage),
    /// and the gates run again over their content against the snapshot's base. So nothing
    /// written to the database after the gates, by anything, reaches the remote ungated.
    /// Returns `consensus` with the holds the gates find now and did not before (then it is
    /// no longer an approval).
    ///
    /// Errors: [`TaskFailure::ChangedAfterGates`] when a file differs from the recorded
    /// evidence; [`TaskFailure::Gate`] when a gate refuses the files now.
    pub(super) async fn recheck(
        &self,
        chain: &Chain,
        consensus: Consensus,
        snapshot: &dyn Snapshot,
    ) -> Result<Consensus, Stop> {
        let files = chain.files_to_write();
        let recorded = chain.security_evidence.as_ref().map(|e| &e.files);
        if let Some(recorded) = recorded.filter(|r| !r.is_empty()) {
            let now = blob_ids(&files);
            if let Some(path) = differing_path(recorded, &now) {
                warn!(%path, "the change to publish is not the one gated and verified");
                return Err(TaskFailure::ChangedAfterGates { path }.into());
            }
        }
        let (_, report) = self.gate_on_base(&files, snapshot).await?;
        let new: Vec<String> = report
            .hold_reasons()
            .into_iter()
            .filter(|reason| !consensus.held.contains(reason))
            .collect();
        if new.is_empty() {
            return Ok(consensus);
        }
        warn!(held = ?new, "the gates hold now what they did not hold before");
        let mut held = consensus.held.clone();
        held.extend(new);
        Ok(consensus.hold(held))
    }

    /// Reads the base content of `files` from the snapshot and runs the gates over them
    /// ([`Pipeline::gates`]); returns both.
    async fn gate_on_base(
        &self,
        files: &[FileChange],
        snapshot: &dyn Snapshot,
    ) -> Result<(BaseFiles, GateReport), Stop> {
        let mut base = BaseFiles::new();
        read_base(snapshot, &mut base, files.iter().map(|f| f.path.clone())).await?;
        let report = self.gates(files, &base, snapshot).await?;
        Ok((base, report))
    }

    /// Runs the gates over `files` against their `base` content and modes (the snapshot's);
    /// a refusal or a secret fails the task.
    async fn gates(
        &self,
        files: &[FileChange],
        base: &BaseFiles,
        snapshot: &dyn Snapshot,
    ) -> Result<GateReport, Stop> {
        let paths = files.iter().map(|f| f.path.clone()).collect();
        let executables = snapshot.executables(paths).await?;
        let changes: Vec<Changed<'_>> = files
            .iter()
            .map(|file| Changed {
                file,
                base: base.get(&file.path).and_then(Option::as_deref),
                base_executable: executables.contains(&file.path),
            })
            .collect();
        let report = gates::check(&changes, &self.settings.gates);
        if let Some(reason) = report.block_reason() {
            warn!(%reason, "a gate refused the change");
            crate::metrics::global().gates_refused(&report);
            return Err(TaskFailure::Gate(Box::new(report)).into());
        }
        Ok(report)
    }

    /// How the snapshot's changes are verified: the plan the configured verifier makes from
    /// the daemon's settings, the repository's `.autonomous-dev.toml` and the base's files
    /// (read from the snapshot's blobs); or not at all, and why.
    async fn check(&self, snapshot: &dyn Snapshot) -> Result<Check<'_>, Stop> {
        let Some(verifier) = self.settings.verifier.as_deref() else {
            return Ok(Check::Off("verification is turned off (VERIFY=false)"));
        };
        let repo = repo_config(snapshot).await?;
        let detection = DETECTION_FILES.map(str::to_owned).to_vec();
        let detection = snapshot.read_files(detection, DETECTION_MAX_BYTES).await?;
        Ok(match verifier.plan(&detection, &repo) {
            Some(plan) => Check::Run {
                verifier,
                plan,
                prepared: OnceCell::new(),
            },
            None => Check::Off(
                "no check command: VERIFY_COMMAND is unset, the repository's \
                 .autonomous-dev.toml sets no `verify` and the base branch has none of the files \
                 it is detected from",
            ),
        })
    }
}

/// The repository's `.autonomous-dev.toml` as on the snapshot's base (the default when there
/// is none). Errors: [`TaskFailure::RepoConfig`] for a malformed file.
pub(super) async fn repo_config(snapshot: &dyn Snapshot) -> Result<RepoConfig, Stop> {
    let file = snapshot
        .read_files(vec![repo_config::FILE.to_owned()], DETECTION_MAX_BYTES)
        .await?;
    match file.first() {
        Some(file) => {
            RepoConfig::parse(&file.content).map_err(|e| Stop::Failed(TaskFailure::RepoConfig(e)))
        }
        None => Ok(RepoConfig::default()),
    }
}

/// How a stage verifies: with `verifier` running `plan` (over the base prepared once, when
/// the plan has a setup: its tree, or the setup's failure), or not at all (the reason).
enum Check<'a> {
    Run {
        verifier: &'a dyn Verifying,
        plan: CheckPlan,
        prepared: OnceCell<Result<PathBuf, Box<Verification>>>,
    },
    Off(&'static str),
}

/// Verifies `files` (whose content on the base is in `base`) by `check` on the snapshot's base
/// in a fresh worktree inside the sandbox; "not verified" when `check` is off. The files among
/// `files` that steer the check and differ from the base are recorded as
/// [`Verification::check_changed`].
async fn verify(
    check: &Check<'_>,
    files: &[FileChange],
    base: &BaseFiles,
    snapshot: &dyn Snapshot,
) -> Result<Verification, Stop> {
    let (verifier, plan, prepared) = match check {
        Check::Run {
            verifier,
            plan,
            prepared,
        } => (*verifier, plan, prepared),
        Check::Off(reason) => return Ok(Verification::not_verified(reason)),
    };
    let cannot = |e: crate::verify::VerifyError| Stop::Failed(TaskFailure::Verify(e.to_string()));
    let prepared = match &plan.setup {
        None => None,
        Some(_) => {
            let prepared = prepared
                .get_or_try_init(|| async {
                    Ok::<_, Stop>(
                        match verifier.prepare(plan, snapshot).await.map_err(cannot)? {
                            Prepared::Ready { dir, .. } => Ok(dir),
                            Prepared::Failed(verification) => Err(Box::new(verification)),
                        },
                    )
                })
                .await?;
            Some(prepared.clone())
        }
    };
    let mut verification = match prepared {
        Some(Err(setup_failed)) => *setup_failed,
        prepared => {
            let worktree = Worktree::new().map_err(|e| TaskFailure::Verify(e.to_string()))?;
            snapshot
                .export(files.to_vec(), worktree.path().to_path_buf())
                .await?;
            let prepared = prepared.and_then(Result::ok);
            verifier
                .verify(worktree.path(), plan, prepared.as_deref())
                .await
                .map_err(cannot)?
        }
    };
    let result = match verification.status {
        VerifyStatus::Passed => "passed",
        VerifyStatus::Failed => "failed",
        VerifyStatus::TimedOut => "timed_out",
        VerifyStatus::NotVerified => "not_verified",
    };
    let took = std::time::Duration::from_millis(verification.duration_ms);
    crate::metrics::global().verification(result, took);
    verification.check_changed = files
        .iter()
        .filter(|f| steers_check(&f.path))
        .filter(|f| base.get(&f.path).and_then(Option::as_deref) != Some(f.content.as_str()))
        .map(|f| f.path.clone())
        .collect();
    Ok(verification)
}

/// Path → git blob id of each of `files`.
fn blob_ids(files: &[FileChange]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|f| (f.path.clone(), crate::git::blob_id(&f.content)))
        .collect()
}

/// The first path (in order) whose blob differs between `a` and `b`, or that only one has.
fn differing_path(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Option<String> {
    a.keys()
        .chain(b.keys())
        .filter(|path| a.get(*path) != b.get(*path))
        .min()
        .cloned()
}

/// The base branch's content of the paths a stage looked at: `None` for a path that is not a
/// text file there (absent, binary, a directory).
type BaseFiles = BTreeMap<String, Option<String>>;

/// Adds to `base` the snapshot's content of those `paths` it does not hold yet (one read, none
/// when every path is known).
async fn read_base(
    snapshot: &dyn Snapshot,
    base: &mut BaseFiles,
    paths: impl IntoIterator<Item = String>,
) -> Result<(), Stop> {
    let unread: Vec<String> = paths
        .into_iter()
        .filter(|p| !base.contains_key(p))
        .collect();
    if unread.is_empty() {
        return Ok(());
    }
    let found = snapshot.read_files(unread.clone(), usize::MAX).await?;
    base.extend(unread.into_iter().map(|path| (path, None)));
    base.extend(found.into_iter().map(|f| (f.path, Some(f.content))));
    Ok(())
}

/// Why an approval must wait for a person, from the recorded evidence: a verification that
/// failed, timed out, withheld its output or had its check definition changed; a change not
/// verified at all, unless `verify_optional` (VERIFY_OPTIONAL); the gates' holds (a CI workflow
/// without ALLOW_WORKFLOW_CHANGES, files that builds, CI or agents execute). An approval rests
/// on evidence, so missing evidence is never read as good evidence.
pub(super) fn holds(chain: &Chain, verify_optional: bool) -> Vec<String> {
    let mut holds = Vec::new();
    if let Some(verification) = chain.verification() {
        if verification.blocks_approval() {
            holds.push(format!("verification {}", verification.summary()));
        } else if verification.status == VerifyStatus::NotVerified && !verify_optional {
            holds.push(format!(
                "{} (VERIFY_OPTIONAL=true publishes changes without verification)",
                verification.summary()
            ));
        }
    }
    if let Some(evidence) = &chain.security_evidence {
        holds.extend(evidence.gates.hold_reasons());
    }
    holds
}

/// Evidence as the JSON recorded with `stage`.
pub(super) fn to_json(evidence: &impl Serialize, stage: Stage) -> Result<serde_json::Value, Stop> {
    serde_json::to_value(evidence).map_err(|e| {
        Stop::Failed(TaskFailure::Corrupt {
            stage,
            error: e.to_string(),
        })
    })
}
