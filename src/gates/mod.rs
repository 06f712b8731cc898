//! The deterministic gates: checks over everything a change would commit that no vote can
//! override. They need no model and no network.
//!
//! - refusals, which fail the task before anything is pushed: a secret in an added line, a
//!   binary file, a file over MAX_FILE_BYTES, more than MAX_FILES_CHANGED files;
//! - flags, which the PR carries: CI workflows (a person must approve them unless
//!   ALLOW_WORKFLOW_CHANGES) and files that builds, CI, git hooks or agents execute (a person
//!   must approve them), other automation files, dependency manifests and lock files (all add
//!   the `security-review` label).
//!
//! A report names files and lines, never a secret's value.

mod own;
mod paths;
mod secrets;

pub use own::OwnSecrets;
pub use secrets::redact;

use std::collections::HashSet;

pub use crate::task::{GateReport, Refusal, SecretFinding};

use crate::task::FileChange;
use paths::Sensitive;

/// Limits and policy of the gates (from the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// MAX_FILE_BYTES (default 1 MiB): the largest file a change may write, in bytes.
    pub max_file_bytes: usize,
    /// MAX_FILES_CHANGED (default 50): the most files one change may write.
    pub max_files_changed: usize,
    /// ALLOW_WORKFLOW_CHANGES: a workflow change may be published without a person's approval.
    pub allow_workflow_changes: bool,
    /// The daemon's own secret values: a file carrying one in any form is refused.
    pub own_secrets: OwnSecrets,
}

/// One file of a change, with its content on the base branch (`None` for a new file, or one
/// that is not text there).
#[derive(Debug, Clone, Copy)]
pub struct Changed<'a> {
    pub file: &'a FileChange,
    pub base: Option<&'a str>,
    /// The file is executable on the base (git mode 100755): a rewrite keeps the mode, so
    /// builds and scripts that run it (`./gradlew`, `./configure`) run the new content.
    pub base_executable: bool,
}

/// Why a rewrite of a file executable on the base is held.
const REWRITTEN_EXECUTABLE: &str =
    "rewrites a file that is executable on the base (mode 100755): builds and scripts run it";

