//! PM role: writes the PRD and acceptance criteria and votes approve/reject. It gives no score:
//! the consensus averages the four other roles' scores, and a PM reject ends the task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Doc, NON_BLANK, Problems, Role, Scored, Tool, Validate};
use crate::task::Stage;

/// The PM role (marker type for [`super::ask`]).
#[derive(Debug, Clone, Copy)]
pub struct Pm;

/// The PM's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PmVote {
    Approve,
    Reject,
}

impl PmVote {
    /// `approve` or `reject`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            PmVote::Approve => "approve",
            PmVote::Reject => "reject",
        }
    }
}

/// PM output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PmOutput {
    /// Product requirements document, Markdown: problem, goals, scope and non-goals,
    /// functional requirements, constraints.
    #[schemars(pattern(NON_BLANK))]
    pub prd: String,
    /// Testable acceptance criteria, one per item; at least one.
    #[schemars(length(min = 1), inner(pattern(NON_BLANK)))]
    pub acceptance_criteria: Vec<String>,
    /// `approve` if the task is clear, feasible and worth doing as one pull request;
    /// `reject` otherwise.
    pub vote: PmVote,
    /// Why you voted as you did.
    #[schemars(pattern(NON_BLANK))]
    pub rationale: String,
}

impl Validate for PmOutput {
    /// Non-empty PRD and rationale; at least one acceptance criterion, none blank.
    fn check(&self, problems: &mut Problems) {
        problems
            .text("prd", &self.prd)
            .list("acceptance_criteria", &self.acceptance_criteria, 1)
            .text("rationale", &self.rationale);
    }
}

impl Scored for PmOutput {
    /// Always `None`: the PM votes, it does not score.
    fn vote_score(&self) -> Option<f64> {
        None
    }

    fn rationale(&self) -> &str {
        &self.rationale
    }

    /// Markdown body shown to the later roles.
    fn render(&self) -> String {
        Doc::default()
            .text("PRD", &self.prd)
            .list("Acceptance criteria", &self.acceptance_criteria)
            .text("Vote", self.vote.as_str())
            .text("Rationale", &self.rationale)
            .finish()
    }
}

impl Tool for Pm {
    const NAME: &'static str = Stage::Pm.role_name();
    const TOOL_NAME: &'static str = "submit_prd";
    type Output = PmOutput;
}

impl Role for Pm {
    const STAGE: Stage = Stage::Pm;
    const TOOL_DESCRIPTION: &'static str = include_str!("messages/tool_pm.md").trim_ascii_end();
    const PROMPT: &'static str = include_str!("pm.md");
    const MAX_TOKENS: u32 = 4096;
}
