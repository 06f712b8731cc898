//! Integration tests of the queue protocol against PostgreSQL (migration 0003): leases and
//! fencing tokens, reclaim of expired leases, run_after, cancellation, retry and NOTIFY. Each
//! `#[sqlx::test]` gets a fresh database; needs DATABASE_URL.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use autonomous_dev::store::{Cancelled, Event, Finish, Lease, Store, StoreError, TaskEvents};
use autonomous_dev::task::{NewTask, Outcome, Stage, StageRecord, Task, TaskStatus, Usage};
use serde_json::json;
use sqlx::PgPool;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn new_task(task_id: &str, priority: i32) -> NewTask {
    NewTask {
        task_id: task_id.to_string(),
        description: format!("Build {task_id}"),
        priority,
        labels: vec![],
        depends_on: vec![],
        reviewers: vec![],
    }
}

fn stage_record(stage: Stage) -> StageRecord {
    StageRecord {
        stage,
        output: json!({ "stage": stage.to_string() }),
        evidence: None,
        score: Some(80.0),
        model: "claude-test".to_string(),
        usage: Usage::default(),
        duration_ms: 10,
        created_at: None,
        base_commit: None,
        lookups: Vec::new(),
    }
}

fn completed(pr_url: Option<&str>) -> Finish {
    Finish {
        status: TaskStatus::Completed,
        consensus_score: Some(90.0),
        result: common::approved_outcome(90.0),
        pr_url: pr_url.map(str::to_string),
        error: None,
    }
}

fn failed(error: &str) -> Finish {
    Finish {
        status: TaskStatus::Failed,
        consensus_score: None,
        result: Outcome::Error {
            error: error.to_string(),
        },
        pr_url: None,
        error: Some(error.to_string()),
    }
}

async fn claim(store: &Store, worker: &str) -> Option<(Task, Lease)> {
    store.claim_next(worker, MINUTE).await.unwrap()
}

/// Claims for `worker` as soon as something becomes claimable (a lease runs out, a run_after
/// passes), polling; panics after a minute.
async fn claim_when_due(store: &Store, worker: &str) -> (Task, Lease) {
    let start = std::time::Instant::now();
    loop {
        if let Some(claimed) = claim(store, worker).await {
            return claimed;
        }
        assert!(start.elapsed() < MINUTE, "nothing became claimable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn task(store: &Store, task_id: &str) -> Task {
    store.get_task(task_id).await.unwrap().unwrap()
}

/// Puts the lease of `task_id` in the past, as if its worker had stalled.
async fn expire_lease(pool: &PgPool, task_id: &str) {
    sqlx::query(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' \
         WHERE task_id = $1",
    )
    .bind(task_id)
    .execute(pool)
    .await
    .unwrap();
}

async fn stage_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM task_stages")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The next event, failing the test after 5 s.
async fn next_event(events: &mut TaskEvents) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .unwrap()
}

/// Asserts nothing arrives within 300 ms.
async fn no_event(events: &mut TaskEvents) {
    if let Ok(event) = tokio::time::timeout(Duration::from_millis(300), events.recv()).await {
        panic!("unexpected event {event:?}");
    }
}

fn is_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>, id: i32) -> bool {
    matches!(result, Err(StoreError::LeaseLost(lost)) if lost == id)
}

