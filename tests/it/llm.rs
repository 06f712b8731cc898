//! The LLM providers against a wiremock server answering as each API documents: request shape,
//! tool-call parsing, the corrective-retry conversation, error mapping and the retry policy.
//!
//! Every behaviour is one test body taking a [`Wire`] and run twice, once against Anthropic's
//! Messages API and once against OpenAI's Chat Completions API (`anthropic::…` and `openai::…`
//! test names, see [`both_wires!`]). [`Wire`] knows each format: its path, how to render a
//! success, an error or an answer without a tool call, and how to read a recorded request back
//! into provider-neutral terms. Behaviours only one format has come last.

use crate::common;

use std::time::{Duration, Instant};

use autonomous_dev::agents::{self, Chain, Input, Pm, PmVote, RepoContext};
use autonomous_dev::llm::{
    Anthropic, Constraint, LlmError, Message, OpenAi, Part, Provider, RetryPolicy, ToolRequest,
    ToolSpec,
};
use autonomous_dev::task::Usage;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-0123456789abcdef";
const TOOL: &str = "submit_prd";
const CALL_ID: &str = "call_01A09q90qw90lq917835lq9";

// ------------------------------------------------------------------------------------------
// The two wire formats
// ------------------------------------------------------------------------------------------

/// One API format, with what a test needs to fake its server and read its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    Anthropic,
    OpenAi,
}

/// A recorded request's conversation in provider-neutral terms.
#[derive(Debug, Clone, PartialEq)]
enum Turn {
    System(String),
    User(String),
    Call {
        id: String,
        name: String,
        input: Value,
    },
    ToolError {
        id: String,
        error: String,
    },
}

