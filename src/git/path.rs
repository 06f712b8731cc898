//! Validation of repository-relative paths proposed by the model.

/// A rejected path; the message names the path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected path '{path}': {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

/// Syntactic check of a model-proposed path: relative, non-empty, no `..` or `.` component, not
/// inside `.git/`, no backslash or NUL. (Symlinks are checked against the tree when writing.)
pub fn check_path(path: &str) -> Result<(), PathError> {
    let _ = path;
    todo!()
}
