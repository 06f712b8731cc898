//! Queue benchmark: pickup latency (NOTIFY versus polling) and claim throughput with concurrent
//! claimers. Run with `cargo bench --bench queue`; results and method in the README ("Benchmark: the queue").
//!
//! Needs a PostgreSQL server: `BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names a database the user can connect to and
//! whose user may CREATE DATABASE. Every scenario runs in a fresh scratch database
//! (`autonomous_dev_bench_<pid>_<n>`, migrated with `Store::migrate`, dropped at the end).
//! Prints the machine facts and Markdown tables on stdout, progress on stderr.
//!
//! `STATUS_ADDR` (e.g. `127.0.0.1:0`) measures the status page's overhead: the throughput
//! scenario then serves the page and `/metrics` for its scratch database, as the daemon does,
//! while a scraper fetches `/metrics` and the queue page every `BENCH_SCRAPE_MS` (default 1000,
//! 15× Prometheus' default rate), and each claim records the metrics the daemon's claim path
//! records. The peak RSS of the bench process is printed at the end either way.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autonomous_dev::shutdown::Shutdown;
use autonomous_dev::status::{ProcessLive, StatusServer};
use autonomous_dev::store::{Event, Finish, Store, TaskEvents};
use autonomous_dev::task::{
    BranchCommit, Consensus, Decision, DraftPr, NewTask, Outcome, Publication, TaskStatus,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::{Barrier, Mutex};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The poll of the idle worker in the pickup scenario. The daemon's default POLL_INTERVAL is
/// 60 s; 1 s keeps the bench short (expected polling pickup: POLL_INTERVAL / 2).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Tasks inserted one at a time in the pickup scenario.
const PICKUP_TASKS: usize = 50;
/// Random gap before each insert, in ms (uniform, fixed seed).
const INSERT_GAP_MS: std::ops::RangeInclusive<u64> = 50..=250;
/// Pending tasks drained in the throughput scenario.
const THROUGHPUT_TASKS: usize = 10_000;
/// Chunk size for `Store::load_tasks`.
const LOAD_CHUNK: usize = 2_000;
const CLAIMERS: [usize; 3] = [1, 2, 4];
const LEASE: Duration = Duration::from_secs(600);
/// Give up on a scenario that hangs (nothing should come close).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// `synchronous_commit` of the throughput scenario's scratch database unless
/// `BENCH_SYNCHRONOUS_COMMIT` says otherwise. With `on` (the server default, and production's)
/// every claim and every finish waits for a WAL flush: on a slow disk (~2 ms per fsync here) one
/// claimer needs about a minute for 10 000 tasks and the number measures the disk, not the queue.
/// `off` keeps the queue's own cost (statement, row locks, SKIP LOCKED) — run with `on` to see
/// the durable rate.
const DEFAULT_THROUGHPUT_SYNC: &str = "off";

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without it
    // (only to check they start): measure only when asked.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("queue benchmark: run it with `cargo bench --bench queue`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let admin = PgConnectOptions::from_str(&url).context("BENCH_DATABASE_URL does not parse")?;
    let mut scratch = Scratch::new(admin);
    let sync = std::env::var("BENCH_SYNCHRONOUS_COMMIT")
        .unwrap_or_else(|_| DEFAULT_THROUGHPUT_SYNC.to_string());
    if !["on", "off", "local", "remote_write", "remote_apply"].contains(&sync.as_str()) {
        bail!("BENCH_SYNCHRONOUS_COMMIT must be on, off, local, remote_write or remote_apply");
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version: String = {
        let mut conn = PgConnection::connect_with(&scratch.admin)
            .await
            .context("cannot connect to BENCH_DATABASE_URL")?;
        let v = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        v
    };
    println!("## Queue benchmark\n");
    println!("- cores (available_parallelism): {cores}");
    println!("- PostgreSQL: {version}");
    println!(
        "- profile: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("- pickup scenario: server's synchronous_commit (on unless configured otherwise)");
    println!("- throughput scenario: synchronous_commit = {sync} (BENCH_SYNCHRONOUS_COMMIT)");
    let status = match std::env::var("STATUS_ADDR") {
        Ok(addr) => {
            let addr: std::net::SocketAddr = addr.parse().context("STATUS_ADDR: host:port")?;
            let every = match std::env::var("BENCH_SCRAPE_MS") {
                Ok(ms) => Duration::from_millis(ms.parse().context("BENCH_SCRAPE_MS: ms")?),
                Err(_) => Duration::from_secs(1),
            };
            println!(
                "- status page: on (STATUS_ADDR {addr}), /metrics and / scraped every {} ms",
                every.as_millis()
            );
            Some((addr, every))
        }
        Err(_) => {
            println!("- status page: off (STATUS_ADDR unset)");
            None
        }
    };
    println!();

    // 1. Pickup latency, NOTIFY versus polling.
    let mut pickup = Vec::new();
    for mode in [Mode::Notify, Mode::Poll] {
        let db = scratch.create(None).await?;
        let result = tokio::time::timeout(SCENARIO_TIMEOUT, pickup_latency(&db, mode)).await;
        scratch.drop_db(db).await?;
        let result = result.context("pickup scenario timed out")??;
        pickup.push((mode, result));
    }
    println!(
        "### Pickup latency, insert → claim ({PICKUP_TASKS} tasks inserted one at a time, \
         {}–{} ms apart; poll {} s)\n",
        INSERT_GAP_MS.start(),
        INSERT_GAP_MS.end(),
        POLL_INTERVAL.as_secs()
    );
    println!("| mode | p50 ms | p95 ms | max ms | claims after a NOTIFY / after a poll tick |");
    println!("|---|---:|---:|---:|---|");
    for (mode, r) in &pickup {
        let mut ms = r.latencies_ms.clone();
        ms.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {} / {} |",
            mode.label(),
            percentile(&ms, 50.0),
            percentile(&ms, 95.0),
            ms.last().copied().unwrap_or(f64::NAN),
            r.by_notify,
            r.by_poll
        );
    }
    println!();

    // 2. Claims per second with 10 000 pending tasks.
    let mut rows = Vec::new();
    for claimers in CLAIMERS {
        let db = scratch.create(Some(&sync)).await?;
        let result = tokio::time::timeout(
            SCENARIO_TIMEOUT,
            throughput(&db, claimers, THROUGHPUT_TASKS, status),
        )
        .await;
        scratch.drop_db(db).await?;
        let result = result.context("throughput scenario timed out")??;
        rows.push((claimers, result));
    }
    println!(
        "### Claim + finish throughput ({THROUGHPUT_TASKS} pending tasks; each claimer its own \
         Store with a one-connection pool; synchronous_commit = {sync})\n"
    );
    println!(
        "| claimers | total s | claims/s | speedup | claims per claimer | duplicates | left not completed | scrapes (mean ms) |"
    );
    println!("|---:|---:|---:|---:|---|---:|---:|---:|");
    let base = rows.first().map_or(1.0, |(_, r)| r.per_second());
    for (claimers, r) in &rows {
        println!(
            "| {claimers} | {:.2} | {:.0} | {:.2}× | {} | {} | {} | {} ({:.1}) |",
            r.elapsed.as_secs_f64(),
            r.per_second(),
            r.per_second() / base,
            r.per_claimer
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            r.duplicates,
            r.not_completed,
            r.scrapes.0,
            r.scrapes.1
        );
    }
    println!();
    println!(
        "- peak RSS of the bench process (VmHWM): {}",
        peak_rss().unwrap_or_else(|| "unknown".into())
    );

    let failed: Vec<_> = rows
        .iter()
        .filter(|(_, r)| r.duplicates > 0 || r.not_completed > 0 || r.claimed != r.tasks)
        .collect();
    if !failed.is_empty() {
        bail!("exactly-once check failed for claimers {failed:?}");
    }
    Ok(())
}

/// Creates and drops the scratch databases (one per scenario run).
struct Scratch {
    admin: PgConnectOptions,
    next: usize,
}

/// A scratch database: its name and its connection options.
struct Db {
    name: String,
    options: PgConnectOptions,
}

impl Db {
    /// A `Store` with its own pool of `connections` (the bench's stand-in for one daemon).
    async fn store(&self, connections: u32) -> Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(self.options.clone())
            .await?;
        Ok(Store::from_pool(pool))
    }
}

