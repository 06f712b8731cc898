//! Consensus: scores the roles' votes against the thresholds and decides what happens to a task.
//!
//! Rules from the design: the consensus score is the mean of the Architect, Engineer, QA and
//! Security scores (the PM votes approve/reject and has no score); ≥ 80 approves (publish a PR),
//! 60 to < 80 is a conditional approval (needs_review, nothing pushed), < 60 rejects (failed).
//! Both bounds are configurable (CONSENSUS_THRESHOLD, CONDITIONAL_THRESHOLD).
//!
//! Evidence no vote can override ([`Consensus::hold`]): a failed verification or a workflow
//! change makes an approval conditional (needs_review).

use serde::{Deserialize, Serialize};

use crate::task::Stage;

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

/// What consensus decided, stored in `tasks.result.decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Score ≥ approve threshold: open a PR.
    Approved,
    /// Conditional threshold ≤ score < approve threshold: a person decides (needs_review).
    Conditional,
    /// Score < conditional threshold: failed.
    Rejected,
    /// The PM voted reject; no later stage ran.
    RejectedByPm,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Conditional => "conditional",
            Decision::Rejected => "rejected",
            Decision::RejectedByPm => "rejected_by_pm",
        }
    }
}

/// One role's vote as shown in `tasks show` and the PR body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub role: Stage,
    /// 0–100; `None` for the PM.
    pub score: Option<f64>,
    /// `approve`/`reject` for the PM, the score's verdict for the others.
    pub vote: String,
    pub rationale: String,
}

/// The outcome of consensus: score (mean, 0–100), decision and the votes it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consensus {
    pub score: f64,
    pub decision: Decision,
    pub votes: Vec<Vote>,
    /// Why the decision is at most conditional whatever the score (see [`Consensus::hold`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
