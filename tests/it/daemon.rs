//! The daemon's lifecycle as systemd drives it: SIGTERM stops claiming, a running stage may
//! finish within SHUTDOWN_GRACE, and a task it cannot finish goes back to pending — never stays
//! in_progress — and later resumes from its first unrecorded stage without paying again.

use crate::common;

use std::time::{Duration, Instant};

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, text};
use sqlx::PgPool;

fn approve(_: &str) -> Script {
    Script::Approve
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until(what: &str, pool: &PgPool, sql: &'static str) {
    common::wait_for(what, Duration::from_secs(30), || common::holds(pool, sql)).await
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn task_row(pool: &PgPool) -> (String, i64) {
    sqlx::query_as(
        "SELECT status, (SELECT count(*) FROM task_stages WHERE task = tasks.id) FROM tasks",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn setup(pool: &PgPool, remote: &Remote, model: &FakeModel, github: &FakeGitHub) -> Bin {
    let bin = Bin::new(
        &common::database_url(pool),
        remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("POLL_INTERVAL", "1");
    common::migrate_and_add(&bin, "t-1").await;
    bin
}

#[sqlx::test]
async fn sigterm_past_the_grace_releases_the_task_to_pending(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start_slow(approve, Duration::from_secs(60)).await;
    let github = FakeGitHub::start().await;
    let bin = setup(&pool, &remote, &model, &github)
        .await
        .clone_with("SHUTDOWN_GRACE", "1");

    let child = bin.command(&["run"]).spawn().unwrap();
    wait_for("the PM request", || {
        !model.requests.lock().unwrap().is_empty()
    })
    .await;
    let signalled = Instant::now();
    sigterm(&child);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "exit 0 after SIGTERM: {:?}",
        text(&out)
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "stopped after the grace, not the stage"
    );
    assert_eq!(task_row(&pool).await, ("pending".to_owned(), 0));
}

#[sqlx::test]
async fn sigterm_stops_at_the_stage_boundary_and_the_task_resumes_later(pool: PgPool) {
    let remote = Remote::new();
    let slow = FakeModel::start_slow(approve, Duration::from_millis(1500)).await;
    let github = FakeGitHub::start().await;
    let bin = setup(&pool, &remote, &slow, &github).await;

    let child = bin.command(&["run"]).spawn().unwrap();
    wait_for("the PM request", || {
        !slow.requests.lock().unwrap().is_empty()
    })
    .await;
    sigterm(&child);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        slow.requests.lock().unwrap().len(),
        1,
        "no stage started after SIGTERM"
    );
    assert_eq!(
        task_row(&pool).await,
        ("pending".to_owned(), 1),
        "the PM stage is kept"
    );

    let fast = FakeModel::start(approve).await;
    let bin = bin.clone_with("ANTHROPIC_BASE_URL", &fast.server.uri());
    let out = bin.output(&["run", "--once"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(task_row(&pool).await, ("completed".to_owned(), 5));
    assert_eq!(
        fast.calls_to("submit_prd"),
        0,
        "the recorded PM stage is not asked again"
    );
    assert_eq!(fast.calls_to("submit_design"), 1);
    assert_eq!(github.pulls().await.len(), 1);
}

/// Datagrams the daemon sent to its NOTIFY_SOCKET so far (non-blocking), as text.
fn received(socket: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    messages
}

#[sqlx::test]
async fn speaks_systemd_notify_ready_status_watchdog_stopping(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    let bin = setup(&pool, &remote, &model, &github).await;
    let path = remote.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let bin = bin
        .clone_with("NOTIFY_SOCKET", path.to_str().unwrap())
        .clone_with("WATCHDOG_USEC", "200000");

    let child = bin.command(&["run"]).spawn().unwrap();
    let mut messages = Vec::new();
    wait_for("the task to complete", || {
        messages.extend(received(&socket));
        let working = messages
            .iter()
            .position(|m| m.contains("STATUS=processing t-1"));
        let idle_again =
            working.is_some_and(|w| messages[w..].iter().any(|m| m.contains("STATUS=idle")));
        idle_again && messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2
    })
    .await;
    sigterm(&child);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    messages.extend(received(&socket));
    let ready = messages
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("READY=1 sent");
    let working = messages
        .iter()
        .position(|m| m.contains("STATUS=processing t-1"))
        .expect("status names the task");
    assert!(ready < working, "READY=1 comes first: {messages:?}");
    assert!(
        messages.last().unwrap().contains("STOPPING=1"),
        "{messages:?}"
    );
    assert_eq!(task_row(&pool).await.0, "completed");
}

#[sqlx::test]
async fn a_task_inserted_by_sql_is_picked_up_without_waiting_for_the_poll(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(approve).await;
    let github = FakeGitHub::start().await;
    let bin = setup(&pool, &remote, &model, &github)
        .await
        .clone_with("POLL_INTERVAL", "3600");
    let child = bin.command(&["run"]).spawn().unwrap();
    // The insert must come only once the daemon is idle and listening, or its first claims
    // (not NOTIFY) could pick the task up: wait until t-1 is done, the daemon LISTENs, and its
    // worker has asked for its next wake-up (no task pending or leased: the poll, an hour away)
    // after finishing it. Epoch seconds compare the times whatever the columns' type.
    wait_until(
        "the daemon to go idle, listening",
        &pool,
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                WHERE datname = current_database() AND query LIKE 'LISTEN%') \
            AND EXISTS (SELECT 1 FROM pg_stat_activity a, tasks t \
                WHERE a.datname = current_database() AND a.state = 'idle' \
                  AND a.query LIKE '%min(run_after)%' AND a.query NOT LIKE '%pg_stat_activity%' \
                  AND t.task_id = 't-1' AND t.status = 'completed' \
                  AND extract(epoch FROM a.query_start) >= extract(epoch FROM t.completed_at))",
    )
    .await;
    let asked_before = model.requests.lock().unwrap().len();
    sqlx::query(
        "INSERT INTO tasks (task_id, description, priority) VALUES ('sql-1', 'Write the docs', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    wait_for("the PM request for the inserted task", || {
        model.requests.lock().unwrap().len() > asked_before
    })
    .await;
    sigterm(&child);
    assert!(child.wait_with_output().await.unwrap().status.success());
}

#[sqlx::test]
async fn cancelling_a_running_task_stops_it_at_the_next_stage_boundary(pool: PgPool) {
    let remote = Remote::new();
    let slow = FakeModel::start_slow(approve, Duration::from_millis(1500)).await;
    let github = FakeGitHub::start().await;
    let bin = setup(&pool, &remote, &slow, &github).await;

    let child = bin.command(&["run"]).spawn().unwrap();
    wait_for("the PM request", || {
        !slow.requests.lock().unwrap().is_empty()
    })
    .await;
    let (stdout, _) = text(&bin.output(&["tasks", "cancel", "t-1"]).await);
    assert!(stdout.contains("asked it to stop"), "{stdout}");
    let start = Instant::now();
    loop {
        let (status, _) = task_row(&pool).await;
        if status == "cancelled" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        task_row(&pool).await.1,
        1,
        "the running PM stage finished; no later stage ran"
    );
    assert_eq!(slow.requests.lock().unwrap().len(), 1);
    assert!(github.pulls().await.is_empty());
    sigterm(&child);
    assert!(
        child.wait_with_output().await.unwrap().status.success(),
        "the daemon keeps running until told"
    );
}

/// Polls the database (every 50 ms, up to `within`) until `query` (one BIGINT) returns at least
/// `want`; returns the highest value seen.
async fn wait_for_count(pool: &PgPool, query: &'static str, want: i64, within: Duration) -> i64 {
    let start = Instant::now();
    let mut highest = 0;
    loop {
        let n: i64 = sqlx::query_scalar(query).fetch_one(pool).await.unwrap();
        highest = highest.max(n);
        if n >= want {
            return highest;
        }
        assert!(
            start.elapsed() < within,
            "timed out: `{query}` reached {highest}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CONCURRENCY=16 on stages slower than the lease, and a ledger so slow that every worker's
/// write holds a pooled connection at the same time: each worker needs one connection for its
/// writes and, at the same time, one for its heartbeat. The pool is sized for that, so no
/// renewal waits out the lease: no lease ever expires, every task is claimed once (fencing
/// token 1), runs its five stages once and ends completed, and no worker reports a lost lease
/// or a failed renewal.
#[sqlx::test]
async fn sixteen_workers_on_slow_stages_never_lose_a_lease(pool: PgPool) {
    const TASKS: i64 = 16;
    let remote = Remote::new();
    // Five stages of 1.2 s each: a task outlives its 4 s lease.
    let model = FakeModel::start_slow(approve, Duration::from_millis(1200)).await;
    let github = FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("CONCURRENCY", "16")
    .clone_with("LEASE_SECONDS", "4")
    .clone_with("HEARTBEAT_SECONDS", "1")
    .clone_with("POLL_INTERVAL", "1")
    // What is verified does not matter here (and needs bubblewrap).
    .clone_with("VERIFY", "false");
    let out = bin.output(&["migrate"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| serde_json::json!({"task_id": format!("slow-{i:02}"), "description": "Write the docs", "priority": 1}))
        .collect();
    let file = remote.dir.path().join("tasks.json");
    std::fs::write(&file, serde_json::to_string(&tasks).unwrap()).unwrap();
    let out = bin.output(&["tasks", "load", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    let daemon = common::Running::spawn(&bin, &["run"]);
    let running_at_once = wait_for_count(
        &pool,
        "SELECT count(*) FROM tasks WHERE status = 'in_progress'",
        TASKS,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(running_at_once, TASKS, "all sixteen run at once");

    // The ledger turns slow: a lock on llm_calls holds every worker's next write (a pooled
    // connection each) until all sixteen wait on it. Meanwhile their heartbeats must still get
    // a connection: no lease may expire.
    let mut ledger = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE llm_calls IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *ledger)
        .await
        .unwrap();
    let slow_since = Instant::now();
    loop {
        let (waiting, expired): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'), \
                    (SELECT count(*) FROM tasks \
                     WHERE status = 'in_progress' AND lease_expires_at < now())",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            expired,
            0,
            "a lease expired while {waiting} ledger writes waited:\n{}",
            daemon.stderr()
        );
        if waiting >= TASKS {
            break;
        }
        assert!(
            slow_since.elapsed() < Duration::from_secs(20),
            "only {waiting} workers reached the ledger:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ledger.rollback().await.unwrap();

    wait_for_count(
        &pool,
        "SELECT count(*) FROM tasks WHERE status NOT IN ('pending', 'in_progress')",
        TASKS,
        Duration::from_secs(40),
    )
    .await;
    let (status, log) = daemon.stop().await;
    assert!(status.success(), "{log}");

    let rows: Vec<(String, String, i64, i32, i64)> = sqlx::query_as(
        "SELECT task_id, status, fencing_token, attempts, \
                (SELECT count(*) FROM task_stages WHERE task = tasks.id) \
         FROM tasks ORDER BY task_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (task_id, status, token, attempts, stages) in &rows {
        assert_eq!(
            (status.as_str(), *token, *attempts, *stages),
            ("completed", 1, 1, 5),
            "{task_id} was claimed once and completed:\n{log}"
        );
    }
    assert_eq!(rows.len() as i64, TASKS);
    assert_eq!(
        log.matches("task finished").count(),
        TASKS as usize,
        "{log}"
    );
    assert_eq!(
        model.calls_to("submit_prd"),
        TASKS as usize,
        "no stage ran twice"
    );
    for lost in ["lease lost", "could not renew", "pool timed out"] {
        assert!(!log.contains(lost), "{lost}:\n{log}");
    }
}
