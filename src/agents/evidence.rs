//! Evidence a vote rests on beyond a model's opinion, recorded with its stage
//! (`task_stages.evidence`) and shown to the roles that vote after it: the Engineer's
//! verification runs in the sandbox (QA and Security see the result), and the deterministic
//! gates run before the Security review (Security sees them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::neutralize;
use super::render::fill;
use crate::gates::GateReport;
use crate::verify::{Verification, VerifyStatus};

/// A verification as the roles see it (`{repairs}`, `{status}`, `{summary}`, and `{tail}`: empty
/// or a newline and [`VERIFICATION_TAIL`]).
pub(super) const VERIFICATION: &str = include_str!("messages/verification.md");
/// The last lines of a verification's output (`{output}`, neutralized).
pub(super) const VERIFICATION_TAIL: &str = include_str!("messages/verification_tail.md");
/// The gate results for the Security role (`{gates}`: the report's Markdown).
pub(super) const GATES: &str = include_str!("messages/gates.md");

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
    /// The files gated and verified: path → git blob id ([`crate::git::blob_id`]) of the
    /// content. The publish commits only exactly these. Empty in evidence recorded before it
    /// was kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
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
        let output = neutralize(&verification.output_tail);
        format!("\n{}", fill(VERIFICATION_TAIL, &[("output", &output)]))
    };
    let status = match verification.status {
        _ if !verification.check_changed.is_empty() => "check_definition_changed",
        VerifyStatus::Passed => "passed",
        VerifyStatus::Failed => "failed",
        VerifyStatus::TimedOut => "timed_out",
        VerifyStatus::NotVerified => "not_verified",
    };
    fill(
        VERIFICATION,
        &[
            ("repairs", &repairs.to_string()),
            ("status", status),
            ("summary", &neutralize(&verification.summary())),
            ("tail", &tail),
        ],
    )
}

/// The gate results as text for the Security role (no secret is ever in a report).
pub fn gates_block(gates: &GateReport) -> String {
    fill(GATES, &[("gates", &gates.markdown())])
}
