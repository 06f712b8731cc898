//! Architect role: design, components, files to create or change, risks, score 0–100.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Architect output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArchitectOutput {
    /// Design summary, Markdown.
    pub design: String,
    pub components: Vec<String>,
    /// Repository-relative paths to create or change.
    pub files: Vec<String>,
    pub risks: Vec<String>,
    /// 0–100.
    pub score: u8,
    pub rationale: String,
}
