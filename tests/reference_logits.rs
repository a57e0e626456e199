//! Our transformer against candle-transformers' independent implementations
//! (qwen3, qwen2, llama) on the same random weights: prefill + 24 decode
//! steps, batch of 3 sequences, logits within 1e-4.

mod common;
#[path = "common/reference.rs"]
mod reference;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models as ref_models;
use quorum::model::{load_model, Mode, ModelConfig, Positions, SeqInput};

const BATCH: usize = 3;
const PROMPT: usize = 7;
const DECODE_STEPS: usize = 24;

fn write_model(name: &str, dir: &std::path::Path) -> ModelConfig {
    common::write_model(name, &dir.join("m"), |o| o.seed = 7)
}

fn tokens(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// A reference model driven one (batch, tokens) step at a time, returning (batch, vocab).
trait Reference {
    fn step(&mut self, input: &Tensor, offset: usize) -> Tensor;
}

struct Qwen3(ref_models::qwen3::ModelForCausalLM);
impl Reference for Qwen3 {
    fn step(&mut self, input: &Tensor, offset: usize) -> Tensor {
        self.0.forward(input, offset).unwrap().squeeze(1).unwrap()
    }
}
struct Qwen2(ref_models::qwen2::ModelForCausalLM);
impl Reference for Qwen2 {
    fn step(&mut self, input: &Tensor, offset: usize) -> Tensor {
        self.0.forward(input, offset).unwrap().squeeze(1).unwrap()
    }
}
struct Llama(ref_models::llama::Llama, ref_models::llama::Cache);
impl Reference for Llama {
    fn step(&mut self, input: &Tensor, offset: usize) -> Tensor {
        self.0.forward(input, offset, &mut self.1).unwrap()
    }
}

fn reference(cfg: &ModelConfig, vb: VarBuilder) -> Box<dyn Reference> {
    let dev = Device::Cpu;
    match cfg.model_type.as_deref() {
        Some("qwen3") => Box::new(Qwen3(
            ref_models::qwen3::ModelForCausalLM::new(&reference::qwen3_config(cfg), vb).unwrap(),
        )),
        Some("qwen2") => Box::new(Qwen2(
            ref_models::qwen2::ModelForCausalLM::new(
                &ref_models::qwen2::Config {
                    vocab_size: cfg.vocab_size,
                    hidden_size: cfg.hidden_size,
                    intermediate_size: cfg.intermediate_size,
                    num_hidden_layers: cfg.num_hidden_layers,
                    num_attention_heads: cfg.num_attention_heads,
                    num_key_value_heads: cfg.num_kv_heads(),
                    max_position_embeddings: cfg.max_position_embeddings,
                    sliding_window: cfg.max_position_embeddings,
                    max_window_layers: cfg.num_hidden_layers,
                    tie_word_embeddings: cfg.tie_word_embeddings,
                    rope_theta: cfg.rope_theta,
                    rms_norm_eps: cfg.rms_norm_eps,
                    use_sliding_window: false,
                    hidden_act: candle_nn::Activation::Silu,
                },
                vb,
            )
            .unwrap(),
        )),
        Some("llama") => {
            let json = serde_json::to_string(cfg).unwrap();
            let lc: ref_models::llama::LlamaConfig = serde_json::from_str(&json).unwrap();
            let c = lc.into_config(false);
            let cache = ref_models::llama::Cache::new(true, DType::F32, &c, &dev).unwrap();
            Box::new(Llama(
                ref_models::llama::Llama::load(vb, &c).unwrap(),
                cache,
            ))
        }
        other => panic!("no reference for {other:?}"),
    }
}

/// One ragged-batch inference step of our model: sequence i gets `inputs[i]`
/// and `caches[i]`; returns last-position logits (batch, vocab).
fn our_step(
    model: &quorum::model::Transformer,
    inputs: &[&[u32]],
    caches: &mut [quorum::model::KvCache],
) -> Tensor {
    let mut seqs: Vec<SeqInput> = inputs
        .iter()
        .zip(caches.iter_mut())
        .map(|(t, c)| SeqInput {
            tokens: t,
            cache: Some(c),
        })
        .collect();
    model
        .forward(&mut seqs, Positions::Last, Mode::Inference)
        .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// How our model holds its f32 weights for a reference check.
#[derive(Clone, Copy, PartialEq)]
enum Weights {
    /// As loaded (row-major tensors).
    Dense,
    /// Repacked into AVX-512 GEMM panels, as `quorum serve` does.
    PackedF32,
}

fn check_against_reference(preset_name: &str, weights: Weights) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_model(preset_name, tmp.path());
    let dir = tmp.path().join("m");
    let dev = Device::Cpu;
    let mut ours = load_model(&dir, None, &dev).unwrap();
    if weights == Weights::PackedF32 {
        let packed = ours.model.pack_f32().unwrap();
        if !quorum::kernels::packed_f32::available() {
            eprintln!("skipping: AVX-512 not available on this CPU");
            return;
        }
        // 7 matrices per layer plus the (tied) LM head.
        assert_eq!(packed, 7 * cfg.num_hidden_layers + 1);
    }
    let files = quorum::model::loader::weight_files(&dir).unwrap();
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &dev).unwrap() };
    let mut theirs = reference(&cfg, vb);

    let prompts: Vec<Vec<u32>> = (0..BATCH)
        .map(|b| tokens(b as u64 + 1, PROMPT, cfg.vocab_size))
        .collect();
    let mut caches: Vec<_> = (0..BATCH).map(|_| ours.model.new_cache()).collect();

    // Prefill.
    let prompt_refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let our_logits = our_step(&ours.model, &prompt_refs, &mut caches);
    let flat: Vec<u32> = prompts.concat();
    let input = Tensor::from_vec(flat, (BATCH, PROMPT), &dev).unwrap();
    let ref_logits = theirs.step(&input, 0);
    assert_eq!(our_logits.dims(), ref_logits.dims());
    let d = max_abs_diff(&our_logits, &ref_logits);
    assert!(d < 1e-4, "{preset_name}: prefill logits differ by {d}");

    // Decode: feed the same next token to both, one per sequence.
    for step in 0..DECODE_STEPS {
        let offset = PROMPT + step;
        let next = tokens(100 + step as u64, BATCH, cfg.vocab_size);
        let singles: Vec<[u32; 1]> = next.iter().map(|t| [*t]).collect();
        let single_refs: Vec<&[u32]> = singles.iter().map(|t| &t[..]).collect();
        let our_logits = our_step(&ours.model, &single_refs, &mut caches);
        let input = Tensor::from_vec(next, (BATCH, 1), &dev).unwrap();
        let ref_logits = theirs.step(&input, offset);
        let d = max_abs_diff(&our_logits, &ref_logits);
        assert!(
            d < 1e-4,
            "{preset_name}: decode step {step} logits differ by {d}"
        );
    }
    for c in &caches {
        assert_eq!(c.len(), PROMPT + DECODE_STEPS);
    }
}

