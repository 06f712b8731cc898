//! Which command checks a repository, decided from the BASE branch's files (read from git
//! blobs, never through a checkout) when VERIFY_COMMAND is unset; and which files define or
//! steer that check, so a change to one is reported and held rather than trusted; and, when the
//! check is detected, the setup that fetches its dependencies.
//!
//! The change never chooses its own check: a `test:` target rewritten to `exit 0`, a
//! `GNUmakefile` (make reads it before `Makefile`), a dummy `Cargo.toml` in a Go repository or a
//! new `scripts.test` would otherwise decide what "passed" means.

use crate::task::FileChange;

/// The files looked for, in order, and the command each implies.
pub const DETECTED: &str = "Cargo.toml → `cargo test`, go.mod → `go test ./...`, package.json \
    with a test script → `npm test`, pyproject.toml or setup.cfg → `python3 -m pytest`, a \
    Makefile with a `test` target → `make test`";

/// The setup detected with a detected check, in the same order: what fetches the
/// dependencies that check needs, run on the base with network.
pub const DETECTED_SETUP: &str = "Cargo.toml → `cargo fetch`, go.mod → `go mod download`, \
    package.json with package-lock.json → `npm ci`, pyproject.toml, setup.cfg or setup.py → a \
    venv `.venv` with `pip install -e .` and pytest (and requirements.txt when present), \
    requirements.txt alone → a venv with it and pytest";

/// The repository-root paths the detection reads, for a caller to read them from the base.
pub const DETECTION_FILES: [&str; 11] = [
    "Cargo.toml",
    "go.mod",
    "package.json",
    "package-lock.json",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "requirements.txt",
    "GNUmakefile",
    "makefile",
    "Makefile",
];

/// Bytes of each of [`DETECTION_FILES`] read; a longer file is cut, so a package.json over it
/// is not parsed (and implies no command).
pub const DETECTION_MAX_BYTES: usize = 1 << 20;

/// The check command implied by `base`, the text files of [`DETECTION_FILES`] present on the
/// base branch (others absent), or `None` when none implies one.
pub fn detect(base: &[FileChange]) -> Option<&'static str> {
    let read = |name: &str| {
        base.iter()
            .find(|f| f.path == name)
            .map(|f| f.content.as_str())
    };
    if read("Cargo.toml").is_some() {
        return Some("cargo test");
    }
    if read("go.mod").is_some() {
        return Some("go test ./...");
    }
    if read("package.json").is_some_and(has_npm_test_script) {
        return Some("npm test");
    }
    if read("pyproject.toml").is_some() || read("setup.cfg").is_some() {
        return Some("python3 -m pytest");
    }
    // make reads the first of these it finds.
    let makefile = ["GNUmakefile", "makefile", "Makefile"]
        .into_iter()
        .find_map(read);
    if makefile.is_some_and(|text| has_make_target(text, "test")) {
        return Some("make test");
    }
    None
}

/// The setup implied by `base` (as for [`detect`]; [`DETECTED_SETUP`]), or `None`.
pub fn detect_setup(base: &[FileChange]) -> Option<String> {
    let has = |name: &str| base.iter().any(|f| f.path == name);
    if has("Cargo.toml") {
        return Some("cargo fetch".into());
    }
    if has("go.mod") {
        return Some("go mod download".into());
    }
    if has("package.json") {
        return has("package-lock.json").then(|| "npm ci".into());
    }
    let venv = "python3 -m venv .venv && .venv/bin/python -m pip install --quiet";
    let requirements = if has("requirements.txt") {
        " -r requirements.txt"
    } else {
        ""
    };
    if has("pyproject.toml") || has("setup.cfg") || has("setup.py") {
        return Some(format!("{venv} -e .{requirements} pytest"));
    }
    has("requirements.txt").then(|| format!("{venv}{requirements} pytest"))
}

/// True when a change to `path` changes what the check runs or how: the files the check
/// commands of [`DETECTED`] read for their targets, scripts, test discovery, toolchain and build
/// steps, at any depth (workspaces and subprojects have their own).
pub fn steers_check(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let in_cargo_dir = path.starts_with(".cargo/") || path.contains("/.cargo/");
    path == crate::repo_config::FILE
        || matches!(
            name,
            "Makefile"
                | "GNUmakefile"
                | "makefile"
                | "Cargo.toml"
                | "build.rs"
                | "rust-toolchain"
                | "rust-toolchain.toml"
                | "go.mod"
                | "go.work"
                | "package.json"
                | ".npmrc"
                | ".yarnrc.yml"
                | "conftest.py"
                | "pytest.ini"
                | "tox.ini"
                | "pyproject.toml"
                | "setup.cfg"
                | "setup.py"
                | "noxfile.py"
        )
        || (in_cargo_dir && matches!(name, "config.toml" | "config"))
        || is_js_test_config(name)
}

