//! Test fixtures shared by the integration tests: real git repositories in temp dirs, a fake
//! Anthropic Messages API and a fake GitHub REST API (wiremock, answering as the documented
//! APIs do), and the URL of the per-test database for child processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

mod conversation;
mod issues;

pub use conversation::{DAEMON_LOGIN, Talk};

/// Says that test `test` is skipped and why, on the test binary's real stderr: libtest captures
/// only `print!`/`eprint!`, so the line shows in every run's output, never only with
/// `--nocapture`. The test then returns.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The name libtest knows the test `test` of module `module` (its `module_path!()`) by, for
/// re-running this binary with `--exact`: the module path without the crate, e.g.
/// `verify::child` for `it::verify` and `child`.
pub fn exact_name(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    }
}

/// A claimed task `phase1-001` with `description`, as the pipeline hands it to the roles.
pub fn in_progress_task(description: &str) -> autonomous_dev::task::Task {
    use autonomous_dev::task::{Task, TaskStatus};
    Task {
        id: 1,
        task_id: "phase1-001".into(),
        description: description.into(),
        status: TaskStatus::InProgress,
        priority: 0,
        labels: vec![],
        attempts: 1,
        created_at: Default::default(),
        updated_at: Default::default(),
        started_at: None,
        completed_at: None,
        pr_url: None,
        consensus_score: None,
        result: None,
        error: None,
        approved_by: None,
        pr_state: None,
        pr_state_at: None,
        issue_number: None,
        reviewers: vec![],
        queue: Default::default(),
    }
}

/// The outcome of an approved task with PR #1 on `feature/task-t`, consensus `score`.
pub fn approved_outcome(score: f64) -> autonomous_dev::task::Outcome {
    use autonomous_dev::task::{
        BranchCommit, Consensus, Decision, Outcome, Publication, PullRequestRef,
    };
    Outcome::Approved {
        consensus: Consensus {
            score,
            decision: Decision::Approved,
            votes: Vec::new(),
            held: Vec::new(),
        },
        branch: BranchCommit {
            branch: "feature/task-t".to_string(),
            commit: "0".repeat(40),
            pushed: true,
            reused: false,
        },
        publication: Publication::Opened(PullRequestRef {
            number: 1,
            url: "https://github.com/o/r/pull/1".to_string(),
            labels: vec!["autonomous".to_string()],
        }),
    }
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after `limit`. The tests' one
/// way to wait: on something they can observe, never a fixed sleep.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the boolean query `sql` answers true (false while the database is unreachable).
pub async fn holds(pool: &PgPool, sql: &'static str) -> bool {
    sqlx::query_scalar::<_, bool>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

/// Runs `git` with `args` in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A bare `origin` with one commit on `main` and a clone of it (the user's checkout).
pub struct Remote {
    pub dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub clone: PathBuf,
}

impl Remote {
    /// The default target: a README and a Go file, no test command to detect.
    pub fn new() -> Remote {
        Remote::with_files(&[
            ("README.md", "# target\n"),
            ("src/main.go", "package main\n\nfunc main() {}\n"),
        ])
    }

    /// A target whose one commit holds `files` (path, content).
    pub fn with_files(files: &[(&str, &str)]) -> Remote {
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = dir.path().join("origin.git");
        let seed = dir.path().join("seed");
        let clone = dir.path().join("clone");
        std::fs::create_dir_all(&seed).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&seed, &["init", "-q", "-b", "main"]);
        for (path, content) in files {
            let path = seed.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", "initial"]);
        git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        git(
            dir.path(),
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        );
        Remote { dir, bare, clone }
    }

    /// Branch names on the remote (`feature/task-…`), sorted.
    pub fn branches(&self) -> Vec<String> {
        let out = git(
            &self.bare,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads/"],
        );
        let mut branches: Vec<String> = out.lines().map(str::to_owned).collect();
        branches.sort();
        branches
    }
}

/// DATABASE_URL of the database `#[sqlx::test]` made for this test (for a child process).
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let mut url = reqwest::Url::parse(&base).expect("DATABASE_URL is a URL");
    let db = pool
        .connect_options()
        .get_database()
        .expect("test database name")
        .to_owned();
    url.set_path(&db);
    url.to_string()
}

/// What the fake model answers for a task, chosen by its task_id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Script {
    /// Scores 90/85/80 and a clean rubric (70): consensus 81.25, approved.
    Approve,
    /// Scores 70/70/70 (and 70): needs_review.
    Conditional,
    /// Scores 40/40/40 (and 70): 47.5, rejected.
    Reject,
    /// The PM votes reject.
    PmReject,
}

/// The wire format a [`FakeModel`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Anthropic's Messages API (`POST /v1/messages`).
    Anthropic,
    /// OpenAI's Chat Completions API (`POST /v1/chat/completions`).
    OpenAi,
}