#[sqlx::test]
async fn a_reclaimed_lease_fences_out_the_slow_worker(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let (first, a) = claim(&store, "host:1:a").await.unwrap();
    assert_eq!(a.token, 1);
    assert_eq!(a.worker, "host:1:a");
    assert_eq!(first.queue.locked_by.as_deref(), Some("host:1:a"));
    let lease_end = first.queue.lease_expires_at.unwrap();
    let started = first.started_at.unwrap();
    assert!(
        lease_end > started + chrono::Duration::seconds(55),
        "{first:?}"
    );

    // A stalls past its lease; B reclaims.
    expire_lease(&pool, "t").await;
    let (reclaimed, b) = claim(&store, "host:2:b").await.unwrap();
    assert_eq!(reclaimed.id, first.id);
    assert_eq!(b.token, a.token + 1);
    assert_eq!(reclaimed.attempts, 2);
    assert_eq!(
        reclaimed.started_at,
        Some(started),
        "the first start is kept"
    );
    assert_eq!(reclaimed.queue.locked_by.as_deref(), Some("host:2:b"));

    // Every write of A is refused and changes nothing.
    let before = task(&store, "t").await;
    let id = first.id;
    assert!(is_lease_lost(
        store.save_stage(&a, &stage_record(Stage::Pm)).await,
        id
    ));
    assert!(is_lease_lost(
        store.set_pr_url(&a, "https://x/pull/9").await,
        id
    ));
    assert!(is_lease_lost(store.finish(&a, &completed(None)).await, id));
    assert!(is_lease_lost(store.renew(&a, HOUR).await, id));
    assert!(is_lease_lost(store.release(&a).await, id));
    assert!(is_lease_lost(
        store.retry_later(&a, MINUTE, "429", false).await,
        id
    ));
    assert!(is_lease_lost(store.cancel_requested(&a).await, id));
    assert!(is_lease_lost(store.finish_cancelled(&a).await, id));
    assert_eq!(task(&store, "t").await, before);
    assert_eq!(stage_rows(&pool).await, 0);

    // B's writes succeed.
    store
        .save_stage(&b, &stage_record(Stage::Pm))
        .await
        .unwrap();
    store.renew(&b, HOUR).await.unwrap();
    let renewed = task(&store, "t").await;
    assert!(renewed.queue.lease_expires_at.unwrap() > lease_end + chrono::Duration::minutes(50));
    store.set_pr_url(&b, "https://x/pull/10").await.unwrap();
    assert!(!store.cancel_requested(&b).await.unwrap());
    store.finish(&b, &completed(None)).await.unwrap();
    let done = task(&store, "t").await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(
        done.pr_url.as_deref(),
        Some("https://x/pull/10"),
        "kept by finish"
    );
    assert_eq!(done.queue.lease_expires_at, None);
    assert_eq!(done.queue.locked_by.as_deref(), Some("host:2:b"));
    assert_eq!(stage_rows(&pool).await, 1);

    // After the end, B is fenced out too.
    assert!(is_lease_lost(store.finish(&b, &failed("late")).await, id));
    assert!(is_lease_lost(store.renew(&b, MINUTE).await, id));
}

