//! `quorum bench decode`: single-group decode speed against the memory
//! bandwidth roofline. EOS is ignored so every run does the same work.
//! `bench throughput`, `bench selection` and `bench eval` live in their own files.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::common::ModelArgs;

#[path = "bench_selection.rs"]
mod selection;
#[path = "bench_throughput.rs"]
mod throughput;
use crate::engine::ModelBundle;
use crate::engine::{generate_group, GroupRequest, SamplingParams};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prefill and decode speed of one request (N rollouts), with the roofline.
    Decode(DecodeArgs),
    /// Serving throughput through the engine's continuous batching.
    Throughput(throughput::ThroughputArgs),
    /// Answer selection on a task file: accuracy, pass@N, and the tokens
    /// early stopping saves (on and off, same seeds).
    Selection(selection::SelectionArgs),
    /// Accuracy vs N and tokens on a task file (pass@N, maj@N, rm@N, …),
    /// think on/off and budgets, from `--model DIR` or any OpenAI-compatible
    /// `--url`; table, results.json/csv and plots; resumable.
    Eval(Box<super::bench_eval::EvalArgs>),
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Rollouts decoded together.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Timed repetitions (the best is reported).
    #[arg(long, default_value_t = 2)]
    pub reps: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct DecodeReport {
    pub n: usize,
    pub weight_dtype: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub prefill_tokens_per_s: f64,
    pub ttft_ms: f64,
    pub decode_tokens_per_s: f64,
    pub per_sequence_tokens_per_s: f64,
    pub peak_rss_bytes: u64,
    pub weight_bytes_per_step: u64,
    pub read_bandwidth_gb_s: f64,
    pub roofline_tokens_per_s: f64,
    pub fraction_of_roofline: f64,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Decode(args) => decode(args),
        BenchCommand::Throughput(args) => throughput::run(args),
        BenchCommand::Selection(args) => selection::run(args),
        BenchCommand::Eval(args) => super::bench_eval::run(*args),
    }
}

/// A deterministic prompt of ordinary (non-special) token ids.
pub fn synthetic_prompt(len: usize, vocab: usize) -> Vec<u32> {
    let span = vocab.clamp(2, 150_000) as u64 - 1;
    (0..len as u64)
        .map(|i| (1 + (i * 7919 + 13) % span) as u32)
        .collect()
}

/// Bytes of weights one decode step streams (see [`crate::model::Transformer::weight_bytes_per_step`]).
pub fn weight_bytes_per_step(bundle: &ModelBundle) -> u64 {
    bundle.loaded.model.weight_bytes_per_step()
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let bundle = args.model.load()?;
    let vocab = bundle.loaded.config.vocab_size;
    let make = |gen: usize| GroupRequest {
        prompt_ids: synthetic_prompt(args.prompt_tokens, vocab),
        n: args.n,
        params: SamplingParams {
            max_tokens: Some(gen),
            ignore_eos: true,
            seed: Some(0),
            ..SamplingParams::greedy()
        },
        eos_token_ids: bundle.eos_token_ids.clone(),
        think: None,
    };
    let model = &bundle.loaded.model;
    let runs =
        crate::engine::in_engine_pool(|| -> anyhow::Result<Option<crate::engine::GroupOutput>> {
            // Warm-up: page the weights in, size the pools.
            generate_group(model, &bundle.tokenizer, &make(4), &mut |_| true)?;
            let mut best: Option<crate::engine::GroupOutput> = None;
            for _ in 0..args.reps.max(1) {
                let out = generate_group(
                    model,
                    &bundle.tokenizer,
                    &make(args.gen_tokens),
                    &mut |_| true,
                )?;
                if best
                    .as_ref()
                    .is_none_or(|b| out.timings.decode_tokens_per_s > b.timings.decode_tokens_per_s)
                {
                    best = Some(out);
                }
            }
            Ok(best)
        })?;
    let best = runs;
    let out = best.ok_or_else(|| anyhow::anyhow!("no run"))?;
    let bytes = weight_bytes_per_step(&bundle);
    let bw = crate::sysinfo::read_bandwidth(1 << 30, 3);
    let roofline = bw / bytes as f64;
    let t = &out.timings;
    let report = DecodeReport {
        n: args.n,
        weight_dtype: match args.model.serving.quantize {
            Some(q) => format!("{q:?}").to_lowercase(),
            None => format!("{:?}", bundle.loaded.weight_dtype).to_lowercase(),
        },
        prompt_tokens: out.prompt_tokens,
        gen_tokens: args.gen_tokens,
        prefill_tokens_per_s: t.prefill_tokens_per_s,
        ttft_ms: t.ttft_ms,
        decode_tokens_per_s: t.decode_tokens_per_s,
        per_sequence_tokens_per_s: t.decode_tokens_per_s / args.n as f64,
        peak_rss_bytes: crate::sysinfo::peak_rss_bytes(),
        weight_bytes_per_step: bytes,
        read_bandwidth_gb_s: bw / 1e9,
        roofline_tokens_per_s: roofline,
        fraction_of_roofline: t.decode_tokens_per_s / args.n as f64 / roofline,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "n={} {}: prefill {:.1} tok/s (ttft {:.0} ms), decode {:.2} tok/s ({:.2}/seq), peak RSS {:.2} GB\n\
             roofline: {:.2} GB/step at {:.1} GB/s = {:.2} tok/s; single-sequence decode reaches {:.0}% of it",
            report.n,
            report.weight_dtype,
            report.prefill_tokens_per_s,
            report.ttft_ms,
            report.decode_tokens_per_s,
            report.per_sequence_tokens_per_s,
            report.peak_rss_bytes as f64 / 1e9,
            bytes as f64 / 1e9,
            report.read_bandwidth_gb_s,
            roofline,
            report.fraction_of_roofline * 100.0
        );
    }
    Ok(())
}
