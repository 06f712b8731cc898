//! Strict tool use: the providers' grammar-constrained decoding of a tool call, which accepts
//! only a subset of JSON Schema. [`anthropic`] and [`openai`] rewrite a tool's full schema into
//! that subset the way the providers' own SDKs do, [`grammar`] into the subset local servers
//! compile into a grammar faithfully: what the subset cannot say moves into the node's
//! `description` (`{minLength: 1}`), so the model still reads it and the validator still
//! checks it. [`Strictness`] remembers a server that refused the strict shape, so that it is
//! asked once and then answered without it; [`Constraint`] says how an OpenAI-compatible server
//! is asked.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use super::{LlmError, ToolCall};
use crate::task::{GRAMMAR_PATH_PATTERN, PATH_PATTERN};

/// The string formats both providers' strict modes accept (Anthropic's "JSON Schema
/// limitations", OpenAI's "Supported schemas").
const FORMATS: [&str; 9] = [
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

/// How an OpenAI-compatible server is asked to decode a forced function's arguments to its
/// schema (OPENAI_CONSTRAINT, when STRICT_TOOL_USE is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Constraint {
    /// [`Constraint::Grammar`] for a server on a loopback or private-network address (a local
    /// server), [`Constraint::Strict`] otherwise.
    Auto,
    /// OpenAI's strict function calling: `"strict": true` and the parameters in its subset
    /// ([`openai`]). OpenAI, OpenRouter, Azure.
    Strict,
    /// No `strict` field; the parameters in the subset a local server compiles into a grammar
    /// faithfully ([`grammar`]). llama.cpp's server and llama-cpp-python turn a forced
    /// function's parameters into the grammar its arguments are sampled with, vLLM into
    /// structured-output decoding; a schema their converters cannot compile is refused
    /// (llama-server) or silently decoded as any JSON (llama-cpp-python).
    Grammar,
}

impl Constraint {
    /// [`Constraint::Auto`] decided for a server at `base_url` (an `http(s)://host[:port]` URL):
    /// `localhost`, loopback, private (RFC 1918, IPv6 unique-local) and link-local hosts are
    /// local. Other constraints are returned as they are.
    pub fn resolve(self, base_url: &str) -> Constraint {
        if self != Constraint::Auto {
            return self;
        }
        let host = reqwest::Url::parse(base_url).ok().and_then(|url| {
            url.host_str()
                .map(|h| h.trim_matches(['[', ']']).to_owned())
        });
        let local = host.is_some_and(|host| match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
            Ok(IpAddr::V6(ip)) => {
                ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local()
            }
            Err(_) => host == "localhost" || host.ends_with(".localhost"),
        });
        if local {
            Constraint::Grammar
        } else {
            Constraint::Strict
        }
    }
}

/// Whether a provider sends strict tool definitions (STRICT_TOOL_USE), and whether its server
/// refused them once already.
#[derive(Debug)]
pub(super) struct Strictness {
    wanted: bool,
    refused: AtomicBool,
}

impl Strictness {
    /// `wanted`: STRICT_TOOL_USE.
    pub(super) fn new(wanted: bool) -> Strictness {
        Strictness {
            wanted,
            refused: AtomicBool::new(false),
        }
    }

    /// Whether the next request is sent strict.
    fn on(&self) -> bool {
        self.wanted && !self.refused.load(Ordering::Relaxed)
    }

    /// `send(strict)` with strictness [`Self::on`]; when the server refuses it
    /// ([`Self::refused_by`]), `send(false)` once more.
    pub(super) async fn send<F, Fut>(&self, provider: &str, send: F) -> Result<ToolCall, LlmError>
    where
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<Output = Result<ToolCall, LlmError>>,
    {
        let strict = self.on();
        match send(strict).await {
            Err(e) if strict && self.refused_by(&e, provider) => send(false).await,
            answered => answered,
        }
    }

