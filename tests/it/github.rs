//! The GitHub client against a wiremock server answering as GitHub documents: exact request
//! bodies and the Authorization header on the fake side, documented answers and errors back.

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use autonomous_dev::github::{GitHub, GitHubError, NewPullRequest, PullRequest, RateLimitPolicy};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
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

/// A client whose waits are short enough for tests (a `retry-after` still counts in seconds).
fn fast_client(server: &MockServer) -> GitHub {
    client(server).with_policy(RateLimitPolicy {
        max_wait: Duration::from_secs(5),
        max_retries: 3,
        secondary_wait: Duration::from_millis(200),
        backoff: Duration::from_millis(10),
    })
}

/// A client that never retries (to look at single answers).
fn no_retry_client(server: &MockServer) -> GitHub {
    client(server).with_policy(RateLimitPolicy {
        max_retries: 0,
        ..RateLimitPolicy::default()
    })
}

const PULLS: &str = "/repos/o/r/pulls";
const HEAD: &str = "feature/task-phase1-001";

/// `GET /pulls?state=open&head=o:feature/task-phase1-001` answering `prs` (at most `times`
/// times when given).
async fn mount_list(server: &MockServer, prs: Value, times: Option<u64>) {
    let mock = Mock::given(method("GET"))
        .and(path(PULLS))
        .and(query_param("state", "open"))
        .and(query_param("head", format!("o:{HEAD}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(prs));
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.mount(server).await;
}

/// `POST /pulls` answering `response` (at most `times` times when given).
async fn mount_create(server: &MockServer, response: ResponseTemplate, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path(PULLS))
        .respond_with(response);
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.mount(server).await;
}

/// `METHOD path` of every request received, in order.
async fn requests(server: &MockServer) -> Vec<String> {
    let received = server.received_requests().await.expect("recorded");
    received
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

fn created_pr() -> PullRequest {
    PullRequest {
        number: 1347,
        url: "https://github.com/octocat/Hello-World/pull/1347".to_string(),
    }
}

fn already_exists() -> ResponseTemplate {
    ResponseTemplate::new(422).set_body_json(json!({
        "message": "Validation Failed",
        "errors": [{
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for o:feature/task-phase1-001."
        }],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        "status": "422",
    }))
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
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
    mount_list(&server, json!([]), None).await;
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

    let (pr, created) = client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("pr");
    assert!(created);
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
    mount_list(&server, json!([]), None).await;
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
        .ensure_pull_request(&new_pr())
        .await
        .expect_err("401");
    assert_no_token(&err);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.to_string(), "GitHub API error 401: Bad credentials");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2, "GET then one POST: a 401 is not retried");
    let auth = requests[1].headers.get("authorization").expect("header");
    assert_eq!(auth.to_str().expect("ascii"), format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn existing_pull_request_is_a_validation_failure_with_githubs_message() {
    let server = MockServer::start().await;
    // GitHub says it exists but never lists it: no retry left, so the 422 is the answer.
    mount_list(&server, json!([]), None).await;
    mount_create(&server, already_exists(), None).await;

    let err = no_retry_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect_err("422");
    assert_no_token(&err);
    assert_eq!(err.status(), Some(422));
    assert!(err.is_already_exists());
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}")
        ],
        "it looked again after the 422"
    );
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

    let github = no_retry_client(&server);
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
    mount_list(&server, json!([]), None).await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .expect(1)
        .mount(&server)
        .await;

    let err = no_retry_client(&server)
        .ensure_pull_request(&new_pr())
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
    .expect("client")
    .with_policy(RateLimitPolicy {
        max_retries: 0,
        ..RateLimitPolicy::default()
    });
    let err = github
        .ensure_pull_request(&new_pr())
        .await
        .expect_err("down");
    assert_no_token(&err);
    assert!(matches!(err, GitHubError::Api(_)), "{err:?}");
    assert!(!err.to_string().contains("Found at"), "{err}");
}

#[tokio::test]
async fn undecodable_answer_is_an_api_error() {
    let server = MockServer::start().await;
    mount_list(&server, json!([]), None).await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 1})))
        .mount(&server)
        .await;
    let err = no_retry_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect_err("bad body");
    assert!(matches!(err, GitHubError::Api(_)), "{err:?}");
    assert!(err.to_string().contains("decode"), "{err}");
}

// ---- adopting an existing pull request -------------------------------------------------------

