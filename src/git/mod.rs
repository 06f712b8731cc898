//! Git through libgit2 (git2): read the target repository at `origin/BASE_BRANCH`, and build,
//! commit and push a task's branch without touching the user's checked-out working tree, index
//! or HEAD. The base is always fetched from `origin`; the task's branch goes to origin, or to the
//! fork of PUSH_REPOSITORY when [`Repo::with_push_url`] names one (GitHub's outside-contributor
//! flow). [`Repo::publish_branch`] is idempotent across crashes: when the push remote already
//! holds the same content on the task's branch it is reused, not pushed again. Reads, exports and
//! commits work from `origin/BASE_BRANCH` as last fetched, or from a base commit pinned with
//! [`Repo::at_commit`] (a snapshot: what was read there is what is committed on it). All
//! functions block: call them from `tokio::task::spawn_blocking`.

mod lookup;
mod merge;
mod path;
mod remote;
mod tree;
mod url;

pub use merge::{MergePreview, has_conflict_markers};
pub use path::{MAX_PATH_BYTES, PathError, check_path};
pub use remote::TOKEN_USER;
pub use url::{clone_url, parse_github_repository};

use std::path::{Path, PathBuf};

use git2::{AutotagOption, Direction, FetchOptions, FetchPrune, PushOptions, Reference, Signature};
use secrecy::SecretString;

use crate::task::FileChange;

use remote::Session;

/// Name of the author and committer of every commit the daemon makes.
pub const AUTHOR_NAME: &str = "autonomous-dev";
/// E-mail of the author and committer of every commit the daemon makes.
pub const AUTHOR_EMAIL: &str = "autonomous-dev@users.noreply.github.com";
/// Marker line appended to file content cut by [`Repo::read_files`].
pub const TRUNCATION_MARKER: &str = "\n… [truncated]";

/// The remote the daemon fetches the base from, and pushes to unless a push URL is set.
const ORIGIN: &str = "origin";
/// The largest blob read as a file's text, in bytes: a larger file on the base is treated as
/// not text (left out of reads), so a repository's huge file never has to fit in memory.
pub const MAX_BLOB_BYTES: usize = 32 << 20;
/// The fork (PUSH_REPOSITORY) as errors name it.
const FORK: &str = "the fork";
/// Whether the daemon made `commit`: committed as [`AUTHOR_NAME`] <[`AUTHOR_EMAIL`]> on one
/// parent, as [`Repo::commit`] does. A commit someone added on top, amended or rebased has
/// their committer identity.
fn made_by_daemon(commit: &git2::Commit<'_>) -> bool {
    let committer = commit.committer();
    committer.name_bytes() == AUTHOR_NAME.as_bytes()
        && committer.email_bytes() == AUTHOR_EMAIL.as_bytes()
        && commit.parent_count() == 1
}

/// Where the fork's copy of a task branch is fetched to for comparison:
/// `refs/autonomous-dev/push/<branch>` (outside `refs/remotes/origin/`, so origin's refs never
/// mix with the fork's).
const FORK_TRACKING_PREFIX: &str = "refs/autonomous-dev/push/";

/// Errors of the git layer. Messages never contain the token or a remote URL.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Merging the base into a branch conflicts in a way a text resolution cannot fix (a
    /// binary file, a deletion against a change), or a resolution left conflict markers.
    #[error("merge conflict: {0}")]
    Conflict(String),
    /// A proposed path is hostile or invalid; nothing was written or pushed.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A local libgit2 operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// `path` is not a git repository (or cannot be opened).
    #[error("{path} is not a git repository: {message}")]
    NotARepository { path: PathBuf, message: String },
    /// Origin refused the credentials, or asked for some and there were none to give.
    #[error("{0}")]
    Auth(String),
    /// A fetch or push failed for another reason (network, protocol, server).
    #[error("{0}")]
    Remote(String),
    /// The push remote (`origin` or `the fork`) refused to update `refname` (protected
    /// branch, hook).
    #[error("push of {refname} rejected by {remote}: {message}")]
    PushRejected {
        remote: &'static str,
        refname: String,
        message: String,
    },
    /// The push remote's task branch holds a commit the daemon did not make (someone pushed to
    /// it, or rewrote it): a force-push would destroy their work, so nothing is pushed.
    #[error(
        "{remote}'s branch {branch} holds commit {commit}, which autonomous-dev did not commit; \
         not overwriting it (delete or rename that branch, then retry the task)"
    )]
    ForeignBranch {
        remote: &'static str,
        branch: String,
        commit: String,
    },
    /// The base branch does not exist on origin (or was never fetched).
    #[error("branch '{0}' not found on origin (fetch it first)")]
    MissingBase(String),
    /// A base commit to pin ([`Repo::fetch_commit`]) is not a full hex SHA-1, or is neither in
    /// the clone nor to be had from origin (the base branch was rewritten and the commit
    /// collected, or it never was on origin).
    #[error("base commit {0} is not available: not in the clone and not fetchable from origin")]
    MissingCommit(String),
    /// A branch name is not a valid git ref name, or is checked out in the user's repository.
    #[error("invalid branch '{branch}': {reason}")]
    Branch {
        branch: String,
        reason: &'static str,
    },
    /// The files would not change the base tree; no commit was made.
    #[error("no changes: the files are identical to origin/{0}")]
    NoChanges(String),
    #[error("{0}")]
    Other(String),
}
/// What `list_files` returns: tracked paths at the base, cut to a size bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub paths: Vec<String>,
    pub truncated: bool,
}

