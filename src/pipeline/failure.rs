//! Failures that end a run, and the retry policy that sorts them: transient ones (network,
//! 5xx) send the task back to pending after the shared exponential [`Backoff`], up to
//! `max_attempts`; rate limits, exhausted quotas, provider overload and the spent daily budget
//! *snooze* it (back to pending without spending an attempt); permanent ones (bad credentials,
//! invalid answers, hostile paths) fail it at once with a clear error. Which class an LLM or
//! GitHub error belongs to is decided by that error's own type ([`LlmError::is_transient`],
//! [`crate::github::GitHubError::is_rate_limited`], …), not here.

use std::time::Duration;

use crate::agents::{AgentError, MeterError};
use crate::backoff::Backoff;
use crate::gates::GateReport;
use crate::git::GitError;
use crate::llm::LlmError;
use crate::task::{Outcome, Stage};

use super::publish::PublishError;

/// A failure of one run; its message never contains a secret.
#[derive(Debug, thiserror::Error)]
pub(super) enum TaskFailure {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("publish failed: {0}")]
    Publish(#[from] PublishError),
    #[error("recorded {stage} output is unreadable: {error}")]
    Corrupt { stage: Stage, error: String },
    /// A gate refused the change (a secret, a binary or oversized file, too many files).
    #[error("{}", .0.block_reason().unwrap_or_default())]
    Gate(Box<GateReport>),
    /// The Engineer's last round of edits did not apply.
    #[error("the Engineer's edits did not apply after every repair round: {reason}")]
    Edits { reason: String },
    /// The repository's `.autonomous-dev.toml` on the base is malformed: nothing was asked of
    /// a model. A person fixes the file on the base branch, then retries the task.
    #[error("the repository's settings are malformed: {0}")]
    RepoConfig(#[from] crate::repo_config::RepoConfigError),
    /// Verification could not run: no worktree (disk full, temp dir unwritable) or the
    /// sandbox did not start. Nothing ran; worth another attempt.
    #[error("cannot verify the change: {0}")]
    Verify(String),
    /// What an approval would publish is not what was gated and verified (a stage record was
    /// rewritten after the Security stage): nothing was pushed.
    #[error(
        "the change to publish is not the one gated and verified ({path} differs from the \
         recorded evidence); nothing was pushed"
    )]
    ChangedAfterGates { path: String },
    /// A revision of the task's PR cannot go on (no PR, its branch gone, cancelled).
    #[error("revision: {0}")]
    Revision(String),
}

impl TaskFailure {
    /// The outcome of a task this failure ends: budget exceeded (MAX_TASK_COST_USD), refused by
    /// the gates (with their report), or any other error; each carries the error's message.
    pub(super) fn result(&self) -> Outcome {
        let error = self.to_string();
        match self {
            TaskFailure::Agent(AgentError::Meter(MeterError::TaskBudget(_))) => {
                Outcome::BudgetExceeded { error }
            }
            TaskFailure::Gate(report) => Outcome::RefusedByGates {
                error,
                gates: report.as_ref().clone(),
            },
            _ => Outcome::Error { error },
        }
    }

    /// What a pause for this failure is for.
    pub(super) fn pause_reason(&self) -> super::PauseReason {
        match kind(self) {
            Kind::Paused(_) => super::PauseReason::DailyBudget,
            Kind::Overloaded => super::PauseReason::Overloaded,
            _ => super::PauseReason::RateLimited,
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Fail the task now.
    Never,
    /// Back to pending, claimable after `delay`, with one of the task's attempts spent.
    After { delay: Duration },
    /// A *snooze*, in River's (the Go job queue's) sense: back to pending, claimable after
    /// `delay`, without spending an attempt, because the task is not at fault (a rate limit,
    /// an exhausted quota, an overloaded provider, the spent daily budget). However often a
    /// task snoozes, it keeps all its attempts for real failures.
    Snooze { delay: Duration },
}

impl Retry {
    /// Whether this retry spends one of the task's attempts: [`Retry::After`] does, a
    /// [`Retry::Snooze`] does not (and [`Retry::Never`] ends the task).
    pub(super) fn spends_attempt(self) -> bool {
        matches!(self, Retry::After { .. })
    }
}

/// Retries as a policy: how often and how late a task that failed transiently runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Claims a task gets before a transient failure fails it (MAX_ATTEMPTS, default 5).
    pub max_attempts: i32,
    /// Backoff ceiling after the first failed attempt; doubled per attempt (the shared
    /// [`Backoff`]: the wait is between half of the ceiling and all of it).
    pub base_delay: Duration,
    /// Upper bound of the backoff.
    pub max_delay: Duration,
    /// Snooze after a rate limit or exhausted quota that outlasted the clients' own waiting.
    pub rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 30 s doubling to at most 1 h, 15 min after a rate limit.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            rate_limit_wait: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The decision for `failure` on the task's `attempts`-th claim (1-based).
    pub(super) fn decide(&self, failure: &TaskFailure, attempts: i32) -> Retry {
        match kind(failure) {
            Kind::Permanent => Retry::Never,
            Kind::RateLimited => Retry::Snooze {
                delay: self.rate_limit_wait,
            },
            Kind::Overloaded => Retry::Snooze {
                delay: self.backoff(1),
            },
            Kind::Paused(until) => Retry::Snooze {
                delay: (until - chrono::Utc::now()).to_std().unwrap_or_default(),
            },
            Kind::Transient if attempts >= self.max_attempts => Retry::Never,
            Kind::Transient => Retry::After {
                delay: self.backoff(attempts),
            },
        }
    }

    /// The wait after the task's `attempts`-th failed claim (1-based; less than 1 counts as
    /// 1): the shared [`Backoff`] from `base_delay` to `max_delay`, i.e. a random wait between
    /// half of `base_delay · 2^(attempts−1)` (capped at `max_delay`) and all of it.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let retry = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0);
        Backoff::new(self.base_delay, self.max_delay).delay(retry)
    }
}

