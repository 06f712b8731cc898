//! The target repository's own settings: [`FILE`] (`.autonomous-dev.toml`) at the root of the
//! BASE branch, read from the base commit's blobs and never from a change. It says how the
//! repository is set up and checked and how its PRs are labelled; the daemon's settings
//! (SETUP_COMMAND, VERIFY_COMMAND, VERIFY_TIMEOUT) override it. A change to the file is
//! reported as a change of the check's definition, which holds an approval for a person. A
//! malformed file fails the task before any LLM call, naming the file, line and field.
//!
//! ```toml
//! setup = "python3 -m venv .venv && .venv/bin/pip install -e . pytest"
//! verify = "python3 -m pytest -q"
//! verify_timeout = 900
//! labels = ["python"]
//! writable = ["/var/tmp"]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The file's path, at the repository's root.
pub const FILE: &str = ".autonomous-dev.toml";

/// Longest `verify_timeout` accepted, in seconds (a day).
const MAX_TIMEOUT_SECS: u64 = 86_400;
/// GitHub's limit on a label's name, in characters.
const MAX_LABEL_CHARS: usize = 50;
/// Most `writable` paths accepted.
const MAX_WRITABLE: usize = 16;
/// Where no `writable` path may be: the sandbox's own mounts (the worktree is writable
/// already; `/proc` and `/dev` are the kernel's) and the root itself.
const NOT_WRITABLE: [&str; 3] = ["/workspace", "/proc", "/dev"];

/// What the repository's [`FILE`] says; every field is optional, and an absent file is the
/// default (nothing set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoConfig {
    /// `setup`: the trusted setup command, run with `sh -c` on the base commit in the sandbox
    /// with network allowed (e.g. `go mod download`); its result is kept per base commit.
    pub setup: Option<String>,
    /// `verify`: the check command run on every change, offline.
    pub verify: Option<String>,
    /// `verify_timeout`: wall-clock limit of one run of the check (1 s to a day).
    pub verify_timeout: Option<Duration>,
    /// `labels`: added to every PR opened on this repository.
    pub labels: Vec<String>,
    /// `writable`: absolute paths inside the sandbox, outside the worktree, that the setup and
    /// the check may write (e.g. `/var/tmp`, a tool's fixed cache directory). Each is an empty,
    /// size-limited tmpfs for one run, discarded after it: never kept, so no run sees what
    /// another wrote there.
    pub writable: Vec<PathBuf>,
}

/// The file as written, with each value's place in it for errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    setup: Option<Spanned<String>>,
    verify: Option<Spanned<String>>,
    verify_timeout: Option<Spanned<u64>>,
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    writable: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A malformed [`FILE`]: where and why. Displayed as
/// ``.autonomous-dev.toml line 3, field `verify_timeout`: must be 1 to 86400 seconds``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{FILE} line {line}{}: {message}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct RepoConfigError {
    /// 1-based line of the problem.
    pub line: usize,
    /// The field it is in, when the problem is in one.
    pub field: Option<String>,
    /// What is wrong, in TOML's or this module's words.
    pub message: String,
}

impl RepoConfig {
    /// Parses the content of [`FILE`].
    ///
    /// Errors: [`RepoConfigError`] for invalid TOML, an unknown field, a value of the wrong
    /// type, a blank command or label, a label over 50 characters, a timeout outside 1 s to a
    /// day, or a `writable` path that is not absolute and normal (no `.`, `..`, `//`), is `/`,
    /// is at or under `/workspace`, `/proc` or `/dev`, or is one of more than 16.
    pub fn parse(text: &str) -> Result<RepoConfig, RepoConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            RepoConfigError {
                line: line_of(text, at),
                field: key_on_line(text, at),
                message: e.message().trim().to_owned(),
            }
        })?;
        let problem = |field: &str, span: std::ops::Range<usize>, message: &str| RepoConfigError {
            line: line_of(text, span.start),
            field: Some(field.to_owned()),
            message: message.to_owned(),
        };
        let command = |field: &str, value: Option<Spanned<String>>| match value {
            Some(v) if v.get_ref().trim().is_empty() => {
                Err(problem(field, v.span(), "must not be blank"))
            }
            v => Ok(v.map(Spanned::into_inner)),
        };
        let setup = command("setup", raw.setup)?;
        let verify = command("verify", raw.verify)?;
        let verify_timeout = match raw.verify_timeout {
            Some(v) if !(1..=MAX_TIMEOUT_SECS).contains(v.get_ref()) => {
                return Err(problem(
                    "verify_timeout",
                    v.span(),
                    &format!("must be 1 to {MAX_TIMEOUT_SECS} seconds"),
                ));
            }
            v => v.map(|v| Duration::from_secs(v.into_inner())),
        };
        let mut labels: Vec<String> = Vec::new();
        for label in raw.labels {
            let name = label.get_ref().trim();
            if name.is_empty() || name.chars().count() > MAX_LABEL_CHARS {
                return Err(problem(
                    "labels",
                    label.span(),
                    &format!("a label has 1 to {MAX_LABEL_CHARS} characters"),
                ));
            }
            if !labels.iter().any(|l| l == name) {
                labels.push(name.to_owned());
            }
        }
        let paths = match raw.writable {
            Some(paths) if paths.get_ref().len() > MAX_WRITABLE => {
                return Err(problem(
                    "writable",
                    paths.span(),
                    &format!("at most {MAX_WRITABLE} paths"),
                ));
            }
            paths => paths.map(Spanned::into_inner).unwrap_or_default(),
        };
        let mut writable: Vec<PathBuf> = Vec::new();
        for path in paths {
            let Some(dir) = writable_path(path.get_ref()) else {
                return Err(problem(
                    "writable",
                    path.span(),
                    "a path is absolute and normal (no `.`, `..` or `//`), not `/`, and not at or \
                     under /workspace, /proc or /dev",
                ));
            };
            if !writable.contains(&dir) {
                writable.push(dir);
            }
        }
        Ok(RepoConfig {
            setup,
            verify,
            verify_timeout,
            labels,
            writable,
        })
    }
}

