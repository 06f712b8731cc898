//! Retry policy for transient LLM API failures: a small, pure value type. The loop that applies
//! it is shared by the providers (the private `llm::http` module).

use std::time::Duration;

/// Exponential backoff with jitter for 429/500/502/503/529 and network errors; a `retry-after`
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

impl RetryPolicy {
    /// The backoff ceiling before retry number `attempt` (0 = the first retry):
    /// `base_delay × 2^attempt`, capped at `max_delay`. Deterministic; see [`Self::delay_for`].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// How long to wait before retry number `attempt` (0 = the first retry).
    ///
    /// With a server-sent `retry_after` (the `retry-after` header), exactly that, capped at
    /// `max_delay`. Otherwise "equal jitter": a uniformly random wait between half of
    /// [`Self::backoff`] and all of it, so that concurrent clients do not retry in lockstep.
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => jitter(self.backoff(attempt), fastrand::f64()),
        }
    }
}

/// `ceiling × (1 + unit) / 2` for `unit` in [0, 1): a wait in [ceiling/2, ceiling).
fn jitter(ceiling: Duration, unit: f64) -> Duration {
    ceiling.mul_f64((1.0 + unit.clamp(0.0, 1.0)) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
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
        assert_eq!(jitter(Duration::from_secs(2), 0.0), Duration::from_secs(1));
        assert_eq!(jitter(Duration::from_secs(2), 1.0), Duration::from_secs(2));
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
