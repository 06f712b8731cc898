//! The GitHub client against a wiremock server answering as GitHub documents: exact request
//! bodies and the Authorization header on the fake side, documented answers and errors back.

use autonomous_dev::github::{GitHub, GitHubError, NewPullRequest, PullRequest};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ghp_test0123456789secret";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("json")
}

fn client(server: &MockServer) -> GitHub {
    GitHub::new(&server.uri(), TOKEN.to_string().into(), "o/r").expect("client")
}

fn new_pr() -> NewPullRequest {
    NewPullRequest {
        title: "Add the answer".to_string(),
        head: "feature/task-phase1-001".to_string(),
        base: "main".to_string(),
        body: "## Summary\n\nAdds `answer()`.".to_string(),
    }
}

fn assert_no_token(err: &GitHubError) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(TOKEN), "token leaked: {text}");
}

#[tokio::test]
async fn opens_a_pull_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "title": "Add the answer",
            "head": "feature/task-phase1-001",
            "base": "main",
            "body": "## Summary\n\nAdds `answer()`.",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("pull_request.json")))
        .expect(1)
        .mount(&server)
        .await;

    let pr = client(&server)
        .open_pull_request(&new_pr())
        .await
        .expect("pr");
    assert_eq!(
        pr,
        PullRequest {
            number: 1347,
            url: "https://github.com/octocat/Hello-World/pull/1347".to_string(),
        }
    );
}

#[tokio::test]
async fn adds_labels() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1347/labels"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"labels": ["bug", "enhancement"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("labels.json")))
        .expect(1)
        .mount(&server)
        .await;

    let labels = ["bug".to_string(), "enhancement".to_string()];
    client(&server)
        .add_labels(1347, &labels)
        .await
        .expect("labels");
}

#[tokio::test]
async fn adding_no_labels_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    client(&server).add_labels(1, &[]).await.expect("no-op");
}

#[tokio::test]
async fn bad_credentials_keep_status_and_message_but_not_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        })))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server)
        .open_pull_request(&new_pr())
        .await
        .expect_err("401");
    assert_no_token(&err);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.to_string(), "GitHub API error 401: Bad credentials");
    let requests = server.received_requests().await.expect("recorded");
    let auth = requests[0].headers.get("authorization").expect("header");
    assert_eq!(auth.to_str().expect("ascii"), format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn existing_pull_request_is_a_validation_failure_with_githubs_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{
                "resource": "PullRequest",
                "code": "custom",
                "message": "A pull request already exists for o:feature/task-phase1-001."
            }],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            "status": "422",
        })))
        .mount(&server)
        .await;

    let err = client(&server)
        .open_pull_request(&new_pr())
        .await
        .expect_err("422");
    assert_no_token(&err);
    assert_eq!(err.status(), Some(422));
    assert_eq!(
        err.to_string(),
        "GitHub API error 422: Validation Failed: \
         A pull request already exists for o:feature/task-phase1-001."
    );
}

#[tokio::test]
async fn rate_limit_headers_are_kept() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/7/labels"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1700000000")
                .set_body_json(json!({
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                })),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/8/labels"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "60")
                .set_body_json(json!({
                    "message": "You have exceeded a secondary rate limit.",
                })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let github = client(&server);
    let labels = ["x".to_string()];
    match github.add_labels(7, &labels).await {
        Err(GitHubError::Status {
            status,
            retry_after,
            rate_limit_remaining,
            rate_limit_reset,
            message,
        }) => {
            assert_eq!(status, 403);
            assert_eq!(message, "API rate limit exceeded for user ID 1.");
            assert_eq!(retry_after, None);
            assert_eq!(rate_limit_remaining, Some(0));
            assert_eq!(rate_limit_reset, Some(1_700_000_000));
        }
        other => panic!("unexpected {other:?}"),
    }
    match github.add_labels(8, &labels).await {
        Err(GitHubError::Status {
            status,
            retry_after,
            ..
        }) => {
            assert_eq!(status, 429);
            assert_eq!(retry_after, Some(60));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_are_not_retried_by_octocrab() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server)
        .open_pull_request(&new_pr())
        .await
        .expect_err("502");
    assert_eq!(err.status(), Some(502));
    assert_eq!(err.to_string(), "GitHub API error 502: Bad Gateway");
}

#[tokio::test]
async fn unreachable_api_is_an_api_error_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    drop(listener);
    let github = GitHub::new(
        &format!("http://{address}"),
        TOKEN.to_string().into(),
        "o/r",
    )
    .expect("client");
    let err = github.open_pull_request(&new_pr()).await.expect_err("down");
    assert_no_token(&err);
    assert!(matches!(err, GitHubError::Api(_)), "{err:?}");
    assert!(!err.to_string().contains("Found at"), "{err}");
}

#[tokio::test]
async fn undecodable_answer_is_an_api_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 1})))
        .mount(&server)
        .await;
    let err = client(&server)
        .open_pull_request(&new_pr())
        .await
        .expect_err("bad body");
    assert!(matches!(err, GitHubError::Api(_)), "{err:?}");
    assert!(err.to_string().contains("decode"), "{err}");
}
