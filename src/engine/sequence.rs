//! One rollout: its KV cache, sampler, generated tokens and the text emitted
//! so far (incrementally detokenized, stop strings held back and removed).
//!
//! With think mode, a sampled token may be replaced by several *forced*
//! tokens (the budget text, a continuation word): they are appended to the
//! output like sampled ones (detokenized, stop-checked, counted against
//! `max_tokens`) with logprob 0.0 and no alternatives, and all of them are
//! fed to the model together in the next step of the ragged batch.
//!
//! Every output token records its provenance ([`Sequence::sampled`]):
//! `true` when the model drew it, `false` when the engine forced it. A
//! sampled token that leads a forced run (the token that hit the budget) is
//! the model's own draw and stays `true`. Trainers use only `true` tokens.

use serde::Serialize;

use super::sampler::{Sampled, Sampler};
use super::stop::{StopMatcher, StopStrings};
use super::think::{ThinkAction, ThinkControl};
use super::EngineError;
use crate::model::KvCache;
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

/// Why a rollout ended (OpenAI `finish_reason` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// EOS, a stop token id or a stop string.
    Stop,
    /// `max_tokens` or the model's context ran out.
    Length,
    /// The request was cancelled or selection stopped it early.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A sampled token with its logprob and alternatives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top_logprobs: Vec<(u32, f32)>,
}

/// What ends a rollout besides its budget: built once per group and shared
/// by its rollouts.
#[derive(Debug, Clone)]
pub struct Stops {
    /// The model's end-of-sequence token ids (the request's
    /// `stop_token_ids` live in the sampling parameters).
    pub eos_ids: std::sync::Arc<[u32]>,
    /// The request's stop strings, compiled.
    pub strings: std::sync::Arc<StopStrings>,
}

/// Where an output token came from.
enum Origin {
    /// Drawn by the sampler, with its raw log-prob when requested.
    Sampled(Option<f32>),
    /// Forced by think control.
    Forced,
}

pub struct Sequence {
    /// Rollout index within its group (also the sampler's RNG stream).
    pub index: usize,
    pub cache: KvCache,
    pub sampler: Sampler,
    pub output_ids: Vec<u32>,
    pub logprobs: Vec<TokenLogprob>,
    /// Per output token: sampled by the model (`true`) or forced by the engine.
    pub sampled: Vec<bool>,
    /// Per output token, only with [`super::SamplingParams::raw_logprobs`]:
    /// the sampling-distribution log-prob ([`Sampled::raw_logprob`]); `None`
    /// for forced tokens. Empty otherwise.
    pub raw_logprobs: Vec<Option<f32>>,
    /// Emitted text: stop strings removed, held-back partial matches excluded.
    pub text: String,
    pub finish: Option<FinishReason>,
    /// Tokens appended but not yet run through the model: the last sampled
    /// one, or the tokens forced in its place (empty once finished).
    pub pending: Vec<u32>,
    /// Think-mode control (budgets, minimum); `None` without think mode.
    pub think: Option<ThinkControl>,
    max_tokens: usize,
    stop_ids: std::sync::Arc<[u32]>,
    detok: IncrementalDecoder,
    stop: StopMatcher,
}

