//! The git layer against real repositories in temporary directories: a bare `origin` with a
//! `main` branch, a seed clone that pushes to it, and the user's clone (REPO_PATH) with local
//! uncommitted and staged changes that must survive every operation untouched.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use autonomous_dev::git::{
    AUTHOR_EMAIL, AUTHOR_NAME, GitError, Repo, TRUNCATION_MARKER, parse_github_repository,
};
use autonomous_dev::task::FileChange;

/// Runs `git` in `dir` with a clean configuration; panics on failure.
fn git(dir: &Path, args: &[&str]) {
    git_out(dir, args);
}

/// Runs `git` in `dir` with a clean configuration and returns its stdout.
fn git_out(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "Seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf8")
}

/// A bare `origin.git`, the `seed` clone that fills it, and the user's `clone` at REPO_PATH.
struct Fixture {
    _dir: tempfile::TempDir,
    origin: PathBuf,
    seed: PathBuf,
    clone: PathBuf,
}

impl Fixture {
    const README: &str = "# Démo\n\nA demo repository.\n";
    const LIB_RS: &str = "pub fn answer() -> u32 {\n    41\n}\n";
    /// Blob paths at origin/main, sorted (the submodule `module` is not a blob).
    const TRACKED: [&str; 7] = [
        "README.md",
        "bin/run.sh",
        "image.bin",
        "latin1.txt",
        "link",
        "src/lib.rs",
        "sub/dir/data.txt",
    ];

    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = dir.path().join("origin.git");
        let seed = dir.path().join("seed");
        let clone = dir.path().join("clone");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "main", "seed"]);
        Fixture::fill_seed(&seed);
        git(&seed, &["remote", "add", "origin", "../origin.git"]);
        git(&seed, &["push", "-q", "origin", "main"]);
        git(dir.path(), &["clone", "-q", "origin.git", "clone"]);
        Fixture::dirty_the_checkout(&clone);
        Fixture {
            _dir: dir,
            origin,
            seed,
            clone,
        }
    }

    /// Files, an executable, a binary, invalid UTF-8, a symlink to /etc, a nested directory and
    /// a submodule (gitlink) entry; committed on main.
    fn fill_seed(seed: &Path) {
        fs::create_dir_all(seed.join("src")).expect("mkdir");
        fs::create_dir_all(seed.join("sub/dir")).expect("mkdir");
        fs::create_dir_all(seed.join("bin")).expect("mkdir");
        fs::write(seed.join("README.md"), Fixture::README).expect("write");
        fs::write(seed.join("src/lib.rs"), Fixture::LIB_RS).expect("write");
        fs::write(seed.join("sub/dir/data.txt"), "data\n").expect("write");
        fs::write(seed.join("image.bin"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("write");
        fs::write(seed.join("latin1.txt"), b"caf\xe9\n").expect("write");
        fs::write(seed.join("bin/run.sh"), "#!/bin/sh\necho hi\n").expect("write");
        let mut perms = fs::metadata(seed.join("bin/run.sh"))
            .expect("meta")
            .permissions();
        perms.set_mode(0o755);
        fs::set_permissions(seed.join("bin/run.sh"), perms).expect("chmod");
        std::os::unix::fs::symlink("/etc", seed.join("link")).expect("symlink");
        git(seed, &["add", "."]);
        let gitlink = "160000,1111111111111111111111111111111111111111,module";
        git(seed, &["update-index", "--add", "--cacheinfo", gitlink]);
        git(seed, &["commit", "-qm", "initial"]);
    }

    /// A local unstaged modification, a staged new file and a staged modification.
    fn dirty_the_checkout(clone: &Path) {
        fs::write(clone.join("README.md"), "locally edited\n").expect("write");
        fs::write(clone.join("staged.txt"), "staged\n").expect("write");
        fs::write(clone.join("src/lib.rs"), "// staged edit\n").expect("write");
        git(clone, &["add", "staged.txt", "src/lib.rs"]);
    }

    fn open(&self) -> Repo {
        Repo::open(&self.clone, "main", None).expect("open")
    }

    fn seed_head(&self) -> String {
        git_out(&self.seed, &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }
}

fn change(path: &str, content: &str) -> FileChange {
    FileChange {
        path: path.to_string(),
        content: content.to_string(),
    }
}

/// Everything of the user's checkout that must not change: HEAD file, HEAD's commit, the index
/// file's bytes and every working-tree file (symlinks by target).
#[derive(Debug, PartialEq, Eq)]
struct Checkout {
    head_file: Vec<u8>,
    head_commit: String,
    index: Vec<u8>,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn snapshot(dir: &Path) -> Checkout {
    let repo = git2::Repository::open(dir).expect("open");
    let head_commit = repo
        .head()
        .expect("head")
        .target()
        .expect("oid")
        .to_string();
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files);
    Checkout {
        head_file: fs::read(dir.join(".git/HEAD")).expect("HEAD"),
        head_commit,
        index: fs::read(dir.join(".git/index")).expect("index"),
        files,
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
        if rel == Path::new(".git") {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            out.insert(rel, target.into_os_string().into_encoded_bytes());
        } else if kind.is_dir() {
            collect(root, &path, out);
        } else {
            out.insert(rel, fs::read(&path).expect("read"));
        }
    }
}

/// The blob content at `path` in `commit` of the bare origin.
fn blob_at(repo: &git2::Repository, commit: &git2::Commit<'_>, path: &str) -> Option<String> {
    let entry = commit.tree().ok()?.get_path(Path::new(path)).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    Some(String::from_utf8(blob.content().to_vec()).expect("utf8"))
}

fn mode_at(commit: &git2::Commit<'_>, path: &str) -> i32 {
    let tree = commit.tree().expect("tree");
    tree.get_path(Path::new(path)).expect("entry").filemode()
}

fn remote_branch(fx: &Fixture, branch: &str) -> Option<String> {
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let reference = origin
        .find_reference(&format!("refs/heads/{branch}"))
        .ok()?;
    Some(reference.target()?.to_string())
}

fn local_branch(fx: &Fixture, branch: &str) -> Option<String> {
    let repo = git2::Repository::open(&fx.clone).expect("clone");
    let reference = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    Some(reference.target()?.to_string())
}

#[test]
fn open_rejects_a_directory_that_is_not_a_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Repo::open(dir.path(), "main", None).err().expect("error");
    assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
    assert!(err.to_string().contains("is not a git repository"), "{err}");
}

#[test]
fn origin_url_of_a_path_remote_is_not_a_github_repository() {
    let fx = Fixture::new();
    let repo = fx.open();
    let url = repo.origin_url().expect("url");
    assert!(url.ends_with("origin.git"), "{url}");
    assert_eq!(parse_github_repository(&url), None);
}

#[test]
fn fetch_base_returns_the_new_remote_commit() {
    let fx = Fixture::new();
    let repo = fx.open();
    let first = repo.fetch_base().expect("fetch");
    assert_eq!(first, fx.seed_head());

    fs::write(fx.seed.join("NEWS.md"), "news\n").expect("write");
    git(&fx.seed, &["add", "NEWS.md"]);
    git(&fx.seed, &["commit", "-qm", "news"]);
    git(&fx.seed, &["push", "-q", "origin", "main"]);
    let second = repo.fetch_base().expect("fetch again");
    assert_ne!(second, first);
    assert_eq!(second, fx.seed_head());
    let listing = repo.list_files(1 << 20).expect("list");
    assert!(listing.paths.contains(&"NEWS.md".to_string()));
}

#[test]
fn fetch_base_of_a_missing_branch_fails() {
    let fx = Fixture::new();
    let repo = Repo::open(&fx.clone, "no-such-branch", None).expect("open");
    let err = repo.fetch_base().err().expect("error");
    assert!(matches!(err, GitError::MissingBase(_)), "{err}");
}

#[test]
fn fetch_base_notices_a_branch_deleted_on_origin() {
    let fx = Fixture::new();
    git(&fx.seed, &["push", "-q", "origin", "main:dev"]);
    let repo = Repo::open(&fx.clone, "dev", None).expect("open");
    assert_eq!(repo.fetch_base().expect("fetch"), fx.seed_head());
    git(&fx.seed, &["push", "-q", "origin", ":dev"]);
    let err = repo.fetch_base().err().expect("error");
    assert!(matches!(err, GitError::MissingBase(_)), "{err}");
    let main = fx.open();
    assert_eq!(main.fetch_base().expect("fetch main"), fx.seed_head());
}

#[test]
fn reading_before_fetching_names_the_missing_base() {
    let fx = Fixture::new();
    let repo = Repo::open(&fx.clone, "other", None).expect("open");
    let err = repo.list_files(100).err().expect("error");
    assert_eq!(
        err.to_string(),
        "branch 'other' not found on origin (fetch it first)"
    );
}

#[test]
fn list_files_is_sorted_and_truncated() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let all = repo.list_files(1 << 20).expect("list");
    assert_eq!(all.paths, Fixture::TRACKED);
    assert!(!all.truncated);

    // The first three paths plus a newline each: "README.md\nbin/run.sh\nimage.bin\n".
    let budget: usize = Fixture::TRACKED[..3].iter().map(|p| p.len() + 1).sum();
    let cut = repo.list_files(budget).expect("list");
    assert_eq!(cut.paths, &Fixture::TRACKED[..3]);
    assert!(cut.truncated);
    let cut = repo.list_files(budget - 1).expect("list");
    assert_eq!(cut.paths, &Fixture::TRACKED[..2]);
    assert!(cut.truncated);
}