#[tokio::test]
async fn find_open_pull_request_filters_by_owner_and_branch() {
    let server = MockServer::start().await;
    mount_list(&server, json!([fixture("pull_request.json")]), None).await;
    let found = client(&server)
        .find_open_pull_request(HEAD)
        .await
        .expect("find");
    assert_eq!(found, Some(created_pr()));
    let received = server.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 1);
    let auth = received[0].headers.get("authorization").expect("header");
    assert_eq!(auth.to_str().expect("ascii"), format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn find_open_pull_request_answers_none_for_an_empty_list() {
    let server = MockServer::start().await;
    mount_list(&server, json!([]), None).await;
    let found = client(&server).find_open_pull_request(HEAD).await;
    assert_eq!(found.expect("find"), None);
}

#[tokio::test]
async fn ensure_creates_when_none_is_open() {
    let server = MockServer::start().await;
    mount_list(&server, json!([]), None).await;
    mount_create(
        &server,
        ResponseTemplate::new(201).set_body_json(fixture("pull_request.json")),
        None,
    )
    .await;
    let (pr, created) = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(created);
    assert_eq!(
        requests(&server).await,
        [format!("GET {PULLS}"), format!("POST {PULLS}")]
    );
}

#[tokio::test]
async fn ensure_adopts_an_open_pull_request_without_creating() {
    let server = MockServer::start().await;
    mount_list(&server, json!([fixture("pull_request.json")]), None).await;
    mount_create(&server, ResponseTemplate::new(500), None).await;
    let (pr, created) = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(!created);
    assert_eq!(requests(&server).await, [format!("GET {PULLS}")]);
}

#[tokio::test]
async fn ensure_after_a_502_on_create_adopts_the_pull_request_it_made() {
    let server = MockServer::start().await;
    // Not listed before the create; listed after it (GitHub created it, then the gateway failed).
    mount_list(&server, json!([]), Some(1)).await;
    mount_list(&server, json!([fixture("pull_request.json")]), None).await;
    mount_create(
        &server,
        ResponseTemplate::new(502).set_body_string("Bad Gateway"),
        None,
    )
    .await;
    let (pr, created) = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(!created);
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}")
        ],
        "exactly one create"
    );
}

#[tokio::test]
async fn ensure_after_a_502_creates_again_only_once_it_looked() {
    let server = MockServer::start().await;
    mount_list(&server, json!([]), None).await;
    mount_create(
        &server,
        ResponseTemplate::new(502).set_body_string("Bad Gateway"),
        Some(1),
    )
    .await;
    mount_create(
        &server,
        ResponseTemplate::new(201).set_body_json(fixture("pull_request.json")),
        None,
    )
    .await;
    let (pr, created) = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(created);
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}"),
            format!("POST {PULLS}")
        ]
    );
}

#[tokio::test]
async fn ensure_adopts_after_422_already_exists() {
    let server = MockServer::start().await;
    // A concurrent attempt created it between our look and our create.
    mount_list(&server, json!([]), Some(1)).await;
    mount_list(&server, json!([fixture("pull_request.json")]), None).await;
    mount_create(&server, already_exists(), None).await;
    let (pr, created) = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(!created);
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}")
        ]
    );
}

#[tokio::test]
async fn ensure_with_bad_credentials_fails_at_once_without_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PULLS))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        })))
        .mount(&server)
        .await;
    let err = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect_err("401");
    assert_no_token(&err);
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_transient());
    assert_eq!(err.to_string(), "GitHub API error 401: Bad credentials");
    assert_eq!(requests(&server).await.len(), 1, "a 401 was retried");
}

// ---- rate limits are waited out ---------------------------------------------------------------

#[tokio::test]
async fn secondary_rate_limit_403_with_retry_after_is_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/7/labels"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "1")
                .set_body_json(json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/7/labels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("labels.json")))
        .mount(&server)
        .await;

    let started = Instant::now();
    fast_client(&server)
        .add_labels(7, &["bug".to_string()])
        .await
        .expect("labels after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn rate_limited_create_is_sent_again_after_retry_after() {
    let server = MockServer::start().await;
    mount_list(&server, json!([]), None).await;
    mount_create(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        Some(1),
    )
    .await;
    mount_create(
        &server,
        ResponseTemplate::new(201).set_body_json(fixture("pull_request.json")),
        None,
    )
    .await;
    let started = Instant::now();
    let (pr, created) = fast_client(&server)
        .ensure_pull_request(&new_pr())
        .await
        .expect("pr after the wait");
    assert_eq!(pr, created_pr());
    assert!(created);
    assert!(started.elapsed() >= Duration::from_secs(1));
    // A rate-limited create made nothing; the client looks once more before sending it again.
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}"),
            format!("POST {PULLS}")
        ]
    );
}

