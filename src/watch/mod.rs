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
//! queue then runs like a task.
//!
//! Data flows store → watch → github → store; a failed look is logged and tried again at the
//! next sweep (a rate limit ends the sweep early), never fatal to the daemon.

mod feedback;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::github::{GitHub, GitHubError};
use crate::shutdown::Shutdown;
use crate::store::{RevisionRequest, Store, StoreError, WatchedPr};
use crate::task::{OWN_MARKER, PrSeen, PrState, RevisionTrigger};

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
                    info!(task_id = %pr.task_id, pr = pr.number, state = state.as_str(), "pull request state");
                }
                PrSeen::State { .. } => {}
            }
            if let PrSeen::State {
                state: PrState::Open,
                ..
            } = &look.seen
                && self.settings.max_revisions > 0
            {
                // Recorded only once the conversation is read: a failed read leaves the
                // old ETag, so the next look answers 200 and the read is tried again.
                match self.read_conversation(&pr, &mut writers).await {
                    Ok(requested) => sweep.revisions += u32::from(requested),
                    Err(Unread::GitHub(e)) => {
                        sweep.failed += 1;
                        warn!(task_id = %pr.task_id, pr = pr.number, error = %e, "PR watch: cannot read the pull request's conversation");
                        if e.is_rate_limited() {
                            break;
                        }
                        continue;
                    }
                    Err(Unread::Store(e)) => return Err(e),
                }
            }
            self.store.record_pr(&pr.task_id, &look.seen).await?;
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

/// Why a conversation was not read.
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
                    .set_feedback_cursor(&pr.task_id, reading.cursor)
                    .await?;
            }
            return Ok(false);
        }
        let feedback = feedback::feedback(&posted, cursor, login, writers);
        let request = self
            .store
            .request_revision(
                &pr.task_id,
                RevisionTrigger::Review,
                &feedback,
                reading.cursor,
                self.settings.max_revisions,
            )
            .await?;
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
                if let Err(e) = self.github.comment(pr.number, &body).await {
                    warn!(task_id = %pr.task_id, pr = pr.number, error = %e, "cannot say on the pull request that no revision follows");
                }
                Ok(false)
            }
            RevisionRequest::Busy => Ok(false),
        }
    }
}