impl Sequence {
    pub fn new(
        index: usize,
        cache: KvCache,
        sampler: Sampler,
        max_tokens: usize,
        stops: &Stops,
        prompt_ids: &[u32],
    ) -> Self {
        Self {
            index,
            cache,
            sampler,
            output_ids: Vec::new(),
            logprobs: Vec::new(),
            sampled: Vec::new(),
            raw_logprobs: Vec::new(),
            text: String::new(),
            finish: None,
            pending: Vec::new(),
            think: None,
            max_tokens,
            stop_ids: stops.eos_ids.clone(),
            detok: IncrementalDecoder::with_context(prompt_ids, true),
            stop: StopMatcher::new(stops.strings.clone()),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// Take a sampled token: think control decides whether it is appended as
    /// is or replaced by forced tokens. Returns the newly emitted text of
    /// each appended token (one entry per token; fewer than forced when the
    /// rollout finished part-way).
    pub fn accept(
        &mut self,
        sampled: Sampled,
        tok: &Tokenizer,
    ) -> Result<Vec<String>, EngineError> {
        self.pending.clear();
        let action = match &mut self.think {
            Some(c) => c.on_sampled(sampled.token),
            None => ThinkAction::Keep,
        };
        match action {
            ThinkAction::Force(tokens) if !tokens.is_empty() => {
                let mut texts = Vec::with_capacity(tokens.len());
                let mut rest = &tokens[..];
                // The sampled token keeps its logprob (and stays sampled)
                // when it leads the forced run.
                if tokens[0] == sampled.token {
                    texts.push(self.push_sampled(sampled, tok)?);
                    rest = &tokens[1..];
                }
                self.force_tokens(rest.iter().copied(), tok, texts)
            }
            // An empty forced run cannot happen with non-empty think texts;
            // keeping the token is the only way to make progress.
            ThinkAction::Force(_) | ThinkAction::Keep => Ok(vec![self.push_sampled(sampled, tok)?]),
        }
    }

    fn push_sampled(&mut self, s: Sampled, tok: &Tokenizer) -> Result<String, EngineError> {
        let lp = TokenLogprob {
            token: s.token,
            logprob: s.logprob,
            top_logprobs: s.top_logprobs,
        };
        self.push(lp, Origin::Sampled(s.raw_logprob), tok)
    }

    /// Before the first sample: a zero thinking budget forces the budget
    /// text at once. Returns the emitted texts, or `None` (sample as usual).
    pub fn initial_force(&mut self, tok: &Tokenizer) -> Result<Option<Vec<String>>, EngineError> {
        let Some(tokens) = self.think.as_mut().and_then(ThinkControl::initial_force) else {
            return Ok(None);
        };
        self.pending.clear();
        self.force_tokens(tokens.into_iter(), tok, Vec::new())
            .map(Some)
    }

    fn force_tokens(
        &mut self,
        tokens: impl Iterator<Item = u32>,
        tok: &Tokenizer,
        mut texts: Vec<String>,
    ) -> Result<Vec<String>, EngineError> {
        for t in tokens {
            if self.is_finished() {
                break;
            }
            let lp = TokenLogprob {
                token: t,
                logprob: 0.0,
                top_logprobs: Vec::new(),
            };
            texts.push(self.push(lp, Origin::Forced, tok)?);
        }
        Ok(texts)
    }

    /// Append one token: record it, detokenize, check stop conditions.
    fn push(
        &mut self,
        lp: TokenLogprob,
        origin: Origin,
        tok: &Tokenizer,
    ) -> Result<String, EngineError> {
        let token = lp.token;
        self.sampler.observe(token);
        self.output_ids.push(token);
        self.logprobs.push(lp);
        let raw = match origin {
            Origin::Sampled(raw) => {
                self.sampled.push(true);
                raw
            }
            Origin::Forced => {
                self.sampled.push(false);
                None
            }
        };
        if self.sampler.params().raw_logprobs {
            self.raw_logprobs.push(raw);
        }
        let is_stop_token = self.sampler.is_stop_token(token, &self.stop_ids);
        let mut emitted = String::new();
        if !is_stop_token {
            let delta = self.detok.push(tok, token)?;
            let out = self.stop.push(&delta);
            emitted.push_str(&out.emit);
            if out.stopped {
                self.finish = Some(FinishReason::Stop);
            }
        } else {
            self.finish = Some(FinishReason::Stop);
        }
        if self.finish.is_none() && self.output_ids.len() >= self.max_tokens {
            self.finish = Some(FinishReason::Length);
        }
        match self.finish {
            Some(FinishReason::Stop) if !is_stop_token => self.pending.clear(),
            Some(_) => {
                // Ended for a reason other than a stop string: release held-back text.
                self.pending.clear();
                let tail = self.detok.finish(tok)?;
                let out = self.stop.push(&tail);
                emitted.push_str(&out.emit);
                if !out.stopped {
                    emitted.push_str(&self.stop.flush());
                }
            }
            None => self.pending.push(token),
        }
        self.text.push_str(&emitted);
        Ok(emitted)
    }

    /// Stop this rollout now (client gone, early stop); frees its KV cache.
    pub fn cancel(&mut self) {
        if self.finish.is_none() {
            self.finish = Some(FinishReason::Cancelled);
        }
        self.pending.clear();
        self.cache = KvCache::new(0);
    }

    /// Mean logprob of the generated tokens (confidence for selection).
    pub fn mean_logprob(&self) -> Option<f64> {
        if self.logprobs.is_empty() {
            return None;
        }
        Some(
            self.logprobs.iter().map(|l| l.logprob as f64).sum::<f64>()
                / self.logprobs.len() as f64,
        )
    }
}
