//! Verification: runs the target repository's own check command (VERIFY_COMMAND, else the
//! repository's `.autonomous-dev.toml`, else detected from the base branch's files) on a
//! worktree holding the base branch plus a change, inside a bubblewrap sandbox, and reports exit
//! status, duration and the tail of the output. Before a base's first check, the trusted setup
//! (`go mod download`, `cargo fetch`, …) runs on the base commit alone, with network, then the
//! check once on it, offline, to warm the build caches; the tree they leave is kept per base
//! commit under VERIFY_CACHE_DIR and each check gets its own copy, offline. Model-written code
//! never runs outside the sandbox, nor with network: without a working `bwrap` a [`Verifier`]
//! cannot be built.

mod detect;
mod offline;
mod sandbox;

pub use detect::{DETECTED, DETECTED_SETUP, DETECTION_FILES, DETECTION_MAX_BYTES, steers_check};
pub use sandbox::Worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::gates::OwnSecrets;
use crate::repo_config::RepoConfig;
use crate::task::FileChange;
use sandbox::{Exit, Purpose, Sandbox};

/// VERIFY_TIMEOUT's default, when neither it nor the repository sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Lines of output kept in a [`Verification`] (what the PR body, the roles and `tasks show`
/// see).
const TAIL_LINES: usize = 60;
/// Bytes of output kept in a [`Verification`], at most.
const TAIL_BYTES: usize = 6 * 1024;

/// How a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    /// The command exited 0.
    Passed,
    /// The command exited non-zero (a command killed by a signal, e.g. over its memory
    /// limit, exits 128 + the signal's number, as shells report it).
    Failed,
    /// The command ran past VERIFY_TIMEOUT; its whole process tree was killed.
    TimedOut,
    /// Nothing was run (no command found, or verification turned off). Never counts as passed.
    NotVerified,
}

/// The result of one verification, recorded with its stage (`task_stages.evidence`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerifyStatus,
    /// The command run with `sh -c` in the worktree; `None` when nothing was run.
    pub command: Option<String>,
    /// Exit status of the command; `None` when it was killed or never ran.
    pub exit_code: Option<i32>,
    /// Signal that ended the sandbox itself, if one did (the command's own death by a signal is
    /// an exit code above 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why the failure is the environment's, not the change's: a dependency not available
    /// offline (the toolchain's line), or the setup failing on the base. Never sent to the
    /// Engineer as repair material; holds an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Wall-clock duration in milliseconds.
    pub duration_ms: u64,
    /// The last lines of stdout and stderr as they interleaved (at most 60 lines / 6 KiB),
    /// secrets redacted. Untrusted text: the repository's and the model's code wrote it.
    pub output_tail: String,
    /// Why nothing was run, for [`VerifyStatus::NotVerified`]; why the run was stopped, for a
    /// failure without an exit status (the worktree outgrew VERIFY_DISK_MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the output was withheld (`output_tail` then says so and holds nothing of it): it
    /// carried one of the daemon's own secrets, in some form. Holds an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_withheld: Option<String>,
    /// The changed files that define or steer the check ([`steers_check`]): the result is then
    /// "check definition changed", whatever the command's exit, and holds an approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_changed: Vec<String>,
}

impl Verification {
    /// A verification that ran nothing, because of `reason`.
    pub fn not_verified(reason: &str) -> Verification {
        Verification {
            status: VerifyStatus::NotVerified,
            command: None,
            exit_code: None,
            signal: None,
            environment: None,
            duration_ms: 0,
            output_tail: String::new(),
            reason: Some(reason.to_owned()),
            output_withheld: None,
            check_changed: Vec::new(),
        }
    }

