//! The bubblewrap sandbox a check command runs in: every namespace unshared (no network, its own
//! PID namespace, so killing bubblewrap kills the whole process tree), no capabilities, the root
//! file system read-only, only the worktree and a private `/tmp` writable, the daemon's
//! configuration directory hidden, a cleared environment, and a per-process memory limit
//! (RLIMIT_DATA, set by util-linux's `prlimit`).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::VerifyError;

/// Bytes of output kept while the command runs (the rest is dropped from the front).
const KEEP_BYTES: usize = 64 * 1024;
/// How long output may still arrive after the command ended or was killed.
const READ_GRACE: Duration = Duration::from_secs(10);

/// Variables passed through from the daemon's environment when set: where the toolchains are.
/// Nothing else reaches the sandbox (no token, key or database URL).
const PASSED_ENV: [&str; 11] = [
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "PYENV_ROOT",
    "GOROOT",
    "GOPATH",
    "GOMODCACHE",
    "JAVA_HOME",
];

/// Toolchain homes under `$HOME` passed when their variable is unset, since the sandbox's
/// `HOME` is its private `/tmp`.
const HOME_TOOLCHAINS: [(&str, &str); 3] = [
    ("RUSTUP_HOME", ".rustup"),
    ("CARGO_HOME", ".cargo"),
    ("PYENV_ROOT", ".pyenv"),
];

/// Set in every sandbox: a private home, and package managers told they are offline (there is
/// no network; failing fast beats waiting for a timeout).
const FIXED_ENV: [(&str, &str); 9] = [
    ("HOME", "/tmp"),
    ("TMPDIR", "/tmp"),
    ("CI", "true"),
    ("CARGO_NET_OFFLINE", "true"),
    ("GOPROXY", "off"),
    ("GOTOOLCHAIN", "local"),
    ("npm_config_offline", "true"),
    ("PIP_NO_INDEX", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

/// Directories hidden behind an empty tmpfs: the daemon's configuration (its environment file
/// holds the tokens).
const HIDDEN: [&str; 1] = ["/etc/autonomous-dev"];

/// How a sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed at the timeout.
    TimedOut,
}

/// What a run produced: how it ended and the last [`KEEP_BYTES`] of its output.
pub(super) struct Run {
    pub exit: Exit,
    pub output: Vec<u8>,
}

/// The sandbox's fixed settings, computed once from the daemon's environment.
#[derive(Debug)]
pub(super) struct Sandbox {
    memory_bytes: u64,
    env: Vec<(String, String)>,
    hidden: Vec<PathBuf>,
}

impl Sandbox {
    pub fn new(memory_bytes: u64) -> Sandbox {
        let mut env: Vec<(String, String)> = PASSED_ENV
            .iter()
            .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
            .collect();
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            for (name, dir) in HOME_TOOLCHAINS {
                let path = home.join(dir);
                if std::env::var_os(name).is_none() && path.is_dir() {
                    env.push((name.to_owned(), path.to_string_lossy().into_owned()));
                }
            }
        }
        if !env.iter().any(|(name, _)| name == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        env.extend(
            FIXED_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let hidden = HIDDEN
            .iter()
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .collect();
        Sandbox {
            memory_bytes,
            env,
            hidden,
        }
    }

    /// Runs `true` in a sandbox over an empty worktree.
    ///
    /// Errors: [`VerifyError::Unavailable`] naming the missing package, or with bubblewrap's
    /// message when it cannot build the sandbox.
    pub fn probe(&self) -> Result<(), VerifyError> {
        let worktree = tempfile::tempdir()?;
        let output = self
            .command(worktree.path(), "true")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => VerifyError::Unavailable(
                    "`bwrap` is not on PATH (install Debian's `bubblewrap` package)".into(),
                ),
                _ => VerifyError::Unavailable(format!("cannot start `bwrap`: {e}")),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(VerifyError::Unavailable(format!(
            "`bwrap` cannot build the sandbox here ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }

    /// Runs `script` with `sh -c` in the sandbox over `worktree`; at `timeout` kills bubblewrap,
    /// which takes its PID namespace — every process the command started — with it.
    pub async fn run(
        &self,
        worktree: &Path,
        script: &str,
        timeout: Duration,
    ) -> std::io::Result<Run> {
        let (sender, receiver) = pipe::pipe()?;
        let writer = sender.into_blocking_fd()?;
        let mut command = tokio::process::Command::from(self.command(worktree, script));
        command
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        // The command holds our copies of the pipe's write end: drop them, so that the read
        // ends when the sandbox's processes are gone.
        drop(command);
        let wait = async {
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(status) => {
                    let status = status?;
                    Ok(match (status.code(), status.signal()) {
                        (Some(code), _) => Exit::Code(code),
                        (None, Some(signal)) => Exit::Signal(signal),
                        (None, None) => Exit::Code(-1),
                    })
                }
                Err(_) => {
                    child.kill().await?;
                    Ok::<_, std::io::Error>(Exit::TimedOut)
                }
            }
        };
        let read = tokio::time::timeout(timeout + READ_GRACE, read_tail(receiver));
        let (exit, output) = tokio::join!(wait, read);
        Ok(Run {
            exit: exit?,
            output: output.unwrap_or_default(),
        })
    }

    /// `bwrap … -- prlimit --data=… --core=0 -- sh -c <script>` over `worktree`.
    fn command(&self, worktree: &Path, script: &str) -> std::process::Command {
        let mut args: Vec<OsString> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-all",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        for dir in &self.hidden {
            args.extend(["--tmpfs".into(), dir.into()]);
        }
        args.extend([
            "--bind".into(),
            worktree.into(),
            worktree.into(),
            "--chdir".into(),
            worktree.into(),
            "--clearenv".into(),
        ]);
        for (name, value) in &self.env {
            args.extend(["--setenv".into(), name.into(), value.into()]);
        }
        args.extend([
            "--".into(),
            "prlimit".into(),
            format!("--data={}", self.memory_bytes).into(),
            "--core=0".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ]);
        let mut command = std::process::Command::new("bwrap");
        command.args(args);
        command
    }
}

/// Reads `receiver` to its end, keeping the last [`KEEP_BYTES`].
async fn read_tail(mut receiver: pipe::Receiver) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = receiver.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * KEEP_BYTES {
            tail.drain(..tail.len() - KEEP_BYTES);
        }
    }
    if tail.len() > KEEP_BYTES {
        tail.drain(..tail.len() - KEEP_BYTES);
    }
    tail
}
