//! Loading a Hugging Face model directory: `config.json`, `model.safetensors`
//! or sharded `model-*.safetensors` + `model.safetensors.index.json`, and the
//! optional `generation_config.json`. Tokenizer files are read by
//! [`crate::tokenizer`]. Errors name the file and, where known, the field.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::config::TokenIds;
use super::transformer::{Loaders, Transformer};
use super::{ModelConfig, ModelError};

/// Storage dtype of the weight matrices (`--dtype`). Activations, norms and
/// biases are f32 on CPU whatever this is; on GPU they follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    F32,
    Bf16,
    F16,
}

impl WeightDType {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }
}

/// `generation_config.json`: the model's default sampling and stop ids.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
}

pub struct LoadedModel {
    pub model: Transformer,
    pub config: ModelConfig,
    pub generation: GenerationConfig,
    pub dir: PathBuf,
    pub weight_dtype: WeightDType,
    /// Bytes of weight data read per decode step (all matrices, embeddings once).
    pub weight_bytes: u64,
}

impl LoadedModel {
    /// Stop ids from `config.json` and `generation_config.json`, deduplicated.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut ids: BTreeSet<u32> = self.config.eos_token_ids().into_iter().collect();
        if let Some(g) = &self.generation.eos_token_id {
            ids.extend(g.to_vec());
        }
        ids.into_iter().collect()
    }
}

/// Where a model directory's weights live.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(ModelError::MissingFile {
            dir: dir.to_path_buf(),
            file: "model.safetensors (or model.safetensors.index.json)".into(),
        });
    }
    #[derive(Deserialize)]
    struct Index {
        weight_map: std::collections::HashMap<String, String>,
    }
    let text = read(&index)?;
    let idx: Index = serde_json::from_str(&text).map_err(|e| ModelError::Malformed {
        path: index.clone(),
        message: e.to_string(),
    })?;
    let files: BTreeSet<&String> = idx.weight_map.values().collect();
    if files.is_empty() {
        return Err(ModelError::InvalidField {
            path: index,
            field: "weight_map".into(),
            message: "is empty".into(),
        });
    }
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(ModelError::InvalidField {
                path: index.clone(),
                field: "weight_map".into(),
                message: format!("names `{f}`, which does not exist"),
            });
        }
        out.push(p);
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The dtype the checkpoint stores its matrices in (first 2-D tensor found).
pub fn stored_dtype(files: &[PathBuf]) -> Result<DType, ModelError> {
    for f in files {
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(f) }.map_err(|e| {
            ModelError::Malformed {
                path: f.clone(),
                message: e.to_string(),
            }
        })?;
        for (_, view) in st.tensors() {
            if view.shape().len() == 2 {
                return match view.dtype() {
                    safetensors::Dtype::BF16 => Ok(DType::BF16),
                    safetensors::Dtype::F16 => Ok(DType::F16),
                    safetensors::Dtype::F32 => Ok(DType::F32),
                    other => Err(ModelError::Malformed {
                        path: f.clone(),
                        message: format!("unsupported weight dtype {other:?}"),
                    }),
                };
            }
        }
    }
    Ok(DType::F32)
}

/// Default storage dtype. On CPU: a bf16 checkpoint stays bf16 (lossless,
/// half the bytes per decode step; Quorum's kernels widen it in registers and
/// activations stay f32: measured 1.35x faster decode than upcasting), f16 and
/// f32 become f32 (candle's f16/bf16 CPU GEMM is far slower than f32). On GPU:
/// the checkpoint's own dtype.
pub fn default_weight_dtype(stored: DType, device: &Device) -> WeightDType {
    match (device.is_cpu(), stored) {
        (_, DType::BF16) => WeightDType::Bf16,
        (false, DType::F16) => WeightDType::F16,
        _ => WeightDType::F32,
    }
}

/// Load a model directory for inference.
pub fn load_model(
    dir: &Path,
    dtype: Option<WeightDType>,
    device: &Device,
) -> Result<LoadedModel, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found"),
        });
    }
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(ModelError::MissingFile {
            dir: dir.to_path_buf(),
            file: "config.json".into(),
        });
    }
    let config = ModelConfig::from_file(&config_path)?;
    let gen_path = dir.join("generation_config.json");
    let generation = if gen_path.is_file() {
        serde_json::from_str(&read(&gen_path)?).map_err(|e| ModelError::Malformed {
            path: gen_path.clone(),
            message: e.to_string(),
        })?
    } else {
        GenerationConfig::default()
    };
    let files = weight_files(dir)?;
    let weight_dtype = dtype.unwrap_or(default_weight_dtype(stored_dtype(&files)?, device));
    let act_dtype = if device.is_cpu() {
        DType::F32
    } else {
        weight_dtype.dtype()
    };
    let weights =
        unsafe { VarBuilder::from_mmaped_safetensors(&files, weight_dtype.dtype(), device) }
            .map_err(|e| ModelError::Malformed {
                path: files[0].clone(),
                message: e.to_string(),
            })?;
    let small = weights.clone().set_dtype(act_dtype);
    let model = Transformer::load(&config, Loaders { weights, small }, act_dtype).map_err(|e| {
        ModelError::Weight {
            name: dir.display().to_string(),
            message: e.to_string(),
        }
    })?;
    let weight_bytes = model.weight_bytes_per_step();
    Ok(LoadedModel {
        model,
        config,
        generation,
        dir: dir.to_path_buf(),
        weight_dtype,
        weight_bytes,
    })
}

/// Load a model directory into a [`candle_nn::VarMap`] for training: every
/// weight becomes a `Var` (in `dtype`, activations too) and the returned
/// [`Transformer`] reads those same vars, so gradients of a
/// [`super::Mode::Train`] forward reach them. Tied embeddings share one var.
pub fn load_trainable(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(Transformer, candle_nn::VarMap, ModelConfig), ModelError> {
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    let files = weight_files(dir)?;
    let varmap = candle_nn::VarMap::new();
    {
        let mut data = varmap.data().lock().map_err(|_| ModelError::Weight {
            name: "varmap".into(),
            message: "lock poisoned".into(),
        })?;
        for f in &files {
            let tensors =
                candle_core::safetensors::load(f, device).map_err(|e| ModelError::Malformed {
                    path: f.clone(),
                    message: e.to_string(),
                })?;
            for (name, t) in tensors {
                let var = candle_core::Var::from_tensor(&t.to_dtype(dtype)?)?;
                data.insert(name, var);
            }
        }
    }
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let model = Transformer::load(
        &config,
        Loaders {
            weights: vb.clone(),
            small: vb,
        },
        dtype,
    )
    .map_err(|e| ModelError::Weight {
        name: dir.display().to_string(),
        message: e.to_string(),
    })?;
    Ok((model, varmap, config))
}
