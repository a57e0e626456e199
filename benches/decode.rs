//! Single-stream decode: Quorum's engine vs candle-transformers' own qwen3
//! model driven by a plain greedy loop, on the same random weights, in one
//! run, interleaved; plus the memory-bandwidth roofline.
//!
//! cargo bench --bench decode -- --model DIR [--prompt-tokens 128] [--gen-tokens 128] [--rounds 2]

#[path = "../tests/common/reference.rs"]
mod reference;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen3;
use quorum::engine::{generate_group, GroupRequest, ModelBundle, SamplingParams};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    prefill_tps: f64,
    decode_tps: f64,
}

fn ours(bundle: &ModelBundle, prompt: &[u32], gen: usize) -> Run {
    let req = GroupRequest {
        prompt_ids: prompt.to_vec(),
        n: 1,
        params: SamplingParams {
            max_tokens: Some(gen),
            ignore_eos: true,
            ..SamplingParams::greedy()
        },
        eos_token_ids: vec![],
        think: None,
    };
    let out = quorum::engine::in_engine_pool(|| {
        generate_group(&bundle.loaded.model, &bundle.tokenizer, &req, &mut |_| true)
    })
    .expect("generate");
    Run {
        prefill_tps: out.timings.prefill_tokens_per_s,
        decode_tps: out.timings.decode_tokens_per_s,
    }
}

fn reference(model: &mut qwen3::ModelForCausalLM, prompt: &[u32], gen: usize) -> Run {
    model.clear_kv_cache();
    let dev = Device::Cpu;
    let t = Instant::now();
    let input = Tensor::new(prompt, &dev).unwrap().unsqueeze(0).unwrap();
    let logits = model.forward(&input, 0).unwrap();
    let mut next = logits
        .flatten_all()
        .unwrap()
        .argmax(0)
        .unwrap()
        .to_scalar::<u32>()
        .unwrap();
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..gen - 1 {
        let input = Tensor::new(&[next], &dev).unwrap().unsqueeze(0).unwrap();
        let logits = model.forward(&input, prompt.len() + i).unwrap();
        next = logits
            .flatten_all()
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
    }
    Run {
        prefill_tps: prompt.len() as f64 / prefill,
        decode_tps: (gen - 1) as f64 / t.elapsed().as_secs_f64(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
    else {
        eprintln!("usage: cargo bench --bench decode -- --model DIR [--prompt-tokens 128] [--gen-tokens 128] [--rounds 2]");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let (prompt_len, gen, rounds) = (
        arg(&args, "--prompt-tokens", 128),
        arg(&args, "--gen-tokens", 128),
        arg(&args, "--rounds", 2),
    );
    let bundle =
        ModelBundle::load(&dir, Some(quorum::model::WeightDType::F32), &Device::Cpu).expect("load");
    let cfg = &bundle.loaded.config;
    let ref_cfg = reference::qwen3_config(cfg);
    let files = quorum::model::loader::weight_files(&dir).expect("weights");
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu).unwrap() };
    let mut theirs = qwen3::ModelForCausalLM::new(&ref_cfg, vb).expect("reference model");
    let prompt = quorum::cli::synthetic_prompt(prompt_len, cfg.vocab_size);

    // Warm both (page weights in).
    ours(&bundle, &prompt[..8], 4);
    reference(&mut theirs, &prompt[..8], 4);
    let (mut best_ours, mut best_ref) = (
        Run {
            prefill_tps: 0.0,
            decode_tps: 0.0,
        },
        Run {
            prefill_tps: 0.0,
            decode_tps: 0.0,
        },
    );
    for r in 0..rounds {
        let a = ours(&bundle, &prompt, gen);
        let b = reference(&mut theirs, &prompt, gen);
        println!(
            "round {r}: quorum prefill {:.1} tok/s decode {:.2} tok/s | candle-transformers prefill {:.1} tok/s decode {:.2} tok/s",
            a.prefill_tps, a.decode_tps, b.prefill_tps, b.decode_tps
        );
        best_ours.decode_tps = best_ours.decode_tps.max(a.decode_tps);
        best_ours.prefill_tps = best_ours.prefill_tps.max(a.prefill_tps);
        best_ref.decode_tps = best_ref.decode_tps.max(b.decode_tps);
        best_ref.prefill_tps = best_ref.prefill_tps.max(b.prefill_tps);
    }
    let bytes = quorum::cli::weight_bytes_per_step(&bundle) as f64;
    let bw = quorum::sysinfo::read_bandwidth(1 << 30, 3);
    let roofline = bw / bytes;
    println!(
        "best: quorum decode {:.2} tok/s, candle-transformers {:.2} tok/s → ratio {:.2}x; prefill ratio {:.2}x",
        best_ours.decode_tps,
        best_ref.decode_tps,
        best_ours.decode_tps / best_ref.decode_tps,
        best_ours.prefill_tps / best_ref.prefill_tps
    );
    println!(
        "roofline: {:.2} GB/step at {:.1} GB/s read bandwidth = {:.2} tok/s; quorum at {:.0}%; peak RSS {:.2} GB",
        bytes / 1e9,
        bw / 1e9,
        roofline,
        100.0 * best_ours.decode_tps / roofline,
        quorum::sysinfo::peak_rss_bytes() as f64 / 1e9
    );
}
