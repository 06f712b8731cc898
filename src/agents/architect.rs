//! Architect role: design, components, files to create or change, risks, score 0–100.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Doc, NON_BLANK, Problems, Role, Scored, Tool, Validate};
use crate::task::PATH_PATTERN;
use crate::task::Stage;

/// The Architect role (marker type for [`super::ask`]).
#[derive(Debug, Clone, Copy)]
pub struct Architect;

/// Architect output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArchitectOutput {
    /// Design summary, Markdown.
    #[schemars(pattern(NON_BLANK))]
    pub design: String,
    /// The components (modules, types, functions) the change touches or adds.
    #[schemars(length(min = 1), inner(pattern(NON_BLANK)))]
    pub components: Vec<String>,
    /// Repository-relative paths to create or change, `/`-separated (e.g. `src/lib.rs`);
    /// each at most once.
    #[schemars(inner(pattern(PATH_PATTERN)), extend("uniqueItems" = true))]
    pub files: Vec<String>,
    /// Technical risks of the change.
    #[schemars(inner(pattern(NON_BLANK)))]
    pub risks: Vec<String>,
    /// Your confidence in the design, 0–100.
    #[schemars(range(max = 100))]
    pub score: u8,
    /// Why you gave that score.
    #[schemars(pattern(NON_BLANK))]
    pub rationale: String,
}

impl Validate for ArchitectOutput {
    /// Non-empty design and rationale; at least one component; score 0–100; `files` may be
    /// empty but each path must pass `git::check_path` and appear once.
    fn check(&self, problems: &mut Problems) {
        problems
            .text("design", &self.design)
            .list("components", &self.components, 1)
            .list("risks", &self.risks, 0)
            .score("score", self.score)
            .text("rationale", &self.rationale)
            .paths("files", &self.files);
    }
}

impl Scored for ArchitectOutput {
    fn vote_score(&self) -> Option<f64> {
        Some(f64::from(self.score))
    }

    fn rationale(&self) -> &str {
        &self.rationale
    }

    /// Markdown body shown to the later roles.
    fn render(&self) -> String {
        Doc::default()
            .text("Design", &self.design)
            .list("Components", &self.components)
            .list("Files to create or change", &self.files)
            .list("Risks", &self.risks)
            .text("Score", &self.score.to_string())
            .text("Rationale", &self.rationale)
            .finish()
    }
}

impl Tool for Architect {
    const NAME: &'static str = Stage::Architect.role_name();
    const TOOL_NAME: &'static str = "submit_design";
    const LOOKUPS: bool = true;
    type Output = ArchitectOutput;
}

impl Role for Architect {
    const STAGE: Stage = Stage::Architect;
    const TOOL_DESCRIPTION: &'static str =
        include_str!("messages/tool_architect.md").trim_ascii_end();
    const PROMPT: &'static str = include_str!("architect.md");
    const MAX_TOKENS: u32 = 4096;
}
