//! Integration tests of the store against PostgreSQL: each `#[sqlx::test]` gets a fresh database
//! with `migrations/` applied. Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/x).

use crate::common;

use std::collections::HashSet;

use std::time::Duration;

use autonomous_dev::store::{Call, Finish, Lease, LoadReport, Store, StoreError, parse_task_file};
use autonomous_dev::task::{
    CallKind, NewTask, Outcome, Stage, StageRecord, Task, TaskStatus, Usage,
};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;

fn new_task(task_id: &str, priority: i32) -> NewTask {
    NewTask {
        task_id: task_id.to_string(),
        description: format!("Build {task_id}\nDetails."),
        priority,
        labels: vec!["phase-1".to_string()],
        depends_on: vec![],
        reviewers: vec![],
    }
}

const WORKER: &str = "test-host:1:0";

/// Claims the next task for [`WORKER`] with a one-minute lease.
async fn claim(store: &Store) -> Option<Task> {
    let (task, lease) = store
        .claim_next(WORKER, Duration::from_secs(60))
        .await
        .unwrap()?;
    assert_eq!(lease, lease_of(&task));
    Some(task)
}

/// The lease a claim of `task` (as returned by the claim) holds.
fn lease_of(task: &Task) -> Lease {
    Lease {
        task: task.id,
        token: task.queue.fencing_token,
        worker: WORKER.to_string(),
    }
}

async fn count_tasks(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Sets a task's created_at to `minutes` ago, to control the claim's age tiebreak.
async fn age(pool: &PgPool, task_id: &str, minutes: i32) {
    sqlx::query(
        "UPDATE tasks SET created_at = now() - make_interval(mins => $2) \
         WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(minutes)
    .execute(pool)
    .await
    .unwrap();
}

fn stage_record(stage: Stage, score: Option<f64>) -> StageRecord {
    StageRecord {
        stage,
        output: json!({ "stage": stage.to_string(), "notes": ["a", "b"] }),
        evidence: (stage == Stage::Engineer)
            .then(|| json!({ "verification": { "status": "passed" } })),
        score,
        model: "claude-test".to_string(),
        usage: Usage {
            input_tokens: 1000,
            output_tokens: 200,
            cache_creation_input_tokens: 30,
            cache_read_input_tokens: 4,
        },
        duration_ms: 1234,
        created_at: None,
        base_commit: None,
        lookups: Vec::new(),
    }
}

/// The outcome an approved task with PR #1 records.
fn approved() -> Outcome {
    common::approved_outcome(87.5)
}

fn finish(status: TaskStatus) -> Finish {
    Finish {
        status,
        consensus_score: Some(87.5),
        result: approved(),
        pr_url: Some("https://github.com/o/r/pull/1".to_string()),
        error: None,
    }
}

#[sqlx::test]
async fn claims_by_priority_then_age_then_id(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let tasks = [
        new_task("low-old", 1),
        new_task("high-new", 5),
        new_task("high-old-a", 5),
        new_task("high-old-b", 5),
    ];
    store.load_tasks(&tasks, false).await.unwrap();
    age(&pool, "low-old", 60).await;
    age(&pool, "high-new", 1).await;
    age(&pool, "high-old-a", 30).await;
    age(&pool, "high-old-b", 30).await; // same age as -a, inserted later: higher id

    let mut order = Vec::new();
    while let Some(task) = claim(&store).await {
        assert_eq!(task.status, TaskStatus::InProgress);
        assert_eq!(task.attempts, 1);
        assert!(task.started_at.is_some());
        order.push(task.task_id);
    }
    assert_eq!(order, ["high-old-a", "high-old-b", "high-new", "low-old"]);
    assert!(claim(&store).await.is_none());
}

#[sqlx::test]
async fn claim_on_an_empty_queue_is_none(pool: PgPool) {
    let store = Store::from_pool(pool);
    assert!(claim(&store).await.is_none());
}

#[sqlx::test]
async fn claim_skips_tasks_that_are_not_pending(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("done", 9)).await.unwrap();
    store.add_task(&new_task("todo", 1)).await.unwrap();
    sqlx::query("UPDATE tasks SET status = 'cancelled' WHERE task_id = 'done'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(claim(&store).await.unwrap().task_id, "todo");
    assert!(claim(&store).await.is_none());
}

#[sqlx::test]
async fn concurrent_claimers_never_share_a_task(pool: PgPool) {
    let store = Store::from_pool(pool);
    let tasks: Vec<NewTask> = (0..50)
        .map(|i| new_task(&format!("t-{i:02}"), i % 3))
        .collect();
    store.load_tasks(&tasks, false).await.unwrap();

    let workers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(task) = claim(&store).await {
                    mine.push(task.task_id);
                    tokio::task::yield_now().await;
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 50, "every task claimed exactly once");
    assert_eq!(distinct.len(), 50);
    let in_progress = store
        .list_tasks(Some(TaskStatus::InProgress))
        .await
        .unwrap();
    assert_eq!(in_progress.len(), 50);
    assert!(in_progress.iter().all(|t| t.attempts == 1));
}

#[sqlx::test]
async fn a_file_with_one_bad_entry_writes_nothing(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let file = r#"[
        {"task_id": "phase1-001", "description": "A", "priority": 1},
        {"task_id": "phase1-002", "description": "B", "priority": 2},
        {"task_id": "phase1-003", "description": "C", "priority": "high"}]"#;
    let error = match parse_task_file(file) {
        Ok(tasks) => store
            .load_tasks(&tasks, false)
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("entry 3"), "{error}");
    assert!(error.contains("phase1-003"), "{error}");
    assert!(error.contains("\"priority\""), "{error}");
    assert_eq!(count_tasks(&pool).await, 0);
}

#[sqlx::test]
async fn load_tasks_is_all_or_nothing(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    // Refused by validation before any SQL.
    let mut bad = new_task("bad", 0);
    bad.labels = vec!["a,b".to_string()];
    let e = store
        .load_tasks(&[new_task("ok", 0), bad], false)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    assert!(e.to_string().contains("entry 2"), "{e}");
    // Refused by the database (text cannot hold NUL) after earlier rows were written.
    let mut nul = new_task("nul", 0);
    nul.description = "has \0 inside".to_string();
    let e = store
        .load_tasks(&[new_task("ok-1", 0), new_task("ok-2", 0), nul], false)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Database(_)), "{e}");
    assert_eq!(count_tasks(&pool).await, 0);
}

