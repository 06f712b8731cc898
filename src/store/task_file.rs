//! Parsing and validation of task files (`tasks load FILE`): all or nothing.
//!
//! A task file is JSON: either an array of tasks, or `{"labels": [...], "tasks": [...]}` whose
//! labels apply to every task. The first invalid entry rejects the whole file with one message
//! naming the entry (1-based index, and its task_id when known) and the field.
//! [`validate_new_task`] holds the rules every task must follow, so `tasks add` shares them.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::task::NewTask;

/// Why a task file (or a task) was rejected; names the entry (index and task_id when known) and
/// the field.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct TaskFileError(pub String);

/// Longest task_id: the column is `VARCHAR(100)`.
const MAX_TASK_ID_CHARS: usize = 100;
/// Longest label GitHub accepts.
const MAX_LABEL_CHARS: usize = 50;
/// Fields a task entry may have.
const TASK_FIELDS: [&str; 6] = [
    "task_id",
    "description",
    "priority",
    "labels",
    "depends_on",
    "reviewers",
];
/// Fields the object form of a file may have.
const FILE_FIELDS: [&str; 2] = ["labels", "tasks"];

/// Parses a task file: a JSON array of tasks, or `{"labels": [...], "tasks": [...]}` whose labels
/// apply to every task (file labels first, then the task's own; deduplicated, order kept).
/// Each task has `task_id` (string), `description` (string), `priority` (integer in `i32`
/// range), optional `labels` (array of strings), optional `depends_on` (array of task_ids,
/// of this file or already loaded; repeats dropped) and optional `reviewers` (logins and
/// `org/team` teams requested on its PR); unknown fields are rejected.
///
/// # Errors
/// The first problem found, as one message: not JSON (with line and column), wrong top-level
/// shape, no tasks, an invalid entry (missing, empty, mistyped or unknown field, a task_id,
/// label or dependency [`validate_new_task`] refuses, a task_id already used by an earlier
/// entry), or dependencies among the file's tasks that form a cycle (naming its entries). That a
/// dependency outside the file exists is checked by [`crate::store::Store::load_tasks`].
pub fn parse_task_file(json: &str) -> Result<Vec<NewTask>, TaskFileError> {
    let root: Value =
        serde_json::from_str(json).map_err(|e| TaskFileError(format!("not valid JSON: {e}")))?;
    let (file_labels, entries) = split_root(root)?;
    if entries.is_empty() {
        return Err(TaskFileError("the file contains no tasks".to_string()));
    }

    let mut tasks = Vec::with_capacity(entries.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let number = index + 1;
        let task = parse_entry(entry, &file_labels).map_err(|e| e.in_entry(number))?;
        if let Some(first) = seen.insert(task.task_id.clone(), number) {
            return Err(TaskFileError(format!(
                "entry {number} (task_id {}): field \"task_id\": duplicate of entry {first}",
                quoted(&task.task_id)
            )));
        }
        tasks.push(task);
    }
    let edges = tasks.iter().flat_map(|t| {
        t.depends_on
            .iter()
            .map(move |d| (t.task_id.as_str(), d.as_str()))
    });
    if let Some(cycle) = find_cycle(edges) {
        let entries: Vec<String> = cycle
            .iter()
            .map(|id| format!("entry {} (task_id {})", seen[*id], quoted(id)))
            .collect();
        return Err(TaskFileError(format!(
            "{}: field \"depends_on\": the dependencies form a cycle: {} → {}",
            entries.join(", "),
            cycle.join(" → "),
            cycle[0]
        )));
    }
    Ok(tasks)
}

