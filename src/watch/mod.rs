//! The PR watch: after a task's pull request is opened, the daemon keeps looking at it until it
//! is merged or closed, and records what it saw on the task (`tasks.pr_state`). Each look is one
//! conditional request (If-None-Match with the last ETag): GitHub answers 304 when nothing
//! changed, and a 304 does not count against its rate limit. A sweep looks at every PR due
//! (not looked at for PR_POLL_SECONDS), at most PR_WATCH_MAX of them, least recently looked at
//! first, and logs the requests it sent, how many were 304s and the rate-limit budget left.
//!
//! When a look at an open PR answers 200 (something changed: GitHub updates a PR's
//! `updated_at`, and so its ETag, when it is reviewed or commented on), the watch reads its
//! conversation (`feedback.rs`): a new review, inline comment or mention by a person with
//! write permission requests a revision of the task (MAX_REVISIONS per PR), which the daemon's
//! queue then runs like a task. Every look also reads the checks of the PR's head
//! (`checks.rs`, conditional requests too): once they have ended and some failed, a revision
//! fixes them (MAX_CI_FIXES). A PR that no longer merges into its base gets a revision that
//! merges the base in.
//!
//! Data flows store → watch → github → store; a failed look is logged and tried again at the
//! next sweep (a rate limit ends the sweep early), never fatal to the daemon.

mod checks;
mod feedback;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::github::{GitHub, GitHubError};
use crate::shutdown::Shutdown;
use crate::store::{RevisionAsk, RevisionRequest, Store, StoreError, WatchedPr};
use crate::task::{
    ChecksSeen, FailedCheck, Feedback, OWN_MARKER, PrSeen, PrState, RevisionTrigger,
};

/// How the watch runs.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Time between two looks at one PR, and between sweeps (PR_POLL_SECONDS).
    pub every: Duration,
    /// Most PRs looked at in one sweep (PR_WATCH_MAX): the sweep's request budget.
    pub max_per_sweep: u32,
    /// Most revisions of one PR (MAX_REVISIONS); 0 turns revisions off.
    pub max_revisions: u32,
    /// Text that, in a review or PR comment, asks for a revision (REVISION_TRIGGER), besides
    /// `@<login>` of the daemon's account.
    pub trigger: String,
    /// Most revisions of one PR for failing checks (MAX_CI_FIXES); 0 turns them off.
    pub max_ci_fixes: u32,
    /// Checks (check run names, commit status contexts) whose failure is not acted on
    /// (IGNORED_CHECKS).
    pub ignored_checks: Vec<String>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Requests sent.
    pub requests: u32,
    /// Of them, answered 304 Not Modified.
    pub not_modified: u32,
    /// PRs whose state changed (first look included).
    pub changed: u32,
    /// Looks that failed (logged; tried again next sweep).
    pub failed: u32,
    /// Revisions requested.
    pub revisions: u32,
    /// `x-ratelimit-remaining` of the last answer.
    pub rate_limit_remaining: Option<u64>,
}

/// Looks at the opened PRs of `store`'s tasks on `github`.
pub struct Watcher {
    store: Store,
    github: Arc<GitHub>,
    settings: WatchSettings,
    /// The token's login, asked of GitHub once.
    login: OnceCell<String>,
}

impl Watcher {
    pub fn new(store: Store, github: Arc<GitHub>, settings: WatchSettings) -> Watcher {
        Watcher {
            store,
            github,
            settings,
            login: OnceCell::new(),
        }
    }

