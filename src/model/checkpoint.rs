//! Writing a Hugging Face model directory: `config.json`, `generation_config.json`,
//! `model.safetensors` (or `model-0000X-of-0000Y.safetensors` + `model.safetensors.index.json`)
//! and the tokenizer files: what `save_pretrained` writes and [`super::load_model`] reads.
//!
//! One writer serves random initialisation (`quorum model init`, whose tensors are generated
//! one at a time while the file is written) and training checkpoints (in-memory candle
//! tensors, converted to the chosen dtype one at a time). Tensors come in through the
//! [`TensorData`] trait: a name, a shape and bytes produced on demand.
//!
//! Design points:
//! - **Checked before writing.** Tensor names and shapes are compared with
//!   [`super::init::tensor_plan`] of the config (HF names; no `lm_head.weight` when
//!   embeddings are tied), and `config.json` goes through the loader's own validation, so a
//!   directory this module writes loads with [`super::load_model`].
//! - **Atomic.** Everything is written into a hidden staging dir beside `out` and renamed
//!   into place at the end. An error (or a crash) never leaves a half-written directory at
//!   `out`; a replaced `out` is moved aside first and deleted only after the swap.
//! - **Streaming.** Each tensor's bytes exist only while the safetensors writer copies them,
//!   so peak extra memory is one tensor in the output dtype.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::{DType, Tensor};
use safetensors::{Dtype, SafeTensorError, View};

use super::init::{tensor_plan, TensorSpec};
use super::{ModelConfig, ModelError};

/// HF's default `max_shard_size` ("5GB", decimal).
pub const DEFAULT_SHARD_MAX_BYTES: u64 = 5_000_000_000;

/// Tokenizer files every model directory gets (copying fails without them).
pub const TOKENIZER_FILES: &[&str] = &["tokenizer.json", "tokenizer_config.json"];

/// Tokenizer files copied as well when the source directory has them.
pub const OPTIONAL_TOKENIZER_FILES: &[&str] = &[
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
];

/// Element type of the written tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointDType {
    F32,
    Bf16,
    F16,
}

impl CheckpointDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }

    /// The `torch_dtype` string HF writes into `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// The candle dtype of the same name.
    pub fn candle(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub(crate) fn safetensors(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::Bf16 => Dtype::BF16,
            Self::F16 => Dtype::F16,
        }
    }
}

/// Accepts the short names (`f32`, `bf16`, `f16`) and the torch names (`float32`, ...), so
/// a CLI flag can take either and a preset's `torch_dtype` can be parsed directly.
impl FromStr for CheckpointDType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!(
                "unknown dtype `{other}`; expected f32, bf16 or f16"
            )),
        }
    }
}

/// One tensor to write: its HF name, its shape, and its bytes when the writer reaches it.
pub trait TensorData {
    fn name(&self) -> &str;
    fn shape(&self) -> Vec<usize>;
    /// The little-endian bytes of the tensor in `dtype` (exactly `numel * dtype.size()`).
    /// Called once per write, in file order.
    fn bytes(&self, dtype: CheckpointDType) -> Result<Vec<u8>, ModelError>;
}

/// An in-memory tensor, such as an entry of [`super::Transformer::named_weights`] or of a
/// `VarMap`: converted to the checkpoint dtype (on its device) when written.
impl TensorData for (String, Tensor) {
    fn name(&self) -> &str {
        &self.0
    }

    fn shape(&self) -> Vec<usize> {
        self.1.dims().to_vec()
    }

    fn bytes(&self, dtype: CheckpointDType) -> Result<Vec<u8>, ModelError> {
        tensor_bytes(&self.1, dtype).map_err(|e| ModelError::Weight {
            name: self.0.clone(),
            message: e.to_string(),
        })
    }
}

/// The named tensors of a `VarMap` (e.g. from [`super::load_trainable`]), for
/// [`write_checkpoint`]; the writer puts them in HF order.
pub fn varmap_tensors(varmap: &candle_nn::VarMap) -> Result<Vec<(String, Tensor)>, ModelError> {
    let data = varmap.data().lock().map_err(|_| ModelError::Weight {
        name: "varmap".into(),
        message: "lock poisoned".into(),
    })?;
    Ok(data
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect())
}

