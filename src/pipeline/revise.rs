//! A revision of a task's opened PR, run under the task's lease when the PR watch requested one
//! (`store/revision.rs`): the task's own PM and Architect stages stay; the Engineer (given the
//! PR's conversation and the files as they are on the PR branch now), QA and Security answer
//! again, on a snapshot pinned at the branch's tip, with verification, repair and gates as for
//! the task; consensus decides.
//!
//! - Approved: one new commit on the branch, a fast-forward of the tip the revision read (never
//!   a force push: review threads stay anchored), then a reply in each inline thread it answers
//!   and one PR comment summarising what changed per note, with the verification.
//! - For failing checks, the Engineer is given what failed instead; for a base that moved into
//!   a conflict, the revision works on the merge of the base into the tip (a clean merge is
//!   pushed as it is, asking no role): the Engineer resolves the conflicted files, and the
//!   commit is a merge commit with the tip and the base as parents.
//! - Not approved, or failed: nothing is pushed, and a PR comment says why (a conflict also
//!   labels the PR `needs-rebase`).
//!
//! Every step can be repeated after a crash without doing it twice: stages are recorded, the
//! head is recorded before the first stage, a pushed commit is recognised on the branch, and a
//! reply or comment carrying the revision's marker is not written again. Whatever its end, the
//! revision leaves the task completed, its PR watched again.

use std::collections::BTreeMap;

use tracing::{Instrument, info, warn};

use super::failure::TaskFailure;
use super::{Ended, Pipeline, PipelineError, Stop, evidence, publish, votes};
use crate::agents::{Chain, RepoContext};
use crate::consensus::{self, Consensus, Decision};
use crate::git::GitError;
use crate::github::Posted;
use crate::shutdown::Shutdown;
use crate::store::Lease;
use crate::task::{
    BranchCommit, Feedback, Note, NoteKind, OWN_MARKER, Outcome, Publication, Revision,
    RevisionEnd, RevisionTrigger, Stage, Task, TaskStatus,
};

use super::repository::BranchChange;

/// The stages a revision asks again, in order.
const REVISED: [Stage; 3] = [Stage::Engineer, Stage::Qa, Stage::Security];

/// The PR a revision works on: its number and head branch.
struct OpenPr {
    number: u64,
    branch: String,
}

impl Pipeline {
    /// Runs `revision` of `task` (claimed under `lease`) to its end and records it; the task is
    /// completed again. Transient failures send the task back to pending with the revision
    /// still open, as for a task.
    pub(super) async fn revise(
        &self,
        task: &Task,
        lease: &Lease,
        revision: Revision,
        shutdown: &Shutdown,
    ) -> Result<Ended, PipelineError> {
        let span = tracing::info_span!("revision", number = revision.number);
        async {
            info!(trigger = revision.trigger.as_str(), "revision started");
            let failure = match self.revision_stages(task, lease, &revision, shutdown).await {
                Ok(end) => return self.end(task, lease, &revision, end).await,
                Err(Stop::Interrupted) => return Err(PipelineError::Interrupted),
                Err(Stop::Store(e)) => return Err(PipelineError::Store(e)),
                Err(Stop::Cancelled) => TaskFailure::Revision("cancelled by a person".into()),
                Err(Stop::Failed(failure)) => failure,
            };
            if let Some(later) = self.retry_later(task, lease, &failure).await? {
                return Ok(later);
            }
            let reason = failure.to_string();
            warn!(error = %reason, "revision failed");
            if let Some(pr) = open_pr(task) {
                let body = format!(
                    "## Revision {}: failed\n\n{}\n\nNothing was pushed.",
                    revision.number,
                    one_line(&reason)
                );
                self.comment_once(pr.number, revision.number, &body).await;
                self.needs_rebase(&pr, &revision).await;
            }
            self.end(task, lease, &revision, RevisionEnd::Failed { reason })
                .await
        }
        .instrument(span)
        .await
    }

