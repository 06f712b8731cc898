//! The verification sandbox against the real bubblewrap: every property the crate promises
//! (ARCHITECTURE.md, src/verify/sandbox.rs) is proven by its observable effect on the host — no
//! connection reaches a listener the test holds, no file appears outside the worktree, no
//! process outlives the run, no variable of the daemon reaches the command, no secret reaches
//! the output tail.
//!
//! Tests that need a particular process environment (variables set, PATH pointing nowhere) run
//! in a child process: this test binary re-executed with one `#[ignore]`d child test selected
//! and the environment given at spawn, so no test mutates the environment of the parallel
//! test threads.

use crate::common;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use autonomous_dev::repo_config::RepoConfig;
use autonomous_dev::task::FileChange;
use autonomous_dev::verify::{Verification, Verifier, VerifyConfig, VerifyError, VerifyStatus};
use secrecy::SecretString;

const MIB: u64 = 1024 * 1024;

/// Set in a child process's environment to make its `#[ignore]`d child test run.
const CHILD_MARKER: &str = "AUTONOMOUS_DEV_VERIFY_TEST_CHILD";

fn config(command: Option<&str>, timeout: Duration) -> VerifyConfig {
    VerifyConfig {
        command: command.map(str::to_owned),
        timeout: Some(timeout),
        memory_bytes: 1024 * MIB,
        ..VerifyConfig::default()
    }
}

fn verifier(config: VerifyConfig) -> Verifier {
    Verifier::new(config).expect("bubblewrap sandbox available (install `bubblewrap`)")
}

/// Runs VERIFY_COMMAND (set in `verifier`'s configuration) on `worktree`.
async fn configured(verifier: &Verifier, worktree: &Path) -> Result<Verification, VerifyError> {
    let plan = verifier
        .plan(&[], &RepoConfig::default())
        .expect("VERIFY_COMMAND is set");
    verifier.verify(worktree, &plan, None).await
}

/// Runs `command` in the sandbox over `worktree` with a 20 s timeout and 1 GiB of memory.
async fn run(worktree: &Path, command: &str) -> Verification {
    configured(
        &verifier(config(Some(command), Duration::from_secs(20))),
        worktree,
    )
    .await
    .expect("verify")
}

/// A name no other test (or concurrent run of this binary) uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("ad-verify-{label}-{}-{nanos}", std::process::id())
}

