//! End to end: the Phase 1 backlog loaded through the CLI, `run --once` against the fake
//! Anthropic and GitHub APIs, a real PostgreSQL and a real bare remote.

use crate::common;

use std::path::Path;

use common::{FakeGitHub, FakeModel, Remote, Script, text};
use serde_json::json;
use sqlx::PgPool;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

/// The fake model's script for the backlog: one needs_review, one consensus reject, one PM
/// reject, the other twelve approved.
fn backlog_script(task_id: &str) -> Script {
    match task_id {
        "phase1-012" => Script::Conditional,
        "phase1-013" => Script::Reject,
        "phase1-014" => Script::PmReject,
        _ => Script::Approve,
    }
}

#[sqlx::test]
async fn phase1_backlog_becomes_one_labelled_pr_per_approved_task(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(backlog_script).await;
    let github = FakeGitHub::start().await;
    let env = common::Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    );
    let backlog = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/phase1.json");
    let user_head_before = common::git(&remote.clone, &["rev-parse", "HEAD"]);

    let out = env.output(&["migrate"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let out = env
        .output(&["tasks", "load", backlog.to_str().unwrap()])
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("inserted 15 / skipped 0 / updated 0"),
        "{stdout}"
    );

    // The backlog's dependencies: each run takes the tasks whose dependencies' PRs are merged;
    // then every open PR is merged, as a reviewer would, and the next run takes the next ones.
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 8, "the backlog did not drain");
        let out = env.output(&["run", "--once"]).await;
        let (_, log) = text(&out);
        assert!(out.status.success(), "run --once failed:\n{log}");
        assert!(
            !log.contains(common::GITHUB_TOKEN) && !log.contains(common::ANTHROPIC_API_KEY),
            "secret in log"
        );
        let open: Vec<u64> = github
            .open
            .lock()
            .unwrap()
            .iter()
            .filter(|pr| pr["state"] == "open")
            .map(|pr| pr["number"].as_u64().unwrap())
            .collect();
        if open.is_empty() {
            break;
        }
        for number in open {
            github.set_state(number, "merged");
        }
        common::make_prs_due(&pool).await;
    }
    // phase1-001 first; then the agents, store, consensus and GitHub tasks; the workflow; the
    // engine and the unit tests; the docs, monitoring and integration tests.
    assert_eq!(
        runs, 6,
        "one run per level of the dependencies, and one that finds none"
    );

    // Every approved task: exactly one branch on the remote and one PR with the right labels.
    let approved: Vec<String> = (1..=15)
        .map(|n| format!("phase1-{n:03}"))
        .filter(|id| backlog_script(id) == Script::Approve)
        .collect();
    let expected_branches: Vec<String> = {
        let mut b: Vec<String> = approved
            .iter()
            .map(|id| format!("feature/task-{id}"))
            .collect();
        b.push("main".into());
        b.sort();
        b
    };
    assert_eq!(remote.branches(), expected_branches);

    let pulls = github.pulls().await;
    assert_eq!(pulls.len(), approved.len());
    let mut heads: Vec<&str> = pulls.iter().map(|p| p["head"].as_str().unwrap()).collect();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len(), approved.len(), "one PR per task");
    for pr in &pulls {
        assert_eq!(pr["base"], "main");
        assert!(pr["title"].as_str().unwrap().starts_with("[Autonomous] "));
        let body = pr["body"].as_str().unwrap();
        assert!(
            body.contains("## Consensus: 81.25% (approve)"),
            "consensus in body: {body}"
        );
        assert!(!body.contains(common::GITHUB_TOKEN) && !body.contains(common::ANTHROPIC_API_KEY));
    }
    let labels = github.labels().await;
    assert_eq!(labels.len(), approved.len());
    for (_, labels) in &labels {
        assert_eq!(
            labels,
            &[
                "autonomous",
                "phase-1",
                "consensus-approved",
                "security-review"
            ]
        );
    }

    // The committed files are on the task's branch, with the trailers.
    let log_msg = common::git(
        &remote.bare,
        &["log", "-1", "--format=%B%n%an", "feature/task-phase1-001"],
    );
    assert!(log_msg.starts_with("[Autonomous] "), "{log_msg}");
    assert!(
        log_msg.contains("Task: phase1-001") && log_msg.contains("Consensus: 81.25%"),
        "{log_msg}"
    );
    assert!(log_msg.trim_end().ends_with("autonomous-dev"), "{log_msg}");
    let files = common::git(
        &remote.bare,
        &["ls-tree", "-r", "--name-only", "feature/task-phase1-001"],
    );
    assert!(
        files.contains("docs/phase1-001.md") && files.contains("tests/phase1-001_test.go"),
        "{files}"
    );

    // The user's checkout is untouched.
    assert_eq!(
        common::git(&remote.clone, &["rev-parse", "HEAD"]),
        user_head_before
    );
    assert_eq!(common::git(&remote.clone, &["status", "--porcelain"]), "");

    // Final states in the database.
    let rows: Vec<(String, String, Option<String>, Option<f64>)> = sqlx::query_as(
        "SELECT task_id, status, pr_url, consensus_score FROM tasks ORDER BY task_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (task_id, status, pr_url, score) in &rows {
        let expected = match backlog_script(task_id) {
            Script::Approve => "completed",
            Script::Conditional => "needs_review",
            Script::Reject | Script::PmReject => "failed",
        };
        assert_eq!(status, expected, "{task_id}");
        assert_eq!(pr_url.is_some(), expected == "completed", "{task_id}");
        if backlog_script(task_id) == Script::PmReject {
            assert!(score.is_none());
        }
    }
    let decision: String =
        sqlx::query_scalar("SELECT result->>'decision' FROM tasks WHERE task_id = 'phase1-014'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(decision, "rejected_by_pm");
    // The PM reject spent nothing more: only the PM was asked for phase1-014.
    let asked_after_pm = model
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            common::requested_tool(r) != "submit_prd"
                && r["messages"][0]["content"]
                    .to_string()
                    .contains("phase1-014")
        })
        .count();
    assert_eq!(asked_after_pm, 0);
    assert_eq!(model.calls_to("submit_prd"), 15);
    for request in model.requests.lock().unwrap().iter() {
        let request = request.to_string();
        assert!(
            !request.contains(common::GITHUB_TOKEN) && !request.contains(common::ANTHROPIC_API_KEY)
        );
    }
    assert_eq!(model.calls_to("submit_security_review"), 14);

    // `stats` agrees.
    let out = env.output(&["stats"]).await;
    let (stats, _) = text(&out);
    assert!(out.status.success());
    let line = |status: &str| {
        stats
            .lines()
            .find(|l| l.starts_with(status))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("completed")[..2], ["12", "81.25"]);
    assert_eq!(line("needs_review")[..2], ["1", "70.00"]);
    // Every call was priced: the fake reports usage on each answer.
    assert_ne!(line("completed")[2], "$0.0000");
    assert_eq!(line("failed")[0], "2");
    assert_eq!(line("pending")[0], "0");
    // Per role: its calls and corrective retries (the fake answers valid the first time).
    assert!(stats.contains("CORRECTIVE_RETRIES"), "{stats}");
    let pm: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("PM "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(pm, ["PM", "15", "0", "100%"], "{stats}");

    // `tasks show` tells the whole story of one task.
    let out = env.output(&["tasks", "show", "phase1-001"]).await;
    let (show, _) = text(&out);
    for needle in [
        "PM",
        "approve",
        "Architect",
        "90/100",
        "Security",
        "70/100",
        "consensus:  81.25%",
        "approved",
        "https://github.com/o/r/pull/",
    ] {
        assert!(show.contains(needle), "tasks show lacks {needle}:\n{show}");
    }
    // The base commit every stage read the repository at: origin's main.
    let main = common::git(&remote.bare, &["rev-parse", "main"]);
    assert!(
        show.contains(&format!("base:       {}\n", main.trim())),
        "{show}"
    );
    assert!(!show.contains("on base "), "{show}");
}