impl Scratch {
    fn new(admin: PgConnectOptions) -> Scratch {
        Scratch { admin, next: 0 }
    }

    /// A fresh, migrated database, with `synchronous_commit` set for its sessions if given. Its
    /// name is built here from digits only and the setting is checked against a fixed list (no
    /// injection), hence `AssertSqlSafe` for the DDL, which takes no bind parameters.
    async fn create(&mut self, synchronous_commit: Option<&str>) -> Result<Db> {
        self.next += 1;
        let name = format!("autonomous_dev_bench_{}_{}", std::process::id(), self.next);
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        if let Some(setting) = synchronous_commit {
            sqlx::query(AssertSqlSafe(format!(
                "ALTER DATABASE {name} SET synchronous_commit = {setting}"
            )))
            .execute(&mut conn)
            .await?;
        }
        let _ = conn.close().await;
        let db = Db {
            options: self.admin.clone().database(&name),
            name,
        };
        let store = db.store(1).await?;
        store.migrate().await?;
        drop(store);
        Ok(db)
    }

    /// Drops `db`. `Store` has no `close`: the pools dropped before close their connections in
    /// the background, and `WITH (FORCE)` ends any still open.
    async fn drop_db(&self, db: Db) -> Result<()> {
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            db.name
        )))
        .execute(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(())
    }
}

