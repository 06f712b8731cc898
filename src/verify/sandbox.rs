//! The bubblewrap sandbox a check command runs in. It sees only what the check needs: `/usr` (and
//! `/bin`, `/lib*`, `/sbin`), a list of `/etc` files, the toolchains (read-only), the worktree
//! (writable) and private size-limited `/tmp` and `/dev/shm`, under a read-only empty root —
//! never `/run` (the host's Unix sockets), `/var`, `/home`, `/root`, the daemon's HOME, REPO_PATH
//! or its environment file. Every namespace but the user's is unshared (no network, its own PID
//! namespace, so killing bubblewrap kills the whole process tree), no capabilities, a cleared
//! environment. A daemon running as root runs the check as VERIFY_USER (never uid 0); each
//! process is bounded by util-linux's `prlimit` (address space, processes of the user, file
//! size), the worktree's growth is watched, and where systemd runs, each verification is a
//! transient scope bounding the whole run's memory and tasks. [`Worktree`] is the directory a
//! change is verified in, removed afterwards even when the check made it unreadable.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// Variables passed through from the daemon's environment when set: where the toolchains are,
/// and where the certificate authorities the host trusts are (paths to CA bundles, which the
/// setup's package managers need behind a TLS-inspecting proxy; the files are the bound
/// `/etc/ssl/certs`, typically). Nothing else reaches the sandbox (no token, key, proxy URL or database
/// URL).
const PASSED_ENV: [&str; 18] = [
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

/// Where the worktree is mounted in the sandbox: one fixed path, so what a setup prepared in one
/// directory (a venv's scripts, a module cache's paths) still resolves in another's copy.
pub(super) const WORKSPACE: &str = "/workspace";

/// Offline switches of [`FIXED_ENV`], left out of a setup run (which has network).
const OFFLINE_ENV: [&str; 4] = [
    "CARGO_NET_OFFLINE",
    "GOPROXY",
    "npm_config_offline",
    "PIP_NO_INDEX",
];

/// Set in every run over a prepared tree (the setup's, the warm-up's and the checks'): the
/// toolchains keep their downloads and build caches inside the tree, so they are kept with it
/// and each check sees its own copy (Cargo's `target/` and `node_modules/.cache` are inside it
/// already). PATH is led by the tree's venv and `node_modules/.bin` too.
const PREPARED_ENV: [(&str, &str); 6] = [
    ("GOMODCACHE", "/workspace/.autonomous-dev/go/mod"),
    ("GOCACHE", "/workspace/.autonomous-dev/go/build"),
    ("GOFLAGS", "-modcacherw"),
    ("CARGO_HOME", "/workspace/.autonomous-dev/cargo"),
    ("npm_config_cache", "/workspace/.autonomous-dev/npm"),
    ("VIRTUAL_ENV", "/workspace/.venv"),
];

/// What a run is for, which decides its network and environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The check, offline, over a tree with no prepared state.
    Check,
    /// The check, offline, over a copy of a prepared tree ([`PREPARED_ENV`]).
    CheckPrepared,
    /// The trusted setup on the base: the host's network (and its resolver configuration),
    /// no offline switches, [`PREPARED_ENV`]. Nothing else is relaxed.
    Setup,
}

/// System trees bound read-only at the same path (or recreated as the same symlink, on
/// merged-/usr systems): the programs, libraries and toolchains installed by the package manager
/// (`/usr/local` included).
const SYSTEM: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What of `/etc` a check may need, bound read-only when present: user and group names (`id`,
/// `getpwuid`, git's identity fallback), name-service and resolver configuration without a
/// resolver (`localhost` in /etc/hosts; there is no network and no resolv.conf), the dynamic
/// linker's cache, Debian's alternatives (`cc`, `java`, `python` point through them), CA
/// certificates (TLS libraries load them at start even offline), time zone, protocol, service
/// and MIME tables, libmagic's database, terminfo, and the OS release. Left out on purpose:
/// shadow/gshadow, sudoers, ssh, ssl/private, resolv.conf, and everything that can hold
/// credentials (npmrc, pip.conf, gitconfig, maven, mysql, postgresql, environment).
const ETC: [&str; 26] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
    "/etc/magic",
    "/etc/magic.mime",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/perl",
    "/etc/terminfo",
    "/etc/locale.alias",
    "/etc/mtab",
];

