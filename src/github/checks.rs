//! A PR head's checks on GitHub's REST API, for revisions that fix failing checks: the check
//! runs ("List check runs for a Git reference") and the combined commit status ("Get the
//! combined status for a specific reference"), each a conditional request (a 304 does not count
//! against the rate limit); a failed run's annotations; and, for a GitHub Actions job, the end
//! of its log ("Download job logs for a workflow run" answers 302 with a short-lived URL on
//! another host, followed without the token).

use chrono::DateTime;
use serde::Deserialize;

use super::{GitHub, GitHubError};

/// Most bytes of an Actions job log kept (its end).
pub const LOG_TAIL_BYTES: usize = 8 * 1024;

/// A check run on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// Its id (for a GitHub Actions job, also the job's id).
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed`, …
    pub status: String,
    /// Once completed: `success`, `failure`, `neutral`, `cancelled`, `skipped`, `timed_out`,
    /// `action_required`, `stale`.
    pub conclusion: Option<String>,
    pub title: String,
    pub summary: String,
    pub text: String,
    pub annotations_count: u64,
    /// Made by GitHub Actions (its app's slug is `github-actions`): the job log can be read.
    pub actions: bool,
}

/// One commit status (a context of the combined status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub context: String,
    /// `error`, `failure`, `pending` or `success`.
    pub state: String,
    pub description: String,
}

#[derive(Deserialize)]
struct RunsJson {
    total_count: u64,
    check_runs: Vec<RunJson>,
}

#[derive(Deserialize)]
struct RunJson {
    id: u64,
    name: String,
    status: String,
    conclusion: Option<String>,
    #[serde(default)]
    output: Option<OutputJson>,
    app: Option<AppJson>,
}

#[derive(Deserialize, Default)]
struct OutputJson {
    title: Option<String>,
    summary: Option<String>,
    text: Option<String>,
    #[serde(default)]
    annotations_count: u64,
}

#[derive(Deserialize)]
struct AppJson {
    slug: Option<String>,
}

#[derive(Deserialize)]
struct CombinedJson {
    statuses: Vec<StatusJson>,
}

#[derive(Deserialize)]
struct StatusJson {
    context: String,
    state: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct AnnotationJson {
    path: String,
    start_line: Option<u64>,
    message: Option<String>,
    title: Option<String>,
}

impl GitHub {
    /// The check runs of commit `sha`, conditionally on `etag`: `None` when unchanged (304),
    /// else every run (100 a page; later pages unconditionally) and the first page's ETag.
    ///
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`] (no retry).
    pub async fn check_runs(
        &self,
        sha: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<CheckRun>, Option<String>)>, GitHubError> {
        let uri = |page: u32| {
            format!(
                "/repos/{}/{}/commits/{sha}/check-runs?per_page=100&page={page}",
                self.owner, self.name
            )
        };
        let Some((body, etag)) = self.conditional_get(uri(1), etag).await?.body else {
            return Ok(None);
        };
        let mut page: RunsJson = parse(&body, "check runs")?;
        let total = page.total_count;
        let mut runs: Vec<RunJson> = std::mem::take(&mut page.check_runs);
        let mut next = 2;
        while (runs.len() as u64) < total && next <= super::MAX_PAGES {
            let Some((body, _)) = self.conditional_get(uri(next), None).await?.body else {
                break;
            };
            let page: RunsJson = parse(&body, "check runs")?;
            if page.check_runs.is_empty() {
                break;
            }
            runs.extend(page.check_runs);
            next += 1;
        }
        let runs = runs
            .into_iter()
            .map(|run| {
                let output = run.output.unwrap_or_default();
                CheckRun {
                    id: run.id,
                    name: run.name,
                    status: run.status,
                    conclusion: run.conclusion,
                    title: output.title.unwrap_or_default(),
                    summary: output.summary.unwrap_or_default(),
                    text: output.text.unwrap_or_default(),
                    annotations_count: output.annotations_count,
                    actions: run.app.and_then(|a| a.slug).as_deref() == Some("github-actions"),
                }
            })
            .collect();
        Ok(Some((runs, etag)))
    }

    /// The commit statuses of `sha` (the combined status' `statuses`), conditionally on
    /// `etag`: `None` when unchanged (304). Errors: as [`GitHub::check_runs`].
    pub async fn commit_statuses(
        &self,
        sha: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<CommitStatus>, Option<String>)>, GitHubError> {
        let uri = format!(
            "/repos/{}/{}/commits/{sha}/status?per_page=100",
            self.owner, self.name
        );
        let Some((body, etag)) = self.conditional_get(uri, etag).await?.body else {
            return Ok(None);
        };
        let combined: CombinedJson = parse(&body, "combined status")?;
        let statuses = combined
            .statuses
            .into_iter()
            .map(|s| CommitStatus {
                context: s.context,
                state: s.state,
                description: s.description.unwrap_or_default(),
            })
            .collect();
        Ok(Some((statuses, etag)))
    }

    /// Check run `id`'s annotations, one `path:line: title: message` each (at most 100).
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`] (after the policy's retries).
    pub async fn annotations(&self, id: u64) -> Result<Vec<String>, GitHubError> {
        let route = format!(
            "/repos/{}/{}/check-runs/{id}/annotations",
            self.owner, self.name
        );
        let params = [("per_page", 100)];
        let items: Vec<AnnotationJson> = self
            .retrying("list annotations", || async {
                self.octocrab
                    .get(&route, Some(&params))
                    .await
                    .map_err(|e| self.error(e))
            })
            .await?;
        Ok(items
            .into_iter()
            .map(|a| {
                let line = a.start_line.map(|l| format!(":{l}")).unwrap_or_default();
                let title = a.title.map(|t| format!("{t}: ")).unwrap_or_default();
                format!("{}{line}: {title}{}", a.path, a.message.unwrap_or_default())
            })
            .collect())
    }

    /// The last [`LOG_TAIL_BYTES`] of GitHub Actions job `id`'s log, each line without the
    /// timestamp Actions puts first: `GET /repos/{owner}/{repo}/actions/jobs/{id}/logs`
    /// answers 302 to a short-lived URL on another host, which octocrab follows under
    /// tower-http's standard redirect policy: credentials are dropped on a cross-origin
    /// redirect, so the token does not leave for that host.
    ///
    /// Errors: [`GitHubError::Status`] (e.g. 410 when the logs are gone), [`GitHubError::Api`].
    pub async fn job_log_tail(&self, id: u64) -> Result<String, GitHubError> {
        let uri = format!("/repos/{}/{}/actions/jobs/{id}/logs", self.owner, self.name);
        let response = self.octocrab._get(uri).await.map_err(|e| self.error(e))?;
        let response = octocrab::map_github_error(response)
            .await
            .map_err(|e| self.error(e))?;
        let log = self
            .octocrab
            .body_to_string(response)
            .await
            .map_err(|e| self.error(e))?;
        Ok(tail(&log, LOG_TAIL_BYTES))
    }
}

/// The whole lines of `log`'s last `max` bytes, without Actions' leading timestamps.
fn tail(log: &str, max: usize) -> String {
    let mut start = log.len().saturating_sub(max);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    let mut cut = &log[start..];
    if start > 0 {
        cut = cut.split_once('\n').map_or("", |(_, rest)| rest);
    }
    cut.lines()
        .map(|line| match line.split_once(' ') {
            Some((stamp, rest)) if DateTime::parse_from_rfc3339(stamp).is_ok() => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, GitHubError> {
    serde_json::from_str(body).map_err(|e| GitHubError::Api(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tail_keeps_whole_lines_without_timestamps() {
        let log =
            "2026-12-01T10:00:00.1234567Z first\n2026-12-01T10:00:01.0000000Z error: boom\nplain\n";
        assert_eq!(super::tail(log, 1000), "first\nerror: boom\nplain");
        assert_eq!(super::tail(log, 20), "plain");
        assert_eq!(super::tail("", 10), "");
    }
}
