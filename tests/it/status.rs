//! The operator's views against a real PostgreSQL holding tasks in every state: the `--json`
//! outputs of `tasks list`, `tasks show`, `stats` and `status` through the binary.

use autonomous_dev::agents::{EngineerEvidence, Round, RoundOutcome, SecurityEvidence};
use autonomous_dev::store::Store;
use autonomous_dev::task::{GateReport, NewTask};
use autonomous_dev::verify::{Verification, VerifyStatus};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{self, Bin, Remote, text};

/// The hostile description: markup that must show as text, never run.
const HOSTILE: &str = "<script>alert('owned')</script><img src=x onerror=alert(1)> Fix the parser";

/// A verification of `make test` with `tail` as its output.
fn verification(status: VerifyStatus, tail: &str) -> Verification {
    Verification {
        status,
        command: Some("make test".into()),
        exit_code: Some(if status == VerifyStatus::Passed { 0 } else { 2 }),
        signal: None,
        environment: None,
        duration_ms: 1_200,
        output_tail: tail.into(),
        reason: None,
        output_withheld: None,
        check_changed: Vec::new(),
    }
}

fn gates() -> GateReport {
    GateReport {
        files_changed: 2,
        max_files_changed: 50,
        max_file_bytes: 1_048_576,
        secrets: Vec::new(),
        refused: Vec::new(),
        workflows: Vec::new(),
        held: Vec::new(),
        automation: Vec::new(),
        dependencies: Vec::new(),
        allow_workflow_changes: false,
    }
}

/// Inserts one stage row of task `task_id` (SQL: the fixture writes what the pipeline would).
async fn stage(
    pool: &PgPool,
    task_id: &str,
    stage: &str,
    output: Value,
    score: Option<f64>,
    evidence: Option<Value>,
) {
    sqlx::query(
        "INSERT INTO task_stages (task, stage, output, score, model, input_tokens, output_tokens, \
             cache_creation_input_tokens, cache_read_input_tokens, duration_ms, evidence, base_commit) \
         SELECT id, $2, $3, $4, 'claude-sonnet-4-5', 1200, 300, 50, 900, 4200, $5, $6 \
         FROM tasks WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(stage)
    .bind(output)
    .bind(score)
    .bind(evidence)
    .bind("a".repeat(40))
    .execute(pool)
    .await
    .unwrap();
}

async fn call(pool: &PgPool, task_id: &str, stage: &str, cost: f64, days_ago: i32) {
    sqlx::query(
        "INSERT INTO llm_calls (task, stage, model, kind, input_tokens, output_tokens, \
             cache_creation_input_tokens, cache_read_input_tokens, cost_usd, created_at) \
         SELECT id, $2, 'claude-sonnet-4-5', 'answer', 1200, 300, 50, 900, $3, \
                now() - make_interval(days => $4) \
         FROM tasks WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(stage)
    .bind(cost)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
}

async fn set(pool: &PgPool, task_id: &str, assignments: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET {assignments} WHERE task_id = $1"
    )))
    .bind(task_id)
    .execute(pool)
    .await
    .unwrap();
}