/// PIDs of the host's processes whose argv is exactly `argv` (the host sees the processes of
/// every PID namespace below its own).
fn processes_with_argv(argv: &[&str]) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .strip_suffix(b"\0")
            .unwrap_or(&cmdline)
            .split(|b| *b == 0)
            .collect();
        if args.len() == argv.len() && args.iter().zip(argv).all(|(a, b)| *a == b.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Polls (every 50 ms, up to `within`) until a process with exactly `argv` exists.
async fn appears(argv: &[&str], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !processes_with_argv(argv).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls (every 50 ms, up to `within`, since the kernel reaps asynchronously) until no process
/// with exactly `argv` exists; returns the survivors' PIDs.
async fn survivors(argv: &[&str], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let pids = processes_with_argv(argv);
        if pids.is_empty() || Instant::now() >= deadline {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Re-executes this test binary running only the `#[ignore]`d test `name`, with `env` added to
/// the inherited environment (and `env_remove` removed); returns its stdout after checking that
/// the child test ran and passed.
fn run_child(name: &str, env: &[(&str, &str)], env_remove: &[&str]) -> String {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            &common::exact_name(module_path!(), name),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, "1");
    for (name, value) in env {
        command.env(name, value);
    }
    for name in env_remove {
        command.env_remove(name);
    }
    let output = command.output().expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child test {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child test {name} did not run:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The text a child test printed between `BEGIN <label>` and `END <label>` lines.
fn child_section(stdout: &str, label: &str) -> String {
    let begin = format!("BEGIN {label}\n");
    let end = format!("\nEND {label}");
    let start = stdout
        .find(&begin)
        .unwrap_or_else(|| panic!("no {label} in child output:\n{stdout}"))
        + begin.len();
    let len = stdout[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("unterminated {label}:\n{stdout}"));
    stdout[start..start + len].to_owned()
}

fn is_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

// --- Exit status and output ------------------------------------------------------------------

#[tokio::test]
async fn a_passing_command_passes_with_its_output() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let command = "echo out-1; echo err-1 >&2; echo out-2";
    let v = run(worktree.path(), command).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    assert_eq!(v.command.as_deref(), Some(command));
    assert_eq!(v.exit_code, Some(0));
    assert_eq!(v.signal, None);
    assert_eq!(v.reason, None);
    assert_eq!(
        v.output_tail, "out-1\nerr-1\nout-2",
        "stdout and stderr in order"
    );
    assert!(!v.blocks_approval());
    assert!(
        v.summary()
            .starts_with(&format!("passed: `{command}` (exit 0, ")),
        "{}",
        v.summary()
    );
}

#[tokio::test]
async fn a_failing_command_fails_with_its_exit_code_and_output() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let command =
        "echo compiling; echo 'error: expected 42' >&2; echo 'test result: FAILED'; exit 3";
    let v = run(worktree.path(), command).await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    assert_eq!(v.exit_code, Some(3));
    assert_eq!(v.signal, None);
    assert_eq!(
        v.output_tail,
        "compiling\nerror: expected 42\ntest result: FAILED"
    );
    assert!(v.blocks_approval());
    assert!(
        v.summary()
            .starts_with(&format!("failed: `{command}` (exit 3, ")),
        "{}",
        v.summary()
    );
}

/// A command killed by a signal fails. bubblewrap's init reports a child killed by signal N as
/// exit status 128 + N, so the sandbox sees an exit code rather than a signal (see the report:
/// `Verification::signal` is documented but only set when bwrap itself is killed).
#[tokio::test]
async fn a_command_killed_by_a_signal_fails() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let v = run(
        worktree.path(),
        "echo about to die; kill -KILL $$; echo survived",
    )
    .await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    assert!(
        v.signal == Some(9) || v.exit_code == Some(128 + 9),
        "neither signal 9 nor exit 137: {v:?}"
    );
    assert_eq!(v.output_tail, "about to die");
    assert!(v.blocks_approval());
}

// --- Network ---------------------------------------------------------------------------------

/// Tries a connection to the host's loopback listener, a name lookup and connections to outside
/// addresses; prints one line per attempt and the network interfaces it sees.
const NETWORK_PROBE: &str = r#"
import socket, sys
port = int(sys.argv[1])
def attempt(label, action):
    try:
        action()
        print(label, "SUCCEEDED", flush=True)
    except OSError as e:
        print(label, "FAILED", type(e).__name__, e, flush=True)
attempt("loopback", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
attempt("resolve", lambda: socket.getaddrinfo("example.com", 443))
attempt("outside4", lambda: socket.create_connection(("1.1.1.1", 443), timeout=2).close())
attempt("outside6", lambda: socket.create_connection(("2606:4700:4700::1111", 443), timeout=2).close())
print("interfaces", sorted(name for _, name in socket.if_nameindex()), flush=True)
"#;

#[tokio::test]
async fn the_sandbox_has_no_network() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let worktree = tempfile::tempdir().expect("tempdir");
    std::fs::write(worktree.path().join("probe.py"), NETWORK_PROBE).expect("write probe");

    let v = run(worktree.path(), &format!("python3 probe.py {port}")).await;

    assert_eq!(
        v.status,
        VerifyStatus::Passed,
        "the probe itself ran: {v:?}"
    );
    let tail = &v.output_tail;
    for label in ["loopback", "resolve", "outside4", "outside6"] {
        assert!(tail.contains(&format!("{label} FAILED")), "{label}: {tail}");
        assert!(
            !tail.contains(&format!("{label} SUCCEEDED")),
            "{label}: {tail}"
        );
    }
    assert!(
        tail.contains("gaierror"),
        "name lookup failed as such: {tail}"
    );
    assert!(
        tail.contains("interfaces ['lo']"),
        "only a loopback: {tail}"
    );
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the sandbox reached the host's listener from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
    // Control: a connection from the host is seen by the same check.
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("host connects");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match listener.accept() {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("the host's own connection was not accepted: {e}"),
        }
    }
}

#[tokio::test]
async fn bash_dev_tcp_cannot_reach_the_host() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let worktree = tempfile::tempdir().expect("tempdir");
    let command = format!(
        "bash -c 'echo hello > /dev/tcp/127.0.0.1/{port}' && echo CONNECTED || echo CONNECT-FAILED"
    );
    let v = run(worktree.path(), &command).await;
    assert!(v.output_tail.contains("CONNECT-FAILED"), "{v:?}");
    assert!(!v.output_tail.lines().any(|l| l == "CONNECTED"), "{v:?}");
    assert!(
        v.output_tail.contains("/dev/tcp/127.0.0.1"),
        "bash's error: {v:?}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the sandbox reached the host's listener"
    );
}

