//! [`Policy`] for the real [`Transformer`]: the `Mode::Train` forward over a
//! ragged batch, whose parameters are the `Var`s of `load_trainable`.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use quorum_train::batch::PackedBatch;
use quorum_train::policy::{Policy, Scorer};

use crate::model::{
    load_trainable, Mode, ModelConfig, ModelError, Positions, SeqInput, Transformer,
};

/// A trainable model: the transformer and its parameters by HF tensor name.
pub struct TransformerPolicy {
    pub model: Transformer,
    pub config: ModelConfig,
    params: Vec<(String, Var)>,
}

impl TransformerPolicy {
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let (model, varmap, config) = load_trainable(dir, dtype, device)?;
        let mut params: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::Weight {
                name: "varmap".into(),
                message: "lock poisoned".into(),
            })?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self {
            model,
            config,
            params,
        })
    }

    /// The current weights by HF name (what a checkpoint stores).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

impl Policy for TransformerPolicy {
    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn token_logprobs(
        &self,
        batch: &PackedBatch,
        temperature: f64,
    ) -> quorum_train::Result<Tensor> {
        let mut seqs: Vec<SeqInput> = batch
            .inputs
            .iter()
            .map(|ids| SeqInput {
                tokens: ids,
                cache: None,
            })
            .collect();
        let logits = self.model.forward(&mut seqs, Positions::All, Mode::Train)?;
        let targets = Tensor::new(batch.targets.as_slice(), logits.device())?;
        // Fused: one pass for the log-sum-exp, backward g·(onehot − softmax)
        // without materialising the log-probabilities.
        Ok(crate::model::train_ops::token_logprobs_tempered(
            &logits,
            &targets,
            temperature,
        )?)
    }
}

/// A reward model's scores: the `score` head at each sequence's last token
/// (the `Mode::Train` forward, so they carry gradients).
impl Scorer for TransformerPolicy {
    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn sequence_scores(&self, seqs: &[Vec<u32>]) -> quorum_train::Result<Tensor> {
        let mut inputs: Vec<SeqInput> = seqs
            .iter()
            .map(|ids| SeqInput {
                tokens: ids,
                cache: None,
            })
            .collect();
        let s = self.model.score(&mut inputs, Mode::Train)?;
        Ok(s.narrow(1, 0, 1)?.squeeze(1)?)
    }
}