/// A branch commit that is on origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub branch: String,
    /// Hex SHA of the commit.
    pub commit: String,
    /// `true` when origin already had this content ([`Repo::publish_branch`]) and nothing was
    /// pushed; always `false` from [`Repo::push`].
    pub reused: bool,
}

/// A commit built by [`Repo::commit`] and pointed to by the local branch; not pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub branch: String,
    /// Hex SHA of the commit.
    pub commit: String,
    /// Hex SHA of the commit's tree.
    pub tree: String,
}

/// The base commit and the tree built on it for a set of files.
struct Planned {
    base: git2::Oid,
    tree: git2::Oid,
}

/// The target repository: a local clone at REPO_PATH whose `origin` is the GitHub repository.
pub struct Repo {
    repo: git2::Repository,
    base_branch: String,
    token: Option<SecretString>,
    /// URL task branches are pushed to instead of origin (PUSH_REPOSITORY's fork); `None`:
    /// origin. Never put it in an error or log.
    push_url: Option<String>,
    /// The base commit reads and commits work from when pinned by [`Repo::at_commit`];
    /// `None`: `origin/BASE_BRANCH` as last fetched.
    pinned: Option<git2::Oid>,
}

impl Repo {
    /// Opens the clone at `path`. `token` authenticates fetch/push over https
    /// (HTTP basic `x-access-token:<token>`); path and file remotes need none.
    ///
    /// Errors: [`GitError::NotARepository`] when `path` is not a git repository,
    /// [`GitError::Branch`] when `base_branch` is not a valid branch name.
    pub fn open(
        path: &Path,
        base_branch: &str,
        token: Option<SecretString>,
    ) -> Result<Repo, GitError> {
        check_branch_name(base_branch)?;
        let repo = git2::Repository::open(path).map_err(|e| GitError::NotARepository {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        Ok(Repo {
            repo,
            base_branch: base_branch.to_string(),
            token,
            push_url: None,
            pinned: None,
        })
    }

    /// This clone pushing task branches to `url` (the fork of PUSH_REPOSITORY, an `https://`
    /// or loopback `http://` URL the settings checked) instead of origin; `None` keeps origin.
    /// The base is still fetched from origin. The token goes to `url` under the same rule as
    /// to origin (`https://`, or plain `http://` to a loopback host only:
    /// [`crate::net::may_send_secret`]), and [`Repo::remote_branch`] and
    /// [`Repo::publish_branch`]'s reuse check ask the fork, not origin.
    pub fn with_push_url(mut self, url: Option<String>) -> Repo {
        self.push_url = url;
        self
    }

    /// This clone pinned at base commit `sha` (hex, as [`Repo::fetch_base`] returned it):
    /// listing, reads, exports and commits work from that commit instead of
    /// `origin/BASE_BRANCH`, and [`Repo::publish_branch`] does not fetch the base again. A
    /// snapshot of the base: what was read and verified at `sha` is what is committed on it.
    ///
    /// Errors: [`GitError::Git`] when `sha` is not a commit in the clone.
    pub fn at_commit(mut self, sha: &str) -> Result<Repo, GitError> {
        let oid = git2::Oid::from_str(sha)?;
        self.repo.find_commit(oid)?;
        self.pinned = Some(oid);
        Ok(self)
    }

    /// URL of the `origin` remote. It may hold credentials: never put it in an error or log.
    pub fn origin_url(&self) -> Result<String, GitError> {
        let remote = self.repo.find_remote(ORIGIN)?;
        Ok(remote.url()?.to_string())
    }

    /// Fetches `BASE_BRANCH` from origin into `refs/remotes/origin/BASE_BRANCH`; returns its SHA.
    ///
    /// The tracking ref is forced (a rewritten base is followed) and pruned when the branch is
    /// gone from origin, which gives [`GitError::MissingBase`]. Network failures give
    /// [`GitError::Auth`] or [`GitError::Remote`].
    pub fn fetch_base(&self) -> Result<String, GitError> {
        let refspec = format!("+refs/heads/{0}:{1}", self.base_branch, self.tracking_ref());
        let origin = self.repo.find_remote(ORIGIN)?;
        self.fetch(origin, ORIGIN, &refspec, FetchPrune::On, "fetch base")?;
        Ok(self.tracking_commit()?.id().to_string())
    }

    /// Makes commit `sha` (40 hex digits, as [`Repo::fetch_base`] returned it) present in the
    /// clone without pinning anything: nothing is fetched when it already is; otherwise
    /// `BASE_BRANCH` is fetched (the commit is usually an ancestor of the moved base), and when
    /// that does not bring it the commit itself is asked of origin by id (servers such as
    /// GitHub answer for reachable commits).
    ///
    /// Errors: [`GitError::MissingCommit`] when `sha` is malformed, or is still missing after
    /// both fetches (a failure of the fetch by id counts as missing: origin does not have it);
    /// the base fetch's own errors ([`GitError::Auth`], [`GitError::Remote`],
    /// [`GitError::MissingBase`]) are passed on, since they say nothing about the commit.
    pub fn fetch_commit(&self, sha: &str) -> Result<(), GitError> {
        let missing = || GitError::MissingCommit(sha.to_string());
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let oid = git2::Oid::from_str(sha).map_err(|_| missing())?;
        if self.has_commit(oid) {
            return Ok(());
        }
        self.fetch_base()?;
        if self.has_commit(oid) {
            return Ok(());
        }
        let origin = self.repo.find_remote(ORIGIN)?;
        let by_id = sha.to_ascii_lowercase();
        let fetched = self.fetch(
            origin,
            ORIGIN,
            &by_id,
            FetchPrune::Unspecified,
            "fetch base commit",
        );
        if fetched.is_ok() && self.has_commit(oid) {
            Ok(())
        } else {
            Err(missing())
        }
    }

    /// True when `oid` is a commit in the clone.
    fn has_commit(&self, oid: git2::Oid) -> bool {
        self.repo.find_commit(oid).is_ok()
    }

    /// Tracked file paths at the base (`origin/BASE_BRANCH`, or the pinned commit), sorted, cut
    /// when their total length passes `max_bytes`.
    ///
    /// Lists blobs (regular, executable and symlink entries; not submodules). Each path counts
    /// its length plus one (for the newline separating it in a prompt); the first path that
    /// would pass `max_bytes` and all after it are left out, with `truncated` set.
    pub fn list_files(&self, max_bytes: usize) -> Result<Listing, GitError> {
        let tree = self.base_commit()?.tree()?;
        let mut paths = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if let (Some(git2::ObjectType::Blob), Ok(name)) = (entry.kind(), entry.name()) {
                paths.push(format!("{dir}{name}"));
            }
            git2::TreeWalkResult::Ok
        })?;
        paths.sort();
        Ok(cut_listing(paths, max_bytes))
    }

