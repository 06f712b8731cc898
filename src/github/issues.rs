//! The target repository's issues on GitHub's REST API, for tasks born of issues: the open
//! issues with a label (a conditional request: a 304 costs nothing of the rate limit), one
//! issue, who put a label on it (its events), and whether a comment with a marker exists.
//!
//! Reads are retried per the [`super::RateLimitPolicy`] (except the conditional first page,
//! which the caller repeats next sweep) and paged 100 at a time, at most
//! [`super::MAX_PAGES`] pages.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{GitHub, GitHubError};

/// An issue as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    /// Markdown; empty when the issue has none.
    pub body: String,
    /// The author's login; `None` for a deleted user ("ghost").
    pub author: Option<String>,
    /// Label names.
    pub labels: Vec<String>,
    /// `state` is `open`.
    pub open: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

/// "List repository issues" / "Get an issue" item (the fields read).
#[derive(Deserialize)]
struct IssueJson {
    number: u64,
    title: String,
    body: Option<String>,
    user: Option<Login>,
    #[serde(default)]
    labels: Vec<LabelJson>,
    state: String,
    /// Present when the item is a pull request (GitHub lists PRs as issues).
    pull_request: Option<serde_json::Value>,
    updated_at: Option<DateTime<Utc>>,
}

/// A label: an object with `name`, or (GitHub's schema allows it) a bare string.
#[derive(Deserialize)]
#[serde(untagged)]
enum LabelJson {
    Named { name: Option<String> },
    Bare(String),
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

/// "List issue events" item.
#[derive(Deserialize)]
struct EventJson {
    event: String,
    actor: Option<Login>,
    label: Option<EventLabel>,
}

#[derive(Deserialize)]
struct EventLabel {
    name: String,
}

#[derive(Deserialize)]
struct CommentJson {
    body: Option<String>,
}

impl From<IssueJson> for Issue {
    fn from(json: IssueJson) -> Issue {
        Issue {
            number: json.number,
            title: json.title,
            body: json.body.unwrap_or_default(),
            author: json.user.map(|u| u.login),
            labels: json
                .labels
                .into_iter()
                .filter_map(|l| match l {
                    LabelJson::Named { name } => name,
                    LabelJson::Bare(name) => Some(name),
                })
                .collect(),
            open: json.state == "open",
            updated_at: json.updated_at,
        }
    }
}

impl GitHub {
    /// The open issues labelled `label`, pull requests left out
    /// (`GET /repos/{owner}/{repo}/issues?labels={label}&state=open`, oldest first). The first
    /// page is asked with If-None-Match: `etag`: `None` when GitHub answers 304 (nothing
    /// changed: no issue opened, closed, labelled, unlabelled or edited); else the issues and
    /// the first page's ETag.
    ///
    /// Errors: [`GitHubError::Status`] (403/429 for a rate limit, 404 for a repository the
    /// token cannot see), [`GitHubError::Api`].
    pub async fn open_issues(
        &self,
        label: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<Issue>, Option<String>)>, GitHubError> {
        let route = format!("/repos/{}/{}/issues", self.owner, self.name);
        let query = |page: u32| {
            let page = page.to_string();
            let params = [
                ("labels", label),
                ("state", "open"),
                ("sort", "created"),
                ("direction", "asc"),
                ("per_page", "100"),
                ("page", page.as_str()),
            ];
            // Only the query is used: the url crate encodes it.
            let url = reqwest::Url::parse_with_params("http://localhost/", params)
                .expect("a constant base URL");
            format!("{route}?{}", url.query().unwrap_or_default())
        };
        let first = self.conditional_get(query(1), etag).await?;
        let Some((body, etag)) = first.body else {
            return Ok(None);
        };
        let mut items: Vec<IssueJson> = serde_json::from_str(&body)
            .map_err(|e| GitHubError::Api(format!("the issues of the repository: {e}")))?;
        let mut last = items.len() < 100;
        let mut page = 2;
        while !last && page <= super::MAX_PAGES {
            let more: Vec<IssueJson> = self
                .retrying("list issues", || async {
                    self.octocrab
                        .get(query(page), None::<&()>)
                        .await
                        .map_err(|e| self.error(e))
                })
                .await?;
            last = more.len() < 100;
            items.extend(more);
            page += 1;
        }
        let issues = items
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .map(Issue::from)
            .collect();
        Ok(Some((issues, etag)))
    }

    /// Issue `number` (`GET /repos/{owner}/{repo}/issues/{number}`).
    ///
    /// Errors: [`GitHubError::Status`] (404 when it is gone, 410 when deleted),
    /// [`GitHubError::Api`].
    pub async fn issue(&self, number: u64) -> Result<Issue, GitHubError> {
        let route = format!("/repos/{}/{}/issues/{number}", self.owner, self.name);
        let issue: IssueJson = self
            .retrying("get issue", || async {
                self.octocrab
                    .get(&route, None::<&()>)
                    .await
                    .map_err(|e| self.error(e))
            })
            .await?;
        Ok(issue.into())
    }

    /// Who last put `label` on issue `number`: the actor of its latest `labeled` event with
    /// that label (`GET /repos/{owner}/{repo}/issues/{number}/events`); `None` when there is
    /// none (or the actor's account is deleted).
    ///
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`].
    pub async fn labeller(&self, number: u64, label: &str) -> Result<Option<String>, GitHubError> {
        let route = format!("/repos/{}/{}/issues/{number}/events", self.owner, self.name);
        let events: Vec<EventJson> = self.pages(&route, &[]).await?;
        Ok(events
            .into_iter()
            .rev()
            .find(|e| e.event == "labeled" && e.label.as_ref().is_some_and(|l| l.name == label))
            .and_then(|e| e.actor)
            .map(|a| a.login))
    }

    /// True when a comment on issue (or PR) `number` created or updated at `since` or later
    /// contains `marker` (`GET /repos/{owner}/{repo}/issues/{number}/comments?since=…`): the
    /// daemon's way of not posting a comment twice.
    ///
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`].
    pub async fn has_comment(
        &self,
        number: u64,
        marker: &str,
        since: DateTime<Utc>,
    ) -> Result<bool, GitHubError> {
        let route = format!(
            "/repos/{}/{}/issues/{number}/comments",
            self.owner, self.name
        );
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let comments: Vec<CommentJson> = self.pages(&route, &[("since", since)]).await?;
        Ok(comments
            .iter()
            .any(|c| c.body.as_deref().is_some_and(|b| b.contains(marker))))
    }
}