/// Runs every gate over `changes`. Files identical to their base are not part of the change.
pub fn check(changes: &[Changed<'_>], config: &GateConfig) -> GateReport {
    let mut report = GateReport {
        files_changed: 0,
        max_files_changed: config.max_files_changed,
        max_file_bytes: config.max_file_bytes,
        secrets: Vec::new(),
        refused: Vec::new(),
        workflows: Vec::new(),
        held: Vec::new(),
        automation: Vec::new(),
        dependencies: Vec::new(),
        allow_workflow_changes: config.allow_workflow_changes,
    };
    for change in changes {
        let FileChange { path, content } = change.file;
        if change.base == Some(content.as_str()) {
            continue;
        }
        report.files_changed += 1;
        match paths::classify(path) {
            Some(Sensitive::Workflow) => report.workflows.push(path.clone()),
            Some(Sensitive::Executed(reason)) => report.held.push(Refusal {
                path: path.clone(),
                reason: reason.to_owned(),
            }),
            Some(Sensitive::Automation) => report.automation.push(path.clone()),
            Some(Sensitive::Dependency) => report.dependencies.push(path.clone()),
            None => {}
        }
        let held = report.held.iter().any(|h| &h.path == path);
        if change.base_executable && !held {
            report.held.push(Refusal {
                path: path.clone(),
                reason: REWRITTEN_EXECUTABLE.to_owned(),
            });
        }
        if content.len() > config.max_file_bytes {
            report.refused.push(Refusal {
                path: path.clone(),
                reason: format!(
                    "{} bytes, over MAX_FILE_BYTES ({})",
                    content.len(),
                    config.max_file_bytes
                ),
            });
        }
        if let Some(form) = config.own_secrets.find(content) {
            report.refused.push(Refusal {
                path: path.clone(),
                reason: format!("carries one of the daemon's own secrets ({form} form)"),
            });
        }
        if is_binary(content) {
            report.refused.push(Refusal {
                path: path.clone(),
                reason: "binary content (NUL or control bytes)".into(),
            });
            continue;
        }
        report
            .secrets
            .extend(scan_added_lines(path, content, change.base));
    }
    report
}

/// The gates' rules over their report (the report's shape is a domain type, [`GateReport`]).
impl GateReport {
    /// Why the change must not be pushed at all: secrets, refused files, too many files.
    /// `None` when nothing is refused.
    pub fn block_reason(&self) -> Option<String> {
        let mut reasons: Vec<String> = self
            .secrets
            .iter()
            .map(|s| format!("a secret in {} line {} ({})", s.path, s.line, s.kind))
            .collect();
        reasons.extend(
            self.refused
                .iter()
                .map(|r| format!("{}: {}", r.path, r.reason)),
        );
        if self.files_changed > self.max_files_changed {
            reasons.push(format!(
                "{} files changed, over MAX_FILES_CHANGED ({})",
                self.files_changed, self.max_files_changed
            ));
        }
        (!reasons.is_empty()).then(|| format!("refused by the gates: {}", reasons.join("; ")))
    }

    /// True when a person must approve before anything is published: CI workflows changed and
    /// ALLOW_WORKFLOW_CHANGES is off, or a file that builds, CI or agents execute or read as
    /// instructions changed ([`GateReport::held`], whatever ALLOW_WORKFLOW_CHANGES says).
    pub fn requires_human(&self) -> bool {
        (!self.workflows.is_empty() && !self.allow_workflow_changes) || !self.held.is_empty()
    }

    /// Why a person must approve, one sentence per reason (empty when none).
    pub fn hold_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if !self.workflows.is_empty() && !self.allow_workflow_changes {
            reasons.push(format!(
                "changes CI workflows ({}); a person must review them (ALLOW_WORKFLOW_CHANGES is off)",
                self.workflows.join(", ")
            ));
        }
        reasons.extend(
            self.held
                .iter()
                .map(|h| format!("changes {}: {}; a person must review it", h.path, h.reason)),
        );
        reasons
    }

    /// True when the PR gets the `security-review` label: CI, automation, hooks or
    /// dependencies changed.
    pub fn needs_security_review_label(&self) -> bool {
        !(self.workflows.is_empty()
            && self.held.is_empty()
            && self.automation.is_empty()
            && self.dependencies.is_empty())
    }

    /// One line: files changed, and what was refused or flagged (for `tasks show`).
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} file(s) changed", self.files_changed)];
        if let Some(reason) = self.block_reason() {
            parts.push(reason);
        }
        for held in &self.held {
            parts.push(format!("held: {} ({})", held.path, held.reason));
        }
        for (label, paths) in [
            ("CI workflows", &self.workflows),
            ("CI/automation", &self.automation),
            ("dependencies", &self.dependencies),
        ] {
            if !paths.is_empty() {
                parts.push(format!("{label}: {}", paths.join(", ")));
            }
        }
        if parts.len() == 1 {
            parts.push("nothing refused or flagged".into());
        }
        parts.join("; ")
    }

    /// The report as a Markdown table (gate, result), for the PR body and the Security role.
    pub fn markdown(&self) -> String {
        let listed = |paths: &[String], note: &str| {
            if paths.is_empty() {
                "none".to_owned()
            } else {
                let names: Vec<String> = paths.iter().map(|p| format!("`{p}`")).collect();
                format!("{}{note}", names.join(", "))
            }
        };
        let secrets = if self.secrets.is_empty() {
            "none found in the added lines".to_owned()
        } else {
            let found: Vec<String> = self
                .secrets
                .iter()
                .map(|s| format!("`{}` line {} ({})", s.path, s.line, s.kind))
                .collect();
            format!("**refused**: {}", found.join(", "))
        };
        let files = if self.refused.is_empty() && self.files_changed <= self.max_files_changed {
            format!(
                "{} changed (limit {}); none binary or over {} bytes",
                self.files_changed, self.max_files_changed, self.max_file_bytes
            )
        } else {
            let mut refused: Vec<String> = self
                .refused
                .iter()
                .map(|r| format!("`{}`: {}", r.path, r.reason))
                .collect();
            if self.files_changed > self.max_files_changed {
                refused.push(format!(
                    "{} changed, over the limit of {}",
                    self.files_changed, self.max_files_changed
                ));
            }
            format!("**refused**: {}", refused.join(", "))
        };
        let workflow_note = if self.allow_workflow_changes {
            " (allowed by ALLOW_WORKFLOW_CHANGES; `security-review`)"
        } else {
            " (**a person must approve**: ALLOW_WORKFLOW_CHANGES is off)"
        };
        let held = if self.held.is_empty() {
            "none".to_owned()
        } else {
            let held: Vec<String> = self
                .held
                .iter()
                .map(|h| format!("`{}`: {}", h.path, h.reason))
                .collect();
            format!("**a person must approve**: {}", held.join(", "))
        };
        format!(
            "| Gate | Result |\n|---|---|\n| Secrets | {secrets} |\n| Files | {files} |\n\
             | CI workflows | {} |\n| Run by builds, CI or agents | {held} |\n\
             | CI, automation, git hooks | {} |\n\
             | Dependency manifests, lock files | {} |\n",
            listed(&self.workflows, workflow_note),
            listed(&self.automation, " (`security-review`)"),
            listed(&self.dependencies, " (`security-review`)"),
        )
    }
}

/// Binary by git's rule (a NUL byte) or with other control characters no text file has.
fn is_binary(content: &str) -> bool {
    content
        .bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1b))
}

