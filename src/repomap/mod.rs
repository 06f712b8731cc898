//! The repository map: what the base tree defines and references, parsed from git blobs with
//! tree-sitter ([`parse`]), cached per tree id ([`load_or_build`]), ranked for a task by
//! personalised PageRank over the reference graph seeded by BM25 of the task's text, with a
//! prior from the recent commits ([`rank`], [`History`]), and rendered within a token budget
//! ([`render`]): the most relevant files with their signatures, then more paths, then a
//! directory tree with file counts for what is left out. Reads blobs at a commit, never a working tree. Blocking: call from a blocking thread.

pub mod bench;
mod history;
mod parse;
mod rank;
mod render;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use history::History;
pub use parse::{Definition, FileSymbols, Lang, MAX_PARSE_BYTES};
pub use rank::{Ranking, rank};
pub use render::{Rendered, estimate_tokens, render};

/// Format version of the cache files; a different one is rebuilt.
const CACHE_VERSION: u32 = 2;
/// Git mode of a symbolic link: known by path, never read.
const MODE_SYMLINK: i32 = 0o120000;

/// Errors building or caching a map.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Reading the tree or a blob failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A grammar rejected its tags query (a grammar crate of another version).
    #[error("tree-sitter: {0}")]
    Query(String),
}

/// One tracked file of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapFile {
    /// Path in the tree, `/`-separated.
    pub path: String,
    /// What it defines and references; empty for files known by path only.
    pub symbols: FileSymbols,
}

/// The parsed map of one tree: every blob's path, sorted, with the symbols of source files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoMap {
    /// Hex id of the tree the map was built from.
    pub tree: String,
    pub files: Vec<MapFile>,
    version: u32,
}

/// A map with how it was had.
#[derive(Debug)]
pub struct Loaded {
    pub map: RepoMap,
    /// True when read from the cache, not parsed now.
    pub cached: bool,
    /// Time spent building or loading it.
    pub elapsed: Duration,
}

impl RepoMap {
    /// Number of files parsed as source (with a language).
    pub fn parsed_files(&self) -> usize {
        self.files
            .iter()
            .filter(|f| Lang::of(&f.path).is_some())
            .count()
    }
}

/// The default cache directory of the clone `repo`: `<git dir>/autonomous-dev/repomap`.
pub fn default_cache_dir(repo: &git2::Repository) -> PathBuf {
    repo.path().join("autonomous-dev").join("repomap")
}

/// Parses `tree` of `repo`: every blob (regular or executable; symlinks and submodules by
/// path only when blobs) is listed; those with a [`Lang`], at most [`MAX_PARSE_BYTES`] and
/// without NUL bytes are parsed, on up to 4 threads. Errors: [`MapError::Git`] when the tree
/// or a blob cannot be read.
pub fn build(repo: &git2::Repository, tree: &git2::Tree<'_>) -> Result<RepoMap, MapError> {
    let mut entries: Vec<(String, git2::Oid, i32)> = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if let (Some(git2::ObjectType::Blob), Ok(name)) = (entry.kind(), entry.name()) {
            entries.push((format!("{dir}{name}"), entry.id(), entry.filemode()));
        }
        git2::TreeWalkResult::Ok
    })?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let odb = repo.odb()?;
    let mut sources: Vec<(usize, Lang, Vec<u8>)> = Vec::new();
    for (index, (path, oid, mode)) in entries.iter().enumerate() {
        let Some(lang) = Lang::of(path) else { continue };
        if *mode == MODE_SYMLINK || odb.read_header(*oid)?.0 > MAX_PARSE_BYTES {
            continue;
        }
        let blob = repo.find_blob(*oid)?;
        if blob.content().contains(&0) {
            continue;
        }
        sources.push((index, lang, blob.content().to_vec()));
    }
    let mut files: Vec<MapFile> = entries
        .into_iter()
        .map(|(path, _, _)| MapFile {
            path,
            symbols: FileSymbols::default(),
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let chunk = sources.len().div_ceil(threads).max(1);
    let parsed: Vec<Result<Vec<(usize, FileSymbols)>, MapError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut parsers =
                        parse::Parsers::new().map_err(|e| MapError::Query(e.to_string()))?;
                    Ok(part
                        .iter()
                        .map(|(index, lang, text)| {
                            let mut symbols = parsers.symbols(*lang, text);
                            symbols.terms = rank::terms(&String::from_utf8_lossy(text));
                            (*index, symbols)
                        })
                        .collect())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a parser thread panicked"))
            .collect()
    });
    for part in parsed {
        for (index, symbols) in part? {
            files[index].symbols = symbols;
        }
    }
    Ok(RepoMap {
        tree: tree.id().to_string(),
        files,
        version: CACHE_VERSION,
    })
}

/// The map of `tree`: read from `cache_dir/<tree id>.json` when there (and of this format
/// version), else built with [`build`] and written there (atomically: a temporary file
/// renamed). `None` builds without a cache. A cache that cannot be read or written is
/// ignored (logged): the map is built. Errors: [`build`]'s.
pub fn load_or_build(
    repo: &git2::Repository,
    tree: &git2::Tree<'_>,
    cache_dir: Option<&Path>,
) -> Result<Loaded, MapError> {
    let started = Instant::now();
    let file = cache_dir.map(|dir| dir.join(format!("{}.json", tree.id())));
    if let Some(file) = &file
        && let Ok(bytes) = std::fs::read(file)
    {
        match serde_json::from_slice::<RepoMap>(&bytes) {
            Ok(map) if map.version == CACHE_VERSION && map.tree == tree.id().to_string() => {
                return Ok(Loaded {
                    map,
                    cached: true,
                    elapsed: started.elapsed(),
                });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "repository map cache unreadable; rebuilding"),
        }
    }
    let map = build(repo, tree)?;
    if let Some(file) = &file
        && let Err(error) = write_cache(file, &map)
    {
        tracing::warn!(%error, "repository map cache not written");
    }
    Ok(Loaded {
        map,
        cached: false,
        elapsed: started.elapsed(),
    })
}

fn write_cache(file: &Path, map: &RepoMap) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut temp, map)?;
    temp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// The map of `base`'s tree for a task: loaded or built ([`load_or_build`]), ranked by the
/// task's `text` and `base`'s recent history ([`History::of`]; without it, logged, when the
/// history cannot be read, as in a shallow clone) and rendered within `budget_tokens`
/// (estimated, [`estimate_tokens`]). Errors: [`load_or_build`]'s.
pub fn for_task(
    repo: &git2::Repository,
    base: &git2::Commit<'_>,
    cache_dir: Option<&Path>,
    text: &str,
    budget_tokens: usize,
) -> Result<Rendered, MapError> {
    let loaded = load_or_build(repo, &base.tree()?, cache_dir)?;
    let history = History::of(repo, base).unwrap_or_else(|error| {
        tracing::warn!(%error, "recent history unreadable; the map is ranked without it");
        History::none()
    });
    let ranking = rank(&loaded.map, text, &history);
    Ok(render(&loaded.map, &ranking, budget_tokens))
}

#[cfg(test)]
mod tests;