fn new_task(task_id: String) -> NewTask {
    NewTask {
        description: format!("Bench task {task_id}"),
        task_id,
        priority: 0,
        labels: vec![],
        depends_on: vec![],
        reviewers: vec![],
    }
}

fn completed() -> Finish {
    Finish {
        status: TaskStatus::Completed,
        consensus_score: None,
        result: Outcome::Approved {
            consensus: Consensus {
                score: 100.0,
                decision: Decision::Approved,
                votes: Vec::new(),
                held: Vec::new(),
            },
            branch: BranchCommit {
                branch: "feature/task-bench".into(),
                commit: "0".repeat(40),
                pushed: false,
                reused: false,
            },
            publication: Publication::DryRun(DraftPr {
                title: "[Autonomous] bench".into(),
                head: "feature/task-bench".into(),
                head_repository: None,
                base: "main".into(),
                body: String::new(),
                labels: Vec::new(),
            }),
        },
        pr_url: None,
        error: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Wait on `TaskEvents::recv()`, with the poll as fallback.
    Notify,
    /// Poll only.
    Poll,
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Notify => format!("NOTIFY (+ {} s poll fallback)", POLL_INTERVAL.as_secs()),
            Mode::Poll => format!("poll every {} s", POLL_INTERVAL.as_secs()),
        }
    }
}

struct Pickup {
    latencies_ms: Vec<f64>,
    /// Claims made right after a NewTask event / after a poll tick (or the initial pass).
    by_notify: usize,
    by_poll: usize,
}

/// Why the idle worker woke up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    Notify,
    Poll,
}

