//! QA role: review, test plan, edge cases, optional test files, score 0–100.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::FileChange;

/// QA output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QaOutput {
    pub review: String,
    pub test_plan: Vec<String>,
    pub edge_cases: Vec<String>,
    /// Test files to add, whole-file writes; may be empty.
    #[serde(default)]
    pub test_files: Vec<FileChange>,
    /// 0–100.
    pub score: u8,
    pub rationale: String,
}