// --- File system -----------------------------------------------------------------------------

#[tokio::test]
async fn only_the_worktree_and_a_private_tmp_are_writable() {
    let worktree = tempfile::tempdir().expect("tempdir");
    // Outside the worktree and outside /tmp (which the sandbox replaces with its own): /var/tmp,
    // else the target directory when the checkout is not under /tmp.
    let outside = ["/var/tmp", env!("CARGO_TARGET_TMPDIR")]
        .into_iter()
        .filter(|dir| !Path::new(dir).starts_with("/tmp"))
        .find_map(|dir| tempfile::tempdir_in(dir).ok())
        .expect("a writable directory outside /tmp");
    std::fs::write(outside.path().join("visible.txt"), "seen from inside\n").expect("write");
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let name = unique("write");
    let targets = [
        ("OUTSIDE", outside.path().join(&name)),
        ("ETC", Path::new("/etc").join(&name)),
        ("HOME", home.join(&name)),
        ("USR", Path::new("/usr/local").join(&name)),
    ];
    let host_tmp = Path::new("/tmp").join(&name);
    let mut script = format!(
        "echo kept > kept.txt\nmkdir -p build/out && echo built > build/out/artifact\n\
         cat {visible}\n",
        visible = outside.path().join("visible.txt").display()
    );
    for (label, path) in &targets {
        script.push_str(&format!(
            "if echo pwned > {path}; then echo {label}-WRITTEN; else echo {label}-REFUSED; fi\n",
            path = path.display()
        ));
    }
    script.push_str(&format!(
        "echo private > {tmp} && cat {tmp} && echo TMP-WRITTEN\n",
        tmp = host_tmp.display()
    ));

    let v = run(worktree.path(), &script).await;

    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    let tail = &v.output_tail;
    // Only the allowlisted trees are there at all (tests/it/hostile/sandbox.rs proves what is
    // hidden): a directory outside them is neither readable nor writable.
    assert!(
        !tail.contains("seen from inside"),
        "a directory outside the allowlist is visible: {tail}"
    );
    for (label, path) in &targets {
        assert!(
            tail.contains(&format!("{label}-REFUSED")),
            "{label}: {tail}"
        );
        assert!(
            !tail.contains(&format!("{label}-WRITTEN")),
            "{label}: {tail}"
        );
        assert!(!path.exists(), "{} was written on the host", path.display());
    }
    assert!(tail.contains("Read-only file system"), "{tail}");
    assert!(
        tail.contains("private\nTMP-WRITTEN"),
        "/tmp is writable inside: {tail}"
    );
    assert!(
        !host_tmp.exists(),
        "the sandbox's /tmp leaked to the host's"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.path().join("kept.txt")).expect("kept.txt persisted"),
        "kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.path().join("build/out/artifact")).expect("artifact"),
        "built\n"
    );
}

#[tokio::test]
async fn a_repository_s_writable_paths_are_empty_private_tmpfs_for_each_run() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let stamp = format!("/var/tmp/{}", unique("stamp"));
    let script = format!(
        "test ! -e {stamp} && echo one > {stamp} && echo two > /opt/tool/cache/f && \
         stat -c 'parent %a' /opt/tool && echo WRITTEN"
    );
    let verifier = verifier(config(Some(&script), Duration::from_secs(20)));
    let repo = RepoConfig {
        writable: vec!["/var/tmp".into(), "/opt/tool/cache".into()],
        ..RepoConfig::default()
    };
    let plan = verifier.plan(&[], &repo).expect("VERIFY_COMMAND is set");
    // Twice: the second run finds nothing of the first's writes.
    for run in 1..=2 {
        let v = verifier
            .verify(worktree.path(), &plan, None)
            .await
            .expect("verify");
        assert_eq!(v.status, VerifyStatus::Passed, "run {run}: {v:?}");
        assert!(v.output_tail.contains("parent 755\nWRITTEN"), "{v:?}");
    }
    assert!(
        !Path::new(&stamp).exists(),
        "the tmpfs leaked to the host's /var/tmp"
    );

    let v = configured(&verifier, worktree.path())
        .await
        .expect("verify");
    assert_eq!(v.status, VerifyStatus::Failed, "without `writable`: {v:?}");
}

