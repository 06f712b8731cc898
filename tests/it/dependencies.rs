//! Dependencies between tasks through the binary, against the fake model and GitHub, a real
//! PostgreSQL and a real bare remote: a task is claimed only once each dependency's PR is
//! merged; a dependency cancelled, or whose PR was closed unmerged, blocks its dependents with
//! the reason; retrying it unblocks them. A task file naming an unknown task or forming a cycle
//! (in the file, or with the tasks loaded before) is rejected whole.

use crate::common;

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, text};
use serde_json::json;
use sqlx::PgPool;

fn approve(_: &str) -> Script {
    Script::Approve
}

/// (task_id, status, error) of every task.
async fn statuses(pool: &PgPool) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT task_id, status, error FROM tasks ORDER BY task_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn status(pool: &PgPool, task_id: &str) -> (String, Option<String>) {
    let all = statuses(pool).await;
    let (_, status, error) = all.into_iter().find(|(id, ..)| id == task_id).unwrap();
    (status, error)
}

/// Writes `tasks` as a task file in `dir` and loads it (`extra` arguments after the file).
async fn load(
    bin: &Bin,
    dir: &std::path::Path,
    tasks: serde_json::Value,
    extra: &[&str],
) -> (bool, String) {
    let file = dir.join("tasks.json");
    std::fs::write(&file, tasks.to_string()).unwrap();
    let mut args = vec!["tasks", "load", file.to_str().unwrap()];
    args.extend(extra);
    let out = bin.output(&args).await;
    let (stdout, stderr) = text(&out);
    (out.status.success(), format!("{stdout}{stderr}"))
}

fn task(id: &str, depends_on: &[&str]) -> serde_json::Value {
    json!({"task_id": id, "description": "Write the docs", "priority": 1, "depends_on": depends_on})
}

#[sqlx::test]
async fn a_task_waits_for_its_dependencies_prs_to_be_merged(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(bin.output(&["migrate"]).await.status.success());

    // Bad files are rejected whole: nothing is loaded.
    for (tasks, error) in [
        (
            json!([task("t-a", &[]), task("t-b", &["t-nope"])]),
            "entry 2 (task_id \"t-b\"): field \"depends_on\": unknown task_id \"t-nope\"",
        ),
        (
            json!([task("t-a", &["t-b"]), task("t-b", &["t-a"])]),
            "the dependencies form a cycle: t-a → t-b → t-a",
        ),
        (
            json!([task("t-a", &["t-a"])]),
            "a task cannot depend on itself",
        ),
        (
            json!([{"task_id": "t-a", "description": "d", "priority": 1, "depends_on": "t-b"}]),
            "field \"depends_on\": expected an array of strings",
        ),
    ] {
        let (ok, out) = load(&bin, dir.path(), tasks, &[]).await;
        assert!(!ok, "{out}");
        assert!(out.contains(error), "{out}");
        assert!(statuses(&pool).await.is_empty(), "{out}");
    }

    // t-b waits for t-a, t-c for t-b; t-y for t-x (cancelled before anything runs); t-z for t-w
    // (whose PR will be closed unmerged).
    let (ok, out) = load(
        &bin,
        dir.path(),
        json!([
            task("t-a", &[]),
            task("t-b", &["t-a"]),
            task("t-c", &["t-b", "t-a"]),
            task("t-w", &[]),
            task("t-x", &[]),
            task("t-y", &["t-x"]),
            task("t-z", &["t-w"]),
        ]),
        &[],
    )
    .await;
    assert!(ok, "{out}");
    // A cycle through the tasks loaded before is refused too, changing nothing.
    let (ok, out) = load(
        &bin,
        dir.path(),
        json!([{"task_id": "t-a", "description": "Write the docs again", "priority": 1,
                "depends_on": ["t-c"]}]),
        &["--update"],
    )
    .await;
    assert!(!ok && out.contains("form a cycle"), "{out}");
    assert!(
        bin.output(&["tasks", "cancel", "t-x"])
            .await
            .status
            .success()
    );

    let pr_of = |id: &str| -> u64 {
        let open = github.open.lock().unwrap();
        open.iter()
            .find(|pr| pr["head"]["ref"] == format!("feature/task-{id}"))
            .unwrap_or_else(|| panic!("no PR for {id}"))["number"]
            .as_u64()
            .unwrap()
    };

    // Run 1: the tasks without dependencies; t-y is blocked by its cancelled dependency.
    let log = bin.run_once().await;
    assert!(log.contains("task blocked by its dependencies"), "{log}");
    assert_eq!(
        statuses(&pool).await,
        [
            ("t-a".into(), "completed".into(), None),
            ("t-b".into(), "pending".into(), None),
            ("t-c".into(), "pending".into(), None),
            ("t-w".into(), "completed".into(), None),
            ("t-x".into(), "cancelled".into(), None),
            (
                "t-y".into(),
                "blocked".into(),
                Some("blocked by t-x (cancelled)".into())
            ),
            ("t-z".into(), "pending".into(), None),
        ]
    );

    // t-a merged, t-w closed unmerged, t-x retried.
    github.set_state(pr_of("t-a"), "merged");
    github.set_state(pr_of("t-w"), "closed");
    common::make_prs_due(&pool).await;
    assert!(
        bin.output(&["tasks", "retry", "t-x"])
            .await
            .status
            .success()
    );
    bin.run_once().await;
    assert_eq!(status(&pool, "t-b").await.0, "completed");
    assert_eq!(status(&pool, "t-x").await.0, "completed");
    assert_eq!(status(&pool, "t-c").await.0, "pending", "t-b's PR is open");
    assert_eq!(status(&pool, "t-y").await.0, "pending", "t-x's PR is open");
    assert_eq!(
        status(&pool, "t-z").await,
        (
            "blocked".into(),
            Some("blocked by t-w (PR closed unmerged)".into())
        )
    );

    // Their PRs merged: the last dependents run.
    github.set_state(pr_of("t-b"), "merged");
    github.set_state(pr_of("t-x"), "merged");
    common::make_prs_due(&pool).await;
    bin.run_once().await;
    for id in ["t-c", "t-y"] {
        assert_eq!(status(&pool, id).await.0, "completed", "{id}");
    }
    assert_eq!(status(&pool, "t-z").await.0, "blocked");
    let out = bin.output(&["tasks", "list", "--status", "blocked"]).await;
    let (list, _) = text(&out);
    assert!(list.contains("t-z") && !list.contains("t-y"), "{list}");
    assert_eq!(github.pulls().await.len(), 6);
    let out = bin.output(&["tasks", "show", "t-z"]).await;
    let (show, _) = text(&out);
    assert!(
        show.contains("depends on: t-w (completed, PR closed)")
            && show.contains("blocked by t-w (PR closed unmerged)"),
        "{show}"
    );
}
