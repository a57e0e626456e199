//! How a model is brought up for serving, defined once for every command
//! that serves one (`quorum serve`, `generate`, the benches, `train
//! filter`): the load settings ([`ServingArgs`]: flag, `QUORUM_*` env var
//! and TOML key in one place) and the preparation that follows the load
//! ([`load_for_serving`]: reward model, quantize or pack the weights, KV
//! cache dtype, huge pages).

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;

use super::bundle::{BundleError, ModelBundle};
use crate::model::{AmxMode, KvCacheDType, Quantization, WeightDType};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceArg {
    #[default]
    Cpu,
    Cuda,
}

impl DeviceArg {
    /// The candle device; CUDA needs a `--features cuda` build and a GPU.
    pub fn device(self) -> Result<Device, ServingError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda => Device::new_cuda(0).map_err(|e| ServingError::Device(e.to_string())),
        }
    }
}

/// The load settings shared by every serving command. Each is an `Option`
/// so `quorum serve` can layer its TOML file under flags and env; the
/// getters give the defaults.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Deserialize)]
#[serde(default)]
pub struct ServingArgs {
    /// Storage dtype of weight matrices [default on CPU: bf16 checkpoints
    /// stay bf16, others f32; on GPU: the checkpoint's].
    #[arg(long, env = "QUORUM_DTYPE", value_enum)]
    pub dtype: Option<WeightDType>,
    /// Device to run on [default: cpu; cuda needs a `--features cuda` build].
    #[arg(long, env = "QUORUM_DEVICE", value_enum)]
    pub device: Option<DeviceArg>,
    /// Quantize weight matrices at load (inference only): q8_0 or q4k [default: none].
    #[arg(long, env = "QUORUM_QUANTIZE", value_enum)]
    pub quantize: Option<Quantization>,
    /// Run bf16 weight matrices on Intel AMX tiles: auto (when the CPU has
    /// AMX), on (required), off [default: auto].
    #[arg(long, env = "QUORUM_AMX", value_enum)]
    pub amx: Option<AmxMode>,
    /// KV cache storage: auto, f32, f16, bf16 [default: auto: a bf16
    /// checkpoint keeps bf16, others f32].
    #[arg(long, env = "QUORUM_KV_CACHE_DTYPE", value_enum)]
    pub kv_cache_dtype: Option<KvCacheDType>,
    /// Repack f32 weight matrices into GEMM panels for the AVX-512 kernel
    /// (off keeps them row-major, for A/B runs) [default: on].
    #[arg(long, env = "QUORUM_PACK_F32", value_parser = clap::builder::BoolishValueParser::new())]
    pub pack_f32: Option<bool>,
    /// Back the weights with 2 MiB transparent huge pages after loading [default: on].
    #[arg(long, env = "QUORUM_HUGE_PAGES", value_parser = clap::builder::BoolishValueParser::new())]
    pub huge_pages: Option<bool>,
}

impl ServingArgs {
    /// `self` where set, else `lower` (CLI/env over a config file).
    pub fn or(self, lower: Self) -> Self {
        Self {
            dtype: self.dtype.or(lower.dtype),
            device: self.device.or(lower.device),
            quantize: self.quantize.or(lower.quantize),
            amx: self.amx.or(lower.amx),
            kv_cache_dtype: self.kv_cache_dtype.or(lower.kv_cache_dtype),
            pack_f32: self.pack_f32.or(lower.pack_f32),
            huge_pages: self.huge_pages.or(lower.huge_pages),
        }
    }

    pub fn device(&self) -> Result<Device, ServingError> {
        self.device.unwrap_or_default().device()
    }
}

/// Why a model could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("CUDA device unavailable (build with `--features cuda` on a GPU machine): {0}")]
    Device(String),
    #[error("loading model from {dir}: {source}")]
    Load {
        dir: PathBuf,
        source: Box<BundleError>,
    },
    /// The reward model failed to load (the error names its directory).
    #[error(transparent)]
    Reward(Box<BundleError>),
    #[error("preparing the weights of {dir} for serving: {source}")]
    Prepare {
        dir: PathBuf,
        source: Box<BundleError>,
    },
}

/// Loads the model at `dir` (with the reward model at `reward`, if any, on
/// the same device) and puts it in serving form: quantized, or bf16 packed
/// for AMX and f32 packed for the GEMM kernel; KV cache dtype set; weights
/// on huge pages.
pub fn load_for_serving(
    dir: &Path,
    reward: Option<&Path>,
    args: &ServingArgs,
) -> Result<ModelBundle, ServingError> {
    let device = args.device()?;
    let mut bundle =
        ModelBundle::load(dir, args.dtype, &device).map_err(|e| ServingError::Load {
            dir: dir.to_path_buf(),
            source: Box::new(e),
        })?;
    if let Some(rm) = reward {
        bundle
            .load_reward(rm, args.dtype, &device)
            .map_err(|e| ServingError::Reward(Box::new(e)))?;
    }
    let packed = bundle
        .prepare_for_serving(
            args.quantize,
            args.amx.unwrap_or_default(),
            args.pack_f32.unwrap_or(true),
        )
        .map_err(|e| ServingError::Prepare {
            dir: dir.to_path_buf(),
            source: Box::new(e),
        })?;
    tracing::debug!(layers = packed, "weights packed for serving");
    bundle.set_kv_dtype(args.kv_cache_dtype.unwrap_or_default());
    if args.huge_pages.unwrap_or(true) {
        let bytes = bundle.back_with_huge_pages();
        tracing::debug!(bytes, "weights backed by huge pages");
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serving: ServingArgs,
    }

    #[test]
    fn switches_take_on_and_off_words_and_layer_over_a_file() {
        let cli = Cli::parse_from(["t", "--pack-f32", "off", "--huge-pages", "0"]);
        assert_eq!(cli.serving.pack_f32, Some(false));
        assert_eq!(cli.serving.huge_pages, Some(false));
        let cli = Cli::parse_from(["t", "--pack-f32", "on"]);
        assert_eq!(cli.serving.pack_f32, Some(true));
        let file = ServingArgs {
            pack_f32: Some(false),
            amx: Some(AmxMode::Off),
            ..ServingArgs::default()
        };
        let merged = cli.serving.or(file);
        assert_eq!(merged.pack_f32, Some(true));
        assert_eq!(merged.amx, Some(AmxMode::Off));
        assert!(Cli::try_parse_from(["t", "--pack-f32", "maybe"]).is_err());
    }
}
