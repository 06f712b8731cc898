//! Reading a PR head's checks for revisions: whether they are still running, passed, or failed
//! and which failed. A check run fails with conclusion `failure` or `timed_out`; a commit status
//! with state `failure` or `error` (GitHub's meanings; `cancelled`, `neutral`, `skipped` and
//! `action_required` are not the change's failure). Checks named in IGNORED_CHECKS do not count.
//! Pure functions; the watch does the I/O.

use crate::github::{CheckRun, CommitStatus};

/// What the checks of one head say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Some check is still queued or running (or there is none yet).
    Pending,
    Passed,
    /// These check runs and commit statuses failed (every check has ended).
    Failed(Vec<&'a CheckRun>, Vec<&'a CommitStatus>),
}

/// The verdict of `runs` and `statuses`, leaving out those named in `ignored`
/// (case-insensitive).
pub fn verdict<'a>(
    runs: &'a [CheckRun],
    statuses: &'a [CommitStatus],
    ignored: &[String],
) -> Verdict<'a> {
    let counts = |name: &str| !ignored.iter().any(|i| i.eq_ignore_ascii_case(name));
    let runs: Vec<&CheckRun> = runs.iter().filter(|r| counts(&r.name)).collect();
    let statuses: Vec<&CommitStatus> = statuses.iter().filter(|s| counts(&s.context)).collect();
    let running = runs.iter().any(|r| r.status != "completed")
        || statuses.iter().any(|s| s.state == "pending");
    if running || (runs.is_empty() && statuses.is_empty()) {
        return Verdict::Pending;
    }
    let failed_runs: Vec<&CheckRun> = runs
        .into_iter()
        .filter(|r| matches!(r.conclusion.as_deref(), Some("failure" | "timed_out")))
        .collect();
    let failed_statuses: Vec<&CommitStatus> = statuses
        .into_iter()
        .filter(|s| matches!(s.state.as_str(), "failure" | "error"))
        .collect();
    if failed_runs.is_empty() && failed_statuses.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(failed_runs, failed_statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, status: &str, conclusion: Option<&str>) -> CheckRun {
        CheckRun {
            id: 1,
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(Into::into),
            title: String::new(),
            summary: String::new(),
            text: String::new(),
            annotations_count: 0,
            actions: false,
        }
    }

    fn status(context: &str, state: &str) -> CommitStatus {
        CommitStatus {
            context: context.into(),
            state: state.into(),
            description: String::new(),
        }
    }

    #[test]
    fn running_passed_failed_and_ignored() {
        let none: &[String] = &[];
        assert_eq!(verdict(&[], &[], none), Verdict::Pending);
        let runs = [
            run("test", "completed", Some("failure")),
            run("lint", "in_progress", None),
        ];
        assert_eq!(verdict(&runs, &[], none), Verdict::Pending);
        let ignored = ["LINT".to_owned()];
        assert_eq!(
            verdict(&runs, &[], &ignored),
            Verdict::Failed(vec![&runs[0]], vec![])
        );
        let passed = [
            run("test", "completed", Some("success")),
            run("docs", "completed", Some("skipped")),
            run("deploy", "completed", Some("cancelled")),
        ];
        assert_eq!(verdict(&passed, &[], none), Verdict::Passed);
        let statuses = [status("ci/jenkins", "error"), status("ci/other", "success")];
        assert_eq!(
            verdict(&passed, &statuses, none),
            Verdict::Failed(vec![], vec![&statuses[0]])
        );
        assert_eq!(
            verdict(&passed, &[status("ci/jenkins", "pending")], none),
            Verdict::Pending
        );
        let timed_out = [run("test", "completed", Some("timed_out"))];
        assert!(matches!(
            verdict(&timed_out, &[], none),
            Verdict::Failed(..)
        ));
        let only_ignored = [run("lint", "completed", Some("failure"))];
        assert_eq!(verdict(&only_ignored, &[], &ignored), Verdict::Pending);
    }
}
