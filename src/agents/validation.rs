//! Checks of a role's answer ([`Validate`]), collected by [`Problems`] so that the one
//! corrective retry can fix every problem at once; the messages go back to the model. Each
//! check a JSON Schema can express is also a [`Rule`], which the role's tool schema must carry
//! (its output type's `#[schemars(...)]` attributes; a test in tests/it/agents.rs holds the two
//! together for every role), so a provider decoding to the whole schema cannot produce an answer
//! these checks refuse (a strict mode's subset may still drop some, see `llm::strict`). What a
//! schema cannot say stays here only: paths unique within a list of files, names that some
//! filesystem resolves to `.git`, lengths in bytes, a `search` text occurring exactly once.

use super::render::fill;
use crate::git::PathError;
use crate::task::FileChange;

/// The frame of a failed validation's message (`{problems}`: one `- …` line per problem).
pub(super) const INVALID: &str = include_str!("messages/invalid.md");

/// JSON Schema `pattern` of a required text: at least one character that is not whitespace
/// (patterns are unanchored).
pub const NON_BLANK: &str = r"\S";

/// A role's structured output, checked beyond its types.
pub trait Validate {
    /// Adds this answer's problems to `problems` (score ranges, required texts and lists,
    /// paths), each check through a [`Problems`] method so that its [`Rule`] is recorded.
    fn check(&self, problems: &mut Problems);

    /// `Ok`, or one message listing every problem, for the model.
    fn validate(&self) -> Result<(), String> {
        let mut problems = Problems::default();
        self.check(&mut problems);
        problems.finish()
    }
}

/// A check of [`Problems`] as JSON Schema says it, at `field`: a path into the tool input
/// where `name[]` stands for every item of the array `name` (e.g. `files[].path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A text with a non-whitespace character: `pattern` [`NON_BLANK`].
    NonBlank(String),
    /// A text of at least one character: `minLength: 1`.
    NonEmpty(String),
    /// An array of at least `n` items: `minItems: n`.
    MinItems(String, usize),
    /// A score: an integer with `minimum: 0` and `maximum: 100`.
    Score(String),
    /// A repository path: `pattern` [`crate::task::PATH_PATTERN`].
    Path(String),
    /// An array without repeated items: `uniqueItems: true`.
    Unique(String),
    /// At least one of these arrays, members of one object, has an item: that object's
    /// `anyOf` has a branch `{"required": [f], "properties": {f: {"minItems": 1}}}` per field
    /// `f` (the fields' own schemas stay in `properties`).
    AnyItems(Vec<String>),
}

/// Collects every problem of one answer, so the model can fix them all in its one retry, and
/// the [`Rule`] of every check made (whatever the answer).
#[derive(Debug, Default)]
pub struct Problems {
    problems: Vec<String>,
    rules: Vec<Rule>,
}

impl Problems {
    /// A score on the votes' 0–100 scale.
    pub fn score(&mut self, field: &str, score: u8) -> &mut Self {
        self.rules.push(Rule::Score(field.to_owned()));
        if score > 100 {
            self.problems
                .push(format!("`{field}` must be between 0 and 100 (got {score})"));
        }
        self
    }

    /// A required text: not empty or blank.
    pub fn text(&mut self, field: &str, text: &str) -> &mut Self {
        self.rules.push(Rule::NonBlank(field.to_owned()));
        if text.trim().is_empty() {
            self.problems.push(format!("`{field}` must not be empty"));
        }
        self
    }

    /// Texts of the items of array `field` (`texts`, one per item; e.g. every edit's `search`
    /// as `edits[].search`) that must not be empty (blank is fine).
    pub fn non_empty(&mut self, field: &str, texts: &[&str]) -> &mut Self {
        self.rules.push(Rule::NonEmpty(field.to_owned()));
        for (i, text) in texts.iter().enumerate() {
            if text.is_empty() {
                self.problems
                    .push(format!("`{}` must not be empty", item(field, i)));
            }
        }
        self
    }

