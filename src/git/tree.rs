//! Checking proposed writes against the base tree and building the new tree in the object
//! database through an in-memory index (the user's index file is never read or written).

use std::collections::HashSet;
use std::path::Path;

use git2::{ErrorCode, Index, IndexEntry, IndexTime, Oid, Repository, Tree};

use super::{FileChange, PathError, check_path};

/// Mode of a regular file.
pub(super) const MODE_FILE: i32 = 0o100644;
/// Mode of an executable file.
pub(super) const MODE_EXECUTABLE: i32 = 0o100755;
pub(super) const MODE_TREE: i32 = 0o040000;
pub(super) const MODE_SYMLINK: i32 = 0o120000;
const MODE_GITLINK: i32 = 0o160000;

/// What a path names in the base tree.
enum Existing {
    Missing,
    File(i32),
    Directory,
    Symlink,
    Submodule,
}

/// Looks `path` up in `tree`.
fn lookup(tree: &Tree<'_>, path: &str) -> Result<Existing, git2::Error> {
    match tree.get_path(Path::new(path)) {
        Ok(entry) => Ok(match entry.filemode() {
            MODE_TREE => Existing::Directory,
            MODE_SYMLINK => Existing::Symlink,
            MODE_GITLINK => Existing::Submodule,
            mode => Existing::File(mode),
        }),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(Existing::Missing),
        Err(e) => Err(e),
    }
}

/// Validates every path of `files` (syntax, duplicates, file/directory clashes within the batch,
/// and what each path and its parents are in `base`). Returns the mode each file gets: an
/// existing executable stays executable, everything else is a regular file.
pub(super) fn plan(base: &Tree<'_>, files: &[FileChange]) -> Result<Vec<i32>, super::GitError> {
    check_batch(files)?;
    let symlinks = symlinks(base)?;
    files
        .iter()
        .map(|file| {
            let mode = check_against_tree(base, &file.path)?;
            through_symlink(&symlinks, &file.path)?;
            Ok(mode)
        })
        .collect()
}

/// The symlinks of `tree`, their paths lowercased.
fn symlinks(tree: &Tree<'_>) -> Result<HashSet<String>, git2::Error> {
    let mut symlinks = HashSet::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.filemode() == MODE_SYMLINK
            && let Ok(name) = entry.name()
        {
            symlinks.insert(format!("{dir}{name}").to_lowercase());
        }
        git2::TreeWalkResult::Ok
    })?;
    Ok(symlinks)
}

/// Rejects `path` when it, or a parent, names a symlink of the base compared without case
/// (`LINK/evil` over `link`): a case-insensitive checkout (macOS, Windows) follows it.
fn through_symlink(symlinks: &HashSet<String>, path: &str) -> Result<(), PathError> {
    let lower = path.to_lowercase();
    let parents = lower.match_indices('/').map(|(index, _)| &lower[..index]);
    if parents.into_iter().any(|parent| symlinks.contains(parent)) {
        return Err(PathError::new(
            path,
            "a parent is a symlink (compared without case)",
        ));
    }
    if symlinks.contains(&lower) {
        return Err(PathError::new(path, "is a symlink (compared without case)"));
    }
    Ok(())
}

/// Syntax of each path, duplicates, and a path that is also another path's directory.
fn check_batch(files: &[FileChange]) -> Result<(), PathError> {
    let mut seen = HashSet::new();
    for file in files {
        check_path(&file.path)?;
        if !seen.insert(file.path.as_str()) {
            return Err(PathError::new(&file.path, "listed more than once"));
        }
    }
    for file in files {
        for (index, _) in file.path.match_indices('/') {
            if seen.contains(&file.path[..index]) {
                return Err(PathError::new(
                    &file.path,
                    "a parent directory is also written as a file",
                ));
            }
        }
    }
    Ok(())
}

/// Rejects a path whose parents are not all directories (or absent) in `base`, or that is
/// itself a directory, symlink or submodule there. Returns the mode to write.
fn check_against_tree(base: &Tree<'_>, path: &str) -> Result<i32, super::GitError> {
    for (index, _) in path.match_indices('/') {
        let reason = match lookup(base, &path[..index])? {
            Existing::Missing => break,
            Existing::Directory => continue,
            Existing::Symlink => "a parent is a symlink",
            Existing::Submodule => "a parent is a submodule",
            Existing::File(_) => "a parent is a file",
        };
        return Err(PathError::new(path, reason).into());
    }
    let reason = match lookup(base, path)? {
        Existing::Missing => return Ok(MODE_FILE),
        Existing::File(MODE_EXECUTABLE) => return Ok(MODE_EXECUTABLE),
        Existing::File(_) => return Ok(MODE_FILE),
        Existing::Directory => "is a directory",
        Existing::Symlink => "is a symlink",
        Existing::Submodule => "is a submodule",
    };
    Err(PathError::new(path, reason).into())
}

/// Writes blobs for `files` (with `modes` from [`plan`]) and the tree of `base` with them
/// applied; returns the new tree's id. Touches only the object database.
pub(super) fn build(
    repo: &Repository,
    base: &Tree<'_>,
    files: &[FileChange],
    modes: &[i32],
) -> Result<Oid, git2::Error> {
    let mut index = Index::new()?;
    index.read_tree(base)?;
    for (file, &mode) in files.iter().zip(modes) {
        let id = repo.blob(file.content.as_bytes())?;
        index.add(&entry(&file.path, id, mode, file.content.len()))?;
    }
    index.write_tree_to(repo)
}

/// An index entry for a blob; stat fields are zero (the index is never written to disk).
fn entry(path: &str, id: Oid, mode: i32, size: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: mode as u32,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(size).unwrap_or(u32::MAX),
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}
