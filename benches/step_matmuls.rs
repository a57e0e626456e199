//! Every matmul of one decode step of a Qwen3-0.6B-shape model (28 layers ×
//! q, k, v, o, gate, up, down + the 151936-row LM head; 2.4 GB of distinct
//! f32 weights, so each call streams from DRAM as in the engine): the
//! row-major kernel (`matmul_xwt_f32`) vs the AVX-512 panel-packed kernel
//! (`PackedF32`), interleaved round by round, weights backed by huge pages as
//! `quorum serve` does.
//!
//! `cargo bench --bench step_matmuls` — env `STEP_BENCH_M` (default
//! `1,8,32`), `STEP_BENCH_LAYERS` (default 28), `STEP_BENCH_ROUNDS` (7).
//! Prints the median ms per step, effective GFLOP/s and packed/row-major
//! speed-up per m.

use std::time::Instant;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    run();
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("step_matmuls: the packed kernel is x86-64 only");
}

#[cfg(target_arch = "x86_64")]
fn run() {
    use quorum::kernels::matmul_xwt_f32;
    use quorum::kernels::packed_f32::{available, PackedF32};

    if !available() {
        eprintln!("step_matmuls: AVX-512 not available");
        return;
    }
    let ms: Vec<usize> = std::env::var("STEP_BENCH_M")
        .unwrap_or_else(|_| "1,8,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let layers: usize = env_or("STEP_BENCH_LAYERS", 28);
    let rounds: usize = env_or("STEP_BENCH_ROUNDS", 7).max(1);
    let per_layer = [
        (1024, 2048),
        (1024, 512),
        (1024, 512),
        (2048, 1024),
        (1024, 3072),
        (1024, 3072),
        (3072, 1024),
    ];
    let mut shapes: Vec<(usize, usize)> = (0..layers).flat_map(|_| per_layer).collect();
    shapes.push((1024, 151_936));
    eprintln!("building {} weights", shapes.len());
    let weights: Vec<(usize, usize, Vec<f32>, PackedF32)> = shapes
        .iter()
        .enumerate()
        .map(|(s, &(k, n))| {
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i + s).wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0 - 0.5)
                .collect();
            let p = PackedF32::pack(&w, n, k).expect("pack");
            (k, n, w, p)
        })
        .collect();
    let ranges: Vec<(usize, usize)> = weights
        .iter()
        .flat_map(|(_, _, w, p)| {
            let mut r = p.memory();
            r.push((w.as_ptr() as usize, w.len() * 4));
            r
        })
        .collect();
    let huge = quorum::alloc::back_with_huge_pages(&ranges);
    eprintln!("{:.1} GB on huge pages", huge as f64 / 1e9);
    for &m in &ms {
        let xs: Vec<Vec<f32>> = [1024usize, 2048, 3072]
            .iter()
            .map(|&k| {
                (0..m * k)
                    .map(|i| (i * 40_503 % 997) as f32 / 997.0 - 0.5)
                    .collect()
            })
            .collect();
        let x_for = |k: usize| &xs[k / 1024 - 1];
        let mut outs: Vec<Vec<f32>> = weights
            .iter()
            .map(|(_, n, _, _)| vec![0f32; m * n])
            .collect();
        let (mut row_major, mut packed) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            for ((k, n, w, _), out) in weights.iter().zip(outs.iter_mut()) {
                matmul_xwt_f32(x_for(*k), m, *k, w, *n, out).expect("row-major");
            }
            row_major.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for ((k, _, _, p), out) in weights.iter().zip(outs.iter_mut()) {
                p.matmul(x_for(*k), m, out).expect("packed");
            }
            packed.push(t.elapsed().as_secs_f64());
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut row_major), median(&mut packed));
        let flop: f64 = shapes.iter().map(|&(k, n)| 2.0 * (m * n * k) as f64).sum();
        println!(
            "m={m:2}: row-major {:7.1} ms ({:4.0} GFLOP/s) | packed {:7.1} ms ({:4.0} GFLOP/s) | {:.2}x",
            a * 1e3,
            flop / a / 1e9,
            b * 1e3,
            flop / b / 1e9,
            a / b
        );
    }
}
