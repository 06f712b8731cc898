//! QA role: review, test plan, edge cases, optional test files, score 0–100.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Doc, NON_BLANK, Problems, Role, Scored, Tool, Validate};
use crate::task::{FileChange, Stage};

/// The QA role (marker type for [`super::ask`]).
#[derive(Debug, Clone, Copy)]
pub struct Qa;

/// QA output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QaOutput {
    /// Review of the implementation against the PRD and design, Markdown.
    #[schemars(pattern(NON_BLANK))]
    pub review: String,
    /// The tests to run or write, one per item; at least one.
    #[schemars(length(min = 1), inner(pattern(NON_BLANK)))]
    pub test_plan: Vec<String>,
    /// Edge cases and how the implementation handles them.
    #[schemars(inner(pattern(NON_BLANK)))]
    pub edge_cases: Vec<String>,
    /// Test files to add, whole-file writes; may be empty.
    #[serde(default)]
    pub test_files: Vec<FileChange>,
    /// Your quality verdict on the implementation, 0–100.
    #[schemars(range(max = 100))]
    pub score: u8,
    /// Why you gave that score.
    #[schemars(pattern(NON_BLANK))]
    pub rationale: String,
}

impl Validate for QaOutput {
    /// Non-empty review and rationale; at least one test-plan item; score 0–100; test files
    /// optional, each path passing `git::check_path` and appearing once.
    fn check(&self, problems: &mut Problems) {
        problems
            .text("review", &self.review)
            .list("test_plan", &self.test_plan, 1)
            .list("edge_cases", &self.edge_cases, 0)
            .score("score", self.score)
            .text("rationale", &self.rationale)
            .files("test_files", &self.test_files, 0);
    }
}

impl Scored for QaOutput {
    fn vote_score(&self) -> Option<f64> {
        Some(f64::from(self.score))
    }

    fn rationale(&self) -> &str {
        &self.rationale
    }

    /// Markdown body shown to the later roles, test files included in full.
    fn render(&self) -> String {
        Doc::default()
            .text("Review", &self.review)
            .list("Test plan", &self.test_plan)
            .list("Edge cases", &self.edge_cases)
            .files("Test files", &self.test_files)
            .text("Score", &self.score.to_string())
            .text("Rationale", &self.rationale)
            .finish()
    }
}

impl Tool for Qa {
    const NAME: &'static str = Stage::Qa.role_name();
    const TOOL_NAME: &'static str = "submit_review";
    type Output = QaOutput;
}

impl Role for Qa {
    const STAGE: Stage = Stage::Qa;
    const TOOL_DESCRIPTION: &'static str = include_str!("messages/tool_qa.md").trim_ascii_end();
    const PROMPT: &'static str = include_str!("qa.md");
    /// Test files may be written: more than the reviewers' budget.
    const MAX_TOKENS: u32 = 8192;
}
