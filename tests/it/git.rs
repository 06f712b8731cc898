//! The git layer against real repositories in temporary directories: a bare `origin` with a
//! `main` branch, a seed clone that pushes to it, and the user's clone (REPO_PATH) with local
//! uncommitted and staged changes that must survive every operation untouched.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use autonomous_dev::git::{
    AUTHOR_EMAIL, AUTHOR_NAME, GitError, Repo, TRUNCATION_MARKER, parse_github_repository,
};
use autonomous_dev::task::FileChange;
use common::GitServer;

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
    let err = repo.fetch_base().expect_err("error");
    assert!(matches!(err, GitError::MissingBase(_)), "{err}");
}

#[test]
fn fetch_base_notices_a_branch_deleted_on_origin() {
    let fx = Fixture::new();
    git(&fx.seed, &["push", "-q", "origin", "main:dev"]);
    let repo = Repo::open(&fx.clone, "dev", None).expect("open");
    assert_eq!(repo.fetch_base().expect("fetch"), fx.seed_head());
    git(&fx.seed, &["push", "-q", "origin", ":dev"]);
    let err = repo.fetch_base().expect_err("error");
    assert!(matches!(err, GitError::MissingBase(_)), "{err}");
    let main = fx.open();
    assert_eq!(main.fetch_base().expect("fetch main"), fx.seed_head());
}

