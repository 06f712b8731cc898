//! The secret scanner: well-known credential formats (private keys; GitHub, GitLab, AWS, GCP,
//! Slack, Stripe, npm, Anthropic and OpenAI tokens; JWTs; passwords in URLs) and high-entropy
//! values assigned to names like `*_KEY`, `*_TOKEN`, `*_SECRET` or `password`. It reports where
//! and what kind, never the value, and redacts what it finds from text that leaves the sandbox
//! (a verification's output), together with whole PEM blocks, URL user-info and password
//! variables (`PGPASSWORD=…`).

use std::sync::LazyLock;

use regex::Regex;

/// A credential format: what it is called in reports, and its pattern.
struct Rule {
    kind: &'static str,
    pattern: Regex,
}

/// Formats published by their issuers (GitHub's token prefixes, AWS key ID prefixes, Slack's
/// `xox?-` tokens and webhook URLs, Anthropic's `sk-ant-…`, OpenAI's `sk-proj-…` and legacy
/// `sk-…T3BlbkFJ…`), PEM private key headers, and rules ported from gitleaks'
/// `config/gitleaks.toml` with their regexes unchanged (rule ids `gitlab-pat`, `gcp-api-key`,
/// `stripe-access-token`, `npm-access-token`, `jwt`). gitleaks has no generic rule for a
/// password in a URL (`postgres://user:pass@host`, `DATABASE_URL=…`); that one is ours: a
/// scheme, a user, `:`, a password that is not a `$` interpolation, `@`, a host.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    [
        (
            "private key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        ),
        (
            "GitHub token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        ),
        (
            "AWS access key ID",
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
        ),
        (
            "AWS secret access key",
            r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}\b"#,
        ),
        ("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        (
            "Slack webhook URL",
            r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}",
        ),
        // gitleaks gitlab-pat (keyword "glpat-").
        ("GitLab token", r"glpat-[\w-]{20}"),
        // gitleaks gcp-api-key (keyword "aiza").
        (
            "GCP API key",
            r#"\b(AIza[\w-]{35})(?:[\x60'"\s;]|\\[nr]|$)"#,
        ),
        // gitleaks stripe-access-token (keywords "sk_test", "sk_live", "sk_prod", "rk_…").
        (
            "Stripe token",
            r#"\b((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})(?:[\x60'"\s;]|\\[nr]|$)"#,
        ),
        // gitleaks npm-access-token (keyword "npm_").
        (
            "npm token",
            r#"(?i)\b(npm_[a-z0-9]{36})(?:[\x60'"\s;]|\\[nr]|$)"#,
        ),
        // gitleaks jwt (keyword "ey").
        (
            "JSON Web Token",
            r#"\b(ey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9\/\\_-]{17,}\.(?:[a-zA-Z0-9\/\\_-]{10,}={0,2})?)(?:[\x60'"\s;]|\\[nr]|$)"#,
        ),
        (
            "password in a URL",
            r#"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'"]+:[^\s/@'"$]+@[^\s/@'"]"#,
        ),
        ("Anthropic API key", r"\bsk-ant-[a-z]{2,10}\d{2}-[A-Za-z0-9_-]{20,}"),
        (
            "OpenAI API key",
            r"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{40,})",
        ),
    ]
    .into_iter()
    .map(|(kind, pattern)| Rule {
        kind,
        pattern: Regex::new(pattern).expect("secret patterns compile"),
    })
    .collect()
});

/// `name = value`, `name: value`, `"name": "value"`, `name := value`, `name => value`: group 1
/// is the name, group 2 the value (quotes excluded).
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"([A-Za-z_][A-Za-z0-9_.-]*)["']?\s*(?::=|=>|=|:)\s*["'`]?([^\s"'`,;()\[\]{}<>]{16,})"#,
    )
    .expect("assignment pattern compiles")
});

/// Name endings that say "this holds a credential" (`AWS_SECRET`, `apiKey`, `db.password`).
const SECRET_NAMES: [&str; 8] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "credential",
    "credentials",
];

/// Shannon entropy (bits per character) from which a value counts as random, at 16 characters
/// or more: random hex sits near 3.8, base64 above 4, words and identifiers lower.
const MIN_ENTROPY: f64 = 3.5;

