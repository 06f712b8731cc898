//! Hostile checks against the real bubblewrap sandbox: one test per attack a change's check
//! command could make on the host — reach a Unix socket (the PostgreSQL server's), read host
//! secrets, run as root, exhaust processes, memory, tmpfs or disk, or leave a worktree that
//! cannot be deleted. Each test drives the real `Verifier` and proves the attack fails by its
//! observable effect, with a control showing the attack's target is there on the host.
//!
//! The tests run as root here and in CI, so the root path (the check switched to VERIFY_USER)
//! is what most of them exercise; the non-root path runs in a child process (this binary
//! re-executed under `setpriv` as an unprivileged user). Without systemd as PID 1 the per-run
//! transient scope cannot be created: the prlimit and tmpfs bounds are what is tested, and the
//! systemd test says so when it skips.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use autonomous_dev::repo_config::RepoConfig;
use autonomous_dev::verify::{
    Verification, Verifier, VerifyConfig, VerifyError, VerifyStatus, Worktree,
};

const MIB: u64 = 1024 * 1024;

/// Set in a child process's environment to make its `#[ignore]`d child test run.
const CHILD_MARKER: &str = "AUTONOMOUS_DEV_HOSTILE_TEST_CHILD";

/// The bounds every test runs under: small, so an attack crosses them fast.
fn config(command: &str) -> VerifyConfig {
    VerifyConfig {
        command: Some(command.to_owned()),
        timeout: Some(Duration::from_secs(60)),
        memory_bytes: 256 * MIB,
        processes: 64,
        disk_bytes: 128 * MIB,
        tmp_bytes: 64 * MIB,
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

/// Runs `command` in the sandbox over a fresh worktree under [`config`]'s bounds.
async fn run(command: &str) -> Verification {
    let worktree = tempfile::tempdir().expect("tempdir");
    run_in(worktree.path(), config(command)).await
}

async fn run_in(worktree: &Path, config: VerifyConfig) -> Verification {
    configured(&verifier(config), worktree)
        .await
        .expect("verify")
}

/// A name no other test (or concurrent run of this binary) uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("ad-hostile-{label}-{}-{nanos}", std::process::id())
}

/// A directory outside `/tmp` (which the sandbox replaces with its own either way), so that
/// only the sandbox's bind list decides whether the sandbox sees it.
fn outside_tmp() -> tempfile::TempDir {
    ["/var/tmp", env!("CARGO_TARGET_TMPDIR")]
        .into_iter()
        .filter(|dir| !Path::new(dir).starts_with("/tmp"))
        .find_map(|dir| tempfile::tempdir_in(dir).ok())
        .expect("a writable directory outside /tmp")
}

fn is_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

/// Re-executes this test binary running only the `#[ignore]`d test `name`, with `env` added,
/// `wrapper` (e.g. `setpriv …`) in front; returns its stdout after checking that the child test
/// ran and passed.
fn run_child(name: &str, wrapper: &[&str], env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&exe);
            command
        }
        None => Command::new(&exe),
    };
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

/// A shell line printing `<label>-READ` when `cat` can read `path`, else `<label>-DENIED`.
fn try_read(label: &str, path: &Path) -> String {
    format!(
        "if cat '{path}' >/dev/null 2>&1; then echo {label}-READ; else echo {label}-DENIED; fi\n",
        path = path.display()
    )
}

fn assert_denied(v: &Verification, label: &str) {
    let tail = &v.output_tail;
    assert!(
        tail.lines().any(|l| l == format!("{label}-DENIED")),
        "{label}: {tail}"
    );
    assert!(
        !tail.lines().any(|l| l == format!("{label}-READ")),
        "{label} was readable in the sandbox: {tail}"
    );
}

// --- Unix sockets ----------------------------------------------------------------------------

