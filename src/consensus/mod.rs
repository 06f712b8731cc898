//! Consensus: scores the roles' votes against the thresholds and decides what happens to a task.
//!
//! The rules: the consensus score is the mean of the Architect, Engineer, QA and
//! Security scores (the PM votes approve/reject and has no score); ≥ 80 approves (publish a PR),
//! 60 to < 80 is a conditional approval (needs_review, nothing pushed), < 60 rejects (failed).
//! Both bounds are configurable (CONSENSUS_THRESHOLD, CONDITIONAL_THRESHOLD).
//!
//! Evidence no vote can override ([`Consensus::hold`]): a failed verification or a workflow
//! change makes an approval conditional (needs_review).

pub use crate::task::{Consensus, Decision, Vote};

/// Decision bounds, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// At or above: approve (design: 80).
    pub approve: f64,
    /// At or above, below `approve`: conditional (design: 60).
    pub conditional: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            approve: 80.0,
            conditional: 60.0,
        }
    }
}

/// The evidence rule over a consensus (its shape is a domain type, [`Consensus`]).
impl Consensus {
    /// Records `reasons` a person must look first; with any, an approval becomes conditional
    /// (needs_review). A conditional or rejected decision stays as it is.
    pub fn hold(mut self, reasons: Vec<String>) -> Consensus {
        if !reasons.is_empty() && self.decision == Decision::Approved {
            self.decision = Decision::Conditional;
        }
        self.held = reasons;
        self
    }
}

/// Scores `votes`: the mean of the votes that carry a score (Architect, Engineer, QA, Security),
/// then the decision by `thresholds`. A vote set with no score at all scores 0 and is rejected.
pub fn decide(votes: Vec<Vote>, thresholds: Thresholds) -> Consensus {
    let scores: Vec<f64> = votes.iter().filter_map(|v| v.score).collect();
    let score = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    Consensus {
        score,
        decision: classify(score, thresholds),
        votes,
        held: Vec::new(),
    }
}

/// The decision for a consensus `score` (0–100).
pub fn classify(score: f64, thresholds: Thresholds) -> Decision {
    if score >= thresholds.approve {
        Decision::Approved
    } else if score >= thresholds.conditional {
        Decision::Conditional
    } else {
        Decision::Rejected
    }
}

/// The verdict word shown beside a score: `approve` at or above the approve threshold,
/// `conditional` at or above the conditional one, `reject` below.
pub fn verdict(score: f64, thresholds: Thresholds) -> &'static str {
    match classify(score, thresholds) {
        Decision::Approved => "approve",
        Decision::Conditional => "conditional",
        _ => "reject",
    }
}

