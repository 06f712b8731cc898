//! LLM providers behind one trait: a conversation with one forced tool goes in, the model's tool
//! call and its token usage come out. Anthropic's Messages API is implemented in [`Anthropic`],
//! OpenAI's Chat Completions API (OpenAI, OpenRouter, Ollama, vLLM, llama.cpp's server) in
//! [`OpenAi`]; both send through one private transport (retry loop, status mapping, key
//! scrubbing), so they differ only in their wire types.

mod anthropic;
mod capped;
mod http;
mod openai;
mod retry;

pub use anthropic::Anthropic;
pub use capped::Capped;
pub use openai::OpenAi;
pub use retry::RetryPolicy;

use async_trait::async_trait;

use crate::task::Usage;

/// The one tool a request offers and forces; `input_schema` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// A turn of the conversation, provider-neutral.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Text from us (the task and its context).
    User(String),
    /// A tool call the model made earlier (echoed back for a corrective retry).
    ToolCall {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// Our answer to that call: why its input was rejected.
    ToolError { id: String, error: String },
}

/// One request: system prompt, conversation, the forced tool and an output budget in tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    pub tool: ToolSpec,
    pub max_tokens: u32,
}

/// The model's call of the forced tool: its id, its raw `input` and what the request cost.
///
/// `input` is the tool input as the model wrote it, unvalidated. When a provider receives
/// arguments that are not JSON at all (OpenAI-compatible servers send them as a string), `input`
/// is that raw text as a [`serde_json::Value::String`]: deserializing it into a role's output
/// type fails, so the caller sends a corrective retry, and echoing it back in a
/// [`Message::ToolCall`] returns the model's own text unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub input: serde_json::Value,
    pub usage: Usage,
}

/// Errors of a provider. Messages never contain an API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// 401/403: the key is missing, wrong or lacks permission. Permanent.
    #[error("LLM authentication failed (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// 429/500/502/503/529 still failing after the retry policy's attempts.
    #[error("LLM API still unavailable after {attempts} attempts (last HTTP {status}): {message}")]
    Unavailable {
        status: u16,
        attempts: u32,
        message: String,
    },
    /// Any other non-success status (e.g. 400 invalid request). Permanent.
    #[error("LLM API error (HTTP {status}): {message}")]
    Api { status: u16, message: String },
    /// The connection failed after the retry policy's attempts.
    #[error("cannot reach the LLM API: {0}")]
    Network(String),
    /// The response was not what the API documents (no tool call, bad JSON…).
    #[error("unexpected LLM response: {0}")]
    InvalidResponse(String),
}

/// A model provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Sends `request` and returns the model's call of `request.tool`, retrying transient
    /// failures (429, 500, 502, 503, 529, network) under the provider's [`RetryPolicy`].
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError>;
}
