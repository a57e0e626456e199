//! Decode-shaped `x · Wᵀ`: the quorum kernel vs candle's CPU matmul.
//!
//! `cargo bench --bench matmul` (plain `Instant` timing, no harness). For each
//! (k, n) and m it runs, interleaved round by round so clock/thermal drift
//! hits every variant alike:
//! * `ours f32`  — `LinearOp` (the kernel on the detected ISA), f32 weight;
//! * `candle f32` — `x.matmul(&w.t())`, f32 weight;
//! * `ours bf16` — `LinearOp`, bf16 weight upcast in-register;
//! * `ours dp`   — `LinearOp` on the AVX512_BF16 `vdpbf16ps` path (if any);
//! * `candle bf16` — `x.matmul(&w.t())` with x and w in bf16.
//!
//! Reported: median ms per call and effective GB/s (weight + x + out bytes
//! touched once / time). `LinearOp` is applied directly (not via `linear`) so
//! m above the crossover measures the kernel, not the fallback.
//!
//! Env: `MATMUL_BENCH_M` (default `1,4,8,16,32`), `MATMUL_BENCH_SHAPES`
//! (default `1024x3072,3072x1024,1024x151936`, as `KxN`),
//! `MATMUL_BENCH_SECS` (time budget per variant per cell, default 0.5).

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use quorum::kernels::{Isa, LinearOp};

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

struct Variant<'a> {
    name: &'static str,
    bytes: usize,
    run: Box<dyn FnMut() + 'a>,
    samples: Vec<f64>,
    spent: Duration,
}

fn variant<'a>(name: &'static str, bytes: usize, run: Box<dyn FnMut() + 'a>) -> Variant<'a> {
    Variant {
        name,
        bytes,
        run,
        samples: Vec::new(),
        spent: Duration::ZERO,
    }
}

fn main() -> candle_core::Result<()> {
    let ms: Vec<usize> = env_list("MATMUL_BENCH_M", "1,4,8,16,32");
    let shapes: Vec<(usize, usize)> =
        env_list::<String>("MATMUL_BENCH_SHAPES", "1024x3072,3072x1024,1024x151936")
            .iter()
            .filter_map(|s| {
                let (k, n) = s.split_once('x')?;
                Some((k.parse().ok()?, n.parse().ok()?))
            })
            .collect();
    let budget = Duration::from_secs_f64(
        std::env::var("MATMUL_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.5),
    );
    let dev = Device::Cpu;
    let isa = Isa::detect();
    let dp = Isa::Avx512Bf16.is_supported();
    println!(
        "isa = {isa:?}, avx512_bf16 = {dp}, rayon threads = {}, budget/variant/cell = {:?}",
        rayon::current_num_threads(),
        budget
    );
    println!(
        "{:>6} {:>7} {:>3} | {:>16} {:>16} {:>6} | {:>16} {:>16} {:>16} {:>7}",
        "k",
        "n",
        "m",
        "ours f32 ms GB/s",
        "candle f32",
        "ratio",
        "ours bf16",
        "ours dp",
        "candle bf16",
        "ratio"
    );
    for &(k, n) in &shapes {
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev)?;
        let wb = w.to_dtype(DType::BF16)?;
        for &m in &ms {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let xb = x.to_dtype(DType::BF16)?;
            let io = m * k * 4 + m * n * 4;
            let op = LinearOp { isa };
            let op_dp = LinearOp {
                isa: Isa::Avx512Bf16,
            };
            let mut vs: Vec<Variant> = Vec::new();
            vs.push(variant(
                "ours f32",
                n * k * 4 + io,
                Box::new(|| {
                    x.apply_op2_no_bwd(&w, &op).unwrap();
                }),
            ));
            vs.push(variant(
                "candle f32",
                n * k * 4 + io,
                Box::new(|| {
                    x.matmul(&w.t().unwrap()).unwrap();
                }),
            ));
            vs.push(variant(
                "ours bf16",
                n * k * 2 + io,
                Box::new(|| {
                    x.apply_op2_no_bwd(&wb, &op).unwrap();
                }),
            ));
            if dp {
                vs.push(variant(
                    "ours dp",
                    n * k * 2 + io,
                    Box::new(|| {
                        x.apply_op2_no_bwd(&wb, &op_dp).unwrap();
                    }),
                ));
            }
            vs.push(variant(
                "candle bf16",
                n * k * 2 + io / 2,
                Box::new(|| {
                    xb.matmul(&wb.t().unwrap()).unwrap();
                }),
            ));
            // Warm-up (page faults, thread pools), then interleaved rounds
            // until every variant has ≥ 3 samples and used its budget.
            for v in vs.iter_mut() {
                (v.run)();
            }
            loop {
                let mut ran = false;
                for v in vs.iter_mut() {
                    if v.samples.len() >= 3 && v.spent >= budget {
                        continue;
                    }
                    let t = Instant::now();
                    (v.run)();
                    let dt = t.elapsed();
                    v.spent += dt;
                    v.samples.push(dt.as_secs_f64());
                    ran = true;
                }
                if !ran {
                    break;
                }
            }
            let stat = |name: &str| -> Option<(f64, f64)> {
                let v = vs.iter().find(|v| v.name == name)?;
                let mut s = v.samples.clone();
                s.sort_by(f64::total_cmp);
                let med = s[s.len() / 2];
                Some((med * 1e3, v.bytes as f64 / med / 1e9))
            };
            let cell = |s: Option<(f64, f64)>| match s {
                Some((ms, gbs)) => format!("{ms:>9.3} {gbs:>6.1}"),
                None => format!("{:>16}", "-"),
            };
            let (of, cf, ob, od, cb) = (
                stat("ours f32"),
                stat("candle f32"),
                stat("ours bf16"),
                stat("ours dp"),
                stat("candle bf16"),
            );
            let ratio = |a: Option<(f64, f64)>, b: Option<(f64, f64)>| match (a, b) {
                (Some(a), Some(b)) => format!("{:.2}x", b.0 / a.0),
                _ => "-".into(),
            };
            println!(
                "{k:>6} {n:>7} {m:>3} | {} {} {:>6} | {} {} {} {:>7}",
                cell(of),
                cell(cf),
                ratio(of, cf),
                cell(ob),
                cell(od),
                cell(cb),
                ratio(ob, cb),
            );
        }
    }
    println!("ratio = candle ms / ours ms (f32: ours f32; bf16: ours bf16 upcast path)");
    Ok(())
}