#[sqlx::test]
async fn a_stage_write_racing_a_reclaim_is_fenced(pool: PgPool) {
    // The reclaim's UPDATE holds the row when the stale worker writes: the write waits for it,
    // re-checks the token on the committed row and inserts nothing.
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let (claimed, a) = claim(&store, "w:1:0").await.unwrap();
    let mut reclaim = pool.begin().await.unwrap();
    sqlx::query("UPDATE tasks SET fencing_token = fencing_token + 1, locked_by = 'w:2:0'")
        .execute(&mut *reclaim)
        .await
        .unwrap();
    let write = tokio::spawn({
        let store = store.clone();
        let a = a.clone();
        async move { store.save_stage(&a, &stage_record(Stage::Pm)).await }
    });
    common::wait_for("the fenced write to wait on the row lock", MINUTE, || {
        common::holds(
            &pool,
            "SELECT count(*) > 0 FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    })
    .await;
    assert!(
        !write.is_finished(),
        "the fenced write waits for the reclaim"
    );
    reclaim.commit().await.unwrap();
    assert!(is_lease_lost(write.await.unwrap(), claimed.id));
    assert_eq!(stage_rows(&pool).await, 0);
}

#[sqlx::test]
async fn an_expired_lease_is_reclaimed_and_a_live_one_is_not(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("live", 5)).await.unwrap();
    store.add_task(&new_task("short", 1)).await.unwrap();
    let (live, _) = claim(&store, "w:1:0").await.unwrap();
    assert_eq!(live.task_id, "live");
    let (short, short_lease) = store
        .claim_next("w:1:1", Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(short.task_id, "short");
    assert!(claim(&store, "w:2:0").await.is_none(), "both leases live");

    // A short lease runs out on its own (2 s: long enough to still be live above on a busy
    // machine); until then every claim finds nothing.
    let (again, lease) = claim_when_due(&store, "w:2:0").await;
    assert_eq!(again.task_id, "short");
    assert_eq!(lease.token, short_lease.token + 1);
    assert!(
        claim(&store, "w:2:1").await.is_none(),
        "'live' is still leased"
    );

    // An expired lease is reclaimed even ahead of lower-priority pending work.
    store.add_task(&new_task("pending", 0)).await.unwrap();
    expire_lease(&pool, "live").await;
    assert_eq!(claim(&store, "w:3:0").await.unwrap().0.task_id, "live");
    assert_eq!(claim(&store, "w:3:1").await.unwrap().0.task_id, "pending");
}

#[sqlx::test]
async fn renewing_an_expired_lease_nobody_reclaimed_keeps_it(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    let (_, lease) = claim(&store, "w:1:0").await.unwrap();
    expire_lease(&pool, "t").await;
    store.renew(&lease, MINUTE).await.unwrap();
    assert!(claim(&store, "w:2:0").await.is_none());
    store
        .save_stage(&lease, &stage_record(Stage::Pm))
        .await
        .unwrap();
}

#[sqlx::test]
async fn concurrent_workers_complete_every_task_exactly_once(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let tasks: Vec<NewTask> = (0..200)
        .map(|i| new_task(&format!("t-{i:03}"), i % 4))
        .collect();
    store.load_tasks(&tasks, false).await.unwrap();

    let workers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let worker = format!("test:{}:{n}", std::process::id());
                let mut done = Vec::new();
                while let Some((task, lease)) = store.claim_next(&worker, MINUTE).await.unwrap() {
                    store
                        .save_stage(&lease, &stage_record(Stage::Pm))
                        .await
                        .unwrap();
                    store.finish(&lease, &completed(None)).await.unwrap();
                    done.push(task.task_id);
                }
                done
            })
        })
        .collect();
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for worker in workers {
        for task_id in worker.await.unwrap() {
            *per_task.entry(task_id).or_default() += 1;
        }
    }
    assert_eq!(per_task.len(), 200);
    assert!(per_task.values().all(|&n| n == 1), "{per_task:?}");
    let all = store.list_tasks(None).await.unwrap();
    assert!(all.iter().all(|t| t.status == TaskStatus::Completed
        && t.attempts == 1
        && t.queue.fencing_token == 1));
    assert_eq!(stage_rows(&pool).await, 200);
}

#[sqlx::test]
async fn run_after_defers_a_task(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("t", 0)).await.unwrap();
    sqlx::query("UPDATE tasks SET run_after = run_after + interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        claim(&store, "w:1:0").await.is_none(),
        "not before run_after"
    );
    let due = store.next_wakeup().await.unwrap().unwrap();
    assert_eq!(due, task(&store, "t").await.queue.run_after);
    sqlx::query("UPDATE tasks SET run_after = run_after - interval '2 hours'")
        .execute(&pool)
        .await
        .unwrap();
    let (claimed, lease) = claim(&store, "w:1:0").await.unwrap();
    assert_eq!(claimed.attempts, 1);
    assert_eq!(
        store.next_wakeup().await.unwrap(),
        claimed.queue.lease_expires_at,
        "the lease expiry is the next wake-up"
    );

    // A quota wait does not spend the attempt; the task comes back after the delay.
    store
        .retry_later(&lease, Duration::from_secs(2), "rate limited", false)
        .await
        .unwrap();
    let waiting = task(&store, "t").await;
    assert_eq!(waiting.status, TaskStatus::Pending);
    assert_eq!(waiting.attempts, 0);
    assert_eq!(waiting.error.as_deref(), Some("rate limited"));
    assert_eq!(waiting.queue.locked_by, None);
    assert_eq!(waiting.queue.lease_expires_at, None);
    assert!(is_lease_lost(store.renew(&lease, MINUTE).await, claimed.id));
    assert!(
        claim(&store, "w:1:0").await.is_none(),
        "not before the delay"
    );
    let (again, lease) = claim_when_due(&store, "w:1:0").await;
    assert_eq!(again.attempts, 1);
    assert_eq!(
        again.error.as_deref(),
        Some("rate limited"),
        "kept for tasks show"
    );

    // A transient failure spends it.
    store
        .retry_later(&lease, Duration::ZERO, "timeout", true)
        .await
        .unwrap();
    let (third, _) = claim(&store, "w:1:0").await.unwrap();
    assert_eq!(third.attempts, 2);
    assert_eq!(third.queue.fencing_token, 3);
}