fn tensor_bytes(t: &Tensor, dtype: CheckpointDType) -> candle_core::Result<Vec<u8>> {
    let flat = t.flatten_all()?.to_dtype(dtype.candle())?;
    Ok(match dtype {
        CheckpointDType::F32 => le_bytes(flat.to_vec1::<f32>()?, f32::to_le_bytes),
        CheckpointDType::Bf16 => le_bytes(flat.to_vec1::<half::bf16>()?, half::bf16::to_le_bytes),
        CheckpointDType::F16 => le_bytes(flat.to_vec1::<half::f16>()?, half::f16::to_le_bytes),
    })
}

fn le_bytes<T: Copy, const N: usize>(v: Vec<T>, enc: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * N);
    for x in v {
        out.extend_from_slice(&enc(x));
    }
    out
}

/// Writes extra files (optimizer state, trainer state) into the staging directory, so they
/// appear at `out` in the same atomic rename as the weights.
pub type ExtraFiles<'a> = dyn Fn(&Path) -> std::io::Result<()> + 'a;

/// How [`write_model_dir`] writes.
#[derive(Clone, Copy)]
pub struct WriteOptions<'a> {
    pub dtype: CheckpointDType,
    /// Largest tensor-data size of one safetensors file; `None` = [`DEFAULT_SHARD_MAX_BYTES`].
    pub shard_max_bytes: Option<u64>,
    /// A directory holding [`TOKENIZER_FILES`] (and maybe [`OPTIONAL_TOKENIZER_FILES`]),
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

/// Write a training checkpoint: `tensors` (e.g. [`super::Transformer::named_weights`]) in
/// `dtype`, the tokenizer files of `tokenizer_dir`, an existing `dir` replaced, files
/// fsynced. For extra files (optimizer state) or other settings use [`write_model_dir`].
pub fn write_checkpoint(
    dir: &Path,
    config: &ModelConfig,
    tensors: &[(String, Tensor)],
    tokenizer_dir: Option<&Path>,
    dtype: CheckpointDType,
) -> Result<WriteReport, ModelError> {
    let opts = WriteOptions {
        tokenizer_dir,
        replace: true,
        sync: true,
        ..WriteOptions::new(dtype)
    };
    write_model_dir(dir, config, tensors, &opts, &|_| {})
}

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
    let mut warnings = Vec::new();
    if let Some(dir) = opts.tokenizer_dir {
        for file in TOKENIZER_FILES {
            if !dir.join(file).is_file() {
                return Err(ModelError::MissingFile {
                    dir: dir.to_path_buf(),
                    file: file.to_string(),
                });
            }
        }
        let tok_path = dir.join("tokenizer.json");
        if let Some(max_id) = max_token_id(&tok_path)? {
            if max_id as usize >= cfg.vocab_size {
                warnings.push(format!(
                    "{} has token ids up to {max_id}, beyond vocab_size {}: \
                     such tokens would index past the embedding",
                    tok_path.display(),
                    cfg.vocab_size
                ));
            }
        }
    }

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
        let optional = OPTIONAL_TOKENIZER_FILES
            .iter()
            .filter(|f| dir.join(f).is_file());
        for file in TOKENIZER_FILES.iter().chain(optional) {
            // read + write rather than fs::copy: fixtures may be read-only and the copy's
            // permissions should be ordinary.
            let src = dir.join(file);
            let bytes = std::fs::read(&src).map_err(io(&src))?;
            let dst = tdir.join(file);
            std::fs::write(&dst, bytes).map_err(io(&dst))?;
        }
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
    let names = shard_file_names(shards.len());
    let mut weight_map = BTreeMap::new();
    for (index, (shard, file)) in shards.iter().zip(&names).enumerate() {
        let path = tdir.join(file);
        let views = shard.iter().map(|&t| {
            (
                tensors[t].name(),
                Staged {
                    tensor: &tensors[t],
                    shape: &shapes[t],
                    ctx: &ctx,
                },
            )
        });
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(metadata), &path)
            .map_err(|e| safetensors_error(e, &out.join(file)))?;
        if let Some(e) = ctx.error.borrow_mut().take() {
            return Err(e);
        }
        for &t in shard {
            weight_map.insert(tensors[t].name().to_string(), file.clone());
        }
        progress(WriteProgress::File {
            path: &out.join(file),
            index,
            count: shards.len(),
        });
    }
    if shards.len() > 1 {
        let index = serde_json::json!({
            "metadata": { "total_size": data_bytes },
            "weight_map": weight_map,
        });
        write_json(&tdir.join("model.safetensors.index.json"), &index)?;
    }
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