/// `/etc` entries with these name prefixes are bound too: Debian's JDK keeps its configuration
/// in `/etc/java-<version>-openjdk`, Python its `sitecustomize` in `/etc/python3.<minor>`.
const ETC_PREFIXES: [&str; 2] = ["java-", "python3"];

/// Never visible in the sandbox, and never covered by a toolchain bind (a toolchain at or above
/// one of them is refused): the host's Unix sockets (`/run`: PostgreSQL, MySQL, D-Bus, journald),
/// services' state (`/var/lib`), users' homes, and the daemon's configuration directory (its
/// environment file holds the tokens). The daemon's HOME, the working directory's `.env` and
/// REPO_PATH ([`VerifyConfig::hidden`](super::VerifyConfig)) are added at start.
const FORBIDDEN: [&str; 6] = [
    "/run",
    "/var/run",
    "/var/lib",
    "/home",
    "/root",
    "/etc/autonomous-dev",
];

/// Of CARGO_HOME, only what builds read: the installed proxies and tools, the downloaded crates
/// and git dependencies (never `credentials.toml` or `config.toml`).
const CARGO_HOME_PARTS: [&str; 3] = ["bin", "registry", "git"];
/// Of RUSTUP_HOME, the installed toolchains and which one is the default.
const RUSTUP_HOME_PARTS: [&str; 3] = ["toolchains", "settings.toml", "update-hashes"];
/// Toolchain roots bound whole when their variable is set (or found under HOME): no
/// credentials live in them.
const WHOLE_TOOLCHAINS: [&str; 5] = ["PYENV_ROOT", "GOROOT", "GOPATH", "GOMODCACHE", "JAVA_HOME"];

/// How often the worktree's size is measured while the check runs.
const DISK_POLL: Duration = Duration::from_millis(500);

/// How a sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed at the timeout.
    TimedOut,
    /// Killed when the worktree used more than the disk bound; the bytes measured.
    DiskFull(u64),
}

/// What a run produced: how it ended and the last [`KEEP_BYTES`] of its output.
pub(super) struct Run {
    pub exit: Exit,
    pub output: Vec<u8>,
}

/// The sandbox's fixed settings, computed once from the configuration and the daemon's
/// environment.
#[derive(Debug)]
pub(super) struct Sandbox {
    memory_bytes: u64,
    processes: u32,
    disk_bytes: u64,
    env: Vec<(String, String)>,
    /// Size bound of each tmpfs (`/tmp`, `/dev/shm`, a [`CheckPlan::writable`] path), in bytes.
    tmp_bytes: u64,
    /// bubblewrap's mount arguments, without the worktree's.
    mounts: Vec<OsString>,
    /// `(uid, gid)` the check runs as when the daemon is root (VERIFY_USER); `None`: as the
    /// daemon's own user.
    user: Option<(u32, u32)>,
    /// Each run in a transient systemd scope (MemoryMax, TasksMax).
    scope: bool,
}

impl Sandbox {
    /// The sandbox for `config`.
    ///
    /// Errors: [`VerifyError::Unavailable`] when the daemon runs as root and VERIFY_USER is no
    /// user of this system, or is root itself.
    pub fn new(config: &super::VerifyConfig) -> Result<Sandbox, VerifyError> {
        let env = environment();
        let user = if nix::unistd::geteuid().is_root() {
            Some(resolve_user(&config.user)?)
        } else {
            None
        };
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut forbidden: Vec<PathBuf> = FORBIDDEN.iter().map(PathBuf::from).collect();
        forbidden.extend(home.clone());
        forbidden.extend(std::env::current_dir().ok().map(|dir| dir.join(".env")));
        forbidden.extend(config.hidden.iter().cloned());
        let mounts = mounts(&env, &forbidden, home.as_deref(), config.tmp_bytes);
        let mut sandbox = Sandbox {
            memory_bytes: config.memory_bytes,
            processes: config.processes,
            disk_bytes: config.disk_bytes,
            env,
            tmp_bytes: config.tmp_bytes,
            mounts,
            user,
            scope: false,
        };
        sandbox.scope = sandbox.systemd_scope_works();
        Ok(sandbox)
    }