/// A fake model API: answers each role's forced tool with a valid tool call whose content
/// follows the task's [`Script`] (`script` maps a task_id to its script), in the documented
/// response format of its [`Wire`].
pub struct FakeModel {
    pub server: MockServer,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeModel {
    /// An Anthropic fake answering at once.
    pub async fn start(script: fn(&str) -> Script) -> FakeModel {
        FakeModel::serve(Wire::Anthropic, script, Duration::ZERO).await
    }

    /// Like [`FakeModel::start`], each answer taking `delay`.
    pub async fn start_slow(script: fn(&str) -> Script, delay: Duration) -> FakeModel {
        FakeModel::serve(Wire::Anthropic, script, delay).await
    }

    /// A fake of `wire`, each answer taking `delay`.
    pub async fn serve(wire: Wire, script: fn(&str) -> Script, delay: Duration) -> FakeModel {
        let server = MockServer::start().await;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let endpoint = match wire {
            Wire::Anthropic => "/v1/messages",
            Wire::OpenAi => "/v1/chat/completions",
        };
        Mock::given(method("POST"))
            .and(path(endpoint))
            .respond_with(ModelResponder {
                wire,
                script,
                delay,
                requests: requests.clone(),
            })
            .mount(&server)
            .await;
        FakeModel { server, requests }
    }

    /// Number of requests for the forced tool `tool`.
    pub fn calls_to(&self, tool: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| requested_tool(r) == tool)
            .count()
    }
}

/// The tool a request asks for, in either wire format: the forced one, or — when the model may
/// choose (Anthropic's `tool_choice: {"type": "any"}`, with prompt caching or look-ups;
/// OpenAI's `"required"`, with look-ups) — the one the first user message tells it to call, as
/// a model following its instructions would.
pub fn requested_tool(body: &Value) -> &str {
    let choice = &body["tool_choice"];
    if let Some(name) = choice["name"]
        .as_str()
        .or_else(|| choice["function"]["name"].as_str())
    {
        return name;
    }
    let texts: Vec<&str> = if choice == "required" {
        // OpenAI: the system message, then the user message's text.
        vec![body["messages"][1]["content"].as_str().expect("user text")]
    } else {
        assert_eq!(choice["type"], "any", "{choice}");
        let first = body["messages"][0]["content"]
            .as_array()
            .expect("content blocks");
        first
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect()
    };
    texts
        .into_iter()
        .find_map(|text| {
            let (_, rest) = text.split_once("Give your answer by calling the `")?;
            rest.split_once('`').map(|(tool, _)| tool)
        })
        .expect("the user message names the tool to call")
}

/// Matches requests that ask for `tool` ([`requested_tool`]).
pub struct RequestsTool(pub String);

impl wiremock::Match for RequestsTool {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<Value>(&request.body)
            .is_ok_and(|body| requested_tool(&body) == self.0)
    }
}

struct ModelResponder {
    wire: Wire,
    script: fn(&str) -> Script,
    delay: Duration,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Respond for ModelResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON request");
        let tool = requested_tool(&body).to_owned();
        let first_user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .expect("a user message");
        let task_id = task_id_in(&first_user["content"].to_string());
        let input = answer(&tool, &task_id, (self.script)(&task_id));
        self.requests.lock().unwrap().push(body);
        let response = match self.wire {
            Wire::Anthropic => json!({
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": tool, "input": input}],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 1200, "output_tokens": 300,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            }),
            Wire::OpenAi => json!({
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion",
                "created": 1741569952,
                "model": "local-model",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [{"id": "call_abc123", "type": "function",
                                        "function": {"name": tool, "arguments": input.to_string()}}]
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
            }),
        };
        ResponseTemplate::new(200)
            .set_delay(self.delay)
            .set_body_json(response)
    }
}

/// The first `phase1-NNN`-like task id in the rendered prompt (`id="…"` attribute).
fn task_id_in(text: &str) -> String {
    let start = text
        .find("id=\\\"")
        .map(|i| i + 5)
        .or_else(|| text.find("id=\"").map(|i| i + 4));
    let start = start.expect("task id attribute in the prompt");
    let rest = &text[start..];
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect()
}

/// The tool input the fake model answers `tool` with for `task_id` under `script`.
pub fn answer(tool: &str, task_id: &str, script: Script) -> Value {
    let score = match script {
        Script::Approve => [90, 85, 80],
        Script::Conditional => [70, 70, 70],
        Script::Reject | Script::PmReject => [40, 40, 40],
    };
    match tool {
        "submit_prd" => json!({
            "prd": format!("PRD for {task_id}"),
            "acceptance_criteria": ["it builds", "it is tested"],
            "vote": if script == Script::PmReject { "reject" } else { "approve" },
            "rationale": "clear scope"
        }),
        "submit_design" => json!({
            "design": "one new file", "components": ["feature"], "files": ["README.md"],
            "risks": ["none"], "score": score[0], "rationale": "simple design"
        }),
        "submit_implementation" => json!({
            "summary": format!("implements {task_id}"),
            "files": [{"path": format!("docs/{task_id}.md"), "content": format!("# {task_id}\n")}],
            "score": score[1], "rationale": "complete"
        }),
        "submit_review" => json!({
            "review": "looks right", "test_plan": ["run it"], "edge_cases": ["empty input"],
            "test_files": [{"path": format!("tests/{task_id}_test.go"), "content": "package tests\n"}],
            "score": score[2], "rationale": "tested"
        }),
        "submit_security_review" => json!({
            "introduces_privilege_escalation": false,
            "destructive_operations_without_safeguards": false,
            "unvalidated_external_api": false,
            "missing_audit_logging": false,
            "encryption_at_rest_and_in_transit": false,
            "advanced_audit_logging": false,
            "findings": [],
            "rationale": "no new risk"
        }),
        other => panic!("unexpected tool {other}"),
    }
}

/// A fake Anthropic Messages API whose answers the test programs: `answer(tool, n)` is the tool
/// input of the `n`-th call (0-based) forcing `tool`, and every answer reports `usage` (an
/// Anthropic `usage` object).
pub struct ScriptedModel {
    pub server: MockServer,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

type AnswerFn = dyn Fn(&Value, &str, usize) -> (String, Value) + Send + Sync;

impl ScriptedModel {
    pub async fn start(
        answer: impl Fn(&str, usize) -> Value + Send + Sync + 'static,
        usage: Value,
    ) -> ScriptedModel {
        ScriptedModel::start_calls(move |_, tool, n| (tool.to_owned(), answer(tool, n)), usage)
            .await
    }

