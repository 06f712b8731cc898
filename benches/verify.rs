//! Verification benchmark on real repositories: what the trusted setup, the warm-up and each
//! verification of a one-file change cost, with and without the warm build caches, against the
//! same check run directly on a developer's warm checkout. Run with `cargo bench --bench
//! verify`; results and method in the README ("Benchmark: verification").
//!
//! For each repository — `../shared/repos/flask.bundle` (branch main) and
//! `mini-redis.bundle` (branch master) by default; `BENCH_VERIFY_REPOS` takes
//! `NAME=BUNDLE@BRANCH` entries separated by commas — the change is the newest non-merge commit
//! of the branch that modifies exactly one existing source file (outside test directories) and
//! nothing else; its parent is the base. The check and setup are the detected ones (flask's
//! setup as its `.autonomous-dev.toml` would say it, [`REPO_SETUP`]), run by the daemon's own
//! [`Verifier`] in the real bubblewrap,
//! on worktrees exported by the daemon's own [`Repo::export`]. Scenarios:
//! - cold caches: the base set up (setup alone: its warm-up is `true`), then one verification;
//! - warm caches: the base set up and warmed up, then [`RUNS`] verifications, each on a fresh
//!   worktree;
//! - direct: a clone at the base with the same setup run on the host, the check run once
//!   (warm), then [`RUNS`] times: the base restored and checked again (untimed, re-warming), the
//!   change written, the check timed.
//!
//! The setup needs the package registries (PyPI, crates.io); nothing else reaches the network.
//! Prints the machine facts and a Markdown table on stdout, progress on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autonomous_dev::git::Repo;
use autonomous_dev::repo_config::RepoConfig;
use autonomous_dev::task::FileChange;
use autonomous_dev::verify::{
    CheckPlan, DETECTION_FILES, Prepared, Verifier, VerifyConfig, VerifyStatus,
};

/// Timed verifications per scenario with warm caches.
const RUNS: usize = 3;
/// The repositories measured unless `BENCH_VERIFY_REPOS` says otherwise.
const DEFAULT_REPOS: &str = "flask=../shared/repos/flask.bundle@main,\
    mini-redis=../shared/repos/mini-redis.bundle@master";
