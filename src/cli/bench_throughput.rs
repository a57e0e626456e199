//! `quorum bench throughput`: serving throughput through the real engine
//! (`EngineHandle`: queue, scheduler, continuous batching), for several
//! rollout counts and optional concurrent clients. EOS is ignored so every
//! run does the same work; every request gets a distinct prompt and the
//! prefix cache is off, so prefill is measured, not cache hits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::cli::common::ModelArgs;
use crate::engine::{
    EngineConfig, EngineEvent, EngineHandle, GenerateOutput, GenerateRequest, SamplingParams,
    SubmitError,
};

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Rollouts per request; one configuration per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub n: Vec<usize>,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Clients sending requests at the same time.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Requests per configuration (default: one per client).
    #[arg(long)]
    pub requests: Option<usize>,
    /// Prompt tokens prefilled per engine step.
    #[arg(long, default_value_t = 512)]
    pub prefill_chunk: usize,
    /// KV budget in tokens (default: derived from free memory).
    #[arg(long)]
    pub kv_budget_tokens: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub n: usize,
    pub concurrency: usize,
    pub requests: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    /// Mean over requests of prompt tokens per second of prefill.
    pub prefill_tokens_per_s: f64,
    /// Mean time from submission to the first token, as a client sees it.
    pub ttft_ms: f64,
    /// Aggregate: tokens decoded after the first ones, over all requests,
    /// per second from the earliest first token to the last finish.
    pub decode_tokens_per_s: f64,
    /// Mean over requests of one rollout's decode speed.
    pub per_sequence_tokens_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    pub wall_s: f64,
    pub peak_rss_bytes: u64,
    pub kv_bytes_per_token: usize,
    pub kv_budget_tokens: usize,
}

/// What one request measured.
struct Sample {
    submitted: Instant,
    first_token: Instant,
    finished: Instant,
    out: GenerateOutput,
}

pub fn run(args: ThroughputArgs) -> anyhow::Result<()> {
    let model = args.model.clone();
    let engine = EngineHandle::spawn(
        move || model.load(),
        EngineConfig {
            queue_capacity: 1024,
            kv_budget_tokens: args.kv_budget_tokens,
            prefill_chunk: args.prefill_chunk,
            prefix_cache_bytes: Some(0),
            ..EngineConfig::default()
        },
    )?;
    let salt = AtomicUsize::new(0);
    // Warm-up: page the weights in, size the pools.
    run_requests(&engine, &args, 1, 4, 1, 1, &salt)?;
    let mut reports = Vec::new();
    for &n in &args.n {
        let concurrency = args.concurrency.max(1);
        let requests = args.requests.unwrap_or(concurrency).max(1);
        let start = Instant::now();
        let samples = run_requests(
            &engine,
            &args,
            n,
            args.gen_tokens,
            concurrency,
            requests,
            &salt,
        )?;
        let report = summarize(&engine, &args, n, concurrency, &samples, start.elapsed());
        if !args.json {
            print_line(&report);
        }
        reports.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string(&reports)?);
    }
    Ok(())
}

/// `requests` requests from `concurrency` client threads.
fn run_requests(
    engine: &EngineHandle,
    args: &ThroughputArgs,
    n: usize,
    gen_tokens: usize,
    concurrency: usize,
    requests: usize,
    salt: &AtomicUsize,
) -> anyhow::Result<Vec<Sample>> {
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(requests));
    let vocab = engine.info().vocab_size;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let clients: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    while next.fetch_add(1, Ordering::Relaxed) < requests {
                        let req = GenerateRequest {
                            id: "bench".into(),
                            prompt_ids: prompt(
                                args.prompt_tokens,
                                vocab,
                                salt.fetch_add(1, Ordering::Relaxed),
                            ),
                            n,
                            params: SamplingParams {
                                max_tokens: Some(gen_tokens),
                                ignore_eos: true,
                                seed: Some(0),
                                ..SamplingParams::greedy()
                            },
                            think: None,
                        };
                        let sample = one_request(engine, req)?;
                        samples
                            .lock()
                            .map_err(|_| anyhow::anyhow!("a client panicked"))?
                            .push(sample);
                    }
                    Ok(())
                })
            })
            .collect();
        for c in clients {
            c.join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        }
        Ok(())
    })?;
    samples
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a client panicked"))
}

