//! What a GRPO step does with its batch: the update ([`train_on`]: group advantages,
//! the reference log-probs when there is a KL term, the clipped-surrogate update) and
//! the records it writes ([`step_record`], and [`evaluate`]'s held-out pass@1).

use serde_json::json;

use quorum_train::checkpoint::TrainerState;
use quorum_train::grpo::advantage::advantages;
use quorum_train::grpo::update::{grpo_update, sequence_logprobs, UpdateConfig, UpdateStats};
use quorum_train::grpo_config::GrpoConfig;
use quorum_train::optim::AdamW;

use super::batch::Batch;
use crate::model::Transformer;
use crate::training::eval::{accuracy, EvalContext, EvalTask};
use crate::training::policy::TransformerPolicy;
use crate::training::rollouts::{training_sequences, ScoredGroup};

/// The update of one batch; `None` when dynamic sampling kept no group.
#[allow(clippy::too_many_arguments)] // the loop's parts, borrowed for one call
pub(super) fn train_on(
    policy: &TransformerPolicy,
    params: &[(String, candle_core::Var)],
    opt: &mut AdamW,
    reference: Option<&TransformerPolicy>,
    batch: &Batch,
    cfg: &GrpoConfig,
    update_cfg: &UpdateConfig,
    lr: f64,
) -> anyhow::Result<Option<UpdateStats>> {
    if batch.groups.is_empty() {
        return Ok(None);
    }
    let rewards: Vec<Vec<f64>> = batch.groups.iter().map(ScoredGroup::rewards).collect();
    let adv = advantages(&rewards, cfg.advantage.std, cfg.advantage.eps);
    let seqs = training_sequences(&batch.groups, &adv)?;
    if seqs.iter().all(|s| s.example.trained_tokens() == 0.0) {
        return Ok(None);
    }
    let refs = match reference {
        Some(r) => Some(sequence_logprobs(
            r,
            &seqs,
            update_cfg.temperature,
            update_cfg.micro_batch_tokens,
        )?),
        None => None,
    };
    Ok(Some(grpo_update(
        policy,
        params,
        opt,
        &seqs,
        refs.as_deref(),
        update_cfg,
        lr,
    )?))
}

/// The step's metrics line.
pub(super) fn step_record(
    batch: &Batch,
    update: Option<&UpdateStats>,
    lr: f64,
    step_s: f64,
    update_s: f64,
    state: &TrainerState,
    async_rollouts: bool,
) -> serde_json::Value {
    let (reward_mean, reward_std) = mean_std(&batch.all_rewards);
    let lens: Vec<f64> = batch.completion_tokens.iter().map(|&n| n as f64).collect();
    let (len_mean, _) = mean_std(&lens);
    let rollout_tokens: usize = batch.completion_tokens.iter().sum();
    let n = batch.all_rollouts.max(1) as f64;
    let mut r = json!({
        "kind": "step",
        "step": state.step,
        "lr": lr,
        "reward_mean": reward_mean,
        "reward_std": reward_std,
        "accuracy": batch.all_correct as f64 / n,
        "groups": batch.groups.len(),
        "groups_sampled": batch.sampled,
        "refill_rounds": batch.rounds.saturating_sub(1),
        // Of the first round's groups (the policy's state, comparable
        // with and without dynamic sampling), and of every sampled group.
        "zero_variance_fraction": batch.first_round_zero_variance as f64 / batch.first_round.max(1) as f64,
        "zero_variance_all": batch.zero_variance as f64 / batch.sampled.max(1) as f64,
        "completion_tokens_mean": len_mean,
        "completion_tokens_max": batch.completion_tokens.iter().max().copied().unwrap_or(0),
        "completion_tokens_min": batch.completion_tokens.iter().min().copied().unwrap_or(0),
        "truncated_fraction": batch.truncated as f64 / n,
        "masked_fraction": batch.masked as f64 / n,
        "reward_terms": {
            "correct": batch.terms.correct / n,
            "format": batch.terms.format / n,
            "overlong": batch.terms.overlong / n,
            "length": batch.terms.length / n,
            "kimi_length": batch.terms.kimi_length / n,
            "language": batch.terms.language / n,
            "length_control": batch.terms.length_control / n,
        },
        "rollout_tokens": rollout_tokens,
        "rollout_s": batch.rollout_s,
        "rollout_tokens_per_s": rollout_tokens as f64 / batch.rollout_s.max(1e-9),
        "update_s": update_s,
        "step_s": step_s,
        "async_rollouts": async_rollouts,
        "elapsed_s": state.elapsed_s,
    });
    if let Some(u) = update {
        let t = u.first.tokens.max(1.0);
        let ta = u.all.tokens.max(1.0);
        r["loss"] = json!(u.loss);
        r["grad_norm"] = json!(u.grad_norm);
        r["trained_tokens"] = json!(u.first.tokens);
        r["tokens"] = json!(u.tokens);
        r["tokens_per_s"] = json!(u.tokens as f64 / update_s.max(1e-9));
        r["entropy"] = json!(u.first.neg_logprob / t);
        r["kl"] = json!(u.first.kl / t);
        r["clip_fraction"] = json!((u.all.clipped_low + u.all.clipped_high) / ta);
        r["clip_low_fraction"] = json!(u.all.clipped_low / ta);
        r["clip_high_fraction"] = json!(u.all.clipped_high / ta);
        r["ratio_dev"] = json!(u.first.ratio_dev / t);
    }
    r
}

/// Held-out pass@1 (greedy) per think mode.
pub(super) fn evaluate(
    model: &Transformer,
    ctx: &EvalContext,
    tasks: &[EvalTask],
    modes: &[String],
    step: u64,
) -> anyhow::Result<serde_json::Value> {
    let mut acc = serde_json::Map::new();
    let mut detail = serde_json::Map::new();
    for mode in modes {
        let a = accuracy(model, ctx, tasks, mode == "think")?;
        acc.insert(mode.clone(), json!(a.accuracy));
        detail.insert(mode.clone(), serde_json::to_value(&a)?);
    }
    Ok(json!({"kind": "eval", "step": step, "accuracy": acc, "generation": detail}))
}

/// Mean and (population) standard deviation; zeros when empty.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
    (m, v.sqrt())
}
