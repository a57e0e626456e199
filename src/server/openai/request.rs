//! Request bodies of `/v1/chat/completions` and `/v1/completions`.
//!
//! Fields shared by both endpoints live in [`SamplingFields`] and
//! [`VendorFields`], so one definition serves both. Each part is decoded
//! from the same parsed JSON object (not with `#[serde(flatten)]`, which
//! buffers values and loses the path of a type error), so every type error
//! names its field. Values that need more than a type check (message content
//! parts, `prompt` shapes, `logit_bias` keys) are kept as JSON here and
//! checked by the validator, which can then name the exact field.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::decode::{parse, parse_part, DecodeError, JsonBody};

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone)]
pub struct ChatCompletionRequest {
    pub chat: ChatFields,
    pub sampling: SamplingFields,
    pub vendor: VendorFields,
    /// Think mode: `reasoning_effort`, `thinking_budget` and friends.
    pub think: ThinkFields,
}

impl JsonBody for ChatCompletionRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let v: Value = parse(bytes)?;
        Ok(Self {
            chat: parse_part(&v)?,
            sampling: parse_part(&v)?,
            vendor: parse_part(&v)?,
            think: parse_part(&v)?,
        })
    }
}

/// Chat-only fields.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatFields {
    pub model: String,
    pub messages: Vec<WireMessage>,
    /// OpenAI's older name of the completion budget.
    pub max_tokens: Option<usize>,
    /// OpenAI's newer name; wins when both are given.
    pub max_completion_tokens: Option<usize>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<usize>,
    pub response_format: Option<ResponseFormat>,
    /// Tool definitions, handed to the chat template as `tools` (as HF and
    /// vLLM do). Tool calls in the output are not parsed yet: they arrive
    /// as text in `content`.
    pub tools: Option<Value>,
}

/// One chat message as sent; `content` is a string, an array of parts or null.
/// OpenAI's shape, so unknown keys (`refusal`, `audio`, ... echoed back by
/// SDKs) are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a message object like {\"role\": \"user\", \"content\": \"...\"}")]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Value,
    pub reasoning_content: Option<String>,
    pub name: Option<String>,
    pub tool_calls: Option<Value>,
    pub tool_call_id: Option<String>,
}

/// `response_format`: only `{"type": "text"}` is supported for now. OpenAI's
/// object: other keys (`json_schema`) are tolerated.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an object like {\"type\": \"text\"}")]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `POST /v1/completions` (legacy text completions).
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    pub completion: CompletionFields,
    pub sampling: SamplingFields,
    pub vendor: VendorFields,
}

impl JsonBody for CompletionRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let v: Value = parse(bytes)?;
        Ok(Self {
            completion: parse_part(&v)?,
            sampling: parse_part(&v)?,
            vendor: parse_part(&v)?,
        })
    }
}

/// Completions-only fields.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionFields {
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
#[serde(untagged, expecting = "expected a string or an array of strings")]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// OpenAI's `stream_options`; keys newer than `include_usage` are tolerated.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Top-level vendor extensions (sent with the SDKs' `extra_body`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VendorFields {
    /// Samples to draw (default: the model's configured default, at least
    /// `n`; must be `>= n`). With more rollouts than choices, `selection`
    /// ranks them and the best `n` are returned (see `server::selection`).
    pub rollouts: Option<usize>,
    /// Extra variables for the chat template (`enable_thinking`, `tools`, ...).
    pub chat_template_kwargs: Option<Map<String, Value>>,
    /// Think mode on/off and the thinking budget: typed and acted on in
    /// [`ThinkFields`] (chat only); kept here untyped so the
    /// completions endpoint accepts and ignores them.
    pub thinking: Option<Value>,
    pub thinking_budget: Option<Value>,
    /// How the returned answer is picked among rollouts:
    /// `{"strategy": "majority", "early_stop": true, "extract": "math", ...}`
    /// (parsed and checked by [`super::selection`]).
    pub selection: Option<Value>,
}

/// The think fields of a chat request (top level; SDKs send them with
/// `extra_body`). Budget aliases are the names other servers use; they are
/// reconciled and checked by `server::validate` and `server::think`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ThinkFields {
    /// OpenAI's `none|minimal|low|medium|high|xhigh`.
    pub reasoning_effort: Option<String>,
    /// Top-level on/off switch, like `chat_template_kwargs.enable_thinking`.
    pub thinking: Option<bool>,
    pub thinking_budget: Option<usize>,
    pub thinking_token_budget: Option<usize>,
    pub reasoning_budget_tokens: Option<usize>,
    pub max_thinking_tokens: Option<usize>,
    pub min_thinking_tokens: Option<usize>,
    /// Replaces the model's budget message for this request.
    pub thinking_budget_message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse<T: JsonBody>(b: &[u8]) -> Result<T, DecodeError> {
        T::from_json(b)
    }

    #[test]
    fn shared_fields_parse_and_unknown_fields_are_ignored() {
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
    fn type_errors_name_the_field() {
        let e = parse::<ChatCompletionRequest>(
            br#"{"model": "m", "messages": [], "temperature": "hot"}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"), "{e}");
        let e = parse::<ChatCompletionRequest>(br#"{"model": "m", "messages": "hi"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"), "{e}");
        let e = parse::<ChatCompletionRequest>(br#"{"messages": []}"#).unwrap_err();
        assert!(e.to_string().contains("model"), "{e}");
        let e = parse::<CompletionRequest>(br#"[1]"#).unwrap_err();
        assert_eq!(e.param, None);
        assert!(e.message.contains("JSON object"), "{e}");
    }

    #[test]
    fn type_errors_speak_json_not_rust() {
        let msg = |body: &[u8]| {
            parse::<ChatCompletionRequest>(body)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg(br#"{"model": "m", "messages": [], "stop": 5}"#),
            "stop: expected a string or an array of strings"
        );
        assert_eq!(
            msg(br#"{"model": "m", "messages": ["hi"]}"#),
            r#"messages[0]: invalid type: string "hi", expected a message object like {"role": "user", "content": "..."}"#
        );
        assert_eq!(
            msg(br#"{"model": "m", "messages": [], "response_format": "text"}"#),
            r#"response_format: invalid type: string "text", expected an object like {"type": "text"}"#
        );
        assert_eq!(
            msg(br#"{"model": "m", "messages": [], "n": -2}"#),
            "n: invalid value: integer `-2`, expected a non-negative integer"
        );
    }
}
