//! Which paths a person must look at whatever the votes say: CI workflows; files that builds,
//! other CI systems, git hooks or coding agents execute or read as instructions; other
//! automation (code owners, bots, submodules); dependency manifests and lock files.

/// Why a path is sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sensitive {
    /// A GitHub Actions workflow: it runs with the repository's secrets on every push.
    Workflow,
    /// A file that builds, CI or coding agents execute or read as instructions, and why: a
    /// person must approve it.
    Executed(&'static str),
    /// Other automation configuration: code ownership, dependency bots, submodules.
    Automation,
    /// A dependency manifest or lock file: it changes what code the project runs.
    Dependency,
}

/// Other CI systems' configuration, by repository-relative path: they run it, with the
/// repository's secrets, on the pushed branch.
const CI_FILES: [&str; 10] = [
    ".gitlab-ci.yml",
    ".travis.yml",
    "azure-pipelines.yml",
    "bitbucket-pipelines.yml",
    ".drone.yml",
    "appveyor.yml",
    ".appveyor.yml",
    "cloudbuild.yaml",
    "cloudbuild.yml",
    "Jenkinsfile",
];

/// Directories of CI systems and reusable GitHub actions.
const CI_DIRS: [&str; 6] = [
    ".circleci/",
    ".buildkite/",
    ".github/actions/",
    ".gitlab/",
    ".woodpecker/",
    ".tekton/",
];

/// Git hook managers' configuration and hook directories: developers' git runs them on commit,
/// checkout or push.
const HOOK_FILES: [&str; 3] = [".pre-commit-config.yaml", "lefthook.yml", ".lefthook.yml"];
const HOOK_DIRS: [&str; 2] = [".husky/", ".githooks/"];

/// Other automation, by repository-relative path: submodules, code ownership, dependency bots.
const AUTOMATION_FILES: [&str; 7] = [
    ".gitmodules",
    "CODEOWNERS",
    ".github/CODEOWNERS",
    "docs/CODEOWNERS",
    ".github/dependabot.yml",
    ".github/dependabot.yaml",
    "renovate.json",
];

/// Dependency manifests and lock files, by file name at any depth.
const DEPENDENCY_FILES: [&str; 34] = [
    "Cargo.toml",
    "Cargo.lock",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "bun.lock",
    "deno.json",
    "deno.lock",
    "go.mod",
    "go.sum",
    "go.work",
    "Pipfile",
    "Pipfile.lock",
    "pyproject.toml",
    "poetry.lock",
    "uv.lock",
    "setup.py",
    "setup.cfg",
    "Gemfile",
    "Gemfile.lock",
    "composer.json",
    "composer.lock",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "gradle.lockfile",
    "Package.swift",
    "Package.resolved",
    "mix.exs",
    "mix.lock",
    "pubspec.yaml",
];

/// Why a file is executed or read as instructions, by file name at any depth.
const EXECUTED_NAMES: [(&str, &str); 19] = [
    ("Makefile", "make runs its recipes"),
    ("GNUmakefile", "make runs its recipes"),
    ("makefile", "make runs its recipes"),
    ("build.rs", "cargo compiles and runs it before every build"),
    (".yarnrc.yml", "yarn runs the JavaScript its yarnPath names"),
    (
        ".npmrc",
        "npm reads its scripts, node options and registry from it",
    ),
    (".envrc", "direnv runs it on entering the directory"),
    ("conftest.py", "pytest imports and runs it before the tests"),
    ("Dockerfile", "docker build runs its commands"),
    ("Containerfile", "docker build runs its commands"),
    (
        "action.yml",
        "a GitHub Action: workflows run it with their secrets",
    ),
    (
        "action.yaml",
        "a GitHub Action: workflows run it with their secrets",
    ),
    (
        ".gitattributes",
        "its filters and drivers run on checkout, and linguist-generated hides files from the PR diff",
    ),
    ("AGENTS.md", AGENT_INSTRUCTIONS),
    ("CLAUDE.md", AGENT_INSTRUCTIONS),
    (".cursorrules", AGENT_INSTRUCTIONS),
    (".windsurfrules", AGENT_INSTRUCTIONS),
    (".clinerules", AGENT_INSTRUCTIONS),
    ("GEMINI.md", AGENT_INSTRUCTIONS),
];

