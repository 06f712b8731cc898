//! Notifications through the binary: the outbox's events (a PR opened, a task failed, the
//! daemon started and stopped, the daily report) reach a
//! webhook receiver that verifies their HMAC-SHA256 signature, a fake Slack incoming webhook
//! that first answers 429 with Retry-After (as Slack documents), and a fake Telegram Bot API
//! that first answers `ok: false` with `parameters.retry_after`; each event is delivered to
//! each sink exactly once, a failed delivery is kept and retried, and no log line carries a
//! sink's credential.

use crate::common;

use std::time::Duration;

use common::{Bin, FakeGitHub, FakeModel, Remote, Script, text};
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WEBHOOK_SECRET: &str = "whsec_notifyTestSecret0001";
const SLACK_PATH: &str = "/services/T0000/B0000/slackSecretPath0001";
const TELEGRAM_TOKEN: &str = "123456:telegramSecretToken0001";

fn script(task_id: &str) -> Script {
    if task_id == "t-fail" {
        Script::PmReject
    } else {
        Script::Approve
    }
}

/// The bodies `server` received at `at`, in order.
async fn bodies(server: &MockServer, at: &str) -> Vec<(Value, Option<String>)> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == at)
        .map(|r| {
            let signature = r
                .headers
                .get("x-autonomous-dev-signature")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (serde_json::from_slice(&r.body).unwrap(), signature)
        })
        .collect()
}

#[sqlx::test]
async fn every_event_reaches_every_sink_once_failed_deliveries_are_retried(pool: PgPool) {
    let remote = Remote::new();
    let model = FakeModel::start(script).await;
    let github = FakeGitHub::start().await;
    let sinks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&sinks)
        .await;
    // Slack: "HTTP 429 Too Many Requests … with a Retry-After header", twice, then "ok".
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&sinks)
        .await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw("ok", "text/plain"))
        .with_priority(2)
        .mount(&sinks)
        .await;
    // Telegram: `ok: false` with retry_after, twice, then a sent message.
    let send = format!("/bot{TELEGRAM_TOKEN}/sendMessage");
    Mock::given(method("POST"))
        .and(path(send.as_str()))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 0",
            "parameters": {"retry_after": 0}
        })))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&sinks)
        .await;
    Mock::given(method("POST"))
        .and(path(send.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": {"message_id": 1, "date": 1733300000, "chat": {"id": -100123, "type": "channel"}, "text": "sent"}
        })))
        .with_priority(2)
        .mount(&sinks)
        .await;

    let base = sinks.uri();
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("NOTIFY_WEBHOOK_URL", &format!("{base}/hook"))
    .clone_with("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET)
    .clone_with("SLACK_WEBHOOK_URL", &format!("{base}{SLACK_PATH}"))
    .clone_with("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN)
    .clone_with("TELEGRAM_CHAT_ID", "-100123")
    .clone_with("TELEGRAM_API_URL", &base)
    .clone_with("DAILY_REPORT_AT", "00:00");
    assert!(bin.output(&["migrate"]).await.status.success());
    for id in ["t-ok", "t-fail"] {
        let add = [
            "tasks",
            "add",
            "--id",
            id,
            "--priority",
            "1",
            "Write the docs",
        ];
        let out = bin.output(&add).await;
        assert!(out.status.success(), "{:?}", text(&out));
    }

    let first = bin.run_once().await;
    let hooks = bodies(&sinks, "/hook").await;
    let kinds: Vec<&str> = hooks
        .iter()
        .map(|(b, _)| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["daemon_started", "pr_opened", "failed", "daily_report"],
        "{first}"
    );
    assert_eq!(hooks[1].0["task_id"], "t-ok");
    assert_eq!(hooks[1].0["pr_url"], "https://github.com/o/r/pull/1");
    assert_eq!(hooks[2].0["task_id"], "t-fail");
    let report = hooks[3].0["detail"].as_str().unwrap();
    assert!(
        report.starts_with(
            "tasks: 1 completed, 1 failed; PRs today: 1 opened, 0 merged (1 open in all)"
        ),
        "{report}"
    );
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET);
    for (body, signature) in &hooks {
        let expected = autonomous_dev::notify::sign(&secret, &body.to_string());
        assert_eq!(signature.as_deref(), Some(expected.as_str()), "{body}");
    }
    // Slack and Telegram each refused two deliveries: one line each, once per outage.
    assert_eq!(first.matches("the sink fails").count(), 2, "{first}");
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_deliveries WHERE delivered_at IS NULL AND last_error IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        kept, 4,
        "Slack's and Telegram's refused deliveries are kept"
    );

    // Two more runs: the refused deliveries go out, each run's own events too, and the report
    // is not written twice in a day.
    let second = bin.run_once().await;
    let third = bin.run_once().await;
    let ids = |texts: Vec<String>| -> Vec<i64> {
        let mut ids: Vec<i64> = texts
            .iter()
            .map(|t| {
                let at = t.rfind("[event ").expect("the event id") + 7;
                t[at..].trim_end_matches(']').parse().unwrap()
            })
            .collect();
        ids.sort_unstable();
        ids
    };
    let hooks = bodies(&sinks, "/hook").await;
    let mut webhook_ids: Vec<i64> = hooks
        .iter()
        .map(|(b, _)| b["id"].as_i64().unwrap())
        .collect();
    webhook_ids.sort_unstable();
    let mut unique = webhook_ids.clone();
    unique.dedup();
    assert_eq!(unique, webhook_ids, "no event twice");
    let kinds: Vec<&str> = hooks
        .iter()
        .map(|(b, _)| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "daily_report").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "daemon_stopped").count(), 2);
    let slack: Vec<String> = bodies(&sinks, SLACK_PATH).await[2..]
        .iter()
        .map(|(b, _)| b["text"].as_str().unwrap().to_owned())
        .collect();
    let telegram: Vec<String> = bodies(&sinks, &send).await[2..]
        .iter()
        .map(|(b, _)| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids(slack.clone()),
        webhook_ids,
        "Slack got every event once"
    );
    assert_eq!(
        ids(telegram.clone()),
        webhook_ids,
        "Telegram got every event once"
    );
    assert!(
        telegram
            .iter()
            .any(|t| t.contains("task t-ok pull request opened: https://github.com/o/r/pull/1")),
        "{telegram:?}"
    );
    assert!(
        slack.iter().any(|t| t.contains("task t-fail failed")),
        "{slack:?}"
    );
    for log in [&first, &second, &third] {
        for credential in [
            WEBHOOK_SECRET,
            "slackSecretPath0001",
            "telegramSecretToken0001",
        ] {
            assert!(!log.contains(credential), "{credential} in the log: {log}");
        }
    }
}

