//! A local reward model (`--reward-model DIR`, a `*ForSequenceClassification`
//! directory) as a [`RewardSource`]: loaded as the server loads
//! `--reward-model` ([`RewardModel::load`]), pairs rendered with its own
//! chat template ([`crate::engine::RewardCodec`]).

use std::path::Path;

use candle_core::Device;

use crate::chat::ChatMessage;
use crate::engine::reward::RewardModel;

use super::source::{RewardSource, SourceError};

pub struct LocalReward {
    model: RewardModel,
    name: String,
}

impl LocalReward {
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SourceError> {
        let model = RewardModel::load(dir, None, device)
            .map_err(|e| SourceError::Invalid(format!("--reward-model {}: {e}", dir.display())))?;
        Ok(Self {
            model,
            name: dir.display().to_string(),
        })
    }
}

impl RewardSource for LocalReward {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn score(
        &self,
        conversation: &[ChatMessage],
        completions: &[String],
    ) -> Result<Vec<f64>, SourceError> {
        crate::engine::in_engine_pool(|| self.model.score(conversation, completions))
            .map_err(|e| SourceError::Engine(format!("reward model {}: {e}", self.name)))
    }
}
