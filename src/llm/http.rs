//! What every HTTP provider shares, whatever its wire format: the HTTP client and its timeouts,
//! the send-with-retry loop over a [`RetryPolicy`], the mapping of HTTP statuses to [`LlmError`]
//! and the scrubbing of the API key from any text that came from the network. A provider keeps
//! only its own wire types: the request body, how to read a success and an error body.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{LlmError, RetryPolicy};

/// Per-request timeout: generous, a long answer can take minutes to generate.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Timeout to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a non-JSON error body is quoted in an error message, in characters.
pub(super) const MAX_QUOTED_BODY: usize = 300;

/// HTTP statuses worth retrying: rate limited (429), server error (500), bad gateway (502, a
/// proxy in front of a local server or a router), unavailable (503) and Anthropic's overloaded
/// (529). Everything else but 401/403 is a permanent [`LlmError::Api`].
const TRANSIENT_STATUSES: [u16; 5] = [429, 500, 502, 503, 529];

/// Reads a provider's error body into a one-line message (the key is scrubbed afterwards).
pub(super) type ErrorReader = fn(&str) -> String;

/// An HTTP client bound to one API key (or none) and one retry policy.
pub(super) struct Transport {
    http: reqwest::Client,
    api_key: Option<SecretString>,
    retry: RetryPolicy,
}

impl Transport {
    /// A client with the shared timeouts (600 s a request, 30 s to connect).
    ///
    /// # Panics
    /// If the HTTP client cannot be built (no TLS backend), like `reqwest::Client::new`; this
    /// happens at start-up, never per request.
    pub(super) fn new(api_key: Option<SecretString>, retry: RetryPolicy) -> Transport {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("cannot build the HTTP client (TLS backend)");
        Transport {
            http,
            api_key,
            retry,
        }
    }

    /// The API key as a header value marked sensitive, `prefix` first (e.g. `"Bearer "`);
    /// `None` without a key. The only place the key is exposed, besides [`Self::redact`].
    ///
    /// # Errors
    /// [`LlmError::Auth`] (status 0) when the key is not a valid header value; the message
    /// does not quote it.
    pub(super) fn key_header(&self, prefix: &str) -> Result<Option<HeaderValue>, LlmError> {
        let Some(key) = &self.api_key else {
            return Ok(None);
        };
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", key.expose_secret()))
            .map_err(|_| LlmError::Auth {
                status: 0,
                message: "the API key is not a valid HTTP header value".into(),
            })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// Removes any occurrence of the API key from a text that came from the network.
    pub(super) fn redact(&self, text: String) -> String {
        match &self.api_key {
            Some(key) if !key.expose_secret().is_empty() => {
                text.replace(key.expose_secret(), "[redacted]")
            }
            _ => text,
        }
    }

    /// POSTs `body` as JSON to `url` with `headers` until a final outcome, retrying transient
    /// failures (see [`TRANSIENT_STATUSES`], network errors) under the retry policy and waiting
    /// what a `retry-after` header says when there is one. Each retry is logged at warn with the
    /// status and the wait only. A 2xx body is handed to `parse`.
    ///
    /// # Errors
    /// 401/403 → [`LlmError::Auth`]; another non-success → [`LlmError::Api`] at once; a
    /// transient status still failing after the policy's attempts → [`LlmError::Unavailable`];
    /// a connection still failing → [`LlmError::Network`]; and whatever `parse` returns. Every
    /// message has the key scrubbed; error bodies are read by `read_error`.
    pub(super) async fn post<B, T>(
        &self,
        url: &str,
        headers: &HeaderMap,
        body: &B,
        read_error: ErrorReader,
        parse: impl FnOnce(&str) -> Result<T, LlmError>,
    ) -> Result<T, LlmError>
    where
        B: Serialize + Sync + ?Sized,
    {
        let mut retries = 0;
        let text = loop {
            let transient = match self.attempt(url, headers, body, read_error).await {
                Outcome::Success(text) => break text,
                Outcome::Fail(error) => return Err(error),
                Outcome::Retry(transient) => transient,
            };
            if retries >= self.retry.max_retries {
                return Err(transient.into_error(retries + 1));
            }
            let wait = self.retry.delay_for(retries, transient.retry_after());
            tracing::warn!(
                status = transient.status(),
                wait_ms = wait.as_millis() as u64,
                retry = retries + 1,
                max_retries = self.retry.max_retries,
                "LLM API transient failure, retrying"
            );
            tokio::time::sleep(wait).await;
            retries += 1;
        };
        parse(&text).map_err(|e| self.redact_error(e))
    }

    /// One HTTP exchange, classified.
    async fn attempt<B>(
        &self,
        url: &str,
        headers: &HeaderMap,
        body: &B,
        read_error: ErrorReader,
    ) -> Outcome
    where
        B: Serialize + Sync + ?Sized,
    {
        let response = match self
            .http
            .post(url)
            .headers(headers.clone())
            .json(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return Outcome::Retry(Transient::Network(self.redact(describe(&e)))),
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return Outcome::Retry(Transient::Network(self.redact(describe(&e)))),
        };
        if (200..300).contains(&status) {
            return Outcome::Success(text);
        }
        let message = self.redact(read_error(&text));
        match status {
            401 | 403 => Outcome::Fail(LlmError::Auth { status, message }),
            s if TRANSIENT_STATUSES.contains(&s) => Outcome::Retry(Transient::Status {
                status,
                message,
                retry_after,
            }),
            _ => Outcome::Fail(LlmError::Api { status, message }),
        }
    }

    /// `error` with the key scrubbed from its message (a parse error may quote the body).
    fn redact_error(&self, error: LlmError) -> LlmError {
        match error {
            LlmError::InvalidResponse(m) => LlmError::InvalidResponse(self.redact(m)),
            LlmError::Auth { status, message } => LlmError::Auth {
                status,
                message: self.redact(message),
            },
            LlmError::Api { status, message } => LlmError::Api {
                status,
                message: self.redact(message),
            },
            LlmError::Unavailable {
                status,
                attempts,
                message,
            } => LlmError::Unavailable {
                status,
                attempts,
                message: self.redact(message),
            },
            LlmError::Network(m) => LlmError::Network(self.redact(m)),
            LlmError::InvalidRequest(m) => LlmError::InvalidRequest(self.redact(m)),
        }
    }
}

/// The start of a body that is not a documented error body, or `(empty body)`.
pub(super) fn quote_body(body: &str) -> String {
    if body.trim().is_empty() {
        "(empty body)".into()
    } else {
        body.chars().take(MAX_QUOTED_BODY).collect()
    }
}

/// What one HTTP exchange came to.
enum Outcome {
    /// A 2xx status and its body.
    Success(String),
    /// A permanent error.
    Fail(LlmError),
    /// Worth retrying.
    Retry(Transient),
}

/// A failure the retry policy covers.
enum Transient {
    /// A status of [`TRANSIENT_STATUSES`]; `retry_after` from the header of that name.
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Connection failure or timeout.
    Network(String),
}

impl Transient {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Transient::Status { retry_after, .. } => *retry_after,
            Transient::Network(_) => None,
        }
    }

    /// The HTTP status for the log; `None` for a network failure.
    fn status(&self) -> Option<u16> {
        match self {
            Transient::Status { status, .. } => Some(*status),
            Transient::Network(_) => None,
        }
    }

    /// The error once the policy gave up after `attempts` attempts.
    fn into_error(self, attempts: u32) -> LlmError {
        match self {
            Transient::Status {
                status, message, ..
            } => LlmError::Unavailable {
                status,
                attempts,
                message,
            },
            Transient::Network(message) => {
                LlmError::Network(format!("{message} (after {attempts} attempts)"))
            }
        }
    }
}

