//! Text rendering of tasks, stages and statistics for the terminal.

use std::fmt::Write;

use crate::agents::{Chain, EngineerEvidence, SecurityEvidence};
use crate::consensus::score_text;
use crate::status::Overview;
use crate::store::{PrCounts, RoleCalls, StageCost, StatusStats};
use crate::task::{
    Outcome, PrState, Publication, Revision, RevisionEnd, Stage, StageRecord, Task, TaskStatus,
};
use crate::verify::Verification;

/// `tasks list`: one row per task, in the order given (the store's: highest priority first).
pub fn task_table(tasks: &[Task]) -> String {
    let rows: Vec<[String; 6]> = tasks
        .iter()
        .map(|t| {
            [
                t.task_id.clone(),
                t.priority.to_string(),
                t.status.to_string(),
                t.consensus_score
                    .map_or_else(|| "-".into(), |s| score_text(s, None)),
                match (&t.pr_url, t.pr_state) {
                    (Some(url), Some(state)) => format!("{url} ({})", state.as_str()),
                    (Some(url), None) => url.clone(),
                    (None, _) => "-".into(),
                },
                t.title(60),
            ]
        })
        .collect();
    table(
        ["TASK", "PRIORITY", "STATUS", "CONSENSUS", "PR", "TITLE"],
        &rows,
    )
}

/// `stats`: count, mean consensus score and LLM cost per status, the total cost, today's
/// spend and the tasks' PRs by state (as the PR watch last saw them); then every role's LLM
/// calls, its corrective retries (answers that did not validate and were sent back) and the
/// share of its answers valid at the first try: 1 − retries / (calls − retries), each retry
/// being one answer that failed where a call asked anew.
pub fn stats(
    stats: &[StatusStats],
    prs: PrCounts,
    roles: &[RoleCalls],
    spent_today: f64,
) -> String {
    let rows: Vec<[String; 4]> = stats
        .iter()
        .map(|s| {
            [
                s.status.to_string(),
                s.count.to_string(),
                s.avg_score
                    .map_or_else(|| "-".into(), |a| score_text(a, None)),
                usd(s.cost_usd),
            ]
        })
        .collect();
    let total: f64 = stats.iter().map(|s| s.cost_usd).sum();
    let role_rows: Vec<[String; 4]> = roles
        .iter()
        .map(|r| {
            let share = match r.calls - r.corrections {
                asked if asked > 0 => {
                    let valid = asked.saturating_sub(r.corrections);
                    format!("{:.0}%", 100.0 * valid as f64 / asked as f64)
                }
                _ => "-".to_owned(),
            };
            [
                r.stage.role_name().to_owned(),
                r.calls.to_string(),
                r.corrections.to_string(),
                share,
            ]
        })
        .collect();
    format!(
        "{}\ntotal cost:  {}\nspent today: {} (UTC)\npull requests: {} merged, {} open, {} closed unmerged\n\n{}",
        table(["STATUS", "COUNT", "AVG_SCORE", "COST_USD"], &rows),
        usd(total),
        usd(spent_today),
        prs.merged,
        prs.open,
        prs.closed,
        table(
            ["ROLE", "LLM_CALLS", "CORRECTIVE_RETRIES", "FIRST_TRY_VALID"],
            &role_rows
        ),
    )
}