#[sqlx::test]
async fn load_counts_inserted_skipped_and_updated(pool: PgPool) {
    let store = Store::from_pool(pool);
    let first = [new_task("a", 1), new_task("b", 2), new_task("c", 3)];
    let report = store.load_tasks(&first, false).await.unwrap();
    assert_eq!(
        report,
        LoadReport {
            inserted: 3,
            skipped: 0,
            updated: 0
        }
    );

    // Without --update, existing task_ids are skipped even when they differ.
    let mut changed_a = new_task("a", 100);
    changed_a.description = "New A".to_string();
    let report = store
        .load_tasks(&[changed_a.clone(), new_task("d", 4)], false)
        .await
        .unwrap();
    assert_eq!(
        report,
        LoadReport {
            inserted: 1,
            skipped: 1,
            updated: 0
        }
    );
    assert_eq!(store.get_task("a").await.unwrap().unwrap().priority, 1);

    // "c" (priority 3)... "d" has the highest priority: claim it, so it is no longer pending.
    let claimed = claim(&store).await.unwrap();
    assert_eq!(claimed.task_id, "d");

    // With --update: "a" and "b" change (pending), "c" is unchanged, "d" is in progress, "e" new.
    let mut changed_b = new_task("b", 2);
    changed_b.labels = vec!["phase-2".to_string(), "ui".to_string()];
    let mut changed_d = new_task("d", 0);
    changed_d.description = "Must not be applied".to_string();
    let report = store
        .load_tasks(
            &[
                changed_a,
                changed_b,
                new_task("c", 3),
                changed_d,
                new_task("e", 0),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        report,
        LoadReport {
            inserted: 1,
            skipped: 2,
            updated: 2
        }
    );
    let a = store.get_task("a").await.unwrap().unwrap();
    assert_eq!((a.description.as_str(), a.priority), ("New A", 100));
    let b = store.get_task("b").await.unwrap().unwrap();
    assert_eq!(b.labels, ["phase-2", "ui"]);
    let d = store.get_task("d").await.unwrap().unwrap();
    assert_eq!(d.status, TaskStatus::InProgress);
    assert_eq!(d.description, "Build d\nDetails.");
    assert_eq!(d.priority, 4);

    // A repeated task_id within one call is refused.
    let e = store
        .load_tasks(&[new_task("x", 0), new_task("x", 1)], true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("duplicate of entry 1"), "{e}");
    assert!(store.get_task("x").await.unwrap().is_none());

    assert_eq!(
        store.load_tasks(&[], true).await.unwrap(),
        LoadReport::default()
    );
}

#[sqlx::test]
async fn add_task_round_trips_and_refuses_a_duplicate(pool: PgPool) {
    let store = Store::from_pool(pool);
    let mut task = new_task("phase1-001", 7);
    task.labels = vec!["phase-1".to_string(), "backend".to_string()];
    store.add_task(&task).await.unwrap();

    let stored = store.get_task("phase1-001").await.unwrap().unwrap();
    assert_eq!(stored.task_id, task.task_id);
    assert_eq!(stored.description, task.description);
    assert_eq!(stored.priority, 7);
    assert_eq!(stored.labels, task.labels);
    assert_eq!(stored.status, TaskStatus::Pending);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.title(80), "Build phase1-001");
    assert!(stored.started_at.is_none() && stored.completed_at.is_none());
    assert!(stored.pr_url.is_none() && stored.result.is_none() && stored.error.is_none());
    assert_eq!(stored.created_at, stored.updated_at);

    let mut again = new_task("phase1-001", 1);
    again.description = "Other".to_string();
    match store.add_task(&again).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, "phase1-001"),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    let e = store.add_task(&new_task("bad/id", 0)).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    assert!(store.get_task("nope").await.unwrap().is_none());
}