#[test]
fn qwen3_logits_match_candle_transformers_for_prefill_and_decode() {
    check_against_reference("tiny", Weights::Dense);
}

#[test]
fn qwen2_logits_match_candle_transformers_for_prefill_and_decode() {
    check_against_reference("tiny-qwen2", Weights::Dense);
}

#[test]
fn llama3_logits_match_candle_transformers_for_prefill_and_decode() {
    check_against_reference("tiny-llama", Weights::Dense);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn packed_f32_weights_match_candle_transformers_for_prefill_and_decode() {
    check_against_reference("tiny", Weights::PackedF32);
}

/// A bf16 checkpoint is served with bf16 weights by default (half the bytes
/// per step) and gives the same logits as upcasting it to f32 at load.
#[test]
fn bf16_checkpoint_keeps_bf16_weights_and_matches_f32_upcast() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_model("tiny", &tmp.path().join("m"), |o| {
        o.dtype = quorum::model::init::InitDType::Bf16;
    });
    let dir = tmp.path().join("m");
    let dev = Device::Cpu;
    let native = load_model(&dir, None, &dev).unwrap();
    assert_eq!(native.weight_dtype, quorum::model::WeightDType::Bf16);
    let upcast = load_model(&dir, Some(quorum::model::WeightDType::F32), &dev).unwrap();
    let prompt = tokens(9, 12, 151_000);
    let run = |m: &quorum::model::LoadedModel| {
        let mut cache = m.model.new_cache();
        let mut logits = Vec::new();
        let mut next = prompt.clone();
        for _ in 0..4 {
            let mut seqs = [SeqInput {
                tokens: &next,
                cache: Some(&mut cache),
            }];
            let l = m
                .model
                .forward(&mut seqs, Positions::Last, Mode::Inference)
                .unwrap();
            next = vec![l
                .flatten_all()
                .unwrap()
                .argmax(0)
                .unwrap()
                .to_scalar::<u32>()
                .unwrap()];
            logits.push(l);
        }
        logits
    };
    for (a, b) in run(&native).iter().zip(run(&upcast).iter()) {
        let d = max_abs_diff(a, b);
        assert!(
            d < 1e-4,
            "bf16-weight logits differ from f32-upcast logits by {d}"
        );
    }
}