/// A jittered backoff has nanoseconds, which PostgreSQL's interval cannot hold: the delay is
/// stored, to the microsecond, rather than the write failing (which left the task looping
/// between claim and release).
#[sqlx::test]
async fn a_delay_with_nanoseconds_is_stored(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.add_task(&new_task("t", 0)).await.unwrap();
    let (_, lease) = claim(&store, "w:1:0").await.unwrap();
    store
        .retry_later(&lease, Duration::new(3600, 123_456_789), "timeout", true)
        .await
        .expect("stored");
    assert!(
        claim(&store, "w:1:0").await.is_none(),
        "not before the delay"
    );
}

#[sqlx::test]
async fn next_wakeup_is_none_without_pending_or_leased_tasks(pool: PgPool) {
    let store = Store::from_pool(pool);
    assert_eq!(store.next_wakeup().await.unwrap(), None);
    store.add_task(&new_task("t", 0)).await.unwrap();
    let (_, lease) = claim(&store, "w:1:0").await.unwrap();
    store.finish(&lease, &completed(None)).await.unwrap();
    assert_eq!(store.next_wakeup().await.unwrap(), None);
}

#[sqlx::test]
async fn cancelling_pending_and_in_progress_tasks(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("waiting", 0)).await.unwrap();
    store.add_task(&new_task("running", 9)).await.unwrap();
    let mut events = store.listener().await.unwrap();
    let (running, lease) = claim(&store, "w:1:0").await.unwrap();
    assert_eq!(running.task_id, "running");

    // Pending: cancelled at once, never claimed.
    assert_eq!(store.cancel("waiting").await.unwrap(), Cancelled::Now);
    let waiting = task(&store, "waiting").await;
    assert_eq!(waiting.status, TaskStatus::Cancelled);
    assert!(waiting.completed_at.is_some());
    assert!(!waiting.queue.cancel_requested);
    assert!(claim(&store, "w:2:0").await.is_none());

    // In progress: requested, NOTIFYed; the worker sees it and ends the task.
    assert!(!store.cancel_requested(&lease).await.unwrap());
    assert_eq!(store.cancel("running").await.unwrap(), Cancelled::Requested);
    assert_eq!(
        next_event(&mut events).await,
        Event::Cancel("running".into())
    );
    assert_eq!(store.cancel("running").await.unwrap(), Cancelled::Requested);
    no_event(&mut events).await; // a repeated request does not notify again
    assert!(store.cancel_requested(&lease).await.unwrap());
    assert_eq!(task(&store, "running").await.status, TaskStatus::InProgress);
    store.finish_cancelled(&lease).await.unwrap();
    let cancelled = task(&store, "running").await;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert!(cancelled.completed_at.is_some());
    assert_eq!(cancelled.queue.lease_expires_at, None);
    assert!(is_lease_lost(
        store.finish_cancelled(&lease).await,
        running.id
    ));

    assert_eq!(
        store.cancel("running").await.unwrap(),
        Cancelled::AlreadyFinished(TaskStatus::Cancelled)
    );
    assert!(matches!(
        store.cancel("nope").await,
        Err(StoreError::NotFound(id)) if id == "nope"
    ));
}

