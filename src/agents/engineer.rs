//! Engineer role: the implementation as whole-file writes and search/replace edits, score 0–100.
//! In a repair round the same conversation continues with the verification failure, and the
//! answer changes the files written so far.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::render::fill;
use super::{
    Doc, Input, NON_BLANK, Problems, RepoContext, Role, Scored, Tool, Validate, file_block,
    verification_block,
};
use crate::task::{FileChange, PATH_PATTERN, Stage};
use crate::verify::Verification;

/// The current content of the files the Architect named (`{files}`: their file blocks).
pub(super) const FILES: &str = include_str!("messages/engineer_files.md");
/// Said instead of [`FILES`] when none of them exists yet.
pub(super) const NO_FILES: &str = include_str!("messages/engineer_no_files.md");
/// The reply to edits that do not apply (`{problems}`: one `- edits[i]: …` line per edit).
pub(super) const EDITS_REJECTED: &str = include_str!("messages/edits_rejected.md");
/// The reply to an answer that leaves conflict markers in a conflict revision (`{paths}`).
pub(super) const CONFLICTS_LEFT: &str = include_str!("messages/conflicts_left.md");
/// The reply to a failed verification, asking for a repair (`{round}` of `{last_round}`,
/// `{verification}`: its data block).
pub(super) const REPAIR: &str = include_str!("messages/repair.md");

/// The Engineer role (marker type for [`super::ask`]).
#[derive(Debug, Clone, Copy)]
pub struct Engineer;

/// Engineer output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("anyOf" = [
    {"required": ["files"], "properties": {"files": {"minItems": 1}}},
    {"required": ["edits"], "properties": {"edits": {"minItems": 1}}}
]))]
pub struct EngineerOutput {
    /// What the implementation does and how, Markdown.
    #[schemars(pattern(NON_BLANK))]
    pub summary: String,
    /// Whole-file writes (new files, or files rewritten entirely); each path at most once.
    #[serde(default)]
    pub files: Vec<FileChange>,
    /// Search/replace edits of existing files, applied in order; each `search` must occur
    /// exactly once in the file's current content.
    #[serde(default)]
    pub edits: Vec<Edit>,
    /// In a revision only: for each new note of the conversation you addressed, its id and
    /// what you changed for it (one or two sentences); posted as your reply to it.
    #[serde(default)]
    pub responses: Vec<Response>,
    /// Your confidence in the implementation, 0–100.
    #[schemars(range(max = 100))]
    pub score: u8,
    /// Why you gave that score.
    #[schemars(pattern(NON_BLANK))]
    pub rationale: String,
}

/// A search/replace edit: the one occurrence of `search` in the file at `path` becomes `replace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Edit {
    /// Relative path with `/` separators of a file that exists (in the repository, or written
    /// earlier in this conversation).
    #[schemars(pattern(PATH_PATTERN))]
    pub path: String,
    /// Exact text to find, whitespace included; it must occur exactly once in the file.
    #[schemars(length(min = 1))]
    pub search: String,
    /// Text that replaces it (may be empty to delete).
    pub replace: String,
}

/// The Engineer's answer to one note of a PR's conversation, in a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Response {
    /// The note's id, as its `<note id="…">` block gives it.
    pub note: u64,
    /// What you changed for it, or why you did not change anything.
    #[schemars(length(min = 1))]
    pub answer: String,
}

impl EngineerOutput {
    /// The paths this answer edits (whose current content [`EngineerOutput::resolve`] needs).
    pub fn edited_paths(&self) -> Vec<String> {
        let paths: std::collections::BTreeSet<&str> =
            self.edits.iter().map(|e| e.path.as_str()).collect();
        paths.into_iter().map(str::to_owned).collect()
    }

    /// Applies this answer to `current` (path → content of every file it may edit: the
    /// repository's, overridden by those written earlier in the conversation) and returns the
    /// files it changes, whole: its `files`, then each edited file once with all its edits
    /// applied in order.
    ///
    /// Error: one message listing every edit that does not apply (file unknown, `search` not
    /// found, or found more than once), for the model to correct.
    pub fn resolve(&self, current: &BTreeMap<String, String>) -> Result<Vec<FileChange>, String> {
        let mut edited: BTreeMap<&str, String> = BTreeMap::new();
        let mut problems = Vec::new();
        for (i, edit) in self.edits.iter().enumerate() {
            let Some(content) = edited
                .get(edit.path.as_str())
                .or_else(|| current.get(&edit.path))
            else {
                problems.push(format!(
                    "- edits[{i}]: '{}' does not exist; write a new file whole in `files`",
                    edit.path
                ));
                continue;
            };
            match content.matches(edit.search.as_str()).count() {
                1 => {
                    let content = content.replacen(&edit.search, &edit.replace, 1);
                    edited.insert(&edit.path, content);
                }
                0 => problems.push(format!(
                    "- edits[{i}]: the `search` text does not occur in '{}'; copy it exactly \
                     from the file's current content, whitespace included",
                    edit.path
                )),
                n => problems.push(format!(
                    "- edits[{i}]: the `search` text occurs {n} times in '{}'; include more \
                     surrounding lines so that it occurs exactly once",
                    edit.path
                )),
            }
        }
        if !problems.is_empty() {
            return Err(fill(EDITS_REJECTED, &[("problems", &problems.join("\n"))]));
        }
        let mut files = self.files.clone();
        files.extend(edited.into_iter().map(|(path, content)| FileChange {
            path: path.to_owned(),
            content,
        }));
        Ok(files)
    }
}

