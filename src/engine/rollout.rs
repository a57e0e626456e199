//! Rollout groups: N samples of one prompt. The prompt is prefilled once, its
//! KV cache fanned out to N sequences, and all unfinished sequences decode as
//! one ragged batch; a finished sequence leaves the batch at once.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use super::batch::{BatchConfig, Batcher};
use super::group::GroupSink;
use super::metrics::EngineMetrics;
use super::output::{GroupOutput, TokenEvent};
use super::sampler::SamplingParams;
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

/// Run a rollout group to completion on the calling thread. `on_token` sees
/// every token; returning `false` cancels the group (the client left): the
/// unfinished rollouts end with [`super::FinishReason::Cancelled`] and free their KV.
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
    Err(EngineError::Internal(
        "the group left the engine without a result".into(),
    ))
}

/// Limits of a [`generate_groups`] call: how much runs at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutConfig {
    /// KV tokens all admitted groups reserve together; a group reserves
    /// `prompt + n · max_new` and is admitted, oldest first, when that fits
    /// (as others finish). One group larger than this is an error.
    pub kv_budget_tokens: usize,
    /// Most sequences decoded in one forward (the batch size cap).
    pub max_batch_seqs: usize,
    /// Most prompt tokens prefilled in one forward (over all groups).
    pub prefill_chunk: usize,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        let s = super::scheduler::SchedulerConfig::default();
        Self {
            kv_budget_tokens: s.kv_budget_tokens,
            max_batch_seqs: s.max_decode_seqs,
            prefill_chunk: s.prefill_chunk,
        }
    }
}

/// Where a [`generate_groups`] call stands; passed to its callback after
/// every forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutProgress {
    pub groups_done: usize,
    pub groups_total: usize,
    /// Tokens appended so far over every rollout (sampled and forced).
    pub tokens: usize,
    /// Engine steps run so far (one ragged forward each, when there is work).
    pub steps: usize,
}

/// A [`generate_groups`] failure, naming the request it concerns.
#[derive(Debug, thiserror::Error)]
#[error("rollout group {group}: {source}")]
pub struct RolloutError {
    /// Index into the `requests` slice.
    pub group: usize,
    #[source]
    pub source: EngineError,
}

/// Run many rollout groups at once, for training and evaluation: each
/// group's prompt is prefilled once and its `n` rollouts decode together
/// with every other admitted group's as one ragged batch, through the same
/// [`Batcher`] the server uses. At most `cfg.kv_budget_tokens` of KV are
/// reserved and `cfg.max_batch_seqs` sequences decoded per forward; groups
/// wait (in order) until others finish. Outputs come back in request order.
///
/// Works on a model whose weights change between calls (a
/// [`crate::model::load_trainable`] model updated in place by an
/// optimizer): the forward runs on [`super::weights_view::inference_view`]
/// (detached handles on the same storage, so no autograd graph is built and
/// every call reads the current weights), there is no prefix cache, and
/// nothing weights-derived outlives the call. Nothing is packed or
/// quantized here.
///
/// Deterministic given seeds: a request's rollout `i` draws from stream `i`
/// of its `params.seed` (give each group its own seed; `None` draws one from
/// the OS), and the schedule depends only on the requests and `cfg`. Set
/// `params.raw_logprobs` to get [`super::RolloutOutput::raw_logprobs`]; every
/// rollout reports [`super::RolloutOutput::sampled`].
///
/// `on_progress` runs after every forward; returning `false` stops the call:
/// unfinished rollouts end [`super::FinishReason::Cancelled`] (groups never started
/// have no rollouts). For speed, call it inside [`super::in_engine_pool`].
/// Errors: a request that can never run (empty prompt, over the context or
/// the KV budget, `n = 0`) fails the call before anything runs; a failed
/// forward fails the call.
pub fn generate_groups(
    model: &Transformer,
    tok: &Tokenizer,
    requests: &[GroupRequest],
    cfg: &RolloutConfig,
    on_progress: &mut dyn FnMut(&RolloutProgress) -> bool,
) -> Result<Vec<GroupOutput>, RolloutError> {
    let view = super::weights_view::inference_view(model);
    let batch = BatchConfig {
        scheduler: super::scheduler::SchedulerConfig {
            kv_budget_tokens: cfg.kv_budget_tokens,
            prefill_chunk: cfg.prefill_chunk.max(1),
            max_decode_seqs: cfg.max_batch_seqs.max(1),
        },
        prefix_cache_bytes: 0,
    };
    let metrics = Arc::new(EngineMetrics::default());
    let mut batcher = Batcher::new(&view, tok, batch, metrics);
    let shared = Rc::new(Shared::default());
    let mut ids = Vec::with_capacity(requests.len());
    for (group, req) in requests.iter().enumerate() {
        let sink = CountingSink(shared.clone());
        let id = batcher
            .submit_think(
                req.prompt_ids.clone(),
                req.n,
                req.params.clone(),
                req.eos_token_ids.clone().into(),
                req.think.clone(),
                Box::new(sink),
            )
            .map_err(|source| RolloutError { group, source })?;
        ids.push(id);
    }
    let mut outs: Vec<Option<GroupOutput>> = (0..requests.len()).map(|_| None).collect();
    let mut progress = RolloutProgress {
        groups_done: 0,
        groups_total: requests.len(),
        tokens: 0,
        steps: 0,
    };
    while !batcher.is_idle() {
        for done in batcher.step() {
            let Some(group) = ids.iter().position(|&id| id == done.id) else {
                continue;
            };
            let out = done
                .result
                .map_err(|source| RolloutError { group, source })?;
            outs[group] = Some(out);
            progress.groups_done += 1;
        }
        progress.steps += 1;
        progress.tokens = shared.tokens.get();
        if !shared.cancelled.get() && !on_progress(&progress) {
            shared.cancelled.set(true);
        }
    }
    outs.into_iter()
        .enumerate()
        .map(|(group, o)| {
            o.ok_or_else(|| RolloutError {
                group,
                source: EngineError::Internal("the group left the engine without a result".into()),
            })
        })
        .collect()
}

/// State the sinks of one [`generate_groups`] call share.
#[derive(Default)]
struct Shared {
    tokens: Cell<usize>,
    cancelled: Cell<bool>,
}

/// Counts tokens; closed (cancelling every group) once the caller stops.
struct CountingSink(Rc<Shared>);

impl GroupSink for CountingSink {
    fn started(&mut self, _prompt_tokens: usize, _cached_tokens: usize) -> bool {
        !self.0.cancelled.get()
    }

    fn token(&mut self, _ev: TokenEvent<'_>) -> bool {
        self.0.tokens.set(self.0.tokens.get() + 1);
        !self.0.cancelled.get()
    }

    fn is_closed(&self) -> bool {
        self.0.cancelled.get()
    }
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