#[sqlx::test]
async fn a_cancel_request_survives_release_and_reclaim(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("released", 1)).await.unwrap();
    store.add_task(&new_task("crashed", 0)).await.unwrap();
    let (_, released) = claim(&store, "w:1:0").await.unwrap();
    let (_, crashed) = claim(&store, "w:1:1").await.unwrap();
    assert_eq!(
        store.cancel("released").await.unwrap(),
        Cancelled::Requested
    );
    assert_eq!(store.cancel("crashed").await.unwrap(), Cancelled::Requested);

    // Released (shutdown) after the request: ends cancelled, not pending.
    store.release(&released).await.unwrap();
    assert_eq!(task(&store, "released").await.status, TaskStatus::Cancelled);

    // Its worker died: the reclaiming worker sees the request and ends it.
    expire_lease(&pool, "crashed").await;
    let (reclaimed, lease) = claim(&store, "w:2:0").await.unwrap();
    assert_eq!(reclaimed.id, crashed.task);
    assert!(reclaimed.queue.cancel_requested);
    store.finish_cancelled(&lease).await.unwrap();
    assert_eq!(task(&store, "crashed").await.status, TaskStatus::Cancelled);
    assert!(
        store
            .list_tasks(Some(TaskStatus::Completed))
            .await
            .unwrap()
            .is_empty()
    );
}

#[sqlx::test]
async fn retry_resets_failed_and_cancelled_tasks(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.add_task(&new_task("f", 2)).await.unwrap();
    store.add_task(&new_task("c", 1)).await.unwrap();
    store.add_task(&new_task("ok", 0)).await.unwrap();

    let (f, lease) = claim(&store, "w:1:0").await.unwrap();
    for stage in [Stage::Pm, Stage::Architect] {
        store
            .save_stage(&lease, &stage_record(stage))
            .await
            .unwrap();
    }
    store.set_pr_url(&lease, "https://x/pull/1").await.unwrap();
    store
        .finish(&lease, &failed("engineer: boom"))
        .await
        .unwrap();
    let (c, lease) = claim(&store, "w:1:0").await.unwrap();
    store
        .save_stage(&lease, &stage_record(Stage::Pm))
        .await
        .unwrap();
    assert_eq!(store.cancel("c").await.unwrap(), Cancelled::Requested);
    store.finish_cancelled(&lease).await.unwrap();
    let (_, lease) = claim(&store, "w:1:0").await.unwrap();
    store.finish(&lease, &completed(None)).await.unwrap();

    // Failed, resuming: stages kept.
    let mut events = store.listener().await.unwrap();
    store.retry("f", false).await.unwrap();
    assert_eq!(next_event(&mut events).await, Event::NewTask("f".into()));
    let f_again = task(&store, "f").await;
    assert_eq!(f_again.status, TaskStatus::Pending);
    assert_eq!(f_again.attempts, 0);
    assert_eq!(f_again.error, None);
    assert_eq!(f_again.result, None);
    assert_eq!(f_again.completed_at, None);
    assert_eq!(f_again.pr_url.as_deref(), Some("https://x/pull/1"));
    assert!(!f_again.queue.cancel_requested);
    assert_eq!(store.stages(f.id).await.unwrap().len(), 2);

    // Cancelled, fresh: stages deleted, cancellation request cleared.
    store.retry("c", true).await.unwrap();
    let c_again = task(&store, "c").await;
    assert_eq!(c_again.status, TaskStatus::Pending);
    assert!(!c_again.queue.cancel_requested);
    assert!(store.stages(c.id).await.unwrap().is_empty());
    assert_eq!(
        store.stages(f.id).await.unwrap().len(),
        2,
        "only c's stages"
    );

    // Claimable again, with a fresh attempt count.
    let (claimed, lease) = claim(&store, "w:2:0").await.unwrap();
    assert_eq!((claimed.task_id.as_str(), claimed.attempts), ("f", 1));
    assert!(!store.cancel_requested(&lease).await.unwrap());

    // Other statuses are refused by name, and nothing changes.
    for (task_id, status) in [("ok", "completed"), ("f", "in_progress"), ("c", "pending")] {
        let before = task(&store, task_id).await;
        let e = store.retry(task_id, true).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");
        assert!(e.to_string().contains(status), "{e}");
        assert_eq!(task(&store, task_id).await, before);
    }
    assert_eq!(store.stages(f.id).await.unwrap().len(), 2);
    assert!(matches!(
        store.retry("nope", false).await,
        Err(StoreError::NotFound(_))
    ));
}

