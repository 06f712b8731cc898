//! A role's conversation with its model: the request (shared system prompt, every role's tool
//! and the look-up tools, the role's user message), the look-ups answered until the role
//! submits (Architect, Engineer; at most MAX_LOOKUPS, then its tool is forced), the answer
//! deserialized and validated with one corrective retry, the pipeline's feedback for a repair
//! round, and the [`Meter`] every call passes. The loop is over any [`Tool`] (a forced tool and
//! its validated output): the five roles, and the planner of `autonomous-dev plan`, which builds
//! its own request.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;

use super::lookup::{self, Lookups, NoLookups};
use super::render::fill;
use super::{Architect, Engineer, Input, Pm, Qa, Role, Security, Validate, user_parts};
use crate::llm::{Choice, LlmError, Message, Provider, ToolCall, ToolRequest, ToolSpec};
use crate::task::{CallKind, LOOKUP_TOOLS, Lookup, Usage};

/// The system prompt of every role: what the team is and the data-not-instructions rule. One
/// text for all roles, so that with the tools it forms a prefix the provider caches.
pub const SYSTEM_PROMPT: &str = include_str!("system.md");

/// The reply to a call of another role's tool (`{called}`; `{tool}` is the one asked for).
pub(super) const WRONG_TOOL: &str = include_str!("messages/wrong_tool.md");

/// The reply to a tool input that does not deserialize (`{error}`: serde's message).
pub(super) const SCHEMA_MISMATCH: &str = include_str!("messages/schema_mismatch.md");

/// The reply to a call of a look-up tool by a role without look-ups (`{called}`, `{role}`,
/// `{tool}`).
const NOT_YOURS: &str = include_str!("messages/lookup_not_yours.md");

/// A validated answer and what it cost (summed over the look-ups and the corrective retry, if
/// any).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub output: T,
    pub usage: Usage,
    pub duration: Duration,
    /// Every look-up of the conversation so far, in order.
    pub lookups: Vec<Lookup>,
}

/// Why a role produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The answer failed validation twice (the second time after the error was sent back).
    #[error("{role} answered invalid output twice: {error}")]
    Invalid { role: &'static str, error: String },
    /// The meter refused the call or could not record it.
    #[error(transparent)]
    Meter(#[from] MeterError),
}

/// Asked before and told after every model call of a role: the cost guard (budget caps) and the
/// spend ledger live behind it, in the pipeline.
#[async_trait::async_trait]
pub trait Meter: Send + Sync {
    /// Called before `request` is sent; an error stops the role without the call.
    async fn before_call(&self, request: &ToolRequest) -> Result<(), MeterError>;
    /// Called after every answered call with what it cost and why it was made.
    async fn after_call(&self, model: &str, usage: Usage, kind: CallKind)
    -> Result<(), MeterError>;
}

/// Why a [`Meter`] stopped a role.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// The task's spend plus this call's worst case would exceed MAX_TASK_COST_USD.
    #[error("budget exceeded: {0}")]
    TaskBudget(String),
    /// Today's (UTC) spend plus this call's worst case would exceed DAILY_BUDGET_USD.
    #[error("daily budget exhausted: {message}")]
    DailyBudget {
        message: String,
        /// When the budget renews (next midnight UTC).
        resume_at: chrono::DateTime<chrono::Utc>,
    },
    /// The spend could not be read or recorded (the database is unreachable).
    #[error("cannot account the LLM spend: {0}")]
    Ledger(String),
}

/// What a [`Conversation`] asks a model for: a call of one forced tool whose input
/// deserializes to `Output` and passes its [`Validate`] checks. Every [`Role`] is one.
pub trait Tool {
    /// Who answers, as logs and [`AgentError::Invalid`] name it (`PM`, `planner`).
    const NAME: &'static str;
    /// Name of the forced tool (e.g. `submit_prd`).
    const TOOL_NAME: &'static str;
    /// Whether it may call the look-up tools (`read_file`, `search`, `find_symbol`) before it
    /// submits: the Architect and the Engineer.
    const LOOKUPS: bool = false;
    /// What the tool's input must deserialize to.
    type Output: DeserializeOwned + Validate + Send + Sync;
}

/// Runs role `R` on `input` with `model`: one [`Conversation`] answered once, without
/// look-ups.
///
/// Errors: see [`Conversation::answer`].
pub async fn ask<R: Role>(
    provider: &dyn Provider,
    model: &str,
    input: Input<'_>,
    meter: &dyn Meter,
) -> Result<Answer<R::Output>, AgentError> {
    ask_with::<R>(provider, model, input, meter, &NoLookups).await
}

/// [`ask`] with the look-ups of `lookups` (for the roles that have look-up tools).
///
/// Errors: see [`Conversation::answer`].
pub async fn ask_with<R: Role>(
    provider: &dyn Provider,
    model: &str,
    input: Input<'_>,
    meter: &dyn Meter,
    lookups: &dyn Lookups,
) -> Result<Answer<R::Output>, AgentError> {
    Conversation::<R>::new(model, input)
        .answer_with(provider, meter, lookups)
        .await
}

