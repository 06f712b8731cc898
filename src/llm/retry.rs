//! Retry policy for transient LLM API failures: a small, pure value type. The loop that applies
//! it is shared by the providers (the private `llm::http` module).

use std::time::Duration;

use crate::backoff::Backoff;

/// How often and how long the transport retries 429/500/502/503/529 and network errors: the
/// shared exponential [`Backoff`] from `base_delay` to `max_delay`; a server-sent wait, when
/// present, sets the wait instead (capped at `max_delay`).
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

impl RetryPolicy {
    /// The backoff ceiling before retry number `attempt` (0 = the first retry):
    /// `base_delay × 2^attempt`, capped at `max_delay`. Deterministic; see [`Self::delay_for`].
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.curve().ceiling(attempt)
    }

    /// How long to wait before retry number `attempt` (0 = the first retry).
    ///
    /// With a server-sent `retry_after` (the `retry-after` header or Anthropic's rate-limit
    /// reset), exactly that, capped at `max_delay`. Otherwise the shared [`Backoff`]: a
    /// uniformly random wait between half of [`Self::backoff`] and all of it, so that
    /// concurrent clients do not retry in lockstep.
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => self.curve().delay(attempt),
        }
    }

    fn curve(&self) -> Backoff {
        Backoff::new(self.base_delay, self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(125),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(0), Duration::from_millis(125));
        assert_eq!(p.backoff(1), Duration::from_millis(250));
        assert_eq!(p.backoff(2), Duration::from_millis(500));
        assert_eq!(p.backoff(3), Duration::from_secs(1));
        assert_eq!(p.backoff(4), Duration::from_secs(1));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jittered_delay_stays_between_half_and_full_backoff() {
        let p = policy();
        for attempt in 0..6 {
            for _ in 0..50 {
                let d = p.delay_for(attempt, None);
                assert!(d >= p.backoff(attempt) / 2, "{d:?} too short");
                assert!(d <= p.backoff(attempt), "{d:?} too long");
            }
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay_for(0, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            p.delay_for(5, Some(Duration::from_secs(30))),
            Duration::from_secs(1)
        );
        assert_eq!(p.delay_for(0, Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn default_matches_its_documentation() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries, 4);
        assert_eq!(p.backoff(0), Duration::from_secs(2));
        assert_eq!(p.backoff(10), Duration::from_secs(60));
    }
}
