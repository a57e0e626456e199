//! One reward-model optimizer step over micro-batches, and batched scoring
//! without gradients.

use candle_core::{DType, Tensor, Var};

use super::loss::{bce_with_logits, bradley_terry};
use crate::optim::{AdamW, Grads};
use crate::policy::Scorer;
use crate::{Result, TrainError};

/// What a micro-batch's sequences are trained towards.
#[derive(Debug, Clone, PartialEq)]
pub enum RmTarget {
    /// Sequence `i` has label `labels[i]` (1: the verifier accepted it) and
    /// loss weight `weights[i]`.
    Labels { labels: Vec<f32>, weights: Vec<f32> },
    /// Sequences come in (chosen, rejected) pairs, `seqs[2k]` and
    /// `seqs[2k + 1]`, one weight per pair.
    Pairs { weights: Vec<f32> },
}

/// A micro-batch of token sequences (each a full rendered conversation
/// ending with the scored completion).
#[derive(Debug, Clone, PartialEq)]
pub struct RmBatch {
    pub seqs: Vec<Vec<u32>>,
    pub target: RmTarget,
}

impl RmBatch {
    /// Total loss weight.
    pub fn weight(&self) -> f64 {
        let w = match &self.target {
            RmTarget::Labels { weights, .. } | RmTarget::Pairs { weights } => weights,
        };
        w.iter().map(|&x| f64::from(x)).sum()
    }

    pub fn tokens(&self) -> usize {
        self.seqs.iter().map(Vec::len).sum()
    }

