//! `autonomous-dev plan "GOAL" [--out FILE [--force]]`: one planner call (the PM's provider and
//! model, [`crate::agents::Planner`]) over the base branch's repository map or listing turns a
//! goal into a task file that has passed `tasks load`'s validation, written to FILE or stdout,
//! with a one-line summary (tasks, calls, tokens, USD) on stderr. Its calls go in the ledger of
//! DATABASE_URL (migrated first, as `run` does) as calls of no task: capped at MAX_TASK_COST_USD
//! together and counted toward the day's DAILY_BUDGET_USD ([`PlanMeter`]).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use secrecy::SecretString;

use super::run;
use crate::agents::{Conversation, Planner, RepoContext, plan_request};
use crate::config::{PlanArgs, RunArgs};
use crate::pipeline::{
    GitRepository, LISTING_MAX_BYTES, PlanMeter, PublisherConfig, Repository, Spent,
};
use crate::task::Stage;

/// Runs `plan` with the ledger at `url`. Errors (nothing written): an empty goal, an existing
/// `--out` without `--force` (before any call), the settings', the database's, the fetch of the
/// base, the provider's, the budget's, or an answer still invalid after its corrective retry.
pub async fn plan(url: &SecretString, args: PlanArgs) -> Result<()> {
    let goal = args.goal.trim();
    anyhow::ensure!(!goal.is_empty(), "the goal must not be empty");
    if let Some(out) = &args.out
        && !args.force
        && out.symlink_metadata().is_ok()
    {
        bail!(
            "{} already exists: nothing planned (--force replaces it)",
            out.display()
        );
    }
    let settings = &args.settings;
    let role = run::roles(settings)?.get(Stage::Pm).clone();
    let store = super::connect(url).await?;
    store.migrate().await?;
    let meter = PlanMeter::new(store, run::budget(settings)?);
    let repo = repo_context(settings, goal).await?;

    let request = plan_request(&role.model, goal, &repo);
    let answer = Conversation::<Planner>::with_request(request)
        .answer(role.provider.as_ref(), &meter)
        .await;
    let spent = summary(&meter.spent());
    let plan = match answer {
        Ok(answer) => answer.output,
        Err(e) => {
            eprintln!("plan: {spent}");
            return Err(e).context("no plan, nothing written");
        }
    };
    let file = plan
        .task_file()
        .context("the plan is not a valid task file, nothing written")?;
    match &args.out {
        Some(out) => write(out, &file, args.force)?,
        None => print!("{file}"),
    }
    let to = args
        .out
        .as_ref()
        .map_or("stdout".to_owned(), |out| out.display().to_string());
    eprintln!("plan: {} tasks written to {to}; {spent}", plan.tasks.len());
    Ok(())
}

/// `N call(s), I input + O output tokens (W cache write, R cache read), $X.XXXX`.
fn summary(spent: &Spent) -> String {
    let usage = spent.usage;
    format!(
        "{} call(s), {} input + {} output tokens ({} cache write, {} cache read), ${:.4}",
        spent.calls,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
        spent.usd
    )
}

/// The base branch as the daemon reads it — fetched from REPO_PATH's origin (BASE_BRANCH,
/// GITHUB_TOKEN) — shown as its repository map ranked for the goal (REPO_MAP_TOKENS), or the
/// bare listing when the map is off or cannot be built.
async fn repo_context(settings: &RunArgs, goal: &str) -> Result<RepoContext> {
    let repository = GitRepository::new(PublisherConfig {
        repo_path: settings.repo_path.clone(),
        base_branch: settings.base_branch.clone(),
        token: settings.github_token.clone(),
        push_url: None,
        head_repository: None,
    });
    let base = repository.snapshot().await.with_context(|| {
        format!(
            "cannot fetch {} of REPO_PATH {}",
            settings.base_branch,
            settings.repo_path.display()
        )
    })?;
    let mut repo = RepoContext {
        listed: true,
        ..RepoContext::default()
    };
    let tokens = settings.repo_map_tokens as usize;
    if tokens > 0 {
        match base.repo_map(goal.to_owned(), tokens).await {
            Ok(Some(rendered)) => {
                repo.show_map(rendered);
                return Ok(repo);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "repository map not built; showing the bare listing")
            }
        }
    }
    let listing = base.listing(LISTING_MAX_BYTES).await?;
    repo.listing = listing.paths;
    repo.truncated = listing.truncated;
    Ok(repo)
}

/// Writes `text` to `out` through a temporary file in its directory, renamed into place: a
/// reader never sees half a file, and without `force` an existing file is never replaced
/// (even one created since the check before the call).
fn write(out: &Path, text: &str, force: bool) -> Result<()> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    let persisted = if force {
        file.persist(out).map(drop)
    } else {
        file.persist_noclobber(out).map(drop)
    };
    persisted.with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
