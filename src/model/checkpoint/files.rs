//! The non-weight files of a model directory: `config.json` (as written, and re-read
//! through the loader's validation), `generation_config.json`, and the tokenizer files
//! (checked against the vocabulary, then copied).

use std::path::{Path, PathBuf};

use super::tensors::CheckpointDType;
use crate::model::{ModelConfig, ModelError};

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

/// Checks that `dir` holds every file of [`TOKENIZER_FILES`] (an error otherwise) and
/// returns a warning when its token ids go beyond `vocab_size` (e.g. llama-3.2-1b with
/// the Qwen3 fixture).
pub(super) fn check_tokenizer(dir: &Path, vocab_size: usize) -> Result<Vec<String>, ModelError> {
    let mut warnings = Vec::new();
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
        if max_id as usize >= vocab_size {
            warnings.push(format!(
                "{} has token ids up to {max_id}, beyond vocab_size {}: \
                 such tokens would index past the embedding",
                tok_path.display(),
                vocab_size
            ));
        }
    }
    Ok(warnings)
}

/// Copies [`TOKENIZER_FILES`] and those of [`OPTIONAL_TOKENIZER_FILES`] that `dir` has
/// into `dst_dir`.
pub(super) fn copy_tokenizer(dir: &Path, dst_dir: &Path) -> Result<(), ModelError> {
    let optional = OPTIONAL_TOKENIZER_FILES
        .iter()
        .filter(|f| dir.join(f).is_file());
    for file in TOKENIZER_FILES.iter().chain(optional) {
        // read + write rather than fs::copy: fixtures may be read-only and the copy's
        // permissions should be ordinary.
        let src = dir.join(file);
        let bytes = std::fs::read(&src).map_err(|source| ModelError::Io {
            path: src.clone(),
            source,
        })?;
        let dst = dst_dir.join(file);
        std::fs::write(&dst, bytes).map_err(|source| ModelError::Io {
            path: dst.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The config as written: `torch_dtype` describes the files; `model_type` and
/// `architectures` are filled in when absent.
pub(super) fn written_config(
    config: &ModelConfig,
    dtype: CheckpointDType,
) -> Result<ModelConfig, ModelError> {
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
pub(super) fn config_json(cfg: &ModelConfig) -> Result<serde_json::Value, ModelError> {
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
pub(super) fn generation_config_json(cfg: &ModelConfig) -> serde_json::Value {
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

pub(super) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ModelError> {
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

/// Point errors about a staged file at the file's final location, which is what the user
/// named.
pub(super) fn retarget(e: ModelError, tmp_path: &Path, out: &Path) -> ModelError {
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
