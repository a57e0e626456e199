//! The runtime state of one admitted request: its prompt KV while prefilling,
//! then its rollouts, plus where its events go and when things happened.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::output::{GroupOutput, GroupTimings, RolloutOutput, TokenEvent};
use super::prefix_cache::PrefixCache;
use super::sampler::{Sampler, SamplingParams};
use super::scheduler::GroupId;
use super::sequence::{FinishReason, Sequence, Stops};
use super::stop::StopStrings;
use super::think::ThinkSpec;
use super::EngineError;
use crate::model::{KvCache, SeqInput, SharedKv};
use crate::tokenizer::Tokenizer;

/// Where a group's events go: a channel for the server, a callback for
/// [`super::generate_group`].
pub trait GroupSink {
    /// The prompt is prefilled; the first tokens follow.
    fn started(&mut self, prompt_tokens: usize, cached_tokens: usize) -> bool;
    /// A sampled token; `false` when the consumer is gone (cancels the group).
    fn token(&mut self, ev: TokenEvent<'_>) -> bool;
    /// Whether the consumer has left; polled between steps.
    fn is_closed(&self) -> bool;
    /// Rollouts the consumer wants stopped (see [`super::cancel::CancelSet`]);
    /// polled between steps. Default: none.
    fn cancel_set(&self) -> Option<&super::cancel::CancelSet> {
        None
    }
    /// Rollout `rollout` ended without a token (cancelled through the
    /// cancel set). `false` when the consumer is gone.
    fn rollout_finished(&mut self, _rollout: usize, _reason: FinishReason) -> bool {
        true
    }
}

pub struct ActiveGroup<'s> {
    pub id: GroupId,
    pub prompt: Vec<u32>,
    pub n: usize,
    pub params: SamplingParams,
    pub max_new: usize,
    stop_ids: Arc<[u32]>,
    /// Think mode of every rollout (one control each, capped at `max_new`);
    /// set after [`Self::new`].
    pub think: Option<ThinkSpec>,
    /// The prompt KV while it is being prefilled.
    pub cache: Option<KvCache>,
    /// The prompt KV once prefilled: every rollout's cache starts on it.
    prompt_kv: Option<Arc<SharedKv>>,
    pub cached_tokens: usize,
    pub seqs: Vec<Sequence>,
    pub sink: Box<dyn GroupSink + 's>,
    /// Set when the consumer left; the group is finished at the next step.
    pub cancelled: bool,
    /// Next rollout to favour when not all can decode this step.
    cursor: usize,
    pub decode_steps: usize,
    submitted: Instant,
    admitted: Option<Instant>,
    prefilled: Option<Instant>,
    first_tokens: Option<Instant>,
    /// Per rollout: milliseconds from submission to its last token.
    finished_ms: Vec<f64>,
}

impl<'s> ActiveGroup<'s> {
    pub fn new(
        id: GroupId,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        max_new: usize,
        stop_ids: Arc<[u32]>,
        sink: Box<dyn GroupSink + 's>,
    ) -> Self {
        Self {
            id,
            prompt,
            n,
            params,
            max_new,
            stop_ids,
            think: None,
            cache: None,
            prompt_kv: None,
            cached_tokens: 0,
            seqs: Vec::with_capacity(n),
            sink,
            cancelled: false,
            cursor: 0,
            decode_steps: 0,
            submitted: Instant::now(),
            admitted: None,
            prefilled: None,
            first_tokens: None,
            finished_ms: vec![0.0; n],
        }
    }

    /// Admitted with `cache` holding the first `cached_tokens` prompt tokens.
    pub fn admit(&mut self, cache: KvCache, cached_tokens: usize) {
        self.cache = Some(cache);
        self.cached_tokens = cached_tokens;
        self.admitted = Some(Instant::now());
    }

    /// Rollouts still generating.
    pub fn live(&self) -> usize {
        self.seqs.iter().filter(|s| !s.is_finished()).count()
    }

    pub fn is_done(&self) -> bool {
        self.cancelled || (self.cache.is_none() && self.seqs.len() == self.n && self.live() == 0)
    }

