//! The policy seam: what the training algorithms need from a model.
//!
//! The root crate implements [`Policy`] for the real `Transformer` (its
//! differentiable `Mode::Train` forward); tests use [`toy::BigramPolicy`].
//! Everything in this crate — losses, optimizer, SFT/GRPO steps — is written
//! against this trait only.

use candle_core::{Tensor, Var};

use crate::batch::PackedBatch;
use crate::Result;

/// A trainable next-token model.
pub trait Policy {
    /// Trainable parameters with their checkpoint names, in a stable order
    /// (the optimizer state is saved and restored by these names).
    fn params(&self) -> Vec<(String, Var)>;

    /// Differentiable log-probabilities of each target token:
    /// `log softmax(logits / temperature)[target]`, one f32 per target of
    /// `batch` (in [`PackedBatch::targets`] order).
    fn token_logprobs(&self, batch: &PackedBatch, temperature: f64) -> Result<Tensor>;
}

/// A model that scores whole sequences: reward models, whose scalar head
/// is read at each sequence's last token.
pub trait Scorer {
    /// Trainable parameters with their checkpoint names, in a stable order.
    fn params(&self) -> Vec<(String, Var)>;

    /// Differentiable score (a logit) of each of `seqs`, one f32 each.
    fn sequence_scores(&self, seqs: &[Vec<u32>]) -> Result<Tensor>;
}

/// A bigram model (`logits[t] = table[token_t]`): small enough to check the
/// algorithms by hand, real enough that training lowers its loss.
pub mod toy {
    use super::*;
    use candle_core::{DType, Device, D};

    pub struct BigramPolicy {
        pub table: Var,
    }

    impl BigramPolicy {
        pub fn new(vocab: usize, seed: u64) -> Result<Self> {
            // A deterministic small init: table[i][j] = ((i*31 + j*17 + seed) % 7 - 3) / 10.
            let data: Vec<f32> = (0..vocab * vocab)
                .map(|k| {
                    let (i, j) = (k / vocab, k % vocab);
                    (((i * 31 + j * 17 + seed as usize) % 7) as f32 - 3.0) / 10.0
                })
                .collect();
            let t = Tensor::from_vec(data, (vocab, vocab), &Device::Cpu)?;
            Ok(Self {
                table: Var::from_tensor(&t)?,
            })
        }
    }

    impl Policy for BigramPolicy {
        fn params(&self) -> Vec<(String, Var)> {
            vec![("table".into(), self.table.clone())]
        }

        fn token_logprobs(&self, batch: &PackedBatch, temperature: f64) -> Result<Tensor> {
            let inputs = Tensor::new(batch.inputs_flat().as_slice(), &Device::Cpu)?;
            let logits = self.table.as_tensor().index_select(&inputs, 0)?;
            let logits = (logits / temperature)?;
            let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let targets = Tensor::new(batch.targets.as_slice(), &Device::Cpu)?
                .to_dtype(DType::U32)?
                .unsqueeze(1)?;
            Ok(lsm.gather(&targets, 1)?.squeeze(1)?)
        }
    }

    /// A bag-of-tokens scorer (`score = mean_t table[token_t]`): the toy
    /// reward model of the reward-model algorithm tests.
    pub struct BagScorer {
        pub table: Var,
    }

    impl BagScorer {
        pub fn new(vocab: usize) -> Result<Self> {
            Ok(Self {
                table: Var::zeros(vocab, DType::F32, &Device::Cpu)?,
            })
        }
    }

    impl Scorer for BagScorer {
        fn params(&self) -> Vec<(String, Var)> {
            vec![("table".into(), self.table.clone())]
        }

        fn sequence_scores(&self, seqs: &[Vec<u32>]) -> Result<Tensor> {
            let mut out = Vec::with_capacity(seqs.len());
            for ids in seqs {
                let idx = Tensor::new(ids.as_slice(), &Device::Cpu)?;
                out.push(self.table.as_tensor().index_select(&idx, 0)?.mean(0)?);
            }
            Ok(Tensor::stack(&out, 0)?)
        }
    }
}
