//! A person's decision on a needs_review task, through the binary against the fake model and
//! GitHub, a real PostgreSQL and a real bare remote: `tasks approve` publishes the recorded
//! change as its PR (label human-approved, the approver and what held it in the body) without
//! asking any role again; `tasks reject` fails the task with the reason; both refuse every other
//! status, an unknown task and bad input, changing nothing.

use crate::common;

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, cli};
use sqlx::PgPool;

/// `t-score`: consensus conditional (70%). `t-held`: approved (81.25%), but no check command
/// runs on this repository and VERIFY_OPTIONAL is off, so the approval is held. `t-reject`:
/// conditional, for `tasks reject`.
fn script(task_id: &str) -> Script {
    match task_id {
        "t-held" => Script::Approve,
        _ => Script::Conditional,
    }
}

async fn status(pool: &PgPool, task_id: &str) -> (String, Option<String>, Option<String>) {
    sqlx::query_as("SELECT status, approved_by, error FROM tasks WHERE task_id = $1")
        .bind(task_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_person_approves_or_rejects_what_consensus_left_for_review(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(script).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("VERIFY_OPTIONAL", "false");
    assert!(bin.output(&["migrate"]).await.status.success());
    for id in ["t-score", "t-held", "t-reject"] {
        let (ok, _, stderr) = cli(
            &bin,
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
        assert!(ok, "{stderr}");
    }
    // Nothing to decide yet: every task is pending.
    let (ok, _, stderr) = cli(&bin, &["tasks", "approve", "t-score", "--by", "alice"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("task 't-score' is pending: only a needs_review task can be approved"),
        "{stderr}"
    );

    let (ok, _, log) = cli(&bin, &["run", "--once"]).await;
    assert!(ok, "{log}");
    for id in ["t-score", "t-held", "t-reject"] {
        assert_eq!(status(&pool, id).await.0, "needs_review", "{id}");
    }
    assert!(github.pulls().await.is_empty());
    let asked = model.requests.lock().unwrap().len();

    // Bad input and unknown tasks change nothing.
    for (args, error) in [
        (
            vec!["tasks", "approve", "t-score", "--by", "  "],
            "--by takes one line of 1 to 100 characters",
        ),
        (
            vec!["tasks", "approve", "t-score", "--by", "alice\nbob"],
            "--by takes one line",
        ),
        (
            vec!["tasks", "reject", "t-reject", "--reason", ""],
            "--reason takes one line of 1 to 1000 characters",
        ),
        (
            vec!["tasks", "approve", "t-nope", "--by", "alice"],
            "t-nope",
        ),
        (
            vec!["tasks", "reject", "t-nope", "--reason", "no"],
            "t-nope",
        ),
    ] {
        let (ok, _, stderr) = cli(&bin, &args).await;
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(error), "{args:?}: {stderr}");
    }
    let (ok, _, stderr) = cli(&bin, &["tasks", "reject", "t-reject"]).await;
    assert!(!ok && stderr.contains("--reason"), "{stderr}");
    for id in ["t-score", "t-held", "t-reject"] {
        assert_eq!(
            status(&pool, id).await,
            ("needs_review".to_owned(), None, None),
            "{id}"
        );
    }

    // Approve two (one by --by, one by USER), reject the third.
    let (ok, stdout, stderr) = cli(&bin, &["tasks", "approve", "t-score", "--by", "alice"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("t-score is approved by alice"), "{stdout}");
    let (ok, _, stderr) = cli(
        &bin.clone_with("USER", "bob"),
        &["tasks", "approve", "t-held"],
    )
    .await;
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli(
        &bin,
        &["tasks", "reject", "t-reject", "--reason", "not worth it"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(
        status(&pool, "t-score").await,
        ("pending".to_owned(), Some("alice".to_owned()), None)
    );
    assert_eq!(
        status(&pool, "t-reject").await,
        (
            "failed".to_owned(),
            None,
            Some("rejected by a person: not worth it".to_owned())
        )
    );
    // Decided once: a second decision is refused.
    let (ok, _, stderr) = cli(&bin, &["tasks", "reject", "t-reject", "--reason", "again"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("task 't-reject' is failed: only a needs_review task can be rejected"),
        "{stderr}"
    );

    // The next run publishes both approved changes, asking no role again.
    let (ok, _, log) = cli(&bin, &["run", "--once"]).await;
    assert!(ok, "{log}");
    assert_eq!(model.requests.lock().unwrap().len(), asked, "no LLM call");
    for id in ["t-score", "t-held"] {
        assert_eq!(status(&pool, id).await.0, "completed", "{id}");
    }
    assert_eq!(status(&pool, "t-reject").await.0, "failed");
    assert_eq!(
        remote.branches(),
        ["feature/task-t-held", "feature/task-t-score", "main"]
    );
    let pulls = github.pulls().await;
    assert_eq!(pulls.len(), 2);
    for (head, by, why) in [
        (
            "feature/task-t-score",
            "`alice`",
            "its score is below the approve threshold of 80%",
        ),
        ("feature/task-t-held", "`bob`", "not verified"),
    ] {
        let pr = pulls.iter().find(|p| p["head"] == head).expect(head);
        let body = pr["body"].as_str().unwrap();
        assert!(
            body.contains(&format!(
                "## Approved by a person\n\n{by} approved this change with `tasks approve`"
            )),
            "{body}"
        );
        assert!(body.contains(why), "{head}: {body}");
    }
    let labels = github.labels().await;
    assert_eq!(labels.len(), 2);
    for (_, labels) in &labels {
        assert!(labels.contains(&"human-approved".to_owned()), "{labels:?}");
    }
    let (ok, stdout, _) = cli(&bin, &["tasks", "show", "t-score"]).await;
    assert!(ok && stdout.contains("approved:   by alice"), "{stdout}");
}

#[sqlx::test]
async fn reviewers_are_requested_on_the_pr_it_opens(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(|_| Script::Approve).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("REVIEWERS", "alice, acme/backend");
    common::migrate_and_add(&bin, "t-rev").await;
    bin.run_once().await;
    let requests = github.server.received_requests().await.unwrap();
    let asked: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.url.path() == "/repos/o/r/pulls/1/requested_reviewers")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        asked,
        [serde_json::json!({"reviewers": ["alice"], "team_reviewers": ["backend"]})]
    );

    let (ok, _, stderr) = cli(
        &bin.clone_with("REVIEWERS", "not a login"),
        &["run", "--once"],
    )
    .await;
    assert!(!ok && stderr.contains("org/team"), "{stderr}");
}

#[sqlx::test]
async fn a_tasks_own_reviewers_are_requested_with_reviewers(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(|_| Script::Approve).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("REVIEWERS", "alice");
    let (ok, _, stderr) = cli(&bin, &["migrate"]).await;
    assert!(ok, "{stderr}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"[{"task_id": "t-own", "description": "Write the docs", "priority": 1,
             "reviewers": ["bob", "alice", "acme/qa"]}]"#,
    )
    .unwrap();
    let (ok, _, stderr) = cli(&bin, &["tasks", "load", file.path().to_str().unwrap()]).await;
    assert!(ok, "{stderr}");
    bin.run_once().await;
    let requests = github.server.received_requests().await.unwrap();
    let asked: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.url.path() == "/repos/o/r/pulls/1/requested_reviewers")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        asked,
        [serde_json::json!({"reviewers": ["alice", "bob"], "team_reviewers": ["qa"]})]
    );
    let (ok, stdout, _) = cli(&bin, &["tasks", "show", "t-own"]).await;
    assert!(
        ok && stdout.contains("reviewers:  bob, alice, acme/qa"),
        "{stdout}"
    );
}
