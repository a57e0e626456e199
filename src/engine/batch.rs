//! The one decode loop: runs the [`Scheduler`]'s plans as ragged forwards
//! over every admitted group (prefill chunks and decodes mixed), samples,
//! streams tokens and retires finished, cancelled and failed groups. Used by
//! the engine thread and, for a single group, by [`super::generate_group`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;

use super::group::{ActiveGroup, GroupSink};
use super::prefix_cache::PrefixCache;
use super::rollout::GroupOutput;
use super::sampler::{Sampled, SamplingError, SamplingParams};
use super::scheduler::{GroupId, GroupShape, ScheduleError, Scheduler, SchedulerConfig, Work};
use super::worker::EngineMetrics;
use super::EngineError;
use crate::model::{Mode, Positions, SeqInput, Transformer};
use crate::tokenizer::Tokenizer;

/// Settings of a [`Batcher`].
#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub scheduler: SchedulerConfig,
    /// Byte budget of the prefix cache; 0 turns it off.
    pub prefix_cache_bytes: usize,
}

impl BatchConfig {
    /// No limits and no prefix cache: one group run start to finish, its
    /// prompt prefilled in one forward (the `generate` CLI and benchmarks).
    pub fn single_group() -> Self {
        Self {
            scheduler: SchedulerConfig {
                kv_budget_tokens: usize::MAX,
                prefill_chunk: usize::MAX,
                max_decode_seqs: usize::MAX,
            },
            prefix_cache_bytes: 0,
        }
    }
}

/// A group that left the engine.
pub struct Completion {
    pub id: GroupId,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Cancelled groups are `Ok`, their open rollouts ending `Cancelled`.
    pub result: Result<GroupOutput, EngineError>,
}

/// Scheduler, admitted groups and prefix cache of one engine thread.
pub struct Batcher<'a> {
    model: &'a Transformer,
    tok: &'a Tokenizer,
    sched: Scheduler,
    /// Queued groups, oldest first (the same order as the scheduler's queue).
    waiting: Vec<ActiveGroup<'a>>,
    /// Admitted groups, oldest first.
    groups: Vec<ActiveGroup<'a>>,
    prefix: PrefixCache,
    metrics: Arc<EngineMetrics>,
    next_id: GroupId,
    /// Groups that failed or left outside a step, reported by the next one.
    done: Vec<Completion>,
    /// Reused across steps: logits of one forward, and one row of scratch.
    logits: Vec<f32>,
    scratch: Vec<f32>,
}