/// The PostgreSQL server's Unix socket: reached, it logs in as superuser by peer/trust auth and
/// `pg_read_file` / `COPY … TO PROGRAM` read and run anything on the host.
#[tokio::test]
async fn the_postgresql_unix_socket_is_not_reachable() {
    let socket_dir = Path::new("/var/run/postgresql");
    let control = Command::new("psql")
        .args([
            "-h",
            "/var/run/postgresql",
            "-U",
            "postgres",
            "-Atc",
            "select 40 + 2",
        ])
        .output()
        .expect("run psql on the host");
    assert_eq!(
        String::from_utf8_lossy(&control.stdout).trim(),
        "42",
        "control: the host reaches PostgreSQL through {} ({})",
        socket_dir.display(),
        String::from_utf8_lossy(&control.stderr)
    );

    let v = run(
        "psql -h /var/run/postgresql -U postgres -Atc 'select 40 + 2' 2>&1; \
         ls -a /var/run/postgresql /run 2>&1; echo done",
    )
    .await;

    let tail = &v.output_tail;
    assert!(tail.ends_with("done"), "the probe ran: {v:?}");
    assert!(
        !tail.lines().any(|l| l == "42"),
        "the sandbox queried PostgreSQL through its socket: {tail}"
    );
    assert!(
        !tail.lines().any(|l| l.starts_with(".s.PGSQL")),
        "the socket is listed in the sandbox: {tail}"
    );
}

/// Any Unix socket under /run (D-Bus, journald, MySQL live there): a listener the test holds
/// sees no connection.
#[tokio::test]
async fn a_unix_socket_under_run_is_not_reachable() {
    let path = Path::new("/run").join(format!("{}.sock", unique("socket")));
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind under /run");
    listener.set_nonblocking(true).expect("nonblocking");
    let script = format!(
        "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); \
         s.connect(\"{path}\"); print(\"CONNECTED\")' 2>&1; echo done",
        path = path.display()
    );
    let v = run(&script).await;
    let accepted = listener.accept();
    std::fs::remove_file(&path).expect("remove the socket");

    assert!(v.output_tail.ends_with("done"), "{v:?}");
    assert!(!v.output_tail.lines().any(|l| l == "CONNECTED"), "{v:?}");
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the sandbox connected to the host's socket: {accepted:?}"
    );
}

// --- Host secrets ----------------------------------------------------------------------------

#[tokio::test]
async fn etc_shadow_is_unreadable() {
    assert!(
        std::fs::read("/etc/shadow").is_ok(),
        "control: the host (root) reads /etc/shadow"
    );
    let v = run(&try_read("SHADOW", Path::new("/etc/shadow"))).await;
    assert_denied(&v, "SHADOW");
}

#[tokio::test]
async fn a_file_in_roots_home_is_unreadable() {
    let dir = tempfile::tempdir_in("/root").expect("a directory under /root");
    let marker = dir.path().join("credentials");
    std::fs::write(&marker, "root-secret\n").expect("write the marker");
    let v = run(&format!(
        "{}ls /root 2>&1; echo done",
        try_read("ROOT-HOME", &marker)
    ))
    .await;
    assert_denied(&v, "ROOT-HOME");
    assert!(!v.output_tail.contains("root-secret"), "{v:?}");
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(!v.output_tail.contains(&name), "/root is listed: {v:?}");
}

/// The daemon's HOME (here not /root: a directory given to a child process as HOME) holds
/// `~/.git-credentials`, `~/.npmrc`, `~/.config`; none of it is visible, even when the
/// toolchains the sandbox needs live under it.
#[test]
fn a_file_in_the_daemons_home_is_unreadable() {
    let home = outside_tmp();
    std::fs::write(
        home.path().join(".git-credentials"),
        "https://u:daemon-secret@x\n",
    )
    .expect("write the marker");
    std::fs::create_dir_all(home.path().join(".cargo/bin")).expect("a toolchain under HOME");
    std::fs::write(
        home.path().join(".cargo/credentials.toml"),
        "token = \"cargo-secret\"\n",
    )
    .expect("write the cargo marker");
    let home_path = home.path().to_str().expect("utf-8 path");
    let stdout = run_child(
        "child_reads_the_daemons_home",
        &[],
        &[("HOME", home_path), ("MARKER_HOME", home_path)],
    );
    let tail = child_section(&stdout, "TAIL");
    for label in ["GIT-CREDENTIALS", "CARGO-CREDENTIALS"] {
        assert!(
            tail.lines().any(|l| l == format!("{label}-DENIED")),
            "{label}: {tail}"
        );
        assert!(
            !tail.lines().any(|l| l == format!("{label}-READ")),
            "{label}: {tail}"
        );
    }
    assert!(!tail.contains("secret"), "{tail}");
}