#[tokio::test]
async fn exhausted_primary_limit_waits_for_the_reset() {
    let server = MockServer::start().await;
    let reset = now_epoch() + 1;
    Mock::given(method("GET"))
        .and(path(PULLS))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-used", "5000")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_list(&server, json!([]), None).await;
    let started = Instant::now();
    let found = fast_client(&server)
        .find_open_pull_request(HEAD)
        .await
        .expect("find after the reset");
    assert_eq!(found, None);
    assert!(now_epoch() > reset, "retried before the reset");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn secondary_limit_without_retry_after_waits_the_policy_minimum() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PULLS))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "You have exceeded a secondary rate limit.",
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_list(&server, json!([]), None).await;
    let started = Instant::now();
    fast_client(&server)
        .find_open_pull_request(HEAD)
        .await
        .expect("find");
    // fast_client's secondary_wait (GitHub's one minute, shortened for the test).
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn rate_limit_retries_are_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PULLS))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"message": "Too Many Requests"})),
        )
        .mount(&server)
        .await;
    let err = fast_client(&server)
        .find_open_pull_request(HEAD)
        .await
        .expect_err("limited for good");
    assert_eq!(err.status(), Some(429));
    assert!(err.is_transient());
    assert_eq!(requests(&server).await.len(), 4, "1 + max_retries attempts");
}

