//! The clipped surrogate with an optional k3 KL term, aggregated over tokens
//! by one of three normalisers (TRAINING.md "Per-token surrogate",
//! "Aggregation").
//!
//! Per trained token: `ρ = exp(log π_θ − log π_old)`,
//! `L = −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A) + β·KL`, KL the k3 estimator
//! `exp(d) − d − 1` with `d = log π_ref − log π_θ`. The step's loss is
//! `Σ_t c_t L_t` with a per-token coefficient `c_t` (0 for untrained
//! tokens) computed over the **whole** batch by [`coefficients`], so
//! splitting the batch into micro-batches never changes the normaliser.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// How per-token losses are summed into the step's loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// `Σ_i Σ_t L / Σ_i T_i` over the batch (DAPO; TRL `dapo`/`bnpo`).
    #[default]
    Token,
    /// `(1/N) Σ_i (1/T_i) Σ_t L` (original GRPO; TRL `grpo`).
    Sequence,
    /// `Σ_i Σ_t L / (N · T_max)`, `T_max` the generation limit (Dr. GRPO).
    DrGrpo,
}

/// The surrogate's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    pub clip_low: f64,
    pub clip_high: f64,
    /// KL weight β (0: no reference model, no KL term).
    pub kl_beta: f64,
}

/// Per-token coefficients of every sequence: `weights[i]` are sequence
/// `i`'s target weights (1 trained, 0 not), `t_max` the generation limit
/// (for `dr_grpo`). `N` counts every sequence, trained tokens or not (as
/// TRL does when it masks truncated completions).
pub fn coefficients(weights: &[&[f32]], agg: Aggregation, t_max: usize) -> Vec<Vec<f32>> {
    let n = weights.len().max(1) as f64;
    let total: f64 = weights
        .iter()
        .map(|w| w.iter().map(|&x| x as f64).sum::<f64>())
        .sum();
    weights
        .iter()
        .map(|w| {
            let t_i: f64 = w.iter().map(|&x| x as f64).sum();
            let scale = match agg {
                Aggregation::Token if total > 0.0 => 1.0 / total,
                Aggregation::Sequence if t_i > 0.0 => 1.0 / (n * t_i),
                Aggregation::DrGrpo => 1.0 / (n * t_max.max(1) as f64),
                _ => 0.0,
            };
            w.iter().map(|&x| (x as f64 * scale) as f32).collect()
        })
        .collect()
}

/// Constants of the trained tokens of one micro-batch, in target order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenTerms {
    /// Rollout-time (behaviour policy) log-probs.
    pub old_logprobs: Vec<f32>,
    /// The token's sequence advantage.
    pub advantages: Vec<f32>,
    /// [`coefficients`] (0 for untrained tokens).
    pub coefs: Vec<f32>,
    /// Reference log-probs (only when `kl_beta > 0`).
    pub ref_logprobs: Option<Vec<f32>>,
}

/// Sums over the trained tokens of a micro-batch (divide by `tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ObjectiveSums {
    pub tokens: f64,
    /// Tokens whose ratio was clipped below (`ρ < 1−ε_low`, `A < 0`).
    pub clipped_low: f64,
    /// Tokens whose ratio was clipped above (`ρ > 1+ε_high`, `A > 0`).
    pub clipped_high: f64,
    pub ratio: f64,
    /// Σ |ρ − 1| (how far the training forward is from the sampler).
    pub ratio_dev: f64,
    pub kl: f64,
    /// Σ −log π_θ(token): the sampled-token estimate of the policy entropy.
    pub neg_logprob: f64,
}

impl ObjectiveSums {
    pub fn add(&mut self, o: &ObjectiveSums) {
        self.tokens += o.tokens;
        self.clipped_low += o.clipped_low;
        self.clipped_high += o.clipped_high;
        self.ratio += o.ratio;
        self.ratio_dev += o.ratio_dev;
        self.kl += o.kl;
        self.neg_logprob += o.neg_logprob;
    }
}

