//! The daemon's Prometheus metrics: one process-wide registry of counters, histograms and
//! gauges (the `prometheus-client` crate), updated where the events happen (the daemon's
//! workers, the pipeline, the cost guard, the evidence loop, the PR watch) and encoded for
//! `/metrics` in the text exposition format. Also the daemon's pause, which the status page
//! shows. A leaf: it knows the domain types and nothing else of the program.
//!
//! Every name starts with `autonomous_dev_`; counters end in `_total`, durations are in
//! seconds, money in USD. No label ever carries a secret or task text: labels are statuses,
//! roles, models, outcomes, gates and results.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::task::{CallKind, GateReport, Stage, TaskStatus, Usage};

/// The `Content-Type` of [`Metrics::encode`]'s text: Prometheus' text exposition format 0.0.4,
/// which every Prometheus scrapes and `promtool check metrics` lints.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Labels of one status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// Labels of one role (`pm`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: String,
}

/// Labels of one role's stage outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub role: String,
    /// `recorded`, `failed`, `interrupted` (shutdown, cancel, a lost lease).
    pub outcome: String,
}

/// Labels of one role on one model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub role: String,
    pub model: String,
    /// `answer`, `correction`, `feedback`, `lookup` ([`CallKind`]).
    pub kind: String,
}

/// Labels of tokens of one kind, one role, one model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub role: String,
    pub model: String,
    /// `input`, `output`, `cache_write`, `cache_read`.
    pub kind: String,
}

/// Labels of spend by one role on one model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpendLabels {
    pub role: String,
    pub model: String,
}

/// A verification's result (`passed`, `failed`, `timed_out`, `not_verified`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// The gate that refused a change: `secrets`, `files` (binary or oversized),
/// `files_changed` (over MAX_FILES_CHANGED).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabel {
    pub gate: String,
}

/// Why the daemon paused (`rate_limited`, `overloaded`, `daily_budget`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The daemon's pause as the status page shows it: why, and until when (UTC).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    /// What caused it, in words (`PauseReason`'s text).
    pub reason: String,
    /// When claiming resumes.
    pub until: DateTime<Utc>,
}

/// The daemon's LISTEN connection for new tasks, as `/healthz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// No listener was started (`run --once`, or a process that is not the daemon).
    NotUsed,
    Connected,
    /// Lost and not back yet: new tasks are picked up by the poll only.
    Disconnected,
}

/// Every metric of the process. Get the one instance with [`global`].
pub struct Metrics {
    registry: Registry,
    pub tasks_finished: Family<StatusLabel, Counter>,
    pub stages: Family<StageLabels, Counter>,
    pub llm_calls: Family<CallLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub spent_usd: Family<SpendLabels, Counter<f64, AtomicU64>>,
    pub verifications: Family<ResultLabel, Counter>,
    pub gate_refusals: Family<GateLabel, Counter>,
    pub prs_opened: Counter,
    pub prs_merged: Counter,
    pub retries: Counter,
    pub snoozes: Counter,
    pub stage_seconds: Histograms<RoleLabel>,
    pub verification_seconds: Histogram,
    pub pickup_seconds: Histogram,
    pub workers_busy: Gauge,
    pub paused: Family<ReasonLabel, Gauge>,
    pub listener_connected: Gauge,
    pause: Mutex<Option<Pause>>,
    /// [`ListenerState`] as 0 (not used), 1 (connected), 2 (disconnected).
    listener: AtomicU8,
}