#[tokio::test]
async fn server_errors_of_idempotent_calls_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PULLS))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    mount_list(&server, json!([fixture("pull_request.json")]), None).await;
    let found = fast_client(&server)
        .find_open_pull_request(HEAD)
        .await
        .expect("find");
    assert_eq!(found, Some(created_pr()));
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn permission_403_fails_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/7/labels"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue",
        })))
        .mount(&server)
        .await;
    let err = fast_client(&server)
        .add_labels(7, &["bug".to_string()])
        .await
        .expect_err("403");
    assert_no_token(&err);
    assert!(!err.is_rate_limited());
    assert!(!err.is_transient());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn adding_the_same_labels_twice_sends_the_same_request_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1347/labels"))
        .and(body_json(json!({"labels": ["bug", "enhancement"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("labels.json")))
        .expect(2)
        .mount(&server)
        .await;
    let github = fast_client(&server);
    let labels = ["bug".to_string(), "enhancement".to_string()];
    github.add_labels(1347, &labels).await.expect("first");
    github.add_labels(1347, &labels).await.expect("second");
    let received = server.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
}

#[test]
fn transient_and_permanent_errors() {
    let status = |status: u16, message: &str| GitHubError::Status {
        status,
        message: message.to_string(),
        retry_after: None,
        rate_limit_remaining: None,
        rate_limit_reset: None,
    };
    let transient = [
        status(500, "Internal Server Error"),
        status(502, "Bad Gateway"),
        status(429, "Too Many Requests"),
        status(403, "You have exceeded a secondary rate limit."),
        status(403, "API rate limit exceeded for user ID 1."),
        status(
            422,
            "Validation Failed: A pull request already exists for o:feature/task-phase1-001.",
        ),
        GitHubError::Api("HTTP error: connection refused".to_string()),
    ];
    for err in &transient {
        assert!(err.is_transient(), "{err}");
    }
    let permanent = [
        status(401, "Bad credentials"),
        status(403, "Resource not accessible by integration"),
        status(404, "Not Found"),
        status(422, "Validation Failed: Issue.title missing_field"),
        GitHubError::Config("bad".to_string()),
    ];
    for err in &permanent {
        assert!(!err.is_transient(), "{err}");
    }
    let exhausted = GitHubError::Status {
        status: 403,
        message: "Forbidden".to_string(),
        retry_after: None,
        rate_limit_remaining: Some(0),
        rate_limit_reset: None,
    };
    assert!(exhausted.is_rate_limited());
}

#[tokio::test]
async fn a_retried_task_ends_with_one_pull_request() {
    // The daemon created the PR, then died before saving pr_url; the retry must adopt it.
    let fake = common::FakeGitHub::start().await;
    let github = fast_client(&fake.server);
    let (first, created) = github.ensure_pull_request(&new_pr()).await.expect("first");
    assert!(created);
    let (second, created) = github.ensure_pull_request(&new_pr()).await.expect("retry");
    assert!(!created);
    assert_eq!(second, first);
    assert_eq!(fake.pulls().await.len(), 1, "a second PR was created");
    assert_eq!(fake.lists().await, 2);
    // Another task's branch is not mistaken for this one.
    let other = NewPullRequest {
        head: "feature/task-phase1-002".to_string(),
        ..new_pr()
    };
    let (third, created) = github.ensure_pull_request(&other).await.expect("other");
    assert!(created);
    assert_ne!(third.number, first.number);
}

/// The client of `o/r` whose PR heads are in the fork `fork` (PUSH_REPOSITORY).
fn fork_client(server: &MockServer, fork: &str) -> GitHub {
    fast_client(server)
        .with_head_repository(fork)
        .expect("fork client")
}

/// `GET /pulls?state=open&head=<head>` answering `prs` (at most `times` times when given).
async fn mount_list_of(server: &MockServer, head: &str, prs: Value, times: Option<u64>) {
    let mock = Mock::given(method("GET"))
        .and(path(PULLS))
        .and(query_param("state", "open"))
        .and(query_param("head", head))
        .respond_with(ResponseTemplate::new(200).set_body_json(prs));
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.mount(server).await;
}

/// GitHub's pull request object whose head is `branch` of the fork owned by `owner`.
fn fork_pull_request(owner: &str) -> Value {
    let mut pr = fixture("pull_request.json");
    pr["head"]["label"] = json!(format!("{owner}:{HEAD}"));
    pr["head"]["ref"] = json!(HEAD);
    pr
}

/// Exactly one `POST /pulls` whose body is [`new_pr`] with head `<owner>:<branch>` plus the
/// fields of `extra`, answered with the fork's new PR.
async fn expect_fork_create(server: &MockServer, owner: &str, extra: Value) {
    let mut body = json!({
        "title": "Add the answer",
        "head": format!("{owner}:{HEAD}"),
        "base": "main",
        "body": "## Summary\n\nAdds `answer()`.",
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Mock::given(method("POST"))
        .and(path(PULLS))
        .and(body_json(body))
        .respond_with(ResponseTemplate::new(201).set_body_json(fork_pull_request(owner)))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_fork_pull_request_is_created_with_head_forkowner_branch() {
    let server = MockServer::start().await;
    mount_list_of(&server, &format!("bot:{HEAD}"), json!([]), None).await;
    expect_fork_create(&server, "bot", json!({})).await;
    let (pr, created) = fork_client(&server, "bot/r")
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert!(created);
    assert_eq!(pr, created_pr());
    assert_eq!(
        requests(&server).await,
        [format!("GET {PULLS}"), format!("POST {PULLS}")]
    );
}

#[tokio::test]
async fn a_fork_of_the_targets_owner_also_names_head_repo() {
    let server = MockServer::start().await;
    mount_list_of(&server, &format!("o:{HEAD}"), json!([]), None).await;
    expect_fork_create(&server, "o", json!({"head_repo": "r-fork"})).await;
    let (_, created) = fork_client(&server, "o/r-fork")
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert!(created);
}

#[tokio::test]
async fn an_open_fork_pull_request_is_adopted_without_a_second_post() {
    let server = MockServer::start().await;
    mount_list_of(
        &server,
        &format!("bot:{HEAD}"),
        json!([fork_pull_request("bot")]),
        None,
    )
    .await;
    mount_create(&server, ResponseTemplate::new(500), None).await;
    let (pr, created) = fork_client(&server, "bot/r")
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(!created);
    assert_eq!(requests(&server).await, [format!("GET {PULLS}")]);
}

#[tokio::test]
async fn a_fork_pull_request_raced_into_existence_is_adopted_after_422() {
    let server = MockServer::start().await;
    // Listed empty first; then the PR another attempt made is there.
    mount_list_of(&server, &format!("bot:{HEAD}"), json!([]), Some(1)).await;
    mount_list_of(
        &server,
        &format!("bot:{HEAD}"),
        json!([fork_pull_request("bot")]),
        None,
    )
    .await;
    mount_create(&server, already_exists(), None).await;
    let (pr, created) = fork_client(&server, "bot/r")
        .ensure_pull_request(&new_pr())
        .await
        .expect("ensure");
    assert_eq!(pr, created_pr());
    assert!(!created);
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}")
        ],
        "exactly one POST"
    );
}

#[tokio::test]
async fn a_head_repository_must_be_owner_name() {
    let server = MockServer::start().await;
    for bad in ["bot", "bot/", "bot/r/x"] {
        let err = client(&server)
            .with_head_repository(bad)
            .expect_err("accepted");
        assert!(matches!(err, GitHubError::Config(_)), "{bad}: {err}");
    }
}