    /// Whether `systemd-run --scope` can create a transient scope here (systemd is PID 1 and
    /// lets this user create scopes); logs which bounds are in force either way.
    fn systemd_scope_works(&self) -> bool {
        let reason = if !Path::new("/run/systemd/system").is_dir() {
            "systemd is not the init system".to_owned()
        } else {
            match std::process::Command::new("systemd-run")
                .args(self.scope_args())
                .arg("true")
                .stdin(Stdio::null())
                .output()
            {
                Ok(output) if output.status.success() => {
                    tracing::info!(
                        "verification bounds: a transient systemd scope per run (MemoryMax, \
                         TasksMax) and per-process prlimit bounds"
                    );
                    return true;
                }
                Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                Err(e) => format!("cannot run systemd-run: {e}"),
            }
        };
        tracing::warn!(
            %reason,
            "verification bounds: per-process prlimit bounds only (no transient systemd scope: \
             the whole run's memory is not bounded as one)"
        );
        false
    }

    /// `systemd-run` arguments up to the command.
    fn scope_args(&self) -> Vec<OsString> {
        [
            "--scope".to_owned(),
            "--quiet".to_owned(),
            "--collect".to_owned(),
            "-p".to_owned(),
            format!("MemoryMax={}", self.memory_bytes),
            "-p".to_owned(),
            format!("TasksMax={}", self.processes),
            "--".to_owned(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect()
    }

    /// The variables of a run for `purpose`: [`Sandbox::env`] without the offline switches for a
    /// setup, with [`PREPARED_ENV`] and PATH led by the tree's tool directories over a prepared
    /// tree.
    fn environment(&self, purpose: Purpose) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(name, _)| purpose != Purpose::Setup || !OFFLINE_ENV.contains(&name.as_str()))
            .cloned()
            .collect();
        if purpose == Purpose::Check {
            return env;
        }
        env.retain(|(name, _)| !PREPARED_ENV.iter().any(|(n, _)| n == name));
        for (name, value) in env.iter_mut() {
            if name == "PATH" {
                *value = format!("{WORKSPACE}/.venv/bin:{WORKSPACE}/node_modules/.bin:{value}");
            }
        }
        env.extend(
            PREPARED_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }

    /// Runs `true` in a sandbox over an empty worktree.
    ///
    /// Errors: [`VerifyError::Unavailable`] naming the missing package, or with bubblewrap's
    /// message when it cannot build the sandbox.
    pub fn probe(&self) -> Result<(), VerifyError> {
        let worktree = tempfile::tempdir()?;
        hand_over(worktree.path(), self.user)?;
        let output = self
            .command(worktree.path(), "true", Purpose::Check, &[])
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

    /// Runs `script` with `sh -c` in the sandbox over `worktree`, with an empty tmpfs at each of
    /// `writable` (absolute paths, [`CheckPlan::writable`]); at `timeout`, or when the worktree
    /// grows past the disk bound, kills bubblewrap, which takes its PID namespace — every
    /// process the command started — with it.
    pub async fn run(
        &self,
        worktree: &Path,
        script: &str,
        timeout: Duration,
        purpose: Purpose,
        writable: &[PathBuf],
    ) -> std::io::Result<Run> {
        let (dir, user) = (worktree.to_path_buf(), self.user);
        tokio::task::spawn_blocking(move || hand_over(&dir, user)).await??;
        let (sender, receiver) = pipe::pipe()?;
        let writer = sender.into_blocking_fd()?;
        let mut command =
            tokio::process::Command::from(self.command(worktree, script, purpose, writable));
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
            let stopped = tokio::select! {
                status = child.wait() => {
                    let status = status?;
                    return Ok(match (status.code(), status.signal()) {
                        (Some(code), _) => Exit::Code(code),
                        (None, Some(signal)) => Exit::Signal(signal),
                        (None, None) => Exit::Code(-1),
                    });
                }
                () = tokio::time::sleep(timeout) => Exit::TimedOut,
                used = outgrows(worktree, self.disk_bytes) => Exit::DiskFull(used),
            };
            child.kill().await?;
            Ok::<_, std::io::Error>(stopped)
        };
        let read = tokio::time::timeout(timeout + READ_GRACE, read_tail(receiver));
        let (exit, output) = tokio::join!(wait, read);
        Ok(Run {
            exit: exit?,
            output: output.unwrap_or_default(),
        })
    }

    /// `[systemd-run --scope …] bwrap … -- [setpriv …] prlimit … -- sh -c <script>` over
    /// `worktree` (mounted at [`WORKSPACE`]) and a tmpfs at each of `writable`, with nothing of
    /// the daemon's environment but PATH; network and environment as `purpose` says.
    fn command(
        &self,
        worktree: &Path,
        script: &str,
        purpose: Purpose,
        writable: &[PathBuf],
    ) -> std::process::Command {
        let mut args: Vec<OsString> = Vec::new();
        if self.scope {
            args.extend(self.scope_args());
            args.push("bwrap".into());
        }
        let namespaces: &[&str] = match self.user {
            // bubblewrap as root, without a user namespace (in one, root would be the only
            // mapped user and could not switch): it mounts with root's access, keeps only the
            // capabilities to switch users, and setpriv drops them with root.
            Some(_) => &[
                "--unshare-ipc",
                "--unshare-pid",
                "--unshare-uts",
                "--unshare-cgroup-try",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
            ],
            None => &["--unshare-all", "--cap-drop", "ALL"],
        };
        args.extend(
            ["--die-with-parent", "--new-session"]
                .iter()
                .chain(namespaces)
                .map(OsString::from),
        );
        match (purpose, self.user) {
            (Purpose::Setup, None) => args.push("--share-net".into()),
            (Purpose::Setup, Some(_)) => {}
            (_, Some(_)) => args.push("--unshare-net".into()),
            (_, None) => {}
        }
        args.extend(self.mounts.iter().cloned());
        if purpose == Purpose::Setup
            && let Ok(resolver) = std::fs::canonicalize("/etc/resolv.conf")
        {
            // Its content only: under systemd-resolved the file is a symlink into /run.
            args.extend([
                "--ro-bind".into(),
                resolver.into(),
                "/etc/resolv.conf".into(),
            ]);
        }
        for path in writable {
            // Its missing parents as 0755 (bubblewrap's own would be 0700, closed to
            // VERIFY_USER); an existing directory is left as it is.
            let parents: Vec<&Path> = path
                .ancestors()
                .skip(1)
                .filter(|p| p.parent().is_some())
                .collect();
            for parent in parents.into_iter().rev() {
                args.extend([
                    "--perms".into(),
                    "0755".into(),
                    "--dir".into(),
                    parent.into(),
                ]);
            }
            args.extend([
                "--perms".into(),
                "1777".into(),
                "--size".into(),
                self.tmp_bytes.to_string().into(),
                "--tmpfs".into(),
                path.into(),
            ]);
        }
        args.extend([
            "--bind".into(),
            worktree.into(),
            WORKSPACE.into(),
            "--remount-ro".into(),
            "/".into(),
            "--chdir".into(),
            WORKSPACE.into(),
            "--clearenv".into(),
        ]);
        for (name, value) in self.environment(purpose) {
            args.extend(["--setenv".into(), name.into(), value.into()]);
        }
        args.push("--".into());
        if let Some((uid, gid)) = self.user {
            args.extend(
                [
                    "setpriv".to_owned(),
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--clear-groups".to_owned(),
                    "--inh-caps=-all".to_owned(),
                    "--no-new-privs".to_owned(),
                    "--".to_owned(),
                ]
                .map(OsString::from),
            );
        }
        args.extend(
            [
                "prlimit".to_owned(),
                format!("--as={}", self.memory_bytes),
                format!("--nproc={}", self.processes),
                format!("--fsize={}", self.disk_bytes),
                "--core=0".to_owned(),
                "--".to_owned(),
                "sh".to_owned(),
                "-c".to_owned(),
                script.to_owned(),
            ]
            .map(OsString::from),
        );
        let mut command =
            std::process::Command::new(if self.scope { "systemd-run" } else { "bwrap" });
        command.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
    }
}

/// Makes `worktree` the check's: owned by `user` (VERIFY_USER's uid and gid, when the daemon is
/// root) — symlinks themselves, never their targets. Errors: the first `lchown` that failed.
fn hand_over(worktree: &Path, user: Option<(u32, u32)>) -> std::io::Result<()> {
    let Some((uid, gid)) = user else {
        return Ok(());
    };
    let mut result = Ok(());
    walk(worktree, &mut |path, _| {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            && result.is_ok()
        {
            result = Err(e);
        }
    });
    result
}

/// The variables the sandbox gets: [`PASSED_ENV`] when set, toolchain homes found under HOME,
/// a default PATH, then [`FIXED_ENV`].
fn environment() -> Vec<(String, String)> {
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
    env
}

/// VERIFY_USER as `(uid, gid)`: a user name, or a numeric uid (its passwd group, else the same
/// number).
fn resolve_user(name: &str) -> Result<(u32, u32), VerifyError> {
    let unknown = || {
        VerifyError::Unavailable(format!(
            "VERIFY_USER `{name}` is not a user of this system (the daemon runs as root, so the \
             check runs as VERIFY_USER; create the user or name another)"
        ))
    };
    let user = nix::unistd::User::from_name(name).map_err(|_| unknown())?;
    let (uid, gid) = match (user, name.parse::<u32>()) {
        (Some(user), _) => (user.uid.as_raw(), user.gid.as_raw()),
        (None, Ok(uid)) => match nix::unistd::User::from_uid(uid.into()) {
            Ok(Some(user)) => (uid, user.gid.as_raw()),
            _ => (uid, uid),
        },
        (None, Err(_)) => return Err(unknown()),
    };
    if uid == 0 || gid == 0 {
        return Err(VerifyError::Unavailable(format!(
            "VERIFY_USER `{name}` is root (uid {uid}, gid {gid}); the check never runs as root"
        )));
    }
    Ok((uid, gid))
}

/// bubblewrap's mount arguments for what [`Sandbox`] shows (the worktree's aside): the system
/// trees and `/etc` files, the toolchains found in `env` (never a path at or above one of
/// `forbidden`), `/proc`, `/dev`, size-limited `/tmp` and `/dev/shm`, and an empty cover over
/// any forbidden path a bound tree contains.
fn mounts(
    env: &[(String, String)],
    forbidden: &[PathBuf],
    home: Option<&Path>,
    tmp_bytes: u64,
) -> Vec<OsString> {
    let mut m = Mounts::default();
    for path in SYSTEM.iter().chain(&ETC) {
        m.bind(Path::new(path));
    }
    if let Ok(entries) = std::fs::read_dir("/etc") {
        let mut extra: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                ETC_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            })
            .map(|e| e.path())
            .collect();
        extra.sort();
        for path in extra {
            m.bind(&path);
        }
    }
    let var = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| PathBuf::from(v))
    };
    let allowed = |path: &Path| {
        path.is_absolute()
            && path.exists()
            && Some(path) != home
            && !forbidden.iter().any(|f| f.starts_with(path))
    };
    // CARGO_HOME and RUSTUP_HOME: a writable, size-limited shell (cargo takes its package
    // lock there) holding their read-only parts.
    for (name, parts) in [
        ("CARGO_HOME", CARGO_HOME_PARTS),
        ("RUSTUP_HOME", RUSTUP_HOME_PARTS),
    ] {
        let Some(root) = var(name).filter(|root| allowed(root)) else {
            continue;
        };
        m.tmpfs(&root, tmp_bytes);
        for part in parts {
            m.bind(&root.join(part));
        }
    }
    for name in WHOLE_TOOLCHAINS {
        if let Some(root) = var(name).filter(|root| allowed(root))
            && !m.shows(&root)
        {
            m.bind(&root);
        }
    }
    // PATH's other directories: the install prefix of a `…/bin` (node's and go's libraries
    // live beside it), else the directory itself.
    for dir in var("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !allowed(&dir) || m.shows(&dir) {
            continue;
        }
        let prefix = dir
            .parent()
            .filter(|parent| dir.ends_with("bin") && allowed(parent));
        m.bind(prefix.unwrap_or(&dir));
    }
    m.args
        .extend(["--proc", "/proc", "--dev", "/dev"].map(OsString::from));
    m.tmpfs(Path::new("/dev/shm"), tmp_bytes);
    m.tmpfs(Path::new("/tmp"), tmp_bytes);
    for path in forbidden {
        if !m.shows(path) {
            continue;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => m.args.extend(["--tmpfs".into(), path.into()]),
            Ok(_) => m
                .args
                .extend(["--ro-bind".into(), "/dev/null".into(), path.into()]),
            Err(_) => {}
        }
    }
    m.args
}