fn one_request(engine: &EngineHandle, req: GenerateRequest) -> anyhow::Result<Sample> {
    let submitted = Instant::now();
    let mut rx = loop {
        match engine.submit(req.clone()) {
            Ok(rx) => break rx,
            Err(SubmitError::QueueFull { .. }) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => anyhow::bail!("{e}"),
        }
    };
    let mut first_token = None;
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            EngineEvent::Token { .. } => {
                first_token.get_or_insert_with(Instant::now);
            }
            EngineEvent::Finished(out) => {
                let finished = Instant::now();
                return Ok(Sample {
                    submitted,
                    first_token: first_token.unwrap_or(finished),
                    finished,
                    out,
                });
            }
            EngineEvent::Error(e) => anyhow::bail!("engine error: {e}"),
            _ => {}
        }
    }
    anyhow::bail!("the engine closed the stream")
}

/// Distinct deterministic prompts of ordinary token ids (no prefix sharing).
fn prompt(len: usize, vocab: usize, salt: usize) -> Vec<u32> {
    let span = vocab.clamp(2, 150_000) as u64 - 1;
    (0..len as u64)
        .map(|i| (1 + (i * 7919 + 13 + salt as u64 * 104_729) % span) as u32)
        .collect()
}

fn summarize(
    engine: &EngineHandle,
    args: &ThroughputArgs,
    n: usize,
    concurrency: usize,
    samples: &[Sample],
    wall: Duration,
) -> ThroughputReport {
    let count = samples.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / count;
    let decoded: usize = samples
        .iter()
        .map(|s| s.out.completion_tokens.saturating_sub(s.out.rollouts.len()))
        .sum();
    let first = samples.iter().map(|s| s.first_token).min();
    let last = samples.iter().map(|s| s.finished).max();
    let decode_s = match (first, last) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64().max(1e-9),
        _ => 1e-9,
    };
    let mut latencies: Vec<f64> = samples
        .iter()
        .map(|s| ms(s.finished.saturating_duration_since(s.submitted)))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let info = engine.info();
    ThroughputReport {
        n,
        concurrency,
        requests: samples.len(),
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        prefill_tokens_per_s: mean(&|s| s.out.timings.prefill_tokens_per_s),
        ttft_ms: mean(&|s| ms(s.first_token.saturating_duration_since(s.submitted))),
        decode_tokens_per_s: decoded as f64 / decode_s,
        per_sequence_tokens_per_s: mean(&|s| s.out.timings.decode_tokens_per_s / n as f64),
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p90_ms: percentile(&latencies, 0.90),
        latency_p99_ms: percentile(&latencies, 0.99),
        wall_s: wall.as_secs_f64(),
        peak_rss_bytes: crate::sysinfo::peak_rss_bytes(),
        kv_bytes_per_token: info.kv_bytes_per_token,
        kv_budget_tokens: info.kv_budget_tokens,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_line(r: &ThroughputReport) {
    println!(
        "n={} c={} x{}: prefill {:.1} tok/s, ttft {:.0} ms, decode {:.2} tok/s ({:.2}/seq), \
         latency p50/p90/p99 {:.0}/{:.0}/{:.0} ms, peak RSS {:.2} GB",
        r.n,
        r.concurrency,
        r.requests,
        r.prefill_tokens_per_s,
        r.ttft_ms,
        r.decode_tokens_per_s,
        r.per_sequence_tokens_per_s,
        r.latency_p50_ms,
        r.latency_p90_ms,
        r.latency_p99_ms,
        r.peak_rss_bytes as f64 / 1e9
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.9), 3.0);
        assert_eq!(percentile(&[], 0.9), 0.0);
    }

    #[test]
    fn bench_prompts_share_no_prefix() {
        assert_ne!(prompt(8, 1000, 0)[0], prompt(8, 1000, 1)[0]);
    }
}
