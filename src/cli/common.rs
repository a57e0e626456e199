//! Arguments shared by the commands that load a model.

use std::path::PathBuf;

use candle_core::Device;
use clap::Args;

use crate::engine::serving::{load_for_serving, ServingArgs};
use crate::engine::ModelBundle;

pub use crate::engine::serving::DeviceArg;

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// HF model directory (config.json, *.safetensors, tokenizer.json, tokenizer_config.json).
    #[arg(long, env = "QUORUM_MODEL")]
    pub model: PathBuf,
    /// How the model is loaded and prepared (the same flags as `quorum serve`).
    #[command(flatten)]
    pub serving: ServingArgs,
}

impl ModelArgs {
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(self.serving.device()?)
    }

    /// The model in serving form (see [`load_for_serving`]).
    pub fn load(&self) -> anyhow::Result<ModelBundle> {
        Ok(load_for_serving(&self.model, None, &self.serving)?)
    }
}
