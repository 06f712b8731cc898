//! Cost benchmark: tokens and USD per task of the Phase 1 backlog (tasks/phase1.json), with and
//! without prompt caching. Run with `cargo bench --bench cost`.
//!
//! The product's own code builds and sends every request: the roles run through
//! `agents::ask` / `agents::Conversation` (so `user_parts` lays out the prompt) and the real
//! `llm::Anthropic` client (reqwest) posts it to a local fake of `POST /v1/messages` (wiremock,
//! loopback only). The fake answers each tool call asked for with a scripted answer — deterministic,
//! valid for the role's `Validate`, sized like a real answer for that role and task — and bills
//! `usage` the way Anthropic's prompt caching does ([`FakeMessages`]). The roles run in pipeline
//! order with the context chain filled after each one, as `src/pipeline` does: the repository
//! listing for every role, the current content of the Architect's files for the Engineer, the
//! Engineer's verification for QA and Security, the gates for Security. The Engineer of every
//! third task gets one repair round (the failed test output sent back with
//! `Conversation::reply`). A local `Meter` prices every call with `PriceTable::anthropic()`.
//!
//! The backlog runs three times, each against a fresh fake (empty cache): prompt caching on,
//! off, and on with the cache emptied at every new task (see [`CacheRule`]). No database, no
//! network beyond loopback. Prints the assumptions and Markdown tables on stdout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail, ensure};
use autonomous_dev::agents::{
    self, Architect, ArchitectOutput, Chain, Conversation, Edit, Engineer, EngineerEvidence,
    EngineerOutput, Input, Meter, MeterError, Pm, PmOutput, PmVote, Qa, QaOutput, RepoContext,
    Role, Round, RoundOutcome, Security, SecurityEvidence, SecurityOutput,
};
use autonomous_dev::cost::PriceTable;
use autonomous_dev::gates::{self, Changed, GateConfig};
use autonomous_dev::llm::{Anthropic, Provider, RetryPolicy, ToolRequest};
use autonomous_dev::store::parse_task_file;
use autonomous_dev::task::{FileChange, QueueState, Stage, Task, TaskStatus, Usage};
use autonomous_dev::verify::{Verification, VerifyStatus};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The backlog measured.
const BACKLOG: &str = include_str!("../tasks/phase1.json");

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
/// The default models (config: MODEL_PM, MODEL_ENGINEER, MODEL_QA, MODEL_SECURITY and
/// MODEL_ARCHITECT).
const SONNET: &str = "claude-sonnet-4-5";
const OPUS: &str = "claude-opus-4-5";
/// REPAIR_ROUNDS default: the repair request says "round 1 of 2".
const REPAIR_ROUNDS: u32 = 2;
/// Tasks 2, 5, 8, 11 and 14 (index % 3 == 1): their Engineer's first answer fails verification
/// and is repaired once.
fn repairs(index: usize) -> bool {
    index % 3 == 1
}
/// The Engineer writes at most this many bytes of file content per answer, so that its answer
/// stays within its 16 000-token output budget.
const ENGINEER_CONTENT_CAP: usize = 44_000;
/// Module path of the Go operator the backlog builds.
const MODULE: &str = "github.com/agentic-dev/agentic-k8s-operator";

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without it
    // (only to check they start): measure only when asked.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("cost benchmark: run it with `cargo bench --bench cost`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

// ---------------------------------------------------------------------------------------------
// The runs and the report
// ---------------------------------------------------------------------------------------------

/// One pass over the backlog.
struct RunResult {
    ledger: Ledger,
    fake: FakeState,
}

async fn run() -> Result<()> {
    self_check()?;
    let repo = Repo::new();
    let scripts = backlog_scripts(&repo)?;
    for script in &scripts {
        eprintln!("cost: {}", script.describe(&repo));
    }

    let shared = CacheRule { per_task: false };
    let cached = run_backlog(&scripts, &repo, true, shared).await?;
    let uncached = run_backlog(&scripts, &repo, false, shared).await?;
    let per_task = run_backlog(&scripts, &repo, true, CacheRule { per_task: true }).await?;

    for result in [&cached, &uncached, &per_task] {
        result.check()?;
    }
    // Same answers whatever the caching; nothing cached when it is off.
    let (c, u) = (cached.ledger.total(), uncached.ledger.total());
    ensure!(
        c.output == u.output && u.write + u.read == 0,
        "caching changed the answers, or the uncached run used the cache: {c:?} vs {u:?}"
    );

    report(&scripts, &cached, &uncached, &per_task);
    Ok(())
}

/// Runs every task of the backlog against a fresh fake, with `Anthropic::new(…, caching)`.
async fn run_backlog(
    scripts: &[TaskScript],
    repo: &Repo,
    caching: bool,
    rule: CacheRule,
) -> Result<RunResult> {
    let fake = FakeMessages::new(rule, scripts);
    let state = fake.state.clone();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(fake)
        .mount(&server)
        .await;
    let retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let provider = Anthropic::new(
        &server.uri(),
        SecretString::from("bench-key-not-a-secret"),
        retry,
        caching,
    );
    let ledger = Ledger::new();
    for script in scripts {
        run_task(&provider, script, repo, &ledger)
            .await
            .with_context(|| format!("{} (caching {caching})", script.task.task_id))?;
    }
    let fake = std::mem::take(&mut *state.lock().unwrap());
    Ok(RunResult { ledger, fake })
}

impl RunResult {
    /// The meter saw exactly what the fake billed.
    fn check(&self) -> Result<()> {
        let mut billed = Tokens::default();
        for call in &self.fake.calls {
            billed.add(&call.usage);
        }
        let metered = self.ledger.total();
        ensure!(
            billed == metered.tokens(),
            "the meter ({metered:?}) disagrees with the fake's bills ({billed:?})"
        );
        Ok(())
    }
}

