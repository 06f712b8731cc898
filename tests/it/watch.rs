//! The PR watch through the binary, against the fake GitHub answering "Get a pull request" as
//! GitHub does (ETag, 304 on a matching If-None-Match, rate-limit headers, 404), a real
//! PostgreSQL and a real bare remote: every `run --once` ends with one sweep; a PR unchanged
//! since its ETag costs a 304; merged and closed PRs are recorded with GitHub's time and no
//! longer looked at; a failed look changes nothing and is tried again; `tasks list`, `tasks
//! show` and `stats` show the states.

use crate::common;

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, text};
use serde_json::Value;
use sqlx::PgPool;

fn approve(_: &str) -> Script {
    Script::Approve
}

/// (pr_state, pr_state_at as text) of each task, by task_id.
async fn states(pool: &PgPool) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT task_id, pr_state, to_char(pr_state_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') \
         FROM tasks ORDER BY task_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn state(open: &str, at: &str) -> (Option<String>, Option<String>) {
    (Some(open.to_owned()), Some(at.to_owned()))
}

#[sqlx::test]
async fn the_daemon_watches_its_prs_with_conditional_requests_until_merged_or_closed(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    );
    assert!(bin.output(&["migrate"]).await.status.success());
    for id in ["t-1", "t-2"] {
        let out = bin
            .output(&[
                "tasks",
                "add",
                "--id",
                id,
                "--priority",
                "1",
                "Write the docs",
            ])
            .await;
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let number = |id: &str| -> u64 {
        let pulls = github.open.lock().unwrap();
        let pr: &Value = pulls
            .iter()
            .find(|pr| pr["head"]["ref"] == format!("feature/task-{id}"))
            .expect("a PR for the task");
        pr["number"].as_u64().unwrap()
    };

    // The run opens both PRs, then its sweep looks at each once.
    let log = bin.run_once().await;
    assert_eq!(*github.gets.lock().unwrap(), (2, 0));
    let opened = "2011-01-26 19:01"; // the documented example's created_at
    let s = states(&pool).await;
    assert_eq!(
        s.iter()
            .map(|r| (r.1.clone(), r.2.clone()))
            .collect::<Vec<_>>(),
        [state("open", opened), state("open", opened)]
    );
    assert!(log.contains("PR watch sweep"), "{log}");

    // Not due yet: no request.
    bin.run_once().await;
    assert_eq!(*github.gets.lock().unwrap(), (2, 0));

    // Due, unchanged: 304s. One PR is gone from GitHub meanwhile: its look fails, nothing
    // changes, and the run still succeeds.
    let gone = {
        let mut open = github.open.lock().unwrap();
        let at = open.iter().position(|pr| pr["number"] == 2).unwrap();
        open.remove(at)
    };
    common::make_prs_due(&pool).await;
    let log = bin.run_once().await;
    assert_eq!(*github.gets.lock().unwrap(), (2, 1));
    assert!(
        log.contains("cannot look at the pull request") && log.contains("not_modified=1"),
        "{log}"
    );
    assert_eq!(states(&pool).await, s, "a failed look changes nothing");
    github.open.lock().unwrap().push(gone);

    // Merged and closed: recorded with GitHub's time.
    github.set_state(number("t-1"), "merged");
    github.set_state(number("t-2"), "closed");
    common::make_prs_due(&pool).await;
    bin.run_once().await;
    assert_eq!(*github.gets.lock().unwrap(), (4, 1));
    let at = "2026-12-01 10:00";
    assert_eq!(
        states(&pool)
            .await
            .into_iter()
            .map(|r| (r.1, r.2))
            .collect::<Vec<_>>(),
        [state("merged", at), state("closed", at)]
    );

    // Merged and closed PRs are not looked at again.
    common::make_prs_due(&pool).await;
    bin.run_once().await;
    assert_eq!(*github.gets.lock().unwrap(), (4, 1));

    let out = bin.output(&["tasks", "list"]).await;
    let (list, _) = text(&out);
    assert!(list.contains("(merged)"), "{list}");
    assert!(list.contains("(closed)"), "{list}");
    let out = bin.output(&["tasks", "show", "t-1"]).await;
    let (show, _) = text(&out);
    assert!(
        show.contains("pr state:   merged since 2026-12-01 10:00:00 UTC"),
        "{show}"
    );
    let out = bin.output(&["stats"]).await;
    let (stats, _) = text(&out);
    assert!(
        stats.contains("pull requests: 1 merged, 0 open, 1 closed unmerged"),
        "{stats}"
    );
}