/// A daemon not running as root (as under the systemd unit) runs the check as itself, with its
/// HOME just as hidden.
#[test]
fn a_non_root_daemon_runs_the_check_as_itself_with_its_home_hidden() {
    let home = outside_tmp();
    std::fs::write(
        home.path().join(".git-credentials"),
        "https://u:daemon-secret@x\n",
    )
    .expect("write the marker");
    std::fs::create_dir_all(home.path().join(".cargo/bin")).expect("a toolchain under HOME");
    std::fs::write(
        home.path().join(".cargo/credentials.toml"),
        "token = \"cargo-secret\"\n",
    )
    .expect("write the cargo marker");
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(home.path())
        .status()
        .expect("chown");
    assert!(status.success(), "chown the HOME");
    let home_path = home.path().to_str().expect("utf-8 path");
    let stdout = run_child(
        "child_reads_the_daemons_home",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        &[("HOME", home_path), ("MARKER_HOME", home_path)],
    );
    let tail = child_section(&stdout, "TAIL");
    for label in ["GIT-CREDENTIALS", "CARGO-CREDENTIALS"] {
        assert!(
            tail.lines().any(|l| l == format!("{label}-DENIED")),
            "{label}: {tail}"
        );
    }
    assert!(!tail.contains("secret"), "{tail}");
    assert!(
        tail.lines().any(|l| l == "UID 65534"),
        "the check runs as the daemon's user: {tail}"
    );
}

#[tokio::test]
#[ignore = "child process of a_file_in_the_daemons_home_is_unreadable"]
async fn child_reads_the_daemons_home() {
    if !is_child() {
        return;
    }
    let home = PathBuf::from(std::env::var_os("MARKER_HOME").expect("MARKER_HOME"));
    let script = format!(
        "{}{}echo UID $(id -u); echo done",
        try_read("GIT-CREDENTIALS", &home.join(".git-credentials")),
        try_read("CARGO-CREDENTIALS", &home.join(".cargo/credentials.toml")),
    );
    let v = run(&script).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    println!("BEGIN TAIL\n{}\nEND TAIL", v.output_tail);
}

/// REPO_PATH's `.git/config` (remote URLs with credentials) and the directory of the daemon's
/// environment file are not visible, wherever they are.
#[tokio::test]
async fn repo_path_and_the_env_file_are_unreadable() {
    let repo = outside_tmp();
    let git = repo.path().join(".git");
    std::fs::create_dir_all(&git).expect("mkdir .git");
    std::fs::write(
        git.join("config"),
        "[remote \"origin\"]\n\turl = https://x:repo-secret@h/r\n",
    )
    .expect("write .git/config");
    let env_dir = outside_tmp();
    std::fs::write(env_dir.path().join("env"), "GITHUB_TOKEN=env-secret\n").expect("write env");
    let mut config = config(&format!(
        "{}{}echo done",
        try_read("GIT-CONFIG", &git.join("config")),
        try_read("ENV-FILE", &env_dir.path().join("env")),
    ));
    config.hidden = vec![repo.path().to_path_buf(), env_dir.path().to_path_buf()];
    let worktree = tempfile::tempdir().expect("tempdir");
    let v = run_in(worktree.path(), config).await;
    assert_denied(&v, "GIT-CONFIG");
    assert_denied(&v, "ENV-FILE");
}

