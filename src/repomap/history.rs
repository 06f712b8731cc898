//! Where the repository has been changing: each path's recency-weighted count of the recent
//! commits that touched it, up to the base commit. A prior for the ranking ([`super::rank`]):
//! a task whose text names no code at all (`Fix typos`, `Update the deprecated API`) most
//! often lands where the last changes did. Read from the commit graph, never a working tree;
//! the base itself is the newest commit counted, so nothing after it leaks in.

use std::collections::HashMap;

use super::MapError;

/// Non-merge commits counted at most, newest first.
const COMMITS: usize = 200;
/// Commits looked at at most to find them (merges are skipped).
const SCANNED: usize = 2_000;
/// A commit touching more files than this (a reformat, a rename, a dependency bump) says
/// nothing about where work happens: it is skipped.
const MAX_FILES_PER_COMMIT: usize = 10;
/// Commits after which a change counts half as much.
const HALF_LIFE: f64 = 30.0;

/// The recent history of a base: per path, a weight in 0–1 (1 for the most changed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    weights: HashMap<String, f64>,
}

impl History {
    /// No history: every path weighs 0.
    pub fn none() -> History {
        History::default()
    }

    /// The history of `base`: the newest [`COMMITS`] non-merge commits reachable from it (by
    /// commit time, among at most [`SCANNED`]), each touching at most
    /// [`MAX_FILES_PER_COMMIT`] paths, each of which gains `0.5^(age / HALF_LIFE)` (age: the
    /// commit's place, 0 for `base`), then scaled so the largest is 1. Errors:
    /// [`MapError::Git`] when a commit or tree cannot be read.
    pub fn of(repo: &git2::Repository, base: &git2::Commit<'_>) -> Result<History, MapError> {
        let mut walk = repo.revwalk()?;
        walk.set_sorting(git2::Sort::TIME)?;
        walk.push(base.id())?;
        let mut raw: HashMap<String, f64> = HashMap::new();
        let mut counted = 0usize;
        for oid in walk.take(SCANNED) {
            if counted == COMMITS {
                break;
            }
            let commit = repo.find_commit(oid?)?;
            if commit.parent_count() != 1 {
                continue;
            }
            let diff = repo.diff_tree_to_tree(
                Some(&commit.parent(0)?.tree()?),
                Some(&commit.tree()?),
                None,
            )?;
            if diff.deltas().len() > MAX_FILES_PER_COMMIT {
                counted += 1;
                continue;
            }
            let weight = 0.5f64.powf(counted as f64 / HALF_LIFE);
            for delta in diff.deltas() {
                if let Some(path) = delta.new_file().path().and_then(|p| p.to_str()) {
                    *raw.entry(path.to_string()).or_default() += weight;
                }
            }
            counted += 1;
        }
        let max = raw.values().copied().fold(0.0, f64::max);
        if max > 0.0 {
            for weight in raw.values_mut() {
                *weight /= max;
            }
        }
        Ok(History { weights: raw })
    }

    /// The weight of `path`, 0–1; 0 for a path no counted commit touched.
    pub fn weight(&self, path: &str) -> f64 {
        self.weights.get(path).copied().unwrap_or(0.0)
    }
}