// --- Timeout and process tree ----------------------------------------------------------------

#[tokio::test]
async fn a_timeout_kills_the_whole_process_tree() {
    let worktree = tempfile::tempdir().expect("tempdir");
    // Unique sleep durations are the markers: no other process has these argv.
    let pid = std::process::id();
    let detached = format!("4242.{pid}");
    let nohup = format!("4243.{pid}");
    let foreground = format!("4244.{pid}");
    let command = format!(
        "setsid sleep {detached} & nohup sleep {nohup} >/dev/null 2>&1 & echo started; \
         sleep {foreground}"
    );
    let verifier = verifier(config(Some(&command), Duration::from_secs(2)));

    let grandchild = ["sleep", detached.as_str()];
    let (v, seen) = tokio::join!(
        configured(&verifier, worktree.path()),
        appears(&grandchild, Duration::from_secs(2))
    );
    let v = v.expect("verify");

    assert!(
        seen,
        "control: the detached grandchild was running during the run"
    );
    assert_eq!(v.status, VerifyStatus::TimedOut, "{v:?}");
    assert_eq!((v.exit_code, v.signal), (None, None));
    assert!(v.blocks_approval());
    assert!(
        (1_900..6_000).contains(&v.duration_ms),
        "stopped at the timeout, not waiting for output: {v:?}"
    );
    assert!(
        v.output_tail.contains("started"),
        "output before the kill kept: {v:?}"
    );
    assert!(v.summary().starts_with("timed out: `"), "{}", v.summary());
    for marker in [&detached, &nohup, &foreground] {
        let left = survivors(&["sleep", marker], Duration::from_secs(2)).await;
        assert!(
            left.is_empty(),
            "sleep {marker} survived the timeout: {left:?}"
        );
    }
}

#[tokio::test]
async fn background_processes_die_with_the_command() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let marker = format!("4245.{}", std::process::id());
    // The background process keeps the output pipe open and proves it started by writing its
    // PID into the worktree before the command exits.
    let command = format!(
        "setsid sh -c 'echo $$ > bg.pid; exec sleep {marker}' & \
         while [ ! -s bg.pid ]; do sleep 0.05; done; echo left it running"
    );
    let verifier = verifier(config(Some(&command), Duration::from_secs(30)));
    let started = Instant::now();
    let v = configured(&verifier, worktree.path())
        .await
        .expect("verify");
    let elapsed = started.elapsed();

    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    assert_eq!(v.output_tail, "left it running");
    assert!(
        worktree.path().join("bg.pid").is_file(),
        "control: the background process started"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "verify waited for the background process ({elapsed:?})"
    );
    let left = survivors(&["sleep", &marker], Duration::from_secs(2)).await;
    assert!(
        left.is_empty(),
        "background sleep {marker} survived: {left:?}"
    );
}

// --- Memory ----------------------------------------------------------------------------------

#[tokio::test]
async fn the_memory_limit_stops_a_large_allocation() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let allocate = |mib: u64| {
        format!("python3 -c 'b = bytearray({mib} * 1024 * 1024); print(\"allocated\", len(b))'")
    };
    let mut limited = config(None, Duration::from_secs(20));
    limited.memory_bytes = 256 * MIB;

    limited.command = Some(allocate(1024));
    let v = configured(&verifier(limited.clone()), worktree.path())
        .await
        .expect("verify");
    assert_eq!(
        v.status,
        VerifyStatus::Failed,
        "1 GiB under a 256 MiB limit: {v:?}"
    );
    assert!(v.output_tail.contains("MemoryError"), "{v:?}");
    assert!(!v.output_tail.contains("allocated"), "{v:?}");

    limited.command = Some(allocate(32));
    let v = configured(&verifier(limited), worktree.path())
        .await
        .expect("verify");
    assert_eq!(
        v.status,
        VerifyStatus::Passed,
        "32 MiB under 256 MiB: {v:?}"
    );
    assert_eq!(v.output_tail, format!("allocated {}", 32 * MIB));
}