/// A cycle among `edges` (task → the task it depends on), as the task_ids along it (the first
/// one not repeated at the end), or `None`. Depth-first, in the edges' order.
pub(super) fn find_cycle<'a>(
    edges: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<Vec<&'a str>> {
    let mut graph: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (task, dependency) in edges {
        if !graph.contains_key(task) {
            order.push(task);
        }
        graph.entry(task).or_default().push(dependency);
    }
    // 1: on the current path, 2: done.
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut path: Vec<&str> = Vec::new();
    fn visit<'a>(
        node: &'a str,
        graph: &HashMap<&'a str, Vec<&'a str>>,
        state: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match state.get(node) {
            Some(2) => return None,
            Some(_) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                return Some(path[start..].to_vec());
            }
            None => {}
        }
        state.insert(node, 1);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    order
        .into_iter()
        .find_map(|node| visit(node, &graph, &mut state, &mut path))
}

/// Checks the rules every task follows, whether it comes from a file or from `tasks add`:
/// - `task_id`: 1–100 characters, `^[A-Za-z0-9][A-Za-z0-9._-]*$`, no `..`, not ending in `.`
///   or `.lock` (it becomes the git branch `feature/task-<task_id>`);
/// - `description`: not empty after trimming;
/// - each label: not empty after trimming, at most 50 characters, no comma;
/// - each dependency: a valid task_id, not the task's own.
///
/// # Errors
/// One message naming the field, e.g. `field "task_id": must not contain ".."`.
pub fn validate_new_task(task: &NewTask) -> Result<(), TaskFileError> {
    check_task_id(&task.task_id).map_err(|e| field_error("task_id", &e))?;
    if task.description.trim().is_empty() {
        return Err(field_error("description", "must not be empty"));
    }
    for label in &task.labels {
        check_label(label).map_err(|e| field_error("labels", &e))?;
    }
    for dependency in &task.depends_on {
        check_task_id(dependency)
            .map_err(|e| field_error("depends_on", &format!("{}: {e}", quoted(dependency))))?;
        if *dependency == task.task_id {
            return Err(field_error("depends_on", "a task cannot depend on itself"));
        }
    }
    for reviewer in &task.reviewers {
        crate::task::check_reviewer(reviewer).map_err(|e| field_error("reviewers", &e))?;
    }
    Ok(())
}

/// An error found inside one entry, before the entry's name is known to the caller.
struct EntryError {
    task_id: Option<String>,
    message: String,
}

impl EntryError {
    /// The final message: `entry N (task_id "x"): <message>`.
    fn in_entry(self, number: usize) -> TaskFileError {
        match self.task_id {
            Some(id) => TaskFileError(format!(
                "entry {number} (task_id {}): {}",
                quoted(&id),
                self.message
            )),
            None => TaskFileError(format!("entry {number}: {}", self.message)),
        }
    }
}

/// Splits the top level into the file-wide labels and the task entries.
fn split_root(root: Value) -> Result<(Vec<String>, Vec<Value>), TaskFileError> {
    match root {
        Value::Array(entries) => Ok((Vec::new(), entries)),
        Value::Object(mut object) => {
            if let Some(unknown) = object.keys().find(|k| !FILE_FIELDS.contains(&k.as_str())) {
                return Err(TaskFileError(format!(
                    "top level: unknown field {} (expected \"labels\" or \"tasks\")",
                    quoted(unknown)
                )));
            }
            let labels = match object.remove("labels") {
                None => Vec::new(),
                Some(value) => string_list(&value)
                    .and_then(|labels| {
                        labels.iter().try_for_each(|l| check_label(l))?;
                        Ok(labels)
                    })
                    .map_err(|e| TaskFileError(format!("top level: field \"labels\": {e}")))?,
            };
            match object.remove("tasks") {
                Some(Value::Array(entries)) => Ok((labels, entries)),
                Some(other) => Err(TaskFileError(format!(
                    "top level: field \"tasks\": expected an array, got {}",
                    describe(&other)
                ))),
                None => Err(TaskFileError(
                    "top level: missing field \"tasks\"".to_string(),
                )),
            }
        }
        other => Err(TaskFileError(format!(
            "top level: expected an array of tasks or an object with \"tasks\", got {}",
            describe(&other)
        ))),
    }
}

