//! The decoder-only transformer shared by serving and training, its
//! `config.json`, weight loading from HF model directories, and the
//! random-weight model writer used for tests and benchmarks.
//!
//! - [`transformer`]: the model and its forward; `serving_weights`: the
//!   serving-only conversions of its weights (quantization, AMX and f32
//!   packing, huge pages), applied once at load;
//! - [`config`], [`presets`], [`loader`]: `config.json`, built-in shapes,
//!   loading a model directory;
//! - [`tensor_plan`]: the HF tensor layout of a config, shared by
//!   [`init`] (random values for it) and [`checkpoint`] (the writer of model
//!   directories, for init and for training checkpoints);
//! - [`gguf_export`], [`gguf_vocab`]: GGUF files for llama.cpp;
//! - [`kv_cache`], `decode_attention`, [`rope`], [`linear`],
//!   [`train_ops`]: the forward's parts.

pub mod checkpoint;
pub mod config;
mod decode_attention;
pub mod gguf_export;
pub mod gguf_vocab;
pub mod init;
pub mod kv_cache;
pub mod layers;
pub mod linear;
pub mod loader;
pub mod presets;
pub mod rope;
mod serving_weights;
pub mod tensor_plan;
#[cfg(test)]
pub(crate) mod test_fixtures;
pub mod train_ops;
pub mod transformer;

pub use checkpoint::{write_model_dir, CheckpointDType, WriteOptions};
pub use config::{Architecture, ModelConfig};
pub use kv_cache::{KvCache, KvView, PrefixView, SharedKv};
pub use loader::{load_model, load_trainable, GenerationConfig, LoadedModel, WeightDType};
pub use transformer::{Positions, SeqInput, Transformer};

/// Weight quantization applied at load for serving (`--quantize`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// 8-bit blocks of 32 with an f16 scale (GGML Q8_0): ~1.06 bytes/weight.
    #[value(name = "q8_0")]
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 4-bit k-quants in super-blocks of 256 (GGML Q4_K): ~0.56 bytes/weight.
    #[value(name = "q4k")]
    Q4k,
}

impl Quantization {
    pub fn ggml(self) -> candle_core::quantized::GgmlDType {
        match self {
            Self::Q8_0 => candle_core::quantized::GgmlDType::Q8_0,
            Self::Q4k => candle_core::quantized::GgmlDType::Q4K,
        }
    }
}

/// Whether bf16 weight matrices run on Intel AMX tiles (`--amx`). Packing
/// reorders each bf16 matrix once at load; activations are then rounded to
/// bf16 inside those matmuls (see [`crate::kernels::amx`]).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum AmxMode {
    /// Pack bf16 weights when the CPU and OS support AMX; otherwise run the
    /// AVX-512/AVX2 kernels.
    #[default]
    Auto,
    /// Require AMX (error at load if unavailable or the weights aren't bf16).
    On,
    /// Never use AMX.
    Off,
}

/// Storage type of the KV cache (`--kv-cache-dtype`). Half precision
/// halves the cache's memory and the bytes decode attention reads per step;
/// K and V are rounded once when stored (llama.cpp's default cache is f16).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheDType {
    /// The weights' storage type when it is half precision (a bf16
    /// checkpoint keeps a bf16 cache), else the activations' (f32).
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl KvCacheDType {
    /// The cache dtype for a model whose dense weights are stored as
    /// `weights` and whose activations are `activations`.
    pub fn resolve(
        self,
        weights: candle_core::DType,
        activations: candle_core::DType,
    ) -> candle_core::DType {
        use candle_core::DType;
        match self {
            KvCacheDType::Auto => match weights {
                DType::F16 | DType::BF16 => weights,
                _ => activations,
            },
            KvCacheDType::F32 => DType::F32,
            KvCacheDType::F16 => DType::F16,
            KvCacheDType::Bf16 => DType::BF16,
        }
    }
}

/// Which kernels a forward uses: fused, gradient-free ones for serving, or
/// differentiable ones for training (candle's fused rms_norm,
/// softmax_last_dim and rope produce no gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inference,
    /// Differentiable, through the fused training ops of [`train_ops`] (one
    /// graph node per norm, rope, attention, activation and projection).
    Train,
    /// Differentiable, through candle's composed ops only
    /// ([`train_ops::composed`]): the reference [`Mode::Train`] is checked
    /// against.
    TrainComposed,
}

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: malformed: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{}: field `{field}`: {message}", path.display())]
    InvalidField {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("unsupported architecture `{found}`; supported: {supported}")]
    UnsupportedArchitecture { found: String, supported: String },
    #[error("{}: missing required file `{file}`", dir.display())]
    MissingFile { dir: PathBuf, file: String },
    #[error("weight `{name}`: {message}")]
    Weight { name: String, message: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