/// A queue with a task in every state (and one pending waiting out a snooze), stages with
/// evidence, spend over several days, and `extra` more pending tasks for paging.
async fn seed(pool: &PgPool, extra: usize) -> Store {
    let store = Store::from_pool(pool.clone());
    let task = |id: &str, description: &str, labels: &[&str]| NewTask {
        task_id: id.into(),
        description: description.into(),
        priority: 5,
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        depends_on: Vec::new(),
    };
    let mut tasks = vec![
        task("t-hostile", HOSTILE, &["docs"]),
        task("t-running", "Add the cache", &["perf"]),
        task("t-done", "Write the docs\n\nAll of them.", &["docs"]),
        task("t-failed", "Rewrite everything in one go", &[]),
        task("t-review", "Tune the parser", &[]),
        task("t-cancelled", "Drop the old API", &[]),
        task("t-blocked", "Use the cache", &[]),
        task("t-snoozed", "Add metrics", &[]),
    ];
    for n in 0..extra {
        let mut t = task(&format!("bulk-{n:04}"), "A bulk task", &["bulk"]);
        t.priority = 1;
        tasks.push(t);
    }
    store.load_tasks(&tasks, false).await.unwrap();

    set(
        pool,
        "t-running",
        "status = 'in_progress', locked_by = 'host:42:0', attempts = 1, started_at = now() - interval '5 minutes', \
         lease_expires_at = now() + interval '60 seconds', fencing_token = 1",
    )
    .await;
    let pm = json!({
        "prd": "Cache the listing.", "acceptance_criteria": ["it caches"],
        "vote": "approve", "rationale": "Clear and small: <b>worth it</b>."
    });
    stage(pool, "t-running", "pm", pm.clone(), None, None).await;

    let outcome = serde_json::to_value(common::approved_outcome(85.0)).unwrap();
    set(
        pool,
        "t-done",
        "status = 'completed', attempts = 1, started_at = now() - interval '1 hour', \
         completed_at = now(), consensus_score = 85, \
         pr_url = 'https://github.com/o/r/pull/1', pr_state = 'merged', pr_state_at = now(), \
         locked_by = 'host:42:0'",
    )
    .await;
    sqlx::query("UPDATE tasks SET result = $2 WHERE task_id = $1")
        .bind("t-done")
        .bind(&outcome)
        .execute(pool)
        .await
        .unwrap();
    stage(pool, "t-done", "pm", pm, None, None).await;
    let failed_run = verification(VerifyStatus::Failed, "FAIL: test_parse <expected>\n");
    let passed_run = verification(VerifyStatus::Passed, "ok  all 12 tests\n");
    let engineer = EngineerEvidence {
        rounds: vec![
            Round {
                round: 0,
                outcome: RoundOutcome::Verified {
                    verification: failed_run,
                },
            },
            Round {
                round: 1,
                outcome: RoundOutcome::Verified {
                    verification: passed_run.clone(),
                },
            },
        ],
        verification: passed_run.clone(),
    };
    stage(
        pool,
        "t-done",
        "engineer",
        json!({"summary": "Wrote it.", "files": [], "edits": [], "score": 90, "rationale": "Wrote it."}),
        Some(90.0),
        Some(serde_json::to_value(&engineer).unwrap()),
    )
    .await;
    let security = SecurityEvidence {
        gates: gates(),
        verification: passed_run,
        files: Default::default(),
    };
    stage(
        pool,
        "t-done",
        "security",
        json!({
            "introduces_privilege_escalation": false,
            "destructive_operations_without_safeguards": false,
            "unvalidated_external_api": false,
            "missing_audit_logging": false,
            "encryption_at_rest_and_in_transit": true,
            "advanced_audit_logging": false,
            "findings": [],
            "rationale": "Nothing found."
        }),
        Some(80.0),
        Some(serde_json::to_value(&security).unwrap()),
    )
    .await;

    set(
        pool,
        "t-failed",
        "status = 'failed', attempts = 1, completed_at = now() - interval '2 days', \
         error = 'rejected by the PM'",
    )
    .await;
    set(
        pool,
        "t-review",
        "status = 'needs_review', attempts = 1, completed_at = now(), consensus_score = 70",
    )
    .await;
    set(
        pool,
        "t-cancelled",
        "status = 'cancelled', completed_at = now()",
    )
    .await;
    set(pool, "t-blocked", "status = 'blocked'").await;
    set(
        pool,
        "t-snoozed",
        "run_after = now() + interval '1 hour', attempts = 1, \
         error = 'rate limited by the provider (429)'",
    )
    .await;

    for (task, role, cost, days_ago) in [
        ("t-done", "pm", 0.05, 0),
        ("t-done", "engineer", 0.20, 0),
        ("t-done", "security", 0.04, 1),
        ("t-failed", "pm", 0.03, 2),
        ("t-running", "pm", 0.01, 0),
    ] {
        call(pool, task, role, cost, days_ago).await;
    }
    store
}

fn bin(pool: &PgPool, remote: &Remote) -> Bin {
    Bin::new(
        &common::database_url(pool),
        remote,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    )
}