    /// Records `end` with the revision's spend and completes the task again.
    async fn end(
        &self,
        task: &Task,
        lease: &Lease,
        revision: &Revision,
        end: RevisionEnd,
    ) -> Result<Ended, PipelineError> {
        let cost = self.store.task_spend(task.id).await?;
        self.store
            .end_revision(lease, revision.id, &end, cost)
            .await?;
        info!(cost_usd = cost, "revision ended");
        Ok(Ended::Finished(TaskStatus::Completed))
    }

    async fn revision_stages(
        &self,
        task: &Task,
        lease: &Lease,
        revision: &Revision,
        shutdown: &Shutdown,
    ) -> Result<RevisionEnd, Stop> {
        let pr = open_pr(task).ok_or_else(|| {
            TaskFailure::Revision("the task has no opened pull request to revise".into())
        })?;
        let task_records = self.store.stages(task.id).await?;
        // The files the PR changed: shown to the Engineer as they are on the branch now.
        let mut shown: Vec<String> = task_records
            .iter()
            .filter(|r| r.stage == Stage::Engineer)
            .flat_map(|r| written_paths(&r.output))
            .collect();
        let kept = task_records
            .into_iter()
            .filter(|r| matches!(r.stage, Stage::Pm | Stage::Architect));
        let mut chain = Self::recorded_chain(
            kept.chain(self.store.revision_stages(revision.id).await?)
                .collect(),
        )?;
        shown.extend(
            revision
                .feedback
                .notes
                .iter()
                .filter_map(|n| match &n.kind {
                    NoteKind::Inline { path, .. } => Some(path.clone()),
                    _ => None,
                }),
        );

        let tip = self.publisher.branch_tip(&pr.branch).await?;
        let head = match (&revision.head_commit, tip) {
            (Some(head), _) => head.clone(),
            (None, Some(tip)) => {
                self.store
                    .set_revision_head(lease, revision.id, &tip)
                    .await?;
                tip
            }
            (None, None) => {
                return Err(TaskFailure::Revision(format!(
                    "the pull request's branch {} is gone",
                    pr.branch
                ))
                .into());
            }
        };
        info!(%head, "revising on the branch's tip");
        let mut feedback = revision.feedback.clone();
        // A conflict revision works on the merge of the base into the tip.
        let mut preview = None;
        if revision.trigger == RevisionTrigger::Conflict {
            let Some(merge) = self.publisher.merge_base(&head, &pr.branch).await? else {
                return Err(TaskFailure::Revision(
                    "the branch already contains its base: nothing to merge".into(),
                )
                .into());
            };
            if merge.conflicts.is_empty() {
                return self
                    .merge_cleanly(&pr, revision, &head, &merge.commit)
                    .await;
            }
            info!(conflicts = ?merge.conflicts, "merging the base conflicts");
            shown.extend(merge.conflicts.iter().cloned());
            feedback.conflicts = merge.conflicts.clone();
            preview = Some(merge.commit);
        }
        let snapshot = self
            .repository
            .snapshot_at(preview.as_deref().unwrap_or(&head))
            .await?;
        let base = snapshot.as_ref();
        let mut repo = RepoContext {
            revision: Some((pr.number, feedback.clone())),
            ..RepoContext::default()
        };
        for stage in REVISED {
            if chain.has(stage) {
                continue;
            }
            self.boundary(lease, shutdown).await?;
            self.prepare_context(stage, &chain, &mut repo, base, &shown)
                .await?;
            let span = tracing::info_span!("stage", stage = %stage);
            self.run_stage(
                stage,
                task,
                lease,
                &mut chain,
                &repo,
                base,
                Some(revision.id),
            )
            .instrument(span)
            .await?;
        }

        let thresholds = self.settings.thresholds;
        let mut consensus = consensus::decide(votes(&chain, thresholds), thresholds)
            .hold(evidence::holds(&chain, self.settings.verify_optional));
        self.boundary(lease, shutdown).await?;
        if consensus.decision == Decision::Approved {
            consensus = self.recheck(&chain, consensus, base).await?;
        }
        let verification = chain
            .verification()
            .map_or_else(|| "not verified".to_owned(), |v| v.summary());
        info!(
            score = %consensus::score_text(consensus.score, Some(thresholds)),
            decision = consensus.decision.as_str(),
            held = consensus.held.len(),
            "revision consensus"
        );
        if consensus.decision != Decision::Approved {
            let body = not_approved_body(revision.number, &consensus, thresholds, &verification);
            self.comment_once(pr.number, revision.number, &body).await;
            self.needs_rebase(&pr, revision).await;
            return Ok(RevisionEnd::NotApproved {
                consensus,
                verification,
            });
        }
        let change = BranchChange {
            branch: pr.branch.clone(),
            files: chain.files_to_write(),
            message: commit_message(task, revision, &feedback, &chain, &consensus),
        };
        let pushed = match &preview {
            Some(preview) => self.publisher.push_resolved_merge(preview, change).await,
            None => self.publisher.push_revision(&head, change).await,
        };
        let commit = match pushed {
            // Someone pushed to the branch meanwhile: this revision is not built on it.
            Err(publish::PublishError::Git(e @ GitError::PushRejected { .. })) => {
                return Err(TaskFailure::Revision(e.to_string()).into());
            }
            pushed => pushed?,
        };
        info!(commit = %commit.commit, reused = commit.reused, "revision pushed");
        self.answer(&pr, revision, &feedback, &chain, &commit, &verification)
            .await?;
        Ok(RevisionEnd::Pushed {
            consensus,
            commit: commit.commit,
            reused: commit.reused,
            verification,
        })
    }