impl Wire {
    /// The endpoint's path.
    fn path(self) -> &'static str {
        match self {
            Wire::Anthropic => "/v1/messages",
            Wire::OpenAi => "/v1/chat/completions",
        }
    }

    /// A client of `base_url` with `KEY` and `retry` (Anthropic's without prompt caching: the
    /// plain forced tool call; see [`caching_client`]).
    fn client_at(self, base_url: &str, retry: RetryPolicy) -> Box<dyn Provider> {
        let key = SecretString::from(KEY);
        match self {
            Wire::Anthropic => Box::new(Anthropic::new(base_url, key, retry, false)),
            Wire::OpenAi => Box::new(OpenAi::new(base_url, Some(key), retry)),
        }
    }

    fn client(self, server: &MockServer, retry: RetryPolicy) -> Box<dyn Provider> {
        self.client_at(&server.uri(), retry)
    }

    /// [`Self::client`] with strict tool use on.
    fn strict_client(self, server: &MockServer) -> Box<dyn Provider> {
        let key = SecretString::from(KEY);
        match self {
            Wire::Anthropic => Box::new(
                Anthropic::new(&server.uri(), key, fast(0), false).with_strict_tool_use(true),
            ),
            // The mock server is on 127.0.0.1, which `Auto` takes for a local server.
            Wire::OpenAi => Box::new(
                OpenAi::new(&server.uri(), Some(key), fast(0))
                    .with_constraint(Some(Constraint::Strict)),
            ),
        }
    }

    /// The `strict` flag of the offered tool of a recorded body (`None`: not sent).
    fn strict_flag(self, body: &Value) -> Option<bool> {
        let tool = match self {
            Wire::Anthropic => &body["tools"][0],
            Wire::OpenAi => &body["tools"][0]["function"],
        };
        tool.get("strict")
            .map(|flag| flag.as_bool().expect("a boolean"))
    }

    /// A documented success calling `TOOL` with `input` and the given token counts; returns the
    /// response and the [`Usage`] the provider must report for it. Anthropic's also carries
    /// `cache_creation` (OpenAI reports no cache writes) and a text block before the call.
    fn success_with(
        self,
        input: Value,
        input_tokens: u32,
        output_tokens: u32,
        cache_read: u32,
    ) -> (ResponseTemplate, Usage) {
        match self {
            Wire::Anthropic => (
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": [
                        {"type": "text", "text": "I'll submit the PRD."},
                        {"type": "tool_use", "id": CALL_ID, "name": TOOL, "input": input}
                    ],
                    "stop_reason": "tool_use",
                    "stop_sequence": null,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                              "cache_creation_input_tokens": 2051,
                              "cache_read_input_tokens": cache_read,
                              "service_tier": "standard"}
                })),
                Usage {
                    input_tokens,
                    output_tokens,
                    cache_creation_input_tokens: 2051,
                    cache_read_input_tokens: cache_read,
                },
            ),
            Wire::OpenAi => (
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                    "object": "chat.completion",
                    "created": 1741569952,
                    "model": "gpt-4.1-2025-04-14",
                    "choices": [{
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": null,
                            "tool_calls": [{
                                "id": CALL_ID,
                                "type": "function",
                                "function": {"name": TOOL, "arguments": input.to_string()}
                            }],
                            "refusal": null,
                            "annotations": []
                        },
                        "logprobs": null,
                        "finish_reason": "tool_calls"
                    }],
                    // OpenAI's prompt_tokens includes the cached part; Usage does not.
                    "usage": {
                        "prompt_tokens": input_tokens + cache_read,
                        "completion_tokens": output_tokens,
                        "total_tokens": input_tokens + cache_read + output_tokens,
                        "prompt_tokens_details": {"cached_tokens": cache_read, "audio_tokens": 0},
                        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
                    },
                    "service_tier": "default"
                })),
                Usage {
                    input_tokens,
                    output_tokens,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: cache_read,
                },
            ),
        }
    }

    /// [`Self::base_body`] as a 200 response.
    fn success(self) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(self.base_body())
    }

    /// A success whose usage has no cache counts: absent, or `null` where the API allows it.
    fn success_without_cache_counts(self) -> ResponseTemplate {
        let usage = match self {
            Wire::Anthropic => json!({"input_tokens": 1, "output_tokens": 2,
                                      "cache_read_input_tokens": null}),
            Wire::OpenAi => json!({"prompt_tokens": 1, "completion_tokens": 2,
                                   "total_tokens": 3, "prompt_tokens_details": null}),
        };
        let mut body = self.base_body();
        body["usage"] = usage;
        ResponseTemplate::new(200).set_body_json(body)
    }

    /// An answer with text only, stopped by the output budget (`truncated`) or by the model.
    /// Returns the response and the stop reason the error must name.
    fn without_tool_call(self, truncated: bool) -> (ResponseTemplate, &'static str) {
        let mut body = self.base_body();
        let reason = match (self, truncated) {
            (Wire::Anthropic, true) => "max_tokens",
            (Wire::Anthropic, false) => "end_turn",
            (Wire::OpenAi, true) => "length",
            (Wire::OpenAi, false) => "stop",
        };
        match self {
            Wire::Anthropic => {
                body["content"] = json!([{"type": "text", "text": "Here is a PRD…"}]);
                body["stop_reason"] = json!(reason);
            }
            Wire::OpenAi => {
                body["choices"][0]["message"] =
                    json!({"role": "assistant", "content": "Here is a PRD…"});
                body["choices"][0]["finish_reason"] = json!(reason);
            }
        }
        (ResponseTemplate::new(200).set_body_json(body), reason)
    }

    /// The documented error body.
    fn error(self, status: u16, kind: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(match self {
            Wire::Anthropic => json!({
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
            }),
            Wire::OpenAi => json!({
                "error": {"message": message, "type": kind, "param": null, "code": null}
            }),
        })
    }

    /// The status an overloaded server answers: Anthropic's 529, else 503.
    fn overloaded(self) -> u16 {
        match self {
            Wire::Anthropic => 529,
            Wire::OpenAi => 503,
        }
    }

    /// [`Self::success`] calling `tool` instead of `TOOL`.
    fn success_calling(self, tool: &str) -> ResponseTemplate {
        let mut body = self.base_body();
        match self {
            Wire::Anthropic => body["content"][0]["name"] = json!(tool),
            Wire::OpenAi => {
                body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] = json!(tool)
            }
        }
        ResponseTemplate::new(200).set_body_json(body)
    }

    /// The plain success body of most tests: `{"prd": "# PRD"}`, 10 tokens in, 20 out.
    fn base_body(self) -> Value {
        match self {
            Wire::Anthropic => json!({
                "id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "tool_use", "id": CALL_ID, "name": TOOL,
                             "input": {"prd": "# PRD"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 20}
            }),
            Wire::OpenAi => json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952,
                "model": "gpt-4.1",
                "choices": [{"index": 0, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": null,
                        "tool_calls": [{"id": CALL_ID, "type": "function",
                            "function": {"name": TOOL, "arguments": "{\"prd\":\"# PRD\"}"}}]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
            }),
        }
    }

    /// Checks the authentication and version headers of a recorded request sent with `KEY`.
    fn assert_headers(self, request: &wiremock::Request) {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        match self {
            Wire::Anthropic => {
                assert_eq!(header("x-api-key").as_deref(), Some(KEY));
                assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
                assert_eq!(header("authorization"), None);
            }
            Wire::OpenAi => {
                assert_eq!(
                    header("authorization").as_deref(),
                    Some(format!("Bearer {KEY}").as_str())
                );
                assert_eq!(header("x-api-key"), None);
            }
        }
    }

    /// The forced tool of a recorded body, after checking that `tool_choice` forces it.
    fn forced_tool(self, body: &Value) -> String {
        let choice = &body["tool_choice"];
        match self {
            Wire::Anthropic => {
                assert_eq!(choice["type"], "tool", "{choice}");
                choice["name"].as_str().unwrap().to_owned()
            }
            Wire::OpenAi => {
                assert_eq!(choice["type"], "function", "{choice}");
                choice["function"]["name"].as_str().unwrap().to_owned()
            }
        }
    }

    /// The one offered tool of a recorded body: (name, description, JSON Schema).
    fn offered_tool(self, body: &Value) -> (String, String, Value) {
        let tools = body["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1, "{tools:?}");
        let (spec, schema) = match self {
            Wire::Anthropic => (&tools[0], "input_schema"),
            Wire::OpenAi => {
                assert_eq!(tools[0]["type"], "function");
                (&tools[0]["function"], "parameters")
            }
        };
        (
            spec["name"].as_str().unwrap().to_owned(),
            spec["description"].as_str().unwrap().to_owned(),
            spec[schema].clone(),
        )
    }

    /// The system prompt and conversation of a recorded body, strictly checking each turn's
    /// documented shape on the way.
    fn conversation(self, body: &Value) -> Vec<Turn> {
        let messages = body["messages"].as_array().unwrap();
        match self {
            Wire::Anthropic => {
                // The system prompt is an array of one text block (a cache breakpoint or not).
                let system = body["system"].as_array().unwrap();
                assert_eq!(system.len(), 1, "{system:?}");
                assert_eq!(system[0]["type"], "text", "{system:?}");
                let mut turns = vec![Turn::System(system[0]["text"].as_str().unwrap().into())];
                for message in messages {
                    let role = message["role"].as_str().unwrap();
                    for block in message["content"].as_array().unwrap() {
                        let turn = match block["type"].as_str().unwrap() {
                            "text" => Turn::User(block["text"].as_str().unwrap().into()),
                            "tool_use" => Turn::Call {
                                id: block["id"].as_str().unwrap().into(),
                                name: block["name"].as_str().unwrap().into(),
                                input: block["input"].clone(),
                            },
                            "tool_result" => {
                                assert_eq!(block["is_error"], true);
                                Turn::ToolError {
                                    id: block["tool_use_id"].as_str().unwrap().into(),
                                    error: block["content"].as_str().unwrap().into(),
                                }
                            }
                            other => panic!("unexpected block {other}"),
                        };
                        let expected_role = match turn {
                            Turn::Call { .. } => "assistant",
                            _ => "user",
                        };
                        assert_eq!(role, expected_role, "{message}");
                        turns.push(turn);
                    }
                }
                turns
            }
            Wire::OpenAi => messages
                .iter()
                .map(|m| match m["role"].as_str().unwrap() {
                    "system" => Turn::System(m["content"].as_str().unwrap().into()),
                    "user" => Turn::User(m["content"].as_str().unwrap().into()),
                    "assistant" => {
                        assert_eq!(m["content"], "", "{m}"); // not null: llama.cpp rejects it
                        let calls = m["tool_calls"].as_array().unwrap();
                        assert_eq!(calls.len(), 1, "{m}");
                        assert_eq!(calls[0]["type"], "function");
                        let arguments = calls[0]["function"]["arguments"].as_str().unwrap();
                        Turn::Call {
                            id: calls[0]["id"].as_str().unwrap().into(),
                            name: calls[0]["function"]["name"].as_str().unwrap().into(),
                            input: serde_json::from_str(arguments).unwrap(),
                        }
                    }
                    "tool" => Turn::ToolError {
                        id: m["tool_call_id"].as_str().unwrap().into(),
                        error: m["content"].as_str().unwrap().into(),
                    },
                    other => panic!("unexpected role {other}"),
                })
                .collect(),
        }
    }
}

