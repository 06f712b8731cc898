//! A provider decorator that caps every request's output budget (MAX_OUTPUT_TOKENS): small
//! local models have small context windows, where prompt + `max_tokens` must fit.

use std::sync::Arc;

use async_trait::async_trait;

use super::{LlmError, Provider, ToolCall, ToolRequest};

/// `inner`, with each request's `max_tokens` lowered to at most `max_tokens`.
pub struct Capped {
    inner: Arc<dyn Provider>,
    max_tokens: u32,
}

impl Capped {
    pub fn new(inner: Arc<dyn Provider>, max_tokens: u32) -> Capped {
        Capped { inner, max_tokens }
    }
}

#[async_trait]
impl Provider for Capped {
    async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError> {
        if request.max_tokens <= self.max_tokens {
            return self.inner.call_tool(request).await;
        }
        let capped = ToolRequest {
            max_tokens: self.max_tokens,
            ..request.clone()
        };
        self.inner.call_tool(&capped).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::llm::ToolSpec;
    use crate::task::Usage;

    struct Recorder(Mutex<Vec<u32>>);

    #[async_trait]
    impl Provider for Recorder {
        async fn call_tool(&self, request: &ToolRequest) -> Result<ToolCall, LlmError> {
            self.0.lock().unwrap().push(request.max_tokens);
            Ok(ToolCall {
                id: "call_1".into(),
                name: "t".into(),
                input: serde_json::Value::Null,
                usage: Usage::default(),
            })
        }
    }

    #[tokio::test]
    async fn lowers_only_larger_budgets() {
        let recorder = Arc::new(Recorder(Mutex::default()));
        let capped = Capped::new(recorder.clone(), 1024);
        let request = |max_tokens| ToolRequest {
            model: "m".into(),
            system: String::new(),
            messages: vec![],
            tools: vec![ToolSpec {
                name: "t".into(),
                description: String::new(),
                input_schema: serde_json::json!({"type": "object"}),
            }],
            tool_choice: "t".into(),
            choice: crate::llm::Choice::Role,
            max_tokens,
        };
        capped.call_tool(&request(16000)).await.unwrap();
        capped.call_tool(&request(512)).await.unwrap();
        assert_eq!(*recorder.0.lock().unwrap(), [1024, 512]);
    }
}
