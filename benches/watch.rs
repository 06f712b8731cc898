//! PR watch benchmark: 100 open pull requests watched for an hour of simulated time — the
//! requests the watch sends (looks at the PRs, reads of the conversations of those that changed,
//! looks at their heads' checks), how many GitHub answers 304 Not Modified, and the rate-limit
//! budget the rest use. Run with `cargo bench --bench watch`; results in the README ("Benchmark: the
//! PR watch").
//!
//! The daemon's own [`Watcher`] and [`GitHub`] client sweep a scratch database (BENCH_DATABASE_URL,
//! default `postgres://postgres@127.0.0.1:5432/postgres`, whose user may CREATE DATABASE) of 100
//! completed tasks whose PRs a local server answers as GitHub's "Get a pull request" does: the
//! PR object, its ETag, `x-ratelimit-*` headers, and a 304 when If-None-Match matches; it also
//! answers the user, the (empty) conversations, and the heads' check runs and combined status
//! (none yet, with ETags), as the daemon's default settings (revisions on) read them. Simulated
//! time: one sweep per PR_POLL_SECONDS (300 s) of the hour, 12 in all, the server's clock moved
//! between them. Over the hour (fixed seed) 30 PRs are merged, 10 closed and 20 updated (a push
//! or a comment changes `updated_at`, so their ETag) at a random minute; 40 do not change.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use autonomous_dev::github::GitHub;
use autonomous_dev::store::{Finish, Store};
use autonomous_dev::task::{
    BranchCommit, Consensus, Decision, NewTask, Outcome, Publication, PullRequestRef, TaskStatus,
};
use autonomous_dev::watch::{WatchSettings, Watcher};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PRS: u64 = 100;
/// PR_POLL_SECONDS of the simulated daemon, in minutes.
const POLL_MINUTES: u64 = 5;
const HOUR_MINUTES: u64 = 60;
/// GitHub's hourly budget of an authenticated token (REST, `core`).
const RATE_LIMIT: u32 = 5000;

/// What happens to a PR during the hour, and at which minute.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Merged(u64),
    Closed(u64),
    Updated(u64),
    Unchanged,
}

/// Answers `GET /repos/o/r/pulls/{n}` at the simulated minute.
struct Pulls {
    fates: Vec<Fate>,
    minute: Arc<AtomicU64>,
    served: Served,
}

impl Respond for Pulls {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let number: u64 = request
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let Some(fate) = number
            .checked_sub(1)
            .and_then(|i| self.fates.get(i as usize))
        else {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        };
        let now = self.minute.load(Ordering::SeqCst);
        conditional(request, &pull_request(number, *fate, now), &self.served)
    }
}

/// GitHub's answer to a conditional GET of `body`: 200 with its ETag, or 304 when
/// If-None-Match matches; counted in `served` (200s, 304s), the rate-limit headers from it.
fn conditional(request: &Request, body: &Value, served: &Served) -> ResponseTemplate {
    use std::hash::{Hash, Hasher};
    let body = body.to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = format!("W/\"{:016x}\"", hasher.finish());
    let fresh = request
        .headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    let used = served.count(fresh);
    let response = ResponseTemplate::new(if fresh { 304 } else { 200 })
        .insert_header("etag", etag.as_str())
        .insert_header("x-ratelimit-limit", RATE_LIMIT.to_string().as_str())
        .insert_header(
            "x-ratelimit-remaining",
            RATE_LIMIT.saturating_sub(used).to_string().as_str(),
        )
        .insert_header("x-ratelimit-resource", "core");
    if fresh {
        response
    } else {
        response.set_body_raw(body, "application/json; charset=utf-8")
    }
}

/// Answers counted by the server: (200s, 304s).
#[derive(Clone, Default)]
struct Served(Arc<std::sync::Mutex<(u32, u32)>>);

impl Served {
    /// Counts one answer; the 200s so far (what GitHub counts against the limit).
    fn count(&self, not_modified: bool) -> u32 {
        let mut served = self.0.lock().unwrap();
        if not_modified {
            served.1 += 1;
        } else {
            served.0 += 1;
        }
        served.0
    }