#[sqlx::test]
async fn a_half_configured_sink_is_refused_with_a_clear_error(pool: PgPool) {
    let remote = Remote::new();
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    );
    for (key, value) in [
        ("NOTIFY_WEBHOOK_URL", "https://hooks.example.com/x"),
        ("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN),
    ] {
        let out = bin.clone_with(key, value).output(&["run", "--once"]).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("required"), "{stderr}");
        assert!(!stderr.contains("telegramSecretToken0001"), "{stderr}");
    }
    let out = bin
        .clone_with(
            "SLACK_WEBHOOK_URL",
            "http://hooks.slack.example.com/services/x",
        )
        .output(&["run", "--once"])
        .await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}

#[sqlx::test]
async fn delivered_events_older_than_30_days_are_pruned_a_backlog_is_kept(pool: PgPool) {
    let store = autonomous_dev::store::Store::from_pool(pool.clone());
    // Old and delivered to every sink; old with a sink still owed it; recent and delivered.
    for (detail, age_days, delivered) in [("old", 40, true), ("owed", 40, false), ("new", 1, true)]
    {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (kind, detail, created_at) \
             VALUES ('paused', $1, now() - make_interval(days => $2)) RETURNING id",
        )
        .bind(detail)
        .bind(age_days)
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO outbox_deliveries (event, sink, delivered_at) \
             VALUES ($1, 'slack', CASE WHEN $2 THEN now() END), ($1, 'webhook', now())",
        )
        .bind(id)
        .bind(delivered)
        .execute(&pool)
        .await
        .unwrap();
    }
    let deleted = store
        .prune_outbox(autonomous_dev::notify::KEEP)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT detail FROM outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["owed", "new"]);
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 4, "the pruned event's deliveries go with it");
}

#[sqlx::test]
async fn a_sigkill_before_delivery_loses_nothing_and_a_sink_back_up_gets_each_event_once_in_order(
    pool: PgPool,
) {
    let remote = Remote::new();
    let model = FakeModel::start(script).await;
    let github = FakeGitHub::start().await;
    let sinks = MockServer::start().await;
    // The webhook is down: 503, try again in a second.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "1"))
        .mount(&sinks)
        .await;
    let bin = Bin::new(
        &common::database_url(&pool),
        &remote,
        &model.server.uri(),
        &github.server.uri(),
    )
    .clone_with("NOTIFY_WEBHOOK_URL", &format!("{}/hook", sinks.uri()))
    .clone_with("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET)
    .clone_with("NOTIFY_POLL_SECONDS", "1");
    assert!(bin.output(&["migrate"]).await.status.success());
    for id in ["t-ok", "t-fail"] {
        let add = [
            "tasks",
            "add",
            "--id",
            id,
            "--priority",
            "1",
            "Write the docs",
        ];
        assert!(bin.output(&add).await.status.success());
    }
    let mut daemon = common::Running::spawn(&bin, &["run"]);
    // Both outcomes are in the outbox and the webhook has refused them.
    common::wait_for(
        "refused deliveries of both outcomes",
        Duration::from_secs(60),
        || {
            common::holds(
                &pool,
                "SELECT count(*) = 2 FROM outbox o JOIN outbox_deliveries d ON d.event = o.id \
             WHERE o.kind IN ('pr_opened', 'failed') AND d.sink = 'webhook' \
               AND d.delivered_at IS NULL AND d.last_error LIKE 'HTTP 503%'",
            )
        },
    )
    .await;
    daemon.child.kill().await.expect("SIGKILL");
    // As if the two minutes' lease on the deliveries it had taken ran out.
    sqlx::query("UPDATE outbox_deliveries SET next_at = now() WHERE delivered_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();

    // The sink comes back; the next daemon delivers the backlog.
    sinks.reset().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&sinks)
        .await;
    bin.run_once().await;
    let hooks = bodies(&sinks, "/hook").await;
    let ids: Vec<i64> = hooks
        .iter()
        .map(|(b, _)| b["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "once each, in order: {ids:?}"
    );
    let kinds: Vec<&str> = hooks
        .iter()
        .map(|(b, _)| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["daemon_started", "pr_opened", "failed", "daemon_started",],
        "the killed daemon never said it stopped; the second says so after its last sweep"
    );
    let undelivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_deliveries d JOIN outbox o ON o.id = d.event \
         WHERE d.delivered_at IS NULL AND o.kind <> 'daemon_stopped'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(undelivered, 0);
    for (body, _) in &hooks {
        let text = body.to_string();
        for secret in [
            common::GITHUB_TOKEN,
            common::ANTHROPIC_API_KEY,
            WEBHOOK_SECRET,
        ] {
            assert!(!text.contains(secret), "a secret in a payload: {text}");
        }
    }
}