/// bubblewrap arguments being built: what is mounted where, and which directories of the
/// sandbox's root were made for it.
#[derive(Default)]
struct Mounts {
    args: Vec<OsString>,
    /// Paths bound, recreated as symlinks, or mounted as tmpfs.
    visible: Vec<PathBuf>,
    /// Directories made (mode 0755: bubblewrap's own parents would be 0700, closed to
    /// VERIFY_USER).
    dirs: Vec<PathBuf>,
}

impl Mounts {
    /// Whether `path` is at or below something already shown.
    fn shows(&self, path: &Path) -> bool {
        self.visible.iter().any(|v| path.starts_with(v))
    }

    /// Makes `path`'s missing parents in the sandbox's root, mode 0755.
    fn parents(&mut self, path: &Path) {
        let mut missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|dir| dir.parent().is_some() && !self.shows(dir))
            .filter(|dir| !self.dirs.iter().any(|d| d == dir))
            .collect();
        missing.reverse();
        for dir in missing {
            self.args
                .extend(["--perms".into(), "0755".into(), "--dir".into(), dir.into()]);
            self.dirs.push(dir.to_path_buf());
        }
    }

    /// A read-only bind of `path` at the same place, or for a symlink the same symlink;
    /// nothing for a path that does not exist.
    fn bind(&mut self, path: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        let args: [OsString; 3] = if meta.file_type().is_symlink() {
            let Ok(target) = std::fs::read_link(path) else {
                return;
            };
            ["--symlink".into(), target.into(), path.into()]
        } else {
            ["--ro-bind".into(), path.into(), path.into()]
        };
        self.parents(path);
        self.args.extend(args);
        self.visible.push(path.to_path_buf());
    }

    /// A world-writable (sticky) tmpfs of at most `bytes` at `path`.
    fn tmpfs(&mut self, path: &Path, bytes: u64) {
        self.parents(path);
        self.args.extend([
            "--perms".into(),
            "1777".into(),
            "--size".into(),
            bytes.to_string().into(),
            "--tmpfs".into(),
            path.into(),
        ]);
        self.visible.push(path.to_path_buf());
    }
}