    /// One line: ``passed: `make test` (exit 0, 1.2 s)``, ``failed: … (exit 2, …)``,
    /// ``timed out: `…` after 600 s (process tree killed)``, `not verified: <reason>`; led by
    /// `check definition changed (Makefile): ` when the change touched what the check runs.
    pub fn summary(&self) -> String {
        let command = self.command.as_deref().unwrap_or("");
        let seconds = self.duration_ms as f64 / 1000.0;
        let ended = match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => self
                .reason
                .clone()
                .unwrap_or_else(|| "no exit status".to_owned()),
        };
        let mut withheld = self
            .output_withheld
            .as_deref()
            .map(|why| format!("; output withheld: {why}"))
            .unwrap_or_default();
        if let Some(environment) = &self.environment {
            withheld = format!("; {environment}{withheld}");
        }
        let summary = match self.status {
            VerifyStatus::Passed => format!("passed: `{command}` ({ended}, {seconds:.1} s)"),
            VerifyStatus::Failed => format!("failed: `{command}` ({ended}, {seconds:.1} s)"),
            VerifyStatus::TimedOut => {
                format!("timed out: `{command}` after {seconds:.0} s (process tree killed)")
            }
            VerifyStatus::NotVerified => format!(
                "not verified: {}",
                self.reason.as_deref().unwrap_or("nothing was run")
            ),
        };
        if self.check_changed.is_empty() {
            return summary + &withheld;
        }
        format!(
            "check definition changed ({}): {summary}{withheld}",
            self.check_changed.join(", ")
        )
    }

    /// True for a result the Engineer is asked to repair: failed or timed out, or an output
    /// that carried one of the daemon's own secrets — unless the failure is the
    /// [environment's](Self::environment), which no change of the Engineer's can fix.
    pub fn needs_repair(&self) -> bool {
        self.environment.is_none()
            && (matches!(self.status, VerifyStatus::Failed | VerifyStatus::TimedOut)
                || self.output_withheld.is_some())
    }

    /// True for a result that holds an approval for a person: one that [needs
    /// repair](Self::needs_repair), failed for the environment, or whose check definition the
    /// change altered (its pass proves nothing).
    pub fn blocks_approval(&self) -> bool {
        self.needs_repair() || self.environment.is_some() || !self.check_changed.is_empty()
    }
}

/// How to verify (from the configuration).
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// VERIFY_COMMAND; `None`: the repository's `verify`, else detected from the base branch's
    /// files ([`DETECTED`]).
    pub command: Option<String>,
    /// SETUP_COMMAND and SETUP: which setup runs before a base's first check.
    pub setup: SetupPolicy,
    /// VERIFY_TIMEOUT: wall-clock limit of a run, then its process tree is killed; `None`: the
    /// repository's `verify_timeout`, else [`DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// VERIFY_CACHE_DIR: where prepared base trees are kept (one directory per base commit and
    /// setup command). Never visible in the sandbox.
    pub cache_dir: PathBuf,
    /// VERIFY_CACHE_MB in bytes: the most the prepared trees may take together; beyond it the
    /// least recently prepared are removed.
    pub cache_bytes: u64,
    /// VERIFY_MEMORY_MB in bytes: each process's address space (RLIMIT_AS, which counts shared
    /// mappings too); where systemd runs, also the whole run's memory (the scope's MemoryMax,
    /// which counts tmpfs pages).
    pub memory_bytes: u64,
    /// VERIFY_PROCESSES: processes and threads at once (RLIMIT_NPROC, which the kernel counts
    /// per user: with a root daemon, all of VERIFY_USER's on the host; where systemd runs, also
    /// the scope's TasksMax).
    pub processes: u32,
    /// VERIFY_DISK_MB in bytes: the largest file the check may write (RLIMIT_FSIZE), and the
    /// most the worktree may take, checkout included (measured every 0.5 s; beyond it the run
    /// is stopped and fails).
    pub disk_bytes: u64,
    /// VERIFY_TMP_MB in bytes: the size of the sandbox's `/tmp` and of its `/dev/shm` (each).
    pub tmp_bytes: u64,
    /// VERIFY_USER: who runs the check when the daemon runs as root (a user name or uid; never
    /// root). A daemon running as another user runs the check as itself.
    pub user: String,
    /// Paths never visible in the sandbox even if a toolchain directory holds them: REPO_PATH
    /// (the daemon's HOME, the working directory's `.env`, `/etc/autonomous-dev`, `/run`,
    /// `/var/lib`, `/home` and `/root` always are).
    pub hidden: Vec<PathBuf>,
    /// Values that must never appear in an output tail (the daemon's tokens and keys); they are
    /// replaced like any secret the scanner recognizes.
    pub secrets: Vec<SecretString>,
}