fn report(scripts: &[TaskScript], cached: &RunResult, uncached: &RunResult, per_task: &RunResult) {
    let n = scripts.len() as f64;
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
        scripts.len()
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
    let repaired: Vec<&str> = scripts
        .iter()
        .filter(|s| s.failed_tail.is_some())
        .map(|s| s.task.task_id.as_str())
        .collect();
    println!(
        "- one Engineer repair round (failed `go test` output, ≈2 KB, sent back) for {}\n",
        repaired.join(", ")
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
    for script in scripts {
        let id = &script.task.task_id;
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
        "| role | model | calls | input | cache write | cache read | output | USD cached | input, uncached | USD uncached |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for stage in Stage::ALL {
        let c = cached.ledger.stage(stage);
        let u = uncached.ledger.stage(stage);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {:.4} |",
            stage.role_name(),
            model_of(stage),
            c.calls,
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
// Driving the roles, as src/pipeline does
// ---------------------------------------------------------------------------------------------

/// Runs the five roles of one task in order, filling the chain after each one.
async fn run_task(
    provider: &dyn Provider,
    script: &TaskScript,
    repo: &Repo,
    ledger: &Ledger,
) -> Result<()> {
    let task = &script.task;
    let meter = |stage| StageMeter {
        ledger,
        task: task.task_id.clone(),
        stage,
    };
    let mut chain = Chain::default();
    // prepare_context: the listing is fetched once and shown to every role.
    let mut context = RepoContext {
        listing: repo.listing.clone(),
        truncated: false,
        listed: true,
        files: Vec::new(),
    };

    let pm = agents::ask::<Pm>(
        provider,
        SONNET,
        input(task, &chain, &context),
        &meter(Stage::Pm),
    )
    .await?;
    restore(&mut chain, Stage::Pm, &pm.output)?;
    ensure!(!chain.pm_rejected(), "the PM rejected the task");

    let architect = agents::ask::<Architect>(
        provider,
        OPUS,
        input(task, &chain, &context),
        &meter(Stage::Architect),
    )
    .await?;
    restore(&mut chain, Stage::Architect, &architect.output)?;

    // prepare_context for the Engineer: the current content of the files the Architect named.
    context.files = repo.read_files(&architect.output.files);
    engineer_stage(
        provider,
        script,
        repo,
        &mut chain,
        task,
        &context,
        &meter(Stage::Engineer),
    )
    .await?;

    let qa = agents::ask::<Qa>(
        provider,
        SONNET,
        input(task, &chain, &context),
        &meter(Stage::Qa),
    )
    .await?;
    restore(&mut chain, Stage::Qa, &qa.output)?;

    // The gates over everything to be committed, and its verification (again when QA added
    // tests), are set before Security is asked.
    let files = chain.files_to_write();
    let report = run_gates(repo, &files)?;
    let engineer_files = chain.engineer.as_ref().map_or(0, |e| e.files.len());
    let verification = match &chain.engineer_evidence {
        Some(evidence) if files.len() == engineer_files => evidence.verification.clone(),
        _ => passed(&script.qa_tail, 61_800),
    };
    chain.security_evidence = Some(SecurityEvidence {
        gates: report,
        verification,
    });
    let security = agents::ask::<Security>(
        provider,
        SONNET,
        input(task, &chain, &context),
        &meter(Stage::Security),
    )
    .await?;
    restore(&mut chain, Stage::Security, &security.output)?;
    ensure!(chain.completed() == 5, "not every stage is in the chain");
    Ok(())
}

fn input<'a>(task: &'a Task, chain: &'a Chain, repo: &'a RepoContext) -> Input<'a> {
    Input { task, chain, repo }
}

/// `chain.restore(stage, serde_json::to_value(output))`, as the pipeline does with the record.
fn restore(chain: &mut Chain, stage: Stage, output: &impl serde::Serialize) -> Result<()> {
    chain
        .restore(stage, serde_json::to_value(output)?)
        .map_err(|e| anyhow!("restore {stage}: {e}"))
}

/// The Engineer's stage as `pipeline/evidence.rs` runs it: answer, apply the edits to the files
/// written so far (else the repository's), gates, verification; a failed verification goes back
/// on the same conversation while repair rounds are left. The chain gets the resolved files
/// (edits cleared) and the evidence.
async fn engineer_stage(
    provider: &dyn Provider,
    script: &TaskScript,
    repo: &Repo,
    chain: &mut Chain,
    task: &Task,
    context: &RepoContext,
    meter: &dyn Meter,
) -> Result<()> {
    let mut conversation = Conversation::<Engineer>::new(SONNET, input(task, chain, context));
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let mut rounds = Vec::new();
    for round in 0..=REPAIR_ROUNDS {
        let answer = conversation.answer(provider, meter).await?;
        let mut current = repo.contents(&answer.output.edited_paths());
        current.extend(written.iter().map(|(p, c)| (p.clone(), c.clone())));
        let files = answer.output.resolve(&current).map_err(|reason| {
            anyhow!("round {round}: the scripted edits do not apply: {reason}")
        })?;
        written.extend(files.into_iter().map(|f| (f.path, f.content)));
        let all: Vec<FileChange> = written
            .iter()
            .map(|(path, content)| FileChange {
                path: path.clone(),
                content: content.clone(),
            })
            .collect();
        run_gates(repo, &all)?;
        let verification = match (&script.failed_tail, round) {
            (Some(tail), 0) => failed(tail),
            _ => passed(&script.passed_tail, 48_300),
        };
        rounds.push(Round {
            round,
            outcome: RoundOutcome::Verified {
                verification: verification.clone(),
            },
        });
        if !verification.blocks_approval() || round == REPAIR_ROUNDS {
            let mut output = answer.output;
            output.files = all;
            output.edits.clear();
            restore(chain, Stage::Engineer, &output)?;
            let evidence = EngineerEvidence {
                rounds,
                verification,
            };
            chain
                .restore_evidence(Stage::Engineer, Some(serde_json::to_value(&evidence)?))
                .map_err(|e| anyhow!("restore evidence: {e}"))?;
            return Ok(());
        }
        conversation.reply(agents::repair_request(
            &verification,
            round + 1,
            REPAIR_ROUNDS,
        ));
    }
    unreachable!("the last round always returns")
}

/// The deterministic gates with the default limits; a refusal fails the bench (the scripted
/// answers must be publishable).
fn run_gates(repo: &Repo, files: &[FileChange]) -> Result<gates::GateReport> {
    let changes: Vec<Changed<'_>> = files
        .iter()
        .map(|file| Changed {
            file,
            base: repo.content.get(&file.path).map(String::as_str),
        })
        .collect();
    let config = GateConfig {
        max_file_bytes: 1024 * 1024,
        max_files_changed: 50,
        allow_workflow_changes: false,
        own_secrets: Default::default(),
    };
    let report = gates::check(&changes, &config);
    if let Some(reason) = report.block_reason() {
        bail!("the gates refuse a scripted answer: {reason}");
    }
    Ok(report)
}

fn passed(tail: &str, duration_ms: u64) -> Verification {
    Verification {
        status: VerifyStatus::Passed,
        command: Some("go test ./...".into()),
        exit_code: Some(0),
        signal: None,
        duration_ms,
        output_tail: tail.to_owned(),
        reason: None,
        output_withheld: None,
    }
}

fn failed(tail: &str) -> Verification {
    Verification {
        status: VerifyStatus::Failed,
        command: Some("go test ./...".into()),
        exit_code: Some(1),
        signal: None,
        duration_ms: 52_700,
        output_tail: tail.to_owned(),
        reason: None,
        output_withheld: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The meter: every call priced with PriceTable::anthropic()
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
    input: u64,
    write: u64,
    read: u64,
    output: u64,
    usd: f64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.calls += other.calls;
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

/// Spend per (task, stage).
struct Ledger {
    prices: PriceTable,
    rows: Mutex<BTreeMap<(String, Stage), Totals>>,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            prices: PriceTable::anthropic(),
            rows: Mutex::new(BTreeMap::new()),
        }
    }

    fn sum(&self, keep: impl Fn(&str, Stage) -> bool) -> Totals {
        let mut totals = Totals::default();
        for ((task, stage), row) in self.rows.lock().unwrap().iter() {
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

/// The bench's stand-in for the pipeline's StageMeter: no budget, every call recorded.
struct StageMeter<'a> {
    ledger: &'a Ledger,
    task: String,
    stage: Stage,
}

#[async_trait::async_trait]
impl Meter for StageMeter<'_> {
    async fn before_call(&self, _request: &ToolRequest) -> Result<(), MeterError> {
        Ok(())
    }

    async fn after_call(&self, model: &str, usage: Usage) -> Result<(), MeterError> {
        let prices = self
            .ledger
            .prices
            .get(model)
            .ok_or_else(|| MeterError::Ledger(format!("no price for {model}")))?;
        let mut tokens = Tokens::default();
        tokens.add(&usage);
        let call = Totals {
            calls: 1,
            input: tokens.input,
            write: tokens.write,
            read: tokens.read,
            output: tokens.output,
            usd: prices.cost(&usage),
        };
        self.ledger
            .rows
            .lock()
            .unwrap()
            .entry((self.task.clone(), self.stage))
            .or_default()
            .add(&call);
        Ok(())
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
    fn new(rule: CacheRule, scripts: &[TaskScript]) -> FakeMessages {
        let mut answers = HashMap::new();
        for s in scripts {
            let id = &s.task.task_id;
            let mut put = |tool: &str, round: usize, value: Value| {
                answers.insert((id.clone(), tool.to_owned(), round), value);
            };
            put("submit_prd", 0, to_json(&s.pm));
            put("submit_design", 0, to_json(&s.architect));
            for (round, answer) in s.engineer.iter().enumerate() {
                put("submit_implementation", round, to_json(answer));
            }
            put("submit_review", 0, to_json(&s.qa));
            put("submit_security_review", 0, to_json(&s.security));
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
            .ok_or_else(|| invalid(format!("no scripted answer for {task_id} {tool} {round}")))?;

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

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("outputs serialize")
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
// The repository the backlog works on
// ---------------------------------------------------------------------------------------------

/// A Go operator as `kubebuilder init` and `kubebuilder create api` lay it out, plus the shared
/// contract: 60 tracked files, each with deterministic content.
const LISTING: &[&str] = &[
    ".devcontainer/devcontainer.json",
    ".devcontainer/post-install.sh",
    ".dockerignore",
    ".github/workflows/lint.yml",
    ".github/workflows/test-e2e.yml",
    ".github/workflows/test.yml",
    ".gitignore",
    ".golangci.yml",
    "Dockerfile",
    "Makefile",
    "PROJECT",
    "README.md",
    "api/v1alpha1/agenttask_types.go",
    "api/v1alpha1/groupversion_info.go",
    "api/v1alpha1/zz_generated.deepcopy.go",
    "cmd/main.go",
    "config/crd/bases/agents.agentic.dev_agenttasks.yaml",
    "config/crd/kustomization.yaml",
    "config/crd/kustomizeconfig.yaml",
    "config/default/cert_metrics_manager_patch.yaml",
    "config/default/kustomization.yaml",
    "config/default/manager_metrics_patch.yaml",
    "config/default/metrics_service.yaml",
    "config/manager/kustomization.yaml",
    "config/manager/manager.yaml",
    "config/network-policy/allow-metrics-traffic.yaml",
    "config/network-policy/kustomization.yaml",
    "config/prometheus/kustomization.yaml",
    "config/prometheus/monitor.yaml",
    "config/prometheus/monitor_tls_patch.yaml",
    "config/rbac/agenttask_admin_role.yaml",
    "config/rbac/agenttask_editor_role.yaml",
    "config/rbac/agenttask_viewer_role.yaml",
    "config/rbac/kustomization.yaml",
    "config/rbac/leader_election_role.yaml",
    "config/rbac/leader_election_role_binding.yaml",
    "config/rbac/metrics_auth_role.yaml",
    "config/rbac/metrics_auth_role_binding.yaml",
    "config/rbac/metrics_reader_role.yaml",
    "config/rbac/role.yaml",
    "config/rbac/role_binding.yaml",
    "config/rbac/service_account.yaml",
    "config/samples/agents_v1alpha1_agenttask.yaml",
    "config/samples/kustomization.yaml",
    "go.mod",
    "go.sum",
    "hack/boilerplate.go.txt",
    "internal/agents/types.go",
    "internal/controller/agenttask_controller.go",
    "internal/controller/agenttask_controller_test.go",
    "internal/controller/suite_test.go",
    "test/e2e/e2e_suite_test.go",
    "test/e2e/e2e_test.go",
    "test/utils/utils.go",
    "docs/.gitkeep",
    "hack/tools.go",
    "internal/agents/doc.go",
    "internal/llm/doc.go",
    "internal/store/doc.go",
    "LICENSE",
];

struct Repo {
    listing: Vec<String>,
    content: BTreeMap<String, String>,
}

impl Repo {
    fn new() -> Repo {
        let listing: Vec<String> = LISTING.iter().map(|p| (*p).to_owned()).collect();
        let content = listing
            .iter()
            .map(|path| {
                let mut rng = fastrand::Rng::with_seed(seed(&["repo", path]));
                let size = base_size(path, &mut rng);
                let words = Words::new("the operator scaffold");
                (path.clone(), file_content(path, size, &mut rng, &words))
            })
            .collect();
        Repo { listing, content }
    }

    /// What `Snapshot::read_files` returns: the named files that exist, in the order named.
    fn read_files(&self, named: &[String]) -> Vec<FileChange> {
        named
            .iter()
            .filter_map(|path| {
                self.content.get(path).map(|content| FileChange {
                    path: path.clone(),
                    content: content.clone(),
                })
            })
            .collect()
    }

    fn contents(&self, paths: &[String]) -> BTreeMap<String, String> {
        self.read_files(paths)
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect()
    }
}

/// Size of a scaffolded file, by kind.
fn base_size(path: &str, rng: &mut fastrand::Rng) -> usize {
    match path {
        "cmd/main.go" => 7_400,
        "Makefile" => 6_800,
        "api/v1alpha1/zz_generated.deepcopy.go" => 3_600,
        "config/crd/bases/agents.agentic.dev_agenttasks.yaml" => 4_200,
        "go.sum" => 9_000,
        "README.md" => 3_400,
        "LICENSE" => 11_300,
        "docs/.gitkeep" => 0,
        _ if path.ends_with(".go") => rng.usize(1_200..=3_200),
        _ => rng.usize(300..=1_400),
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted answers
// ---------------------------------------------------------------------------------------------

/// Everything the fake answers for one task, and the verification outputs the bench reports.
struct TaskScript {
    task: Task,
    pm: PmOutput,
    architect: ArchitectOutput,
    /// Round 0, then the repair round when there is one.
    engineer: Vec<EngineerOutput>,
    qa: QaOutput,
    security: SecurityOutput,
    /// The failed test output of the Engineer's first answer (repair tasks only).
    failed_tail: Option<String>,
    passed_tail: String,
    qa_tail: String,
}

fn backlog_scripts(repo: &Repo) -> Result<Vec<TaskScript>> {
    let tasks = parse_task_file(BACKLOG).map_err(|e| anyhow!("tasks/phase1.json: {e}"))?;
    let mut scripts = Vec::new();
    for (index, new) in tasks.into_iter().enumerate() {
        let task = Task {
            id: index as i32 + 1,
            task_id: new.task_id,
            description: new.description,
            status: TaskStatus::InProgress,
            priority: new.priority,
            labels: new.labels,
            attempts: 1,
            created_at: Default::default(),
            updated_at: Default::default(),
            started_at: None,
            completed_at: None,
            pr_url: None,
            consensus_score: None,
            result: None,
            error: None,
            queue: QueueState::default(),
        };
        scripts.push(script(task, repairs(index), repo)?);
    }
    Ok(scripts)
}

impl TaskScript {
    /// One line on the sizes of the scripted answers (progress output).
    fn describe(&self, repo: &Repo) -> String {
        let kb = |n: usize| format!("{:.1} KB", n as f64 / 1024.0);
        let engineer: Vec<String> = self
            .engineer
            .iter()
            .map(|e| {
                let bytes: usize = e.files.iter().map(|f| f.content.len()).sum::<usize>()
                    + e.edits.iter().map(|e| e.replace.len()).sum::<usize>();
                format!(
                    "{} files + {} edits ({})",
                    e.files.len(),
                    e.edits.len(),
                    kb(bytes)
                )
            })
            .collect();
        format!(
            "{}: PRD {} words, {} criteria; design {} words, {} files named ({} existing, shown \
             to the Engineer: {}); Engineer {}; QA review {} words, test file {}; Security {} \
             findings",
            self.task.task_id,
            word_count(&self.pm.prd),
            self.pm.acceptance_criteria.len(),
            word_count(&self.architect.design),
            self.architect.files.len(),
            repo.read_files(&self.architect.files).len(),
            kb(repo
                .read_files(&self.architect.files)
                .iter()
                .map(|f| f.content.len())
                .sum()),
            engineer.join(", then "),
            word_count(&self.qa.review),
            kb(self.qa.test_files.iter().map(|f| f.content.len()).sum()),
            self.security.findings.len()
        )
    }
}

/// The files the Architect names for each task of the backlog (what its description asks for,
/// with the tests and wiring a reviewer would expect).
fn design_files(task_id: &str) -> &'static [&'static str] {
    match task_id {
        "phase1-001" => &[
            "go.mod",
            "PROJECT",
            "Makefile",
            "Dockerfile",
            ".gitignore",
            ".dockerignore",
            "hack/boilerplate.go.txt",
            "cmd/main.go",
            "api/v1alpha1/agenttask_types.go",
            "api/v1alpha1/groupversion_info.go",
            "internal/controller/agenttask_controller.go",
            "internal/controller/agenttask_controller_test.go",
            "config/samples/agents_v1alpha1_agenttask.yaml",
            "internal/agents/types.go",
        ],
        "phase1-002" => &[
            "internal/agents/pm.go",
            "internal/agents/pm_test.go",
            "internal/agents/prompts/pm.md",
            "internal/agents/prompts.go",
            "internal/agents/decode.go",
            "internal/agents/types.go",
            "internal/llm/anthropic.go",
            "internal/llm/anthropic_test.go",
        ],
        "phase1-003" => &[
            "internal/agents/architect.go",
            "internal/agents/architect_test.go",
            "internal/agents/prompts/architect.md",
            "internal/agents/types.go",
        ],
        "phase1-004" => &[
            "internal/agents/engineer.go",
            "internal/agents/engineer_test.go",
            "internal/agents/prompts/engineer.md",
            "internal/agents/files.go",
            "internal/agents/types.go",
        ],
        "phase1-005" => &[
            "internal/agents/qa.go",
            "internal/agents/qa_test.go",
            "internal/agents/prompts/qa.md",
            "internal/agents/files.go",
            "internal/agents/files_test.go",
            "internal/agents/types.go",
        ],
        "phase1-006" => &[
            "internal/agents/security.go",
            "internal/agents/security_test.go",
            "internal/agents/prompts/security.md",
            "internal/agents/types.go",
        ],
        "phase1-007" => &[
            "go.mod",
            "internal/store/store.go",
            "internal/store/migrate.go",
            "internal/store/migrations/0001_init.sql",
            "internal/store/store_test.go",
        ],
        "phase1-008" => &[
            "internal/consensus/consensus.go",
            "internal/consensus/consensus_test.go",
            "internal/agents/types.go",
        ],
        "phase1-009" => &[
            "internal/workflow/graph.go",
            "internal/workflow/pipeline.go",
            "internal/workflow/trace.go",
            "internal/workflow/graph_test.go",
            "internal/workflow/pipeline_test.go",
        ],
        "phase1-010" => &[
            "go.mod",
            "internal/gitops/repo.go",
            "internal/gitops/paths.go",
            "internal/gitops/repo_test.go",
            "internal/github/client.go",
            "internal/github/body.go",
            "internal/github/client_test.go",
        ],
        "phase1-011" => &[
            "cmd/main.go",
            "internal/engine/engine.go",
            "internal/engine/engine_test.go",
            "internal/controller/agenttask_controller.go",
            "internal/store/reset.go",
            "config/rbac/role.yaml",
        ],
        "phase1-012" => &[
            "go.mod",
            "internal/metrics/metrics.go",
            "internal/metrics/metrics_test.go",
            "config/grafana/agentic-operator-dashboard.json",
            "config/grafana/dashboard_test.go",
            "config/default/kustomization.yaml",
            "docs/monitoring.md",
        ],
        "phase1-013" => &[
            "README.md",
            "docs/architecture.md",
            "docs/configuration.md",
            "docs/operations.md",
            "docs/development.md",
        ],
        "phase1-014" => &[
            "internal/agents/agenttest/fake_llm.go",
            "internal/agents/agents_test.go",
            "internal/agents/prompts_test.go",
            "internal/consensus/property_test.go",
            "internal/workflow/trace_test.go",
            "internal/github/body_test.go",
            "internal/gitops/paths_test.go",
            "hack/coverage.sh",
            "Makefile",
        ],
        "phase1-015" => &[
            "test/integration/suite_test.go",
            "test/integration/pipeline_test.go",
            "test/integration/fakes_test.go",
            "Makefile",
            ".github/workflows/ci.yml",
        ],
        _ => &["internal/agents/types.go"],
    }
}

/// The whole script of one task; every answer is checked against its role's validation.
fn script(task: Task, repair: bool, repo: &Repo) -> Result<TaskScript> {
    let id = task.task_id.clone();
    let title = task.title(200);
    let words = Words::new(&title);
    let mut rng = fastrand::Rng::with_seed(seed(&["task", &id]));
    let facts = Facts::of(&task);
    let files: Vec<String> = design_files(&id).iter().map(|p| (*p).to_owned()).collect();

    let pm = pm_answer(&facts, &words, &mut rng);
    let architect = architect_answer(&facts, &files, &words, &mut rng);
    // The Engineer writes as much as the task asks for, within its output budget.
    let mut cap = ENGINEER_CONTENT_CAP;
    let (round0, written) = loop {
        let (answer, written) = engineer_answer(&files, repo, cap, &words, &mut rng)?;
        if fits::<Engineer>(&answer) {
            break (answer, written);
        }
        cap = cap * 9 / 10;
    };
    let mut engineer = vec![round0];
    let failed_tail = if repair {
        engineer.push(repair_answer(&written, &words, &mut rng)?);
        Some(failing_output(&files, &mut rng))
    } else {
        None
    };
    let qa = qa_answer(&facts, &files, &words, &mut rng);
    let security = security_answer(&id, &files, &words, &mut rng);
    let passed_tail = passing_output(&files, &mut rng);
    let qa_tail = passing_output(&files, &mut rng);

    for (stage, problem) in [
        (Stage::Pm, agents::Validate::validate(&pm)),
        (Stage::Architect, agents::Validate::validate(&architect)),
        (Stage::Qa, agents::Validate::validate(&qa)),
        (Stage::Security, agents::Validate::validate(&security)),
    ]
    .into_iter()
    .chain(
        engineer
            .iter()
            .map(|e| (Stage::Engineer, agents::Validate::validate(e))),
    ) {
        problem.map_err(|e| anyhow!("{id}: scripted {stage} answer is invalid: {e}"))?;
    }
    let within = fits::<Pm>(&pm)
        && fits::<Architect>(&architect)
        && engineer.iter().all(fits::<Engineer>)
        && fits::<Qa>(&qa)
        && fits::<Security>(&security);
    ensure!(
        within,
        "{id}: a scripted answer exceeds its role's MAX_TOKENS"
    );
    Ok(TaskScript {
        task,
        pm,
        architect,
        engineer,
        qa,
        security,
        failed_tail,
        passed_tail,
        qa_tail,
    })
}

/// True when `output`, as the fake counts it, fits role `R`'s output budget (with 5 % spare).
fn fits<R: Role>(output: &R::Output) -> bool {
    let bytes = serde_json::to_string(output).map_or(usize::MAX, |s| s.len());
    tokens(bytes) * 100 <= u64::from(R::MAX_TOKENS) * 95
}

/// What the scripts take from a task description.
struct Facts {
    id: String,
    title: String,
    /// Requirement sentences, before the common rules and the shared contract.
    requirements: Vec<String>,
    /// The acceptance paragraph, split.
    acceptance: Vec<String>,
}

impl Facts {
    fn of(task: &Task) -> Facts {
        let mut lines = task.description.lines();
        let title = lines.next().unwrap_or_default().trim().to_owned();
        let body: Vec<&str> = lines.collect();
        let mut requirements = Vec::new();
        let mut acceptance = Vec::new();
        let mut skipping = false;
        for line in body {
            let line = line.trim();
            if line.is_empty() {
                skipping = false;
                continue;
            }
            if line.starts_with("Common rules") || line.starts_with("Shared contract") {
                skipping = true;
                continue;
            }
            if skipping || line.starts_with("type ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("Acceptance:") {
                acceptance.extend(sentences(rest));
                continue;
            }
            requirements.extend(sentences(line.trim_start_matches("- ")));
        }
        Facts {
            id: task.task_id.clone(),
            title,
            requirements,
            acceptance,
        }
    }
}

/// Splits a paragraph at ". " and "; " into trimmed sentences (long ones kept whole).
fn sentences(text: &str) -> Vec<String> {
    text.split(". ")
        .flat_map(|s| s.split("; "))
        .map(|s| s.trim().trim_end_matches('.').to_owned())
        .filter(|s| s.len() > 12)
        .collect()
}

/// Topic words used to fill prose templates.
struct Words {
    /// "the PM agent", "the consensus package"…
    component: String,
}

impl Words {
    fn new(title: &str) -> Words {
        let lower = title.to_lowercase();
        let component = if let Some(rest) = lower.strip_prefix("implement ") {
            format!("the {}", rest.split(" that ").next().unwrap_or(rest))
        } else if let Some(rest) = lower.strip_prefix("add ") {
            format!("the {}", rest.split(':').next().unwrap_or(rest))
        } else {
            format!("the change \"{}\"", title.trim())
        };
        Words { component }
    }

    fn fill(&self, template: &str) -> String {
        template.replace("{c}", &self.component)
    }
}

/// Appends elaborations (each at most once, in a random order) until `text` has `target` words.
fn pad_to(text: &mut String, target: usize, words: &Words, rng: &mut fastrand::Rng) {
    for note in pick_n(rng, ELABORATIONS, ELABORATIONS.len()) {
        if word_count(text) >= target {
            break;
        }
        text.push_str(&format!("{} ", words.fill(note)));
    }
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

fn pick<'a>(rng: &mut fastrand::Rng, bank: &[&'a str]) -> &'a str {
    bank[rng.usize(..bank.len())]
}

/// `count` distinct items of `bank`, in a seeded order.
fn pick_n<'a>(rng: &mut fastrand::Rng, bank: &[&'a str], count: usize) -> Vec<&'a str> {
    let mut all = bank.to_vec();
    rng.shuffle(&mut all);
    all.truncate(count.min(bank.len()));
    all
}

const ELABORATIONS: &[&str] = &[
    "{c} must behave deterministically: the same input always yields the same output and the same error.",
    "Every error returned by {c} wraps its cause with %w and names the operation that failed, so callers can use errors.Is and the logs stay readable.",
    "No secret (API key, GitHub token, database password) may appear in an error, a log line, a prompt or a pull request body.",
    "{c} takes a context.Context as its first argument and returns promptly once it is cancelled.",
    "Input that comes from a model is untrusted: it is decoded strictly, validated, and rejected with a precise message when it does not fit.",
    "Unit tests are table-driven, run in parallel where that is safe, and need neither network nor cluster nor database.",
    "The exported API stays small: exported identifiers are the ones later tasks of the backlog depend on, everything else is unexported.",
    "Configuration comes from constructor arguments; nothing in {c} reads environment variables directly.",
    "{c} logs through logr with the task id as a key, at info level for state changes and at debug level for details.",
    "Behaviour that depends on time uses an injected clock, so that no test sleeps for real.",
    "The implementation follows the controller-runtime conventions of the scaffold: idempotent reconcilers, status written through the status subresource, RBAC markers next to the code that needs them.",
    "When {c} cannot make progress it returns an error instead of panicking; a panic in a dependency is recovered at the boundary and reported as a failure.",
    "{c} is safe for concurrent use by several reconcilers, or documents precisely where it is not.",
    "Names follow the shared contract in internal/agents/types.go; {c} does not redefine Task, Vote, File or State.",
    "The change keeps `go build ./...`, `go vet ./...` and `go test ./...` green and adds no dependency it does not need.",
    "Documentation comments say why rather than what, and every exported identifier has one.",
    "Limits (sizes, counts, retries, timeouts) are named constants with a comment saying where the value comes from.",
    "The outcome of {c} is visible in the AgentTask status and in the logs, and in Prometheus once the monitoring task lands.",
    "Retries use exponential backoff with a cap, honour Retry-After when the server sends it, and stop at once when the context is cancelled.",
    "Compatibility matters only for the CRD while the API is v1alpha1: fields are added, never renamed.",
    "A reviewer reading the pull request must be able to tell from its description and its tests what changed and why.",
    "{c} validates its arguments at the boundary and trusts them inside, rather than re-checking at every layer.",
    "Any path written to the repository is relative, cleaned, free of '..' and outside .git/, whatever produced it.",
    "{c} must work against the kind cluster used in development and against a production cluster with least-privilege RBAC.",
    "Edge cases — empty input, a missing object, a conflict on update, a cancelled context — each get a test of their own.",
    "Failure modes are explicit in the return values, so the engine can tell a transient error from a permanent one.",
    "The code should read well in review: short functions, early returns, plain types rather than clever generics.",
    "Performance is not a concern at this scale (tens of tasks a day), but nothing in {c} is quadratic in the number of tasks.",
    "{c} leaves the State unchanged when it returns an error, so that a retry starts from a clean slate.",
    "Every decision {c} takes is recorded with its reason, because reviewers of the pull request will ask for it.",
];

const NON_GOALS: &[&str] = &[
    "A web UI, or any dashboard beyond what later tasks of the backlog add.",
    "Multi-tenant isolation between namespaces: one operator serves one repository.",
    "LLM providers other than Anthropic.",
    "Changes to the shared contract in internal/agents/types.go beyond what this task names.",
    "Performance tuning: correctness and testability come first.",
    "Merging pull requests automatically: a person merges.",
    "Migrating data from earlier prototypes.",
];

const CONSTRAINTS: &[&str] = &[
    "Go 1.22 or newer, controller-runtime and the Kubebuilder go/v4 layout.",
    "No cluster-admin RBAC: the manager asks only for the verbs it uses.",
    "Secrets reach the process through environment variables filled from a Kubernetes Secret and are never logged.",
    "Unit tests run with only Go installed; integration tests sit behind the `integration` build tag.",
    "The model name is always a constructor argument, never a constant in the agent.",
    "Files proposed by a model are validated before anything is written.",
    "The operator runs as a non-root user in a distroless image.",
];

const RISKS: &[&str] = &[
    "The model may wrap the JSON in prose or a fence; decoding must strip the fence and reject the rest precisely (mitigation: strict decoder, one test per malformed shape).",
    "Drift between the prompt's schema and the Go types produces malformed answers (mitigation: golden tests on the prompts and a decoding test per field).",
    "Retries on 429 and 5xx multiply cost and latency (mitigation: at most 3 retries with capped backoff, honouring Retry-After).",
    "A reconciler that writes status on every pass causes update conflicts (mitigation: compare before writing, requeue on conflict).",
    "Path validation that misses a symlink could write outside the worktree (mitigation: resolve symlinks before writing, test the escape).",
    "A misconfigured leader election could run two engines at once (mitigation: NeedLeaderElection() returns true, with a test).",
    "Large answers may exceed the file limits (mitigation: validate count and total size before accepting).",
    "Tests that read the wall clock become flaky (mitigation: inject a clock wherever a duration is measured).",
    "A token could leak through an error message (mitigation: scrub errors at the client boundary and test that the key never appears).",
    "Migrations applied twice could fail on a running cluster (mitigation: record versions in schema_migrations in the same transaction).",
];

const EDGE_CASES: &[&str] = &[
    "Empty or whitespace-only input: rejected with an error naming the field, State unchanged.",
    "The model answers with a ```json fence: the fence is stripped and the answer decodes.",
    "The model answers with prose around the JSON: rejected as ErrMalformedResponse.",
    "A score of 101 or -1: rejected, no vote appended.",
    "A cancelled context before the call: returns ctx.Err() without calling the LLM.",
    "A 429 with Retry-After: 2 followed by success: one retry after two seconds of fake time.",
    "A path with '..', an absolute path or a path under .git/: rejected with the path in the message.",
    "Two files with the same path: the later one replaces the earlier, as the task specifies.",
    "A conflict on status update: requeued, no error surfaced to the user.",
    "An unknown field in the answer: rejected by the strict decoder.",
];

const FINDINGS: &[&str] = &[
    "errors from the HTTP client are wrapped verbatim; the request URL never carries a credential, which keeps them safe to log.",
    "answers from the model are decoded strictly and validated before use; keep DisallowUnknownFields.",
    "the RBAC markers ask only for get/list/watch/update/patch on agenttasks and agenttasks/status, which is appropriately scoped.",
    "retries honour Retry-After; the 15-minute cap should be documented so that operators know the longest wait.",
    "no audit entry is written when a task changes phase; acceptable for Phase 1, to revisit with the monitoring task.",
    "the GitHub token goes through an oauth2 transport and is never written into .git/config.",
    "file paths are cleaned and checked for '..', absolute paths and .git/; the symlink escape has a test.",
    "SQL uses placeholders throughout; no user data is concatenated into a statement.",
];

fn pm_answer(facts: &Facts, words: &Words, rng: &mut fastrand::Rng) -> PmOutput {
    let target = rng.usize(600..=1200);
    let mut prd = format!(
        "# PRD: {}\n\n## Problem\nTask {} asks for this: {}. Without it the later tasks of \
         Phase 1 cannot build on a stable base, and reviewers have nothing precise to check the \
         pull request against. {}\n\n## Goals\n",
        facts.title,
        facts.id,
        facts.title.to_lowercase(),
        words.fill(pick(rng, ELABORATIONS))
    );
    for requirement in facts.requirements.iter().take(4) {
        prd.push_str(&format!("- {}\n", shorten(requirement, 180)));
    }
    prd.push_str("\n## Non-goals\n");
    for item in pick_n(rng, NON_GOALS, 3) {
        prd.push_str(&format!("- {item}\n"));
    }
    prd.push_str("\n## Functional requirements\n");
    for (i, requirement) in facts.requirements.iter().enumerate() {
        if word_count(&prd) > target.saturating_sub(150) && i >= 4 {
            break;
        }
        prd.push_str(&format!(
            "{}. {}. {}\n",
            i + 1,
            requirement,
            words.fill(pick(rng, ELABORATIONS))
        ));
    }
    prd.push_str("\n## Constraints\n");
    for item in pick_n(rng, CONSTRAINTS, 4) {
        prd.push_str(&format!("- {item}\n"));
    }
    prd.push_str("\n## Notes\n");
    pad_to(&mut prd, target, words, rng);
    let mut criteria: Vec<String> = facts.acceptance.iter().map(|a| format!("{a}.")).collect();
    let extra = rng.usize(3..=6);
    for requirement in facts.requirements.iter().take(extra) {
        criteria.push(format!(
            "Given the change is merged, when the tests run, then they show that: {}.",
            shorten(requirement, 160)
        ));
    }
    criteria.truncate(10);
    PmOutput {
        prd: prd.trim().to_owned(),
        acceptance_criteria: criteria,
        vote: PmVote::Approve,
        rationale: format!(
            "The task is clear, implementable in this repository as one pull request and \
             consistent with the shared contract. {} {}",
            words.fill(pick(rng, ELABORATIONS)),
            words.fill(pick(rng, ELABORATIONS))
        ),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn architect_answer(
    facts: &Facts,
    files: &[String],
    words: &Words,
    rng: &mut fastrand::Rng,
) -> ArchitectOutput {
    let target = rng.usize(500..=900);
    let mut design = format!(
        "## Overview\n{} is built as described below, in the packages the Kubebuilder layout \
         already has. {}\n\n## Packages and files\n",
        facts.title,
        words.fill(pick(rng, ELABORATIONS))
    );
    for file in files {
        design.push_str(&format!(
            "- `{file}`: {}\n",
            file_purpose(file, &words.component)
        ));
    }
    design.push_str("\n## Types and interfaces\n```go\n");
    for file in files
        .iter()
        .filter(|f| is_go(f) && !f.ends_with("_test.go"))
        .take(4)
    {
        let name = type_name(file);
        design.push_str(&format!(
            "type {name} struct {{ llm agents.LLM; model string; clock func() time.Time }}\n\
             func New{name}(llm agents.LLM, model string) *{name}\n\
             func (a *{name}) Run(ctx context.Context, s *agents.State) error\n\n"
        ));
    }
    design.push_str("```\n\n## Flow\n");
    for (i, requirement) in facts.requirements.iter().take(6).enumerate() {
        design.push_str(&format!("{}. {}.\n", i + 1, shorten(requirement, 200)));
    }
    design.push_str("\n## Error handling and testing\n");
    pad_to(&mut design, target, words, rng);
    let mut components: Vec<String> = files
        .iter()
        .filter(|f| is_go(f))
        .take(8)
        .map(|f| format!("{} ({}, package {})", type_name(f), f, package_of(f)))
        .collect();
    if components.is_empty() {
        components = files.iter().take(6).cloned().collect();
    }
    let risks = rng.usize(3..=6);
    ArchitectOutput {
        design: design.trim().to_owned(),
        components,
        files: files.to_vec(),
        risks: pick_n(rng, RISKS, risks)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        score: rng.u8(82..=92),
        rationale: format!(
            "The design follows the scaffold's conventions and the shared contract, touches only \
             the files listed, and each risk has a mitigation with a test. {}",
            words.fill(pick(rng, ELABORATIONS))
        ),
    }
}

fn file_purpose(file: &str, component: &str) -> String {
    if file.ends_with("_test.go") {
        format!("table-driven tests of {component}, fakes only, no network")
    } else if file.ends_with(".go") {
        format!("{component}: {} and its helpers", type_name(file))
    } else if file.ends_with(".md") {
        "documentation / prompt text, embedded or linked".to_owned()
    } else if file.ends_with(".yaml") || file.ends_with(".yml") {
        "manifest change, kept minimal".to_owned()
    } else {
        "build and project plumbing".to_owned()
    }
}

/// The Engineer's first answer: new files whole, existing files through edits; and the files
/// it leaves (resolved), for the repair round.
fn engineer_answer(
    files: &[String],
    repo: &Repo,
    cap: usize,
    words: &Words,
    rng: &mut fastrand::Rng,
) -> Result<(EngineerOutput, BTreeMap<String, String>)> {
    let new: Vec<&String> = files
        .iter()
        .filter(|f| !repo.content.contains_key(*f))
        .collect();
    let sizes: Vec<usize> = new.iter().map(|f| new_size(f, rng)).collect();
    let total: usize = sizes.iter().sum();
    let scale = if total > cap {
        cap as f64 / total as f64
    } else {
        1.0
    };
    let mut written = Vec::new();
    for (path, size) in new.iter().zip(sizes) {
        let size = (size as f64 * scale) as usize;
        written.push(FileChange {
            path: (*path).clone(),
            content: file_content(path, size, rng, words),
        });
    }
    let mut edits = Vec::new();
    for path in files.iter().filter(|f| repo.content.contains_key(*f)) {
        let content = &repo.content[path];
        let count = rng.usize(1..=3);
        let file_edits = edits_of(path, content, count, rng, words);
        if file_edits.is_empty() {
            // Nothing to anchor an edit on (a short file of repeated lines): rewrite it whole.
            let size = content.len() + rng.usize(100..=400);
            written.push(FileChange {
                path: path.clone(),
                content: file_content(path, size, rng, words),
            });
        }
        edits.extend(file_edits);
    }
    let output = EngineerOutput {
        summary: engineer_summary(files, words, rng),
        files: written,
        edits,
        score: rng.u8(80..=90),
        rationale: format!(
            "Every file the design names is written or edited, the tests cover the acceptance \
             criteria, and {}",
            words.fill(pick(rng, ELABORATIONS)).to_lowercase()
        ),
    };
    let current = repo.contents(&output.edited_paths());
    let resolved = output
        .resolve(&current)
        .map_err(|e| anyhow!("scripted round 0 edits: {e}"))?;
    Ok((
        output,
        resolved.into_iter().map(|f| (f.path, f.content)).collect(),
    ))
}

/// The repair round: a few edits of the files written in round 0.
fn repair_answer(
    written: &BTreeMap<String, String>,
    words: &Words,
    rng: &mut fastrand::Rng,
) -> Result<EngineerOutput> {
    let mut candidates: Vec<&String> = written.keys().filter(|p| is_go(p)).collect();
    if candidates.is_empty() {
        candidates = written.keys().collect();
    }
    rng.shuffle(&mut candidates);
    let mut edits = Vec::new();
    for path in candidates.into_iter().take(rng.usize(1..=2)) {
        edits.extend(edits_of(path, &written[path], rng.usize(1..=2), rng, words));
    }
    ensure!(!edits.is_empty(), "no edit for the repair round");
    Ok(EngineerOutput {
        summary: format!(
            "Fixes the failing tests: the validation now runs before the LLM call and the \
             error wraps ErrMalformedResponse, as the tests expect. {}",
            words.fill(pick(rng, ELABORATIONS))
        ),
        files: Vec::new(),
        edits,
        score: rng.u8(82..=90),
        rationale: "The failures came from one ordering mistake and one unwrapped error; both \
                    are fixed and covered by the existing tests."
            .to_owned(),
    })
}

fn engineer_summary(files: &[String], words: &Words, rng: &mut fastrand::Rng) -> String {
    let mut summary = format!(
        "Implements {} as designed. Files: {}.\n\n",
        words.component,
        files.join(", ")
    );
    let count = rng.usize(4..=7);
    for note in pick_n(rng, ELABORATIONS, count) {
        summary.push_str(&format!("- {}\n", words.fill(note)));
    }
    summary
}

/// Up to `count` edits of `content`: each inserts a snippet after a line that occurs exactly
/// once in the content as the earlier edits left it (what `EngineerOutput::resolve` requires).
fn edits_of(
    path: &str,
    content: &str,
    count: usize,
    rng: &mut fastrand::Rng,
    words: &Words,
) -> Vec<Edit> {
    let mut lines: Vec<&str> = content.lines().filter(|l| l.trim().len() > 12).collect();
    rng.shuffle(&mut lines);
    let mut current = content.to_owned();
    let mut edits = Vec::new();
    for line in lines {
        if edits.len() == count {
            break;
        }
        if current.matches(line).count() != 1 {
            continue;
        }
        let size = rng.usize(200..=900);
        let replace = format!("{line}\n{}", snippet(path, size, rng, words));
        current = current.replacen(line, &replace, 1);
        edits.push(Edit {
            path: path.to_owned(),
            search: line.to_owned(),
            replace,
        });
    }
    edits
}

/// About `size` bytes of `path`'s kind of content without the file header (for an edit).
fn snippet(path: &str, size: usize, rng: &mut fastrand::Rng, words: &Words) -> String {
    let text = file_content(path, size + 1_200, rng, words);
    let start = if is_go(path) {
        text.find("}\n\n").map_or(0, |i| i + 3)
    } else if path.ends_with(".yaml") || path.ends_with(".yml") {
        text.find("rules:\n").map_or(0, |i| i + 7)
    } else {
        text.match_indices('\n').nth(2).map_or(0, |(i, _)| i + 1)
    };
    let body = &text[start..];
    let cut = body[..size.min(body.len())]
        .rfind('\n')
        .unwrap_or(body.len());
    body[..cut].to_owned()
}

fn qa_answer(facts: &Facts, files: &[String], words: &Words, rng: &mut fastrand::Rng) -> QaOutput {
    let target = rng.usize(300..=600);
    let mut review = format!(
        "## Review of {}\nThe implementation matches the PRD and the design. Findings, by file:\n",
        facts.title
    );
    for file in files.iter().take(5) {
        review.push_str(&format!(
            "- `{file}`: {}\n",
            words.fill(pick(rng, ELABORATIONS))
        ));
    }
    review.push('\n');
    pad_to(&mut review, target, words, rng);
    let mut test_plan: Vec<String> = facts
        .acceptance
        .iter()
        .map(|a| {
            format!(
                "Acceptance: {} — checked by the new tests and by `go test ./...`.",
                shorten(a, 160)
            )
        })
        .collect();
    for file in files.iter().filter(|f| f.ends_with("_test.go")) {
        test_plan.push(format!("Run {file} with -race; every table case passes."));
    }
    test_plan.push("Run `go vet ./...` and `go build ./...` on the branch.".to_owned());
    test_plan.truncate(10);
    let dir = files
        .iter()
        .find(|f| is_go(f))
        .map(|f| package_dir(f))
        .unwrap_or_else(|| "test/docs".to_owned());
    let test_path = format!("{dir}/qa_{}_test.go", facts.id.replace('-', "_"));
    let test_content = file_content(&test_path, rng.usize(3_000..=6_500), rng, words);
    let edge_cases = rng.usize(4..=7);
    QaOutput {
        review: review.trim().to_owned(),
        test_plan,
        edge_cases: pick_n(rng, EDGE_CASES, edge_cases)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        test_files: vec![FileChange {
            path: test_path,
            content: test_content,
        }],
        score: rng.u8(76..=90),
        rationale: format!(
            "The tests cover the acceptance criteria and the main edge cases; the added test \
             file covers the cases the Engineer's tests leave out. {}",
            words.fill(pick(rng, ELABORATIONS))
        ),
    }
}

fn security_answer(
    id: &str,
    files: &[String],
    words: &Words,
    rng: &mut fastrand::Rng,
) -> SecurityOutput {
    let external = matches!(id, "phase1-002" | "phase1-010");
    let count = rng.usize(1..=4);
    let findings = pick_n(rng, FINDINGS, count)
        .into_iter()
        .map(|f| format!("{}: {f}", files[rng.usize(..files.len())]))
        .collect();
    SecurityOutput {
        introduces_privilege_escalation: false,
        destructive_operations_without_safeguards: false,
        unvalidated_external_api: external && rng.bool(),
        missing_audit_logging: rng.usize(..4) == 0,
        encryption_at_rest_and_in_transit: external,
        advanced_audit_logging: false,
        findings,
        rationale: format!(
            "The change adds no privilege and no destructive operation; the rubric answers \
             reflect only what this change introduces, and the gates found no secret and no \
             refused file. {}",
            pick_n(rng, ELABORATIONS, 4)
                .into_iter()
                .map(|e| words.fill(e))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// About 2 KB of `go test ./...` output with failures (at most 60 lines, as the tail is cut).
fn failing_output(files: &[String], rng: &mut fastrand::Rng) -> String {
    let dirs: Vec<String> = files
        .iter()
        .filter(|f| is_go(f))
        .map(|f| package_dir(f))
        .collect();
    let dir = dirs
        .first()
        .cloned()
        .unwrap_or_else(|| "internal/agents".into());
    let first = files
        .iter()
        .find(|f| is_go(f))
        .map_or("run.go", String::as_str);
    let test = format!("Test{}", type_name(first));
    let mut out = String::new();
    let cases = [
        "valid_answer",
        "fenced_answer",
        "malformed_json",
        "score_out_of_range",
        "empty_input",
        "cancelled_context",
        "unknown_field",
    ];
    for case in cases {
        out.push_str(&format!(
            "=== RUN   {test}/{case}\n=== PAUSE {test}/{case}\n"
        ));
    }
    for case in cases.iter().take(5) {
        let line = rng.usize(40..=220);
        out.push_str(&format!(
            "    {}_test.go:{line}: {test}/{case}: Run() error = <nil>, want an error wrapping ErrMalformedResponse\n",
            short_name(&dir)
        ));
    }
    out.push_str(&format!("--- FAIL: {test} (0.00s)\n"));
    for case in cases.iter().take(5) {
        out.push_str(&format!("    --- FAIL: {test}/{case} (0.00s)\n"));
    }
    out.push_str("FAIL\n");
    out.push_str(&format!(
        "FAIL\t{MODULE}/{dir}\t0.{:03}s\n",
        rng.u32(100..999)
    ));
    for other in ["api/v1alpha1", "internal/controller", "internal/llm", "cmd"] {
        out.push_str(&format!(
            "ok  \t{MODULE}/{other}\t{}.{:03}s\tcoverage: {}.{}% of statements\n",
            rng.u32(0..3),
            rng.u32(0..999),
            rng.u32(55..92),
            rng.u32(0..9)
        ));
    }
    while out.len() < 1_900 {
        out.push_str(&format!(
            "    {}_test.go:{}: got State.Votes = []agents.Vote{{}}, want 1 vote appended\n",
            short_name(&dir),
            rng.usize(40..=220)
        ));
    }
    out.push_str("FAIL\n");
    out
}

fn passing_output(files: &[String], rng: &mut fastrand::Rng) -> String {
    let mut dirs: Vec<String> = files
        .iter()
        .filter(|f| is_go(f))
        .map(|f| package_dir(f))
        .collect();
    dirs.extend(["api/v1alpha1".to_owned(), "internal/controller".to_owned()]);
    let mut seen = HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    let mut out = String::new();
    for dir in dirs {
        out.push_str(&format!(
            "ok  \t{MODULE}/{dir}\t{}.{:03}s\n",
            rng.u32(0..3),
            rng.u32(0..999)
        ));
    }
    out.push_str(&format!("?   \t{MODULE}/cmd\t[no test files]\n"));
    out
}

// ---------------------------------------------------------------------------------------------
// File contents: plausible text of a given size, by kind
// ---------------------------------------------------------------------------------------------

fn is_go(path: &str) -> bool {
    path.ends_with(".go")
}

fn package_dir(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(".".into(), |(dir, _)| dir.to_owned())
}

fn package_of(path: &str) -> String {
    if path.starts_with("cmd/") {
        return "main".into();
    }
    short_name(&package_dir(path))
}

fn short_name(dir: &str) -> String {
    dir.rsplit('/').next().unwrap_or(dir).replace('-', "")
}

/// `agenttask_controller.go` → `AgenttaskController`, `pm.go` → `PMAgent`.
fn type_name(path: &str) -> String {
    let stem = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".go")
        .trim_end_matches("_test");
    match stem {
        "pm" => "PMAgent".into(),
        "qa" => "QAAgent".into(),
        "architect" | "engineer" | "security" => format!("{}Agent", capitalize(stem)),
        _ => stem.split('_').map(capitalize).collect(),
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Size of a file the Engineer writes, by kind.
fn new_size(path: &str, rng: &mut fastrand::Rng) -> usize {
    if path.ends_with("_test.go") {
        rng.usize(2_500..=6_500)
    } else if path.ends_with(".go") {
        rng.usize(3_000..=8_500)
    } else if path.contains("/prompts/") {
        rng.usize(1_500..=3_200)
    } else if path.ends_with(".md") {
        rng.usize(3_000..=6_500)
    } else if path.ends_with(".json") {
        rng.usize(6_000..=10_000)
    } else if path.ends_with(".sql") {
        rng.usize(1_000..=2_200)
    } else {
        rng.usize(700..=2_000)
    }
}

/// About `size` bytes of plausible content for `path`.
fn file_content(path: &str, size: usize, rng: &mut fastrand::Rng, words: &Words) -> String {
    if size == 0 {
        return String::new();
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    if path.ends_with("_test.go") {
        go_test(path, size, rng)
    } else if path.ends_with(".go") {
        go_source(path, size, rng)
    } else if path.ends_with(".md") || name == "LICENSE" {
        markdown(path, size, rng, words)
    } else if path.ends_with(".yaml") || path.ends_with(".yml") {
        yaml(path, size, rng)
    } else if path.ends_with(".json") {
        dashboard(size, rng)
    } else if path.ends_with(".sql") {
        sql(size, rng)
    } else if name == "Makefile" {
        makefile(size, rng)
    } else if name == "go.mod" || name == "go.sum" {
        go_mod(name, size, rng)
    } else {
        plain(path, size, rng)
    }
}

const VERBS: &[&str] = &[
    "validate",
    "decode",
    "build",
    "render",
    "apply",
    "load",
    "record",
    "resolve",
    "normalize",
    "check",
    "merge",
    "collect",
];
const OBJECTS: &[&str] = &[
    "Request", "Answer", "Prompt", "Files", "Votes", "Status", "Config", "Labels", "Result",
    "Criteria", "Trace", "Branch", "Paths", "Score",
];

/// Distinct function names for one file, in a seeded order.
fn function_names(rng: &mut fastrand::Rng) -> Vec<String> {
    let mut names: Vec<String> = VERBS
        .iter()
        .flat_map(|v| OBJECTS.iter().map(move |o| format!("{v}{o}")))
        .collect();
    rng.shuffle(&mut names);
    names
}

fn go_source(path: &str, size: usize, rng: &mut fastrand::Rng) -> String {
    let pkg = package_of(path);
    let ty = type_name(path);
    let tag = rng.u32(1000..9999);
    let mut out = format!(
        "// Copyright 2025 The agentic-k8s-operator Authors. Licensed under the Apache License 2.0.\n\n\
         // Package {pkg}: {ty} and its helpers.\npackage {pkg}\n\nimport (\n\t\"context\"\n\t\
         \"errors\"\n\t\"fmt\"\n\t\"strings\"\n\t\"time\"\n)\n\n\
         // Err{ty}{tag} is returned when the input of {ty} is not usable.\n\
         var Err{ty}{tag} = errors.New(\"{pkg}: invalid input\")\n\n\
         // {ty} holds what its methods share.\ntype {ty} struct {{\n\tmodel   string\n\t\
         timeout time.Duration\n\tnow     func() time.Time\n}}\n\n"
    );
    for (i, name) in function_names(rng).into_iter().enumerate() {
        if out.len() >= size {
            break;
        }
        let object = OBJECTS
            .iter()
            .find(|o| name.ends_with(*o))
            .unwrap_or(&"Result");
        let lower = name.to_lowercase();
        match i % 3 {
            0 => out.push_str(&format!(
                "// {name} {lower}s the input and reports the first problem it finds.\n\
                 func (x *{ty}) {name}(ctx context.Context, in []string) ([]string, error) {{\n\
                 \tif err := ctx.Err(); err != nil {{\n\t\treturn nil, fmt.Errorf(\"{pkg}: {lower}: %w\", err)\n\t}}\n\
                 \tout := make([]string, 0, len(in))\n\tfor i, item := range in {{\n\
                 \t\titem = strings.TrimSpace(item)\n\t\tif item == \"\" {{\n\
                 \t\t\treturn nil, fmt.Errorf(\"{pkg}: {lower}: item %d is blank: %w\", i, Err{ty}{tag})\n\t\t}}\n\
                 \t\tout = append(out, item)\n\t}}\n\treturn out, nil\n}}\n\n"
            )),
            1 => out.push_str(&format!(
                "// {object}{i}{tag} is what {name} works on.\ntype {object}{i}{tag} struct {{\n\
                 \tID        string    `json:\"id\"`\n\tAttempts  int       `json:\"attempts\"`\n\
                 \tUpdatedAt time.Time `json:\"updated_at\"`\n\tNotes     []string  `json:\"notes,omitempty\"`\n}}\n\n\
                 // {name} fills a {object}{i}{tag} from s, stamping it with the injected clock.\n\
                 func (x *{ty}) {name}(s string) ({object}{i}{tag}, error) {{\n\
                 \tif len(s) > 100 {{\n\t\treturn {object}{i}{tag}{{}}, fmt.Errorf(\"{pkg}: {lower}: id too long (%d > 100)\", len(s))\n\t}}\n\
                 \treturn {object}{i}{tag}{{ID: s, Attempts: 1, UpdatedAt: x.now()}}, nil\n}}\n\n"
            )),
            _ => out.push_str(&format!(
                "// {name} maps a decision to its label, as the PR body shows it.\n\
                 func {name}(decision string) (string, bool) {{\n\tswitch strings.ToUpper(decision) {{\n\
                 \tcase \"APPROVE\":\n\t\treturn \"approved\", true\n\tcase \"REJECT\":\n\
                 \t\treturn \"rejected\", true\n\tcase \"CONDITIONAL_APPROVE\":\n\t\treturn \"needs review\", true\n\
                 \tdefault:\n\t\treturn \"\", false\n\t}}\n}}\n\n"
            )),
        }
    }
    out
}

fn go_test(path: &str, size: usize, rng: &mut fastrand::Rng) -> String {
    let pkg = package_of(path);
    let ty = type_name(path);
    let mut out = format!(
        "// Copyright 2025 The agentic-k8s-operator Authors. Licensed under the Apache License 2.0.\n\n\
         package {pkg}\n\nimport (\n\t\"context\"\n\t\"errors\"\n\t\"testing\"\n\t\"time\"\n)\n\n\
         func fixedClock() time.Time {{ return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }}\n\n"
    );
    for name in function_names(rng) {
        if out.len() >= size {
            break;
        }
        let test = capitalize(&name);
        out.push_str(&format!(
            "func Test{ty}{test}(t *testing.T) {{\n\tt.Parallel()\n\ttests := []struct {{\n\
             \t\tname    string\n\t\tin      []string\n\t\twantErr bool\n\t}}{{\n\
             \t\t{{name: \"valid\", in: []string{{\"phase1-001\", \"phase1-002\"}}}},\n\
             \t\t{{name: \"empty\", in: nil}},\n\t\t{{name: \"blank item\", in: []string{{\" \"}}, wantErr: true}},\n\
             \t}}\n\tfor _, tt := range tests {{\n\t\tt.Run(tt.name, func(t *testing.T) {{\n\
             \t\t\tt.Parallel()\n\t\t\tctx, cancel := context.WithTimeout(context.Background(), time.Second)\n\
             \t\t\tdefer cancel()\n\t\t\t_, err := {name}Fixture(fixedClock)(ctx, tt.in)\n\
             \t\t\tif (err != nil) != tt.wantErr {{\n\t\t\t\tt.Fatalf(\"{name}() error = %v, wantErr %v\", err, tt.wantErr)\n\t\t\t}}\n\
             \t\t\tif err != nil && !errors.Is(err, errInvalid) {{\n\t\t\t\tt.Errorf(\"{name}() error = %v, want errInvalid\", err)\n\t\t\t}}\n\
             \t\t}})\n\t}}\n}}\n\n"
        ));
    }
    out
}

fn markdown(path: &str, size: usize, rng: &mut fastrand::Rng, words: &Words) -> String {
    let title = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".md");
    let mut out = format!("# {}\n\n", capitalize(&title.replace(['_', '-'], " ")));
    let mut section = 0;
    while out.len() < size {
        section += 1;
        out.push_str(&format!(
            "## {}\n\n",
            pick(
                rng,
                &[
                    "Purpose",
                    "How it works",
                    "Inputs",
                    "Output format",
                    "Rules",
                    "Failure modes",
                    "Configuration",
                    "Examples",
                    "Operations",
                    "Testing",
                ]
            )
        ));
        for _ in 0..rng.usize(2..=4) {
            out.push_str(&words.fill(pick(rng, ELABORATIONS)));
            out.push(' ');
        }
        out.push_str("\n\n");
        if section % 2 == 0 {
            for _ in 0..rng.usize(3..=5) {
                out.push_str(&format!("- {}\n", words.fill(pick(rng, ELABORATIONS))));
            }
            out.push('\n');
        }
        if section % 3 == 0 {
            out.push_str(
                "```json\n{\"decision\": \"APPROVE\", \"score\": 85, \"rationale\": \"…\"}\n```\n\n",
            );
        }
    }
    out
}

fn yaml(path: &str, size: usize, rng: &mut fastrand::Rng) -> String {
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".yaml");
    let mut out = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  labels:\n    \
         app.kubernetes.io/name: agentic-k8s-operator\n    app.kubernetes.io/managed-by: kustomize\n  \
         name: {name}\nrules:\n"
    );
    let resources = [
        "agenttasks",
        "agenttasks/status",
        "agenttasks/finalizers",
        "events",
        "leases",
        "secrets",
        "configmaps",
    ];
    let mut i = 0;
    while out.len() < size {
        i += 1;
        out.push_str(&format!(
            "- apiGroups:\n  - {}\n  resources:\n  - {}\n  verbs:\n  - get\n  - list\n  - watch\n{}",
            if i % 2 == 0 { "agents.agentic.dev" } else { "\"\"" },
            resources[rng.usize(..resources.len())],
            if i % 3 == 0 { "  - update\n  - patch\n" } else { "" }
        ));
    }
    out
}

fn dashboard(size: usize, rng: &mut fastrand::Rng) -> String {
    let metrics = [
        "agentic_tasks_total",
        "agentic_tasks_queue",
        "agentic_agent_duration_seconds_bucket",
        "agentic_agent_votes_total",
        "agentic_consensus_score_bucket",
        "agentic_llm_requests_total",
        "agentic_llm_tokens_total",
        "agentic_pull_requests_total",
    ];
    let mut panels = Vec::new();
    let mut id = 0;
    loop {
        id += 1;
        let metric = metrics[rng.usize(..metrics.len())];
        panels.push(json!({
            "id": id,
            "type": if id % 2 == 0 { "timeseries" } else { "stat" },
            "title": format!("{} ({id})", metric.replace('_', " ")),
            "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
            "gridPos": {"h": 8, "w": 12, "x": (id % 2) * 12, "y": (id / 2) * 8},
            "targets": [{"expr": format!("sum by (status) (rate({metric}[5m]))"), "refId": "A"}]
        }));
        let text = serde_json::to_string_pretty(&json!({
            "title": "Agentic operator", "schemaVersion": 39, "panels": panels
        }))
        .unwrap_or_default();
        if text.len() >= size {
            return text;
        }
    }
}

fn sql(size: usize, rng: &mut fastrand::Rng) -> String {
    let mut out = String::from(
        "CREATE TABLE IF NOT EXISTS tasks (\n    id SERIAL PRIMARY KEY,\n    task_id VARCHAR(100) UNIQUE NOT NULL,\n    \
         description TEXT NOT NULL,\n    status VARCHAR(50) NOT NULL DEFAULT 'pending'\n        CHECK (status IN \
         ('pending','in_progress','completed','failed','needs_review')),\n    priority INTEGER NOT NULL DEFAULT 0,\n    \
         labels TEXT[] NOT NULL DEFAULT '{}',\n    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,\n    \
         started_at TIMESTAMP,\n    completed_at TIMESTAMP,\n    pr_url TEXT,\n    consensus_score DOUBLE PRECISION,\n    \
         result JSONB\n);\n\n",
    );
    let mut i = 0;
    while out.len() < size {
        i += 1;
        out.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS idx_tasks_{i}_{} ON tasks ({});\n",
            rng.u32(100..999),
            pick(
                rng,
                &[
                    "status",
                    "priority DESC",
                    "created_at",
                    "task_id",
                    "completed_at"
                ]
            )
        ));
    }
    out
}

fn makefile(size: usize, rng: &mut fastrand::Rng) -> String {
    let mut out = String::from(
        "IMG ?= controller:latest\nENVTEST_K8S_VERSION = 1.31.0\nGOBIN ?= $(shell go env GOPATH)/bin\n\n\
         .PHONY: all\nall: build\n\n##@ Development\n\n",
    );
    let mut targets = vec![
        "manifests",
        "generate",
        "fmt",
        "vet",
        "test",
        "lint",
        "build",
        "run",
        "docker-build",
        "docker-push",
        "install",
        "uninstall",
        "deploy",
        "undeploy",
        "kustomize",
        "controller-gen",
        "envtest",
        "golangci-lint",
        "test-e2e",
        "build-installer",
    ];
    rng.shuffle(&mut targets);
    for (i, target) in targets.iter().cycle().enumerate() {
        if out.len() >= size {
            break;
        }
        let name = if i < targets.len() {
            (*target).to_owned()
        } else {
            format!("{target}-{i}")
        };
        out.push_str(&format!(
            ".PHONY: {name}\n{name}: ## Run {name} for the operator.\n\t$(GO) {name} ./... \
             $(GOFLAGS) 2>&1 | tee $(LOCALBIN)/{name}.log\n\n"
        ));
    }
    out
}

fn go_mod(name: &str, size: usize, rng: &mut fastrand::Rng) -> String {
    let deps = [
        "github.com/go-logr/logr",
        "github.com/onsi/ginkgo/v2",
        "github.com/onsi/gomega",
        "k8s.io/api",
        "k8s.io/apimachinery",
        "k8s.io/client-go",
        "sigs.k8s.io/controller-runtime",
        "github.com/prometheus/client_golang",
        "github.com/google/go-cmp",
        "golang.org/x/net",
        "golang.org/x/sys",
        "google.golang.org/protobuf",
        "github.com/evanphx/json-patch/v5",
        "github.com/spf13/pflag",
    ];
    let mut out = if name == "go.mod" {
        format!("module {MODULE}\n\ngo 1.22.0\n\nrequire (\n")
    } else {
        String::new()
    };
    let mut i = 0;
    while out.len() < size {
        let dep = deps[i % deps.len()];
        let version = format!("v0.{}.{}", rng.u32(1..40), i);
        if name == "go.mod" {
            out.push_str(&format!("\t{dep} {version}\n"));
        } else {
            out.push_str(&format!(
                "{dep} {version} h1:{:016x}{:016x}=\n",
                rng.u64(..),
                rng.u64(..)
            ));
        }
        i += 1;
    }
    if name == "go.mod" {
        out.push_str(")\n");
    }
    out
}

fn plain(path: &str, size: usize, rng: &mut fastrand::Rng) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut out = match name {
        "Dockerfile" => "FROM golang:1.22 AS builder\nARG TARGETOS\nARG TARGETARCH\nWORKDIR /workspace\n\
                         COPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\n\
                         RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -a -o manager cmd/main.go\n\
                         FROM gcr.io/distroless/static:nonroot\nWORKDIR /\nCOPY --from=builder /workspace/manager .\n\
                         USER 65532:65532\nENTRYPOINT [\"/manager\"]\n"
            .to_owned(),
        "PROJECT" => format!(
            "domain: agentic.dev\nlayout:\n- go.kubebuilder.io/v4\nprojectName: agentic-k8s-operator\n\
             repo: {MODULE}\nresources:\n- api:\n    crdVersion: v1\n    namespaced: true\n  controller: true\n  \
             domain: agentic.dev\n  group: agents\n  kind: AgentTask\n  path: {MODULE}/api/v1alpha1\n  version: v1alpha1\nversion: \"3\"\n"
        ),
        _ if name.ends_with(".sh") => "#!/usr/bin/env bash\nset -euo pipefail\n\n".to_owned(),
        _ => format!("# {name}\n"),
    };
    let mut i = 0;
    while out.len() < size {
        i += 1;
        let line = if name.ends_with(".sh") {
            format!(
                "pkg_{i}=$(go tool cover -func=cover.out | awk '/{}/ {{print $3}}')\n\
                 [ \"${{pkg_{i}%.*}}\" -ge 80 ] || {{ echo \"coverage of {} below 80 %\"; exit 1; }}\n",
                pick(
                    rng,
                    &[
                        "agents",
                        "consensus",
                        "workflow",
                        "gitops",
                        "github",
                        "engine"
                    ]
                ),
                pick(
                    rng,
                    &[
                        "agents",
                        "consensus",
                        "workflow",
                        "gitops",
                        "github",
                        "engine"
                    ]
                )
            )
        } else if name.starts_with('.') {
            format!(
                "{}\n",
                pick(
                    rng,
                    &[
                        "bin/*",
                        "*.out",
                        "cover.*",
                        "testbin/*",
                        ".idea/",
                        "*.swp",
                        "dist/",
                        "vendor/"
                    ]
                )
            )
        } else if name.ends_with(".txt") {
            "/*\nCopyright 2025 The agentic-k8s-operator Authors.\n\nLicensed under the Apache License, Version 2.0.\n*/\n"
                .to_owned()
        } else {
            format!("# {name}: line {i}, kept by the scaffold\n")
        };
        out.push_str(&line);
    }
    out
}

/// A seed derived from the given parts (FNV-1a), so every script is reproducible.
fn seed(parts: &[&str]) -> u64 {
    parts.iter().fold(FNV_OFFSET, |hash, part| {
        fnv(fnv(hash, part.as_bytes()), b"/")
    })
}
