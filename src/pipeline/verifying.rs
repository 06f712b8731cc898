//! The pipeline's edge towards verification: [`Verifying`] decides a run's [`CheckPlan`] from
//! the daemon's settings, the repository's `.autonomous-dev.toml` and the base branch's files,
//! prepares the base (the trusted setup, once per base commit) and runs the check on a
//! worktree (the snapshot's base with the change applied), reporting how it ended. The product
//! implements it with [`Verifier`] (the bubblewrap sandbox); the cost benchmark drives the real
//! pipeline with scripted check results through the same trait.

use std::path::Path;

use async_trait::async_trait;

use super::Snapshot;
use crate::repo_config::RepoConfig;
use crate::task::FileChange;
use crate::verify::{CheckPlan, Prepared, Verification, Verifier, VerifyError};

/// Verifies a change.
#[async_trait]
pub trait Verifying: Send + Sync {
    /// The plan for a base whose [`crate::verify::DETECTION_FILES`] are `base` and whose
    /// repository config is `repo` (both read from the base commit, never from the change);
    /// `None` when there is no check to run.
    fn plan(&self, base: &[FileChange], repo: &RepoConfig) -> Option<CheckPlan>;

    /// Prepares `snapshot`'s base for `plan` (whose setup is set): its tree with the setup's
    /// result, made once per base commit and setup. A setup that failed is
    /// [`Prepared::Failed`]. Errors: the setup could not be run at all ([`VerifyError`]).
    async fn prepare(
        &self,
        plan: &CheckPlan,
        snapshot: &dyn Snapshot,
    ) -> Result<Prepared, VerifyError>;

    /// Runs `plan`'s check on the repository checked out at `worktree` (writable, discarded
    /// afterwards), over a copy of `prepared` when given: a failed check is a [`Verification`]
    /// with status failed or timed out, not an error. Errors: the check could not be run at
    /// all ([`VerifyError`]).
    async fn verify(
        &self,
        worktree: &Path,
        plan: &CheckPlan,
        prepared: Option<&Path>,
    ) -> Result<Verification, VerifyError>;
}

#[async_trait]
impl Verifying for Verifier {
    fn plan(&self, base: &[FileChange], repo: &RepoConfig) -> Option<CheckPlan> {
        Verifier::plan(self, base, repo)
    }

    async fn prepare(
        &self,
        plan: &CheckPlan,
        snapshot: &dyn Snapshot,
    ) -> Result<Prepared, VerifyError> {
        Verifier::prepare(self, snapshot.base(), plan, |dir| async move {
            snapshot
                .export(Vec::new(), dir)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .await
    }

    async fn verify(
        &self,
        worktree: &Path,
        plan: &CheckPlan,
        prepared: Option<&Path>,
    ) -> Result<Verification, VerifyError> {
        Verifier::verify(self, worktree, plan, prepared).await
    }
}
