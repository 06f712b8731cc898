//! The status page's HTML, rendered on the server with maud (which escapes every interpolated
//! value, so task text such as `<script>` shows as text), and its chart as inline SVG. Times
//! are written as UTC `<time datetime>` elements that `status.js` rewrites into the viewer's
//! time zone; without JavaScript they read as UTC.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::view::{Overview, StageView, StatusCount, TaskDetail, TaskPage, TaskSummary};
use crate::agents::RoundOutcome;
use crate::consensus::score_text;
use crate::store::DayRow;
use crate::task::{Outcome, Publication, RevisionEnd, TaskStatus};
use crate::verify::Verification;

/// The page's stylesheet (inline: the Content-Security-Policy allows inline styles only).
const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#234;color:#fff;padding:.5em 1em;display:flex;gap:1.2em;align-items:center}\
header a{color:#fff;text-decoration:none}header label{margin-left:auto;font-size:12px}\
main{padding:1em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#eee}pre{white-space:pre-wrap;background:#f0f0f0;padding:.5em;max-width:100%;overflow:auto}\
.counts a{margin-right:1em}.status{font-family:monospace}.num{text-align:right}\
form.filter{margin:.5em 0}svg{background:#fff;border:1px solid #ddd}";

/// Tasks per page of the queue.
pub const PAGE_SIZE: i64 = 50;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · autonomous-dev" }
                style { (PreEscaped(STYLE)) }
                script src="/static/status.js" defer {}
            }
            body {
                header {
                    strong { "autonomous-dev" }
                    a href="/" { "Queue" }
                    a href="/workers" { "Workers" }
                    a href="/spend" { "Spend" }
                    a href="/pauses" { "Pauses" }
                    a href="/metrics" { "Metrics" }
                    label { input type="checkbox" id="autorefresh"; " refresh every 30 s" }
                }
                main id="main" { h1 { (title) } (body) }
            }
        }
    }
}

/// An instant as a `<time>` the script localises; `-` for none.
fn time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => html! {
            time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
        },
        None => html! { "-" },
    }
}

/// A duration in words: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn human(duration: chrono::Duration) -> String {
    let s = duration.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn usd(amount: f64) -> String {
    format!("${amount:.4}")
}

/// `text` percent-encoded for a URL path segment or query value (all but unreserved bytes).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A link to a PR, only for an `https://` or `http://` URL (a stored `javascript:` URL is
/// shown as text, never linked).
fn pr_link(url: &str, label: &str) -> Markup {
    if url.starts_with("https://") || url.starts_with("http://") {
        html! { a href=(url) rel="noreferrer" { (label) } }
    } else {
        html! { (url) }
    }
}

fn task_link(task_id: &str) -> Markup {
    html! { a href={ "/tasks/" (encode(task_id)) } { (task_id) } }
}

fn score(score: Option<f64>) -> String {
    score.map_or_else(|| "-".into(), |s| format!("{s:.1}"))
}

/// The queue: counts by status (each a filter), the filter form, a page of tasks, paging.
pub fn queue(
    counts: &[StatusCount],
    page: &TaskPage,
    status: Option<TaskStatus>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let query = |offset: i64| {
        let mut q = format!("?offset={offset}");
        if let Some(status) = status {
            q.push_str(&format!("&status={status}"));
        }
        if let Some(label) = label {
            q.push_str(&format!("&label={}", encode(label)));
        }
        q
    };
    let size = page.limit.unwrap_or(PAGE_SIZE).max(1);
    let pages = ((page.total + size - 1) / size).max(1);
    let current = page.offset / size + 1;
    let body = html! {
        p.counts id="counts" {
            a href="/" { "all" }
            @for c in counts {
                a href={ "/?status=" (c.status) } { (c.status) ": " strong { (c.count) } }
            }
        }
        form.filter method="get" action="/" {
            label { "status " select name="status" {
                option value="" { "any" }
                @for s in TaskStatus::ALL {
                    option value=(s) selected[status == Some(s)] { (s) }
                }
            } }
            " "
            label { "label " input name="label" value=(label.unwrap_or("")); }
            " "
            button type="submit" { "filter" }
        }
        p { (page.total) " task(s); page " (current) " of " (pages) }
        (task_table(&page.tasks, now))
        p id="paging" {
            @if page.offset > 0 {
                a href=(query((page.offset - size).max(0))) rel="prev" { "← previous" } " "
            }
            @if page.offset + size < page.total {
                a href=(query(page.offset + size)) rel="next" { "next →" }
            }
        }
    };
    layout("Queue", body)
}

