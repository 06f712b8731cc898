//! Cost benchmark: tokens and USD per task of the Phase 1 backlog (tasks/phase1.json), with and
//! without prompt caching. Run with `cargo bench --bench cost` (needs DATABASE_URL).
//!
//! The product runs every task: the real [`Pipeline`] (the one the daemon's workers run) over a
//! real [`Store`] on a throwaway PostgreSQL database, the real `llm::Anthropic` client, the real
//! cost guard and spend ledger, a real git repository (a clone of a local bare origin holding the
//! target repository) read through [`GitRepository`] and published by the real [`Publisher`] in
//! dry-run mode (a local commit, no push, no PR). What is scripted:
//!
//! - the model: a local fake of `POST /v1/messages` (wiremock, loopback only) answering each
//!   tool call with the answer in `benches/fixtures/cost/<task_id>/<role>.json` — deterministic,
//!   valid for the role's `Validate`, sized like a real answer for that role and task — and
//!   billing `usage` the way Anthropic's prompt caching does ([`FakeMessages`]);
//! - the check command, through the pipeline's [`Verifying`] seam ([`ScriptedCheck`]): `go
//!   test ./...` output from `verify.json`, failed while the worktree lacks the fix named there
//!   (the repair answer's first edit), so the Engineer of every third task fails verification
//!   once and is repaired on the same conversation, as the pipeline does.
//!
//! The target repository is `benches/fixtures/cost/repo.json` (path → content): a Go operator
//! as `kubebuilder` lays it out. The backlog runs three times, each against a fresh fake (empty
//! cache), a fresh database (created from DATABASE_URL's server and dropped afterwards) and a
//! fresh clone: prompt caching on, off, and on with the cache emptied at every new task (see
//! [`CacheRule`]). Token and USD totals are read back from the store's ledger
//! (`Store::stage_costs`) and checked against what the fake billed. Prints the assumptions and
//! Markdown tables on stdout.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it only prints how to run it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use autonomous_dev::agents::{
    Architect, Engineer, EngineerEvidence, Pm, Qa, QaOutput, Role, Security, Validate,
};
use autonomous_dev::consensus::Thresholds;
use autonomous_dev::cost::PriceTable;
use autonomous_dev::gates::GateConfig;
use autonomous_dev::llm::{Anthropic, Provider, RetryPolicy as LlmRetryPolicy};
use autonomous_dev::pipeline::{
    Budget, Ended, GitRepository, Pipeline, PipelineSettings, Publisher, PublisherConfig,
    RetryPolicy, RoleModel, Roles, Snapshot, Verifying,
};
use autonomous_dev::repo_config::RepoConfig;
use autonomous_dev::shutdown::Shutdown;
use autonomous_dev::store::{StageCost, Store, parse_task_file};
use autonomous_dev::task::{FileChange, NewTask, Stage, TaskStatus, Usage};
use autonomous_dev::verify::{CheckPlan, Prepared, Verification, VerifyError, VerifyStatus};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The backlog measured.
const BACKLOG: &str = include_str!("../tasks/phase1.json");
/// The scripted answers, checks and target repository.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/fixtures/cost");

/// Token estimate: one token per 4 bytes (rounded up per block) of the JSON-serialized tool
/// definitions, system blocks and message blocks, and of the serialized tool input answered.
/// About right for English prose and code; JSON escapes (`\n`, `\"`) count as the bytes they are.
const BYTES_PER_TOKEN: usize = 4;
/// The system prompt Anthropic adds when tools are offered: 313 tokens with `tool_choice` of
/// type `tool` or `any` for the Claude 4 models (pricing page, "Tool use pricing"; the same
/// figure `src/cost.rs` allows for). It sits between the system prompt and the messages: a
/// `tool_choice` change leaves the tools and system caches valid but not the messages cache
/// (Anthropic's "what invalidates the cache" table), so it is keyed by `tool_choice`.
const TOOL_USE_SYSTEM_PROMPT_TOKENS: u64 = 313;
/// A breakpoint looks for cache hits at the block boundaries up to 20 blocks before it, itself
/// included: the prompt-caching documentation's lookback window, which lets a request read a
/// prefix an earlier request wrote at a boundary where this one has no breakpoint.
const LOOKBACK_BLOCKS: usize = 20;
/// Breakpoints one request may carry (Anthropic refuses more).
const MAX_BREAKPOINTS: usize = 4;
/// Minimum cacheable prompt length in tokens: a breakpoint whose prefix is shorter is not
/// cached (the request still succeeds). From Anthropic's prompt-caching documentation, "Cache
/// limitations" (platform.claude.com/docs/en/build-with-claude/prompt-caching, as quoted in
/// anthropics/anthropic-sdk-python#1194): 4096 for Claude Opus 4.6 and 4.5 and Haiku 4.5, 1024
/// for Sonnet 4.5, Opus 4.1/4 and Sonnet 4/3.7, 2048 for Haiku 3.5 and 3. Other models: 1024.
const MIN_CACHEABLE: &[(&str, u64)] = &[
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-5", 1024),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
];
/// The default models (MODEL_PM, MODEL_ENGINEER, MODEL_QA and MODEL_SECURITY; MODEL_ARCHITECT).
const SONNET: &str = "claude-sonnet-4-5";
const OPUS: &str = "claude-opus-4-5";
/// REPAIR_ROUNDS default.
const REPAIR_ROUNDS: u32 = 2;
/// MAX_TASK_COST_USD default: the cost guard's cap per task.
const MAX_TASK_USD: f64 = 2.0;
/// The branch the target repository's base is on (BASE_BRANCH).
const BASE_BRANCH: &str = "main";

