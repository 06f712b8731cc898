//! The PR watch: after a task's pull request is opened, the daemon keeps looking at it until it
//! is merged or closed, and records what it saw on the task (`tasks.pr_state`). Each look is one
//! conditional request (If-None-Match with the last ETag): GitHub answers 304 when nothing
//! changed, and a 304 does not count against its rate limit. A sweep looks at every PR due
//! (not looked at for PR_POLL_SECONDS), at most PR_WATCH_MAX of them, least recently looked at
//! first, and logs the requests it sent, how many were 304s and the rate-limit budget left.
//!
//! Data flows store → watch → github → store; a failed look is logged and tried again at the
//! next sweep (a rate limit ends the sweep early), never fatal to the daemon.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::github::GitHub;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use crate::task::PrSeen;

/// How the watch runs.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Time between two looks at one PR, and between sweeps (PR_POLL_SECONDS).
    pub every: Duration,
    /// Most PRs looked at in one sweep (PR_WATCH_MAX): the sweep's request budget.
    pub max_per_sweep: u32,
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
    /// `x-ratelimit-remaining` of the last answer.
    pub rate_limit_remaining: Option<u64>,
}

/// Looks at the opened PRs of `store`'s tasks on `github`.
pub struct Watcher {
    store: Store,
    github: Arc<GitHub>,
    settings: WatchSettings,
}

impl Watcher {
    pub fn new(store: Store, github: Arc<GitHub>, settings: WatchSettings) -> Watcher {
        Watcher {
            store,
            github,
            settings,
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
                    if *state == crate::task::PrState::Merged {
                        crate::metrics::global().prs_merged.inc();
                    }
                    info!(task_id = %pr.task_id, pr = pr.number, state = state.as_str(), "pull request state");
                }
                PrSeen::State { .. } => {}
            }
            self.store.record_pr(&pr.task_id, &look.seen).await?;
        }
        if sweep.requests > 0 {
            info!(
                requests = sweep.requests,
                not_modified = sweep.not_modified,
                changed = sweep.changed,
                failed = sweep.failed,
                rate_limit_remaining = sweep.rate_limit_remaining,
                "PR watch sweep"
            );
        }
        Ok(sweep)
    }
}
