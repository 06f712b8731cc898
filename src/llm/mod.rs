//! LLM providers behind one trait: a conversation with one forced tool (or that tool and the
//! look-up tools) goes in, the model's tool call and its token usage come out. Anthropic's
//! Messages API is implemented in [`Anthropic`],
//! OpenAI's Chat Completions API (OpenAI, OpenRouter, Ollama, vLLM, llama.cpp's server) in
//! [`OpenAi`]; both send through one private transport (retry loop, status mapping, key
//! scrubbing), so they differ only in their wire types.

mod anthropic;
mod capped;
mod http;
mod openai;
mod retry;
mod strict;

pub use anthropic::Anthropic;
pub use capped::Capped;
pub use openai::OpenAi;
pub use retry::RetryPolicy;
pub use strict::Constraint;

use async_trait::async_trait;

use crate::task::Usage;

/// A tool the model may be asked to call; `input_schema` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// A piece of user text. `cache: true` marks the end of a prefix worth caching (Anthropic's
/// `cache_control` breakpoint); providers without explicit caching ignore it.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub text: String,
    pub cache: bool,
}

impl Part {
    /// Text that ends no cached prefix.
    pub fn text(text: impl Into<String>) -> Part {
        Part {
            text: text.into(),
            cache: false,
        }
    }

    /// Text that ends a cached prefix (a breakpoint).
    pub fn cached(text: impl Into<String>) -> Part {
        Part {
            text: text.into(),
            cache: true,
        }
    }
}

/// A turn of the conversation, provider-neutral.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Text from us (the task and its context), in parts.
    User(Vec<Part>),
    /// A tool call the model made earlier (echoed back for a corrective retry or a repair).
    ToolCall {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// Our answer to that call: why its input was rejected or what it led to (a failed
    /// verification), asking for a corrected call.
    ToolError { id: String, error: String },
    /// Our answer to a look-up call: its result (`is_error: false`), or why it could not be
    /// looked up (`is_error: true`), without asking for a corrected call.
    ToolResult {
        id: String,
        content: String,
        is_error: bool,
    },
}

/// Which tools the model may call in a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Choice {
    /// The role's tool, `tool_choice`. A provider that keeps one tool list for its prompt cache
    /// (Anthropic with caching) lets the model choose among all the tools; the caller refuses
    /// a call of another.
    #[default]
    Role,
    /// `tool_choice` or one of these look-up tools (names of `tools`): Anthropic's
    /// `{"type": "any"}`, OpenAI's `"required"`.
    WithLookups(Vec<String>),
    /// `tool_choice` and nothing else on every provider, even where that costs the cached
    /// messages (Anthropic with caching: a change of `tool_choice` invalidates them): the call
    /// after the last look-up allowed.
    Forced,
}

/// One request: system prompt, conversation, the tools on offer, the one forced and an output
/// budget in tokens.
///
/// Anthropic caches the prefix tools → system → messages, so `system` and `tools` are the same
/// for every role of the pipeline: a later role reads them, the task and the earlier outputs
/// from the cache (see [`Part::cached`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    /// Every tool of the pipeline, in a fixed order.
    pub tools: Vec<ToolSpec>,
    /// Name of the role's tool, the one the model must call unless `choice` allows look-ups;
    /// one of `tools`.
    pub tool_choice: String,
    /// Which tools the model may call.
    pub choice: Choice,
    pub max_tokens: u32,
}

impl ToolRequest {
    /// The forced tool (`tool_choice`); `None` when it is not among `tools` (a caller bug the
    /// providers report as an invalid request).
    pub fn forced_tool(&self) -> Option<&ToolSpec> {
        self.tools.iter().find(|t| t.name == self.tool_choice)
    }

    /// The tools the model may call when the provider offers only those (no shared list):
    /// the role's tool, then the look-up tools of [`Choice::WithLookups`] in `tools` order.
    /// Error: the role's tool is not among `tools`.
    pub fn allowed_tools(&self) -> Result<Vec<&ToolSpec>, LlmError> {
        let forced = self.forced_tool().ok_or_else(|| {
            LlmError::InvalidRequest(format!(
                "the forced tool `{}` is not among the tools offered",
                self.tool_choice
            ))
        })?;
        let mut allowed = vec![forced];
        if let Choice::WithLookups(names) = &self.choice {
            allowed.extend(self.tools.iter().filter(|t| names.contains(&t.name)));
        }
        Ok(allowed)
    }

    /// The spec of the tool named `name`, if offered.
    pub fn tool(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Bytes of everything the request sends as model input: system prompt, tool names,
    /// descriptions and schemas, every message. An upper bound for the input tokens (no token
    /// is shorter than one byte), used for worst-case cost checks before the call.
    pub fn input_bytes(&self) -> usize {
        let tools: usize = self
            .tools
            .iter()
            .map(|t| t.name.len() + t.description.len() + t.input_schema.to_string().len())
            .sum();
        let messages: usize = self
            .messages
            .iter()
            .map(|m| match m {
                Message::User(parts) => parts.iter().map(|p| p.text.len()).sum(),
                Message::ToolCall { id, name, input } => {
                    id.len() + name.len() + input.to_string().len()
                }
                Message::ToolError { id, error } => id.len() + error.len(),
                Message::ToolResult { id, content, .. } => id.len() + content.len(),
            })
            .sum();
        self.system.len() + tools + messages
    }
}

/// The model's call of a tool it was allowed ([`ToolRequest::choice`]): its id, its raw
/// `input` and what the request cost.
///
/// `input` is the tool input as the model wrote it, unvalidated. When a provider receives
/// arguments that are not JSON at all (OpenAI-compatible servers send them as a string), `input`
/// is that raw text as a [`serde_json::Value::String`]: deserializing it into a role's output
/// type fails, so the caller sends a corrective retry, and echoing it back in a
/// [`Message::ToolCall`] returns the model's own text unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    /// The tool the model called: the forced one, a look-up tool the request allowed, or —
    /// where a provider lets the model choose among all the tools (Anthropic with prompt
    /// caching, see [`crate::llm::Anthropic::new`]) — another, which the caller refuses as an
    /// invalid answer.
    pub name: String,
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
    /// The request cannot be sent as built (e.g. its forced tool is not offered). Permanent.
    #[error("invalid LLM request: {0}")]
    InvalidRequest(String),
}