/// Runs each listed `async fn name(wire: Wire)` as `anthropic::name` and `openai::name`.
macro_rules! both_wires {
    ($($name:ident),* $(,)?) => {
        mod anthropic {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Wire::Anthropic).await
                }
            )*
        }
        mod openai {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Wire::OpenAi).await
                }
            )*
        }
    };
}

both_wires!(
    request_has_documented_path_headers_and_forced_tool,
    strict_tool_use_sends_the_documented_strict_tool_and_its_schema_subset,
    a_server_refusing_strict_tool_use_is_asked_again_without_it_and_never_again,
    tool_call_is_parsed_with_usage_including_cache_tokens,
    absent_or_null_cache_tokens_count_zero,
    retry_conversation_maps_to_call_and_tool_error_turns,
    rate_limit_waits_retry_after_then_succeeds,
    overloaded_storm_gives_unavailable_after_the_limit,
    server_error_then_success,
    bad_gateway_is_retried,
    unauthorized_is_auth_at_once_and_never_shows_the_key,
    forbidden_is_auth,
    bad_request_is_api_error_without_retry,
    answer_without_tool_call_is_invalid_response_naming_the_stop_reason,
    unreachable_server_is_a_network_error_after_retries,
    several_tools_all_offered_on_anthropic_only_the_forced_one_on_openai,
    forced_tool_not_offered_is_an_invalid_request_and_nothing_is_sent,
    user_parts_are_blocks_on_anthropic_and_one_joined_message_on_openai,
);

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

/// Fast retries so that tests do not sleep.
fn fast(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(2),
    }
}

fn request(messages: Vec<Message>) -> ToolRequest {
    ToolRequest {
        model: "some-model".into(),
        system: "You are a PM.".into(),
        messages,
        tools: vec![ToolSpec {
            name: TOOL.into(),
            description: "Submit the PRD.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"prd": {"type": "string"}},
                "required": ["prd"]
            }),
        }],
        tool_choice: TOOL.into(),
        choice: autonomous_dev::llm::Choice::Role,
        max_tokens: 4096,
    }
}

fn simple_request() -> ToolRequest {
    request(vec![Message::User(vec![Part::text("Write a PRD.")])])
}

/// Answers the next request on `wire`'s path with `response`, once.
async fn mount_once(server: &MockServer, wire: Wire, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(wire.path()))
        .respond_with(response)
        .up_to_n_times(1)
        .mount(server)
        .await;
}

