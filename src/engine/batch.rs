//! The one decode loop: runs the [`Scheduler`]'s plans as ragged forwards
//! over every admitted group (prefill chunks and decodes mixed), samples,
//! streams tokens and retires finished, cancelled and failed groups. Used by
//! the engine thread and, for a single group, by [`super::generate_group`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::group::{ActiveGroup, GroupSink};
use super::metrics::EngineMetrics;
use super::output::GroupOutput;
use super::prefix_cache::PrefixCache;
use super::sampler::SamplingParams;
use super::scheduler::{GroupId, GroupShape, ScheduleError, Scheduler, SchedulerConfig, Work};
use super::think::ThinkSpec;

mod step;
use super::EngineError;
use crate::model::Transformer;
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
    /// Logits of one forward, reused across steps.
    logits: Vec<f32>,
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
        }
    }

    /// [`Self::submit_think`] without think mode (tests only: the engine's
    /// drivers all go through `submit_think`).
    #[cfg(test)]
    pub fn submit(
        &mut self,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        stop_ids: Arc<[u32]>,
        sink: Box<dyn GroupSink + 'a>,
    ) -> Result<GroupId, EngineError> {
        self.submit_think(prompt, n, params, stop_ids, None, sink)
    }

    /// Queue a group; errors (bad prompt, over the KV budget) are immediate.
    /// With think mode, each rollout gets a
    /// [`super::think::ThinkControl`] capped at the group's `max_new`.
    /// Forced tokens count against `max_new`, so the KV reservation of
    /// `n · (prompt + max_new)` still holds.
    pub fn submit_think(
        &mut self,
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        stop_ids: Arc<[u32]>,
        think: Option<ThinkSpec>,
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
        let mut g = ActiveGroup::new(id, prompt, n, params, max_new, stop_ids, sink);
        g.think = think;
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
                    self.fail(group, EngineError::Forward(msg.clone()));
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
                Some(hit) => (hit.cache, hit.tokens),
                None => (self.model.new_cache(), 0),
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

    /// Cancel groups whose consumer left (running or still queued), and
    /// single rollouts their consumer flagged (their KV reservation is
    /// returned to the scheduler at once).
    fn reap_closed(&mut self) {
        for g in &mut self.groups {
            if g.sink.is_closed() {
                g.cancelled = true;
            } else if g.cache.is_none() && g.cancel_flagged() > 0 {
                self.sched.set_live(g.id, g.live());
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
        m.prefix_cache_entries.store(self.prefix.len(), r);
    }
}
