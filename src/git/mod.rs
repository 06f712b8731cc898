//! Git through libgit2 (git2): read the target repository at `origin/BASE_BRANCH`, and build,
//! commit and push a task's branch without touching the user's checked-out working tree, index
//! or HEAD. All functions block: call them from `tokio::task::spawn_blocking`.

mod path;

pub use path::{PathError, check_path};

use std::path::Path;

use secrecy::SecretString;

use crate::task::FileChange;

/// Errors of the git layer. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A proposed path is hostile or invalid; nothing was written or pushed.
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{0}")]
    Other(String),
}

/// What `list_files` returns: tracked paths at the base, cut to a size bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub paths: Vec<String>,
    pub truncated: bool,
}

/// A branch commit that was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub branch: String,
    /// Hex SHA of the commit.
    pub commit: String,
}

/// The target repository: a local clone at REPO_PATH whose `origin` is the GitHub repository.
pub struct Repo {
    repo: git2::Repository,
    base_branch: String,
    token: Option<SecretString>,
}

impl Repo {
    /// Opens the clone at `path`. `token` authenticates fetch/push over https
    /// (HTTP basic `x-access-token:<token>`); path and file remotes need none.
    pub fn open(
        path: &Path,
        base_branch: &str,
        token: Option<SecretString>,
    ) -> Result<Repo, GitError> {
        let _ = (path, base_branch, token);
        todo!()
    }

    /// URL of the `origin` remote.
    pub fn origin_url(&self) -> Result<String, GitError> {
        todo!()
    }

    /// Fetches `BASE_BRANCH` from origin into `refs/remotes/origin/BASE_BRANCH`; returns its SHA.
    pub fn fetch_base(&self) -> Result<String, GitError> {
        todo!()
    }

    /// Tracked file paths at `origin/BASE_BRANCH`, sorted, cut when their total length passes
    /// `max_bytes`.
    pub fn list_files(&self, max_bytes: usize) -> Result<Listing, GitError> {
        todo!()
    }

    /// Content at `origin/BASE_BRANCH` of those `paths` that exist as UTF-8 text files, each cut
    /// to `max_bytes_each`. Missing, binary and invalid paths are skipped.
    pub fn read_files(
        &self,
        paths: &[String],
        max_bytes_each: usize,
    ) -> Result<Vec<FileChange>, GitError> {
        let _ = (paths, max_bytes_each);
        todo!()
    }

    /// Builds a commit on `origin/BASE_BRANCH` that writes `files` (rejecting any hostile path
    /// before anything is written: absolute, `..`, inside `.git/`, through a symlink), points
    /// the local branch `branch` at it and pushes it to origin. Commits as `autonomous-dev`.
    pub fn commit_and_push(
        &self,
        branch: &str,
        files: &[FileChange],
        message: &str,
    ) -> Result<Pushed, GitError> {
        let _ = (branch, files, message);
        todo!()
    }
}

/// Parses `owner/name` from a GitHub remote URL (https, ssh `git@host:owner/name(.git)`).
pub fn parse_github_repository(url: &str) -> Option<String> {
    let _ = url;
    todo!()
}
