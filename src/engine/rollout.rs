//! Rollout groups: N samples of one prompt. The prompt is prefilled once, its
//! KV cache fanned out to N sequences, and all unfinished sequences decode as
//! one ragged batch; a finished sequence leaves the batch at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sampler::{Sampler, SamplingParams};
use super::sequence::{FinishReason, Sequence, TokenLogprob};
use super::EngineError;
use crate::model::{Mode, Positions, SeqInput, Transformer};
use crate::tokenizer::Tokenizer;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GroupRequest {
    pub prompt_ids: Vec<u32>,
    /// Number of rollouts.
    pub n: usize,
    pub params: SamplingParams,
    /// EOS ids of the model (config + generation_config + tokenizer).
    pub eos_token_ids: Vec<u32>,
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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupTimings {
    pub prefill_ms: f64,
    /// Time to first token of every rollout (prefill + first sample).
    pub ttft_ms: f64,
    pub decode_ms: f64,
    /// Decode steps (batched forwards after the prefill).
    pub decode_steps: usize,
    pub prefill_tokens_per_s: f64,
    /// Generated tokens (all rollouts) per second of decode.
    pub decode_tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupOutput {
    pub rollouts: Vec<RolloutOutput>,
    pub prompt_tokens: usize,
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
pub fn generate_group(
    model: &Transformer,
    tok: &Tokenizer,
    req: &GroupRequest,
    on_token: &mut dyn FnMut(TokenEvent<'_>) -> bool,
) -> Result<GroupOutput, EngineError> {
    let prompt_len = req.prompt_ids.len();
    if prompt_len == 0 {
        return Err(EngineError::EmptyPrompt);
    }
    if req.n == 0 {
        return Err(EngineError::Invalid("n must be at least 1".into()));
    }
    let context = model.max_positions();
    if prompt_len >= context {
        return Err(EngineError::ContextLength {
            prompt: prompt_len,
            max_tokens: 1,
            context,
        });
    }
    let max_tokens = req
        .params
        .max_tokens
        .unwrap_or(usize::MAX)
        .min(context - prompt_len);
    let stop_ids: Arc<[u32]> = req.eos_token_ids.clone().into();

    let start = Instant::now();
    let mut cache = model.new_cache();
    let logits = model.forward(
        &mut [SeqInput {
            tokens: &req.prompt_ids,
            cache: Some(&mut cache),
        }],
        Positions::Last,
        Mode::Inference,
    )?;
    let prompt_logits: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    let prefill = start.elapsed();

    let mut seqs = Vec::with_capacity(req.n);
    let mut cancelled = false;
    for i in 0..req.n {
        let c = if i + 1 == req.n {
            std::mem::replace(&mut cache, model.new_cache())
        } else {
            cache.fork()?
        };
        let mut sampler = Sampler::new(req.params.clone(), i as u64);
        sampler.observe_prompt(&req.prompt_ids);
        let mut seq = Sequence::new(i, c, sampler, max_tokens, stop_ids.clone(), &req.prompt_ids);
        let mut row = prompt_logits.clone();
        let text = seq.sample_and_accept(&mut row, tok)?;
        let go_on = on_token(token_event(&seq, &text));
        seqs.push(seq);
        if !go_on {
            cancelled = true;
            break;
        }
    }
    let ttft = start.elapsed();

    let decode_start = Instant::now();
    let mut steps = 0;
    while !cancelled && !seqs.iter().all(Sequence::is_finished) {
        cancelled = !decode_step(model, tok, &mut seqs, on_token)?;
        steps += 1;
    }
    if cancelled {
        seqs.iter_mut().for_each(Sequence::cancel);
    }
    let decode = decode_start.elapsed();
    Ok(finish_group(seqs, prompt_len, prefill, ttft, decode, steps))
}

/// One batched decode step over the unfinished sequences with a pending token.
/// Returns `false` when `on_token` asked to cancel.
pub fn decode_step(
    model: &Transformer,
    tok: &Tokenizer,
    seqs: &mut [Sequence],
    on_token: &mut dyn FnMut(TokenEvent<'_>) -> bool,
) -> Result<bool, EngineError> {
    let mut active: Vec<&mut Sequence> = seqs
        .iter_mut()
        .filter(|s| !s.is_finished() && s.pending.is_some())
        .collect();
    if active.is_empty() {
        return Ok(true);
    }
    let pending: Vec<[u32; 1]> = active
        .iter()
        .map(|s| [s.pending.unwrap_or_default()])
        .collect();
    let logits = {
        let mut inputs: Vec<SeqInput> = active
            .iter_mut()
            .zip(pending.iter())
            .map(|(s, t)| SeqInput {
                tokens: t,
                cache: Some(&mut s.cache),
            })
            .collect();
        model.forward(&mut inputs, Positions::Last, Mode::Inference)?
    };
    let vocab = logits.dim(1)?;
    let mut rows: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    let mut go_on = true;
    for (seq, row) in active.iter_mut().zip(rows.chunks_mut(vocab)) {
        seq.pending = None;
        let text = seq.sample_and_accept(row, tok)?;
        if seq.is_finished() {
            // Leave the batch now: the KV cache is no longer needed.
            seq.cache = crate::model::KvCache::new(0);
        }
        go_on &= on_token(token_event(seq, &text));
    }
    Ok(go_on)
}

fn token_event<'a>(seq: &'a Sequence, text: &'a str) -> TokenEvent<'a> {
    let last = seq.logprobs.last();
    TokenEvent {
        rollout: seq.index,
        token: last.map_or(0, |l| l.token),
        logprob: last.map_or(0.0, |l| l.logprob),
        top_logprobs: last.map_or(&[][..], |l| &l.top_logprobs[..]),
        text,
        finish: seq.finish,
    }
}

fn finish_group(
    seqs: Vec<Sequence>,
    prompt_len: usize,
    prefill: Duration,
    ttft: Duration,
    decode: Duration,
    steps: usize,
) -> GroupOutput {
    let completion_tokens: usize = seqs.iter().map(|s| s.output_ids.len()).sum();
    // The first token of each rollout comes from the prefill logits.
    let decoded = completion_tokens.saturating_sub(seqs.len());
    let rollouts = seqs
        .into_iter()
        .map(|s| RolloutOutput {
            index: s.index,
            mean_logprob: s.mean_logprob(),
            finish_reason: s.finish.unwrap_or(FinishReason::Length),
            logprobs: if s.sampler.params().logprobs {
                s.logprobs
            } else {
                Vec::new()
            },
            text: s.text,
            token_ids: s.output_ids,
        })
        .collect();
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    GroupOutput {
        rollouts,
        prompt_tokens: prompt_len,
        completion_tokens,
        timings: GroupTimings {
            prefill_ms: prefill.as_secs_f64() * 1e3,
            ttft_ms: ttft.as_secs_f64() * 1e3,
            decode_ms: decode.as_secs_f64() * 1e3,
            decode_steps: steps,
            prefill_tokens_per_s: prompt_len as f64 / secs(prefill),
            decode_tokens_per_s: decoded as f64 / secs(decode),
        },
    }
}
