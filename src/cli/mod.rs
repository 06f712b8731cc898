//! The command line: reads `.env`, parses the settings (see [`crate::config`]), and runs the
//! chosen subcommand. Every error ends the program with one line on stderr.

mod output;
mod plan;
mod run;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use clap::error::ErrorKind;
use secrecy::SecretString;

use crate::config::{BenchCommand, Cli, Command, TasksCommand};
use crate::status::{Overview, StatsView, TaskDetail, TaskPage};
use crate::store::{self, Cancelled, QueueFilter, Store, StoreError};
use crate::task::NewTask;

/// Entry point of the binary: 0 on success, 1 on a failure, 2 on a bad command line or setting.
pub fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            eprintln!("{}", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Folds clap's multi-line messages into their first paragraph on one line (it names the
/// flag and, through its value name, the environment variable).
fn one_line(message: &str) -> String {
    message
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn dispatch(cli: Cli) -> Result<()> {
    // The benchmarks need no database.
    if let Command::Bench(command) = cli.command {
        return bench(command).await;
    }
    let url = cli
        .database_url
        .context("missing setting DATABASE_URL (--database-url)")?;
    match cli.command {
        Command::Migrate => {
            connect(&url).await?.migrate().await?;
            println!("migrations applied");
        }
        Command::Tasks(command) => tasks(&url, command).await?,
        Command::Stats { json: true } => {
            let stats = StatsView::load(&connect(&url).await?).await.map_err(hint)?;
            print_json(&stats)?;
        }
        Command::Stats { json: false } => {
            let store = connect(&url).await?;
            let stats = store.stats().await.map_err(hint)?;
            let roles = store.role_calls().await?;
            let today = store.spend_today().await?;
            let prs = store.pr_counts().await?;
            print!("{}", output::stats(&stats, prs, &roles, today))
        }
        Command::Status { json } => {
            let overview = Overview::load(&connect(&url).await?, None)
                .await
                .map_err(hint)?;
            if json {
                print_json(&overview)?;
            } else {
                print!("{}", output::overview(&overview));
            }
        }
        Command::Run(args) => run::run(&url, *args).await?,
        Command::Plan(args) => plan::plan(&url, *args).await?,
        Command::Bench(_) => unreachable!("dispatched above"),
    }
    Ok(())
}

/// `bench localize`: the repository map's localisation benchmark, printed as Markdown.
async fn bench(command: BenchCommand) -> Result<()> {
    let BenchCommand::Localize {
        repo,
        cases,
        budget,
    } = command;
    let report = tokio::task::spawn_blocking(move || {
        crate::repomap::bench::run(&repo, cases as usize, budget as usize)
    })
    .await
    .context("the benchmark panicked")??;
    print!("{}", report.markdown());
    Ok(())
}

async fn tasks(url: &SecretString, command: TasksCommand) -> Result<()> {
    match command {
        TasksCommand::Load { file, update } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let tasks = store::parse_task_file(&text)
                .with_context(|| format!("{} rejected, nothing written", file.display()))?;
            let report = connect(url)
                .await?
                .load_tasks(&tasks, update)
                .await
                .map_err(hint)?;
            println!(
                "inserted {} / skipped {} / updated {}",
                report.inserted, report.skipped, report.updated
            );
        }
        TasksCommand::Add {
            task_id,
            priority,
            labels,
            reviewers,
            description,
        } => {
            let task = NewTask {
                task_id,
                description,
                priority,
                labels,
                depends_on: Vec::new(),
                reviewers,
            };
            store::validate_new_task(&task)?;
            connect(url).await?.add_task(&task).await.map_err(hint)?;
            println!("added {}", task.task_id);
        }
        TasksCommand::List {
            status,
            label,
            json: true,
        } => {
            let filter = QueueFilter {
                status,
                label,
                ..QueueFilter::default()
            };
            let page = TaskPage::load(&connect(url).await?, &filter)
                .await
                .map_err(hint)?;
            print_json(&page)?;
        }
        TasksCommand::List {
            status,
            label,
            json: false,
        } => {
            let mut tasks = connect(url).await?.list_tasks(status).await.map_err(hint)?;
            if let Some(label) = label {
                tasks.retain(|t| t.labels.contains(&label));
            }
            print!("{}", output::task_table(&tasks));
        }
        TasksCommand::Show {
            task_id,
            json: true,
        } => {
            let store = connect(url).await?;
            let Some(detail) = TaskDetail::load(&store, &task_id).await.map_err(hint)? else {
                bail!("task '{task_id}' not found");
            };
            print_json(&detail)?;
        }
        TasksCommand::Show {
            task_id,
            json: false,
        } => {
            let store = connect(url).await?;
            let Some(task) = store.get_task(&task_id).await.map_err(hint)? else {
                bail!("task '{task_id}' not found");
            };
            let stages = store.stages(task.id).await?;
            let costs = store.stage_costs(task.id).await?;
            let dependencies = store.dependencies(task.id).await?;
            let revisions = store.revisions(task.id).await?;
            print!(
                "{}",
                output::task_detail(&task, &dependencies, &stages, &costs, &revisions)
            );
        }
        TasksCommand::Cancel { task_id } => {
            match connect(url).await?.cancel(&task_id).await.map_err(hint)? {
                Cancelled::Now => println!("cancelled {task_id}"),
                Cancelled::Requested => {
                    println!("{task_id} is running: asked it to stop at its next stage boundary")
                }
                Cancelled::AlreadyFinished(status) => {
                    bail!("task '{task_id}' is already {status}")
                }
            }
        }
        TasksCommand::Retry { task_id, fresh } => {
            connect(url)
                .await?
                .retry(&task_id, fresh)
                .await
                .map_err(hint)?;
            let from = if fresh {
                "from the PM"
            } else {
                "from its last recorded stage"
            };
            println!("{task_id} is pending again and will resume {from}");
        }
        TasksCommand::Approve { task_id, by } => {
            let by = match by.or_else(|| std::env::var("USER").ok()) {
                Some(by) => one_line_text("--by", &by, MAX_APPROVER_CHARS)?,
                None => bail!("say who approves with --by NAME (USER is not set)"),
            };
            connect(url)
                .await?
                .approve(&task_id, &by)
                .await
                .map_err(hint)?;
            println!("{task_id} is approved by {by}: the daemon's next run publishes it");
        }
        TasksCommand::Import { github: _, run } => {
            let sweep = run::import_issues(url, *run).await?;
            println!(
                "created {} / ignored {} (labelled without write permission) / updated {} / cancelled {}",
                sweep.created, sweep.ignored, sweep.updated, sweep.cancelled
            );
        }
        TasksCommand::Reject { task_id, reason } => {
            let reason = one_line_text("--reason", &reason, MAX_REASON_CHARS)?;
            connect(url)
                .await?
                .reject(&task_id, &reason)
                .await
                .map_err(hint)?;
            println!("{task_id} is rejected: failed, nothing published");
        }
    }
    Ok(())
}

/// Prints `value` as pretty JSON and a newline on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Longest `tasks approve --by` name, in characters.
const MAX_APPROVER_CHARS: usize = 100;
/// Longest `tasks reject --reason`, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// `text` trimmed, when it is one line of 1 to `max` characters without control characters;
/// otherwise an error naming `flag`.
fn one_line_text(flag: &str, text: &str, max: usize) -> Result<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        bail!("{flag} takes one line of 1 to {max} characters");
    }
    Ok(text.to_owned())
}

/// Connections a command other than `run` needs: its statements run one after another.
const CLI_CONNECTIONS: u32 = 2;

async fn connect(url: &SecretString) -> Result<Store> {
    Ok(Store::connect(url, CLI_CONNECTIONS).await?)
}

/// SQLSTATEs `undefined_table` and `undefined_column` (PostgreSQL's error codes, appendix A): a
/// statement named a table or column that does not exist.
const UNDEFINED: [&str; 2] = ["42P01", "42703"];

/// Adds a hint to errors caused by a database that was not migrated (a table or column is
/// missing).
fn hint(e: StoreError) -> anyhow::Error {
    let missing_table = matches!(
        &e,
        StoreError::Database(sqlx::Error::Database(db))
            if db.code().is_some_and(|code| UNDEFINED.contains(&code.as_ref()))
    );
    if missing_table {
        anyhow::anyhow!("{e} (run `autonomous-dev migrate` first)")
    } else {
        e.into()
    }
}
