//! GitHub's REST API through octocrab: find or open a task's pull request (exactly one per
//! head branch, whatever failed where), label it, look at its state later with a
//! conditional request (the PR watch), read and answer its conversation
//! (`conversation.rs`) and read its head's checks (`checks.rs`), for revisions; read the
//! labelled issues tasks are born of (`issues.rs`). The head branch is in the target
//! repository, or in a fork ([`GitHub::with_head_repository`], PUSH_REPOSITORY), whose PRs
//! name their head `forkowner:branch`.
//!
//! Octocrab's own retries are switched off: every call goes through this module's
//! [`RateLimitPolicy`] instead, which waits out rate limits, retries idempotent calls on 5xx and
//! network failures, and never repeats `POST /pulls` blindly (after an ambiguous failure it
//! looks for the pull request first). Connect and read timeouts are set so a stalled connection
//! cannot hang the daemon.

mod checks;
mod conversation;
mod issues;
mod retry;

pub use checks::{CheckRun, CommitStatus, LOG_TAIL_BYTES};
pub use conversation::{MAX_PAGES, Posted};
pub use issues::Issue;
pub use retry::RateLimitPolicy;

use std::future::Future;
use std::time::{Duration, SystemTime};

use octocrab::Octocrab;
use octocrab::params::State;
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

    /// Whether trying again later may succeed: 5xx, 429, a rate-limit 403
    /// ([`GitHubError::is_rate_limited`]), a network failure or unreadable answer
    /// ([`GitHubError::Api`]), and 422 "A pull request already exists" (a retry adopts that
    /// pull request). Permanent: configuration errors, 401 (bad credentials), a plain 403 (no
    /// permission), 404, and any other 4xx.
    pub fn is_transient(&self) -> bool {
        self.is_server_error()
            || self.is_network()
            || self.is_rate_limited()
            || self.is_already_exists()
    }

    /// Whether GitHub refused the call for a rate limit: 429; or 403 with `retry-after`, with
    /// `x-ratelimit-remaining: 0`, or whose message mentions a (secondary) rate limit. GitHub
    /// docs: primary and secondary limits answer 403 or 429.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            GitHubError::Status { status: 429, .. } => true,
            GitHubError::Status {
                status: 403,
                message,
                retry_after,
                rate_limit_remaining,
                ..
            } => {
                retry_after.is_some()
                    || *rate_limit_remaining == Some(0)
                    || message.to_ascii_lowercase().contains("rate limit")
            }
            _ => false,
        }
    }

    /// A plain 403 (not a rate limit, [`GitHubError::is_rate_limited`]): the token may not do
    /// this on the repository (e.g. labelling a PR, which needs triage access that an outside
    /// contributor's token from a fork lacks).
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403) && !self.is_rate_limited()
    }

    /// Whether this is GitHub's 422 "A pull request already exists for owner:branch." (an
    /// open pull request has the same head and base).
    pub fn is_already_exists(&self) -> bool {
        match self {
            GitHubError::Status {
                status: 422,
                message,
                ..
            } => message
                .to_ascii_lowercase()
                .contains("a pull request already exists"),
            _ => false,
        }
    }

    /// A 5xx answer.
    fn is_server_error(&self) -> bool {
        self.status()
            .is_some_and(|status| (500..600).contains(&status))
    }

    /// No usable answer: connection failure, timeout, or an answer that did not decode.
    fn is_network(&self) -> bool {
        matches!(self, GitHubError::Api(_))
    }
}

/// A pull request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    pub title: String,
    /// Branch with the changes (e.g. `feature/task-phase1-001`), without an owner: the client
    /// namespaces it with the head repository's owner.
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

/// A pull request's state as one look saw it (`GET /repos/{owner}/{repo}/pulls/{number}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestLook {
    /// What GitHub answered.
    pub seen: crate::task::PrSeen,
    /// `x-ratelimit-remaining` of the answer: requests left in the token's hour.
    pub rate_limit_remaining: Option<u64>,
}

/// What a conditional GET answered.
struct Conditional {
    /// The body and its ETag; `None` for 304 Not Modified.
    body: Option<(String, Option<String>)>,
    rate_limit_remaining: Option<u64>,
}

/// Client for one repository.
pub struct GitHub {
    octocrab: Octocrab,
    owner: String,
    name: String,
    /// `(owner, name)` of the repository holding the head branches: the target itself unless
    /// [`GitHub::with_head_repository`] names a fork.
    head: (String, String),
    policy: RateLimitPolicy,
    /// Kept only to scrub it from error messages.
    token: SecretString,
}

