//! Checks of a role's answer beyond its JSON Schema ([`Validate`]), collected by [`Problems`]
//! so that the one corrective retry can fix every problem at once. The messages go back to the
//! model.

use super::render::fill;
use crate::git::PathError;
use crate::task::FileChange;

/// The frame of a failed validation's message (`{problems}`: one `- …` line per problem).
pub(super) const INVALID: &str = include_str!("messages/invalid.md");

/// A role's structured output: validated beyond what its JSON Schema says.
pub trait Validate {
    /// Checks score ranges, non-empty fields and paths; the message is sent back to the model.
    fn validate(&self) -> Result<(), String>;
}

/// Collects every problem of one answer, so the model can fix them all in its one retry.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// A score on the votes' 0–100 scale.
    pub fn score(&mut self, field: &str, score: u8) -> &mut Self {
        if score > 100 {
            self.0
                .push(format!("`{field}` must be between 0 and 100 (got {score})"));
        }
        self
    }

    /// A required text: not empty or blank.
    pub fn text(&mut self, field: &str, text: &str) -> &mut Self {
        if text.trim().is_empty() {
            self.0.push(format!("`{field}` must not be empty"));
        }
        self
    }

    /// A list of at least `min` items, none of them blank.
    pub fn list(&mut self, field: &str, items: &[String], min: usize) -> &mut Self {
        self.count(field, items.len(), min);
        if let Some(i) = items.iter().position(|item| item.trim().is_empty()) {
            self.0.push(format!("`{field}[{i}]` must not be empty"));
        }
        self
    }

    /// Whole-file writes: at least `min`, each path valid ([`crate::git::check_path`]) and
    /// unique within the answer. Contents may be empty (an empty file).
    pub fn files(&mut self, field: &str, files: &[FileChange], min: usize) -> &mut Self {
        self.count(field, files.len(), min);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        self.paths_with(field, &paths, crate::git::check_path)
    }

    /// Repository paths: each valid ([`crate::git::check_path`]) and unique within the answer.
    pub fn paths(&mut self, field: &str, paths: &[String]) -> &mut Self {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.paths_with(field, &paths, crate::git::check_path)
    }

    /// [`Self::paths`] with the path check as a parameter.
    fn paths_with(
        &mut self,
        field: &str,
        paths: &[&str],
        check: impl Fn(&str) -> Result<(), PathError>,
    ) -> &mut Self {
        for (i, path) in paths.iter().enumerate() {
            if paths[..i].contains(path) {
                self.0
                    .push(format!("`{field}` names '{path}' more than once"));
            } else if let Err(e) = check(path) {
                self.0.push(format!("`{field}`: {e}"));
            }
        }
        self
    }

    /// Any other problem, in the model's terms.
    pub fn note(&mut self, problem: &str) -> &mut Self {
        self.0.push(problem.to_owned());
        self
    }

    fn count(&mut self, field: &str, len: usize, min: usize) {
        if len < min {
            self.0.push(format!(
                "`{field}` must have at least {min} item(s) (got {len})"
            ));
        }
    }

    /// `Ok` when nothing was found, else one message listing every problem.
    pub fn finish(&mut self) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self.0.iter().map(|p| format!("- {p}")).collect();
        Err(fill(INVALID, &[("problems", &list.join("\n"))]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject_dotdot(path: &str) -> Result<(), PathError> {
        if path.contains("..") {
            Err(PathError {
                path: path.to_owned(),
                reason: "contains ..",
            })
        } else {
            Ok(())
        }
    }

    #[test]
    fn paths_reports_duplicates_and_rejected_paths() {
        let mut problems = Problems::default();
        problems.paths_with("files", &["a.rs", "../x", "a.rs", "b.rs"], reject_dotdot);
        let error = problems.finish().unwrap_err();
        assert!(error.contains("'a.rs' more than once"), "{error}");
        assert!(
            error.contains("rejected path '../x': contains .."),
            "{error}"
        );
        assert!(!error.contains("b.rs"), "{error}");
    }

    #[test]
    fn problems_are_all_listed() {
        let mut problems = Problems::default();
        let error = problems
            .score("score", 101)
            .text("rationale", "  ")
            .list("risks", &["ok".into(), "".into()], 3)
            .finish()
            .unwrap_err();
        assert!(error.contains("between 0 and 100 (got 101)"), "{error}");
        assert!(error.contains("`rationale` must not be empty"), "{error}");
        assert!(error.contains("at least 3 item(s) (got 2)"), "{error}");
        assert!(error.contains("`risks[1]` must not be empty"), "{error}");
        assert!(Problems::default().score("s", 100).finish().is_ok());
    }
}