#[sqlx::test]
async fn list_tasks_orders_and_filters(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let tasks = [
        new_task("p1", 1),
        new_task("p9", 9),
        new_task("p5-old", 5),
        new_task("p5-new", 5),
    ];
    store.load_tasks(&tasks, false).await.unwrap();
    age(&pool, "p5-old", 10).await;
    claim(&store).await; // p9

    let all: Vec<String> = store
        .list_tasks(None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(all, ["p9", "p5-old", "p5-new", "p1"]);
    let pending: Vec<String> = store
        .list_tasks(Some(TaskStatus::Pending))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(pending, ["p5-old", "p5-new", "p1"]);
    assert!(
        store
            .list_tasks(Some(TaskStatus::Failed))
            .await
            .unwrap()
            .is_empty()
    );
}

#[sqlx::test]
async fn stats_count_every_status_with_mean_scores(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let tasks: Vec<NewTask> = (0..6).map(|i| new_task(&format!("s{i}"), 10 - i)).collect();
    store.load_tasks(&tasks, false).await.unwrap();
    for (score, status) in [
        (Some(90.0), TaskStatus::Completed),
        (Some(80.0), TaskStatus::Completed),
        (Some(40.0), TaskStatus::NeedsReview),
        (None, TaskStatus::Failed),
    ] {
        let task = claim(&store).await.unwrap();
        let mut end = finish(status);
        end.consensus_score = score;
        store.finish(&lease_of(&task), &end).await.unwrap();
    }
    claim(&store).await; // s4 in progress; s5 stays pending

    let stats = store.stats().await.unwrap();
    let statuses: Vec<TaskStatus> = stats.iter().map(|s| s.status).collect();
    assert_eq!(statuses, TaskStatus::ALL);
    let row = |status| stats.iter().find(|s| s.status == status).unwrap();
    assert_eq!(row(TaskStatus::Pending).count, 1);
    assert_eq!(row(TaskStatus::InProgress).count, 1);
    assert_eq!(row(TaskStatus::Completed).count, 2);
    assert_eq!(row(TaskStatus::Completed).avg_score, Some(85.0));
    assert_eq!(row(TaskStatus::NeedsReview).avg_score, Some(40.0));
    assert_eq!(row(TaskStatus::Failed).count, 1);
    assert_eq!(row(TaskStatus::Failed).avg_score, None);
    assert_eq!(row(TaskStatus::Cancelled).count, 0);
    assert_eq!(row(TaskStatus::Cancelled).avg_score, None);
}

#[sqlx::test]
async fn stats_on_an_empty_table_list_every_status(pool: PgPool) {
    let stats = Store::from_pool(pool).stats().await.unwrap();
    assert_eq!(stats.len(), TaskStatus::ALL.len());
    assert!(stats.iter().all(|s| s.count == 0 && s.avg_score.is_none()));
}

#[sqlx::test]
async fn corrective_retries_are_counted_per_stage_and_per_role(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.add_task(&new_task("t", 0)).await.unwrap();
    let task = claim(&store).await.unwrap();
    let calls = [
        (Stage::Pm, CallKind::Answer),
        (Stage::Pm, CallKind::Correction),
        (Stage::Engineer, CallKind::Answer),
        (Stage::Engineer, CallKind::Feedback),
        (Stage::Engineer, CallKind::Correction),
    ];
    for (stage, kind) in calls {
        let call = Call {
            task: task.id,
            stage,
            model: "m",
            kind,
            usage: Usage::default(),
            cost_usd: 0.01,
        };
        store.record_call(&call).await.unwrap();
    }

    let costs = store.stage_costs(task.id).await.unwrap();
    let per_stage: Vec<(Stage, i64, i64)> = costs
        .iter()
        .map(|c| (c.stage, c.calls, c.corrections))
        .collect();
    assert_eq!(per_stage, [(Stage::Pm, 2, 1), (Stage::Engineer, 3, 1)]);
    let roles = store.role_calls().await.unwrap();
    let per_role: Vec<(Stage, i64, i64)> = roles
        .iter()
        .map(|r| (r.stage, r.calls, r.corrections))
        .collect();
    assert_eq!(
        per_role,
        [
            (Stage::Pm, 2, 1),
            (Stage::Architect, 0, 0),
            (Stage::Engineer, 3, 1),
            (Stage::Qa, 0, 0),
            (Stage::Security, 0, 0),
        ]
    );
}

#[sqlx::test]
async fn save_stage_upserts_and_stages_come_in_pipeline_order(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let task = claim(&store).await.unwrap();

    // Saved out of order (and out of alphabetical order).
    for stage in [
        Stage::Security,
        Stage::Qa,
        Stage::Pm,
        Stage::Engineer,
        Stage::Architect,
    ] {
        let score = (stage != Stage::Pm).then_some(70.0);
        store
            .save_stage(&lease_of(&task), &stage_record(stage, score))
            .await
            .unwrap();
    }
    // A re-run replaces the record.
    let mut rerun = stage_record(Stage::Qa, Some(95.5));
    rerun.model = "claude-other".to_string();
    rerun.usage.output_tokens = 999;
    rerun.output = json!({ "rerun": true });
    store.save_stage(&lease_of(&task), &rerun).await.unwrap();

    let stages = store.stages(task.id).await.unwrap();
    let order: Vec<Stage> = stages.iter().map(|s| s.stage).collect();
    assert_eq!(order, Stage::ALL);
    let pm = &stages[0];
    assert_eq!(pm.score, None);
    assert_eq!(pm.output, json!({ "stage": "pm", "notes": ["a", "b"] }));
    assert_eq!(pm.usage, stage_record(Stage::Pm, None).usage);
    assert_eq!(pm.duration_ms, 1234);
    assert!(pm.created_at.is_some());
    let qa = &stages[3];
    assert_eq!(qa.score, Some(95.5));
    assert_eq!(qa.model, "claude-other");
    assert_eq!(qa.usage.output_tokens, 999);
    assert_eq!(qa.output, json!({ "rerun": true }));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM task_stages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 5);

    assert!(store.stages(task.id + 1000).await.unwrap().is_empty());
    let mut unknown = lease_of(&task);
    unknown.task += 1000;
    let e = store
        .save_stage(&unknown, &stage_record(Stage::Pm, None))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::LeaseLost(id) if id == task.id + 1000),
        "{e}"
    );
}