/// One idle worker (its own Store) and one inserter (another Store, as `tasks add` from another
/// process would be); latency = claim returned − instant just before the INSERT, both measured
/// in this process.
async fn pickup_latency(db: &Db, mode: Mode) -> Result<Pickup> {
    eprintln!("pickup: {}", mode.label());
    let worker_store = db.store(2).await?;
    let inserter = db.store(1).await?;
    let inserted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let claimed: Arc<Mutex<HashMap<String, (Instant, Wake)>>> = Arc::default();

    let mut events: Option<TaskEvents> = match mode {
        Mode::Notify => Some(worker_store.listener().await?),
        Mode::Poll => None,
    };
    let worker = {
        let claimed = claimed.clone();
        tokio::spawn(async move {
            let mut wake = Wake::Poll;
            loop {
                // Drain: claim until nothing is claimable, as the daemon's worker does.
                while let Some((task, lease)) =
                    worker_store.claim_next("bench:pickup", LEASE).await?
                {
                    let at = Instant::now();
                    claimed
                        .lock()
                        .await
                        .insert(task.task_id.clone(), (at, wake));
                    worker_store.finish(&lease, &completed()).await?;
                }
                wake = match events.as_mut() {
                    Some(events) => tokio::select! {
                        event = events.recv() => match event? {
                            Event::NewTask(_) => Wake::Notify,
                            // Reconnected (missed notifications): claim now, like the daemon.
                            _ => Wake::Poll,
                        },
                        _ = tokio::time::sleep(POLL_INTERVAL) => Wake::Poll,
                    },
                    None => {
                        tokio::time::sleep(POLL_INTERVAL).await;
                        Wake::Poll
                    }
                };
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        })
    };

    let mut rng = fastrand::Rng::with_seed(42);
    for i in 0..PICKUP_TASKS {
        tokio::time::sleep(Duration::from_millis(rng.u64(INSERT_GAP_MS))).await;
        let task = new_task(format!("pickup-{i:03}"));
        let at = Instant::now();
        inserter.add_task(&task).await?;
        inserted.lock().await.insert(task.task_id, at);
    }
    // Wait for the last claims (at most one poll interval with polling).
    let deadline = Instant::now() + POLL_INTERVAL * 3;
    while claimed.lock().await.len() < PICKUP_TASKS && Instant::now() < deadline {
        if worker.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if worker.is_finished() {
        worker.await??;
        bail!("pickup worker stopped");
    }
    worker.abort();

    let inserted = inserted.lock().await;
    let claimed = claimed.lock().await;
    if claimed.len() != PICKUP_TASKS {
        bail!("only {} of {PICKUP_TASKS} tasks claimed", claimed.len());
    }
    let mut result = Pickup {
        latencies_ms: Vec::new(),
        by_notify: 0,
        by_poll: 0,
    };
    for (task_id, (claim_at, wake)) in claimed.iter() {
        let insert_at = inserted[task_id];
        result
            .latencies_ms
            .push(claim_at.duration_since(insert_at).as_secs_f64() * 1e3);
        match wake {
            Wake::Notify => result.by_notify += 1,
            Wake::Poll => result.by_poll += 1,
        }
    }
    Ok(result)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug)]
struct Throughput {
    tasks: usize,
    claimed: usize,
    elapsed: Duration,
    per_claimer: Vec<usize>,
    duplicates: usize,
    not_completed: i64,
    /// Scrapes of `/metrics` + `/` answered during the drain (0 with the page off), and their
    /// mean wall time in ms (both requests).
    scrapes: (usize, f64),
}

/// `VmHWM` of /proc/self/status, e.g. `41236 kB`.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_owned())
}

/// Serves the status page for `store` on `addr` and scrapes `/metrics` and `/` every `every`
/// until `stop` is triggered; the number of scrapes answered 200.
async fn serve_and_scrape(
    store: Store,
    addr: std::net::SocketAddr,
    every: Duration,
    stop: Shutdown,
) -> Result<tokio::task::JoinHandle<(usize, f64)>> {
    let server = StatusServer::bind(addr, None, store, Arc::new(ProcessLive)).await?;
    let base = format!("http://{}", server.local_addr()?);
    let serving = stop.clone();
    tokio::spawn(async move { server.serve(&serving).await });
    Ok(tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut scrapes = 0;
        let mut took = Duration::ZERO;
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.triggered() => {
                    let mean = took.as_secs_f64() * 1000.0 / scrapes.max(1) as f64;
                    return (scrapes, mean);
                }
                _ = tick.tick() => {}
            }
            let start = Instant::now();
            let mut ok = true;
            for path in ["/metrics", "/"] {
                let answer = client.get(format!("{base}{path}")).send().await;
                ok &= match answer {
                    Ok(answer) => answer.status().is_success() && answer.bytes().await.is_ok(),
                    Err(_) => false,
                };
            }
            if ok {
                scrapes += 1;
                took += start.elapsed();
            }
        }
    }))
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.claimed as f64 / self.elapsed.as_secs_f64()
    }
}

