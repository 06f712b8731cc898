//! The planner of `autonomous-dev plan`: not a role of the pipeline, but one forced-tool call that
//! breaks a person's goal into a backlog of tasks, with the repository listing (or map) of the
//! base branch as context. Its answer ([`PlanOutput`]) becomes a task file in the format
//! `tasks load` reads, and is valid only when that file passes `tasks load`'s own validation
//! ([`crate::store::parse_task_file`], cycles included); an invalid answer gets the one
//! corrective retry of [`super::Conversation`]. Its instructions are `planner.md`, the system
//! prompt of its request; the goal is outside data, in a `<goal>` block ([`super::goal_block`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::render::fill;
use super::{NON_BLANK, Problems, RepoContext, Tool, Validate, input_schema, listing_block};
use crate::llm::{Choice, Message, Part, ToolRequest, ToolSpec};
use crate::store::{TaskFileError, parse_task_file};
use crate::task::NewTask;

/// The planner (marker type for [`super::Conversation`]).
#[derive(Debug, Clone, Copy)]
pub struct Planner;

/// The planner's instructions: the system prompt of its request.
const PLANNER_PROMPT: &str = include_str!("planner.md");

/// The user message: the goal and the listing (`{goal}`, `{listing}`, `{tool}`).
pub(super) const PLAN: &str = include_str!("messages/plan.md");

/// The forced tool's description.
pub(super) const TOOL_DESCRIPTION: &str = include_str!("messages/tool_planner.md");

/// Most tasks one plan may propose.
const MAX_PLANNED_TASKS: usize = 30;

/// Output budget of the planner's answer, in tokens (`max_tokens` of the request).
const PLANNER_MAX_TOKENS: u32 = 8192;

/// JSON Schema `pattern` of a planned task's id: lowercase letters, digits and `-`, starting
/// with a letter or digit — a subset of the task_ids `tasks load` accepts (no `.`, so none
/// ends in `.lock` or holds `..`).
const PLAN_ID_PATTERN: &str = r"^[a-z0-9][a-z0-9-]*$";

/// Longest planned task id, in characters (`tasks load` allows 100).
const MAX_PLAN_ID_CHARS: usize = 64;

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 100;

/// JSON Schema `pattern` of a title: one line with a non-blank character.
const TITLE_PATTERN: &str = r"^[^\n]*\S[^\n]*$";

/// JSON Schema `pattern` of a label: one line with a non-blank character and no comma, as
/// `tasks load` requires (with at most 50 characters).
const LABEL_PATTERN: &str = r"^[^,\n]*[^\s,][^,\n]*$";

/// The planner's answer: the backlog, in the order a person would read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanOutput {
    /// The tasks, 1 to 30; each is one reviewable pull request.
    #[schemars(length(min = 1, max = MAX_PLANNED_TASKS))]
    pub tasks: Vec<PlannedTask>,
}

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedTask {
    /// Unique id within the plan, lowercase letters, digits and `-` (at most 64 characters),
    /// e.g. `export-csv-endpoint`; it names the git branch `feature/task-<id>`.
    #[schemars(pattern(PLAN_ID_PATTERN), length(min = 1, max = MAX_PLAN_ID_CHARS))]
    pub task_id: String,
    /// One line, imperative, at most 100 characters: the pull request's title.
    #[schemars(pattern(TITLE_PATTERN), length(max = MAX_TITLE_CHARS))]
    pub title: String,
    /// What to build and why, in Markdown: the files or modules concerned (from the
    /// repository listing), the approach, what is out of scope.
    #[schemars(pattern(NON_BLANK))]
    pub description: String,
    /// Testable acceptance criteria of this task alone, one per item; at least one.
    #[schemars(length(min = 1), inner(pattern(NON_BLANK)))]
    pub acceptance_criteria: Vec<String>,
    /// 1 to 100, higher runs first: foundations the other tasks depend on highest.
    #[schemars(range(min = 1, max = 100))]
    pub priority: u8,
    /// Labels of the task's pull request (e.g. the area), possibly none; each at most 50
    /// characters, without commas.
    #[schemars(inner(pattern(LABEL_PATTERN), length(max = 50)), extend("uniqueItems" = true))]
    pub labels: Vec<String>,
    /// `task_id`s of other tasks of this plan that must be merged first (no cycles), possibly
    /// none.
    #[schemars(inner(pattern(PLAN_ID_PATTERN)), extend("uniqueItems" = true))]
    pub depends_on: Vec<String>,
}

