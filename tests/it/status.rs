//! The operator's views against a real PostgreSQL holding tasks in every state: the `--json`
//! outputs of `tasks list`, `tasks show`, `stats` and `status` through the binary; every page
//! and endpoint of the status page over HTTP (status codes, content, hostile task text shown as
//! text, no secret); its access rules (a non-loopback bind without STATUS_TOKEN refuses to
//! start, a wrong token gets 401); `/metrics` through `promtool check metrics`; and the queue
//! and a task page in a real headless Chromium (screenshots kept in the test's output
//! directory, failing on any console message or missing element).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use autonomous_dev::agents::{EngineerEvidence, Round, RoundOutcome, SecurityEvidence};
use autonomous_dev::metrics::{ListenerState, Pause};
use autonomous_dev::shutdown::Shutdown;
use autonomous_dev::status::{Live, StatusError, StatusServer};
use autonomous_dev::store::Store;
use autonomous_dev::task::{GateReport, NewTask};
use autonomous_dev::verify::{Verification, VerifyStatus};
use secrecy::SecretString;
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
        reviewers: vec![],
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

/// What the daemon would know: a pause and a listener state the test sets.
#[derive(Default)]
struct FakeLive {
    pause: Mutex<Option<Pause>>,
    listener: Mutex<Option<ListenerState>>,
}

impl Live for FakeLive {
    fn pause(&self) -> Option<Pause> {
        self.pause.lock().unwrap().clone()
    }

    fn listener(&self) -> ListenerState {
        self.listener
            .lock()
            .unwrap()
            .unwrap_or(ListenerState::Connected)
    }
}

