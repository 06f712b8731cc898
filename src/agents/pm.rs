//! PM role: writes the PRD and acceptance criteria and votes approve/reject (no score, as designed).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The PM's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PmVote {
    Approve,
    Reject,
}

/// PM output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PmOutput {
    /// Product requirements document, Markdown.
    pub prd: String,
    pub acceptance_criteria: Vec<String>,
    pub vote: PmVote,
    pub rationale: String,
}