    /// A model that may call any tool the request allows: `answer(body, tool, n)` gives the
    /// tool called and its input for the `n`-th request (0-based) asking for role tool `tool`
    /// (a look-up's follow-up asks for it too). As Anthropic's API, it answers 400
    /// `invalid_request_error` to a call the request does not allow (a tool not offered, or
    /// not the one `tool_choice` forces) and to a `tool_result` that answers no `tool_use` of
    /// the turn before.
    pub async fn start_calls(
        answer: impl Fn(&Value, &str, usize) -> (String, Value) + Send + Sync + 'static,
        usage: Value,
    ) -> ScriptedModel {
        let server = MockServer::start().await;
        let requests = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ScriptedResponder {
                answer: Arc::new(answer),
                usage,
                requests: requests.clone(),
            })
            .mount(&server)
            .await;
        ScriptedModel { server, requests }
    }

    /// The requests that forced `tool`, in order.
    pub fn requests_to(&self, tool: &str) -> Vec<Value> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| requested_tool(r) == tool)
            .cloned()
            .collect()
    }
}

struct ScriptedResponder {
    answer: Arc<AnswerFn>,
    usage: Value,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Respond for ScriptedResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON request");
        let tool = requested_tool(&body).to_owned();
        let n = {
            let mut requests = self.requests.lock().unwrap();
            let n = requests
                .iter()
                .filter(|r| requested_tool(r) == tool)
                .count();
            requests.push(body.clone());
            n
        };
        if let Some(error) = unanswered_tool_result(&body) {
            return invalid_request(&error);
        }
        let (called, input) = (self.answer)(&body, &tool, n);
        let offered = body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["name"] == called));
        let choice = &body["tool_choice"];
        if !offered || (choice["type"] == "tool" && choice["name"] != called) {
            return invalid_request(&format!("the model cannot call `{called}` here: {choice}"));
        }
        let id = format!(
            "toolu_{n}_{}",
            body["messages"].as_array().map_or(0, Vec::len)
        );
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "tool_use", "id": id, "name": called, "input": input}],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": self.usage
        }))
    }
}

/// Anthropic's documented 400 `invalid_request_error` with `message`.
fn invalid_request(message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message}
    }))
}

