//! Process and machine measurements for benchmarks: peak RSS and memory read
//! bandwidth (the decode roofline on CPU).

use std::time::Instant;

use rayon::prelude::*;

/// Peak resident set size of this process (`VmHWM`), in bytes; 0 if unknown.
pub fn peak_rss_bytes() -> u64 {
    read_status_kib("VmHWM:") * 1024
}

/// Current resident set size (`VmRSS`), in bytes; 0 if unknown.
pub fn rss_bytes() -> u64 {
    read_status_kib("VmRSS:") * 1024
}

fn read_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Read bandwidth in bytes/s with the rayon pool's threads, streaming a
/// `bytes`-sized buffer (best of `reps`). The buffer must exceed the caches.
pub fn read_bandwidth(bytes: usize, reps: usize) -> f64 {
    let n = bytes / 4;
    let buf: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let mut best = f64::MAX;
    let mut sink = 0.0f32;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let s: f32 = buf.par_chunks(1 << 16).map(sum_chunk).sum();
        best = best.min(t.elapsed().as_secs_f64());
        sink += s;
    }
    std::hint::black_box(sink);
    (n * 4) as f64 / best
}

/// Sum with 16 independent accumulators, so the loop is bound by loads, not
/// by the add chain; compiled for AVX2 when the CPU has it (the default
/// target only vectorizes to SSE2, which would understate the bandwidth).
fn sum_chunk(c: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked just above).
        return unsafe { sum_chunk_avx2(c) };
    }
    sum_chunk_generic(c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_chunk_avx2(c: &[f32]) -> f32 {
    sum_chunk_generic(c)
}

#[inline(always)]
fn sum_chunk_generic(c: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for chunk in c.chunks_exact(32) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += *x;
        }
    }
    acc.iter().sum::<f32>()
}