fn task_table(tasks: &[TaskSummary], now: DateTime<Utc>) -> Markup {
    html! {
        table id="tasks" {
            thead { tr {
                th { "task" } th { "title" } th { "status" } th { "priority" } th { "PR" }
                th { "score" } th { "cost" } th { "age" }
            } }
            tbody {
                @for t in tasks {
                    tr {
                        td { (task_link(&t.task_id)) }
                        td { (t.title) }
                        td.status { (t.status) }
                        td.num { (t.priority) }
                        td {
                            @match &t.pr {
                                Some(pr) => {
                                    (pr_link(&pr.url, "PR"))
                                    " " (pr.state.map_or("unseen", |s| s.as_str()))
                                }
                                None => "-",
                            }
                        }
                        td.num { (score(t.consensus_score)) }
                        td.num { (usd(t.cost_usd)) }
                        td title=(t.created_at.to_rfc3339()) { (human(now - t.created_at)) }
                    }
                }
            }
        }
    }
}

fn verification(v: &Verification) -> Markup {
    html! {
        p.verification { "verification: " (v.summary()) }
        @if !v.output_tail.is_empty() {
            details { summary { "output (last lines)" } pre { (v.output_tail) } }
        }
    }
}

fn stage(stage: &StageView, cost: Option<&crate::store::StageCost>) -> Markup {
    html! {
        section.stage id={ "stage-" (stage.role) } {
            h3 { (stage.role.role_name()) }
            p {
                "vote: " strong { (stage.vote.clone().unwrap_or_else(|| score(stage.score))) }
                " · " (stage.model)
                " · " (human(chrono::Duration::milliseconds(stage.duration_ms)))
                " · " (stage.usage.input_tokens) " in / " (stage.usage.output_tokens) " out tokens (cache "
                (stage.usage.cache_creation_input_tokens) " written, "
                (stage.usage.cache_read_input_tokens) " read)"
                @if let Some(cost) = cost {
                    " · " (usd(cost.cost_usd)) " over " (cost.calls) " call(s), "
                    (cost.corrections) " corrective"
                }
                " · recorded " (time(stage.recorded_at))
            }
            @if !stage.rationale.is_empty() { pre.rationale { (stage.rationale) } }
            @if let Some(problem) = &stage.unreadable { p { "unreadable: " (problem) } }
            @if let Some(e) = &stage.engineer_evidence {
                p { "revisions: " (e.repairs()) " repair round(s) after the first answer" }
                ol.rounds start="0" {
                    @for round in &e.rounds {
                        li {
                            @match &round.outcome {
                                RoundOutcome::EditsRejected { reason } => { "edits rejected: " (reason) },
                                RoundOutcome::Verified { verification: v } => (verification(v)),
                            }
                        }
                    }
                }
                p { "final:" }
                (verification(&e.verification))
            }
            @if let Some(e) = &stage.security_evidence {
                p.gates { "gates: " (e.gates.summary()) }
                (verification(&e.verification))
            }
        }
    }
}

