//! The GRPO update: the step's rollouts (prompt + completion, trained on
//! the model's own sampled tokens only) packed into token-budget
//! micro-batches; per micro-batch the current log-probs at the sampling
//! temperature, the clipped surrogate against the rollout-time log-probs,
//! gradients accumulated; global-norm clipping; AdamW. `iterations` (μ)
//! repeats this on the same rollouts, each an optimizer step.

use candle_core::{DType, Var};

use crate::batch::{token_budget_batches, Example, PackedBatch};
use crate::optim::{AdamW, Grads};
use crate::policy::Policy;
use crate::{Result, TrainError};

use super::objective::{
    coefficients, surrogate_loss, Aggregation, Objective, ObjectiveSums, TokenTerms,
};

/// One rollout as the update trains it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSeq {
    /// Prompt + completion; weight 1 on the completion tokens the model
    /// sampled (engine-forced tokens, prompt and masked rollouts are 0).
    pub example: Example,
    /// Rollout-time log-prob of each target (`ids[1..]`), 0 where the
    /// weight is 0.
    pub old_logprobs: Vec<f32>,
    pub advantage: f32,
}

impl RolloutSeq {
    pub fn new(example: Example, old_logprobs: Vec<f32>, advantage: f32) -> Result<Self> {
        if old_logprobs.len() != example.ids.len() - 1 {
            return Err(TrainError::Batch(format!(
                "{} rollout log-probs for {} targets",
                old_logprobs.len(),
                example.ids.len() - 1
            )));
        }
        Ok(Self {
            example,
            old_logprobs,
            advantage,
        })
    }

    fn target_weights(&self) -> &[f32] {
        &self.example.weights[1..]
    }
}

/// The update's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateConfig {
    pub objective: Objective,
    pub aggregation: Aggregation,
    /// The generation limit (the `dr_grpo` normaliser).
    pub max_completion_tokens: usize,
    /// Sampling temperature: log-probs are of `softmax(logits / T)`.
    pub temperature: f64,
    pub micro_batch_tokens: usize,
    /// μ: optimizer steps on the same rollouts.
    pub iterations: usize,
    pub max_grad_norm: Option<f64>,
}

/// What the update did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    /// The loss of the last iteration.
    pub loss: f64,
    /// Gradient norm of the last iteration, before clipping.
    pub grad_norm: f64,
    /// Statistics of the first iteration (on-policy: ρ ≈ 1).
    pub first: ObjectiveSums,
    /// Over all iterations (clip fractions).
    pub all: ObjectiveSums,
    /// Tokens the forwards ran per iteration.
    pub tokens: usize,
    pub micro_batches: usize,
}

fn plan(seqs: &[RolloutSeq], budget: usize) -> Result<Vec<Vec<usize>>> {
    let lens: Vec<usize> = seqs.iter().map(|s| s.example.input_len()).collect();
    let order: Vec<usize> = (0..seqs.len()).collect();
    token_budget_batches(&lens, &order, budget)
}

/// Detached log-probs of every target of `seqs` under `policy` (the frozen
/// reference for the KL term), one vector per sequence.
pub fn sequence_logprobs<P: Policy>(
    policy: &P,
    seqs: &[RolloutSeq],
    temperature: f64,
    micro_batch_tokens: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); seqs.len()];
    for mb in plan(seqs, micro_batch_tokens)? {
        let b = PackedBatch::pack(mb.iter().map(|&i| &seqs[i].example));
        let lp: Vec<f32> = policy
            .token_logprobs(&b, temperature)?
            .detach()
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let mut off = 0;
        for &i in &mb {
            let n = seqs[i].old_logprobs.len();
            out[i] = lp[off..off + n].to_vec();
            off += n;
        }
    }
    Ok(out)
}

