//! Votes grounded in evidence, end to end through the binary (`run --once`), a real PostgreSQL,
//! a real target repository with a real test suite (Python's unittest behind a Makefile `test`
//! target, so the command is detected), the bubblewrap sandbox, and fakes of Anthropic and
//! GitHub: verification and repair, the deterministic gates against hostile implementations,
//! and the budget caps.

use crate::common;

use autonomous_dev::store::Store;
use autonomous_dev::task::Outcome;
use common::{Deployment, Remote, Script, text};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

const TASK: &str = "calc-1";

/// The target: `calc.add` with its tests, `make test` runs them.
fn target() -> Remote {
    Remote::with_files(&[
        ("Makefile", "test:\n\tpython3 -m unittest -q\n"),
        ("calc.py", "def add(a, b):\n    return a + b\n"),
        (
            "test_calc.py",
            "import unittest\n\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n    \
             def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n",
        ),
    ])
}

/// `subtract` as a search/replace edit of calc.py, right or wrong, with its test file whole.
fn subtract(correct: bool) -> Value {
    let body = if correct { "a - b" } else { "a + b" };
    json!({
        "summary": "adds calc.subtract",
        "edits": [{
            "path": "calc.py",
            "search": "    return a + b\n",
            "replace": format!("    return a + b\n\n\ndef subtract(a, b):\n    return {body}\n"),
        }],
        "files": [{
            "path": "test_subtract.py",
            "content": "import unittest\n\nimport calc\n\n\nclass SubtractTest(unittest.TestCase):\n    \
                        def test_subtract(self):\n        self.assertEqual(calc.subtract(5, 3), 2)\n",
        }],
        "score": 90,
        "rationale": "small and tested"
    })
}

/// A repair: `subtract`'s body (as [`subtract`]`(false)` wrote it) becomes `body`.
fn repair(body: &str) -> Value {
    json!({
        "summary": "fixes calc.subtract",
        "edits": [{
            "path": "calc.py",
            "search": "def subtract(a, b):\n    return a + b\n",
            "replace": format!("def subtract(a, b):\n    return {body}\n"),
        }],
        "score": 90,
        "rationale": "the test said subtract added"
    })
}

/// Approving answers for every role, `engineer(n)` for the Engineer's n-th answer; QA adds no
/// test file (so the Engineer's verification is the final one).
fn model(engineer: fn(usize) -> Value) -> impl Fn(&str, usize) -> Value + Send + Sync {
    move |tool, n| match tool {
        "submit_implementation" => engineer(n),
        "submit_review" => {
            let mut qa = common::answer(tool, TASK, Script::Approve);
            qa["test_files"] = json!([]);
            qa
        }
        _ => common::answer(tool, TASK, Script::Approve),
    }
}

