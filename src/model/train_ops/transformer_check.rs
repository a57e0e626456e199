//! A whole [`Transformer`] forward + backward through the fused ops
//! ([`Mode::Train`]) against candle's composed ops ([`Mode::TrainComposed`]):
//! same loss, same gradient for every weight, on a ragged batch, for each
//! architecture family.

use candle_core::{DType, Device, Tensor};

use super::testing::{rel_diff, F32_TOL};
use crate::model::init::{InitOptions, TokenizerSource};
use crate::model::test_fixtures::write_model;
use crate::model::{load_trainable, Mode, Positions, SeqInput, Transformer};

const VOCAB: usize = 300;

/// The preset with a [`VOCAB`]-token vocabulary, no EOS and no tokenizer files.
fn small_vocab(o: &mut InitOptions) {
    o.config.vocab_size = VOCAB;
    o.config.eos_token_id = None;
    o.tokenizer = TokenizerSource::None;
}

/// Sequence lengths around the attention query block (64), plus a single token.
const LENS: [usize; 5] = [1, 7, 64, 70, 3];

fn batch() -> Vec<Vec<u32>> {
    LENS.iter()
        .enumerate()
        .map(|(s, &len)| {
            (0..len)
                .map(|i| ((s * 131 + i * 17 + 5) % VOCAB) as u32)
                .collect()
        })
        .collect()
}

/// `−mean_t lp_t` of next-token targets (the last token of each sequence
/// has none: weight 0), with the token log-prob op of `mode`.
fn loss(model: &Transformer, mode: Mode) -> Tensor {
    let seqs = batch();
    let mut inputs: Vec<SeqInput> = seqs
        .iter()
        .map(|s| SeqInput {
            tokens: s,
            cache: None,
        })
        .collect();
    let logits = model.forward(&mut inputs, Positions::All, mode).unwrap();
    let (mut targets, mut weights) = (Vec::new(), Vec::new());
    for s in &seqs {
        targets.extend(s[1..].iter().copied());
        targets.push(0);
        weights.extend(std::iter::repeat_n(1f32, s.len() - 1));
        weights.push(0.0);
    }
    let dev = logits.device();
    let targets = Tensor::new(targets.as_slice(), dev).unwrap();
    let n: f32 = weights.iter().sum();
    let weights = (Tensor::new(weights.as_slice(), dev).unwrap() / n as f64)
        .unwrap()
        .to_dtype(logits.dtype())
        .unwrap();
    let lp = match mode {
        Mode::TrainComposed => super::composed::token_logprobs(&logits, &targets, 1.0),
        _ => super::token_logprobs(&logits, &targets),
    }
    .unwrap();
    (lp * weights).unwrap().sum_all().unwrap().neg().unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn fused_equals_composed(preset_name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(preset_name, &dir, |o| {
        small_vocab(o);
        o.seed = 11;
    });
    let (model, varmap, _) = load_trainable(&dir, DType::F32, &Device::Cpu).unwrap();

    let fused = loss(&model, Mode::Train);
    let composed = loss(&model, Mode::TrainComposed);
    let (lf, lc) = (
        fused.to_scalar::<f32>().unwrap() as f64,
        composed.to_scalar::<f32>().unwrap() as f64,
    );
    assert!(
        (lf - lc).abs() <= F32_TOL * lc.abs(),
        "{preset_name}: fused loss {lf} vs composed {lc}"
    );
    let gf = fused.backward().unwrap();
    let gc = composed.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    assert!(vars.len() > 10, "{preset_name}: only {} vars", vars.len());
    for (name, var) in vars.iter() {
        let a = gf
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{preset_name}: fused path gives {name} no gradient"));
        let b = gc
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{preset_name}: composed path gives {name} no gradient"));
        let (a, b) = (values(a), values(b));
        assert!(
            b.iter().any(|v| *v != 0.0),
            "{preset_name}: {name} has a zero gradient"
        );
        let d = rel_diff(&a, &b);
        assert!(
            d <= F32_TOL,
            "{preset_name}: gradient of {name} differs by {d:.2e} (relative)"
        );
    }
}

#[test]
fn qwen3_fused_training_step_equals_composed() {
    fused_equals_composed("tiny");
}

#[test]
fn qwen2_fused_training_step_equals_composed() {
    fused_equals_composed("tiny-qwen2");
}

#[test]
fn llama_fused_training_step_equals_composed() {
    fused_equals_composed("tiny-llama");
}

/// A dtype without fused kernels (f16 on CPU) takes the composed fallback
/// inside the fused layer path: same loss as the composed forward.
#[test]
fn fused_path_falls_back_to_composed_ops_for_other_dtypes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model("tiny", &dir, small_vocab);
    let (model, varmap, _) = load_trainable(&dir, DType::F16, &Device::Cpu).unwrap();
    let fused = loss(&model, Mode::Train);
    let composed = loss(&model, Mode::TrainComposed);
    let (a, b) = (
        fused
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        composed
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    assert!((a - b).abs() <= 1e-2 * b.abs(), "f16 loss {a} vs {b}");
    let grads = fused.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    let w = vars.get("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert!(
        grads.get(w.as_tensor()).is_some(),
        "no f16 gradient for q_proj"
    );
}