/// Turns one entry into a validated task; `file_labels` come first in its labels.
fn parse_entry(entry: Value, file_labels: &[String]) -> Result<NewTask, EntryError> {
    let Value::Object(object) = entry else {
        return Err(EntryError {
            task_id: None,
            message: format!("expected an object, got {}", describe(&entry)),
        });
    };
    // Name the entry by its task_id as soon as it is a string, even an invalid one.
    let known_id = object
        .get("task_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let fail = |message: String| EntryError {
        task_id: known_id.clone(),
        message,
    };

    if let Some(unknown) = object.keys().find(|k| !TASK_FIELDS.contains(&k.as_str())) {
        return Err(fail(format!(
            "unknown field {} (expected one of: task_id, description, priority, labels, \
             depends_on, reviewers)",
            quoted(unknown)
        )));
    }
    let task_id = required_string(&object, "task_id").map_err(&fail)?;
    let description = required_string(&object, "description").map_err(&fail)?;
    let priority = required_priority(&object).map_err(&fail)?;
    let own_labels = match object.get("labels") {
        None => Vec::new(),
        Some(value) => string_list(value).map_err(|e| fail(format!("field \"labels\": {e}")))?,
    };

    let depends_on = match object.get("depends_on") {
        None => Vec::new(),
        Some(value) => {
            string_list(value).map_err(|e| fail(format!("field \"depends_on\": {e}")))?
        }
    };
    let reviewers = match object.get("reviewers") {
        None => Vec::new(),
        Some(value) => string_list(value).map_err(|e| fail(format!("field \"reviewers\": {e}")))?,
    };
    let task = NewTask {
        task_id,
        description,
        priority,
        labels: without_repeats(file_labels, &own_labels),
        depends_on: without_repeats(&depends_on, &[]),
        reviewers: without_repeats(&reviewers, &[]),
    };
    validate_new_task(&task).map_err(|e| fail(e.0))?;
    Ok(task)
}

/// A string field that must be present and not blank.
fn required_string(object: &Map<String, Value>, field: &str) -> Result<String, String> {
    match object.get(field) {
        None => Err(format!("missing field {}", quoted(field))),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(format!("field {}: must not be empty", quoted(field)))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "field {}: expected a string, got {}",
            quoted(field),
            describe(other)
        )),
    }
}

/// The `priority` field: an integer in `i32` range.
fn required_priority(object: &Map<String, Value>) -> Result<i32, String> {
    let value = object
        .get("priority")
        .ok_or_else(|| "missing field \"priority\"".to_string())?;
    let integer = value.as_i64().ok_or_else(|| {
        format!(
            "field \"priority\": expected an integer, got {}",
            describe(value)
        )
    })?;
    i32::try_from(integer).map_err(|_| {
        format!(
            "field \"priority\": expected an integer from {} to {}, got {integer}",
            i32::MIN,
            i32::MAX
        )
    })
}

/// An array of strings; the message names the first element that is not a string.
fn string_list(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "expected an array of strings, got {}",
            describe(value)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "element {}: expected a string, got {}",
                i + 1,
                describe(other)
            )),
        })
        .collect()
}

/// `first` then `second`, without repeats, keeping the order of first appearance.
fn without_repeats(first: &[String], second: &[String]) -> Vec<String> {
    let mut merged: Vec<String> = Vec::with_capacity(first.len() + second.len());
    for label in first.iter().chain(second) {
        if !merged.contains(label) {
            merged.push(label.clone());
        }
    }
    merged
}

