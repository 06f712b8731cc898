//! `bench localize`: how well the map localises real changes. Cases are the most recent
//! non-merge commits of a repository's current branch that modify 1–3 existing non-test
//! source files (and add, delete or rename none); the task is the commit message (subject and
//! body, trailers dropped), the base its parent, the gold the modified files. For each case the
//! map of the parent's tree is built afresh (no cache), ranked by the message and rendered at
//! the budget. No model is involved: this measures what the Architect is shown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{History, Lang, build, rank, render};

/// Commits looked at, at most, to find the cases.
const MAX_SCANNED: usize = 20_000;
/// Rank within which all of a case's gold files must be for top-10 recall.
const TOP: usize = 10;

/// Errors of the benchmark: bad input, before anything is measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path} is not a git repository: {message}")]
    NotARepository { path: PathBuf, message: String },
    #[error("{0} has no current branch commit (empty repository or detached unborn HEAD)")]
    NoHead(PathBuf),
    #[error(
        "{path} has only {found} commits that modify 1–3 existing non-test source files \
         (among the last {scanned} commits), {wanted} asked: use --cases {found} or fewer"
    )]
    NotEnoughCases {
        path: PathBuf,
        found: usize,
        wanted: usize,
        scanned: usize,
    },
    #[error("--cases must be at least 1")]
    NoCases,
    #[error(transparent)]
    Map(#[from] super::MapError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// One localisation case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Hex id of the commit.
    pub commit: String,
    /// The task: subject and body, trailers dropped.
    pub task: String,
    /// The modified non-test source files, sorted.
    pub gold: Vec<String>,
}

/// What the map did on one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub case: Case,
    /// 1-based rank of each gold file (same order as `case.gold`).
    pub ranks: Vec<usize>,
    /// Gold files among the rendered map's paths.
    pub in_map: usize,
    /// Milliseconds to build the map (parse every source blob of the parent's tree).
    pub build_ms: f64,
    /// Milliseconds to read the parent's recent history ([`History::of`]).
    pub history_ms: f64,
    /// Estimated tokens of the rendered map.
    pub tokens: usize,
    /// Files in the parent's tree.
    pub files: usize,
    /// Of which parsed as source.
    pub parsed: usize,
}

impl CaseResult {
    /// All gold files within the top [`TOP`].
    pub fn top10(&self) -> bool {
        self.ranks.iter().all(|&r| r <= TOP)
    }
}

/// The results over every case.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The repository as named on the command line.
    pub repo: String,
    pub budget: usize,
    pub results: Vec<CaseResult>,
}

impl Report {
    /// Share of gold files present in the map, 0–1.
    pub fn map_recall(&self) -> f64 {
        let gold: usize = self.results.iter().map(|r| r.case.gold.len()).sum();
        let found: usize = self.results.iter().map(|r| r.in_map).sum();
        found as f64 / gold.max(1) as f64
    }

    /// Share of cases whose gold files are all in the top 10, 0–1.
    pub fn top10_recall(&self) -> f64 {
        self.results.iter().filter(|r| r.top10()).count() as f64 / self.results.len().max(1) as f64
    }

    /// The report as Markdown: a summary table, then one row per case.
    pub fn markdown(&self) -> String {
        let n = self.results.len().max(1) as f64;
        let mean = |f: &dyn Fn(&CaseResult) -> f64| self.results.iter().map(f).sum::<f64>() / n;
        let max_ms = self.results.iter().map(|r| r.build_ms).fold(0.0, f64::max);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| repository | cases | files (parsed) | budget | map recall | top-10 recall | build ms (mean / max) | history ms (mean) | map tokens (mean) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} ({:.0}) | {} | {:.1} % | {:.1} % | {:.0} / {:.0} | {:.0} | {:.0} |",
            self.repo,
            self.results.len(),
            mean(&|r| r.files as f64),
            mean(&|r| r.parsed as f64),
            self.budget,
            100.0 * self.map_recall(),
            100.0 * self.top10_recall(),
            mean(&|r| r.build_ms),
            max_ms,
            mean(&|r| r.history_ms),
            mean(&|r| r.tokens as f64),
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| commit | task | gold files (rank) | in map | build ms | tokens |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for r in &self.results {
            let subject: String = r
                .case
                .task
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect::<String>()
                .replace('|', "\\|");
            let gold: Vec<String> = r
                .case
                .gold
                .iter()
                .zip(&r.ranks)
                .map(|(g, rank)| format!("`{g}` ({rank})"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}/{} | {:.0} | {} |",
                &r.case.commit[..10],
                subject,
                gold.join(", "),
                r.in_map,
                r.case.gold.len(),
                r.build_ms,
                r.tokens
            );
        }
        out
    }
}