/// The repository only: never the token.
impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("repository", &format!("{}/{}", self.owner, self.name))
            .finish_non_exhaustive()
    }
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
            head: (owner.clone(), name.clone()),
            owner,
            name,
            policy: RateLimitPolicy::default(),
            token,
        })
    }

    /// The same client for PRs whose head branches are in `repository` (`owner/name`, the fork
    /// of PUSH_REPOSITORY): created with `head: "<owner>:<branch>"` (GitHub's create-PR API:
    /// "for cross-repository pull requests in the same network, namespace head with a user
    /// like this: username:branch"), plus `head_repo: "<name>"` when the fork has the target's
    /// owner (GitHub requires it "if both repositories are owned by the same organization");
    /// found with `head=<owner>:<branch>`.
    ///
    /// Errors: [`GitHubError::Config`] when `repository` is not `owner/name`.
    pub fn with_head_repository(mut self, repository: &str) -> Result<GitHub, GitHubError> {
        self.head = split_repository(repository)?;
        Ok(self)
    }

    /// The same client with `policy` for waits and retries (default:
    /// [`RateLimitPolicy::default`]).
    pub fn with_policy(mut self, policy: RateLimitPolicy) -> GitHub {
        self.policy = policy;
        self
    }

    /// The policy this client waits and retries by.
    pub fn policy(&self) -> RateLimitPolicy {
        self.policy
    }

    /// The open pull request whose head is `head_branch` of the head repository (this one, or
    /// the fork of [`GitHub::with_head_repository`]), if any
    /// (`GET /repos/{owner}/{repo}/pulls?state=open&head={head owner}:{head_branch}`; the
    /// first match). Its base branch is not checked: any open PR from the task's branch is the task's.
    ///
    /// Rate limits, 5xx and network failures are retried per the [`RateLimitPolicy`].
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`].
    pub async fn find_open_pull_request(
        &self,
        head_branch: &str,
    ) -> Result<Option<PullRequest>, GitHubError> {
        self.retrying("find pull request", || self.find_once(head_branch))
            .await
    }

    /// The one open pull request for `pr.head`: an existing one is adopted (`false`), else one
    /// is created (`true`). Safe to call again after any failure or crash: it never creates a
    /// second pull request for the same head.
    ///
    /// Looks first; creates only when there is none. When the create answers 422 "A pull
    /// request already exists" (a race), a 5xx, or fails on the network (the PR may have been
    /// created anyway), it looks again before anything else and adopts what it finds; only
    /// when there is still none does it create again (after the policy's wait). Rate limits
    /// are waited out. At most `1 + max_retries` creates are sent.
    ///
    /// Errors: [`GitHubError::Status`] / [`GitHubError::Api`] once a permanent error occurs or
    /// retries run out (the last error; see [`GitHubError::is_transient`]).
    pub async fn ensure_pull_request(
        &self,
        pr: &NewPullRequest,
    ) -> Result<(PullRequest, bool), GitHubError> {
        let mut retries = 0u32;
        let mut secondary_waits = 0u32;
        let mut look_first = true;
        loop {
            if look_first && let Some(found) = self.find_open_pull_request(&pr.head).await? {
                tracing::info!(number = found.number, head = %pr.head, "adopting the open pull request");
                return Ok((found, false));
            }
            let err = match self.create_once(pr).await {
                Ok(created) => return Ok((created, true)),
                Err(err) => err,
            };
            let maybe_exists = err.is_already_exists() || err.is_server_error() || err.is_network();
            if maybe_exists && let Some(found) = self.find_open_pull_request(&pr.head).await? {
                tracing::info!(
                    number = found.number,
                    head = %pr.head,
                    error = %err,
                    "creating the pull request failed but it exists; adopting it"
                );
                return Ok((found, false));
            }
            let wait = if err.is_already_exists() {
                // GitHub says it exists but does not list it yet: give the listing time.
                Some(retry::Wait {
                    duration: self.policy.backoff_for(retries),
                    reason: "pull request exists but is not listed yet".to_string(),
                    secondary: false,
                })
            } else {
                self.policy
                    .delay(&err, retries, secondary_waits, SystemTime::now())
            };
            let Some(wait) = wait else {
                return Err(err);
            };
            if retries >= self.policy.max_retries {
                return Err(err);
            }
            retries += 1;
            secondary_waits += u32::from(wait.secondary);
            self.log_wait("create pull request", &wait, retries, &err);
            tokio::time::sleep(wait.duration).await;
            look_first = !maybe_exists;
        }
    }

    /// POST /repos/{owner}/{repo}/issues/{number}/labels (adding is idempotent on GitHub's side:
    /// a label the PR already has is left as it is, so the call may be repeated freely).
    ///
    /// Sends `{"labels":[…]}`; labels GitHub does not know yet are created by GitHub. Does
    /// nothing when `labels` is empty. Rate limits, 5xx and network failures are retried per the
    /// [`RateLimitPolicy`]. Errors: [`GitHubError::Status`], [`GitHubError::Api`].
    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), GitHubError> {
        if labels.is_empty() {
            return Ok(());
        }
        self.retrying("add labels", || async {
            self.octocrab
                .issues(&self.owner, &self.name)
                .add_labels(number, labels)
                .await
                .map(|_| ())
                .map_err(|e| self.error(e))
        })
        .await
    }

    /// Requests reviews of PR `number` from `users` and `teams` (team slugs of the
    /// repository's organisation): `POST /repos/{owner}/{repo}/pulls/{number}/requested_reviewers`
    /// with `{"reviewers", "team_reviewers"}` (requesting again changes nothing, so it is
    /// retried like the other idempotent calls). Does nothing when both are empty.
    ///
    /// Errors: [`GitHubError::Status`] (422 when a reviewer is the PR's author or not a
    /// collaborator), [`GitHubError::Api`].
    pub async fn request_reviewers(
        &self,
        number: u64,
        users: &[String],
        teams: &[String],
    ) -> Result<(), GitHubError> {
        if users.is_empty() && teams.is_empty() {
            return Ok(());
        }
        let route = format!(
            "/repos/{}/{}/pulls/{number}/requested_reviewers",
            self.owner, self.name
        );
        let body = serde_json::json!({ "reviewers": users, "team_reviewers": teams });
        self.retrying("request reviewers", || async {
            self.octocrab
                .post::<_, serde_json::Value>(&route, Some(&body))
                .await
                .map(|_| ())
                .map_err(|e| self.error(e))
        })
        .await
    }

    /// One conditional `GET /repos/{owner}/{repo}/pulls/{number}` (If-None-Match: `etag` when
    /// given), no retry: a 304 (which does not count against GitHub's rate limit) is
    /// [`crate::task::PrSeen::NotModified`]; a 200 is the PR's state — merged when `merged_at` is set, closed when
    /// `state` is `closed`, else open.
    ///
    /// Errors: [`GitHubError::Status`] for any other status (404 when the PR or repository is
    /// gone, 403/429 for a rate limit, with its headers), [`GitHubError::Api`] for a network
    /// failure or an answer that is not a pull request.
    pub async fn pull_request_state(
        &self,
        number: u64,
        etag: Option<&str>,
    ) -> Result<PullRequestLook, GitHubError> {
        let uri = format!("/repos/{}/{}/pulls/{number}", self.owner, self.name);
        let answer = self.conditional_get(uri, etag).await?;
        let rate_limit_remaining = answer.rate_limit_remaining;
        let Some((body, etag)) = answer.body else {
            return Ok(PullRequestLook {
                seen: crate::task::PrSeen::NotModified,
                rate_limit_remaining,
            });
        };
        let pr: octocrab::models::pulls::PullRequest = serde_json::from_str(&body)
            .map_err(|e| GitHubError::Api(format!("pull request #{number}: {e}")))?;
        let (state, since) = match (pr.merged_at, &pr.state) {
            (Some(at), _) => (crate::task::PrState::Merged, Some(at)),
            (None, Some(octocrab::models::IssueState::Closed)) => {
                (crate::task::PrState::Closed, pr.closed_at)
            }
            _ => (crate::task::PrState::Open, pr.created_at),
        };
        let head = Some(pr.head.sha).filter(|sha| !sha.is_empty());
        let conflicted = pr.mergeable == Some(false)
            || pr.mergeable_state == Some(octocrab::models::pulls::MergeableState::Dirty);
        Ok(PullRequestLook {
            seen: crate::task::PrSeen::State {
                state,
                since,
                etag,
                head,
                conflicted,
            },
            rate_limit_remaining,
        })
    }

    /// One `GET uri` with If-None-Match: `etag` when given, no retry: `body: None` for a 304,
    /// else the body and the answer's ETag; `x-ratelimit-remaining` either way.
    ///
    /// Errors: [`GitHubError::Status`] for an error status, [`GitHubError::Api`] for a network
    /// failure.
    async fn conditional_get(
        &self,
        uri: String,
        etag: Option<&str>,
    ) -> Result<Conditional, GitHubError> {
        let mut headers = http::HeaderMap::new();
        if let Some(etag) = etag.and_then(|e| http::HeaderValue::from_str(e).ok()) {
            headers.insert(http::header::IF_NONE_MATCH, etag);
        }
        let response = self
            .octocrab
            ._get_with_headers(uri, Some(headers))
            .await
            .map_err(|e| self.error(e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let rate_limit_remaining = header("x-ratelimit-remaining").and_then(|v| v.parse().ok());
        if response.status() == http::StatusCode::NOT_MODIFIED {
            return Ok(Conditional {
                body: None,
                rate_limit_remaining,
            });
        }
        let etag = header("etag");
        let response = octocrab::map_github_error(response)
            .await
            .map_err(|e| self.error(e))?;
        let body = self
            .octocrab
            .body_to_string(response)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Conditional {
            body: Some((body, etag)),
            rate_limit_remaining,
        })
    }

    /// One `POST /repos/{owner}/{repo}/pulls` with `{"title","head","base","body"}` (with a
    /// fork: `head` is `forkowner:branch`, and `head_repo` is set when the fork has the
    /// target's owner), no retry; the new PR's number and `html_url`.
    async fn create_once(&self, pr: &NewPullRequest) -> Result<PullRequest, GitHubError> {
        let (head_owner, head_name) = &self.head;
        let from_fork = (head_owner, head_name) != (&self.owner, &self.name);
        let head = if from_fork {
            format!("{head_owner}:{}", pr.head)
        } else {
            pr.head.clone()
        };
        let same_owner = head_owner.eq_ignore_ascii_case(&self.owner);
        let head_repo = (from_fork && same_owner).then(|| head_name.clone());
        let created = self
            .octocrab
            .pulls(&self.owner, &self.name)
            .create(&pr.title, head, &pr.base)
            .body(&pr.body)
            .head_repo(head_repo)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        pull_request(created)
    }

    /// One `GET /pulls?state=open&head=owner:branch`, no retry.
    async fn find_once(&self, head_branch: &str) -> Result<Option<PullRequest>, GitHubError> {
        let page = self
            .octocrab
            .pulls(&self.owner, &self.name)
            .list()
            .state(State::Open)
            .head(format!("{}:{head_branch}", self.head.0))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        page.items.into_iter().next().map(pull_request).transpose()
    }

    /// Runs `call`, which must be safe to repeat, until it succeeds, fails for good, or
    /// `max_retries` retries are spent, waiting as [`RateLimitPolicy`] says between attempts. `operation` names the call in the
    /// log.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, GitHubError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GitHubError>>,
    {
        let mut retries = 0u32;
        let mut secondary_waits = 0u32;
        loop {
            let err = match call().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let wait = self
                .policy
                .delay(&err, retries, secondary_waits, SystemTime::now());
            let Some(wait) = wait else {
                return Err(err);
            };
            if retries >= self.policy.max_retries {
                return Err(err);
            }
            retries += 1;
            secondary_waits += u32::from(wait.secondary);
            self.log_wait(operation, &wait, retries, &err);
            tokio::time::sleep(wait.duration).await;
        }
    }

    /// One warn line per wait: the operation, the wait, why, and GitHub's (token-free) error.
    fn log_wait(&self, operation: &str, wait: &retry::Wait, retry: u32, err: &GitHubError) {
        tracing::warn!(
            operation,
            wait_ms = u64::try_from(wait.duration.as_millis()).unwrap_or(u64::MAX),
            reason = %wait.reason,
            retry,
            max_retries = self.policy.max_retries,
            error = %err,
            "GitHub: waiting before retrying"
        );
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

/// Our view of octocrab's pull request: number and `html_url` (required).
fn pull_request(pr: octocrab::models::pulls::PullRequest) -> Result<PullRequest, GitHubError> {
    let url = pr.html_url.ok_or_else(|| {
        GitHubError::Api(format!(
            "pull request #{} has no html_url in GitHub's answer",
            pr.number
        ))
    })?;
    Ok(PullRequest {
        number: pr.number,
        url: url.to_string(),
    })
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
