//! Training sequences and ragged batches: sequences are packed back to back
//! (no padding), each with per-token loss weights, and grouped into
//! micro-batches by a token budget.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Result, TrainError};

/// One training sequence. `weights[i]` is the loss weight of predicting
/// `ids[i]` from `ids[..i]`: 0 for prompt tokens and anything the model did
/// not produce (so `weights[0]` is always 0), 1 for trained tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Example {
    pub fn new(ids: Vec<u32>, weights: Vec<f32>) -> Result<Self> {
        if ids.len() != weights.len() {
            return Err(TrainError::Batch(format!(
                "{} ids but {} weights",
                ids.len(),
                weights.len()
            )));
        }
        if ids.len() < 2 {
            return Err(TrainError::Batch(
                "a training sequence needs at least two tokens".into(),
            ));
        }
        if weights[0] != 0.0 {
            return Err(TrainError::Batch(
                "the first token has no prefix to predict it from; its weight must be 0".into(),
            ));
        }
        Ok(Self { ids, weights })
    }

    /// Tokens the forward runs (every id but the last).
    pub fn input_len(&self) -> usize {
        self.ids.len() - 1
    }

    /// Sum of the loss weights (tokens trained on).
    pub fn trained_tokens(&self) -> f32 {
        self.weights.iter().sum()
    }
}

/// Sequences packed for one forward: per sequence its inputs
/// (`ids[..n-1]`), and for all sequences together the targets (`ids[1..]`)
/// and their weights, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackedBatch {
    pub inputs: Vec<Vec<u32>>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
}

impl PackedBatch {
    pub fn pack<'a>(examples: impl IntoIterator<Item = &'a Example>) -> Self {
        let mut b = PackedBatch::default();
        for e in examples {
            b.inputs.push(e.ids[..e.ids.len() - 1].to_vec());
            b.targets.extend_from_slice(&e.ids[1..]);
            b.weights.extend_from_slice(&e.weights[1..]);
        }
        b
    }

    /// All inputs back to back (the order of `targets`).
    pub fn inputs_flat(&self) -> Vec<u32> {
        self.inputs.iter().flatten().copied().collect()
    }

    /// Tokens the forward runs.
    pub fn tokens(&self) -> usize {
        self.targets.len()
    }

    /// Sum of the target weights.
    pub fn trained_tokens(&self) -> f64 {
        self.weights.iter().map(|&w| w as f64).sum()
    }
}

/// The order of the examples in `epoch`: a permutation seeded by
/// `(seed, epoch)` alone, so a resumed run recomputes it exactly.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// Group `order` (indices into `input_lens`) into micro-batches of at most
/// `max_tokens` input tokens, greedily and in order. A sequence longer
/// than the budget is an error (drop such sequences when loading).
pub fn token_budget_batches(
    input_lens: &[usize],
    order: &[usize],
    max_tokens: usize,
) -> Result<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut cur_tokens = 0;
    for &i in order {
        let len = input_lens[i];
        if len > max_tokens {
            return Err(TrainError::Batch(format!(
                "sequence {i} has {len} input tokens, more than the batch budget of {max_tokens}"
            )));
        }
        if cur_tokens + len > max_tokens && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur_tokens = 0;
        }
        cur.push(i);
        cur_tokens += len;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_shifts_targets_and_keeps_weights_aligned() {
        let a = Example::new(vec![1, 2, 3], vec![0., 0., 1.]).unwrap();
        let b = Example::new(vec![4, 5], vec![0., 1.]).unwrap();
        let p = PackedBatch::pack([&a, &b]);
        assert_eq!(p.inputs, vec![vec![1, 2], vec![4]]);
        assert_eq!(p.targets, vec![2, 3, 5]);
        assert_eq!(p.weights, vec![0., 1., 1.]);
        assert_eq!(p.inputs_flat(), vec![1, 2, 4]);
        assert_eq!(p.trained_tokens(), 2.0);
    }

    #[test]
    fn examples_reject_bad_shapes() {
        assert!(Example::new(vec![1, 2], vec![0.]).is_err());
        assert!(Example::new(vec![1], vec![0.]).is_err());
        assert!(Example::new(vec![1, 2], vec![1., 1.]).is_err());
    }

    #[test]
    fn budget_batches_fill_greedily_in_order() {
        let lens = [3, 4, 2, 5, 1];
        let b = token_budget_batches(&lens, &[0, 1, 2, 3, 4], 7).unwrap();
        assert_eq!(b, vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert!(token_budget_batches(&lens, &[3], 4).is_err());
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(50, 7, 0);
        assert_eq!(a, epoch_order(50, 7, 0));
        assert_ne!(a, epoch_order(50, 7, 1));
        assert_ne!(a, epoch_order(50, 8, 0));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
    }
}
