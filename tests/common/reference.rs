//! candle-transformers' config for a model directory's `config.json`, so the
//! reference-logit tests and `benches/decode.rs` build the same oracle.

use candle_transformers::models::qwen3;
use quorum::model::ModelConfig;

pub fn qwen3_config(cfg: &ModelConfig) -> qwen3::Config {
    qwen3::Config {
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: cfg.num_attention_heads,
        head_dim: cfg.head_dim(),
        attention_bias: cfg.qkv_bias(),
        num_key_value_heads: cfg.num_kv_heads(),
        max_position_embeddings: cfg.max_position_embeddings,
        sliding_window: None,
        max_window_layers: cfg.num_hidden_layers,
        tie_word_embeddings: cfg.tie_word_embeddings,
        rope_theta: cfg.rope_theta,
        rms_norm_eps: cfg.rms_norm_eps,
        use_sliding_window: false,
        hidden_act: candle_nn::Activation::Silu,
    }
}
