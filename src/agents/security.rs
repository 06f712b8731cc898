//! Security role: answers a fixed risk rubric as booleans plus findings. The score is
//! computed from the rubric by [`SecurityOutput::score`], never chosen by the model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Doc, Input, NON_BLANK, Problems, Role, Scored, Tool, Validate, gates_block, verification_block,
};
use crate::task::Stage;

/// The Security role (marker type for [`super::ask`]).
#[derive(Debug, Clone, Copy)]
pub struct Security;

/// Security output: the risk rubric answered as booleans, findings and rationale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecurityOutput {
    /// Does this change introduce a way to gain privileges a caller should not have?
    pub introduces_privilege_escalation: bool,
    /// Does this change add destructive operations (deleting or overwriting data, dropping
    /// resources) without safeguards such as confirmation, scoping, backups or dry runs?
    pub destructive_operations_without_safeguards: bool,
    /// Does this change call or accept data from an external API without validating it?
    pub unvalidated_external_api: bool,
    /// Does this change add security-relevant actions that are not audit-logged?
    pub missing_audit_logging: bool,
    /// Does this change protect the sensitive data it handles with encryption both at rest and
    /// in transit?
    pub encryption_at_rest_and_in_transit: bool,
    /// Does this change add audit logging beyond the minimum (who, what, when, outcome, tamper
    /// evidence)?
    pub advanced_audit_logging: bool,
    /// Concrete security findings about this change, one per item; may be empty.
    #[schemars(inner(pattern(NON_BLANK)))]
    pub findings: Vec<String>,
    /// Why you answered the rubric as you did.
    #[schemars(pattern(NON_BLANK))]
    pub rationale: String,
}

/// Baseline of the security score: a change that answers no rubric item yes scores 70.
const BASELINE: i32 = 70;

impl SecurityOutput {
    /// The rubric's score: baseline 70; −25 privilege escalation, −30 destructive operations
    /// without safeguards, −10 unvalidated external API, −10 missing audit logging; +10
    /// encryption at rest and in transit, +10 advanced audit logging; clamped to 0–100.
    pub fn score(&self) -> u8 {
        let adjustments = [
            (self.introduces_privilege_escalation, -25),
            (self.destructive_operations_without_safeguards, -30),
            (self.unvalidated_external_api, -10),
            (self.missing_audit_logging, -10),
            (self.encryption_at_rest_and_in_transit, 10),
            (self.advanced_audit_logging, 10),
        ];
        let score = adjustments
            .iter()
            .filter(|(applies, _)| *applies)
            .fold(BASELINE, |score, (_, delta)| score + delta);
        // Clamped to 0..=100, so the conversion cannot fail.
        u8::try_from(score.clamp(0, 100)).unwrap_or(0)
    }
}

impl Validate for SecurityOutput {
    /// Non-empty rationale; findings may be empty but none blank. The rubric booleans need no
    /// check: the schema makes them required.
    fn check(&self, problems: &mut Problems) {
        problems
            .list("findings", &self.findings, 0)
            .text("rationale", &self.rationale);
    }
}

impl Scored for SecurityOutput {
    /// [`SecurityOutput::score`], computed from the rubric.
    fn vote_score(&self) -> Option<f64> {
        Some(f64::from(self.score()))
    }

    fn rationale(&self) -> &str {
        &self.rationale
    }

    /// Markdown body shown to the later roles (the rubric answers and the computed score).
    fn render(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let rubric = [
            (
                "Introduces privilege escalation",
                self.introduces_privilege_escalation,
            ),
            (
                "Destructive operations without safeguards",
                self.destructive_operations_without_safeguards,
            ),
            ("Unvalidated external API", self.unvalidated_external_api),
            ("Missing audit logging", self.missing_audit_logging),
            (
                "Encryption at rest and in transit",
                self.encryption_at_rest_and_in_transit,
            ),
            ("Advanced audit logging", self.advanced_audit_logging),
        ]
        .map(|(question, answer)| format!("{question}: {}", yes_no(answer)));
        Doc::default()
            .list("Rubric", &rubric)
            .list("Findings", &self.findings)
            .text("Score (computed)", &self.score().to_string())
            .text("Rationale", &self.rationale)
            .finish()
    }
}

impl Tool for Security {
    const NAME: &'static str = Stage::Security.role_name();
    const TOOL_NAME: &'static str = "submit_security_review";
    type Output = SecurityOutput;
}

impl Role for Security {
    const STAGE: Stage = Stage::Security;
    const TOOL_DESCRIPTION: &'static str =
        include_str!("messages/tool_security.md").trim_ascii_end();
    const PROMPT: &'static str = include_str!("security.md");
    const MAX_TOKENS: u32 = 4096;

    /// The deterministic gates and the verification of everything to be committed.
    fn context(input: Input<'_>) -> Vec<String> {
        let Some(evidence) = &input.chain.security_evidence else {
            return Vec::new();
        };
        vec![
            gates_block(&evidence.gates),
            verification_block(
                &evidence.verification,
                input
                    .chain
                    .engineer_evidence
                    .as_ref()
                    .map_or(0, |e| e.repairs()),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rubric(flags: [bool; 6]) -> SecurityOutput {
        SecurityOutput {
            introduces_privilege_escalation: flags[0],
            destructive_operations_without_safeguards: flags[1],
            unvalidated_external_api: flags[2],
            missing_audit_logging: flags[3],
            encryption_at_rest_and_in_transit: flags[4],
            advanced_audit_logging: flags[5],
            findings: vec![],
            rationale: "r".into(),
        }
    }

    #[test]
    fn score_follows_the_rubric_formula() {
        assert_eq!(rubric([false; 6]).score(), 70);
        assert_eq!(
            rubric([true, false, false, false, false, false]).score(),
            45
        );
        assert_eq!(
            rubric([false, true, false, false, false, false]).score(),
            40
        );
        assert_eq!(
            rubric([false, false, true, false, false, false]).score(),
            60
        );
        assert_eq!(
            rubric([false, false, false, true, false, false]).score(),
            60
        );
        assert_eq!(
            rubric([false, false, false, false, true, false]).score(),
            80
        );
        assert_eq!(
            rubric([false, false, false, false, false, true]).score(),
            80
        );
        // Both bonuses: 90.
        assert_eq!(rubric([false, false, false, false, true, true]).score(), 90);
        // Mixed: 70 - 10 + 10 = 70.
        assert_eq!(rubric([false, false, true, false, true, false]).score(), 70);
    }

    #[test]
    fn score_is_clamped_at_zero() {
        // 70 - 25 - 30 - 10 - 10 = -5, clamped to 0.
        assert_eq!(rubric([true, true, true, true, false, false]).score(), 0);
        // Every flag: -5 + 20 = 15 (clamping applies to the sum, not per step).
        assert_eq!(rubric([true; 6]).score(), 15);
        assert_eq!(rubric([true; 6]).vote_score(), Some(15.0));
    }
}
