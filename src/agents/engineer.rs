//! Engineer role: implementation as whole-file writes, score 0–100.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::FileChange;

/// Engineer output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineerOutput {
    pub summary: String,
    /// Whole-file writes; at least one.
    pub files: Vec<FileChange>,
    /// 0–100.
    pub score: u8,
    pub rationale: String,
}