/// `status`: tasks per status and PRs, the workers with their stage and lease, today's spend,
/// the last 7 days, spend per role and model over 30 days, and the tasks waiting out a backoff
/// or snooze. Times in UTC.
pub fn overview(view: &Overview) -> String {
    let mut out = String::new();
    let counts: Vec<String> = view
        .counts
        .iter()
        .map(|c| format!("{} {}", c.count, c.status))
        .collect();
    let _ = writeln!(out, "tasks:   {}", counts.join(", "));
    let _ = writeln!(
        out,
        "PRs:     {} open, {} merged, {} closed unmerged",
        view.prs.open, view.prs.merged, view.prs.closed
    );
    let _ = writeln!(out, "spent today: {} (UTC)\n", usd(view.spend.today_usd));
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    let _ = writeln!(out, "workers:");
    if view.workers.is_empty() {
        let _ = writeln!(out, "  (no task in progress)");
    } else {
        let rows: Vec<[String; 5]> = view
            .workers
            .iter()
            .map(|w| {
                [
                    w.worker.clone(),
                    w.task_id.clone(),
                    w.stage
                        .map_or("consensus/publish", |s| s.role_name())
                        .to_owned(),
                    time(w.since),
                    time(w.lease_expires_at),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            [
                "WORKER",
                "TASK",
                "STAGE",
                "SINCE (UTC)",
                "LEASE UNTIL (UTC)",
            ],
            &rows,
        )));
        out.push('\n');
    }
    if let Some(pause) = &view.pause {
        let _ = writeln!(
            out,
            "paused until {} UTC: {}",
            time(Some(pause.until)),
            pause.reason
        );
    }
    let _ = writeln!(out, "\nwaiting (backoff or snooze):");
    if view.waiting.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let rows: Vec<[String; 4]> = view
            .waiting
            .iter()
            .map(|w| {
                [
                    w.task_id.clone(),
                    time(Some(w.run_after)),
                    w.attempts.to_string(),
                    w.error
                        .as_deref()
                        .map_or("-".to_owned(), |e| one_line(e, 80)),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            ["TASK", "NOT BEFORE (UTC)", "ATTEMPTS", "WHY"],
            &rows,
        )));
        out.push('\n');
    }
    let _ = writeln!(out, "\nlast 7 days (UTC):");
    let rows: Vec<[String; 3]> = view
        .spend
        .days
        .iter()
        .rev()
        .take(7)
        .map(|d| [d.day.to_string(), d.finished.to_string(), usd(d.spent_usd)])
        .collect();
    out.push_str(&indent(&table(["DAY", "FINISHED", "SPENT"], &rows)));
    let _ = writeln!(out, "\n\nspend per role and model, last 30 days:");
    if view.spend.by_role_model.is_empty() {
        let _ = writeln!(out, "  (no LLM call)");
    } else {
        let rows: Vec<[String; 4]> = view
            .spend
            .by_role_model
            .iter()
            .map(|r| {
                [
                    r.role().to_owned(),
                    r.model.clone(),
                    r.calls.to_string(),
                    usd(r.cost_usd),
                ]
            })
            .collect();
        out.push_str(&indent(&table(["ROLE", "MODEL", "CALLS", "SPENT"], &rows)));
        out.push('\n');
    }
    out
}

/// The first line of `text`, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(max)
        .collect()
}

/// What a stage's evidence says, a line each: the Engineer's verification (and the output's
/// last lines when it failed), Security's gates and final verification. Unreadable evidence is
/// said to be so.
fn evidence_lines(stage: &StageRecord) -> Vec<String> {
    fn verification_lines(verification: &Verification, repairs: Option<usize>) -> Vec<String> {
        let after = repairs.map_or(String::new(), |n| format!(" after {n} repair round(s)"));
        let mut lines = vec![format!("verification: {}{after}", verification.summary())];
        if verification.blocks_approval() {
            let tail: Vec<&str> = verification.output_tail.lines().collect();
            lines.extend(
                tail[tail.len().saturating_sub(10)..]
                    .iter()
                    .map(|l| format!("  | {l}")),
            );
        }
        lines
    }
    let Some(evidence) = stage.evidence.clone() else {
        return Vec::new();
    };
    match stage.stage {
        Stage::Engineer => match serde_json::from_value::<EngineerEvidence>(evidence) {
            Ok(e) => verification_lines(&e.verification, Some(e.repairs())),
            Err(e) => vec![format!("evidence unreadable: {e}")],
        },
        Stage::Security => match serde_json::from_value::<SecurityEvidence>(evidence) {
            Ok(e) => {
                let mut lines = vec![format!("gates: {}", e.gates.summary())];
                lines.extend(verification_lines(&e.verification, None));
                lines
            }
            Err(e) => vec![format!("evidence unreadable: {e}")],
        },
        _ => Vec::new(),
    }
}

/// A USD amount with four decimals (a stage often costs less than a cent).
fn usd(amount: f64) -> String {
    format!("${amount:.4}")
}

