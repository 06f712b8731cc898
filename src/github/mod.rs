//! GitHub's REST API through octocrab: open a pull request and label it.
//!
//! Octocrab's own retries are switched off (a retried `POST /pulls` is not idempotent, and the
//! caller decides what is transient from [`GitHubError::Status`]); connect and read timeouts are
//! set so a stalled connection cannot hang the daemon.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use secrecy::{ExposeSecret, SecretString};

/// Connect timeout of API requests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Read (and write) timeout of API requests.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors talking to GitHub. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("invalid GitHub configuration: {0}")]
    Config(String),
    /// No usable HTTP answer: connection, timeout, or a response that did not parse.
    #[error("GitHub API error: {0}")]
    Api(String),
    /// GitHub answered with an error status. `message` is GitHub's `message` followed by the
    /// messages of its `errors` array (e.g. `Validation Failed: A pull request already exists
    /// for o:branch.`). The rate-limit fields come from the `retry-after` and `x-ratelimit-*`
    /// response headers, when present.
    #[error("GitHub API error {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// `retry-after`, in seconds.
        retry_after: Option<u64>,
        /// `x-ratelimit-remaining`.
        rate_limit_remaining: Option<u64>,
        /// `x-ratelimit-reset`, in UTC epoch seconds.
        rate_limit_reset: Option<u64>,
    },
}

impl GitHubError {
    /// The HTTP status GitHub answered with, for [`GitHubError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A pull request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    pub title: String,
    /// Branch with the changes (e.g. `feature/task-phase1-001`).
    pub head: String,
    /// Branch to merge into (BASE_BRANCH).
    pub base: String,
    /// Markdown.
    pub body: String,
}

/// An opened pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    /// The PR's web page (`html_url`).
    pub url: String,
}

/// Client for one repository.
pub struct GitHub {
    octocrab: Octocrab,
    owner: String,
    name: String,
    /// Kept only to scrub it from error messages.
    token: SecretString,
}

impl GitHub {
    /// `api_url` is GITHUB_API_URL; `repository` is `owner/name`.
    ///
    /// Must be called inside a Tokio runtime (octocrab spawns its request worker); outside one
    /// it returns [`GitHubError::Config`]. An invalid `api_url` or `repository` is also
    /// [`GitHubError::Config`].
    pub fn new(
        api_url: &str,
        token: SecretString,
        repository: &str,
    ) -> Result<GitHub, GitHubError> {
        let (owner, name) = split_repository(repository)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GitHubError::Config(
                "the GitHub client needs a Tokio runtime".to_string(),
            ));
        }
        let octocrab = build_client(api_url, token.clone())?;
        Ok(GitHub {
            octocrab,
            owner,
            name,
            token,
        })
    }

    /// POST /repos/{owner}/{repo}/pulls.
    ///
    /// Sends `{"title","head","base","body"}`; returns the new PR's number and `html_url`.
    /// Errors: [`GitHubError::Status`] (e.g. 422 when a PR for `head` already exists),
    /// [`GitHubError::Api`].
    pub async fn open_pull_request(&self, pr: &NewPullRequest) -> Result<PullRequest, GitHubError> {
        let created = self
            .octocrab
            .pulls(&self.owner, &self.name)
            .create(&pr.title, &pr.head, &pr.base)
            .body(&pr.body)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let url = created.html_url.ok_or_else(|| {
            GitHubError::Api(format!(
                "pull request #{} has no html_url in GitHub's answer",
                created.number
            ))
        })?;
        Ok(PullRequest {
            number: created.number,
            url: url.to_string(),
        })
    }

    /// POST /repos/{owner}/{repo}/issues/{number}/labels (adding is idempotent on GitHub's side).
    ///
    /// Sends `{"labels":[…]}`; labels GitHub does not know yet are created by GitHub. Does
    /// nothing when `labels` is empty. Errors as for [`GitHub::open_pull_request`].
    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), GitHubError> {
        if labels.is_empty() {
            return Ok(());
        }
        self.octocrab
            .issues(&self.owner, &self.name)
            .add_labels(number, labels)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Maps an octocrab error, scrubbing the token from the text just in case.
    fn error(&self, err: octocrab::Error) -> GitHubError {
        let scrub = |text: String| redact(&text, self.token.expose_secret());
        match map_error(err) {
            GitHubError::Status {
                status,
                message,
                retry_after,
                rate_limit_remaining,
                rate_limit_reset,
            } => GitHubError::Status {
                status,
                message: scrub(message),
                retry_after,
                rate_limit_remaining,
                rate_limit_reset,
            },
            GitHubError::Api(message) => GitHubError::Api(scrub(message)),
            GitHubError::Config(message) => GitHubError::Config(scrub(message)),
        }
    }
}

/// `owner/name` → (`owner`, `name`); each non-empty, without `/`, whitespace or control
/// characters, and not `.`/`..`.
fn split_repository(repository: &str) -> Result<(String, String), GitHubError> {
    let valid = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && !part
                .chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    };
    match repository.split_once('/') {
        Some((owner, name)) if valid(owner) && valid(name) => {
            Ok((owner.to_string(), name.to_string()))
        }
        _ => Err(GitHubError::Config(format!(
            "repository '{repository}' is not of the form owner/name"
        ))),
    }
}