/// Calls `visit` on `root` and everything below it, each directory before its entries are read
/// (so `visit` may open it up first); never follows a symlink. Unreadable entries are skipped.
fn walk(root: &Path, visit: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        visit(&path, &meta);
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
}

/// The space `dir` takes: allocated bytes, each entry at least 4 KiB (an inode and its
/// directory entry cost space too, so a million empty files count).
pub(super) fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    walk(dir, &mut |_, meta| {
        total = total.saturating_add((meta.blocks() * 512).max(4096));
    });
    total
}

/// Resolves when `worktree` uses more than `limit` bytes ([`disk_usage`], measured every
/// [`DISK_POLL`]), with the bytes measured.
async fn outgrows(worktree: &Path, limit: u64) -> u64 {
    loop {
        tokio::time::sleep(DISK_POLL).await;
        let dir = worktree.to_path_buf();
        let used = tokio::task::spawn_blocking(move || disk_usage(&dir))
            .await
            .unwrap_or(0);
        if used > limit {
            return used;
        }
    }
}

/// A fresh, empty directory (under TMPDIR) to verify a change in; removed when dropped — after
/// giving the daemon's user back read, write and search permission on everything in it
/// (`chmod -R u+rwX`: a check may leave a `chmod 000` directory, which a non-root owner cannot
/// delete otherwise). A removal that still fails is logged with the path.
#[derive(Debug)]
pub struct Worktree {
    path: PathBuf,
}

