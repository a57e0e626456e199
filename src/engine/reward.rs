//! Reward models: a model directory with a policy-family backbone and a
//! scalar head (`score.weight`, HF `*ForSequenceClassification`,
//! `num_labels = 1`). A (conversation, completion) pair is rendered with the
//! reward model's chat template as a finished assistant turn
//! ([`RewardCodec`]), and the head is read at the last token. Pairs run as
//! ragged batches (no padding), so a score does not depend on what else is
//! in the batch.
//!
//! Serving attaches the reward model to the policy's [`super::ModelBundle`]
//! and scores on the engine thread, between decode steps (see
//! [`super::score_queue`]); [`RewardModel::score`] is the direct, blocking
//! path for tests and tools.

use candle_core::Device;

use crate::chat::{ChatMessage, ChatTemplate, ChatTemplateError, PromptError};
use crate::model::{load_model, LoadedModel, Mode, SeqInput, Transformer, WeightDType};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Turns (conversation, completion) pairs into the reward model's token ids.
/// The HTTP layer keeps one per reward model, so pairs are tokenized off the
/// engine thread, like prompts.
pub struct RewardCodec {
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

impl RewardCodec {
    pub fn from_tokenizer(tokenizer: Tokenizer) -> Result<Self, ChatTemplateError> {
        let template = ChatTemplate::from_tokenizer(&tokenizer)?;
        Ok(Self {
            tokenizer,
            template,
        })
    }

    /// Token ids of `conversation` followed by `completion` as the
    /// assistant's answer; with `limit`, a pair that certainly has more
    /// tokens is refused before it is tokenized whole.
    pub fn encode_pair(
        &self,
        conversation: &[ChatMessage],
        completion: &str,
        limit: Option<usize>,
    ) -> Result<Vec<u32>, PromptError> {
        let mut msgs = conversation.to_vec();
        msgs.push(ChatMessage::assistant(completion));
        let rendered = crate::chat::prompt::render(
            &self.template,
            &self.tokenizer,
            &msgs,
            false,
            &serde_json::Map::new(),
            crate::chat::SpecialTokenPolicy::default(),
        )?;
        rendered.encode(&self.tokenizer, limit)
    }
}

pub struct RewardModel {
    pub loaded: LoadedModel,
    pub codec: RewardCodec,
    /// Sequences per forward of [`RewardModel::score_tokens`].
    pub max_batch: usize,
}

/// Failures of loading a reward model or scoring with it.
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] ChatTemplateError),
    /// A (conversation, completion) pair could not be rendered or tokenized.
    #[error(transparent)]
    Prompt(#[from] PromptError),
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
        let loaded = load_model(dir, dtype, device)?;
        if loaded.model.score.is_none() {
            return Err(RewardError::NoScoreHead(dir.display().to_string()));
        }
        let codec = RewardCodec::from_tokenizer(Tokenizer::from_dir(dir)?)?;
        Ok(Self {
            loaded,
            codec,
            max_batch: 8,
        })
    }

    pub fn model(&self) -> &Transformer {
        &self.loaded.model
    }

    /// Token ids of `conversation` followed by `completion` as the
    /// assistant's answer; with `limit`, a pair that certainly has more
    /// tokens is refused before it is tokenized whole.
    pub fn encode_pair(
        &self,
        conversation: &[ChatMessage],
        completion: &str,
        limit: Option<usize>,
    ) -> Result<Vec<u32>, PromptError> {
        self.codec.encode_pair(conversation, completion, limit)
    }

    /// One scalar score per completion, in order.
    pub fn score(
        &self,
        conversation: &[ChatMessage],
        completions: &[String],
    ) -> Result<Vec<f64>, RewardError> {
        let context = self.model().max_positions();
        let mut encoded = Vec::with_capacity(completions.len());
        for (index, c) in completions.iter().enumerate() {
            let ids = self.encode_pair(conversation, c, None)?;
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

    /// Scores of already tokenized sequences (value of label 0 at the last
    /// token), `max_batch` whole sequences per forward.
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
            out.extend(score_rows(self.model(), &mut inputs)?);
        }
        Ok(out)
    }
}

/// One ragged forward through the score head: label 0 at each sequence's
/// last new token, in input order.
pub fn score_rows(model: &Transformer, inputs: &mut [SeqInput]) -> candle_core::Result<Vec<f64>> {
    let scores = model.score(inputs, Mode::Inference)?;
    let scores = scores.narrow(1, 0, 1)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(scores.into_iter().map(f64::from).collect())
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
