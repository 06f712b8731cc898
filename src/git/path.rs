//! Validation of repository-relative paths proposed by the model.
//!
//! [`check_path`] is purely syntactic; what a path runs into in the base tree (symlinks,
//! submodules, directories) is checked by `Repo::commit` before anything is written.

/// Longest accepted path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted component, in bytes (`NAME_MAX` of Linux's filesystems, which a longer
/// name fails to be exported to).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Characters HFS+ ignores in file names, so that `.git\u{200c}` names `.git` there (git's
/// `next_hfs_char` in `utf8.c`).
const HFS_IGNORED: [char; 16] = [
    '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
    '\u{202e}', '\u{206a}', '\u{206b}', '\u{206c}', '\u{206d}', '\u{206e}', '\u{206f}', '\u{feff}',
];

/// A rejected path; the message names the path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected path '{path}': {reason}")]
pub struct PathError {
    /// The path as proposed (control characters escaped, cut to 200 characters).
    pub path: String,
    pub reason: &'static str,
}

impl PathError {
    /// A rejection of `path` for `reason`; the path is made printable for messages and logs.
    pub fn new(path: &str, reason: &'static str) -> PathError {
        PathError {
            path: printable(path),
            reason,
        }
    }
}

/// Syntactic check of a model-proposed path: relative, non-empty, no `..` or `.` component, not
/// inside `.git/`, no backslash or NUL. (Symlinks are checked against the tree when writing.)
///
/// Rejected, each with its own reason: the empty path; paths longer than [`MAX_PATH_BYTES`];
/// absolute paths (leading `/`) and Windows drive paths (`C:…`); backslashes; NUL and other
/// control characters; empty (`a//b`, trailing `/`), `.` and `..` components; and any component
/// that names the git directory, `.git` in any case (also `.git.`/`.git ` and the 8.3 alias
/// `git~1`, which some filesystems treat as `.git`).
pub fn check_path(path: &str) -> Result<(), PathError> {
    let reject = |reason| Err(PathError::new(path, reason));
    if path.is_empty() {
        return reject("empty path");
    }
    if path.len() > MAX_PATH_BYTES {
        return reject("longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return reject("absolute path");
    }
    if has_drive_prefix(path) {
        return reject("Windows drive path");
    }
    if path.contains('\\') {
        return reject("backslash (use '/' as the separator)");
    }
    if path.chars().any(char::is_control) {
        return reject("NUL or control character");
    }
    path.split('/').try_for_each(|c| check_component(path, c))
}

/// Checks one `/`-separated component of `path`.
fn check_component(path: &str, component: &str) -> Result<(), PathError> {
    let reason = match component {
        "" => "empty component",
        "." => "'.' component",
        ".." => "'..' component",
        _ if component.len() > MAX_COMPONENT_BYTES => "a component longer than 255 bytes",
        _ if is_git_dir_name(component) => "names the .git directory",
        _ => return Ok(()),
    };
    Err(PathError::new(path, reason))
}

/// A name some filesystem resolves to `.git`, by git's `is_hfs_dotgit` and `is_ntfs_dotgit`
/// (`utf8.c`, `path.c`): `.git` in any case once the characters HFS+ ignores
/// ([`HFS_IGNORED`]) are removed; and, for NTFS, `.git` or its 8.3 alias `git~1` followed only
/// by dots and spaces (which Windows drops) or by `:` (an alternate data stream,
/// `.git::$INDEX_ALLOCATION`).
fn is_git_dir_name(component: &str) -> bool {
    let name: String = component
        .chars()
        .filter(|c| !HFS_IGNORED.contains(c))
        .collect();
    let stream = name.split(':').next().unwrap_or(&name);
    let trimmed = stream.trim_end_matches(['.', ' ']);
    trimmed.eq_ignore_ascii_case(".git") || trimmed.eq_ignore_ascii_case("git~1")
}

/// `C:` at the start of the path.
fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// The path with control characters escaped, cut to 200 characters, for error messages.
fn printable(path: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out: String = path
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if path.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's path pattern never refuses a path `check_path` accepts (a model decoding
    /// to the schema could not name it), and refuses what it can say of the rest.
    #[test]
    fn the_schemas_path_pattern_agrees_with_check_path() {
        let pattern = regex::Regex::new(crate::task::PATH_PATTERN).expect("pattern");
        for path in [
            "src/lib.rs",
            "README",
            ".github/workflows/ci.yml",
            "a/.b/c",
            "..a/b...",
            "...",
            "docs/é and spaces.md",
            ".gitignore",
        ] {
            assert!(check_path(path).is_ok(), "{path}");
            assert!(pattern.is_match(path), "the pattern refuses {path:?}");
        }
        for path in [
            "", "/abs", "a//b", "a/", "./a", "a/./b", "a/../b", "..", ".", "a\\b", "a\0b", "a\nb",
            "a\u{85}b",
        ] {
            assert!(check_path(path).is_err(), "{path:?}");
            assert!(!pattern.is_match(path), "the pattern accepts {path:?}");
        }
    }

    fn reason(path: &str) -> &'static str {
        check_path(path).expect_err(path).reason
    }

    #[test]
    fn accepts_ordinary_relative_paths() {
        for path in [
            "README.md",
            "src/lib.rs",
            "a/b/c/d.txt",
            ".github/workflows/ci.yml",
            ".gitignore",
            "docs/.git-notes",
            "dir/..hidden",
            "a/...",
            "ünïcode/файл.rs",
            "with space/file name.txt",
            "src/a:b",
        ] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn rejects_a_component_over_255_bytes() {
        let long = format!("src/{}.rs", "a".repeat(253));
        assert_eq!(reason(&long), "a component longer than 255 bytes");
        assert_eq!(check_path(&format!("src/{}", "a".repeat(255))), Ok(()));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(reason(""), "empty path");
    }

    #[test]
    fn rejects_too_long() {
        let long = "a/".repeat(2048) + "b";
        assert_eq!(reason(&long), "longer than 4096 bytes");
        let ok = "a/".repeat(MAX_PATH_BYTES / 2 - 1) + "bc";
        assert_eq!(check_path(&ok), Ok(()));
    }

    #[test]
    fn rejects_absolute_and_drive_paths() {
        assert_eq!(reason("/etc/passwd"), "absolute path");
        assert_eq!(reason("//server/share"), "absolute path");
        assert_eq!(reason("C:/Windows/x"), "Windows drive path");
        assert_eq!(reason("c:x"), "Windows drive path");
    }

    #[test]
    fn rejects_backslashes() {
        assert_eq!(reason("a\\b"), "backslash (use '/' as the separator)");
        assert_eq!(reason("..\\x"), "backslash (use '/' as the separator)");
    }

    #[test]
    fn rejects_nul_and_control_characters() {
        for path in ["a\0b", "a\nb", "a\tb", "a\x1bb", "a\x7fb", "a\u{85}b"] {
            assert_eq!(reason(path), "NUL or control character", "{path:?}");
        }
    }

    #[test]
    fn rejects_empty_dot_and_dotdot_components() {
        assert_eq!(reason("a//b"), "empty component");
        assert_eq!(reason("a/"), "empty component");
        assert_eq!(reason("./a"), "'.' component");
        assert_eq!(reason("a/./b"), "'.' component");
        assert_eq!(reason(".."), "'..' component");
        assert_eq!(reason("../x"), "'..' component");
        assert_eq!(reason("a/../../x"), "'..' component");
        assert_eq!(reason("a/.."), "'..' component");
    }

    #[test]
    fn rejects_git_directory_in_any_case() {
        for path in [
            ".git",
            ".git/config",
            ".GIT/config",
            "a/.GIT/hooks/x",
            "sub/.git/hooks/pre-commit",
            "a/.Git",
            ".git./config",
            ".git /config",
            "GIT~1/config",
            ".git\u{200c}/hooks/post-checkout",
            ".g\u{feff}it/config",
            "\u{200d}.GIT\u{206f}/x",
            ".git::$INDEX_ALLOCATION/hooks/x",
            "git~1:stream/x",
        ] {
            assert_eq!(reason(path), "names the .git directory", "{path}");
        }
    }

    #[test]
    fn error_names_path_and_reason() {
        let err = check_path("../x").unwrap_err();
        assert_eq!(err.to_string(), "rejected path '../x': '..' component");
        let err = check_path("a\0b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "rejected path 'a\\0b': NUL or control character"
        );
    }

    #[test]
    fn error_path_is_cut() {
        let long = "x".repeat(5000);
        let err = check_path(&long).unwrap_err();
        assert_eq!(err.path.chars().count(), 201);
    }
}
