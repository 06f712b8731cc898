//! A task's outcome (`tasks.result`) as a typed value: rows written by the daemon before the
//! outcome was typed — the JSON its `json!` literals wrote, one per decision — read back as
//! [`Outcome`], write back the same JSON, and show in `tasks show` and `tasks list`; a row of no
//! known shape breaks neither the CLI nor the daemon's claim.

use crate::common;

use autonomous_dev::consensus::Decision;
use autonomous_dev::store::Store;
use autonomous_dev::task::{NewTask, Outcome, Publication, Stage, StageRecord, TaskStatus, Usage};
use common::{Bin, Remote, text};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The consensus object as `consensus::Consensus` serialized it (`held` only when non-empty).
fn consensus(score: f64, decision: &str, held: &[&str]) -> Value {
    let mut consensus = json!({
        "score": score,
        "decision": decision,
        "votes": [
            { "role": "pm", "score": null, "vote": "approve", "rationale": "clear" },
            { "role": "architect", "score": 90.0, "vote": "approve", "rationale": "sound" },
            { "role": "engineer", "score": 85.0, "vote": "approve", "rationale": "tested" },
            { "role": "qa", "score": 70.0, "vote": "conditional", "rationale": "thin" },
            { "role": "security", "score": 75.0, "vote": "conditional", "rationale": "ok" },
        ],
    });
    if !held.is_empty() {
        consensus["held"] = json!(held);
    }
    consensus
}

fn branch(pushed: bool) -> Value {
    json!({
        "branch": "feature/task-t",
        "commit": "3f2a9c0d1e4b5a6978877665544332211a0b0c0d",
        "pushed": pushed,
        "reused": false,
    })
}

/// An ended task's row: task id, status, consensus score, result, error.
type EndedRow = (
    &'static str,
    TaskStatus,
    Option<f64>,
    Value,
    Option<&'static str>,
);

/// One row per variant, exactly as the pipeline's `json!` literals wrote them (publish,
/// conclude, rejected_by_pm in pipeline/mod.rs; `TaskFailure::result` in failure.rs): task id,
/// status, consensus score, result, error.
fn rows_of_today() -> Vec<EndedRow> {
    vec![
        (
            "approved-pr",
            TaskStatus::Completed,
            Some(80.0),
            json!({
                "decision": "approved",
                "consensus": consensus(80.0, "approved", &[]),
                "branch": branch(true),
                "pr": {
                    "number": 7,
                    "url": "https://github.com/o/r/pull/7",
                    "labels": ["autonomous", "consensus-approved"],
                },
            }),
            None,
        ),
        (
            "approved-dry",
            TaskStatus::Completed,
            Some(82.5),
            json!({
                "decision": "approved",
                "consensus": consensus(82.5, "approved", &[]),
                "branch": branch(false),
                "dry_run_pr": {
                    "title": "[Autonomous] Write the docs",
                    "head": "feature/task-t",
                    "base": "main",
                    "body": "## Consensus: 82.5% (approve)",
                    "labels": ["autonomous", "docs"],
                },
            }),
            None,
        ),
        (
            "conditional",
            TaskStatus::NeedsReview,
            Some(79.96),
            json!({
                "decision": "conditional",
                "consensus": consensus(79.96, "conditional", &["verification failed"]),
            }),
            None,
        ),
        (
            "rejected",
            TaskStatus::Failed,
            Some(59.999),
            json!({
                "decision": "rejected",
                "consensus": consensus(59.999, "rejected", &[]),
            }),
            Some("rejected by consensus (60.0%)"),
        ),
        (
            "pm-rejected",
            TaskStatus::Failed,
            None,
            json!({
                "decision": "rejected_by_pm",
                "votes": [{ "role": "pm", "score": null, "vote": "reject", "rationale": "vague" }],
            }),
            Some("rejected by the PM"),
        ),
        (
            "budget",
            TaskStatus::Failed,
            None,
            json!({
                "decision": "budget_exceeded",
                "error": "budget exceeded: MAX_TASK_COST_USD 0.50",
            }),
            Some("budget exceeded: MAX_TASK_COST_USD 0.50"),
        ),
        (
            "gates",
            TaskStatus::Failed,
            None,
            json!({
                "decision": "refused_by_gates",
                "error": "refused by the gates: a secret in settings.py line 2 (AWS access key)",
                "gates": {
                    "files_changed": 1,
                    "max_files_changed": 50,
                    "max_file_bytes": 1_048_576,
                    "secrets": [{ "path": "settings.py", "line": 2, "kind": "AWS access key" }],
                    "refused": [],
                    "workflows": [],
                    "automation": [],
                    "dependencies": [],
                    "allow_workflow_changes": false,
                },
            }),
            Some("refused by the gates: a secret in settings.py line 2 (AWS access key)"),
        ),
        (
            "error",
            TaskStatus::Failed,
            None,
            json!({ "decision": "error", "error": "publish failed: nothing to publish" }),
            Some("publish failed: nothing to publish"),
        ),
    ]
}

