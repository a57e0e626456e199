//! Continuous-batching policy, kept free of models and channels so it can be
//! unit-tested with plain numbers. The engine thread owns one [`Scheduler`];
//! between forwards it enqueues new groups, admits what fits the KV budget
//! and asks [`Scheduler::plan_step`] what the next ragged forward runs.
//!
//! # Policy
//!
//! * **Admission is strictly oldest-first.** A group is admitted when its
//!   reservation fits the KV budget. The head of the queue blocks the ones
//!   behind it, so a large request cannot be starved by a stream of small ones.
//!   A group that can never fit is rejected at [`Scheduler::enqueue`].
//! * **The reservation is conservative:** `prompt + n · max_new` tokens: the
//!   rollouts share one copy of the prompt KV and each may run to `max_new`.
//!   No preemption is needed: an admitted group always has the memory to
//!   finish. A finished rollout returns its share at once, so waiting groups
//!   get in as soon as possible.
//! * **Decodes run every step,** capped at `max_decode_seqs` sequences. When
//!   the cap binds, slots are dealt one per group in round-robin passes (the
//!   starting group rotates each step), so a group with 64 rollouts gets no
//!   more slots per step than a group with 1 until the small group is served.
//! * **Prefill is chunked:** each step carries at most `prefill_chunk` prompt
//!   tokens, oldest group first, next to the decodes. A long prompt therefore
//!   costs running requests one chunk of latency per step, not a stall.

use std::collections::VecDeque;

/// Engine-unique id of a rollout group (one request).
pub type GroupId = u64;

/// Knobs of the batching policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// KV tokens all admitted groups may reserve together.
    pub kv_budget_tokens: usize,
    /// Most prompt tokens prefilled in one step (over all groups).
    pub prefill_chunk: usize,
    /// Most sequences decoded in one step (over all groups).
    pub max_decode_seqs: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            kv_budget_tokens: 1 << 20,
            prefill_chunk: 512,
            max_decode_seqs: 256,
        }
    }
}

/// What the scheduler needs to know about a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupShape {
    pub prompt_tokens: usize,
    pub n: usize,
    /// Tokens each rollout may generate (already clamped to the context).
    pub max_new_tokens: usize,
}

impl GroupShape {
    /// KV tokens the group holds with `live` unfinished rollouts: the shared
    /// prompt once, and each rollout's own tokens up to `max_new`.
    pub fn reservation_for(&self, live: usize) -> usize {
        if live == 0 {
            return 0;
        }
        self.prompt_tokens
            .saturating_add(live.saturating_mul(self.max_new_tokens))
    }

    /// KV tokens the whole group reserves at admission.
    pub fn reservation(&self) -> usize {
        self.reservation_for(self.n)
    }
}

/// One piece of work in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Run prompt tokens `start..start + len`; when `last`, the prompt is
    /// complete and the group forks into its rollouts this step.
    Prefill {
        group: GroupId,
        start: usize,
        len: usize,
        last: bool,
    },
    /// Decode one token for `count` of the group's live rollouts.
    Decode { group: GroupId, count: usize },
}

/// The work of one forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepPlan {
    pub work: Vec<Work>,
}

impl StepPlan {
    pub fn is_empty(&self) -> bool {
        self.work.is_empty()
    }

    /// Tokens the forward will run.
    pub fn tokens(&self) -> usize {
        self.work
            .iter()
            .map(|w| match w {
                Work::Prefill { len, .. } => *len,
                Work::Decode { count, .. } => *count,
            })
            .sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("request needs {needed} KV tokens but the engine budget is {budget}")]
    TooLarge { needed: usize, budget: usize },
}

#[derive(Debug)]
struct Running {
    id: GroupId,
    shape: GroupShape,
    /// Prompt tokens whose KV exists (cached or prefilled).
    prefilled: usize,
    /// Unfinished rollouts once decoding (0 while prefilling).
    live: usize,
    reserved: usize,
}

impl Running {
    fn decoding(&self) -> bool {
        self.prefilled >= self.shape.prompt_tokens
    }
}