fn usage(input_tokens: u64) -> Value {
    json!({"input_tokens": input_tokens, "output_tokens": 200,
           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

/// The daemon against [`target`], a scripted model (the Engineer's n-th answer `engineer(n)`,
/// every answer reporting `input_tokens`) and a fake GitHub, with `env` set and the task added.
async fn setup(
    pool: &PgPool,
    engineer: fn(usize) -> Value,
    input_tokens: u64,
    env: &[(&str, &str)],
) -> Deployment {
    Deployment::start(
        pool,
        target(),
        model(engineer),
        usage(input_tokens),
        env,
        TASK,
    )
    .await
}

/// The task's (status, error, result) as stored.
async fn status(pool: &PgPool) -> (String, Option<String>, Value) {
    let row = sqlx::query("SELECT status, error, result FROM tasks WHERE task_id = $1")
        .bind(TASK)
        .fetch_one(pool)
        .await
        .unwrap();
    (
        row.get("status"),
        row.get("error"),
        row.get::<Option<Value>, _>("result").unwrap_or_default(),
    )
}

/// The task's outcome as the store types it.
async fn outcome(pool: &PgPool) -> Outcome {
    let store = Store::from_pool(pool.clone());
    let task = store.get_task(TASK).await.unwrap().expect("the task");
    task.result.expect("an outcome")
}

async fn evidence(pool: &PgPool, stage: &str) -> Value {
    sqlx::query(
        "SELECT s.evidence FROM task_stages s JOIN tasks t ON t.id = s.task \
         WHERE t.task_id = $1 AND s.stage = $2",
    )
    .bind(TASK)
    .bind(stage)
    .fetch_one(pool)
    .await
    .unwrap()
    .get::<Option<Value>, _>("evidence")
    .expect("evidence recorded")
}

#[sqlx::test]
async fn a_correct_implementation_passes_verification_and_is_published(pool: PgPool) {
    let run = setup(&pool, |_| subtract(true), 1000, &[]).await;
    run.run_once().await;

    let (status, error, _) = status(&pool).await;
    assert_eq!((status.as_str(), error), ("completed", None));
    let engineer = evidence(&pool, "engineer").await;
    assert_eq!(engineer["verification"]["status"], "passed", "{engineer}");
    assert_eq!(engineer["verification"]["command"], "make test");
    assert_eq!(engineer["rounds"].as_array().unwrap().len(), 1);
    assert_eq!(run.model.requests_to("submit_implementation").len(), 1);

    // The edit was applied to the file, not written over it.
    let calc = common::git(&run.remote.bare, &["show", "feature/task-calc-1:calc.py"]);
    assert!(
        calc.starts_with("def add(a, b):\n    return a + b\n") && calc.contains("return a - b"),
        "{calc}"
    );

    let pulls = run.github.pulls().await;
    assert_eq!(pulls.len(), 1);
    let body = pulls[0]["body"].as_str().unwrap();
    assert!(
        body.contains("## Verification") && body.contains("passed: `make test`"),
        "{body}"
    );
    assert!(body.contains("## Gates"), "{body}");
    // QA was shown the real result.
    let qa = run.model.requests_to("submit_review");
    assert!(
        qa[0]
            .to_string()
            .contains("<verification status=\\\"passed\\\""),
        "{}",
        qa[0]
    );
}

#[sqlx::test]
async fn a_broken_implementation_is_repaired_in_the_next_round(pool: PgPool) {
    let engineer = |n| {
        if n == 0 {
            subtract(false)
        } else {
            repair("a - b")
        }
    };
    let run = setup(&pool, engineer, 1000, &[]).await;
    run.run_once().await;

    let (status, _, _) = status(&pool).await;
    assert_eq!(status, "completed");
    let calls = run.model.requests_to("submit_implementation");
    assert_eq!(calls.len(), 2, "one repair round");
    // The repair request carries the failing test's output back as the tool result.
    let repair = calls[1]["messages"].to_string();
    assert!(
        repair.contains("tool_result") && repair.contains("status=\\\"failed\\\""),
        "{repair}"
    );
    assert!(repair.contains("test_subtract"), "{repair}");
    let engineer = evidence(&pool, "engineer").await;
    let rounds = engineer["rounds"].as_array().unwrap();
    assert_eq!(rounds[0]["verification"]["status"], "failed", "{engineer}");
    assert_eq!(rounds[1]["verification"]["status"], "passed", "{engineer}");
    // Round two's edit applied on top of round one's file: the fix, once.
    let calc = common::git(&run.remote.bare, &["show", "feature/task-calc-1:calc.py"]);
    assert_eq!(calc.matches("def subtract").count(), 1, "{calc}");
    assert!(calc.contains("return a - b"), "{calc}");
    let body = run.github.pulls().await[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(body.contains("1 repair round(s)"), "{body}");
}

#[sqlx::test]
async fn an_implementation_that_never_passes_ends_needs_review_with_nothing_pushed(pool: PgPool) {
    let engineer = |n| {
        if n == 0 {
            subtract(false)
        } else {
            repair("b - a")
        }
    };
    let run = setup(&pool, engineer, 1000, &[("REPAIR_ROUNDS", "1")]).await;
    run.run_once().await;

    let (status, _, result) = status(&pool).await;
    assert_eq!(status, "needs_review", "{result}");
    assert_eq!(run.model.requests_to("submit_implementation").len(), 2);
    let held = result["consensus"]["held"].to_string();
    assert!(held.contains("verification failed"), "{result}");
    assert!(run.nothing_published());
    assert!(run.github.pulls().await.is_empty());

    // `tasks show` tells why: the failed verification, its repair round, the output's end.
    let out = run.bin.output(&["tasks", "show", TASK]).await;
    let (show, _) = text(&out);
    assert!(
        show.contains("verification: failed: `make test` (exit 2,")
            && show.contains("after 1 repair round(s)")
            && show.contains("| FAILED (failures=1)"),
        "{show}"
    );
    assert!(
        show.contains("gates: 2 file(s) changed; nothing refused or flagged"),
        "{show}"
    );
}

#[sqlx::test]
async fn an_edit_that_does_not_apply_is_sent_back_as_a_repair_round(pool: PgPool) {
    fn engineer(n: usize) -> Value {
        let mut answer = subtract(true);
        if n == 0 {
            answer["edits"][0]["search"] = json!("    return a * b\n");
        }
        answer
    }
    let run = setup(&pool, engineer, 1000, &[]).await;
    run.run_once().await;

    assert_eq!(status(&pool).await.0, "completed");
    let calls = run.model.requests_to("submit_implementation");
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1]["messages"]
            .to_string()
            .contains("does not occur in 'calc.py'")
    );
    let engineer = evidence(&pool, "engineer").await;
    assert_eq!(
        engineer["rounds"][0]["outcome"], "edits_rejected",
        "{engineer}"
    );
}

/// An Engineer answer writing `files` whole (plus a passing change).
fn hostile(files: Value) -> Value {
    let mut answer = subtract(true);
    answer["files"]
        .as_array_mut()
        .unwrap()
        .extend(files.as_array().unwrap().iter().cloned());
    answer
}

#[sqlx::test]
async fn a_leaked_key_fails_the_task_before_anything_is_pushed_without_echoing_it(pool: PgPool) {
    fn engineer(_: usize) -> Value {
        let key = format!("AKIA{}", "Q7ZL3XW9RT2PLM4N");
        hostile(
            json!([{"path": "settings.py", "content": format!("DEBUG = False\nAWS_KEY = \"{key}\"\n")}]),
        )
    }
    let run = setup(&pool, engineer, 1000, &[]).await;
    let log = run.run_once().await;

    let (status, error, result) = status(&pool).await;
    let error = error.unwrap_or_default();
    assert_eq!(status, "failed");
    assert!(
        error.contains("settings.py") && error.contains('2'),
        "{error}"
    );
    assert_eq!(result["decision"], "refused_by_gates", "{result}");
    match outcome(&pool).await {
        Outcome::RefusedByGates { error: why, gates } => {
            assert_eq!(why, error);
            assert!(gates.secrets.iter().any(|s| s.path == "settings.py"));
        }
        other => panic!("refused by the gates expected: {other:?}"),
    }
    let secret = "Q7ZL3XW9RT2PLM4N";
    for text in [error.as_str(), &result.to_string(), &log] {
        assert!(!text.contains(secret), "the secret leaked: {text}");
    }
    assert!(run.nothing_published());
    // It failed at the Engineer's stage: QA and Security were never asked.
    assert!(run.model.requests_to("submit_review").is_empty());
}

fn workflow_rewrite(_: usize) -> Value {
    hostile(json!([{"path": ".github/workflows/ci.yml", "content": "on: push\njobs: {}\n"}]))
}

#[sqlx::test]
async fn a_workflow_rewrite_needs_a_human(pool: PgPool) {
    let run = setup(&pool, workflow_rewrite, 1000, &[]).await;
    run.run_once().await;
    let (status, _, result) = status(&pool).await;
    assert_eq!(status, "needs_review", "{result}");
    assert!(
        result["consensus"]["held"]
            .to_string()
            .contains(".github/workflows/ci.yml"),
        "{result}"
    );
    assert!(run.nothing_published());
    let security = evidence(&pool, "security").await;
    assert_eq!(
        security["gates"]["workflows"],
        json!([".github/workflows/ci.yml"]),
        "{security}"
    );
}

#[sqlx::test]
async fn an_allowed_workflow_change_is_published_for_security_review(pool: PgPool) {
    let run = setup(
        &pool,
        workflow_rewrite,
        1000,
        &[("ALLOW_WORKFLOW_CHANGES", "true")],
    )
    .await;
    run.run_once().await;
    assert_eq!(status(&pool).await.0, "completed");
    let labels = run.github.labels().await;
    assert!(
        labels[0].1.contains(&"security-review".to_owned()),
        "{labels:?}"
    );
}

#[sqlx::test]
async fn a_dependency_added_is_labelled_for_security_review(pool: PgPool) {
    fn engineer(_: usize) -> Value {
        hostile(json!([{"path": "requirements.txt", "content": "requests==2.32.3\n"}]))
    }
    let run = setup(&pool, engineer, 1000, &[]).await;
    run.run_once().await;
    assert_eq!(status(&pool).await.0, "completed");
    let labels = run.github.labels().await;
    assert!(
        labels[0].1.contains(&"security-review".to_owned()),
        "{labels:?}"
    );
    let body = run.github.pulls().await[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(body.contains("requirements.txt"), "{body}");
}

#[sqlx::test]
async fn a_five_mib_file_is_refused(pool: PgPool) {
    fn engineer(_: usize) -> Value {
        hostile(json!([{"path": "data/blob.txt", "content": "x".repeat(5 * 1024 * 1024)}]))
    }
    let run = setup(&pool, engineer, 1000, &[]).await;
    run.run_once().await;
    let (status, error, _) = status(&pool).await;
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("data/blob.txt") && error.contains("1048576"),
        "{error}"
    );
    assert!(run.nothing_published());
}

#[sqlx::test]
async fn large_usage_stops_the_task_at_the_cost_cap_with_nothing_pushed(pool: PgPool) {
    // 150k input tokens on Sonnet: $0.453 for the PM; the Architect's worst case (Opus, its
    // whole output budget) does not fit under a $0.50 cap.
    let run = setup(
        &pool,
        |_| subtract(true),
        150_000,
        &[("MAX_TASK_COST_USD", "0.50")],
    )
    .await;
    run.run_once().await;

    let (status, error, result) = status(&pool).await;
    assert_eq!(status, "failed");
    assert!(
        error.unwrap_or_default().contains("budget exceeded"),
        "{result}"
    );
    assert_eq!(result["decision"], "budget_exceeded");
    assert!(
        matches!(outcome(&pool).await, Outcome::BudgetExceeded { error } if error.contains("budget exceeded"))
    );
    assert_eq!(
        run.model.requests.lock().unwrap().len(),
        1,
        "no call after the cap"
    );
    assert!(run.nothing_published());

    let out = run.bin.output(&["tasks", "show", TASK]).await;
    let (show, _) = text(&out);
    assert!(show.contains("PM         $0.4530 · 1 call(s)"), "{show}");
    let out = run.bin.output(&["stats"]).await;
    let (stats, _) = text(&out);
    assert!(stats.contains("spent today: $0.4530"), "{stats}");
}

#[sqlx::test]
async fn the_daily_budget_sends_the_task_back_without_spending_an_attempt(pool: PgPool) {
    // $0.453 for the PM; the Architect's worst case fits the task's $2.00 but not the day's $0.50.
    let run = setup(
        &pool,
        |_| subtract(true),
        150_000,
        &[("DAILY_BUDGET_USD", "0.50")],
    )
    .await;
    let log = run.run_once().await;

    let row = sqlx::query("SELECT status, attempts FROM tasks WHERE task_id = $1")
        .bind(TASK)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("status"), "pending", "{log}");
    assert_eq!(row.get::<i32, _>("attempts"), 0);
    assert!(log.contains("daily budget"), "{log}");
    assert_eq!(run.model.requests.lock().unwrap().len(), 1);
}

#[sqlx::test]
async fn every_role_shares_one_cached_prefix(pool: PgPool) {
    let run = setup(&pool, |_| subtract(true), 1000, &[]).await;
    run.run_once().await;
    let requests = run.model.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 5);
    for request in &requests {
        assert_eq!(
            request["tools"], requests[0]["tools"],
            "same tools for every role"
        );
        assert_eq!(
            request["system"], requests[0]["system"],
            "same system prompt"
        );
        assert_eq!(
            request["tool_choice"], requests[0]["tool_choice"],
            "one tool_choice: changing it would invalidate the cached messages"
        );
        assert_eq!(
            request["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        let first = &request["messages"][0]["content"][0];
        assert_eq!(
            first, &requests[0]["messages"][0]["content"][0],
            "same task block"
        );
        assert_eq!(first["cache_control"], json!({"type": "ephemeral"}));
    }
    // Each role's request starts with the blocks the previous role (of the same model) cached,
    // up to its last breakpoint: Engineer after PM, QA after Engineer, Security after QA (the
    // Architect runs on another model, whose cache is its own).
    let content = |i: usize| {
        requests[i]["messages"][0]["content"]
            .as_array()
            .unwrap()
            .clone()
    };
    let without_marks = |blocks: &[Value]| {
        blocks
            .iter()
            .map(|b| b["text"].clone())
            .collect::<Vec<Value>>()
    };
    for (before, after) in [(0, 2), (2, 3), (3, 4)] {
        let cached = content(before);
        let last = cached
            .iter()
            .rposition(|b| b.get("cache_control").is_some())
            .unwrap();
        assert_eq!(
            without_marks(&content(after)[..=last]),
            without_marks(&cached[..=last]),
            "request {after} extends what request {before} cached"
        );
    }
    // QA was shown the Engineer's output with its verification, in one block.
    let qa = content(3);
    assert!(
        qa[3]["text"]
            .as_str()
            .unwrap()
            .contains("<verification status=")
    );
}

#[sqlx::test]
async fn without_prompt_caching_no_breakpoint_is_sent(pool: PgPool) {
    let run = setup(
        &pool,
        |_| subtract(true),
        1000,
        &[("PROMPT_CACHING", "false")],
    )
    .await;
    run.run_once().await;
    let requests = run.model.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 5);
    assert!(
        requests
            .iter()
            .all(|r| !r.to_string().contains("cache_control"))
    );
}

#[sqlx::test]
async fn without_bubblewrap_the_daemon_refuses_to_start(pool: PgPool) {
    let run = setup(&pool, |_| subtract(true), 1000, &[]).await;
    let out = run
        .bin
        .clone_with("PATH", "/nonexistent")
        .output(&["run", "--once"])
        .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("bubblewrap"), "{stderr}");
    assert!(run.model.requests.lock().unwrap().is_empty());
}