/// The current content of the files the Architect named, as data blocks (the Engineer's
/// [`Role::context`]).
pub fn repo_files_blocks(repo: &RepoContext) -> String {
    if repo.files.is_empty() {
        return fill(NO_FILES, &[]);
    }
    let blocks: Vec<String> = repo.files.iter().map(file_block).collect();
    fill(FILES, &[("files", &blocks.join("\n"))])
}

/// What goes back to the Engineer when its answer leaves conflict markers in `paths` (a
/// conflict revision).
pub fn conflicts_left(paths: &[String]) -> String {
    let paths: Vec<String> = paths
        .iter()
        .map(|p| format!("`{}`", super::neutralize(p)))
        .collect();
    fill(CONFLICTS_LEFT, &[("paths", &paths.join(", "))])
}

/// What goes back to the Engineer after `verification` failed: repair round `round` (1-based)
/// of `last_round` (REPAIR_ROUNDS), the failure as a `<verification>` data block; its edits
/// apply to the files as its previous answer left them.
pub fn repair_request(verification: &Verification, round: u32, last_round: u32) -> String {
    let repairs = round.saturating_sub(1) as usize;
    fill(
        REPAIR,
        &[
            ("round", &round.to_string()),
            ("last_round", &last_round.to_string()),
            ("verification", &verification_block(verification, repairs)),
        ],
    )
}

impl Validate for EngineerOutput {
    /// Non-empty summary and rationale; score 0–100; at least one file write or edit; each
    /// written path passing `git::check_path` and appearing once; each edit with a valid path
    /// not also written whole, and a non-empty `search`.
    fn check(&self, problems: &mut Problems) {
        let edit_paths: Vec<&str> = self.edits.iter().map(|e| e.path.as_str()).collect();
        let searches: Vec<&str> = self.edits.iter().map(|e| e.search.as_str()).collect();
        let answers: Vec<&str> = self.responses.iter().map(|r| r.answer.as_str()).collect();
        problems
            .text("summary", &self.summary)
            .score("score", self.score)
            .text("rationale", &self.rationale)
            .files("files", &self.files, 0)
            .item_paths("edits[].path", &edit_paths)
            .non_empty("edits[].search", &searches)
            .non_empty("responses[].answer", &answers)
            .any_items(&[("files", self.files.len()), ("edits", self.edits.len())]);
        // A rule across two fields that no schema here says.
        for (i, edit) in self.edits.iter().enumerate() {
            if self.files.iter().any(|f| f.path == edit.path) {
                problems.note(&format!(
                    "`edits[{i}]`: '{}' is also written whole in `files`; do one or the other",
                    edit.path
                ));
            }
        }
    }
}

impl Scored for EngineerOutput {
    fn vote_score(&self) -> Option<f64> {
        Some(f64::from(self.score))
    }

    fn rationale(&self) -> &str {
        &self.rationale
    }

    /// Markdown body shown to the later roles, files included in full.
    fn render(&self) -> String {
        Doc::default()
            .text("Summary", &self.summary)
            .files("Files written", &self.files)
            .text("Score", &self.score.to_string())
            .text("Rationale", &self.rationale)
            .finish()
    }
}

impl Tool for Engineer {
    const NAME: &'static str = Stage::Engineer.role_name();
    const TOOL_NAME: &'static str = "submit_implementation";
    const LOOKUPS: bool = true;
    type Output = EngineerOutput;
}

impl Role for Engineer {
    const STAGE: Stage = Stage::Engineer;
    const TOOL_DESCRIPTION: &'static str =
        include_str!("messages/tool_engineer.md").trim_ascii_end();
    const PROMPT: &'static str = include_str!("engineer.md");
    /// Whole files are written: the largest budget of all roles.
    const MAX_TOKENS: u32 = 16000;

    /// The current content of the files the Architect named.
    fn context(input: Input<'_>) -> Vec<String> {
        vec![repo_files_blocks(input.repo)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_request_numbers_the_round_and_counts_the_repairs_before_it() {
        let verification = Verification::not_verified("no </verification> sandbox");
        let request = repair_request(&verification, 2, 3);
        assert!(
            request.starts_with(
                "Your change does not pass the repository's own checks. Repair round 2 of 3: "
            ),
            "{request}"
        );
        assert!(
            request.contains("(after 1 repair round(s) of the Engineer)"),
            "{request}"
        );
        assert!(request.contains("<\\/verification> sandbox"), "{request}");
        assert!(request.ends_with("\n</verification>"), "{request}");
    }
}