/// Why `body` is invalid for Anthropic's Messages API because a `tool_result` block does not
/// answer a `tool_use` block of the assistant turn right before it; `None` when all do.
fn unanswered_tool_result(body: &Value) -> Option<String> {
    let turns = body["messages"].as_array()?;
    for (i, turn) in turns.iter().enumerate() {
        let results = turn["content"].as_array().into_iter().flatten();
        for block in results.filter(|b| b["type"] == "tool_result") {
            let id = &block["tool_use_id"];
            let answered = i > 0
                && turns[i - 1]["role"] == "assistant"
                && turns[i - 1]["content"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_use" && &b["id"] == id));
            if !answered {
                return Some(format!(
                    "messages.{i}: unexpected `tool_use_id` {id} in `tool_result` blocks"
                ));
            }
        }
    }
    None
}

/// A fake GitHub REST API for repository `o/r`: creates pull requests (numbered from 1), lists
/// the open ones (`GET /pulls?state=open&head=o:<branch>`, as created here), gets one
/// (`GET /pulls/{number}`, with an ETag and a 304 for a matching If-None-Match, as GitHub's
/// conditional requests) and adds labels, answering with GitHub's documented response shapes.
pub struct FakeGitHub {
    pub server: MockServer,
    /// Pull requests created so far (GitHub's objects); open unless [`FakeGitHub::set_state`].
    pub open: Arc<Mutex<Vec<Value>>>,
    /// `GET /pulls/{number}` answers so far: (200s, 304s).
    pub gets: Arc<Mutex<(u32, u32)>>,
    /// The PRs' conversations (`conversation.rs`).
    pub talk: Arc<Mutex<Talk>>,
    /// The repository's issues (`issues.rs`).
    pub tracker: Arc<Mutex<issues::Tracker>>,
}

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        FakeGitHub::start_slow_create(Duration::ZERO).await
    }

    /// Like [`FakeGitHub::start`], but "Create a pull request" answers only after `delay` — the
    /// PR exists (and is listed) from the moment the request arrives.
    pub async fn start_slow_create(delay: Duration) -> FakeGitHub {
        let server = MockServer::start().await;
        let uri = server.uri();
        let open = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(PullResponder {
                uri,
                delay,
                next: Mutex::new(1),
                open: open.clone(),
            })
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(ListResponder { open: open.clone() })
            .mount(&server)
            .await;
        let gets = Arc::new(Mutex::new((0, 0)));
        Mock::given(method("GET"))
            .and(path_regex(r"^/repos/o/r/pulls/\d+$"))
            .respond_with(GetResponder {
                open: open.clone(),
                gets: gets.clone(),
            })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/repos/o/r/issues/\d+/labels$"))
            .respond_with(|request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let labels: Vec<Value> = body["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .map(|(i, name)| json!({
                        "id": 208045946 + i, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
                        "url": format!("https://api.github.com/repos/o/r/labels/{}", name.as_str().unwrap()),
                        "name": name, "description": null, "color": "f29513", "default": false
                    }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(labels)
            })
            .mount(&server)
            .await;
        // "Request reviewers for a pull request": 201 with the pull request.
        let requested = open.clone();
        Mock::given(method("POST"))
            .and(path_regex(r"^/repos/o/r/pulls/\d+/requested_reviewers$"))
            .respond_with(move |request: &Request| {
                let number: u64 = request
                    .url
                    .path()
                    .split('/')
                    .nth(5)
                    .unwrap()
                    .parse()
                    .unwrap();
                let open = requested.lock().unwrap();
                match open.iter().find(|pr| pr["number"] == number) {
                    Some(pr) => ResponseTemplate::new(201).set_body_json(pr),
                    None => {
                        ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}))
                    }
                }
            })
            .mount(&server)
            .await;
        let talk = conversation::mount(&server, open.clone()).await;
        let tracker = issues::mount(&server).await;
        FakeGitHub {
            server,
            open,
            gets,
            talk,
            tracker,
        }
    }

    /// Merges (`"merged"`) or closes (`"closed"`) pull request `number`, as GitHub shows it
    /// afterwards: `state` closed, `closed_at` set, and `merged`/`merged_at` for a merge.
    pub fn set_state(&self, number: u64, state: &str) {
        let mut open = self.open.lock().unwrap();
        let pr = open
            .iter_mut()
            .find(|pr| pr["number"] == number)
            .expect("a pull request created here");
        pr["state"] = json!("closed");
        pr["closed_at"] = json!("2026-12-01T10:00:00Z");
        pr["updated_at"] = json!("2026-12-01T10:00:00Z");
        if state == "merged" {
            pr["merged"] = json!(true);
            pr["merged_at"] = json!("2026-12-01T10:00:00Z");
        }
    }

    /// Number of `GET /pulls` (list) requests.
    pub async fn lists(&self) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path() == "/repos/o/r/pulls")
            .count()
    }

    /// Bodies of the pull requests created, in order.
    pub async fn pulls(&self) -> Vec<Value> {
        self.bodies("/repos/o/r/pulls").await
    }

    /// (issue number, labels) of every add-labels request, in order.
    pub async fn labels(&self) -> Vec<(u64, Vec<String>)> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.url.path().ends_with("/labels"))
            .map(|r| {
                let number = r.url.path().split('/').nth(5).unwrap().parse().unwrap();
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                let labels = body["labels"].as_array().unwrap();
                (
                    number,
                    labels
                        .iter()
                        .map(|l| l.as_str().unwrap().to_owned())
                        .collect(),
                )
            })
            .collect()
    }

    async fn bodies(&self, p: &str) -> Vec<Value> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == p)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

impl FakeGitHub {
    /// Also serves the bare repositories under `root` (e.g. `root/bot/r.git`) over git's smart
    /// HTTP at `/<owner>/<name>.git/…` of this server — the clone URL PUSH_REPOSITORY's
    /// `owner/name` derives from a test server's GITHUB_API_URL — as [`mount_git`] does.
    pub async fn serve_git(&self, root: &Path, token: &str) {
        mount_git(&self.server, r"^/[^/]+/[^/]+\.git/", root, token).await;
    }

    /// Requests to git's smart HTTP under `/<owner>/<name>.git/` that carried the token.
    pub async fn git_requests(&self) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.url.path().contains(".git/") && r.headers.contains_key("authorization"))
            .count()
    }
}

/// Serves the bare repositories under `root` over git's smart HTTP (`git http-backend`) at the
/// paths matching `paths` of `server`, to clients presenting HTTP basic
/// `x-access-token:<token>`; others get 401 with a `WWW-Authenticate` challenge, as GitHub
/// answers.
pub async fn mount_git(server: &MockServer, paths: &str, root: &Path, token: &str) {
    Mock::given(path_regex(paths))
        .and(wiremock::matchers::basic_auth(TOKEN_USER, token))
        .respond_with(GitBackend {
            root: root.to_owned(),
        })
        .with_priority(2)
        .mount(server)
        .await;
    Mock::given(path_regex(paths))
        .respond_with(
            ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"git\""),
        )
        .with_priority(3)
        .mount(server)
        .await;
}

/// User name of the token in HTTP basic auth, as GitHub expects it.
const TOKEN_USER: &str = "x-access-token";

