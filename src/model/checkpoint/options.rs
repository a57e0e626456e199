//! How a write is configured ([`WriteOptions`]), the progress it reports
//! ([`WriteProgress`]) and what it produced ([`WriteReport`]).

use std::path::{Path, PathBuf};

use super::tensors::CheckpointDType;

/// HF's default `max_shard_size` ("5GB", decimal).
pub const DEFAULT_SHARD_MAX_BYTES: u64 = 5_000_000_000;

/// Writes extra files (optimizer state, trainer state) into the staging directory, so they
/// appear at `out` in the same atomic rename as the weights.
pub type ExtraFiles<'a> = dyn Fn(&Path) -> std::io::Result<()> + 'a;

/// How [`super::write_model_dir`] writes.
#[derive(Clone, Copy)]
pub struct WriteOptions<'a> {
    pub dtype: CheckpointDType,
    /// Largest tensor-data size of one safetensors file; `None` = [`DEFAULT_SHARD_MAX_BYTES`].
    pub shard_max_bytes: Option<u64>,
    /// A directory holding [`super::TOKENIZER_FILES`] (and maybe [`super::OPTIONAL_TOKENIZER_FILES`]),
    /// copied into the model directory. `None` writes weights and configs only.
    pub tokenizer_dir: Option<&'a Path>,
    /// Replace `out` if it exists and is not empty (otherwise that is an error).
    pub replace: bool,
    /// `fsync` every file and the directory before the rename, so a power loss right after
    /// the write cannot leave a renamed directory with missing data.
    pub sync: bool,
    /// `generation_config.json` to write; `None` derives one from the config's token ids
    /// with Qwen3's recommended sampling defaults.
    pub generation_config: Option<&'a serde_json::Value>,
    /// Called with the staging directory after the weights are written, before the rename.
    pub extra_files: Option<&'a ExtraFiles<'a>>,
}

impl std::fmt::Debug for WriteOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("dtype", &self.dtype)
            .field("shard_max_bytes", &self.shard_max_bytes)
            .field("tokenizer_dir", &self.tokenizer_dir)
            .field("replace", &self.replace)
            .field("sync", &self.sync)
            .field("generation_config", &self.generation_config)
            .field("extra_files", &self.extra_files.is_some())
            .finish()
    }
}

impl WriteOptions<'_> {
    /// Defaults: HF shard size, no tokenizer, no replace, no fsync, derived generation config.
    pub fn new(dtype: CheckpointDType) -> Self {
        Self {
            dtype,
            shard_max_bytes: None,
            tokenizer_dir: None,
            replace: false,
            sync: false,
            generation_config: None,
            extra_files: None,
        }
    }
}

/// Progress events, for a CLI progress bar (bytes are tensor-data bytes).
#[derive(Debug, Clone, Copy)]
pub enum WriteProgress<'a> {
    /// Before any tensor's bytes are produced: the totals.
    Start {
        tensors: usize,
        params: u64,
        bytes: u64,
        files: usize,
    },
    /// One tensor produced and handed to the file writer.
    Tensor {
        name: &'a str,
        /// Tensors finished so far, this one included.
        done: usize,
        total: usize,
        /// This tensor's bytes.
        bytes: u64,
        /// Bytes finished so far, this one included.
        bytes_done: u64,
        bytes_total: u64,
    },
    /// One safetensors file complete (in the staging dir; `path` is its final location).
    File {
        path: &'a Path,
        index: usize,
        count: usize,
    },
}

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Total number of weight elements.
    pub params: u64,
    /// Total size on disk of every file written (weights with headers, configs, tokenizer).
    pub bytes: u64,
    /// Every file written, at its final location under `out`, sorted.
    pub files: Vec<PathBuf>,
    /// Non-fatal problems worth showing, e.g. a tokenizer whose ids exceed `vocab_size`.
    pub warnings: Vec<String>,
}