    /// The base merged into the branch without a conflict: pushes the merge commit `merge`
    /// (a fast-forward of `head`) and says so on the PR; no role is asked.
    async fn merge_cleanly(
        &self,
        pr: &OpenPr,
        revision: &Revision,
        head: &str,
        merge: &str,
    ) -> Result<RevisionEnd, Stop> {
        let commit = match self.publisher.push_merge(&pr.branch, head, merge).await {
            Err(publish::PublishError::Git(e @ GitError::PushRejected { .. })) => {
                return Err(TaskFailure::Revision(e.to_string()).into());
            }
            pushed => pushed?,
        };
        info!(commit = %commit.commit, reused = commit.reused, "merged the base into the branch");
        let body = format!(
            "## Revision {}: merged the base into the branch\n\nMerge commit {}, without conflicts.",
            revision.number, commit.commit
        );
        self.comment_once(pr.number, revision.number, &body).await;
        Ok(RevisionEnd::Merged {
            commit: commit.commit,
            reused: commit.reused,
        })
    }

    /// After a conflict revision that pushed nothing: labels the PR `needs-rebase` (logged
    /// when GitHub refuses).
    async fn needs_rebase(&self, pr: &OpenPr, revision: &Revision) {
        if revision.trigger != RevisionTrigger::Conflict {
            return;
        }
        let label = ["needs-rebase".to_owned()];
        if let Err(e) = self.publisher.label(pr.number, &label).await {
            warn!(pr = pr.number, error = %e, "cannot label the pull request needs-rebase");
        }
    }