/// A smart-HTTP git server for blocking tests: [`mount_git`] on a wiremock server bound to a
/// given local address, on a runtime of its own (it serves as long as it lives).
pub struct GitServer {
    runtime: tokio::runtime::Runtime,
    server: MockServer,
    token: String,
    pub address: std::net::SocketAddr,
}

impl GitServer {
    /// Serves the repositories under `root` on 127.0.0.1 to clients presenting `token`.
    pub fn start(root: &Path, token: &str) -> GitServer {
        GitServer::start_on(std::net::Ipv4Addr::LOCALHOST.into(), root, token)
    }

    /// Serves the repositories under `root` on `ip` to clients presenting `token`.
    pub fn start_on(ip: std::net::IpAddr, root: &Path, token: &str) -> GitServer {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let address = listener.local_addr().expect("address");
        let server = runtime.block_on(async {
            let server = MockServer::builder().listener(listener).start().await;
            mount_git(&server, r"\.git/", root, token).await;
            server
        });
        GitServer {
            runtime,
            server,
            token: token.to_owned(),
            address,
        }
    }

    /// Runs `hook` once, when the first authorized push asks for the refs (`GET
    /// …/info/refs?service=git-receive-pack`), before answering it: what another client's
    /// push between the daemon's read of a branch and its push looks like.
    pub fn before_first_push(&self, root: &Path, hook: impl Fn() + Send + Sync + 'static) {
        let mock = Mock::given(path_regex(r"/info/refs$"))
            .and(wiremock::matchers::query_param(
                "service",
                "git-receive-pack",
            ))
            .and(wiremock::matchers::basic_auth(TOKEN_USER, &self.token))
            .respond_with(Hooked {
                hook: Box::new(hook),
                backend: GitBackend {
                    root: root.to_owned(),
                },
            })
            .up_to_n_times(1)
            .with_priority(1);
        self.runtime.block_on(mock.mount(&self.server));
    }

    /// How many requests were answered 401 (no or wrong credentials).
    pub fn unauthorized(&self) -> usize {
        self.count(|authorized| !authorized)
    }

    /// How many requests carried the token.
    pub fn authorized(&self) -> usize {
        self.count(|authorized| authorized)
    }

    fn count(&self, which: impl Fn(bool) -> bool) -> usize {
        let requests = self.runtime.block_on(self.server.received_requests());
        let expected = format!("{TOKEN_USER}:{}", self.token);
        requests
            .unwrap_or_default()
            .iter()
            .filter(|r| which(basic_auth(r).as_deref() == Some(expected.as_str())))
            .count()
    }
}

/// The `user:password` of a request's HTTP basic `Authorization` header, if any.
fn basic_auth(request: &Request) -> Option<String> {
    use base64::Engine;
    let value = request.headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(decoded).ok()
}

/// `git http-backend` (CGI) answering one smart-HTTP request for the repositories under `root`.
struct GitBackend {
    root: PathBuf,
}

impl Respond for GitBackend {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        use std::io::Write;
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut command = Command::new("git");
        command
            .arg("http-backend")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", request.url.path())
            .env("REQUEST_METHOD", request.method.as_str())
            .env("QUERY_STRING", request.url.query().unwrap_or(""))
            .env("CONTENT_LENGTH", request.body.len().to_string())
            .env("REMOTE_USER", "x-access-token")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (name, variable) in [
            ("content-type", "CONTENT_TYPE"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ("git-protocol", "GIT_PROTOCOL"),
        ] {
            if let Some(value) = header(name) {
                command.env(variable, value);
            }
        }
        let mut child = command.spawn().expect("git http-backend");
        let mut stdin = child.stdin.take().expect("stdin");
        let body = request.body.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let output = child.wait_with_output().expect("http-backend output");
        let _ = writer.join();
        cgi_response(&output.stdout)
    }
}

/// Runs a hook, then answers as [`GitBackend`].
struct Hooked {
    hook: Box<dyn Fn() + Send + Sync>,
    backend: GitBackend,
}

impl Respond for Hooked {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        (self.hook)();
        self.backend.respond(request)
    }
}