/// A role's conversation with its model: the first request, then — on the same conversation, so
/// each turn reads the earlier ones from the prompt cache — a corrective retry when an answer
/// does not validate, and the pipeline's feedback (a failed verification, an edit that did not
/// apply) for a repair round.
pub struct Conversation<R: Tool> {
    request: ToolRequest,
    /// The last accepted call, which [`Conversation::reply`] answers.
    last: Option<ToolCall>,
    /// Why the next call is made.
    next: CallKind,
    started: Instant,
    usage: Usage,
    /// The look-ups made so far (at most MAX_LOOKUPS).
    lookups: Vec<Lookup>,
    role: std::marker::PhantomData<R>,
}

impl<R: Role> Conversation<R> {
    /// The first request of role `R` ([`tool_request`]).
    pub fn new(model: &str, input: Input<'_>) -> Conversation<R> {
        Conversation::with_request(tool_request::<R>(model, input))
    }
}

impl<R: Tool> Conversation<R> {
    /// A conversation whose first request is `request`; its `tool_choice` must be
    /// `R::TOOL_NAME`.
    pub fn with_request(request: ToolRequest) -> Conversation<R> {
        Conversation {
            request,
            last: None,
            next: CallKind::Answer,
            started: Instant::now(),
            usage: Usage::default(),
            lookups: Vec::new(),
            role: std::marker::PhantomData,
        }
    }

    /// Asks the model for a call of `R::TOOL_NAME`, deserializes and validates the tool input;
    /// on failure (another tool called, invalid input) sends the error back once as a tool
    /// result and asks again. `meter` is asked before and told after each call. No look-ups:
    /// see [`Conversation::answer_with`].
    ///
    /// The answer's `usage` is the whole conversation's so far and `duration` runs from
    /// [`Conversation::new`]. Errors: the provider's ([`AgentError::Llm`]), the meter's
    /// ([`AgentError::Meter`]), or [`AgentError::Invalid`] when the second answer fails too.
    pub async fn answer(
        &mut self,
        provider: &dyn Provider,
        meter: &dyn Meter,
    ) -> Result<Answer<R::Output>, AgentError> {
        self.answer_with(provider, meter, &NoLookups).await
    }

    /// [`Conversation::answer`] where a role with look-up tools (`R::LOOKUPS`) may call them
    /// first: each look-up is run on `lookups`, its result sent back as a tool result, and the
    /// model asked again (each call passing `meter`, as [`CallKind::Lookup`]), until it calls
    /// `R::TOOL_NAME`. After `lookups.limit()` look-ups in the whole conversation (repair
    /// rounds included) the role's tool is forced ([`Choice::Forced`]). Look-ups are not
    /// corrective retries; a refused one is a tool error the model is told and counts.
    pub async fn answer_with(
        &mut self,
        provider: &dyn Provider,
        meter: &dyn Meter,
        lookups: &dyn Lookups,
    ) -> Result<Answer<R::Output>, AgentError> {
        let role = R::NAME;
        let limit = if R::LOOKUPS { lookups.limit() } else { 0 };
        let mut retried = false;
        loop {
            let used = u32::try_from(self.lookups.len()).unwrap_or(u32::MAX);
            self.request.choice = if limit == 0 {
                Choice::Role
            } else if used < limit {
                Choice::WithLookups(LOOKUP_TOOLS.map(str::to_owned).to_vec())
            } else {
                Choice::Forced
            };
            meter.before_call(&self.request).await?;
            let call = provider.call_tool(&self.request).await?;
            self.usage += call.usage;
            meter
                .after_call(&self.request.model, call.usage, self.next)
                .await?;
            if limit > used && LOOKUP_TOOLS.contains(&call.name.as_str()) {
                let left = limit - used - 1;
                let (content, is_error, record) =
                    lookup::answer(lookups, &call.name, &call.input, left, R::TOOL_NAME).await;
                tracing::info!(role, tool = %call.name, bytes = record.result_bytes, refused = is_error, left, "look-up");
                self.lookups.push(record);
                self.request.messages.push(Message::ToolCall {
                    id: call.id.clone(),
                    name: call.name,
                    input: call.input,
                });
                self.request.messages.push(Message::ToolResult {
                    id: call.id,
                    content,
                    is_error,
                });
                self.next = CallKind::Lookup;
                continue;
            }
            let accepted = if call.name == R::TOOL_NAME {
                accept::<R::Output>(&call.input)
            } else if LOOKUP_TOOLS.contains(&call.name.as_str()) {
                Err(fill(
                    NOT_YOURS,
                    &[
                        ("called", &call.name),
                        ("role", role),
                        ("tool", R::TOOL_NAME),
                    ],
                ))
            } else {
                Err(fill(
                    WRONG_TOOL,
                    &[("called", &call.name), ("tool", R::TOOL_NAME)],
                ))
            };
            match accepted {
                Ok(output) => {
                    self.last = Some(call);
                    return Ok(self.answered(output));
                }
                Err(error) if retried => return Err(AgentError::Invalid { role, error }),
                Err(error) => {
                    tracing::info!(role, model = %self.request.model, %error, "invalid answer, sending the error back once");
                    self.push_reply(call, error);
                    self.next = CallKind::Correction;
                    retried = true;
                }
            }
        }
    }