/// Stage durations: 1 s to about 68 min, doubling.
fn stage_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("autonomous_dev");
        let metrics = Metrics {
            tasks_finished: Family::default(),
            stages: Family::default(),
            llm_calls: Family::default(),
            tokens: Family::default(),
            spent_usd: Family::default(),
            verifications: Family::default(),
            gate_refusals: Family::default(),
            prs_opened: Counter::default(),
            prs_merged: Counter::default(),
            retries: Counter::default(),
            snoozes: Counter::default(),
            stage_seconds: Family::new_with_constructor(stage_buckets),
            // 0.5 s to about 68 min, doubling.
            verification_seconds: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            // 5 ms to about 82 s, doubling: NOTIFY pickups are milliseconds, polls seconds.
            pickup_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            workers_busy: Gauge::default(),
            paused: Family::default(),
            listener_connected: Gauge::default(),
            pause: Mutex::new(None),
            listener: AtomicU8::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "tasks_finished",
            "Tasks this process ended, by final status",
            metrics.tasks_finished.clone(),
        );
        registry.register(
            "stages",
            "Pipeline stages this process ran, by role and outcome (recorded, failed, interrupted)",
            metrics.stages.clone(),
        );
        registry.register(
            "llm_calls",
            "LLM calls made, by role, model and kind (answer, correction, feedback)",
            metrics.llm_calls.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens the providers billed, by role, model and kind (input, output, cache_write, cache_read)",
            metrics.tokens.clone(),
        );
        registry.register(
            "llm_spent_usd",
            "USD spent on LLM calls, by role and model",
            metrics.spent_usd.clone(),
        );
        registry.register(
            "verifications",
            "Verifications in the sandbox, by result (passed, failed, timed_out, not_verified)",
            metrics.verifications.clone(),
        );
        registry.register(
            "gate_refusals",
            "Changes refused by a gate, by gate (secrets, files, files_changed)",
            metrics.gate_refusals.clone(),
        );
        registry.register(
            "prs_opened",
            "Pull requests opened or adopted",
            metrics.prs_opened.clone(),
        );
        registry.register(
            "prs_merged",
            "Pull requests the PR watch saw merged",
            metrics.prs_merged.clone(),
        );
        registry.register(
            "retries",
            "Tasks sent back to pending after a transient failure, an attempt spent",
            metrics.retries.clone(),
        );
        registry.register(
            "snoozes",
            "Tasks sent back to pending without spending an attempt (rate limit, quota, overload, daily budget)",
            metrics.snoozes.clone(),
        );
        registry.register(
            "stage_duration_seconds",
            "Wall time of a recorded stage, retries included, by role",
            metrics.stage_seconds.clone(),
        );
        registry.register(
            "verification_duration_seconds",
            "Wall time of one verification run in the sandbox",
            metrics.verification_seconds.clone(),
        );
        registry.register(
            "pickup_latency_seconds",
            "From the moment a task became claimable (run_after) to its claim",
            metrics.pickup_seconds.clone(),
        );
        registry.register(
            "workers_busy",
            "This process's workers running a task now",
            metrics.workers_busy.clone(),
        );
        registry.register(
            "paused",
            "1 while this process has paused all claiming, by reason",
            metrics.paused.clone(),
        );
        registry.register(
            "listener_connected",
            "1 while the daemon's LISTEN connection for new tasks is up",
            metrics.listener_connected.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The registry in Prometheus' text exposition format 0.0.4 ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry);
        to_text_format(&open_metrics)
    }

    /// A task ended with `status` (completed, failed, needs_review, cancelled).
    pub fn task_finished(&self, status: TaskStatus) {
        self.tasks_finished
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// A stage of `stage`'s role ended: `outcome` is `recorded`, `failed` or `interrupted`;
    /// `duration` is observed for recorded stages.
    pub fn stage_ended(&self, stage: Stage, outcome: &str, duration: Option<Duration>) {
        self.stages
            .get_or_create(&StageLabels {
                role: stage.to_string(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(duration) = duration {
            self.stage_seconds
                .get_or_create(&RoleLabel {
                    role: stage.to_string(),
                })
                .observe(duration.as_secs_f64());
        }
    }

    /// One LLM call of `stage`'s role answered by `model`, billed `usage`, priced `cost_usd`.
    pub fn llm_call(&self, stage: Stage, model: &str, kind: CallKind, usage: Usage, cost_usd: f64) {
        let role = stage.to_string();
        let kind = match kind {
            CallKind::Answer => "answer",
            CallKind::Correction => "correction",
            CallKind::Feedback => "feedback",
            CallKind::Lookup => "lookup",
        };
        self.llm_calls
            .get_or_create(&CallLabels {
                role: role.clone(),
                model: model.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
        for (kind, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_write", usage.cache_creation_input_tokens),
            ("cache_read", usage.cache_read_input_tokens),
        ] {
            self.tokens
                .get_or_create(&TokenLabels {
                    role: role.clone(),
                    model: model.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc_by(u64::from(tokens));
        }
        if cost_usd.is_finite() && cost_usd > 0.0 {
            self.spent_usd
                .get_or_create(&SpendLabels {
                    role,
                    model: model.to_owned(),
                })
                .inc_by(cost_usd);
        }
    }

    /// One verification ended with `result` (`passed`, …) after `duration`.
    pub fn verification(&self, result: &str, duration: Duration) {
        self.verifications
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
        self.verification_seconds.observe(duration.as_secs_f64());
    }

    /// The gates refused a change: one count per gate that refused it.
    pub fn gates_refused(&self, report: &GateReport) {
        let refused = [
            ("secrets", !report.secrets.is_empty()),
            ("files", !report.refused.is_empty()),
            (
                "files_changed",
                report.files_changed > report.max_files_changed,
            ),
        ];
        for (gate, _) in refused.iter().filter(|(_, refused)| *refused) {
            self.gate_refusals
                .get_or_create(&GateLabel {
                    gate: (*gate).to_owned(),
                })
                .inc();
        }
    }

    /// A claimed task had been claimable since `since`.
    pub fn picked_up(&self, since: DateTime<Utc>) {
        let waited = (Utc::now() - since).to_std().unwrap_or_default();
        self.pickup_seconds.observe(waited.as_secs_f64());
    }

    /// The daemon paused all claiming until `until` for `reason` (`key`: the reason's label);
    /// `None`: the pause is over.
    pub fn set_pause(&self, pause: Option<(&str, Pause)>) {
        let mut current = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        self.paused.clear();
        match pause {
            Some((key, pause)) => {
                self.paused
                    .get_or_create(&ReasonLabel {
                        reason: key.to_owned(),
                    })
                    .set(1);
                *current = Some(pause);
            }
            None => *current = None,
        }
    }

    /// The running pause, if one is (a pause whose end has passed is none).
    pub fn pause(&self) -> Option<Pause> {
        let current = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        current.clone().filter(|pause| pause.until > Utc::now())
    }

    /// The daemon's LISTEN connection came up (`true`) or was lost (`false`).
    pub fn set_listener(&self, connected: bool) {
        self.listener_connected.set(i64::from(connected));
        self.listener
            .store(if connected { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// The LISTEN connection's state.
    pub fn listener(&self) -> ListenerState {
        match self.listener.load(Ordering::Relaxed) {
            0 => ListenerState::NotUsed,
            1 => ListenerState::Connected,
            _ => ListenerState::Disconnected,
        }
    }

    /// [`Metrics::encode`] followed by the gauge `autonomous_dev_queue_depth{status}` of
    /// `counts` (tasks per status, read from the database for this scrape; `None` when it
    /// could not be read: the gauge is left out). Built per scrape, never stored, so that
    /// scrapes of different databases in one process cannot mix.
    pub fn encode_with_queue(&self, counts: Option<&[(TaskStatus, i64)]>) -> String {
        let mut text = self.encode();
        if let Some(counts) = counts {
            let mut registry = Registry::with_prefix("autonomous_dev");
            let depth = Family::<StatusLabel, Gauge>::default();
            for (status, count) in counts {
                depth
                    .get_or_create(&StatusLabel {
                        status: status.to_string(),
                    })
                    .set(*count);
            }
            registry.register(
                "queue_depth",
                "Tasks in each status, as the database holds them at the scrape",
                depth,
            );
            let mut open_metrics = String::new();
            let _ = prometheus_client::encoding::text::encode(&mut open_metrics, &registry);
            text.push_str(&to_text_format(&open_metrics));
        }
        text
    }
}

/// prometheus-client writes OpenMetrics, whose counter family `x` has samples `x_total`; the
/// 0.0.4 text format names the family as its samples, so `HELP`/`TYPE` of a counter get the
/// `_total` suffix, and OpenMetrics' closing `# EOF` goes.
fn to_text_format(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics (created at first use).
pub fn global() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_encoded_with_their_labels() {
        let metrics = Metrics::new();
        metrics.task_finished(TaskStatus::Completed);
        metrics.llm_call(
            Stage::Qa,
            "claude-sonnet-4-5",
            CallKind::Answer,
            Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 7,
            },
            0.25,
        );
        metrics.stage_ended(Stage::Pm, "recorded", Some(Duration::from_secs(3)));
        let text = metrics.encode();
        assert!(
            text.contains("autonomous_dev_tasks_finished_total{status=\"completed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "autonomous_dev_llm_tokens_total{role=\"qa\",model=\"claude-sonnet-4-5\",kind=\"cache_read\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "autonomous_dev_llm_spent_usd_total{role=\"qa\",model=\"claude-sonnet-4-5\"} 0.25"
            ),
            "{text}"
        );
        assert!(
            text.contains("autonomous_dev_stage_duration_seconds_count{role=\"pm\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE autonomous_dev_tasks_finished_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE autonomous_dev_stage_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn a_pause_shows_until_it_ends() {
        let metrics = Metrics::new();
        let until = Utc::now() + chrono::Duration::minutes(5);
        metrics.set_pause(Some((
            "rate_limited",
            Pause {
                reason: "rate limit".into(),
                until,
            },
        )));
        assert_eq!(metrics.pause().map(|p| p.until), Some(until));
        assert!(
            metrics
                .encode()
                .contains("autonomous_dev_paused{reason=\"rate_limited\"} 1")
        );
        metrics.set_pause(None);
        assert_eq!(metrics.pause(), None);
        assert!(!metrics.encode().contains("reason=\"rate_limited\""));
    }

    #[test]
    fn the_grafana_dashboard_uses_only_these_metrics() {
        let metrics = Metrics::new();
        metrics.task_finished(TaskStatus::Failed);
        metrics.stage_ended(Stage::Engineer, "failed", Some(Duration::from_secs(1)));
        metrics.llm_call(Stage::Pm, "m", CallKind::Correction, Usage::default(), 0.1);
        metrics.verification("failed", Duration::from_secs(2));
        metrics.gates_refused(&GateReport {
            files_changed: 60,
            max_files_changed: 50,
            max_file_bytes: 1,
            secrets: Vec::new(),
            refused: Vec::new(),
            workflows: Vec::new(),
            held: Vec::new(),
            automation: Vec::new(),
            dependencies: Vec::new(),
            allow_workflow_changes: false,
        });
        metrics.picked_up(Utc::now());

        metrics.set_listener(true);
        metrics.set_pause(Some((
            "overloaded",
            Pause {
                reason: "provider overloaded".into(),
                until: Utc::now() + chrono::Duration::minutes(1),
            },
        )));
        let text = metrics.encode_with_queue(Some(&[(TaskStatus::Pending, 3)]));
        let names: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../grafana/autonomous-dev.json")).unwrap();
        let name = regex::Regex::new(r"autonomous_dev_[a-z_]+").unwrap();
        let mut used = std::collections::HashSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for found in name.find_iter(expr) {
                    assert!(
                        names.contains(found.as_str()),
                        "{} (panel {}) is not a metric:\n{text}",
                        found.as_str(),
                        panel["title"]
                    );
                    used.insert(found.as_str().to_owned());
                }
            }
        }
        assert!(used.len() >= 17, "{used:?}");
    }
}
