//! The one seam between the evaluation tools (`quorum bench eval`, `quorum
//! data distill`) and whatever produces completions: [`SampleSource`]. The
//! embedded engine ([`super::embedded`]) and any OpenAI-compatible server
//! ([`super::remote`]) implement it, so both run the same code above it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::ChatMessage;

/// Think mode of one evaluation configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ThinkSetting {
    /// Thinking on/off; `None`: as the server resolves it (the record's
    /// `enable_thinking`, `/think` in the messages, the model default).
    pub enabled: Option<bool>,
    /// Reasoning tokens before the engine ends thinking (server semantics).
    pub budget: Option<usize>,
}

impl ThinkSetting {
    /// `think=on budget=32`, `think=off`, `think=default`.
    pub fn label(&self) -> String {
        let think = match self.enabled {
            Some(true) => "on",
            Some(false) => "off",
            None => "default",
        };
        match self.budget {
            Some(b) => format!("think={think} budget={b}"),
            None if self.enabled == Some(false) => format!("think={think}"),
            None => format!("think={think} budget=none"),
        }
    }
}

/// `n` completions of one conversation.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    pub messages: Vec<ChatMessage>,
    /// Further chat-template kwargs (the record's `chat_template_kwargs`).
    pub kwargs: Map<String, Value>,
    pub think: ThinkSetting,
    pub temperature: f32,
    /// Cap on reasoning + answer tokens per completion.
    pub max_tokens: usize,
    pub n: usize,
    /// Seed of the request; completion `i` draws stream `i` of it where the
    /// source supports that (Quorum), else `seed + i` per extra request.
    pub seed: u64,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The reasoning (`reasoning_content`); `None` when not thinking.
    pub reasoning: Option<String>,
    /// The answer part (what the verifier judges and votes extract from).
    pub content: String,
    /// Generated tokens (reasoning + answer).
    pub tokens: usize,
    /// `stop`, `length`, …
    pub finish_reason: String,
    /// Per-token log-probs of the sampled tokens (empty when unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<f32>,
    /// Wall time of the request (or engine call) that produced it.
    pub latency_ms: f64,
}

impl Sample {
    /// The whole completion as the assistant turn a reward model scores:
    /// `<think>\nREASONING\n</think>\n\nANSWER` when there is reasoning
    /// (how a Qwen3-style template renders a reasoning turn), else the
    /// answer. The same text whichever source produced the sample.
    pub fn full_text(&self) -> String {
        match &self.reasoning {
            Some(r) => format!(
                "<think>\n{}\n</think>\n\n{}",
                r.trim_matches('\n'),
                self.content.trim_start_matches('\n')
            ),
            None => self.content.clone(),
        }
    }

    pub fn truncated(&self) -> bool {
        self.finish_reason == "length"
    }
}

/// Why a source produced no samples.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server answered with an error status (its OpenAI error message).
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The request did not get an answer (connection refused, timeout…).
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    /// The answer is not what an OpenAI-compatible server sends.
    #[error("{url}: unexpected response: {message}")]
    Protocol { url: String, message: String },
    /// The prompt or the sampling parameters are invalid for the model.
    #[error("{0}")]
    Invalid(String),
    #[error("engine: {0}")]
    Engine(String),
}

/// Produces completions. `sample` gets a batch of requests (one per
/// problem) so an engine can decode them together and a server can get
/// them concurrently; the answer has one `Vec` of exactly `n` samples per
/// request, in order.
pub trait SampleSource {
    /// What is sampled from (for the cache fingerprint and the report):
    /// the model directory, or the URL and served model.
    fn describe(&self) -> String;

    /// Problems per [`SampleSource::sample`] call that keep the source busy.
    fn batch_hint(&self) -> usize;

    fn sample(&self, requests: &[SampleRequest]) -> Result<Vec<Vec<Sample>>, SourceError>;
}

/// Scores (conversation, completion) pairs with a reward model.
pub trait RewardSource {
    fn describe(&self) -> String;

    /// One score per completion, in order (higher is better).
    fn score(
        &self,
        conversation: &[ChatMessage],
        completions: &[String],
    ) -> Result<Vec<f64>, SourceError>;
}

/// Splits an inline `<think>…</think>` off a server's `content` (servers that
/// do not separate reasoning): `(reasoning, answer)`; `None` reasoning when
/// there is no closing tag.
pub fn split_inline_think(content: &str) -> (Option<String>, String) {
    match content.rfind("</think>") {
        Some(end) => {
            let before = &content[..end];
            let reasoning = match before.find("<think>") {
                Some(s) => &before[s + "<think>".len()..],
                None => before,
            };
            (
                Some(reasoning.trim_matches('\n').to_string()),
                content[end + "</think>".len()..]
                    .trim_start_matches('\n')
                    .to_string(),
            )
        }
        None => (None, content.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_think_blocks_split_like_reasoning_content() {
        assert_eq!(
            split_inline_think("<think>\n1+1=2\n</think>\n\n\\boxed{2}"),
            (Some("1+1=2".into()), "\\boxed{2}".into())
        );
        // The prompt opened the block: only the closing tag is generated.
        assert_eq!(
            split_inline_think("a\n</think>\n\nb"),
            (Some("a".into()), "b".into())
        );
        assert_eq!(
            split_inline_think("\\boxed{3}"),
            (None, "\\boxed{3}".into())
        );
    }

    #[test]
    fn the_full_text_puts_reasoning_in_a_think_block() {
        let s = Sample {
            reasoning: Some("r".into()),
            content: "\\boxed{1}".into(),
            tokens: 3,
            finish_reason: "stop".into(),
            logprobs: vec![],
            latency_ms: 0.0,
        };
        assert_eq!(s.full_text(), "<think>\nr\n</think>\n\n\\boxed{1}");
        let off = Sample {
            reasoning: None,
            ..s
        };
        assert_eq!(off.full_text(), "\\boxed{1}");
    }

    #[test]
    fn labels_name_the_think_mode_and_budget() {
        let l = |enabled, budget| ThinkSetting { enabled, budget }.label();
        assert_eq!(l(Some(true), Some(32)), "think=on budget=32");
        assert_eq!(l(Some(true), None), "think=on budget=none");
        assert_eq!(l(Some(false), None), "think=off");
        assert_eq!(l(None, None), "think=default budget=none");
    }
}