/// `text` as a [`RepoConfig::writable`] path, or `None` when it is not one.
fn writable_path(text: &str) -> Option<PathBuf> {
    let normal = text.strip_prefix('/')?.split('/').all(|segment| {
        !matches!(segment, "" | "." | "..") && !segment.chars().any(char::is_control)
    });
    let path = Path::new(text);
    let outside = !NOT_WRITABLE.iter().any(|root| path.starts_with(root));
    (normal && outside).then(|| path.to_path_buf())
}

/// The 1-based line holding byte `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The bare key that starts the line holding byte `at` (`key = …`), if it has one.
fn key_on_line(text: &str, at: usize) -> Option<String> {
    let start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    bare.then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_read() {
        let config = RepoConfig::parse(
            "setup = \"go mod download\"\nverify = \"go test ./...\"\nverify_timeout = 900\n\
             labels = [\"go\", \" go \", \"operator\"]\nwritable = [\"/var/tmp\", \"/var/tmp\"]\n",
        )
        .unwrap();
        assert_eq!(
            config,
            RepoConfig {
                setup: Some("go mod download".into()),
                verify: Some("go test ./...".into()),
                verify_timeout: Some(Duration::from_secs(900)),
                labels: vec!["go".into(), "operator".into()],
                writable: vec![PathBuf::from("/var/tmp")],
            }
        );
        assert_eq!(RepoConfig::parse("").unwrap(), RepoConfig::default());
    }

    #[test]
    fn a_malformed_file_names_its_line_and_field() {
        let cases = [
            (
                "verify = \"make\"\nverify_timeout = \"10\"\n",
                2,
                Some("verify_timeout"),
                "invalid type",
            ),
            (
                "verify = \"make\"\n\nverfy = \"x\"\n",
                3,
                Some("verfy"),
                "unknown field `verfy`",
            ),
            ("setup = \"  \"\n", 1, Some("setup"), "must not be blank"),
            (
                "verify_timeout = 0\n",
                1,
                Some("verify_timeout"),
                "must be 1 to 86400 seconds",
            ),
            (
                "labels = [\"ok\",\n  \"\"]\n",
                2,
                Some("labels"),
                "1 to 50 characters",
            ),
            ("verify = \"make\"\nsetup = \n", 2, None, ""),
            (
                "writable = [\"/var/tmp\",\n \"cache\"]\n",
                2,
                Some("writable"),
                "absolute and normal",
            ),
            ("writable = [\"/\"]\n", 1, Some("writable"), "not `/`"),
            (
                "writable = [\"/var/../etc\"]\n",
                1,
                Some("writable"),
                "no `.`",
            ),
            (
                "writable = [\"/workspace/x\"]\n",
                1,
                Some("writable"),
                "/workspace",
            ),
            ("writable = [\"/dev\"]\n", 1, Some("writable"), "/dev"),
            (
                "writable = \"/var/tmp\"\n",
                1,
                Some("writable"),
                "invalid type",
            ),
        ];
        for (text, line, field, message) in cases {
            let error = RepoConfig::parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            if field.is_some() {
                assert_eq!(error.field.as_deref(), field, "{text:?}: {error}");
            }
            assert!(error.message.contains(message), "{text:?}: {error}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{FILE} line {line}")),
                "{error}"
            );
        }
        let error = RepoConfig::parse("verify_timeout = 0\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            ".autonomous-dev.toml line 1, field `verify_timeout`: must be 1 to 86400 seconds"
        );
    }
}