// --- Environment and secrets -----------------------------------------------------------------

/// Every variable the sandbox may show: PASSED_ENV and FIXED_ENV of src/verify/sandbox.rs, and
/// what `sh` itself sets.
const DOCUMENTED_ENV: [&str; 30] = [
    // Passed through when set.
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
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    // Fixed.
    "HOME",
    "TMPDIR",
    "CI",
    "CARGO_NET_OFFLINE",
    "GOPROXY",
    "GOTOOLCHAIN",
    "npm_config_offline",
    "PIP_NO_INDEX",
    "PYTHONDONTWRITEBYTECODE",
    // The shell's own.
    "PWD",
    "SHLVL",
    "OLDPWD",
];

/// Values the parent gives the child in variables that must not reach the sandbox.
fn leaked_values() -> Vec<(&'static str, String)> {
    [
        "GITHUB_TOKEN",
        "ANTHROPIC_API_KEY",
        "DATABASE_URL",
        "OPENAI_API_KEY",
        "LEAKY_VARIABLE",
    ]
    .into_iter()
    .map(|name| {
        (
            name,
            format!(
                "leak{}{}",
                name.to_lowercase().replace('_', ""),
                std::process::id()
            ),
        )
    })
    .collect()
}

#[test]
fn the_daemons_environment_does_not_reach_the_sandbox() {
    let values = leaked_values();
    let env: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let stdout = run_child("child_prints_the_sandboxed_env", &env, &[]);
    let tail = child_section(&stdout, "ENV");

    let names: BTreeSet<&str> = tail
        .lines()
        .map(|line| line.split_once('=').map_or(line, |(name, _)| name))
        .collect();
    let documented: BTreeSet<&str> = DOCUMENTED_ENV.into_iter().collect();
    let extra: Vec<&&str> = names.difference(&documented).collect();
    assert!(
        extra.is_empty(),
        "undocumented variables {extra:?} in:\n{tail}"
    );
    for (name, value) in &values {
        assert!(
            !tail.contains(value),
            "{name}'s value reached the sandbox:\n{tail}"
        );
    }
    // Control: `env` ran, with the fixed variables.
    for line in ["HOME=/tmp", "TMPDIR=/tmp", "CI=true", "PIP_NO_INDEX=1"] {
        assert!(tail.lines().any(|l| l == line), "{line} missing:\n{tail}");
    }
    assert!(names.contains("PATH"), "{tail}");
}

#[tokio::test]
#[ignore = "child process of the_daemons_environment_does_not_reach_the_sandbox"]
async fn child_prints_the_sandboxed_env() {
    if !is_child() {
        return;
    }
    for (name, _) in leaked_values() {
        let value = std::env::var(name).unwrap_or_default();
        assert!(value.starts_with("leak"), "{name} given by the parent");
    }
    let worktree = tempfile::tempdir().expect("tempdir");
    let v = run(worktree.path(), "env").await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    println!("BEGIN ENV\n{}\nEND ENV", v.output_tail);
}

#[tokio::test]
async fn configured_secrets_withhold_the_output_and_token_shaped_strings_are_redacted() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let secret = format!("s3cr3t-{}", unique("token"));
    let aws_key = format!("AKIA{}", "Q7ZL3XW9RT2PLM4N");
    // The command reads them from files, as a test printing a fixture or an env dump would.
    std::fs::write(worktree.path().join("secret.txt"), &secret).expect("write");
    std::fs::write(worktree.path().join("key.txt"), &aws_key).expect("write");
    let mut with_secret = config(
        Some(
            "echo \"token is $(cat secret.txt).\"; echo \"aws key $(cat key.txt)\" >&2; echo done",
        ),
        Duration::from_secs(20),
    );
    with_secret.secrets = vec![
        SecretString::from(secret.clone()),
        SecretString::from(String::new()),
    ];
    let v = configured(&verifier(with_secret), worktree.path())
        .await
        .expect("verify");

    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    assert!(!v.output_tail.contains(&secret), "{}", v.output_tail);
    // The daemon's own secret withholds the whole output and holds the approval.
    assert_eq!(
        v.output_tail,
        "[output withheld: it carried one of the daemon's own secrets (raw form)]"
    );
    assert!(v.output_withheld.is_some() && v.blocks_approval(), "{v:?}");

    // Without it, token-shaped strings are redacted and the rest is kept.
    std::fs::write(worktree.path().join("secret.txt"), "nothing").expect("write");
    let plain = config(
        Some("echo \"aws key $(cat key.txt)\" >&2; echo done"),
        Duration::from_secs(20),
    );
    let v = configured(&verifier(plain), worktree.path())
        .await
        .expect("verify");
    assert_eq!(v.output_tail, "aws key [REDACTED]\ndone");
    assert!(v.output_withheld.is_none() && !v.blocks_approval(), "{v:?}");
}