/// Whether `cfg` describes a sequence-classification (reward) model.
pub fn is_reward_model(cfg: &ModelConfig) -> bool {
    cfg.architectures
        .iter()
        .any(|a| a.ends_with("ForSequenceClassification"))
}

/// Check that `tensors` (name, shape) are exactly the checkpoint of `cfg`: every tensor of
/// [`tensor_plan`] once, with its shape, and nothing else. Errors name the tensor. A trainer
/// can call this at start-up so a naming mistake never waits for the first checkpoint.
pub fn check_tensors<'a, S: AsRef<[usize]> + 'a>(
    cfg: &ModelConfig,
    tensors: impl IntoIterator<Item = (&'a str, S)>,
) -> Result<(), ModelError> {
    plan_order(cfg, tensors).map(|_| ())
}

/// [`check_tensors`], returning the tensors' indices in [`tensor_plan`] order.
fn plan_order<'a, S: AsRef<[usize]> + 'a>(
    cfg: &ModelConfig,
    tensors: impl IntoIterator<Item = (&'a str, S)>,
) -> Result<Vec<usize>, ModelError> {
    let plan = tensor_plan(cfg, is_reward_model(cfg))?;
    let position: HashMap<&str, usize> = plan
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut want: HashMap<&str, &TensorSpec> = plan.iter().map(|s| (s.name.as_str(), s)).collect();
    let arch = cfg.architectures.first().map_or("this", String::as_str);
    let mut order = Vec::new();
    for (index, (name, shape)) in tensors.into_iter().enumerate() {
        let shape = shape.as_ref();
        let Some(spec) = want.remove(name) else {
            let why = if plan.iter().any(|s| s.name == name) {
                "given twice".to_string()
            } else if name == "lm_head.weight" && cfg.tie_word_embeddings {
                "not written when tie_word_embeddings is true (the head is the embedding)"
                    .to_string()
            } else {
                format!("not a tensor of a {arch} checkpoint with this config")
            };
            return Err(ModelError::Weight {
                name: name.to_string(),
                message: why,
            });
        };
        if spec.shape != shape {
            return Err(ModelError::Weight {
                name: name.to_string(),
                message: format!("shape {shape:?}, the config needs {:?}", spec.shape),
            });
        }
        order.push((position[name], index));
    }
    if let Some(missing) = plan.iter().find(|s| want.contains_key(s.name.as_str())) {
        let hint = if missing.name == "lm_head.weight" {
            " (set tie_word_embeddings if the head is the embedding)"
        } else {
            ""
        };
        return Err(ModelError::Weight {
            name: missing.name.clone(),
            message: format!("missing from the tensors to write{hint}"),
        });
    }
    order.sort_unstable();
    Ok(order.into_iter().map(|(_, index)| index).collect())
}

/// The config as written: `torch_dtype` describes the files; `model_type` and
/// `architectures` are filled in when absent.
fn written_config(config: &ModelConfig, dtype: CheckpointDType) -> Result<ModelConfig, ModelError> {
    let mut cfg = config.clone();
    let arch = cfg.architecture()?;
    if cfg.architectures.is_empty() {
        cfg.architectures = vec![arch.hf_name().to_string()];
    }
    if cfg.model_type.is_none() {
        cfg.model_type = Some(arch.model_type().to_string());
    }
    cfg.torch_dtype = Some(dtype.torch_name().to_string());
    Ok(cfg)
}

/// `config.json` without `null` entries: HF configs omit unset fields, and some loaders
/// treat an explicit `null` differently from an absent key.
fn config_json(cfg: &ModelConfig) -> Result<serde_json::Value, ModelError> {
    let mut v = serde_json::to_value(cfg).map_err(|e| ModelError::Malformed {
        path: PathBuf::from("config.json"),
        message: e.to_string(),
    })?;
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    Ok(v)
}

/// `generation_config.json` with Qwen3's recommended sampling defaults.
fn generation_config_json(cfg: &ModelConfig) -> serde_json::Value {
    let mut v = serde_json::json!({
        "eos_token_id": cfg.eos_token_ids(),
        "do_sample": true,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
    });
    if let (Some(bos), Some(map)) = (cfg.bos_token_id, v.as_object_mut()) {
        map.insert("bos_token_id".into(), bos.into());
    }
    if let (Some(pad), Some(map)) = (cfg.pad_token_id, v.as_object_mut()) {
        map.insert("pad_token_id".into(), pad.into());
    }
    v
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ModelError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| ModelError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<(), ModelError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Point errors about a staged file at the file's final location, which is what the user
/// named.
fn retarget(e: ModelError, tmp_path: &Path, out: &Path) -> ModelError {
    let fix = |p: PathBuf| match p.file_name() {
        Some(name) if p == tmp_path => out.join(name),
        _ => p,
    };
    match e {
        ModelError::InvalidField {
            path,
            field,
            message,
        } => ModelError::InvalidField {
            path: fix(path),
            field,
            message,
        },
        ModelError::Malformed { path, message } => ModelError::Malformed {
            path: fix(path),
            message,
        },
        other => other,
    }
}

fn safetensors_error(e: SafeTensorError, path: &Path) -> ModelError {
    match e {
        SafeTensorError::IoError(source) => ModelError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => ModelError::Malformed {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// The largest token id in a `tokenizer.json` (model vocab and added tokens), if any.
pub fn max_token_id(path: &Path) -> Result<Option<u64>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let vocab = v
        .pointer("/model/vocab")
        .and_then(|v| v.as_object())
        .into_iter()
        .flat_map(|m| m.values().filter_map(|id| id.as_u64()));
    let added = v
        .get("added_tokens")
        .and_then(|v| v.as_array())
        .into_iter()
        .flat_map(|a| a.iter().filter_map(|t| t.get("id")?.as_u64()));
    Ok(vocab.chain(added).max())
}

/// Group the tensor indices of `order` into files of at most `max_bytes` of tensor data
/// each (a tensor larger than the limit gets a file of its own), in that order, like HF's
/// `save_pretrained`.
fn plan_shards(order: &[usize], numels: &[u64], esize: u64, max_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut current = 0u64;
    for &i in order {
        let b = numels[i] * esize;
        let last = shards.len() - 1;
        if !shards[last].is_empty() && current + b > max_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        let last = shards.len() - 1;
        shards[last].push(i);
        current += b;
    }
    shards
}

/// HF file names: `model.safetensors`, or `model-00001-of-00003.safetensors`, ...
fn shard_file_names(count: usize) -> Vec<String> {
    if count == 1 {
        vec!["model.safetensors".to_string()]
    } else {
        (1..=count)
            .map(|i| format!("model-{i:05}-of-{count:05}.safetensors"))
            .collect()
    }
}

/// Shared state of the tensors being written: dtype, progress counters, the first error.
struct WriteCtx<'a> {
    dtype: CheckpointDType,
    progress: &'a dyn Fn(WriteProgress<'_>),
    done: Cell<usize>,
    bytes_done: Cell<u64>,
    total: usize,
    bytes_total: u64,
    /// `View::data` cannot fail, so a failing tensor parks its error here (and the file
    /// gets zeros); the writer checks it after each file and aborts the staging dir.
    error: RefCell<Option<ModelError>>,
}

/// A tensor whose bytes are produced only when the safetensors writer asks for them.
struct Staged<'a, T> {
    tensor: &'a T,
    shape: &'a [usize],
    ctx: &'a WriteCtx<'a>,
}

impl<T: TensorData> View for Staged<'_, T> {
    fn dtype(&self) -> Dtype {
        self.ctx.dtype.safetensors()
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let ctx = self.ctx;
        let len = self.data_len();
        if ctx.error.borrow().is_some() {
            return Cow::Owned(vec![0; len]);
        }
        let data = match self.tensor.bytes(ctx.dtype) {
            Ok(d) if d.len() == len => d,
            Ok(d) => {
                *ctx.error.borrow_mut() = Some(ModelError::Weight {
                    name: self.tensor.name().to_string(),
                    message: format!("produced {} bytes, its shape needs {len}", d.len()),
                });
                vec![0; len]
            }
            Err(e) => {
                *ctx.error.borrow_mut() = Some(e);
                vec![0; len]
            }
        };
        ctx.done.set(ctx.done.get() + 1);
        ctx.bytes_done.set(ctx.bytes_done.get() + data.len() as u64);
        (ctx.progress)(WriteProgress::Tensor {
            name: self.tensor.name(),
            done: ctx.done.get(),
            total: ctx.total,
            bytes: data.len() as u64,
            bytes_done: ctx.bytes_done.get(),
            bytes_total: ctx.bytes_total,
        });
        Cow::Owned(data)
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.ctx.dtype.size()
    }
}

/// What is at `out` before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    Missing,
    Empty,
    NonEmpty,
}

