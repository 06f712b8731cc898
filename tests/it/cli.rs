//! The command line as a user meets it: settings errors in one line naming the variable,
//! secrets never printed, task files rejected whole, and the task commands.

use crate::common;

use common::{Bin, Remote, text};
use sqlx::PgPool;

/// A `Bin` whose fakes are unreachable (these tests never run the pipeline).
fn bin(pool: &PgPool, remote: &Remote) -> Bin {
    Bin::new(
        &common::database_url(pool),
        remote,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    )
}

fn one_line_naming(stderr: &str, variable: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
    assert!(
        lines[0].contains(variable),
        "{variable} not named: {stderr}"
    );
}

#[sqlx::test]
async fn missing_and_malformed_settings_stop_with_one_line(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);

    let out = bin.clone_without("DATABASE_URL").output(&["stats"]).await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "DATABASE_URL");

    let out = bin
        .clone_without("GITHUB_TOKEN")
        .output(&["run", "--once"])
        .await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "GITHUB_TOKEN");

    let out = bin
        .clone_without("ANTHROPIC_API_KEY")
        .output(&["run", "--once"])
        .await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "ANTHROPIC_API_KEY");

    let out = bin
        .clone_without("REPO_PATH")
        .output(&["run", "--once"])
        .await;
    assert_eq!(out.status.code(), Some(2));
    one_line_naming(&text(&out).1, "REPO_PATH");

    for (variable, value) in [
        ("POLL_INTERVAL", "soon"),
        ("POLL_INTERVAL", "0"),
        ("CONSENSUS_THRESHOLD", "120"),
        ("GITHUB_API_URL", "not a url"),
        ("GITHUB_REPOSITORY", "just-a-name"),
        ("LLM_PROVIDER", "acme"),
    ] {
        let out = bin
            .clone_with(variable, value)
            .output(&["run", "--once"])
            .await;
        assert_eq!(out.status.code(), Some(2), "{variable}={value}");
        one_line_naming(&text(&out).1, variable);
    }

    let out = bin
        .clone_with("CONDITIONAL_THRESHOLD", "90")
        .output(&["run", "--once"])
        .await;
    one_line_naming(&text(&out).1, "CONDITIONAL_THRESHOLD");
}

#[sqlx::test]
async fn secrets_are_never_printed(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    let out = bin.output(&["run", "--help"]).await;
    let (help, _) = text(&out);
    assert!(help.contains("GITHUB_TOKEN"), "{help}");
    assert!(!help.contains(common::GITHUB_TOKEN) && !help.contains(common::ANTHROPIC_API_KEY));

    // A database URL with a password, unreachable: the error says why, not the URL.
    let out = bin
        .clone_with(
            "DATABASE_URL",
            "postgres://app:s3cretPassw0rd@127.0.0.1:9/db",
        )
        .output(&["stats"])
        .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(!stderr.contains("s3cretPassw0rd"), "{stderr}");
    one_line_naming(&stderr, "database");
}

#[sqlx::test]
async fn a_bad_task_file_is_rejected_whole(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    assert!(bin.output(&["migrate"]).await.status.success());
    let file = remote.dir.path().join("tasks.json");
    std::fs::write(
        &file,
        r#"[{"task_id": "a-1", "description": "Do a", "priority": 5},
            {"task_id": "a-2", "description": "Do b", "priority": "high"}]"#,
    )
    .unwrap();
    let out = bin.output(&["tasks", "load", file.to_str().unwrap()]).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    one_line_naming(&stderr, "entry 2");
    assert!(
        stderr.contains("a-2") && stderr.contains("priority"),
        "{stderr}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing written");

    std::fs::write(&file, "{ not json").unwrap();
    let out = bin.output(&["tasks", "load", file.to_str().unwrap()]).await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "line 1");
}

#[sqlx::test]
async fn add_list_show_and_stats(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    assert!(bin.output(&["migrate"]).await.status.success());
    let add = |id: &'static str, priority: &'static str| {
        let bin = &bin;
        async move {
            bin.output(&[
                "tasks",
                "add",
                "--id",
                id,
                "--priority",
                priority,
                "--label",
                "x",
                "Build it\n\nDetails",
            ])
            .await
        }
    };
    assert!(add("low", "1").await.status.success());
    assert!(add("high", "9").await.status.success());
    let out = add("high", "3").await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "already exists");
    let out = bin
        .output(&["tasks", "add", "--id", "../bad", "--priority", "1", "x"])
        .await;
    assert!(!out.status.success());

    let (list, _) = text(&bin.output(&["tasks", "list"]).await);
    let rows: Vec<&str> = list.lines().collect();
    assert!(rows[0].starts_with("TASK"), "{list}");
    assert!(
        rows[1].starts_with("high") && rows[2].starts_with("low"),
        "{list}"
    );
    let (pending, _) = text(
        &bin.output(&["tasks", "list", "--status", "completed"])
            .await,
    );
    assert_eq!(pending.lines().count(), 1, "header only: {pending}");
    let out = bin.output(&["tasks", "list", "--status", "done"]).await;
    assert_eq!(out.status.code(), Some(2));

    let (show, _) = text(&bin.output(&["tasks", "show", "high"]).await);
    for needle in [
        "high",
        "pending",
        "Build it",
        "labels:     x",
        "(none recorded)",
    ] {
        assert!(show.contains(needle), "{needle} missing:\n{show}");
    }
    let out = bin.output(&["tasks", "show", "nope"]).await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "nope");

    let (stats, _) = text(&bin.output(&["stats"]).await);
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pending", "2", "-", "$0.0000"]),
        "{stats}"
    );
}