/// Answers every request on `wire`'s path with `response`, expecting exactly `times`.
async fn mount_always(server: &MockServer, wire: Wire, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(wire.path()))
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Behaviours, run for both wires
// ------------------------------------------------------------------------------------------

async fn request_has_documented_path_headers_and_forced_tool(wire: Wire) {
    let server = MockServer::start().await;
    mount_always(&server, wire, wire.success(), 1).await;

    let call = wire
        .client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.id, CALL_ID);

    let recorded = requests(&server).await;
    assert_eq!(recorded[0].url.path(), wire.path());
    wire.assert_headers(&recorded[0]);
    let body: Value = recorded[0].body_json().unwrap();
    assert_eq!(body["model"], "some-model");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(wire.forced_tool(&body), TOOL);
    let (name, description, schema) = wire.offered_tool(&body);
    assert_eq!(name, TOOL);
    assert_eq!(description, "Submit the PRD.");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!(["prd"]));
    assert_eq!(
        wire.conversation(&body),
        [
            Turn::System("You are a PM.".into()),
            Turn::User("Write a PRD.".into())
        ]
    );
    assert!(body.get("response_format").is_none(), "{body}");
    assert!(body.get("stream").is_none(), "{body}");
}

/// A tool schema as the roles' are: a non-blank text, a list of at least one item, an optional
/// list (left out of `required`).
fn rich_request() -> ToolRequest {
    let mut request = simple_request();
    request.tools[0].input_schema = json!({
        "type": "object",
        "properties": {
            "prd": {"type": "string", "pattern": "\\S", "description": "The PRD."},
            "criteria": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "notes": {"type": "array", "items": {"type": "string", "minLength": 1}}
        },
        "required": ["prd", "criteria"],
        "additionalProperties": false
    });
    request
}

async fn strict_tool_use_sends_the_documented_strict_tool_and_its_schema_subset(wire: Wire) {
    let server = MockServer::start().await;
    // A strict OpenAI answer names the optional field too, as null.
    let input = match wire {
        Wire::Anthropic => json!({"prd": "# PRD", "criteria": ["works"]}),
        Wire::OpenAi => json!({"prd": "# PRD", "criteria": ["works"], "notes": null}),
    };
    mount_always(&server, wire, wire.success_with(input, 1, 1, 0).0, 1).await;

    let call = wire
        .strict_client(&server)
        .call_tool(&rich_request())
        .await
        .unwrap();
    assert_eq!(call.input, json!({"prd": "# PRD", "criteria": ["works"]}));

    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(wire.strict_flag(&body), Some(true), "{body}");
    let (_, _, schema) = wire.offered_tool(&body);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["criteria"]["minItems"], 1);
    let notes = &schema["properties"]["notes"];
    assert_eq!(notes["items"]["description"], "{minLength: 1}");
    match wire {
        // Anthropic's subset has no patterns: said in the description instead.
        Wire::Anthropic => {
            assert_eq!(schema["required"], json!(["prd", "criteria"]));
            let prd = &schema["properties"]["prd"];
            assert!(prd.get("pattern").is_none(), "{prd}");
            assert_eq!(prd["description"], "The PRD.\n\n{pattern: \"\\\\S\"}");
        }
        // OpenAI's requires every property: the optional one becomes nullable.
        Wire::OpenAi => {
            assert_eq!(schema["required"], json!(["criteria", "notes", "prd"]));
            assert_eq!(notes["type"], json!(["array", "null"]));
            assert_eq!(schema["properties"]["prd"]["pattern"], "\\S");
        }
    }
}

async fn a_server_refusing_strict_tool_use_is_asked_again_without_it_and_never_again(wire: Wire) {
    let server = MockServer::start().await;
    let refusal = match wire {
        Wire::Anthropic => "tools.0.strict: Extra inputs are not permitted",
        Wire::OpenAi => "Unrecognized request argument supplied: strict",
    };
    mount_once(
        &server,
        wire,
        wire.error(400, "invalid_request_error", refusal),
    )
    .await;
    mount_always(&server, wire, wire.success(), 2).await;

    let client = wire.strict_client(&server);
    for _ in 0..2 {
        let call = client.call_tool(&simple_request()).await.unwrap();
        assert_eq!(call.input, json!({"prd": "# PRD"}));
    }
    let flags: Vec<Option<bool>> = requests(&server)
        .await
        .iter()
        .map(|r| wire.strict_flag(&r.body_json().unwrap()))
        .collect();
    assert_eq!(flags, [Some(true), None, None]);
}

async fn tool_call_is_parsed_with_usage_including_cache_tokens(wire: Wire) {
    let server = MockServer::start().await;
    let input = json!({"prd": "# PRD\n\n\"quoted\" and ünïcode", "extra": [1, 2]});
    let (response, usage) = wire.success_with(input.clone(), 2095, 503, 17);
    mount_once(&server, wire, response).await;
    let call = wire
        .client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.id, CALL_ID);
    assert_eq!(call.input, input);
    assert_eq!(call.usage, usage);
    assert_eq!(call.usage.input_tokens, 2095);
    assert_eq!(call.usage.output_tokens, 503);
    assert_eq!(call.usage.cache_read_input_tokens, 17);
}