/// Lease of each claim: longer than any task takes here (no heartbeat runs).
const LEASE: Duration = Duration::from_secs(3600);

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without it
    // (only to check they start): measure only when asked.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("cost benchmark: run it with `cargo bench --bench cost` (needs DATABASE_URL)");
        return Ok(());
    }
    let server = std::env::var("DATABASE_URL")
        .map(SecretString::from)
        .context(
            "DATABASE_URL must name a PostgreSQL server: the bench creates and drops its own \
         databases there",
        )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&server))
}

// ---------------------------------------------------------------------------------------------
// The runs and the report
// ---------------------------------------------------------------------------------------------

/// One pass over the backlog.
struct RunResult {
    ledger: Ledger,
    fake: FakeState,
    /// How each task ended, in backlog order.
    ended: Vec<(String, TaskStatus)>,
}

async fn run(server: &SecretString) -> Result<()> {
    self_check()?;
    let backlog = Backlog::load()?;
    let origin = Origin::new(&backlog.repo)?;

    let shared = CacheRule { per_task: false };
    let cached = run_backlog(&backlog, &origin, server, "cached", true, shared).await?;
    let uncached = run_backlog(&backlog, &origin, server, "uncached", false, shared).await?;
    let per_task = CacheRule { per_task: true };
    let per_task = run_backlog(&backlog, &origin, server, "per_task", true, per_task).await?;

    for result in [&cached, &uncached, &per_task] {
        result.check()?;
    }
    // Same answers whatever the caching; nothing cached when it is off.
    let (c, u) = (cached.ledger.total(), uncached.ledger.total());
    ensure!(
        c.output == u.output && u.write + u.read == 0,
        "caching changed the answers, or the uncached run used the cache: {c:?} vs {u:?}"
    );

    report(&backlog, &cached, &uncached, &per_task);
    Ok(())
}

/// Runs every task of the backlog, in file order, through the real pipeline against a fresh
/// fake (`Anthropic::new(…, caching)`), a fresh database `autonomous_dev_cost_<run>_<pid>` on
/// `server` and a fresh clone of `origin`. The database is dropped afterwards, also on error.
async fn run_backlog(
    backlog: &Backlog,
    origin: &Origin,
    server: &SecretString,
    run: &str,
    caching: bool,
    rule: CacheRule,
) -> Result<RunResult> {
    let fake = FakeMessages::new(rule, backlog);
    let state = fake.state.clone();
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(fake)
        .mount(&model)
        .await;
    let retry = LlmRetryPolicy {
        max_retries: 0,
        ..LlmRetryPolicy::default()
    };
    let provider: Arc<dyn Provider> = Arc::new(Anthropic::new(
        &model.uri(),
        SecretString::from("bench-key-not-a-secret"),
        retry,
        caching,
    ));
    let roles = Roles::new(|stage| RoleModel {
        provider: Arc::clone(&provider),
        model: model_of(stage).to_owned(),
    });
    let clone = PublisherConfig {
        repo_path: origin.clone_for(run)?,
        base_branch: BASE_BRANCH.into(),
        token: None,
        push_url: None,
        head_repository: None,
    };
    let edges = Edges {
        roles,
        repository: Arc::new(GitRepository::new(clone.clone())),
        publisher: Arc::new(Publisher::new(clone, None)),
    };

    let name = format!("autonomous_dev_cost_{run}_{}", std::process::id());
    let database = Database::create(server, &name).await?;
    let result = run_tasks(backlog, &database.store, &edges).await;
    database.drop().await?;
    let (ledger, ended) = result.with_context(|| format!("the {run} run"))?;
    let fake = std::mem::take(&mut *state.lock().unwrap());
    Ok(RunResult {
        ledger,
        fake,
        ended,
    })
}

/// What every task's pipeline shares: the roles (one provider), the clone's reads and the
/// dry-run publisher.
struct Edges {
    roles: Roles,
    repository: Arc<GitRepository>,
    publisher: Arc<Publisher>,
}

/// Adds, claims and runs each task in turn (one claimable task at a time, so that they run in
/// file order whatever their priorities), then reads its spend from the ledger.
async fn run_tasks(
    backlog: &Backlog,
    store: &Store,
    edges: &Edges,
) -> Result<(Ledger, Vec<(String, TaskStatus)>)> {
    let shutdown = Shutdown::new(Duration::ZERO);
    let mut ledger = Ledger::default();
    let mut ended = Vec::new();
    for scripted in &backlog.tasks {
        let id = scripted.task.task_id.as_str();
        store.add_task(&scripted.task).await?;
        let (task, lease) = store
            .claim_next("cost-bench", LEASE)
            .await?
            .with_context(|| format!("{id} is not claimable"))?;
        ensure!(
            task.task_id == id,
            "claimed {} instead of {id}",
            task.task_id
        );
        let end = pipeline(store, edges, &scripted.check)
            .run(&task, &lease, &shutdown)
            .await
            .with_context(|| format!("{id}: the pipeline stopped"))?;
        let done = store.get_task(id).await?.context("the task vanished")?;
        let Ended::Finished(status @ (TaskStatus::Completed | TaskStatus::NeedsReview)) = end
        else {
            anyhow::bail!("{id} ended {end:?}: {}", done.error.unwrap_or_default());
        };
        let rounds = engineer_rounds(store, task.id).await?;
        ensure!(
            rounds == 1 + usize::from(scripted.repairs()),
            "{id}: the Engineer answered {rounds} time(s); the script repairs {}",
            usize::from(scripted.repairs())
        );
        let costs = store.stage_costs(task.id).await?;
        ledger.add(id, &costs);
        eprintln!(
            "cost: {id}: {status:?} (consensus {:.2}), {} calls, {:.4} USD",
            done.consensus_score.unwrap_or_default(),
            costs.iter().map(|c| c.calls).sum::<i64>(),
            costs.iter().map(|c| c.cost_usd).sum::<f64>()
        );
        ended.push((id.to_owned(), status));
    }
    Ok((ledger, ended))
}