#[sqlx::test]
async fn finish_ends_an_in_progress_task_only(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.add_task(&new_task("t", 0)).await.unwrap();
    let pending = store.get_task("t").await.unwrap().unwrap();
    let e = store
        .finish(&lease_of(&pending), &finish(TaskStatus::Completed))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::LeaseLost(id) if id == pending.id),
        "{e}"
    );

    let task = claim(&store).await.unwrap();
    let e = store
        .finish(&lease_of(&task), &finish(TaskStatus::Pending))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");

    store
        .finish(&lease_of(&task), &finish(TaskStatus::Completed))
        .await
        .unwrap();
    let done = store.get_task("t").await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.consensus_score, Some(87.5));
    assert_eq!(done.result, Some(approved()));
    assert_eq!(
        done.pr_url.as_deref(),
        Some("https://github.com/o/r/pull/1")
    );
    assert_eq!(done.error, None);
    let completed_at = done.completed_at.expect("completed_at is set");
    assert!(completed_at >= done.started_at.unwrap());
    assert!(done.updated_at >= done.created_at);

    // A stale worker cannot overwrite the outcome.
    let mut stale = finish(TaskStatus::Failed);
    stale.error = Some("late".to_string());
    let e = store.finish(&lease_of(&task), &stale).await.unwrap_err();
    assert!(matches!(e, StoreError::LeaseLost(_)), "{e}");
    assert_eq!(
        store.get_task("t").await.unwrap().unwrap().status,
        TaskStatus::Completed
    );
    let mut unknown = lease_of(&task);
    unknown.task = 99_999;
    assert!(matches!(
        store.finish(&unknown, &finish(TaskStatus::Failed)).await,
        Err(StoreError::LeaseLost(99_999))
    ));
}

