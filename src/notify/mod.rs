//! Notifications: the sender that delivers the outbox's events (`store/outbox.rs`: written in
//! the transaction of the state change that causes them) to each configured sink — a generic
//! webhook (JSON, signed with HMAC-SHA256 over the body with a shared secret), a Slack incoming
//! webhook (`{"text": …}`), the Telegram Bot API's `sendMessage` — several at once. A failed
//! delivery is tried again with the shared backoff (a 429's Retry-After, or Telegram's
//! `parameters.retry_after`, when given), and its backlog is kept. The sender also writes the
//! daily report at DAILY_REPORT_AT; a sink that keeps failing is
//! logged once per outage. Every payload carries the event's id, the idempotency key: a sink
//! that honours it never gets one twice, and a delivery recorded as done is never sent again.
//! The issue sink comments on the GitHub issue a task was born of (queued, PR opened, needs
//! review, failed, blocked), each comment carrying a marker with the event's id that is looked
//! for before posting, so a crash between the comment and its record never posts it twice.
//! Events every sink has had are deleted after [`KEEP`].
//!
//! Data flows store → notify → (HTTP, github) → store. Secrets (the webhook secret, the Slack URL, the
//! bot token) are `SecretString`s, exposed only where a request is built, and no error or log
//! line carries them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::github::{GitHub, GitHubError};
use crate::shutdown::Shutdown;
use crate::store::{DayReport, EventKind, OutboxEvent, Store, StoreError};

/// Header carrying the webhook body's signature: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-autonomous-dev-signature";
/// Header carrying the event's id, the idempotency key.
pub const EVENT_ID_HEADER: &str = "x-autonomous-dev-event-id";
/// How far back a newly configured sink is given events.
pub const BACKLOG: Duration = Duration::from_secs(24 * 3600);
/// How long a taken delivery is held before another sender may take it.
const LEASE: Duration = Duration::from_secs(120);
/// Deliveries taken per sink and sweep.
const BATCH: i64 = 50;
/// Timeout of one delivery.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How long delivered events are kept.
pub const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// Time between two prunings of the outbox.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How far before an event a comment carrying its marker is looked for (GitHub's clock and
/// the database's may differ).
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Where events go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// NOTIFY_WEBHOOK_URL, signed with NOTIFY_WEBHOOK_SECRET.
    Webhook { url: String, secret: SecretString },
    /// SLACK_WEBHOOK_URL (the URL is the credential).
    Slack { url: SecretString },
    /// TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID, against TELEGRAM_API_URL.
    Telegram {
        api: String,
        token: SecretString,
        chat: String,
    },
    /// Comments on the GitHub issue of a task born of one (tasks from issues); other events
    /// are skipped.
    Issue { github: Arc<GitHub> },
}

impl Sink {
    /// The sink's name in the deliveries table and the log: `webhook`, `slack`, `telegram`.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Webhook { .. } => "webhook",
            Sink::Slack { .. } => "slack",
            Sink::Telegram { .. } => "telegram",
            Sink::Issue { .. } => "issue",
        }
    }
}

/// Why one delivery failed; its message carries no secret.
#[derive(Debug)]
struct Failure {
    message: String,
    /// How long the sink asked us to wait.
    retry_after: Option<Duration>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub delivered: u32,
    pub failed: u32,
}

/// Delivers the outbox to `sinks`.
pub struct Notifier {
    store: Store,
    sinks: Vec<Sink>,
    client: reqwest::Client,
    backoff: Backoff,
    /// Per sink: failing now (an outage is logged once).
    failing: Mutex<Vec<bool>>,
    every: Duration,
    /// DAILY_REPORT_AT: when (UTC) the day's report is written.
    report_at: Option<chrono::NaiveTime>,
    /// When the outbox was last pruned.
    pruned: Mutex<Option<Instant>>,
}

