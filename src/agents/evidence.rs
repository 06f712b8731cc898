//! Evidence a vote rests on beyond a model's opinion, recorded with its stage
//! (`task_stages.evidence`) and shown to the roles that vote after it: the Engineer's
//! verification runs in the sandbox (QA and Security see the result), and the deterministic
//! gates run before the Security review (Security sees them).

use serde::{Deserialize, Serialize};

use super::neutralize;
use crate::gates::GateReport;
use crate::verify::{Verification, VerifyStatus};

/// Recorded with the Engineer's stage: every round and the verification of the final files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineerEvidence {
    /// Round 0 is the first answer; each later one a repair (at most REPAIR_ROUNDS).
    pub rounds: Vec<Round>,
    /// The verification of the files the Engineer's last round left.
    pub verification: Verification,
}

/// One Engineer answer and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub round: u32,
    #[serde(flatten)]
    pub outcome: RoundOutcome,
}

/// What became of one Engineer answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RoundOutcome {
    /// Its search/replace edits did not apply; the reason went back to the model.
    EditsRejected { reason: String },
    /// Its files were verified.
    Verified { verification: Verification },
}

/// Recorded with the Security stage: the gates over everything to be committed (the Engineer's
/// files and QA's test files), and the verification of exactly those files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvidence {
    pub gates: GateReport,
    pub verification: Verification,
}

impl EngineerEvidence {
    /// The repair rounds used (rounds after the first answer).
    pub fn repairs(&self) -> usize {
        self.rounds.len().saturating_sub(1)
    }
}

/// A verification as a data block for the roles (the output is the repository's, untrusted):
/// `<verification status="…">summary, output tail</verification>`.
pub fn verification_block(verification: &Verification, repairs: usize) -> String {
    let tail = if verification.output_tail.is_empty() {
        String::new()
    } else {
        format!(
            "\nLast lines of the output:\n{}",
            neutralize(&verification.output_tail)
        )
    };
    let status = match verification.status {
        VerifyStatus::Passed => "passed",
        VerifyStatus::Failed => "failed",
        VerifyStatus::TimedOut => "timed_out",
        VerifyStatus::NotVerified => "not_verified",
    };
    format!(
        "Result of running the repository's own test command on the change, in a sandbox \
         (after {repairs} repair round(s) of the Engineer):\n\
         <verification status=\"{status}\">\n{}{tail}\n</verification>",
        neutralize(&verification.summary())
    )
}

/// The gate results as text for the Security role (no secret is ever in a report).
pub fn gates_block(gates: &GateReport) -> String {
    format!(
        "Results of the deterministic gates over everything to be committed (computed by the \
         pipeline, not by a model):\n{}",
        gates.markdown()
    )
}
