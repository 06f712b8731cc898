//! The Anthropic provider against a wiremock server answering as the Messages API documents:
//! request shape, tool_use parsing, error mapping and the retry policy.

use std::time::{Duration, Instant};

use autonomous_dev::llm::{
    Anthropic, LlmError, Message, Provider, RetryPolicy, ToolRequest, ToolSpec,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-test-0123456789";
const TOOL: &str = "submit_prd";

/// Fast retries so that tests do not sleep.
fn fast(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(2),
    }
}

fn client(server: &MockServer, retry: RetryPolicy) -> Anthropic {
    Anthropic::new(&server.uri(), SecretString::from(KEY), retry)
}

fn request(messages: Vec<Message>) -> ToolRequest {
    ToolRequest {
        model: "claude-sonnet-4-5".into(),
        system: "You are a PM.".into(),
        messages,
        tool: ToolSpec {
            name: TOOL.into(),
            description: "Submit the PRD.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"prd": {"type": "string"}},
                "required": ["prd"]
            }),
        },
        max_tokens: 4096,
    }
}

fn simple_request() -> ToolRequest {
    request(vec![Message::User("Write a PRD.".into())])
}

/// A documented successful Messages API response with a text block and the tool call.
fn tool_use_body(usage: Value) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "I'll submit the PRD."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": TOOL,
             "input": {"prd": "# PRD"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": usage
    })
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(tool_use_body(
        json!({"input_tokens": 10, "output_tokens": 20}),
    ))
}

/// The documented error body.
fn error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
    }))
}

async fn mount_once(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(response)
        .up_to_n_times(1)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn request_has_documented_path_headers_and_forced_tool() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": "You are a PM.",
            "tool_choice": {"type": "tool", "name": TOOL},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Write a PRD."}]}]
        })))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;

    let call = client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");

    let body: Value = requests(&server).await[0].body_json().unwrap();
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], TOOL);
    assert_eq!(tools[0]["description"], "Submit the PRD.");
    assert_eq!(tools[0]["input_schema"]["type"], "object");
    assert_eq!(tools[0]["input_schema"]["required"], json!(["prd"]));
}

#[tokio::test]
async fn retry_conversation_maps_to_tool_use_and_tool_result_turns() {
    let server = MockServer::start().await;
    mount_once(&server, ok()).await;
    let conversation = request(vec![
        Message::User("Write a PRD.".into()),
        Message::ToolCall {
            id: "toolu_1".into(),
            name: TOOL.into(),
            input: json!({"prd": ""}),
        },
        Message::ToolError {
            id: "toolu_1".into(),
            error: "`prd` must not be empty".into(),
        },
    ]);
    client(&server, fast(0))
        .call_tool(&conversation)
        .await
        .unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"],
        json!([{"type": "tool_use", "id": "toolu_1", "name": TOOL, "input": {"prd": ""}}])
    );
    assert_eq!(messages[2]["role"], "user");
    let content = messages[2]["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"type": "tool_result", "tool_use_id": "toolu_1",
               "content": "`prd` must not be empty", "is_error": true})
    );
    assert_eq!(content[1]["type"], "text");
    assert!(
        content[1]["text"]
            .as_str()
            .unwrap()
            .contains("Call the tool again")
    );
}

#[tokio::test]
async fn tool_use_is_parsed_with_usage_including_cache_tokens() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(200).set_body_json(tool_use_body(json!({
            "input_tokens": 2095,
            "output_tokens": 503,
            "cache_creation_input_tokens": 2051,
            "cache_read_input_tokens": 17,
            "service_tier": "standard"
        }))),
    )
    .await;
    let call = client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.input, json!({"prd": "# PRD"}));
    assert_eq!(call.usage.input_tokens, 2095);
    assert_eq!(call.usage.output_tokens, 503);
    assert_eq!(call.usage.cache_creation_input_tokens, 2051);
    assert_eq!(call.usage.cache_read_input_tokens, 17);
}

#[tokio::test]
async fn absent_or_null_cache_tokens_count_zero() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(200).set_body_json(tool_use_body(json!({
            "input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": null
        }))),
    )
    .await;
    let call = client(&server, fast(0))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.usage.cache_creation_input_tokens, 0);
    assert_eq!(call.usage.cache_read_input_tokens, 0);
}

#[tokio::test]
async fn rate_limit_waits_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        )
        .insert_header("retry-after", "1"),
    )
    .await;
    mount_once(&server, ok()).await;

    let started = Instant::now();
    let call = client(&server, fast(3))
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

#[tokio::test]
async fn overloaded_storm_gives_unavailable_after_the_limit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(529, "overloaded_error", "Overloaded"))
        .expect(3)
        .mount(&server)
        .await;
    let err = client(&server, fast(2))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    match err {
        LlmError::Unavailable {
            status,
            attempts,
            ref message,
        } => {
            assert_eq!(status, 529);
            assert_eq!(attempts, 3);
            assert!(message.contains("overloaded_error"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn server_error_then_success() {
    let server = MockServer::start().await;
    mount_once(&server, error(500, "api_error", "Internal server error")).await;
    mount_once(&server, ok()).await;
    let call = client(&server, fast(2))
        .call_tool(&simple_request())
        .await
        .unwrap();
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn unauthorized_is_auth_at_once_and_never_shows_the_key() {
    let server = MockServer::start().await;
    // Even a server echoing the key back must not make it appear in our error.
    Mock::given(method("POST"))
        .respond_with(error(
            401,
            "authentication_error",
            &format!("invalid x-api-key {KEY}"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Auth { status: 401, .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("authentication_error"), "{shown}");
    assert!(!shown.contains(KEY), "key leaked: {shown}");
}

#[tokio::test]
async fn forbidden_is_auth() {
    let server = MockServer::start().await;
    mount_once(&server, error(403, "permission_error", "no access")).await;
    let err = client(&server, fast(3))
        .call_tool(&simple_request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Auth { status: 403, .. }), "{err:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn bad_request_is_api_error_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(
            400,
            "invalid_request_error",
            "tools.0.input_schema: JSON schema is invalid",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server, fast(3))
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

#[tokio::test]
async fn answer_without_tool_use_is_invalid_response_naming_stop_reason() {
    let server = MockServer::start().await;
    let mut body = tool_use_body(json!({"input_tokens": 1, "output_tokens": 4096}));
    body["content"] = json!([{"type": "text", "text": "Here is a PRD…"}]);
    body["stop_reason"] = json!("max_tokens");
    mount_once(
        &server,
        ResponseTemplate::new(200).set_body_json(body.clone()),
    )
    .await;
    body["stop_reason"] = json!("end_turn");
    mount_once(&server, ResponseTemplate::new(200).set_body_json(body)).await;

    let client = client(&server, fast(3));
    let err = client.call_tool(&simple_request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidResponse(m) if m.contains("max_tokens")),
        "{err:?}"
    );
    let err = client.call_tool(&simple_request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidResponse(m) if m.contains("end_turn")),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 2, "no retry of a bad answer");
}

#[tokio::test]
async fn unreachable_server_is_a_network_error_after_retries() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Anthropic::new(
        &format!("http://127.0.0.1:{port}"),
        SecretString::from(KEY),
        fast(1),
    );
    let err = client.call_tool(&simple_request()).await.unwrap_err();
    match &err {
        LlmError::Network(message) => assert!(message.contains("after 2 attempts"), "{message}"),
        other => panic!("expected Network, got {other:?}"),
    }
    assert!(!err.to_string().contains(KEY));
}
