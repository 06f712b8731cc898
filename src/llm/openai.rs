//! OpenAI-compatible Chat Completions provider: maps a provider-neutral [`ToolRequest`] to
//! `POST {base_url}/v1/chat/completions` with one forced function and parses the model's
//! `tool_calls`. Speaks to OpenAI itself, OpenRouter and local servers (Ollama, vLLM, llama.cpp's
//! server): the key is optional, `arguments` may come as a JSON string or an object, error bodies
//! may be documented objects or plain strings, and `response_format` is never sent (llama.cpp's
//! server answers 500 to a `json_schema` one): a forced function is itself decoded to its
//! parameters by the servers that constrain ([`Constraint`]). The wire types stay private here; sending,
//! retrying, status mapping and key scrubbing are shared with the other providers.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::SecretString;

use super::http::Transport;
use super::strict::{self, Constraint, Strictness};
use super::{LlmError, Provider, RetryPolicy, ToolCall, ToolRequest};

/// Client of `POST {base_url}/v1/chat/completions`, with `Authorization: Bearer <key>` when a key
/// is set.
pub struct OpenAi {
    transport: Transport,
    base_url: String,
    strict: Strictness,
    /// Parameters sent in [`strict::grammar`]'s subset ([`Constraint::Grammar`]).
    grammar: bool,
}

impl OpenAi {
    /// `base_url` is the server's root without `/v1` (e.g. `https://api.openai.com`,
    /// `http://localhost:11434` for Ollama); a trailing `/` is ignored. `api_key` is `None` for
    /// local servers that want none: then no `Authorization` header is sent.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (no TLS backend), like `reqwest::Client::new`; this
    /// happens at start-up, never per request.
    pub fn new(base_url: &str, api_key: Option<SecretString>, retry: RetryPolicy) -> OpenAi {
        OpenAi {
            transport: Transport::new(api_key, retry),
            base_url: base_url.trim_end_matches('/').to_owned(),
            strict: Strictness::new(false),
            grammar: false,
        }
    }

    /// The same client asking the server to decode the forced function's arguments to its
    /// parameters (STRICT_TOOL_USE on; `None`: off, the full schema and no `strict` field),
    /// the way `constraint` says, [`Constraint::Auto`] decided by the base URL.
    /// - [`Constraint::Strict`]: `"strict": true` and the parameters in the subset OpenAI's
    ///   Structured Outputs accept ([`strict::openai`]: every property required, the optional
    ///   ones nullable; a `null` the answer gives one is dropped before validation). A server
    ///   that refuses it (HTTP 400 naming `strict`) is asked again without it, and from then on
    ///   never with it; servers that ignore the field are unaffected.
    /// - [`Constraint::Grammar`]: no `strict` field, the parameters in the subset a local
    ///   server compiles into a grammar ([`strict::grammar`]).
    pub fn with_constraint(mut self, constraint: Option<Constraint>) -> OpenAi {
        let constraint = constraint.map(|c| c.resolve(&self.base_url));
        self.strict = Strictness::new(constraint == Some(Constraint::Strict));
        self.grammar = constraint == Some(Constraint::Grammar);
        self
    }

    /// One `POST /v1/chat/completions` of `request` (strict or not), retried by the transport.
    async fn send(&self, request: &ToolRequest, strict: bool) -> Result<ToolCall, LlmError> {
        let headers = self.headers()?;
        let parameters = match (strict, self.grammar) {
            (true, _) => wire::Parameters::Strict,
            (false, true) => wire::Parameters::Grammar,
            (false, false) => wire::Parameters::Full,
        };
        let body = wire::Request::new(request, parameters)?;
        let url = format!("{}/v1/chat/completions", self.base_url);
        let allowed: Vec<&str> = request
            .allowed_tools()?
            .into_iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut call = self
            .transport
            .post(&url, &headers, &body, wire::error_message, |text| {
                wire::parse_tool_call(text, &allowed)
            })
            .await?;
        // The nulls strict decoding wrote for the optional properties of the tool called.
        if strict && let Some(spec) = request.tool(&call.name) {
            strict::drop_nulls(&spec.input_schema, &mut call.input);
        }
        Ok(call)
    }

    /// The request headers; the key, if any, goes into a header marked sensitive.
    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        if let Some(bearer) = self.transport.key_header("Bearer ")? {
            headers.insert("authorization", bearer);
        }
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Ok(headers)
    }
}