/// A status server on a free loopback port; stops when the returned shutdown is triggered.
struct Served {
    base: String,
    shutdown: Shutdown,
    live: Arc<FakeLive>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn serve(store: Store, token: Option<&str>) -> Served {
    let live = Arc::new(FakeLive::default());
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = StatusServer::bind(
        addr,
        token.map(|t| SecretString::from(t.to_owned())),
        store,
        live.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let shutdown = Shutdown::new(std::time::Duration::from_secs(1));
    let stop = shutdown.clone();
    tokio::spawn(async move { server.serve(&stop).await });
    Served {
        base,
        shutdown,
        live,
    }
}

async fn get(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
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
    assert!(status["pause"].is_null());
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

#[sqlx::test]
async fn every_page_answers_with_its_content(pool: PgPool) {
    let store = seed(&pool, 60).await;
    let served = serve(store, None).await;
    let base = &served.base;

    let (code, page, headers) = get(&format!("{base}/")).await;
    assert_eq!(code, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(page.contains("68 task(s); page 1 of 2"), "{page}");
    assert!(page.contains("href=\"/tasks/t-done\""));
    assert!(page.contains("href=\"https://github.com/o/r/pull/1\""));
    assert!(page.contains("merged"));
    assert!(page.contains("$0.2900"));
    assert!(page.contains("rel=\"next\""));
    // The pending tasks of priority 5 come first; the bulk ones fill the rest.
    assert!(!page.contains("bulk-0059"));

    let (code, page, _) = get(&format!("{base}/?offset=50")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("page 2 of 2") && page.contains("bulk-0059"),
        "{page}"
    );
    assert!(page.contains("rel=\"prev\""));

    let (code, page, _) = get(&format!("{base}/?status=completed")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("1 task(s)") && page.contains("t-done"),
        "{page}"
    );
    assert!(!page.contains("/tasks/t-failed"));
    let (code, page, _) = get(&format!("{base}/?label=perf&status=")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("1 task(s)") && page.contains("t-running"),
        "{page}"
    );

    for bad in ["?status=done", "?offset=-1", "?offset=many"] {
        let (code, page, _) = get(&format!("{base}/{bad}")).await;
        assert_eq!(code, 400, "{bad}");
        assert!(page.contains("must"), "{bad}: {page}");
    }

    let (code, page, _) = get(&format!("{base}/tasks/t-done")).await;
    assert_eq!(code, 200);
    for expected in [
        "Task t-done",
        "id=\"stage-pm\"",
        "id=\"stage-engineer\"",
        "id=\"stage-security\"",
        "Clear and small: &lt;b&gt;worth it&lt;/b&gt;.",
        "revisions: 1 repair round(s)",
        "FAIL: test_parse",
        "ok  all 12 tests",
        "gates: ",
        "decision: <strong>approved</strong>",
        "PR #1",
        "4 s",
    ] {
        assert!(page.contains(expected), "{expected} missing:\n{page}");
    }
    let (code, page, _) = get(&format!("{base}/tasks/t-snoozed")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("next run") && page.contains("rate limited"),
        "{page}"
    );
    let (code, page, _) = get(&format!("{base}/tasks/no-such-task")).await;
    assert_eq!(code, 404);
    assert!(
        page.contains("No task &#39;no-such-task&#39;.")
            || page.contains("No task 'no-such-task'."),
        "{page}"
    );

    let (code, page, _) = get(&format!("{base}/workers")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("host:42:0") && page.contains("Architect"),
        "{page}"
    );

    let (code, page, _) = get(&format!("{base}/spend")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("<svg") && page.contains("<polyline"),
        "{page}"
    );
    assert!(page.contains("id=\"today\">$0.2600"), "{page}");
    assert!(page.contains("claude-sonnet-4-5"));

    let (code, page, _) = get(&format!("{base}/pauses")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("Not paused.") && page.contains("t-snoozed"),
        "{page}"
    );
    *served.live.pause.lock().unwrap() = Some(Pause {
        reason: "rate limit or exhausted quota".into(),
        until: chrono::Utc::now() + chrono::Duration::minutes(15),
    });
    let (_, page, _) = get(&format!("{base}/pauses")).await;
    assert!(
        page.contains("All claiming paused until")
            && page.contains("rate limit or exhausted quota"),
        "{page}"
    );

    let (code, script, headers) = get(&format!("{base}/static/status.js")).await;
    assert_eq!(code, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.contains("toLocaleString"));

    let (code, metrics, headers) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        metrics.contains("autonomous_dev_queue_depth{status=\"pending\"} 62"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autonomous_dev_queue_depth{status=\"blocked\"} 1"),
        "{metrics}"
    );
    // Families without samples yet are not listed; plain metrics always are.
    assert!(
        metrics.contains("# TYPE autonomous_dev_prs_opened_total counter"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE autonomous_dev_pickup_latency_seconds histogram"));
    assert!(
        metrics.contains("autonomous_dev_workers_busy "),
        "{metrics}"
    );
}

#[sqlx::test]
async fn hostile_task_text_renders_as_text(pool: PgPool) {
    let store = seed(&pool, 0).await;
    sqlx::query(
        "UPDATE tasks SET error = $1, pr_url = 'javascript:alert(2)' WHERE task_id = 't-hostile'",
    )
    .bind(HOSTILE)
    .execute(&pool)
    .await
    .unwrap();
    let served = serve(store, None).await;
    for path in ["/", "/tasks/t-hostile", "/pauses", "/?label=%3Cscript%3E"] {
        let (code, page, _) = get(&format!("{}{path}", served.base)).await;
        assert_eq!(code, 200, "{path}");
        assert!(!page.contains("<script>alert"), "{path}: {page}");
        assert!(!page.contains("<img src=x"), "{path}: {page}");
        assert!(!page.contains("href=\"javascript:"), "{path}: {page}");
    }
    let (_, page, _) = get(&format!("{}/tasks/t-hostile", served.base)).await;
    assert!(
        page.contains("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;")
            || page.contains("&lt;script&gt;alert('owned')&lt;/script&gt;"),
        "{page}"
    );
    // The only script is the page's own file.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
}

#[sqlx::test]
async fn a_token_guards_every_page_and_a_public_bind_needs_one(pool: PgPool) {
    let store = seed(&pool, 0).await;
    let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused =
        StatusServer::bind(public, None, store.clone(), Arc::new(FakeLive::default())).await;
    assert!(matches!(refused, Err(StatusError::NeedsToken(_))));

    // The daemon refuses to start, with one line naming the setting, before anything else.
    let remote = Remote::new();
    let out = bin(&pool, &remote)
        .clone_with("STATUS_ADDR", "0.0.0.0:9464")
        .output(&["run", "--once"])
        .await;
    assert!(!out.status.success());
    let stderr = text(&out).1;
    assert!(
        stderr.contains("STATUS_TOKEN") && stderr.contains("not a loopback"),
        "{stderr}"
    );
    assert!(!stderr.contains(common::GITHUB_TOKEN));
    let out = bin(&pool, &remote)
        .clone_with("STATUS_ADDR", "127.0.0.1:0")
        .clone_with("STATUS_TOKEN", "too short;secret")
        .output(&["run", "--once"])
        .await;
    assert!(!out.status.success());
    let stderr = text(&out).1;
    assert!(
        stderr.contains("STATUS_TOKEN must be at least 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("too short;secret"), "{stderr}");
    let out = bin(&pool, &remote)
        .clone_with("STATUS_ADDR", "localhost")
        .output(&["run", "--once"])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("STATUS_ADDR"), "{:?}", text(&out));

    const TOKEN: &str = "st4tus-T0ken-for-the-test";
    const FORM: &str = "application/x-www-form-urlencoded";
    let served = serve(store, Some(TOKEN)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/",
        "/tasks/t-done",
        "/workers",
        "/spend",
        "/pauses",
        "/metrics",
        "/static/status.js",
    ] {
        let url = format!("{}{path}", served.base);
        let none = client.get(&url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path}");
        assert!(
            none.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let wrong = client
            .get(&url)
            .bearer_auth("st4tus-T0ken-for-the-tesT")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let cookie = client
            .get(&url)
            .header("cookie", format!("{}=nope", autonomous_dev::status::COOKIE))
            .send()
            .await
            .unwrap();
        assert_eq!(cookie.status(), 401, "{path}");
        let right = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(right.status(), 200, "{path}");
        assert!(!right.text().await.unwrap().contains(TOKEN), "{path}");
    }
    let health = client
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // The login form: a wrong token is refused, the right one sets the cookie that lets in.
    let login = format!("{}/login", served.base);
    let (code, page, _) = get(&login).await;
    assert_eq!(code, 200);
    assert!(page.contains("name=\"token\""));
    let wrong = client
        .post(&login)
        .header("content-type", FORM)
        .body("token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client
        .post(&login)
        .header("content-type", FORM)
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 303);
    let set_cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().unwrap();
    let page = client
        .get(format!("{}/", served.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(!page.text().await.unwrap().contains(TOKEN));
}

#[sqlx::test]
async fn healthz_says_whether_the_database_and_the_listener_are_up(pool: PgPool) {
    let store = seed(&pool, 0).await;
    let served = serve(store, None).await;
    let url = format!("{}/healthz", served.base);
    let (code, body, _) = get(&url).await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    *served.live.listener.lock().unwrap() = Some(ListenerState::Disconnected);
    let (code, body, _) = get(&url).await;
    assert_eq!(code, 503);
    assert!(body.contains("listener disconnected"), "{body}");
    *served.live.listener.lock().unwrap() = Some(ListenerState::NotUsed);
    assert_eq!(get(&url).await.0, 200);

    // A store whose server is gone: the database is reported unreachable.
    let options = pool.connect_options().as_ref().clone().port(9);
    let dead = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy_with(options);
    let served = serve(Store::from_pool(dead), None).await;
    let (code, body, _) = get(&format!("{}/healthz", served.base)).await;
    assert_eq!(code, 503);
    assert_eq!(body, "database unreachable\n");
    let (code, page, _) = get(&format!("{}/", served.base)).await;
    assert_eq!(code, 503);
    assert!(!page.contains("postgres://"), "{page}");
}

/// `tool`'s path, or `None` after saying the test is skipped (scripts/test.sh installs it).
fn tool(test: &str, tool: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        common::skip(
            test,
            &format!(
                "{tool} not installed (Debian package {package}; scripts/test.sh installs it)"
            ),
        );
    }
    found
}

#[sqlx::test]
async fn promtool_accepts_the_metrics(pool: PgPool) {
    let Some(promtool) = tool("promtool_accepts_the_metrics", "promtool", "prometheus") else {
        return;
    };
    let store = seed(&pool, 0).await;
    // Every family has samples: events as the daemon records them.
    let metrics = autonomous_dev::metrics::global();
    metrics.task_finished(autonomous_dev::task::TaskStatus::Completed);
    metrics.stage_ended(
        autonomous_dev::task::Stage::Qa,
        "recorded",
        Some(std::time::Duration::from_secs(12)),
    );
    metrics.verification("passed", std::time::Duration::from_millis(1500));
    metrics.picked_up(chrono::Utc::now());
    let served = serve(store, None).await;
    let (code, text, _) = get(&format!("{}/metrics", served.base)).await;
    assert_eq!(code, 200);

    let check = |input: String| {
        let promtool = promtool.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let out = check(text.clone()).await;
    assert!(
        out.status.success(),
        "promtool: {:?}\n{text}",
        common::text(&out)
    );
    // The check can fail: a malformed exposition is refused.
    let out = check(format!("{text}\nnot a metric line {{\n")).await;
    assert!(!out.status.success(), "promtool accepted garbage");
}

/// Loads `url` in headless Chromium: the DOM after scripts ran, and every console line.
async fn chromium(
    chromium: &std::path::Path,
    profile: &std::path::Path,
    args: &[&str],
    url: &str,
) -> (String, Vec<String>) {
    let out = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            // Anything but loopback goes to a closed port: the test never reaches the internet.
            "--proxy-server=http://127.0.0.1:9",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (stdout, console)
}

#[sqlx::test]
async fn a_real_browser_shows_the_queue_and_a_task(pool: PgPool) {
    let test = "a_real_browser_shows_the_queue_and_a_task";
    let Some(browser) = tool(test, "chromium", "chromium") else {
        return;
    };
    let store = seed(&pool, 0).await;
    let served = serve(store, None).await;
    let output = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-screenshots");
    std::fs::create_dir_all(&output).unwrap();
    let profile = tempfile::tempdir().unwrap();

    // The detector works: a page that logs to the console is caught.
    let (_, console) = chromium(
        &browser,
        profile.path(),
        &["--dump-dom"],
        "data:text/html,<script>console.error('canary')</script>",
    )
    .await;
    assert!(console.iter().any(|l| l.contains("canary")), "{console:?}");

    for (name, path, elements, times) in [
        (
            "queue",
            "/",
            &["id=\"counts\"", "id=\"tasks\"", "href=\"/tasks/t-done\""][..],
            false,
        ),
        (
            "task",
            "/tasks/t-done",
            &[
                "id=\"task\"",
                "id=\"stage-engineer\"",
                "id=\"description\"",
                "PR #1",
            ][..],
            true,
        ),
        ("spend", "/spend", &["id=\"chart\"", "<polyline"][..], false),
    ] {
        let url = format!("{}{path}", served.base);
        let (dom, console) = chromium(&browser, profile.path(), &["--dump-dom"], &url).await;
        assert!(console.is_empty(), "{name}: console said {console:?}");
        for element in elements {
            assert!(dom.contains(element), "{name}: {element} missing in\n{dom}");
        }
        // The script ran: times are shown in the viewer's zone, the UTC text kept as the title.
        if times {
            assert!(
                dom.contains("title=\"20"),
                "{name}: times not localised:\n{dom}"
            );
        }
        let shot = output.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        let screenshot = format!("--screenshot={}", shot.display());
        let (_, console) = chromium(&browser, profile.path(), &[&screenshot], &url).await;
        assert!(console.is_empty(), "{name}: console said {console:?}");
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{name}: no screenshot: {e}"));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: {} bytes",
            png.len()
        );
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("screenshots in {}\n", output.display()).as_bytes(),
    );
}

/// The status page's address from the daemon's log line `status page served addr=…`.
fn served_addr(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("status page served"))?;
    let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
    Some(addr.to_owned())
}

/// The value of the sample `name` (labels included, as written) in a scrape.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[sqlx::test]
async fn the_daemon_serves_the_page_and_counts_what_it_does(pool: PgPool) {
    let remote = Remote::new();
    let model = common::FakeModel::start(|_| common::Script::Approve).await;
    let github = common::FakeGitHub::start().await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("POLL_INTERVAL", "1")
    .clone_with("PR_POLL_SECONDS", "1")
    .clone_with("STATUS_ADDR", "127.0.0.1:0");
    common::migrate_and_add(&bin, "t-1").await;
    let daemon = common::Running::spawn(&bin, &["run"]);
    let limit = std::time::Duration::from_secs(60);
    common::wait_for("the status page's address in the log", limit, || async {
        served_addr(&daemon.stderr()).is_some()
    })
    .await;
    let base = format!("http://{}", served_addr(&daemon.stderr()).unwrap());
    common::wait_for("the task to complete", limit, || {
        common::holds(&pool, "SELECT bool_and(status = 'completed') FROM tasks")
    })
    .await;
    common::wait_for("the listener to be up", limit, || async {
        get(&format!("{base}/healthz")).await.0 == 200
    })
    .await;

    let (code, metrics, _) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    for (name, value) in [
        (
            "autonomous_dev_tasks_finished_total{status=\"completed\"}",
            1.0,
        ),
        ("autonomous_dev_prs_opened_total", 1.0),
        ("autonomous_dev_pickup_latency_seconds_count", 1.0),
        ("autonomous_dev_listener_connected", 1.0),
        ("autonomous_dev_workers_busy", 0.0),
        ("autonomous_dev_queue_depth{status=\"completed\"}", 1.0),
        (
            "autonomous_dev_stages_total{role=\"security\",outcome=\"recorded\"}",
            1.0,
        ),
        (
            "autonomous_dev_stage_duration_seconds_count{role=\"pm\"}",
            1.0,
        ),
        (
            "autonomous_dev_llm_calls_total{role=\"pm\",model=\"claude-sonnet-4-5\",kind=\"answer\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&metrics, name), Some(value), "{name} in\n{metrics}");
    }
    let tokens = sample(
        &metrics,
        "autonomous_dev_llm_tokens_total{role=\"qa\",model=\"claude-sonnet-4-5\",kind=\"output\"}",
    );
    assert!(tokens.is_some_and(|t| t > 0.0), "{metrics}");
    let spent = sample(
        &metrics,
        "autonomous_dev_llm_spent_usd_total{role=\"architect\",model=\"claude-opus-4-5\"}",
    );
    assert!(spent.is_some_and(|usd| usd > 0.0), "{metrics}");
    for secret in [common::GITHUB_TOKEN, common::ANTHROPIC_API_KEY] {
        assert!(!metrics.contains(secret));
    }
    let (code, page, _) = get(&format!("{base}/tasks/t-1")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("id=\"stage-security\"") && page.contains("PR #"),
        "{page}"
    );
    for secret in [common::GITHUB_TOKEN, common::ANTHROPIC_API_KEY] {
        assert!(!page.contains(secret));
    }

    // The PR watch sees the merge: counted once.
    let number = github.open.lock().unwrap()[0]["number"].as_u64().unwrap();
    github.set_state(number, "merged");
    common::wait_for("the merge to be counted", limit, || async {
        let (_, metrics, _) = get(&format!("{base}/metrics")).await;
        sample(&metrics, "autonomous_dev_prs_merged_total") == Some(1.0)
    })
    .await;
    let (status, log) = daemon.stop().await;
    assert!(status.success(), "{log}");
}
