//! What the engine hands back: finished rollouts ([`RolloutOutput`]) and
//! groups ([`GroupOutput`], with their [`GroupTimings`]), and the per-token
//! [`TokenEvent`] streaming callers see. Plain data, shared by the decode
//! loop ([`super::group`], [`super::batch`]) and its drivers
//! ([`super::rollout`], [`super::worker`]).

use serde::Serialize;

use super::sequence::{FinishReason, TokenLogprob};

/// One finished rollout.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutOutput {
    pub index: usize,
    pub text: String,
    pub token_ids: Vec<u32>,
    /// Per token of `token_ids`: `true` if the model sampled it, `false` if
    /// the engine forced it (the think-budget message and its `</think>`,
    /// the continuation word that replaces an early `</think>` under
    /// `min_thinking_tokens`). Forced tokens must never be trained on.
    pub sampled: Vec<bool>,
    /// Per token of `token_ids`, only when the request set
    /// [`super::sampler::SamplingParams::raw_logprobs`] (empty otherwise): the
    /// sampling-distribution log-prob `log_softmax(logits / T)[token]` of the
    /// model's logits (no bias, penalties or truncation; T = 1 when greedy),
    /// what a training forward recomputes. `None` for forced tokens: their
    /// probability is not the model's. `logprobs` keeps the OpenAI semantics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw_logprobs: Vec<Option<f32>>,
    pub finish_reason: FinishReason,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<TokenLogprob>,
    pub mean_logprob: Option<f64>,
    /// Tokens spent thinking (0 without think mode); see
    /// [`super::think::ThinkControl::reasoning_tokens`].
    pub reasoning_tokens: usize,
    /// Thinking was ended by the budget (or the answer reserve).
    pub thinking_budget_cut: bool,
    /// Milliseconds from submission to this rollout's first token.
    pub ttft_ms: f64,
    /// Milliseconds from submission to this rollout's last token.
    pub total_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupTimings {
    /// Waiting for KV budget before admission.
    pub queue_ms: f64,
    /// From admission to the end of the prompt prefill (chunks of a long
    /// prompt share steps with other requests' decodes).
    pub prefill_ms: f64,
    /// From submission to the first token of every rollout.
    pub ttft_ms: f64,
    pub decode_ms: f64,
    /// Decode steps (batched forwards after the prefill).
    pub decode_steps: usize,
    /// Prompt tokens computed (cache hits excluded) per second of prefill.
    pub prefill_tokens_per_s: f64,
    /// Generated tokens (all rollouts) per second of decode.
    pub decode_tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupOutput {
    pub rollouts: Vec<RolloutOutput>,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub timings: GroupTimings,
}

/// Per-token event for streaming callers.
pub struct TokenEvent<'a> {
    pub rollout: usize,
    pub token: u32,
    pub logprob: f32,
    pub top_logprobs: &'a [(u32, f32)],
    /// The model sampled this token (`false`: think control forced it).
    pub sampled: bool,
    /// See [`RolloutOutput::raw_logprobs`]; `None` unless requested, or forced.
    pub raw_logprob: Option<f32>,
    pub text: &'a str,
    pub finish: Option<FinishReason>,
}
