//! GitHub's REST API through octocrab: open a pull request and label it.

use secrecy::SecretString;

/// Errors talking to GitHub. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("invalid GitHub configuration: {0}")]
    Config(String),
    #[error("GitHub API error: {0}")]
    Api(String),
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
    octocrab: octocrab::Octocrab,
    owner: String,
    name: String,
}

impl GitHub {
    /// `api_url` is GITHUB_API_URL; `repository` is `owner/name`.
    pub fn new(
        api_url: &str,
        token: SecretString,
        repository: &str,
    ) -> Result<GitHub, GitHubError> {
        let _ = (api_url, token, repository);
        todo!()
    }

    /// POST /repos/{owner}/{repo}/pulls.
    pub async fn open_pull_request(&self, pr: &NewPullRequest) -> Result<PullRequest, GitHubError> {
        let _ = pr;
        todo!()
    }

    /// POST /repos/{owner}/{repo}/issues/{number}/labels (adding is idempotent on GitHub's side).
    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), GitHubError> {
        let _ = (number, labels);
        todo!()
    }
}