    fn check(&self) -> Result<()> {
        let ok = match &self.target {
            RmTarget::Labels { labels, weights } => {
                labels.len() == self.seqs.len() && weights.len() == self.seqs.len()
            }
            RmTarget::Pairs { weights } => self.seqs.len() == 2 * weights.len(),
        };
        if !ok || self.seqs.iter().any(Vec::is_empty) {
            return Err(TrainError::Batch(
                "reward-model batch: sequences, labels and weights do not line up (or a \
                 sequence is empty)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmStepStats {
    /// Weighted mean loss over the step.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    pub tokens: usize,
    pub sequences: usize,
    /// Labels: share of samples on the right side of 0; pairs: share of
    /// pairs ranked right (before the update).
    pub accuracy: f64,
}

/// The loss of one micro-batch with `normaliser`, and how many of its
/// items the scores already get right.
fn batch_loss(scores: &Tensor, target: &RmTarget, normaliser: f64) -> Result<(Tensor, usize)> {
    let host: Vec<f32> = scores.to_dtype(DType::F32)?.to_vec1()?;
    match target {
        RmTarget::Labels { labels, weights } => {
            let right = host
                .iter()
                .zip(labels)
                .filter(|(s, y)| (**s > 0.0) == (**y > 0.5))
                .count();
            Ok((bce_with_logits(scores, labels, weights, normaliser)?, right))
        }
        RmTarget::Pairs { weights } => {
            let n = weights.len();
            let pairs = scores.reshape((n, 2))?;
            let chosen = pairs.narrow(1, 0, 1)?.squeeze(1)?;
            let rejected = pairs.narrow(1, 1, 1)?.squeeze(1)?;
            let right = host.chunks(2).filter(|p| p[0] > p[1]).count();
            Ok((
                bradley_terry(&chosen, &rejected, weights, normaliser)?,
                right,
            ))
        }
    }
}

/// One optimizer step over `micro` with learning rate `lr`: the loss is
/// normalised by the step's total weight, so how the step is split into
/// micro-batches does not change it.
pub fn rm_step<S: Scorer>(
    scorer: &S,
    params: &[(String, Var)],
    opt: &mut AdamW,
    micro: &[RmBatch],
    lr: f64,
    max_grad_norm: Option<f64>,
) -> Result<RmStepStats> {
    for b in micro {
        b.check()?;
    }
    let total: f64 = micro.iter().map(RmBatch::weight).sum();
    if total <= 0.0 {
        return Err(TrainError::Batch(
            "no weight in the reward-model step (every weight is 0)".into(),
        ));
    }
    let mut grads = Grads::default();
    let (mut loss, mut tokens, mut sequences, mut right, mut items) = (0f64, 0, 0, 0, 0);
    for b in micro {
        let scores = scorer.sequence_scores(&b.seqs)?;
        let (l, r) = batch_loss(&scores, &b.target, total)?;
        loss += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        tokens += b.tokens();
        sequences += b.seqs.len();
        right += r;
        items += match &b.target {
            RmTarget::Labels { labels, .. } => labels.len(),
            RmTarget::Pairs { weights } => weights.len(),
        };
        grads.accumulate(params, &l.backward()?)?;
    }
    let grad_norm = match max_grad_norm {
        Some(c) => grads.clip_global_norm(c)?,
        None => grads.global_norm()?,
    };
    if !grad_norm.is_finite() {
        return Err(TrainError::Batch(format!(
            "gradient norm is {grad_norm} (loss {loss}); the step was not applied"
        )));
    }
    opt.step(&grads, lr)?;
    Ok(RmStepStats {
        loss,
        grad_norm,
        tokens,
        sequences,
        accuracy: right as f64 / items.max(1) as f64,
    })
}

/// Scores of `seqs` without gradients, in micro-batches of at most
/// `batch_tokens` tokens (one sequence per batch at least).
pub fn score_all<S: Scorer>(
    scorer: &S,
    seqs: &[Vec<u32>],
    batch_tokens: usize,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(seqs.len());
    let mut start = 0;
    while start < seqs.len() {
        let mut end = start + 1;
        let mut used = seqs[start].len();
        while end < seqs.len() && used + seqs[end].len() <= batch_tokens {
            used += seqs[end].len();
            end += 1;
        }
        let s = scorer.sequence_scores(&seqs[start..end])?.detach();
        out.extend(s.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::AdamWConfig;
    use crate::policy::toy::BagScorer;
    use crate::rm::loss::balanced_weights;
    use crate::rm::metrics::auc;

    /// Token 1 marks a correct answer, token 2 a wrong one; 3..6 are noise.
    fn labelled() -> (Vec<Vec<u32>>, Vec<bool>, Vec<usize>) {
        let mut seqs = Vec::new();
        let mut labels = Vec::new();
        let mut problem = Vec::new();
        for p in 0..6usize {
            for k in 0..4usize {
                let good = (p + k) % 3 != 0;
                seqs.push(vec![3 + (p % 3) as u32, 4, if good { 1 } else { 2 }, 5]);
                labels.push(good);
                problem.push(p);
            }
        }
        (seqs, labels, problem)
    }

    fn labels_batch(seqs: &[Vec<u32>], labels: &[bool], weights: &[f32]) -> RmBatch {
        RmBatch {
            seqs: seqs.to_vec(),
            target: RmTarget::Labels {
                labels: labels.iter().map(|&y| if y { 1.0 } else { 0.0 }).collect(),
                weights: weights.to_vec(),
            },
        }
    }

    #[test]
    fn bce_training_separates_correct_from_wrong() {
        let s = BagScorer::new(8).unwrap();
        let params = s.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        let (seqs, labels, problem) = labelled();
        let w = balanced_weights(&problem, &labels);
        let before = auc(&score_all(&s, &seqs, 64).unwrap(), &labels).unwrap();
        let mut last = None;
        for _ in 0..40 {
            last = Some(
                rm_step(
                    &s,
                    &params,
                    &mut opt,
                    &[labels_batch(&seqs, &labels, &w)],
                    0.1,
                    Some(1.0),
                )
                .unwrap(),
            );
        }
        let after = auc(&score_all(&s, &seqs, 64).unwrap(), &labels).unwrap();
        assert_eq!(before, 0.5, "zero init ties everything");
        assert_eq!(after, 1.0);
        assert_eq!(last.unwrap().accuracy, 1.0);
    }

    #[test]
    fn micro_batch_split_does_not_change_the_step() {
        let (seqs, labels, problem) = labelled();
        let w = balanced_weights(&problem, &labels);
        let run = |split: usize| {
            let s = BagScorer::new(8).unwrap();
            s.table
                .set(
                    &Tensor::new(
                        &[0.1f32, 0.2, -0.3, 0.05, 0.0, 0.4, -0.1, 0.2],
                        &candle_core::Device::Cpu,
                    )
                    .unwrap(),
                )
                .unwrap();
            let params = s.params();
            let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
            let micro: Vec<RmBatch> = (0..seqs.len())
                .step_by(split)
                .map(|i| {
                    let j = (i + split).min(seqs.len());
                    labels_batch(&seqs[i..j], &labels[i..j], &w[i..j])
                })
                .collect();
            let st = rm_step(&s, &params, &mut opt, &micro, 0.05, None).unwrap();
            (st.loss, s.table.as_tensor().to_vec1::<f32>().unwrap())
        };
        let (l1, t1) = run(24);
        let (l2, t2) = run(5);
        assert!((l1 - l2).abs() < 1e-6, "{l1} vs {l2}");
        for (a, b) in t1.iter().zip(&t2) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn pairs_training_ranks_chosen_above_rejected() {
        let s = BagScorer::new(8).unwrap();
        let params = s.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        let seqs: Vec<Vec<u32>> = (0..4u32)
            .flat_map(|k| [vec![3 + k % 2, 1, 5], vec![3 + k % 2, 2, 5]])
            .collect();
        let b = RmBatch {
            seqs: seqs.clone(),
            target: RmTarget::Pairs {
                weights: vec![1.0; 4],
            },
        };
        let first = rm_step(&s, &params, &mut opt, std::slice::from_ref(&b), 0.1, None).unwrap();
        assert_eq!(first.accuracy, 0.0, "ties at zero init are not wins");
        assert!(
            (first.loss - std::f64::consts::LN_2).abs() < 1e-6,
            "{}",
            first.loss
        );
        for _ in 0..20 {
            rm_step(&s, &params, &mut opt, std::slice::from_ref(&b), 0.1, None).unwrap();
        }
        let sc = score_all(&s, &seqs, 3).unwrap();
        assert!(sc.chunks(2).all(|p| p[0] > p[1]), "{sc:?}");
    }

    #[test]
    fn misaligned_batches_are_errors() {
        let s = BagScorer::new(8).unwrap();
        let params = s.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        let bad = RmBatch {
            seqs: vec![vec![1], vec![2], vec![3]],
            target: RmTarget::Pairs { weights: vec![1.0] },
        };
        assert!(rm_step(&s, &params, &mut opt, &[bad], 0.1, None).is_err());
    }
}