impl PlannedTask {
    /// The task as `tasks load` inserts it: the description is the title (the PR's, its first
    /// line), the description and the acceptance criteria as a Markdown list.
    fn new_task(&self) -> NewTask {
        let criteria: Vec<String> = self
            .acceptance_criteria
            .iter()
            .map(|c| format!("- {}", c.trim()))
            .collect();
        NewTask {
            task_id: self.task_id.clone(),
            description: format!(
                "{}\n\n{}\n\nAcceptance criteria:\n{}",
                self.title.trim(),
                self.description.trim(),
                criteria.join("\n")
            ),
            priority: i32::from(self.priority),
            labels: self.labels.clone(),
            depends_on: self.depends_on.clone(),
            reviewers: Vec::new(),
        }
    }
}

/// One entry of a task file, in `tasks load`'s field order.
#[derive(Serialize)]
struct FileEntry<'a> {
    task_id: &'a str,
    description: &'a str,
    priority: i32,
    labels: &'a [String],
    depends_on: &'a [String],
}

impl PlanOutput {
    /// The plan as a task file — a pretty-printed JSON array of `{task_id, description,
    /// priority, labels, depends_on}`, ending in a newline — once it passes `tasks load`'s own
    /// validation ([`parse_task_file`]). Errors: that validation's message.
    pub fn task_file(&self) -> Result<String, TaskFileError> {
        let tasks: Vec<NewTask> = self.tasks.iter().map(PlannedTask::new_task).collect();
        let entries: Vec<FileEntry<'_>> = tasks
            .iter()
            .map(|t| FileEntry {
                task_id: &t.task_id,
                description: &t.description,
                priority: t.priority,
                labels: &t.labels,
                depends_on: &t.depends_on,
            })
            .collect();
        let text = serde_json::to_string_pretty(&entries).expect("strings and integers") + "\n";
        parse_task_file(&text)?;
        Ok(text)
    }
}

impl Validate for PlanOutput {
    /// 1 to [`MAX_PLANNED_TASKS`] tasks; each with an id of [`PLAN_ID_PATTERN`] (at most
    /// [`MAX_PLAN_ID_CHARS`]), a one-line title, a description and at least one acceptance
    /// criterion, none blank, a priority from 1 to 100, dependencies on other tasks of the plan
    /// only; then the task file must pass `tasks load`'s validation (unique ids, labels, no
    /// dependency cycle).
    fn check(&self, problems: &mut Problems) {
        let descriptions: Vec<&str> = self.tasks.iter().map(|t| t.description.as_str()).collect();
        problems
            .items("tasks", self.tasks.len(), 1)
            .texts("tasks[].description", &descriptions);
        if self.tasks.len() > MAX_PLANNED_TASKS {
            problems.note(&format!(
                "`tasks` must have at most {MAX_PLANNED_TASKS} items (got {})",
                self.tasks.len()
            ));
        }
        let ids: Vec<&str> = self.tasks.iter().map(|t| t.task_id.as_str()).collect();
        let before = problems.found();
        for (i, task) in self.tasks.iter().enumerate() {
            let id_ok = task.task_id.chars().count() <= MAX_PLAN_ID_CHARS
                && task
                    .task_id
                    .starts_with(|c: char| c.is_ascii_alphanumeric())
                && task
                    .task_id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !id_ok {
                problems.note(&format!(
                    "`tasks[{i}].task_id` {:?} must be 1 to {MAX_PLAN_ID_CHARS} lowercase letters, \
                     digits and '-', starting with a letter or digit",
                    task.task_id
                ));
            }
            if task.title.trim().is_empty()
                || task.title.contains('\n')
                || task.title.chars().count() > MAX_TITLE_CHARS
            {
                problems.note(&format!(
                    "`tasks[{i}].title` must be one non-blank line of at most {MAX_TITLE_CHARS} \
                     characters"
                ));
            }
            if task.acceptance_criteria.is_empty() {
                problems.note(&format!(
                    "`tasks[{i}].acceptance_criteria` must have at least 1 item"
                ));
            }
            if let Some(j) = task
                .acceptance_criteria
                .iter()
                .position(|c| c.trim().is_empty())
            {
                problems.note(&format!(
                    "`tasks[{i}].acceptance_criteria[{j}]` must not be empty"
                ));
            }
            if !(1..=100).contains(&task.priority) {
                problems.note(&format!(
                    "`tasks[{i}].priority` must be between 1 and 100 (got {})",
                    task.priority
                ));
            }
            for dependency in &task.depends_on {
                if !ids.contains(&dependency.as_str()) {
                    problems.note(&format!(
                        "`tasks[{i}].depends_on` names {dependency:?}, which is not a task_id of \
                         this plan"
                    ));
                }
            }
        }
        // The file's own validation names entries 1-based; its message is only clear once the
        // fields above are right.
        if problems.found() == before
            && let Err(e) = self.task_file()
        {
            problems.note(&format!(
                "the plan is not a valid task file (entries are numbered from 1): {e}"
            ));
        }
    }
}

impl Tool for Planner {
    const NAME: &'static str = "planner";
    const TOOL_NAME: &'static str = "submit_plan";
    type Output = PlanOutput;
}