/// One task: its fields, dependencies, every stage, costs, the outcome and the PR.
pub fn task(detail: &TaskDetail) -> Markup {
    let t = &detail.summary;
    let body = html! {
        table id="task" {
            tr { th { "status" } td.status { (t.status) } }
            tr { th { "priority" } td { (t.priority) } }
            tr { th { "labels" } td { (t.labels.join(", ")) } }
            tr { th { "attempts" } td { (t.attempts) } }
            tr { th { "created" } td { (time(Some(t.created_at))) } }
            tr { th { "started" } td { (time(t.started_at)) } }
            tr { th { "ended" } td { (time(t.completed_at)) } }
            tr { th { "consensus" } td { (score(t.consensus_score)) } }
            tr { th { "cost" } td { (usd(t.cost_usd)) } }
            tr { th { "PR" } td {
                @match &t.pr {
                    Some(pr) => {
                        (pr_link(&pr.url, &pr.url)) " "
                        (pr.state.map_or("not looked at yet", |s| s.as_str()))
                        @if let Some(at) = detail.pr_state_at { " since " (time(Some(at))) }
                    }
                    None => "-",
                }
            } }
            @if let Some(by) = &detail.approved_by { tr { th { "approved by" } td { (by) } } }
            @if let Some(worker) = &detail.worker {
                @if t.status == TaskStatus::InProgress {
                    tr { th { "worker" } td { (worker) " (lease until " (time(detail.lease_expires_at)) ")" } }
                } @else {
                    tr { th { "last worker" } td { (worker) } }
                }
            }
            @if t.status == TaskStatus::Pending && detail.run_after > Utc::now() {
                tr { th { "next run" } td { "not before " (time(Some(detail.run_after))) } }
            }
            @if let Some(error) = &t.error { tr { th { "error" } td { pre { (error) } } } }
            @if !detail.dependencies.is_empty() {
                tr { th { "depends on" } td {
                    @for d in &detail.dependencies {
                        (task_link(&d.task_id)) " (" (d.status)
                        @if let Some(pr) = d.pr_state { ", PR " (pr.as_str()) }
                        ") "
                    }
                } }
            }
        }
        h2 { "Description" }
        pre id="description" { (detail.description) }
        h2 { "Stages" }
        @if detail.stages.is_empty() { p { "(none recorded)" } }
        @for s in &detail.stages {
            (stage(s, detail.costs.iter().find(|c| c.stage == s.role)))
        }
        h2 { "Outcome" }
        @match &detail.outcome {
            None => p { "(not ended)" },
            Some(outcome) => {
                p { "decision: " strong { (outcome.decision()) } }
                (outcome_details(outcome))
            }
        }
        @if !detail.revisions.is_empty() {
            h2 { "Revisions" }
            table id="revisions" {
                tr { th { "#" } th { "trigger" } th { "status" } th { "answers" } th { "end" } th { "cost" } th { "requested" } }
                @for r in &detail.revisions {
                    tr {
                        td { (r.number) }
                        td { (r.trigger.as_str()) }
                        td { (r.status.as_str()) }
                        td {
                            @if r.failed_checks.is_empty() { (r.new_notes) " note(s)" }
                            @else { "checks: " (r.failed_checks.join(", ")) }
                        }
                        td { (revision_end(r.outcome.as_ref())) }
                        td { (r.cost_usd.map(usd).unwrap_or_default()) }
                        td { (time(Some(r.created_at))) }
                    }
                }
            }
        }
    };
    layout(&format!("Task {}", t.task_id), body)
}

/// How a revision ended, in a few words.
fn revision_end(end: Option<&RevisionEnd>) -> String {
    match end {
        None => "–".into(),
        Some(RevisionEnd::Pushed {
            commit, consensus, ..
        }) => format!("pushed {commit} ({}%)", score_text(consensus.score, None)),
        Some(RevisionEnd::Merged { commit, .. }) => format!("merged the base: {commit}"),
        Some(RevisionEnd::NotApproved { consensus, .. }) => {
            format!("not approved ({}%)", score_text(consensus.score, None))
        }
        Some(RevisionEnd::Failed { reason }) => format!("failed: {reason}"),
    }
}

