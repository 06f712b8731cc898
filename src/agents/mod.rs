//! The five LLM roles of the pipeline — PM, Architect, Engineer, QA, Security. Each role is a
//! module with its output type (the forced tool's `input_schema` is derived from it by schemars),
//! its validation and its prompt, a Markdown file beside it. [`ask`] runs one role: one request,
//! and one corrective retry when the answer does not validate. The planner of
//! `autonomous-dev plan` (`planner`) is built the same way but is no role: it runs outside the
//! pipeline, once, with its own system prompt and only its own tool.
//!
//! What the roles share is one module per concept: `chain` (the context a role is asked in),
//! `conversation` (request, look-ups, answer, corrective retry, the [`Meter`]), `lookup` (the
//! look-up tools and their [`Lookups`] backend), `validation`
//! ([`Problems`]), `render` (the user message, every untrusted text in a delimited data block,
//! see [`neutralize`]) and `evidence` (what a vote rests on besides the model). Every text a
//! model reads is a Markdown file here: `system.md`, `<role>.md` and `messages/*.md` (the tools'
//! descriptions included), except the tools' input schemas, derived from the roles' output
//! types and their docs.

mod architect;
mod chain;
mod conversation;
mod engineer;
mod evidence;
mod lookup;
mod planner;
mod pm;
mod qa;
mod render;
mod security;
mod validation;

use schemars::JsonSchema;
use serde::Serialize;

pub use architect::{Architect, ArchitectOutput};
pub use chain::{Chain, Input, RepoContext};
pub use conversation::{
    AgentError, Answer, Conversation, Meter, MeterError, SYSTEM_PROMPT, Tool, ask, ask_with,
    input_schema, tool_request,
};
pub use engineer::{
    Edit, Engineer, EngineerOutput, Response, conflicts_left, repair_request, repo_files_blocks,
};
pub use evidence::{
    EngineerEvidence, Round, RoundOutcome, SecurityEvidence, gates_block, verification_block,
};
pub use lookup::{Lookups, NoLookups};
pub use planner::{PlanOutput, PlannedTask, Planner, plan_request};
pub use pm::{Pm, PmOutput, PmVote};
pub use qa::{Qa, QaOutput};
pub use render::{
    Doc, chain_blocks, checks_block, conversation_block, file_block, goal_block, listing_block,
    lookup_block, neutralize, task_block, user_parts,
};
pub use security::{Security, SecurityOutput};
pub use validation::{NON_BLANK, Problems, Rule, Validate};

use crate::task::Stage;

/// What the pipeline needs of any role's output besides its fields: the vote the consensus
/// counts and the Markdown the later roles are shown.
pub trait Scored {
    /// 0–100 for the scoring roles (Architect, Engineer, QA, Security); `None` for the PM, which
    /// votes approve/reject instead and whose reject stops the pipeline (see `consensus`).
    fn vote_score(&self) -> Option<f64>;
    /// The role's own explanation of its verdict.
    fn rationale(&self) -> &str;
    /// Markdown body shown to the later roles inside its `<stage_output>` block, every text
    /// neutralized ([`Doc`]).
    fn render(&self) -> String;
}

/// One role of the pipeline: a [`Tool`] (its forced tool and output type) whose output the
/// pipeline records, scores and shows to the later roles.
pub trait Role: Tool<Output: Serialize + JsonSchema + Scored> {
    /// The stage this role answers.
    const STAGE: Stage;
    /// Tool description shown to the model (`messages/tool_<role>.md`).
    const TOOL_DESCRIPTION: &'static str;
    /// The role's instructions (its Markdown file, `include_str!`), sent after the shared
    /// prefix; the system prompt ([`SYSTEM_PROMPT`]) is the same for every role.
    const PROMPT: &'static str;
    /// Output budget of one answer, in tokens (`max_tokens` of the request).
    const MAX_TOKENS: u32;

    /// What only this role is shown, after its instructions (e.g. the current content of the
    /// files the Architect named, for the Engineer), every untrusted text inside a delimited
    /// data block. The task, the repository listing and the earlier outputs are shown to every
    /// role, in the shared prefix ([`user_parts`]).
    fn context(_input: Input<'_>) -> Vec<String> {
        Vec::new()
    }
}