/// The pipeline the daemon would build from the default settings, over these edges, with the
/// task's scripted check as its verification.
fn pipeline(store: &Store, edges: &Edges, check: &Check) -> Pipeline {
    Pipeline::new(
        Arc::new(store.clone()),
        edges.roles.clone(),
        edges.repository.clone(),
        edges.publisher.clone(),
        PipelineSettings {
            // CONSENSUS_THRESHOLD and CONDITIONAL_THRESHOLD defaults.
            thresholds: Thresholds {
                approve: 80.0,
                conditional: 60.0,
            },
            retry: RetryPolicy::default(),
            budget: Budget {
                prices: PriceTable::anthropic(),
                max_task_usd: MAX_TASK_USD,
                daily_usd: None,
            },
            // MAX_FILE_BYTES, MAX_FILES_CHANGED, ALLOW_WORKFLOW_CHANGES defaults.
            gates: GateConfig {
                max_file_bytes: 1024 * 1024,
                max_files_changed: 50,
                allow_workflow_changes: false,
                own_secrets: Default::default(),
            },
            verifier: Some(Arc::new(ScriptedCheck(check.clone()))),
            verify_optional: false,
            repair_rounds: REPAIR_ROUNDS,
            // REPO_MAP_TOKENS default.
            repo_map_tokens: 4096,
            // MAX_LOOKUPS default.
            max_lookups: 8,
        },
    )
}

/// How many answers the Engineer's recorded evidence holds.
async fn engineer_rounds(store: &Store, task: i32) -> Result<usize> {
    let record = store
        .stages(task)
        .await?
        .into_iter()
        .find(|r| r.stage == Stage::Engineer)
        .context("no Engineer record")?;
    let evidence: EngineerEvidence =
        serde_json::from_value(record.evidence.context("no Engineer evidence")?)?;
    Ok(evidence.rounds.len())
}

impl RunResult {
    /// The ledger holds exactly what the fake billed.
    fn check(&self) -> Result<()> {
        let mut billed = Tokens::default();
        for call in &self.fake.calls {
            billed.add(&call.usage);
        }
        let metered = self.ledger.total();
        ensure!(
            billed == metered.tokens() && metered.calls == self.fake.calls.len() as u64,
            "the ledger ({metered:?}) disagrees with the fake's bills ({} calls, {billed:?})",
            self.fake.calls.len()
        );
        Ok(())
    }
}

fn report(backlog: &Backlog, cached: &RunResult, uncached: &RunResult, per_task: &RunResult) {
    let n = backlog.tasks.len() as f64;
    let sent = |r: &RunResult| r.fake.sent.iter().cloned().collect::<Vec<_>>().join("; ");
    let prefix = |r: &RunResult| {
        let p = r.fake.prefix.unwrap_or_default();
        format!(
            "tools {} + system {} + tool-use prompt {TOOL_USE_SYSTEM_PROMPT_TOKENS} = {} tokens",
            p.tools,
            p.system,
            p.tools + p.system + TOOL_USE_SYSTEM_PROMPT_TOKENS
        )
    };
    println!(
        "## Cost benchmark: Phase 1 backlog ({} tasks)\n",
        backlog.tasks.len()
    );
    println!("Assumptions:\n");
    println!(
        "- tokens ≈ bytes / {BYTES_PER_TOKEN} (rounded up per block) of the JSON-serialized tool \
         definitions, system blocks and message blocks; output tokens = serialized tool input / \
         {BYTES_PER_TOKEN}; plus {TOOL_USE_SYSTEM_PROMPT_TOKENS} tokens of Anthropic's tool-use \
         system prompt per request"
    );
    println!(
        "- requests as the client sent them — caching on: {}; caching off: {}",
        sent(cached),
        sent(uncached)
    );
    println!(
        "- prefix shared by every request — caching on: {}; caching off: {}",
        prefix(cached),
        prefix(uncached)
    );
    println!(
        "- minimum cacheable prompt: {SONNET} {} tokens (PM, Engineer, QA, Security), {OPUS} {} \
         tokens (Architect); lookback {LOOKBACK_BLOCKS} blocks; at most {MAX_BREAKPOINTS} \
         breakpoints; cache per model",
        min_cacheable(SONNET),
        min_cacheable(OPUS)
    );
    println!(
        "- cache order tools → system → messages; a different `tool_choice` misses the messages \
         cache but not the tools and system caches"
    );
    println!(
        "- the 5-minute lifetime never lapses in the first two runs (the bench runs in seconds); \
         the third empties the cache at every new task"
    );
    println!(
        "- prices: `PriceTable::anthropic()` (USD per Mtok input / cache write / cache read / \
         output: Sonnet 4.5 3 / 3.75 / 0.30 / 15, Opus 4.5 5 / 6.25 / 0.50 / 25)"
    );
    let repaired: Vec<&str> = backlog
        .tasks
        .iter()
        .filter(|s| s.repairs())
        .map(|s| s.task.task_id.as_str())
        .collect();
    println!(
        "- one Engineer repair round (failed `go test` output, ≈2 KB, sent back) for {}",
        repaired.join(", ")
    );
    let ended = |status: TaskStatus| cached.ended.iter().filter(|(_, s)| *s == status).count();
    println!(
        "- every task runs through the real pipeline to its end: {} completed (dry run: the \
         branch committed in the clone, no push), {} needs_review (consensus or a hold)\n",
        ended(TaskStatus::Completed),
        ended(TaskStatus::NeedsReview)
    );

    println!(
        "### Per task (tokens of the caching run; without caching every prompt token is input)\n"
    );
    println!(
        "| task | calls | input | cache write | cache read | output | USD cached | input, uncached | USD uncached | saved |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let row = |label: &str, c: &Totals, u: &Totals| {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {:.4} | {} | {:.4} | {} |",
            c.calls,
            thousands(c.input),
            thousands(c.write),
            thousands(c.read),
            thousands(c.output),
            c.usd,
            thousands(u.input),
            u.usd,
            percent(1.0 - c.usd / u.usd)
        );
    };
    for scripted in &backlog.tasks {
        let id = &scripted.task.task_id;
        row(id, &cached.ledger.task(id), &uncached.ledger.task(id));
    }
    let c = cached.ledger.total();
    let u = uncached.ledger.total();
    row("**total**", &c, &u);
    println!(
        "| mean per task | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.4} | {:.0} | {:.4} | |\n",
        c.calls as f64 / n,
        c.input as f64 / n,
        c.write as f64 / n,
        c.read as f64 / n,
        c.output as f64 / n,
        c.usd / n,
        u.input as f64 / n,
        u.usd / n
    );

    println!("### Per role (whole backlog)\n");
    println!(
        "| role | model | calls | corrective retries | input | cache write | cache read | output | USD cached | input, uncached | USD uncached |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for stage in Stage::ALL {
        let c = cached.ledger.stage(stage);
        let u = uncached.ledger.stage(stage);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {:.4} |",
            stage.role_name(),
            model_of(stage),
            c.calls,
            c.corrections,
            thousands(c.input),
            thousands(c.write),
            thousands(c.read),
            thousands(c.output),
            c.usd,
            thousands(u.input),
            u.usd
        );
    }
    println!();

    let p = per_task.ledger.total();
    println!("### Summary\n");
    println!("| run | USD / task | total USD | cache-read share of input tokens |");
    println!("|---|---:|---:|---:|");
    println!(
        "| caching on (`PROMPT_CACHING=true`) | {:.4} | {:.4} | {} |",
        c.usd / n,
        c.usd,
        percent(c.read_share())
    );
    println!(
        "| caching off (`PROMPT_CACHING=false`) | {:.4} | {:.4} | {} |",
        u.usd / n,
        u.usd,
        percent(u.read_share())
    );
    println!(
        "| caching on, cache emptied at every new task | {:.4} | {:.4} | {} |",
        p.usd / n,
        p.usd,
        percent(p.read_share())
    );
    println!();
    let reads = cached
        .fake
        .calls
        .iter()
        .filter(|b| b.usage.cache_read_input_tokens > 0)
        .count();
    println!(
        "Caching on: {reads} of {} requests read from the cache; {} tokens written to it, {} \
         read from it; output {} tokens ({:.4} USD, {} of the cached run's cost).",
        cached.fake.calls.len(),
        thousands(c.write),
        thousands(c.read),
        thousands(c.output),
        output_usd(cached),
        percent(output_usd(cached) / c.usd)
    );
}