/// The task_id rules (see [`validate_new_task`]); the message omits the field name.
fn check_task_id(task_id: &str) -> Result<(), String> {
    if task_id.is_empty() {
        return Err("must not be empty".to_string());
    }
    let chars = task_id.chars().count();
    if chars > MAX_TASK_ID_CHARS {
        return Err(format!(
            "must be at most {MAX_TASK_ID_CHARS} characters, got {chars}"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let starts_well = task_id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !starts_well || !task_id.chars().all(allowed) {
        return Err(format!(
            "{} must start with a letter or digit and contain only letters, digits, '.', '_' \
             and '-' (it becomes a git branch name)",
            quoted(task_id)
        ));
    }
    if task_id.contains("..") {
        return Err(format!("{} must not contain \"..\"", quoted(task_id)));
    }
    if task_id.ends_with('.') || task_id.ends_with(".lock") {
        return Err(format!(
            "{} must not end with \".\" or \".lock\"",
            quoted(task_id)
        ));
    }
    Ok(())
}

/// The label rules (see [`validate_new_task`]); the message omits the field name.
fn check_label(label: &str) -> Result<(), String> {
    if label.trim().is_empty() {
        return Err("labels must not be empty".to_string());
    }
    let chars = label.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(format!(
            "label {} is {chars} characters long (at most {MAX_LABEL_CHARS})",
            quoted(label)
        ));
    }
    if label.contains(',') {
        return Err(format!("label {} must not contain a comma", quoted(label)));
    }
    Ok(())
}

/// `field "<name>": <message>`.
fn field_error(field: &str, message: &str) -> TaskFileError {
    TaskFileError(format!("field {}: {message}", quoted(field)))
}

/// A string as a JSON literal (quoted and escaped), cut to 60 characters.
fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{}…", Value::String(cut))
    } else {
        Value::String(s.to_string()).to_string()
    }
}

