//! Anthropic Messages API provider (reqwest + serde): maps a provider-neutral [`ToolRequest`] to
//! `POST /v1/messages` with one forced tool and parses the `tool_use` block of the answer.
//! Anthropic's wire types stay private here; sending, retrying transient failures under a
//! [`RetryPolicy`], status mapping and key scrubbing are shared with the other providers.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::SecretString;

use super::http::Transport;
use super::strict::Strictness;
use super::{LlmError, Provider, RetryPolicy, ToolCall, ToolRequest};

/// The API version this client speaks (sent as `anthropic-version`).
const API_VERSION: &str = "2023-06-01";

/// Client of `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`.
pub struct Anthropic {
    transport: Transport,
    base_url: String,
    caching: bool,
    strict: Strictness,
}

impl Anthropic {
    /// `base_url` is ANTHROPIC_BASE_URL (no trailing `/v1`; a trailing `/` is ignored).
    ///
    /// Without `caching` a request offers only its forced tool and forces it
    /// (`tool_choice: {"type": "tool"}`), or — when it allows look-ups
    /// ([`crate::llm::Choice::WithLookups`]) — that tool and the look-up tools with
    /// `tool_choice: {"type": "any"}`. With `caching` (PROMPT_CACHING) every request of the
    /// pipeline has the same prefix, so that each role reads what the earlier ones wrote to
    /// Anthropic's prompt cache: all the tools are offered with `tool_choice: {"type": "any"}`
    /// (a change of `tool_choice` invalidates cached messages; the caller refuses a call of
    /// another role's tool; only the call forced after the last look-up,
    /// [`crate::llm::Choice::Forced`], names its tool), and `cache_control` breakpoints mark
    /// the system prompt, the user parts marked [`crate::llm::Part::cached`] and, in a continued conversation (corrective
    /// retry, repair round), its last block — at most four, Anthropic's limit, the earliest
    /// user-part breakpoints giving way.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (no TLS backend), like `reqwest::Client::new`; this
    /// happens at start-up, never per request.
    pub fn new(
        base_url: &str,
        api_key: SecretString,
        retry: RetryPolicy,
        caching: bool,
    ) -> Anthropic {
        Anthropic {
            transport: Transport::new(Some(api_key), retry),
            base_url: base_url.trim_end_matches('/').to_owned(),
            caching,
            strict: Strictness::new(false),
        }
    }

    /// The same client with strict tool use on (STRICT_TOOL_USE; off by default): every tool
    /// is sent with `"strict": true` and its schema in the subset Anthropic's grammar-constrained
    /// sampling accepts ([`super::strict::anthropic`]), so the tool input matches the schema
    /// (Anthropic's "Strict tool use"). A server that refuses it (HTTP 400 naming `strict`) is
    /// asked again without it, and from then on never with it.
    pub fn with_strict_tool_use(mut self, on: bool) -> Anthropic {
        self.strict = Strictness::new(on);
        self
    }

    /// One `POST /v1/messages` of `request` (strict or not), retried by the transport.
    async fn send(&self, request: &ToolRequest, strict: bool) -> Result<ToolCall, LlmError> {
        let headers = self.headers()?;
        let body = wire::Request::new(request, self.caching, strict)?;
        let url = format!("{}/v1/messages", self.base_url);
        let tool = request.tool_choice.as_str();
        self.transport
            .post(&url, &headers, &body, wire::error_message, |text| {
                wire::parse_tool_call(text, tool)
            })
            .await
    }

    /// The request headers; the key goes into a header marked sensitive.
    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = self.transport.key_header("")? {
            headers.insert("x-api-key", key);
        }
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Ok(headers)
    }
}

#[async_trait]
impl Provider for Anthropic {
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError> {
        self.strict
            .send("anthropic", |strict| self.send(request, strict))
            .await
    }
}

/// Anthropic's request and response bodies, as documented for the Messages API.
mod wire {
    use std::borrow::Cow;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::llm::http::quote_body;
    use crate::llm::{Choice, LlmError, Message, ToolCall, ToolRequest, ToolSpec};
    use crate::task::Usage;

    /// Text appended after a `tool_result` error so the model knows what to do next.
    const CORRECT_AND_RETRY: &str = "The tool input above was rejected for the reasons given. \
         Call the tool again with corrected input that fixes every problem listed.";

    /// `POST /v1/messages` body.
    #[derive(Debug, Serialize)]
    pub(super) struct Request<'a> {
        model: &'a str,
        max_tokens: u32,
        system: [Block<'a>; 1],
        messages: Vec<Turn<'a>>,
        tools: Vec<Tool<'a>>,
        tool_choice: ToolChoice<'a>,
    }