/// Limit of one run (setup or check): a cold Rust build on 2 cores takes minutes.
const TIMEOUT: Duration = Duration::from_secs(1800);
/// The branch name the base is tracked under in the bench's clone (`origin/<BASE_BRANCH>`).
const BASE_BRANCH: &str = "bench-base";
/// The `setup` a repository's `.autonomous-dev.toml` would say where the detected one does not
/// make its suite run: flask's tests need its `tests` dependency group (PEP 735, which this
/// pip does not read) and a pytest its conftest still works with (8.4 removed
/// `monkeypatch.notset`).
const REPO_SETUP: [(&str, &str); 1] = [(
    "flask",
    "python3 -m venv .venv && .venv/bin/python -m pip install --quiet -e . 'pytest<8.4' \
     asgiref greenlet python-dotenv",
)];
/// Source files a change may modify.
const SOURCE_SUFFIXES: [&str; 4] = [".py", ".rs", ".go", ".js"];

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without it
    // (only to check they start): measure only when asked.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("verify benchmark: run it with `cargo bench --bench verify`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let repos = std::env::var("BENCH_VERIFY_REPOS").unwrap_or_else(|_| DEFAULT_REPOS.to_owned());
    let mut rows = Vec::new();
    for entry in repos.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once('=')
            .with_context(|| format!("`{entry}`: expected NAME=BUNDLE@BRANCH"))?;
        let (bundle, branch) = rest
            .rsplit_once('@')
            .with_context(|| format!("`{entry}`: expected NAME=BUNDLE@BRANCH"))?;
        let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join(bundle);
        rows.push(measure(name, &bundle, branch).await?);
    }
    println!("{}", machine());
    println!();
    println!(
        "| repository | change | check | setup | warm-up | verification, cold caches | \
         verifications, warm caches (copy + check) | direct, warm checkout | warm ÷ direct | \
         prepared tree, cold / warm | worktree |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// One repository's results, as a table row.
async fn measure(name: &str, bundle: &Path, branch: &str) -> Result<String> {
    let work = tempfile::tempdir()?;
    let clone = work.path().join("clone");
    git(
        work.path(),
        &[
            "clone",
            "--quiet",
            "-b",
            branch,
            path_str(bundle)?,
            path_str(&clone)?,
        ],
    )?;
    let (commit, file) = one_file_change(&clone)?;
    let base = git(&clone, &["rev-parse", &format!("{commit}^")])?;
    let subject = git(&clone, &["log", "-1", "--format=%s", &commit])?;
    eprintln!("{name}: change {} ({subject}) to {file}", &commit[..10]);
    git(
        &clone,
        &[
            "update-ref",
            &format!("refs/remotes/origin/{BASE_BRANCH}"),
            &base,
        ],
    )?;
    let repo = Repo::open(&clone, BASE_BRANCH, None)?;
    let change = vec![FileChange {
        path: file.clone(),
        content: git_raw(&clone, &["show", &format!("{commit}:{file}")])?,
    }];
    let detection: Vec<FileChange> = DETECTION_FILES
        .iter()
        .filter_map(|path| {
            let content = git_raw(&clone, &["show", &format!("{base}:{path}")]).ok()?;
            Some(FileChange {
                path: (*path).to_owned(),
                content,
            })
        })
        .collect();

    // Cold caches: the setup alone, then one verification.
    let cold = verifier(&work.path().join("cache-cold"))?;
    let repo_config = RepoConfig {
        setup: REPO_SETUP
            .iter()
            .find(|(repo, _)| *repo == name)
            .map(|(_, setup)| (*setup).to_owned()),
        ..RepoConfig::default()
    };
    let plan = cold
        .plan(&detection, &repo_config)
        .context("no check detected")?;
    let setup = plan.setup.clone().context("no setup detected")?;
    eprintln!("{name}: check `{}`, setup `{setup}`", plan.command);
    let setup_only = CheckPlan {
        command: "true".into(),
        ..plan.clone()
    };
    let (cold_dir, cold_setup) = prepare(&cold, &repo, &base, &setup_only).await?;
    eprintln!("{name}: setup {}", secs(cold_setup));
    let (cold_verification, _) = verify(&cold, &repo, &change, &plan, &cold_dir).await?;
    eprintln!(
        "{name}: verification with cold caches {}",
        secs(cold_verification)
    );

    // Warm caches: setup and warm-up, then RUNS verifications.
    let warm = verifier(&work.path().join("cache-warm"))?;
    let started = Instant::now();
    let Prepared::Ready {
        dir: warm_dir,
        made: Some(made),
    } = warm
        .prepare(&base, &plan, |dir| export(&repo, &[], dir))
        .await?
    else {
        bail!("{name}: the setup failed on the base");
    };
    let warm_up = Duration::from_millis(made.warm_up.duration_ms);
    eprintln!(
        "{name}: setup {} and warm-up {} ({}) in {}",
        secs(Duration::from_millis(made.setup.duration_ms)),
        secs(warm_up),
        made.warm_up.summary(),
        secs(started.elapsed()),
    );
    let mut warm_runs = Vec::new();
    let mut status = None;
    for run in 1..=RUNS {
        let (took, verification) = verify(&warm, &repo, &change, &plan, &warm_dir).await?;
        eprintln!(
            "{name}: verification {run} with warm caches {} ({verification})",
            secs(took)
        );
        status.get_or_insert(verification);
        warm_runs.push(took);
    }
    // The same tree again: prepared once per base commit.
    let Prepared::Ready { made: None, .. } = warm
        .prepare(&base, &plan, |dir| export(&repo, &[], dir))
        .await?
    else {
        bail!("{name}: the base was set up a second time");
    };

    // Direct: a developer's warm checkout at the base.
    let direct = work.path().join("direct");
    git(
        work.path(),
        &["clone", "--quiet", path_str(&clone)?, path_str(&direct)?],
    )?;
    git(&direct, &["checkout", "--quiet", "--detach", &base])?;
    host(&direct, &setup, true)?;
    host(&direct, &plan.command, false)?;
    let mut direct_runs = Vec::new();
    for run in 1..=RUNS {
        git(&direct, &["checkout", "--quiet", "--force", &base])?;
        host(&direct, &plan.command, false)?;
        std::fs::write(direct.join(&file), &change[0].content)?;
        let took = host(&direct, &plan.command, false)?;
        eprintln!("{name}: direct check {run} {}", secs(took));
        direct_runs.push(took);
    }

    let worktree = work.path().join("worktree");
    export(&repo, &change, worktree.clone()).await?;
    let cold_du = du(&cold_dir)?;
    let warm_du = du(&warm_dir)?;
    let worktree_du = du(&worktree)?;
    let median = |runs: &[Duration]| {
        let mut sorted = runs.to_vec();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    let ratio = median(&warm_runs).as_secs_f64() / median(&direct_runs).as_secs_f64();
    Ok(format!(
        "| {name} | `{}` {file} | `{}` ({}) | {} | {} | {} | {} | {} | {ratio:.2}× | {} / {} | {} |",
        &commit[..10],
        plan.command,
        status.unwrap_or_default(),
        secs(Duration::from_millis(made.setup.duration_ms)),
        secs(warm_up),
        secs(cold_verification),
        list(&warm_runs),
        list(&direct_runs),
        mib(cold_du),
        mib(warm_du),
        mib(worktree_du),
    ))
}

/// The newest non-merge commit of HEAD's history that modifies exactly one existing file, a
/// source file outside test directories: `(commit, path)`.
fn one_file_change(clone: &Path) -> Result<(String, String)> {
    let log = git(
        clone,
        &[
            "log",
            "--no-merges",
            "--format=%x00%H",
            "--name-status",
            "-n",
            "500",
        ],
    )?;
    for entry in log.split('\0').filter(|e| !e.trim().is_empty()) {
        let mut lines = entry.lines().filter(|l| !l.trim().is_empty());
        let Some(commit) = lines.next() else { continue };
        let changed: Vec<&str> = lines.collect();
        let [only] = changed.as_slice() else { continue };
        let Some(path) = only.strip_prefix("M\t") else {
            continue;
        };
        let test = path
            .split('/')
            .any(|part| matches!(part, "tests" | "test" | "testing" | "examples" | "benches"));
        if !test && SOURCE_SUFFIXES.iter().any(|s| path.ends_with(s)) {
            return Ok((commit.trim().to_owned(), path.to_owned()));
        }
    }
    bail!("no commit of the last 500 modifies exactly one source file")
}

/// The daemon's verifier with its defaults, prepared trees under `cache`, and [`TIMEOUT`].
fn verifier(cache: &Path) -> Result<Verifier> {
    Ok(Verifier::new(VerifyConfig {
        timeout: Some(TIMEOUT),
        cache_dir: cache.to_path_buf(),
        ..VerifyConfig::default()
    })?)
}

/// Prepares `base` for `plan`: the tree and how long its setup took.
async fn prepare(
    verifier: &Verifier,
    repo: &Repo,
    base: &str,
    plan: &CheckPlan,
) -> Result<(PathBuf, Duration)> {
    match verifier
        .prepare(base, plan, |dir| export(repo, &[], dir))
        .await?
    {
        Prepared::Ready {
            dir,
            made: Some(made),
        } => Ok((dir, Duration::from_millis(made.setup.duration_ms))),
        Prepared::Ready { made: None, .. } => bail!("the base was prepared already"),
        Prepared::Failed(failed) => bail!(
            "the setup failed on the base: {}\n{}",
            failed.summary(),
            failed.output_tail
        ),
    }
}

/// One verification of `change` on a fresh worktree over `prepared`, as the pipeline runs it:
/// the wall time of copy and check (the export excluded), and the result's summary.
async fn verify(
    verifier: &Verifier,
    repo: &Repo,
    change: &[FileChange],
    plan: &CheckPlan,
    prepared: &Path,
) -> Result<(Duration, String)> {
    let worktree = autonomous_dev::verify::Worktree::new()?;
    export(repo, change, worktree.path().to_path_buf()).await?;
    let started = Instant::now();
    let verification = verifier
        .verify(worktree.path(), plan, Some(prepared))
        .await?;
    let took = started.elapsed();
    if matches!(
        verification.status,
        VerifyStatus::TimedOut | VerifyStatus::NotVerified
    ) || verification.environment.is_some()
    {
        bail!(
            "the verification could not judge the change: {}",
            verification.summary()
        );
    }
    Ok((took, verification.summary()))
}

/// The base with `change` written into `dir` by the daemon's export.
async fn export(repo: &Repo, change: &[FileChange], dir: PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(&dir)?;
    repo.export(change, &dir).map_err(std::io::Error::other)
}

/// Runs `script` with `sh -c` in `dir` on the host, the tree's venv first on PATH (as an
/// activated venv): its wall time. Errors: it could not start, or exited non-zero when it
/// `must_pass` (a check may fail: its time still counts).
fn host(dir: &Path, script: &str, must_pass: bool) -> Result<Duration> {
    let path = std::env::var("PATH").unwrap_or_default();
    let started = Instant::now();
    let output = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{path}", dir.join(".venv/bin").display()),
        )
        .env("VIRTUAL_ENV", dir.join(".venv"))
        .output()?;
    let took = started.elapsed();
    if !output.status.success() {
        let out = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        let tail = &out[out.char_indices().rev().nth(400).map_or(0, |(i, _)| i)..];
        if must_pass {
            bail!("`{script}` on the host: {}: …{tail}", output.status);
        }
        eprintln!("`{script}` on the host: {}: …{tail}", output.status);
    }
    Ok(took)
}

/// `git args…` in `dir`: its stdout, trailing whitespace trimmed. Errors: git failed (its
/// stderr).
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    Ok(git_raw(dir, args)?.trim_end().to_owned())
}

/// `git args…` in `dir`: its stdout as it is.
fn git_raw(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git").args(args).current_dir(dir).output()?;
    if !output.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("a path that is not UTF-8")
}

/// Bytes under `dir` (`du -sb`).
fn du(dir: &Path) -> Result<u64> {
    let out = Command::new("du").arg("-sb").arg(dir).output()?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text.split_whitespace().next().unwrap_or("0").parse()?)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn list(runs: &[Duration]) -> String {
    runs.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// CPU, cores, kernel and toolchain versions, for the README.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default()
    };
    format!(
        "Machine: {cpu}, {cores} cores; {}; {}; {}",
        version("bwrap"),
        version("cargo"),
        version("python3"),
    )
}