#[async_trait]
impl Provider for OpenAi {
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError> {
        self.strict
            .send("openai", |strict| self.send(request, strict))
            .await
    }
}

/// The Chat Completions request and response bodies, as OpenAI documents them, read leniently
/// enough for the compatible servers.
mod wire {
    use std::borrow::Cow;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::llm::http::quote_body;
    use crate::llm::{LlmError, Message, ToolCall, ToolRequest};
    use crate::task::Usage;

    /// The user turn sent after a `tool` error message so the model knows what to do next.
    const CORRECT_AND_RETRY: &str = "The function arguments above were rejected for the reasons \
         given. Call the function again with corrected arguments that fix every problem listed.";

    /// Tool-call id used when a server sends none (some local servers): the corrective retry
    /// needs one to pair the `tool` message with the assistant's call.
    const FALLBACK_CALL_ID: &str = "call_0";

    /// `POST /v1/chat/completions` body. No `response_format`, no streaming.
    #[derive(Debug, Serialize)]
    pub(super) struct Request<'a> {
        model: &'a str,
        max_tokens: u32,
        messages: Vec<ChatMessage<'a>>,
        tools: Vec<Tool<'a>>,
        tool_choice: ToolChoice<'a>,
    }

    /// `{"type": "function", "function": {"name", "description", "parameters"}}`.
    #[derive(Debug, Serialize)]
    struct Tool<'a> {
        r#type: &'static str,
        function: FunctionSpec<'a>,
    }

    /// With `strict: true`, the arguments are decoded to `parameters`.
    #[derive(Debug, Serialize)]
    struct FunctionSpec<'a> {
        name: &'a str,
        description: &'a str,
        parameters: Cow<'a, Value>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        strict: bool,
    }

    /// The schema a function's `parameters` carry.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(super) enum Parameters {
        /// The tool's own schema.
        Full,
        /// OpenAI's strict subset, with `"strict": true` ([`crate::llm::strict::openai`]).
        Strict,
        /// The subset local servers compile into a grammar ([`crate::llm::strict::grammar`]).
        Grammar,
    }

    /// `{"type": "function", "function": {"name": …}}`: the model must call that function;
    /// `"required"`: it must call one of the functions.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    enum ToolChoice<'a> {
        Function {
            r#type: &'static str,
            function: FunctionName<'a>,
        },
        Mode(&'static str),
    }

    #[derive(Debug, Serialize)]
    struct FunctionName<'a> {
        name: &'a str,
    }

    /// One entry of `messages`, tagged by `role`.
    #[derive(Debug, Serialize)]
    #[serde(tag = "role", rename_all = "lowercase")]
    enum ChatMessage<'a> {
        System {
            content: Content<'a>,
        },
        /// The parts of a neutral user message, joined by a blank line (some chat templates
        /// refuse two user messages in a row).
        User {
            content: Content<'a>,
        },
        /// An earlier call, echoed back. `content` is sent as `""`, not `null`: OpenAI accepts
        /// both, but llama.cpp's Python server rejects `null` (and a missing field) with a 500.
        Assistant {
            content: &'a str,
            tool_calls: [OutgoingCall<'a>; 1],
        },
        /// Our answer to the call `tool_call_id`.
        Tool {
            tool_call_id: &'a str,
            content: &'a str,
        },
    }

    /// Message text, borrowed from the request or joined from its parts.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    enum Content<'a> {
        Borrowed(&'a str),
        Owned(String),
    }

    /// `{"id", "type": "function", "function": {"name", "arguments"}}`, `arguments` being the
    /// input serialized as a JSON string.
    #[derive(Debug, Serialize)]
    struct OutgoingCall<'a> {
        id: &'a str,
        r#type: &'static str,
        function: OutgoingFunction<'a>,
    }

    #[derive(Debug, Serialize)]
    struct OutgoingFunction<'a> {
        name: &'a str,
        arguments: String,
    }

    impl<'a> Request<'a> {
        /// The wire body of `request`. Only the allowed tools are offered (local models have
        /// small context windows, and OpenAI's automatic prefix caching needs no markers): the
        /// forced one, as `tool_choice`, or — when the request allows look-ups — it and the
        /// look-up tools with `tool_choice: "required"`. Their `parameters` as
        /// [`super::OpenAi::with_constraint`] says. Error: the forced tool is not among the
        /// tools.
        pub(super) fn new(
            request: &'a ToolRequest,
            parameters: Parameters,
        ) -> Result<Request<'a>, LlmError> {
            let allowed = request.allowed_tools()?;
            let mut messages = vec![ChatMessage::System {
                content: Content::Borrowed(&request.system),
            }];
            messages.extend(request.messages.iter().flat_map(chat_messages));
            let tool_choice = if allowed.len() > 1 {
                ToolChoice::Mode("required")
            } else {
                ToolChoice::Function {
                    r#type: "function",
                    function: FunctionName {
                        name: &allowed[0].name,
                    },
                }
            };
            Ok(Request {
                model: &request.model,
                max_tokens: request.max_tokens,
                messages,
                tools: allowed
                    .into_iter()
                    .map(|tool| Tool {
                        r#type: "function",
                        function: FunctionSpec {
                            name: &tool.name,
                            description: &tool.description,
                            parameters: match parameters {
                                Parameters::Full => Cow::Borrowed(&tool.input_schema),
                                Parameters::Strict => {
                                    Cow::Owned(crate::llm::strict::openai(&tool.input_schema))
                                }
                                Parameters::Grammar => Cow::Owned(crate::llm::strict::grammar(
                                    &tool.input_schema,
                                    request.max_tokens,
                                )),
                            },
                            strict: parameters == Parameters::Strict,
                        },
                    })
                    .collect(),
                tool_choice,
            })
        }
    }

    /// One neutral message as Chat Completions messages: a tool error becomes the `tool` answer
    /// to the call plus a user turn asking for a corrected call.
    fn chat_messages(message: &Message) -> Vec<ChatMessage<'_>> {
        match message {
            Message::User(parts) => vec![ChatMessage::User {
                content: match parts.as_slice() {
                    [one] => Content::Borrowed(&one.text),
                    _ => Content::Owned(
                        parts
                            .iter()
                            .map(|p| p.text.as_str())
                            .collect::<Vec<_>>()
                            .join("\n\n"),
                    ),
                },
            }],
            Message::ToolCall { id, name, input } => vec![ChatMessage::Assistant {
                content: "",
                tool_calls: [OutgoingCall {
                    id,
                    r#type: "function",
                    function: OutgoingFunction {
                        name,
                        arguments: arguments(input),
                    },
                }],
            }],
            Message::ToolError { id, error } => vec![
                ChatMessage::Tool {
                    tool_call_id: id,
                    content: error,
                },
                ChatMessage::User {
                    content: Content::Borrowed(CORRECT_AND_RETRY),
                },
            ],
            Message::ToolResult { id, content, .. } => vec![ChatMessage::Tool {
                tool_call_id: id,
                content,
            }],
        }
    }

    /// The `arguments` string of an echoed call: the input as JSON text, except that a string
    /// input is the model's own unparsable text (see [`parse_arguments`]) and goes back as is.
    fn arguments(input: &Value) -> String {
        match input {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        }
    }

    /// A successful response (fields we use).
    #[derive(Debug, Deserialize)]
    struct Response {
        #[serde(default)]
        choices: Vec<Choice>,
        #[serde(default)]
        usage: Option<WireUsage>,
    }

    #[derive(Debug, Deserialize)]
    struct Choice {
        message: ResponseMessage,
        #[serde(default)]
        finish_reason: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    struct ResponseMessage {
        #[serde(default)]
        tool_calls: Option<Vec<IncomingCall>>,
    }

    #[derive(Debug, Deserialize)]
    struct IncomingCall {
        #[serde(default)]
        id: Option<String>,
        function: IncomingFunction,
    }

    #[derive(Debug, Deserialize)]
    struct IncomingFunction {
        name: String,
        /// A JSON string as documented; an object from some local servers.
        #[serde(default)]
        arguments: Value,
    }

    /// Token counts; any of them may be absent or `null` on compatible servers.
    #[derive(Debug, Default, Deserialize)]
    struct WireUsage {
        #[serde(default)]
        prompt_tokens: Option<u32>,
        #[serde(default)]
        completion_tokens: Option<u32>,
        #[serde(default)]
        prompt_tokens_details: Option<PromptDetails>,
    }

    #[derive(Debug, Default, Deserialize)]
    struct PromptDetails {
        #[serde(default)]
        cached_tokens: Option<u32>,
    }

    impl From<WireUsage> for Usage {
        /// In Anthropic's sense, so both providers' usage adds up the same way:
        /// `input_tokens` = `prompt_tokens` − cached (OpenAI counts the cached part in
        /// `prompt_tokens`), `cache_read_input_tokens` = `prompt_tokens_details.cached_tokens`,
        /// `output_tokens` = `completion_tokens`; OpenAI reports no cache writes.
        fn from(u: WireUsage) -> Usage {
            let cached = u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0);
            Usage {
                input_tokens: u.prompt_tokens.unwrap_or(0).saturating_sub(cached),
                output_tokens: u.completion_tokens.unwrap_or(0),
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: cached,
            }
        }
    }

    /// Finds the call of the first of `allowed` (the forced tool), else of another of them (a
    /// look-up), in the first choice of a 2xx response body; a missing `usage` counts zero
    /// tokens.
    pub(super) fn parse_tool_call(body: &str, allowed: &[&str]) -> Result<ToolCall, LlmError> {
        let tool = allowed.first().copied().unwrap_or_default();
        let response: Response = serde_json::from_str(body)
            .map_err(|e| LlmError::InvalidResponse(format!("cannot parse the response: {e}")))?;
        let usage = response.usage.unwrap_or_default().into();
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(LlmError::InvalidResponse("no choices in the answer".into()));
        };
        let calls = choice.message.tool_calls.unwrap_or_default();
        let called: Vec<String> = calls.iter().map(|c| c.function.name.clone()).collect();
        let position = calls
            .iter()
            .position(|c| c.function.name == tool)
            .or_else(|| {
                calls
                    .iter()
                    .position(|c| allowed.contains(&c.function.name.as_str()))
            });
        match position.map(|i| calls.into_iter().nth(i).expect("a position in calls")) {
            Some(call) => Ok(ToolCall {
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| FALLBACK_CALL_ID.to_owned()),
                name: call.function.name,
                input: parse_arguments(call.function.arguments),
                usage,
            }),
            None => Err(LlmError::InvalidResponse(no_tool_call(
                tool,
                &called,
                choice.finish_reason.as_deref(),
            ))),
        }
    }

    /// The tool input from `arguments`: a JSON string is parsed, also when its strings hold
    /// raw control characters (see [`escape_controls`]); text that is not JSON stays a
    /// [`Value::String`] so that the caller's deserialization fails and it asks again; an object
    /// (local servers) is taken as is.
    fn parse_arguments(arguments: Value) -> Value {
        match arguments {
            // Still not JSON (cut at max_tokens, say): the escaped text, so the error the
            // model is told is where it broke, not the control characters.
            Value::String(raw) => serde_json::from_str(&raw).unwrap_or_else(|_| {
                let escaped = escape_controls(&raw);
                serde_json::from_str(&escaped).unwrap_or(Value::String(escaped))
            }),
            other => other,
        }
    }

    /// `text` with every control character inside a JSON string escaped (`\n`, `\u0001`):
    /// llama-cpp-python's grammar for a forced function lets the model write a raw newline in
    /// a string, which RFC 8259 forbids and serde_json refuses. Outside strings nothing changes.
    pub(super) fn escape_controls(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let (mut in_string, mut escaped) = (false, false);
        for c in text.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                c if in_string && u32::from(c) < 0x20 => {
                    match c {
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        _ => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                    }
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        out
    }

    fn no_tool_call(tool: &str, called: &[String], finish_reason: Option<&str>) -> String {
        if !called.is_empty() {
            return format!(
                "no call of `{tool}` in the answer (called: {})",
                called.join(", ")
            );
        }
        match finish_reason {
            Some("length") => format!(
                "the answer hit max_tokens before the model called `{tool}` \
                 (finish_reason: length); raise the role's output budget"
            ),
            Some(reason) => format!("no call of `{tool}` in the answer (finish_reason: {reason})"),
            None => format!("no call of `{tool}` in the answer (no finish_reason)"),
        }
    }

    /// `{"error": {"message", "type", "code"}}` as documented, `{"error": "…"}` (Ollama and
    /// others) or a top-level `{"message", "type"}` (vLLM).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum ErrorBody {
        Nested { error: ErrorDetail },
        Flat(Detail),
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum ErrorDetail {
        Text(String),
        Object(Detail),
    }

    #[derive(Debug, Deserialize)]
    struct Detail {
        message: String,
        #[serde(default)]
        r#type: Option<String>,
        /// A string on OpenAI (`"invalid_api_key"`), a number or `null` elsewhere.
        #[serde(default)]
        code: Option<Value>,
    }

    impl Detail {
        /// `"{type} ({code}): {message}"`, leaving out the parts that are absent.
        fn render(self) -> String {
            let code = match self.code {
                Some(Value::String(code)) => Some(code),
                Some(Value::Number(code)) => Some(code.to_string()),
                _ => None,
            };
            match (self.r#type, code) {
                (Some(kind), Some(code)) => format!("{kind} ({code}): {}", self.message),
                (Some(kind), None) => format!("{kind}: {}", self.message),
                (None, Some(code)) => format!("({code}): {}", self.message),
                (None, None) => self.message,
            }
        }
    }

    /// A one-line message from an error body (see [`ErrorBody`]), else the start of the body.
    pub(super) fn error_message(body: &str) -> String {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(ErrorBody::Nested {
                error: ErrorDetail::Text(message),
            }) => message,
            Ok(ErrorBody::Nested {
                error: ErrorDetail::Object(detail),
            })
            | Ok(ErrorBody::Flat(detail)) => detail.render(),
            Err(_) => quote_body(body),
        }
    }

    #[cfg(test)]
    mod tests {
        use serde_json::json;

        use super::*;
        use crate::llm::{Part, ToolSpec};

        fn request(messages: Vec<Message>) -> ToolRequest {
            ToolRequest {
                model: "m".into(),
                system: "s".into(),
                messages,
                tools: vec![ToolSpec {
                    name: "x".into(),
                    description: "d".into(),
                    input_schema: json!({"type": "object"}),
                }],
                tool_choice: "x".into(),
                choice: crate::llm::Choice::Role,
                max_tokens: 10,
            }
        }

        fn answer(tool_calls: Value, finish_reason: &str) -> String {
            json!({
                "choices": [{"index": 0, "finish_reason": finish_reason,
                             "message": {"role": "assistant", "content": null,
                                         "tool_calls": tool_calls}}]
            })
            .to_string()
        }

        #[test]
        fn request_has_system_first_and_no_response_format() {
            let body = serde_json::to_value(
                Request::new(
                    &request(vec![Message::User(vec![Part::text("u")])]),
                    Parameters::Full,
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(
                body["messages"],
                json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
            );
            assert!(body.get("response_format").is_none());
            assert!(body.get("stream").is_none());
        }

        #[test]
        fn echoed_call_serializes_input_as_a_json_string_or_raw_text_back() {
            let body = serde_json::to_value(
                Request::new(
                    &request(vec![
                        Message::ToolCall {
                            id: "c1".into(),
                            name: "x".into(),
                            input: json!({"a": [1]}),
                        },
                        Message::ToolCall {
                            id: "c2".into(),
                            name: "x".into(),
                            input: Value::String("{\"a\": ".into()),
                        },
                    ]),
                    Parameters::Full,
                )
                .unwrap(),
            )
            .unwrap();
            let first = &body["messages"][1];
            assert_eq!(first["content"], "");
            assert_eq!(
                first["tool_calls"][0]["function"]["arguments"],
                r#"{"a":[1]}"#
            );
            assert_eq!(
                body["messages"][2]["tool_calls"][0]["function"]["arguments"],
                "{\"a\": "
            );
        }

        #[test]
        fn look_ups_offer_the_functions_with_required_and_answer_with_a_tool_message() {
            let mut request = request(vec![
                Message::ToolCall {
                    id: "c1".into(),
                    name: "search".into(),
                    input: json!({"regex": "a"}),
                },
                Message::ToolResult {
                    id: "c1".into(),
                    content: "<lookup_result>…</lookup_result>".into(),
                    is_error: false,
                },
            ]);
            request.tools.push(ToolSpec {
                name: "search".into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
            });
            request.choice = crate::llm::Choice::WithLookups(vec!["search".into()]);
            let body =
                serde_json::to_value(Request::new(&request, Parameters::Full).unwrap()).unwrap();
            assert_eq!(body["tool_choice"], "required");
            let names: Vec<_> = body["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["x", "search"]);
            // The result is the `tool` message alone: no user turn asking for a correction.
            assert_eq!(body["messages"].as_array().unwrap().len(), 3);
            assert_eq!(
                body["messages"][2],
                json!({"role": "tool", "tool_call_id": "c1",
                       "content": "<lookup_result>…</lookup_result>"})
            );
            request.choice = crate::llm::Choice::Forced;
            let body =
                serde_json::to_value(Request::new(&request, Parameters::Full).unwrap()).unwrap();
            assert_eq!(body["tool_choice"]["function"]["name"], "x");
            assert_eq!(body["tools"].as_array().unwrap().len(), 1);
            // A call of an allowed look-up is taken; of a tool not allowed, refused.
            let looked = answer(
                json!([{"id": "c2", "type": "function",
                        "function": {"name": "search", "arguments": "{\"regex\":\"b\"}"}}]),
                "tool_calls",
            );
            let call = parse_tool_call(&looked, &["x", "search"]).unwrap();
            assert_eq!(
                (call.name.as_str(), call.input.clone()),
                ("search", json!({"regex": "b"}))
            );
            assert!(parse_tool_call(&looked, &["x"]).is_err());
        }

        #[test]
        fn arguments_as_string_object_or_broken_json() {
            let call = parse_tool_call(
                &answer(
                    json!([{"id": "c", "type": "function",
                            "function": {"name": "x", "arguments": "{\"a\":1}"}}]),
                    "tool_calls",
                ),
                &["x"],
            )
            .unwrap();
            assert_eq!(call.input, json!({"a": 1}));
            assert_eq!(call.usage, Usage::default(), "missing usage counts zero");

            let call = parse_tool_call(
                &answer(
                    json!([{"function": {"name": "x", "arguments": {"a": 2}}}]),
                    "stop",
                ),
                &["x"],
            )
            .unwrap();
            assert_eq!(call.input, json!({"a": 2}));
            assert_eq!(call.id, FALLBACK_CALL_ID);

            let call = parse_tool_call(
                &answer(
                    json!([{"id": "c", "function": {"name": "x", "arguments": "{\"a\":"}}]),
                    "tool_calls",
                ),
                &["x"],
            )
            .unwrap();
            assert_eq!(call.input, Value::String("{\"a\":".into()));
        }

        #[test]
        fn missing_or_other_tool_call_is_invalid_response() {
            let err = parse_tool_call(&answer(Value::Null, "length"), &["x"]).unwrap_err();
            assert!(err.to_string().contains("finish_reason: length"), "{err}");
            let err = parse_tool_call(
                &answer(
                    json!([{"id": "c", "function": {"name": "y", "arguments": "{}"}}]),
                    "tool_calls",
                ),
                &["x"],
            )
            .unwrap_err();
            assert!(err.to_string().contains("called: y"), "{err}");
            let err = parse_tool_call(r#"{"choices": []}"#, &["x"]).unwrap_err();
            assert!(err.to_string().contains("no choices"), "{err}");
        }

        #[test]
        fn error_bodies_documented_plain_flat_or_raw() {
            let documented = json!({"error": {"message": "Incorrect API key provided",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
            assert_eq!(
                error_message(&documented.to_string()),
                "invalid_request_error (invalid_api_key): Incorrect API key provided"
            );
            let llama = json!({"error": {"code": 500, "message": "boom", "type": "server_error"}});
            assert_eq!(
                error_message(&llama.to_string()),
                "server_error (500): boom"
            );
            assert_eq!(
                error_message(r#"{"error": "model 'x' not found"}"#),
                "model 'x' not found"
            );
            let vllm = json!({"object": "error", "message": "too long",
                              "type": "BadRequestError", "code": 400});
            assert_eq!(
                error_message(&vllm.to_string()),
                "BadRequestError (400): too long"
            );
            assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
            assert_eq!(error_message(""), "(empty body)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_control_characters_in_strings_are_escaped_and_nothing_else_changes() {
        let raw = "{\"prd\": \"a\nb\tc\\\"d\u{1}\",\n \"n\": 1}";
        assert!(serde_json::from_str::<serde_json::Value>(raw).is_err());
        let escaped = wire::escape_controls(raw);
        assert_eq!(escaped, "{\"prd\": \"a\\nb\\tc\\\"d\\u0001\",\n \"n\": 1}");
        let value: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(value["prd"], "a\nb\tc\"d\u{1}");
        assert_eq!(value["n"], 1);
    }

    #[test]
    fn bearer_only_with_a_key() {
        let keyed = OpenAi::new(
            "http://localhost:8080/",
            Some(SecretString::from("sk-x")),
            RetryPolicy::default(),
        );
        assert_eq!(keyed.base_url, "http://localhost:8080");
        let headers = keyed.headers().unwrap();
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["authorization"], "Bearer sk-x");
        let keyless = OpenAi::new("http://localhost", None, RetryPolicy::default());
        assert!(keyless.headers().unwrap().get("authorization").is_none());
    }
}