/// μ optimizer steps on `seqs` with learning rate `lr`. `reference` holds
/// the reference log-probs per sequence when `kl_beta > 0`.
pub fn grpo_update<P: Policy>(
    policy: &P,
    params: &[(String, Var)],
    opt: &mut AdamW,
    seqs: &[RolloutSeq],
    reference: Option<&[Vec<f32>]>,
    cfg: &UpdateConfig,
    lr: f64,
) -> Result<UpdateStats> {
    if seqs.is_empty() {
        return Err(TrainError::Batch("no rollouts to train on".into()));
    }
    if cfg.objective.kl_beta > 0.0 && reference.is_none() {
        return Err(TrainError::Batch(
            "kl_beta > 0 needs reference log-probs".into(),
        ));
    }
    let weights: Vec<&[f32]> = seqs.iter().map(RolloutSeq::target_weights).collect();
    let coefs = coefficients(&weights, cfg.aggregation, cfg.max_completion_tokens);
    let micro = plan(seqs, cfg.micro_batch_tokens)?;
    let terms: Vec<(PackedBatch, TokenTerms)> = micro
        .iter()
        .map(|mb| {
            let b = PackedBatch::pack(mb.iter().map(|&i| &seqs[i].example));
            let mut t = TokenTerms::default();
            let mut r = Vec::new();
            for &i in mb {
                let s = &seqs[i];
                t.old_logprobs.extend_from_slice(&s.old_logprobs);
                t.advantages
                    .extend(std::iter::repeat_n(s.advantage, s.old_logprobs.len()));
                t.coefs.extend_from_slice(&coefs[i]);
                if let Some(refs) = reference {
                    r.extend_from_slice(&refs[i]);
                }
            }
            if reference.is_some() && cfg.objective.kl_beta > 0.0 {
                t.ref_logprobs = Some(r);
            }
            (b, t)
        })
        .collect();
    let mut stats = UpdateStats {
        micro_batches: micro.len(),
        ..UpdateStats::default()
    };
    for it in 0..cfg.iterations.max(1) {
        let mut grads = Grads::default();
        let mut loss = 0f64;
        let mut sums = ObjectiveSums::default();
        let mut tokens = 0;
        for (b, t) in &terms {
            let lp = policy.token_logprobs(b, cfg.temperature)?;
            let (l, s) = surrogate_loss(&lp, t, &cfg.objective)?;
            loss += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            sums.add(&s);
            tokens += b.tokens();
            grads.accumulate(params, &l.backward()?)?;
        }
        let grad_norm = match cfg.max_grad_norm {
            Some(c) => grads.clip_global_norm(c)?,
            None => grads.global_norm()?,
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::Batch(format!(
                "gradient norm is {grad_norm} (loss {loss}); the update was not applied"
            )));
        }
        opt.step(&grads, lr)?;
        if it == 0 {
            stats.first = sums;
        }
        stats.all.add(&sums);
        stats.loss = loss;
        stats.grad_norm = grad_norm;
        stats.tokens = tokens;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpo::advantage::{advantages, StdScaling};
    use crate::optim::AdamWConfig;
    use crate::policy::toy::BigramPolicy;

    fn cfg(agg: Aggregation, iterations: usize, budget: usize) -> UpdateConfig {
        UpdateConfig {
            objective: Objective {
                clip_low: 0.2,
                clip_high: 0.2,
                kl_beta: 0.0,
            },
            aggregation: agg,
            max_completion_tokens: 4,
            temperature: 1.0,
            micro_batch_tokens: budget,
            iterations,
            max_grad_norm: None,
        }
    }

    /// Sequences `[0, a, b]` (prompt token 0, completion a b) of a bigram
    /// policy, with on-policy old log-probs.
    fn seqs(p: &BigramPolicy, completions: &[[u32; 2]], adv: &[f32]) -> Vec<RolloutSeq> {
        completions
            .iter()
            .zip(adv)
            .map(|(c, &a)| {
                let ex = Example::new(vec![0, c[0], c[1]], vec![0.0, 1.0, 1.0]).unwrap();
                let b = PackedBatch::pack([&ex]);
                let lp: Vec<f32> = p.token_logprobs(&b, 1.0).unwrap().to_vec1().unwrap();
                RolloutSeq::new(ex, lp, a).unwrap()
            })
            .collect()
    }

    #[test]
    fn on_policy_loss_is_minus_mean_advantage_and_the_gradient_moves_toward_the_winner() {
        let p = BigramPolicy::new(4, 0).unwrap();
        let params = p.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        // group: completion [1,1] correct, [2,2] wrong
        let adv = advantages(&[vec![1.0, 0.0]], StdScaling::None, 0.0)[0]
            .iter()
            .map(|&a| a as f32)
            .collect::<Vec<_>>();
        let s = seqs(&p, &[[1, 1], [2, 2]], &adv);
        let before: Vec<f32> = p
            .table
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let st = grpo_update(
            &p,
            &params,
            &mut opt,
            &s,
            None,
            &cfg(Aggregation::Token, 1, 64),
            0.1,
        )
        .unwrap();
        // ρ ≡ 1: loss = −Σ c·A = −(2·0.25·0.5 + 2·0.25·(−0.5)) = 0
        assert!(st.loss.abs() < 1e-6, "{}", st.loss);
        assert!((st.first.ratio_dev).abs() < 1e-6);
        assert!(st.grad_norm > 0.0);
        let after: Vec<f32> = p
            .table
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // table[0][1] (0 → 1, the winner's first token) goes up; table[0][2] down
        assert!(
            after[1] > before[1] && after[2] < before[2],
            "{before:?} {after:?}"
        );
        assert!(after[5] > before[5] && after[10] < before[10]);
    }

    #[test]
    fn micro_batch_split_does_not_change_the_update() {
        let run = |budget: usize, agg: Aggregation| {
            let p = BigramPolicy::new(4, 2).unwrap();
            let params = p.params();
            let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
            let s = seqs(&p, &[[1, 2], [2, 3], [3, 3]], &[0.7, -0.2, -0.5]);
            let st =
                grpo_update(&p, &params, &mut opt, &s, None, &cfg(agg, 2, budget), 0.05).unwrap();
            let w: Vec<f32> = p
                .table
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            (st, w)
        };
        for agg in [
            Aggregation::Token,
            Aggregation::Sequence,
            Aggregation::DrGrpo,
        ] {
            let (a, wa) = run(64, agg);
            let (b, wb) = run(2, agg);
            assert_eq!((a.micro_batches, b.micro_batches), (1, 3));
            assert!((a.loss - b.loss).abs() < 1e-6 && (a.grad_norm - b.grad_norm).abs() < 1e-6);
            for (x, y) in wa.iter().zip(&wb) {
                assert!((x - y).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn second_iteration_sees_ratios_off_one() {
        let p = BigramPolicy::new(4, 1).unwrap();
        let params = p.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        let s = seqs(&p, &[[1, 1], [2, 2]], &[0.5, -0.5]);
        let st = grpo_update(
            &p,
            &params,
            &mut opt,
            &s,
            None,
            &cfg(Aggregation::Token, 3, 64),
            0.1,
        )
        .unwrap();
        assert!(st.first.ratio_dev < 1e-6);
        assert!(st.all.ratio_dev > 1e-3, "{:?}", st.all);
        // later iterations moved toward the winner: the last loss is negative
        assert!(st.loss < 0.0, "{}", st.loss);
    }

    #[test]
    fn masked_tokens_get_no_gradient() {
        let p = BigramPolicy::new(4, 0).unwrap();
        let params = p.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        // token 3 after 1 was forced by the engine (weight 0)
        let ex = Example::new(vec![0, 1, 3], vec![0.0, 1.0, 0.0]).unwrap();
        let s = vec![RolloutSeq::new(ex, vec![-1.0, 0.0], 1.0).unwrap()];
        let before: Vec<f32> = p
            .table
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        grpo_update(
            &p,
            &params,
            &mut opt,
            &s,
            None,
            &cfg(Aggregation::Token, 1, 64),
            0.1,
        )
        .unwrap();
        let after: Vec<f32> = p
            .table
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // row 1 (the context of the forced token) is untouched
        assert_eq!(&before[4..8], &after[4..8]);
        assert_ne!(&before[0..4], &after[0..4]);
    }
}