/// A reqwest error with its source chain (reqwest's own Display hides the cause).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("timed out: {error}")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How long the server asks us to wait: the `retry-after` header in (possibly fractional)
/// seconds (HTTP dates are ignored); without it, Anthropic's rate-limit headers — for every
/// limit whose `anthropic-ratelimit-<limit>-remaining` is 0, until its `…-reset` (RFC 3339)
/// time, the latest of them.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let now = chrono::Utc::now();
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .iter()
        .filter(|limit| header(&format!("anthropic-ratelimit-{limit}-remaining")) == Some("0"))
        .filter_map(|limit| header(&format!("anthropic-ratelimit-{limit}-reset")))
        .filter_map(|reset| chrono::DateTime::parse_from_rfc3339(reset).ok())
        .filter_map(|reset| (reset.with_timezone(&chrono::Utc) - now).to_std().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_rate_limit_headers_set_the_wait_without_retry_after() {
        let mut headers = HeaderMap::new();
        let reset = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
        headers.insert(
            "anthropic-ratelimit-tokens-remaining",
            HeaderValue::from_static("0"),
        );
        headers.insert(
            "anthropic-ratelimit-tokens-reset",
            HeaderValue::from_str(&reset).unwrap(),
        );
        headers.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("12"),
        );
        headers.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_static("2999-01-01T00:00:00Z"),
        );
        let wait = retry_after(&headers).expect("the exhausted limit's reset");
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after", HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn redaction_removes_the_key_and_is_a_no_op_without_one() {
        let keyed = Transport::new(
            Some(SecretString::from("sk-secret")),
            RetryPolicy::default(),
        );
        assert_eq!(
            keyed.redact("bad key sk-secret!".into()),
            "bad key [redacted]!"
        );
        let error = keyed.redact_error(LlmError::InvalidResponse("echo sk-secret".into()));
        assert!(!error.to_string().contains("sk-secret"), "{error}");
        let keyless = Transport::new(None, RetryPolicy::default());
        assert_eq!(keyless.redact("text".into()), "text");
    }

    #[test]
    fn key_header_is_sensitive_prefixed_or_absent() {
        let keyed = Transport::new(Some(SecretString::from("k")), RetryPolicy::default());
        let value = keyed.key_header("Bearer ").unwrap().unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer k");
        let keyless = Transport::new(None, RetryPolicy::default());
        assert!(keyless.key_header("Bearer ").unwrap().is_none());
        let broken = Transport::new(Some(SecretString::from("a\nb")), RetryPolicy::default());
        let err = broken.key_header("").unwrap_err();
        assert!(matches!(err, LlmError::Auth { status: 0, .. }), "{err:?}");
        assert!(!err.to_string().contains("a\nb"));
    }

    #[test]
    fn quoted_body_is_bounded() {
        assert_eq!(quote_body("  "), "(empty body)");
        assert_eq!(quote_body(&"x".repeat(1000)).len(), MAX_QUOTED_BODY);
    }
}