    /// The repository map of the base tree ranked for a task's `text` and rendered within
    /// `budget_tokens` (estimated): built from the base's blobs, or read from the clone's
    /// cache (`<git dir>/autonomous-dev/repomap/<tree id>.json`), so a second task on the same
    /// base reuses it. Errors: [`GitError::Git`] when the tree or a blob cannot be read,
    /// [`GitError::Other`] when a grammar rejects its query.
    pub fn repo_map(
        &self,
        text: &str,
        budget_tokens: usize,
    ) -> Result<crate::repomap::Rendered, GitError> {
        let base = self.base_commit()?;
        let cache = crate::repomap::default_cache_dir(&self.repo);
        crate::repomap::for_task(&self.repo, &base, Some(&cache), text, budget_tokens).map_err(
            |e| match e {
                crate::repomap::MapError::Git(e) => GitError::Git(e),
                other => GitError::Other(other.to_string()),
            },
        )
    }

    /// Content at the base (`origin/BASE_BRANCH`, or the pinned commit) of those `paths` that
    /// exist as UTF-8 text files, each cut to `max_bytes_each`. Missing, binary and invalid
    /// paths are skipped.
    ///
    /// Paths failing [`check_path`], directories, symlinks, submodules, blobs with NUL bytes or
    /// invalid UTF-8, and repeated paths are skipped. Cut content ends at a character boundary
    /// followed by [`TRUNCATION_MARKER`].
    pub fn read_files(
        &self,
        paths: &[String],
        max_bytes_each: usize,
    ) -> Result<Vec<FileChange>, GitError> {
        let tree = self.base_commit()?.tree()?;
        let mut files: Vec<FileChange> = Vec::new();
        for path in paths {
            if files.iter().any(|f| &f.path == path) {
                continue;
            }
            if let Some(content) = self.read_text(&tree, path)? {
                files.push(FileChange {
                    path: path.clone(),
                    content: cut_text(content, max_bytes_each),
                });
            }
        }
        Ok(files)
    }