fn outcome_details(outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Approved {
            branch,
            publication,
            consensus,
        } => html! {
            p { "consensus " (format!("{:.1}", consensus.score)) " · branch " code { (branch.branch) }
                " @ " code { (branch.commit) } @if !branch.pushed { " (local only)" } }
            @match publication {
                Publication::Opened(pr) => p { "PR #" (pr.number) ": " (pr_link(&pr.url, &pr.url)) },
                Publication::DryRun(draft) => {
                    p { "would-be PR (dry run): " strong { (draft.title) } }
                    details { summary { "body" } pre { (draft.body) } }
                }
            }
        },
        Outcome::Conditional { consensus } | Outcome::Rejected { consensus } => html! {
            p { "consensus " (format!("{:.1}", consensus.score)) }
            @for held in &consensus.held { p { "held: " (held) } }
        },
        Outcome::RefusedByGates { error, gates } => html! {
            p { (error) } p { "gates: " (gates.summary()) }
        },
        Outcome::BudgetExceeded { error } | Outcome::Error { error } => html! { p { (error) } },
        Outcome::RejectedByPm { .. } => html! {},
        Outcome::Unreadable(_) => html! { p { "(an outcome of no known shape)" } },
    }
}

/// The workers: each in-progress task's worker, stage, since when, lease expiry.
pub fn workers(overview: &Overview, now: DateTime<Utc>) -> Markup {
    let body = html! {
        @if overview.workers.is_empty() { p { "No task in progress." } }
        @else {
            table id="workers" {
                thead { tr { th { "worker" } th { "task" } th { "stage" } th { "since" } th { "lease until" } } }
                tbody {
                    @for w in &overview.workers {
                        tr {
                            td { (w.worker) }
                            td { (task_link(&w.task_id)) }
                            td { (w.stage.map_or("consensus / publish", |s| s.role_name())) }
                            td { (time(w.since)) @if let Some(since) = w.since { " (" (human(now - since)) ")" } }
                            td { (time(w.lease_expires_at)) }
                        }
                    }
                }
            }
        }
    };
    layout("Workers", body)
}

/// Spend: today, the 30-day chart and table, per role and model.
pub fn spend(overview: &Overview) -> Markup {
    let s = &overview.spend;
    let body = html! {
        p { "Spent today (UTC): " strong id="today" { (usd(s.today_usd)) } }
        (chart(&s.days))
        h2 { "Per role and model, last 30 days" }
        table id="by-role" {
            thead { tr { th { "role" } th { "model" } th { "calls" } th { "input" } th { "output" }
                th { "cache write" } th { "cache read" } th { "USD" } } }
            tbody { @for r in &s.by_role_model { tr {
                td { (r.role()) } td { (r.model) } td.num { (r.calls) }
                td.num { (r.input_tokens) } td.num { (r.output_tokens) }
                td.num { (r.cache_creation_input_tokens) } td.num { (r.cache_read_input_tokens) }
                td.num { (usd(r.cost_usd)) }
            } } }
        }
        h2 { "Per day" }
        table id="days" {
            thead { tr { th { "day (UTC)" } th { "tasks finished" } th { "USD" } } }
            tbody { @for d in s.days.iter().rev() { tr {
                td { (d.day) } td.num { (d.finished) } td.num { (usd(d.spent_usd)) }
            } } }
        }
    };
    layout("Spend", body)
}

/// Bars of tasks finished per day and a line of USD spent per day, each scaled to its maximum.
fn chart(days: &[DayRow]) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const PAD: f64 = 24.0;
    let n = days.len().max(1) as f64;
    let step = (W - 2.0 * PAD) / n;
    let max_finished = days.iter().map(|d| d.finished).max().unwrap_or(0).max(1) as f64;
    let max_spent = days.iter().map(|d| d.spent_usd).fold(0.0, f64::max);
    let y = |fraction: f64| H - PAD - fraction * (H - 2.0 * PAD);
    let line: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let fraction = if max_spent > 0.0 {
                d.spent_usd / max_spent
            } else {
                0.0
            };
            format!("{:.1},{:.1}", PAD + step * (i as f64 + 0.5), y(fraction))
        })
        .collect();
    html! {
        svg id="chart" xmlns="http://www.w3.org/2000/svg" width=(W) height=(H)
            viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label="tasks finished (bars) and USD spent (line) per day" {
            @for (i, d) in days.iter().enumerate() {
                @let h = d.finished as f64 / max_finished * (H - 2.0 * PAD);
                rect x=(format!("{:.1}", PAD + step * i as f64 + 1.0)) y=(format!("{:.1}", H - PAD - h))
                    width=(format!("{:.1}", (step - 2.0).max(1.0))) height=(format!("{h:.1}")) fill="#7a9" {
                    title { (d.day) ": " (d.finished) " finished, " (usd(d.spent_usd)) }
                }
            }
            polyline points=(line.join(" ")) fill="none" stroke="#c53" stroke-width="2" {}
            text x=(PAD) y="14" font-size="12" fill="#375" { "tasks finished (max " (max_finished as i64) ")" }
            text x=(W - PAD) y="14" font-size="12" fill="#c53" text-anchor="end" { "USD spent (max " (usd(max_spent)) ")" }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x=(PAD) y=(H - 6.0) font-size="11" { (first.day) }
                text x=(W - PAD) y=(H - 6.0) font-size="11" text-anchor="end" { (last.day) }
            }
        }
    }
}