impl Notifier {
    /// A sender of `store`'s outbox to `sinks`, sweeping every `every`, writing the daily
    /// report at `report_at` (UTC) when given.
    ///
    /// Errors: the HTTP client cannot be built (no TLS backend).
    pub fn new(
        store: Store,
        sinks: Vec<Sink>,
        every: Duration,
        report_at: Option<chrono::NaiveTime>,
    ) -> Result<Notifier, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the notification client: {e}"))?;
        let failing = Mutex::new(vec![false; sinks.len()]);
        Ok(Notifier {
            store,
            sinks,
            client,
            backoff: Backoff::new(Duration::from_secs(10), Duration::from_secs(3600)),
            failing,
            every,
            report_at,
            pruned: Mutex::new(None),
        })
    }

    /// Sweeps every `every` until `shutdown`; a database failure is logged and retried.
    pub async fn run(&self, shutdown: &Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(e) = self.sweep().await {
                warn!(error = %e, "notifications: cannot read or record the outbox");
            }
            tokio::select! {
                () = tokio::time::sleep(self.every) => {}
                () = shutdown.triggered() => {}
            }
        }
    }

    /// Delivers what is due to every sink once.
    ///
    /// Errors: [`StoreError`] when the outbox cannot be read or a delivery recorded.
    pub async fn sweep(&self) -> Result<Sent, StoreError> {
        self.report().await?;
        self.prune().await?;
        let mut sent = Sent::default();
        for (i, sink) in self.sinks.iter().enumerate() {
            self.store
                .materialize_deliveries(sink.name(), BACKLOG)
                .await?;
            for event in self
                .store
                .take_deliveries(sink.name(), BATCH, LEASE)
                .await?
            {
                match self.deliver(sink, &event).await {
                    Ok(()) => {
                        self.store.delivered(event.id, sink.name()).await?;
                        sent.delivered += 1;
                        self.outage(i, sink, None);
                    }
                    Err(failure) => {
                        let attempt = u32::try_from(event.attempts).unwrap_or(0);
                        let delay = failure
                            .retry_after
                            .unwrap_or_else(|| self.backoff.delay(attempt));
                        self.store
                            .delivery_failed(event.id, sink.name(), delay, &failure.message)
                            .await?;
                        sent.failed += 1;
                        self.outage(i, sink, Some(&failure.message));
                    }
                }
            }
        }
        Ok(sent)
    }

    /// Writes today's report once DAILY_REPORT_AT has passed (once a UTC day, whichever
    /// daemon comes first).
    async fn report(&self) -> Result<(), StoreError> {
        let Some(at) = self.report_at else {
            return Ok(());
        };
        if chrono::Utc::now().time() < at || self.store.reported_today().await? {
            return Ok(());
        }
        let stats = self.store.stats().await?;
        let prs = self.store.pr_counts().await?;
        let day = self.store.day_report().await?;
        if self
            .store
            .record_report(&report_text(&stats, &prs, &day))
            .await?
        {
            info!("daily report written");
        }
        Ok(())
    }

    /// Deletes the events older than [`KEEP`] every sink has had, once every [`PRUNE_EVERY`].
    async fn prune(&self) -> Result<(), StoreError> {
        {
            let pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return Ok(());
            }
        }
        let deleted = self.store.prune_outbox(KEEP).await?;
        if deleted > 0 {
            info!(
                deleted,
                "notifications: delivered events older than 30 days deleted"
            );
        }
        *self.pruned.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// Logs the start and the end of sink `i`'s outage, once each.
    fn outage(&self, i: usize, sink: &Sink, error: Option<&str>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match (failing[i], error) {
            (false, Some(error)) => {
                warn!(sink = sink.name(), %error, "notifications: the sink fails; its events are kept and retried");
                failing[i] = true;
            }
            (true, None) => {
                info!(sink = sink.name(), "notifications: the sink works again");
                failing[i] = false;
            }
            _ => {}
        }
    }

    async fn deliver(&self, sink: &Sink, event: &OutboxEvent) -> Result<(), Failure> {
        let failed = |e: reqwest::Error| Failure {
            message: e.without_url().to_string(),
            retry_after: None,
        };
        match sink {
            Sink::Webhook { url, secret } => {
                let body = webhook_body(event);
                let signature = sign(secret, &body);
                let response = self
                    .client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .header(EVENT_ID_HEADER, event.id.to_string())
                    .body(body)
                    .send()
                    .await
                    .map_err(failed)?;
                status_ok(response).await
            }
            Sink::Slack { url } => {
                let response = self
                    .client
                    .post(url.expose_secret())
                    .json(&json!({ "text": text(event) }))
                    .send()
                    .await
                    .map_err(failed)?;
                status_ok(response).await
            }
            Sink::Telegram { api, token, chat } => {
                let url = format!("{api}/bot{}/sendMessage", token.expose_secret());
                let response = self
                    .client
                    .post(url)
                    .json(&json!({ "chat_id": chat, "text": text(event) }))
                    .send()
                    .await
                    .map_err(failed)?;
                telegram_ok(response).await
            }
            Sink::Issue { github } => self.comment_on_issue(github, event).await,
        }
    }

    /// Comments `event` on its task's issue, unless a comment with its marker exists (posted
    /// by an attempt whose record was lost). Events without an issue, and kinds not told on
    /// the issue, are done without a request.
    async fn comment_on_issue(&self, github: &GitHub, event: &OutboxEvent) -> Result<(), Failure> {
        let Some(number) = event.issue_number.and_then(|n| u64::try_from(n).ok()) else {
            return Ok(());
        };
        let detail = match (event.kind, &event.detail) {
            (EventKind::NeedsReview, None) => self.review_reason(event).await,
            (_, detail) => detail.clone(),
        };
        let Some(text) = issue_text(event, detail.as_deref()) else {
            return Ok(());
        };
        let marker = format!("<!-- autonomous-dev event {} -->", event.id);
        let failed = |e: GitHubError| Failure {
            retry_after: match &e {
                GitHubError::Status { retry_after, .. } => retry_after.map(Duration::from_secs),
                _ => None,
            },
            message: e.to_string(),
        };
        if github
            .has_comment(number, &marker, event.created_at - CLOCK_SKEW)
            .await
            .map_err(failed)?
        {
            return Ok(());
        }
        let body = format!("{text}\n\n{marker}\n{}", crate::task::OWN_MARKER);
        github.comment(number, &body).await.map_err(failed)?;
        Ok(())
    }

    /// Why a task ended for review, from its recorded outcome: the consensus score and what
    /// held it.
    async fn review_reason(&self, event: &OutboxEvent) -> Option<String> {
        let task_id = event.task_id.as_deref()?;
        let task = self.store.get_task(task_id).await.ok()??;
        let crate::task::Outcome::Conditional { consensus } = task.result? else {
            return None;
        };
        let mut reason = format!("consensus score {:.0}%", consensus.score);
        if !consensus.held.is_empty() {
            reason.push_str(&format!("; held: {}", consensus.held.join("; ")));
        }
        Some(reason)
    }
}