    /// Those of `paths` that are executable files (git mode 100755) at the base; invalid and
    /// missing paths are left out.
    pub fn executables(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        let tree = self.base_commit()?.tree()?;
        Ok(paths
            .iter()
            .filter(|path| check_path(path).is_ok())
            .filter(|path| {
                tree.get_path(Path::new(path.as_str()))
                    .is_ok_and(|entry| entry.filemode() == tree::MODE_EXECUTABLE)
            })
            .cloned()
            .collect())
    }

    /// Builds a commit on the base (`origin/BASE_BRANCH` as last fetched, or the pinned commit)
    /// that writes `files` and force-points the local branch `refs/heads/<branch>` at it;
    /// pushes nothing. Commits as `autonomous-dev`, with the base commit as the only parent.
    ///
    /// Only the object database and `refs/heads/<branch>` are written; the user's HEAD, index
    /// and working tree are never touched. The local branch is force-updated (the branch
    /// belongs to the daemon).
    ///
    /// Errors, all before the ref is written: [`GitError::Path`] for a hostile path (absolute,
    /// `..`, inside `.git/`), a duplicate, or a path running into a symlink, submodule, file or
    /// directory of the base tree; [`GitError::Branch`] for an invalid branch name or one
    /// checked out in the user's repository (or a linked worktree); [`GitError::NoChanges`]
    /// when `files` is empty or changes nothing; [`GitError::MissingBase`] when the base was
    /// never fetched.
    pub fn commit(
        &self,
        branch: &str,
        files: &[FileChange],
        message: &str,
    ) -> Result<Committed, GitError> {
        let planned = self.plan_tree(branch, files)?;
        let base = self.repo.find_commit(planned.base)?;
        let tree = self.repo.find_tree(planned.tree)?;
        let signature = Signature::now(AUTHOR_NAME, AUTHOR_EMAIL)?;
        let commit = self
            .repo
            .commit(None, &signature, &signature, message, &tree, &[&base])?;
        self.set_local_branch(branch, commit)?;
        Ok(Committed {
            branch: branch.to_string(),
            commit: commit.to_string(),
            tree: planned.tree.to_string(),
        })
    }

    /// Force-pushes the local branch `refs/heads/<branch>` to the same name on the push remote
    /// (origin, or the fork of [`Repo::with_push_url`]; the branch belongs to the daemon, so a
    /// previous attempt's commit is replaced).
    ///
    /// Errors: [`GitError::Branch`] for an invalid name or a local branch that does not exist
    /// (call [`Repo::commit`] first); [`GitError::Auth`], [`GitError::Remote`],
    /// [`GitError::PushRejected`] from the push remote.
    pub fn push(&self, branch: &str) -> Result<Pushed, GitError> {
        self.push_leased(branch, None)
    }

