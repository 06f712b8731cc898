//! The look-up tools of the Architect and the Engineer: their specs in the shared tool list
//! (schemas derived from [`crate::task`]'s input types), the [`Lookups`] backend a conversation
//! asks (the pipeline's, over the run's snapshot), and one look-up answered: run, rendered as a
//! data block ([`lookup_block`]) with the look-ups left, and recorded ([`Lookup`]).

use async_trait::async_trait;

use super::conversation::input_schema;
use super::neutralize;
use super::render::{fill, lookup_block};
use crate::llm::ToolSpec;
use crate::task::{
    FIND_SYMBOL, FindSymbol, Lookup, LookupCall, LookupOutput, READ_FILE, ReadFile, SEARCH, Search,
};

/// The reply to a look-up that could not be answered (`{error}`).
const REFUSED: &str = include_str!("messages/lookup_refused.md");
/// Appended to a look-up's result: how many are left (`{left}`).
const LEFT: &str = include_str!("messages/lookups_left.md");
/// Appended to the last look-up's result (`{tool}`: the role's).
const SPENT: &str = include_str!("messages/lookups_spent.md");

/// Where a conversation's look-ups are answered: the repository at the run's base commit, plus
/// the files the conversation has written.
#[async_trait]
pub trait Lookups: Send + Sync {
    /// MAX_LOOKUPS: most look-up calls the role may make (0: the role is offered none).
    fn limit(&self) -> u32;
    /// Runs `call`. `Err(reason)`: why it cannot be answered, told to the model (a refused
    /// path, a missing file, an invalid regex, or the repository unreadable).
    async fn run(&self, call: &LookupCall) -> Result<LookupOutput, String>;
}

/// No look-ups: the roles that have none, and callers that offer none.
pub struct NoLookups;

#[async_trait]
impl Lookups for NoLookups {
    fn limit(&self) -> u32 {
        0
    }

    async fn run(&self, _call: &LookupCall) -> Result<LookupOutput, String> {
        Err("no look-ups are available".into())
    }
}

/// The look-up tools' specs, in [`crate::task::LOOKUP_TOOLS`] order.
pub(super) fn specs() -> [ToolSpec; 3] {
    let spec = |name: &str, description: &str, input_schema| ToolSpec {
        name: name.to_owned(),
        description: description.trim_ascii_end().to_owned(),
        input_schema,
    };
    [
        spec(
            READ_FILE,
            include_str!("messages/tool_read_file.md"),
            input_schema::<ReadFile>(),
        ),
        spec(
            SEARCH,
            include_str!("messages/tool_search.md"),
            input_schema::<Search>(),
        ),
        spec(
            FIND_SYMBOL,
            include_str!("messages/tool_find_symbol.md"),
            input_schema::<FindSymbol>(),
        ),
    ]
}

/// Answers one look-up: the call of `tool` with `input` parsed and run on `lookups`, its result
/// as a data block (or the reason it was refused) followed by the look-ups `left` after it
/// (none left: the model is told to call `role_tool`). Returns the text for the tool result,
/// whether it is an error, and its record.
pub(super) async fn answer(
    lookups: &dyn Lookups,
    tool: &str,
    input: &serde_json::Value,
    left: u32,
    role_tool: &str,
) -> (String, bool, Lookup) {
    let outcome = match LookupCall::parse(tool, input) {
        Some(Ok(call)) => lookups.run(&call).await,
        Some(Err(reason)) => Err(reason),
        None => Err(format!("`{tool}` is not a look-up tool")),
    };
    let (mut text, error) = match outcome {
        Ok(output) => (lookup_block(&output), None),
        Err(reason) => (
            fill(REFUSED, &[("error", &neutralize(&reason))]),
            Some(reason),
        ),
    };
    text.push_str("\n\n");
    text.push_str(&if left == 0 {
        fill(SPENT, &[("tool", role_tool)])
    } else {
        fill(LEFT, &[("left", &left.to_string())])
    });
    let record = Lookup {
        tool: tool.to_owned(),
        arguments: input.clone(),
        result_bytes: text.len() as u64,
        error: error.clone(),
    };
    (text, error.is_some(), record)
}
