//! Security role: answers the design's risk rubric as booleans plus findings. The score is
//! computed from the rubric by [`SecurityOutput::score`], never chosen by the model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Security output: the design's rubric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecurityOutput {
    pub introduces_privilege_escalation: bool,
    pub destructive_operations_without_safeguards: bool,
    pub unvalidated_external_api: bool,
    pub missing_audit_logging: bool,
    pub encryption_at_rest_and_in_transit: bool,
    pub advanced_audit_logging: bool,
    pub findings: Vec<String>,
    pub rationale: String,
}

impl SecurityOutput {
    /// The design's formula: baseline 70; −25 privilege escalation, −30 destructive operations
    /// without safeguards, −10 unvalidated external API, −10 missing audit logging; +10
    /// encryption at rest and in transit, +10 advanced audit logging; clamped to 0–100.
    pub fn score(&self) -> u8 {
        todo!()
    }
}