    /// [`Repo::push`], and with `lease` (the remote tip read before, zero for "no such
    /// branch") only while the push remote's branch is still there — git's
    /// `--force-with-lease`: the push sends that tip as the ref's old value, so a branch moved
    /// meanwhile is left alone ([`GitError::PushRejected`]).
    fn push_leased(&self, branch: &str, lease: Option<git2::Oid>) -> Result<Pushed, GitError> {
        check_branch_name(branch)?;
        let refname = format!("refs/heads/{branch}");
        let commit = match self.repo.find_reference(&refname) {
            Ok(reference) => reference.peel_to_commit()?.id(),
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(GitError::Branch {
                    branch: branch.to_string(),
                    reason: "no such local branch (commit it first)",
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.push_ref(&refname, lease, true)?;
        Ok(Pushed {
            branch: branch.to_string(),
            commit: commit.to_string(),
            reused: false,
        })
    }

    /// The SHA of `refs/heads/<branch>` on the push remote (origin, or the fork of
    /// [`Repo::with_push_url`]), asked of that remote itself (`git ls-remote`, authenticated
    /// like fetch and push); `None` when it has no such branch.
    ///
    /// Errors: [`GitError::Branch`] for an invalid name; [`GitError::Auth`],
    /// [`GitError::Remote`] when the remote cannot be reached or refuses the token.
    pub fn remote_branch(&self, branch: &str) -> Result<Option<String>, GitError> {
        check_branch_name(branch)?;
        let refname = format!("refs/heads/{branch}");
        let (mut remote, name) = self.push_remote()?;
        let url = remote.url().ok().map(str::to_string);
        let session = Session::new(self.token.as_ref(), name);
        let connection = remote
            .connect_auth(Direction::Fetch, Some(session.callbacks()), None)
            .map_err(|e| session.error("ls-remote", &e, url.as_deref()))?;
        let heads = connection
            .list()
            .map_err(|e| session.error("ls-remote", &e, url.as_deref()))?;
        Ok(heads
            .iter()
            .find(|head| head.name() == refname)
            .map(|head| head.oid().to_string()))
    }

    /// Publishes `files` on `branch` idempotently: fetches the base (unless pinned at a commit
    /// by [`Repo::at_commit`], which is then the base), builds the tree, and when the push
    /// remote's (origin's, or the fork's) `branch` already holds a commit with exactly that
    /// tree on the current base
    /// (a previous attempt pushed the same content, then crashed), reuses that commit without
    /// pushing (`reused: true`); otherwise commits and force-pushes (`reused: false`) — over
    /// a remote tip only when the daemon made it ([`GitError::ForeignBranch`] otherwise: a
    /// person's commits on the task branch are never destroyed).
    ///
    /// "Same content" means the remote tip's tree equals the tree built now *and* its first
    /// parent is the current base commit (so the PR's diff is exactly `files`). A remote tip
    /// the clone has not got is fetched into `refs/remotes/origin/<branch>` (from the fork:
    /// `refs/autonomous-dev/push/<branch>`) to compare. On reuse the local branch is pointed
    /// at the remote tip too.
    ///
    /// Errors: as [`Repo::fetch_base`], [`Repo::commit`], [`Repo::remote_branch`] and
    /// [`Repo::push`]; [`GitError::ForeignBranch`]. Nothing is pushed when an error occurs
    /// before the push.
    pub fn publish_branch(
        &self,
        branch: &str,
        files: &[FileChange],
        message: &str,
    ) -> Result<Pushed, GitError> {
        if self.pinned.is_none() {
            self.fetch_base()?;
        }
        let planned = self.plan_tree(branch, files)?;
        let remote_tip = self.remote_branch(branch)?;
        if let Some(tip) = &remote_tip
            && let Some(commit) = self.remote_commit(branch, tip)?
        {
            if commit.tree_id() == planned.tree && commit.parent_ids().next() == Some(planned.base)
            {
                self.set_local_branch(branch, commit.id())?;
                tracing::info!(
                    %branch,
                    commit = %commit.id(),
                    "the push remote already has this content on the branch; reusing it without a push"
                );
                return Ok(Pushed {
                    branch: branch.to_string(),
                    commit: commit.id().to_string(),
                    reused: true,
                });
            }
            if !made_by_daemon(&commit) {
                return Err(GitError::ForeignBranch {
                    remote: self.push_remote()?.1,
                    branch: branch.to_string(),
                    commit: commit.id().to_string(),
                });
            }
        }
        self.commit(branch, files, message)?;
        let lease = match &remote_tip {
            Some(tip) => git2::Oid::from_str(tip)?,
            None => git2::Oid::ZERO_SHA1,
        };
        self.push_leased(branch, Some(lease))
    }

    /// The commit the push remote's `branch` points to now (hex), fetched into the clone
    /// (`refs/remotes/origin/<branch>`, from a fork `refs/autonomous-dev/push/<branch>`) so
    /// that [`Repo::at_commit`] can pin it; `None` when the remote has no such branch.
    ///
    /// Errors: as [`Repo::remote_branch`] and the fetch's.
    pub fn fetch_branch(&self, branch: &str) -> Result<Option<String>, GitError> {
        let Some(tip) = self.remote_branch(branch)? else {
            return Ok(None);
        };
        Ok(self
            .remote_commit(branch, &tip)?
            .map(|commit| commit.id().to_string()))
    }

    /// Adds one commit writing `files` on top of the pinned commit ([`Repo::at_commit`]: the
    /// PR branch's tip a revision was built on) and pushes it to `branch` as a fast-forward —
    /// no force, and only while the push remote's branch is still at that tip (the lease). A
    /// previous attempt's push is recognised and reused (`reused: true`): the remote tip's only
    /// parent is the pinned commit and its tree is the one built now.
    ///
    /// Errors: [`GitError::PushRejected`] when the branch moved to anything else (someone
    /// pushed meanwhile: the revision is not built on what is there) or is gone;
    /// [`GitError::Branch`] when nothing is pinned; as [`Repo::commit`] and [`Repo::push`].
    pub fn push_revision(
        &self,
        branch: &str,
        files: &[FileChange],
        message: &str,
    ) -> Result<Pushed, GitError> {
        let Some(head) = self.pinned else {
            return Err(GitError::Branch {
                branch: branch.to_string(),
                reason: "a revision is committed on a pinned commit",
            });
        };
        let planned = self.plan_tree(branch, files)?;
        self.push_on(branch, head, planned.tree, &[head], || {
            let committed = self.commit(branch, files, message)?;
            Ok(git2::Oid::from_str(&committed.commit)?)
        })
    }

    /// The commit `sha` that the push remote's `branch` points to, fetching the branch into
    /// `refs/remotes/origin/<branch>` (from the fork: `refs/autonomous-dev/push/<branch>`)
    /// when the object is not in the clone. `None` when the branch vanished meanwhile or does
    /// not point to a commit.
    fn remote_commit(&self, branch: &str, sha: &str) -> Result<Option<git2::Commit<'_>>, GitError> {
        let oid = git2::Oid::from_str(sha)?;
        if let Ok(commit) = self.repo.find_commit(oid) {
            return Ok(Some(commit));
        }
        let tracking = match self.push_url {
            Some(_) => format!("{FORK_TRACKING_PREFIX}{branch}"),
            None => format!("refs/remotes/{ORIGIN}/{branch}"),
        };
        let refspec = format!("+refs/heads/{branch}:{tracking}");
        let (remote, name) = self.push_remote()?;
        self.fetch(
            remote,
            name,
            &refspec,
            FetchPrune::Unspecified,
            "fetch task branch",
        )?;
        match self.repo.find_reference(&tracking) {
            Ok(reference) => Ok(reference.peel_to_commit().ok()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks `branch` and `files` and writes the tree of `origin/BASE_BRANCH` with `files`
    /// applied into the object database. Errors as [`Repo::commit`]; writes no ref.
    fn plan_tree(&self, branch: &str, files: &[FileChange]) -> Result<Planned, GitError> {
        check_branch_name(branch)?;
        self.check_not_checked_out(branch)?;
        let base = self.base_commit()?;
        let base_tree = base.tree()?;
        let modes = tree::plan(&base_tree, files)?;
        if files.is_empty() {
            return Err(GitError::NoChanges(self.base_branch.clone()));
        }
        let tree_id = tree::build(&self.repo, &base_tree, files, &modes)?;
        if tree_id == base_tree.id() {
            return Err(GitError::NoChanges(self.base_branch.clone()));
        }
        Ok(Planned {
            base: base.id(),
            tree: tree_id,
        })
    }

    /// Writes the tree of the base (`origin/BASE_BRANCH` as last fetched, or the pinned commit)
    /// with `files` applied into `dir`, an empty directory: a worktree to verify the change in.
    /// Only objects are written to the repository; its refs, HEAD, index and working tree are
    /// not touched.
    ///
    /// Errors: [`GitError::Path`] for a hostile path (as [`Repo::commit`], before anything is
    /// written), [`GitError::MissingBase`] when the base was never fetched, [`GitError::Git`]
    /// when a file cannot be written.
    pub fn export(&self, files: &[FileChange], dir: &Path) -> Result<(), GitError> {
        let base_tree = self.base_commit()?.tree()?;
        let modes = tree::plan(&base_tree, files)?;
        let tree = self
            .repo
            .find_tree(tree::build(&self.repo, &base_tree, files, &modes)?)?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.target_dir(dir).update_index(false).force();
        self.repo
            .checkout_tree(tree.as_object(), Some(&mut checkout))?;
        Ok(())
    }

    /// Force-points `refs/heads/<branch>` at `commit`.
    fn set_local_branch(&self, branch: &str, commit: git2::Oid) -> Result<(), GitError> {
        let refname = format!("refs/heads/{branch}");
        self.repo
            .reference(&refname, commit, true, "autonomous-dev: task commit")?;
        Ok(())
    }

    /// Fetches `refspec` from `remote` (named `name` in errors) with the token's credentials,
    /// no tags and no FETCH_HEAD, pruning as `prune` says; `reflog` ends the reflog message.
    ///
    /// Errors: [`GitError::Auth`], [`GitError::Remote`], without the token or the URL.
    fn fetch(
        &self,
        mut remote: git2::Remote<'_>,
        name: &'static str,
        refspec: &str,
        prune: FetchPrune,
        reflog: &str,
    ) -> Result<(), GitError> {
        let url = remote.url().ok().map(str::to_string);
        let session = Session::new(self.token.as_ref(), name);
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(session.callbacks())
            .download_tags(AutotagOption::None)
            .update_fetchhead(false)
            .prune(prune);
        remote
            .fetch(
                &[refspec],
                Some(&mut options),
                Some(&format!("autonomous-dev: {reflog}")),
            )
            .map_err(|e| session.error("fetch", &e, url.as_deref()))
    }

    /// The remote task branches go to, with its name for errors: an anonymous remote at the
    /// push URL (the fork), else origin.
    fn push_remote(&self) -> Result<(git2::Remote<'_>, &'static str), GitError> {
        match &self.push_url {
            Some(url) => Ok((self.repo.remote_anonymous(url)?, FORK)),
            None => Ok((self.repo.find_remote(ORIGIN)?, ORIGIN)),
        }
    }

    /// Force-pushes the local `refname` to the same name on the push remote; with `lease`,
    /// only when the remote advertises exactly that old value for it (libgit2's push
    /// negotiation sees the remote's refs before anything is sent; receive-pack then refuses
    /// the update if the ref moves in between).
    fn push_ref(
        &self,
        refname: &str,
        lease: Option<git2::Oid>,
        force: bool,
    ) -> Result<(), GitError> {
        let (mut remote, name) = self.push_remote()?;
        let url = remote
            .pushurl()
            .ok()
            .flatten()
            .or_else(|| remote.url().ok())
            .map(str::to_string);
        let session = Session::new(self.token.as_ref(), name);
        let mut callbacks = session.callbacks();
        let moved = std::cell::Cell::new(None);
        if let Some(expected) = lease {
            let moved = &moved;
            callbacks.push_negotiation(move |updates| {
                match updates
                    .iter()
                    .find(|u| u.dst_refname_bytes() == refname.as_bytes())
                {
                    Some(update) if update.src() != expected => {
                        moved.set(Some(update.src()));
                        Err(git2::Error::from_str("the branch moved on the remote"))
                    }
                    _ => Ok(()),
                }
            });
        }
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        let plus = if force { "+" } else { "" };
        let pushed = remote.push(&[format!("{plus}{refname}:{refname}")], Some(&mut options));
        if let Some(now) = moved.get() {
            return Err(GitError::PushRejected {
                remote: name,
                refname: refname.to_string(),
                message: format!("the branch moved to {now} since it was read; not overwriting it"),
            });
        }
        pushed.map_err(|e| session.error("push", &e, url.as_deref()))?;
        match session.rejection() {
            Some(rejected) => Err(rejected),
            None => Ok(()),
        }
    }

    /// `refs/remotes/origin/BASE_BRANCH`.
    fn tracking_ref(&self) -> String {
        format!("refs/remotes/{ORIGIN}/{}", self.base_branch)
    }

    /// The base commit: the pinned one ([`Repo::at_commit`]), else `origin/BASE_BRANCH`.
    fn base_commit(&self) -> Result<git2::Commit<'_>, GitError> {
        match self.pinned {
            Some(pinned) => Ok(self.repo.find_commit(pinned)?),
            None => self.tracking_commit(),
        }
    }

    /// The commit at `origin/BASE_BRANCH` as last fetched.
    fn tracking_commit(&self) -> Result<git2::Commit<'_>, GitError> {
        let reference = match self.repo.find_reference(&self.tracking_ref()) {
            Ok(reference) => reference,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(GitError::MissingBase(self.base_branch.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(reference.peel_to_commit()?)
    }

    /// The text of `path` in `tree` if it is a valid path to a UTF-8 regular file of at most
    /// [`MAX_BLOB_BYTES`] (its size is read from the object header before the blob is loaded).
    /// Symlinks, submodules and directories are not files: nothing is ever read through one.
    fn read_text(&self, tree: &git2::Tree<'_>, path: &str) -> Result<Option<String>, GitError> {
        if check_path(path).is_err() {
            return Ok(None);
        }
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !matches!(entry.filemode(), tree::MODE_FILE | tree::MODE_EXECUTABLE) {
            return Ok(None);
        }
        let (size, _) = self.repo.odb()?.read_header(entry.id())?;
        if size > MAX_BLOB_BYTES {
            return Ok(None);
        }
        let blob = self.repo.find_blob(entry.id())?;
        if blob.content().contains(&0) {
            return Ok(None);
        }
        Ok(std::str::from_utf8(blob.content()).ok().map(str::to_string))
    }

    /// Fails when `branch` is checked out in this repository or one of its linked worktrees:
    /// moving it would change that checkout's HEAD.
    fn check_not_checked_out(&self, branch: &str) -> Result<(), GitError> {
        let refname = format!("refs/heads/{branch}");
        let mut heads = vec![head_target(&self.repo)?];
        for name in self.repo.worktrees()?.iter().flatten().flatten() {
            let worktree = self.repo.find_worktree(name)?;
            if let Ok(repo) = git2::Repository::open_from_worktree(&worktree) {
                heads.push(head_target(&repo)?);
            }
        }
        if heads.iter().flatten().any(|head| *head == refname) {
            return Err(GitError::Branch {
                branch: branch.to_string(),
                reason: "checked out in the repository",
            });
        }
        Ok(())
    }
}

/// The branch HEAD points to (`refs/heads/…`), `None` when detached.
fn head_target(repo: &git2::Repository) -> Result<Option<String>, GitError> {
    let head = repo.find_reference("HEAD")?;
    Ok(head.symbolic_target()?.map(str::to_string))
}

/// Rejects names that are not valid `refs/heads/<name>` refs.
fn check_branch_name(branch: &str) -> Result<(), GitError> {
    let valid = !branch.is_empty()
        && !branch.starts_with('-')
        && Reference::is_valid_name(&format!("refs/heads/{branch}"));
    if valid {
        Ok(())
    } else {
        Err(GitError::Branch {
            branch: branch.to_string(),
            reason: "not a valid branch name",
        })
    }
}

/// Keeps the sorted `paths` while their lengths (plus a newline each) fit in `max_bytes`.
fn cut_listing(mut paths: Vec<String>, max_bytes: usize) -> Listing {
    let mut total = 0usize;
    let keep = paths
        .iter()
        .take_while(|path| {
            total += path.len() + 1;
            total <= max_bytes
        })
        .count();
    let truncated = keep < paths.len();
    paths.truncate(keep);
    Listing { paths, truncated }
}

/// The git blob id (hex SHA-1) of a file holding `content`: what `git hash-object` prints, and
/// the id the file has in a commit. Names a file's exact content in recorded evidence.
pub fn blob_id(content: &str) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, content.as_bytes())
        .expect("hashing a blob in memory does not fail")
        .to_string()
}

/// `text` cut to at most `max_bytes` (at a character boundary) plus [`TRUNCATION_MARKER`].
fn cut_text(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(TRUNCATION_MARKER);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_can_move_into_spawn_blocking() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Repo>();
        assert_send::<GitError>();
    }

    #[test]
    fn listing_is_cut_by_total_length() {
        let paths = vec!["a".to_string(), "bb".to_string(), "ccc".to_string()];
        let all = cut_listing(paths.clone(), 9);
        assert_eq!(all.paths.len(), 3);
        assert!(!all.truncated);
        let cut = cut_listing(paths.clone(), 8);
        assert_eq!(cut.paths, vec!["a", "bb"]);
        assert!(cut.truncated);
        let none = cut_listing(paths, 1);
        assert!(none.paths.is_empty());
        assert!(none.truncated);
    }

    #[test]
    fn text_is_cut_at_char_boundary() {
        assert_eq!(cut_text("héllo".to_string(), 10), "héllo");
        assert_eq!(
            cut_text("héllo".to_string(), 2),
            format!("h{TRUNCATION_MARKER}")
        );
        assert_eq!(
            cut_text("héllo".to_string(), 3),
            format!("hé{TRUNCATION_MARKER}")
        );
        assert_eq!(cut_text("abc".to_string(), 0), TRUNCATION_MARKER);
    }

    #[test]
    fn branch_names() {
        assert!(check_branch_name("feature/task-phase1-001").is_ok());
        assert!(check_branch_name("main").is_ok());
        for bad in [
            "", "-x", "a..b", "a b", "a~1", "a:b", "a/", "/a", "a.lock", "a\\b",
        ] {
            assert!(check_branch_name(bad).is_err(), "{bad}");
        }
    }
}