/// `claimers` Stores, each with its own one-connection pool (separate daemons), drain `tasks`
/// pending tasks: claim_next then finish(completed), until a claim returns None.
async fn throughput(
    db: &Db,
    claimers: usize,
    tasks: usize,
    status: Option<(std::net::SocketAddr, Duration)>,
) -> Result<Throughput> {
    eprintln!("throughput: {claimers} claimer(s), {tasks} tasks");
    let setup = db.store(1).await?;
    let all: Vec<NewTask> = (0..tasks)
        .map(|i| new_task(format!("bulk-{i:05}")))
        .collect();
    for chunk in all.chunks(LOAD_CHUNK) {
        let report = setup.load_tasks(chunk, false).await?;
        if report.inserted as usize != chunk.len() {
            bail!("load inserted {} of {}", report.inserted, chunk.len());
        }
    }
    // The store owns the SQL; for the bench, fresh statistics via a direct statement on the
    // scratch database so every run starts from the same planner state.
    {
        let mut conn = PgConnection::connect_with(&db.options).await?;
        sqlx::query("VACUUM ANALYZE tasks")
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
    }

    let mut stores = Vec::new();
    for _ in 0..claimers {
        stores.push(db.store(1).await?);
    }
    let stop = Shutdown::new(Duration::from_secs(1));
    let scraper = match status {
        Some((addr, every)) => {
            Some(serve_and_scrape(db.store(2).await?, addr, every, stop.clone()).await?)
        }
        None => None,
    };
    let metered = status.is_some();
    let barrier = Arc::new(Barrier::new(claimers + 1));
    let mut handles = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("bench:{n}");
            let finish = completed();
            let mut ids = Vec::with_capacity(tasks);
            let metrics = autonomous_dev::metrics::global();
            barrier.wait().await;
            while let Some((task, lease)) = store.claim_next(&worker, LEASE).await? {
                if metered {
                    // What the daemon's claim path records around a task.
                    metrics.picked_up(task.queue.run_after);
                    metrics.workers_busy.inc();
                }
                store.finish(&lease, &finish).await?;
                if metered {
                    metrics.task_finished(TaskStatus::Completed);
                    metrics.workers_busy.dec();
                }
                ids.push(task.id);
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut claims = Vec::new();
    for handle in handles {
        claims.push(handle.await??);
    }
    let elapsed = start.elapsed();
    stop.trigger();
    let scrapes = match scraper {
        Some(scraper) => scraper.await?,
        None => (0, 0.0),
    };

    // Exactly once: no id returned twice across claimers, and nothing left not completed.
    let mut per_claimer = Vec::new();
    let mut seen = HashSet::with_capacity(tasks);
    let mut duplicates = 0;
    for ids in claims {
        per_claimer.push(ids.len());
        for id in ids {
            if !seen.insert(id) {
                duplicates += 1;
            }
        }
    }

    let not_completed = setup
        .stats()
        .await?
        .iter()
        .filter(|s| s.status != TaskStatus::Completed)
        .map(|s| s.count)
        .sum();
    Ok(Throughput {
        tasks,
        claimed: per_claimer.iter().sum(),
        elapsed,
        per_claimer,
        duplicates,
        not_completed,
        scrapes,
    })
}
