//! Writing a Hugging Face model directory: `config.json`, `generation_config.json`,
//! `model.safetensors` (or `model-0000X-of-0000Y.safetensors` + `model.safetensors.index.json`)
//! and the tokenizer files: what `save_pretrained` writes and [`super::load_model`] reads.
//!
//! One writer serves random initialisation (`quorum model init`, whose tensors are generated
//! one at a time while the file is written) and training checkpoints (in-memory candle
//! tensors, converted to the chosen dtype one at a time). Tensors come in through the
//! [`TensorData`] trait: a name, a shape and bytes produced on demand.
//!
//! Layout: [`write_model_dir`] (here) runs the steps in order; `tensors` has the dtype and
//! the [`TensorData`] trait, `options` the options, progress events and report, `files`
//! the config and tokenizer files, `shards` the safetensors files and their index, and
//! `staging` the staging directory and its atomic swap. The expected tensors come from
//! [`super::tensor_plan`].
//!
//! Design points:
//! - **Checked before writing.** Tensor names and shapes are compared with
//!   [`super::tensor_plan::tensor_plan`] of the config (HF names; no `lm_head.weight` when
//!   embeddings are tied), and `config.json` goes through the loader's own validation, so a
//!   directory this module writes loads with [`super::load_model`].
//! - **Atomic.** Everything is written into a hidden staging dir beside `out` and renamed
//!   into place at the end. An error (or a crash) never leaves a half-written directory at
//!   `out`; a replaced `out` is moved aside first and deleted only after the swap.
//! - **Streaming.** Each tensor's bytes exist only while the safetensors writer copies them,
//!   so peak extra memory is one tensor in the output dtype.

mod files;
mod options;
mod shards;
mod staging;
mod tensors;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::path::Path;

use super::tensor_plan::plan_order;
use super::{ModelConfig, ModelError};
use files::{check_tokenizer, config_json, copy_tokenizer, generation_config_json};
use files::{retarget, write_json, written_config};
use shards::{plan_shards, write_weights, WriteCtx};
use staging::{out_state, sync_dir, OutState, StagingDir};

pub use files::{max_token_id, OPTIONAL_TOKENIZER_FILES, TOKENIZER_FILES};
pub use options::{ExtraFiles, WriteOptions, WriteProgress, WriteReport, DEFAULT_SHARD_MAX_BYTES};
pub use tensors::{CheckpointDType, TensorData};

/// Write a complete HF model directory at `out` (see the module docs).
///
/// `config` is written as given except `torch_dtype` (set to `opts.dtype`) and, when
/// absent, `model_type` / `architectures` (from the architecture). `progress` is called on
/// this thread.
pub fn write_model_dir<T: TensorData>(
    out: &Path,
    config: &ModelConfig,
    tensors: &[T],
    opts: &WriteOptions<'_>,
    progress: &dyn Fn(WriteProgress<'_>),
) -> Result<WriteReport, ModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };

    // Refuse early, before producing any tensor.
    let out_state = out_state(out)?;
    if out_state == OutState::NonEmpty && !opts.replace {
        return Err(ModelError::Io {
            path: out.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "directory exists and is not empty (use force / --force to replace it)",
            ),
        });
    }

    let cfg = written_config(config, opts.dtype)?;
    let shapes: Vec<Vec<usize>> = tensors.iter().map(TensorData::shape).collect();
    // Files follow HF's tensor order whatever order the tensors come in (a VarMap has none).
    let order = plan_order(&cfg, tensors.iter().map(TensorData::name).zip(&shapes))?;
    let esize = opts.dtype.size() as u64;
    let numels: Vec<u64> = shapes
        .iter()
        .map(|s| s.iter().map(|&d| d as u64).product())
        .collect();
    let shards = plan_shards(
        &order,
        &numels,
        esize,
        opts.shard_max_bytes.unwrap_or(DEFAULT_SHARD_MAX_BYTES),
    );
    let params: u64 = numels.iter().sum();
    let data_bytes = params * esize;

    // Tokenizer sanity before any heavy work: missing files are an error, a vocabulary
    // wider than the embedding is a warning (e.g. llama-3.2-1b with the Qwen3 fixture).
    let warnings = match opts.tokenizer_dir {
        Some(dir) => check_tokenizer(dir, cfg.vocab_size)?,
        None => Vec::new(),
    };

    let tmp = StagingDir::create(out)?;
    let tdir = tmp.path.clone();

    // config.json first, then re-read through the loader's own validation, so a config the
    // loader would reject fails here in milliseconds instead of after writing weights.
    let config_path = tdir.join("config.json");
    write_json(&config_path, &config_json(&cfg)?)?;
    ModelConfig::from_file(&config_path).map_err(|e| retarget(e, &config_path, out))?;
    let generation = match opts.generation_config {
        Some(v) => v.clone(),
        None => generation_config_json(&cfg),
    };
    write_json(&tdir.join("generation_config.json"), &generation)?;
    if let Some(dir) = opts.tokenizer_dir {
        copy_tokenizer(dir, &tdir)?;
    }

    progress(WriteProgress::Start {
        tensors: tensors.len(),
        params,
        bytes: data_bytes,
        files: shards.len(),
    });
    let ctx = WriteCtx {
        dtype: opts.dtype,
        progress,
        done: Cell::new(0),
        bytes_done: Cell::new(0),
        total: tensors.len(),
        bytes_total: data_bytes,
        error: RefCell::new(None),
    };
    write_weights(&tdir, out, (tensors, &shapes), &shards, &ctx)?;
    if let Some(extra) = opts.extra_files {
        extra(&tdir).map_err(io(out))?;
    }

    // Collect the listing and sizes before the rename (same files, final names).
    let mut files = Vec::new();
    let mut bytes = 0;
    for entry in std::fs::read_dir(&tdir).map_err(io(&tdir))? {
        let entry = entry.map_err(io(&tdir))?;
        let meta = entry.metadata().map_err(io(&entry.path()))?;
        if opts.sync && meta.is_file() {
            let f = std::fs::File::open(entry.path()).map_err(io(&entry.path()))?;
            f.sync_all().map_err(io(&entry.path()))?;
        }
        bytes += meta.len();
        files.push(out.join(entry.file_name()));
    }
    files.sort();
    if opts.sync {
        sync_dir(&tdir)?;
    }

    tmp.commit(out, out_state)?;
    if opts.sync {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(WriteReport {
        params,
        bytes,
        files,
        warnings,
    })
}
