//! Reward-model score jobs on the engine thread.
//!
//! A score job ([`ScoreRequest`]) arrives through the engine's one bounded
//! queue, next to generation requests. The engine thread keeps the accepted
//! jobs here, oldest first, and between two policy steps runs one
//! [`ScoreQueue::step`]: a single ragged forward of the reward model (its
//! score head read at each sequence's last token, `Positions::Last`) over
//! the next sequences in arrival order, several (conversation, completion)
//! pairs per forward.
//!
//! # Token budget
//!
//! A step runs at most `chunk` tokens (`EngineConfig::score_chunk`, 128 by
//! default, the same as the prefill chunk and for the same reason): while
//! rollouts are decoding, each decode step waits for at most one score
//! forward of that size, so a long score job costs running generations a
//! bounded latency per step instead of a stall. A sequence longer than what
//! is left of the budget is split like a chunked prefill: its first part
//! runs now into a KV cache, the rest continues in the next step, and only
//! the step that reaches its last token reads its score. Because the budget
//! is filled in order, at most one sequence is ever split — the first
//! unfinished sequence of the oldest job — so one cache ([`ScoreQueue`]'s
//! `partial`) holds it. That cache is the only memory score jobs keep
//! between steps (at most the reward model's context of KV); it is not
//! counted in the policy's KV budget.
//!
//! A job whose requester went away (its reply receiver dropped) is dropped
//! before the next step, split sequence included.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::api::{ScoreError, ScoreOutput, ScoreRequest};
use super::metrics::EngineMetrics;
use super::reward::score_rows;
use crate::model::{KvCache, SeqInput, Transformer};

/// Where a score job's answer goes.
pub type ScoreReply = oneshot::Sender<Result<ScoreOutput, ScoreError>>;

/// A score job as it travels the queue.
pub struct ScoreJob {
    pub req: ScoreRequest,
    pub reply: ScoreReply,
}

struct Pending {
    job: ScoreJob,
    scores: Vec<f64>,
    /// First sequence not scored yet.
    next: usize,
    /// Tokens of `sequences[next]` already run (their KV is the queue's
    /// `partial` cache; only ever non-zero for the oldest job).
    progress: usize,
}

impl Pending {
    fn done(&self) -> bool {
        self.next >= self.job.req.sequences.len()
    }
}

/// One sequence's share of a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    /// Index into the queue (0 = oldest job).
    job: usize,
    seq: usize,
    start: usize,
    len: usize,
    /// The slice reaches the sequence's last token: its row is the score.
    last: bool,
}

/// The accepted score jobs of one engine thread.
pub struct ScoreQueue<'a> {
    model: Option<&'a Transformer>,
    chunk: usize,
    jobs: VecDeque<Pending>,
    /// KV of the oldest job's `sequences[next]` while it is split across steps.
    partial: Option<KvCache>,
    metrics: Arc<EngineMetrics>,
}

