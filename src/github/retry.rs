//! When a failed GitHub call may be repeated, and after how long: rate limits are waited out
//! (GitHub docs, "Rate limits for the REST API": honour `retry-after`; when
//! `x-ratelimit-remaining` is 0 wait until `x-ratelimit-reset`; otherwise wait at least one
//! minute, longer on each further secondary limit), server errors and network failures are
//! retried after the shared exponential [`Backoff`], and everything else fails at once. Only
//! calls safe to repeat come here; `POST /pulls` is never repeated blindly (the client looks
//! for the pull request after an ambiguous failure, see `GitHub::ensure_pull_request`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::GitHubError;
use crate::backoff::Backoff;

/// Margin added to `x-ratelimit-reset` (whole epoch seconds; clocks differ a little) so the
/// retry lands after the reset, not on it.
const RESET_MARGIN: Duration = Duration::from_secs(1);

/// How every GitHub call waits out rate limits and retries transient failures.
///
/// Each single wait is capped at `max_wait`; a call is attempted at most `1 + max_retries`
/// times. Tests shorten the durations; [`RateLimitPolicy::default`] suits a daemon left alone
/// for days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Longest single wait. A longer `retry-after` or reset time is cut to this, then the call
    /// is retried (and may be limited again, which counts as another retry).
    pub max_wait: Duration,
    /// Retries of one call after its first attempt, rate limits and transient failures
    /// together. 0 makes every error final.
    pub max_retries: u32,
    /// Wait after a secondary rate limit that gives no `retry-after` (and no exhausted primary
    /// limit), doubled for each further such limit within the same call. GitHub docs: "wait
    /// for at least one minute before retrying", then "an exponentially increasing amount of
    /// time".
    pub secondary_wait: Duration,
    /// Backoff ceiling after a 5xx answer or a network failure; doubled
    /// on each retry, capped at `max_wait` (the shared [`Backoff`]: the wait is between half of
    /// the ceiling and all of it).
    pub backoff: Duration,
}

impl Default for RateLimitPolicy {
    /// Waits of up to one hour (the primary limit's window), 5 retries, 60 s for secondary
    /// limits without `retry-after`, backoff from 2 s.
    fn default() -> RateLimitPolicy {
        RateLimitPolicy {
            max_wait: Duration::from_secs(60 * 60),
            max_retries: 5,
            secondary_wait: Duration::from_secs(60),
            backoff: Duration::from_secs(2),
        }
    }
}

/// A wait before the next attempt, and why (for the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wait {
    pub(super) duration: Duration,
    pub(super) reason: String,
    /// A secondary limit without `retry-after`: the next such wait doubles.
    pub(super) secondary: bool,
}

impl RateLimitPolicy {
    /// The wait before sending a call that failed with `err` again, or `None` when `err` must
    /// not be retried. The call must be safe to repeat: a 5xx or network failure is retried.
    ///
    /// `retries` is how many retries this call already made (backoff exponent);
    /// `secondary_waits` how many secondary limits without `retry-after` it already waited
    /// out; `now` the current time. Does not check `max_retries`.
    pub(super) fn delay(
        &self,
        err: &GitHubError,
        retries: u32,
        secondary_waits: u32,
        now: SystemTime,
    ) -> Option<Wait> {
        let wait = if err.is_rate_limited() {
            rate_limit_wait(self, err, secondary_waits, now)
        } else if err.is_server_error() || err.is_network() {
            Wait {
                duration: self.backoff_for(retries),
                reason: match err.status() {
                    Some(status) => format!("server error {status}"),
                    None => "network error or unreadable answer".to_string(),
                },
                secondary: false,
            }
        } else {
            return None;
        };
        Some(Wait {
            duration: wait.duration.min(self.max_wait),
            ..wait
        })
    }

    /// The backoff before retry number `retries + 1`: the shared [`Backoff`] from `backoff` to
    /// `max_wait`.
    pub(super) fn backoff_for(&self, retries: u32) -> Duration {
        Backoff::new(self.backoff, self.max_wait).delay(retries)
    }
}