/// Why a file is executed or read as instructions, by repository-relative path or directory.
const EXECUTED_PATHS: [(&str, &str); 7] = [
    (
        ".cargo/config.toml",
        "sets cargo's runners, rustc wrappers and aliases",
    ),
    (
        ".cargo/config",
        "sets cargo's runners, rustc wrappers and aliases",
    ),
    (
        ".vscode/tasks.json",
        "VS Code runs its tasks, on opening the folder with runOn: folderOpen",
    ),
    (".github/copilot-instructions.md", AGENT_INSTRUCTIONS),
    (".github/instructions/", AGENT_INSTRUCTIONS),
    (".cursor/rules/", AGENT_INSTRUCTIONS),
    (
        ".devcontainer/",
        "the dev container runs its commands on creation",
    ),
];

/// Why instructions for coding agents are held: a lasting prompt injection against this
/// daemon's later runs and other agents.
const AGENT_INSTRUCTIONS: &str =
    "coding agents (this daemon's later runs included) read it as instructions";

/// What makes `path` sensitive, if anything (a workflow before the rest).
pub(super) fn classify(path: &str) -> Option<Sensitive> {
    if path.starts_with(".github/workflows/") {
        return Some(Sensitive::Workflow);
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let by_name = EXECUTED_NAMES.iter().find(|(n, _)| *n == name);
    let by_path = EXECUTED_PATHS.iter().find(|(p, _)| {
        path == *p || path.ends_with(&format!("/{p}")) || (p.ends_with('/') && path.starts_with(p))
    });
    if let Some((_, reason)) = by_name.or(by_path) {
        return Some(Sensitive::Executed(reason));
    }
    if CI_FILES.contains(&path)
        || CI_DIRS.iter().any(|dir| path.starts_with(dir))
        || name == "Jenkinsfile"
    {
        return Some(Sensitive::Executed(
            "a CI system runs it, with the repository's secrets, on the pushed branch",
        ));
    }
    if HOOK_FILES.contains(&path) || HOOK_DIRS.iter().any(|dir| path.starts_with(dir)) {
        return Some(Sensitive::Executed(
            "git runs it as a hook on developers' machines",
        ));
    }
    if AUTOMATION_FILES.contains(&path) {
        return Some(Sensitive::Automation);
    }
    let requirements = name.starts_with("requirements") && name.ends_with(".txt");
    let dotnet = name.ends_with(".csproj") || name == "packages.config";
    if DEPENDENCY_FILES.contains(&name) || requirements || dotnet || name.ends_with(".gemspec") {
        return Some(Sensitive::Dependency);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CI: &str = "a CI system runs it, with the repository's secrets, on the pushed branch";
    const HOOK: &str = "git runs it as a hook on developers' machines";

    #[test]
    fn paths_are_classified() {
        for (path, expected) in [
            (".github/workflows/ci.yml", Some(Sensitive::Workflow)),
            (".github/workflows/sub/x.yaml", Some(Sensitive::Workflow)),
            (".gitlab-ci.yml", Some(Sensitive::Executed(CI))),
            (".circleci/config.yml", Some(Sensitive::Executed(CI))),
            (".husky/pre-commit", Some(Sensitive::Executed(HOOK))),
            (".pre-commit-config.yaml", Some(Sensitive::Executed(HOOK))),
            ("ci/Jenkinsfile", Some(Sensitive::Executed(CI))),
            (
                ".cursor/rules/style.mdc",
                Some(Sensitive::Executed(AGENT_INSTRUCTIONS)),
            ),
            ("GEMINI.md", Some(Sensitive::Executed(AGENT_INSTRUCTIONS))),
            (".github/CODEOWNERS", Some(Sensitive::Automation)),
            ("Cargo.toml", Some(Sensitive::Dependency)),
            ("crates/x/Cargo.lock", Some(Sensitive::Dependency)),
            ("requirements-dev.txt", Some(Sensitive::Dependency)),
            ("web/package.json", Some(Sensitive::Dependency)),
            ("src/App.csproj", Some(Sensitive::Dependency)),
            ("go.sum", Some(Sensitive::Dependency)),
            (".github/dependabot.yaml", Some(Sensitive::Automation)),
            (
                "sub/Makefile",
                Some(Sensitive::Executed("make runs its recipes")),
            ),
            (
                ".devcontainer/devcontainer.json",
                Some(Sensitive::Executed(
                    "the dev container runs its commands on creation",
                )),
            ),
            (
                "crates/x/.cargo/config.toml",
                Some(Sensitive::Executed(
                    "sets cargo's runners, rustc wrappers and aliases",
                )),
            ),
            ("docs/Makefile.md", None),
            ("src/devcontainer/x.rs", None),
            ("src/main.rs", None),
            ("docs/workflows.md", None),
            (".github/ISSUE_TEMPLATE.md", None),
            ("requirements.md", None),
        ] {
            assert_eq!(classify(path), expected, "{path}");
        }
    }
}
