//! Arguments shared by the commands that load a model.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use clap::{Args, ValueEnum};

use crate::engine::ModelBundle;
use crate::model::WeightDType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DeviceArg {
    #[default]
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// HF model directory (config.json, *.safetensors, tokenizer.json, tokenizer_config.json).
    #[arg(long, env = "QUORUM_MODEL")]
    pub model: PathBuf,
    /// Storage dtype of weight matrices (default on CPU: bf16 checkpoints stay bf16, others f32; on GPU: the checkpoint's).
    #[arg(long, env = "QUORUM_DTYPE", value_enum)]
    pub dtype: Option<WeightDType>,
    #[arg(long, env = "QUORUM_DEVICE", value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Quantize weight matrices at load (inference only): q8_0 or q4k.
    #[arg(long, env = "QUORUM_QUANTIZE", value_enum)]
    pub quantize: Option<crate::model::Quantization>,
    /// Run bf16 weight matrices on Intel AMX tiles: auto (when the CPU has
    /// AMX), on (required), off.
    #[arg(long, env = "QUORUM_AMX", value_enum, default_value_t = crate::model::AmxMode::Auto)]
    pub amx: crate::model::AmxMode,
    /// KV cache storage: auto (a bf16 checkpoint keeps bf16, others f32),
    /// f32, f16, bf16.
    #[arg(long, env = "QUORUM_KV_CACHE_DTYPE", value_enum, default_value_t = crate::model::KvCacheDType::Auto)]
    pub kv_cache_dtype: crate::model::KvCacheDType,
}

impl ModelArgs {
    pub fn device(&self) -> anyhow::Result<Device> {
        match self.device {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda => Device::new_cuda(0)
                .context("CUDA device unavailable (build with `--features cuda` on a GPU machine)"),
        }
    }

    pub fn load(&self) -> anyhow::Result<ModelBundle> {
        let device = self.device()?;
        let mut bundle = ModelBundle::load(&self.model, self.dtype, &device)
            .with_context(|| format!("loading model from {}", self.model.display()))?;
        bundle
            .prepare_for_serving(self.quantize, self.amx)
            .with_context(|| match self.quantize {
                Some(q) => format!("quantizing {} to {q:?}", self.model.display()),
                None => format!("packing the weights of {}", self.model.display()),
            })?;
        bundle.set_kv_dtype(self.kv_cache_dtype);
        let huge = bundle.back_with_huge_pages();
        tracing::debug!(bytes = huge, "weights backed by huge pages");
        Ok(bundle)
    }
}