async fn absent_or_null_cache_tokens_count_zero(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(&server, wire, wire.success_without_cache_counts()).await;
    let call = wire
        .client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(
        call.usage,
        Usage {
            input_tokens: 1,
            output_tokens: 2,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    );
}

async fn retry_conversation_maps_to_call_and_tool_error_turns(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(&server, wire, wire.success()).await;
    let conversation = request(vec![
        Message::User(vec![Part::text("Write a PRD.")]),
        Message::ToolCall {
            id: "call_1".into(),
            name: TOOL.into(),
            input: json!({"prd": ""}),
        },
        Message::ToolError {
            id: "call_1".into(),
            error: "`prd` must not be empty".into(),
        },
    ]);
    wire.client(&server, fast(0))
        .call_tool(&conversation)
        .await
        .unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    let turns = wire.conversation(&body);
    assert_eq!(
        turns[..4],
        [
            Turn::System("You are a PM.".into()),
            Turn::User("Write a PRD.".into()),
            Turn::Call {
                id: "call_1".into(),
                name: TOOL.into(),
                input: json!({"prd": ""}),
            },
            Turn::ToolError {
                id: "call_1".into(),
                error: "`prd` must not be empty".into(),
            },
        ]
    );
    assert_eq!(turns.len(), 5, "{turns:?}");
    match &turns[4] {
        Turn::User(text) => assert!(text.contains("again with corrected"), "{text}"),
        other => panic!("expected the request to call again, got {other:?}"),
    }
}

async fn rate_limit_waits_retry_after_then_succeeds(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(
        &server,
        wire,
        wire.error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        )
        .insert_header("retry-after", "1"),
    )
    .await;
    mount_once(&server, wire, wire.success()).await;

    let started = Instant::now();
    let call = wire
        .client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}, before retry-after",
        started.elapsed()
    );
    assert_eq!(call.input, json!({"prd": "# PRD"}));
    assert_eq!(requests(&server).await.len(), 2);
}

async fn overloaded_storm_gives_unavailable_after_the_limit(wire: Wire) {
    let server = MockServer::start().await;
    let status = wire.overloaded();
    mount_always(
        &server,
        wire,
        wire.error(status, "overloaded_error", "Overloaded"),
        3,
    )
    .await;
    let err = wire
        .client(&server, fast(2))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    match err {
        LlmError::Unavailable {
            status: got,
            attempts,
            ref message,
        } => {
            assert_eq!(got, status);
            assert_eq!(attempts, 3);
            assert!(message.contains("overloaded_error"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

async fn server_error_then_success(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(
        &server,
        wire,
        wire.error(500, "api_error", "Internal server error"),
    )
    .await;
    mount_once(&server, wire, wire.success()).await;
    let call = wire
        .client(&server, fast(2))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.id, CALL_ID);
    assert_eq!(requests(&server).await.len(), 2);
}

async fn bad_gateway_is_retried(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(
        &server,
        wire,
        ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"),
    )
    .await;
    mount_once(&server, wire, wire.success()).await;
    wire.client(&server, fast(1))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(requests(&server).await.len(), 2);
}

async fn unauthorized_is_auth_at_once_and_never_shows_the_key(wire: Wire) {
    let server = MockServer::start().await;
    // Even a server echoing the key back must not make it appear in our error.
    mount_always(
        &server,
        wire,
        wire.error(
            401,
            "authentication_error",
            &format!("Incorrect API key provided: {KEY}"),
        ),
        1,
    )
    .await;
    let err = wire
        .client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Auth { status: 401, .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("authentication_error"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains(KEY), "key leaked: {shown}");
}

async fn forbidden_is_auth(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(
        &server,
        wire,
        wire.error(403, "permission_error", "no access"),
    )
    .await;
    let err = wire
        .client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Auth { status: 403, .. }), "{err:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

async fn bad_request_is_api_error_without_retry(wire: Wire) {
    let server = MockServer::start().await;
    mount_always(
        &server,
        wire,
        wire.error(
            400,
            "invalid_request_error",
            "tools.0.input_schema: JSON schema is invalid",
        ),
        1,
    )
    .await;
    let err = wire
        .client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    match err {
        LlmError::Api { status, message } => {
            assert_eq!(status, 400);
            assert!(
                message.contains("input_schema: JSON schema is invalid"),
                "{message}"
            );
        }
        other => panic!("expected Api, got {other:?}"),
    }
}

async fn answer_without_tool_call_is_invalid_response_naming_the_stop_reason(wire: Wire) {
    let server = MockServer::start().await;
    let (truncated, budget_reason) = wire.without_tool_call(true);
    let (stopped, stop_reason) = wire.without_tool_call(false);
    mount_once(&server, wire, truncated).await;
    mount_once(&server, wire, stopped).await;

    let client = wire.client(&server, fast(3));
    let err = client.call_tool(&simple_request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidResponse(m)
            if m.contains(budget_reason) && m.contains("max_tokens")),
        "{err:?}"
    );
    let err = client.call_tool(&simple_request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidResponse(m) if m.contains(stop_reason)),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 2, "no retry of a bad answer");
}

async fn unreachable_server_is_a_network_error_after_retries(wire: Wire) {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = wire.client_at(&format!("http://127.0.0.1:{port}"), fast(1));
    let err = client.call_tool(&simple_request()).await.unwrap_err();
    match &err {
        LlmError::Network(message) => assert!(message.contains("after 2 attempts"), "{message}"),
        other => panic!("expected Network, got {other:?}"),
    }
    assert!(!err.to_string().contains(KEY));
}

/// `request(messages)` offering three tools (PM's, Architect's, QA's) and forcing the Architect's.
fn several_tools_request() -> ToolRequest {
    let mut request = simple_request();
    let spec = |name: &str, field: &str| ToolSpec {
        name: name.into(),
        description: format!("Submit the {field}."),
        input_schema: json!({
            "type": "object",
            "properties": {field: {"type": "string"}},
            "required": [field]
        }),
    };
    request.tools = vec![
        request.tools[0].clone(),
        spec("submit_design", "design"),
        spec("submit_review", "review"),
    ];
    request.tool_choice = "submit_design".into();
    request
}

async fn several_tools_all_offered_on_anthropic_only_the_forced_one_on_openai(wire: Wire) {
    let server = MockServer::start().await;
    mount_always(&server, wire, wire.success_calling("submit_design"), 1).await;
    let request = several_tools_request();
    let call = wire
        .client(&server, fast(0))
        .call_tool(&request)
        .await
        .unwrap();
    assert_eq!(call.input, json!({"prd": "# PRD"}));

    // Only the forced one, forced: the smallest prompt when no cached prefix is to be kept.
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(wire.forced_tool(&body), "submit_design");
    let (name, description, schema) = wire.offered_tool(&body);
    assert_eq!(name, "submit_design");
    assert_eq!(description, "Submit the design.");
    assert_eq!(schema, request.tools[1].input_schema);
}

/// An Anthropic client with prompt caching.
fn caching_client(server: &MockServer) -> Anthropic {
    Anthropic::new(&server.uri(), SecretString::from(KEY), fast(0), true)
}

#[tokio::test]
async fn anthropic_caching_offers_every_tool_and_lets_the_model_choose_one() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        Wire::Anthropic,
        Wire::Anthropic.success_calling("submit_review"),
        1,
    )
    .await;
    let request = several_tools_request();
    let call = caching_client(&server).call_tool(&request).await.unwrap();
    // The model called another tool than the requested one: reported as called, for the caller
    // to refuse.
    assert_eq!(call.name, "submit_review");

    let body: Value = requests(&server).await[0].body_json().unwrap();
    // Every tool, in order, and one `tool_choice` whatever the role: the cached prefix holds.
    let offered: Vec<Value> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["name"], t["description"], t["input_schema"]]))
        .collect();
    let expected: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!([t.name, t.description, t.input_schema]))
        .collect();
    assert_eq!(offered, expected);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
}

