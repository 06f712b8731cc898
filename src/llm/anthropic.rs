//! Anthropic Messages API provider (reqwest + serde).

use async_trait::async_trait;
use secrecy::SecretString;

use super::{LlmError, Provider, RetryPolicy, ToolCall, ToolRequest};

/// Client of `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`.
pub struct Anthropic {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    retry: RetryPolicy,
}

impl Anthropic {
    /// `base_url` is ANTHROPIC_BASE_URL (no trailing `/v1`).
    pub fn new(base_url: &str, api_key: SecretString, retry: RetryPolicy) -> Anthropic {
        let _ = (base_url, api_key, retry);
        todo!()
    }
}

#[async_trait]
impl Provider for Anthropic {
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError> {
        let _ = (
            request,
            &self.http,
            &self.base_url,
            &self.api_key,
            &self.retry,
        );
        todo!()
    }
}