    /// Whether `error`, the answer to a strict request, is the server refusing strict tool use
    /// (an HTTP 400 whose message names `strict`: an unknown field to an older server, a model
    /// without structured outputs, a schema outside the subset). If so, strictness is off for
    /// this provider from now on (logged once) and the caller sends the request again without it.
    fn refused_by(&self, error: &LlmError, provider: &str) -> bool {
        let LlmError::Api {
            status: 400,
            message,
        } = error
        else {
            return false;
        };
        if !message.to_ascii_lowercase().contains("strict") {
            return false;
        }
        if !self.refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                provider,
                error = %message,
                "the server refuses strict tool use; sending tools without it from now on"
            );
        }
        true
    }
}

/// `schema` in the subset of Anthropic's strict tool use, as its SDKs' `transform_schema`
/// writes it: objects with `additionalProperties: false`; `minItems` only when 0 or 1; string
/// `format`s of [`FORMATS`]; `enum`, `const`, `anyOf`, `allOf`, `required`, `description`
/// kept; everything else (patterns, lengths, numeric bounds, `uniqueItems`) said in the
/// description.
pub(super) fn anthropic(schema: &Value) -> Value {
    rewrite(schema, &|key, value| match key {
        "minItems" => value.as_u64().is_some_and(|n| n <= 1),
        "format" => value.as_str().is_some_and(|f| FORMATS.contains(&f)),
        _ => false,
    })
}

/// `schema` in the subset of OpenAI's strict function calling: every property required, the
/// optional ones made nullable (`"type": [T, "null"]`, answered as `null` when left out; see
/// [`drop_nulls`]), objects with `additionalProperties: false`; `pattern`, string `format`s of
/// [`FORMATS`], numeric bounds, `minItems` and `maxItems` kept; the rest (lengths,
/// `uniqueItems`) said in the description.
pub(super) fn openai(schema: &Value) -> Value {
    let mut strict = rewrite(schema, &|key, value| match key {
        "pattern" | "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum"
        | "multipleOf" | "minItems" | "maxItems" => true,
        "format" => value.as_str().is_some_and(|f| FORMATS.contains(&f)),
        _ => false,
    });
    require_all(&mut strict);
    strict
}

/// `schema` in the subset that local servers compile into a grammar faithfully — llama.cpp's
/// `json_schema_to_grammar` (llama-server, and llama-cpp-python's copy of it) as the narrowest:
/// types, `properties`, `required`, `items`, `enum`, `const`, `anyOf`, `minItems`,
/// `maxItems`, `minLength`, `maxLength`, objects with `additionalProperties: false`. Two rules
/// are carried over in terms the subset has: a `pattern` that no empty string matches also
/// sets `minLength: 1` (every non-blank text and path is at least one character), and an
/// integer range of at most 256 values becomes an `enum` of them (the converter ignores
/// `minimum`/`maximum`). Repository paths get [`GRAMMAR_PATH_PATTERN`], a narrower anchored
/// pattern it compiles. Other patterns are said in the description: the converter refuses one
/// not anchored `^…$` and copies a pattern's characters into the JSON string unescaped, so it
/// cannot compile them faithfully.
///
/// A decoded string or list ends only when the model closes it, and an answer cut at
/// `max_tokens` is no answer at all: so with a small budget, free-text strings (not a path, no
/// `maxLength`, `enum` or `const`) and lists (no `maxItems`) get the [`bounds`] of
/// `max_tokens`.
pub(super) fn grammar(schema: &Value, max_tokens: u32) -> Value {
    let mut tightened = schema.clone();
    tighten(&mut tightened, bounds(max_tokens));
    rewrite(&tightened, &|key, value| {
        matches!(key, "minItems" | "maxItems" | "minLength" | "maxLength")
            || (key == "pattern" && value == GRAMMAR_PATH_PATTERN)
    })
}

/// The largest integer range [`grammar`] turns into an `enum`.
const MAX_ENUMERATED: i64 = 256;

/// The longest `maxLength` a local server compiles: llama-cpp-python's converter nests one
/// group per character of it, and llama.cpp's grammar parser recurses into each, so a longer
/// one crashes the server (seen with llama-cpp-python 0.3.36: 1,001 compiles, 1,100 kills it
/// with SIGSEGV).
const LLAMA_MAX_LENGTH: u64 = 1000;

