//! The look-up tools run on the base: `read_file` and `search` over the base tree's blobs (the
//! files a conversation wrote shadowing them), `find_symbol` over the repository map of the
//! tree. Never the working tree: a path is checked ([`check_path`]) and looked up in the tree,
//! symlinks are not followed, and every result is cut to the bounds of [`crate::task`]'s
//! look-up constants. The searching is ripgrep's (`grep-searcher`, `grep-regex`), the globs
//! `globset`'s.

use std::collections::BTreeMap;
use std::path::Path;

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks};

use super::{GitError, MAX_BLOB_BYTES, Repo, check_path, tree};
use crate::task::{
    FindSymbol, Hit, LookupCall, LookupOutput, MAX_HIT_BYTES, MAX_READ_BYTES, MAX_READ_LINES,
    MAX_REGEX_BYTES, MAX_SEARCH_HITS, MAX_SYMBOLS, ReadFile, Search, SymbolHit,
};

/// A file's content for a look-up: the conversation's or the base's.
enum Source<'a> {
    Written(&'a str),
    Base(git2::Blob<'a>),
}

impl Source<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Written(text) => text.as_bytes(),
            Source::Base(blob) => blob.content(),
        }
    }
}

impl Repo {
    /// Runs look-up `call` on the base tree, with `written` (path → content the conversation
    /// has written so far) shadowing the base's files and adding new ones. `Ok(Err(reason))`
    /// is a tool error for the model: a refused path ([`check_path`]), a file that is missing,
    /// a directory, a symlink, binary or too large, a line range past the end, an invalid
    /// regex or glob.
    ///
    /// Errors: [`GitError::Git`] when the tree or a blob cannot be read; [`GitError::Other`]
    /// when the repository map cannot be built.
    pub fn lookup(
        &self,
        call: &LookupCall,
        written: &BTreeMap<String, String>,
    ) -> Result<Result<LookupOutput, String>, GitError> {
        let tree = self.base_commit()?.tree()?;
        match call {
            LookupCall::ReadFile(read) => self.read_lines(&tree, written, read),
            LookupCall::Search(search) => self.search(&tree, written, search),
            LookupCall::FindSymbol(find) => self.find_symbol(&tree, find).map(Ok),
        }
    }

    /// `read_file`: the asked lines of a text file, at most [`MAX_READ_LINES`] lines and
    /// [`MAX_READ_BYTES`] bytes (a longer first line is cut at a character boundary).
    fn read_lines(
        &self,
        tree: &git2::Tree<'_>,
        written: &BTreeMap<String, String>,
        read: &ReadFile,
    ) -> Result<Result<LookupOutput, String>, GitError> {
        let path = read.path.as_str();
        if let Err(e) = check_path(path) {
            return Ok(Err(e.to_string()));
        }
        if read.end_line < read.start_line || read.start_line == 0 {
            return Ok(Err(format!(
                "invalid line range {}-{}: start_line is at least 1 and end_line not before it",
                read.start_line, read.end_line
            )));
        }
        let source = match written.get(path) {
            Some(text) => Source::Written(text),
            None => match self.base_file(tree, path)? {
                Ok(blob) => Source::Base(blob),
                Err(reason) => return Ok(Err(reason)),
            },
        };
        let Ok(text) = std::str::from_utf8(source.bytes()) else {
            return Ok(Err(format!("'{path}' is not UTF-8 text")));
        };
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let total = u32::try_from(lines.len()).unwrap_or(u32::MAX);
        if read.start_line > total.max(1) {
            return Ok(Err(format!(
                "'{path}' has {total} lines; start_line {} is past its end",
                read.start_line
            )));
        }
        let wanted_end = read.end_line.min(total);
        let last = wanted_end.min(read.start_line.saturating_add(MAX_READ_LINES - 1));
        let mut shown = String::new();
        let (mut end, mut line_cut) = (read.start_line - 1, false);
        for line in &lines[read.start_line as usize - 1..last as usize] {
            if shown.len() + line.len() > MAX_READ_BYTES {
                if shown.is_empty() {
                    shown.push_str(cut(line, MAX_READ_BYTES));
                    shown.push_str("…\n");
                    (end, line_cut) = (end + 1, true);
                }
                break;
            }
            shown.push_str(line);
            end += 1;
        }
        Ok(Ok(LookupOutput::File {
            path: path.to_owned(),
            start_line: read.start_line,
            end_line: end,
            total_lines: total,
            text: shown,
            cut: line_cut || end < wanted_end,
            written: matches!(source, Source::Written(_)),
        }))
    }