impl Default for VerifyConfig {
    /// The settings' defaults: a detected command and setup, the repository's timeout (else
    /// 600 s), prepared trees in `$TMPDIR/autonomous-dev-cache` up to 10 GiB, 4096 MiB, 512
    /// processes, 4096 MiB of disk, 1024 MiB of /tmp, user `nobody`, nothing extra hidden, no
    /// secrets.
    fn default() -> VerifyConfig {
        VerifyConfig {
            command: None,
            setup: SetupPolicy::Auto,
            timeout: None,
            cache_dir: std::env::temp_dir().join("autonomous-dev-cache"),
            cache_bytes: 10 << 30,
            memory_bytes: 4096 << 20,
            processes: 512,
            disk_bytes: 4096 << 20,
            tmp_bytes: 1024 << 20,
            user: "nobody".to_owned(),
            hidden: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

/// Why verification cannot run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// bubblewrap is missing or cannot build its sandbox here; the daemon must not start.
    #[error("bubblewrap sandbox unavailable: {0}")]
    Unavailable(String),
    /// The sandbox could not be started or read for one verification (resources, I/O).
    #[error("cannot run the verification: {0}")]
    Io(#[from] std::io::Error),
}

/// Which setup a base gets (SETUP_COMMAND, SETUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupPolicy {
    /// The repository's `setup`, else, when the check itself is detected, the detected setup
    /// ([`DETECTED_SETUP`]).
    Auto,
    /// SETUP_COMMAND, whatever the repository says.
    Command(String),
    /// SETUP=false: none; every check runs on the bare base, offline.
    Off,
}

/// What one task's verifications run: decided once per run from the daemon's settings, the
/// repository's `.autonomous-dev.toml` and the base branch's files, never from the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPlan {
    /// The check command, run with `sh -c` in the worktree.
    pub command: String,
    /// Wall-clock limit of one run (of the check, and of the setup).
    pub timeout: Duration,
    /// The trusted setup run once per base commit before its first check, if any.
    pub setup: Option<String>,
    /// Absolute paths outside the worktree that the setup and the check may write, each an
    /// empty tmpfs per run (the repository's `writable`).
    pub writable: Vec<PathBuf>,
}

/// How preparing a base for its checks ended.
#[derive(Debug)]
pub enum Prepared {
    /// The prepared tree `dir`, kept under VERIFY_CACHE_DIR: each check gets a copy of it.
    /// `made` is how this call made it; `None` when it was there already.
    Ready {
        /// The tree.
        dir: PathBuf,
        /// The runs that made it.
        made: Option<Preparation>,
    },
    /// The setup failed on the base: the result to record instead of a check (an
    /// [environment](Verification::environment) failure).
    Failed(Verification),
}

/// The runs that made a prepared tree: the setup (passed) and the warm-up, whose result
/// decides nothing (a base may fail its own tests).
#[derive(Debug, Clone)]
pub struct Preparation {
    /// The setup on the base, with network.
    pub setup: Verification,
    /// The check once on the set-up base, offline.
    pub warm_up: Verification,
}

/// Runs check commands in the sandbox; built once, at start, after proving the sandbox works.
#[derive(Debug)]
pub struct Verifier {
    config: VerifyConfig,
    sandbox: Sandbox,
    /// The searchable forms of `config.secrets`.
    own: OwnSecrets,
    /// One lock per prepared tree being made, so two tasks on one base set it up once.
    preparing: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl Verifier {
    /// A verifier for `config`, after running `true` in the sandbox once.
    ///
    /// Errors: [`VerifyError::Unavailable`] when `bwrap` is not on PATH or cannot create its
    /// namespaces (e.g. user namespaces forbidden), with bubblewrap's own message, or when the
    /// daemon runs as root and VERIFY_USER is unknown or root.
    pub fn new(config: VerifyConfig) -> Result<Verifier, VerifyError> {
        let sandbox = Sandbox::new(&config)?;
        sandbox.probe()?;
        let own = OwnSecrets::new(&config.secrets);
        Ok(Verifier {
            config,
            sandbox,
            own,
            preparing: Mutex::default(),
        })
    }

    /// The plan for a base branch whose [`DETECTION_FILES`] are `base` (the text files among
    /// them, read from the base commit's blobs) and whose `.autonomous-dev.toml` says `repo`:
    /// each of command, setup and timeout from the daemon's setting, else the repository's, else
    /// detected ([`DETECTED`]; [`DETECTED_SETUP`] only with a detected command; 600 s), as
    /// [`SetupPolicy`] allows; `None`
    /// when there is no command.
    pub fn plan(&self, base: &[FileChange], repo: &RepoConfig) -> Option<CheckPlan> {
        let configured = self.config.command.clone().or_else(|| repo.verify.clone());
        let detected = configured.is_none();
        let command = configured.or_else(|| detect::detect(base).map(str::to_owned))?;
        let setup = match &self.config.setup {
            SetupPolicy::Command(setup) => Some(setup.clone()),
            SetupPolicy::Off => None,
            SetupPolicy::Auto => repo
                .setup
                .clone()
                .or_else(|| detected.then(|| detect::detect_setup(base)).flatten()),
        };
        Some(CheckPlan {
            command,
            timeout: self
                .config
                .timeout
                .or(repo.verify_timeout)
                .unwrap_or(DEFAULT_TIMEOUT),
            setup,
            writable: repo.writable.clone(),
        })
    }

    /// The prepared tree of `base` (a commit id) for `setup`, under VERIFY_CACHE_DIR; it exists
    /// once [`Self::prepare`] succeeded.
    pub fn prepared_dir(&self, base: &str, setup: &str) -> PathBuf {
        let setup_id = &crate::git::blob_id(setup)[..12];
        self.config
            .cache_dir
            .join("prepared")
            .join(format!("{base}-{setup_id}"))
    }

    /// Prepares `base` for `plan`'s checks: reuses its prepared tree when there is one; else
    /// writes the base's tree with `export` (into an empty directory it is given), runs the
    /// setup there in the sandbox with network (and nothing else relaxed), then the warm-up —
    /// the check itself once, offline, on the base, whose result is only logged, so the build
    /// caches in the tree start warm — and keeps the tree as [`Self::prepared_dir`]; then
    /// removes the least recently prepared trees beyond VERIFY_CACHE_MB. Two tasks on one base
    /// wait for one setup.
    ///
    /// Errors: [`VerifyError::Io`] when the cache directory cannot be written, the export
    /// fails or the sandbox cannot be started. A setup that ran and failed is
    /// [`Prepared::Failed`], not an error.
    pub async fn prepare<F, Fut>(
        &self,
        base: &str,
        plan: &CheckPlan,
        export: F,
    ) -> Result<Prepared, VerifyError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>>,
    {
        let Some(setup) = plan.setup.as_deref() else {
            return Err(VerifyError::Io(std::io::Error::other("no setup to run")));
        };
        let dir = self.prepared_dir(base, setup);
        let lock = self
            .preparing
            .lock()
            .expect("not poisoned")
            .entry(dir.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if dir.is_dir() {
            touch(&dir);
            return Ok(Prepared::Ready { dir, made: None });
        }
        let staging = Worktree::new_in(&self.config.cache_dir.join("staging"))?;
        export(staging.path().to_path_buf()).await?;
        let started = Instant::now();
        let run = self
            .sandbox
            .run(
                staging.path(),
                setup,
                plan.timeout,
                Purpose::Setup,
                &plan.writable,
            )
            .await?;
        let verification = self.verification(setup, &run, started);
        if verification.status != VerifyStatus::Passed {
            let mut failed = verification;
            failed.environment = Some(format!(
                "the setup `{setup}` failed on the base commit, so nothing of the change was run"
            ));
            tracing::warn!(summary = %failed.summary(), "setup failed");
            return Ok(Prepared::Failed(failed));
        }
        tracing::info!(%base, seconds = started.elapsed().as_secs(), "base set up");
        // The warm-up: the check once on the base, so its build caches start warm. Its result
        // decides nothing (a base may fail its own tests); the change's checks tell.
        let started = Instant::now();
        let run = self
            .sandbox
            .run(
                staging.path(),
                &plan.command,
                plan.timeout,
                Purpose::CheckPrepared,
                &plan.writable,
            )
            .await?;
        let warm_up = self.verification(&plan.command, &run, started);
        tracing::info!(%base, summary = %warm_up.summary(), "base warmed up");
        let cache = self.config.cache_dir.join("prepared");
        std::fs::create_dir_all(&cache)?;
        staging.keep(&dir)?;
        let bound = self.config.cache_bytes;
        let keep = dir.clone();
        tokio::task::spawn_blocking(move || evict(&cache, bound, &keep))
            .await
            .ok();
        Ok(Prepared::Ready {
            dir,
            made: Some(Preparation {
                setup: verification,
                warm_up,
            }),
        })
    }

    /// Verifies the repository checked out at `worktree` (writable, discarded afterwards): runs
    /// `plan`'s command (never from the worktree) in the sandbox, offline, killing its process
    /// tree at the plan's timeout. With `prepared` (a tree from [`Self::prepare`]), what the
    /// worktree lacks of it (the setup's downloads and environments) is copied in first; the
    /// worktree's own files win.
    ///
    /// Errors: [`VerifyError::Io`] when the copy fails or the sandbox cannot be started (then
    /// nothing ran).
    pub async fn verify(
        &self,
        worktree: &Path,
        plan: &CheckPlan,
        prepared: Option<&Path>,
    ) -> Result<Verification, VerifyError> {
        let purpose = match prepared {
            Some(from) => {
                let (from, to) = (from.to_path_buf(), worktree.to_path_buf());
                tokio::task::spawn_blocking(move || sandbox::copy_missing(&from, &to))
                    .await
                    .map_err(std::io::Error::other)??;
                Purpose::CheckPrepared
            }
            None => Purpose::Check,
        };
        let started = Instant::now();
        let run = self
            .sandbox
            .run(
                worktree,
                &plan.command,
                plan.timeout,
                purpose,
                &plan.writable,
            )
            .await?;
        let mut verification = self.verification(&plan.command, &run, started);
        if verification.status != VerifyStatus::Passed
            && let Some(line) =
                offline::missing_dependency(&String::from_utf8_lossy(&run.output), worktree)
        {
            verification.environment = Some(format!(
                "dependency not available offline ({}): {}",
                crate::gates::redact(&line),
                offline::ADVICE
            ));
        }
        Ok(verification)
    }

    /// The [`Verification`] of `run` of `command`, started at `started`.
    fn verification(&self, command: &str, run: &sandbox::Run, started: Instant) -> Verification {
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut reason = None;
        let (status, exit_code, signal) = match run.exit {
            Exit::Code(0) => (VerifyStatus::Passed, Some(0), None),
            Exit::Code(code) => (VerifyStatus::Failed, Some(code), None),
            Exit::Signal(signal) => (VerifyStatus::Failed, None, Some(signal)),
            Exit::TimedOut => (VerifyStatus::TimedOut, None, None),
            Exit::DiskFull(used) => {
                reason = Some(format!(
                    "stopped: the worktree took {} MiB, over VERIFY_DISK_MB ({} MiB)",
                    used >> 20,
                    self.config.disk_bytes >> 20
                ));
                (VerifyStatus::Failed, None, None)
            }
        };
        let (output_tail, output_withheld) = self.tail(&run.output);
        Verification {
            status,
            command: Some(command.to_owned()),
            exit_code,
            signal,
            environment: None,
            duration_ms,
            output_tail,
            reason,
            output_withheld,
            check_changed: Vec::new(),
        }
    }

    /// The last [`TAIL_LINES`] lines (at most [`TAIL_BYTES`]) of `output`, lossily decoded,
    /// with secrets redacted ([`crate::gates::redact`]); or, when the output carries one of the
    /// daemon's own secrets in any form ([`OwnSecrets`]), a line saying it was withheld and
    /// why (the second value).
    fn tail(&self, output: &[u8]) -> (String, Option<String>) {
        let text = String::from_utf8_lossy(output);
        if let Some(form) = self.own.find(&text) {
            let why = format!("it carried one of the daemon's own secrets ({form} form)");
            return (format!("[output withheld: {why}]"), Some(why));
        }
        let text = crate::gates::redact(&text);
        let lines: Vec<&str> = text.lines().collect();
        let mut tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        if tail.len() > TAIL_BYTES {
            let mut start = tail.len() - TAIL_BYTES;
            while !tail.is_char_boundary(start) {
                start += 1;
            }
            tail.drain(..start);
        }
        (tail, None)
    }
}

/// Marks a prepared tree as just used (its modification time), for [`evict`].
fn touch(dir: &Path) {
    let now = std::fs::FileTimes::new().set_modified(std::time::SystemTime::now());
    if let Ok(file) = std::fs::File::open(dir) {
        let _ = file.set_times(now);
    }
}

/// Removes the least recently used trees in `cache` (by modification time) until the rest take
/// at most `bound` bytes; never `keep`, the one just prepared. A tree that cannot be removed is
/// logged and left.
fn evict(cache: &Path, bound: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let mut trees: Vec<(std::time::SystemTime, PathBuf, u64)> = entries
        .flatten()
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, e.path(), sandbox::disk_usage(&e.path())))
        })
        .collect();
    trees.sort();
    let mut total: u64 = trees.iter().map(|(_, _, bytes)| bytes).sum();
    for (_, path, bytes) in trees {
        if total <= bound {
            break;
        }
        if path == keep {
            continue;
        }
        tracing::info!(path = %path.display(), mib = bytes >> 20, "removing a prepared base over VERIFY_CACHE_MB");
        match std::fs::remove_dir_all(&path) {
            Ok(()) => total -= bytes,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot remove a prepared base")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secrets: Vec<SecretString>) -> Verifier {
        Verifier {
            sandbox: Sandbox::new(&VerifyConfig::default()).expect("sandbox"),
            own: OwnSecrets::new(&secrets),
            preparing: Mutex::default(),
            config: VerifyConfig {
                secrets,
                ..VerifyConfig::default()
            },
        }
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_redacts_secrets() {
        let verifier = verifier(vec![SecretString::from("hunter2-token")]);
        let mut output = String::new();
        for i in 0..100 {
            output.push_str(&format!("line {i}\n"));
        }
        output.push_str(&format!("leaked AKIA{}\n", "Q7ZL3XW9RT2PLM4N"));
        let (tail, withheld) = verifier.tail(output.as_bytes());
        assert_eq!(withheld, None);
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.starts_with("line 41\n"), "{tail}");
        assert!(tail.ends_with("leaked [REDACTED]"), "{tail}");

        let (tail, withheld) = verifier.tail(b"ok\nleaked hunter2-token\n");
        assert_eq!(
            tail,
            "[output withheld: it carried one of the daemon's own secrets (raw form)]"
        );
        assert!(withheld.is_some());

        let long = "é".repeat(TAIL_BYTES);
        let (tail, _) = verifier.tail(long.as_bytes());
        assert!(tail.len() <= TAIL_BYTES && tail.chars().all(|c| c == 'é'));
    }

    #[test]
    fn summaries_name_the_command_and_how_it_ended() {
        let mut v = Verification {
            status: VerifyStatus::Passed,
            command: Some("make test".into()),
            exit_code: Some(0),
            signal: None,
            environment: None,
            duration_ms: 1234,
            output_tail: String::new(),
            reason: None,
            output_withheld: None,
            check_changed: Vec::new(),
        };
        assert_eq!(v.summary(), "passed: `make test` (exit 0, 1.2 s)");
        assert!(!v.blocks_approval());
        v.status = VerifyStatus::Failed;
        v.exit_code = None;
        v.signal = Some(9);
        assert_eq!(
            v.summary(),
            "failed: `make test` (killed by signal 9, 1.2 s)"
        );
        assert!(v.blocks_approval());
        v.status = VerifyStatus::TimedOut;
        v.duration_ms = 600_000;
        assert_eq!(
            v.summary(),
            "timed out: `make test` after 600 s (process tree killed)"
        );
        assert!(v.blocks_approval());
        let none = Verification::not_verified("no command");
        assert_eq!(none.summary(), "not verified: no command");
        assert!(!none.blocks_approval());
        v.status = VerifyStatus::Passed;
        v.exit_code = Some(0);
        v.signal = None;
        v.duration_ms = 1234;
        v.check_changed = vec!["Makefile".into(), "conftest.py".into()];
        assert_eq!(
            v.summary(),
            "check definition changed (Makefile, conftest.py): passed: `make test` (exit 0, 1.2 s)"
        );
        assert!(v.blocks_approval() && !v.needs_repair());
    }
}
