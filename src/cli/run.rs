//! `autonomous-dev run`: wires the store, the LLM provider, git and GitHub into the pipeline and
//! runs the daemon until SIGTERM/SIGINT (or, with `--once`, until the queue is empty).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use secrecy::SecretString;
use tracing::{info, warn};

use crate::config::{ProviderKind, RunArgs};
use crate::consensus::Thresholds;
use crate::cost::PriceTable;
use crate::daemon::{Daemon, DaemonSettings, Shutdown};
use crate::gates::GateConfig;
use crate::git::{self, Repo};
use crate::github::GitHub;
use crate::issues::{IssueSettings, IssueSweep, IssueWatch};
use crate::llm::{self, Anthropic, OpenAi, Provider};
use crate::notify::{Notifier, Sink};
use crate::pipeline::{
    Budget, GitRepository, Pipeline, PipelineSettings, Publisher, PublisherConfig, RetryPolicy,
    RoleModel, Roles, Verifying,
};
use crate::status::{ProcessLive, StatusServer};
use crate::store::EventKind;
use crate::store::Store;
use crate::task::Stage;
use crate::verify::{SetupPolicy, Verifier, VerifyConfig};
use crate::watch::{WatchSettings, Watcher};

/// Starts the daemon. Configuration problems end it at once with one clear line.
pub async fn run(database_url: &SecretString, args: RunArgs) -> Result<()> {
    anyhow::ensure!(
        args.conditional_threshold <= args.consensus_threshold,
        "CONDITIONAL_THRESHOLD ({}) must not exceed CONSENSUS_THRESHOLD ({})",
        args.conditional_threshold,
        args.consensus_threshold
    );
    anyhow::ensure!(
        args.heartbeat_seconds < args.lease_seconds,
        "HEARTBEAT_SECONDS ({}) must be shorter than LEASE_SECONDS ({})",
        args.heartbeat_seconds.as_secs(),
        args.lease_seconds.as_secs()
    );
    if let Some(addr) = args.status_addr {
        crate::status::check_access(addr, args.status_token.as_ref())?;
    }
    let repository = github_repository(&args)?;
    let fork = args
        .push_repository
        .as_ref()
        .map(|push| push.resolve(&args.github_api_url, &repository))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let github = if args.dry_run {
        None
    } else {
        let token = args
            .github_token
            .clone()
            .context("missing setting GITHUB_TOKEN (--github-token; not needed with --dry-run)")?;
        let github = GitHub::new(&args.github_api_url, token, &repository)?;
        Some(Arc::new(match &fork {
            Some(fork) => github.with_head_repository(&fork.repository)?,
            None => github,
        }))
    };
    let clone = PublisherConfig {
        repo_path: args.repo_path.clone(),
        base_branch: args.base_branch.clone(),
        token: args.github_token.clone(),
        push_url: fork.as_ref().map(|fork| fork.url.clone()),
        head_repository: fork.as_ref().map(|fork| fork.repository.clone()),
    };
    let reads = GitRepository::new(clone.clone());
    let publisher = Publisher::new(clone, github.clone()).with_reviewers(args.reviewers.clone());
    let roles = roles(&args)?;
    let budget = budget(&args)?;
    let verifier = verifier(&args, database_url)?;
    let thresholds = Thresholds {
        approve: args.consensus_threshold,
        conditional: args.conditional_threshold,
    };

    let store = Store::connect(database_url, pool_size(args.concurrency)).await?;
    store.migrate().await?;
    let status = match args.status_addr {
        Some(addr) => {
            let server = StatusServer::bind(
                addr,
                args.status_token.clone(),
                store.clone(),
                Arc::new(ProcessLive),
            )
            .await?;
            info!(addr = %server.local_addr()?, "status page served");
            Some(server)
        }
        None => None,
    };
    let retry = RetryPolicy {
        max_attempts: i32::from(args.max_attempts),
        base_delay: args.retry_base_seconds,
        rate_limit_wait: args.rate_limit_wait_seconds,
        ..RetryPolicy::default()
    };
    let gates = GateConfig {
        max_file_bytes: usize::try_from(args.checks.max_file_bytes).unwrap_or(usize::MAX),
        max_files_changed: usize::try_from(args.checks.max_files_changed).unwrap_or(usize::MAX),
        allow_workflow_changes: args.checks.allow_workflow_changes,
        own_secrets: crate::gates::OwnSecrets::new(&own_secrets(&args, database_url)),
    };
    let pipeline = Pipeline::new(
        Arc::new(store.clone()),
        roles,
        Arc::new(reads),
        Arc::new(publisher),
        PipelineSettings {
            thresholds,
            retry,
            budget,
            gates,
            verifier: verifier.map(|v| Arc::new(v) as Arc<dyn Verifying>),
            verify_optional: args.checks.verify_optional,
            repair_rounds: args.checks.repair_rounds,
            repo_map_tokens: args.repo_map_tokens as usize,
            max_lookups: args.max_lookups,
        },
    );

    let shutdown = Shutdown::new(args.shutdown_grace);
    shutdown
        .trigger_on_signals()
        .context("cannot install signal handlers")?;
    info!(
        repository = %repository,
        push_repository = fork.as_ref().map_or("origin", |fork| fork.repository.as_str()),
        base = %args.base_branch,
        poll_interval_s = args.poll_interval.as_secs(),
        once = args.once,
        "daemon started"
    );
    let settings = DaemonSettings {
        poll_interval: args.poll_interval,
        concurrency: usize::from(args.concurrency),
        once: args.once,
        lease: args.lease_seconds,
        heartbeat: args.heartbeat_seconds,
    };
    let issues = match (&github, &args.issues_label) {
        (Some(github), Some(label)) => Some(IssueWatch::new(
            store.clone(),
            github.clone(),
            IssueSettings {
                label: label.clone(),
                default_priority: args.issues_priority,
            },
        )),
        _ => None,
    };
    let notifier = notifier(&args, &store, github.clone())?;
    let watcher = github.map(|github| {
        let settings = WatchSettings {
            every: args.pr_poll_seconds,
            max_per_sweep: args.pr_watch_max,
            max_revisions: args.max_revisions,
            trigger: args.revision_trigger.clone(),
            max_ci_fixes: args.max_ci_fixes,
            ignored_checks: args.ignored_checks.clone(),
        };
        Watcher::new(store.clone(), github, settings)
    });
    let events = store.clone();
    if notifier.is_some() {
        events
            .record_event(EventKind::DaemonStarted, &daemon_name(&args))
            .await?;
    }
    let daemon = Daemon::new(store, Arc::new(pipeline), settings);
    let every = args.pr_poll_seconds;
    let queue = async {
        if let Some(issues) = &issues
            && args.once
        {
            // --once: the labelled issues' tasks are part of the queue it runs.
            if let Err(e) = issues.sweep(true).await {
                warn!(error = %e, "issue watch: cannot read the labelled issues or record their tasks");
            }
        }
        match &watcher {
            // --once: one sweep of the PRs (a merge may free a dependent task), the queue, and
            // a sweep of the PRs it opened.
            Some(watcher) if args.once => {
                watcher.sweep().await?;
                daemon.run(&shutdown).await?;
                watcher.sweep().await?;
            }
            Some(watcher) => {
                let issues = async {
                    if let Some(issues) = &issues {
                        issues.run(every, &shutdown).await;
                    }
                };
                tokio::join!(daemon.run(&shutdown), watcher.run(&shutdown), issues).0?;
            }
            None => daemon.run(&shutdown).await?,
        }
        anyhow::Ok(())
    };
    // Notifications are sent while the queue runs; --once sends what its run caused, at its end.
    let work = async {
        match &notifier {
            Some(notifier) if !args.once => tokio::join!(queue, notifier.run(&shutdown)).0?,
            Some(notifier) => {
                queue.await?;
                notifier.sweep().await?;
            }
            None => queue.await?,
        }
        anyhow::Ok(())
    };
    // The status page is served while the work runs (until shutdown, or the end of --once); a
    // server that fails is logged and the daemon goes on without it.
    let serving = async {
        if let Some(server) = status
            && let Err(error) = server.serve(&shutdown).await
        {
            tracing::error!(%error, "the status page stopped serving");
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        result = work => result?,
        () = serving => {}
    }
    if notifier.is_some() {
        // Delivered by the next sender to run: this one has stopped.
        events
            .record_event(EventKind::DaemonStopped, &daemon_name(&args))
            .await?;
    }
    info!("daemon stopped");
    Ok(())
}

/// `tasks import --github`: one sweep of the issue watch (ISSUES_LABEL) without its ETag, so
/// every open labelled issue is read.
///
/// Errors: a missing setting (ISSUES_LABEL, GITHUB_TOKEN), the database, GitHub.
pub async fn import_issues(database_url: &SecretString, args: RunArgs) -> Result<IssueSweep> {
    let label = args
        .issues_label
        .clone()
        .context("missing setting ISSUES_LABEL (--issues-label): the label to import")?;
    let token = args
        .github_token
        .clone()
        .context("missing setting GITHUB_TOKEN (--github-token)")?;
    let github = GitHub::new(&args.github_api_url, token, &github_repository(&args)?)?;
    let store = Store::connect(database_url, 2).await?;
    store.migrate().await?;
    let settings = IssueSettings {
        label,
        default_priority: args.issues_priority,
    };
    let watch = IssueWatch::new(store, Arc::new(github), settings);
    Ok(watch.sweep(false).await?)
}

/// The daemon as its started/stopped events name it: `host:pid`, and `(--once)`.
fn daemon_name(args: &RunArgs) -> String {
    let worker = crate::store::worker_id(0);
    let process = worker.rsplit_once(':').map_or(worker.as_str(), |(p, _)| p);
    if args.once {
        format!("{process} (--once)")
    } else {
        process.to_owned()
    }
}

/// The notification sender for the sinks configured (NOTIFY_WEBHOOK_URL, SLACK_WEBHOOK_URL,
/// TELEGRAM_BOT_TOKEN, and the issues of tasks born of one whenever `github` is there);
/// `None` when there is none.
fn notifier(
    args: &RunArgs,
    store: &Store,
    github: Option<Arc<GitHub>>,
) -> Result<Option<Notifier>> {
    let mut sinks = Vec::new();
    if let (Some(url), Some(secret)) = (&args.notify_webhook_url, &args.notify_webhook_secret) {
        sinks.push(Sink::Webhook {
            url: url.clone(),
            secret: secret.clone(),
        });
    }
    if let Some(url) = &args.slack_webhook_url {
        sinks.push(Sink::Slack { url: url.clone() });
    }
    if let (Some(token), Some(chat)) = (&args.telegram_bot_token, &args.telegram_chat_id) {
        sinks.push(Sink::Telegram {
            api: args.telegram_api_url.clone(),
            token: token.clone(),
            chat: chat.clone(),
        });
    }
    if let Some(github) = github {
        sinks.push(Sink::Issue { github });
    }
    if sinks.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = sinks.iter().map(Sink::name).collect();
    info!(sinks = ?names, "notifications on");
    let notifier = Notifier::new(
        store.clone(),
        sinks,
        args.notify_poll_seconds,
        args.daily_report_at,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(notifier))
}

/// The provider and model of each role. A provider is built once and shared by its roles; its
/// key is required only when some role uses it.
pub(super) fn roles(args: &RunArgs) -> Result<Roles> {
    let uses = |kind| {
        Stage::ALL
            .iter()
            .any(|s| args.providers.for_stage(*s) == kind)
    };
    let llm_retry = llm::RetryPolicy {
        max_retries: args.llm_max_retries,
        ..llm::RetryPolicy::default()
    };
    let anthropic: Option<Arc<dyn Provider>> = if uses(ProviderKind::Anthropic) {
        let key = args
            .anthropic_api_key
            .clone()
            .context("missing setting ANTHROPIC_API_KEY (a role uses the anthropic provider)")?;
        Some(Arc::new(
            Anthropic::new(
                &args.anthropic_base_url,
                key,
                llm_retry,
                args.costs.prompt_caching,
            )
            .with_strict_tool_use(args.strict_tool_use),
        ))
    } else {
        None
    };
    let openai: Option<Arc<dyn Provider>> = if uses(ProviderKind::Openai) {
        Some(Arc::new(
            OpenAi::new(
                &args.openai_base_url,
                args.openai_api_key.clone(),
                llm_retry,
            )
            .with_constraint(args.strict_tool_use.then_some(args.openai_constraint)),
        ))
    } else {
        None
    };
    let cap = |provider: Option<Arc<dyn Provider>>| -> Option<Arc<dyn Provider>> {
        match args.max_output_tokens {
            Some(max) => provider.map(|p| Arc::new(llm::Capped::new(p, max)) as Arc<dyn Provider>),
            None => provider,
        }
    };
    let (anthropic, openai) = (cap(anthropic), cap(openai));
    Ok(Roles::new(|stage| {
        let provider = match args.providers.for_stage(stage) {
            ProviderKind::Anthropic => anthropic.clone(),
            ProviderKind::Openai => openai.clone(),
        };
        RoleModel {
            provider: provider.expect("built above for every kind in use"),
            model: args.models.for_stage(stage).to_owned(),
        }
    }))
}

/// The budget caps with the price table (built-in, then MODEL_PRICES); every role's model must
/// have a price, so that no call can spend unaccounted.
pub(super) fn budget(args: &RunArgs) -> Result<Budget> {
    let mut prices = PriceTable::anthropic();
    if let Some(spec) = &args.costs.model_prices {
        prices = prices
            .with_overrides(spec)
            .map_err(|e| anyhow::anyhow!("invalid MODEL_PRICES: {e}"))?;
    }
    for stage in Stage::ALL {
        let model = args.models.for_stage(stage);
        anyhow::ensure!(
            prices.get(model).is_some(),
            "no price for model '{model}' ({} role): add it to MODEL_PRICES as \
             '{model}=input/output/cache_write/cache_read' in USD per million tokens",
            stage.role_name()
        );
    }
    Ok(Budget {
        prices,
        max_task_usd: args.costs.max_task_cost_usd,
        daily_usd: args.costs.daily_budget_usd,
    })
}

/// The daemon's own secret values: DATABASE_URL, GITHUB_TOKEN, the API keys, STATUS_TOKEN and
/// the notification sinks' credentials set.
fn own_secrets(args: &RunArgs, database_url: &SecretString) -> Vec<SecretString> {
    [
        Some(database_url),
        args.github_token.as_ref(),
        args.anthropic_api_key.as_ref(),
        args.openai_api_key.as_ref(),
        args.status_token.as_ref(),
        args.notify_webhook_secret.as_ref(),
        args.slack_webhook_url.as_ref(),
        args.telegram_bot_token.as_ref(),
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect()
}

/// The sandbox for verification, proved to work now; `None` with VERIFY=false. Every secret the
/// daemon holds is redacted from verification output.
fn verifier(args: &RunArgs, database_url: &SecretString) -> Result<Option<Verifier>> {
    if !args.checks.verify {
        if args.checks.verify_optional {
            tracing::warn!(
                "VERIFY=false, VERIFY_OPTIONAL=true: changes are published without verification"
            );
        } else {
            tracing::warn!(
                "VERIFY=false: changes are not verified, so every approval is held for review"
            );
        }
        return Ok(None);
    }
    let config = VerifyConfig {
        command: args.checks.verify_command.clone(),
        setup: match (&args.checks.setup_command, args.checks.setup) {
            (_, false) => SetupPolicy::Off,
            (Some(command), true) => SetupPolicy::Command(command.clone()),
            (None, true) => SetupPolicy::Auto,
        },
        timeout: args.checks.verify_timeout,
        cache_dir: cache_dir(args),
        cache_bytes: args.checks.verify_cache_mb.saturating_mul(1024 * 1024),
        memory_bytes: args.checks.verify_memory_mb.saturating_mul(1024 * 1024),
        processes: args.checks.verify_processes,
        disk_bytes: args.checks.verify_disk_mb.saturating_mul(1024 * 1024),
        tmp_bytes: args.checks.verify_tmp_mb.saturating_mul(1024 * 1024),
        user: args.checks.verify_user.clone(),
        hidden: vec![args.repo_path.clone()],
        secrets: own_secrets(args, database_url),
    };
    let verifier = Verifier::new(config).context(
        "cannot verify changes in a sandbox (install Debian's `bubblewrap`, or set VERIFY=false \
         to record every change as not verified and hold every approval for review)",
    )?;
    Ok(Some(verifier))
}

/// VERIFY_CACHE_DIR, else systemd's CACHE_DIRECTORY (the unit's `CacheDirectory=`), else
/// `$XDG_CACHE_HOME/autonomous-dev`, else `~/.cache/autonomous-dev`, else under TMPDIR.
fn cache_dir(args: &RunArgs) -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    args.checks
        .verify_cache_dir
        .clone()
        .or_else(|| var("CACHE_DIRECTORY"))
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("autonomous-dev")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/autonomous-dev")))
        .unwrap_or_else(|| std::env::temp_dir().join("autonomous-dev-cache"))
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

/// Connections the daemon's store pool may open for CONCURRENCY workers: `2 × CONCURRENCY + 2`.
///
/// Each worker runs its task's statements one after another (claim, stage writes, the ledger,
/// the cost guard's reads) on one connection, while its heartbeat renews the lease on a second
/// one at the same time; two more serve the startup migration and any statement outside a
/// worker (the PR watch's), so no renewal ever waits for a connection behind other workers'
/// writes. The LISTEN connection is not taken from this pool (`Store::listener` opens its
/// own), so the daemon opens at most `2 × CONCURRENCY + 3` connections to the server: 5 at
/// CONCURRENCY 1, 131 at CONCURRENCY 64 (beyond PostgreSQL's default `max_connections` of 100,
/// which such a daemon must raise).
fn pool_size(concurrency: u16) -> u32 {
    2 * u32::from(concurrency.max(1)) + 2
}