    /// A tool; with `strict: true` its input is decoded to `input_schema`.
    #[derive(Debug, Serialize)]
    struct Tool<'a> {
        name: &'a str,
        description: &'a str,
        input_schema: Cow<'a, Value>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        strict: bool,
    }

    /// `{"type": "tool", "name": …}`: the model must call that tool; `{"type": "any"}`: it must
    /// call one of the tools, and only one.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum ToolChoice<'a> {
        Tool { name: &'a str },
        Any { disable_parallel_tool_use: bool },
    }

    /// Anthropic's limit of `cache_control` breakpoints per request.
    const MAX_BREAKPOINTS: usize = 4;

    /// `{"type": "ephemeral"}`: the prompt up to and including this block is cached (5 minutes,
    /// refreshed on each read).
    #[derive(Debug, Clone, Copy, Serialize)]
    struct CacheControl {
        r#type: &'static str,
    }

    const EPHEMERAL: CacheControl = CacheControl {
        r#type: "ephemeral",
    };

    #[derive(Debug, Serialize)]
    struct Turn<'a> {
        role: &'static str,
        content: Vec<Block<'a>>,
    }

    /// A content block with its optional cache breakpoint.
    #[derive(Debug, Serialize)]
    struct Block<'a> {
        #[serde(flatten)]
        kind: Kind<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    }

    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Kind<'a> {
        Text {
            text: &'a str,
        },
        ToolUse {
            id: &'a str,
            name: &'a str,
            input: &'a Value,
        },
        ToolResult {
            tool_use_id: &'a str,
            content: &'a str,
            is_error: bool,
        },
    }

    impl<'a> Block<'a> {
        fn new(kind: Kind<'a>, cache: bool) -> Block<'a> {
            Block {
                kind,
                cache_control: cache.then_some(EPHEMERAL),
            }
        }
    }

    impl<'a> Request<'a> {
        /// The wire body of `request`; with `caching`, `cache_control` breakpoints as
        /// [`super::Anthropic::new`] describes; with `strict`, strict tools
        /// ([`super::Anthropic::with_strict_tool_use`]). The tools offered and `tool_choice`
        /// follow [`Choice`]: without `caching`, only the allowed tools, forced
        /// (`{"type": "tool"}`) or, with look-ups, `{"type": "any"}`; with `caching`, every
        /// tool and `any`, except [`Choice::Forced`]. Error: the forced tool is not among the
        /// tools.
        pub(super) fn new(
            request: &'a ToolRequest,
            caching: bool,
            strict: bool,
        ) -> Result<Request<'a>, LlmError> {
            let allowed = request.allowed_tools()?;
            let forced = allowed[0];
            let mut messages = turns(&request.messages, caching);
            if caching && request.messages.len() > 1 {
                let last = messages.last_mut().and_then(|turn| turn.content.last_mut());
                if let Some(block) = last {
                    block.cache_control = Some(EPHEMERAL);
                }
            }
            // The system prompt holds one breakpoint; the latest ones in the messages stay.
            let mut keep = MAX_BREAKPOINTS - 1;
            for block in messages
                .iter_mut()
                .rev()
                .flat_map(|t| t.content.iter_mut().rev())
            {
                if block.cache_control.is_some() {
                    if keep == 0 {
                        block.cache_control = None;
                    } else {
                        keep -= 1;
                    }
                }
            }
            let offered: Vec<&ToolSpec> = if caching {
                request.tools.iter().collect()
            } else {
                allowed
            };
            Ok(Request {
                model: &request.model,
                max_tokens: request.max_tokens,
                system: [Block::new(
                    Kind::Text {
                        text: &request.system,
                    },
                    caching,
                )],
                messages,
                tools: offered
                    .into_iter()
                    .map(|tool| Tool {
                        name: &tool.name,
                        description: &tool.description,
                        input_schema: if strict {
                            Cow::Owned(crate::llm::strict::anthropic(&tool.input_schema))
                        } else {
                            Cow::Borrowed(&tool.input_schema)
                        },
                        strict,
                    })
                    .collect(),
                tool_choice: match (&request.choice, caching) {
                    (Choice::Forced, _) | (Choice::Role, false) => {
                        ToolChoice::Tool { name: &forced.name }
                    }
                    (Choice::WithLookups(_), _) | (Choice::Role, true) => ToolChoice::Any {
                        disable_parallel_tool_use: true,
                    },
                },
            })
        }
    }

    /// Maps the neutral conversation to alternating user/assistant turns, merging consecutive
    /// messages of the same role into one turn. User parts keep their breakpoints only when
    /// `caching`.
    fn turns(messages: &[Message], caching: bool) -> Vec<Turn<'_>> {
        let mut turns: Vec<Turn<'_>> = Vec::new();
        for message in messages {
            let (role, blocks) = match message {
                Message::User(parts) => (
                    "user",
                    parts
                        .iter()
                        .map(|part| {
                            Block::new(Kind::Text { text: &part.text }, caching && part.cache)
                        })
                        .collect(),
                ),
                Message::ToolCall { id, name, input } => (
                    "assistant",
                    vec![Block::new(Kind::ToolUse { id, name, input }, false)],
                ),
                Message::ToolError { id, error } => (
                    "user",
                    vec![
                        Block::new(
                            Kind::ToolResult {
                                tool_use_id: id,
                                content: error,
                                is_error: true,
                            },
                            false,
                        ),
                        Block::new(
                            Kind::Text {
                                text: CORRECT_AND_RETRY,
                            },
                            false,
                        ),
                    ],
                ),
                Message::ToolResult {
                    id,
                    content,
                    is_error,
                } => (
                    "user",
                    vec![Block::new(
                        Kind::ToolResult {
                            tool_use_id: id,
                            content,
                            is_error: *is_error,
                        },
                        false,
                    )],
                ),
            };
            match turns.last_mut() {
                Some(last) if last.role == role => last.content.extend(blocks),
                _ => turns.push(Turn {
                    role,
                    content: blocks,
                }),
            }
        }
        turns
    }

    /// A successful response (fields we use).
    #[derive(Debug, Deserialize)]
    struct Response {
        content: Vec<Content>,
        #[serde(default)]
        stop_reason: Option<String>,
        usage: WireUsage,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Content {
        ToolUse {
            id: String,
            name: String,
            input: Value,
        },
        /// `text`, `thinking` and any other block type.
        #[serde(other)]
        Other,
    }

    /// Token counts; the cache counts may be absent or `null`.
    #[derive(Debug, Deserialize)]
    struct WireUsage {
        input_tokens: u32,
        output_tokens: u32,
        #[serde(default)]
        cache_creation_input_tokens: Option<u32>,
        #[serde(default)]
        cache_read_input_tokens: Option<u32>,
    }

    impl From<WireUsage> for Usage {
        fn from(u: WireUsage) -> Usage {
            Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_creation_input_tokens: u.cache_creation_input_tokens.unwrap_or(0),
                cache_read_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
            }
        }
    }

    /// The call of `tool` in a 2xx response body, else its first tool call (another tool's,
    /// which the caller refuses). Error: no tool call at all.
    pub(super) fn parse_tool_call(body: &str, tool: &str) -> Result<ToolCall, LlmError> {
        let response: Response = serde_json::from_str(body)
            .map_err(|e| LlmError::InvalidResponse(format!("cannot parse the response: {e}")))?;
        let mut calls: Vec<(String, String, Value)> = response
            .content
            .into_iter()
            .filter_map(|block| match block {
                Content::ToolUse { id, name, input } => Some((id, name, input)),
                _ => None,
            })
            .collect();
        // The call of `tool`, else (only possible when the model may choose) the first call.
        let position = calls
            .iter()
            .position(|(_, name, _)| name == tool)
            .unwrap_or(0);
        let call = (!calls.is_empty()).then(|| calls.swap_remove(position));
        match call {
            Some((id, name, input)) => Ok(ToolCall {
                id,
                name,
                input,
                usage: response.usage.into(),
            }),
            None => Err(LlmError::InvalidResponse(no_tool_use(
                tool,
                response.stop_reason.as_deref(),
            ))),
        }
    }

    fn no_tool_use(tool: &str, stop_reason: Option<&str>) -> String {
        match stop_reason {
            Some("max_tokens") => format!(
                "the answer hit max_tokens before the model finished calling `{tool}`; \
                 raise the role's output budget"
            ),
            Some(reason) => format!("no call of `{tool}` in the answer (stop_reason: {reason})"),
            None => format!("no call of `{tool}` in the answer (no stop_reason)"),
        }
    }

    /// Documented error body: `{"type":"error","error":{"type":…,"message":…}}`.
    #[derive(Debug, Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }

    #[derive(Debug, Deserialize)]
    struct ErrorDetail {
        r#type: String,
        message: String,
    }

    /// `"{type}: {message}"` from a documented error body, else the start of the raw body.
    pub(super) fn error_message(body: &str) -> String {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => format!("{}: {}", error.r#type, error.message),
            Err(_) => quote_body(body),
        }
    }

    #[cfg(test)]
    mod tests {
        use serde_json::json;

        use super::*;
        use crate::llm::{Part, ToolSpec};

        #[test]
        fn consecutive_same_role_messages_merge_into_one_turn() {
            let request = ToolRequest {
                model: "m".into(),
                system: "s".into(),
                messages: vec![
                    Message::User(vec![Part::text("a")]),
                    Message::User(vec![Part::text("b")]),
                    Message::ToolCall {
                        id: "t1".into(),
                        name: "x".into(),
                        input: json!({}),
                    },
                    Message::ToolError {
                        id: "t1".into(),
                        error: "bad".into(),
                    },
                    Message::User(vec![Part::text("c")]),
                ],
                tools: vec![ToolSpec {
                    name: "x".into(),
                    description: "d".into(),
                    input_schema: json!({"type": "object"}),
                }],
                tool_choice: "x".into(),
                choice: Choice::Role,
                max_tokens: 10,
            };
            let body = serde_json::to_value(Request::new(&request, false, false).unwrap()).unwrap();
            let roles: Vec<_> = body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["role"].as_str().unwrap())
                .collect();
            assert_eq!(roles, ["user", "assistant", "user"]);
            assert_eq!(body["messages"][0]["content"].as_array().unwrap().len(), 2);
            let last = &body["messages"][2]["content"];
            assert_eq!(last[0]["type"], "tool_result");
            assert_eq!(last[1]["type"], "text");
            assert_eq!(last[2], json!({"type": "text", "text": "c"}));
        }

        /// A request of the role tool `x` that may look up with `read_file`, after one
        /// look-up answered.
        fn lookup_request(choice: Choice) -> ToolRequest {
            let tool = |name: &str| ToolSpec {
                name: name.into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
            };
            ToolRequest {
                model: "m".into(),
                system: "s".into(),
                messages: vec![
                    Message::User(vec![Part::text("a")]),
                    Message::ToolCall {
                        id: "t1".into(),
                        name: "read_file".into(),
                        input: json!({"path": "a"}),
                    },
                    Message::ToolResult {
                        id: "t1".into(),
                        content: "<lookup_result>…</lookup_result>".into(),
                        is_error: false,
                    },
                ],
                tools: vec![tool("other"), tool("x"), tool("read_file")],
                tool_choice: "x".into(),
                choice,
                max_tokens: 10,
            }
        }

        #[test]
        fn look_ups_offer_the_role_tool_and_the_look_up_tools_with_any() {
            let request = lookup_request(Choice::WithLookups(vec!["read_file".into()]));
            let body = serde_json::to_value(Request::new(&request, false, false).unwrap()).unwrap();
            let names: Vec<_> = body["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["x", "read_file"]);
            assert_eq!(
                body["tool_choice"],
                json!({"type": "any", "disable_parallel_tool_use": true})
            );
            // The result is a tool result that is no error, with no request to correct it.
            assert_eq!(
                body["messages"][2]["content"],
                json!([{"type": "tool_result", "tool_use_id": "t1",
                        "content": "<lookup_result>…</lookup_result>", "is_error": false}])
            );
            // With caching the list is every tool (one cached prefix) and the choice `any`.
            let body = serde_json::to_value(Request::new(&request, true, false).unwrap()).unwrap();
            assert_eq!(body["tools"].as_array().unwrap().len(), 3);
            assert_eq!(body["tool_choice"]["type"], "any");
        }

        #[test]
        fn the_call_after_the_last_look_up_forces_the_role_tool_even_with_caching() {
            for caching in [false, true] {
                let request = lookup_request(Choice::Forced);
                let body =
                    serde_json::to_value(Request::new(&request, caching, false).unwrap()).unwrap();
                assert_eq!(
                    body["tool_choice"],
                    json!({"type": "tool", "name": "x"}),
                    "{caching}"
                );
                let offered = body["tools"].as_array().unwrap().len();
                assert_eq!(offered, if caching { 3 } else { 1 });
            }
        }

        #[test]
        fn error_message_quotes_documented_body_or_raw_start() {
            let documented =
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#;
            assert_eq!(error_message(documented), "invalid_request_error: bad");
            assert_eq!(error_message(""), "(empty body)");
            assert_eq!(
                error_message(&"x".repeat(1000)).len(),
                crate::llm::http::MAX_QUOTED_BODY
            );
        }

        #[test]
        fn text_blocks_are_skipped_and_null_cache_counts_are_zero() {
            let body = json!({
                "content": [
                    {"type": "text", "text": "thinking aloud"},
                    {"type": "tool_use", "id": "toolu_1", "name": "x", "input": {"a": 1}}
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 3, "output_tokens": 4,
                          "cache_creation_input_tokens": null}
            });
            let call = parse_tool_call(&body.to_string(), "x").unwrap();
            assert_eq!(call.id, "toolu_1");
            assert_eq!(call.input, json!({"a": 1}));
            assert_eq!(call.usage.cache_creation_input_tokens, 0);
            assert_eq!(call.usage.cache_read_input_tokens, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_loses_its_trailing_slash_and_headers_carry_the_key() {
        let client = Anthropic::new(
            "http://localhost/",
            SecretString::from("sk-secret"),
            RetryPolicy::default(),
            true,
        );
        assert_eq!(client.base_url, "http://localhost");
        let headers = client.headers().unwrap();
        assert!(headers["x-api-key"].is_sensitive());
        assert_eq!(headers["anthropic-version"], API_VERSION);
    }
}
