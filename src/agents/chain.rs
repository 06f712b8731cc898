//! What a role is asked in: the outputs of the stages run so far (the context [`Chain`], rebuilt
//! from the stage records on resume), the repository as seen at the base branch
//! ([`RepoContext`]), and both with the task ([`Input`]).

use serde::de::DeserializeOwned;

use super::{
    ArchitectOutput, EngineerEvidence, EngineerOutput, PmOutput, PmVote, QaOutput, Scored,
    SecurityEvidence, SecurityOutput,
};
use crate::task::{Feedback, FileChange, Stage, Task};
use crate::verify::Verification;

/// The outputs of the stages run so far: the context chain each later stage is shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chain {
    pub pm: Option<PmOutput>,
    pub architect: Option<ArchitectOutput>,
    pub engineer: Option<EngineerOutput>,
    pub qa: Option<QaOutput>,
    pub security: Option<SecurityOutput>,
    /// The Engineer's verification rounds, recorded with its stage.
    pub engineer_evidence: Option<EngineerEvidence>,
    /// The gates and final verification: recorded with the Security stage, and set before the
    /// Security role is asked (it is shown them).
    pub security_evidence: Option<SecurityEvidence>,
}

impl Chain {
    /// True when `stage`'s output is in the chain.
    pub fn has(&self, stage: Stage) -> bool {
        self.output(stage).is_some()
    }

    /// How many stages are in the chain.
    pub fn completed(&self) -> usize {
        Stage::ALL.into_iter().filter(|s| self.has(*s)).count()
    }

    /// Puts a recorded output (a stage record's JSON) back into the chain; the error says why it
    /// does not deserialize into the role's output type.
    pub fn restore(&mut self, stage: Stage, output: serde_json::Value) -> Result<(), String> {
        match stage {
            Stage::Pm => self.pm = parse(output)?,
            Stage::Architect => self.architect = parse(output)?,
            Stage::Engineer => self.engineer = parse(output)?,
            Stage::Qa => self.qa = parse(output)?,
            Stage::Security => self.security = parse(output)?,
        }
        Ok(())
    }

    /// Puts a stage record's evidence back into the chain (the Engineer's and Security's; other
    /// stages have none); the error says why it does not deserialize.
    pub fn restore_evidence(
        &mut self,
        stage: Stage,
        evidence: Option<serde_json::Value>,
    ) -> Result<(), String> {
        let error = |e: String| format!("evidence: {e}");
        match (stage, evidence) {
            (Stage::Engineer, Some(evidence)) => {
                self.engineer_evidence = parse(evidence).map_err(error)?
            }
            (Stage::Security, Some(evidence)) => {
                self.security_evidence = parse(evidence).map_err(error)?
            }
            _ => {}
        }
        Ok(())
    }

    /// The verification the votes rest on: the final one (Security's, over everything to be
    /// committed) when recorded, else the Engineer's.
    pub fn verification(&self) -> Option<&Verification> {
        self.security_evidence
            .as_ref()
            .map(|e| &e.verification)
            .or(self.engineer_evidence.as_ref().map(|e| &e.verification))
    }

    /// Everything a publish commits: the Engineer's files, then QA's test files at paths the
    /// Engineer did not write (on a collision the Engineer's file is kept, with a warning).
    pub fn files_to_write(&self) -> Vec<FileChange> {
        let mut files: Vec<FileChange> =
            self.engineer.iter().flat_map(|e| e.files.clone()).collect();
        for test in self.qa.iter().flat_map(|q| &q.test_files) {
            if files.iter().any(|f| f.path == test.path) {
                tracing::warn!(path = %test.path, "QA test file collides with an Engineer file; keeping the Engineer's");
            } else {
                files.push(test.clone());
            }
        }
        files
    }

    /// True when the PM voted reject: the pipeline stops there, with decision `rejected_by_pm`.
    pub fn pm_rejected(&self) -> bool {
        self.pm.as_ref().is_some_and(|pm| pm.vote == PmVote::Reject)
    }

    /// `stage`'s score (0–100), `None` for the PM or a stage not run.
    pub fn score(&self, stage: Stage) -> Option<f64> {
        self.output(stage).and_then(Scored::vote_score)
    }

    /// `stage`'s rationale, empty for a stage not run.
    pub fn rationale(&self, stage: Stage) -> &str {
        self.output(stage).map_or("", Scored::rationale)
    }

    /// `stage`'s output as what every output offers (vote, rationale, rendering): the one
    /// stage-to-field mapping every reader of the chain goes through (only [`Chain::restore`],
    /// which needs the concrete type, has its own).
    pub(super) fn output(&self, stage: Stage) -> Option<&dyn Scored> {
        fn dyn_scored<T: Scored>(output: &Option<T>) -> Option<&dyn Scored> {
            output.as_ref().map(|o| o as &dyn Scored)
        }
        match stage {
            Stage::Pm => dyn_scored(&self.pm),
            Stage::Architect => dyn_scored(&self.architect),
            Stage::Engineer => dyn_scored(&self.engineer),
            Stage::Qa => dyn_scored(&self.qa),
            Stage::Security => dyn_scored(&self.security),
        }
    }
}

/// A stage record's JSON as `T`; the error is serde's.
fn parse<T: DeserializeOwned>(value: serde_json::Value) -> Result<Option<T>, String> {
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// What the repository looks like at the base branch, as shown to the roles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoContext {
    /// Tracked file paths (bounded; see `truncated`). Shown to every role.
    pub listing: Vec<String>,
    /// True when the listing was cut to its size bound.
    pub truncated: bool,
    /// True once the listing was fetched (it may be empty).
    pub listed: bool,
    /// The repository map ranked for the task (repository data: rendered inside the listing's
    /// data block), shown instead of the bare listing when set; `listing` then holds the paths
    /// it shows, best first. `None`: the bare listing.
    pub map: Option<String>,
    /// Current content of the files the Architect named (those that exist). Shown to the Engineer.
    pub files: Vec<FileChange>,
    /// In a revision of the task's PR: the PR's number and the conversation the revision
    /// answers, shown to every role after the shared context. `None` for the task's own run.
    pub revision: Option<(u64, Feedback)>,
}

impl RepoContext {
    /// Shows `map` (the repository map ranked for the task) instead of the bare listing:
    /// `listing` becomes the paths it shows, `truncated` whether it leaves files out.
    pub fn show_map(&mut self, map: crate::repomap::Rendered) {
        self.truncated = map.shown.len() < map.total_files;
        self.listing = map.shown;
        self.map = Some(map.text);
    }
}

/// Everything a role's request is built from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub task: &'a Task,
    pub chain: &'a Chain,
    pub repo: &'a RepoContext,
}