#[sqlx::test]
async fn finish_records_failures_and_reviews(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.add_task(&new_task("f", 1)).await.unwrap();
    store.add_task(&new_task("r", 0)).await.unwrap();
    let f = claim(&store).await.unwrap();
    let mut failed = finish(TaskStatus::Failed);
    failed.consensus_score = None;
    failed.pr_url = None;
    failed.error = Some("engineer: invalid path".to_string());
    store.finish(&lease_of(&f), &failed).await.unwrap();
    let f = store.get_task("f").await.unwrap().unwrap();
    assert_eq!(f.status, TaskStatus::Failed);
    assert_eq!(f.error.as_deref(), Some("engineer: invalid path"));
    assert!(f.completed_at.is_some() && f.pr_url.is_none());

    let r = claim(&store).await.unwrap();
    store
        .finish(&lease_of(&r), &finish(TaskStatus::NeedsReview))
        .await
        .unwrap();
    let r = store.get_task("r").await.unwrap().unwrap();
    assert_eq!(r.status, TaskStatus::NeedsReview);
    assert!(r.completed_at.is_some());
}

#[sqlx::test]
async fn release_returns_a_task_to_pending_keeping_its_stages(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.add_task(&new_task("t", 0)).await.unwrap();
    let task = claim(&store).await.unwrap();
    store
        .save_stage(&lease_of(&task), &stage_record(Stage::Pm, None))
        .await
        .unwrap();

    store.release(&lease_of(&task)).await.unwrap();
    let released = store.get_task("t").await.unwrap().unwrap();
    assert_eq!(released.status, TaskStatus::Pending);
    // The interrupted claim does not burn an attempt; the first start time is kept.
    assert_eq!(released.attempts, 0);
    assert_eq!(released.started_at, task.started_at);
    assert_eq!(released.queue.locked_by, None);
    assert_eq!(released.queue.lease_expires_at, None);
    assert_eq!(store.stages(task.id).await.unwrap().len(), 1);

    let e = store.release(&lease_of(&task)).await.unwrap_err();
    assert!(matches!(e, StoreError::LeaseLost(_)), "{e}");

    let again = claim(&store).await.unwrap();
    assert_eq!(again.id, task.id);
    assert_eq!(again.attempts, 1);
    assert_eq!(again.queue.fencing_token, task.queue.fencing_token + 1);
    assert_eq!(again.started_at, task.started_at);
}