impl LlmError {
    /// Whether trying again later may succeed: a transient status still failing after the
    /// transport's retries ([`LlmError::Unavailable`]: 429, 500, 502, 503, 529) or a connection
    /// that kept failing ([`LlmError::Network`]). Rate limits and overload are transient too;
    /// a caller that treats them differently asks [`Self::is_rate_limited`] and
    /// [`Self::is_overloaded`] first. Permanent: bad credentials, any other status (an exhausted
    /// quota included, see [`Self::is_quota_exhausted`]), an unexpected answer, an invalid
    /// request.
    pub fn is_transient(&self) -> bool {
        matches!(self, LlmError::Unavailable { .. } | LlmError::Network(_))
    }

    /// Whether the provider refused for a rate limit: HTTP 429 (RFC 6585 "Too Many Requests")
    /// still answered after the transport's retries.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, LlmError::Unavailable { status: 429, .. })
    }

    /// Whether the provider is overloaded: Anthropic's HTTP 529 `overloaded_error` (its API
    /// docs, "Errors") still answered after the transport's retries. The request is not at
    /// fault, the provider is.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, LlmError::Unavailable { status: 529, .. })
    }

    /// Whether the account's prepaid quota is spent: Anthropic answers a 400
    /// `invalid_request_error` "Your credit balance is too low…", OpenAI a 429
    /// `insufficient_quota`. No retry helps until a person pays; the request is not at fault.
    pub fn is_quota_exhausted(&self) -> bool {
        match self {
            LlmError::Api { message, .. }
            | LlmError::Unavailable {
                status: 429,
                message,
                ..
            } => {
                let message = message.to_ascii_lowercase();
                message.contains("credit balance") || message.contains("insufficient_quota")
            }
            _ => false,
        }
    }
}

/// A model provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Sends `request` and returns the model's tool call (of `request.tool_choice`, or of another
    /// offered tool where the provider lets the model choose), retrying transient
    /// failures (429, 500, 502, 503, 529, network) under the provider's [`RetryPolicy`].
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(status: u16, message: &str) -> LlmError {
        LlmError::Unavailable {
            status,
            attempts: 5,
            message: message.into(),
        }
    }

    fn api(status: u16, message: &str) -> LlmError {
        LlmError::Api {
            status,
            message: message.into(),
        }
    }

    #[test]
    fn retry_classes_follow_the_status() {
        let rate_limited = unavailable(
            429,
            "rate_limit_error: Number of request tokens has exceeded your per-minute rate limit",
        );
        assert!(rate_limited.is_transient() && rate_limited.is_rate_limited());
        assert!(!rate_limited.is_overloaded() && !rate_limited.is_quota_exhausted());

        let overloaded = unavailable(529, "overloaded_error: Overloaded");
        assert!(overloaded.is_transient() && overloaded.is_overloaded());
        assert!(!overloaded.is_rate_limited());

        for status in [500, 502, 503] {
            let server = unavailable(status, "api_error");
            assert!(server.is_transient(), "{status}");
            assert!(
                !server.is_rate_limited() && !server.is_overloaded(),
                "{status}"
            );
        }
        let network = LlmError::Network("connection refused (after 5 attempts)".into());
        assert!(network.is_transient() && !network.is_rate_limited());
    }

    #[test]
    fn permanent_errors_are_not_transient() {
        for error in [
            LlmError::Auth {
                status: 401,
                message: "invalid x-api-key".into(),
            },
            api(400, "invalid_request_error: max_tokens: Field required"),
            api(404, "not_found_error: model: claude-x"),
            LlmError::InvalidResponse("no tool_use block".into()),
            LlmError::InvalidRequest("tool not offered".into()),
        ] {
            assert!(!error.is_transient(), "{error}");
            assert!(
                !error.is_rate_limited() && !error.is_overloaded(),
                "{error}"
            );
            assert!(!error.is_quota_exhausted(), "{error}");
        }
    }

    #[test]
    fn exhausted_quotas_are_recognised_in_both_providers_words() {
        let anthropic = api(
            400,
            "invalid_request_error: Your credit balance is too low to access the Anthropic API. \
             Please go to Plans & Billing to upgrade or purchase credits.",
        );
        assert!(anthropic.is_quota_exhausted());
        assert!(
            !anthropic.is_transient(),
            "no retry helps until someone pays"
        );
        let openai = unavailable(
            429,
            "insufficient_quota: You exceeded your current quota, please check your plan and billing details.",
        );
        assert!(openai.is_quota_exhausted() && openai.is_rate_limited());
        assert!(!unavailable(503, "credit balance").is_quota_exhausted());
    }
}
