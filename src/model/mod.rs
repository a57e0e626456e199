//! The decoder-only transformer shared by serving and training, its
//! `config.json`, weight loading from HF model directories, and the
//! random-weight model writer used for tests and benchmarks.

pub mod config;
pub mod init;
pub mod kv_cache;
pub mod linear;
pub mod loader;
pub mod presets;
pub mod rope;
pub mod transformer;

pub use config::{Architecture, ModelConfig};
pub use kv_cache::KvCache;
pub use loader::{load_model, load_trainable, GenerationConfig, LoadedModel, WeightDType};
pub use transformer::{Positions, SeqInput, Transformer};

/// Which kernels a forward uses: fused, gradient-free ones for serving, or
/// composed differentiable ones for training (candle's fused rms_norm,
/// softmax_last_dim and rope produce no gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inference,
    Train,
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