#[test]
fn reading_before_fetching_names_the_missing_base() {
    let fx = Fixture::new();
    let repo = Repo::open(&fx.clone, "other", None).expect("open");
    let err = repo.list_files(100).expect_err("error");
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
fn executables_are_the_base_files_with_mode_0755() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let paths = [
        "bin/run.sh",
        "README.md",
        "link",
        "missing",
        "../bin/run.sh",
        "src",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(repo.executables(&paths).expect("modes"), ["bin/run.sh"]);
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
fn publish_branch_creates_the_branch_on_origin_and_leaves_the_checkout_alone() {
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
        .publish_branch("feature/task-phase1-001", &files, message)
        .expect("push");
    assert_eq!(pushed.branch, "feature/task-phase1-001");
    assert!(!pushed.reused, "origin had no such branch");

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
fn publishing_other_content_force_updates_the_branch() {
    let fx = Fixture::new();
    let repo = fx.open();
    let base = repo.fetch_base().expect("fetch");
    let first = repo
        .publish_branch("feature/t", &[change("a.txt", "one\n")], "one")
        .expect("first");
    let second = repo
        .publish_branch("feature/t", &[change("b.txt", "two\n")], "two")
        .expect("second");
    assert_ne!(first.commit, second.commit);
    assert!(!second.reused, "other content reused");
    assert_eq!(remote_branch(&fx, "feature/t"), Some(second.commit.clone()));
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let commit = origin
        .find_commit(git2::Oid::from_str(&second.commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.parent_id(0).expect("parent").to_string(), base);
    assert_eq!(blob_at(&origin, &commit, "a.txt"), None);
    assert_eq!(blob_at(&origin, &commit, "b.txt").as_deref(), Some("two\n"));
}

/// Pushes a commit by a person (committer `Seed`) on top of origin's `branch`; returns its SHA.
fn person_pushes_onto(fx: &Fixture, branch: &str) -> String {
    git(&fx.seed, &["fetch", "-q", "origin", branch]);
    git(&fx.seed, &["checkout", "-q", "-B", "person", "FETCH_HEAD"]);
    fs::write(fx.seed.join("person.txt"), "mine\n").expect("write");
    git(&fx.seed, &["add", "person.txt"]);
    git(&fx.seed, &["commit", "-qm", "a person's work"]);
    let refspec = format!("HEAD:refs/heads/{branch}");
    git(&fx.seed, &["push", "-q", "origin", &refspec]);
    git(&fx.seed, &["checkout", "-q", "main"]);
    git_out(&fx.seed, &["rev-parse", "person"])
        .trim()
        .to_string()
}

#[test]
fn a_branch_a_person_pushed_to_is_never_overwritten() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.publish_branch("feature/t", &[change("a.txt", "one\n")], "one")
        .expect("first");
    let theirs = person_pushes_onto(&fx, "feature/t");

    let err = repo
        .publish_branch("feature/t", &[change("b.txt", "two\n")], "two")
        .expect_err("a person's commit was overwritten");
    assert!(
        matches!(&err, GitError::ForeignBranch { branch, commit, .. }
            if branch == "feature/t" && *commit == theirs),
        "{err:?}"
    );
    assert!(err.to_string().contains("not overwriting"), "{err}");
    assert_eq!(remote_branch(&fx, "feature/t"), Some(theirs));
}

#[test]
fn a_branch_moved_between_the_read_and_the_push_is_not_overwritten() {
    let fx = Fixture::new();
    let server = GitServer::start(fx._dir.path(), HTTP_TOKEN);
    let url = format!("http://{}/origin.git", server.address);
    let repo = over_http(&fx, &url, Some(HTTP_TOKEN));
    let first = repo
        .publish_branch("feature/t", &[change("a.txt", "one\n")], "one")
        .expect("first")
        .commit;
    // Another client moves the branch after the daemon read it (its own commit, so it may be
    // replaced) and before its push.
    let origin = fx.origin.clone();
    let moved_to = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let recorded = moved_to.clone();
    server.before_first_push(fx._dir.path(), move || {
        let tree = format!("{first}^{{tree}}");
        let theirs = git_out(
            &origin,
            &["commit-tree", &tree, "-p", &first, "-m", "theirs"],
        );
        git(
            &origin,
            &["update-ref", "refs/heads/feature/t", theirs.trim()],
        );
        *recorded.lock().unwrap() = theirs.trim().to_string();
    });

    let err = repo
        .publish_branch("feature/t", &[change("b.txt", "two\n")], "two")
        .expect_err("a moved branch was overwritten");
    let theirs = moved_to.lock().unwrap().clone();
    assert!(!theirs.is_empty(), "control: the hook never ran");
    assert!(
        matches!(&err, GitError::PushRejected { refname, message, .. }
            if refname == "refs/heads/feature/t" && message.contains(&theirs)),
        "{err:?}"
    );
    assert_eq!(remote_branch(&fx, "feature/t"), Some(theirs));
}

/// How many times origin moved `refs/heads/<branch>` (its reflog; the fixture's bare origin
/// logs every ref update once [`log_ref_updates`] was called).
fn remote_updates(fx: &Fixture, branch: &str) -> usize {
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let reflog = origin
        .reflog(&format!("refs/heads/{branch}"))
        .expect("reflog");
    reflog.len()
}

/// Makes the bare origin keep a reflog of every ref, so pushes can be counted.
fn log_ref_updates(fx: &Fixture) {
    git(&fx.origin, &["config", "core.logAllRefUpdates", "always"]);
}

/// Number of commits in the clone's object database reachable from any ref.
fn commits_in_clone(fx: &Fixture) -> usize {
    git_out(&fx.clone, &["rev-list", "--all", "--count"])
        .trim()
        .parse()
        .expect("count")
}

#[test]
fn commit_then_push_publishes_in_two_steps() {
    let fx = Fixture::new();
    let repo = fx.open();
    let base = repo.fetch_base().expect("fetch");
    let before = snapshot(&fx.clone);

    let files = [change("docs/a.md", "# A\n")];
    let committed = repo
        .commit("feature/two", &files, "two steps")
        .expect("commit");
    assert_eq!(committed.branch, "feature/two");
    assert_eq!(
        local_branch(&fx, "feature/two"),
        Some(committed.commit.clone())
    );
    assert_eq!(remote_branch(&fx, "feature/two"), None, "commit pushed");
    let clone = git2::Repository::open(&fx.clone).expect("clone");
    let commit = clone
        .find_commit(git2::Oid::from_str(&committed.commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.tree_id().to_string(), committed.tree);
    assert_eq!(commit.parent_id(0).expect("parent").to_string(), base);

    let pushed = repo.push("feature/two").expect("push");
    assert_eq!(pushed.commit, committed.commit);
    assert!(!pushed.reused);
    assert_eq!(remote_branch(&fx, "feature/two"), Some(committed.commit));
    assert_eq!(snapshot(&fx.clone), before, "user's checkout changed");

    let err = repo
        .push("feature/never-committed")
        .expect_err("pushed nothing");
    assert!(matches!(err, GitError::Branch { .. }), "{err}");
    let err = repo.push("bad..name").expect_err("bad name");
    assert!(matches!(err, GitError::Branch { .. }), "{err}");
}

#[test]
fn remote_branch_asks_origin() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    assert_eq!(repo.remote_branch("feature/x").expect("ls-remote"), None);
    assert_eq!(
        repo.remote_branch("main").expect("ls-remote"),
        Some(fx.seed_head())
    );
    // Only a local commit: origin still has nothing.
    repo.commit("feature/x", &[change("x.txt", "x\n")], "x")
        .expect("commit");
    assert_eq!(repo.remote_branch("feature/x").expect("ls-remote"), None);
    let pushed = repo.push("feature/x").expect("push");
    assert_eq!(
        repo.remote_branch("feature/x").expect("ls-remote"),
        Some(pushed.commit)
    );
    // `feature/x` is not mistaken for a longer name sharing its prefix.
    assert_eq!(repo.remote_branch("feature").expect("ls-remote"), None);
    assert!(matches!(
        repo.remote_branch("a..b"),
        Err(GitError::Branch { .. })
    ));
}

#[test]
fn publish_branch_pushes_once_then_reuses_the_same_content() {
    let fx = Fixture::new();
    log_ref_updates(&fx);
    let repo = fx.open();
    let before = snapshot(&fx.clone);
    let files = [
        change("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n"),
        change("docs/answer.md", "# 42\n"),
    ];

    let first = repo
        .publish_branch("feature/task-1", &files, "answer")
        .expect("first publish");
    assert!(!first.reused, "nothing to reuse on the first call");
    assert_eq!(
        remote_branch(&fx, "feature/task-1"),
        Some(first.commit.clone())
    );
    assert_eq!(remote_updates(&fx, "feature/task-1"), 1);
    let commits = commits_in_clone(&fx);

    // The retry after a crash (here with another message: only the content matters).
    let second = repo
        .publish_branch("feature/task-1", &files, "answer, retried")
        .expect("second publish");
    assert!(second.reused, "identical content was pushed again");
    assert_eq!(second.commit, first.commit);
    assert_eq!(
        remote_branch(&fx, "feature/task-1"),
        Some(first.commit.clone())
    );
    assert_eq!(
        remote_updates(&fx, "feature/task-1"),
        1,
        "origin's ref moved"
    );
    assert_eq!(commits_in_clone(&fx), commits, "a new commit was made");
    assert_eq!(local_branch(&fx, "feature/task-1"), Some(first.commit));
    assert_eq!(snapshot(&fx.clone), before, "user's checkout changed");
}

#[test]
fn publish_branch_pushes_a_new_commit_when_the_files_change() {
    let fx = Fixture::new();
    log_ref_updates(&fx);
    let repo = fx.open();
    let first = repo
        .publish_branch("feature/task-2", &[change("a.txt", "one\n")], "one")
        .expect("first");
    let base = repo.fetch_base().expect("fetch");
    let second = repo
        .publish_branch(
            "feature/task-2",
            &[change("a.txt", "one\n"), change("b.txt", "two\n")],
            "two",
        )
        .expect("second");
    assert!(!second.reused);
    assert_ne!(second.commit, first.commit);
    assert_eq!(
        remote_branch(&fx, "feature/task-2"),
        Some(second.commit.clone())
    );
    assert_eq!(remote_updates(&fx, "feature/task-2"), 2);
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let commit = origin
        .find_commit(git2::Oid::from_str(&second.commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.parent_id(0).expect("parent").to_string(), base);
    assert_eq!(blob_at(&origin, &commit, "b.txt").as_deref(), Some("two\n"));

    // Dropping a file is a change too.
    let third = repo
        .publish_branch("feature/task-2", &[change("a.txt", "one\n")], "one")
        .expect("third");
    assert!(!third.reused);
    assert_eq!(remote_updates(&fx, "feature/task-2"), 3);
}

#[test]
fn publish_branch_rebuilds_when_the_base_moved() {
    let fx = Fixture::new();
    let repo = fx.open();
    let files = [change("a.txt", "one\n")];
    let first = repo
        .publish_branch("feature/task-3", &files, "one")
        .expect("first");
    fs::write(fx.seed.join("NEWS.md"), "news\n").expect("write");
    git(&fx.seed, &["add", "NEWS.md"]);
    git(&fx.seed, &["commit", "-qm", "news"]);
    git(&fx.seed, &["push", "-q", "origin", "main"]);

    let second = repo
        .publish_branch("feature/task-3", &files, "one")
        .expect("second");
    assert!(!second.reused, "reused a commit on the old base");
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let commit = origin
        .find_commit(git2::Oid::from_str(&second.commit).expect("oid"))
        .expect("commit");
    assert_eq!(
        commit.parent_id(0).expect("parent").to_string(),
        fx.seed_head()
    );
    assert_ne!(second.commit, first.commit);
}

#[test]
fn a_repo_pinned_at_a_commit_reads_and_publishes_on_that_commit_after_the_base_moved() {
    let fx = Fixture::new();
    let pinned_base = fx.open().fetch_base().expect("fetch");
    fs::write(fx.seed.join("NEWS.md"), "news\n").expect("write");
    git(&fx.seed, &["add", "NEWS.md"]);
    git(&fx.seed, &["commit", "-qm", "news"]);
    git(&fx.seed, &["push", "-q", "origin", "main"]);
    // Another reader follows origin: the tracking ref is at the new base now.
    assert_eq!(fx.open().fetch_base().expect("fetch"), fx.seed_head());
    assert_ne!(fx.seed_head(), pinned_base);

    let repo = fx.open().at_commit(&pinned_base).expect("pin");
    let listing = repo.list_files(usize::MAX).expect("list");
    assert!(
        !listing.paths.contains(&"NEWS.md".to_string()),
        "read the moved base"
    );
    let read = repo
        .read_files(&["NEWS.md".to_string()], usize::MAX)
        .expect("read");
    assert!(read.is_empty(), "read the moved base: {read:?}");

    let files = [change("a.txt", "one\n")];
    let pushed = repo
        .publish_branch("feature/task-pinned", &files, "one")
        .expect("publish");
    let origin = git2::Repository::open_bare(&fx.origin).expect("bare");
    let commit = origin
        .find_commit(git2::Oid::from_str(&pushed.commit).expect("oid"))
        .expect("commit");
    assert_eq!(
        commit.parent_id(0).expect("parent").to_string(),
        pinned_base
    );
    assert_eq!(blob_at(&origin, &commit, "NEWS.md"), None);
    // Reused on the same pinned base; an unknown commit cannot be pinned.
    let again = repo
        .publish_branch("feature/task-pinned", &files, "one")
        .expect("again");
    assert!(again.reused);
    assert!(fx.open().at_commit(&"0".repeat(40)).is_err());
}

#[test]
fn publish_branch_after_a_crash_before_the_push_pushes() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let files = [change("a.txt", "one\n")];
    // The commit was made locally, then the daemon died before pushing.
    repo.commit("feature/task-4", &files, "one")
        .expect("commit");
    let pushed = repo
        .publish_branch("feature/task-4", &files, "one")
        .expect("publish");
    assert!(!pushed.reused);
    assert_eq!(
        remote_branch(&fx, "feature/task-4"),
        Some(pushed.commit.clone())
    );
    assert_eq!(local_branch(&fx, "feature/task-4"), Some(pushed.commit));
}

#[test]
fn publish_branch_from_another_clone_reuses_what_origin_has() {
    let fx = Fixture::new();
    log_ref_updates(&fx);
    let files = [change("a.txt", "one\n")];
    let first = fx
        .open()
        .publish_branch("feature/task-5", &files, "one")
        .expect("first");

    // A fresh clone of main only (another host, or a re-cloned REPO_PATH): the pushed commit is
    // not in its object database and must be fetched to be compared.
    let other = fx._dir.path().join("other");
    git(
        fx._dir.path(),
        &[
            "clone",
            "-q",
            "--single-branch",
            "-b",
            "main",
            "origin.git",
            "other",
        ],
    );
    let repo = Repo::open(&other, "main", None).expect("open");
    let second = repo
        .publish_branch("feature/task-5", &files, "one")
        .expect("second");
    assert!(second.reused);
    assert_eq!(second.commit, first.commit);
    assert_eq!(remote_updates(&fx, "feature/task-5"), 1);
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
            .publish_branch(&branch, &files, "evil")
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
        let err = repo.publish_branch("feature/dup", &files, "m").err();
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
    let err = repo.publish_branch("feature/same", &same, "m").err();
    assert!(matches!(err, Some(GitError::NoChanges(_))), "{err:?}");
    let err = repo.publish_branch("feature/none", &[], "m").err();
    assert!(matches!(err, Some(GitError::NoChanges(_))), "{err:?}");

    let files = [change("x.txt", "x")];
    for branch in ["main", "bad..name", ""] {
        let err = repo.publish_branch(branch, &files, "m").err();
        assert!(matches!(err, Some(GitError::Branch { .. })), "{err:?}");
    }
    assert_eq!(remote_branch(&fx, "feature/same"), None);
    assert_eq!(
        remote_branch(&fx, "main").as_deref(),
        Some(fx.seed_head().as_str())
    );
}

const HTTP_TOKEN: &str = "ghs_httpTestToken0123456789";

/// The fixture's clone with `origin` pointed at `url`, opened with `token`.
fn over_http(fx: &Fixture, url: &str, token: Option<&str>) -> Repo {
    git(&fx.clone, &["remote", "set-url", "origin", url]);
    let token = token.map(|t| t.to_string().into());
    Repo::open(&fx.clone, "main", token).expect("open")
}

fn assert_secret_free(err: &GitError, secrets: &[&str]) {
    let text = format!("{err} {err:?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn fetch_and_push_over_http_with_the_token() {
    let fx = Fixture::new();
    let server = GitServer::start(fx._dir.path(), HTTP_TOKEN);
    let url = format!("http://{}/origin.git", server.address);
    let repo = over_http(&fx, &url, Some(HTTP_TOKEN));
    let before = snapshot(&fx.clone);

    assert_eq!(repo.fetch_base().expect("fetch"), fx.seed_head());
    repo.commit("feature/http", &[change("http.txt", "over http\n")], "http")
        .expect("commit");
    let pushed = repo.push("feature/http").expect("push");
    assert_eq!(
        remote_branch(&fx, "feature/http"),
        Some(pushed.commit.clone())
    );
    assert!(server.unauthorized() <= 4, "{}", server.unauthorized());
    assert_eq!(
        repo.remote_branch("feature/http").expect("ls-remote"),
        Some(pushed.commit.clone())
    );
    let again = repo
        .publish_branch("feature/http", &[change("http.txt", "over http\n")], "http")
        .expect("publish");
    assert!(again.reused);
    assert_eq!(again.commit, pushed.commit);
    assert_eq!(snapshot(&fx.clone), before);
}

#[test]
fn wrong_or_missing_token_fails_without_leaking_it() {
    let fx = Fixture::new();
    let server = GitServer::start(fx._dir.path(), HTTP_TOKEN);
    let url = format!("http://{}/origin.git", server.address);
    let wrong = "ghs_wrongToken_abcdef";

    let repo = over_http(&fx, &url, Some(wrong));
    let err = repo.fetch_base().expect_err("wrong token accepted");
    assert!(matches!(err, GitError::Auth(_)), "{err}");
    assert!(err.to_string().contains("authentication failed"), "{err}");
    assert_secret_free(&err, &[wrong, HTTP_TOKEN, &url]);
    let after_fetch = server.unauthorized();
    assert!(after_fetch <= 3, "credential loop: {after_fetch} 401s");

    // Push with a wrong token, from a base fetched with the right one.
    let good = over_http(&fx, &url, Some(HTTP_TOKEN));
    good.fetch_base().expect("fetch");
    let files = [change("x.txt", "x\n")];
    repo.commit("feature/denied", &files, "m").expect("commit");
    let err = repo.push("feature/denied").expect_err("push accepted");
    assert!(matches!(err, GitError::Auth(_)), "{err}");
    assert_secret_free(&err, &[wrong, HTTP_TOKEN, &url]);
    assert_eq!(remote_branch(&fx, "feature/denied"), None);

    let err = repo
        .remote_branch("main")
        .expect_err("ls-remote with a wrong token");
    assert!(matches!(err, GitError::Auth(_)), "{err}");
    assert_secret_free(&err, &[wrong, HTTP_TOKEN, &url]);

    let anonymous = over_http(&fx, &url, None);
    let err = anonymous.fetch_base().expect_err("no token accepted");
    assert!(matches!(err, GitError::Auth(_)), "{err}");
    assert!(err.to_string().contains("none is set"), "{err}");

    // Credentials the user put in the remote URL never appear either.
    let with_userinfo = format!("http://someone:urlSecret42@{}/origin.git", server.address);
    let repo = over_http(&fx, &with_userinfo, Some(wrong));
    let err = repo.fetch_base().expect_err("bad url credentials accepted");
    assert_secret_free(&err, &["urlSecret42", wrong, &with_userinfo]);
}

/// `git status --porcelain` of the user's clone without refreshing (rewriting) its index.
fn status(dir: &Path) -> String {
    git_out(dir, &["--no-optional-locks", "status", "--porcelain"])
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).expect("meta").permissions().mode() & 0o111 != 0
}

/// Every path under `dir` (files, symlinks and directories), relative, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            out.push(path.strip_prefix(root).expect("prefix").to_path_buf());
            if fs::symlink_metadata(&path).expect("meta").is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn export_writes_the_base_with_the_files_applied_and_leaves_the_checkout_alone() {
    let fx = Fixture::new();
    // origin/main moves past the clone's HEAD: the export holds the fetched base, not HEAD.
    fs::write(fx.seed.join("NEWS.md"), "news\n").expect("write");
    git(&fx.seed, &["add", "NEWS.md"]);
    git(&fx.seed, &["commit", "-qm", "news"]);
    git(&fx.seed, &["push", "-q", "origin", "main"]);
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let status_before = status(&fx.clone);
    let head_before = git_out(&fx.clone, &["rev-parse", "HEAD"]);
    let before = snapshot(&fx.clone);
    assert!(!status_before.is_empty(), "control: the clone is dirty");

    let out = tempfile::tempdir().expect("tempdir");
    let files = [
        change("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n"),
        change("src/new/deep/mod.rs", "// new\n"),
        change("docs/guide.md", "# Guide\n"),
        change("bin/run.sh", "#!/bin/sh\necho changed\n"),
    ];
    repo.export(&files, out.path()).expect("export");
    let dir = out.path();

    for file in &files {
        assert_eq!(
            fs::read_to_string(dir.join(&file.path)).expect("exported file"),
            file.content,
            "{}",
            file.path
        );
    }
    // The base's files as committed, not the user's local or staged edits.
    assert_eq!(
        fs::read_to_string(dir.join("README.md")).expect("README"),
        Fixture::README
    );
    assert_eq!(
        fs::read_to_string(dir.join("NEWS.md")).expect("NEWS"),
        "news\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("sub/dir/data.txt")).expect("data"),
        "data\n"
    );
    assert_eq!(
        fs::read(dir.join("image.bin")).expect("image"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
    );
    assert_eq!(
        fs::read(dir.join("latin1.txt")).expect("latin1"),
        b"caf\xe9\n"
    );
    assert_eq!(
        fs::read_link(dir.join("link")).expect("symlink"),
        Path::new("/etc")
    );
    assert!(!dir.join("staged.txt").exists(), "the user's staged file");
    assert!(!dir.join(".git").exists(), "no repository in the worktree");
    assert!(
        is_executable(&dir.join("bin/run.sh")),
        "modified executable"
    );
    assert!(!is_executable(&dir.join("src/new/deep/mod.rs")));
    assert!(!is_executable(&dir.join("src/lib.rs")));

    // An executable the change does not touch stays executable too.
    let untouched = tempfile::tempdir().expect("tempdir");
    repo.export(&[change("only.txt", "only\n")], untouched.path())
        .expect("export");
    assert!(is_executable(&untouched.path().join("bin/run.sh")));
    assert_eq!(
        fs::read_to_string(untouched.path().join("bin/run.sh")).expect("run.sh"),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        fs::read_to_string(untouched.path().join("src/lib.rs")).expect("lib.rs"),
        Fixture::LIB_RS
    );

    assert_eq!(snapshot(&fx.clone), before, "user's checkout changed");
    assert_eq!(status(&fx.clone), status_before);
    assert_eq!(git_out(&fx.clone, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        local_branch(&fx, "main").as_deref(),
        Some(head_before.trim())
    );
}

#[test]
fn export_refuses_hostile_paths_before_writing_anything() {
    let fx = Fixture::new();
    let repo = fx.open();
    repo.fetch_base().expect("fetch");
    let status_before = status(&fx.clone);
    let before = snapshot(&fx.clone);
    let config_before = fs::read(fx.clone.join(".git/config")).expect("config");

    let parent = tempfile::tempdir().expect("tempdir");
    let out = parent.path().join("worktree");
    fs::create_dir(&out).expect("mkdir");
    for (path, reason) in [
        ("../x", "'..' component"),
        (".git/config", "names the .git directory"),
        ("/etc/passwd", "absolute path"),
        ("link/x", "a parent is a symlink"),
    ] {
        // A valid file first: one bad path refuses the whole export.
        let files = [change("ok.txt", "fine\n"), change(path, "pwned\n")];
        match repo.export(&files, &out) {
            Err(GitError::Path(e)) => assert_eq!(e.reason, reason, "{path:?}"),
            other => panic!("{path:?}: unexpected {other:?}"),
        }
        assert_eq!(entries(&out), Vec::<PathBuf>::new(), "{path:?} wrote files");
        assert_eq!(
            entries(parent.path()),
            [PathBuf::from("worktree")],
            "{path:?} wrote beside the worktree"
        );
    }
    assert_eq!(
        fs::read(fx.clone.join(".git/config")).expect("config"),
        config_before
    );
    assert_eq!(snapshot(&fx.clone), before);
    assert_eq!(status(&fx.clone), status_before);
}

#[test]
fn export_before_fetching_names_the_missing_base() {
    let fx = Fixture::new();
    let repo = Repo::open(&fx.clone, "other", None).expect("open");
    let out = tempfile::tempdir().expect("tempdir");
    let err = repo
        .export(&[change("a.txt", "a\n")], out.path())
        .expect_err("exported without a base");
    assert!(matches!(err, GitError::MissingBase(_)), "{err}");
    assert_eq!(entries(out.path()), Vec::<PathBuf>::new());
}

/// The fixture's `origin.git` forked (as GitHub forks: every branch copied) into `fork.git`
/// beside it; returns the fork's path.
fn fork_of(fx: &Fixture) -> PathBuf {
    let fork = fx._dir.path().join("fork.git");
    git(
        fx._dir.path(),
        &["clone", "-q", "--bare", "origin.git", "fork.git"],
    );
    fork
}

/// The SHA of `refs/heads/<branch>` in the bare repository at `bare`.
fn branch_in(bare: &Path, branch: &str) -> Option<String> {
    let repo = git2::Repository::open_bare(bare).expect("bare");
    let reference = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    Some(reference.target()?.to_string())
}

/// Pushes a new commit to origin's main from the seed; returns its SHA.
fn advance_origin_main(fx: &Fixture) -> String {
    fs::write(fx.seed.join("NEWS.md"), "news\n").expect("write");
    git(&fx.seed, &["add", "NEWS.md"]);
    git(&fx.seed, &["commit", "-qm", "news"]);
    git(&fx.seed, &["push", "-q", "origin", "main"]);
    fx.seed_head()
}

#[test]
fn with_a_push_url_the_branch_goes_to_the_fork_and_not_to_origin() {
    let fx = Fixture::new();
    let fork = fork_of(&fx);
    // Origin's main moves on after the fork was made: the base comes from origin, not the fork.
    let base = advance_origin_main(&fx);
    let fork_main = branch_in(&fork, "main");
    assert_ne!(
        fork_main.as_deref(),
        Some(base.as_str()),
        "control: the fork is behind"
    );
    let before = snapshot(&fx.clone);
    let repo = fx
        .open()
        .with_push_url(Some(fork.to_str().expect("utf-8").to_string()));
    let files = [change(
        "src/lib.rs",
        "pub fn answer() -> u32 {\n    42\n}\n",
    )];

    let pushed = repo
        .publish_branch("feature/task-fork", &files, "answer")
        .expect("publish");
    assert!(!pushed.reused);
    assert_eq!(
        branch_in(&fork, "feature/task-fork"),
        Some(pushed.commit.clone())
    );
    assert_eq!(
        remote_branch(&fx, "feature/task-fork"),
        None,
        "pushed to origin"
    );
    assert_eq!(
        remote_branch(&fx, "main"),
        Some(base.clone()),
        "origin's main moved"
    );
    assert_eq!(branch_in(&fork, "main"), fork_main, "the fork's main moved");
    let clone = git2::Repository::open(&fx.clone).expect("clone");
    let commit = clone
        .find_commit(git2::Oid::from_str(&pushed.commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.parent_id(0).expect("parent").to_string(), base);
    assert_eq!(
        repo.remote_branch("feature/task-fork").expect("ls-remote"),
        Some(pushed.commit)
    );
    assert_eq!(snapshot(&fx.clone), before, "user's checkout changed");
}

#[test]
fn a_retried_publish_reuses_the_forks_branch_and_ignores_origins() {
    let fx = Fixture::new();
    let fork = fork_of(&fx);
    let fork_url = fork.to_str().expect("utf-8").to_string();
    let files = [change("docs/answer.md", "# 42\n")];
    // A second clone of origin, made now: it never sees the commits pushed below.
    let other = fx._dir.path().join("other");
    git(fx._dir.path(), &["clone", "-q", "origin.git", "other"]);

    // Origin already has the same content on the branch (pushed before PUSH_REPOSITORY was
    // set, with another message, so another commit): that is not the fork's branch, so the
    // fork still gets its push.
    let on_origin = fx
        .open()
        .publish_branch("feature/task-r", &files, "answer, to origin")
        .expect("publish to origin");
    let first = fx
        .open()
        .with_push_url(Some(fork_url.clone()))
        .publish_branch("feature/task-r", &files, "answer")
        .expect("publish to the fork");
    assert!(!first.reused, "origin's branch was taken for the fork's");
    assert_ne!(first.commit, on_origin.commit);
    assert_eq!(
        branch_in(&fork, "feature/task-r"),
        Some(first.commit.clone())
    );

    // The retry from the other clone, which has neither commit: the fork's tip is fetched
    // from the fork (not origin) into refs/autonomous-dev/push/, compared, and reused.
    let retry = Repo::open(&other, "main", None)
        .expect("open")
        .with_push_url(Some(fork_url));
    let again = retry
        .publish_branch("feature/task-r", &files, "answer, retried")
        .expect("retry");
    assert!(
        again.reused,
        "identical content on the fork was pushed again"
    );
    assert_eq!(again.commit, first.commit, "origin's commit taken");
    assert_eq!(
        branch_in(&fork, "feature/task-r"),
        Some(first.commit.clone())
    );
    assert_eq!(
        remote_branch(&fx, "feature/task-r"),
        Some(on_origin.commit),
        "origin's branch moved"
    );
    let other = git2::Repository::open(&other).expect("other");
    let fetched = other
        .find_reference("refs/autonomous-dev/push/feature/task-r")
        .expect("the fork's branch fetched for the comparison");
    assert_eq!(
        fetched.target().map(|o| o.to_string()),
        Some(first.commit.clone())
    );
    assert!(
        other
            .find_reference("refs/remotes/origin/feature/task-r")
            .is_err()
    );
    let local = other
        .find_reference("refs/heads/feature/task-r")
        .expect("local branch");
    assert_eq!(local.target().map(|o| o.to_string()), Some(first.commit));
}

#[test]
fn the_fork_gets_the_token_over_loopback_http() {
    let fx = Fixture::new();
    let fork = fork_of(&fx);
    let server = GitServer::start(fx._dir.path(), HTTP_TOKEN);
    let url = format!("http://{}/fork.git", server.address);
    // Origin stays a path remote: only the fork is behind the token.
    let repo = Repo::open(&fx.clone, "main", Some(HTTP_TOKEN.to_string().into()))
        .expect("open")
        .with_push_url(Some(url.clone()));
    let files = [change("http.txt", "over http\n")];
    let pushed = repo
        .publish_branch("feature/fork-http", &files, "http")
        .expect("publish");
    assert_eq!(
        branch_in(&fork, "feature/fork-http"),
        Some(pushed.commit.clone())
    );
    assert_eq!(remote_branch(&fx, "feature/fork-http"), None);
    assert!(server.authorized() > 0, "the token never reached the fork");

    // A wrong token: an authentication error naming the fork, without the token or the URL.
    let wrong = "ghs_wrongForkToken_abcdef";
    let denied = Repo::open(&fx.clone, "main", Some(wrong.to_string().into()))
        .expect("open")
        .with_push_url(Some(url.clone()));
    let err = denied
        .publish_branch("feature/fork-denied", &files, "http")
        .expect_err("wrong token accepted by the fork");
    assert!(matches!(err, GitError::Auth(_)), "{err}");
    assert!(err.to_string().contains("the fork"), "{err}");
    assert_secret_free(&err, &[wrong, HTTP_TOKEN, &url]);
    assert_eq!(branch_in(&fork, "feature/fork-denied"), None);
}

/// An address of this machine that is not loopback (the source address of the default
/// route; a UDP `connect` sends no packet).
fn non_loopback_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
    socket
        .connect("192.0.2.255:9")
        .or_else(|_| socket.connect("10.255.255.255:9"))
        .expect("a route to a non-loopback network: this test needs one");
    let ip = socket.local_addr().expect("local addr").ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

#[test]
fn the_token_never_goes_to_a_fork_over_plain_http_off_loopback() {
    let fx = Fixture::new();
    let fork = fork_of(&fx);
    let ip = non_loopback_address();
    let server = GitServer::start_on(ip, fx._dir.path(), HTTP_TOKEN);
    let url = format!("http://{}/fork.git", server.address);
    let repo = Repo::open(&fx.clone, "main", Some(HTTP_TOKEN.to_string().into()))
        .expect("open")
        .with_push_url(Some(url.clone()));
    let err = repo
        .publish_branch("feature/fork-cleartext", &[change("x.txt", "x\n")], "x")
        .expect_err("published over plain http");
    assert!(matches!(err, GitError::Auth(_)), "{err}");
    assert!(err.to_string().contains("plain http"), "{err}");
    assert_secret_free(&err, &[HTTP_TOKEN, &url]);
    assert!(server.unauthorized() > 0, "control: the fork was asked");
    assert_eq!(server.authorized(), 0, "the token went over plain http");
    assert_eq!(branch_in(&fork, "feature/fork-cleartext"), None);
}

/// Commits `path` with `content` on the seed's main and pushes it to origin; returns the commit.
fn push_on_main(fx: &Fixture, path: &str, content: &str) -> String {
    fs::write(fx.seed.join(path), content).expect("write");
    git(&fx.seed, &["add", path]);
    git(&fx.seed, &["commit", "-qm", path]);
    git(&fx.seed, &["push", "-q", "origin", "main"]);
    fx.seed_head()
}

#[test]
fn fetch_commit_brings_an_old_base_the_clone_lacks_and_a_pin_reads_its_tree() {
    let fx = Fixture::new();
    let old = push_on_main(&fx, "NEWS.md", "news\n");
    let newest = push_on_main(&fx, "LATER.md", "later\n");
    let repo = fx.open();
    assert!(
        fx.open().at_commit(&old).is_err(),
        "the clone already had the old commit"
    );

    repo.fetch_commit(&old).expect("fetch old commit");
    // Already present: a second call is a no-op.
    repo.fetch_commit(&old).expect("fetch old commit again");
    let pinned = fx.open().at_commit(&old).expect("pin");
    let listing = pinned.list_files(usize::MAX).expect("list");
    assert!(listing.paths.contains(&"NEWS.md".to_string()));
    assert!(
        !listing.paths.contains(&"LATER.md".to_string()),
        "read the moved base {newest}"
    );
}

#[test]
fn fetch_commit_of_an_unknown_or_malformed_sha_is_a_missing_commit() {
    let fx = Fixture::new();
    let repo = fx.open();
    for sha in [
        "0123456789abcdef0123456789abcdef01234567",
        "not-a-sha",
        "0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456z",
    ] {
        match repo.fetch_commit(sha) {
            Err(GitError::MissingCommit(s)) => assert_eq!(s, sha),
            other => panic!("{sha}: {other:?}"),
        }
    }
}
