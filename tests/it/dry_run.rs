//! `run --dry-run` with mixed providers: every stage runs (the Architect on the Anthropic wire,
//! the other roles on an OpenAI-compatible one), the branch is committed in REPO_PATH's
//! repository, nothing is pushed, no GitHub request is made, no GITHUB_TOKEN is needed, and the
//! PR that would have been opened (from the fork of PUSH_REPOSITORY) is stored and shown by
//! `tasks show`.

use crate::common;

use std::time::Duration;

use autonomous_dev::task::{Outcome, Publication};
use common::{Bin, FakeGitHub, FakeModel, Remote, Script, Wire, text};
use sqlx::PgPool;

fn script(task_id: &str) -> Script {
    match task_id {
        "t-review" => Script::Conditional,
        _ => Script::Approve,
    }
}

#[sqlx::test]
async fn dry_run_commits_locally_and_stores_the_would_be_pr(pool: PgPool) {
    let remote = Remote::new();
    let openai = FakeModel::serve(Wire::OpenAi, script, Duration::ZERO).await;
    let anthropic = FakeModel::start(script).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &anthropic.server.uri(),
        &github.server.uri(),
    )
    .clone_without("GITHUB_TOKEN")
    .clone_with("LLM_PROVIDER", "openai")
    .clone_with("OPENAI_BASE_URL", &openai.server.uri())
    .clone_with("PROVIDER_ARCHITECT", "anthropic")
    // The would-be PR comes from the fork: its head names the fork's owner.
    .clone_with("PUSH_REPOSITORY", "bot/r");
    let head_before = common::git(&remote.clone, &["rev-parse", "HEAD"]);

    assert!(bin.output(&["migrate"]).await.status.success());
    for (id, label) in [("t-ok", "docs"), ("t-review", "docs")] {
        let out = bin
            .output(&[
                "tasks",
                "add",
                "--id",
                id,
                "--priority",
                "1",
                "--label",
                label,
                "Write the docs",
            ])
            .await;
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let out = bin.output(&["run", "--once", "--dry-run"]).await;
    let (_, log) = text(&out);
    assert!(out.status.success(), "{log}");

    // Every role ran, each on its configured wire.
    assert_eq!(openai.calls_to("submit_prd"), 2);
    assert_eq!(openai.calls_to("submit_security_review"), 2);
    assert_eq!(openai.calls_to("submit_design"), 0);
    assert_eq!(anthropic.calls_to("submit_design"), 2);
    assert_eq!(
        anthropic.requests.lock().unwrap().len(),
        2,
        "only the Architect on Anthropic"
    );

    // Committed locally, nothing pushed, no GitHub request at all.
    assert_eq!(remote.branches(), ["main"]);
    let files = common::git(
        &remote.clone,
        &["ls-tree", "-r", "--name-only", "feature/task-t-ok"],
    );
    assert!(files.contains("docs/t-ok.md"), "{files}");
    let no_branch = std::process::Command::new("git")
        .current_dir(&remote.clone)
        .args(["rev-parse", "--verify", "--quiet", "feature/task-t-review"])
        .status()
        .unwrap();
    assert!(!no_branch.success(), "a needs_review task gets no branch");
    assert!(
        github
            .server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        common::git(&remote.clone, &["rev-parse", "HEAD"]),
        head_before
    );
    assert_eq!(common::git(&remote.clone, &["status", "--porcelain"]), "");

    // The would-be PR is stored with the task and shown.
    let (status, pr_url, draft): (String, Option<String>, serde_json::Value) = sqlx::query_as(
        "SELECT status, pr_url, result->'dry_run_pr' FROM tasks WHERE task_id = 't-ok'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), pr_url), ("completed", None));
    assert_eq!(draft["title"], "[Autonomous] Write the docs");
    assert_eq!(draft["head"], "feature/task-t-ok");
    assert_eq!(draft["head_repository"], "bot/r");
    assert_eq!(
        draft["labels"],
        serde_json::json!([
            "autonomous",
            "docs",
            "consensus-approved",
            "security-review"
        ])
    );
    assert!(
        draft["body"]
            .as_str()
            .unwrap()
            .contains("| Architect | 90 | approve |")
    );
    // The same, typed: an approval whose publication is the draft, on a local-only branch.
    let typed = autonomous_dev::store::Store::from_pool(pool.clone())
        .get_task("t-ok")
        .await
        .unwrap()
        .and_then(|t| t.result);
    match typed {
        Some(Outcome::Approved {
            branch,
            publication: Publication::DryRun(typed_draft),
            ..
        }) => {
            assert!(!branch.pushed && branch.branch == "feature/task-t-ok");
            assert_eq!(serde_json::to_value(&typed_draft).unwrap(), draft);
        }
        other => panic!("a dry-run approval expected: {other:?}"),
    }
    let (show, _) = text(&bin.output(&["tasks", "show", "t-ok"]).await);
    for needle in [
        "would-be PR (dry run",
        "[Autonomous] Write the docs",
        "head:     bot:feature/task-t-ok → base main",
        "local only",
        "## PRD",
    ] {
        assert!(show.contains(needle), "{needle} missing:\n{show}");
    }
    let review: String = sqlx::query_scalar("SELECT status FROM tasks WHERE task_id = 't-review'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(review, "needs_review");
}