/// The micro-batch's loss `Σ_t c_t L_t` (differentiable in `logprobs`, the
/// current policy's log-probs of the targets) and its statistics.
///
/// The clip is applied as PPO defines it: where `min` picks the clipped
/// term, the token's loss is that constant and has no gradient; elsewhere
/// it is `−ρA`. Computing which side is active on the host keeps the value
/// and the gradient exact without relying on `clamp`'s subgradient.
pub fn surrogate_loss(
    logprobs: &Tensor,
    terms: &TokenTerms,
    obj: &Objective,
) -> Result<(Tensor, ObjectiveSums)> {
    let n = terms.old_logprobs.len();
    if logprobs.dims1()? != n || terms.advantages.len() != n || terms.coefs.len() != n {
        return Err(TrainError::Batch(format!(
            "surrogate: {} log-probs, {} old log-probs, {} advantages, {} coefficients",
            logprobs.dims1()?,
            n,
            terms.advantages.len(),
            terms.coefs.len()
        )));
    }
    let dev = logprobs.device();
    let lp = logprobs.to_dtype(DType::F32)?;
    let new: Vec<f32> = lp.detach().to_vec1()?;
    let mut sums = ObjectiveSums::default();
    // Per token: the gradient-carrying factor g_t (loss −c·A·ρ where the
    // unclipped term is active, else 0) and the constant part k_t.
    let mut grad_coef = vec![0f32; n];
    let mut constant = 0f64;
    for t in 0..n {
        let c = terms.coefs[t];
        if c == 0.0 {
            continue;
        }
        let a = terms.advantages[t] as f64;
        let rho = ((new[t] - terms.old_logprobs[t]) as f64).exp();
        let low = a < 0.0 && rho < 1.0 - obj.clip_low;
        let high = a > 0.0 && rho > 1.0 + obj.clip_high;
        if low || high {
            let clipped = rho.clamp(1.0 - obj.clip_low, 1.0 + obj.clip_high);
            constant += c as f64 * (-clipped * a);
        } else {
            grad_coef[t] = -(c as f64 * a) as f32;
        }
        sums.tokens += 1.0;
        sums.clipped_low += low as u8 as f64;
        sums.clipped_high += high as u8 as f64;
        sums.ratio += rho;
        sums.ratio_dev += (rho - 1.0).abs();
        sums.neg_logprob -= new[t] as f64;
    }
    let old = Tensor::new(terms.old_logprobs.as_slice(), dev)?;
    let ratio = (&lp - &old)?.exp()?;
    let g = Tensor::new(grad_coef.as_slice(), dev)?;
    let mut loss = ((ratio * g)?.sum_all()? + constant)?;
    if obj.kl_beta > 0.0 {
        let Some(r) = &terms.ref_logprobs else {
            return Err(TrainError::Batch(
                "kl_beta > 0 but no reference log-probs were computed".into(),
            ));
        };
        let d = (Tensor::new(r.as_slice(), dev)? - &lp)?;
        let kl = ((d.exp()? - &d)? - 1.0)?;
        let c = Tensor::new(terms.coefs.as_slice(), dev)?;
        let mask: Vec<f32> = terms
            .coefs
            .iter()
            .map(|&x| (x != 0.0) as u8 as f32)
            .collect();
        let kl_sum = (kl.detach() * Tensor::new(mask.as_slice(), dev)?)?.sum_all()?;
        sums.kl = kl_sum.to_scalar::<f32>()? as f64;
        loss = (loss + ((kl * c)?.sum_all()? * obj.kl_beta)?)?;
    }
    Ok((loss, sums))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn obj(lo: f64, hi: f64, beta: f64) -> Objective {
        Objective {
            clip_low: lo,
            clip_high: hi,
            kl_beta: beta,
        }
    }

    #[test]
    fn coefficients_by_aggregation() {
        let w1 = [0.0f32, 1.0, 1.0]; // T=2
        let w2 = [0.0f32, 1.0, 1.0, 1.0, 1.0]; // T=4
        let ws: Vec<&[f32]> = vec![&w1, &w2];
        let tok = coefficients(&ws, Aggregation::Token, 10);
        assert_eq!(tok[0], vec![0.0, 1.0 / 6.0, 1.0 / 6.0]);
        assert_eq!(tok[1][1], 1.0 / 6.0);
        let seq = coefficients(&ws, Aggregation::Sequence, 10);
        assert_eq!(seq[0][1], 1.0 / 4.0); // 1/(2·2)
        assert_eq!(seq[1][1], 1.0 / 8.0); // 1/(2·4)
        let dr = coefficients(&ws, Aggregation::DrGrpo, 10);
        assert_eq!(dr[0][1], 1.0 / 20.0); // 1/(2·10)
        assert_eq!(dr[1][4], 1.0 / 20.0);
        assert_eq!(dr[1][0], 0.0);
    }

    /// Value and gradient of four tokens by hand: ρ = e^{0.5}, 1, e^{−0.5}, e^{0.1}.
    #[test]
    fn clipped_surrogate_value_and_gradient_by_hand() {
        let new = Var::new(&[0.0f32, -1.0, -2.0, -0.4], &Device::Cpu).unwrap();
        let terms = TokenTerms {
            old_logprobs: vec![-0.5, -1.0, -1.5, -0.5],
            advantages: vec![1.0, 2.0, -1.0, -1.0],
            coefs: vec![0.25, 0.25, 0.25, 0.25],
            ref_logprobs: None,
        };
        let (loss, sums) = surrogate_loss(new.as_tensor(), &terms, &obj(0.2, 0.28, 0.0)).unwrap();
        let e = |x: f64| x.exp();
        // t0: ρ=1.6487 > 1.28, A>0: clipped → −1.28·1 (no grad)
        // t1: ρ=1: −2 (grad −c·A·ρ = −0.5)
        // t2: ρ=0.6065 < 0.8, A<0: clipped → −0.8·(−1) = 0.8 (no grad)
        // t3: ρ=1.1052, A<0: not clipped (low side only): −ρ·(−1) = ρ (grad c·ρ)
        let want = 0.25 * (-1.28 - 2.0 + 0.8 + e(0.1));
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let g = loss.backward().unwrap();
        let g = g.get(new.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let want_g = [0.0, -0.5, 0.0, 0.25 * e(0.1)];
        for (a, b) in g.iter().zip(want_g) {
            assert!((*a as f64 - b).abs() < 1e-5, "{g:?}");
        }
        assert_eq!(sums.clipped_high, 1.0);
        assert_eq!(sums.clipped_low, 1.0);
        assert_eq!(sums.tokens, 4.0);
        assert!((sums.neg_logprob - 3.4).abs() < 1e-6);
    }

    #[test]
    fn symmetric_clip_clips_what_clip_higher_keeps() {
        // ρ = e^{0.25} = 1.284, A > 0: clipped at 1.2, not at 1.28+
        let new = Var::new(&[0.0f32], &Device::Cpu).unwrap();
        let terms = TokenTerms {
            old_logprobs: vec![-0.25],
            advantages: vec![1.0],
            coefs: vec![1.0],
            ref_logprobs: None,
        };
        let (l, s) = surrogate_loss(new.as_tensor(), &terms, &obj(0.2, 0.2, 0.0)).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() + 1.2).abs() < 1e-6);
        assert_eq!(s.clipped_high, 1.0);
        let (l, s) = surrogate_loss(new.as_tensor(), &terms, &obj(0.2, 0.3, 0.0)).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() as f64 + 0.25f64.exp()).abs() < 1e-5);
        assert_eq!(s.clipped_high, 0.0);
    }

    #[test]
    fn k3_kl_by_hand() {
        // d = ref − new = −0.5 − (−1) = 0.5: KL = e^{0.5} − 0.5 − 1; ∂KL/∂new = 1 − e^{d}
        let new = Var::new(&[-1.0f32], &Device::Cpu).unwrap();
        let terms = TokenTerms {
            old_logprobs: vec![-1.0],
            advantages: vec![0.0],
            coefs: vec![0.5],
            ref_logprobs: Some(vec![-0.5]),
        };
        let (l, s) = surrogate_loss(new.as_tensor(), &terms, &obj(0.2, 0.2, 0.1)).unwrap();
        let kl = 0.5f64.exp() - 1.5;
        assert!((s.kl - kl).abs() < 1e-6);
        assert!((l.to_scalar::<f32>().unwrap() as f64 - 0.1 * 0.5 * kl).abs() < 1e-6);
        let g = l.backward().unwrap();
        let g = g.get(new.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((g - 0.1 * 0.5 * (1.0 - 0.5f64.exp())).abs() < 1e-6, "{g}");
    }

    #[test]
    fn untrained_tokens_count_for_nothing() {
        let new = Var::new(&[0.0f32, 5.0], &Device::Cpu).unwrap();
        let terms = TokenTerms {
            old_logprobs: vec![0.0, 0.0],
            advantages: vec![1.0, 1.0],
            coefs: vec![1.0, 0.0],
            ref_logprobs: None,
        };
        let (l, s) = surrogate_loss(new.as_tensor(), &terms, &obj(0.2, 0.2, 0.0)).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() + 1.0).abs() < 1e-6);
        assert_eq!(s.tokens, 1.0);
        let g = l.backward().unwrap();
        let g = g.get(new.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g[1], 0.0);
    }
}
