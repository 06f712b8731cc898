//! Definitions and references of one source file, by tree-sitter tags queries (the grammar
//! crates' own `tags.scm`, through `tree-sitter-tags`): Rust, Go, Python, JavaScript and
//! TypeScript (with JSX/TSX). Other files are known by path only.

use serde::{Deserialize, Serialize};
use tree_sitter_tags::{TagsConfiguration, TagsContext};

/// Longest signature kept for a definition, in bytes (cut at a character boundary).
const MAX_SIGNATURE_BYTES: usize = 160;
/// Longest doc comment kept for a definition, in bytes (used for ranking only).
const MAX_DOC_BYTES: usize = 400;
/// Largest file parsed, in bytes; a larger one is known by path only (generated code, vendored
/// bundles).
pub const MAX_PARSE_BYTES: usize = 512 << 10;

/// A definition in a file: a function, method, type, module, constant…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// The defined name (an identifier).
    pub name: String,
    /// The tags query's kind: `function`, `method`, `class`, `interface`, `module`, …
    pub kind: String,
    /// 1-based line of the definition.
    pub line: u32,
    /// The definition's first line, trimmed and cut to [`MAX_SIGNATURE_BYTES`].
    pub signature: String,
    /// Its doc comment, when the grammar's query captures one (cut), else empty.
    pub doc: String,
}

/// What one file defines and references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSymbols {
    pub definitions: Vec<Definition>,
    /// Referenced names with their count in the file, sorted by name.
    pub references: Vec<(String, u32)>,
    /// Every word of the file (identifiers and their parts, comments, strings), stemmed, with
    /// its count, sorted: the file's text as the ranking's BM25 reads it.
    #[serde(default)]
    pub terms: Vec<(String, u32)>,
}

/// A source language the map parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Go,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
}

impl Lang {
    /// The language of `path` by its extension; `None`: the file is known by path only.
    pub fn of(path: &str) -> Option<Lang> {
        let ext = path.rsplit_once('.').map(|(_, e)| e)?;
        Some(match ext {
            "rs" => Lang::Rust,
            "go" => Lang::Go,
            "py" | "pyi" => Lang::Python,
            "js" | "jsx" | "mjs" | "cjs" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            _ => return None,
        })
    }
}

/// The tags configurations of every language, built once per map build (query compilation
/// takes a few milliseconds per language).
pub struct Parsers {
    rust: TagsConfiguration,
    go: TagsConfiguration,
    python: TagsConfiguration,
    javascript: TagsConfiguration,
    typescript: TagsConfiguration,
    tsx: TagsConfiguration,
    context: TagsContext,
}

/// Python's query names calls only; these add imported names and attribute uses as references,
/// so `from .app import Flask` ties a module to its definitions.
const PYTHON_EXTRA: &str = r#"
(import_from_statement name: (dotted_name (identifier) @name)) @reference.import
(import_from_statement name: (aliased_import name: (dotted_name (identifier) @name))) @reference.import
(attribute attribute: (identifier) @name) @reference.attribute
"#;

impl Parsers {
    /// Compiles the queries. Errors: a query the grammar rejects (a grammar/query version
    /// mismatch, caught by the unit tests).
    pub fn new() -> Result<Parsers, tree_sitter_tags::Error> {
        let ts_query = format!(
            "{}\n{}",
            tree_sitter_javascript::TAGS_QUERY,
            tree_sitter_typescript::TAGS_QUERY
        );
        Ok(Parsers {
            rust: TagsConfiguration::new(
                tree_sitter_rust::LANGUAGE.into(),
                tree_sitter_rust::TAGS_QUERY,
                "",
            )?,
            go: TagsConfiguration::new(
                tree_sitter_go::LANGUAGE.into(),
                tree_sitter_go::TAGS_QUERY,
                "",
            )?,
            python: TagsConfiguration::new(
                tree_sitter_python::LANGUAGE.into(),
                &format!("{}\n{PYTHON_EXTRA}", tree_sitter_python::TAGS_QUERY),
                "",
            )?,
            javascript: TagsConfiguration::new(
                tree_sitter_javascript::LANGUAGE.into(),
                tree_sitter_javascript::TAGS_QUERY,
                "",
            )?,
            typescript: TagsConfiguration::new(
                tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
                &ts_query,
                "",
            )?,
            tsx: TagsConfiguration::new(
                tree_sitter_typescript::LANGUAGE_TSX.into(),
                &ts_query,
                "",
            )?,
            context: TagsContext::new(),
        })
    }

