//! The pipeline's edge towards verification: [`Verifying`] decides the repository's check from
//! the base branch's files and runs it on a worktree (the snapshot's base with the change
//! applied), reporting how it ended. The product implements it with [`Verifier`] (the check
//! command in the bubblewrap sandbox); the cost benchmark drives the real pipeline with
//! scripted check results through the same trait.

use std::path::Path;

use async_trait::async_trait;

use crate::task::FileChange;
use crate::verify::{Verification, Verifier, VerifyError};

/// Verifies a change.
#[async_trait]
pub trait Verifying: Send + Sync {
    /// The check command for a base whose [`crate::verify::DETECTION_FILES`] are `base` (read
    /// from the base commit, never from the change); `None` when there is none to run.
    fn check_command(&self, base: &[FileChange]) -> Option<String>;

    /// Runs `command` on the repository checked out at `worktree` (writable, discarded
    /// afterwards): a failed check is a [`Verification`] with status failed or timed out, not
    /// an error. Errors: the check could not be run at all ([`VerifyError`]).
    async fn verify(&self, worktree: &Path, command: &str) -> Result<Verification, VerifyError>;
}

#[async_trait]
impl Verifying for Verifier {
    fn check_command(&self, base: &[FileChange]) -> Option<String> {
        Verifier::check_command(self, base)
    }

    async fn verify(&self, worktree: &Path, command: &str) -> Result<Verification, VerifyError> {
        Verifier::verify(self, worktree, command).await
    }
}