/// What the output tokens of a run cost.
fn output_usd(run: &RunResult) -> f64 {
    let prices = PriceTable::anthropic();
    Stage::ALL
        .into_iter()
        .map(|stage| {
            let output = run.ledger.stage(stage).output as f64;
            prices
                .get(model_of(stage))
                .map_or(0.0, |p| p.output * output / 1e6)
        })
        .sum()
}

fn model_of(stage: Stage) -> &'static str {
    match stage {
        Stage::Architect => OPUS,
        _ => SONNET,
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1} %", x * 100.0)
    } else {
        "–".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger: what the store recorded, summed
// ---------------------------------------------------------------------------------------------

/// Token counts summed in u64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tokens {
    input: u64,
    write: u64,
    read: u64,
    output: u64,
}

impl Tokens {
    fn add(&mut self, usage: &Usage) {
        self.input += u64::from(usage.input_tokens);
        self.write += u64::from(usage.cache_creation_input_tokens);
        self.read += u64::from(usage.cache_read_input_tokens);
        self.output += u64::from(usage.output_tokens);
    }
}

/// What one task, one role or the whole run spent.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    calls: u64,
    /// Corrective retries among `calls` (answers that did not validate, sent back).
    corrections: u64,
    input: u64,
    write: u64,
    read: u64,
    output: u64,
    usd: f64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.calls += other.calls;
        self.corrections += other.corrections;
        self.input += other.input;
        self.write += other.write;
        self.read += other.read;
        self.output += other.output;
        self.usd += other.usd;
    }

    /// Every prompt token, however billed.
    fn prompt(&self) -> u64 {
        self.input + self.write + self.read
    }

    /// cache_read / (input + cache_write + cache_read).
    fn read_share(&self) -> f64 {
        self.read as f64 / self.prompt() as f64
    }

    fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input,
            write: self.write,
            read: self.read,
            output: self.output,
        }
    }
}

/// Spend per (task, stage), as the store's ledger recorded it.
#[derive(Default)]
struct Ledger {
    rows: BTreeMap<(String, Stage), Totals>,
}

impl Ledger {
    /// Adds task `task`'s costs per stage (`Store::stage_costs`).
    fn add(&mut self, task: &str, costs: &[StageCost]) {
        for cost in costs {
            let mut tokens = Tokens::default();
            tokens.add(&cost.usage);
            let row = Totals {
                calls: cost.calls as u64,
                corrections: cost.corrections as u64,
                input: tokens.input,
                write: tokens.write,
                read: tokens.read,
                output: tokens.output,
                usd: cost.cost_usd,
            };
            self.rows
                .entry((task.to_owned(), cost.stage))
                .or_default()
                .add(&row);
        }
    }

    fn sum(&self, keep: impl Fn(&str, Stage) -> bool) -> Totals {
        let mut totals = Totals::default();
        for ((task, stage), row) in &self.rows {
            if keep(task, *stage) {
                totals.add(row);
            }
        }
        totals
    }

    fn task(&self, id: &str) -> Totals {
        self.sum(|task, _| task == id)
    }