/// A consensus score (0–100) as every output shows it — `tasks list`, `tasks show`, `stats`, the
/// PR body, the commit trailer, the rejection error and the consensus log line: two decimals,
/// truncated, never rounded up. 79.96 shows as `79.96`, 79.999 as `79.99` (never `80.00`), 82.5
/// as `82.50`. So a score below a threshold is never shown at or above it, and a score at or
/// above a threshold given in whole hundredths (80, 60, 72.5, 72.25, …) is never shown below
/// it: the shown number always falls on the side of the threshold that decided.
///
/// Truncation works on the shortest decimal that reads back as the same `f64` (so 79.96 is not
/// cut to 79.95 by its binary error). When `thresholds` are given and the truncated text would
/// still fall on the other side of one — only possible for a threshold with more than two
/// decimals, e.g. 72.345 — the score is shown in that shortest decimal, in full. Callers that
/// do not know the daemon's thresholds (the CLI reads only the database) pass `None`.
pub fn score_text(score: f64, thresholds: Option<Thresholds>) -> String {
    if !score.is_finite() {
        return score.to_string();
    }
    let exact = score.to_string();
    let (whole, fraction) = exact.split_once('.').unwrap_or((&exact, ""));
    let hundredths: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(2)
        .collect();
    let shown = format!("{whole}.{hundredths}");
    match thresholds {
        Some(t)
            if shown
                .parse()
                .map_or(true, |s| classify(s, t) != classify(score, t)) =>
        {
            exact
        }
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Stage;

    fn vote(role: Stage, score: f64) -> Vote {
        Vote {
            role,
            score: Some(score),
            vote: String::new(),
            rationale: String::new(),
        }
    }

    fn scored(scores: [f64; 4]) -> Vec<Vote> {
        let pm = Vote {
            role: Stage::Pm,
            score: None,
            vote: "approve".into(),
            rationale: String::new(),
        };
        let roles = [
            Stage::Architect,
            Stage::Engineer,
            Stage::Qa,
            Stage::Security,
        ];
        std::iter::once(pm)
            .chain(roles.into_iter().zip(scores).map(|(r, s)| vote(r, s)))
            .collect()
    }

    #[test]
    fn design_example_approves_at_82_5() {
        let c = decide(scored([90.0, 85.0, 80.0, 75.0]), Thresholds::default());
        assert_eq!(c.score, 82.5);
        assert_eq!(c.decision, Decision::Approved);
        assert_eq!(c.votes.len(), 5, "the PM's vote is kept but not averaged");
    }

    #[test]
    fn boundaries() {
        let t = Thresholds::default();
        assert_eq!(decide(scored([80.0; 4]), t).decision, Decision::Approved);
        assert_eq!(
            decide(scored([80.0, 80.0, 80.0, 79.0]), t).decision,
            Decision::Conditional
        );
        assert_eq!(decide(scored([60.0; 4]), t).decision, Decision::Conditional);
        assert_eq!(
            decide(scored([60.0, 60.0, 60.0, 59.0]), t).decision,
            Decision::Rejected
        );
        assert_eq!(decide(vec![], t).decision, Decision::Rejected);
    }

    #[test]
    fn configured_thresholds_apply() {
        let strict = Thresholds {
            approve: 90.0,
            conditional: 85.0,
        };
        assert_eq!(
            decide(scored([90.0, 85.0, 80.0, 75.0]), strict).decision,
            Decision::Rejected
        );
        assert_eq!(verdict(86.0, strict), "conditional");
        assert_eq!(verdict(95.0, strict), "approve");
    }
}

#[cfg(test)]
mod score_text_tests {
    use super::*;

    /// The shown text must classify like the score itself.
    fn same_side(score: f64, t: Thresholds) {
        let shown = score_text(score, Some(t));
        let read: f64 = shown.parse().unwrap();
        assert_eq!(
            classify(read, t),
            classify(score, t),
            "{score} shown as {shown}"
        );
    }

    #[test]
    fn two_decimals_never_rounded_up_across_80_or_60() {
        for (score, text) in [
            (79.96, "79.96"),
            (79.995, "79.99"),
            (79.999_999_9, "79.99"),
            (80.0, "80.00"),
            (80.004, "80.00"),
            (82.5, "82.50"),
            (81.25, "81.25"),
            (59.999, "59.99"),
            (60.0, "60.00"),
            (0.0, "0.00"),
            (100.0, "100.00"),
        ] {
            assert_eq!(score_text(score, None), text);
            assert_eq!(score_text(score, Some(Thresholds::default())), text);
        }
    }

    #[test]
    fn no_score_is_shown_across_a_threshold() {
        let thresholds = [
            Thresholds::default(),
            Thresholds {
                approve: 72.5,
                conditional: 65.25,
            },
            Thresholds {
                approve: 72.345,
                conditional: 60.001,
            },
        ];
        for t in thresholds {
            for k in 0..=10_000 {
                let score = f64::from(k) / 100.0;
                for nudge in [-1e-9, -0.004, 0.0, 1e-9, 0.004, 0.0099] {
                    same_side(score + nudge, t);
                }
            }
            for edge in [t.approve, t.conditional] {
                for nudge in [-0.001, -1e-6, -1e-12, 0.0, 1e-12, 1e-6, 0.001] {
                    same_side(edge + nudge, t);
                }
            }
        }
    }

    #[test]
    fn a_threshold_finer_than_hundredths_is_guarded() {
        let t = Thresholds {
            approve: 72.345,
            conditional: 60.0,
        };
        assert_eq!(classify(72.346, t), Decision::Approved);
        assert_eq!(score_text(72.346, None), "72.34");
        assert_eq!(score_text(72.346, Some(t)), "72.346");
        assert_eq!(score_text(72.344, Some(t)), "72.34");
        assert_eq!(score_text(72.5, Some(t)), "72.50");
    }
}
