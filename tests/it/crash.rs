//! Fault injection with real processes: the daemon is killed with SIGKILL during a stage and
//! during publish, and a second daemon takes over once the lease expires. The task completes,
//! exactly one PR exists, and no completed stage is sent to the model twice.

use crate::common;

use std::time::{Duration, Instant};

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, text};
use sqlx::PgPool;

fn approve(_: &str) -> Script {
    Script::Approve
}

/// Lease of 2 s renewed every second, so a killed daemon's task is free 2 s later.
fn with_short_lease(bin: Bin) -> Bin {
    bin.clone_with("LEASE_SECONDS", "2")
        .clone_with("HEARTBEAT_SECONDS", "1")
        .clone_with("POLL_INTERVAL", "1")
}

async fn wait_until(pool: &PgPool, what: &str, sql: &'static str) {
    common::wait_for(what, Duration::from_secs(60), || common::holds(pool, sql)).await
}

async fn kill(mut child: tokio::process::Child) {
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed by SIGKILL");
}

/// Starts a daemon with a fast model once the dead daemon's lease has expired, and waits for
/// the task to end.
async fn take_over(bin: &Bin, pool: &PgPool, fast: &FakeModel) {
    // Epoch seconds compare the lease with the server's clock whatever the column's type.
    wait_until(
        pool,
        "the dead daemon's lease to expire",
        "SELECT bool_and(extract(epoch FROM lease_expires_at) < extract(epoch FROM now())) \
         FROM tasks",
    )
    .await;
    let bin = bin.clone_with("ANTHROPIC_BASE_URL", &fast.server.uri());
    let out = bin.output(&["run", "--once"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let (status, attempts): (String, i32) = sqlx::query_as("SELECT status, attempts FROM tasks")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "completed");
    assert_eq!(attempts, 2, "one claim per daemon");
}

async fn setup(pool: &PgPool, remote: &Remote, model: &FakeModel, github: &FakeGitHub) -> Bin {
    let bin = with_short_lease(Bin::new(
        &common::database_url(pool),
        remote,
        &model.server.uri(),
        &github.server.uri(),
    ));
    common::migrate_and_add(&bin, "k-1").await;
    bin
}

#[sqlx::test]
async fn killed_during_a_stage_resumes_without_paying_twice(pool: PgPool) {
    let remote = Remote::new();
    let slow = FakeModel::start_slow(approve, Duration::from_secs(3)).await;
    let github = FakeGitHub::start().await;
    let bin = setup(&pool, &remote, &slow, &github).await;

    let child = bin.command(&["run"]).spawn().unwrap();
    wait_until(
        &pool,
        "two recorded stages",
        "SELECT count(*) = 2 FROM task_stages",
    )
    .await;
    kill(child).await;

    let fast = FakeModel::start(approve).await;
    take_over(&bin, &pool, &fast).await;
    for tool in ["submit_prd", "submit_design"] {
        assert_eq!(
            slow.calls_to(tool) + fast.calls_to(tool),
            1,
            "{tool} asked once"
        );
    }
    assert_eq!(fast.calls_to("submit_implementation"), 1);
    assert_eq!(github.pulls().await.len(), 1);
    assert_eq!(remote.branches(), ["feature/task-k-1", "main"]);
}

#[sqlx::test]
async fn killed_after_push_before_the_pr_ends_with_one_pr(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    // The PR is created when the request arrives, but the answer never reaches the daemon.
    let github = FakeGitHub::start_slow_create(Duration::from_secs(30)).await;
    let bin = setup(&pool, &remote, &model, &github).await;

    let child = bin.command(&["run"]).spawn().unwrap();
    let start = Instant::now();
    while github.open.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no PR request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(child).await;
    let tip = common::git(&remote.bare, &["rev-parse", "feature/task-k-1"]);

    let fast_github = github.server.uri();
    let bin = bin.clone_with("GITHUB_API_URL", &fast_github);
    take_over(&bin, &pool, &model).await;
    assert_eq!(
        github.pulls().await.len(),
        1,
        "the open PR was adopted, not created again"
    );
    assert_eq!(model.calls_to("submit_prd"), 1, "no stage asked twice");
    assert_eq!(
        common::git(&remote.bare, &["rev-parse", "feature/task-k-1"]),
        tip,
        "the pushed branch was reused"
    );
    let pr_url: Option<String> = sqlx::query_scalar("SELECT pr_url FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pr_url.as_deref(), Some("https://github.com/o/r/pull/1"));
}
