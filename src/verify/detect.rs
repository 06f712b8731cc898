//! Which command checks a repository, detected from its files when VERIFY_COMMAND is unset.

use std::path::Path;

/// The files looked for, in order, and the command each implies.
pub const DETECTED: &str = "Cargo.toml → `cargo test`, go.mod → `go test ./...`, package.json \
    with a test script → `npm test`, pyproject.toml or setup.cfg → `python3 -m pytest`, a \
    Makefile with a `test` target → `make test`";

/// The check command of the repository checked out at `worktree`, or `None` when none of
/// [`DETECTED`]'s files is there. Unreadable files count as absent.
pub(super) fn detect(worktree: &Path) -> Option<&'static str> {
    let exists = |name: &str| worktree.join(name).is_file();
    let read = |name: &str| std::fs::read_to_string(worktree.join(name)).ok();
    if exists("Cargo.toml") {
        return Some("cargo test");
    }
    if exists("go.mod") {
        return Some("go test ./...");
    }
    if read("package.json").is_some_and(|json| has_npm_test_script(&json)) {
        return Some("npm test");
    }
    if exists("pyproject.toml") || exists("setup.cfg") {
        return Some("python3 -m pytest");
    }
    let makefile = ["GNUmakefile", "makefile", "Makefile"]
        .into_iter()
        .find_map(read);
    if makefile.is_some_and(|text| has_make_target(&text, "test")) {
        return Some("make test");
    }
    None
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
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        detect(dir.path())
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
}