// --- Detection -------------------------------------------------------------------------------

fn file(path: &str, content: &str) -> FileChange {
    FileChange {
        path: path.to_owned(),
        content: content.to_owned(),
    }
}

#[tokio::test]
async fn without_a_command_the_base_decides_it_and_the_worktree_cannot() {
    let verifier = verifier(config(None, Duration::from_secs(20)));
    let base = [file(
        "Makefile",
        "build:\n\t@echo building\n\ntest: build\n\t@echo make-test-ran\n\t@touch ran.txt\n",
    )];
    let plan = verifier
        .plan(&base, &RepoConfig::default())
        .expect("a Makefile test target");
    assert_eq!(plan.command, "make test");
    assert_eq!(plan.setup, None);

    // The worktree holds the base's Makefile and a change's Cargo.toml: detected from the
    // worktree, `cargo test` would have run.
    let worktree = tempfile::tempdir().expect("tempdir");
    std::fs::write(worktree.path().join("Makefile"), &base[0].content).expect("write");
    std::fs::write(
        worktree.path().join("Cargo.toml"),
        "[package]\nname = \"x\"\n",
    )
    .expect("write");
    let v = verifier
        .verify(worktree.path(), &plan, None)
        .await
        .expect("verify");
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    assert_eq!(v.command.as_deref(), Some("make test"));
    assert_eq!(v.output_tail, "building\nmake-test-ran");
    assert!(
        worktree.path().join("ran.txt").is_file(),
        "make test ran in the worktree"
    );
}

#[test]
fn verify_command_overrides_the_base_and_a_base_without_one_has_none() {
    let configured = verifier(config(Some("./check.sh"), Duration::from_secs(20)));
    assert_eq!(
        configured
            .plan(&[file("Cargo.toml", "")], &RepoConfig::default())
            .map(|plan| plan.command)
            .as_deref(),
        Some("./check.sh")
    );
    let detected = verifier(config(None, Duration::from_secs(20)));
    // A Makefile without a `test` target is not a check command either.
    let base = [
        file("README.md", "# nothing to run\n"),
        file("Makefile", "build:\n\ttouch built.txt\n"),
    ];
    assert_eq!(detected.plan(&base, &RepoConfig::default()), None);
    assert_eq!(detected.plan(&[], &RepoConfig::default()), None);
}

// --- Without bubblewrap ----------------------------------------------------------------------

#[test]
fn without_bwrap_on_path_the_verifier_is_unavailable() {
    let stdout = run_child("child_builds_a_verifier", &[("PATH", "/nonexistent")], &[]);
    let error = child_section(&stdout, "ERROR");
    assert!(error.starts_with("Unavailable: "), "{error}");
    assert!(error.contains("bubblewrap"), "{error}");
    assert!(error.contains("`bwrap` is not on PATH"), "{error}");
}

#[test]
#[ignore = "child process of without_bwrap_on_path_the_verifier_is_unavailable"]
fn child_builds_a_verifier() {
    if !is_child() {
        return;
    }
    let text = match Verifier::new(config(Some("true"), Duration::from_secs(5))) {
        Ok(_) => "built".to_owned(),
        Err(e @ VerifyError::Unavailable(_)) => format!("Unavailable: {e}"),
        Err(e) => format!("other: {e:?}"),
    };
    println!("BEGIN ERROR\n{text}\nEND ERROR");
}