#[sqlx::test]
async fn cancel_and_retry(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    assert!(bin.output(&["migrate"]).await.status.success());
    let out = bin
        .output(&["tasks", "add", "--id", "c-1", "--priority", "1", "Do it"])
        .await;
    assert!(out.status.success());

    let out = bin.output(&["tasks", "retry", "c-1"]).await;
    assert!(!out.status.success(), "a pending task cannot be retried");
    one_line_naming(&text(&out).1, "pending");

    let (stdout, _) = text(&bin.output(&["tasks", "cancel", "c-1"]).await);
    assert_eq!(stdout.trim(), "cancelled c-1");
    let out = bin.output(&["tasks", "cancel", "c-1"]).await;
    assert!(!out.status.success());
    one_line_naming(&text(&out).1, "already cancelled");

    let out = bin.output(&["tasks", "retry", "c-1", "--fresh"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE task_id = 'c-1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "pending");
    let out = bin.output(&["tasks", "cancel", "nope"]).await;
    one_line_naming(&text(&out).1, "nope");
}

/// A database that was never migrated: the task commands fail with one line that names the
/// missing table and says to run `migrate` (detected by SQLSTATE 42P01, undefined_table).
#[sqlx::test(migrations = false)]
async fn commands_before_migrate_say_to_migrate(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    for args in [
        &["tasks", "list"][..],
        &["tasks", "add", "--id", "a-1", "--priority", "1", "Do a"],
        &["tasks", "cancel", "a-1"],
        &["stats"],
    ] {
        let out = bin.output(args).await;
        assert!(!out.status.success(), "{args:?}");
        let (_, stderr) = text(&out);
        one_line_naming(&stderr, "run `autonomous-dev migrate` first");
        assert!(stderr.contains("tasks"), "names the table: {stderr}");
    }

    // Once migrated, an error of another kind gets no such hint.
    assert!(bin.output(&["migrate"]).await.status.success());
    let out = bin.output(&["tasks", "cancel", "a-1"]).await;
    let (_, stderr) = text(&out);
    one_line_naming(&stderr, "a-1");
    assert!(!stderr.contains("migrate"), "{stderr}");
}

/// `--status` accepts the statuses as `tasks list` prints them, and a wrong one is refused with
/// the accepted values named.
#[sqlx::test]
async fn list_status_takes_the_printed_names(pool: PgPool) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    assert!(bin.output(&["migrate"]).await.status.success());
    let out = bin
        .output(&["tasks", "add", "--id", "p-1", "--priority", "1", "Do it"])
        .await;
    assert!(out.status.success());
    let (list, _) = text(&bin.output(&["tasks", "list", "--status", "pending"]).await);
    assert!(
        list.lines()
            .nth(1)
            .is_some_and(|row| row.contains("pending")),
        "{list}"
    );
    let (list, _) = text(
        &bin.output(&["tasks", "list", "--status", "in_progress"])
            .await,
    );
    assert_eq!(list.lines().count(), 1, "header only: {list}");

    let out = bin
        .output(&["tasks", "list", "--status", "in-progress"])
        .await;
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    one_line_naming(&stderr, "--status");
    for status in ["pending", "in_progress", "needs_review", "cancelled"] {
        assert!(stderr.contains(status), "{status} not offered: {stderr}");
    }
}

#[sqlx::test]
async fn a_push_repository_that_is_the_target_carries_credentials_or_is_cleartext_is_refused(
    pool: PgPool,
) {
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    for (value, reason, code) in [
        ("o/r", "names the target repository o/r", 1),
        ("O/R", "names the target repository o/r", 1),
        (
            "https://github.com/o/r.git",
            "names the target repository",
            1,
        ),
        (
            "https://x-access-token:ghp_inUrl0000@github.com/bot/r.git",
            "must not carry credentials",
            2,
        ),
        ("http://github.com/bot/r.git", "clear text", 2),
        ("just-a-name", "owner/name", 2),
    ] {
        let out = bin
            .clone_with("PUSH_REPOSITORY", value)
            .output(&["run", "--once"])
            .await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(code), "{value}: {stderr}");
        one_line_naming(&stderr, "PUSH_REPOSITORY");
        assert!(stderr.contains(reason), "{value}: {stderr}");
        assert!(
            !stderr.contains("ghp_inUrl0000"),
            "credential printed: {stderr}"
        );
    }
}