    /// Replies in each inline thread with a new note, then posts the summary — each only when
    /// the conversation does not hold it yet (it carries the revision's marker).
    async fn answer(
        &self,
        pr: &OpenPr,
        revision: &Revision,
        feedback: &Feedback,
        chain: &Chain,
        commit: &BranchCommit,
        verification: &str,
    ) -> Result<(), Stop> {
        let marker = marker(revision.number);
        let posted = self.publisher.conversation(pr.number).await?;
        let written = |p: &&Posted| p.note.body.contains(&marker);
        let replied: Vec<Option<u64>> = posted
            .iter()
            .filter(written)
            .map(|p| p.note.thread())
            .collect();
        let summarised = posted
            .iter()
            .filter(written)
            .any(|p| p.note.kind == NoteKind::Comment);
        let answers = answers(chain);
        let short = &commit.commit[..commit.commit.len().min(12)];
        let mut threads: BTreeMap<u64, Vec<&Note>> = BTreeMap::new();
        for note in revision.feedback.new_notes() {
            if let Some(thread) = note.thread() {
                threads.entry(thread).or_default().push(note);
            }
        }
        for (thread, notes) in threads {
            if replied.contains(&Some(thread)) {
                continue;
            }
            let text: Vec<String> = notes
                .iter()
                .filter_map(|n| answers.get(&n.id).cloned())
                .collect();
            let text = if text.is_empty() {
                "Addressed in this revision.".to_owned()
            } else {
                text.join("\n\n")
            };
            let body = format!(
                "{text}\n\n(revision {}, commit {short}){}",
                revision.number,
                footer(&marker)
            );
            self.publisher.reply(pr.number, thread, &body).await?;
        }
        if !summarised {
            let body = summary_body(revision, feedback, chain, &answers, short, verification);
            self.publisher.comment(pr.number, &body).await?;
        }
        Ok(())
    }

    /// Posts `body` (with the marker of revision `number`) unless the conversation holds it;
    /// a failure is logged, not fatal (the revision's end is recorded anyway).
    async fn comment_once(&self, pr: u64, number: i32, body: &str) {
        let marker = marker(number);
        let result = async {
            let posted = self.publisher.conversation(pr).await?;
            let written = posted
                .iter()
                .any(|p| p.note.kind == NoteKind::Comment && p.note.body.contains(&marker));
            if !written {
                self.publisher
                    .comment(pr, &format!("{body}{}", footer(&marker)))
                    .await?;
            }
            Ok::<(), publish::PublishError>(())
        }
        .await;
        if let Err(e) = result {
            warn!(pr, error = %e, "cannot comment on the pull request");
        }
    }
}

/// The task's opened PR, from its outcome.
fn open_pr(task: &Task) -> Option<OpenPr> {
    match &task.result {
        Some(Outcome::Approved {
            branch,
            publication: Publication::Opened(pr),
            ..
        }) => Some(OpenPr {
            number: pr.number,
            branch: branch.branch.clone(),
        }),
        _ => None,
    }
}

/// The paths an Engineer record wrote.
fn written_paths(output: &serde_json::Value) -> Vec<String> {
    serde_json::from_value::<crate::agents::EngineerOutput>(output.clone())
        .map(|e| e.files.into_iter().map(|f| f.path).collect())
        .unwrap_or_default()
}

/// The Engineer's answer per note id.
fn answers(chain: &Chain) -> BTreeMap<u64, String> {
    chain
        .engineer
        .iter()
        .flat_map(|e| &e.responses)
        .map(|r| (r.note, r.answer.trim().to_owned()))
        .collect()
}

/// The marker of revision `number`'s notes: `<!-- autonomous-dev revision N -->`.
fn marker(number: i32) -> String {
    format!("<!-- autonomous-dev revision {number} -->")
}

/// The end of every note of a revision: its marker and [`OWN_MARKER`].
fn footer(marker: &str) -> String {
    format!("\n\n{marker}\n{OWN_MARKER}")
}

/// `[Autonomous] Revision N: <title>` (for a conflict: `Merge the base into <branch>` and the
/// files resolved), the Engineer's summary, and the trailers `Task:`, `Revision:` and
/// `Consensus:`.
fn commit_message(
    task: &Task,
    revision: &Revision,
    feedback: &Feedback,
    chain: &Chain,
    consensus: &Consensus,
) -> String {
    let number = revision.number;
    let summary = chain
        .engineer
        .as_ref()
        .map(|e| e.summary.trim())
        .unwrap_or_default();
    let subject = if feedback.conflicts.is_empty() {
        format!("[Autonomous] Revision {number}: {}", task.title(60))
    } else {
        format!(
            "[Autonomous] Revision {number}: merge the base, resolving {}",
            feedback.conflicts.join(", ")
        )
    };
    format!(
        "{subject}\n\n{summary}\n\nTask: {}\nRevision: {number}\nConsensus: {}%\n",
        task.task_id,
        consensus::score_text(consensus.score, None)
    )
}