#[sqlx::test]
async fn new_tasks_are_notified(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let mut events = store.listener().await.unwrap();

    store.add_task(&new_task("added", 0)).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        Event::NewTask("added".into())
    );

    store
        .load_tasks(&[new_task("loaded-1", 0), new_task("loaded-2", 0)], false)
        .await
        .unwrap();
    let mut loaded = [next_event(&mut events).await, next_event(&mut events).await];
    loaded.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        loaded,
        [
            Event::NewTask("loaded-1".into()),
            Event::NewTask("loaded-2".into())
        ]
    );

    sqlx::query("INSERT INTO tasks (task_id, description) VALUES ('raw', 'By hand')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, Event::NewTask("raw".into()));

    // A claim does not notify; a release does (the task is claimable again).
    let (claimed, lease) = claim(&store, "w:1:0").await.unwrap();
    no_event(&mut events).await;
    store.release(&lease).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        Event::NewTask(claimed.task_id)
    );

    // A task scheduled for later is not announced (the poll finds it).
    sqlx::query(
        "INSERT INTO tasks (task_id, description, run_after) \
         VALUES ('later', 'Later', now() + interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_, lease) = claim(&store, "w:1:0").await.unwrap();
    store
        .retry_later(&lease, HOUR, "quota", false)
        .await
        .unwrap();
    no_event(&mut events).await;
}

#[sqlx::test]
async fn the_listener_reports_a_lost_connection(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let mut events = store.listener().await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND query ILIKE 'LISTEN%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);

    // The drop is reported (maybe after an error), then the listener works again.
    let mut reconnected = false;
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an answer within 5 s")
        {
            Ok(Event::Reconnected) => {
                reconnected = true;
                break;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => continue,
        }
    }
    assert!(reconnected);
    store.add_task(&new_task("after", 0)).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        Event::NewTask("after".into())
    );
}

#[sqlx::test(migrations = false)]
async fn the_upgrade_makes_pre_lease_in_progress_tasks_reclaimable(pool: PgPool) {
    // Schema and data as the previous version left them: a task stuck in_progress.
    for sql in [
        include_str!("../../migrations/0001_tasks.sql"),
        include_str!("../../migrations/0002_task_stages.sql"),
        "INSERT INTO tasks (task_id, description, status, attempts, started_at) \
         VALUES ('stuck', 'S', 'in_progress', 1, now() AT TIME ZONE 'utc'), ('next', 'N', 'pending', 0, NULL)",
        include_str!("../../migrations/0003_leases.sql"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    // The rest of the upgrade to today's schema, which the store reads: every later migration,
    // in order.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut later: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap() > "0004")
        .collect();
    later.sort();
    assert!(later.len() >= 12, "{later:?}");
    for path in later {
        let sql = std::fs::read_to_string(&path).unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let store = Store::from_pool(pool);
    let (stuck, lease) = claim(&store, "w:1:0").await.unwrap();
    assert_eq!((stuck.task_id.as_str(), stuck.attempts), ("stuck", 2));
    assert_eq!(lease.token, 1);
    assert_eq!(claim(&store, "w:1:1").await.unwrap().0.task_id, "next");
}