    /// The blob of the regular (or executable) file `path` of `tree`, or why there is none.
    fn base_file<'r>(
        &'r self,
        tree: &git2::Tree<'_>,
        path: &str,
    ) -> Result<Result<git2::Blob<'r>, String>, GitError> {
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Ok(Err(format!("'{path}' does not exist at the base")));
            }
            Err(e) => return Err(e.into()),
        };
        let reason = match entry.filemode() {
            tree::MODE_FILE | tree::MODE_EXECUTABLE => None,
            tree::MODE_TREE => Some("is a directory (search with a path_glob to list its files)"),
            tree::MODE_SYMLINK => Some("is a symlink, which look-ups do not follow"),
            _ => Some("is a submodule"),
        };
        if let Some(reason) = reason {
            return Ok(Err(format!("'{path}' {reason}")));
        }
        let (size, _) = self.repo.odb()?.read_header(entry.id())?;
        if size > MAX_BLOB_BYTES {
            return Ok(Err(format!(
                "'{path}' is larger than {MAX_BLOB_BYTES} bytes"
            )));
        }
        let blob = self.repo.find_blob(entry.id())?;
        if blob.content().contains(&0) {
            return Ok(Err(format!("'{path}' is a binary file")));
        }
        Ok(Ok(blob))
    }

    /// `search`: the lines of the text files whose path matches the glob that the regular
    /// expression matches, in path order, at most [`MAX_SEARCH_HITS`], each cut to
    /// [`MAX_HIT_BYTES`]. Binary files (a NUL byte) and blobs over [`MAX_BLOB_BYTES`] are
    /// skipped; symlinks and submodules are not read.
    fn search(
        &self,
        tree: &git2::Tree<'_>,
        written: &BTreeMap<String, String>,
        search: &Search,
    ) -> Result<Result<LookupOutput, String>, GitError> {
        let matcher = match RegexMatcherBuilder::new()
            .line_terminator(Some(b'\n'))
            .size_limit(MAX_REGEX_BYTES)
            .dfa_size_limit(MAX_REGEX_BYTES)
            .build(&search.regex)
        {
            Ok(matcher) => matcher,
            Err(e) => return Ok(Err(format!("invalid regex: {e}"))),
        };
        let glob = match search.path_glob.as_deref().map(globset::Glob::new) {
            None => None,
            Some(Ok(glob)) => Some(glob.compile_matcher()),
            Some(Err(e)) => return Ok(Err(format!("invalid path_glob: {e}"))),
        };
        let selected = |path: &str| glob.as_ref().is_none_or(|g| g.is_match(path));
        let mut paths: BTreeMap<String, Option<git2::Oid>> = BTreeMap::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let mode = entry.filemode();
            if (mode == tree::MODE_FILE || mode == tree::MODE_EXECUTABLE)
                && let Ok(name) = entry.name()
            {
                let path = format!("{dir}{name}");
                if selected(&path) {
                    paths.insert(path, Some(entry.id()));
                }
            }
            git2::TreeWalkResult::Ok
        })?;
        for path in written.keys().filter(|p| selected(p)) {
            paths.insert(path.clone(), None);
        }
        let mut searcher = SearcherBuilder::new()
            .binary_detection(BinaryDetection::quit(0))
            .line_number(true)
            .build();
        let odb = self.repo.odb()?;
        let (mut hits, mut files_searched, mut cut_off) = (Vec::new(), 0, false);
        for (path, oid) in &paths {
            let source = match oid {
                None => Source::Written(&written[path]),
                Some(oid) => {
                    if odb.read_header(*oid)?.0 > MAX_BLOB_BYTES {
                        continue;
                    }
                    Source::Base(self.repo.find_blob(*oid)?)
                }
            };
            if source.bytes().contains(&0) {
                continue;
            }
            files_searched += 1;
            let sink = sinks::Lossy(|line, text| {
                if hits.len() == MAX_SEARCH_HITS {
                    cut_off = true;
                    return Ok(false);
                }
                let text = text.trim_end_matches(['\n', '\r']);
                let shown = cut(text, MAX_HIT_BYTES);
                hits.push(Hit {
                    path: path.clone(),
                    line,
                    text: if shown.len() < text.len() {
                        format!("{shown}…")
                    } else {
                        shown.to_owned()
                    },
                });
                Ok(true)
            });
            searcher
                .search_slice(&matcher, source.bytes(), sink)
                .map_err(|e| GitError::Other(format!("search: {e}")))?;
            if cut_off {
                break;
            }
        }
        Ok(Ok(LookupOutput::Hits {
            hits,
            files_searched,
            cut: cut_off,
        }))
    }

    /// `find_symbol`: the definitions named `name` in the repository map of `tree` (cached
    /// like [`Repo::repo_map`]'s), in path order; when none has the name exactly, those whose
    /// name matches it without case. At most [`MAX_SYMBOLS`].
    fn find_symbol(
        &self,
        tree: &git2::Tree<'_>,
        find: &FindSymbol,
    ) -> Result<LookupOutput, GitError> {
        let cache = crate::repomap::default_cache_dir(&self.repo);
        let loaded =
            crate::repomap::load_or_build(&self.repo, tree, Some(&cache)).map_err(|e| match e {
                crate::repomap::MapError::Git(e) => GitError::Git(e),
                other => GitError::Other(other.to_string()),
            })?;
        let matching = |exact: bool| -> Vec<SymbolHit> {
            loaded
                .map
                .files
                .iter()
                .flat_map(|file| {
                    file.symbols
                        .definitions
                        .iter()
                        .filter(move |d| {
                            if exact {
                                d.name == find.name
                            } else {
                                d.name.eq_ignore_ascii_case(&find.name)
                            }
                        })
                        .map(|d| SymbolHit {
                            path: file.path.clone(),
                            line: d.line,
                            kind: d.kind.clone(),
                            signature: d.signature.clone(),
                        })
                })
                .collect()
        };
        let mut found = matching(true);
        let exact = !found.is_empty();
        if !exact {
            found = matching(false);
        }
        let cut_off = found.len() > MAX_SYMBOLS;
        found.truncate(MAX_SYMBOLS);
        Ok(LookupOutput::Symbols {
            name: find.name.clone(),
            found,
            exact,
            cut: cut_off,
        })
    }
}