/// Answer budgets up to this many tokens get [`Bounds`] in a grammar.
const BOUNDED_BUDGET: u32 = 2000;
/// Most items of a list in a bounded grammar.
const BOUNDED_ITEMS: u64 = 8;

/// What a grammar bounds so that an answer of a small budget completes: free-text strings to
/// `string` characters and lists to `items` items.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    string: u64,
    items: u64,
}

/// The bounds of a grammar for answers of at most `max_tokens`, up to [`BOUNDED_BUDGET`]: each
/// free-text string at most a quarter of the tokens in characters (an eighth of the answer at 2
/// characters per token; JSON text runs 3–4) and each list [`BOUNDED_ITEMS`] items, so one
/// runaway string or list leaves the answer room to close. `None` for a larger budget, where a
/// real answer's strings may be longer than a local server can bound ([`LLAMA_MAX_LENGTH`]).
fn bounds(max_tokens: u32) -> Option<Bounds> {
    (max_tokens <= BOUNDED_BUDGET).then(|| Bounds {
        string: (u64::from(max_tokens) / 4).clamp(1, LLAMA_MAX_LENGTH),
        items: BOUNDED_ITEMS,
    })
}

/// An object with properties and an `anyOf` of branches adding rules to them
/// ([`crate::agents::Rule::AnyItems`]) as an `anyOf` of whole objects, each branch merged into
/// a copy of the object: the same instances, in the form llama.cpp's converter compiles (it
/// reads an `anyOf` alone, ignoring the properties beside it).
fn spread_any_of(node: &mut Map<String, Value>) {
    if !node.contains_key("properties") {
        return;
    }
    let Some(Value::Array(branches)) = node.remove("anyOf") else {
        return;
    };
    let description = node.remove("description");
    let whole: Vec<Value> = branches
        .iter()
        .map(|branch| {
            let mut object = node.clone();
            if let (Some(Value::Object(properties)), Some(Value::Object(rules))) =
                (object.get_mut("properties"), branch.get("properties"))
            {
                for (name, rule) in rules {
                    if let (Some(Value::Object(property)), Value::Object(rule)) =
                        (properties.get_mut(name), rule)
                    {
                        property.extend(rule.clone());
                    }
                }
            }
            let mut required = (node.get("required").and_then(Value::as_array))
                .cloned()
                .unwrap_or_default();
            for name in branch["required"].as_array().into_iter().flatten() {
                if !required.contains(name) {
                    required.push(name.clone());
                }
            }
            object.insert("required".to_owned(), Value::Array(required));
            Value::Object(object)
        })
        .collect();
    *node = Map::from_iter([("anyOf".to_owned(), Value::Array(whole))]);
    if let Some(description) = description {
        node.insert("description".to_owned(), description);
    }
}

/// [`grammar`]'s carried-over rules, on every node of `schema`, and its `bounds` on free-text
/// strings and lists.
fn tighten(schema: &mut Value, bounds: Option<Bounds>) {
    let Value::Object(node) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(|item| tighten(item, bounds));
        }
        return;
    };
    // A path keeps its pattern, which bounds it; other patterns are said in words.
    let path = matches!(
        node.get("pattern").and_then(Value::as_str),
        Some(PATH_PATTERN | GRAMMAR_PATH_PATTERN)
    );
    let free_text = node.get("type").and_then(Value::as_str) == Some("string")
        && !path
        && !["maxLength", "enum", "const"]
            .iter()
            .any(|key| node.contains_key(*key));
    let list =
        node.get("type").and_then(Value::as_str) == Some("array") && !node.contains_key("maxItems");
    if let Some(bounds) = bounds {
        if free_text {
            node.insert("maxLength".to_owned(), Value::from(bounds.string));
        }
        if list {
            node.insert("maxItems".to_owned(), Value::from(bounds.items));
        }
    }
    let needs_text = node
        .get("pattern")
        .and_then(Value::as_str)
        .and_then(|pattern| regex::Regex::new(pattern).ok())
        .is_some_and(|pattern| !pattern.is_match(""));
    if node.get("pattern").and_then(Value::as_str) == Some(PATH_PATTERN) {
        node.insert("pattern".to_owned(), Value::from(GRAMMAR_PATH_PATTERN));
    }
    if needs_text && node.get("minLength").and_then(Value::as_u64).unwrap_or(0) == 0 {
        node.insert("minLength".to_owned(), Value::from(1));
    }
    let integer = node.get("type").and_then(Value::as_str) == Some("integer");
    let range = (
        node.get("minimum").and_then(Value::as_i64),
        node.get("maximum").and_then(Value::as_i64),
    );
    if let (true, (Some(low), Some(high))) = (integer, range)
        && (0..MAX_ENUMERATED).contains(&(high - low))
        && !node.contains_key("enum")
    {
        node.insert("enum".to_owned(), (low..=high).collect());
    }
    spread_any_of(node);
    node.values_mut().for_each(|value| tighten(value, bounds));
}