    /// KV bytes this group holds now (the shared prompt counted once).
    pub fn kv_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, KvCache::reserved_bytes)
            + self.prompt_kv.as_ref().map_or(0, |kv| kv.bytes())
            + self
                .seqs
                .iter()
                .map(|s| s.cache.reserved_bytes())
                .sum::<usize>()
    }

    /// Mark (in `mask`, indexed by rollout) up to `count` rollouts with
    /// pending tokens, rotating so that a capped group serves all in turn.
    pub fn pick_decode(&mut self, count: usize, mask: &mut Vec<bool>) {
        mask.clear();
        mask.resize(self.seqs.len(), false);
        let len = self.seqs.len();
        let mut left = count;
        for k in 0..len {
            let i = (self.cursor + k) % len;
            let s = &self.seqs[i];
            if left > 0 && !s.is_finished() && !s.pending.is_empty() {
                mask[i] = true;
                left -= 1;
            }
        }
        if len > 0 {
            self.cursor = (self.cursor + count) % len;
        }
        if count > 0 {
            self.decode_steps += 1;
        }
    }

    /// Add this group's inputs to a forward: the prompt tokens
    /// `start..start + len` on the prompt cache, then the pending tokens of
    /// each rollout marked in `mask` (one sampled token, or several forced
    /// ones: the forward takes any number of new tokens per sequence).
    pub fn push_inputs<'a>(
        &'a mut self,
        prefill: Option<(usize, usize)>,
        mask: &[bool],
        out: &mut Vec<SeqInput<'a>>,
    ) {
        if let Some((start, len)) = prefill {
            out.push(SeqInput {
                tokens: &self.prompt[start..start + len],
                cache: self.cache.as_mut(),
            });
        }
        let marked = self
            .seqs
            .iter_mut()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(s, _)| s);
        for seq in marked {
            out.push(SeqInput {
                tokens: &seq.pending,
                cache: Some(&mut seq.cache),
            });
        }
    }

    /// The prompt is complete: fan its KV out to the rollouts and sample each
    /// first token from `row` (the prompt's last logits). The prompt KV is
    /// frozen once and shared by every rollout (and the prefix cache), not
    /// copied; first samples run in parallel.
    pub fn fork_rollouts(
        &mut self,
        tok: &Tokenizer,
        row: &[f32],
        prefix: &mut PrefixCache,
    ) -> Result<(), EngineError> {
        let Some(prompt_cache) = self.cache.take() else {
            return Ok(());
        };
        self.prefilled = Some(Instant::now());
        if !self.sink.started(self.prompt.len(), self.cached_tokens) {
            self.cancelled = true;
            return Ok(());
        }
        let shared = prompt_cache.into_shared()?;
        prefix.insert(&self.prompt, shared.clone());
        self.prompt_kv = Some(shared.clone());
        let stops = Stops {
            eos_ids: self.stop_ids.clone(),
            strings: Arc::new(StopStrings::new(self.params.stop.clone())?),
        };
        for i in 0..self.n {
            let cache = KvCache::on_prefix(shared.clone(), shared.len());
            let mut sampler = Sampler::new(self.params.clone(), i as u64);
            sampler.observe_prompt(&self.prompt);
            let mut seq = Sequence::new(i, cache, sampler, self.max_new, &stops, &self.prompt);
            seq.think = self.think.as_ref().map(|t| t.control(self.max_new));
            self.seqs.push(seq);
        }
        // A zero thinking budget: the budget text replaces the first sample.
        let mut forced = Vec::with_capacity(self.seqs.len());
        for s in &mut self.seqs {
            forced.push(s.initial_force(tok)?);
        }
        // Each sampler uses its row as scratch, so each gets its own copy.
        let sampled = self
            .seqs
            .par_iter_mut()
            .zip(&forced)
            .map(|(s, f)| match f {
                Some(_) => Ok(None),
                None => s.sampler.sample(&mut row.to_vec()).map(Some),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, (sampled, forced)) in sampled.into_iter().zip(forced).enumerate() {
            let alive = match (sampled, forced) {
                (Some(sampled), _) => self.accept(i, sampled, tok)?,
                (None, Some(texts)) => self.emit(i, texts),
                (None, None) => true,
            };
            if !alive {
                self.cancel();
                break;
            }
        }
        self.first_tokens = Some(Instant::now());
        Ok(())
    }

    /// Take rollout `i`'s sampled token (or the tokens think mode forces in
    /// its place) and stream them; frees the rollout's KV when it finishes.
    /// Returns `false` when the consumer is gone.
    pub fn accept(
        &mut self,
        i: usize,
        sampled: super::sampler::Sampled,
        tok: &Tokenizer,
    ) -> Result<bool, EngineError> {
        let texts = self.seqs[i].accept(sampled, tok)?;
        Ok(self.emit(i, texts))
    }

    /// Stream the tokens rollout `i` just appended (`texts`: one per token),
    /// one event each; the finish reason rides on the last.
    fn emit(&mut self, i: usize, texts: Vec<String>) -> bool {
        let seq = &mut self.seqs[i];
        if seq.is_finished() {
            // Leave the batch now: the KV cache is no longer needed.
            seq.cache = KvCache::new(0);
            self.finished_ms[i] = ms(self.submitted.elapsed());
        }
        let first = seq.logprobs.len().saturating_sub(texts.len());
        let appended = &seq.logprobs[first..];
        let count = texts.len();
        let mut alive = true;
        for (k, (text, lp)) in texts.iter().zip(appended).enumerate() {
            alive = self.sink.token(TokenEvent {
                rollout: seq.index,
                token: lp.token,
                logprob: lp.logprob,
                top_logprobs: &lp.top_logprobs,
                sampled: seq.sampled.get(first + k).copied().unwrap_or(true),
                raw_logprob: seq.raw_logprobs.get(first + k).copied().flatten(),
                text,
                finish: if k + 1 == count { seq.finish } else { None },
            });
            if !alive {
                break;
            }
        }
        alive
    }

    /// Stop the live rollouts flagged in the sink's cancel set (each ends
    /// `Cancelled`, its KV freed, the consumer told); returns how many.
    pub fn cancel_flagged(&mut self) -> usize {
        let flagged: Vec<usize> = match self.sink.cancel_set() {
            Some(set) if set.any() => self
                .seqs
                .iter()
                .filter(|s| !s.is_finished() && set.is_cancelled(s.index))
                .map(|s| s.index)
                .collect(),
            _ => return 0,
        };
        let elapsed = ms(self.submitted.elapsed());
        for &i in &flagged {
            if let Some(s) = self.seqs.iter_mut().find(|s| s.index == i) {
                s.cancel();
                self.finished_ms[i] = elapsed;
            }
            if !self.sink.rollout_finished(i, FinishReason::Cancelled) {
                self.cancelled = true;
            }
        }
        flagged.len()
    }

    /// End every unfinished rollout as cancelled and free all KV.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        self.cache = None;
        let elapsed = ms(self.submitted.elapsed());
        for s in &mut self.seqs {
            if !s.is_finished() {
                self.finished_ms[s.index] = elapsed;
            }
            s.cancel();
        }
    }

    /// The final report (call once the group is done).
    pub fn into_output(self) -> GroupOutput {
        let end = Instant::now();
        let admitted = self.admitted.unwrap_or(self.submitted);
        let prefilled = self.prefilled.unwrap_or(end);
        let first = self.first_tokens.unwrap_or(end);
        let completion_tokens: usize = self.seqs.iter().map(|s| s.output_ids.len()).sum();
        // The first token of each rollout comes from the prefill logits.
        let decoded = completion_tokens.saturating_sub(self.seqs.len());
        let prompt_tokens = self.prompt.len();
        let computed = prompt_tokens - self.cached_tokens.min(prompt_tokens);
        let secs = |d: std::time::Duration| d.as_secs_f64().max(1e-9);
        let finished_ms = self.finished_ms;
        let ttft_ms = ms(first.saturating_duration_since(self.submitted));
        let rollouts = self
            .seqs
            .into_iter()
            .map(|s| {
                let total_ms = finished_ms.get(s.index).copied().unwrap_or(0.0);
                let think = s.think.as_ref();
                RolloutOutput {
                    reasoning_tokens: think.map_or(0, |t| t.reasoning_tokens()),
                    thinking_budget_cut: think.is_some_and(|t| t.budget_cut()),
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
                    sampled: s.sampled,
                    raw_logprobs: s.raw_logprobs,
                    ttft_ms,
                    total_ms,
                }
            })
            .collect();
        GroupOutput {
            rollouts,
            prompt_tokens,
            cached_tokens: self.cached_tokens,
            completion_tokens,
            timings: GroupTimings {
                queue_ms: ms(admitted.saturating_duration_since(self.submitted)),
                prefill_ms: ms(prefilled.saturating_duration_since(admitted)),
                ttft_ms,
                decode_ms: ms(end.saturating_duration_since(first)),
                decode_steps: self.decode_steps,
                prefill_tokens_per_s: computed as f64
                    / secs(prefilled.saturating_duration_since(admitted)),
                decode_tokens_per_s: decoded as f64 / secs(end.saturating_duration_since(first)),
            },
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
