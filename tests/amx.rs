//! bf16 weights packed for Intel AMX (`--amx`): logits track the unpacked
//! bf16 model, and a sequence's logits don't depend on the batch it decodes
//! in. Skipped (with a note) on CPUs/OSes without AMX.

mod common;

use candle_core::{Device, Tensor};
use quorum::model::init::InitDType;
use quorum::model::{load_model, LoadedModel, Mode, Positions, SeqInput};

fn amx() -> bool {
    let ok = quorum::kernels::amx::available();
    if !ok {
        eprintln!("skipping: Intel AMX not available on this CPU/OS");
    }
    ok
}

fn bf16_model(dir: &std::path::Path) {
    common::write_model("tiny", dir, |o| o.dtype = InitDType::Bf16);
}

fn prompt(seed: u32, n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (seed * 7919 + i * 104_729) % 151_000)
        .collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Prefill `prompt`, then 4 greedy steps; the logits of every step.
fn greedy_logits(m: &LoadedModel, prompt: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = m.model.new_cache();
    let mut next = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..5 {
        let mut seqs = [SeqInput {
            tokens: &next,
            cache: Some(&mut cache),
        }];
        let l = values(
            &m.model
                .forward(&mut seqs, Positions::Last, Mode::Inference)
                .unwrap(),
        );
        let arg = l
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        next = vec![arg.0 as u32];
        out.push(l);
    }
    out
}

#[test]
fn amx_packed_logits_track_the_bf16_model() {
    if !amx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    bf16_model(&dir);
    let plain = load_model(&dir, None, &Device::Cpu).unwrap();
    let mut packed = load_model(&dir, None, &Device::Cpu).unwrap();
    let layers = packed.model.pack_amx().unwrap();
    // 7 projections per layer + the (tied, so separately packed) LM head.
    assert_eq!(layers, 7 * packed.model.layers.len() + 1);
    assert!(!packed.model.tied_embeddings());
    let p = prompt(3, 11);
    // Prefill (step 0) feeds identical inputs; later steps feed each model's
    // own argmax, so compare while the two greedy paths agree.
    for (a, b) in greedy_logits(&plain, &p)
        .iter()
        .zip(greedy_logits(&packed, &p).iter())
    {
        let scale = a.iter().fold(1e-6f32, |s, v| s.max(v.abs()));
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        // Activations are rounded to bf16 (8 significant bits) inside every
        // packed matmul: ~1e-3 relative per layer.
        assert!(
            err / scale < 3e-2,
            "packed logits differ by {err} (scale {scale})"
        );
        assert!(err > 0.0, "packing should change rounding (x → bf16)");
    }
}

#[test]
fn amx_sequence_logits_do_not_depend_on_the_batch() {
    if !amx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    bf16_model(&dir);
    let mut m = load_model(&dir, None, &Device::Cpu).unwrap();
    m.model.pack_amx().unwrap();
    let prompts = [prompt(1, 5), prompt(2, 9), prompt(3, 3)];
    // Each prompt alone.
    let alone: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| {
            let mut cache = m.model.new_cache();
            let mut seqs = [SeqInput {
                tokens: p,
                cache: Some(&mut cache),
            }];
            values(
                &m.model
                    .forward(&mut seqs, Positions::Last, Mode::Inference)
                    .unwrap(),
            )
        })
        .collect();
    // All three as one ragged batch.
    let mut caches: Vec<_> = prompts.iter().map(|_| m.model.new_cache()).collect();
    let mut seqs: Vec<SeqInput> = prompts
        .iter()
        .zip(caches.iter_mut())
        .map(|(p, c)| SeqInput {
            tokens: p,
            cache: Some(c),
        })
        .collect();
    let batched = values(
        &m.model
            .forward(&mut seqs, Positions::Last, Mode::Inference)
            .unwrap(),
    );
    let vocab = batched.len() / prompts.len();
    for (i, a) in alone.iter().enumerate() {
        assert_eq!(
            a.as_slice(),
            &batched[i * vocab..(i + 1) * vocab],
            "sequence {i}: batched logits differ from running it alone"
        );
    }
}