/// The host's sockets and services' state are not there at all; of /root (this daemon's HOME)
/// only the toolchain directories the sandbox binds appear, empty of anything else.
#[tokio::test]
async fn run_var_lib_and_home_are_not_visible() {
    assert!(
        std::fs::read_dir("/var/lib").is_ok_and(|mut d| d.next().is_some()),
        "control: /var/lib has entries on the host"
    );
    let v = run(
        "for d in /run /var/run /var/lib /home; do \
           if [ -n \"$(ls -A $d 2>/dev/null)\" ]; then echo \"$d-LISTED\"; else echo \"$d-EMPTY\"; fi; \
         done; echo ROOT $(ls -A /root 2>/dev/null)",
    )
    .await;
    for dir in ["/run", "/var/run", "/var/lib", "/home"] {
        assert!(
            v.output_tail.lines().any(|l| l == format!("{dir}-EMPTY")),
            "{dir} is listed in the sandbox: {}",
            v.output_tail
        );
    }
    let root = v
        .output_tail
        .lines()
        .find_map(|l| l.strip_prefix("ROOT"))
        .unwrap_or_else(|| panic!("{v:?}"));
    for name in root.split_whitespace() {
        assert!(
            [".cargo", ".rustup", ".pyenv", "go"].contains(&name),
            "/root/{name} is visible: {root}"
        );
    }
}

// --- Not root --------------------------------------------------------------------------------

#[tokio::test]
async fn the_check_does_not_run_as_root() {
    assert_eq!(
        Command::new("id").arg("-u").output().expect("id").stdout,
        b"0\n",
        "control: these tests run as root, so the root path is what is tested"
    );
    let v = run("id -u; id -g; grep -E '^Cap(Prm|Eff|Amb):' /proc/self/status").await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    let mut lines = v.output_tail.lines();
    let uid = lines.next().expect("uid");
    let gid = lines.next().expect("gid");
    assert_ne!(uid, "0", "the check ran as root: {v:?}");
    assert_ne!(gid, "0", "the check ran with group root: {v:?}");
    for line in lines {
        assert!(
            line.ends_with("0000000000000000"),
            "capabilities left: {line}"
        );
    }
}

// --- Processes -------------------------------------------------------------------------------

