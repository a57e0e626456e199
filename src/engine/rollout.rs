//! Rollout groups: N samples of one prompt. The prompt is prefilled once, its
//! KV cache fanned out to N sequences, and all unfinished sequences decode as
//! one ragged batch; a finished sequence leaves the batch at once.

use std::sync::Arc;

use serde::Serialize;

use super::batch::{BatchConfig, Batcher};
use super::group::GroupSink;
use super::metrics::EngineMetrics;
use super::sampler::SamplingParams;
use super::sequence::{FinishReason, TokenLogprob};
use super::think::ThinkSpec;
use super::EngineError;
use crate::model::Transformer;
use crate::tokenizer::Tokenizer;

/// What to generate.
#[derive(Debug, Clone, Default)]
pub struct GroupRequest {
    pub prompt_ids: Vec<u32>,
    /// Number of rollouts.
    pub n: usize,
    pub params: SamplingParams,
    /// EOS ids of the model (config + generation_config + tokenizer).
    pub eos_token_ids: Vec<u32>,
    /// Think mode (budgets, minimum); `None`: plain generation.
    pub think: Option<ThinkSpec>,
}

/// One finished rollout.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutOutput {
    pub index: usize,
    pub text: String,
    pub token_ids: Vec<u32>,
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
    pub text: &'a str,
    pub finish: Option<FinishReason>,
}

/// Run a rollout group to completion on the calling thread. `on_token` sees
/// every token; returning `false` cancels the group (the client left): the
/// unfinished rollouts end with [`FinishReason::Cancelled`] and free their KV.
///
/// A thin wrapper over the engine's [`Batcher`] with one group and no limits,
/// so the CLI, the benchmarks and the server share one decode loop.
pub fn generate_group(
    model: &Transformer,
    tok: &Tokenizer,
    req: &GroupRequest,
    on_token: &mut dyn FnMut(TokenEvent<'_>) -> bool,
) -> Result<GroupOutput, EngineError> {
    let metrics = Arc::new(EngineMetrics::default());
    let mut batcher = Batcher::new(model, tok, BatchConfig::single_group(), metrics);
    let sink = CallbackSink {
        on_token,
        closed: false,
    };
    batcher.submit_think(
        req.prompt_ids.clone(),
        req.n,
        req.params.clone(),
        req.eos_token_ids.clone().into(),
        req.think.clone(),
        Box::new(sink),
    )?;
    while !batcher.is_idle() {
        if let Some(done) = batcher.step().into_iter().next() {
            return done.result;
        }
    }
    Err(EngineError::Invalid(
        "the group left the engine without a result".into(),
    ))
}

/// Adapts a `generate_group` callback to the engine's event sink.
struct CallbackSink<'f> {
    on_token: &'f mut dyn FnMut(TokenEvent<'_>) -> bool,
    closed: bool,
}

impl GroupSink for CallbackSink<'_> {
    fn started(&mut self, _prompt_tokens: usize, _cached_tokens: usize) -> bool {
        !self.closed
    }

    fn token(&mut self, ev: TokenEvent<'_>) -> bool {
        self.closed |= !(self.on_token)(ev);
        !self.closed
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}
