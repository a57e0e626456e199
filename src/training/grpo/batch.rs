//! A GRPO step's batch: the prompt stream ([`Prompts`]: a seeded order per epoch, or
//! the curriculum order) and the sampling of G rollouts per prompt with verifier rewards,
//! refilled under dynamic sampling ([`sample_batch`]), into a [`Batch`] that also carries
//! the step's rollout statistics (and, in async mode, is saved with a checkpoint).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use quorum_train::batch::epoch_order;
use quorum_train::grpo::advantage::zero_variance;
use quorum_train::grpo::dynamic::{fill, Filled};
use quorum_train::grpo_config::GrpoConfig;
use quorum_train::rewards::Reward;

use crate::model::Transformer;
use crate::training::eval::EvalTask;
use crate::training::rollouts::{sample_groups, RolloutContext, ScoredGroup};

/// A step's sampled batch and what it took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Batch {
    pub(super) groups: Vec<ScoredGroup>,
    pub(super) rounds: usize,
    pub(super) sampled: usize,
    pub(super) zero_variance: usize,
    pub(super) first_round_zero_variance: usize,
    /// Groups of the first round (the configured batch).
    pub(super) first_round: usize,
    /// Every sampled rollout's reward, kept groups or not (the step's
    /// reward and accuracy are over what the policy produced).
    pub(super) all_rewards: Vec<f64>,
    pub(super) all_correct: usize,
    pub(super) all_rollouts: usize,
    pub(super) completion_tokens: Vec<usize>,
    pub(super) truncated: usize,
    /// Sums of each reward term over every sampled rollout.
    pub(super) terms: Reward,
    /// Rollouts excluded from the loss (overlong filtering).
    pub(super) masked: usize,
    pub(super) rollout_s: f64,
    /// The data position after this batch was drawn.
    pub(super) epoch: u64,
    pub(super) cursor: usize,
}

/// The prompt stream: a seeded order per epoch (or the curriculum order),
/// a cursor into it.
pub(super) struct Prompts<'a> {
    pub(super) tasks: &'a [EvalTask],
    pub(super) order: Option<&'a [usize]>,
    pub(super) seed: u64,
    pub(super) epoch: u64,
    pub(super) cursor: usize,
}

impl Prompts<'_> {
    fn take(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        let mut perm = self.perm();
        while out.len() < n {
            if self.cursor == perm.len() {
                self.cursor = 0;
                self.epoch += 1;
                perm = self.perm();
            }
            out.push(perm[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    fn perm(&self) -> Vec<usize> {
        match self.order {
            Some(o) => o.to_vec(),
            None => epoch_order(self.tasks.len(), self.seed, self.epoch),
        }
    }
}

/// Sample the batch of step `step` (1-based) on `model`.
pub(super) fn sample_batch(
    model: &Transformer,
    ctx: &RolloutContext,
    prompts: &mut Prompts,
    cfg: &GrpoConfig,
    step: u64,
) -> anyhow::Result<Batch> {
    let t0 = Instant::now();
    let mut all_rewards = Vec::new();
    let mut all_correct = 0;
    let mut completion_tokens = Vec::new();
    let mut truncated = 0;
    let mut terms = Reward::default();
    let mut masked = 0;
    let progress = (step - 1) as f64 / cfg.train.steps.max(1) as f64;
    let filled: Filled<ScoredGroup> = fill(
        cfg.rollout.prompts_per_step,
        cfg.sampling.dynamic,
        cfg.sampling.max_refill_rounds,
        |n, round| {
            let idx = prompts.take(n);
            let tasks: Vec<(usize, &EvalTask)> =
                idx.iter().map(|&i| (i, &prompts.tasks[i])).collect();
            let groups = sample_groups(model, ctx, &tasks, (step << 8) | round as u64, progress)
                .map_err(|e| quorum_train::TrainError::Batch(format!("{e:#}")))?;
            for g in &groups {
                for r in &g.rollouts {
                    all_rewards.push(r.reward.total);
                    all_correct += usize::from(r.correct);
                    add_terms(&mut terms, &r.reward);
                    masked += usize::from(r.reward.masked);
                    completion_tokens.push(r.token_ids.len());
                    truncated += usize::from(r.truncated);
                }
            }
            Ok(groups)
        },
        |g| !zero_variance(&g.rewards()),
    )?;
    Ok(Batch {
        all_rollouts: all_rewards.len(),
        groups: filled.groups,
        rounds: filled.rounds,
        sampled: filled.sampled,
        zero_variance: filled.dropped,
        first_round_zero_variance: filled.first_round_dropped,
        first_round: cfg.rollout.prompts_per_step,
        all_rewards,
        all_correct,
        completion_tokens,
        truncated,
        terms,
        masked,
        rollout_s: t0.elapsed().as_secs_f64(),
        epoch: prompts.epoch,
        cursor: prompts.cursor,
    })
}

/// Adds each reward term of `r` to `sum`.
fn add_terms(sum: &mut Reward, r: &Reward) {
    sum.total += r.total;
    sum.correct += r.correct;
    sum.format += r.format;
    sum.overlong += r.overlong;
    sum.length += r.length;
    sum.kimi_length += r.kimi_length;
    sum.language += r.language;
    sum.length_control += r.length_control;
}