#[tokio::test]
async fn anthropic_caching_keeps_at_most_four_breakpoints_the_latest_ones() {
    let server = MockServer::start().await;
    mount_always(&server, Wire::Anthropic, Wire::Anthropic.success(), 1).await;
    let parts = (0..5).map(|i| Part::cached(format!("part {i}"))).collect();
    let mut request = request(vec![Message::User(parts)]);
    request.messages.push(Message::ToolCall {
        id: "toolu_1".into(),
        name: TOOL.into(),
        input: json!({"prd": ""}),
    });
    request.messages.push(Message::ToolError {
        id: "toolu_1".into(),
        error: "empty".into(),
    });
    caching_client(&server).call_tool(&request).await.unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(breakpoints(&body), 4, "{body}");
    assert!(body["system"][0].get("cache_control").is_some());
    let first = body["messages"][0]["content"].as_array().unwrap();
    let marked: Vec<bool> = first
        .iter()
        .map(|b| b.get("cache_control").is_some())
        .collect();
    assert_eq!(marked, [false, false, false, true, true], "{body}");
    let last = body["messages"][2]["content"].as_array().unwrap();
    assert!(
        last.last().unwrap().get("cache_control").is_some(),
        "{body}"
    );
}

async fn forced_tool_not_offered_is_an_invalid_request_and_nothing_is_sent(wire: Wire) {
    let server = MockServer::start().await;
    mount_always(&server, wire, wire.success(), 0).await;
    let mut request = simple_request();
    request.tool_choice = "submit_design".into();
    let err = wire
        .client(&server, fast(3))
        .call_tool(&request)
        .await
        .unwrap_err();
    match &err {
        LlmError::InvalidRequest(message) => {
            assert!(message.contains("`submit_design`"), "{message}")
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert!(requests(&server).await.is_empty());
}

async fn user_parts_are_blocks_on_anthropic_and_one_joined_message_on_openai(wire: Wire) {
    let server = MockServer::start().await;
    mount_once(&server, wire, wire.success()).await;
    let request = request(vec![Message::User(vec![
        Part::cached("<task id=\"t\">Add a health endpoint</task>"),
        Part::text("Write a PRD."),
    ])]);
    wire.client(&server, fast(0))
        .call_tool(&request)
        .await
        .unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    let system = Turn::System("You are a PM.".into());
    match wire {
        Wire::Anthropic => {
            assert_eq!(body["messages"].as_array().unwrap().len(), 1, "one turn");
            assert_eq!(
                wire.conversation(&body),
                [
                    system,
                    Turn::User("<task id=\"t\">Add a health endpoint</task>".into()),
                    Turn::User("Write a PRD.".into()),
                ]
            );
        }
        Wire::OpenAi => {
            assert_eq!(
                wire.conversation(&body),
                [
                    system,
                    Turn::User(
                        "<task id=\"t\">Add a health endpoint</task>\n\nWrite a PRD.".into()
                    ),
                ]
            );
            assert!(!body.to_string().contains("cache_control"), "{body}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Anthropic only: prompt-caching breakpoints
// ------------------------------------------------------------------------------------------

/// A two-part user message (the first part cached), then — when `continued` — a rejected call
/// and its error: a corrective retry or a repair round.
fn cacheable_request(continued: bool) -> ToolRequest {
    let mut messages = vec![Message::User(vec![
        Part::cached("Shared context."),
        Part::text("Write a PRD."),
    ])];
    if continued {
        messages.push(Message::ToolCall {
            id: "toolu_1".into(),
            name: TOOL.into(),
            input: json!({"prd": ""}),
        });
        messages.push(Message::ToolError {
            id: "toolu_1".into(),
            error: "`prd` must not be empty".into(),
        });
    }
    request(messages)
}

/// Every `cache_control` of a body (each must be `ephemeral`), counted.
fn breakpoints(body: &Value) -> usize {
    match body {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                if key == "cache_control" {
                    assert_eq!(value, &json!({"type": "ephemeral"}), "{body}");
                    1
                } else {
                    breakpoints(value)
                }
            })
            .sum(),
        Value::Array(items) => items.iter().map(breakpoints).sum(),
        _ => 0,
    }
}

#[tokio::test]
async fn anthropic_caching_marks_the_system_cached_parts_and_a_continued_conversation_end() {
    let server = MockServer::start().await;
    mount_always(&server, Wire::Anthropic, Wire::Anthropic.success(), 2).await;
    let client = caching_client(&server);
    client.call_tool(&cacheable_request(false)).await.unwrap();
    client.call_tool(&cacheable_request(true)).await.unwrap();

    let ephemeral = json!({"type": "ephemeral"});
    let recorded = requests(&server).await;
    let first: Value = recorded[0].body_json().unwrap();
    assert_eq!(
        first["system"],
        json!([{"type": "text", "text": "You are a PM.", "cache_control": ephemeral}])
    );
    let content = &first["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"type": "text", "text": "Shared context.", "cache_control": ephemeral})
    );
    assert_eq!(content[1], json!({"type": "text", "text": "Write a PRD."}));
    assert_eq!(breakpoints(&first), 2, "{first}");
    assert!(
        first["tools"][0].get("cache_control").is_none(),
        "the tools are cached with the system prompt after them"
    );

    let second: Value = recorded[1].body_json().unwrap();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{second}");
    assert_eq!(messages[0], first["messages"][0], "the same cached prefix");
    assert!(messages[1]["content"][0].get("cache_control").is_none());
    let last = messages[2]["content"].as_array().unwrap();
    assert_eq!(last[0]["type"], "tool_result");
    assert!(last[0].get("cache_control").is_none(), "{second}");
    assert_eq!(last[1]["type"], "text");
    assert_eq!(
        last[1]["cache_control"], ephemeral,
        "the conversation's end"
    );
    assert_eq!(breakpoints(&second), 3, "{second}");
    assert!(breakpoints(&second) <= 4, "Anthropic's limit");
}

#[tokio::test]
async fn anthropic_without_caching_sends_no_cache_control_and_system_as_blocks() {
    let server = MockServer::start().await;
    mount_always(&server, Wire::Anthropic, Wire::Anthropic.success(), 2).await;
    let client = Anthropic::new(&server.uri(), SecretString::from(KEY), fast(0), false);
    client.call_tool(&cacheable_request(false)).await.unwrap();
    client.call_tool(&cacheable_request(true)).await.unwrap();

    for recorded in requests(&server).await {
        let body: Value = recorded.body_json().unwrap();
        assert!(!body.to_string().contains("cache_control"), "{body}");
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "You are a PM."}])
        );
    }
}

