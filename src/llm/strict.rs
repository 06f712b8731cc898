//! Strict tool use: the providers' grammar-constrained decoding of a tool call, which accepts
//! only a subset of JSON Schema. [`anthropic`] and [`openai`] rewrite a tool's full schema into
//! that subset the way the providers' own SDKs do: what the subset cannot say moves into the
//! node's `description` (`{minLength: 1}`), so the model still reads it and the validator
//! still checks it. [`Strictness`] remembers a server that refused the strict shape, so that
//! it is asked once and then answered without it.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use super::{LlmError, ToolCall};

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
    if out.contains_key("properties") {
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