/// A CGI answer (`Status:` and headers, a blank line, the body) as a response.
fn cgi_response(cgi: &[u8]) -> ResponseTemplate {
    let find = |needle: &[u8]| cgi.windows(needle.len()).position(|w| w == needle);
    let (head, body) = match find(b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(b"\n\n").map(|i| (i, 2)))
    {
        Some((i, separator)) => (&cgi[..i], &cgi[i + separator..]),
        None => (&cgi[..0], cgi),
    };
    let head = String::from_utf8_lossy(head);
    let mut status = 200u16;
    let mut headers = Vec::new();
    for line in head.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("status") {
                status = value
                    .trim()
                    .split(' ')
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(500);
            } else {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    let mut response = ResponseTemplate::new(status);
    for (name, value) in headers {
        response = response.insert_header(name.as_str(), value.as_str());
    }
    response.set_body_bytes(body.to_vec())
}

struct PullResponder {
    uri: String,
    delay: Duration,
    next: Mutex<u64>,
    open: Arc<Mutex<Vec<Value>>>,
}

/// Lists the open pull requests, filtered by the `head` query (`o:<branch>`) when given.
struct ListResponder {
    open: Arc<Mutex<Vec<Value>>>,
}

/// Gets one pull request as GitHub's "Get a pull request" does: 200 with the object, its
/// `ETag` and the rate-limit headers; 304 with the `ETag` and no body when If-None-Match
/// matches (a 304 does not count against the rate limit); 404 for an unknown number.
struct GetResponder {
    open: Arc<Mutex<Vec<Value>>>,
    gets: Arc<Mutex<(u32, u32)>>,
}

impl Respond for GetResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        use std::hash::{Hash, Hasher};
        let number: u64 = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let open = self.open.lock().unwrap();
        let Some(pr) = open.iter().find(|pr| pr["number"] == number) else {
            return ResponseTemplate::new(404).set_body_json(json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#get-a-pull-request",
                "status": "404"
            }));
        };
        let body = pr.to_string();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        let etag = format!("W/\"{:016x}\"", hasher.finish());
        let mut gets = self.gets.lock().unwrap();
        let matches = request
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            == Some(etag.as_str());
        if matches {
            gets.1 += 1;
        } else {
            gets.0 += 1;
        }
        let response = ResponseTemplate::new(if matches { 304 } else { 200 })
            .insert_header("etag", etag.as_str())
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header(
                "x-ratelimit-remaining",
                (5000 - gets.0).to_string().as_str(),
            )
            .insert_header("x-ratelimit-used", gets.0.to_string().as_str())
            .insert_header("x-ratelimit-resource", "core");
        if matches {
            response
        } else {
            response.set_body_raw(body, "application/json; charset=utf-8")
        }
    }
}

impl Respond for ListResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let head = request
            .url
            .query_pairs()
            .find(|(key, _)| key == "head")
            .map(|(_, value)| value.into_owned());
        let open = self.open.lock().unwrap();
        let matching: Vec<Value> = open
            .iter()
            .filter(|pr| pr["state"] == "open")
            .filter(|pr| match &head {
                Some(head) => pr["head"]["label"].as_str() == Some(head.as_str()),
                None => true,
            })
            .cloned()
            .collect();
        ResponseTemplate::new(200).set_body_json(matching)
    }
}

impl Respond for PullResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let number = {
            let mut next = self.next.lock().unwrap();
            *next += 1;
            *next - 1
        };
        let pr = pull_request(&self.uri, number, &body);
        self.open.lock().unwrap().push(pr.clone());
        ResponseTemplate::new(201)
            .set_delay(self.delay)
            .set_body_json(pr)
    }
}

/// A pull request object as GitHub's "Create a pull request" documents it (201 response).
pub fn pull_request(api: &str, number: u64, request: &Value) -> Value {
    let fixture = include_str!("../../fixtures/github/pull_request.json");
    let mut pr: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    pr["number"] = json!(number);
    pr["url"] = json!(format!("{api}/repos/o/r/pulls/{number}"));
    pr["html_url"] = json!(format!("https://github.com/o/r/pull/{number}"));
    pr["title"] = request["title"].clone();
    pr["body"] = request["body"].clone();
    // `head` is `branch` of o/r, or `owner:branch` of a fork (GitHub's label is `owner:branch`).
    if let Some(head) = request["head"].as_str() {
        let (owner, branch) = head.split_once(':').unwrap_or(("o", head));
        pr["head"]["ref"] = json!(branch);
        pr["head"]["label"] = json!(format!("{owner}:{branch}"));
    }
    pr["base"]["ref"] = request["base"].clone();
    // Open, as a new PR is (the documented example shows every timestamp set).
    pr["state"] = json!("open");
    pr["merged"] = json!(false);
    pr["merged_at"] = Value::Null;
    pr["closed_at"] = Value::Null;
    pr
}

/// The `autonomous-dev` binary with a clean environment pointing at the test's database,
/// repository and fakes (secrets are recognisable strings a test can look for in output).
pub struct Bin {
    dir: PathBuf,
    envs: Vec<(String, String)>,
}

/// GITHUB_TOKEN given to the binary under test.
pub const GITHUB_TOKEN: &str = "ghp_e2eSecretToken0000000000000000000000";
/// ANTHROPIC_API_KEY given to the binary under test.
pub const ANTHROPIC_API_KEY: &str = "sk-ant-e2eSecretKey";