/// `tasks show`: the task, the base commit its stages read, every recorded stage with its vote,
/// rationale and evidence, the cost per stage (every call, retries included), the consensus,
/// the decision, the PR URL and the error; for an approval the branch commit and, after a dry run, the would-be PR. A stage
/// output or an outcome of no known shape is said to be so (the outcome shown as stored); the
/// rest of the task is shown as usual.
pub fn task_detail(
    task: &Task,
    dependencies: &[(String, TaskStatus, Option<PrState>)],
    stages: &[StageRecord],
    costs: &[StageCost],
    revisions: &[Revision],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "task:       {}", task.task_id);
    let _ = writeln!(out, "status:     {}", task.status);
    let _ = writeln!(out, "priority:   {}", task.priority);
    let _ = writeln!(out, "labels:     {}", or_dash(&task.labels.join(", ")));
    let _ = writeln!(out, "attempts:   {}", task.attempts);
    if !dependencies.is_empty() {
        let listed: Vec<String> = dependencies
            .iter()
            .map(|(id, status, pr)| match pr {
                Some(pr) => format!("{id} ({status}, PR {})", pr.as_str()),
                None => format!("{id} ({status})"),
            })
            .collect();
        let _ = writeln!(out, "depends on: {}", listed.join(", "));
    }
    if let Some(by) = &task.approved_by {
        let _ = writeln!(out, "approved:   by {by} (tasks approve)");
    }
    let _ = writeln!(
        out,
        "created:    {} UTC",
        task.created_at.format("%Y-%m-%d %H:%M:%S")
    );
    for (name, at) in [
        ("started:", task.started_at),
        ("completed:", task.completed_at),
    ] {
        if let Some(at) = at {
            let _ = writeln!(out, "{name:<11} {} UTC", at.format("%Y-%m-%d %H:%M:%S"));
        }
    }
    // The commit the stages read the repository at (one per task: a resumed run is pinned
    // at it); a stage recorded on another one says so below.
    let base = stages.iter().find_map(|s| s.base_commit.as_deref());
    if let Some(base) = base {
        let _ = writeln!(out, "base:       {base}");
    }
    let _ = writeln!(out, "\ndescription:\n{}\n", indent(&task.description));
    let _ = writeln!(out, "stages:");
    if stages.is_empty() {
        let _ = writeln!(out, "  (none recorded)");
    }
    for stage in stages {
        // The role's typed output: the PM's vote and every role's rationale.
        let mut output = Chain::default();
        let read = output.restore(stage.stage, stage.output.clone());
        let vote = match (stage.score, &output.pm) {
            (Some(score), _) => format!("{score:.0}/100"),
            (None, Some(pm)) => pm.vote.as_str().to_owned(),
            (None, None) => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<10} {:<8} {} · {:.1}s · {} in / {} out tokens (cache {} written, {} read)",
            stage.stage.role_name(),
            vote,
            stage.model,
            stage.duration_ms as f64 / 1000.0,
            stage.usage.input_tokens,
            stage.usage.output_tokens,
            stage.usage.cache_creation_input_tokens,
            stage.usage.cache_read_input_tokens,
        );
        match read {
            Ok(()) => {
                let rationale = output.rationale(stage.stage);
                if !rationale.is_empty() {
                    let _ = writeln!(out, "{}", indent_by(rationale, 13));
                }
            }
            Err(e) => {
                let _ = writeln!(out, "{}", indent_by(&format!("output unreadable: {e}"), 13));
            }
        }
        if let Some(other) = stage.base_commit.as_deref().filter(|b| Some(*b) != base) {
            let _ = writeln!(out, "{}", indent_by(&format!("on base {other}"), 13));
        }
        for line in evidence_lines(stage) {
            let _ = writeln!(out, "{}", indent_by(&line, 13));
        }
    }
    let _ = writeln!(out, "\ncost:");
    if costs.is_empty() {
        let _ = writeln!(out, "  (no LLM call recorded)");
    }
    for cost in costs {
        let _ = writeln!(
            out,
            "  {:<10} {} · {} call(s), {} corrective · {} in / {} out tokens (cache {} written, {} read)",
            cost.stage.role_name(),
            usd(cost.cost_usd),
            cost.calls,
            cost.corrections,
            cost.usage.input_tokens,
            cost.usage.output_tokens,
            cost.usage.cache_creation_input_tokens,
            cost.usage.cache_read_input_tokens,
        );
    }
    if !costs.is_empty() {
        let total: f64 = costs.iter().map(|c| c.cost_usd).sum();
        let _ = writeln!(out, "  {:<10} {}", "total", usd(total));
    }
    let outcome = task.result.as_ref();
    let consensus = task
        .consensus_score
        .map(|s| format!("{}%", score_text(s, None)));
    let _ = writeln!(out, "\nconsensus:  {}", consensus.as_deref().unwrap_or("-"));
    let _ = writeln!(
        out,
        "decision:   {}",
        outcome.map_or("-", Outcome::decision)
    );
    let _ = writeln!(out, "pr:         {}", task.pr_url.as_deref().unwrap_or("-"));
    if let Some(state) = task.pr_state {
        let since = task.pr_state_at.map_or(String::new(), |at| {
            format!(" since {} UTC", at.format("%Y-%m-%d %H:%M:%S"))
        });
        let _ = writeln!(out, "pr state:   {}{since}", state.as_str());
    }
    if let Some(issue) = task.issue_number {
        let _ = writeln!(out, "issue:      #{issue}");
    }
    if !task.reviewers.is_empty() {
        let _ = writeln!(out, "reviewers:  {}", task.reviewers.join(", "));
    }
    let _ = writeln!(out, "error:      {}", task.error.as_deref().unwrap_or("-"));
    match outcome {
        Some(Outcome::Approved {
            branch,
            publication,
            ..
        }) => {
            let place = if branch.pushed {
                "pushed"
            } else {
                "local only"
            };
            let _ = writeln!(
                out,
                "branch:     {} @ {} ({place})",
                branch.branch, branch.commit
            );
            if let Publication::DryRun(draft) = publication {
                let _ = writeln!(out, "\nwould-be PR (dry run, not opened):");
                let _ = writeln!(out, "  title:    {}", draft.title);
                let _ = writeln!(
                    out,
                    "  head:     {} → base {}",
                    draft.qualified_head(),
                    draft.base
                );
                let _ = writeln!(out, "  labels:   {}", draft.labels.join(", "));
                let _ = writeln!(out, "  body:\n{}", indent_by(&draft.body, 4));
            }
        }
        Some(Outcome::Unreadable(raw)) => {
            let _ = writeln!(out, "result:     of no known shape, as stored: {raw}");
        }
        _ => {}
    }
    if !revisions.is_empty() {
        let _ = writeln!(out, "\nrevisions:");
    }
    for revision in revisions {
        let _ = writeln!(out, "{}", revision_line(revision));
    }
    if task.status == crate::task::TaskStatus::Pending && task.attempts > 0 {
        let _ = writeln!(
            out,
            "next run:   not before {} UTC",
            task.queue.run_after.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if let Some(worker) = &task.queue.locked_by {
        let _ = writeln!(
            out,
            "worker:     {worker} (fencing token {})",
            task.queue.fencing_token
        );
    }
    out
}

/// One revision for `tasks show`: number, trigger, end, consensus and votes, verification,
/// cost, the notes it answered and when it was requested.
fn revision_line(revision: &Revision) -> String {
    let (end, consensus, verification) = match &revision.outcome {
        None => ("pending".to_owned(), None, None),
        Some(RevisionEnd::Pushed {
            consensus,
            commit,
            verification,
            ..
        }) => (
            format!("pushed {commit}"),
            Some(consensus),
            Some(verification),
        ),
        Some(RevisionEnd::Merged { commit, .. }) => {
            (format!("merged the base: {commit}"), None, None)
        }
        Some(RevisionEnd::NotApproved {
            consensus,
            verification,
        }) => (
            "not approved".to_owned(),
            Some(consensus),
            Some(verification),
        ),
        Some(RevisionEnd::Failed { reason }) => (format!("failed: {reason}"), None, None),
    };
    let mut line = format!(
        "  #{} {} · {end} · {} new note(s) · requested {} UTC",
        revision.number,
        revision.trigger.as_str(),
        revision.feedback.new_notes().count(),
        revision.created_at.format("%Y-%m-%d %H:%M:%S"),
    );
    if let Some(cost) = revision.cost_usd {
        line.push_str(&format!(" · {}", usd(cost)));
    }
    if let Some(consensus) = consensus {
        let votes: Vec<String> = consensus
            .votes
            .iter()
            .map(|v| match v.score {
                Some(score) => format!("{} {score:.0}", v.role.role_name()),
                None => format!("{} {}", v.role.role_name(), v.vote),
            })
            .collect();
        line.push_str(&format!(
            "\n             consensus {}% ({})",
            score_text(consensus.score, None),
            votes.join(", ")
        ));
    }
    if let Some(verification) = verification {
        line.push_str(&format!("\n             verification: {verification}"));
    }
    line
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn indent(text: &str) -> String {
    indent_by(text, 2)
}

fn indent_by(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|line| format!("{pad}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_try_valid_counts_each_retry_as_one_answer_that_failed() {
        let role = |stage, calls, corrections| RoleCalls {
            stage,
            calls,
            corrections,
        };
        let roles = [
            // 10 answers asked, 2 of them sent back: 8 valid at the first try.
            role(Stage::Pm, 12, 2),
            role(Stage::Qa, 4, 0),
            role(Stage::Security, 0, 0),
        ];
        let out = stats(&[], PrCounts::default(), &roles, 0.0);
        let row = |name: &str| -> Vec<String> {
            let line = out
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default();
            line.split_whitespace().map(str::to_owned).collect()
        };
        assert_eq!(row("PM "), ["PM", "12", "2", "80%"], "{out}");
        assert_eq!(row("QA "), ["QA", "4", "0", "100%"], "{out}");
        assert_eq!(row("Security "), ["Security", "0", "0", "-"], "{out}");
    }
}
