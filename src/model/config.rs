//! `config.json` of a Hugging Face causal LM, for the families Quorum runs
//! (Qwen3, Qwen2, Llama incl. Llama-3 rope scaling). One struct, driven by
//! `architectures` / `model_type`; fields mirror the HF names.

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::ModelError;

/// The decoder families one implementation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// `Qwen3ForCausalLM`: q/k RMSNorm per head, no qkv bias, explicit `head_dim`.
    Qwen3,
    /// `Qwen2ForCausalLM`: bias on q/k/v projections.
    Qwen2,
    /// `LlamaForCausalLM`: optional Llama-3 rope scaling, optional attention bias.
    Llama,
}

impl Architecture {
    pub const SUPPORTED: &'static [&'static str] =
        &["Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"];

    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "Qwen3ForCausalLM" | "Qwen3ForSequenceClassification" => Some(Self::Qwen3),
            "Qwen2ForCausalLM" | "Qwen2ForSequenceClassification" => Some(Self::Qwen2),
            "LlamaForCausalLM" | "LlamaForSequenceClassification" | "MistralForCausalLM" => {
                Some(Self::Llama)
            }
            _ => None,
        }
    }

    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Qwen3 => "Qwen3ForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Llama => "LlamaForCausalLM",
        }
    }

    pub fn model_type(self) -> &'static str {
        match self {
            Self::Qwen3 => "qwen3",
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }
}

/// Llama-3 style `rope_scaling` (`rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    #[serde(default = "one")]
    pub factor: f64,
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}

/// `eos_token_id` may be one id or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// Serde mirror of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama/Qwen3 `attention_bias`; Qwen2 always has qkv bias.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// Sequence-classification heads (reward models): `num_labels` outputs in `score.weight`.
    #[serde(default)]
    pub num_labels: Option<usize>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_max_pos() -> usize {
    32768
}
fn default_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_act() -> String {
    "silu".into()
}

impl ModelConfig {
    /// Parse `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parse the text of a `config.json`; `path` names the file in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, ModelError> {
        // Report the failing field by its path (`rope_scaling.factor`), not just a column.
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: ModelConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ModelError::InvalidField {
                path: path.to_path_buf(),
                field,
                message: e.into_inner().to_string(),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Resolve the architecture from `architectures` (first match), else `model_type`.
    pub fn architecture(&self) -> Result<Architecture, ModelError> {
        for name in &self.architectures {
            if let Some(a) = Architecture::from_hf_name(name) {
                return Ok(a);
            }
        }
        let from_type = match self.model_type.as_deref() {
            Some("qwen3") => Some(Architecture::Qwen3),
            Some("qwen2") => Some(Architecture::Qwen2),
            Some("llama") | Some("mistral") => Some(Architecture::Llama),
            _ => None,
        };
        if self.architectures.is_empty() {
            if let Some(a) = from_type {
                return Ok(a);
            }
        }
        Err(ModelError::UnsupportedArchitecture {
            found: if self.architectures.is_empty() {
                self.model_type.clone().unwrap_or_else(|| "<none>".into())
            } else {
                self.architectures.join(", ")
            },
            supported: Architecture::SUPPORTED.join(", "),
        })
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        match self.architecture() {
            Ok(Architecture::Qwen2) => self.attention_bias.unwrap_or(true),
            _ => self.attention_bias.unwrap_or(false),
        }
    }

    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Bytes of one token's K and V over all layers, at `dtype_bytes` per element.
    pub fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        2 * self.num_hidden_layers * self.num_kv_heads() * self.head_dim() * dtype_bytes
    }

    fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |field: &str, message: String| ModelError::InvalidField {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        self.architecture()?;
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
        ] {
            if v == 0 {
                return Err(bad(field, "must be > 0".into()));
            }
        }
        let kv = self.num_kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{kv} does not divide num_attention_heads = {}",
                    self.num_attention_heads
                ),
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(
                "hidden_size",
                format!(
                    "{} is not a multiple of num_attention_heads = {} (and no head_dim given)",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(bad("head_dim", "must be even for rotary embeddings".into()));
        }
        if self.hidden_act != "silu" && self.hidden_act != "swiglu" {
            return Err(bad(
                "hidden_act",
                format!("`{}` is not supported (only silu)", self.hidden_act),
            ));
        }
        if let Some(rs) = &self.rope_scaling {
            if rs.rope_type != "llama3" && rs.rope_type != "default" {
                return Err(bad(
                    "rope_scaling.rope_type",
                    format!("`{}` is not supported (llama3, default)", rs.rope_type),
                ));
            }
        }
        Ok(())
    }
}