/// Secrets in the lines of `content` that the base does not have (a secret already on the base
/// branch is not this change's doing). A statement split over lines by a `+` at a line's end
/// or start is also scanned whole, with its string concatenations undone, and reported at its
/// first line.
fn scan_added_lines(path: &str, content: &str, base: Option<&str>) -> Vec<SecretFinding> {
    let existing: HashSet<&str> = base.map(|b| b.lines().collect()).unwrap_or_default();
    let lines: Vec<&str> = content.lines().collect();
    let mut findings: Vec<SecretFinding> = Vec::new();
    let mut found = |line: usize, kinds: Vec<&'static str>| {
        for kind in kinds {
            if !findings.iter().any(|f| f.line == line && f.kind == kind) {
                findings.push(SecretFinding {
                    path: path.to_owned(),
                    line,
                    kind: kind.to_owned(),
                });
            }
        }
    };
    let mut start = 0;
    while start < lines.len() {
        let mut end = start + 1;
        while end < lines.len()
            && (lines[end - 1].trim_end().ends_with('+')
                || lines[end].trim_start().starts_with('+'))
        {
            end += 1;
        }
        let group = &lines[start..end];
        if group.iter().any(|line| !existing.contains(line)) {
            for (i, line) in group.iter().enumerate() {
                if !existing.contains(line) {
                    found(start + i + 1, secrets::scan_line(line));
                }
            }
            if let Some(whole) = secrets::joined(&group.join("\n")) {
                found(start + 1, secrets::scan_line(&whole));
            }
        }
        start = end;
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GateConfig {
        GateConfig {
            max_file_bytes: 100,
            max_files_changed: 3,
            allow_workflow_changes: false,
            own_secrets: OwnSecrets::default(),
        }
    }

    fn file(path: &str, content: &str) -> FileChange {
        FileChange {
            path: path.into(),
            content: content.into(),
        }
    }

    fn check_files(files: &[(FileChange, Option<&str>)], config: &GateConfig) -> GateReport {
        let changes: Vec<Changed<'_>> = files
            .iter()
            .map(|(file, base)| Changed {
                file,
                base: *base,
                base_executable: false,
            })
            .collect();
        check(&changes, config)
    }

    fn aws_key() -> String {
        format!("AKIA{}", "Q7ZL3XW9RT2PLM4N")
    }

    #[test]
    fn a_clean_change_passes_every_gate() {
        let report = check_files(&[(file("src/a.rs", "fn a() {}\n"), None)], &config());
        assert_eq!(report.block_reason(), None);
        assert!(!report.requires_human() && !report.needs_security_review_label());
        assert_eq!(report.files_changed, 1);
        assert!(
            report.markdown().contains("| Secrets | none found"),
            "{}",
            report.markdown()
        );
    }

    #[test]
    fn a_secret_is_reported_by_file_and_line_never_by_value() {
        let content = format!("x = 1\nAWS = \"{}\"\n", aws_key());
        let report = check_files(&[(file("conf.py", &content), None)], &config());
        let reason = report.block_reason().unwrap();
        assert!(
            reason.contains("conf.py line 2 (AWS access key ID)"),
            "{reason}"
        );
        let serialized = serde_json::to_string(&report).unwrap() + &report.markdown() + &reason;
        assert!(!serialized.contains("Q7ZL3XW9RT2PLM4N"), "{serialized}");
    }

    #[test]
    fn a_secret_already_on_the_base_is_not_this_changes_doing() {
        let old = format!("AWS = \"{}\"\n", aws_key());
        let new = format!("{old}y = 2\n");
        let report = check_files(&[(file("conf.py", &new), Some(&old))], &config());
        assert_eq!(report.block_reason(), None);
    }

    #[test]
    fn binary_oversized_and_too_many_files_are_refused() {
        let files = [
            (file("a.bin", "PK\u{3}\u{4}\0\0"), None),
            (file("big.txt", &"x".repeat(101)), None),
            (file("c.txt", "c"), None),
            (file("d.txt", "d"), None),
            (file("same.txt", "same"), Some("same")),
        ];
        let report = check_files(&files, &config());
        assert_eq!(report.files_changed, 4, "an unchanged file is no change");
        let reason = report.block_reason().unwrap();
        assert!(reason.contains("a.bin: binary"), "{reason}");
        assert!(
            reason.contains("big.txt: 101 bytes, over MAX_FILE_BYTES (100)"),
            "{reason}"
        );
        assert!(
            reason.contains("4 files changed, over MAX_FILES_CHANGED (3)"),
            "{reason}"
        );
        assert!(report.markdown().contains("**refused**"));
    }

    #[test]
    fn workflows_need_a_person_unless_allowed_and_other_sensitive_files_a_label() {
        let files = [
            (file(".github/workflows/ci.yml", "on: push\n"), None),
            (file("Cargo.lock", "# lock\n"), None),
            (file(".github/CODEOWNERS", "* @o\n"), None),
        ];
        let report = check_files(&files, &config());
        assert_eq!(report.block_reason(), None);
        assert!(report.requires_human() && report.needs_security_review_label());
        assert_eq!(report.workflows, [".github/workflows/ci.yml"]);
        assert_eq!(report.dependencies, ["Cargo.lock"]);
        assert_eq!(report.automation, [".github/CODEOWNERS"]);
        assert!(report.markdown().contains("a person must approve"));

        let allowed = GateConfig {
            allow_workflow_changes: true,
            ..config()
        };
        let report = check_files(&files, &allowed);
        assert!(!report.requires_human() && report.needs_security_review_label());
    }
}