/// The PR comment of a pushed revision: the commit, the Engineer's summary, what changed per
/// new note (or which checks failed), and the verification.
fn summary_body(
    revision: &Revision,
    feedback: &Feedback,
    chain: &Chain,
    answers: &BTreeMap<u64, String>,
    commit: &str,
    verification: &str,
) -> String {
    let summary = chain
        .engineer
        .as_ref()
        .map(|e| e.summary.trim())
        .unwrap_or_default();
    if !feedback.conflicts.is_empty() {
        let paths: Vec<String> = feedback
            .conflicts
            .iter()
            .map(|p| format!("`{}`", p.replace('`', "'")))
            .collect();
        let mut body = format!(
            "## Revision {}: merged the base into the branch ({commit})\n\nConflicts resolved in {}.\n\n{summary}\n",
            revision.number,
            paths.join(", ")
        );
        body.push_str(&format!("\n**Verification:** {}", one_line(verification)));
        body.push_str(&footer(&marker(revision.number)));
        return body;
    }
    let checks = &feedback.checks;
    if !checks.is_empty() {
        let failed: Vec<String> = checks
            .iter()
            .map(|c| format!("`{}` ({})", c.name.replace('`', "'"), c.conclusion))
            .collect();
        let mut body = format!(
            "## Revision {}: pushed {commit} to fix failing checks\n\nFailed: {}.\n\n{summary}\n",
            revision.number,
            failed.join(", ")
        );
        body.push_str(&format!("\n**Verification:** {}", one_line(verification)));
        body.push_str(&footer(&marker(revision.number)));
        return body;
    }
    let mut body = format!(
        "## Revision {}: pushed {commit}\n\n{summary}\n\n| Note | What changed |\n|---|---|\n",
        revision.number
    );
    for note in revision.feedback.new_notes() {
        let what = match &note.kind {
            NoteKind::Review { .. } => format!("review by @{}", note.author),
            NoteKind::Inline { path, line, .. } => match line {
                Some(line) => format!("`{path}:{line}` by @{}", note.author),
                None => format!("`{path}` by @{}", note.author),
            },
            NoteKind::Comment => format!("comment by @{}", note.author),
        };
        let answer = answers.get(&note.id).map_or("–", String::as_str);
        body.push_str(&format!(
            "| {} | {} |\n",
            publish::table_cell(&what),
            publish::table_cell(answer)
        ));
    }
    body.push_str(&format!("\n**Verification:** {}", one_line(verification)));
    body.push_str(&footer(&marker(revision.number)));
    body
}

/// The PR comment of a revision consensus did not approve: the score, what held it, the votes.
fn not_approved_body(
    number: i32,
    consensus: &Consensus,
    thresholds: consensus::Thresholds,
    verification: &str,
) -> String {
    let mut body = format!(
        "## Revision {number}: not pushed\n\nConsensus {}% ({}; approve threshold {}%).",
        consensus::score_text(consensus.score, Some(thresholds)),
        consensus::verdict(consensus.score, thresholds),
        thresholds.approve
    );
    if !consensus.held.is_empty() {
        body.push_str(&format!(" Held: {}.", consensus.held.join("; ")));
    }
    body.push_str("\n\n| Role | Score | Rationale |\n|---|---|---|\n");
    for vote in &consensus.votes {
        let score = vote.score.map_or_else(|| "–".into(), |s| format!("{s:.0}"));
        body.push_str(&format!(
            "| {} | {score} | {} |\n",
            vote.role.role_name(),
            publish::table_cell(&vote.rationale)
        ));
    }
    body.push_str(&format!("\n**Verification:** {}", one_line(verification)));
    body
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
