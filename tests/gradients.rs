//! The training path: every trainable weight receives a gradient, the
//! differentiable forward equals the inference forward, and analytic
//! gradients match finite differences.

mod common;

use candle_core::{DType, Device, Tensor, Var, D};
use quorum::model::{load_model, load_trainable, Mode, Positions, SeqInput, Transformer};

fn tiny_dir(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::write_model(name, &tmp.path().join("m"), |o| o.seed = 3);
    tmp
}

const SEQ_A: [u32; 6] = [11, 500, 9000, 42, 151_000, 7];
const SEQ_B: [u32; 4] = [3, 77, 1234, 99];

/// Training-mode logits of the ragged batch [SEQ_A, SEQ_B], no KV cache.
fn train_logits(model: &Transformer) -> Tensor {
    let mut seqs = [
        SeqInput {
            tokens: &SEQ_A,
            cache: None,
        },
        SeqInput {
            tokens: &SEQ_B,
            cache: None,
        },
    ];
    model
        .forward(&mut seqs, Positions::All, Mode::Train)
        .unwrap()
}

/// Mean next-token NLL over a ragged batch of two sequences.
fn loss(model: &Transformer) -> Tensor {
    let logits = train_logits(model);
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (offset, s) in [(0usize, &SEQ_A[..]), (SEQ_A.len(), &SEQ_B[..])] {
        for i in 0..s.len() - 1 {
            rows.push((offset + i) as u32);
            targets.push(s[i + 1]);
        }
    }
    let dev = logits.device();
    let picked = logp
        .index_select(&Tensor::new(rows.as_slice(), dev).unwrap(), 0)
        .unwrap()
        .gather(
            &Tensor::new(targets.as_slice(), dev)
                .unwrap()
                .unsqueeze(1)
                .unwrap(),
            1,
        )
        .unwrap();
    picked.mean_all().unwrap().neg().unwrap()
}

fn every_weight_receives_a_gradient(preset_name: &str) {
    let tmp = tiny_dir(preset_name);
    let (model, varmap, _) =
        load_trainable(&tmp.path().join("m"), DType::F32, &Device::Cpu).unwrap();
    let grads = loss(&model).backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    assert!(!vars.is_empty());
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{preset_name}: no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{preset_name}: zero gradient for {name}"
        );
    }
}

#[test]
fn every_qwen3_weight_receives_a_gradient() {
    every_weight_receives_a_gradient("tiny");
}

#[test]
fn every_qwen2_weight_including_biases_receives_a_gradient() {
    every_weight_receives_a_gradient("tiny-qwen2");
}

#[test]
fn every_llama_weight_receives_a_gradient() {
    every_weight_receives_a_gradient("tiny-llama");
}

#[test]
fn training_forward_equals_inference_forward() {
    let tmp = tiny_dir("tiny");
    let dir = tmp.path().join("m");
    let (train_model, _, _) = load_trainable(&dir, DType::F32, &Device::Cpu).unwrap();
    let infer = load_model(&dir, None, &Device::Cpu).unwrap();
    let mut ca = infer.model.new_cache();
    let mut cb = infer.model.new_cache();
    let mut seqs = [
        SeqInput {
            tokens: &SEQ_A,
            cache: Some(&mut ca),
        },
        SeqInput {
            tokens: &SEQ_B,
            cache: Some(&mut cb),
        },
    ];
    let a = infer
        .model
        .forward(&mut seqs, Positions::All, Mode::Inference)
        .unwrap();
    let b = train_logits(&train_model);
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-4, "train vs inference logits differ by {d}");
}

/// Central differences in f64 on a few elements of every kind of weight.
#[test]
fn gradients_match_finite_differences() {
    let tmp = tiny_dir("tiny");
    let (model, varmap, _) =
        load_trainable(&tmp.path().join("m"), DType::F64, &Device::Cpu).unwrap();
    let grads = loss(&model).backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    let checked = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_norm.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.norm.weight",
    ];
    let eps = 1e-4;
    for name in checked {
        let var: &Var = vars.get(name).unwrap_or_else(|| panic!("missing {name}"));
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // The element with the largest gradient, plus the first one.
        let argmax = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i)
            .unwrap();
        for idx in [0, argmax] {
            let mut plus = orig.clone();
            plus[idx] += eps;
            var.set(&Tensor::from_vec(plus, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let lp = loss(&model).to_scalar::<f64>().unwrap();
            let mut minus = orig.clone();
            minus[idx] -= eps;
            var.set(&Tensor::from_vec(minus, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let lm = loss(&model).to_scalar::<f64>().unwrap();
            var.set(&Tensor::from_vec(orig.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let numeric = (lp - lm) / (2.0 * eps);
            let err = (numeric - g[idx]).abs();
            assert!(
                err <= 1e-6 + 1e-4 * g[idx].abs().max(numeric.abs()),
                "{name}[{idx}]: analytic {} vs numeric {numeric}",
                g[idx]
            );
        }
    }
}
