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
    #[arg(long, global = true, env, hide_env_values = true, value_parser = secret)]
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
    Stats {
        /// Print JSON (README: "JSON output") instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The overview in the terminal: tasks per status, the workers, spend, waiting tasks.
    Status {
        /// Print JSON (README: "JSON output") instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: claim pending tasks and turn them into pull requests.
    Run(Box<RunArgs>),
    /// Break a goal into a task file for `tasks load`, with one LLM call (the PM's provider and
    /// model) that sees the base branch's listing; no database, nothing loaded.
    Plan(Box<PlanArgs>),
    /// Offline benchmarks (no database, no model).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `bench …` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// How well the repository map localises the most recent real changes of a repository:
    /// map recall at the budget, top-10 recall, build time and tokens, as a Markdown table.
    Localize {
        /// A local git repository (its current branch's history is used).
        #[arg(long)]
        repo: PathBuf,
        /// How many cases (recent non-merge commits modifying 1–3 non-test source files).
        #[arg(long, default_value = "50", value_parser = clap::value_parser!(u32).range(1..=10000))]
        cases: u32,
        /// The map's budget in estimated tokens [default: REPO_MAP_TOKENS's default].
        #[arg(long, default_value = "4096", value_parser = clap::value_parser!(u32).range(64..=1_000_000))]
        budget: u32,
    },
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
        /// Reviewer requested on its PR besides REVIEWERS: a login or org/team (repeatable).
        #[arg(long = "reviewer")]
        reviewers: Vec<String>,
        /// What to build; the first line becomes the PR title.
        description: String,
    },
    /// List tasks, highest priority first.
    List {
        /// Only tasks with this status.
        #[arg(long, value_enum)]
        status: Option<TaskStatus>,
        /// Only tasks with this label.
        #[arg(long)]
        label: Option<String>,
        /// Print JSON (README: "JSON output") instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one task: every stage with its vote and rationale, consensus, decision, PR, error.
    Show {
        /// The task id.
        task_id: String,
        /// Print JSON (README: "JSON output") instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a pending task now, or ask a running one to stop at its next stage boundary.
    Cancel {
        /// The task id.
        task_id: String,
    },
    /// Put a failed or cancelled task back to pending; it resumes from its last recorded stage.
    Retry {
        /// The task id.
        task_id: String,
        /// Forget its recorded stages and start again from the PM.
        #[arg(long)]
        fresh: bool,
    },
    /// Approve a needs_review task: its recorded change is published as its PR (label
    /// human-approved, the approver named in the body) by the daemon's next run.
    Approve {
        /// The task id.
        task_id: String,
        /// Who approves, as the PR body names them (one line, at most 100 characters); default:
        /// the USER environment variable.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Create the tasks of the open issues labelled ISSUES_LABEL once, as the daemon's issue
    /// watch does (the daemon, when it runs, posts the queued comments); reads the daemon's
    /// settings.
    Import {
        /// Import from the target repository's GitHub issues (the only source).
        #[arg(long, required = true)]
        github: bool,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
    /// Reject a needs_review task: it fails with the reason, nothing is published.
    Reject {
        /// The task id.
        task_id: String,
        /// Why (recorded as the task's error, at most 1000 characters).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// `plan`: the goal, where the task file goes, and the settings of `run` (the same environment),
/// of which it reads the target repository (REPO_PATH, BASE_BRANCH, GITHUB_TOKEN for the
/// fetch), REPO_MAP_TOKENS, the PM's provider and model with their keys and URLs, and the cost
/// settings.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// What the backlog should reach, in a person's words (data for the model, never
    /// instructions).
    pub goal: String,
    /// Write the task file here instead of stdout; an existing file is refused (nothing is
    /// asked of the model) unless --force.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the file --out names if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
    #[command(flatten)]
    pub settings: RunArgs,
}

/// Settings of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Local clone of the target repository.
    #[arg(long, env)]
    pub repo_path: PathBuf,

    /// owner/name of the target repository [default: parsed from REPO_PATH's origin URL].
    #[arg(long, env, value_parser = repository)]
    pub github_repository: Option<String>,

    /// The fork task branches are pushed to instead of the target repository, so that their
    /// pull requests are outside contributions (GitHub withholds the target's secrets from
    /// their `pull_request` workflows and may hold their runs for approval): `owner/name` on
    /// the GitHub host of GITHUB_API_URL, or the fork's full `https://` clone URL (plain
    /// `http://` only to a loopback host; no user:password@). Refused when it is the target
    /// itself. The base is still fetched from origin [default: push to origin].
    #[arg(long, env, value_parser = PushRepositoryParser)]
    pub push_repository: Option<PushRepository>,

    /// Token used to push and to open pull requests (not needed with --dry-run).
    #[arg(long, env, hide_env_values = true, value_parser = secret)]
    pub github_token: Option<SecretString>,

    /// GitHub REST API base URL (GitHub Enterprise, tests).
    #[arg(long, env, default_value = "https://api.github.com", value_parser = url)]
    pub github_api_url: String,

    /// Branch pull requests target.
    #[arg(long, env, default_value = "main")]
    pub base_branch: String,

    /// Anthropic API key (required when a role uses the anthropic provider).
    #[arg(long, env, hide_env_values = true, value_parser = secret)]
    pub anthropic_api_key: Option<SecretString>,

    /// Anthropic Messages API base URL (proxies, tests).
    #[arg(long, env, default_value = "https://api.anthropic.com", value_parser = url)]
    pub anthropic_base_url: String,

    /// Base URL of an OpenAI-compatible Chat Completions API (OpenAI, OpenRouter, Ollama, vLLM,
    /// llama.cpp's server); `/v1/chat/completions` is appended.
    #[arg(long, env, default_value = "https://api.openai.com", value_parser = url)]
    pub openai_base_url: String,

    /// API key of the OpenAI-compatible API (local servers need none).
    #[arg(long, env, hide_env_values = true, value_parser = secret)]
    pub openai_api_key: Option<SecretString>,

    /// Upper bound on any request's output tokens (each role has its own budget, up to 16000
    /// for the Engineer); for local models whose context window must hold prompt + output.
    #[arg(long, env, value_parser = clap::value_parser!(u32).range(256..))]
    pub max_output_tokens: Option<u32>,

    /// Ask for strict tool use (Anthropic's `strict: true` tools; for OpenAI-compatible servers
    /// see OPENAI_CONSTRAINT): the provider decodes the tool input to its schema. A server that refuses it is detected
    /// at the first request and asked without it from then on; `false` never sends it.
    #[arg(long, env, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub strict_tool_use: bool,

    /// How an OpenAI-compatible server is asked to decode tool inputs when STRICT_TOOL_USE is
    /// on: `strict` (OpenAI's strict functions), `grammar` (a local server that compiles the
    /// forced function's parameters into a grammar: llama.cpp's server, llama-cpp-python,
    /// vLLM), `auto` (grammar for a localhost or private-network OPENAI_BASE_URL, else strict).
    #[arg(long, env, value_enum, default_value_t = crate::llm::Constraint::Auto)]
    pub openai_constraint: crate::llm::Constraint,

    #[command(flatten)]
    pub providers: Providers,

    #[command(flatten)]
    pub models: Models,
    #[command(flatten)]
    pub checks: Checks,
    #[command(flatten)]
    pub costs: Costs,

    /// Seconds between polls of the task table.
    #[arg(long, env, default_value = "60", value_parser = seconds)]
    pub poll_interval: Duration,

    /// Seconds between two looks at an opened PR (conditional requests), until it is merged or
    /// closed.
    #[arg(long, env, default_value = "300", value_parser = seconds)]
    pub pr_poll_seconds: Duration,

    /// The label that makes an open issue of the target repository a task `gh-<number>`, when
    /// a person with write permission put it there; watched every PR_POLL_SECONDS with
    /// conditional requests [default: issues are not watched].
    #[arg(long, env, value_parser = issues_label)]
    pub issues_label: Option<String>,

    /// Priority of a task from an issue without a `priority:N` label.
    #[arg(long, env, default_value = "0", allow_negative_numbers = true)]
    pub issues_priority: i32,

    /// Most PRs looked at in one sweep of the PR watch.
    #[arg(long, env, default_value = "100", value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub pr_watch_max: u32,

    /// The repository map's budget in estimated tokens (4 bytes a token): the ranked files and
    /// signatures every role is shown instead of the bare listing. 0 shows the bare listing.
    #[arg(long, env, default_value = "4096", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub repo_map_tokens: u32,

    /// Most look-up calls (`read_file`, `search`, `find_symbol` on the base commit) the
    /// Architect and the Engineer may each make before they submit; each is one more LLM call
    /// under the cost guard. 0 offers them none.
    #[arg(long, env, default_value = "8", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_lookups: u32,

    /// Most revisions of one PR started by reviews (0: the daemon does not revise its PRs).
    #[arg(long, env, default_value = "3", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_revisions: u32,

    /// Text that asks for a revision in a review or PR comment by a person with write
    /// permission (as does `@<login>` of the token's account; a review requesting changes and
    /// an inline comment always do).
    #[arg(long, env, default_value = "/autonomous-dev", value_parser = trigger_text)]
    pub revision_trigger: String,

    /// Most revisions of one PR that fix failing checks (0: failing checks are not fixed).
    #[arg(long, env, default_value = "2", value_parser = clap::value_parser!(u32).range(0..=20))]
    pub max_ci_fixes: u32,

    /// Check runs (by name) and commit statuses (by context) whose failure is not fixed,
    /// comma-separated, e.g. `codecov/patch,deploy-preview`.
    #[arg(long, env, value_delimiter = ',', value_parser = check_name)]
    pub ignored_checks: Vec<String>,

    /// Consensus score (0–100) at or above which a task is approved and published.
    #[arg(long, env, default_value_t = 80.0, value_parser = percent)]
    pub consensus_threshold: f64,

    /// Consensus score (0–100) at or above which a task not approved goes to needs_review.
    #[arg(long, env, default_value_t = 60.0, value_parser = percent)]
    pub conditional_threshold: f64,

    /// Tasks run at once by this daemon (several daemons may also share one database).
    #[arg(long, env, default_value = "1", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Claims a task gets before a transient failure (network, 5xx) fails it.
    #[arg(long, env, default_value = "5", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_attempts: u16,

    /// Seconds before a task that failed transiently is claimed again, doubled per attempt
    /// (at most an hour; the wait is random between half of that and all of it).
    #[arg(long, env, default_value = "30", value_parser = seconds)]
    pub retry_base_seconds: Duration,

    /// Seconds a task waits after a rate limit that outlasted the clients' own retries; the
    /// wait spends no attempt.
    #[arg(long, env, default_value = "900", value_parser = seconds)]
    pub rate_limit_wait_seconds: Duration,

    /// Retries of one LLM request after a transient answer (429, 5xx, 529) or a network error,
    /// waiting what `retry-after` says or 2 s doubling; then the task's own retry takes over.
    #[arg(long, env, default_value = "4", value_parser = clap::value_parser!(u32).range(0..=10))]
    pub llm_max_retries: u32,

    /// Seconds a claim (lease) stays valid without renewal; an expired lease is reclaimed.
    #[arg(long, env, default_value = "60", value_parser = seconds)]
    pub lease_seconds: Duration,

    /// Seconds between lease renewals (must be well under LEASE_SECONDS).
    #[arg(long, env, default_value = "10", value_parser = seconds)]
    pub heartbeat_seconds: Duration,

    /// Seconds a running stage may continue after SIGTERM/SIGINT before its task is released.
    #[arg(long, env, default_value = "30", value_parser = seconds)]
    pub shutdown_grace: Duration,

    /// Address the read-only status page, `/metrics` and `/healthz` are served on, e.g.
    /// `127.0.0.1:9464` [default: not served]. Any address but loopback requires STATUS_TOKEN.
    #[arg(long, env)]
    pub status_addr: Option<std::net::SocketAddr>,

    /// Token the status page asks for (bearer token or its login form); required when
    /// STATUS_ADDR is not loopback, optional on loopback.
    #[arg(long, env, hide_env_values = true, value_parser = secret)]
    pub status_token: Option<SecretString>,

    /// Webhook that gets every notification as JSON, signed with NOTIFY_WEBHOOK_SECRET
    /// (`https://`, or `http://` to a loopback host) [default: none].
    #[arg(long, env, value_parser = url, requires = "notify_webhook_secret")]
    pub notify_webhook_url: Option<String>,

    /// Shared secret of the webhook's HMAC-SHA256 signature (header
    /// `X-Autonomous-Dev-Signature: sha256=<hex>`).
    #[arg(long, env, hide_env_values = true, value_parser = secret, requires = "notify_webhook_url")]
    pub notify_webhook_secret: Option<SecretString>,

    /// Slack incoming webhook URL that gets every notification (the URL is a credential)
    /// [default: none].
    #[arg(long, env, hide_env_values = true, value_parser = secret_url)]
    pub slack_webhook_url: Option<SecretString>,

    /// Telegram bot token; notifications go to TELEGRAM_CHAT_ID through the Bot API's
    /// sendMessage [default: none].
    #[arg(long, env, hide_env_values = true, value_parser = secret, requires = "telegram_chat_id")]
    pub telegram_bot_token: Option<SecretString>,

    /// Telegram chat (id or `@channel`) notifications go to.
    #[arg(long, env, requires = "telegram_bot_token")]
    pub telegram_chat_id: Option<String>,

    /// Telegram Bot API base URL.
    #[arg(long, env, default_value = "https://api.telegram.org", value_parser = url)]
    pub telegram_api_url: String,

    /// UTC time (HH:MM) of the daily report sent to the notification sinks: tasks by status,
    /// PRs opened and merged, spend, the slowest and the costliest task [default: none].
    #[arg(long, env, value_parser = utc_time)]
    pub daily_report_at: Option<chrono::NaiveTime>,

    /// Reviewers requested on every PR the daemon opens, comma-separated: logins, and teams of
    /// the repository's organisation as `org/team` [default: none].
    #[arg(long, env, value_delimiter = ',', value_parser = reviewer)]
    pub reviewers: Vec<String>,

    /// Seconds between two deliveries of the notification outbox.
    #[arg(long, env, default_value = "10", value_parser = seconds)]
    pub notify_poll_seconds: Duration,

    /// Process pending tasks until none is left, then exit 0.
    #[arg(long)]
    pub once: bool,

    /// Run every stage and commit the branch in REPO_PATH's repository, but push nothing and
    /// open no PR; the PR that would have been opened is stored with the task.
    #[arg(long)]
    pub dry_run: bool,
}

/// Verification in the sandbox, the repair loop and the deterministic gates.
#[derive(Debug, Clone, Args)]
pub struct Checks {
    /// Run the repository's checks on every change in a bubblewrap sandbox before the votes; the
    /// daemon refuses to start when bubblewrap is missing. `false` records every change as "not
    /// verified" (never as passed).
    #[arg(long, env, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub verify: bool,
    /// Publish approved changes that were not verified (VERIFY=false, or a base branch with no
    /// check command); by default such an approval is held as needs_review, since the votes
    /// then rest on no evidence.
    #[arg(long, env, default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub verify_optional: bool,
    /// The repository's check command, run with `sh -c` in the worktree (e.g. `cargo test`)
    /// [default: the repository's `.autonomous-dev.toml` `verify`, else detected from the base
    /// branch's Cargo.toml, go.mod, package.json, pyproject.toml/setup.cfg or Makefile `test`
    /// target, never from the change].
    #[arg(long, env)]
    pub verify_command: Option<String>,
    /// The trusted setup, run with `sh -c` once per base commit on the base alone, in the
    /// sandbox with network (e.g. `go mod download`); its tree is kept and every check runs
    /// offline on a copy [default: the repository's `setup`, else, with a detected check, the
    /// detected setup: `cargo fetch`, `go mod download`, `npm ci`, a venv with pip].
    #[arg(long, env)]
    pub setup_command: Option<String>,
    /// Run a setup before a base's first check (SETUP_COMMAND, the repository's, or the
    /// detected one); `false`: none, every check runs on the bare base offline.
    #[arg(long, env, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub setup: bool,
    /// Wall-clock seconds the check (or the setup) may run; then its whole process tree is
    /// killed [default: the repository's `verify_timeout`, else 600].
    #[arg(long, env, value_parser = seconds)]
    pub verify_timeout: Option<Duration>,
    /// Where prepared base trees are kept [default: systemd's CACHE_DIRECTORY, else
    /// $XDG_CACHE_HOME or ~/.cache, + `/autonomous-dev`].
    #[arg(long, env)]
    pub verify_cache_dir: Option<std::path::PathBuf>,
    /// Most the prepared base trees may take together, in MiB; beyond it the least recently
    /// used are removed.
    #[arg(long, env, default_value = "10240", value_parser = clap::value_parser!(u64).range(1..))]
    pub verify_cache_mb: u64,
    /// Address space of each process of the check command (RLIMIT_AS, shared mappings
    /// included), in MiB; where systemd runs, also the whole run's memory (tmpfs included).
    #[arg(long, env, default_value = "4096", value_parser = clap::value_parser!(u64).range(64..))]
    pub verify_memory_mb: u64,
    /// Processes and threads the check may have at once (RLIMIT_NPROC: counted per user, so
    /// with a root daemon all of VERIFY_USER's processes on the host share it).
    #[arg(long, env, default_value = "512", value_parser = clap::value_parser!(u32).range(16..))]
    pub verify_processes: u32,
    /// Most the worktree may take, checkout included, and the largest file the check may
    /// write, in MiB; a run whose worktree outgrows it is stopped and fails.
    #[arg(long, env, default_value = "4096", value_parser = clap::value_parser!(u64).range(16..))]
    pub verify_disk_mb: u64,
    /// Size of the sandbox's private `/tmp`, and of its `/dev/shm`, in MiB each (memory-backed).
    #[arg(long, env, default_value = "1024", value_parser = clap::value_parser!(u64).range(16..))]
    pub verify_tmp_mb: u64,
    /// The user a daemon running as root runs the check as (a name or uid, never root); a
    /// daemon running as another user runs it as itself. Best a dedicated user: the process
    /// bound counts all of its processes.
    #[arg(long, env, default_value = "nobody")]
    pub verify_user: String,
    /// Engineer answers after a failed verification or edits that do not apply.
    #[arg(long, env, default_value = "2", value_parser = clap::value_parser!(u32).range(0..=10))]
    pub repair_rounds: u32,
    /// Largest file a change may write, in bytes.
    #[arg(long, env, default_value = "1048576", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_file_bytes: u64,
    /// Most files one change may write.
    #[arg(long, env, default_value = "50", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_files_changed: u64,
    /// Let an approved change to CI workflows be published (it is still labelled
    /// security-review); otherwise such a change goes to needs_review.
    #[arg(long, env, default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_workflow_changes: bool,
}

/// What LLM calls may cost, and how they are made cheaper.
#[derive(Debug, Clone, Args)]
pub struct Costs {
    /// Most USD one task may spend on LLM calls (checked before each call against its worst
    /// case); the task fails with "budget exceeded" rather than go over.
    #[arg(long, env, default_value = "2.00", value_parser = usd)]
    pub max_task_cost_usd: f64,
    /// Most USD all tasks may spend per UTC day; then claiming pauses until midnight UTC
    /// [default: no daily cap].
    #[arg(long, env, value_parser = usd)]
    pub daily_budget_usd: Option<f64>,
    /// Prices of models missing from the built-in (Anthropic) table, or overrides, in USD per
    /// million tokens: `model=input/output/cache_write/cache_read,…` (e.g. a local model:
    /// `smollm2=0/0/0/0`). Every model in use must have a price.
    #[arg(long, env)]
    pub model_prices: Option<String>,
    /// Mark the prompt prefix the roles share with Anthropic `cache_control` breakpoints.
    #[arg(long, env, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub prompt_caching: bool,
}

/// Which wire format a role's model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Anthropic's Messages API (ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY).
    Anthropic,
    /// An OpenAI-compatible Chat Completions API (OPENAI_BASE_URL, OPENAI_API_KEY).
    Openai,
}

/// The provider of each role: LLM_PROVIDER for all, PROVIDER_<ROLE> to override one.
#[derive(Debug, Clone, Args)]
pub struct Providers {
    /// Provider of every role without its own PROVIDER_<ROLE>.
    #[arg(long, env, value_enum, default_value = "anthropic")]
    pub llm_provider: ProviderKind,
    /// Provider of the PM role.
    #[arg(long, env, value_enum)]
    pub provider_pm: Option<ProviderKind>,
    /// Provider of the Architect role.
    #[arg(long, env, value_enum)]
    pub provider_architect: Option<ProviderKind>,
    /// Provider of the Engineer role.
    #[arg(long, env, value_enum)]
    pub provider_engineer: Option<ProviderKind>,
    /// Provider of the QA role.
    #[arg(long, env, value_enum)]
    pub provider_qa: Option<ProviderKind>,
    /// Provider of the Security role.
    #[arg(long, env, value_enum)]
    pub provider_security: Option<ProviderKind>,
}

impl Providers {
    /// The provider configured for `stage`.
    pub fn for_stage(&self, stage: Stage) -> ProviderKind {
        let own = match stage {
            Stage::Pm => self.provider_pm,
            Stage::Architect => self.provider_architect,
            Stage::Engineer => self.provider_engineer,
            Stage::Qa => self.provider_qa,
            Stage::Security => self.provider_security,
        };
        own.unwrap_or(self.llm_provider)
    }
}

/// The model of each role (by default Opus for the Architect, Sonnet for the others).
#[derive(Debug, Clone, Args)]
pub struct Models {
    /// Model of the PM role.
    #[arg(long, env, default_value = "claude-sonnet-4-5")]
    pub model_pm: String,
    /// Model of the Architect role.
    #[arg(long, env, default_value = "claude-opus-4-5")]
    pub model_architect: String,
    /// Model of the Engineer role.
    #[arg(long, env, default_value = "claude-sonnet-4-5")]
    pub model_engineer: String,
    /// Model of the QA role.
    #[arg(long, env, default_value = "claude-sonnet-4-5")]
    pub model_qa: String,
    /// Model of the Security role.
    #[arg(long, env, default_value = "claude-sonnet-4-5")]
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

/// PUSH_REPOSITORY as given: `owner/name`, or a clone URL whose path ends in `owner/name`.
/// [`PushRepository::resolve`] turns it into the [`Fork`] the daemon pushes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRepository {
    /// `owner/name` of the fork.
    repository: String,
    /// The clone URL when one was given; `None`: derived from GITHUB_API_URL.
    url: Option<String>,
}

/// The fork task branches are pushed to (PUSH_REPOSITORY, resolved at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// `owner/name` of the fork on the target's GitHub host; the PR head is
    /// `<owner>:<branch>`.
    pub repository: String,
    /// The fork's clone URL: `https://`, or `http://` to a loopback host; no user-info.
    pub url: String,
}

impl PushRepository {
    /// The fork for target repository `target` (`owner/name`) on the GitHub host of
    /// `github_api_url` (GITHUB_API_URL, already checked by the settings): the URL given, or
    /// the clone URL derived by [`crate::git::clone_url`].
    ///
    /// Errors (one line naming PUSH_REPOSITORY): the fork is `target` itself (compared as
    /// GitHub does, ignoring ASCII case: a fork's PRs must come from another repository), or
    /// no clone URL can be derived from `github_api_url`.
    pub fn resolve(&self, github_api_url: &str, target: &str) -> Result<Fork, String> {
        if self.repository.eq_ignore_ascii_case(target) {
            return Err(format!(
                "PUSH_REPOSITORY names the target repository {target} itself: set it to a fork \
                 (or leave it unset to push to origin)"
            ));
        }
        let url = match &self.url {
            Some(url) => url.clone(),
            None => crate::git::clone_url(github_api_url, &self.repository).ok_or_else(|| {
                "PUSH_REPOSITORY: cannot derive the fork's clone URL from GITHUB_API_URL; give \
                 the full https:// URL"
                    .to_string()
            })?,
        };
        Ok(Fork {
            repository: self.repository.clone(),
            url,
        })
    }
}

/// Parses PUSH_REPOSITORY with [`push_repository`] into an error that names the setting but not
/// the value: a refused URL may carry a token in its user-info, and clap's own message would
/// print it.
#[derive(Debug, Clone, Copy)]
struct PushRepositoryParser;

impl clap::builder::TypedValueParser for PushRepositoryParser {
    type Value = PushRepository;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PushRepository, clap::Error> {
        let refused = |reason: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid PUSH_REPOSITORY (--push-repository): {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refused("not UTF-8"))?;
        push_repository(text).map_err(|reason| refused(&reason))
    }
}

/// PUSH_REPOSITORY: `owner/name`, or an `https://` (loopback-only `http://`) URL without
/// user-info whose path is `/owner/name` or `/owner/name.git` (the owner namespaces the PR
/// head). The token is sent to this URL, hence the rules of [`url`].
fn push_repository(value: &str) -> Result<PushRepository, String> {
    if !value.contains("://") {
        let repository = repository(value)
            .map_err(|_| "expected owner/name or an https:// URL of the fork".to_string())?;
        return Ok(PushRepository {
            repository,
            url: None,
        });
    }
    let url = url(value)?;
    let repository = crate::git::parse_github_repository(&url).ok_or_else(|| {
        "the URL's path must be /owner/name(.git) of the fork (its owner namespaces the PR head)"
            .to_string()
    })?;
    Ok(PushRepository {
        repository,
        url: Some(url),
    })
}

/// ISSUES_LABEL: a GitHub label name (1–50 characters, no control characters).
fn issues_label(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 50 || value.chars().any(char::is_control) {
        return Err("expected a label name of 1 to 50 characters".into());
    }
    Ok(value.to_owned())
}

/// One REVIEWERS entry: a GitHub login, or `org/team` (letters, digits, `-`, `_`, `.`).
fn reviewer(value: &str) -> Result<String, String> {
    let value = value.trim();
    crate::task::check_reviewer(value)
        .map(|()| value.to_owned())
        .map_err(|_| "expected logins or org/team, comma-separated".into())
}

/// DAILY_REPORT_AT: `HH:MM`, UTC.
fn utc_time(value: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(value.trim(), "%H:%M")
        .map_err(|_| "expected a UTC time as HH:MM, e.g. 08:30".into())
}

/// A URL that is itself a credential (SLACK_WEBHOOK_URL): checked as [`url`], kept secret.
fn secret_url(value: &str) -> Result<SecretString, String> {
    url(value).map(SecretString::from)
}

fn secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

fn repository(value: &str) -> Result<String, String> {
    match value.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(value.to_owned())
        }
        _ => Err("expected owner/name".into()),
    }
}