    /// Required texts of the items of array `field` (`texts`, one per item; e.g. every
    /// planned task's `title` as `tasks[].title`): none blank.
    pub fn texts(&mut self, field: &str, texts: &[&str]) -> &mut Self {
        self.rules.push(Rule::NonBlank(field.to_owned()));
        for (i, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                self.problems
                    .push(format!("`{}` must not be empty", item(field, i)));
            }
        }
        self
    }

    /// An array of at least `min` items (`len` of them), whatever they hold.
    pub fn items(&mut self, field: &str, len: usize, min: usize) -> &mut Self {
        self.count(field, len, min);
        self
    }

    /// A list of at least `min` items, none of them blank.
    pub fn list(&mut self, field: &str, items: &[String], min: usize) -> &mut Self {
        self.count(field, items.len(), min);
        self.rules.push(Rule::NonBlank(format!("{field}[]")));
        if let Some(i) = items.iter().position(|item| item.trim().is_empty()) {
            self.problems
                .push(format!("`{field}[{i}]` must not be empty"));
        }
        self
    }

    /// Whole-file writes: at least `min`, each path valid ([`crate::git::check_path`]) and
    /// unique within the answer. Contents may be empty (an empty file).
    pub fn files(&mut self, field: &str, files: &[FileChange], min: usize) -> &mut Self {
        self.count(field, files.len(), min);
        self.rules.push(Rule::Path(format!("{field}[].path")));
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        self.paths_with(field, &paths, true, crate::git::check_path)
    }

    /// Repository paths: each valid ([`crate::git::check_path`]) and unique within the answer.
    pub fn paths(&mut self, field: &str, paths: &[String]) -> &mut Self {
        self.rules.push(Rule::Path(format!("{field}[]")));
        self.rules.push(Rule::Unique(field.to_owned()));
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.paths_with(field, &paths, true, crate::git::check_path)
    }

    /// Paths of the items of array `field` (`paths`, one per item, e.g. `edits[].path`), each
    /// valid ([`crate::git::check_path`]); they may repeat.
    pub fn item_paths(&mut self, field: &str, paths: &[&str]) -> &mut Self {
        self.rules.push(Rule::Path(field.to_owned()));
        self.paths_with(field, paths, false, crate::git::check_path)
    }

    /// [`Self::paths`] with the path check as a parameter; `unique`: a path named twice is a
    /// problem.
    fn paths_with(
        &mut self,
        field: &str,
        paths: &[&str],
        unique: bool,
        check: impl Fn(&str) -> Result<(), PathError>,
    ) -> &mut Self {
        for (i, path) in paths.iter().enumerate() {
            if unique && paths[..i].contains(path) {
                self.problems
                    .push(format!("`{field}` names '{path}' more than once"));
            } else if let Err(e) = check(path) {
                self.problems.push(format!("`{}`: {e}", item(field, i)));
            }
        }
        self
    }

    /// Lists of which at least one must have an item (`lists`: each field and its length),
    /// e.g. the Engineer's `files` and `edits`.
    pub fn any_items(&mut self, lists: &[(&str, usize)]) -> &mut Self {
        let fields: Vec<String> = lists.iter().map(|(f, _)| format!("`{f}`")).collect();
        self.rules.push(Rule::AnyItems(
            lists.iter().map(|(f, _)| (*f).to_owned()).collect(),
        ));
        if lists.iter().all(|(_, len)| *len == 0) {
            self.problems.push(format!(
                "{} are all empty: give at least one item in one of them",
                fields.join(" and ")
            ));
        }
        self
    }

    /// Any other problem, in the model's terms (a rule no schema says).
    pub fn note(&mut self, problem: &str) -> &mut Self {
        self.problems.push(problem.to_owned());
        self
    }

    fn count(&mut self, field: &str, len: usize, min: usize) {
        if min > 0 {
            self.rules.push(Rule::MinItems(field.to_owned(), min));
        }
        if len < min {
            self.problems.push(format!(
                "`{field}` must have at least {min} item(s) (got {len})"
            ));
        }
    }

    /// How many problems were found so far.
    pub fn found(&self) -> usize {
        self.problems.len()
    }

    /// The rules of every check made so far.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// `Ok` when nothing was found, else one message listing every problem.
    pub fn finish(&mut self) -> Result<(), String> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self.problems.iter().map(|p| format!("- {p}")).collect();
        Err(fill(INVALID, &[("problems", &list.join("\n"))]))
    }
}

/// `field` with item `i` named: `edits[].path` → `edits[2].path`; a plain array name → `name`
/// (its problems name the path).
fn item(field: &str, i: usize) -> String {
    match field.split_once("[]") {
        Some((array, rest)) => format!("{array}[{i}]{rest}"),
        None => field.to_owned(),
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
        problems.paths_with(
            "files",
            &["a.rs", "../x", "a.rs", "b.rs"],
            true,
            reject_dotdot,
        );
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
