//! What the deterministic gates found in a change: the report recorded with the Security
//! stage's evidence, shown in the PR and kept in a refused task's outcome. Only the shape lives
//! here (a domain type); the checks and the rules over a report are in `crate::gates`.

use serde::{Deserialize, Serialize};

/// A secret found in an added line: where, and what kind (never the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    pub path: String,
    /// 1-based line number in the new content.
    pub line: usize,
    pub kind: String,
}

/// A file the gates refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub path: String,
    pub reason: String,
}

/// What the gates found in a change; recorded with the Security stage and shown in the PR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Files whose content differs from the base.
    pub files_changed: usize,
    /// The limits the change was checked against.
    pub max_files_changed: usize,
    pub max_file_bytes: usize,
    pub secrets: Vec<SecretFinding>,
    /// Binary and oversized files.
    pub refused: Vec<Refusal>,
    /// Changed GitHub Actions workflows.
    pub workflows: Vec<String>,
    /// Changed files that builds, CI or agents execute or read as instructions (Makefile,
    /// build.rs, Dockerfile, AGENTS.md, …), each with why: they hold an approval for a person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Refusal>,
    /// Other changed CI/automation files and git hooks.
    pub automation: Vec<String>,
    /// Changed dependency manifests and lock files.
    pub dependencies: Vec<String>,
    /// Whether workflow changes may be published without a person (ALLOW_WORKFLOW_CHANGES).
    pub allow_workflow_changes: bool,
}