/// Octocrab for `api_url` with `token`, without retries, with timeouts.
fn build_client(api_url: &str, token: SecretString) -> Result<Octocrab, GitHubError> {
    let config = |what: &str| GitHubError::Config(format!("{what} '{api_url}'"));
    let url = reqwest::Url::parse(api_url).map_err(|_| config("invalid API URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(config("API URL must be http(s)://host…, got"));
    }
    Octocrab::builder()
        .base_uri(api_url)
        .map_err(|_| config("invalid API URL"))?
        .personal_token(token)
        .add_retry_config(RetryConfig::None)
        .set_connect_timeout(Some(CONNECT_TIMEOUT))
        .set_read_timeout(Some(READ_TIMEOUT))
        .set_write_timeout(Some(READ_TIMEOUT))
        .build()
        .map_err(|e| GitHubError::Config(format!("cannot build the GitHub client: {e}")))
}

/// Maps octocrab's error: GitHub's error answers keep their status, message and rate-limit
/// headers; everything else becomes [`GitHubError::Api`] with octocrab's description (which
/// names the failure, never request headers).
fn map_error(err: octocrab::Error) -> GitHubError {
    match err {
        octocrab::Error::GitHub { source, .. } => status_error(&source),
        other => GitHubError::Api(describe(&other)),
    }
}

/// [`GitHubError::Status`] from GitHub's error body and headers.
fn status_error(source: &octocrab::GitHubError) -> GitHubError {
    let header = |name: &str| {
        source
            .headers
            .as_ref()?
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    GitHubError::Status {
        status: source.status_code.as_u16(),
        message: github_message(source),
        retry_after: header("retry-after"),
        rate_limit_remaining: header("x-ratelimit-remaining"),
        rate_limit_reset: header("x-ratelimit-reset").or(source.rate_limit_reset),
    }
}

/// GitHub's `message`, then each entry of `errors`: its `message`, or `resource.field code`.
fn github_message(source: &octocrab::GitHubError) -> String {
    let details: Vec<String> = source
        .errors
        .iter()
        .flatten()
        .filter_map(error_detail)
        .collect();
    if details.is_empty() {
        source.message.clone()
    } else {
        format!("{}: {}", source.message, details.join("; "))
    }
}

/// One entry of GitHub's `errors` array as text.
fn error_detail(error: &serde_json::Value) -> Option<String> {
    if let Some(text) = error.as_str() {
        return Some(text.to_string());
    }
    if let Some(message) = error.get("message").and_then(|m| m.as_str()) {
        return Some(message.to_string());
    }
    let field = |name| error.get(name).and_then(|v: &serde_json::Value| v.as_str());
    let code = field("code")?;
    let place = [field("resource"), field("field")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(".");
    Some(if place.is_empty() {
        code.to_string()
    } else {
        format!("{place} {code}")
    })
}

/// Octocrab's error and its sources, without backtraces.
fn describe(err: &octocrab::Error) -> String {
    let mut text = match err {
        octocrab::Error::Http { source, .. } => format!("HTTP error: {source}"),
        octocrab::Error::Service { source, .. } => format!("service error: {source}"),
        octocrab::Error::Hyper { source, .. } => format!("HTTP error: {source}"),
        octocrab::Error::Serde { source, .. } => format!("cannot decode GitHub's answer: {source}"),
        octocrab::Error::Json { source, .. } => format!(
            "cannot decode GitHub's answer at {}: {}",
            source.path(),
            source.inner()
        ),
        octocrab::Error::Uri { source, .. } => format!("invalid URI: {source}"),
        other => first_line(&other.to_string()),
    };
    let mut source = std::error::Error::source(err);
    // Service errors hide the cause (connection refused, timeout) a level or two down.
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The first line of `text` (octocrab appends "Found at <backtrace>" on later lines).
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// `text` with `token` replaced by `***`.
fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(result: Result<GitHub, GitHubError>) -> String {
        match result {
            Err(GitHubError::Config(message)) => message,
            Err(other) => panic!("unexpected {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[tokio::test]
    async fn rejects_bad_repository_strings() {
        for repository in ["", "o", "o/", "/n", "o/n/x", "o /n", "../n", "o/.."] {
            let result = GitHub::new("https://api.github.com", "t".into(), repository);
            let message = config_error(result);
            assert!(message.contains("owner/name"), "{repository}: {message}");
        }
    }

    #[tokio::test]
    async fn rejects_bad_api_urls() {
        for url in ["", "not a url", "ftp://x/", "/api/v3"] {
            let message = config_error(GitHub::new(url, "t".into(), "o/n"));
            assert!(message.contains("API URL"), "{url}: {message}");
        }
        assert!(GitHub::new("https://ghe.example.com/api/v3", "t".into(), "o/n").is_ok());
    }

    #[test]
    fn needs_a_tokio_runtime() {
        let message = config_error(GitHub::new("https://api.github.com", "t".into(), "o/n"));
        assert!(message.contains("Tokio runtime"), "{message}");
    }

    #[test]
    fn error_details_are_joined() {
        let details = [
            serde_json::json!({"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for o:b."}),
            serde_json::json!({"resource": "Issue", "field": "title", "code": "missing_field"}),
            serde_json::json!("plain"),
            serde_json::json!({"unexpected": true}),
        ];
        let texts: Vec<_> = details.iter().filter_map(error_detail).collect();
        assert_eq!(
            texts,
            [
                "A pull request already exists for o:b.",
                "Issue.title missing_field",
                "plain"
            ]
        );
    }

    #[test]
    fn client_is_shareable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<GitHub>();
        assert_send_sync::<GitHubError>();
    }

    #[test]
    fn redacts_the_token() {
        assert_eq!(redact("bad tok123 here", "tok123"), "bad *** here");
        assert_eq!(redact("text", ""), "text");
    }
}