    /// Sweeps every PR_POLL_SECONDS until `shutdown`; a database failure is logged and the next
    /// sweep tries again.
    pub async fn run(&self, shutdown: &Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(e) = self.sweep().await {
                warn!(error = %e, "PR watch: cannot read or record the PRs to look at");
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.every) => {}
                () = shutdown.triggered() => {}
            }
        }
    }

    /// One sweep: looks once at each PR due and records what it saw; logs the sweep when it
    /// sent a request.
    ///
    /// Errors: [`StoreError`] when the due PRs cannot be read or a look cannot be recorded
    /// (GitHub's failures are counted in [`Sweep::failed`], not returned).
    pub async fn sweep(&self) -> Result<Sweep, StoreError> {
        let due = self
            .store
            .prs_due(self.settings.every, i64::from(self.settings.max_per_sweep))
            .await?;
        let mut sweep = Sweep::default();
        // Write permission by login, asked once a sweep.
        let mut writers = HashMap::new();
        for pr in due {
            sweep.requests += 1;
            let look = match self
                .github
                .pull_request_state(pr.number, pr.etag.as_deref())
                .await
            {
                Ok(look) => look,
                Err(e) => {
                    sweep.failed += 1;
                    warn!(task_id = %pr.task_id, pr = pr.number, error = %e, "PR watch: cannot look at the pull request");
                    if e.is_rate_limited() {
                        break;
                    }
                    continue;
                }
            };
            sweep.rate_limit_remaining = look.rate_limit_remaining.or(sweep.rate_limit_remaining);
            match &look.seen {
                PrSeen::NotModified => sweep.not_modified += 1,
                PrSeen::State { state, .. } if Some(*state) != pr.state => {
                    sweep.changed += 1;
                    if *state == PrState::Merged {
                        crate::metrics::global().prs_merged.inc();
                    }
                    info!(task_id = %pr.task_id, pr = pr.number, state = state.as_str(), "pull request state");
                }
                PrSeen::State { .. } => {}
            }
            if self
                .follow(&pr, &look.seen, &mut writers, &mut sweep)
                .await?
                == Next::Stop
            {
                break;
            }
        }
        if sweep.requests > 0 {
            info!(
                requests = sweep.requests,
                not_modified = sweep.not_modified,
                changed = sweep.changed,
                failed = sweep.failed,
                revisions = sweep.revisions,
                rate_limit_remaining = sweep.rate_limit_remaining,
                "PR watch sweep"
            );
        }
        Ok(sweep)
    }
}

/// Whether a sweep goes on after a PR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Go,
    /// GitHub rate-limited us: the sweep ends.
    Stop,
}

/// Why a conversation or the checks were not read.
enum Unread {
    GitHub(GitHubError),
    Store(StoreError),
}

impl From<GitHubError> for Unread {
    fn from(e: GitHubError) -> Self {
        Unread::GitHub(e)
    }
}

impl From<StoreError> for Unread {
    fn from(e: StoreError) -> Self {
        Unread::Store(e)
    }
}

impl Watcher {
    /// What follows a look at `pr` that saw `seen`: for an open PR that changed, its
    /// conversation is read (and only then the look recorded: a failed read leaves the old
    /// ETag, so the next look answers 200 and the read is tried again); the look is recorded;
    /// a conflict with the base and the head's checks are acted on.
    async fn follow(
        &self,
        pr: &WatchedPr,
        seen: &PrSeen,
        writers: &mut HashMap<String, bool>,
        sweep: &mut Sweep,
    ) -> Result<Next, StoreError> {
        let (open, head, conflicted) = match seen {
            PrSeen::State {
                state,
                head,
                conflicted,
                ..
            } => (*state == PrState::Open, head.clone(), *conflicted),
            PrSeen::NotModified => (pr.state == Some(PrState::Open), None, false),
        };
        let revisions = self.settings.max_revisions > 0;
        if open && revisions && matches!(seen, PrSeen::State { .. }) {
            match self.read_conversation(pr, writers).await {
                Ok(requested) => sweep.revisions += u32::from(requested),
                Err(Unread::GitHub(e)) => {
                    warn!(task_id = %pr.task_id, pr = pr.number, error = %e, "PR watch: cannot read the pull request's conversation");
                    sweep.failed += 1;
                    return Ok(if e.is_rate_limited() {
                        Next::Stop
                    } else {
                        Next::Go
                    });
                }
                Err(Unread::Store(e)) => return Err(e),
            }
        }
        self.store.record_pr(&pr.task_id, seen).await?;
        if let Some(head) = &head
            && open
            && revisions
            && conflicted
            && pr.conflict_head.as_ref() != Some(head)
        {
            sweep.revisions += u32::from(self.follow_base(pr, head).await?);
        }
        let Some(head) = head.or(pr.head.clone()) else {
            return Ok(Next::Go);
        };
        if !open || self.settings.max_ci_fixes == 0 {
            return Ok(Next::Go);
        }
        match self.look_at_checks(pr, &head).await {
            Ok(requested) => sweep.revisions += u32::from(requested),
            Err(Unread::GitHub(e)) => {
                warn!(task_id = %pr.task_id, pr = pr.number, error = %e, "PR watch: cannot read the checks of the pull request's head");
                sweep.failed += 1;
                if e.is_rate_limited() {
                    return Ok(Next::Stop);
                }
            }
            Err(Unread::Store(e)) => return Err(e),
        }
        Ok(Next::Go)
    }