/// Removes from `answer` every member that `schema` does not require and that is `null`: what
/// a strict OpenAI answer says of an optional field it leaves out ([`openai`]).
pub(super) fn drop_nulls(schema: &Value, answer: &mut Value) {
    match answer {
        Value::Object(members) => {
            let required = required(schema);
            members.retain(|name, value| !value.is_null() || required.contains(&name.as_str()));
            for (name, value) in members.iter_mut() {
                drop_nulls(&schema["properties"][name], value);
            }
        }
        Value::Array(items) => {
            for item in items {
                drop_nulls(&schema["items"], item);
            }
        }
        _ => {}
    }
}

/// The names in `schema`'s `required`.
fn required(schema: &Value) -> Vec<&str> {
    schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Keywords that make up the structure of a schema: kept (their subschemas rewritten).
const STRUCTURE: [&str; 8] = [
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "const",
    "anyOf",
    "allOf",
];

/// `schema` without `title`, with the structural keywords ([`STRUCTURE`]), `description` and
/// the keywords `keep` accepts; `additionalProperties: false` on objects; every other keyword
/// appended to the description as `{key: value, …}`.
fn rewrite(schema: &Value, keep: &dyn Fn(&str, &Value) -> bool) -> Value {
    let Value::Object(node) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    let mut said = Vec::new();
    for (key, value) in node {
        match key.as_str() {
            "properties" => {
                let properties = value
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), rewrite(v, keep)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" => {
                out.insert(key.clone(), rewrite(value, keep));
            }
            // Rules added to the object's own properties (`Rule::AnyItems`): outside every
            // strict subset, said instead ([`grammar`] spreads them into whole objects first).
            "anyOf" | "allOf" if node.contains_key("properties") => {
                said.push(format!("{key}: {value}"));
            }
            "anyOf" | "allOf" => {
                let branches = value.as_array().cloned().unwrap_or_default();
                let branches = branches.iter().map(|b| rewrite(b, keep)).collect();
                out.insert(key.clone(), Value::Array(branches));
            }
            "description" | "additionalProperties" | "title" => {}
            k if STRUCTURE.contains(&k) || keep(k, value) => {
                out.insert(key.clone(), value.clone());
            }
            _ => said.push(format!("{key}: {value}")),
        }
    }
    if out.contains_key("properties") && out.get("type") == Some(&Value::from("object")) {
        out.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    let description = node.get("description").and_then(Value::as_str);
    let description = match (description, said.is_empty()) {
        (Some(text), true) => Some(text.to_owned()),
        (Some(text), false) => Some(format!("{text}\n\n{{{}}}", said.join(", "))),
        (None, false) => Some(format!("{{{}}}", said.join(", "))),
        (None, true) => None,
    };
    if let Some(description) = description {
        out.insert("description".to_owned(), Value::String(description));
    }
    Value::Object(out)
}

/// Makes every property of every object in `schema` required, the optional ones nullable.
fn require_all(schema: &mut Value) {
    let optional: Vec<String> = match schema["properties"].as_object() {
        Some(properties) => {
            let required = required(schema);
            let optional = properties
                .keys()
                .filter(|k| !required.contains(&k.as_str()));
            optional.cloned().collect()
        }
        None => Vec::new(),
    };
    let Value::Object(node) = schema else {
        return;
    };
    let mut names = None;
    if let Some(Value::Object(properties)) = node.get_mut("properties") {
        for (name, property) in properties.iter_mut() {
            require_all(property);
            if optional.contains(name) {
                nullable(property);
            }
        }
        names = Some(properties.keys().cloned().map(Value::String).collect());
    }
    if let Some(names) = names {
        node.insert("required".to_owned(), Value::Array(names));
    }
    if let Some(items) = node.get_mut("items") {
        require_all(items);
    }
    for key in ["anyOf", "allOf"] {
        if let Some(Value::Array(branches)) = node.get_mut(key) {
            branches.iter_mut().for_each(require_all);
        }
    }
}

/// `schema` also accepting `null`: `"type": T` becomes `[T, "null"]`; a schema without a
/// `type` becomes `{"anyOf": [schema, {"type": "null"}]}`.
fn nullable(schema: &mut Value) {
    match schema.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            schema["type"] = serde_json::json!([t, "null"]);
        }
        Some(Value::Array(types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push(Value::from("null"));
            }
        }
        _ => {
            let inner = std::mem::take(schema);
            *schema = serde_json::json!({"anyOf": [inner, {"type": "null"}]});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An answer budget too large for bounds.
    const NO_CAP: u32 = 100_000;

    /// A schema as the roles' are generated: a required non-blank text, a score, an optional
    /// list of objects with a path pattern, a required list with `minItems: 2`.
    fn full() -> Value {
        json!({
            "type": "object",
            "title": "Answer",
            "description": "An answer.",
            "properties": {
                "text": {"type": "string", "pattern": "\\S", "description": "Say it."},
                "score": {"type": "integer", "format": "uint8", "minimum": 0, "maximum": 100},
                "files": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"path": {"type": "string", "pattern": "^a$"}},
                        "required": ["path"],
                        "additionalProperties": false
                    }
                },
                "tags": {"type": "array", "minItems": 2, "uniqueItems": true,
                         "items": {"type": "string", "minLength": 1}}
            },
            "required": ["text", "score", "tags"],
            "additionalProperties": false
        })
    }

    #[test]
    fn anthropic_keeps_its_subset_and_says_the_rest_in_descriptions() {
        let strict = anthropic(&full());
        let p = &strict["properties"];
        assert_eq!(strict["additionalProperties"], false);
        assert_eq!(strict["description"], "An answer.", "the title is dropped");
        assert_eq!(strict["required"], json!(["text", "score", "tags"]));
        assert_eq!(
            p["text"],
            json!({"type": "string", "description": "Say it.\n\n{pattern: \"\\\\S\"}"})
        );
        assert_eq!(
            p["score"],
            json!({"type": "integer", "description": "{format: \"uint8\", maximum: 100, minimum: 0}"})
        );
        assert_eq!(p["files"]["items"]["additionalProperties"], false);
        assert!(
            p["files"]["items"]["properties"]["path"]
                .get("pattern")
                .is_none()
        );
        assert_eq!(p["tags"]["description"], "{minItems: 2, uniqueItems: true}");
        assert!(p["tags"].get("minItems").is_none());
        let one = anthropic(&json!({"type": "array", "minItems": 1, "items": {"type": "string"}}));
        assert_eq!(one["minItems"], 1);
    }

    #[test]
    fn openai_requires_every_property_and_makes_the_optional_ones_nullable() {
        let strict = openai(&full());
        let p = &strict["properties"];
        assert_eq!(
            strict["required"],
            json!(["files", "score", "tags", "text"])
        );
        assert_eq!(p["files"]["type"], json!(["array", "null"]));
        assert_eq!(p["files"]["items"]["required"], json!(["path"]));
        assert_eq!(p["files"]["items"]["properties"]["path"]["pattern"], "^a$");
        assert_eq!(p["text"]["pattern"], "\\S");
        assert_eq!(p["score"]["maximum"], 100);
        assert_eq!(p["tags"]["minItems"], 2);
        assert_eq!(p["tags"]["description"], "{uniqueItems: true}");
        assert_eq!(p["tags"]["items"]["description"], "{minLength: 1}");
    }

    #[test]
    fn grammar_bounds_free_text_and_lists_when_the_answer_s_budget_is_small() {
        let schema = json!({"type": "object", "properties": {
            "text": {"type": "string", "pattern": "\\S"},
            "short": {"type": "string", "maxLength": 10},
            "path": {"type": "string", "pattern": PATH_PATTERN},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "list": {"type": "array", "items": {"type": "string"}},
            "pair": {"type": "array", "maxItems": 2, "items": {"type": "string"}}
        }});
        let small = grammar(&schema, 1536);
        let p = &small["properties"];
        assert_eq!(p["text"]["maxLength"], 384);
        assert_eq!(p["list"]["items"]["maxLength"], 384);
        assert_eq!(p["list"]["maxItems"], 8);
        assert_eq!(p["pair"]["maxItems"], 2);
        assert_eq!(p["short"]["maxLength"], 10);
        assert!(p["path"].get("maxLength").is_none() && p["kind"].get("maxLength").is_none());
        assert_eq!(
            grammar(&schema, 2000)["properties"]["text"]["maxLength"],
            500
        );
        // A larger budget: a real answer's strings may be longer than a server can bound.
        let large = grammar(&schema, 2001);
        assert!(large["properties"]["text"].get("maxLength").is_none());
        assert!(large["properties"]["list"].get("maxItems").is_none());
    }

    #[test]
    fn grammar_gives_paths_a_pattern_llama_cpp_compiles_and_the_validator_accepts() {
        let p = grammar(&json!({"type": "string", "pattern": PATH_PATTERN}), NO_CAP);
        assert_eq!(p["pattern"], GRAMMAR_PATH_PATTERN);
        assert_eq!(p["minLength"], 1);
        let narrow = regex::Regex::new(GRAMMAR_PATH_PATTERN).unwrap();
        let full = regex::Regex::new(PATH_PATTERN).unwrap();
        for ok in [
            "src/lib.rs",
            ".github/workflows/ci.yml",
            "a-b_c+d@e/f.g",
            "x",
            ".gitignore",
            "a/.gitattributes",
            ".git.x/y",
            ".gi",
            ".g.t",
            ".gx",
            "docs/.github",
        ] {
            assert!(narrow.is_match(ok) && full.is_match(ok), "{ok}");
            assert!(crate::git::check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "../x",
            "a/../b",
            "a//b",
            ".",
            "a/./b",
            "a b",
            "a\\b",
            "\"\"",
            ".git",
            ".git/config",
            "a/.GIT/b",
            ".Git..",
            "x/.git.",
        ] {
            assert!(!narrow.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn grammar_keeps_what_llama_cpp_compiles_and_carries_patterns_and_ranges_over() {
        let local = grammar(&full(), NO_CAP);
        let p = &local["properties"];
        assert_eq!(local["additionalProperties"], false);
        assert_eq!(local["required"], json!(["text", "score", "tags"]));
        assert!(local.get("title").is_none());
        assert_eq!(p["text"]["minLength"], 1, "a non-blank text is not empty");
        assert!(p["text"].get("pattern").is_none(), "{}", p["text"]);
        assert_eq!(p["text"]["description"], "Say it.\n\n{pattern: \"\\\\S\"}");
        let path = &p["files"]["items"]["properties"]["path"];
        assert_eq!(path["minLength"], 1);
        assert_eq!(
            p["files"]["type"], "array",
            "optional stays optional, not nullable"
        );
        let scores: Vec<i64> = (0..=100).collect();
        assert_eq!(p["score"]["enum"], json!(scores));
        assert_eq!(p["tags"]["minItems"], 2);
        assert_eq!(p["tags"]["items"]["minLength"], 1);
        assert_eq!(p["tags"]["description"], "{uniqueItems: true}");
        // A pattern the empty string matches says nothing about the length; a wide range
        // stays a range.
        let loose = grammar(&json!({"type": "string", "pattern": "^a*$"}), NO_CAP);
        assert!(loose.get("minLength").is_none(), "{loose}");
        let wide = grammar(
            &json!({"type": "integer", "minimum": 0, "maximum": 1000}),
            NO_CAP,
        );
        assert!(wide.get("enum").is_none(), "{wide}");
    }

    /// The Engineer's "at least one of `files` and `edits`" (`Rule::AnyItems`).
    fn either_list() -> Value {
        let list = json!({"type": "array", "items": {"type": "string"}});
        json!({
            "type": "object",
            "description": "A change.",
            "properties": {"files": list, "edits": list, "summary": {"type": "string"}},
            "required": ["summary"],
            "additionalProperties": false,
            "anyOf": [
                {"required": ["files"], "properties": {"files": {"minItems": 1}}},
                {"required": ["edits"], "properties": {"edits": {"minItems": 1}}}
            ]
        })
    }

    #[test]
    fn rules_added_by_an_any_of_become_whole_objects_for_a_grammar_and_words_elsewhere() {
        let local = grammar(&either_list(), NO_CAP);
        assert_eq!(local["description"], "A change.");
        let branches = local["anyOf"]
            .as_array()
            .expect("an anyOf of whole objects");
        assert_eq!(local.as_object().unwrap().len(), 2, "{local}");
        for (branch, list, other) in [
            (&branches[0], "files", "edits"),
            (&branches[1], "edits", "files"),
        ] {
            assert_eq!(branch["type"], "object");
            assert_eq!(branch["additionalProperties"], false);
            assert_eq!(branch["required"], json!(["summary", list]));
            assert_eq!(branch["properties"][list]["minItems"], 1);
            assert!(
                branch["properties"][other].get("minItems").is_none(),
                "{branch}"
            );
            assert!(branch["properties"].get("summary").is_some());
        }
        for strict in [anthropic(&either_list()), openai(&either_list())] {
            assert!(strict.get("anyOf").is_none(), "{strict}");
            let description = strict["description"].as_str().unwrap();
            assert!(
                description.starts_with("A change.\n\n{anyOf: [{"),
                "{description}"
            );
        }
    }

    #[test]
    fn auto_is_grammar_for_local_servers_and_strict_elsewhere() {
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:11434/",
            "http://[::1]:8000",
            "http://192.168.1.20:8000",
            "http://10.0.0.5",
            "http://[fd00::5]:8000",
        ] {
            assert_eq!(
                Constraint::Auto.resolve(local),
                Constraint::Grammar,
                "{local}"
            );
        }
        for remote in [
            "https://api.openai.com",
            "https://openrouter.ai/api",
            "http://8.8.8.8",
            "not a url",
        ] {
            assert_eq!(
                Constraint::Auto.resolve(remote),
                Constraint::Strict,
                "{remote}"
            );
        }
        assert_eq!(
            Constraint::Strict.resolve("http://127.0.0.1"),
            Constraint::Strict
        );
    }

    #[test]
    fn nulls_of_optional_fields_are_dropped_and_required_ones_kept() {
        let mut answer = json!({"text": null, "score": 5, "files": null, "tags": ["a", "b"]});
        drop_nulls(&full(), &mut answer);
        assert_eq!(
            answer,
            json!({"text": null, "score": 5, "tags": ["a", "b"]})
        );
    }

    #[test]
    fn only_a_400_naming_strict_is_a_refusal_and_it_is_remembered() {
        let strictness = Strictness::new(true);
        let other = LlmError::Api {
            status: 400,
            message: "max_tokens: Field required".into(),
        };
        assert!(!strictness.refused_by(&other, "test") && strictness.on());
        let server = LlmError::Api {
            status: 500,
            message: "strict".into(),
        };
        assert!(!strictness.refused_by(&server, "test") && strictness.on());
        let refusal = LlmError::Api {
            status: 400,
            message: "invalid_request_error: tools.0.strict: Extra inputs are not permitted".into(),
        };
        assert!(strictness.refused_by(&refusal, "test"));
        assert!(!strictness.on());
        assert!(!Strictness::new(false).on());
    }
}