/// Text in a value that marks a placeholder, not a credential.
const PLACEHOLDERS: [&str; 9] = [
    "example",
    "changeme",
    "placeholder",
    "your_",
    "your-",
    "xxxx",
    "dummy",
    "redacted",
    "${",
];

/// The kind of every secret in `line` (in rule order, one per kind).
pub(super) fn scan_line(line: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = RULES
        .iter()
        .filter(|rule| rule.pattern.is_match(line))
        .map(|rule| rule.kind)
        .collect();
    if kinds.is_empty() && high_entropy_assignment(line).is_some() {
        kinds.push("high-entropy value assigned to a secret name");
    }
    kinds
}

/// What [`redact`] removes besides the scanner's findings, each replaced by `[REDACTED]`
/// between its groups 1 and 2 (the parts kept): a whole PEM private key block (to its END line, or to the end
/// of the text when cut), the user-info of any URL (`scheme://user:pass@` keeps `scheme://`),
/// and the value of a password environment variable (`PGPASSWORD=…`, `MYSQL_PWD=…`,
/// `*PASSWORD=…`, upper case, no blanks around `=`) whatever it looks like.
static REDACTED_ONLY: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"(?s)()-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|\z)",
        r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@]+(@)",
        r#"(\b(?:PGPASSWORD|MYSQL_PWD|[A-Z0-9_]*PASSWORD)=)["']?[^\s"']+["']?"#,
    ]
    .into_iter()
    .map(|pattern| Regex::new(pattern).expect("redaction patterns compile"))
    .collect()
});

/// `text` with every secret this scanner recognizes replaced by `[REDACTED]` (a rule with a
/// capture group redacts only that group), and what [`REDACTED_ONLY`] names.
pub fn redact(text: &str) -> String {
    let mut text = text.to_owned();
    for pattern in REDACTED_ONLY.iter() {
        text = pattern
            .replace_all(&text, "${1}[REDACTED]${2}")
            .into_owned();
    }
    for rule in RULES.iter() {
        text = rule
            .pattern
            .replace_all(&text, |captures: &regex::Captures<'_>| {
                let whole = captures.get(0).expect("group 0 always matches");
                match captures.get(1) {
                    Some(secret) => format!(
                        "{}[REDACTED]{}",
                        &whole.as_str()[..secret.start() - whole.start()],
                        &whole.as_str()[secret.end() - whole.start()..]
                    ),
                    None => "[REDACTED]".to_owned(),
                }
            })
            .into_owned();
    }
    let values: Vec<String> = text
        .lines()
        .filter_map(high_entropy_assignment)
        .map(str::to_owned)
        .collect();
    for value in values {
        text = text.replace(&value, "[REDACTED]");
    }
    text
}