/// Whether `path` is a test: under a `test`/`tests`/`testing`/`__tests__`/`testdata`
/// directory, or named `test_*`, `*_test.*`, `*_tests.*`, `*.test.*`, `*.spec.*`, `conftest.py`.
pub fn is_test(path: &str) -> bool {
    let mut parts = path.split('/').collect::<Vec<_>>();
    let name = parts.pop().unwrap_or("");
    if parts
        .iter()
        .any(|d| matches!(*d, "test" | "tests" | "testing" | "__tests__" | "testdata"))
    {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name);
    stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || name.contains(".test.")
        || name.contains(".spec.")
        || name == "conftest.py"
}

/// A commit message as a task: subject and body; a last paragraph made only of trailers
/// (`Token: value`, as `git interpret-trailers` reads them) is dropped, and so is any
/// `Signed-off-by:`/`Co-authored-by:` line.
pub fn task_text(message: &str) -> String {
    let is_trailer = |line: &str| {
        line.split_once(": ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let mut paragraphs: Vec<&str> = message.trim().split("\n\n").collect();
    if paragraphs.len() > 1
        && let Some(last) = paragraphs.last()
        && last.lines().all(is_trailer)
    {
        paragraphs.pop();
    }
    paragraphs
        .join("\n\n")
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("signed-off-by:") && !l.starts_with("co-authored-by:")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The `wanted` most recent cases of `repo`'s current branch. Errors: [`BenchError::NoHead`],
/// [`BenchError::NotEnoughCases`] when fewer are found.
pub fn cases(repo: &git2::Repository, path: &Path, wanted: usize) -> Result<Vec<Case>, BenchError> {
    let head = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .ok_or_else(|| BenchError::NoHead(path.to_path_buf()))?;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL)?;
    walk.push(head.id())?;
    let mut found = Vec::new();
    let mut scanned = 0;
    for oid in walk {
        if found.len() == wanted || scanned == MAX_SCANNED {
            break;
        }
        scanned += 1;
        let oid = oid?;
        let commit = repo.find_commit(oid)?;
        if commit.parent_count() != 1 {
            continue;
        }
        let parent = commit.parent(0)?;
        let diff = repo.diff_tree_to_tree(Some(&parent.tree()?), Some(&commit.tree()?), None)?;
        let mut gold = Vec::new();
        let mut other_source_change = false;
        for delta in diff.deltas() {
            let Some(p) = delta.new_file().path().or(delta.old_file().path()) else {
                continue;
            };
            let p = p.to_string_lossy().to_string();
            if Lang::of(&p).is_none() || is_test(&p) {
                continue;
            }
            if delta.status() == git2::Delta::Modified {
                gold.push(p);
            } else {
                other_source_change = true;
            }
        }
        if other_source_change || gold.is_empty() || gold.len() > 3 {
            continue;
        }
        let task = task_text(&String::from_utf8_lossy(commit.message_bytes()));
        if task.is_empty() {
            continue;
        }
        gold.sort();
        found.push(Case {
            commit: oid.to_string(),
            task,
            gold,
        });
    }
    if found.len() < wanted {
        return Err(BenchError::NotEnoughCases {
            path: path.to_path_buf(),
            found: found.len(),
            wanted,
            scanned,
        });
    }
    Ok(found)
}

/// Runs the benchmark on the repository at `path`: `wanted` cases at `budget` tokens.
/// Errors: bad input ([`BenchError`]) before anything is measured.
pub fn run(path: &Path, wanted: usize, budget: usize) -> Result<Report, BenchError> {
    if wanted == 0 {
        return Err(BenchError::NoCases);
    }
    let repo = git2::Repository::open(path).map_err(|e| BenchError::NotARepository {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let cases = cases(&repo, path, wanted)?;
    let mut results = Vec::new();
    for case in cases {
        let commit = repo.find_commit(git2::Oid::from_str(&case.commit)?)?;
        let parent = commit.parent(0)?;
        let tree = parent.tree()?;
        let started = Instant::now();
        let map = build(&repo, &tree)?;
        let build_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let history = History::of(&repo, &parent)?;
        let history_ms = started.elapsed().as_secs_f64() * 1000.0;
        let ranking = rank(&map, &case.task, &history);
        let rendered = render(&map, &ranking, budget);
        let ranks = case
            .gold
            .iter()
            .map(|g| {
                ranking
                    .files
                    .iter()
                    .position(|&i| &map.files[i].path == g)
                    .map_or(usize::MAX, |p| p + 1)
            })
            .collect();
        let in_map = case
            .gold
            .iter()
            .filter(|g| rendered.shown.contains(g))
            .count();
        results.push(CaseResult {
            ranks,
            in_map,
            build_ms,
            history_ms,
            tokens: rendered.tokens,
            files: map.files.len(),
            parsed: map.parsed_files(),
            case,
        });
    }
    Ok(Report {
        repo: path.display().to_string(),
        budget,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::commit;
    use super::*;

    #[test]
    fn trailers_are_dropped_from_the_task() {
        assert_eq!(
            task_text(
                "Fix the router\n\nIt lost the prefix.\n\nSigned-off-by: A <a@b>\nCo-authored-by: B <b@c>\n"
            ),
            "Fix the router\n\nIt lost the prefix."
        );
        assert_eq!(
            task_text("Subject: a colon\n\nBody\nCo-authored-by: B <b@c>"),
            "Subject: a colon\n\nBody"
        );
    }

    #[test]
    fn tests_are_told_from_source() {
        for path in [
            "tests/test_app.py",
            "pkg/x_test.go",
            "src/a.test.ts",
            "conftest.py",
            "web/__tests__/a.js",
        ] {
            assert!(is_test(path), "{path}");
        }
        for path in [
            "src/flask/app.py",
            "command.go",
            "src/testing.rs.md",
            "contest.py",
        ] {
            assert!(!is_test(path), "{path}");
        }
    }

    #[test]
    fn cases_are_recent_single_parent_commits_modifying_source() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        commit(
            &repo,
            &[
                ("src/a.py", "def a():\n    pass\n"),
                ("src/b.py", "def b():\n    a()\n"),
            ],
            "init",
        );
        let gold = commit(
            &repo,
            &[("src/a.py", "def a():\n    return 1\n")],
            "Make a return one\n\nSigned-off-by: x <x@y>",
        );
        commit(&repo, &[("README.md", "docs\n")], "docs only");
        commit(
            &repo,
            &[("src/new.py", "def n():\n    pass\n")],
            "adds a file",
        );
        commit(
            &repo,
            &[
                ("tests/test_a.py", "def test_a():\n    pass\n"),
                ("src/b.py", "def b():\n    return a()\n"),
            ],
            "b returns a\n",
        );
        let found = cases(&repo, dir.path(), 2).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].gold, ["src/b.py"]);
        assert_eq!(found[0].task, "b returns a");
        assert_eq!(found[1].commit, gold.to_string());
        assert_eq!(found[1].task, "Make a return one");

        let report = run(dir.path(), 2, 4096).unwrap();
        assert_eq!(report.map_recall(), 1.0);
        assert_eq!(report.top10_recall(), 1.0);
        assert!(
            report.markdown().contains("| 100.0 % | 100.0 % |"),
            "{}",
            report.markdown()
        );

        let err = run(dir.path(), 3, 4096).unwrap_err().to_string();
        assert!(err.contains("only 2 commits"), "{err}");
        assert!(err.contains("--cases 2"), "{err}");
    }

    #[test]
    fn bad_inputs_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path(), 5, 4096).unwrap_err().to_string();
        assert!(err.contains("is not a git repository"), "{err}");
        git2::Repository::init(dir.path()).unwrap();
        let err = run(dir.path(), 5, 4096).unwrap_err().to_string();
        assert!(err.contains("no current branch commit"), "{err}");
        assert!(matches!(run(dir.path(), 0, 4096), Err(BenchError::NoCases)));
    }
}