async fn json_of(bin: &Bin, args: &[&str]) -> Value {
    let out = bin.output(args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[sqlx::test]
async fn the_json_outputs_have_their_documented_shape(pool: PgPool) {
    seed(&pool, 0).await;
    let remote = Remote::new();
    let bin = bin(&pool, &remote);

    let list = json_of(&bin, &["tasks", "list", "--json"]).await;
    assert_eq!(list["total"], 8, "{list}");
    assert_eq!(list["offset"], 0);
    assert!(list["limit"].is_null());
    let tasks = list["tasks"].as_array().unwrap();
    let done = tasks.iter().find(|t| t["task_id"] == "t-done").unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["title"], "Write the docs");
    assert_eq!(done["pr"]["url"], "https://github.com/o/r/pull/1");
    assert_eq!(done["pr"]["state"], "merged");
    assert_eq!(done["consensus_score"], 85.0);
    assert!(
        (done["cost_usd"].as_f64().unwrap() - 0.29).abs() < 1e-9,
        "{done}"
    );
    assert!(
        done["created_at"].as_str().unwrap().ends_with('Z'),
        "{done}"
    );
    let filtered = json_of(
        &bin,
        &[
            "tasks", "list", "--json", "--status", "pending", "--label", "docs",
        ],
    )
    .await;
    let ids: Vec<&str> = filtered["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t-hostile"]);

    let show = json_of(&bin, &["tasks", "show", "--json", "t-done"]).await;
    assert_eq!(show["task_id"], "t-done");
    assert_eq!(show["description"], "Write the docs\n\nAll of them.");
    assert_eq!(show["outcome"]["decision"], "approved");
    assert_eq!(show["outcome"]["pr"]["number"], 1);
    let stages = show["stages"].as_array().unwrap();
    let roles: Vec<&str> = stages.iter().map(|s| s["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["pm", "engineer", "security"]);
    assert_eq!(stages[0]["vote"], "approve");
    assert_eq!(stages[0]["usage"]["cache_read_input_tokens"], 900);
    assert_eq!(
        stages[1]["engineer_evidence"]["rounds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(stages[2]["security_evidence"]["gates"]["files_changed"], 2);
    assert_eq!(show["costs"][0]["stage"], "pm");
    // A stage's whole output (the prompt's material) is not part of the view.
    assert!(stages[0].get("output").is_none() && stages[0].get("prd").is_none());
    let out = bin.output(&["tasks", "show", "--json", "nope"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("task 'nope' not found"),
        "{:?}",
        text(&out)
    );

    let stats = json_of(&bin, &["stats", "--json"]).await;
    let statuses = stats["statuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 7);
    assert_eq!(statuses[0]["status"], "pending");
    assert_eq!(statuses[0]["count"], 2);
    assert_eq!(stats["prs"]["merged"], 1);
    assert_eq!(stats["roles"][0]["role"], "pm");
    assert_eq!(stats["roles"][0]["calls"], 3);
    assert_eq!(stats["roles"][0]["first_try_valid"], 1.0);
    assert!((stats["total_cost_usd"].as_f64().unwrap() - 0.33).abs() < 1e-9);

    let status = json_of(&bin, &["status", "--json"]).await;
    assert_eq!(status["counts"][1]["status"], "in_progress");
    assert_eq!(status["counts"][1]["count"], 1);
    assert_eq!(status["workers"][0]["worker"], "host:42:0");
    assert_eq!(status["workers"][0]["task_id"], "t-running");
    assert_eq!(status["workers"][0]["stage"], "architect");
    assert_eq!(status["waiting"][0]["task_id"], "t-snoozed");
    let days = status["spend"]["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert!(
        (days[29]["spent_usd"].as_f64().unwrap() - 0.26).abs() < 1e-9,
        "{days:?}"
    );
    assert_eq!(days[29]["finished"], 3, "{days:?}");
    assert_eq!(status["spend"]["by_role_model"][0]["stage"], "pm");
    assert_eq!(status["spend"]["by_role_model"][0]["calls"], 3);

    let out = bin.output(&["status"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for expected in [
        "1 in_progress",
        "host:42:0",
        "t-snoozed",
        "Architect",
        "spent today",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
}
