//! Checks of the systemd unit `systemd/autonomous-dev.service`.
//!
//! * `unit_passes_systemd_analyze_verify` runs `systemd-analyze verify` on a copy of the unit whose
//!   `ExecStart=` points at the binary cargo just built and whose `EnvironmentFile=` is a temporary
//!   file. It needs neither a running systemd nor root.
//! * `unit_has_required_directives` checks that the directives the deployment depends on
//!   (restart policy, environment file, service user, sandboxing, ordering after PostgreSQL) are
//!   present with the expected values. It only reads the file.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT_NAME: &str = "autonomous-dev.service";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(UNIT_NAME)
}

fn unit_text() -> String {
    let path = unit_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `(section, key, value)` of every assignment in the unit, in order; comments and blank lines
/// are skipped. (The unit uses no line continuations.)
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_owned();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line continuations are not expected: {line}"
        );
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a KEY=VALUE line: {line}"));
        out.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    out
}

/// The values of `key` in `section`, in order.
fn values(directives: &[(String, String, String)], section: &str, key: &str) -> Vec<String> {
    directives
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

/// The output of a command such as `id -un`, trimmed.
fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    // Skip loudly, not silently, where systemd is not installed (scripts/test.sh installs it).
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED unit_passes_systemd_analyze_verify: systemd-analyze is not installed \
             (apt-get install systemd)"
        );
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("env");
    std::fs::write(
        &env_file,
        "DATABASE_URL=postgres://localhost/autonomous_dev\n",
    )
    .unwrap();

    // The service user `autonomous-dev` is created by deploy.sh and does not exist on a test
    // machine. systemd 252 does not check users during `verify`, but other versions may warn about
    // an unknown user, which would make this test depend on the machine rather than on the unit;
    // the copy therefore runs as the current user and group. That the real unit names the
    // `autonomous-dev` user is asserted by `unit_has_required_directives`.
    let user = command_output("id", &["-un"]);
    let group = command_output("id", &["-gn"]);
    let binary = env!("CARGO_BIN_EXE_autonomous-dev");

    let mut replaced = [false; 4];
    let mut copy = String::new();
    for line in unit_text().lines() {
        let line = if line.starts_with("ExecStart=") {
            replaced[0] = true;
            format!("ExecStart={binary} run")
        } else if line.starts_with("EnvironmentFile=") {
            replaced[1] = true;
            format!("EnvironmentFile={}", env_file.display())
        } else if line.starts_with("User=") {
            replaced[2] = true;
            format!("User={user}")
        } else if line.starts_with("Group=") {
            replaced[3] = true;
            format!("Group={group}")
        } else {
            line.to_owned()
        };
        copy.push_str(&line);
        copy.push('\n');
    }
    assert_eq!(
        replaced, [true; 4],
        "ExecStart=, EnvironmentFile=, User= and Group= must each appear at the start of a line"
    );
    let unit = dir.path().join(UNIT_NAME);
    std::fs::write(&unit, copy).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        // Default log level and plain output, whatever the caller's environment says.
        .env_remove("SYSTEMD_LOG_LEVEL")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "cat")
        .output()
        .expect("run systemd-analyze verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("systemd-analyze verify stdout:\n{stdout}\nstderr:\n{stderr}");

    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({}):\n{stderr}",
        out.status
    );
    // `verify` exits 0 even when it ignores a directive it cannot parse (for example
    // `Restart=bogus` prints "…autonomous-dev.service:27: Failed to parse service restart
    // specifier, ignoring"), so its messages must be read too. Only lines about this unit count —
    // they name it by path (`/tmp/…/autonomous-dev.service:LINE: …`) or by name
    // (`autonomous-dev.service: Command … is not executable`). Messages about other units
    // installed on the machine are not this file's problem and are ignored.
    let about_unit: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|line| line.contains(UNIT_NAME))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify reported problems with the unit:\n{}",
        about_unit.join("\n")
    );
}

#[test]
fn unit_has_required_directives() {
    let d = directives(&unit_text());
    let expect = |section: &str, key: &str, value: &str| {
        let found = values(&d, section, key);
        assert!(
            found.iter().any(|v| v == value),
            "[{section}] {key}={value} expected, found {found:?}"
        );
    };
    let expect_words = |section: &str, key: &str, words: &[&str]| {
        let found = values(&d, section, key);
        let all: Vec<&str> = found.iter().flat_map(|v| v.split_whitespace()).collect();
        for word in words {
            assert!(
                all.contains(word),
                "[{section}] {key}= must list {word}, found {found:?}"
            );
        }
    };

    expect_words(
        "Unit",
        "After",
        &["network-online.target", "postgresql.service"],
    );
    expect_words(
        "Unit",
        "Wants",
        &["network-online.target", "postgresql.service"],
    );

    expect("Service", "ExecStart", "/usr/local/bin/autonomous-dev run");
    expect("Service", "User", "autonomous-dev");
    expect("Service", "Group", "autonomous-dev");
    expect("Service", "EnvironmentFile", "/etc/autonomous-dev/env");
    expect("Service", "Restart", "on-failure");
    expect("Service", "RestartSec", "10");
    expect("Service", "WorkingDirectory", "/var/lib/autonomous-dev");
    expect("Service", "StateDirectory", "autonomous-dev");
    expect("Service", "Type", "notify");
    expect("Service", "WatchdogSec", "60");
    expect("Service", "KillSignal", "SIGTERM");
    expect("Service", "TimeoutStopSec", "60");
    expect("Service", "NoNewPrivileges", "yes");
    expect("Service", "ProtectSystem", "strict");
    expect_words("Service", "ReadWritePaths", &["/var/lib/autonomous-dev"]);
    expect("Service", "PrivateTmp", "yes");
    expect("Service", "ProtectHome", "yes");
    expect("Service", "PrivateDevices", "yes");
    expect("Service", "CapabilityBoundingSet", "");
    // The verification sandbox (bubblewrap) needs these namespaces; the time namespace stays
    // refused.
    expect_words(
        "Service",
        "RestrictNamespaces",
        &["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"],
    );
    let namespaces = values(&d, "Service", "RestrictNamespaces");
    assert!(
        !namespaces.iter().any(|v| v == "no" || v.contains("time")),
        "{namespaces:?}"
    );
    expect("Service", "UMask", "0077");

    expect("Install", "WantedBy", "multi-user.target");

    // Nothing may widen what the sandbox above grants later in the file.
    for (key, weaker) in [
        ("NoNewPrivileges", "no"),
        ("ProtectSystem", "no"),
        ("ProtectSystem", "full"),
        ("PrivateTmp", "no"),
        ("ProtectHome", "no"),
    ] {
        assert!(
            !values(&d, "Service", key).iter().any(|v| v == weaker),
            "[Service] {key}={weaker} must not appear"
        );
    }
}
