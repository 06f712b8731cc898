//! Tells a check that failed for want of a dependency apart from one the change broke. The
//! sandbox has no network, so a dependency that neither the repository (vendored) nor the
//! prepared base (the setup's downloads) holds cannot be fetched; the toolchain then fails in
//! its own words. Such a failure is the environment's: it is never sent to the Engineer as
//! repair material, and it holds an approval with [`ADVICE`].

use std::path::Path;

/// What a person does about it.
pub const ADVICE: &str = "add it in a separate, reviewed change or set it up (the repository's \
    `setup` in .autonomous-dev.toml, or SETUP_COMMAND)";

/// Messages of the toolchains that mean "this dependency is not here and cannot be fetched":
/// Go with GOPROXY=off, cargo offline, npm offline, pip without an index.
const MARKERS: [&str; 11] = [
    "module lookup disabled by GOPROXY=off",
    "cannot find module providing package",
    "missing go.sum entry",
    "no matching package named",
    "attempting to make an HTTP request, but --offline was specified",
    "failed to load source for dependency",
    "failed to download",
    "ENOTCACHED",
    "No matching distribution found",
    "Could not find a version that satisfies the requirement",
    "Cannot find module '",
];

/// The first line of `output` that says a dependency is not available offline, if any; a
/// Python `ModuleNotFoundError` counts only for a module the tree at `worktree` does not
/// define (a typo in the change's own import is the change's failure). Node's `Cannot find
/// module` counts only for a bare package name (not `./x`).
pub fn missing_dependency(output: &str, worktree: &Path) -> Option<String> {
    output
        .lines()
        .find(|line| {
            if let Some(module) = python_missing_module(line) {
                return !defines_module(worktree, module);
            }
            MARKERS.iter().any(|marker| {
                line.contains(marker)
                    && !(marker.starts_with("Cannot find module")
                        && line.contains("Cannot find module '."))
            })
        })
        .map(|line| line.trim().chars().take(300).collect())
}

/// `x` of `ModuleNotFoundError: No module named 'x.y'`.
fn python_missing_module(line: &str) -> Option<&str> {
    let rest = line
        .split("ModuleNotFoundError: No module named '")
        .nth(1)?;
    let name = rest.split('\'').next()?;
    name.split('.').next().filter(|n| !n.is_empty())
}

/// Whether the tree has a top-level module or package `name` (at its root or under `src/`).
fn defines_module(worktree: &Path, name: &str) -> bool {
    ["", "src/"].iter().any(|dir| {
        let base = worktree.join(dir);
        base.join(format!("{name}.py")).is_file() || base.join(name).is_dir()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_toolchain_s_offline_failure_is_recognised() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("calc.py"), "").unwrap();
        for output in [
            "go: github.com/spf13/pflag@v1.0.5: module lookup disabled by GOPROXY=off",
            "error: no matching package named `serde` found",
            "npm ERR! code ENOTCACHED",
            "ERROR: No matching distribution found for requests",
            "E   ModuleNotFoundError: No module named 'requests'",
            "Error: Cannot find module 'left-pad'",
        ] {
            let found = missing_dependency(&format!("running\n{output}\n"), tree.path());
            assert_eq!(found.as_deref(), Some(output), "{output}");
        }
        for output in [
            "E   ModuleNotFoundError: No module named 'calc'",
            "Error: Cannot find module './calc'",
            "--- FAIL: TestAdd (0.00s)",
            "error[E0425]: cannot find value `x` in this scope",
        ] {
            assert_eq!(missing_dependency(output, tree.path()), None, "{output}");
        }
    }
}
