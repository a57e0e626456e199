//! Named model shapes for `quorum model init`.
//!
//! Two families:
//! - `tiny*`: a few hundred thousand parameters per layer, one per architecture Quorum runs.
//!   They all use the Qwen3 tokenizer's vocabulary (151936) so that the single tokenizer
//!   fixture in `tests/fixtures/qwen3-tokenizer/` can drive every one of them: only the
//!   layer structure differs (Qwen3 q/k norms, Qwen2 qkv bias, Llama-3 rope scaling).
//! - Public shapes (`qwen3-0.6b`, `qwen2.5-0.5b`, `llama-3.2-1b`): the exact `config.json`
//!   values of the published checkpoints, so benchmarks on random weights do the same
//!   arithmetic as the real models. These keep their real vocabularies; `llama-3.2-1b`
//!   (128256) is therefore smaller than the Qwen3 tokenizer's id range.

use std::path::PathBuf;

use super::config::{RopeScaling, TokenIds};
use super::{Architecture, ModelConfig, ModelError};

/// Vocabulary size of the Qwen3 tokenizer (`tests/fixtures/qwen3-tokenizer/`), padded as
/// in the published Qwen3 / Qwen2.5 checkpoints.
pub const QWEN3_VOCAB: usize = 151_936;
/// `<|endoftext|>` in the Qwen tokenizers.
const QWEN_ENDOFTEXT: u32 = 151_643;
/// `<|im_end|>` in the Qwen tokenizers: the end of a chat turn.
const QWEN_IM_END: u32 = 151_645;

/// Every preset name `preset` accepts, in the order a CLI should list them.
pub const PRESETS: &[&str] = &[
    "tiny",
    "tiny-qwen2",
    "tiny-llama",
    "qwen3-0.6b",
    "qwen2.5-0.5b",
    "llama-3.2-1b",
];

/// The config of the named preset.
///
/// Errors with `ModelError::InvalidField` naming every available preset, so a CLI typo is
/// answered with the list instead of a bare "not found".
pub fn preset(name: &str) -> Result<ModelConfig, ModelError> {
    let cfg = match name {
        "tiny" => tiny(),
        "tiny-qwen2" => tiny_qwen2(),
        "tiny-llama" => tiny_llama(),
        "qwen3-0.6b" => qwen3_0_6b(),
        "qwen2.5-0.5b" => qwen2_5_0_5b(),
        "llama-3.2-1b" => llama_3_2_1b(),
        _ => {
            return Err(ModelError::InvalidField {
                path: PathBuf::from("preset"),
                field: name.to_string(),
                message: format!("unknown preset; available: {}", PRESETS.join(", ")),
            })
        }
    };
    Ok(cfg)
}

/// The fields every preset sets the same way; callers override the shape.
fn base(arch: Architecture) -> ModelConfig {
    ModelConfig {
        architectures: vec![arch.hf_name().to_string()],
        model_type: Some(arch.model_type().to_string()),
        vocab_size: QWEN3_VOCAB,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        head_dim: Some(16),
        max_position_embeddings: 4096,
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000.0,
        rope_scaling: None,
        tie_word_embeddings: false,
        attention_bias: Some(false),
        hidden_act: "silu".to_string(),
        bos_token_id: None,
        eos_token_id: Some(TokenIds::One(QWEN_IM_END)),
        torch_dtype: Some("float32".to_string()),
        num_labels: None,
        pad_token_id: None,
    }
}

/// Qwen3 layout at toy size: the default fixture model for tests (tied embeddings, as in
/// the small Qwen3 checkpoints, so the embedding doubles as the LM head).
fn tiny() -> ModelConfig {
    ModelConfig {
        tie_word_embeddings: true,
        ..base(Architecture::Qwen3)
    }
}

/// Qwen2 layout at toy size: exercises the q/k/v biases and a separate `lm_head`.
fn tiny_qwen2() -> ModelConfig {
    ModelConfig {
        // Qwen2 always has qkv bias; stated explicitly so `qkv_bias()` needs no default.
        attention_bias: Some(true),
        // Qwen2 configs carry no `head_dim`: it is hidden / heads (64 / 4 = 16).
        head_dim: None,
        ..base(Architecture::Qwen2)
    }
}

/// Llama layout at toy size with Llama-3 rope scaling, so the llama3 frequency remap is
/// exercised; separate `lm_head`.
fn tiny_llama() -> ModelConfig {
    ModelConfig {
        rope_theta: 500_000.0,
        rope_scaling: Some(RopeScaling {
            rope_type: "llama3".to_string(),
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: Some(8192),
        }),
        ..base(Architecture::Llama)
    }
}

