//! The look-up tools the Architect and the Engineer may call before they submit: their inputs
//! (each a tool's input schema, derived by schemars), what a look-up finds, its size bounds, and
//! the record of one look-up kept with its stage. No I/O here: the git layer runs them on the
//! base's blobs (`git/lookup.rs`), the agents render their results as data blocks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PATH_PATTERN;

/// Name of the tool that shows lines of a file.
pub const READ_FILE: &str = "read_file";
/// Name of the tool that searches the files' lines with a regular expression.
pub const SEARCH: &str = "search";
/// Name of the tool that finds definitions by name in the repository map.
pub const FIND_SYMBOL: &str = "find_symbol";
/// The look-up tools, in the order the shared tool list offers them.
pub const LOOKUP_TOOLS: [&str; 3] = [READ_FILE, SEARCH, FIND_SYMBOL];

/// Most lines one `read_file` shows.
pub const MAX_READ_LINES: u32 = 300;
/// Most bytes of file text one `read_file` shows.
pub const MAX_READ_BYTES: usize = 16 * 1024;
/// Most matching lines one `search` shows.
pub const MAX_SEARCH_HITS: usize = 50;
/// Longest matching line shown, in bytes (cut at a character boundary, `…` appended).
pub const MAX_HIT_BYTES: usize = 240;
/// Most definitions one `find_symbol` shows.
pub const MAX_SYMBOLS: usize = 20;
/// Largest compiled regular expression `search` accepts, in bytes (regex's `size_limit`).
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// `read_file`'s input: lines `start_line..=end_line` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReadFile {
    /// Repository-relative path with `/` separators of a file at the base (or one written
    /// earlier in this conversation), e.g. `src/lib.rs`.
    #[schemars(pattern(PATH_PATTERN))]
    pub path: String,
    /// First line to show, 1-based.
    #[schemars(range(min = 1))]
    pub start_line: u32,
    /// Last line to show, inclusive, not before `start_line`; at most 300 lines (16 KiB) are
    /// shown per call.
    #[schemars(range(min = 1))]
    pub end_line: u32,
}

/// `search`'s input: a regular expression matched against every line of the files a glob
/// selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Search {
    /// A regular expression (Rust `regex` syntax, e.g. `fn\s+parse_`), matched against each
    /// line on its own (it cannot match a line break).
    #[schemars(length(min = 1, max = 1000))]
    pub regex: String,
    /// A glob the file's whole path must match (`*` also crosses `/`: `*.go` is every Go
    /// file, `src/**` every file under `src/`); omitted: every file.
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000))]
    pub path_glob: Option<String>,
}

/// `find_symbol`'s input: a definition's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FindSymbol {
    /// The name of a function, method, type, module or constant, exactly as defined (e.g.
    /// `parse_config`); when none has it exactly, definitions whose name matches without case
    /// are shown.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
}

/// One look-up call, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupCall {
    ReadFile(ReadFile),
    Search(Search),
    FindSymbol(FindSymbol),
}

impl LookupCall {
    /// The call of look-up tool `tool` with `input` (as the model wrote it). `None`: `tool` is
    /// not a look-up tool. `Some(Err(reason))`: the input does not deserialize (serde's
    /// message, for the model).
    pub fn parse(tool: &str, input: &serde_json::Value) -> Option<Result<LookupCall, String>> {
        fn parse<T: serde::de::DeserializeOwned>(input: &serde_json::Value) -> Result<T, String> {
            T::deserialize(input).map_err(|e| format!("invalid input: {e}"))
        }
        Some(match tool {
            READ_FILE => parse(input).map(LookupCall::ReadFile),
            SEARCH => parse(input).map(LookupCall::Search),
            FIND_SYMBOL => parse(input).map(LookupCall::FindSymbol),
            _ => return None,
        })
    }
}

/// What a look-up found, bounded by the constants of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutput {
    /// Lines `start_line..=end_line` (1-based, inclusive) of `path`, of `total_lines`.
    File {
        path: String,
        start_line: u32,
        end_line: u32,
        total_lines: u32,
        /// The lines, each with its line break as in the file.
        text: String,
        /// True when fewer lines than asked were shown (the line or byte bound).
        cut: bool,
        /// True when the content is the one this conversation wrote, not the base's.
        written: bool,
    },
    /// The lines `search` matched, in path order.
    Hits {
        hits: Vec<Hit>,
        /// Text files whose path the glob selected.
        files_searched: usize,
        /// True when more lines matched than [`MAX_SEARCH_HITS`].
        cut: bool,
    },
    /// Definitions `find_symbol` found for `name`.
    Symbols {
        name: String,
        found: Vec<SymbolHit>,
        /// False when none had the name exactly and these match it without case.
        exact: bool,
        /// True when more matched than [`MAX_SYMBOLS`].
        cut: bool,
    },
}

/// One line a search matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub path: String,
    /// 1-based.
    pub line: u64,
    /// The line without its line break, cut to [`MAX_HIT_BYTES`].
    pub text: String,
}

/// One definition found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolHit {
    pub path: String,
    /// 1-based line of the definition.
    pub line: u32,
    /// `function`, `method`, `class`, … (the tags query's kind).
    pub kind: String,
    /// The definition's first line.
    pub signature: String,
}

/// One look-up a role made, recorded with its stage (`task_stages.lookups`, JSONB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    /// `read_file`, `search` or `find_symbol`.
    pub tool: String,
    /// The tool input as the model wrote it.
    pub arguments: serde_json::Value,
    /// Bytes of the tool result sent back to the model (the data block and its notes, or the
    /// error).
    pub result_bytes: u64,
    /// The tool error the model was told instead of a result (a refused path, a bad regex, a
    /// missing file); `None` when it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn calls_parse_by_tool_name_and_report_bad_input() {
        let call = LookupCall::parse(SEARCH, &json!({"regex": "fn main", "path_glob": "src/**"}));
        assert_eq!(
            call,
            Some(Ok(LookupCall::Search(Search {
                regex: "fn main".into(),
                path_glob: Some("src/**".into()),
            })))
        );
        let call = LookupCall::parse(FIND_SYMBOL, &json!({"name": "Start"}));
        assert!(matches!(call, Some(Ok(LookupCall::FindSymbol(_)))));
        let error = LookupCall::parse(READ_FILE, &json!({"path": "a"}))
            .unwrap()
            .unwrap_err();
        assert!(error.contains("start_line"), "{error}");
        assert_eq!(LookupCall::parse("submit_design", &json!({})), None);
    }
}