    fn stage(&self, stage: Stage) -> Totals {
        self.sum(|_, s| s == stage)
    }

    fn total(&self) -> Totals {
        self.sum(|_, _| true)
    }
}

// ---------------------------------------------------------------------------------------------
// The fake Messages API
// ---------------------------------------------------------------------------------------------

/// How long the fake's cache keeps what was written.
#[derive(Debug, Clone, Copy)]
struct CacheRule {
    /// False: the whole run (every reuse within the 5-minute lifetime). True: emptied when a
    /// request of another task arrives — the bound where tasks are more than 5 minutes apart
    /// and nothing is reused across tasks.
    per_task: bool,
}

/// `POST /v1/messages` answering as Anthropic documents: a `tool_use` of the forced tool (with
/// `tool_choice: {"type": "any"}`, of the tool the instructions name) with the scripted input,
/// and `usage` from the request body as prompt caching bills it:
///
/// - the prompt is the blocks tools → system → (tool-use system prompt) → messages, each
///   costing [`tokens`] of its JSON (with `cache_control` removed: it is not prompt text); the
///   tool-use system prompt is keyed by `tool_choice`, so that a different `tool_choice` misses
///   the messages cache but not the tools and system caches (Anthropic's "what invalidates the
///   cache" table: tool choice ✓ tools, ✓ system, ✘ messages);
/// - a block with `cache_control` is a breakpoint; its prefix (every block up to it, and the
///   model) is written to the cache the first time it is seen when it reaches the model's
///   minimum length ([`MIN_CACHEABLE`]);
/// - each breakpoint looks back [`LOOKBACK_BLOCKS`] block boundaries for a prefix written
///   before; tokens up to the longest hit are `cache_read_input_tokens`, from there to the last
///   breakpoint written now `cache_creation_input_tokens`, the rest `input_tokens`;
/// - no `cache_control` at all: every token is `input_tokens`.
///
/// Written prefixes live for the whole run (the 5-minute lifetime never lapses in seconds).
struct FakeMessages {
    rule: CacheRule,
    /// (task_id, forced tool, round: assistant turns already in the conversation) → tool input.
    answers: Arc<HashMap<(String, String, usize), Value>>,
    state: Arc<Mutex<FakeState>>,
}

#[derive(Debug, Default)]
struct FakeState {
    /// Written prefixes: (model, hash of the prefix).
    written: HashSet<(String, u64)>,
    calls: Vec<Billed>,
    /// Tokens of the tools and of the system prompt, as last seen.
    prefix: Option<PrefixSizes>,
    /// What the requests offered: `tool_choice` type and tool count, e.g. "any, 5 tools".
    sent: std::collections::BTreeSet<String>,
    /// The task of the last request (for [`CacheRule::per_task`]).
    task: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct PrefixSizes {
    tools: u64,
    system: u64,
}

#[derive(Debug)]
struct Billed {
    usage: Usage,
}

/// One block of the prompt: its tokens, the hash of the prefix ending with it, and whether it
/// carries `cache_control`.
struct Block {
    tokens: u64,
    prefix_hash: u64,
    breakpoint: bool,
}

/// An error answer: HTTP status, error type, message.
type Refusal = (u16, &'static str, String);

impl FakeMessages {
    fn new(rule: CacheRule, backlog: &Backlog) -> FakeMessages {
        let mut answers = HashMap::new();
        for scripted in &backlog.tasks {
            for ((tool, round), input) in &scripted.answers {
                let key = (scripted.task.task_id.clone(), (*tool).to_owned(), *round);
                answers.insert(key, input.clone());
            }
        }
        FakeMessages {
            rule,
            answers: Arc::new(answers),
            state: Arc::default(),
        }
    }

    fn answer(&self, request: &Request) -> Result<Value, Refusal> {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        if header("x-api-key").is_none_or(str::is_empty) {
            return Err((
                401,
                "authentication_error",
                "x-api-key header is required".into(),
            ));
        }
        if header("anthropic-version") != Some("2023-06-01") {
            return Err((400, "invalid_request_error", "anthropic-version".into()));
        }
        let invalid = |m: String| (400, "invalid_request_error", m);
        let body: Value =
            serde_json::from_slice(&request.body).map_err(|e| invalid(e.to_string()))?;
        let model = body["model"]
            .as_str()
            .ok_or_else(|| invalid("model".into()))?;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let choice = &body["tool_choice"];
        let kind = choice["type"].as_str().unwrap_or("auto");
        let tool = match kind {
            "tool" => choice["name"].as_str().map(str::to_owned),
            // The model chooses among the tools: it calls the one its instructions name.
            "any" => messages
                .first()
                .and_then(|m| asked_tool(&m["content"].to_string())),
            _ => None,
        }
        .ok_or_else(|| invalid(format!("tool_choice {choice} makes no tool call certain")))?;
        let tool = tool.as_str();
        let tools = body["tools"].as_array().cloned().unwrap_or_default();
        if !tools.iter().any(|t| t["name"] == tool) {
            return Err(invalid(format!("{tool} is not among the tools offered")));
        }
        let task_id = messages
            .first()
            .map(|m| m["content"].to_string())
            .and_then(|text| task_id_in(&text))
            .ok_or_else(|| invalid("no <task id=…> in the first message".into()))?;
        let round = messages.iter().filter(|m| m["role"] == "assistant").count();
        let input = self
            .answers
            .get(&(task_id.clone(), tool.to_owned(), round))
            .cloned()
            .ok_or_else(|| {
                // A second round of another role is a corrective retry: its answer did not
                // validate.
                invalid(format!(
                    "no scripted answer for {task_id} {tool} round {round}"
                ))
            })?;

        let (blocks, sizes) = self.blocks(&body)?;
        let breakpoints = blocks.iter().filter(|b| b.breakpoint).count();
        if breakpoints > MAX_BREAKPOINTS {
            return Err(invalid(format!(
                "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. \
                 Found {breakpoints}."
            )));
        }
        let output_tokens = tokens(input.to_string().len());
        let max_tokens = body["max_tokens"].as_u64().unwrap_or(0);
        let mut state = self.state.lock().unwrap();
        state.prefix = Some(sizes);
        let sent = format!("`tool_choice` {kind}, {} tool(s) offered", tools.len());
        state.sent.insert(sent);
        if self.rule.per_task && state.task.as_deref() != Some(task_id.as_str()) {
            state.written.clear();
        }
        state.task = Some(task_id.clone());
        let mut usage = bill(&blocks, model, &mut state.written);
        if output_tokens > max_tokens {
            // What the API does: the answer is cut, no complete tool call.
            usage.output_tokens = max_tokens as u32;
            state.calls.push(Billed { usage });
            return Ok(message(model, vec![], "max_tokens", usage));
        }
        usage.output_tokens = output_tokens as u32;
        state.calls.push(Billed { usage });
        let n = state.calls.len();
        let content = vec![json!({
            "type": "tool_use",
            "id": format!("toolu_bench{n:05}"),
            "name": tool,
            "input": input
        })];
        Ok(message(model, content, "tool_use", usage))
    }

    /// The prompt as blocks in cache order.
    fn blocks(&self, body: &Value) -> Result<(Vec<Block>, PrefixSizes), Refusal> {
        let mut blocks = Vec::new();
        let mut hash = FNV_OFFSET;
        let mut push = |key: &[u8], tokens: u64, breakpoint: bool| {
            hash = fnv(hash, key);
            blocks.push(Block {
                tokens,
                prefix_hash: hash,
                breakpoint,
            });
        };
        let mut sizes = PrefixSizes::default();
        for tool in body["tools"].as_array().into_iter().flatten() {
            let (text, breakpoint) = strip_cache_control(tool);
            sizes.tools += tokens(text.len());
            push(text.as_bytes(), tokens(text.len()), breakpoint);
        }
        let system: Vec<Value> = match &body["system"] {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks.clone(),
            _ => Vec::new(),
        };
        for block in &system {
            let (text, breakpoint) = strip_cache_control(block);
            sizes.system += tokens(text.len());
            push(text.as_bytes(), tokens(text.len()), breakpoint);
        }
        let tool_use_prompt = body["tool_choice"].to_string();
        push(
            tool_use_prompt.as_bytes(),
            TOOL_USE_SYSTEM_PROMPT_TOKENS,
            false,
        );
        for turn in body["messages"].as_array().into_iter().flatten() {
            let role = turn["role"].as_str().unwrap_or("");
            let content: Vec<Value> = match &turn["content"] {
                Value::String(text) => vec![json!({"type": "text", "text": text})],
                Value::Array(blocks) => blocks.clone(),
                _ => Vec::new(),
            };
            for block in &content {
                let (text, breakpoint) = strip_cache_control(block);
                let key = format!("{role}\n{text}");
                push(key.as_bytes(), tokens(text.len()), breakpoint);
            }
        }
        Ok((blocks, sizes))
    }
}

impl Respond for FakeMessages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match self.answer(request) {
            Ok(body) => ResponseTemplate::new(200).set_body_json(body),
            Err((status, kind, message)) => ResponseTemplate::new(status).set_body_json(json!({
                "type": "error",
                "error": {"type": kind, "message": message}
            })),
        }
    }
}