/// The wait a rate-limited answer asks for: `retry-after`; else the primary limit's reset when
/// it is exhausted; else the secondary-limit default, doubled per earlier secondary wait.
fn rate_limit_wait(
    policy: &RateLimitPolicy,
    err: &GitHubError,
    secondary_waits: u32,
    now: SystemTime,
) -> Wait {
    let (status, retry_after, remaining, reset) = match err {
        GitHubError::Status {
            status,
            retry_after,
            rate_limit_remaining,
            rate_limit_reset,
            ..
        } => (
            *status,
            *retry_after,
            *rate_limit_remaining,
            *rate_limit_reset,
        ),
        _ => (0, None, None, None),
    };
    if let Some(seconds) = retry_after {
        return Wait {
            duration: Duration::from_secs(seconds),
            reason: format!("rate limited ({status}), retry-after {seconds} s"),
            secondary: false,
        };
    }
    if let (Some(0), Some(reset)) = (remaining, reset) {
        let reset_at = UNIX_EPOCH + Duration::from_secs(reset) + RESET_MARGIN;
        return Wait {
            duration: reset_at.duration_since(now).unwrap_or(Duration::ZERO),
            reason: format!("primary rate limit exhausted ({status}), resets at epoch {reset}"),
            secondary: false,
        };
    }
    // Not jittered: GitHub asks for at least the minute, and the doubling is its own rule.
    Wait {
        duration: Backoff::new(policy.secondary_wait, policy.max_wait).ceiling(secondary_waits),
        reason: format!(
            "secondary rate limit ({status}) without retry-after; GitHub asks to wait at least \
             one minute"
        ),
        secondary: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> GitHubError {
        GitHubError::Status {
            status,
            message: message.to_string(),
            retry_after: None,
            rate_limit_remaining: None,
            rate_limit_reset: None,
        }
    }

    fn limited(
        status: u16,
        message: &str,
        retry_after: Option<u64>,
        rate_limit_remaining: Option<u64>,
        rate_limit_reset: Option<u64>,
    ) -> GitHubError {
        GitHubError::Status {
            status,
            message: message.to_string(),
            retry_after,
            rate_limit_remaining,
            rate_limit_reset,
        }
    }

    fn policy() -> RateLimitPolicy {
        RateLimitPolicy {
            max_wait: Duration::from_secs(600),
            max_retries: 3,
            secondary_wait: Duration::from_secs(60),
            backoff: Duration::from_secs(2),
        }
    }

    fn delay(err: &GitHubError) -> Option<Duration> {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        policy().delay(err, 0, 0, now).map(|wait| wait.duration)
    }

    #[test]
    fn retry_after_wins() {
        let err = limited(429, "slow down", Some(7), Some(0), Some(5_000));
        assert_eq!(delay(&err), Some(Duration::from_secs(7)));
    }

    #[test]
    fn exhausted_primary_limit_waits_for_the_reset() {
        let err = limited(
            403,
            "API rate limit exceeded for user ID 1.",
            None,
            Some(0),
            Some(1_030),
        );
        assert_eq!(delay(&err), Some(Duration::from_secs(31)));
        let past = limited(403, "API rate limit exceeded", None, Some(0), Some(10));
        assert_eq!(delay(&past), Some(Duration::ZERO));
        let far = limited(403, "API rate limit exceeded", None, Some(0), Some(100_000));
        assert_eq!(
            delay(&far),
            Some(Duration::from_secs(600)),
            "capped at max_wait"
        );
    }

    #[test]
    fn secondary_limit_without_retry_after_waits_a_minute_then_longer() {
        let err = status(403, "You have exceeded a secondary rate limit.");
        let now = UNIX_EPOCH;
        let p = policy();
        let first = p.delay(&err, 0, 0, now).expect("wait");
        assert_eq!(first.duration, Duration::from_secs(60));
        assert!(first.secondary);
        let second = p.delay(&err, 1, 1, now).expect("wait");
        assert_eq!(second.duration, Duration::from_secs(120));
        assert_eq!(
            delay(&status(429, "Too Many Requests")),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn server_errors_and_network_failures_back_off() {
        let within = |wait: Option<Duration>, ceiling: u64| {
            let wait = wait.expect("retried");
            assert!(
                wait >= Duration::from_secs(ceiling) / 2 && wait <= Duration::from_secs(ceiling),
                "{wait:?} outside the backoff up to {ceiling} s"
            );
        };
        let err = status(502, "Bad Gateway");
        within(delay(&err), 2);
        let network = GitHubError::Api("HTTP error: connection refused".to_string());
        within(delay(&network), 2);
        let later = policy().delay(&err, 3, 0, UNIX_EPOCH);
        within(later.map(|w| w.duration), 16);
        let capped = policy().delay(&err, 20, 0, UNIX_EPOCH);
        within(capped.map(|w| w.duration), 600);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        for err in [
            status(401, "Bad credentials"),
            status(403, "Resource not accessible by integration"),
            status(404, "Not Found"),
            status(422, "Validation Failed"),
            GitHubError::Config("x".to_string()),
        ] {
            assert_eq!(delay(&err), None, "{err}");
        }
    }

    #[test]
    fn secondary_waits_keep_doubling_up_to_max_wait() {
        let err = status(403, "You have exceeded a secondary rate limit.");
        let wait = |waits| {
            policy()
                .delay(&err, waits, waits, UNIX_EPOCH)
                .expect("wait")
                .duration
        };
        assert_eq!(wait(2), Duration::from_secs(240));
        assert_eq!(wait(3), Duration::from_secs(480));
        assert_eq!(wait(4), Duration::from_secs(600), "capped at max_wait");
        assert_eq!(wait(200), Duration::from_secs(600));
    }
}
