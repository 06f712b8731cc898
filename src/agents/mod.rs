//! The five LLM roles of the pipeline — PM, Architect, Engineer, QA, Security. Each role is a
//! module with its output type (the forced tool's `input_schema` is derived from it by schemars),
//! its validation and its prompt, a Markdown file beside it. [`ask`] runs one role: one request,
//! and one corrective retry when the answer does not validate.

pub mod architect;
pub mod engineer;
pub mod pm;
pub mod qa;
pub mod security;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

pub use architect::ArchitectOutput;
pub use engineer::EngineerOutput;
pub use pm::{PmOutput, PmVote};
pub use qa::QaOutput;
pub use security::SecurityOutput;

use crate::llm::{LlmError, Provider};
use crate::task::{FileChange, Stage, Task, Usage};

/// A role's structured output: validated beyond what its JSON Schema says.
pub trait Validate {
    /// Checks score ranges, non-empty fields and paths; the message is sent back to the model.
    fn validate(&self) -> Result<(), String>;
}

/// One role of the pipeline.
pub trait Role {
    /// The stage this role answers.
    const STAGE: Stage;
    /// Name of the forced tool (e.g. `submit_prd`).
    const TOOL_NAME: &'static str;
    /// Tool description shown to the model.
    const TOOL_DESCRIPTION: &'static str;
    /// System prompt (the role's Markdown file, `include_str!`).
    const PROMPT: &'static str;
    /// What the role answers with.
    type Output: Serialize + DeserializeOwned + JsonSchema + Validate + Send + Sync;
}

/// The outputs of the stages run so far: the context chain each later stage is shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chain {
    pub pm: Option<PmOutput>,
    pub architect: Option<ArchitectOutput>,
    pub engineer: Option<EngineerOutput>,
    pub qa: Option<QaOutput>,
    pub security: Option<SecurityOutput>,
}

/// What the repository looks like at the base branch, as shown to the roles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoContext {
    /// Tracked file paths (bounded; see `truncated`). Shown to the Architect.
    pub listing: Vec<String>,
    /// True when the listing was cut to its size bound.
    pub truncated: bool,
    /// Current content of the files the Architect named (those that exist). Shown to the Engineer.
    pub files: Vec<FileChange>,
}

/// Everything a role's request is built from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub task: &'a Task,
    pub chain: &'a Chain,
    pub repo: &'a RepoContext,
}

/// A validated answer and what it cost (summed over the corrective retry, if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub output: T,
    pub usage: Usage,
    pub duration: Duration,
}

/// Why a role produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The answer failed validation twice (the second time after the error was sent back).
    #[error("{role} answered invalid output twice: {error}")]
    Invalid { role: &'static str, error: String },
}

/// Runs role `R` on `input` with `model`: renders the user message (task text delimited as data),
/// forces `R::TOOL_NAME`, deserializes and validates the tool input; on failure sends the error
/// back once as a tool result and asks again.
pub async fn ask<R: Role>(
    provider: &dyn Provider,
    model: &str,
    input: Input<'_>,
) -> Result<Answer<R::Output>, AgentError> {
    let _ = (provider, model, input);
    todo!()
}
