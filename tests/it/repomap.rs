//! The repository map in the daemon's prompts (issue 16): a run on a real repository shows
//! every role the map ranked for the task — the same shared first block for all of them, so
//! the prompt cache holds — and caches the parsed map per tree in the clone; REPO_MAP_TOKENS=0
//! shows the bare listing. `bench localize` refuses bad input with a clear error.

use crate::common;

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, text};
use serde_json::Value;
use sqlx::PgPool;

/// A Go target where the task's words name a function in one file of several.
fn remote() -> Remote {
    Remote::with_files(&[
        ("README.md", "# target\n"),
        (
            "cmd/main.go",
            "package main\n\nfunc main() { serve.Start(); }\n",
        ),
        (
            "serve/server.go",
            "package serve\n\nfunc Start() { listen() }\n\nfunc listen() {}\n",
        ),
        (
            "billing/invoice.go",
            "package billing\n\n// RoundTotal rounds an invoice's total to cents.\nfunc RoundTotal(cents int64) int64 { return cents }\n",
        ),
        ("docs/guide.md", "# Guide\n"),
    ])
}

/// The text of the first user content block of `request` (the shared, cached prefix).
fn shared_block(request: &Value) -> String {
    request["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn run_one(pool: &PgPool, remote: &Remote, extra: &[(&str, &str)]) -> Vec<Value> {
    let model = FakeModel::start(|_| Script::Approve).await;
    let github = FakeGitHub::start().await;
    let mut bin = Bin::new(
        &common::database_url(pool),
        remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_without("GITHUB_TOKEN");
    for (key, value) in extra {
        bin = bin.clone_with(key, value);
    }
    assert!(bin.output(&["migrate"]).await.status.success());
    let out = bin
        .output(&[
            "tasks",
            "add",
            "--id",
            "t-round",
            "--priority",
            "1",
            "RoundTotal must round half-cents up on invoices",
        ])
        .await;
    assert!(out.status.success(), "{:?}", text(&out));
    let out = bin.output(&["run", "--once", "--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    model.requests.lock().unwrap().clone()
}

#[sqlx::test]
async fn every_role_shares_the_map_ranked_for_the_task(pool: PgPool) {
    let remote = remote();
    let requests = run_one(&pool, &remote, &[]).await;
    assert!(requests.len() >= 5, "every role asked: {}", requests.len());
    let first = shared_block(&requests[0]);
    for request in &requests {
        assert_eq!(
            shared_block(request),
            first,
            "one shared prefix for every role"
        );
    }
    assert!(
        first.contains("<repository_listing truncated=\"false\" kind=\"map\">"),
        "{first}"
    );
    let body = first
        .split("kind=\"map\">\n")
        .nth(1)
        .and_then(|rest| rest.split("\n</repository_listing>").next())
        .unwrap();
    // The file the task is about comes first, with its signature.
    assert!(
        body.starts_with("billing/invoice.go\n  4: func RoundTotal(cents int64) int64"),
        "{body}"
    );
    for path in [
        "README.md",
        "cmd/main.go",
        "serve/server.go",
        "docs/guide.md",
    ] {
        assert!(body.lines().any(|l| l == path), "{path} in {body}");
    }
    // The parsed map is cached in the clone, keyed by the base's tree.
    let tree = common::git(&remote.clone, &["rev-parse", "origin/main^{tree}"]);
    let cache = remote
        .clone
        .join(".git/autonomous-dev/repomap")
        .join(format!("{}.json", tree.trim()));
    assert!(cache.exists(), "{}", cache.display());
}

#[sqlx::test]
async fn repo_map_tokens_zero_shows_the_bare_listing(pool: PgPool) {
    let remote = remote();
    let requests = run_one(&pool, &remote, &[("REPO_MAP_TOKENS", "0")]).await;
    let first = shared_block(&requests[0]);
    assert!(
        first.contains(
            "<repository_listing truncated=\"false\">\nREADME.md\nbilling/invoice.go\ncmd/main.go\n"
        ),
        "{first}"
    );
    assert!(!first.contains("kind=\"map\""));
}

#[tokio::test]
async fn bench_localize_refuses_what_it_cannot_measure() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_autonomous-dev");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .args(args)
            .output()
            .unwrap()
    };
    let path = dir.path().to_str().unwrap();
    let out = run(&["bench", "localize", "--repo", path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a git repository"), "{stderr}");

    let remote = remote();
    let clone = remote.clone.to_str().unwrap();
    let out = run(&["bench", "localize", "--repo", clone, "--cases", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has only 0 commits"), "{stderr}");
}
