//! `autonomous-dev run`: wires the store, the LLM provider, git and GitHub into the pipeline and
//! runs the daemon until SIGTERM/SIGINT (or, with `--once`, until the queue is empty).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use secrecy::SecretString;
use tracing::info;

use crate::config::RunArgs;
use crate::consensus::Thresholds;
use crate::daemon::{Daemon, Shutdown};
use crate::git::{self, Repo};
use crate::github::GitHub;
use crate::llm::{Anthropic, RetryPolicy};
use crate::pipeline::{Pipeline, Publisher, PublisherConfig};
use crate::store::Store;

/// How long a running stage may continue after SIGTERM before its task is released.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Starts the daemon. Configuration problems end it at once with one clear line.
pub async fn run(database_url: &SecretString, args: RunArgs) -> Result<()> {
    anyhow::ensure!(
        args.conditional_threshold <= args.consensus_threshold,
        "CONDITIONAL_THRESHOLD ({}) must not exceed CONSENSUS_THRESHOLD ({})",
        args.conditional_threshold,
        args.consensus_threshold
    );
    let repository = github_repository(&args)?;
    let store = Store::connect(database_url).await?;
    store.migrate().await?;

    let github = GitHub::new(&args.github_api_url, args.github_token.clone(), &repository)?;
    let publisher = Publisher::new(
        PublisherConfig {
            repo_path: args.repo_path.clone(),
            base_branch: args.base_branch.clone(),
            token: Some(args.github_token.clone()),
        },
        github,
    );
    let provider = Anthropic::new(
        &args.anthropic_base_url,
        args.anthropic_api_key.clone(),
        RetryPolicy::default(),
    );
    let thresholds = Thresholds {
        approve: args.consensus_threshold,
        conditional: args.conditional_threshold,
    };
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(provider),
        args.models.clone(),
        thresholds,
        publisher,
    );

    let shutdown = Shutdown::new(SHUTDOWN_GRACE);
    shutdown
        .trigger_on_signals()
        .context("cannot install signal handlers")?;
    info!(
        repository = %repository,
        base = %args.base_branch,
        poll_interval_s = args.poll_interval.as_secs(),
        once = args.once,
        "daemon started"
    );
    Daemon::new(store, pipeline, args.poll_interval, args.once)
        .run(&shutdown)
        .await?;
    info!("daemon stopped");
    Ok(())
}

/// GITHUB_REPOSITORY, else `owner/name` parsed from REPO_PATH's `origin` URL.
fn github_repository(args: &RunArgs) -> Result<String> {
    let repo = Repo::open(&args.repo_path, &args.base_branch, None).with_context(|| {
        format!(
            "REPO_PATH {} is not a usable git repository",
            args.repo_path.display()
        )
    })?;
    if let Some(repository) = &args.github_repository {
        return Ok(repository.clone());
    }
    let url = repo
        .origin_url()
        .context("REPO_PATH has no usable origin remote")?;
    git::parse_github_repository(&url)
        .context("GITHUB_REPOSITORY is not set and cannot be parsed from REPO_PATH's origin URL")
}