/// 300 processes asked for under a limit of 64: the forks beyond it are refused, and the
/// processes that did start die with the run.
#[tokio::test]
async fn a_fork_bomb_is_bounded() {
    let script = "python3 -c '
import os, time
started = 0
for i in range(300):
    try:
        pid = os.fork()
    except OSError as e:
        print(\"REFUSED\", e.strerror, flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    started += 1
print(\"started\", started, flush=True)
'";
    let v = run(script).await;
    let started: u32 = v
        .output_tail
        .lines()
        .find_map(|l| l.strip_prefix("started "))
        .unwrap_or_else(|| panic!("no count: {v:?}"))
        .parse()
        .expect("a number");
    assert!(started >= 1, "control: processes started: {v:?}");
    assert!(
        started < 64,
        "{started} processes under a limit of 64: {v:?}"
    );
    assert!(
        v.output_tail
            .contains("REFUSED Resource temporarily unavailable"),
        "{v:?}"
    );
}

// --- Memory ----------------------------------------------------------------------------------

/// A shared anonymous mapping is not data (RLIMIT_DATA misses it), yet takes real memory once
/// touched.
#[tokio::test]
async fn a_shared_memory_mapping_beyond_the_limit_is_refused() {
    let script = "python3 -c '
import mmap
m = mmap.mmap(-1, 512 * 1024 * 1024, flags=mmap.MAP_SHARED)
for i in range(0, len(m), 4096):
    m[i] = 1
print(\"MAPPED\")
' 2>&1; echo done";
    let v = run(script).await;
    assert!(v.output_tail.ends_with("done"), "{v:?}");
    assert!(
        !v.output_tail.lines().any(|l| l == "MAPPED"),
        "512 MiB shared under a 256 MiB limit: {v:?}"
    );
    assert!(v.output_tail.contains("Error"), "python's error: {v:?}");
}

// --- tmpfs and disk --------------------------------------------------------------------------

async fn fill(path: &str) -> Verification {
    run(&format!(
        "if head -c 200M /dev/zero > {path}; then echo FILLED; else echo REFUSED; fi 2>&1; \
         rm -f {path}; echo done"
    ))
    .await
}

#[tokio::test]
async fn tmp_cannot_grow_beyond_its_size() {
    let v = fill("/tmp/fill").await;
    assert!(v.output_tail.lines().any(|l| l == "REFUSED"), "{v:?}");
    assert!(v.output_tail.contains("No space left on device"), "{v:?}");
}

#[tokio::test]
async fn dev_shm_cannot_grow_beyond_its_size() {
    let v = fill("/dev/shm/fill").await;
    assert!(v.output_tail.lines().any(|l| l == "REFUSED"), "{v:?}");
    assert!(v.output_tail.contains("No space left on device"), "{v:?}");
}

#[tokio::test]
async fn a_huge_file_is_refused() {
    let worktree = tempfile::tempdir().expect("tempdir");
    let v = run_in(
        worktree.path(),
        config("head -c 300M /dev/zero > big; echo \"exit $?\"; echo done"),
    )
    .await;
    if v.output_tail.ends_with("done") {
        // head is killed by SIGXFSZ (25): exit 128 + 25.
        assert!(v.output_tail.contains("exit 153"), "{v:?}");
    } else {
        // The file stopped at the per-file limit, which is also the worktree's bound: a disk
        // poll landing before the shell printed `done` kills the run for its worktree instead.
        assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
        assert!(
            v.reason.as_deref().is_some_and(|r| r.contains("128 MiB")),
            "{v:?}"
        );
    }
    let size = std::fs::metadata(worktree.path().join("big")).map_or(0, |m| m.len());
    assert!(
        size <= 128 * MIB,
        "a {size}-byte file under a 128 MiB limit"
    );
}

#[tokio::test]
async fn the_worktree_cannot_grow_beyond_its_bound() {
    let worktree = tempfile::tempdir().expect("tempdir");
    // Files of 8 MiB each stay under the per-file limit; 40 of them pass the worktree's.
    let started = Instant::now();
    let v = run_in(
        worktree.path(),
        config(
            "i=0; while [ $i -lt 40 ]; do head -c 8M /dev/zero > f$i; i=$((i + 1)); done; \
             echo WROTE-ALL; sleep 30",
        ),
    )
    .await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    assert!(
        v.reason.as_deref().is_some_and(|r| r.contains("128 MiB")),
        "{v:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "killed, not timed out: {v:?}"
    );
    assert!(v.summary().contains("worktree"), "{}", v.summary());
}

// --- Cleanup ---------------------------------------------------------------------------------

/// A daemon not running as root cannot delete a directory the check made unreadable
/// (`chmod 000`) without first giving itself the permissions back.
#[test]
fn an_unreadable_worktree_is_still_removed() {
    let stdout = run_child(
        "child_leaves_an_unreadable_worktree",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        &[("HOME", "/nonexistent")],
    );
    let path = PathBuf::from(child_section(&stdout, "WORKTREE"));
    assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
    let left = path.exists();
    if left {
        // Do not leave the test's own litter behind.
        let _ = Command::new("rm").arg("-rf").arg(&path).status();
    }
    assert!(!left, "the worktree {} was left behind", path.display());
}

#[tokio::test]
#[ignore = "child process of an_unreadable_worktree_is_still_removed"]
async fn child_leaves_an_unreadable_worktree() {
    if !is_child() {
        return;
    }
    let worktree = Worktree::new().expect("a worktree");
    let path = worktree.path().to_path_buf();
    let v = run_in(
        &path,
        config(
            "mkdir -p locked/inner && echo x > locked/inner/f && chmod 000 locked && echo LOCKED",
        ),
    )
    .await;
    assert_eq!(v.output_tail, "LOCKED", "{v:?}");
    assert_eq!(
        std::fs::metadata(path.join("locked"))
            .expect("locked")
            .permissions()
            .mode()
            & 0o777,
        0,
        "control: the directory is unreadable"
    );
    drop(worktree);
    println!("BEGIN WORKTREE\n{}\nEND WORKTREE", path.display());
}

// --- What still works ------------------------------------------------------------------------

/// The allowlist still holds what checks need: cargo (CARGO_HOME's proxies, RUSTUP_HOME's
/// toolchains, `cc` through /etc/alternatives) builds and tests a crate offline as VERIFY_USER,
/// python3 and node start, `localhost` resolves.
#[tokio::test]
async fn the_toolchains_still_work_under_the_bounds() {
    let worktree = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(worktree.path().join("src")).expect("mkdir");
    std::fs::write(
        worktree.path().join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("write Cargo.toml");
    std::fs::write(
        worktree.path().join("src/lib.rs"),
        "#[test]\nfn adds() { assert_eq!(2 + 2, 4); }\n",
    )
    .expect("write lib.rs");
    let script = "cargo test --offline --lib 2>&1 | tail -3; \
                  python3 -c 'import ssl, socket; print(\"python\", socket.gethostbyname(\"localhost\"))'; \
                  if command -v node >/dev/null; then node -e 'console.log(\"node\", 1 + 1)'; else echo node 2; fi";
    let config = VerifyConfig {
        command: Some(script.to_owned()),
        timeout: Some(Duration::from_secs(300)),
        ..VerifyConfig::default()
    };
    let v = run_in(worktree.path(), config).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    let tail = &v.output_tail;
    assert!(tail.contains("test result: ok. 1 passed"), "{tail}");
    assert!(tail.contains("python 127.0.0.1"), "{tail}");
    assert!(tail.contains("node 2"), "{tail}");
}

// --- Settings --------------------------------------------------------------------------------

/// A VERIFY_USER that does not exist, or is root, stops the daemon at start with the reason.
#[test]
fn an_unknown_or_root_verify_user_is_refused() {
    for (user, expected) in [
        ("no-such-user-ad", "is not a user of this system"),
        ("root", "the check never runs as root"),
        ("0", "the check never runs as root"),
    ] {
        let config = VerifyConfig {
            user: user.to_owned(),
            ..config("true")
        };
        match Verifier::new(config) {
            Err(VerifyError::Unavailable(message)) => {
                assert!(message.contains(expected), "{user}: {message}");
                assert!(message.contains(user), "{user}: {message}");
            }
            other => panic!("VERIFY_USER={user} accepted: {other:?}"),
        }
    }
    // Control: a numeric uid without a passwd entry is a valid user.
    let config = VerifyConfig {
        user: "64123".to_owned(),
        ..config("true")
    };
    Verifier::new(config).expect("a numeric VERIFY_USER");
}

/// Where systemd is PID 1, each run is a transient scope whose MemoryMax also counts tmpfs
/// pages, which no per-process limit sees: 300 MiB written to a 1 GiB /tmp under a 128 MiB
/// memory bound fails.
#[tokio::test]
async fn the_systemd_scope_bounds_the_whole_runs_memory() {
    if !Path::new("/run/systemd/system").is_dir() {
        common::skip(
            "the_systemd_scope_bounds_the_whole_runs_memory",
            "systemd is not PID 1 here, so no transient scope can be created; the prlimit and \
             tmpfs bounds (the other tests of this file) are what this machine tests",
        );
        return;
    }
    let config = VerifyConfig {
        memory_bytes: 128 * MIB,
        tmp_bytes: 1024 * MIB,
        ..config("if head -c 300M /dev/zero > /tmp/fill; then echo FILLED; else echo REFUSED; fi")
    };
    let worktree = tempfile::tempdir().expect("tempdir");
    let v = run_in(worktree.path(), config).await;
    assert!(!v.output_tail.lines().any(|l| l == "FILLED"), "{v:?}");
}

/// The bounds' settings: their defaults, and values too small to run any check refused with the
/// setting named.
#[test]
fn the_bounds_settings_have_defaults_and_refuse_bad_values() {
    use clap::Parser;
    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        checks: autonomous_dev::config::Checks,
    }
    let checks = Settings::try_parse_from(["t"]).expect("defaults").checks;
    assert_eq!(
        (
            checks.verify_processes,
            checks.verify_disk_mb,
            checks.verify_tmp_mb,
            checks.verify_user.as_str()
        ),
        (512, 4096, 1024, "nobody")
    );
    for (flag, value) in [
        ("--verify-processes", "3"),
        ("--verify-disk-mb", "0"),
        ("--verify-tmp-mb", "x"),
    ] {
        let error = match Settings::try_parse_from(["t", flag, value]) {
            Ok(_) => panic!("{flag} {value} accepted"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(flag), "{flag}: {error}");
    }
}
