//! Reward-model scoring: a model directory with a policy-family backbone and a
//! scalar head (`score.weight`, HF `*ForSequenceClassification`,
//! `num_labels = 1`). A (conversation, completion) pair is rendered with the
//! chat template as a finished assistant turn, and the head is read at the
//! last token. Pairs run as ragged batches (no padding), so a score does not
//! depend on what else is in the batch.

use candle_core::Device;

use super::bundle::{BundleError, ModelBundle};
use crate::chat::ChatMessage;
use crate::model::{Mode, SeqInput, WeightDType};

pub struct RewardModel {
    bundle: ModelBundle,
    /// Sequences per forward.
    pub max_batch: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    #[error(transparent)]
    Load(#[from] BundleError),
    #[error("{0} is not a reward model: it has no `score` head (architectures must end in ForSequenceClassification)")]
    NoScoreHead(String),
    #[error("scoring: {0}")]
    Forward(#[from] candle_core::Error),
    #[error("completion {index}: {tokens} tokens exceed the reward model's context of {context}")]
    TooLong {
        index: usize,
        tokens: usize,
        context: usize,
    },
}

impl RewardModel {
    pub fn load(
        dir: &std::path::Path,
        dtype: Option<WeightDType>,
        device: &Device,
    ) -> Result<Self, RewardError> {
        let bundle = ModelBundle::load(dir, dtype, device)?;
        if bundle.loaded.model.score.is_none() {
            return Err(RewardError::NoScoreHead(dir.display().to_string()));
        }
        Ok(Self {
            bundle,
            max_batch: 8,
        })
    }

    pub fn bundle(&self) -> &ModelBundle {
        &self.bundle
    }

    /// Token ids of `conversation` followed by `completion` as the assistant's answer.
    pub fn encode_pair(
        &self,
        conversation: &[ChatMessage],
        completion: &str,
    ) -> Result<Vec<u32>, BundleError> {
        let mut msgs = conversation.to_vec();
        msgs.push(ChatMessage::assistant(completion));
        let text = self
            .bundle
            .template
            .render(&msgs, false, &serde_json::Map::new())?;
        Ok(self.bundle.tokenizer.encode(&text, false)?)
    }

    /// One scalar score per completion, in order.
    pub fn score(
        &self,
        conversation: &[ChatMessage],
        completions: &[String],
    ) -> Result<Vec<f64>, RewardError> {
        let context = self.bundle.loaded.model.max_positions();
        let mut encoded = Vec::with_capacity(completions.len());
        for (index, c) in completions.iter().enumerate() {
            let ids = self.encode_pair(conversation, c)?;
            if ids.len() > context {
                return Err(RewardError::TooLong {
                    index,
                    tokens: ids.len(),
                    context,
                });
            }
            encoded.push(ids);
        }
        self.score_tokens(&encoded)
    }

    /// Scores of already tokenized sequences (value of label 0 at the last token).
    pub fn score_tokens(&self, sequences: &[Vec<u32>]) -> Result<Vec<f64>, RewardError> {
        let mut out = Vec::with_capacity(sequences.len());
        for chunk in sequences.chunks(self.max_batch.max(1)) {
            let mut inputs: Vec<SeqInput> = chunk
                .iter()
                .map(|ids| SeqInput {
                    tokens: ids,
                    cache: None,
                })
                .collect();
            let scores = self
                .bundle
                .loaded
                .model
                .score(&mut inputs, Mode::Inference)?;
            let scores = scores.narrow(1, 0, 1)?.flatten_all()?.to_vec1::<f32>()?;
            out.extend(scores.into_iter().map(f64::from));
        }
        Ok(out)
    }
}

impl quorum_scoring::RewardScorer for RewardModel {
    /// `prompt` is taken as a single user message.
    fn score(
        &self,
        prompt: &str,
        completions: &[String],
    ) -> Result<Vec<f64>, quorum_scoring::ScoringError> {
        RewardModel::score(self, &[ChatMessage::user(prompt)], completions)
            .map_err(|e| quorum_scoring::ScoringError::Scorer(e.to_string()))
    }
}