/// An API base URL, which carries a key or token: `https://`, or `http://` only to a loopback
/// host (127.0.0.0/8, `::1`, `localhost`; local proxies and test servers), and never with
/// user-info. The host is the one the url crate (which reqwest connects with) parses, so
/// `http://127.0.0.1.example.com` and `http://127.0.0.1@evil.com` are not loopback.
fn url(value: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (user:password@)".into());
    }
    match parsed.scheme() {
        "https" => {}
        "http" if crate::net::is_loopback(&parsed) => {}
        "http" => {
            return Err(
                "http:// would send the key in clear text: use https:// (plain http \
                        only to 127.0.0.1, ::1 or localhost)"
                    .into(),
            );
        }
        _ => return Err("expected an http:// or https:// URL".into()),
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err("expected a whole number of seconds, at least 1".into()),
    }
}

/// REVISION_TRIGGER: 2 to 100 characters, no whitespace (a word someone types in a comment).
fn trigger_text(value: &str) -> Result<String, String> {
    let ok = (2..=100).contains(&value.chars().count()) && !value.chars().any(char::is_whitespace);
    if ok {
        Ok(value.to_owned())
    } else {
        Err("expected 2 to 100 characters without spaces, e.g. /autonomous-dev".into())
    }
}

/// One IGNORED_CHECKS entry: a non-blank name of at most 200 characters, trimmed.
fn check_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() || name.chars().count() > 200 {
        Err("expected check names of 1 to 200 characters, comma-separated".into())
    } else {
        Ok(name.to_owned())
    }
}