/// Configuration files of the JavaScript test runners (`jest.config.ts`, `vitest.config.mjs`,
/// `.mocharc.yml`, …), which choose what runs and may run code.
fn is_js_test_config(name: &str) -> bool {
    [
        "jest.config.",
        "vitest.config.",
        "vitest.workspace.",
        "vite.config.",
        ".mocharc",
        "karma.conf.",
        "playwright.config.",
        "ava.config.",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || name == "babel.config.js"
}

/// True when `scripts.test` is set and is not npm's placeholder (`echo "Error: no test
/// specified" && exit 1`).
fn has_npm_test_script(package_json: &str) -> bool {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(package_json) else {
        return false;
    };
    json["scripts"]["test"]
        .as_str()
        .is_some_and(|script| !script.contains("no test specified"))
}

/// True when a rule line names `target` among its targets (`test:`, `check test: deps`).
fn has_make_target(makefile: &str, target: &str) -> bool {
    makefile.lines().any(|line| {
        if line.starts_with(['\t', ' ', '#']) {
            return false;
        }
        match line.split_once(':') {
            Some((targets, rest)) if !rest.starts_with('=') => {
                targets.split_whitespace().any(|t| t == target)
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_with(files: &[(&str, &str)]) -> Option<&'static str> {
        let files: Vec<FileChange> = files
            .iter()
            .map(|(path, content)| FileChange {
                path: (*path).to_owned(),
                content: (*content).to_owned(),
            })
            .collect();
        detect(&files)
    }

    #[test]
    fn each_ecosystem_is_detected_in_the_documented_order() {
        assert_eq!(
            detect_with(&[("Cargo.toml", ""), ("go.mod", "")]),
            Some("cargo test")
        );
        assert_eq!(
            detect_with(&[("go.mod", "module x")]),
            Some("go test ./...")
        );
        assert_eq!(
            detect_with(&[("package.json", r#"{"scripts": {"test": "vitest run"}}"#)]),
            Some("npm test")
        );
        assert_eq!(detect_with(&[("setup.cfg", "")]), Some("python3 -m pytest"));
        assert_eq!(
            detect_with(&[("pyproject.toml", "")]),
            Some("python3 -m pytest")
        );
        assert_eq!(
            detect_with(&[("Makefile", "all: build\n\nbuild test: deps\n\tgo test\n")]),
            Some("make test")
        );
        // make reads GNUmakefile first: its targets decide.
        assert_eq!(
            detect_with(&[("GNUmakefile", "build:\n"), ("Makefile", "test:\n")]),
            None
        );
    }

    #[test]
    fn the_setup_is_detected_with_the_check() {
        let setup = |files: &[&str]| {
            let files: Vec<FileChange> = files
                .iter()
                .map(|path| FileChange {
                    path: (*path).to_owned(),
                    content: String::new(),
                })
                .collect();
            detect_setup(&files)
        };
        assert_eq!(
            setup(&["Cargo.toml", "go.mod"]).as_deref(),
            Some("cargo fetch")
        );
        assert_eq!(setup(&["go.mod"]).as_deref(), Some("go mod download"));
        assert_eq!(
            setup(&["package.json", "package-lock.json"]).as_deref(),
            Some("npm ci")
        );
        assert_eq!(setup(&["package.json", "setup.py"]), None);
        let python = setup(&["pyproject.toml", "requirements.txt"]).unwrap();
        assert!(
            python.ends_with("-e . -r requirements.txt pytest"),
            "{python}"
        );
        assert!(
            setup(&["requirements.txt"])
                .unwrap()
                .ends_with("-r requirements.txt pytest")
        );
        assert_eq!(setup(&["Makefile"]), None);
    }

    #[test]
    fn nothing_to_run_is_none() {
        assert_eq!(detect_with(&[]), None);
        assert_eq!(detect_with(&[("README.md", "# x")]), None);
        let placeholder = r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#;
        assert_eq!(detect_with(&[("package.json", placeholder)]), None);
        assert_eq!(detect_with(&[("package.json", "not json")]), None);
        assert_eq!(
            detect_with(&[("Makefile", "TEST:=1\nbuild:\n\t@echo test:\n# test:\n")]),
            None
        );
    }

    #[test]
    fn files_that_steer_the_check_are_named() {
        for path in [
            "Makefile",
            "sub/GNUmakefile",
            "Cargo.toml",
            "crates/x/build.rs",
            ".cargo/config.toml",
            "crates/x/.cargo/config",
            "go.mod",
            "web/package.json",
            "tests/conftest.py",
            "pytest.ini",
            "tox.ini",
            "pyproject.toml",
            "setup.cfg",
            "noxfile.py",
            "jest.config.ts",
            "web/vitest.config.mjs",
            ".mocharc.yml",
            "rust-toolchain.toml",
            ".autonomous-dev.toml",
        ] {
            assert!(steers_check(path), "{path}");
        }
        for path in [
            "src/main.rs",
            "config.toml",
            "docs/Makefile.md",
            "test_calc.py",
            "src/config",
        ] {
            assert!(!steers_check(path), "{path}");
        }
    }
}
