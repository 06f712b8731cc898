//! The one computed wait between retries: exponential backoff with a cap and "equal jitter",
//! used by the LLM transport, the task-level retry, GitHub's retries of idempotent calls and
//! the daemon's wait for an unreachable database. Waits a server asks for (`retry-after`,
//! rate-limit reset headers) are decided by those callers and never pass through here.
//!
//! The curve is `backon`'s [`ExponentialBuilder`] (factor 2); this type only makes it answer
//! "the wait before retry n", which a task's retry needs because its attempts are counted in
//! the database, not in a loop that could hold an iterator.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Retries past this many doublings wait as this one does: `first × 2^64` is beyond any cap
/// (even 1 ns doubled 64 times is 584 years), and it bounds the iterator walk per call.
const MAX_DOUBLINGS: u32 = 64;

/// Exponential backoff: the ceiling before retry `n` (0 = the first retry) is
/// `first × 2^n`, capped at `max`; the wait itself is uniformly random between half of that
/// ceiling and all of it ("equal jitter", AWS Architecture Blog, "Exponential Backoff And
/// Jitter"), so that concurrent clients do not retry in lockstep, yet none retries sooner than
/// half the ceiling and none waits longer than `max`.
///
/// Arithmetic is `backon`'s, in `f32` seconds: a wait may differ from the exact product by a
/// few nanoseconds (durations that are binary fractions of a second, such as 2 s or 125 ms,
/// come out exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling before the first retry.
    pub first: Duration,
    /// Upper bound of every ceiling, hence of every wait.
    pub max: Duration,
}

impl Backoff {
    /// A backoff starting at `first` and doubling up to `max`. A `first` above `max` starts at
    /// `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The ceiling before retry `retry` (0 = the first): `first × 2^retry`, capped at `max`.
    /// Deterministic.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let half = nth(self.half_curve(), retry);
        half.saturating_mul(2)
    }

    /// The wait before retry `retry` (0 = the first): uniformly random between half of
    /// [`Self::ceiling`] and all of it.
    pub fn delay(&self, retry: u32) -> Duration {
        nth(self.half_curve().with_jitter(), retry)
    }

    /// The curve at half height: `backon`'s jitter adds a random part of the current delay
    /// *on top of* it (a wait in `[d, 2d)`, after the cap), so halving the curve makes its
    /// waits `[ceiling / 2, ceiling)`, within `max`.
    fn half_curve(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.first.min(self.max) / 2)
            .with_max_delay(self.max / 2)
            .without_max_times()
    }
}

/// The delay `curve` yields before retry `retry` (0 = the first).
fn nth(curve: ExponentialBuilder, retry: u32) -> Duration {
    let steps = usize::try_from(retry.min(MAX_DOUBLINGS)).unwrap_or(0);
    curve
        .build()
        .nth(steps)
        .expect("a curve without max_times never ends")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn ceiling_doubles_from_first_and_is_capped() {
        let b = Backoff::new(ms(125), Duration::from_secs(2));
        assert_eq!(b.ceiling(0), ms(125));
        assert_eq!(b.ceiling(1), ms(250));
        assert_eq!(b.ceiling(3), ms(1000));
        assert_eq!(b.ceiling(4), Duration::from_secs(2));
        assert_eq!(b.ceiling(5), Duration::from_secs(2));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn ceiling_is_exact_for_whole_seconds() {
        // The configured defaults: the LLM's 2 s to 60 s, the task's 30 s to an hour.
        let llm = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        let secs: Vec<u64> = (0..7).map(|n| llm.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(llm.ceiling(1).subsec_nanos(), 0);
        let task = Backoff::new(Duration::from_secs(30), Duration::from_secs(3600));
        assert_eq!(task.ceiling(6), Duration::from_secs(1920));
        assert_eq!(task.ceiling(7), Duration::from_secs(3600));
    }

    #[test]
    fn delay_lies_between_half_and_all_of_the_ceiling() {
        let b = Backoff::new(ms(125), Duration::from_secs(2));
        for retry in [0, 1, 2, 3, 4, 10, u32::MAX] {
            let ceiling = b.ceiling(retry);
            let waits: Vec<Duration> = (0..200).map(|_| b.delay(retry)).collect();
            for wait in &waits {
                assert!(*wait >= ceiling / 2, "retry {retry}: {wait:?} too short");
                assert!(*wait <= ceiling, "retry {retry}: {wait:?} too long");
            }
            let (low, high) = (ceiling / 2, ceiling);
            assert!(
                waits.iter().any(|w| *w < low + (high - low) / 4)
                    && waits.iter().any(|w| *w > high - (high - low) / 4),
                "retry {retry}: waits do not spread over the range: {waits:?}"
            );
        }
    }

    #[test]
    fn first_above_max_starts_at_max() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(4));
        assert_eq!(b.ceiling(0), Duration::from_secs(4));
        assert!(b.delay(0) <= Duration::from_secs(4));
    }

    #[test]
    fn zero_waits_stay_zero_and_huge_ones_saturate_at_the_cap() {
        let zero = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(zero.ceiling(7), Duration::ZERO);
        assert_eq!(zero.delay(7), Duration::ZERO);
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert!(huge.ceiling(u32::MAX) >= Duration::from_secs(u64::MAX / 4));
        assert!(huge.delay(u32::MAX) >= Duration::from_secs(u64::MAX / 8));
    }
}