#[sqlx::test]
async fn with_push_repository_the_branch_goes_to_the_fork_and_the_pr_head_names_it(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(|_| Script::Approve).await;
    let github = FakeGitHub::start().await;
    // The fork bot/r, as GitHub makes it (every branch of the target copied), served over git's
    // smart HTTP by the fake GitHub host: PUSH_REPOSITORY=bot/r derives its clone URL from
    // GITHUB_API_URL.
    let forks = remote.dir.path().join("forks");
    std::fs::create_dir_all(forks.join("bot")).unwrap();
    let fork = forks.join("bot/r.git");
    common::git(
        remote.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            remote.bare.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    );
    github.serve_git(&forks, common::GITHUB_TOKEN).await;
    // An outside contributor's token may open the PR but not label it: GitHub answers 403.
    Mock::given(method("POST"))
        .and(path_regex(r"^/repos/o/r/issues/\d+/labels$"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by personal access token",
            "documentation_url": "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue",
            "status": "403"
        })))
        .with_priority(1)
        .mount(&github.server)
        .await;
    let env = common::Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("PUSH_REPOSITORY", "bot/r");
    common::migrate_and_add(&env, "fork-001").await;

    let out = env.output(&["run", "--once"]).await;
    let (_, log) = text(&out);
    assert!(out.status.success(), "run --once failed:\n{log}");
    assert!(!log.contains(common::GITHUB_TOKEN), "token in log");

    // The branch is on the fork only; origin keeps just main.
    let branch = "feature/task-fork-001";
    assert_eq!(remote.branches(), ["main"], "pushed to origin");
    let on_fork = common::git(&fork, &["rev-parse", &format!("refs/heads/{branch}")]);
    let parent = common::git(&fork, &["rev-parse", &format!("{branch}^")]);
    let origin_main = common::git(&remote.bare, &["rev-parse", "main"]);
    assert_eq!(parent, origin_main, "not built on origin's main");
    assert!(
        github.git_requests().await > 0,
        "the token never reached the fork"
    );

    // One PR on o/r whose head is the fork's branch.
    let pulls = github.pulls().await;
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0]["head"], format!("bot:{branch}"));
    assert_eq!(pulls[0]["base"], "main");
    assert!(pulls[0].get("head_repo").is_none(), "{}", pulls[0]);
    let (status, pr_url): (String, Option<String>) =
        sqlx::query_as("SELECT status, pr_url FROM tasks WHERE task_id = 'fork-001'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "completed");
    assert_eq!(pr_url.as_deref(), Some("https://github.com/o/r/pull/1"));
    assert!(!on_fork.trim().is_empty());
    // The refused labels are a warning, not a failure: the PR is recorded without them.
    assert_eq!(
        github.labels().await.len(),
        1,
        "labelling was not tried once"
    );
    assert!(log.contains("refused to label"), "{log}");
    let labels: serde_json::Value =
        sqlx::query_scalar("SELECT result->'pr'->'labels' FROM tasks WHERE task_id = 'fork-001'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(labels, json!([]));
}