#[sqlx::test]
async fn check_constraints_refuse_bad_values(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let e = sqlx::query("UPDATE tasks SET status = 'done' WHERE task_id = 't'")
        .execute(&pool)
        .await
        .unwrap_err();
    let db = e.as_database_error().expect("a database error");
    assert!(db.is_check_violation(), "{e}");
    assert_eq!(db.constraint(), Some("tasks_status_check"));

    let id = store.get_task("t").await.unwrap().unwrap().id;
    let e = sqlx::query(
        "INSERT INTO task_stages (task, stage, output, model, duration_ms) \
         VALUES ($1, 'reviewer', '{}', 'm', 1)",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(e.as_database_error().unwrap().is_check_violation(), "{e}");
}

#[sqlx::test]
async fn updated_at_follows_every_update(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    sqlx::query("UPDATE tasks SET updated_at = '2000-01-01', priority = 3 WHERE task_id = 't'")
        .execute(&pool)
        .await
        .unwrap();
    let task = store.get_task("t").await.unwrap().unwrap();
    assert!(task.updated_at >= task.created_at, "{task:?}");
}

#[sqlx::test]
async fn deleting_a_task_deletes_its_stages(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let task = claim(&store).await.unwrap();
    store
        .save_stage(&lease_of(&task), &stage_record(Stage::Pm, None))
        .await
        .unwrap();
    sqlx::query("DELETE FROM tasks")
        .execute(&pool)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM task_stages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrations = false)]
async fn migrate_is_idempotent(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.add_task(&new_task("t", 0)).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(count_tasks(&pool).await, 1);
}