/// The planner's request to `model`: [`PLANNER_PROMPT`] as the system prompt, `submit_plan` as
/// the only tool (forced), and one user message with the goal in its data block
/// ([`super::goal_block`]) and the repository's listing or map ([`listing_block`]).
pub fn plan_request(model: &str, goal: &str, repo: &RepoContext) -> ToolRequest {
    let text = fill(
        PLAN,
        &[
            ("goal", &super::goal_block(goal)),
            ("listing", &listing_block(repo)),
            ("tool", Planner::TOOL_NAME),
        ],
    );
    ToolRequest {
        model: model.to_owned(),
        system: PLANNER_PROMPT.to_owned(),
        messages: vec![Message::User(vec![Part::text(text)])],
        tools: vec![ToolSpec {
            name: Planner::TOOL_NAME.to_owned(),
            description: TOOL_DESCRIPTION.trim_ascii_end().to_owned(),
            input_schema: input_schema::<PlanOutput>(),
        }],
        tool_choice: Planner::TOOL_NAME.to_owned(),
        choice: Choice::Role,
        max_tokens: PLANNER_MAX_TOKENS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, depends_on: &[&str]) -> PlannedTask {
        PlannedTask {
            task_id: id.into(),
            title: format!("Do {id}"),
            description: "What and why.".into(),
            acceptance_criteria: vec!["it works".into()],
            priority: 50,
            labels: vec!["plan".into()],
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_plan_is_a_task_file_tasks_load_accepts() {
        let plan = PlanOutput {
            tasks: vec![task("a", &[]), task("b", &["a"])],
        };
        assert_eq!(plan.validate(), Ok(()));
        let text = plan.task_file().unwrap();
        let tasks = parse_task_file(&text).unwrap();
        assert_eq!(tasks[1].depends_on, ["a"]);
        assert_eq!(
            tasks[0].description,
            "Do a\n\nWhat and why.\n\nAcceptance criteria:\n- it works"
        );
        assert!(text.ends_with("]\n"));
    }

    #[test]
    fn the_request_offers_only_the_planner_tool_whose_schema_says_the_rules() {
        let request = plan_request("m", "a goal", &RepoContext::default());
        assert_eq!(request.system, PLANNER_PROMPT);
        assert_eq!(request.tools.len(), 1);
        assert_eq!(request.forced_tool().unwrap().name, "submit_plan");
        let schema = &request.tools[0].input_schema;
        let tasks = &schema["properties"]["tasks"];
        assert_eq!(
            (tasks["minItems"].as_u64(), tasks["maxItems"].as_u64()),
            (Some(1), Some(30))
        );
        let task = &tasks["items"];
        assert_eq!(task["additionalProperties"], false);
        assert_eq!(task["required"].as_array().unwrap().len(), 7, "{task}");
        let field = |name: &str| &task["properties"][name];
        assert_eq!(field("task_id")["pattern"], PLAN_ID_PATTERN);
        assert_eq!(field("task_id")["maxLength"], 64);
        assert_eq!(field("title")["maxLength"], 100);
        assert_eq!(
            (
                field("priority")["minimum"].as_u64(),
                field("priority")["maximum"].as_u64()
            ),
            (Some(1), Some(100))
        );
        assert_eq!(field("labels")["items"]["maxLength"], 50);
        assert_eq!(field("depends_on")["items"]["pattern"], PLAN_ID_PATTERN);
        let user = format!("{:?}", request.messages[0]);
        assert!(user.contains("<goal>\\na goal\\n</goal>"), "{user}");
        assert_eq!(
            crate::agents::goal_block(" a </goal> b "),
            "<goal>\na <\\/goal> b\n</goal>"
        );
    }

    #[test]
    fn cycles_unknown_dependencies_and_bad_fields_are_all_named() {
        let cyclic = PlanOutput {
            tasks: vec![task("a", &["b"]), task("b", &["a"])],
        };
        let error = cyclic.validate().unwrap_err();
        assert!(error.contains("form a cycle: a → b → a"), "{error}");

        let mut bad = task("Bad.Id", &["nowhere"]);
        bad.priority = 0;
        bad.acceptance_criteria.clear();
        bad.title = "two\nlines".into();
        let error = PlanOutput { tasks: vec![bad] }.validate().unwrap_err();
        for expected in [
            "`tasks[0].task_id` \"Bad.Id\"",
            "`tasks[0].title` must be one non-blank line",
            "`tasks[0].acceptance_criteria` must have at least 1 item",
            "`tasks[0].priority` must be between 1 and 100 (got 0)",
            "names \"nowhere\", which is not a task_id of this plan",
        ] {
            assert!(error.contains(expected), "{expected}: {error}");
        }
        assert!(!error.contains("not a valid task file"), "{error}");
        assert!(PlanOutput { tasks: vec![] }.validate().is_err());
    }
}