    /// Answers the last accepted call with `feedback` (why it cannot stand: a failed
    /// verification, an edit that did not apply), so the next [`Conversation::answer`] asks for
    /// a corrected call. Does nothing before the first answer.
    pub fn reply(&mut self, feedback: String) {
        if let Some(call) = self.last.take() {
            self.push_reply(call, feedback);
            self.next = CallKind::Feedback;
        }
    }

    /// Echoes `call` and answers it with `error`.
    fn push_reply(&mut self, call: ToolCall, error: String) {
        self.request.messages.push(Message::ToolCall {
            id: call.id.clone(),
            name: call.name,
            input: call.input,
        });
        self.request
            .messages
            .push(Message::ToolError { id: call.id, error });
    }

    /// Wraps a validated output and logs what the conversation cost so far at debug level (no
    /// content, nothing secret; the pipeline's "stage finished" line carries the same at info).
    fn answered(&self, output: R::Output) -> Answer<R::Output> {
        let duration = self.started.elapsed();
        tracing::debug!(
            role = R::NAME,
            model = %self.request.model,
            input_tokens = self.usage.input_tokens,
            output_tokens = self.usage.output_tokens,
            duration_ms = duration.as_millis() as u64,
            "role answered"
        );
        Answer {
            output,
            usage: self.usage,
            duration,
            lookups: self.lookups.clone(),
        }
    }
}

/// The first request of role `R`: the shared system prompt, every role's tool and the look-up
/// tools (the same list for all roles, so the cached prefix holds) with `R::TOOL_NAME` forced,
/// and the user message of [`user_parts`].
pub fn tool_request<R: Role>(model: &str, input: Input<'_>) -> ToolRequest {
    ToolRequest {
        model: model.to_owned(),
        system: SYSTEM_PROMPT.to_owned(),
        messages: vec![Message::User(user_parts::<R>(input))],
        tools: TOOLS.clone(),
        tool_choice: R::TOOL_NAME.to_owned(),
        choice: Choice::Role,
        max_tokens: R::MAX_TOKENS,
    }
}

/// The tools of the five roles, in pipeline order, then the look-up tools (schemas generated
/// once).
static TOOLS: std::sync::LazyLock<Vec<ToolSpec>> = std::sync::LazyLock::new(|| {
    fn spec<R: Role>() -> ToolSpec {
        ToolSpec {
            name: R::TOOL_NAME.to_owned(),
            description: R::TOOL_DESCRIPTION.to_owned(),
            input_schema: input_schema::<R::Output>(),
        }
    }
    let mut tools = vec![
        spec::<Pm>(),
        spec::<Architect>(),
        spec::<Engineer>(),
        spec::<Qa>(),
        spec::<Security>(),
    ];
    tools.extend(lookup::specs());
    tools
});

/// Deserializes and validates a tool input; the error text is what the model is told. An input
/// that is a string is arguments that were not JSON (OpenAI-compatible servers): the model is
/// told where the JSON broke, not its own text again.
fn accept<T: DeserializeOwned + Validate>(input: &serde_json::Value) -> Result<T, String> {
    let mismatch = |error: String| fill(SCHEMA_MISMATCH, &[("error", &error)]);
    if let serde_json::Value::String(raw) = input
        && let Err(e) = serde_json::from_str::<serde_json::Value>(raw)
    {
        return Err(mismatch(format!("the arguments are not valid JSON ({e})")));
    }
    let output = T::deserialize(input).map_err(|e| mismatch(e.to_string()))?;
    output.validate()?;
    Ok(output)
}

/// The JSON Schema of a tool input as Anthropic accepts it: an object schema at the root, every
/// subschema inlined (no `$ref`/`$defs`), no `$schema` key, and `additionalProperties: false`
/// on every object (the roles' outputs have no other fields). It carries every [`Validate`]
/// rule a schema can say (the output types' `#[schemars(...)]` attributes). Each call
/// generates the schema anew; requests carry the five roles' schemas generated once per
/// process.
pub fn input_schema<T: JsonSchema>() -> serde_json::Value {
    let schema = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.remove("$schema");
    }
    close_objects(&mut value);
    value
}

/// Sets `additionalProperties: false` on every object schema (`"type": "object"` with
/// `properties`) in `schema`; an `anyOf` branch that only adds rules to its object's
/// properties (no `type`) stays open.
fn close_objects(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(object) => {
            if object.contains_key("properties") && object.get("type") == Some(&"object".into()) {
                object
                    .entry("additionalProperties")
                    .or_insert(serde_json::Value::Bool(false));
            }
            object.values_mut().for_each(close_objects);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}