/// String literals joined with `+` (`"ghp_ab" + "cd…"`), a quote, `+` and a quote.
static CONCATENATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"["'`]\s*\+\s*["'`]"#).expect("concatenation pattern compiles"));

/// `line` with string concatenations undone, so that a secret split into `+`-joined literals
/// is seen whole; `None` when the line has none.
pub(super) fn joined(line: &str) -> Option<String> {
    CONCATENATION
        .is_match(line)
        .then(|| CONCATENATION.replace_all(line, "").into_owned())
}

/// The value of the first assignment in `line` that looks like a credential: a secret name, a
/// value of 16+ characters mixing letters and digits, random enough, and not a placeholder or
/// a reference (a dotted path or a constant's name).
fn high_entropy_assignment(line: &str) -> Option<&str> {
    ASSIGNMENT.captures_iter(line).find_map(|captures| {
        let name = captures.get(1)?.as_str();
        let value = captures.get(2)?.as_str();
        (secret_name(name) && random_value(value)).then_some(value)
    })
}

/// True when `name` ends with a word of [`SECRET_NAMES`] that starts the name, follows a
/// separator (`_`, `-`, `.`) or starts a camelCase word; or contains "password" or "secret".
fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("secret") {
        return true;
    }
    SECRET_NAMES.iter().any(|word| {
        let Some(start) = lower.len().checked_sub(word.len()) else {
            return false;
        };
        if !lower.ends_with(word) {
            return false;
        }
        start == 0
            || matches!(name.as_bytes()[start - 1], b'_' | b'-' | b'.')
            || name.as_bytes()[start].is_ascii_uppercase()
    })
}

/// True for a value that looks generated: letters and digits, entropy ≥ [`MIN_ENTROPY`], not a
/// placeholder, not an identifier path such as `settings.API_TOKEN`.
fn random_value(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let identifier_path = value.split('.').all(|part| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) && value.chars().filter(|c| c.is_ascii_digit()).count() < 4;
    value.chars().any(|c| c.is_ascii_alphabetic())
        && value.chars().any(|c| c.is_ascii_digit())
        && !identifier_path
        && !PLACEHOLDERS.iter().any(|p| lower.contains(p))
        && entropy(value) >= MIN_ENTROPY
}

/// Shannon entropy of `text` in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let len = text.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test credentials are assembled at run time so that no scanner flags this file.
    fn fake(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }

    #[test]
    fn each_documented_format_is_found_by_kind() {
        let cases = [
            (fake("-----BEGIN RSA ", "PRIVATE KEY-----"), "private key"),
            (
                fake("-----BEGIN OPENSSH ", "PRIVATE KEY-----"),
                "private key",
            ),
            (fake("-----BEGIN ", "PRIVATE KEY-----"), "private key"),
            (fake("token = ghp_", &"a1B2".repeat(9)), "GitHub token"),
            (
                fake("github_pat_", &"11ABCDEFG0_x".repeat(4)),
                "GitHub token",
            ),
            (fake("id: AKIA", "Q7ZL3XW9RT2PLM4N"), "AWS access key ID"),
            (
                fake(
                    "aws_secret_access_key = ",
                    &"wJalrXUtnFEMIK7MDENGbPxRfiCY".repeat(2)[..40],
                ),
                "AWS secret access key",
            ),
            (
                fake("SLACK=xoxb-", "123456789012-abcdefABCDEF"),
                "Slack token",
            ),
            (
                fake(
                    "https://hooks.slack.com/services/",
                    "T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
                ),
                "Slack webhook URL",
            ),
            (
                fake("sk-ant-api03-", &"Zx9_".repeat(12)),
                "Anthropic API key",
            ),
            (fake("sk-proj-", &"Ab3dE".repeat(10)), "OpenAI API key"),
            (
                fake(
                    "sk-",
                    &format!("{}T3BlbkFJ{}", "a".repeat(20), "b".repeat(20)),
                ),
                "OpenAI API key",
            ),
        ];
        for (line, kind) in cases {
            assert!(scan_line(&line).contains(&kind), "{kind}: {line}");
            assert!(
                !redact(&line).contains(&line[line.len() - 8..]),
                "{kind} not redacted"
            );
        }
    }

    #[test]
    fn high_entropy_values_assigned_to_secret_names_are_found() {
        let value = "q8Zr2Lk9Xv4Tn7Wd3Hs6";
        for line in [
            format!("API_KEY = \"{value}\""),
            format!("export DB_PASSWORD={value}"),
            format!("\"authToken\": \"{value}\","),
            format!("client.secret: {value}"),
            format!("$apiKey => '{value}'"),
        ] {
            assert_eq!(
                scan_line(&line),
                ["high-entropy value assigned to a secret name"],
                "{line}"
            );
            assert_eq!(redact(&line).matches("[REDACTED]").count(), 1, "{line}");
            assert!(!redact(&line).contains(value));
        }
    }

    #[test]
    fn ordinary_code_is_not_a_secret() {
        for line in [
            "API_KEY = os.environ[\"API_KEY\"]",
            "token = settings.GITHUB_TOKEN_SECRET",
            "password = \"changeme-example-1234567\"",
            "monkey = \"q8Zr2Lk9Xv4Tn7Wd3Hs6\"",
            "let key = compute_cache_key(path);",
            "PRIMARY_KEY = \"aaaaaaaaaaaaaaaaaaaa1\"",
            "sk-ant is the prefix of Anthropic keys",
            "const TOKEN_HEADER = \"Authorization\";",
            "checksum: 9f86d081884c7d65",
            "-----BEGIN PUBLIC KEY-----",
        ] {
            assert!(scan_line(line).is_empty(), "{line}: {:?}", scan_line(line));
            assert_eq!(redact(line), line);
        }
    }

    #[test]
    fn entropy_of_uniform_and_constant_text() {
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-12);
    }
}
