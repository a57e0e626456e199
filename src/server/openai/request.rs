//! Request bodies of `/v1/chat/completions` and `/v1/completions`.
//!
//! Fields shared by both endpoints live in [`SamplingFields`] and
//! [`VendorFields`], flattened into each request, so one definition serves
//! both. Values that need more than a type check (message content parts,
//! `prompt` shapes, `logit_bias` keys) are kept as JSON here and checked by
//! the validator, which can then name the exact field.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    /// OpenAI's older name of the completion budget.
    pub max_tokens: Option<usize>,
    /// OpenAI's newer name; wins when both are given.
    pub max_completion_tokens: Option<usize>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<usize>,
    pub response_format: Option<ResponseFormat>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    #[serde(flatten)]
    pub vendor: VendorFields,
}

/// One chat message as sent; `content` is a string, an array of parts or null.
#[derive(Debug, Clone, Deserialize)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Value,
    pub reasoning_content: Option<String>,
    pub name: Option<String>,
    pub tool_calls: Option<Value>,
    pub tool_call_id: Option<String>,
}

/// `response_format`: only `{"type": "text"}` is supported for now.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `POST /v1/completions` (legacy text completions).
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// A string, a list of one string, a list of token ids, or a list of one
    /// list of token ids.
    pub prompt: Value,
    pub max_tokens: Option<usize>,
    /// Return the prompt before the completion.
    #[serde(default)]
    pub echo: bool,
    /// Legacy logprobs: the number of alternatives per token (0..=20).
    pub logprobs: Option<usize>,
    /// OpenAI's server-side best-of; here it means `rollouts`.
    pub best_of: Option<usize>,
    pub suffix: Option<String>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    #[serde(flatten)]
    pub vendor: VendorFields,
}

/// Sampling and streaming fields common to both endpoints (OpenAI names,
/// plus vLLM's `top_k`, `min_p`, `repetition_penalty`, `ignore_eos`,
/// `stop_token_ids`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingFields {
    pub n: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// vLLM: `-1` or `0` is off.
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    /// Token id (as a JSON string key) to bias in `[-100, 100]`.
    pub logit_bias: Option<BTreeMap<String, f32>>,
    pub stop: Option<Stop>,
    pub stop_token_ids: Option<Vec<u32>>,
    pub ignore_eos: Option<bool>,
    /// Any integer; negative seeds are reinterpreted bitwise.
    pub seed: Option<i64>,
    /// End-user id, only logged.
    pub user: Option<String>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
}

/// `stop`: a string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Top-level vendor extensions (sent with the SDKs' `extra_body`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VendorFields {
    /// Samples to draw (default `n`; must be `>= n`). With more rollouts than
    /// choices, the first `n` are returned until selection lands.
    pub rollouts: Option<usize>,
    /// Extra variables for the chat template (`enable_thinking`, `tools`, ...).
    pub chat_template_kwargs: Option<Map<String, Value>>,
    // --- Reserved for later issues; parsed (so typos of the shape surface
    // early) but not acted on yet. ---
    /// Think mode on/off (think-mode issue). Until then use
    /// `chat_template_kwargs.enable_thinking`.
    pub thinking: Option<Value>,
    /// Token budget for reasoning (budget-forcing issue).
    pub thinking_budget: Option<Value>,
    /// How the returned answer is picked among rollouts: vote, reward model,
    /// ... (selection issue). Ignored now: the first `n` rollouts are returned.
    pub selection: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::extract::parse;

    #[test]
    fn flattened_fields_parse_and_unknown_fields_are_ignored() {
        let r: ChatCompletionRequest = parse(
            br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}],
                 "n": 2, "stop": "x", "rollouts": 4, "whatever": {"a": 1},
                 "chat_template_kwargs": {"enable_thinking": false}}"#,
        )
        .unwrap();
        assert_eq!(r.sampling.n, Some(2));
        assert_eq!(r.vendor.rollouts, Some(4));
        assert!(matches!(r.sampling.stop, Some(Stop::One(_))));
        assert!(r.vendor.chat_template_kwargs.is_some());
    }

    #[test]
    fn flattened_type_errors_still_name_a_field() {
        let e = parse::<ChatCompletionRequest>(
            br#"{"model": "m", "messages": [], "temperature": "hot"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("temperature") || e.to_string().contains("f32"), "{e}");
        let e = parse::<ChatCompletionRequest>(br#"{"model": "m", "messages": "hi"}"#).unwrap_err();
        assert!(e.to_string().contains("messages"), "{e}");
    }
}