enum Kind {
    Transient,
    /// The provider is overloaded (Anthropic's 529 storms): the task is not at fault, so it
    /// snoozes for the first backoff step.
    Overloaded,
    /// A rate limit or an exhausted quota: snooze for `rate_limit_wait`.
    RateLimited,
    /// The daily budget is spent: no work until then (midnight UTC).
    Paused(chrono::DateTime<chrono::Utc>),
    Permanent,
}

fn kind(failure: &TaskFailure) -> Kind {
    match failure {
        TaskFailure::Agent(AgentError::Llm(e)) => llm_kind(e),
        TaskFailure::Agent(AgentError::Invalid { .. }) => Kind::Permanent,
        TaskFailure::Agent(AgentError::Meter(e)) => match e {
            MeterError::TaskBudget(_) => Kind::Permanent,
            MeterError::DailyBudget { resume_at, .. } => Kind::Paused(*resume_at),
            MeterError::Ledger(_) => Kind::Transient,
        },
        TaskFailure::Gate(_)
        | TaskFailure::Edits { .. }
        | TaskFailure::ChangedAfterGates { .. }
        | TaskFailure::RepoConfig(_)
        | TaskFailure::Revision(_) => Kind::Permanent,
        TaskFailure::Verify(_) => Kind::Transient,
        TaskFailure::Publish(PublishError::GitHub(e)) if e.is_rate_limited() => Kind::RateLimited,
        TaskFailure::Publish(PublishError::GitHub(e)) if e.is_transient() => Kind::Transient,
        TaskFailure::Publish(PublishError::Git(
            GitError::Remote(_) | GitError::PushRejected { .. },
        )) => Kind::Transient,
        TaskFailure::Publish(PublishError::Worker(_)) => Kind::Transient,
        TaskFailure::Publish(_) | TaskFailure::Corrupt { .. } => Kind::Permanent,
    }
}

/// An LLM error's class, as the error itself says: a rate limit or an exhausted quota ("wait
/// for a person to pay", not "this task is broken") and overload snooze, other transient
/// errors back off, the rest is permanent.
fn llm_kind(e: &LlmError) -> Kind {
    if e.is_rate_limited() || e.is_quota_exhausted() {
        Kind::RateLimited
    } else if e.is_overloaded() {
        Kind::Overloaded
    } else if e.is_transient() {
        Kind::Transient
    } else {
        Kind::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::check_path;

    fn llm(e: LlmError) -> TaskFailure {
        TaskFailure::Agent(AgentError::Llm(e))
    }

    #[test]
    fn transient_failures_back_off_until_attempts_run_out() {
        let policy = RetryPolicy::default();
        let failure = llm(LlmError::Network("reset".into()));
        let retry = policy.decide(&failure, 1);
        let Retry::After { delay } = retry else {
            panic!("first attempt retries: {retry:?}")
        };
        assert!(retry.spends_attempt());
        assert!(delay >= Duration::from_secs(15) && delay <= Duration::from_secs(30));
        let Retry::After { delay } = policy.decide(&failure, 3) else {
            panic!("third attempt retries")
        };
        assert!(delay >= Duration::from_secs(60) && delay <= Duration::from_secs(120));
        assert_eq!(policy.decide(&failure, 5), Retry::Never);
        assert!(policy.backoff(30) <= Duration::from_secs(3600), "capped");
        assert!(policy.backoff(30) >= Duration::from_secs(1800));
    }

    #[test]
    fn rate_limits_snooze() {
        let policy = RetryPolicy::default();
        let failure = llm(LlmError::Unavailable {
            status: 429,
            attempts: 5,
            message: "rate_limit_error".into(),
        });
        let retry = policy.decide(&failure, 5);
        assert_eq!(
            retry,
            Retry::Snooze {
                delay: policy.rate_limit_wait
            }
        );
        assert!(!retry.spends_attempt());
        let broke = llm(LlmError::Api {
            status: 400,
            message:
                "invalid_request_error: Your credit balance is too low to access the Anthropic API."
                    .into(),
        });
        assert_eq!(
            policy.decide(&broke, 1),
            Retry::Snooze {
                delay: policy.rate_limit_wait
            }
        );
        let server_error = llm(LlmError::Unavailable {
            status: 503,
            attempts: 5,
            message: "api_error".into(),
        });
        assert!(policy.decide(&server_error, 1).spends_attempt());
    }

    #[test]
    fn overload_storms_snooze() {
        let policy = RetryPolicy::default();
        let overloaded = llm(LlmError::Unavailable {
            status: 529,
            attempts: 5,
            message: "overloaded_error".into(),
        });
        assert!(matches!(
            policy.decide(&overloaded, 5),
            Retry::Snooze { delay } if delay <= Duration::from_secs(30)
        ));
    }

    #[test]
    fn permanent_failures_fail_at_once() {
        let policy = RetryPolicy::default();
        let auth = llm(LlmError::Auth {
            status: 401,
            message: "invalid x-api-key".into(),
        });
        assert_eq!(policy.decide(&auth, 1), Retry::Never);
        let path = check_path("../etc/passwd").unwrap_err();
        let hostile = TaskFailure::Publish(PublishError::Git(GitError::Path(path)));
        assert_eq!(policy.decide(&hostile, 1), Retry::Never);
        let invalid = TaskFailure::Agent(AgentError::Invalid {
            role: "QA",
            error: "score 150".into(),
        });
        assert_eq!(policy.decide(&invalid, 1), Retry::Never);
    }
}