impl<'a> Batcher<'a> {
    pub fn new(
        model: &'a Transformer,
        tok: &'a Tokenizer,
        cfg: BatchConfig,
        metrics: Arc<EngineMetrics>,
    ) -> Self {
        metrics
            .kv_budget_tokens
            .store(cfg.scheduler.kv_budget_tokens, Ordering::Relaxed);
        Self {
            model,
            tok,
            sched: Scheduler::new(cfg.scheduler),
            waiting: Vec::new(),
            groups: Vec::new(),
            prefix: PrefixCache::new(cfg.prefix_cache_bytes),
            metrics,
            next_id: 0,
            done: Vec::new(),
            logits: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Queue a group. Errors (bad prompt, over the KV budget) are immediate.
    pub fn submit(
        &mut self,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        stop_ids: Arc<[u32]>,
        sink: Box<dyn GroupSink + 'a>,
    ) -> Result<GroupId, EngineError> {
        let prompt_len = prompt.len();
        if prompt_len == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if n == 0 {
            return Err(EngineError::Invalid("n must be at least 1".into()));
        }
        let context = self.model.max_positions();
        if prompt_len >= context {
            return Err(EngineError::ContextLength {
                prompt: prompt_len,
                max_tokens: params.max_tokens.unwrap_or(1),
                context,
            });
        }
        let max_new = params
            .max_tokens
            .unwrap_or(usize::MAX)
            .min(context - prompt_len);
        let shape = GroupShape {
            prompt_tokens: prompt_len,
            n,
            max_new_tokens: max_new,
        };
        let id = self.next_id;
        self.sched.enqueue(id, shape).map_err(|e| {
            self.metrics
                .requests_rejected
                .fetch_add(1, Ordering::Relaxed);
            match e {
                ScheduleError::TooLarge { needed, budget } => {
                    EngineError::KvBudget { needed, budget }
                }
            }
        })?;
        self.next_id += 1;
        let g = ActiveGroup::new(id, prompt, n, params, max_new, stop_ids, sink);
        self.waiting.push(g);
        self.admit();
        self.publish_gauges();
        Ok(id)
    }

    /// Whether new work may be taken: nothing is waiting for KV budget.
    /// (Work that does not fit stays in the caller's bounded queue.)
    pub fn accepting(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn is_idle(&self) -> bool {
        self.groups.is_empty() && self.waiting.is_empty() && self.done.is_empty()
    }

    /// One forward of the batch; returns the groups that left the engine.
    pub fn step(&mut self) -> Vec<Completion> {
        self.reap_closed();
        self.admit();
        let plan = self.sched.plan_step();
        if !plan.is_empty() {
            if let Err(e) = self.run(&plan.work) {
                // The forward failed as a whole: fail every group in it, keep
                // the engine (and every other group) alive.
                let msg = e.to_string();
                for w in &plan.work {
                    let (Work::Prefill { group, .. } | Work::Decode { group, .. }) = *w;
                    self.fail(
                        group,
                        EngineError::Invalid(format!("forward failed: {msg}")),
                    );
                }
            }
            self.metrics
                .decode_steps_total
                .fetch_add(1, Ordering::Relaxed);
        }
        self.retire_finished();
        self.publish_gauges();
        std::mem::take(&mut self.done)
    }

    /// Admit what fits, oldest first, reusing cached prompt prefixes.
    fn admit(&mut self) {
        for id in self.sched.admit() {
            let Some(pos) = self.waiting.iter().position(|g| g.id == id) else {
                continue;
            };
            let mut g = self.waiting.remove(pos);
            let max_reuse = g.prompt.len() - 1;
            let (cache, cached) = match self.prefix.lookup(&g.prompt, max_reuse) {
                Ok(Some(hit)) => (hit.cache, hit.tokens),
                Ok(None) => (self.model.new_cache(), 0),
                Err(e) => {
                    self.groups.push(g);
                    self.fail(id, e.into());
                    continue;
                }
            };
            self.sched.skip_prefill(id, cached);
            let m = &self.metrics;
            m.requests_total.fetch_add(1, Ordering::Relaxed);
            m.rollouts_total.fetch_add(g.n as u64, Ordering::Relaxed);
            m.prefix_cache_hit_tokens
                .fetch_add(cached as u64, Ordering::Relaxed);
            m.prefix_cache_miss_tokens
                .fetch_add((g.prompt.len() - cached) as u64, Ordering::Relaxed);
            g.admit(cache, cached);
            self.groups.push(g);
        }
    }

    /// Cancel groups whose consumer left (running or still queued).
    fn reap_closed(&mut self) {
        for g in &mut self.groups {
            if g.sink.is_closed() {
                g.cancelled = true;
            }
        }
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|g| g.sink.is_closed());
        self.waiting = keep;
        for mut g in gone {
            self.sched.remove(g.id);
            g.cancel();
            self.metrics
                .requests_cancelled
                .fetch_add(1, Ordering::Relaxed);
            self.done.push(Completion {
                id: g.id,
                cached_tokens: 0,
                result: Ok(g.into_output()),
            });
        }
    }

    fn fail(&mut self, id: GroupId, err: EngineError) {
        if let Some(pos) = self.groups.iter().position(|g| g.id == id) {
            let mut g = self.groups.remove(pos);
            g.cancel();
            self.sched.remove(id);
            self.done.push(Completion {
                id,
                cached_tokens: g.cached_tokens,
                result: Err(err),
            });
        }
    }

    fn retire_finished(&mut self) {
        let mut i = 0;
        while i < self.groups.len() {
            if !self.groups[i].is_done() {
                i += 1;
                continue;
            }
            let mut g = self.groups.remove(i);
            self.sched.remove(g.id);
            let m = &self.metrics;
            if g.cancelled {
                g.cancel();
                m.requests_cancelled.fetch_add(1, Ordering::Relaxed);
            }
            let id = g.id;
            let out = g.into_output();
            m.prompt_tokens_total
                .fetch_add(out.prompt_tokens as u64, Ordering::Relaxed);
            m.completion_tokens_total
                .fetch_add(out.completion_tokens as u64, Ordering::Relaxed);
            self.done.push(Completion {
                id,
                cached_tokens: out.cached_tokens,
                result: Ok(out),
            });
        }
    }

    /// Run one planned forward, then sample and stream its tokens.
    fn run(&mut self, work: &[Work]) -> Result<(), EngineError> {
        // Per admitted group: its prefill span and how many rollouts decode.
        let mut prefill: Vec<Option<(usize, usize, bool)>> = vec![None; self.groups.len()];
        let mut masks: Vec<Vec<bool>> = vec![Vec::new(); self.groups.len()];
        for w in work {
            let (Work::Prefill { group, .. } | Work::Decode { group, .. }) = *w;
            let Some(gi) = self.groups.iter().position(|g| g.id == group) else {
                continue;
            };
            match *w {
                Work::Prefill {
                    start, len, last, ..
                } => prefill[gi] = Some((start, len, last)),
                Work::Decode { count, .. } => self.groups[gi].pick_decode(count, &mut masks[gi]),
            }
        }
        let mut pending: Vec<[u32; 1]> = Vec::new();
        let mut spans = Vec::with_capacity(self.groups.len());
        for (g, mask) in self.groups.iter().zip(&masks) {
            let start = pending.len();
            for (s, _) in g.seqs.iter().zip(mask).filter(|(_, m)| **m) {
                pending.push([s.pending.unwrap_or_default()]);
            }
            spans.push(start..pending.len());
        }
        let logits = {
            let mut inputs: Vec<SeqInput> = Vec::with_capacity(pending.len() + 4);
            for (gi, g) in self.groups.iter_mut().enumerate() {
                let span = prefill[gi].map(|(s, l, _)| (s, l));
                g.push_inputs(span, &masks[gi], &pending[spans[gi].clone()], &mut inputs);
            }
            if inputs.is_empty() {
                return Ok(());
            }
            self.model
                .forward(&mut inputs, Positions::Last, Mode::Inference)?
        };
        let vocab = logits.dim(1)?;
        copy_logits(&logits, &mut self.logits)?;

        // Pair each row with its consumer, in input order.
        let mut rows = self.logits.chunks_mut(vocab);
        let mut forks = Vec::new();
        let mut jobs = Vec::with_capacity(pending.len());
        for (gi, g) in self.groups.iter_mut().enumerate() {
            if let Some((_, _, last)) = prefill[gi] {
                let row = rows.next();
                if let (true, Some(row)) = (last, row) {
                    forks.push((gi, row));
                }
            }
            let marked = g.seqs.iter_mut().enumerate().zip(&masks[gi]);
            for ((si, seq), _) in marked.filter(|(_, m)| **m) {
                if let Some(row) = rows.next() {
                    jobs.push((gi, si, &mut seq.sampler, row));
                }
            }
        }
        let sampled: Vec<(usize, usize, Result<Sampled, SamplingError>)> = if jobs.len() >= 2 {
            jobs.into_par_iter()
                .map(|(gi, si, s, row)| (gi, si, s.sample(row)))
                .collect()
        } else {
            jobs.into_iter()
                .map(|(gi, si, s, row)| (gi, si, s.sample(row)))
                .collect()
        };
        let mut failed: Vec<(GroupId, EngineError)> = Vec::new();
        for (gi, si, res) in sampled {
            let g = &mut self.groups[gi];
            if g.cancelled || failed.iter().any(|(id, _)| *id == g.id) {
                continue;
            }
            match res
                .map_err(EngineError::from)
                .and_then(|s| g.accept(si, s, self.tok))
            {
                Ok(true) => {}
                Ok(false) => g.cancelled = true,
                Err(e) => failed.push((g.id, e)),
            }
        }
        for (gi, row) in forks {
            let g = &mut self.groups[gi];
            if let Err(e) = g.fork_rollouts(self.tok, row, &mut self.scratch, &mut self.prefix) {
                failed.push((g.id, e));
            }
        }
        for g in &self.groups {
            if g.cache.is_none() {
                self.sched.set_live(g.id, g.live());
            }
        }
        for (id, e) in failed {
            self.fail(id, e);
        }
        Ok(())
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        let r = Ordering::Relaxed;
        m.running.store(self.groups.len(), r);
        m.waiting.store(self.waiting.len(), r);
        m.running_sequences.store(self.sched.live_sequences(), r);
        m.kv_reserved_tokens.store(self.sched.reserved_tokens(), r);
        let bytes: usize = self.groups.iter().map(ActiveGroup::kv_bytes).sum();
        m.kv_reserved_bytes.store(bytes, r);
        m.prefix_cache_bytes.store(self.prefix.bytes(), r);
    }
}

/// Copy a forward's (rows, vocab) f32 logits into a reused buffer: one
/// memcpy, no per-step allocation of rows × vocab floats.
fn copy_logits(t: &candle_core::Tensor, buf: &mut Vec<f32>) -> candle_core::Result<()> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    buf.clear();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let all = cpu.as_slice::<f32>()?;
            let start = layout.start_offset();
            buf.extend_from_slice(&all[start..start + t.elem_count()]);
        }
        _ => {
            drop(storage);
            buf.extend(t.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    Ok(())
}