/// The billing rule on a small prompt: written once, then read, lookback, minimum length.
fn self_check() -> Result<()> {
    let prompt = |keys: &[(&str, u64, bool)]| -> Vec<Block> {
        let mut hash = FNV_OFFSET;
        keys.iter()
            .map(|(key, tokens, breakpoint)| {
                hash = fnv(hash, key.as_bytes());
                Block {
                    tokens: *tokens,
                    prefix_hash: hash,
                    breakpoint: *breakpoint,
                }
            })
            .collect()
    };
    let usage = |input, write, read| Usage {
        input_tokens: input,
        output_tokens: 0,
        cache_creation_input_tokens: write,
        cache_read_input_tokens: read,
    };
    let mut written = HashSet::new();
    let first = prompt(&[
        ("tools", 900, false),
        ("system", 300, true),
        ("task", 500, true),
        ("a", 50, false),
    ]);
    ensure!(
        bill(&first, SONNET, &mut written) == usage(50, 1700, 0),
        "first write"
    );
    ensure!(
        bill(&first, SONNET, &mut written) == usage(50, 0, 1700),
        "read"
    );
    // Another model has its own cache; Opus needs 4096 tokens: nothing written.
    ensure!(
        bill(&first, OPUS, &mut written) == usage(1750, 0, 0),
        "per model, minimum"
    );
    // A longer conversation whose only breakpoint is its last block reads the earlier prefix
    // through the lookback and writes the rest.
    let longer = prompt(&[
        ("tools", 900, false),
        ("system", 300, false),
        ("task", 500, false),
        ("a", 50, false),
        ("b", 70, true),
    ]);
    ensure!(
        bill(&longer, SONNET, &mut written) == usage(0, 120, 1700),
        "lookback"
    );
    // Without breakpoints everything is input.
    let plain = prompt(&[("tools", 900, false), ("system", 300, false)]);
    ensure!(
        bill(&plain, SONNET, &mut written) == usage(1200, 0, 0),
        "no cache_control"
    );
    Ok(())
}