impl Bin {
    pub fn new(database_url: &str, remote: &Remote, model_uri: &str, github_uri: &str) -> Bin {
        let cache = remote.dir.path().join("cache");
        let envs = [
            ("DATABASE_URL", database_url),
            ("REPO_PATH", remote.clone.to_str().unwrap()),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_TOKEN", GITHUB_TOKEN),
            ("GITHUB_API_URL", github_uri),
            ("ANTHROPIC_API_KEY", ANTHROPIC_API_KEY),
            ("ANTHROPIC_BASE_URL", model_uri),
            ("RUST_LOG", "info"),
            // Most targets here have no check command; tests/it/hostile/check.rs covers the hold.
            ("VERIFY_OPTIONAL", "true"),
            ("VERIFY_CACHE_DIR", cache.to_str().unwrap()),
        ];
        Bin {
            dir: remote.dir.path().to_owned(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A copy with `key` set to `value`.
    pub fn clone_with(&self, key: &str, value: &str) -> Bin {
        let mut bin = self.clone_without(key);
        bin.envs.push((key.into(), value.into()));
        bin
    }

    /// A copy without `key`.
    pub fn clone_without(&self, key: &str) -> Bin {
        let envs = self
            .envs
            .iter()
            .filter(|(k, _)| k != key)
            .cloned()
            .collect();
        Bin {
            dir: self.dir.clone(),
            envs,
        }
    }

    /// The command, ready to spawn.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_autonomous-dev"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs to completion and returns the output.
    pub async fn output(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().await.expect("binary runs")
    }

    /// `run --once`, which must succeed; its stderr (the log).
    pub async fn run_once(&self) -> String {
        let out = self.output(&["run", "--once"]).await;
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stderr
    }
}

/// Makes every PR due for the PR watch's next look, as PR_POLL_SECONDS passing would.
pub async fn make_prs_due(pool: &PgPool) {
    sqlx::query("UPDATE tasks SET pr_checked_at = now() - interval '1 hour'")
        .execute(pool)
        .await
        .unwrap();
}

/// Runs `bin` with `args`; (success, stdout, stderr).
pub async fn cli(bin: &Bin, args: &[&str]) -> (bool, String, String) {
    let out = bin.output(args).await;
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// Migrates the database and adds one task `task_id` ("Write the docs", priority 1).
pub async fn migrate_and_add(bin: &Bin, task_id: &str) {
    let out = bin.output(&["migrate"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let add = [
        "tasks",
        "add",
        "--id",
        task_id,
        "--priority",
        "1",
        "Write the docs",
    ];
    let out = bin.output(&add).await;
    assert!(out.status.success(), "{:?}", text(&out));
}

/// The daemon binary against a target `remote`, a [`ScriptedModel`] and a [`FakeGitHub`], with
/// one task added: the harness of the end-to-end evidence tests (`run --once`, then the task's
/// rows and the remote are looked at).
pub struct Deployment {
    pub remote: Remote,
    pub model: ScriptedModel,
    pub github: FakeGitHub,
    pub bin: Bin,
}

impl Deployment {
    /// Starts the fakes for `remote` (the model answering with `answer`, every answer reporting
    /// `usage`), sets `env` over [`Bin::new`]'s, migrates and adds task `task_id`.
    pub async fn start(
        pool: &PgPool,
        remote: Remote,
        answer: impl Fn(&str, usize) -> Value + Send + Sync + 'static,
        usage: Value,
        env: &[(&str, &str)],
        task_id: &str,
    ) -> Deployment {
        let model = ScriptedModel::start(answer, usage).await;
        Deployment::start_with(pool, remote, model, env, task_id).await
    }

    /// [`Deployment::start`] with a model already started (e.g. [`ScriptedModel::start_calls`]).
    pub async fn start_with(
        pool: &PgPool,
        remote: Remote,
        model: ScriptedModel,
        env: &[(&str, &str)],
        task_id: &str,
    ) -> Deployment {
        let github = FakeGitHub::start().await;
        let mut bin = Bin::new(
            &database_url(pool),
            &remote,
            &model.server.uri(),
            &github.server.uri(),
        );
        for (key, value) in env {
            bin = bin.clone_with(key, value);
        }
        migrate_and_add(&bin, task_id).await;
        Deployment {
            remote,
            model,
            github,
            bin,
        }
    }

    /// `run --once`, which must succeed; its stderr (the log).
    pub async fn run_once(&self) -> String {
        self.bin.run_once().await
    }

    /// True when the remote holds no branch but `main`.
    pub fn nothing_published(&self) -> bool {
        self.remote.branches() == ["main"]
    }
}

/// (stdout, stderr) as text.
pub fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl FakeModel {
    /// Makes the next `n` requests whose forced tool is `tool` (Anthropic wire) get `response`
    /// instead of an answer; later ones are answered as usual. Refused requests are not in
    /// [`FakeModel::requests`] (see [`FakeModel::refused`]).
    pub async fn refuse_first(&self, tool: &str, n: u64, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(RequestsTool(tool.to_owned()))
            .respond_with(response)
            .up_to_n_times(n)
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// Number of requests received (answered or refused).
    pub async fn received(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }

    /// Number of requests that were refused (received but not answered with a tool call).
    pub async fn refused(&self) -> usize {
        self.received().await - self.requests.lock().unwrap().len()
    }
}

/// Anthropic's 529 `overloaded_error`, as its docs show it.
pub fn anthropic_overloaded() -> ResponseTemplate {
    ResponseTemplate::new(529).set_body_json(json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"}
    }))
}

/// Anthropic's 429 `rate_limit_error` with `retry-after: <seconds>`, as its docs show it.
pub fn anthropic_rate_limited(retry_after_s: u64) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", retry_after_s.to_string().as_str())
        .insert_header("anthropic-ratelimit-requests-remaining", "0")
        .set_body_json(json!({
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "Number of request tokens has exceeded your per-minute rate limit"
            }
        }))
}

impl FakeGitHub {
    /// Makes the next `n` requests `verb path_pattern` (a regex over the path) get `response`;
    /// later ones are served as usual.
    pub async fn refuse_first(
        &self,
        verb: &str,
        path_pattern: &str,
        n: u64,
        response: ResponseTemplate,
    ) {
        Mock::given(method(verb))
            .and(path_regex(path_pattern))
            .respond_with(response)
            .up_to_n_times(n)
            .with_priority(1)
            .mount(&self.server)
            .await;
    }
}

/// A running child (`run`) whose stderr is collected as it is written — a busy daemon never
/// blocks on a full pipe, and a test can wait for a log line while it runs.
pub struct Running {
    pub child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Spawns `bin args` (stdout discarded).
    pub fn spawn(bin: &Bin, args: &[&str]) -> Running {
        use tokio::io::AsyncBufReadExt;
        let mut command = bin.command(args);
        command.stdout(std::process::Stdio::null());
        let mut child = command.spawn().expect("binary starts");
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("not reaped yet")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Occurrences of `needle` in stderr so far.
    pub fn count(&self, needle: &str) -> usize {
        self.stderr.lock().unwrap().matches(needle).count()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM");
    }

    /// SIGTERM, then the exit status (within 30 s) and the whole stderr.
    pub async fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.sigterm();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits within 30 s of SIGTERM")
            .expect("wait");
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader).await;
        (status, self.stderr())
    }
}

/// A PostgreSQL cluster of the test's own (initdb in a temp dir, trust auth, listening on
/// 127.0.0.1:<free port> and a socket in its dir) that the test may stop and start. Stopped
/// (immediate mode) when dropped, so a failing test leaves no server behind.
pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl PgCluster {
    /// initdb and start; panics with the tool's output when PostgreSQL is not installed.
    pub fn start_new() -> PgCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let cluster = PgCluster { dir, port };
        if is_root() {
            // initdb refuses to run as root: the cluster belongs to the `postgres` user.
            run_checked(Command::new("chown").args(["postgres:", cluster.dir_str()]));
        }
        run_checked(as_postgres("initdb").args([
            "--no-sync",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
            &cluster.data(),
        ]));
        cluster.start();
        cluster
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir_str()
        );
        let log = format!("{}/server.log", self.dir_str());
        run_checked(as_postgres("pg_ctl").args([
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
            "-s",
            "start",
        ]));
    }