// ------------------------------------------------------------------------------------------
// OpenAI-compatible servers only
// ------------------------------------------------------------------------------------------

/// An OpenAI answer calling `TOOL` with `arguments` as sent (a JSON string or an object).
fn openai_answer(id: &str, arguments: Value, prompt_tokens: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952,
        "model": "local",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": id, "type": "function",
                    "function": {"name": TOOL, "arguments": arguments}}]}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 50,
                  "total_tokens": prompt_tokens + 50,
                  "prompt_tokens_details": {"cached_tokens": 3}}
    }))
}

#[tokio::test]
async fn openai_without_a_key_sends_no_authorization() {
    let server = MockServer::start().await;
    mount_once(&server, Wire::OpenAi, Wire::OpenAi.success()).await;
    OpenAi::new(&format!("{}/", server.uri()), None, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    let recorded = requests(&server).await;
    assert_eq!(recorded[0].url.path(), "/v1/chat/completions");
    assert!(recorded[0].headers.get("authorization").is_none());
}

/// llama.cpp's server and llama-cpp-python compile a forced function's `parameters` into the
/// grammar its arguments are sampled with; their converter refuses an unanchored `pattern`
/// (llama-server: an error; llama-cpp-python: any JSON instead), so a local server is sent
/// the schema in the subset they compile, with no `strict` field.
#[tokio::test]
async fn openai_a_local_server_is_sent_parameters_it_compiles_into_a_grammar() {
    let server = MockServer::start().await;
    let input = json!({"prd": "# PRD", "criteria": ["works"]});
    mount_always(
        &server,
        Wire::OpenAi,
        Wire::OpenAi.success_with(input.clone(), 1, 1, 0).0,
        1,
    )
    .await;
    let client = OpenAi::new(&server.uri(), None, fast(0)).with_constraint(Some(Constraint::Auto));
    let call = client.call_tool(&rich_request()).await.unwrap();
    assert_eq!(call.input, input);

    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(Wire::OpenAi.strict_flag(&body), None, "{body}");
    let (_, _, schema) = Wire::OpenAi.offered_tool(&body);
    let prd = &schema["properties"]["prd"];
    assert!(prd.get("pattern").is_none(), "{prd}");
    assert_eq!(prd["minLength"], 1, "{prd}");
    assert_eq!(schema["required"], json!(["prd", "criteria"]));
    assert_eq!(schema["properties"]["notes"]["type"], "array");
    assert_eq!(schema["properties"]["notes"]["items"]["minLength"], 1);
    assert_eq!(schema["properties"]["criteria"]["minItems"], 1);
    assert_eq!(schema["additionalProperties"], false);
}

#[tokio::test]
async fn openai_arguments_as_an_object_are_accepted() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        Wire::OpenAi,
        openai_answer(CALL_ID, json!({"prd": "# PRD"}), 5),
    )
    .await;
    let call = Wire::OpenAi
        .client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.input, json!({"prd": "# PRD"}));
}