/// The issue comment of an event of its task, Markdown; `None` for kinds not told there.
fn issue_text(event: &OutboxEvent, detail: Option<&str>) -> Option<String> {
    let task = event.task_id.as_deref().unwrap_or_default();
    let why = detail
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!(": {}", quote(d)))
        .unwrap_or_default();
    let pr = event.pr_url.as_deref().unwrap_or("its pull request");
    Some(match event.kind {
        EventKind::Queued => format!(
            "Queued as task `{task}`: autonomous-dev will work on it and open a pull request \
             that closes this issue."
        ),
        EventKind::PrOpened => format!("Task `{task}`: pull request opened, {pr}."),
        EventKind::NeedsReview => format!(
            "Task `{task}` needs a person's review{why}. A maintainer can publish its change \
             with `autonomous-dev tasks approve {task}` or drop it with `tasks reject`."
        ),
        EventKind::Failed => format!("Task `{task}` failed{why}."),
        EventKind::Blocked => format!("Task `{task}` is blocked{why}."),
        _ => return None,
    })
}

/// `text` as one line of at most 1,000 characters, without Markdown that could ping people or
/// break out of the sentence.
fn quote(text: &str) -> String {
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(1000)
        .collect();
    format!("`{}`", line.replace('`', "'"))
}

/// The webhook's JSON body: the event with its id (the idempotency key).
fn webhook_body(event: &OutboxEvent) -> String {
    json!({
        "id": event.id,
        "kind": event.kind,
        "task_id": event.task_id,
        "pr_url": event.pr_url,
        "detail": event.detail,
        "issue": event.issue_number,
        "at": event.created_at,
    })
    .to_string()
}