/// Rollouts as the engine runs them: one prompt prefilled once, frozen into a
/// shared KV prefix, then BATCH caches decoding different tokens on it (the
/// decode kernel reads the prefix once for all of them). Checked against the
/// reference on a batch of BATCH copies of the prompt, with each KV storage
/// type: f32 to the usual 1e-4, half precision within its rounding.
fn check_shared_prefix_rollouts(kv: quorum::model::KvCacheDType, tol: f32) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_model("tiny", tmp.path());
    let dir = tmp.path().join("m");
    let dev = Device::Cpu;
    let mut ours = load_model(&dir, None, &dev).unwrap();
    ours.model.set_kv_dtype(kv);
    let files = quorum::model::loader::weight_files(&dir).unwrap();
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &dev).unwrap() };
    let mut theirs = reference(&cfg, vb);

    let prompt = tokens(3, PROMPT, cfg.vocab_size);
    let mut prompt_cache = [ours.model.new_cache()];
    let our_prefill = our_step(&ours.model, &[&prompt], &mut prompt_cache);
    let [prompt_cache] = prompt_cache;
    let shared = prompt_cache.into_shared().unwrap();
    let mut caches: Vec<_> = (0..BATCH)
        .map(|_| quorum::model::KvCache::on_prefix(shared.clone(), PROMPT))
        .collect();
    let input = Tensor::from_vec(prompt.repeat(BATCH), (BATCH, PROMPT), &dev).unwrap();
    let ref_prefill = theirs.step(&input, 0);
    let d = max_abs_diff(&our_prefill, &ref_prefill.narrow(0, 0, 1).unwrap());
    assert!(d < tol, "{kv:?}: prefill logits differ by {d}");
    for step in 0..DECODE_STEPS {
        let next = tokens(200 + step as u64, BATCH, cfg.vocab_size);
        let singles: Vec<[u32; 1]> = next.iter().map(|t| [*t]).collect();
        let refs: Vec<&[u32]> = singles.iter().map(|t| &t[..]).collect();
        let ours_step = our_step(&ours.model, &refs, &mut caches);
        let input = Tensor::from_vec(next, (BATCH, 1), &dev).unwrap();
        let d = max_abs_diff(&ours_step, &theirs.step(&input, PROMPT + step));
        assert!(d < tol, "{kv:?}: decode step {step} logits differ by {d}");
    }
    assert_eq!(shared.len(), PROMPT, "the shared prompt is never written");
}

#[test]
fn rollouts_on_a_shared_prompt_prefix_match_the_reference() {
    check_shared_prefix_rollouts(quorum::model::KvCacheDType::F32, 1e-4);
}

#[test]
fn half_precision_kv_caches_track_the_reference() {
    check_shared_prefix_rollouts(quorum::model::KvCacheDType::F16, 2e-3);
    check_shared_prefix_rollouts(quorum::model::KvCacheDType::Bf16, 1e-2);
}