/// Scheduling state: the waiting queue, admitted groups and the budget.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    waiting: VecDeque<(GroupId, GroupShape)>,
    /// Admitted groups, oldest first.
    running: Vec<Running>,
    reserved: usize,
    /// Rotates the group that gets the first decode slot.
    turn: usize,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Self {
        Self {
            cfg: SchedulerConfig {
                prefill_chunk: cfg.prefill_chunk.max(1),
                max_decode_seqs: cfg.max_decode_seqs.max(1),
                ..cfg
            },
            waiting: VecDeque::new(),
            running: Vec::new(),
            reserved: 0,
            turn: 0,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Queue a group; rejects one whose reservation exceeds the whole budget.
    pub fn enqueue(&mut self, id: GroupId, shape: GroupShape) -> Result<(), ScheduleError> {
        let needed = shape.reservation();
        if needed > self.cfg.kv_budget_tokens {
            return Err(ScheduleError::TooLarge {
                needed,
                budget: self.cfg.kv_budget_tokens,
            });
        }
        self.waiting.push_back((id, shape));
        Ok(())
    }

    /// Admit waiting groups, oldest first, while their reservations fit.
    pub fn admit(&mut self) -> Vec<GroupId> {
        let mut admitted = Vec::new();
        while let Some(&(id, shape)) = self.waiting.front() {
            let need = shape.reservation();
            if self.reserved + need > self.cfg.kv_budget_tokens {
                break;
            }
            self.waiting.pop_front();
            self.reserved += need;
            self.running.push(Running {
                id,
                shape,
                prefilled: 0,
                live: 0,
                reserved: need,
            });
            admitted.push(id);
        }
        admitted
    }

    /// A prefix-cache hit: the first `tokens` prompt tokens need no prefill.
    /// At least one prompt token is always left to run, for its logits.
    pub fn skip_prefill(&mut self, id: GroupId, tokens: usize) {
        if let Some(g) = self.running.iter_mut().find(|g| g.id == id) {
            g.prefilled = tokens.min(g.shape.prompt_tokens.saturating_sub(1));
        }
    }

    /// The next forward: decodes first (fairly capped), then one prefill
    /// chunk. Assumes the plan runs: prefill progress is advanced here.
    pub fn plan_step(&mut self) -> StepPlan {
        let mut work = Vec::new();
        self.plan_decodes(&mut work);
        let mut budget = self.cfg.prefill_chunk;
        for g in self.running.iter_mut().filter(|g| !g.decoding()) {
            if budget == 0 {
                break;
            }
            let len = (g.shape.prompt_tokens - g.prefilled).min(budget);
            let start = g.prefilled;
            g.prefilled += len;
            budget -= len;
            let last = g.decoding();
            if last {
                g.live = g.shape.n;
            }
            work.push(Work::Prefill {
                group: g.id,
                start,
                len,
                last,
            });
        }
        self.turn = self.turn.wrapping_add(1);
        StepPlan { work }
    }

    /// Round-robin passes of one slot per group until the cap or demand is met.
    fn plan_decodes(&self, work: &mut Vec<Work>) {
        let decoding: Vec<&Running> = self
            .running
            .iter()
            .filter(|g| g.decoding() && g.live > 0)
            .collect();
        if decoding.is_empty() {
            return;
        }
        let mut slots = vec![0usize; decoding.len()];
        let demand: usize = decoding.iter().map(|g| g.live).sum();
        let mut left = demand.min(self.cfg.max_decode_seqs);
        let first = self.turn % decoding.len();
        while left > 0 {
            for k in 0..decoding.len() {
                let i = (first + k) % decoding.len();
                if left > 0 && slots[i] < decoding[i].live {
                    slots[i] += 1;
                    left -= 1;
                }
            }
        }
        for (g, count) in decoding.iter().zip(slots) {
            if count > 0 {
                work.push(Work::Decode { group: g.id, count });
            }
        }
    }

    /// Report a group's unfinished rollouts; finished ones return their KV
    /// reservation at once.
    pub fn set_live(&mut self, id: GroupId, live: usize) {
        if let Some(g) = self.running.iter_mut().find(|g| g.id == id) {
            g.live = live.min(g.shape.n);
            let keep = g.shape.reservation_for(g.live);
            if keep < g.reserved {
                self.reserved -= g.reserved - keep;
                g.reserved = keep;
            }
        }
    }

    /// Forget a group (finished, cancelled or failed), waiting or running.
    pub fn remove(&mut self, id: GroupId) -> bool {
        if let Some(i) = self.running.iter().position(|g| g.id == id) {
            let g = self.running.remove(i);
            self.reserved -= g.reserved;
            return true;
        }
        let before = self.waiting.len();
        self.waiting.retain(|(w, _)| *w != id);
        self.waiting.len() != before
    }

    /// KV tokens reserved by admitted groups.
    pub fn reserved_tokens(&self) -> usize {
        self.reserved
    }

    /// Unfinished rollouts of decoding groups.
    pub fn live_sequences(&self) -> usize {
        self.running.iter().map(|g| g.live).sum()
    }

    /// Nothing waiting or running (tests only: the batcher tracks its own).
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
