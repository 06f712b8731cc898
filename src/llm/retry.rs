//! Retry policy for transient LLM API failures.

use std::time::Duration;

/// Exponential backoff with jitter for 429/500/503/529 and network errors; a `retry-after`
/// header, when present, sets the wait instead (capped at `max_delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubled on each retry.
    pub base_delay: Duration,
    /// Upper bound on any single wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, 2 s doubling, at most 60 s a wait.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }
}