    /// Reads open PR `pr`'s conversation and requests a revision when a new note by a person
    /// with write permission asks for one (`writers` caches permissions for the sweep). At
    /// MAX_REVISIONS, says so once in a PR comment instead. True when a revision was
    /// requested.
    async fn read_conversation(
        &self,
        pr: &WatchedPr,
        writers: &mut HashMap<String, bool>,
    ) -> Result<bool, Unread> {
        let login = self.login.get_or_try_init(|| self.github.login()).await?;
        let posted = self.github.conversation(pr.number).await?;
        let cursor = pr.cursor.unwrap_or_default();
        let mentions = [self.settings.trigger.clone(), format!("@{login}")];
        let reading = feedback::read(&posted, cursor, login, &mentions);
        let mut asked = false;
        if !reading.askers.is_empty() {
            for p in &posted {
                let author = &p.note.author;
                if !p.bot && !feedback::is_ours(p, login) && !writers.contains_key(author) {
                    let may = self.github.can_write(author).await?;
                    writers.insert(author.clone(), may);
                }
            }
            asked = reading
                .askers
                .iter()
                .any(|a| writers.get(a).copied().unwrap_or(false));
            if !asked {
                info!(task_id = %pr.task_id, pr = pr.number, authors = ?reading.askers, "PR watch: feedback by users without write permission is ignored");
            }
        }
        if !asked {
            if Some(reading.cursor) != pr.cursor {
                self.store
                    .set_seen(&pr.task_id, Some(reading.cursor), None)
                    .await?;
            }
            return Ok(false);
        }
        let feedback = feedback::feedback(&posted, cursor, login, writers);
        let ask = RevisionAsk {
            trigger: RevisionTrigger::Review,
            feedback: &feedback,
            cursor: Some(reading.cursor),
            checks: None,
            conflict_head: None,
            max: self.settings.max_revisions,
        };
        let request = self.store.request_revision(&pr.task_id, ask).await?;
        match request {
            RevisionRequest::Requested { number } => {
                info!(task_id = %pr.task_id, pr = pr.number, revision = number, new_notes = feedback.new_notes().count(), "revision requested");
                Ok(true)
            }
            RevisionRequest::Exhausted => {
                let max = self.settings.max_revisions;
                info!(task_id = %pr.task_id, pr = pr.number, max_revisions = max, "feedback after MAX_REVISIONS revisions: not revising");
                let body = format!(
                    "This pull request has had {max} revisions (MAX_REVISIONS), so I will not \
                     revise it again. Please push the remaining changes yourself.\n\n{OWN_MARKER}"
                );
                self.say(pr, &body).await;
                Ok(false)
            }
            RevisionRequest::Repeated | RevisionRequest::Busy => Ok(false),
        }
    }

    /// PR `pr` no longer merges into its base at head `head`: requests a revision that merges
    /// the base into the branch (MAX_REVISIONS per PR), once per head. True when requested.
    async fn follow_base(&self, pr: &WatchedPr, head: &str) -> Result<bool, StoreError> {
        let feedback = Feedback::default();
        let max = self.settings.max_revisions;
        let ask = RevisionAsk {
            trigger: RevisionTrigger::Conflict,
            feedback: &feedback,
            cursor: None,
            checks: None,
            conflict_head: Some(head),
            max,
        };
        match self.store.request_revision(&pr.task_id, ask).await? {
            RevisionRequest::Requested { number } => {
                info!(task_id = %pr.task_id, pr = pr.number, revision = number, "the pull request conflicts with its base: revision requested to merge it");
                Ok(true)
            }
            RevisionRequest::Exhausted => {
                let body = format!(
                    "This pull request conflicts with its base, but it has had {max} merges of \
                     the base (MAX_REVISIONS), so I will not merge again: it needs a rebase by a \
                     person.\n\n{OWN_MARKER}"
                );
                self.say(pr, &body).await;
                Ok(false)
            }
            RevisionRequest::Repeated | RevisionRequest::Busy => Ok(false),
        }
    }