/// `Qwen/Qwen3-0.6B` `config.json`.
fn qwen3_0_6b() -> ModelConfig {
    ModelConfig {
        vocab_size: QWEN3_VOCAB,
        hidden_size: 1024,
        intermediate_size: 3072,
        num_hidden_layers: 28,
        num_attention_heads: 16,
        num_key_value_heads: Some(8),
        head_dim: Some(128),
        max_position_embeddings: 40_960,
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000.0,
        tie_word_embeddings: true,
        bos_token_id: Some(QWEN_ENDOFTEXT),
        eos_token_id: Some(TokenIds::One(QWEN_IM_END)),
        torch_dtype: Some("bfloat16".to_string()),
        ..base(Architecture::Qwen3)
    }
}

/// `Qwen/Qwen2.5-0.5B` `config.json` (the base model: its eos is `<|endoftext|>`).
fn qwen2_5_0_5b() -> ModelConfig {
    ModelConfig {
        vocab_size: QWEN3_VOCAB,
        hidden_size: 896,
        intermediate_size: 4864,
        num_hidden_layers: 24,
        num_attention_heads: 14,
        num_key_value_heads: Some(2),
        head_dim: None,
        max_position_embeddings: 32_768,
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000.0,
        tie_word_embeddings: true,
        attention_bias: Some(true),
        bos_token_id: Some(QWEN_ENDOFTEXT),
        eos_token_id: Some(TokenIds::One(QWEN_ENDOFTEXT)),
        torch_dtype: Some("bfloat16".to_string()),
        ..base(Architecture::Qwen2)
    }
}

/// `meta-llama/Llama-3.2-1B` `config.json`, including its llama3 rope scaling (factor 32).
fn llama_3_2_1b() -> ModelConfig {
    ModelConfig {
        vocab_size: 128_256,
        hidden_size: 2048,
        intermediate_size: 8192,
        num_hidden_layers: 16,
        num_attention_heads: 32,
        num_key_value_heads: Some(8),
        head_dim: Some(64),
        max_position_embeddings: 131_072,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        rope_scaling: Some(RopeScaling {
            rope_type: "llama3".to_string(),
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: Some(8192),
        }),
        tie_word_embeddings: true,
        bos_token_id: Some(128_000),
        eos_token_id: Some(TokenIds::One(128_001)),
        torch_dtype: Some("bfloat16".to_string()),
        ..base(Architecture::Llama)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed preset resolves, and its config survives a `config.json` round trip
    /// through the loader's validation (so `init` never writes a config `load` rejects).
    #[test]
    fn every_preset_is_valid_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        for name in PRESETS {
            let cfg = preset(name).unwrap();
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
            let back = ModelConfig::from_file(&path).unwrap();
            assert_eq!(back, cfg, "{name}");
        }
    }

    #[test]
    fn unknown_preset_lists_available_names() {
        let err = preset("qwen9-huge").unwrap_err().to_string();
        for name in PRESETS {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn tiny_presets_share_the_qwen3_vocab_and_differ_in_structure() {
        let tiny = preset("tiny").unwrap();
        let qwen2 = preset("tiny-qwen2").unwrap();
        let llama = preset("tiny-llama").unwrap();
        for cfg in [&tiny, &qwen2, &llama] {
            assert_eq!(cfg.vocab_size, QWEN3_VOCAB);
            assert_eq!(cfg.head_dim(), 16);
            assert_eq!(cfg.num_kv_heads(), 2);
        }
        assert_eq!(tiny.architecture().unwrap(), Architecture::Qwen3);
        assert!(tiny.tie_word_embeddings && !tiny.qkv_bias());
        assert_eq!(tiny.bos_token_id, None);
        assert_eq!(tiny.eos_token_ids(), vec![151_645]);
        assert_eq!(qwen2.architecture().unwrap(), Architecture::Qwen2);
        assert!(qwen2.qkv_bias() && !qwen2.tie_word_embeddings);
        assert_eq!(llama.architecture().unwrap(), Architecture::Llama);
        assert!(!llama.tie_word_embeddings);
        let rs = llama.rope_scaling.as_ref().unwrap();
        assert_eq!(
            (rs.factor, rs.low_freq_factor, rs.high_freq_factor),
            (8.0, 1.0, 4.0)
        );
        assert_eq!(rs.original_max_position_embeddings, Some(8192));
        assert_eq!(llama.rope_theta, 500_000.0);
    }

    #[test]
    fn qwen3_0_6b_matches_the_public_config() {
        let c = preset("qwen3-0.6b").unwrap();
        assert_eq!(
            (
                c.vocab_size,
                c.hidden_size,
                c.intermediate_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.num_kv_heads(),
                c.head_dim(),
                c.max_position_embeddings,
            ),
            (151_936, 1024, 3072, 28, 16, 8, 128, 40_960)
        );
        assert_eq!((c.rms_norm_eps, c.rope_theta), (1e-6, 1_000_000.0));
        assert!(c.tie_word_embeddings);
        assert_eq!(c.bos_token_id, Some(151_643));
        assert_eq!(c.eos_token_ids(), vec![151_645]);
        assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    }
}