fn out_state(out: &Path) -> Result<OutState, ModelError> {
    let io = |source| ModelError::Io {
        path: out.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OutState::Missing),
        Err(e) => Err(io(e)),
        Ok(m) if !m.is_dir() => Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        ))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).map_err(io)?;
            Ok(if entries.next().is_some() {
                OutState::NonEmpty
            } else {
                OutState::Empty
            })
        }
    }
}

/// A hidden staging directory beside `out` (same filesystem, so the final rename is
/// atomic); removed on drop unless committed.
struct StagingDir {
    path: PathBuf,
    /// Where a replaced `out` is parked during the swap.
    old: PathBuf,
    committed: bool,
}

impl StagingDir {
    fn create(out: &Path) -> Result<Self, ModelError> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|source| ModelError::Io {
            path: parent.clone(),
            source,
        })?;
        let base = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        let pid = std::process::id();
        let path = parent.join(format!(".{base}.partial-{pid}"));
        let old = parent.join(format!(".{base}.old-{pid}"));
        // A leftover from a crashed run of a process with the same pid: ours to discard.
        for stale in [&path, &old] {
            if stale.exists() {
                std::fs::remove_dir_all(stale).map_err(|source| ModelError::Io {
                    path: stale.clone(),
                    source,
                })?;
            }
        }
        std::fs::create_dir(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            old,
            committed: false,
        })
    }

    /// Move the staged directory to `out`. A non-empty `out` (only reached with `replace`)
    /// is first moved aside and deleted after the swap, so `out` is never half-written.
    fn commit(mut self, out: &Path, state: OutState) -> Result<(), ModelError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ModelError::Io { path, source }
        };
        let old = self.old.clone();
        match state {
            OutState::Missing => {}
            OutState::Empty => std::fs::remove_dir(out).map_err(io(out))?,
            OutState::NonEmpty => std::fs::rename(out, &old).map_err(io(out))?,
        }
        if let Err(e) = std::fs::rename(&self.path, out) {
            if state == OutState::NonEmpty {
                // Put the previous model back rather than leave nothing at `out`.
                let _ = std::fs::rename(&old, out);
            }
            return Err(io(out)(e));
        }
        self.committed = true;
        if state == OutState::NonEmpty {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that got us here is the one worth reporting.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::{init_model, InitOptions, TokenizerSource};
    use crate::model::presets::preset;
    use crate::model::{load_model, load_trainable, Mode, Positions, SeqInput};
    use candle_core::Device;

    /// The tiny preset with a small vocabulary (fast to write), tied or not.
    fn small_config(tied: bool) -> ModelConfig {
        let mut cfg = preset("tiny").unwrap();
        cfg.vocab_size = 300;
        cfg.tie_word_embeddings = tied;
        cfg
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer")
    }

    /// A random model written by `init`, loaded trainable, with every weight shifted so
    /// the values differ from anything init would write.
    fn trained_model(
        dir: &Path,
        tied: bool,
    ) -> (crate::model::Transformer, candle_nn::VarMap, ModelConfig) {
        let src = dir.join(if tied { "init-tied" } else { "init-untied" });
        let mut o = InitOptions::new(small_config(tied), &src);
        o.tokenizer = TokenizerSource::None;
        init_model(&o, &|_| {}).unwrap();
        let (model, varmap, cfg) = load_trainable(&src, DType::F32, &Device::Cpu).unwrap();
        for var in varmap.all_vars() {
            let shifted = ((var.as_tensor() * 1.5).unwrap() + 0.01).unwrap();
            var.set(&shifted).unwrap();
        }
        (model, varmap, cfg)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn logits(model: &crate::model::Transformer) -> Vec<f32> {
        let tokens = [1u32, 5, 77, 299, 0];
        let mut seqs = [SeqInput {
            tokens: &tokens,
            cache: None,
        }];
        values(
            &model
                .forward(&mut seqs, Positions::Last, Mode::Inference)
                .unwrap(),
        )
    }

    #[test]
    fn a_checkpoint_reloads_with_identical_tensors_and_logits() {
        let dir = tempfile::tempdir().unwrap();
        for tied in [true, false] {
            let (model, _vars, cfg) = trained_model(dir.path(), tied);
            let out = dir.path().join(format!("checkpoint-tied-{tied}"));
            let weights = model.named_weights();
            let report =
                write_checkpoint(&out, &cfg, &weights, Some(&fixture()), CheckpointDType::F32)
                    .unwrap();
            assert!(report.warnings.len() == 1, "{:?}", report.warnings); // Qwen3 ids > 300
            let names: Vec<_> = report
                .files
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                names,
                [
                    "config.json",
                    "generation_config.json",
                    "model.safetensors",
                    "tokenizer.json",
                    "tokenizer_config.json"
                ]
            );
            let on_disk =
                candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)
                    .unwrap();
            assert_eq!(on_disk.len(), weights.len());
            assert_eq!(on_disk.contains_key("lm_head.weight"), !tied);
            for (name, t) in &weights {
                assert_eq!(on_disk[name].dims(), t.dims(), "{name}");
                assert!(values(&on_disk[name]) == values(t), "{name} differs");
            }
            let loaded = load_model(&out, None, &Device::Cpu).unwrap();
            assert_eq!(loaded.config.tie_word_embeddings, tied);
            assert_eq!(loaded.config.torch_dtype.as_deref(), Some("float32"));
            assert_eq!(loaded.config.architectures, ["Qwen3ForCausalLM"]);
            assert_eq!(loaded.eos_token_ids(), vec![151_645]);
            assert!(logits(&loaded.model) == logits(&model));
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                if tied { 2 } else { 4 }
            );
        }
    }

    #[test]
    fn half_precision_checkpoints_round_each_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let (model, _vars, cfg) = trained_model(dir.path(), true);
        let weights = model.named_weights();
        for dtype in [CheckpointDType::Bf16, CheckpointDType::F16] {
            let out = dir.path().join(dtype.torch_name());
            write_checkpoint(&out, &cfg, &weights, None, dtype).unwrap();
            let on_disk =
                candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)
                    .unwrap();
            for (name, t) in &weights {
                assert_eq!(on_disk[name].dtype(), dtype.candle());
                assert!(values(&on_disk[name]) == values(&t.to_dtype(dtype.candle()).unwrap()));
            }
            let loaded = load_model(&out, None, &Device::Cpu).unwrap();
            assert_eq!(
                loaded.config.torch_dtype.as_deref(),
                Some(dtype.torch_name())
            );
        }
    }

    #[test]
    fn sharded_checkpoints_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (model, vars, cfg) = trained_model(dir.path(), false);
        let opts = WriteOptions {
            shard_max_bytes: Some(40_000),
            ..WriteOptions::new(CheckpointDType::F32)
        };
        let index = |out: &Path| -> serde_json::Value {
            serde_json::from_slice(
                &std::fs::read(out.join("model.safetensors.index.json")).unwrap(),
            )
            .unwrap()
        };
        let out = dir.path().join("sharded");
        let report = write_model_dir(&out, &cfg, &model.named_weights(), &opts, &|_| {}).unwrap();
        let shards = report
            .files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".safetensors"))
            .count();
        assert!(shards >= 3, "{shards}");
        let first = format!("model-00001-of-{shards:05}.safetensors");
        assert_eq!(
            index(&out)["weight_map"]["model.embed_tokens.weight"],
            first.as_str()
        );
        let loaded = load_model(&out, None, &Device::Cpu).unwrap();
        assert!(logits(&loaded.model) == logits(&model));

        // A VarMap's tensors come in hash order; the files follow HF's order all the same.
        let from_vars = dir.path().join("from-varmap");
        let tensors = varmap_tensors(&vars).unwrap();
        write_model_dir(&from_vars, &cfg, &tensors, &opts, &|_| {}).unwrap();
        assert_eq!(index(&from_vars), index(&out));
        let loaded = load_model(&from_vars, None, &Device::Cpu).unwrap();
        assert!(logits(&loaded.model) == logits(&model));
    }

    #[test]
    fn replacing_keeps_the_old_checkpoint_until_the_new_one_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let (model, vars, cfg) = trained_model(dir.path(), true);
        let out = dir.path().join("checkpoint-000100");
        write_checkpoint(
            &out,
            &cfg,
            &model.named_weights(),
            None,
            CheckpointDType::F32,
        )
        .unwrap();
        let first = std::fs::read(out.join("model.safetensors")).unwrap();

        /// Fails on its third tensor, like a device error in the middle of a write.
        struct Failing<'a>(&'a (String, Tensor), usize);
        impl TensorData for Failing<'_> {
            fn name(&self) -> &str {
                self.0.name()
            }
            fn shape(&self) -> Vec<usize> {
                self.0.shape()
            }
            fn bytes(&self, dtype: CheckpointDType) -> Result<Vec<u8>, ModelError> {
                if self.1 == 2 {
                    return Err(ModelError::Weight {
                        name: self.0 .0.clone(),
                        message: "device lost".into(),
                    });
                }
                self.0.bytes(dtype)
            }
        }
        let weights = model.named_weights();
        let failing: Vec<Failing> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Failing(w, i))
            .collect();
        let opts = WriteOptions {
            replace: true,
            ..WriteOptions::new(CheckpointDType::F32)
        };
        let err = write_model_dir(&out, &cfg, &failing, &opts, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("device lost"), "{err}");
        assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), first);

        // Extra files land in the same rename; a failing extra aborts the whole write.
        for var in vars.all_vars() {
            var.set(&(var.as_tensor() * 2.0).unwrap()).unwrap();
        }
        let bad_extra =
            |_: &Path| -> std::io::Result<()> { Err(std::io::Error::other("disk full")) };
        let opts = WriteOptions {
            replace: true,
            extra_files: Some(&bad_extra),
            ..WriteOptions::new(CheckpointDType::F32)
        };
        let err = write_model_dir(&out, &cfg, &model.named_weights(), &opts, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), first);

        let extra = |staging: &Path| std::fs::write(staging.join("optimizer.bin"), b"moments");
        let opts = WriteOptions {
            replace: true,
            sync: true,
            extra_files: Some(&extra),
            ..WriteOptions::new(CheckpointDType::F32)
        };
        let report = write_model_dir(&out, &cfg, &model.named_weights(), &opts, &|_| {}).unwrap();
        assert!(report.files.contains(&out.join("optimizer.bin")));
        assert_eq!(
            std::fs::read(out.join("optimizer.bin")).unwrap(),
            b"moments"
        );
        assert_ne!(std::fs::read(out.join("model.safetensors")).unwrap(), first);
        let loaded = load_model(&out, None, &Device::Cpu).unwrap();
        assert!(logits(&loaded.model) == logits(&model));
        // Only the init source and the checkpoint: no staging or parked directories.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn tensors_that_do_not_match_the_config_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (model, _vars, cfg) = trained_model(dir.path(), true);
        let out = dir.path().join("bad");
        let mut weights = model.named_weights();
        let embed = weights[0].1.clone();
        let refuse = |w: &[(String, Tensor)], want: &str| {
            let err = write_checkpoint(&out, &cfg, w, None, CheckpointDType::F32)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
            assert!(!out.exists());
        };
        weights.push(("lm_head.weight".into(), embed.clone()));
        refuse(
            &weights,
            "lm_head.weight`: not written when tie_word_embeddings",
        );
        weights.pop();
        weights.push(("model.extra.weight".into(), embed.clone()));
        refuse(
            &weights,
            "model.extra.weight`: not a tensor of a Qwen3ForCausalLM",
        );
        weights.pop();
        let norm = weights.pop().unwrap();
        refuse(&weights, "model.norm.weight`: missing");
        weights.push((norm.0, embed));
        refuse(&weights, "shape [300, 64], the config needs [64]");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let untied = small_config(false);
        let err = check_tensors(
            &untied,
            model
                .named_weights()
                .iter()
                .map(|(n, t)| (n.as_str(), t.dims())),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("lm_head.weight`: missing") && err.contains("tie_word_embeddings"),
            "{err}"
        );
    }

    #[test]
    fn an_existing_directory_is_kept_without_replace() {
        let dir = tempfile::tempdir().unwrap();
        let (model, _vars, cfg) = trained_model(dir.path(), true);
        let out = dir.path().join("m");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("keep.txt"), "x").unwrap();
        let opts = WriteOptions::new(CheckpointDType::F32);
        let err = write_model_dir(&out, &cfg, &model.named_weights(), &opts, &|_| {}).unwrap_err();
        assert!(
            matches!(&err, ModelError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{err}"
        );
        assert!(out.join("keep.txt").exists());
    }
}