/// Bills a prompt against the cache of `model` and writes the new breakpoints' prefixes.
fn bill(blocks: &[Block], model: &str, written: &mut HashSet<(String, u64)>) -> Usage {
    let ends: Vec<u64> = blocks
        .iter()
        .scan(0, |sum, b| {
            *sum += b.tokens;
            Some(*sum)
        })
        .collect();
    let total = ends.last().copied().unwrap_or(0);
    let breakpoints: Vec<usize> = (0..blocks.len())
        .filter(|&i| blocks[i].breakpoint)
        .collect();
    let key = |i: usize| (model.to_owned(), blocks[i].prefix_hash);
    // The longest prefix already cached, within each breakpoint's lookback.
    let mut hit: Option<usize> = None;
    for &b in &breakpoints {
        let from = (b + 1).saturating_sub(LOOKBACK_BLOCKS);
        if let Some(i) = (from..=b).rev().find(|&i| written.contains(&key(i))) {
            hit = hit.max(Some(i));
        }
    }
    // Breakpoints long enough and not cached yet are written.
    let mut last_write: Option<usize> = None;
    for &b in &breakpoints {
        if ends[b] >= min_cacheable(model) && written.insert(key(b)) {
            last_write = Some(b);
        }
    }
    let read = hit.map_or(0, |i| ends[i]);
    let write_end = match last_write {
        Some(w) if hit.is_none_or(|h| w > h) => ends[w],
        _ => read,
    };
    Usage {
        input_tokens: (total - write_end) as u32,
        output_tokens: 0,
        cache_creation_input_tokens: (write_end - read) as u32,
        cache_read_input_tokens: read as u32,
    }
}

fn message(model: &str, content: Vec<Value>, stop_reason: &str, usage: Usage) -> Value {
    json!({
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "output_tokens": usage.output_tokens
        }
    })
}

/// The block's JSON without `cache_control`, and whether it had one.
fn strip_cache_control(block: &Value) -> (String, bool) {
    let mut block = block.clone();
    let breakpoint = block
        .as_object_mut()
        .and_then(|o| o.remove("cache_control"))
        .is_some();
    (block.to_string(), breakpoint)
}

fn tokens(bytes: usize) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN) as u64
}

fn min_cacheable(model: &str) -> u64 {
    MIN_CACHEABLE
        .iter()
        .find(|(name, _)| model.starts_with(name))
        .map_or(1024, |(_, min)| *min)
}

/// The tool named by "Give your answer by calling the `…` tool." in a JSON-escaped text.
fn asked_tool(text: &str) -> Option<String> {
    let start = text.find("by calling the `")? + "by calling the `".len();
    let end = text[start..].find('`')?;
    Some(text[start..start + end].to_owned())
}

