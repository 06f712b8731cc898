//! The pipeline's edge towards verification: [`Verifying`] runs the repository's check on a
//! worktree (the snapshot's base with the change applied) and reports how it ended. The product
//! implements it with [`Verifier`] (the check command in the bubblewrap sandbox); the cost
//! benchmark drives the real pipeline with scripted check results through the same trait.

use std::path::Path;

use async_trait::async_trait;

use crate::verify::{Verification, VerifyError, Verifier};

/// Verifies a change.
#[async_trait]
pub trait Verifying: Send + Sync {
    /// Verifies the repository checked out at `worktree` (writable, discarded afterwards): a
    /// failed check is a [`Verification`] with status failed or timed out, not an error.
    /// Errors: the check could not be run at all ([`VerifyError`]).
    async fn verify(&self, worktree: &Path) -> Result<Verification, VerifyError>;
}

#[async_trait]
impl Verifying for Verifier {
    async fn verify(&self, worktree: &Path) -> Result<Verification, VerifyError> {
        Verifier::verify(self, worktree).await
    }
}