impl<'a> ScoreQueue<'a> {
    /// `model` is the reward model (`None`: every job is refused).
    pub fn new(model: Option<&'a Transformer>, chunk: usize, metrics: Arc<EngineMetrics>) -> Self {
        Self {
            model,
            chunk: chunk.max(1),
            jobs: VecDeque::new(),
            partial: None,
            metrics,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Accepts a job; a malformed one is answered at once.
    pub fn push(&mut self, job: ScoreJob) {
        if job.reply.is_closed() {
            self.cancelled();
            return;
        }
        if let Err(e) = self.check(&job.req) {
            self.answer(job.reply, Err(e));
            return;
        }
        let n = job.req.sequences.len();
        let pending = Pending {
            job,
            scores: Vec::with_capacity(n),
            next: 0,
            progress: 0,
        };
        if pending.done() {
            // Nothing to score.
            let tokens = 0;
            self.answer(
                pending.job.reply,
                Ok(ScoreOutput {
                    scores: Vec::new(),
                    tokens,
                }),
            );
            return;
        }
        self.jobs.push_back(pending);
    }

    fn check(&self, req: &ScoreRequest) -> Result<(), ScoreError> {
        let Some(model) = self.model else {
            return Err(ScoreError::Invalid("this model has no reward model".into()));
        };
        let context = model.max_positions();
        let vocab = model.config().vocab_size;
        for (i, seq) in req.sequences.iter().enumerate() {
            if seq.is_empty() {
                return Err(ScoreError::Invalid(format!("sequence {i} is empty")));
            }
            if seq.len() > context {
                return Err(ScoreError::Invalid(format!(
                    "sequence {i}: {} tokens exceed the reward model's context of {context}",
                    seq.len()
                )));
            }
            if let Some(&bad) = seq.iter().find(|&&t| t as usize >= vocab) {
                return Err(ScoreError::Invalid(format!(
                    "sequence {i}: token id {bad} is outside the reward model's vocabulary of {vocab}"
                )));
            }
        }
        Ok(())
    }

    /// One forward of at most `chunk` tokens; answers the jobs it completes.
    pub fn step(&mut self) {
        self.reap_closed();
        let Some(model) = self.model else {
            return;
        };
        let plan = self.plan();
        let Some(last) = plan.last().copied() else {
            return;
        };
        match self.run(model, &plan) {
            Ok(rows) => self.advance(&plan, &rows),
            Err(e) => {
                // The forward failed as a whole: fail every job in it.
                self.partial = None;
                let msg = e.to_string();
                for p in self.jobs.drain(..=last.job).collect::<Vec<_>>() {
                    self.answer(p.job.reply, Err(ScoreError::Failed(msg.clone())));
                }
            }
        }
    }

    /// Drops jobs whose requester left (and the split sequence's KV with
    /// the oldest job).
    fn reap_closed(&mut self) {
        if self.jobs.front().is_some_and(|p| p.job.reply.is_closed()) {
            self.partial = None;
        }
        let before = self.jobs.len();
        self.jobs.retain(|p| !p.job.reply.is_closed());
        for _ in self.jobs.len()..before {
            self.cancelled();
        }
    }

    /// The next forward's slices: sequences in arrival order, the first
    /// one resuming where the last step stopped, until the budget is spent.
    fn plan(&self) -> Vec<Slice> {
        let mut budget = self.chunk;
        let mut plan = Vec::new();
        for (job, p) in self.jobs.iter().enumerate() {
            let mut start = p.progress;
            for (seq, ids) in p.job.req.sequences.iter().enumerate().skip(p.next) {
                if budget == 0 {
                    return plan;
                }
                let len = (ids.len() - start).min(budget);
                budget -= len;
                plan.push(Slice {
                    job,
                    seq,
                    start,
                    len,
                    last: start + len == ids.len(),
                });
                start = 0;
            }
        }
        plan
    }

    /// Runs the slices as one ragged forward; one row per slice.
    fn run(&mut self, model: &Transformer, plan: &[Slice]) -> candle_core::Result<Vec<f64>> {
        let last = plan.len() - 1;
        let resumes = plan[0].start > 0;
        let splits = !plan[last].last;
        let mut carry = if resumes {
            let cache = self.partial.take();
            Some(
                cache
                    .ok_or_else(|| candle_core::Error::Msg("lost a split sequence's KV".into()))?,
            )
        } else {
            None
        };
        let mut fresh = (splits && !(resumes && last == 0)).then(|| model.new_cache());
        let rows = {
            let (mut c0, mut c1) = (carry.as_mut(), fresh.as_mut());
            let mut inputs = Vec::with_capacity(plan.len());
            for (k, s) in plan.iter().enumerate() {
                let ids = &self.jobs[s.job].job.req.sequences[s.seq];
                let cache = if k == 0 && resumes {
                    c0.take()
                } else if k == last && splits {
                    c1.take()
                } else {
                    None
                };
                inputs.push(SeqInput {
                    tokens: &ids[s.start..s.start + s.len],
                    cache,
                });
            }
            score_rows(model, &mut inputs)?
        };
        if splits {
            self.partial = if resumes && last == 0 { carry } else { fresh };
        }
        let tokens: usize = plan.iter().map(|s| s.len).sum();
        self.metrics
            .score_tokens_total
            .fetch_add(tokens as u64, Ordering::Relaxed);
        Ok(rows)
    }

    /// Records the scores of completed sequences and answers finished jobs.
    fn advance(&mut self, plan: &[Slice], rows: &[f64]) {
        for (s, &score) in plan.iter().zip(rows) {
            let p = &mut self.jobs[s.job];
            if s.last {
                p.scores.push(score);
                p.next = s.seq + 1;
                p.progress = 0;
            } else {
                p.next = s.seq;
                p.progress = s.start + s.len;
            }
        }
        while self.jobs.front().is_some_and(Pending::done) {
            let Some(p) = self.jobs.pop_front() else {
                break;
            };
            let tokens = p.job.req.sequences.iter().map(Vec::len).sum();
            let out = ScoreOutput {
                scores: p.scores,
                tokens,
            };
            self.answer(p.job.reply, Ok(out));
        }
    }

    fn answer(&self, reply: ScoreReply, out: Result<ScoreOutput, ScoreError>) {
        self.metrics
            .score_requests_total
            .fetch_add(1, Ordering::Relaxed);
        let _ = reply.send(out);
    }

    fn cancelled(&self) {
        self.metrics
            .requests_cancelled
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "score_queue_tests.rs"]
mod tests;
