//! Parsing and validation of task files (`tasks load FILE`): all or nothing.

use crate::task::NewTask;

/// Why a task file was rejected; names the entry (index and task_id when known) and the field.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct TaskFileError(pub String);

/// Parses a task file: a JSON array of tasks, or `{"labels": [...], "tasks": [...]}` whose labels
/// apply to every task. Each task has `task_id`, `description`, `priority`, optional `labels`.
pub fn parse_task_file(json: &str) -> Result<Vec<NewTask>, TaskFileError> {
    let _ = json;
    todo!()
}