fn usd(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err("expected an amount in USD greater than 0, e.g. 2.00".into()),
    }
}

fn percent(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(n) if (0.0..=100.0).contains(&n) => Ok(n),
        _ => Err("expected a number from 0 to 100".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(value: &str, api: &str, target: &str) -> Result<Fork, String> {
        push_repository(value)?.resolve(api, target)
    }

    #[test]
    fn push_repository_is_a_fork_on_the_same_host() {
        let fork = |url: &str| Fork {
            repository: "bot/r".into(),
            url: url.into(),
        };
        assert_eq!(
            resolved("bot/r", "https://api.github.com", "o/r"),
            Ok(fork("https://github.com/bot/r.git"))
        );
        assert_eq!(
            resolved("bot/r", "https://ghe.example.com/api/v3", "o/r"),
            Ok(fork("https://ghe.example.com/bot/r.git"))
        );
        assert_eq!(
            resolved("bot/r", "http://127.0.0.1:8080", "o/r"),
            Ok(fork("http://127.0.0.1:8080/bot/r.git"))
        );
        assert_eq!(
            resolved(
                "https://git.example.com/bot/r.git",
                "https://api.github.com",
                "o/r"
            ),
            Ok(fork("https://git.example.com/bot/r.git"))
        );
        assert_eq!(
            resolved("http://localhost:9/bot/r", "https://api.github.com", "o/r"),
            Ok(fork("http://localhost:9/bot/r"))
        );
    }

    #[test]
    fn push_repository_refuses_the_target_credentials_and_cleartext() {
        let api = "https://api.github.com";
        for target in ["o/r", "O/R"] {
            for value in [
                "o/r",
                "https://github.com/o/r.git",
                "https://github.com/O/r",
            ] {
                let err = resolved(value, api, target).expect_err(value);
                assert!(
                    err.contains("names the target repository"),
                    "{value}: {err}"
                );
            }
        }
        for value in [
            "https://x-access-token:ghp_x@github.com/bot/r.git",
            "https://bot@github.com/bot/r.git",
        ] {
            let err = push_repository(value).expect_err(value);
            assert!(err.contains("must not carry credentials"), "{value}: {err}");
            assert!(!err.contains("ghp_x"), "{err}");
        }
        for value in [
            "http://github.com/bot/r.git",
            "http://127.0.0.1.example.com/bot/r.git",
            "http://localhost.evil.com/bot/r.git",
        ] {
            let err = push_repository(value).expect_err(value);
            assert!(err.contains("clear text"), "{value}: {err}");
        }
        for value in [
            "bot",
            "bot/r/x",
            "https://github.com/bot",
            "ssh://git@github.com/bot/r",
        ] {
            assert!(push_repository(value).is_err(), "{value}");
        }
    }

    #[test]
    fn api_urls_refuse_cleartext_except_loopback() {
        for ok in [
            "https://api.github.com",
            "https://example.com/api/v3",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:9000/",
            "http://localhost:11434",
        ] {
            assert!(url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://127.0.0.1.example.com",
            "http://localhost.evil.com",
            "http://127.0.0.1@evil.com",
            "https://user:pw@api.github.com",
            "http://[::ffff:8.8.8.8]",
            "ftp://127.0.0.1",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }
}