    fn get(&self) -> (u32, u32) {
        *self.0.lock().unwrap()
    }
}

/// The other reads of the watch: the token's user, the conversations (empty) and the heads'
/// checks (none yet; a conditional request each).
async fn mount_reads(server: &MockServer, served: &Served) {
    let count = |served: &Served| {
        let served = served.clone();
        move |_: &Request| {
            served.count(false);
            ResponseTemplate::new(200).set_body_json(json!([]))
        }
    };
    let user = served.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/user$"))
        .respond_with(move |_: &Request| {
            user.count(false);
            ResponseTemplate::new(200)
                .set_body_json(json!({"login": "autonomous-dev-bot", "id": 1, "type": "User"}))
        })
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/repos/o/r/(pulls/\d+/reviews|pulls/\d+/comments|issues/\d+/comments)$",
        ))
        .respond_with(count(served))
        .mount(server)
        .await;
    let runs = served.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/commits/[0-9a-f]+/check-runs$"))
        .respond_with(move |request: &Request| {
            conditional(request, &json!({"total_count": 0, "check_runs": []}), &runs)
        })
        .mount(server)
        .await;
    let statuses = served.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/commits/[0-9a-f]+/status$"))
        .respond_with(move |request: &Request| {
            let combined = json!({"state": "pending", "statuses": [], "total_count": 0});
            conditional(request, &combined, &statuses)
        })
        .mount(server)
        .await;
}