    /// Reads the checks of PR `pr`'s head commit `head` (conditional requests: unchanged
    /// checks cost two 304s) and, once every check has ended and some failed, requests a
    /// revision to fix them — at most MAX_CI_FIXES per PR, and not when they fail as before
    /// the last fix (said in a PR comment instead). A head's failure is acted on once. True
    /// when a revision was requested.
    async fn look_at_checks(&self, pr: &WatchedPr, head: &str) -> Result<bool, Unread> {
        let seen = pr
            .checks
            .clone()
            .filter(|c| c.head == head)
            .unwrap_or_else(|| ChecksSeen {
                head: head.to_owned(),
                ..ChecksSeen::default()
            });
        if seen.acted {
            return Ok(false);
        }
        let gh = &self.github;
        let runs = gh.check_runs(head, seen.runs_etag.as_deref()).await?;
        let statuses = gh
            .commit_statuses(head, seen.status_etag.as_deref())
            .await?;
        if runs.is_none() && statuses.is_none() && pr.checks.as_ref() == Some(&seen) {
            return Ok(false);
        }
        // One changed (or the head is new): the verdict needs both.
        let (runs, runs_etag) = match runs {
            Some(runs) => runs,
            None => gh.check_runs(head, None).await?.unwrap_or_default(),
        };
        let (statuses, status_etag) = match statuses {
            Some(statuses) => statuses,
            None => gh.commit_statuses(head, None).await?.unwrap_or_default(),
        };
        let mut seen = ChecksSeen {
            head: head.to_owned(),
            runs_etag,
            status_etag,
            acted: false,
        };
        let checks::Verdict::Failed(failed_runs, failed_statuses) =
            checks::verdict(&runs, &statuses, &self.settings.ignored_checks)
        else {
            self.store.set_seen(&pr.task_id, None, Some(&seen)).await?;
            return Ok(false);
        };
        let mut failed = Vec::new();
        for run in failed_runs {
            failed.push(self.failed_check(run).await);
        }
        failed.extend(failed_statuses.into_iter().map(|s| FailedCheck {
            name: s.context.clone(),
            conclusion: s.state.clone(),
            title: s.description.clone(),
            ..FailedCheck::default()
        }));
        let names: Vec<String> = failed.iter().map(|c| c.name.clone()).collect();
        seen.acted = true;
        let feedback = Feedback {
            checks: failed,
            ..Feedback::default()
        };
        let max = self.settings.max_ci_fixes;
        let ask = RevisionAsk {
            trigger: RevisionTrigger::Check,
            feedback: &feedback,
            cursor: None,
            checks: Some(&seen),
            conflict_head: None,
            max,
        };
        match self.store.request_revision(&pr.task_id, ask).await? {
            RevisionRequest::Requested { number } => {
                info!(task_id = %pr.task_id, pr = pr.number, revision = number, checks = ?names, "revision requested to fix failing checks");
                Ok(true)
            }
            RevisionRequest::Exhausted => {
                info!(task_id = %pr.task_id, pr = pr.number, checks = ?names, max_ci_fixes = max, "checks fail after MAX_CI_FIXES fixes: not fixing");
                let body = format!(
                    "Checks failed ({}), but this pull request has had {max} fixes for failing \
                     checks (MAX_CI_FIXES), so I will not try again.\n\n{OWN_MARKER}",
                    names.join(", ")
                );
                self.say(pr, &body).await;
                Ok(false)
            }
            RevisionRequest::Repeated => {
                info!(task_id = %pr.task_id, pr = pr.number, checks = ?names, "checks fail the same way after the last fix: stopping");
                let body = format!(
                    "Checks failed ({}) the same way as before my last fix, twice in a row, so I \
                     stop trying: this needs a person.\n\n{OWN_MARKER}",
                    names.join(", ")
                );
                self.say(pr, &body).await;
                Ok(false)
            }
            RevisionRequest::Busy => Ok(false),
        }
    }

    /// What failed in check run `run`: its output, its annotations and, for a GitHub Actions
    /// job, its log's end. A part GitHub will not give is left out (logged).
    async fn failed_check(&self, run: &crate::github::CheckRun) -> FailedCheck {
        let mut check = FailedCheck {
            name: run.name.clone(),
            conclusion: run.conclusion.clone().unwrap_or_default(),
            title: run.title.clone(),
            summary: cut(&run.summary),
            text: cut(&run.text),
            ..FailedCheck::default()
        };
        if run.annotations_count > 0 {
            match self.github.annotations(run.id).await {
                Ok(annotations) => check.annotations = annotations,
                Err(e) => {
                    warn!(check = %run.name, error = %e, "cannot read the check run's annotations")
                }
            }
        }
        if run.actions {
            match self.github.job_log_tail(run.id).await {
                Ok(tail) => check.log_tail = tail,
                Err(e) => warn!(check = %run.name, error = %e, "cannot read the job's log"),
            }
        }
        check
    }

    /// Posts `body` on PR `pr`; a failure is logged.
    async fn say(&self, pr: &WatchedPr, body: &str) {
        if let Err(e) = self.github.comment(pr.number, body).await {
            warn!(task_id = %pr.task_id, pr = pr.number, error = %e, "cannot comment on the pull request");
        }
    }
}

/// `text` cut to its first [`crate::github::LOG_TAIL_BYTES`] bytes (at a character boundary).
fn cut(text: &str) -> String {
    let mut end = text.len().min(crate::github::LOG_TAIL_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
