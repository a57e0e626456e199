//! The tensor layout of a Hugging Face checkpoint: which tensors a config has, with
//! their HF names and shapes ([`tensor_plan`]), and the check that a set of named tensors
//! is exactly that layout ([`plan_order`]).
//!
//! A leaf shared by the random initialiser ([`super::init`], which draws values for the
//! plan) and the checkpoint writer ([`super::checkpoint`], which writes files in plan
//! order and refuses tensors that are not in it).

use std::collections::HashMap;

use super::{Architecture, ModelConfig, ModelError};

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind {
    /// `N(0, 0.02)`: projections, embeddings, heads.
    Matrix,
    /// `1 + N(0, 0.02)`: RMSNorm scales.
    Norm,
    /// `N(0, 0.02)`: projection biases.
    Bias,
}

/// One tensor of the checkpoint, named and shaped exactly as in HF checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: InitKind,
}

/// The HF `architectures` entry for `arch`, with a sequence-classification head when
/// `reward_head` (what HF reward models such as `*ForSequenceClassification` declare).
pub fn hf_architecture_name(arch: Architecture, reward_head: bool) -> String {
    if reward_head {
        arch.hf_name()
            .replace("ForCausalLM", "ForSequenceClassification")
    } else {
        arch.hf_name().to_string()
    }
}

/// Every tensor of a checkpoint for `cfg`, in HF order (embedding, layers, final norm, head).
///
/// Public so loaders can test that they consume exactly this set.
pub fn tensor_plan(cfg: &ModelConfig, reward_head: bool) -> Result<Vec<TensorSpec>, ModelError> {
    let arch = cfg.architecture()?;
    let (h, inter, vocab) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (hd, q_out, kv_out) = (
        cfg.head_dim(),
        cfg.num_attention_heads * cfg.head_dim(),
        cfg.num_kv_heads() * cfg.head_dim(),
    );
    let spec = |name: String, shape: Vec<usize>, kind| TensorSpec { name, shape, kind };
    let mut out = vec![spec(
        "model.embed_tokens.weight".into(),
        vec![vocab, h],
        InitKind::Matrix,
    )];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let attn = format!("{p}.self_attn");
        for (proj, rows) in [("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)] {
            out.push(spec(
                format!("{attn}.{proj}.weight"),
                vec![rows, h],
                InitKind::Matrix,
            ));
            if cfg.qkv_bias() {
                out.push(spec(
                    format!("{attn}.{proj}.bias"),
                    vec![rows],
                    InitKind::Bias,
                ));
            }
        }
        out.push(spec(
            format!("{attn}.o_proj.weight"),
            vec![h, q_out],
            InitKind::Matrix,
        ));
        if arch == Architecture::Qwen3 {
            out.push(spec(
                format!("{attn}.q_norm.weight"),
                vec![hd],
                InitKind::Norm,
            ));
            out.push(spec(
                format!("{attn}.k_norm.weight"),
                vec![hd],
                InitKind::Norm,
            ));
        }
        for proj in ["gate_proj", "up_proj"] {
            out.push(spec(
                format!("{p}.mlp.{proj}.weight"),
                vec![inter, h],
                InitKind::Matrix,
            ));
        }
        out.push(spec(
            format!("{p}.mlp.down_proj.weight"),
            vec![h, inter],
            InitKind::Matrix,
        ));
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            out.push(spec(format!("{p}.{norm}.weight"), vec![h], InitKind::Norm));
        }
    }
    out.push(spec("model.norm.weight".into(), vec![h], InitKind::Norm));
    if reward_head {
        out.push(spec("score.weight".into(), vec![1, h], InitKind::Matrix));
    } else if !cfg.tie_word_embeddings {
        out.push(spec(
            "lm_head.weight".into(),
            vec![vocab, h],
            InitKind::Matrix,
        ));
    }
    Ok(out)
}

/// Whether `cfg` describes a sequence-classification (reward) model.
pub fn is_reward_model(cfg: &ModelConfig) -> bool {
    cfg.architectures
        .iter()
        .any(|a| a.ends_with("ForSequenceClassification"))
}

/// Checks that `tensors` (name, shape) are exactly the checkpoint of `cfg`: every tensor
/// of [`tensor_plan`] once, with its shape, and nothing else; errors name the tensor.
/// Returns the tensors' indices in [`tensor_plan`] order.
pub(super) fn plan_order<'a, S: AsRef<[usize]> + 'a>(
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