/// The longest prefix of `text` of at most `max` bytes ending at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::task::{MAX_HIT_BYTES, MAX_SEARCH_HITS};

    /// A repository in a temporary directory with one commit of `files` (a content starting
    /// with `->` is a symlink to the rest), beside a secret file outside it; the [`Repo`]
    /// pinned at that commit.
    fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("secret.txt"),
            "TOP SECRET outside the repo\n",
        )
        .unwrap();
        let root = dir.path().join("repo");
        let git = git2::Repository::init(&root).unwrap();
        let mut index = git.index().unwrap();
        for (path, content) in files {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            match content.strip_prefix("->") {
                Some(target) => std::os::unix::fs::symlink(target, &full).unwrap(),
                None => std::fs::write(&full, content).unwrap(),
            }
            index.add_path(Path::new(path)).unwrap();
        }
        let tree = git.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let commit = git
            .commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
            .unwrap();
        // The working tree changes after the commit: look-ups must not see it.
        std::fs::write(root.join("src/lib.rs"), "WORKING TREE ONLY\n").unwrap();
        let repo = Repo::open(&root, "main", None)
            .unwrap()
            .at_commit(&commit.to_string())
            .unwrap();
        (dir, repo)
    }

    fn sample() -> (tempfile::TempDir, Repo) {
        let long = format!("{}\n", "x".repeat(MAX_HIT_BYTES * 2));
        let many: String = (1..=400).map(|n| format!("line {n}\n")).collect();
        let leak = Box::leak(long.into_boxed_str());
        let many = Box::leak(many.into_boxed_str());
        repo(&[
            (
                "src/lib.rs",
                "/// Adds.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
            ),
            ("src/parse.rs", "pub fn parse_config(text: &str) {}\n"),
            ("go/main.go", "package main\n\nfunc Add() {}\n"),
            ("docs/long.md", leak),
            ("docs/many.txt", many),
            ("bin/blob.dat", "\0\u{1}binary add\n"),
            ("link.rs", "->../secret.txt"),
        ])
    }

    fn read(repo: &Repo, path: &str, start: u32, end: u32) -> Result<LookupOutput, String> {
        let call = LookupCall::ReadFile(ReadFile {
            path: path.into(),
            start_line: start,
            end_line: end,
        });
        repo.lookup(&call, &BTreeMap::new()).unwrap()
    }

    fn search(repo: &Repo, regex: &str, glob: Option<&str>) -> Result<LookupOutput, String> {
        let call = LookupCall::Search(Search {
            regex: regex.into(),
            path_glob: glob.map(str::to_owned),
        });
        repo.lookup(&call, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn read_file_shows_the_asked_lines_of_the_base_blob() {
        let (_dir, repo) = sample();
        let LookupOutput::File {
            text,
            start_line,
            end_line,
            total_lines,
            cut,
            written,
            ..
        } = read(&repo, "src/lib.rs", 2, 3).unwrap()
        else {
            panic!("a file")
        };
        assert_eq!(text, "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n");
        assert_eq!((start_line, end_line, total_lines), (2, 3, 4));
        assert!(!cut && !written);
        // Past the end: the lines there are.
        let LookupOutput::File { end_line, cut, .. } = read(&repo, "src/lib.rs", 3, 99).unwrap()
        else {
            panic!("a file")
        };
        assert_eq!((end_line, cut), (4, false));
        let error = read(&repo, "src/lib.rs", 9, 10).unwrap_err();
        assert!(error.contains("has 4 lines"), "{error}");
        let error = read(&repo, "src/lib.rs", 3, 2).unwrap_err();
        assert!(error.contains("invalid line range"), "{error}");
    }

    #[test]
    fn read_file_is_bounded_in_lines_and_bytes() {
        let (_dir, sampled) = sample();
        let LookupOutput::File {
            text,
            end_line,
            cut,
            ..
        } = read(&sampled, "docs/many.txt", 1, 400).unwrap()
        else {
            panic!("a file")
        };
        assert_eq!(end_line, MAX_READ_LINES);
        assert!(cut);
        assert_eq!(text.lines().count(), MAX_READ_LINES as usize);
        assert!(text.ends_with("line 300\n"));
        let huge = "y".repeat(MAX_READ_BYTES * 3);
        let (_dir2, big) = repo(&[("big.txt", huge.as_str()), ("src/lib.rs", "\n")]);
        let LookupOutput::File { text, cut, .. } = read(&big, "big.txt", 1, 1).unwrap() else {
            panic!("a file")
        };
        assert!(cut);
        assert!(text.len() <= MAX_READ_BYTES + "…\n".len(), "{}", text.len());
    }

    #[test]
    fn escaping_paths_symlinks_and_binaries_are_refused_and_nothing_outside_is_read() {
        let (dir, repo) = sample();
        let outside = dir.path().join("secret.txt");
        for path in [
            "../secret.txt",
            "src/../../secret.txt",
            outside.to_str().unwrap(),
            ".git/config",
            "src/.GIT/HEAD",
        ] {
            let error = read(&repo, path, 1, 10).unwrap_err();
            assert!(error.starts_with("rejected path"), "{path}: {error}");
        }
        let error = read(&repo, "link.rs", 1, 10).unwrap_err();
        assert!(error.contains("is a symlink"), "{error}");
        let error = read(&repo, "bin/blob.dat", 1, 10).unwrap_err();
        assert!(error.contains("binary"), "{error}");
        let error = read(&repo, "src", 1, 10).unwrap_err();
        assert!(error.contains("is a directory"), "{error}");
        let error = read(&repo, "src/missing.rs", 1, 10).unwrap_err();
        assert!(error.contains("does not exist at the base"), "{error}");
        // The symlink's target is not searched either, nor is the working tree.
        let LookupOutput::Hits { hits, .. } = search(&repo, "SECRET|WORKING TREE", None).unwrap()
        else {
            panic!("hits")
        };
        assert_eq!(hits, []);
    }

    #[test]
    fn written_files_shadow_the_base_and_are_searched() {
        let (_dir, repo) = sample();
        let written = BTreeMap::from([
            (
                "src/lib.rs".to_owned(),
                "pub fn add() {}\n// rewritten\n".to_owned(),
            ),
            ("src/new.rs".to_owned(), "pub fn fresh() {}\n".to_owned()),
        ]);
        let call = LookupCall::ReadFile(ReadFile {
            path: "src/lib.rs".into(),
            start_line: 2,
            end_line: 2,
        });
        let Ok(LookupOutput::File {
            text, written: w, ..
        }) = repo.lookup(&call, &written).unwrap()
        else {
            panic!("a file")
        };
        assert_eq!((text.as_str(), w), ("// rewritten\n", true));
        let call = LookupCall::Search(Search {
            regex: r"fn (fresh|add)\b".into(),
            path_glob: Some("src/*.rs".into()),
        });
        let Ok(LookupOutput::Hits { hits, .. }) = repo.lookup(&call, &written).unwrap() else {
            panic!("hits")
        };
        let found: Vec<(&str, u64)> = hits.iter().map(|h| (h.path.as_str(), h.line)).collect();
        assert_eq!(found, [("src/lib.rs", 1), ("src/new.rs", 1)]);
    }

    #[test]
    fn search_matches_lines_in_path_order_within_the_glob_and_bounds() {
        let (_dir, repo) = sample();
        let LookupOutput::Hits {
            hits,
            files_searched,
            cut,
        } = search(&repo, r"(fn|func)\s+[Aa]dd", None).unwrap()
        else {
            panic!("hits")
        };
        let found: Vec<(&str, u64, &str)> = hits
            .iter()
            .map(|h| (h.path.as_str(), h.line, h.text.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("go/main.go", 3, "func Add() {}"),
                ("src/lib.rs", 2, "pub fn add(a: i32, b: i32) -> i32 {"),
            ]
        );
        // The binary file and the symlink are not searched.
        assert_eq!((files_searched, cut), (5, false));
        let LookupOutput::Hits { hits, .. } = search(&repo, "add", Some("*.go")).unwrap() else {
            panic!("hits")
        };
        assert!(hits.is_empty());
        let LookupOutput::Hits { hits, .. } = search(&repo, "^func", Some("go/**")).unwrap() else {
            panic!("hits")
        };
        assert_eq!(hits.len(), 1);
        let LookupOutput::Hits { hits, cut, .. } = search(&repo, "^line", None).unwrap() else {
            panic!("hits")
        };
        assert_eq!((hits.len(), cut), (MAX_SEARCH_HITS, true));
        let LookupOutput::Hits { hits, .. } = search(&repo, "^x+$", None).unwrap() else {
            panic!("hits")
        };
        assert!(hits[0].text.len() <= MAX_HIT_BYTES + '…'.len_utf8());
        assert!(hits[0].text.ends_with('…'));
    }

    #[test]
    fn bad_regexes_and_globs_are_tool_errors() {
        let (_dir, repo) = sample();
        let error = search(&repo, "fn (", None).unwrap_err();
        assert!(error.starts_with("invalid regex"), "{error}");
        let error = search(&repo, r"a\nb", None).unwrap_err();
        assert!(error.starts_with("invalid regex"), "{error}");
        let error = search(&repo, "a{100000}{100000}", None).unwrap_err();
        assert!(error.starts_with("invalid regex"), "{error}");
        let error = search(&repo, "add", Some("src/[")).unwrap_err();
        assert!(error.starts_with("invalid path_glob"), "{error}");
    }

    #[test]
    fn find_symbol_finds_definitions_exactly_then_without_case() {
        let (_dir, repo) = sample();
        let find = |name: &str| {
            let call = LookupCall::FindSymbol(FindSymbol { name: name.into() });
            repo.lookup(&call, &BTreeMap::new()).unwrap().unwrap()
        };
        let LookupOutput::Symbols { found, exact, .. } = find("parse_config") else {
            panic!("symbols")
        };
        assert!(exact);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].path.as_str(), found[0].line), ("src/parse.rs", 1));
        assert_eq!(found[0].signature, "pub fn parse_config(text: &str) {}");
        let LookupOutput::Symbols { found, exact, .. } = find("ADD") else {
            panic!("symbols")
        };
        assert!(!exact);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["go/main.go", "src/lib.rs"]);
        let LookupOutput::Symbols { found, .. } = find("nowhere") else {
            panic!("symbols")
        };
        assert!(found.is_empty());
    }
}
