//! Outages survived by real daemon processes against real services: two daemons sharing one
//! queue complete every task exactly once; PostgreSQL stopped and started under a running
//! daemon is waited out (one error line per outage) and work resumes in the same process;
//! GitHub rate limits (403 secondary limit, 429) are waited out without spending an attempt;
//! an Anthropic 529 storm longer than the client's retries sends the task back to pending
//! without spending an attempt, and it resumes from the stage that failed; an Anthropic 429 outlasting the client's
//! retries waits without spending an attempt, then completes.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    Bin, FakeGitHub, FakeModel, PgCluster, Remote, Running, Script, holds, text, wait_for,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::ResponseTemplate;

fn approve(_: &str) -> Script {
    Script::Approve
}

/// The binary against `database_url` with the fakes, polling every second.
fn bin(database_url: &str, remote: &Remote, model: &FakeModel, github: &FakeGitHub) -> Bin {
    Bin::new(
        database_url,
        remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("POLL_INTERVAL", "1")
}

/// Runs the CLI with `args` and asserts it succeeded.
async fn cli(bin: &Bin, args: &[&str]) {
    let out = bin.output(args).await;
    assert!(out.status.success(), "{args:?}: {:?}", text(&out));
}

/// `tasks add --id <id>` at priority 1.
async fn add_task(bin: &Bin, id: &str) {
    cli(
        bin,
        &[
            "tasks",
            "add",
            "--id",
            id,
            "--priority",
            "1",
            "Write the docs",
        ],
    )
    .await;
}

/// (status, attempts, error) of task `id`.
async fn task_row(pool: &PgPool, id: &str) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, error FROM tasks WHERE task_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Stages recorded for task `id`, in pipeline order.
async fn stages(pool: &PgPool, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT s.stage FROM task_stages s JOIN tasks t ON t.id = s.task WHERE t.task_id = $1 \
         ORDER BY s.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Stops a daemon with SIGTERM and asserts it exits 0; returns its stderr.
async fn stop(daemon: Running) -> String {
    let (status, stderr) = daemon.stop().await;
    assert!(
        status.success(),
        "exit 0 after SIGTERM: {status:?}\n{stderr}"
    );
    stderr
}

/// A task file of `n` tasks `load-001`… (all at priority 0).
fn task_file(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let tasks: Vec<Value> = (1..=n)
        .map(|i| json!({"task_id": format!("load-{i:03}"), "description": format!("Write doc {i}"), "priority": 0}))
        .collect();
    let file = dir.join("load.json");
    std::fs::write(&file, json!({ "tasks": tasks }).to_string()).unwrap();
    file
}

/// Tasks in the two-daemon test: the full 200 (measured in a debug build on 2 shared cores:
/// about 24 s until the queue is empty, 28 s for the whole test).
const LOAD_TASKS: usize = 200;

#[sqlx::test]
async fn two_daemons_complete_every_task_exactly_once(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    let bin =
        bin(&common::database_url(&pool), &remote, &model, &github).clone_with("CONCURRENCY", "2");
    cli(&bin, &["migrate"]).await;
    let file = task_file(remote.dir.path(), LOAD_TASKS);
    cli(&bin, &["tasks", "load", file.to_str().unwrap()]).await;

    let started = Instant::now();
    let first = Running::spawn(&bin, &["run"]);
    let second = Running::spawn(&bin, &["run"]);
    let pids = [first.pid(), second.pid()];
    wait_for("every task to end", Duration::from_secs(120), || {
        holds(
            &pool,
            "SELECT count(*) = 0 FROM tasks WHERE status IN ('pending', 'in_progress')",
        )
    })
    .await;
    eprintln!("{LOAD_TASKS} tasks took {:?}", started.elapsed());
    stop(first).await;
    stop(second).await;

    let not_once: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT task_id, status, attempts FROM tasks WHERE status <> 'completed' OR attempts <> 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(not_once, [], "every task completed on its first claim");
    let pulls = github.pulls().await;
    assert_eq!(pulls.len(), LOAD_TASKS, "one PR request per task");
    let heads: BTreeSet<&str> = pulls.iter().map(|p| p["head"].as_str().unwrap()).collect();
    let expected: BTreeSet<String> = (1..=LOAD_TASKS)
        .map(|i| format!("feature/task-load-{i:03}"))
        .collect();
    assert_eq!(
        heads,
        expected.iter().map(String::as_str).collect(),
        "distinct heads"
    );
    let branches = remote.branches();
    assert_eq!(
        branches.len(),
        LOAD_TASKS + 1,
        "one branch per task, and main"
    );
    for tool in [
        "submit_prd",
        "submit_design",
        "submit_implementation",
        "submit_review",
        "submit_security_review",
    ] {
        assert_eq!(
            model.calls_to(tool),
            LOAD_TASKS,
            "{tool} asked once per task"
        );
    }
    let workers: Vec<String> = sqlx::query_scalar("SELECT DISTINCT locked_by FROM tasks")
        .fetch_all(&pool)
        .await
        .unwrap();
    for pid in pids {
        assert!(
            workers.iter().any(|w| w.contains(&format!(":{pid}:"))),
            "daemon {pid} completed tasks too: {workers:?}"
        );
    }
}

/// The line the claim loop logs when the database stops answering.
const CANNOT_CLAIM: &str = "cannot claim a task";
/// The debug line of every further failed claim during an outage.
const STILL_DOWN: &str = "claim failed again; the database is still unreachable";

#[tokio::test]
async fn postgres_stopped_and_started_under_a_running_daemon() {
    let cluster = PgCluster::start_new();
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    let bin = bin(&cluster.url(), &remote, &model, &github)
        .clone_with("RUST_LOG", "info,autonomous_dev::daemon=debug");
    cli(&bin, &["migrate"]).await;
    let mut daemon = Running::spawn(&bin, &["run"]);
    let pid = daemon.pid();

    let pool = PgPool::connect(&cluster.url()).await.unwrap();
    add_task(&bin, "db-1").await;
    let completed = "SELECT count(*) = 1 FROM tasks WHERE task_id = $1 AND status = 'completed'";
    wait_for("db-1 to complete", Duration::from_secs(30), || {
        holds_for(&pool, completed, "db-1")
    })
    .await;
    pool.close().await;

    cluster.stop();
    wait_for(
        "the daemon to report the outage",
        Duration::from_secs(30),
        || {
            let seen = daemon.count(CANNOT_CLAIM) > 0;
            async move { seen }
        },
    )
    .await;
    // Keep the server down until at least one more claim has failed (the next try comes after
    // a backoff of at most 1 s and gives up after the pool's acquire timeout): it is logged at debug level
    // only, so the error stays at one line per outage.
    wait_for("a second failed claim", Duration::from_secs(60), || {
        let seen = daemon.count(STILL_DOWN) > 0;
        async move { seen }
    })
    .await;
    assert!(daemon.is_running(), "the daemon survives the outage");
    assert_eq!(daemon.count(CANNOT_CLAIM), 1, "{}", daemon.stderr());
    cluster.start();

    let start = Instant::now();
    loop {
        let out = bin
            .output(&[
                "tasks",
                "add",
                "--id",
                "db-2",
                "--priority",
                "1",
                "Write more docs",
            ])
            .await;
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the CLI never got through: {:?}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pool = PgPool::connect(&cluster.url()).await.unwrap();
    wait_for("db-2 to complete", Duration::from_secs(30), || {
        holds_for(&pool, completed, "db-2")
    })
    .await;
    assert!(daemon.is_running(), "still running");
    assert_eq!(daemon.pid(), pid, "the same process did the work");
    let stderr = stop(daemon).await;
    assert_eq!(
        stderr.matches(CANNOT_CLAIM).count(),
        1,
        "{CANNOT_CLAIM:?} once per outage, not once per retry:\n{stderr}"
    );
    assert!(stderr.contains("database reachable again"), "{stderr}");
    assert_eq!(github.pulls().await.len(), 2);
}

/// Like [`holds`], with `$1` bound to `id`.
async fn holds_for(pool: &PgPool, sql: &'static str, id: &str) -> bool {
    sqlx::query_scalar::<_, bool>(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

/// Runs `run --once` for one task `gh-1` against `github` and checks it completed on its first
/// claim with exactly one PR, after waiting `wait_reason` out once.
async fn completes_once_despite(pool: &PgPool, github: &FakeGitHub, wait_reason: &str) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let bin = bin(&common::database_url(pool), &remote, &model, github);
    cli(&bin, &["migrate"]).await;
    add_task(&bin, "gh-1").await;
    let out = bin.output(&["run", "--once"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let (status, attempts, _) = task_row(pool, "gh-1").await;
    assert_eq!(
        (status.as_str(), attempts),
        ("completed", 1),
        "{:?}",
        text(&out)
    );
    assert_eq!(github.open.lock().unwrap().len(), 1, "one PR created");
    let pr_url: Option<String> = sqlx::query_scalar("SELECT pr_url FROM tasks")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(pr_url.as_deref(), Some("https://github.com/o/r/pull/1"));
    let (_, stderr) = text(&out);
    let waits: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("GitHub: waiting before retrying"))
        .collect();
    assert_eq!(waits.len(), 1, "{stderr}");
    assert!(waits[0].contains(wait_reason), "{}", waits[0]);
}

#[sqlx::test]
async fn github_secondary_rate_limit_on_create_is_waited_out(pool: PgPool) {
    let github = FakeGitHub::start().await;
    let limited = ResponseTemplate::new(403)
        .insert_header("retry-after", "1")
        .set_body_json(json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 1234:5678.",
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
        }));
    github
        .refuse_first("POST", r"^/repos/o/r/pulls$", 1, limited)
        .await;
    completes_once_despite(&pool, &github, "rate limited (403), retry-after 1 s").await;
    assert_eq!(
        github.pulls().await.len(),
        2,
        "the limited create, then the one that created the PR"
    );
}

#[sqlx::test]
async fn github_429_on_labels_is_waited_out(pool: PgPool) {
    let github = FakeGitHub::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(json!({
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"
        }));
    github
        .refuse_first("POST", r"^/repos/o/r/issues/\d+/labels$", 1, limited)
        .await;
    completes_once_despite(&pool, &github, "rate limited (429), retry-after 1 s").await;
    assert_eq!(github.pulls().await.len(), 1);
    let labels = github.labels().await;
    assert_eq!(
        labels.len(),
        2,
        "labels sent again after the wait: {labels:?}"
    );
    assert_eq!(labels[0], labels[1]);
}

/// A daemon for one task `llm-1` with the short test timings: one client retry per request,
/// task backoff from 1 s, rate-limit wait of 3 s.
async fn llm_outage_daemon(
    pool: &PgPool,
    remote: &Remote,
    model: &FakeModel,
    github: &FakeGitHub,
) -> Running {
    let bin = bin(&common::database_url(pool), remote, model, github)
        .clone_with("LLM_MAX_RETRIES", "1")
        .clone_with("RETRY_BASE_SECONDS", "1")
        .clone_with("RATE_LIMIT_WAIT_SECONDS", "3")
        .clone_with("MAX_ATTEMPTS", "5");
    cli(&bin, &["migrate"]).await;
    add_task(&bin, "llm-1").await;
    Running::spawn(&bin, &["run"])
}

const TASK_DONE: &str = "SELECT status = 'completed' FROM tasks WHERE task_id = 'llm-1'";

#[sqlx::test]
async fn anthropic_529_storm_backs_off_and_resumes_at_the_failed_stage(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    // The Engineer's first 3 requests are refused: with 1 client retry, the first claim sends 2
    // and fails transiently; the second claim sends 1 more (refused) and 1 answered.
    const STORM: u64 = 3;
    model
        .refuse_first(
            "submit_implementation",
            STORM,
            common::anthropic_overloaded(),
        )
        .await;
    let daemon = llm_outage_daemon(&pool, &remote, &model, &github).await;
    wait_for("llm-1 to complete", Duration::from_secs(30), || {
        holds(&pool, TASK_DONE)
    })
    .await;
    let stderr = stop(daemon).await;

    let (status, attempts, error) = task_row(&pool, "llm-1").await;
    assert_eq!(status, "completed");
    assert_eq!(attempts, 1, "the storm burned no attempt");
    assert_eq!(error, None);
    assert_eq!(
        stderr.matches("transient failure, will retry").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("overloaded_error"), "{stderr}");
    assert_eq!(model.refused().await, STORM as usize);
    for tool in [
        "submit_prd",
        "submit_design",
        "submit_implementation",
        "submit_review",
        "submit_security_review",
    ] {
        assert_eq!(model.calls_to(tool), 1, "{tool} answered once");
    }
    assert_eq!(
        stages(&pool, "llm-1").await,
        ["pm", "architect", "engineer", "qa", "security"],
        "each stage recorded once; the resumed run started at the Engineer"
    );
    assert_eq!(github.open.lock().unwrap().len(), 1, "one PR");
}

#[sqlx::test]
async fn anthropic_rate_limit_outlasting_the_client_waits_without_spending_an_attempt(
    pool: PgPool,
) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    // Two 429s exhaust the client (1 retry after retry-after: 1 s); the next request is answered.
    model
        .refuse_first("submit_design", 2, common::anthropic_rate_limited(1))
        .await;
    let daemon = llm_outage_daemon(&pool, &remote, &model, &github).await;
    wait_for(
        "llm-1 back to pending after the rate limit",
        Duration::from_secs(30),
        || {
            holds(
                &pool,
                "SELECT status = 'pending' AND error IS NOT NULL FROM tasks",
            )
        },
    )
    .await;
    let (_, attempts, error) = task_row(&pool, "llm-1").await;
    assert_eq!(attempts, 0, "the rate-limited claim spent no attempt");
    let error = error.unwrap();
    assert!(
        error.contains("429") && error.contains("rate_limit_error"),
        "{error}"
    );
    assert_eq!(stages(&pool, "llm-1").await, ["pm"], "the PM stage is kept");

    wait_for("llm-1 to complete", Duration::from_secs(30), || {
        holds(&pool, TASK_DONE)
    })
    .await;
    // The pause and its end are notification events (the outbox).
    wait_for("the resumed event", Duration::from_secs(30), || {
        holds(
            &pool,
            "SELECT count(*) = 1 FROM outbox WHERE kind = 'resumed'",
        )
    })
    .await;
    stop(daemon).await;
    let events: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT kind, detail FROM outbox WHERE kind IN ('paused', 'resumed') ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "paused");
    assert!(
        events[0].1.as_deref().unwrap_or("").contains("rate limit"),
        "{events:?}"
    );
    assert_eq!(events[1].0, "resumed");
    let (_, attempts, error) = task_row(&pool, "llm-1").await;
    assert_eq!(attempts, 1, "only the claim that completed counts");
    assert_eq!(error, None);
    assert_eq!(model.refused().await, 2);
    assert_eq!(model.calls_to("submit_prd"), 1, "the PM is not asked again");
    assert_eq!(model.calls_to("submit_design"), 1);
    assert_eq!(github.open.lock().unwrap().len(), 1, "one PR");
}
