//! Configuration: every setting is a clap flag that also reads the environment variable of the
//! same name (the systemd unit passes `EnvironmentFile=/etc/autonomous-dev/env`; a `.env` file in
//! the working directory is read first when present). Secrets are `SecretString`s whose values
//! clap never prints (`hide_env_values`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::task::{Stage, TaskStatus};

/// `autonomous-dev`: turns rows of a PostgreSQL `tasks` table into reviewed GitHub pull requests.
#[derive(Debug, Parser)]
#[command(name = "autonomous-dev", version, about)]
pub struct Cli {
    /// PostgreSQL connection string.
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "DATABASE_URL",
          hide_env_values = true, value_parser = secret)]
    pub database_url: Option<SecretString>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations (also done at daemon start).
    Migrate,
    /// Load, add, list and inspect tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Count and average consensus score per status.
    Stats,
    /// Run the daemon: claim pending tasks and turn them into pull requests.
    Run(RunArgs),
}

/// `tasks …` subcommands.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Load a JSON task file (an array of tasks, or {"labels": [...], "tasks": [...]}); all or nothing.
    Load {
        /// The task file.
        file: PathBuf,
        /// Overwrite description, priority and labels of existing tasks that are still pending.
        #[arg(long)]
        update: bool,
    },
    /// Add one task.
    Add {
        /// Unique task id, e.g. phase1-016.
        #[arg(long = "id")]
        task_id: String,
        /// Higher runs first.
        #[arg(long, allow_negative_numbers = true)]
        priority: i32,
        /// PR label for this task (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// What to build; the first line becomes the PR title.
        description: String,
    },
    /// List tasks, highest priority first.
    List {
        /// Only tasks with this status.
        #[arg(long, value_parser = status)]
        status: Option<TaskStatus>,
    },
    /// Show one task: every stage with its vote and rationale, consensus, decision, PR, error.
    Show {
        /// The task id.
        task_id: String,
    },
}

/// Settings of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Local clone of the target repository.
    #[arg(long, env = "REPO_PATH", value_name = "REPO_PATH")]
    pub repo_path: PathBuf,

    /// owner/name of the target repository [default: parsed from REPO_PATH's origin URL].
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "GITHUB_REPOSITORY", value_parser = repository)]
    pub github_repository: Option<String>,

    /// Token used to push and to open pull requests.
    #[arg(long, env = "GITHUB_TOKEN", value_name = "GITHUB_TOKEN", hide_env_values = true, value_parser = secret)]
    pub github_token: SecretString,

    /// GitHub REST API base URL (GitHub Enterprise, tests).
    #[arg(long, env = "GITHUB_API_URL", value_name = "GITHUB_API_URL",
          default_value = "https://api.github.com", value_parser = url)]
    pub github_api_url: String,

    /// Branch pull requests target.
    #[arg(
        long,
        env = "BASE_BRANCH",
        value_name = "BASE_BRANCH",
        default_value = "main"
    )]
    pub base_branch: String,

    /// Anthropic API key.
    #[arg(long, env = "ANTHROPIC_API_KEY", value_name = "ANTHROPIC_API_KEY", hide_env_values = true, value_parser = secret)]
    pub anthropic_api_key: SecretString,

    /// Anthropic Messages API base URL (proxies, tests).
    #[arg(long, env = "ANTHROPIC_BASE_URL", value_name = "ANTHROPIC_BASE_URL",
          default_value = "https://api.anthropic.com", value_parser = url)]
    pub anthropic_base_url: String,

    #[command(flatten)]
    pub models: Models,

    /// Seconds between polls of the task table.
    #[arg(long, env = "POLL_INTERVAL", value_name = "POLL_INTERVAL", default_value = "60",
          value_parser = seconds)]
    pub poll_interval: Duration,

    /// Consensus score (0–100) at or above which a task is approved and published.
    #[arg(long, env = "CONSENSUS_THRESHOLD", value_name = "CONSENSUS_THRESHOLD", default_value_t = 80.0,
          value_parser = percent)]
    pub consensus_threshold: f64,

    /// Consensus score (0–100) at or above which a task not approved goes to needs_review.
    #[arg(long, env = "CONDITIONAL_THRESHOLD", value_name = "CONDITIONAL_THRESHOLD", default_value_t = 60.0,
          value_parser = percent)]
    pub conditional_threshold: f64,

    /// Process pending tasks until none is left, then exit 0.
    #[arg(long)]
    pub once: bool,
}

/// The model of each role (the design's stack: Opus for the Architect, Sonnet for the others).
#[derive(Debug, Clone, Args)]
pub struct Models {
    /// Model of the PM role.
    #[arg(
        long,
        env = "MODEL_PM",
        value_name = "MODEL_PM",
        default_value = "claude-sonnet-4-5"
    )]
    pub model_pm: String,
    /// Model of the Architect role.
    #[arg(
        long,
        env = "MODEL_ARCHITECT",
        value_name = "MODEL_ARCHITECT",
        default_value = "claude-opus-4-5"
    )]
    pub model_architect: String,
    /// Model of the Engineer role.
    #[arg(
        long,
        env = "MODEL_ENGINEER",
        value_name = "MODEL_ENGINEER",
        default_value = "claude-sonnet-4-5"
    )]
    pub model_engineer: String,
    /// Model of the QA role.
    #[arg(
        long,
        env = "MODEL_QA",
        value_name = "MODEL_QA",
        default_value = "claude-sonnet-4-5"
    )]
    pub model_qa: String,
    /// Model of the Security role.
    #[arg(
        long,
        env = "MODEL_SECURITY",
        value_name = "MODEL_SECURITY",
        default_value = "claude-sonnet-4-5"
    )]
    pub model_security: String,
}

impl Models {
    /// The model configured for `stage`.
    pub fn for_stage(&self, stage: Stage) -> &str {
        match stage {
            Stage::Pm => &self.model_pm,
            Stage::Architect => &self.model_architect,
            Stage::Engineer => &self.model_engineer,
            Stage::Qa => &self.model_qa,
            Stage::Security => &self.model_security,
        }
    }
}

fn secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

fn status(value: &str) -> Result<TaskStatus, String> {
    value.parse()
}

fn repository(value: &str) -> Result<String, String> {
    match value.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(value.to_owned())
        }
        _ => Err("expected owner/name".into()),
    }
}

fn url(value: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("expected an http:// or https:// URL".into());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err("expected a whole number of seconds, at least 1".into()),
    }
}

fn percent(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(n) if (0.0..=100.0).contains(&n) => Ok(n),
        _ => Err("expected a number from 0 to 100".into()),
    }
}
