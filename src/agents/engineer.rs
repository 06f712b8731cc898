//! Engineer role: implementation as whole-file writes, score 0–100.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Doc, Input, Problems, Role, Scored, Validate, repo_files_blocks, user_message};
use crate::task::{FileChange, Stage};

/// The Engineer role (marker type for [`super::ask`]).
#[derive(Debug, Clone, Copy)]
pub struct Engineer;

/// Engineer output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineerOutput {
    /// What the implementation does and how, Markdown.
    pub summary: String,
    /// Whole-file writes; at least one, each path at most once.
    pub files: Vec<FileChange>,
    /// Your confidence in the implementation, 0–100.
    #[schemars(range(max = 100))]
    pub score: u8,
    /// Why you gave that score.
    pub rationale: String,
}

impl EngineerOutput {
    /// Markdown body shown to the later roles, files included in full.
    pub fn render(&self) -> String {
        Doc::default()
            .text("Summary", &self.summary)
            .files("Files written", &self.files)
            .text("Score", &self.score.to_string())
            .text("Rationale", &self.rationale)
            .finish()
    }
}

impl Validate for EngineerOutput {
    /// Non-empty summary and rationale; score 0–100; at least one file, each path passing
    /// `git::check_path` and appearing once.
    fn validate(&self) -> Result<(), String> {
        Problems::default()
            .text("summary", &self.summary)
            .score("score", self.score)
            .text("rationale", &self.rationale)
            .files("files", &self.files, 1)
            .finish()
    }
}

impl Scored for EngineerOutput {
    fn vote_score(&self) -> Option<f64> {
        Some(f64::from(self.score))
    }

    fn rationale(&self) -> &str {
        &self.rationale
    }
}

impl Role for Engineer {
    const STAGE: Stage = Stage::Engineer;
    const TOOL_NAME: &'static str = "submit_implementation";
    const TOOL_DESCRIPTION: &'static str = "Submit the implementation as complete file contents \
        (whole-file writes), a summary and your 0-100 score.";
    const PROMPT: &'static str = include_str!("engineer.md");
    /// Whole files are written: the largest budget of all roles.
    const MAX_TOKENS: u32 = 16000;
    type Output = EngineerOutput;

    /// The task, the PM's and Architect's outputs and the current content of the named files.
    fn user_message(input: Input<'_>) -> String {
        user_message(
            Self::STAGE,
            Self::TOOL_NAME,
            input,
            &[repo_files_blocks(input.repo)],
        )
    }
}