/// Adds `task_id` and sets its end columns directly, as an older daemon left them.
async fn insert_ended(
    store: &Store,
    pool: &PgPool,
    task_id: &str,
    status: TaskStatus,
    score: Option<f64>,
    result: &Value,
    error: Option<&str>,
) {
    store
        .add_task(&NewTask {
            task_id: task_id.into(),
            description: format!("Write the docs ({task_id})"),
            priority: 1,
            labels: vec!["docs".into()],
            depends_on: vec![],
            reviewers: vec![],
        })
        .await
        .unwrap();
    sqlx::query(
        "UPDATE tasks SET status = $2, consensus_score = $3, result = $4, error = $5, \
         attempts = 1 WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(status)
    .bind(score)
    .bind(result)
    .bind(error)
    .execute(pool)
    .await
    .unwrap();
}

fn bin(pool: &PgPool, remote: &Remote) -> Bin {
    Bin::new(
        &common::database_url(pool),
        remote,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    )
}

async fn show(bin: &Bin, task_id: &str) -> String {
    let out = bin.output(&["tasks", "show", task_id]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
}

#[sqlx::test]
async fn rows_written_before_the_typed_outcome_still_read_and_show(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.migrate().await.unwrap();
    let rows = rows_of_today();
    for (task_id, status, score, result, error) in &rows {
        insert_ended(&store, &pool, task_id, *status, *score, result, *error).await;
    }

    // Every row reads as its typed variant, and writes back the very same JSON.
    for (task_id, _, _, stored, _) in &rows {
        let task = store.get_task(task_id).await.unwrap().unwrap();
        let outcome = task.result.expect("a result");
        assert!(
            !matches!(outcome, Outcome::Unreadable(_)),
            "{task_id}: {outcome:?}"
        );
        assert_eq!(outcome.decision(), stored["decision"], "{task_id}");
        assert_eq!(
            &serde_json::to_value(&outcome).unwrap(),
            stored,
            "{task_id}"
        );
    }
    let typed = |task_id: &str| {
        let store = store.clone();
        let task_id = task_id.to_owned();
        async move {
            store
                .get_task(&task_id)
                .await
                .unwrap()
                .unwrap()
                .result
                .unwrap()
        }
    };
    match typed("approved-pr").await {
        Outcome::Approved {
            consensus,
            branch,
            publication: Publication::Opened(pr),
        } => {
            assert_eq!(consensus.decision, Decision::Approved);
            assert_eq!(consensus.votes.len(), 5);
            assert!(branch.pushed);
            assert_eq!(
                (pr.number, pr.url.as_str()),
                (7, "https://github.com/o/r/pull/7")
            );
        }
        other => panic!("approved with a PR expected: {other:?}"),
    }
    match typed("approved-dry").await {
        Outcome::Approved {
            publication: Publication::DryRun(draft),
            branch,
            ..
        } => {
            assert!(!branch.pushed);
            assert_eq!(draft.labels, ["autonomous", "docs"]);
        }
        other => panic!("approved dry run expected: {other:?}"),
    }
    match typed("conditional").await {
        Outcome::Conditional { consensus } => {
            assert_eq!(consensus.held, ["verification failed"])
        }
        other => panic!("conditional expected: {other:?}"),
    }
    assert!(matches!(typed("rejected").await, Outcome::Rejected { .. }));
    assert!(
        matches!(typed("pm-rejected").await, Outcome::RejectedByPm { votes } if votes[0].vote == "reject")
    );
    assert!(matches!(
        typed("budget").await,
        Outcome::BudgetExceeded { .. }
    ));
    assert!(
        matches!(typed("gates").await, Outcome::RefusedByGates { gates, .. } if gates.secrets[0].line == 2)
    );
    assert!(matches!(typed("error").await, Outcome::Error { .. }));

    // `tasks show` reads them by type.
    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    let approved = show(&bin, "approved-pr").await;
    for needle in [
        "consensus:  80.00%",
        "decision:   approved",
        "branch:     feature/task-t @ 3f2a9c0d1e4b5a6978877665544332211a0b0c0d (pushed)",
    ] {
        assert!(approved.contains(needle), "{needle} missing:\n{approved}");
    }
    assert!(!approved.contains("would-be PR"), "{approved}");
    let dry = show(&bin, "approved-dry").await;
    for needle in [
        "consensus:  82.50%",
        "(local only)",
        "would-be PR (dry run, not opened):",
        "  title:    [Autonomous] Write the docs",
        "  head:     feature/task-t → base main",
        "  labels:   autonomous, docs",
        "    ## Consensus: 82.5% (approve)",
    ] {
        assert!(dry.contains(needle), "{needle} missing:\n{dry}");
    }
    // 79.96 is below the approve threshold and is never shown as 80.
    let conditional = show(&bin, "conditional").await;
    assert!(conditional.contains("consensus:  79.96%"), "{conditional}");
    assert!(
        conditional.contains("decision:   conditional"),
        "{conditional}"
    );
    let rejected = show(&bin, "rejected").await;
    assert!(rejected.contains("consensus:  59.99%"), "{rejected}");
    for (task_id, decision) in [
        ("pm-rejected", "rejected_by_pm"),
        ("budget", "budget_exceeded"),
        ("gates", "refused_by_gates"),
        ("error", "error"),
    ] {
        let out = show(&bin, task_id).await;
        assert!(out.contains(&format!("decision:   {decision}")), "{out}");
        assert!(!out.contains("branch:"), "{out}");
    }

    let out = bin.output(&["tasks", "list"]).await;
    let (list, _) = text(&out);
    assert!(out.status.success());
    let row = |task_id: &str| {
        list.lines()
            .find(|l| l.starts_with(task_id))
            .unwrap_or_default()
            .split_whitespace()
            .nth(3)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(row("conditional"), "79.96");
    assert_eq!(row("rejected"), "59.99");
    assert_eq!(row("approved-dry"), "82.50");
}

#[sqlx::test]
async fn a_result_of_no_known_shape_breaks_nothing(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.migrate().await.unwrap();
    let odd = [
        ("odd-decision", json!({ "decision": "approve" })),
        (
            "odd-fields",
            json!({ "decision": "approved", "branch": "main" }),
        ),
        ("odd-array", json!(["not", "an", "object"])),
    ];
    for (task_id, result) in &odd {
        insert_ended(
            &store,
            &pool,
            task_id,
            TaskStatus::Failed,
            None,
            result,
            Some("x"),
        )
        .await;
    }
    // A pending task with an odd result (e.g. reset by hand) is still claimed.
    insert_ended(
        &store,
        &pool,
        "odd-pending",
        TaskStatus::Pending,
        None,
        &json!({ "decision": "from-the-future", "pr": { "state": "merged" } }),
        None,
    )
    .await;

    for (task_id, result) in &odd {
        let task = store.get_task(task_id).await.unwrap().unwrap();
        assert_eq!(task.result, Some(Outcome::Unreadable(result.clone())));
        // Kept as it is: written back, it is the same JSON.
        assert_eq!(&serde_json::to_value(task.result.unwrap()).unwrap(), result);
    }
    assert_eq!(store.list_tasks(None).await.unwrap().len(), 4);
    let (claimed, lease) = store
        .claim_next("w:1:1", std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the pending task is claimed");
    assert_eq!(claimed.task_id, "odd-pending");
    assert_eq!(
        claimed.result.as_ref().map(Outcome::decision),
        Some("unreadable")
    );
    // A stage output that is not the role's shape is said to be so, for that stage only.
    store
        .save_stage(
            &lease,
            &StageRecord {
                stage: Stage::Pm,
                output: json!({ "vote": "maybe", "rationale": "unsure" }),
                evidence: None,
                score: None,
                model: "claude-test".into(),
                usage: Usage::default(),
                duration_ms: 5,
                created_at: None,
                base_commit: None,
                lookups: Vec::new(),
            },
        )
        .await
        .unwrap();

    let remote = Remote::new();
    let bin = bin(&pool, &remote);
    let out = show(&bin, "odd-pending").await;
    assert!(out.contains("output unreadable: "), "{out}");
    assert!(out.contains("decision:   unreadable"), "{out}");
    let out = show(&bin, "odd-fields").await;
    assert!(out.contains("decision:   unreadable"), "{out}");
    assert!(
        out.contains(
            r#"result:     of no known shape, as stored: {"branch":"main","decision":"approved"}"#
        ),
        "{out}"
    );
    let out = bin.output(&["tasks", "list"]).await;
    let (list, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(list.lines().count(), 5, "{list}");
}