#[tokio::test]
async fn openai_missing_usage_counts_zero() {
    let server = MockServer::start().await;
    let mut body = Wire::OpenAi.base_body();
    body.as_object_mut().unwrap().remove("usage");
    mount_once(
        &server,
        Wire::OpenAi,
        ResponseTemplate::new(200).set_body_json(body),
    )
    .await;
    let call = Wire::OpenAi
        .client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.usage, Usage::default());
}

#[tokio::test]
async fn openai_plain_string_error_body_is_quoted() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        Wire::OpenAi,
        ResponseTemplate::new(404).set_body_json(json!({"error": "model 'llama9' not found"})),
    )
    .await;
    let err = Wire::OpenAi
        .client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    match err {
        LlmError::Api { status, message } => {
            assert_eq!(status, 404);
            assert_eq!(message, "model 'llama9' not found");
        }
        other => panic!("expected Api, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_invalid_json_arguments_make_ask_send_a_corrective_retry() {
    let server = MockServer::start().await;
    let broken = r##"{"prd": "# PRD", "acceptance_criteria": ["##;
    mount_once(
        &server,
        Wire::OpenAi,
        openai_answer("call_a", json!(broken), 100),
    )
    .await;
    let valid = json!({
        "prd": "# PRD\nAdd a health endpoint.",
        "acceptance_criteria": ["GET /health returns 200"],
        "vote": "approve",
        "rationale": "Clear and small."
    });
    mount_once(
        &server,
        Wire::OpenAi,
        openai_answer("call_b", json!(valid.to_string()), 200),
    )
    .await;

    let task = common::in_progress_task("Add a health endpoint");
    let (chain, repo) = (Chain::default(), RepoContext::default());
    let input = Input {
        task: &task,
        chain: &chain,
        repo: &repo,
    };
    let provider = OpenAi::new(&server.uri(), None, fast(0));
    let meter = common::RecordingMeter::new();
    let answer = agents::ask::<Pm>(&provider, "local-model", input, &meter)
        .await
        .unwrap();
    assert_eq!(meter.recorded().len(), 2, "both calls are metered");
    assert_eq!(answer.output.vote, PmVote::Approve);
    assert_eq!(
        answer.usage,
        Usage {
            input_tokens: 294, // prompt_tokens minus the cached 3, twice
            output_tokens: 100,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 6,
        }
    );

    let recorded = requests(&server).await;
    assert_eq!(recorded.len(), 2);
    let second: Value = recorded[1].body_json().unwrap();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "{messages:?}");
    // The model's own text goes back untouched, then the error, then the request to call again.
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "", "tool_calls": [{
            "id": "call_a", "type": "function",
            "function": {"name": TOOL, "arguments": broken}}]})
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_a");
    let error = messages[3]["content"].as_str().unwrap();
    // Where the JSON broke, not the model's text a second time.
    assert!(
        error.contains("the arguments are not valid JSON (EOF while parsing a list at line 1"),
        "{error}"
    );
    assert!(!error.contains("# PRD"), "{error}");
    assert_eq!(messages[4]["role"], "user");
}

/// llama-cpp-python's grammar lets a model write a raw newline inside a JSON string; the
/// answer is otherwise what the schema asks, so it is taken, not sent back.
#[tokio::test]
async fn openai_raw_newlines_in_argument_strings_are_accepted() {
    let server = MockServer::start().await;
    let raw = "{\"prd\": \"# PRD\nline two\"}";
    mount_once(&server, Wire::OpenAi, openai_answer(CALL_ID, json!(raw), 5)).await;
    let call = Wire::OpenAi
        .client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.input, json!({"prd": "# PRD\nline two"}));
}