/// PR `number` as GitHub shows it at minute `now` of the hour (the documented example, made
/// open, then merged, closed or updated when its fate comes).
fn pull_request(number: u64, fate: Fate, now: u64) -> Value {
    let fixture = include_str!("../tests/fixtures/github/pull_request.json");
    let mut pr: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    let at = |minute: u64| format!("2026-12-01T10:{minute:02}:00Z");
    pr["number"] = json!(number);
    pr["html_url"] = json!(format!("https://github.com/o/r/pull/{number}"));
    pr["state"] = json!("open");
    pr["merged"] = json!(false);
    pr["merged_at"] = Value::Null;
    pr["closed_at"] = Value::Null;
    pr["updated_at"] = json!(at(0));
    match fate {
        Fate::Merged(m) if now >= m => {
            pr["state"] = json!("closed");
            pr["merged"] = json!(true);
            pr["merged_at"] = json!(at(m));
            pr["closed_at"] = json!(at(m));
            pr["updated_at"] = json!(at(m));
        }
        Fate::Closed(m) if now >= m => {
            pr["state"] = json!("closed");
            pr["closed_at"] = json!(at(m));
            pr["updated_at"] = json!(at(m));
        }
        Fate::Updated(m) if now >= m => pr["updated_at"] = json!(at(m)),
        _ => {}
    }
    pr
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without it
    // (only to check they start): measure only when asked.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("watch benchmark: run it with `cargo bench --bench watch`");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<()> {
    let url = std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let admin = PgConnectOptions::from_str(&url).context("BENCH_DATABASE_URL does not parse")?;
    // Built from digits only: no injection, hence AssertSqlSafe for the DDL.
    let name = format!("autonomous_dev_bench_watch_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let result = measure(admin.clone().database(&name)).await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    let _ = conn.close().await;
    result
}

async fn measure(options: PgConnectOptions) -> Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?;
    let store = Store::from_pool(pool);
    store.migrate().await?;
    opened_prs(&store).await?;

    let mut rng = fastrand::Rng::with_seed(13);
    let fates: Vec<Fate> = (0..PRS)
        .map(|i| {
            let minute = rng.u64(1..HOUR_MINUTES);
            match i % 10 {
                0..=2 => Fate::Merged(minute),
                3 => Fate::Closed(minute),
                4 | 5 => Fate::Updated(minute),
                _ => Fate::Unchanged,
            }
        })
        .collect();
    let minute = Arc::new(AtomicU64::new(0));
    let served = Served::default();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/pulls/\d+$"))
        .respond_with(Pulls {
            fates,
            minute: minute.clone(),
            served: served.clone(),
        })
        .mount(&server)
        .await;
    mount_reads(&server, &served).await;
    let github = GitHub::new(
        &server.uri(),
        SecretString::from("ghp_benchToken000000000000000000000000000"),
        "o/r",
    )?;
    // Every PR not merged or closed is due at each sweep: the simulated PR_POLL_SECONDS passed.
    let settings = WatchSettings {
        every: Duration::ZERO,
        max_per_sweep: 1000,
        max_revisions: 3,
        trigger: "/autonomous-dev".into(),
        max_ci_fixes: 2,
        ignored_checks: Vec::new(),
    };
    let watcher = Watcher::new(store.clone(), Arc::new(github), settings);

    println!("## PR watch benchmark\n");
    println!(
        "{PRS} open PRs, one sweep every {POLL_MINUTES} simulated minutes for an hour; \
         GitHub's budget {RATE_LIMIT} requests/hour (304s not counted)\n"
    );
    println!("| minute | requests | 304 | 200 | changed | sweep ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut total = (0, 0, 0);
    let mut slowest = Duration::ZERO;
    let mut looks = 0;
    for at in (0..HOUR_MINUTES).step_by(POLL_MINUTES as usize) {
        minute.store(at, Ordering::SeqCst);
        let before = served.get();
        let started = Instant::now();
        let sweep = watcher.sweep().await?;
        let took = started.elapsed();
        slowest = slowest.max(took);
        anyhow::ensure!(sweep.failed == 0, "{} looks failed", sweep.failed);
        let after = served.get();
        let (full, not_modified) = (after.0 - before.0, after.1 - before.1);
        let requests = full + not_modified;
        looks += sweep.requests;
        total = (total.0 + requests, total.1 + not_modified, total.2 + full);
        println!(
            "| {at} | {requests} | {not_modified} | {full} | {} | {:.0} |",
            sweep.changed,
            took.as_secs_f64() * 1000.0
        );
    }
    let counts = store.pr_counts().await?;
    println!("\nOf the {} requests, {looks} looked at a PR.", total.0);
    println!(
        "| **hour** | **{}** | **{}** | **{}** | | max {:.0} |\n",
        total.0,
        total.1,
        total.2,
        slowest.as_secs_f64() * 1000.0
    );
    println!(
        "Budget used: {} of {RATE_LIMIT} ({:.1} %); without ETags every request would count: {} \
         ({:.1} %). At the end: {} merged, {} closed, {} open.",
        total.2,
        100.0 * f64::from(total.2) / f64::from(RATE_LIMIT),
        total.0,
        100.0 * f64::from(total.0) / f64::from(RATE_LIMIT),
        counts.merged,
        counts.closed,
        counts.open,
    );
    Ok(())
}

/// Tasks `pr-001` … `pr-100`, completed with PRs #1 … #100 opened.
async fn opened_prs(store: &Store) -> Result<()> {
    let tasks: Vec<NewTask> = (1..=PRS)
        .map(|n| NewTask {
            task_id: format!("pr-{n:03}"),
            description: format!("Bench task {n}"),
            priority: 0,
            labels: Vec::new(),
            depends_on: Vec::new(),
            reviewers: vec![],
        })
        .collect();
    store.load_tasks(&tasks, false).await?;
    while let Some((task, lease)) = store
        .claim_next("bench:watch", Duration::from_secs(600))
        .await?
    {
        let number: u64 = task.task_id.trim_start_matches("pr-").parse()?;
        let url = format!("https://github.com/o/r/pull/{number}");
        store.set_pr_url(&lease, &url).await?;
        let finish = Finish {
            status: TaskStatus::Completed,
            consensus_score: Some(100.0),
            result: Outcome::Approved {
                consensus: Consensus {
                    score: 100.0,
                    decision: Decision::Approved,
                    votes: Vec::new(),
                    held: Vec::new(),
                },
                branch: BranchCommit {
                    branch: format!("feature/task-{}", task.task_id),
                    commit: "0".repeat(40),
                    pushed: true,
                    reused: false,
                },
                publication: Publication::Opened(PullRequestRef {
                    number,
                    url: url.clone(),
                    labels: vec!["autonomous".into()],
                }),
            },
            pr_url: Some(url),
            error: None,
        };
        store.finish(&lease, &finish).await?;
    }
    Ok(())
}