    /// `pg_ctl stop -m fast`: sessions are terminated, the server is down when this returns.
    pub fn stop(&self) {
        run_checked(as_postgres("pg_ctl").args([
            "-D",
            &self.data(),
            "-m",
            "fast",
            "-w",
            "-s",
            "stop",
        ]));
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir_str())
    }

    fn dir_str(&self) -> &str {
        self.dir.path().to_str().expect("UTF-8 temp dir")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-s", "stop"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `program` run as the `postgres` user when this process is root, else as is.
fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn run_checked(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// What a [`RecordingMeter`] was asked or told, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Metered {
    /// `before_call` with the request about to be sent (also when refused).
    Before(autonomous_dev::llm::ToolRequest),
    /// `after_call` with the model, what the call cost and why it was made.
    After(
        String,
        autonomous_dev::task::Usage,
        autonomous_dev::task::CallKind,
    ),
}

/// A [`autonomous_dev::agents::Meter`] for tests: records every question and every report, and
/// allows calls up to `allow` (all of them when `None`); past that `before_call` refuses with
/// `MeterError::TaskBudget`.
#[derive(Debug, Default)]
pub struct RecordingMeter {
    pub allow: Option<usize>,
    pub log: Mutex<Vec<Metered>>,
}

impl RecordingMeter {
    /// Allows every call.
    pub fn new() -> RecordingMeter {
        RecordingMeter::default()
    }

    /// Allows the first `calls` calls, then refuses.
    pub fn allowing(calls: usize) -> RecordingMeter {
        RecordingMeter {
            allow: Some(calls),
            ..RecordingMeter::default()
        }
    }

    /// Everything asked and told so far, in order.
    pub fn log(&self) -> Vec<Metered> {
        self.log.lock().unwrap().clone()
    }

    /// The `after_call` reports, in order.
    pub fn recorded(&self) -> Vec<(String, autonomous_dev::task::Usage)> {
        self.log()
            .into_iter()
            .filter_map(|entry| match entry {
                Metered::After(model, usage, _) => Some((model, usage)),
                Metered::Before(_) => None,
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl autonomous_dev::agents::Meter for RecordingMeter {
    async fn before_call(
        &self,
        request: &autonomous_dev::llm::ToolRequest,
    ) -> Result<(), autonomous_dev::agents::MeterError> {
        let mut log = self.log.lock().unwrap();
        let asked = log
            .iter()
            .filter(|e| matches!(e, Metered::Before(_)))
            .count();
        log.push(Metered::Before(request.clone()));
        match self.allow {
            Some(allow) if asked >= allow => Err(autonomous_dev::agents::MeterError::TaskBudget(
                format!("test meter allows {allow} call(s)"),
            )),
            _ => Ok(()),
        }
    }

    async fn after_call(
        &self,
        model: &str,
        usage: autonomous_dev::task::Usage,
        kind: autonomous_dev::task::CallKind,
    ) -> Result<(), autonomous_dev::agents::MeterError> {
        self.log
            .lock()
            .unwrap()
            .push(Metered::After(model.to_owned(), usage, kind));
        Ok(())
    }
}