    /// The definitions and references of `source` in `lang`. A file that does not parse
    /// cleanly still gives what its good parts define; a failure of the tagger gives an empty
    /// result (the file stays known by path).
    pub fn symbols(&mut self, lang: Lang, source: &[u8]) -> FileSymbols {
        let config = match lang {
            Lang::Rust => &self.rust,
            Lang::Go => &self.go,
            Lang::Python => &self.python,
            Lang::JavaScript => &self.javascript,
            Lang::TypeScript => &self.typescript,
            Lang::Tsx => &self.tsx,
        };
        let mut out = FileSymbols::default();
        let mut references = std::collections::BTreeMap::<String, u32>::new();
        let Ok((tags, _)) = self.context.generate_tags(config, source, None) else {
            return out;
        };
        for tag in tags.flatten() {
            let Ok(name) = std::str::from_utf8(&source[tag.name_range.clone()]) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            if tag.is_definition {
                let line = String::from_utf8_lossy(&source[tag.line_range.clone()]);
                out.definitions.push(Definition {
                    name: name.to_string(),
                    kind: config.syntax_type_name(tag.syntax_type_id).to_string(),
                    line: tag.span.start.row as u32 + 1,
                    signature: cut(line.trim(), MAX_SIGNATURE_BYTES),
                    doc: tag
                        .docs
                        .as_deref()
                        .map(|d| cut(d.trim(), MAX_DOC_BYTES))
                        .unwrap_or_default(),
                });
            } else {
                *references.entry(name.to_string()).or_default() += 1;
            }
        }
        out.definitions.sort_by_key(|d| d.line);
        out.definitions
            .dedup_by(|a, b| a.line == b.line && a.name == b.name);
        out.references = references.into_iter().collect();
        out
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(symbols: &FileSymbols) -> Vec<(&str, &str)> {
        symbols
            .definitions
            .iter()
            .map(|d| (d.name.as_str(), d.kind.as_str()))
            .collect()
    }

    #[test]
    fn every_language_yields_definitions_and_references() {
        let mut parsers = Parsers::new().expect("queries compile");
        let rust = parsers.symbols(
            Lang::Rust,
            b"/// Adds.\npub fn add(a: i32) -> i32 { helper(a) }\nstruct Point { x: i32 }\n",
        );
        assert_eq!(names(&rust), [("add", "function"), ("Point", "class")]);
        assert_eq!(
            rust.definitions[0].signature,
            "pub fn add(a: i32) -> i32 { helper(a) }"
        );
        assert_eq!(rust.definitions[0].line, 2);
        assert!(rust.references.iter().any(|(n, _)| n == "helper"));

        let go = parsers.symbols(
            Lang::Go,
            b"package x\n\ntype Server struct{}\n\nfunc (s *Server) Serve() { listen() }\n",
        );
        assert!(names(&go).contains(&("Server", "type")));
        assert!(names(&go).contains(&("Serve", "method")));
        assert!(go.references.iter().any(|(n, _)| n == "listen"));

        let py = parsers.symbols(
            Lang::Python,
            b"from .app import Flask\n\nclass Blueprint:\n    def route(self, rule):\n        return self.add(rule)\n",
        );
        assert_eq!(names(&py), [("Blueprint", "class"), ("route", "function")]);
        assert!(py.references.iter().any(|(n, _)| n == "Flask"));
        assert!(py.references.iter().any(|(n, _)| n == "add"));

        let js = parsers.symbols(
            Lang::JavaScript,
            b"// Draws the page.\nfunction render(x) { return draw(x); }\n",
        );
        assert_eq!(names(&js), [("render", "function")]);
        assert_eq!(js.definitions[0].doc, "Draws the page.");
        assert!(js.references.iter().any(|(n, _)| n == "draw"));

        let ts = parsers.symbols(
            Lang::TypeScript,
            b"interface Shape { area(): number }\nfunction f(s: Shape) { return s.area(); }\n",
        );
        assert!(names(&ts).contains(&("Shape", "interface")));
        assert!(names(&ts).contains(&("f", "function")));
        let tsx = parsers.symbols(Lang::Tsx, b"function App() { return <div/>; }\n");
        assert_eq!(names(&tsx), [("App", "function")]);
    }

    #[test]
    fn languages_by_extension_and_garbage_is_harmless() {
        assert_eq!(Lang::of("src/a.rs"), Some(Lang::Rust));
        assert_eq!(Lang::of("web/App.tsx"), Some(Lang::Tsx));
        assert_eq!(Lang::of("README.md"), None);
        assert_eq!(Lang::of("Makefile"), None);
        let mut parsers = Parsers::new().unwrap();
        let junk = parsers.symbols(Lang::Rust, &[0xff, 0xfe, b'{', b'(', 0]);
        assert!(junk.definitions.is_empty());
    }
}
