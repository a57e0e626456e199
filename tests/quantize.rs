//! Quantized serving: Q8_0 weights stay close to the dense model; formats
//! whose block size does not divide the layer width are refused clearly.

mod common;

use candle_core::Device;
use quorum::engine::ModelBundle;
use quorum::model::{AmxMode, Mode, Positions, Quantization, SeqInput};

fn last_logits(b: &ModelBundle, prompt: &[u32]) -> Vec<f32> {
    let mut cache = b.loaded.model.new_cache();
    let mut seqs = [SeqInput {
        tokens: prompt,
        cache: Some(&mut cache),
    }];
    let l = b
        .loaded
        .model
        .forward(&mut seqs, Positions::Last, Mode::Inference)
        .unwrap();
    l.flatten_all().unwrap().to_vec1().unwrap()
}

/// Both Q8_0 kernels — candle's `QMatMul` (`--amx auto|off`) and Quorum's
/// AMX tile kernel (`--amx on`, when the CPU has AMX) — stay close to the
/// dense model and stream under a third of its bytes.
#[test]
fn q8_0_logits_track_the_dense_model_on_both_kernels() {
    let m = common::temp_model("tiny", 4);
    let dense = ModelBundle::load(&m.dir, None, &Device::Cpu).unwrap();
    let prompt = [100u32, 2000, 30000, 7, 99];
    let a = last_logits(&dense, &prompt);
    let scale = a.iter().map(|x| x.abs()).fold(0f32, f32::max);
    let amx_cpu = quorum::kernels::amx::available();
    let modes = if amx_cpu {
        vec![AmxMode::Auto, AmxMode::On]
    } else {
        vec![AmxMode::Auto]
    };
    for amx in modes {
        let mut q = ModelBundle::load(&m.dir, None, &Device::Cpu).unwrap();
        let before = q.loaded.weight_bytes;
        q.quantize(Quantization::Q8_0, amx).unwrap();
        assert!(
            q.loaded.weight_bytes * 3 < before,
            "{amx:?}: Q8_0 should stream < 1/3 of the f32 bytes"
        );
        let b = last_logits(&q, &prompt);
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max < 0.02 * scale.max(1e-3),
            "{amx:?}: Q8_0 logits differ by {max} (scale {scale})"
        );
    }
}

#[test]
fn q4k_on_a_width_not_divisible_by_256_is_refused_with_the_reason() {
    let m = common::temp_model("tiny", 4);
    let mut q = ModelBundle::load(&m.dir, None, &Device::Cpu).unwrap();
    let err = q
        .quantize(Quantization::Q4k, AmxMode::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("block size 256"), "{err}");
}