/// Pauses: the daemon's own (why, until when) and the tasks waiting out a backoff or snooze.
pub fn pauses(overview: &Overview) -> Markup {
    let body = html! {
        h2 { "Daemon" }
        @match &overview.pause {
            Some(p) => p id="pause" { "All claiming paused until " (time(Some(p.until))) ": " (p.reason) },
            None => p id="pause" { "Not paused." },
        }
        h2 { "Tasks waiting (backoff or snooze)" }
        @if overview.waiting.is_empty() { p { "None." } }
        @else {
            table id="waiting" {
                thead { tr { th { "task" } th { "not before" } th { "attempts" } th { "why" } } }
                tbody { @for w in &overview.waiting { tr {
                    td { (task_link(&w.task_id)) } td { (time(Some(w.run_after))) }
                    td.num { (w.attempts) } td { (w.error.as_deref().unwrap_or("-")) }
                } } }
            }
        }
    };
    layout("Pauses", body)
}

/// A page saying what went wrong (`message` is escaped like everything else).
pub fn problem(title: &str, message: &str) -> Markup {
    layout(title, html! { p id="problem" { (message) } })
}

/// The login form (for a browser, where no bearer header can be set).
pub fn login(failed: bool) -> Markup {
    layout(
        "Log in",
        html! {
            @if failed { p id="problem" { "Wrong token." } }
            form method="post" action="/login" {
                label { "STATUS_TOKEN " input type="password" name="token" autocomplete="current-password"; }
                " " button type="submit" { "log in" }
            }
        },
    )
}

/// The script: localises `<time>` elements and, when ticked, reloads every 30 s (the choice is
/// kept in localStorage).
pub const SCRIPT: &str = r#""use strict";
document.querySelectorAll("time[datetime]").forEach(function (t) {
  var d = new Date(t.getAttribute("datetime"));
  if (!isNaN(d)) { t.title = t.textContent; t.textContent = d.toLocaleString(); }
});
var box = document.getElementById("autorefresh");
if (box) {
  box.checked = localStorage.getItem("autorefresh") === "1";
  box.addEventListener("change", function () {
    localStorage.setItem("autorefresh", box.checked ? "1" : "0");
  });
  setInterval(function () { if (box.checked) { location.reload(); } }, 30000);
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human(chrono::Duration::seconds(45)), "45 s");
        assert_eq!(human(chrono::Duration::seconds(600)), "10 min");
        assert_eq!(
            human(chrono::Duration::seconds(3 * 3600 + 300)),
            "3 h 5 min"
        );
        assert_eq!(
            human(chrono::Duration::seconds(2 * 86_400 + 4 * 3600)),
            "2 d 4 h"
        );
        assert_eq!(human(chrono::Duration::seconds(-5)), "0 s");
    }

    #[test]
    fn only_web_urls_are_linked() {
        assert!(
            pr_link("javascript:alert(1)", "PR")
                .0
                .find("href")
                .is_none()
        );
        assert!(
            pr_link("https://github.com/o/r/pull/1", "PR")
                .0
                .contains("href=\"https://github.com/o/r/pull/1\"")
        );
        assert_eq!(encode("a b/<c>"), "a%20b%2F%3Cc%3E");
    }
}