/// The `id` attribute of the first `<task id="…">` in a JSON-escaped text.
fn task_id_in(text: &str) -> Option<String> {
    let start = text.find("<task id=\\\"")? + "<task id=\\\"".len();
    let end = text[start..].find("\\\"")?;
    Some(text[start..start + end].to_owned())
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `hash`: stable across runs and Rust versions.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

// ---------------------------------------------------------------------------------------------
// The fixtures: scripted answers and checks, the target repository
// ---------------------------------------------------------------------------------------------

/// The backlog with what is scripted for it, and the target repository.
struct Backlog {
    tasks: Vec<Scripted>,
    /// `repo.json`: path → content of every file on the base branch.
    repo: BTreeMap<String, String>,
}

/// One task of the backlog and its fixtures (`benches/fixtures/cost/<task_id>/`).
struct Scripted {
    task: NewTask,
    /// (forced tool, round: assistant turns already in the conversation) → tool input.
    answers: Vec<((&'static str, usize), Value)>,
    check: Check,
}

impl Backlog {
    fn load() -> Result<Backlog> {
        let dir = Path::new(FIXTURES);
        let tasks = parse_task_file(BACKLOG).map_err(|e| anyhow!("tasks/phase1.json: {e}"))?;
        Ok(Backlog {
            tasks: tasks
                .into_iter()
                .map(|mut task| {
                    // Run one at a time in file order, which the dependencies follow.
                    task.depends_on.clear();
                    let dir = dir.join(&task.task_id);
                    Scripted::load(task, &dir)
                })
                .collect::<Result<_>>()?,
            repo: read_json(&dir.join("repo.json"))?,
        })
    }
}

impl Scripted {
    /// Reads `<role>.json` for each role, `engineer-repair.json` (the Engineer's second answer)
    /// when `verify.json` has a failing run, and `verify.json`.
    fn load(task: NewTask, dir: &Path) -> Result<Scripted> {
        let mut check: Check = read_json(&dir.join("verify.json"))?;
        let qa = answer::<Qa>(dir, "qa", 0)?;
        check.tests = serde_json::from_value::<QaOutput>(qa.1.clone())?.test_files;
        let mut answers = vec![
            answer::<Pm>(dir, "pm", 0)?,
            answer::<Architect>(dir, "architect", 0)?,
            answer::<Engineer>(dir, "engineer", 0)?,
            qa,
            answer::<Security>(dir, "security", 0)?,
        ];
        if check.failed.is_some() {
            answers.push(answer::<Engineer>(dir, "engineer-repair", 1)?);
        }
        Ok(Scripted {
            task,
            answers,
            check,
        })
    }

    /// True when the Engineer's first answer fails verification and is repaired.
    fn repairs(&self) -> bool {
        self.check.failed.is_some()
    }
}

/// `dir/<name>.json` as role `R`'s answer in `round`, checked by the role's validation.
fn answer<R: Role>(dir: &Path, name: &str, round: usize) -> Result<((&'static str, usize), Value)> {
    let path = dir.join(format!("{name}.json"));
    let output: R::Output = read_json(&path)?;
    output
        .validate()
        .map_err(|e| anyhow!("{}: not a valid {} answer: {e}", path.display(), R::STAGE))?;
    Ok(((R::TOOL_NAME, round), serde_json::to_value(&output)?))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// `verify.json`: what the repository's check (`go test ./...`) prints for the task's change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    command: String,
    /// The Engineer's files pass.
    passed: CheckRun,
    /// The Engineer's files with QA's test files pass (the run before Security).
    passed_with_tests: CheckRun,
    /// The Engineer's first answer fails, until the worktree holds the fix.
    #[serde(default)]
    failed: Option<FailingRun>,
    /// QA's test files (from `qa.json`).
    #[serde(skip)]
    tests: Vec<FileChange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRun {
    duration_ms: u64,
    output: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailingRun {
    duration_ms: u64,
    output: String,
    /// The check fails while file `path` of the worktree does not contain `contains`.
    until: Fix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fix {
    path: String,
    contains: String,
}

/// The task's check behind the pipeline's verification seam. Its result depends on the
/// worktree the pipeline exported (the clone's base with the change applied): failed while it
/// lacks the fix, passed with QA's output once QA's test files are in it, passed otherwise.
struct ScriptedCheck(Check);

#[async_trait::async_trait]
impl Verifying for ScriptedCheck {
    fn plan(&self, _base: &[FileChange], _repo: &RepoConfig) -> Option<CheckPlan> {
        Some(CheckPlan {
            command: self.0.command.clone(),
            timeout: autonomous_dev::verify::DEFAULT_TIMEOUT,
            setup: None,
            writable: Vec::new(),
        })
    }

    async fn prepare(
        &self,
        _plan: &CheckPlan,
        _snapshot: &dyn Snapshot,
    ) -> Result<Prepared, VerifyError> {
        Err(VerifyError::Io(std::io::Error::other(
            "the scripted checks have no setup",
        )))
    }

    async fn verify(
        &self,
        worktree: &Path,
        _plan: &CheckPlan,
        _prepared: Option<&Path>,
    ) -> Result<Verification, VerifyError> {
        let check = &self.0;
        let read = |path: &str| std::fs::read_to_string(worktree.join(path)).ok();
        let ran = |exit_code: i32, duration_ms: u64, output: &str| Verification {
            status: if exit_code == 0 {
                VerifyStatus::Passed
            } else {
                VerifyStatus::Failed
            },
            command: Some(check.command.clone()),
            exit_code: Some(exit_code),
            signal: None,
            environment: None,
            duration_ms,
            output_tail: output.to_owned(),
            reason: None,
            output_withheld: None,
            check_changed: Vec::new(),
        };
        if let Some(failed) = &check.failed
            && !read(&failed.until.path).is_some_and(|c| c.contains(&failed.until.contains))
        {
            return Ok(ran(1, failed.duration_ms, &failed.output));
        }
        let with_tests = !check.tests.is_empty()
            && check
                .tests
                .iter()
                .all(|t| read(&t.path).as_deref() == Some(t.content.as_str()));
        let run = if with_tests {
            &check.passed_with_tests
        } else {
            &check.passed
        };
        Ok(ran(0, run.duration_ms, &run.output))
    }
}

/// A bare `origin` (in a temp dir) with one commit on [`BASE_BRANCH`] holding the target
/// repository, made with the `git` command line.
struct Origin {
    dir: tempfile::TempDir,
    bare: PathBuf,
}

impl Origin {
    fn new(files: &BTreeMap<String, String>) -> Result<Origin> {
        let dir = tempfile::tempdir()?;
        let bare = dir.path().join("origin.git");
        let seed = dir.path().join("seed");
        for (path, content) in files {
            let path = seed.join(path);
            std::fs::create_dir_all(path.parent().context("a path has a parent")?)?;
            std::fs::write(path, content)?;
        }
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", BASE_BRANCH, path_str(&bare)?],
        )?;
        git(&seed, &["init", "-q", "-b", BASE_BRANCH])?;
        git(&seed, &["add", "--all"])?;
        git(&seed, &["commit", "-q", "-m", "kubebuilder scaffold"])?;
        git(&seed, &["push", "-q", path_str(&bare)?, BASE_BRANCH])?;
        Ok(Origin { dir, bare })
    }

    /// A fresh clone of the origin (the daemon's REPO_PATH) for one run.
    fn clone_for(&self, run: &str) -> Result<PathBuf> {
        let clone = self.dir.path().join(format!("clone-{run}"));
        git(
            self.dir.path(),
            &["clone", "-q", path_str(&self.bare)?, path_str(&clone)?],
        )?;
        Ok(clone)
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("a temp path is not UTF-8")
}

/// Runs `git args` in `dir` as a fixed author.
fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "cost bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "cost bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .context("git must be on PATH")?;
    ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A database of the bench's own on DATABASE_URL's server, migrated; [`Database::drop`]
/// removes it.
struct Database {
    url: String,
    store: Store,
}

impl Database {
    /// Creates database `name` (dropping a leftover of that name first) and migrates it.
    /// Errors never show the URL (it may hold a password).
    async fn create(server: &SecretString, name: &str) -> Result<Database> {
        use secrecy::ExposeSecret;
        let mut url = reqwest::Url::parse(server.expose_secret())
            .map_err(|e| anyhow!("DATABASE_URL is not a URL: {e}"))?;
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let database = |e: sqlx::Error| anyhow!("database {name}: {e}");
        if sqlx::Postgres::database_exists(&url)
            .await
            .map_err(database)?
        {
            sqlx::Postgres::force_drop_database(&url)
                .await
                .map_err(database)?;
        }
        sqlx::Postgres::create_database(&url)
            .await
            .map_err(database)?;
        let store = Store::connect(&SecretString::from(url.clone()), 4).await?;
        store.migrate().await?;
        Ok(Database { url, store })
    }

    /// Closes the store and drops the database (its connections terminated).
    async fn drop(self) -> Result<()> {
        drop(self.store);
        sqlx::Postgres::force_drop_database(&self.url)
            .await
            .map_err(|e| anyhow!("dropping the bench's database: {e}"))
    }
}