/// A JSON value for an error message: scalars as written, containers by their kind.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        scalar => scalar.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match parse_task_file(json) {
            Ok(tasks) => panic!("expected an error, got {tasks:?}"),
            Err(e) => e.0,
        }
    }

    fn task(task_id: &str) -> NewTask {
        NewTask {
            task_id: task_id.to_string(),
            description: "Do it".to_string(),
            priority: 1,
            labels: vec![],
            depends_on: vec![],
            reviewers: vec![],
        }
    }

    #[test]
    fn parses_an_array() {
        let tasks = parse_task_file(
            r#"[{"task_id": "a-1", "description": "First", "priority": 5},
                {"task_id": "a-2", "description": "Second", "priority": -3, "labels": ["x"]}]"#,
        )
        .unwrap();
        assert_eq!(
            tasks,
            vec![
                NewTask {
                    task_id: "a-1".into(),
                    description: "First".into(),
                    priority: 5,
                    labels: vec![],
                    depends_on: vec![],
                    reviewers: vec![],
                },
                NewTask {
                    task_id: "a-2".into(),
                    description: "Second".into(),
                    priority: -3,
                    labels: vec!["x".into()],
                    depends_on: vec![],
                    reviewers: vec![],
                },
            ]
        );
    }

    #[test]
    fn file_labels_apply_to_every_task_deduplicated_in_order() {
        let tasks = parse_task_file(
            r#"{"labels": ["phase-1", "backend"], "tasks": [
                {"task_id": "a", "description": "A", "priority": 0, "labels": ["ui", "phase-1", "ui"]},
                {"task_id": "b", "description": "B", "priority": 0}]}"#,
        )
        .unwrap();
        assert_eq!(tasks[0].labels, ["phase-1", "backend", "ui"]);
        assert_eq!(tasks[1].labels, ["phase-1", "backend"]);
    }

    #[test]
    fn reviewers_are_logins_or_teams() {
        let tasks = parse_task_file(
            r#"[{"task_id": "r-1", "description": "D", "priority": 1,
                 "reviewers": ["alice", "acme/backend", "alice"]}]"#,
        )
        .unwrap();
        assert_eq!(tasks[0].reviewers, ["alice", "acme/backend"]);
        let e = err(r#"[{"task_id": "r-1", "description": "D", "priority": 1,
                         "reviewers": ["not a login"]}]"#);
        assert_eq!(
            e,
            "entry 1 (task_id \"r-1\"): field \"reviewers\": \"not a login\": expected a login or org/team"
        );
        let e =
            err(r#"[{"task_id": "r-1", "description": "D", "priority": 1, "reviewers": "bob"}]"#);
        assert!(e.contains("field \"reviewers\": expected an array"), "{e}");
    }

    #[test]
    fn rejects_invalid_json_with_position() {
        let e = err("[{\"task_id\": \"a\",\n }");
        assert!(e.starts_with("not valid JSON:"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn rejects_wrong_top_level_shape() {
        assert!(err("42").contains("expected an array of tasks or an object"));
        assert!(err(r#"{"labels": []}"#).contains("missing field \"tasks\""));
        assert!(err(r#"{"tasks": {}}"#).contains("field \"tasks\": expected an array"));
        assert!(err(r#"{"task": []}"#).contains("unknown field \"task\""));
        assert!(err(r#"{"labels": "x", "tasks": []}"#).contains("field \"labels\""));
        assert!(err(r#"{"labels": ["a,b"], "tasks": []}"#).contains("comma"));
    }

    #[test]
    fn rejects_an_empty_task_list() {
        assert_eq!(err("[]"), "the file contains no tasks");
        assert_eq!(err(r#"{"tasks": []}"#), "the file contains no tasks");
    }

    #[test]
    fn rejects_an_entry_that_is_not_an_object() {
        assert_eq!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1}, "b"]"#),
            "entry 2: expected an object, got \"b\""
        );
    }

    #[test]
    fn rejects_a_missing_field() {
        assert_eq!(
            err(r#"[{"task_id": "a", "priority": 1}]"#),
            "entry 1 (task_id \"a\"): missing field \"description\""
        );
        assert_eq!(
            err(r#"[{"description": "A", "priority": 1}]"#),
            "entry 1: missing field \"task_id\""
        );
        assert_eq!(
            err(r#"[{"task_id": "a", "description": "A"}]"#),
            "entry 1 (task_id \"a\"): missing field \"priority\""
        );
    }

    #[test]
    fn rejects_a_wrong_type() {
        let file = r#"[
            {"task_id": "phase1-001", "description": "A", "priority": 1},
            {"task_id": "phase1-002", "description": "B", "priority": 2},
            {"task_id": "phase1-003", "description": "C", "priority": "high"}]"#;
        assert_eq!(
            err(file),
            "entry 3 (task_id \"phase1-003\"): field \"priority\": expected an integer, got \"high\""
        );
        assert!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1.5}]"#)
                .contains("expected an integer, got 1.5")
        );
        assert!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 3000000000}]"#)
                .contains("expected an integer from")
        );
        assert_eq!(
            err(r#"[{"task_id": 7, "description": "A", "priority": 1}]"#),
            "entry 1: field \"task_id\": expected a string, got 7"
        );
        assert!(
            err(r#"[{"task_id": "a", "description": ["A"], "priority": 1}]"#)
                .contains("field \"description\": expected a string, got an array")
        );
        assert!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1, "labels": ["x", 5]}]"#)
                .contains("field \"labels\": element 2: expected a string, got 5")
        );
        assert!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1, "labels": "x"}]"#)
                .contains("field \"labels\": expected an array of strings")
        );
    }

    #[test]
    fn rejects_empty_strings() {
        assert_eq!(
            err(r#"[{"task_id": "a", "description": "  \n ", "priority": 1}]"#),
            "entry 1 (task_id \"a\"): field \"description\": must not be empty"
        );
        assert!(
            err(r#"[{"task_id": " ", "description": "A", "priority": 1}]"#)
                .contains("field \"task_id\": must not be empty")
        );
        assert!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1, "labels": [" "]}]"#)
                .contains("field \"labels\": labels must not be empty")
        );
    }

    #[test]
    fn rejects_an_unknown_field_by_name() {
        assert_eq!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1, "lables": ["x"]}]"#),
            "entry 1 (task_id \"a\"): unknown field \"lables\" \
             (expected one of: task_id, description, priority, labels, depends_on, reviewers)"
        );
    }

    #[test]
    fn dependencies_are_read_deduplicated_and_checked_for_cycles() {
        let tasks = parse_task_file(
            r#"[{"task_id": "a", "description": "A", "priority": 1},
                {"task_id": "b", "description": "B", "priority": 1, "depends_on": ["a", "a", "x"]}]"#,
        )
        .unwrap();
        assert_eq!(tasks[1].depends_on, ["a", "x"]);
        let cycle = err(
            r#"[{"task_id": "a", "description": "A", "priority": 1, "depends_on": ["c"]},
                {"task_id": "b", "description": "B", "priority": 1, "depends_on": ["a"]},
                {"task_id": "c", "description": "C", "priority": 1, "depends_on": ["b"]}]"#,
        );
        assert_eq!(
            cycle,
            "entry 1 (task_id \"a\"), entry 3 (task_id \"c\"), entry 2 (task_id \"b\"): field \
             \"depends_on\": the dependencies form a cycle: a → c → b → a"
        );
        assert!(
            err(r#"[{"task_id": "a", "description": "A", "priority": 1, "depends_on": ["../x"]}]"#)
                .contains("field \"depends_on\": \"../x\"")
        );
    }

    #[test]
    fn rejects_a_duplicate_task_id_naming_both_entries() {
        let file = r#"[
            {"task_id": "a", "description": "A", "priority": 1},
            {"task_id": "b", "description": "B", "priority": 1},
            {"task_id": "a", "description": "C", "priority": 1}]"#;
        assert_eq!(
            err(file),
            "entry 3 (task_id \"a\"): field \"task_id\": duplicate of entry 1"
        );
    }

    #[test]
    fn the_first_invalid_entry_is_reported() {
        let file = r#"[
            {"task_id": "a", "description": "A", "priority": 1},
            {"task_id": "b", "description": "", "priority": 1},
            {"task_id": "c", "description": "C", "priority": "x"}]"#;
        assert!(err(file).starts_with("entry 2 (task_id \"b\")"));
    }

    #[test]
    fn rejects_a_task_id_unsafe_for_a_branch() {
        for bad in [
            "has space",
            "-leading-dash",
            ".hidden",
            "a/b",
            "a..b",
            "ends.",
            "ends.lock",
            "ünicode",
            "a~1",
            "a@{1}",
        ] {
            let e = validate_new_task(&task(bad)).unwrap_err().0;
            assert!(e.starts_with("field \"task_id\":"), "{bad}: {e}");
        }
        let long = "a".repeat(101);
        assert!(
            validate_new_task(&task(&long))
                .unwrap_err()
                .0
                .contains("at most 100 characters")
        );
        for good in ["phase1-001", "A_b.c-9", "7", &"a".repeat(100)] {
            assert_eq!(validate_new_task(&task(good)), Ok(()), "{good}");
        }
        assert!(
            err(r#"[{"task_id": "a..b", "description": "A", "priority": 1}]"#)
                .starts_with("entry 1 (task_id \"a..b\"): field \"task_id\":")
        );
    }

    #[test]
    fn rejects_bad_labels() {
        let mut t = task("a");
        t.labels = vec!["ok".into(), "x".repeat(51)];
        assert!(validate_new_task(&t).unwrap_err().0.contains("at most 50"));
        t.labels = vec!["a,b".into()];
        assert!(validate_new_task(&t).unwrap_err().0.contains("comma"));
        t.labels = vec!["".into()];
        assert!(
            validate_new_task(&t)
                .unwrap_err()
                .0
                .contains("must not be empty")
        );
        t.labels = vec!["x".repeat(50)];
        assert_eq!(validate_new_task(&t), Ok(()));
    }

    #[test]
    fn rejects_a_blank_description() {
        let mut t = task("a");
        t.description = " \t".into();
        assert_eq!(
            validate_new_task(&t).unwrap_err().0,
            "field \"description\": must not be empty"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let id = "x".repeat(200);
        let e = err(&format!(
            r#"[{{"task_id": "{id}", "description": "A", "priority": 1}}]"#
        ));
        assert!(e.len() < 300, "{e}");
        assert!(e.contains("at most 100 characters"), "{e}");
    }
}