/// The daily report: tasks by status, PRs opened and merged today, today's spend, the
/// slowest and the costliest task of the day.
fn report_text(
    stats: &[crate::store::StatusStats],
    prs: &crate::store::PrCounts,
    day: &DayReport,
) -> String {
    let statuses: Vec<String> = stats
        .iter()
        .filter(|s| s.count > 0)
        .map(|s| format!("{} {}", s.count, s.status))
        .collect();
    let mut text = format!(
        "tasks: {}; PRs today: {} opened, {} merged ({} open in all); spent today: {:.2} USD",
        if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses.join(", ")
        },
        day.prs_opened,
        day.prs_merged,
        prs.open,
        day.spent_usd
    );
    if let (Some(task), Some(seconds)) = (&day.slowest_task, day.slowest_seconds) {
        text.push_str(&format!("; slowest: {task} ({seconds:.0} s)"));
    }
    if let (Some(task), Some(usd)) = (&day.costliest_task, day.costliest_usd) {
        text.push_str(&format!("; costliest: {task} ({usd:.2} USD)"));
    }
    text
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn sign(secret: &SecretString, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The one-line message of a chat sink (event id last, so duplicates can be told apart).
fn text(event: &OutboxEvent) -> String {
    let what = match event.kind {
        EventKind::Queued => "queued",
        EventKind::PrOpened => "pull request opened",
        EventKind::RevisionPushed => "revision pushed",
        EventKind::NeedsReview => "needs review",
        EventKind::Failed => "failed",
        EventKind::Blocked => "blocked",
        EventKind::DaemonStarted => "daemon started",
        EventKind::DaemonStopped => "daemon stopped",
        EventKind::Paused => "work paused",
        EventKind::Resumed => "work resumed",
        EventKind::DailyReport => "daily report",
    };
    let mut line = match &event.task_id {
        Some(task_id) => format!("autonomous-dev: task {task_id} {what}"),
        None => format!("autonomous-dev: {what}"),
    };
    if let Some(url) = &event.pr_url {
        line.push_str(&format!(": {url}"));
    }
    if let Some(detail) = event.detail.as_deref().filter(|d| !d.is_empty()) {
        let detail: String = detail.chars().take(1000).collect();
        line.push_str(&format!(" ({detail})"));
    }
    line.push_str(&format!(" [event {}]", event.id));
    line
}

/// A 2xx is delivered; a 429 says when to try again (`Retry-After`, seconds).
async fn status_ok(response: reqwest::Response) -> Result<(), Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs);
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    Err(Failure {
        message: format!("HTTP {status}: {}", body.trim()),
        retry_after,
    })
}

/// Telegram answers `{"ok": true, …}`, or `{"ok": false, "error_code", "description",
/// "parameters": {"retry_after"}}` (Bot API, "Making requests").
async fn telegram_ok(response: reqwest::Response) -> Result<(), Failure> {
    #[derive(serde::Deserialize)]
    struct Answer {
        ok: bool,
        description: Option<String>,
        error_code: Option<u16>,
        parameters: Option<Parameters>,
    }
    #[derive(serde::Deserialize)]
    struct Parameters {
        retry_after: Option<u64>,
    }
    let status = response.status();
    let answer: Answer = response.json().await.map_err(|e| Failure {
        message: format!("HTTP {status}: unreadable answer: {}", e.without_url()),
        retry_after: None,
    })?;
    if answer.ok {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "Telegram error {}: {}",
            answer.error_code.unwrap_or(status.as_u16()),
            answer.description.unwrap_or_default()
        ),
        retry_after: answer
            .parameters
            .and_then(|p| p.retry_after)
            .map(Duration::from_secs),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let secret = secrecy::SecretString::from("Jefe");
        assert_eq!(
            super::sign(&secret, "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