impl Worktree {
    /// Creates the directory (`autonomous-dev-verify-*`, mode 0700).
    ///
    /// Errors: the temporary directory cannot be created (disk full, TMPDIR unwritable).
    pub fn new() -> std::io::Result<Worktree> {
        let dir = tempfile::Builder::new()
            .prefix("autonomous-dev-verify-")
            .tempdir()?;
        Ok(Worktree { path: dir.keep() })
    }

    /// Creates the directory under `parent` (created if missing), e.g. a cache directory a
    /// finished tree is then [kept](Self::keep) in.
    ///
    /// Errors: `parent` or the directory cannot be created.
    pub fn new_in(parent: &Path) -> std::io::Result<Worktree> {
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new()
            .prefix("staging-")
            .tempdir_in(parent)?;
        Ok(Worktree { path: dir.keep() })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory as `to` (a rename on the same file system) instead of removing it.
    /// Errors: the rename's (e.g. `to` exists); the directory is then removed as usual.
    pub fn keep(self, to: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, to)?;
        std::mem::forget(self);
        Ok(())
    }
}

/// Copies into `to` what of the tree `from` `to` lacks: directories are merged, anything `to`
/// already has at a path (the change's and the base's files) is left as it is, symlinks are
/// copied as symlinks and never followed on either side (a directory of `to` is entered only
/// when it is a real directory). Files keep their permission bits (`std::fs::copy`, which
/// clones extents where the file system can) and their modification time, and a file of `to`
/// whose content equals `from`'s takes `from`'s time: what the warm-up built stays newer than
/// the sources it was built from and older than any file the change rewrote, so a tool that
/// compares times (make, Cargo's fingerprints of local crates) reuses it exactly when its
/// inputs are the base's and rebuilds from the change's sources otherwise.
///
/// Errors: the first entry that cannot be read or written.
pub(super) fn copy_missing(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        // Not followed: a symlink's own metadata.
        let meta = entry.metadata()?;
        match std::fs::symlink_metadata(&target) {
            Ok(existing) => {
                if meta.is_dir() && existing.is_dir() {
                    copy_missing(&source, &target)?;
                } else if meta.is_file()
                    && existing.is_file()
                    && existing.len() == meta.len()
                    && std::fs::read(&source)? == std::fs::read(&target)?
                {
                    date_as(&target, &meta)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if meta.is_dir() {
                    std::fs::create_dir(&target)?;
                    copy_missing(&source, &target)?;
                    let mode = meta.permissions().mode();
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
                } else if meta.is_symlink() {
                    std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
                } else if meta.is_file() {
                    std::fs::copy(&source, &target)?;
                    date_as(&target, &meta)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets the modification time of the file at `path` (owned by the daemon) to `like`'s.
fn date_as(path: &Path, like: &std::fs::Metadata) -> std::io::Result<()> {
    std::fs::File::open(path)?.set_times(std::fs::FileTimes::new().set_modified(like.modified()?))
}

impl Drop for Worktree {
    fn drop(&mut self) {
        walk(&self.path, &mut |path, meta| {
            let mode = meta.permissions().mode();
            let wanted = if meta.is_dir() {
                mode | 0o700
            } else if meta.is_file() {
                mode | 0o600
            } else {
                return;
            };
            if wanted != mode {
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted));
            }
        });
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::error!(
                path = %self.path.display(),
                %error,
                "cannot remove a verification worktree; it is left on disk"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-only bind sources in `args`.
    fn bound(args: &[OsString]) -> Vec<PathBuf> {
        args.windows(2)
            .filter(|w| w[0] == "--ro-bind")
            .map(|w| PathBuf::from(&w[1]))
            .collect()
    }

    #[test]
    fn path_directories_are_bound_by_prefix_but_never_home_or_above_a_forbidden_path() {
        let root = tempfile::tempdir().unwrap();
        let dir = |p: &str| {
            let path = root.path().join(p);
            std::fs::create_dir_all(&path).unwrap();
            path
        };
        let (home, home_bin, tool_bin, shims) = (
            dir("home"),
            dir("home/bin"),
            dir("opt/tool/bin"),
            dir("pyenv/shims"),
        );
        let repo = dir("srv/repo");
        let path =
            std::env::join_paths([&home_bin, &tool_bin, &shims, &root.path().join("srv")]).unwrap();
        let env = vec![("PATH".to_owned(), path.to_string_lossy().into_owned())];
        let args = mounts(&env, &[home.clone(), repo], Some(&home), 1 << 20);
        let bound = bound(&args);
        assert!(bound.contains(&root.path().join("opt/tool")), "{bound:?}");
        assert!(bound.contains(&home_bin), "HOME's bin alone: {bound:?}");
        assert!(bound.contains(&shims), "{bound:?}");
        assert!(!bound.contains(&home), "{bound:?}");
        assert!(
            !bound.iter().any(|b| b.ends_with("srv")),
            "a directory above REPO_PATH was bound: {bound:?}"
        );
        assert!(bound.contains(&PathBuf::from("/usr")), "{bound:?}");
        assert!(!bound.contains(&PathBuf::from("/etc/shadow")), "{bound:?}");
    }
}