#[test]
fn read_files_returns_text_files_and_skips_the_rest() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let paths: Vec<String> = [
        "src/lib.rs",
        "missing.txt",
        "image.bin",
        "latin1.txt",
        "link",
        "src",
        "module",
        "../README.md",
        ".git/config",
        "src/lib.rs",
        "README.md",
    ]
    .map(String::from)
    .to_vec();
    let files = repo.read_files(&paths, 1 << 20).expect("read");
    assert_eq!(
        files,
        vec![
            change("src/lib.rs", Fixture::LIB_RS),
            change("README.md", Fixture::README),
        ]
    );
    // Committed content, not the user's local modification of README.md.
    let cut = repo
        .read_files(&["README.md".to_string()], 7)
        .expect("read");
    assert_eq!(cut[0].content, format!("# Démo{TRUNCATION_MARKER}"));
    let cut = repo
        .read_files(&["README.md".to_string()], 4)
        .expect("read");
    assert_eq!(cut[0].content, format!("# D{TRUNCATION_MARKER}"));
}

#[test]
fn commit_and_push_creates_the_branch_on_origin_and_leaves_the_checkout_alone() {
    let fx = Fixture::new();
    let repo = fx.open();
    let base = repo.fetch_base().expect("fetch");
    let before = snapshot(&fx.clone);

    let files = [
        change("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n"),
        change("src/new/deep/mod.rs", "// new\n"),
        change("bin/run.sh", "#!/bin/sh\necho changed\n"),
        change("docs/guide.md", "# Guide\n"),
    ];
    let message = "feat: answer\n\nTask phase1-001.";
    let pushed = repo
        .commit_and_push("feature/task-phase1-001", &files, message)
        .expect("push");
    assert_eq!(pushed.branch, "feature/task-phase1-001");

    assert_eq!(snapshot(&fx.clone), before, "user's checkout changed");
    assert_eq!(
        remote_branch(&fx, "feature/task-phase1-001").as_deref(),
        Some(pushed.commit.as_str())
    );
    assert_eq!(
        local_branch(&fx, "feature/task-phase1-001").as_deref(),
        Some(pushed.commit.as_str())
    );

    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let commit = origin
        .find_commit(git2::Oid::from_str(&pushed.commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.message().expect("message"), message);
    assert_eq!(commit.parent_ids().collect::<Vec<_>>().len(), 1);
    assert_eq!(commit.parent_id(0).expect("parent").to_string(), base);
    for signature in [commit.author(), commit.committer()] {
        assert_eq!(signature.name().expect("name"), AUTHOR_NAME);
        assert_eq!(signature.email().expect("email"), AUTHOR_EMAIL);
    }
    for file in &files {
        assert_eq!(
            blob_at(&origin, &commit, &file.path).as_deref(),
            Some(file.content.as_str())
        );
    }
    assert_eq!(mode_at(&commit, "bin/run.sh"), 0o100755, "executable kept");
    assert_eq!(mode_at(&commit, "src/new/deep/mod.rs"), 0o100644);
    assert_eq!(mode_at(&commit, "link"), 0o120000, "symlink kept");
    assert_eq!(mode_at(&commit, "module"), 0o160000, "submodule kept");
    assert_eq!(
        blob_at(&origin, &commit, "README.md").as_deref(),
        Some(Fixture::README)
    );
    assert_eq!(
        blob_at(&origin, &commit, "sub/dir/data.txt").as_deref(),
        Some("data\n")
    );
    let git_log = git_out(
        &fx.origin,
        &["log", "--format=%an <%ae>", "-1", &pushed.commit],
    );
    assert_eq!(git_log.trim(), format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}>"));
    git(&fx.origin, &["fsck", "--strict", "--no-progress"]);
}

#[test]
fn commit_and_push_twice_force_updates_the_branch() {
    let fx = Fixture::new();
    let repo = fx.open();
    let base = repo.fetch_base().expect("fetch");
    let first = repo
        .commit_and_push("feature/t", &[change("a.txt", "one\n")], "one")
        .expect("first");
    let second = repo
        .commit_and_push("feature/t", &[change("b.txt", "two\n")], "two")
        .expect("second");
    assert_ne!(first.commit, second.commit);
    assert_eq!(remote_branch(&fx, "feature/t"), Some(second.commit.clone()));
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let commit = origin
        .find_commit(git2::Oid::from_str(&second.commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.parent_id(0).expect("parent").to_string(), base);
    assert_eq!(blob_at(&origin, &commit, "a.txt"), None);
    assert_eq!(blob_at(&origin, &commit, "b.txt").as_deref(), Some("two\n"));
}

#[test]
fn hostile_paths_are_rejected_before_anything_is_written() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let before = snapshot(&fx.clone);
    let hostile = [
        ("/etc/passwd", "absolute path"),
        ("../x", "'..' component"),
        ("a/../../x", "'..' component"),
        (".git/config", "names the .git directory"),
        ("sub/.git/hooks/pre-commit", "names the .git directory"),
        ("a/.GIT/hooks/x", "names the .git directory"),
        ("link/x", "a parent is a symlink"),
        ("link", "is a symlink"),
        ("module", "is a submodule"),
        ("module/x", "a parent is a submodule"),
        ("README.md/x", "a parent is a file"),
        ("sub", "is a directory"),
        ("sub/dir", "is a directory"),
        ("a\\b", "backslash (use '/' as the separator)"),
        ("", "empty path"),
    ];
    for (i, (path, reason)) in hostile.iter().enumerate() {
        let branch = format!("feature/hostile-{i}");
        // A valid file first: one bad path rejects the whole batch.
        let files = [change("ok.txt", "fine\n"), change(path, "pwned\n")];
        let err = repo
            .commit_and_push(&branch, &files, "evil")
            .err()
            .unwrap_or_else(|| panic!("{path:?} accepted"));
        match &err {
            GitError::Path(e) => assert_eq!(e.reason, *reason, "{path:?}"),
            other => panic!("{path:?}: unexpected error {other}"),
        }
        assert!(err.to_string().contains(reason), "{err}");
        assert_eq!(remote_branch(&fx, &branch), None, "{path:?} pushed");
        assert_eq!(local_branch(&fx, &branch), None, "{path:?} branched");
    }
    assert_eq!(snapshot(&fx.clone), before);
    assert!(!Path::new("/etc/passwd-pwned").exists());
}

#[test]
fn duplicate_and_clashing_paths_are_rejected() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let cases = [
        (
            vec![change("x.txt", "1"), change("x.txt", "2")],
            "listed more than once",
        ),
        (
            vec![change("new", "1"), change("new/file", "2")],
            "a parent directory is also written as a file",
        ),
    ];
    for (files, reason) in cases {
        let err = repo.commit_and_push("feature/dup", &files, "m").err();
        match err {
            Some(GitError::Path(e)) => assert_eq!(e.reason, reason),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(remote_branch(&fx, "feature/dup"), None);
    assert_eq!(local_branch(&fx, "feature/dup"), None);
}

#[test]
fn no_changes_and_bad_branches_are_refused() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let same = [change("README.md", Fixture::README)];
    let err = repo.commit_and_push("feature/same", &same, "m").err();
    assert!(matches!(err, Some(GitError::NoChanges(_))), "{err:?}");
    let err = repo.commit_and_push("feature/none", &[], "m").err();
    assert!(matches!(err, Some(GitError::NoChanges(_))), "{err:?}");

    let files = [change("x.txt", "x")];
    for branch in ["main", "bad..name", ""] {
        let err = repo.commit_and_push(branch, &files, "m").err();
        assert!(matches!(err, Some(GitError::Branch { .. })), "{err:?}");
    }
    assert_eq!(remote_branch(&fx, "feature/same"), None);
    assert_eq!(
        remote_branch(&fx, "main").as_deref(),
        Some(fx.seed_head().as_str())
    );
}