#[tokio::test]
async fn connection_errors_never_show_the_url() {
    // Nothing listens on port 1: the error says why, without the URL or its password.
    let url = "postgres://someone:hunter2-secret@127.0.0.1:1/app";
    let e = Store::connect(&SecretString::from(url), 2)
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, StoreError::Connect(_)), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!message.contains(url), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");

    // An unparsable URL gives a fixed message.
    for url in [
        "postgres://someone:hunter2-secret@127.0.0.1:port/app",
        "mysql://someone:hunter2-secret@127.0.0.1/app",
    ] {
        let message = Store::connect(&SecretString::from(url), 2)
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("DATABASE_URL is not a valid"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[tokio::test]
async fn connect_reports_a_missing_database_without_the_password() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        return; // needs a server
    };
    let Some((scheme, rest)) = base.split_once("://") else {
        return;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    // Trust authentication ignores the password; the server refuses the unknown database.
    let url = format!("{scheme}://postgres:hunter2-secret@{host}/no_such_database_for_store_tests");
    let message = Store::connect(&SecretString::from(url.as_str()), 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    // The real URL connects.
    Store::connect(&SecretString::from(base.as_str()), 2)
        .await
        .unwrap();
}

/// Migration 0005 turns the UTC wall-clock TIMESTAMP columns into `timestamptz` keeping every
/// row's instant, whatever the session's time zone; afterwards the defaults and the updated_at
/// trigger stamp the true instant.
#[sqlx::test(migrations = false)]
async fn the_timestamptz_migration_keeps_every_instant(pool: PgPool) {
    use chrono::{DateTime, Utc};

    let migrator = sqlx::migrate!();
    let mut conn = pool.acquire().await.unwrap();
    // A session far from UTC (+05:45): a conversion that read it would move every value.
    sqlx::query("SET TIME ZONE 'Asia/Kathmandu'")
        .execute(&mut *conn)
        .await
        .unwrap();
    migrator.run_to(4, &mut *conn).await.unwrap();
    // UTC wall-clock values, as the TIMESTAMP columns held them.
    sqlx::raw_sql(
        "INSERT INTO tasks (task_id, description, status, created_at, updated_at, started_at, \
                            completed_at, run_after, lease_expires_at, budget_since) \
         VALUES ('old', 'Old', 'in_progress', '2026-01-02 03:04:01', '2026-01-02 03:04:02', \
                 '2026-01-02 03:04:03', '2026-01-02 03:04:04.5', '2026-01-02 03:04:05', \
                 '2026-01-02 03:04:06', '2026-01-02 03:04:07.123456'); \
         INSERT INTO task_stages (task, stage, output, model, duration_ms, created_at) \
         SELECT id, 'pm', '{}', 'm', 1, '2026-01-02 03:04:08' FROM tasks; \
         INSERT INTO llm_calls (task, stage, model, input_tokens, output_tokens, \
                                cache_creation_input_tokens, cache_read_input_tokens, cost_usd, \
                                created_at) \
         SELECT id, 'pm', 'm', 1, 1, 0, 0, 0.01, '2026-01-02 23:59:59' FROM tasks",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    migrator.run(&mut *conn).await.unwrap();

    let left: Vec<String> = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_schema = 'public' AND data_type = 'timestamp without time zone'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "every timestamp is a timestamptz"
    );

    let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
    let row: (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT created_at, updated_at, started_at, completed_at FROM tasks")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        row,
        (
            at("2026-01-02T03:04:01Z"),
            at("2026-01-02T03:04:02Z"),
            at("2026-01-02T03:04:03Z"),
            at("2026-01-02T03:04:04.5Z")
        )
    );
    let row: (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT run_after, lease_expires_at, budget_since FROM tasks")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        row,
        (
            at("2026-01-02T03:04:05Z"),
            at("2026-01-02T03:04:06Z"),
            at("2026-01-02T03:04:07.123456Z")
        )
    );
    let stage: DateTime<Utc> = sqlx::query_scalar("SELECT created_at FROM task_stages")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(stage, at("2026-01-02T03:04:08Z"));
    let call: DateTime<Utc> = sqlx::query_scalar("SELECT created_at FROM llm_calls")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(call, at("2026-01-02T23:59:59Z"));

    // New values are the true instant, in this session too: the defaults and the trigger.
    let before = Utc::now() - chrono::Duration::seconds(5);
    sqlx::query("INSERT INTO tasks (task_id, description) VALUES ('new', 'New')")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET priority = 1")
        .execute(&mut *conn)
        .await
        .unwrap();
    let stamps: Vec<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT created_at, run_after, updated_at FROM tasks WHERE task_id = 'new' \
         UNION ALL SELECT updated_at, updated_at, updated_at FROM tasks WHERE task_id = 'old'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let after = Utc::now() + chrono::Duration::seconds(5);
    for stamp in stamps.iter().flat_map(|&(a, b, c)| [a, b, c]) {
        assert!(
            before < stamp && stamp < after,
            "{stamp} is not now: {stamps:?}"
        );
    }
}

#[sqlx::test]
async fn stages_round_trip_their_base_commit(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let task = claim(&store).await.unwrap();
    let base = "0123456789abcdef0123456789abcdef01234567";

    let mut pm = stage_record(Stage::Pm, None);
    pm.base_commit = Some(base.to_string());
    store.save_stage(&lease_of(&task), &pm).await.unwrap();
    store
        .save_stage(
            &lease_of(&task),
            &stage_record(Stage::Architect, Some(70.0)),
        )
        .await
        .unwrap();
    // A row written before migration 0006's column had a value: base_commit is left NULL.
    sqlx::query(
        "INSERT INTO task_stages (task, stage, output, score, model, duration_ms) \
         VALUES ($1, 'engineer', '{}'::jsonb, 80, 'claude-old', 5)",
    )
    .bind(task.id)
    .execute(&pool)
    .await
    .unwrap();

    let stages = store.stages(task.id).await.unwrap();
    let bases: Vec<(Stage, Option<&str>)> = stages
        .iter()
        .map(|s| (s.stage, s.base_commit.as_deref()))
        .collect();
    assert_eq!(
        bases,
        [
            (Stage::Pm, Some(base)),
            (Stage::Architect, None),
            (Stage::Engineer, None)
        ]
    );
}
