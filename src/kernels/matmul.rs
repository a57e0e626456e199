//! `out = x · Wᵀ` for small m: validation, ISA dispatch, and the rayon split.
//!
//! Layout (all row-major, no padding):
//! * `x`: `m × k` activations, f32;
//! * `w`: `n × k` weight (`nn.Linear` `(out, in)`), f32 or bf16;
//! * `out`: `m × n`, f32, fully overwritten.
//!
//! # Why a custom kernel
//! For decode, m (sequences in the batch) is 1..32 while `W` is megabytes to
//! hundreds of megabytes, so the cost floor is one pass over `W` at memory
//! bandwidth. The kernel walks `W` in blocks of [`NB`] rows; for each block it
//! loops over `x` in blocks of [`MB`] rows and computes the `MB × NB` dot
//! products with `MB·NB` vector accumulators held in registers. Each vector of
//! `W` loaded from memory is therefore used `MB` times from a register, and
//! for `m > MB` the next passes re-read the `NB × k` block from L1/L2 (16 KiB
//! for k = 1024 f32) rather than from DRAM. `x` (≤ 32 × k) stays in L2.
//!
//! # Parallelism
//! Output columns (rows of `W`) are split into contiguous chunks run on the
//! current rayon pool. Chunks are never smaller than [`MIN_CHUNK_ELEMS`]
//! weight elements so that small layers don't pay more in task overhead than
//! they gain; a layer with a single chunk runs on the calling thread.
//! The output rows are split with `chunks_mut`, so every task owns disjoint
//! `&mut` column ranges of each output row (no unsafe sharing).

use half::bf16;
use rayon::prelude::*;

use super::portable;

pub use super::tile::{MB, NB};
/// Minimum number of weight elements per parallel task (≈ 256 KiB of f32):
/// below this, rayon's per-task cost (a few µs) is comparable to the work.
pub const MIN_CHUNK_ELEMS: usize = 64 * 1024;
/// Target number of tasks per rayon thread, so a thread that is briefly busy
/// elsewhere doesn't leave the others idle at the end of the call.
const TASKS_PER_THREAD: usize = 4;

/// Errors from the slice-level kernels (all detected before any work is done).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A buffer's length doesn't match the declared shape.
    #[error("matmul_xwt: `{name}` has {got} elements but the shape needs {expected} ({shape})")]
    BadLen {
        /// Which argument (`x`, `w` or `out`).
        name: &'static str,
        /// Elements required by `m`, `k`, `n`.
        expected: usize,
        /// Elements in the slice.
        got: usize,
        /// The shape, for the message.
        shape: String,
    },
    /// `m * k` (or similar) overflows `usize`.
    #[error("matmul_xwt: shape overflows usize (m = {m}, k = {k}, n = {n})")]
    Overflow {
        /// Rows of x.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Rows of W.
        n: usize,
    },
    /// The requested instruction set isn't available on this CPU.
    #[error("matmul_xwt: instruction set {0:?} is not supported on this CPU")]
    Unsupported(Isa),
}

/// Instruction-set paths of the kernel. [`Isa::detect`] picks the best one at
/// runtime; tests and benches can force any supported path through the
/// `*_with` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust written so that it autovectorizes (any CPU / arch).
    Portable,
    /// x86-64 AVX2 + FMA (8-lane f32).
    Avx2,
    /// x86-64 AVX-512F/BW/VL (16-lane f32; bf16 weights upcast in-register).
    Avx512,
    /// [`Isa::Avx512`] plus AVX512_BF16: bf16 weights use `vdpbf16ps` with `x`
    /// rounded to bf16 (f32 weights use the plain AVX-512 path).
    Avx512Bf16,
}

impl Isa {
    /// Every path, best first.
    pub const ALL: [Isa; 4] = [Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// Whether this path can run on the current CPU.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => super::avx2::supported(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => super::avx512::supported(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => super::avx512::supported_bf16(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The path used by [`matmul_xwt_f32`] and [`matmul_xwt_bf16`].
    ///
    /// For bf16 weights the AVX512_BF16 (`vdpbf16ps`) path is *not* chosen by
    /// default: it rounds `x` to bf16 (≈3 significant digits; up to ~1e-2
    /// relative error on a dot product, vs ~1e-6 for the upcast path) and,
    /// since the kernel is bound by streaming `W` rather than by arithmetic,
    /// it was measured only ~10–20% faster at m = 1 and 5–15% *slower* for
    /// m ≥ 4 than upcasting the weights in-register (`benches/matmul.rs`).
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.is_supported())
            .unwrap_or(Isa::Portable)
    }
}

/// `out = x · wᵀ` with f32 weights on the best path for this CPU.
///
/// `x` is `m × k`, `w` is `n × k` (`nn.Linear` layout), `out` is `m × n`, all
/// row-major. Any `m, k, n ≥ 0` (k = 0 gives zeros). Errors if a slice length
/// doesn't match the shape. Runs on the current rayon pool.
pub fn matmul_xwt_f32(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    matmul_xwt_f32_with(Isa::detect(), x, m, k, w, n, out)
}

/// [`matmul_xwt_f32`] on a chosen path (for tests and benches).
pub fn matmul_xwt_f32_with(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    validate(isa, x.len(), m, k, w.len(), n, out.len())?;
    let (xp, xs) = padded_rows(x, m, k);
    let kernel = |wc: &[f32], rows: &mut [&mut [f32]]| match isa {
        Isa::Portable => portable::chunk_f32(x, m, k, wc, rows),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => super::avx2::chunk_f32(x, m, k, wc, rows),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => super::avx512::chunk_f32(&xp, xs, m, k, wc, rows),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("validated as unsupported"),
    };
    run_split(m, k, w, n, out, &kernel);
    Ok(())
}

/// `out = x · wᵀ` with bf16 weights (upcast to f32 in-register; f32
/// accumulation) on the best path for this CPU. Shapes as [`matmul_xwt_f32`].
pub fn matmul_xwt_bf16(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    matmul_xwt_bf16_with(Isa::detect(), x, m, k, w, n, out)
}

/// [`matmul_xwt_bf16`] on a chosen path (for tests and benches).
/// [`Isa::Avx512Bf16`] rounds `x` to bf16 and uses `vdpbf16ps`.
pub fn matmul_xwt_bf16_with(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    validate(isa, x.len(), m, k, w.len(), n, out.len())?;
    // The dot-product path wants x as bf16 pairs; convert once per call.
    let xb: Vec<bf16> = if isa == Isa::Avx512Bf16 {
        x[..m * k].iter().map(|&v| bf16::from_f32(v)).collect()
    } else {
        Vec::new()
    };
    let xb = &xb;
    let (xp, xs) = padded_rows(x, m, k);
    let kernel = |wc: &[bf16], rows: &mut [&mut [f32]]| match isa {
        Isa::Portable => portable::chunk_bf16(x, m, k, wc, rows),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => super::avx2::chunk_bf16(x, m, k, wc, rows),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => super::avx512::chunk_bf16(&xp, xs, m, k, wc, rows),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => super::avx512::chunk_bf16_dp(xb, m, k, wc, rows),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("validated as unsupported"),
    };
    run_split(m, k, w, n, out, &kernel);
    Ok(())
}

/// Checks `x` (`m × k`) and `out` (`m × n`) against the shape: the common
/// argument check of the packed-weight kernels (their weight was checked
/// when it was packed).
pub(super) fn check_x_out(
    x_len: usize,
    m: usize,
    k: usize,
    n: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    let overflow = KernelError::Overflow { m, k, n };
    for (name, got, expected) in [
        ("x", x_len, m.checked_mul(k).ok_or(overflow.clone())?),
        ("out", out_len, m.checked_mul(n).ok_or(overflow)?),
    ] {
        if got != expected {
            return Err(KernelError::BadLen {
                name,
                expected,
                got,
                shape: format!("m = {m}, k = {k}, n = {n}"),
            });
        }
    }
    Ok(())
}

/// Checks a weight buffer's length against `n × k`.
pub(super) fn check_w(len: usize, n: usize, k: usize) -> Result<(), KernelError> {
    let expected = n
        .checked_mul(k)
        .ok_or(KernelError::Overflow { m: 0, k, n })?;
    if len != expected {
        return Err(KernelError::BadLen {
            name: "w",
            expected,
            got: len,
            shape: format!("n = {n}, k = {k}"),
        });
    }
    Ok(())
}

/// Runs `run(g0, g1)` over `[0, groups)` split into contiguous ranges on the
/// current rayon pool: about [`TASKS_PER_THREAD`] ranges per thread, none
/// smaller than [`MIN_CHUNK_ELEMS`] weight elements (`group_elems` per
/// group); a single range runs on the calling thread. The packed-weight
/// kernels use it with one group per block of output columns.
pub(super) fn par_groups(groups: usize, group_elems: usize, run: impl Fn(usize, usize) + Sync) {
    let threads = rayon::current_num_threads().max(1);
    let min_groups = MIN_CHUNK_ELEMS.div_ceil(group_elems.max(1)).max(1);
    let per_task = groups.div_ceil(threads * TASKS_PER_THREAD).max(min_groups);
    if per_task >= groups {
        run(0, groups);
    } else {
        (0..groups.div_ceil(per_task))
            .into_par_iter()
            .for_each(|t| {
                let g0 = t * per_task;
                run(g0, (g0 + per_task).min(groups));
            });
    }
}

/// A raw output pointer shared by [`par_groups`] tasks, each of which writes
/// a disjoint set of output columns.
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: tasks write disjoint elements (each owns its groups' columns).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper rather
    /// than the raw field).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// A copy of `x` whose rows are not a multiple of 4 KiB apart, with its
/// row stride. When k·4 bytes is a multiple of 4 KiB (k = 1024, 3072, ...),
/// the M rows of x and the N weight rows a tile reads all map to the same L1
/// set at every step and evict each other; a 64-byte skew per row spreads
/// them. One row (decode of a single sequence) needs no copy.
fn padded_rows(x: &[f32], m: usize, k: usize) -> (std::borrow::Cow<'_, [f32]>, usize) {
    if m <= 1 || k == 0 {
        return (std::borrow::Cow::Borrowed(x), k);
    }
    let xs = k.next_multiple_of(16) + 16;
    let mut out = vec![0f32; m * xs];
    for (dst, src) in out.chunks_mut(xs).zip(x.chunks(k)) {
        dst[..k].copy_from_slice(src);
    }
    (std::borrow::Cow::Owned(out), xs)
}

/// Checks the ISA and every slice length against `(m, k, n)` before any work.
fn validate(
    isa: Isa,
    x_len: usize,
    m: usize,
    k: usize,
    w_len: usize,
    n: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::Unsupported(isa));
    }
    check_x_out(x_len, m, k, n, out_len)?;
    check_w(w_len, n, k).map_err(|e| match e {
        KernelError::Overflow { .. } => KernelError::Overflow { m, k, n },
        other => other,
    })?;
    Ok(())
}

/// Rows of `W` per parallel task: about [`TASKS_PER_THREAD`] tasks per
/// thread, but never fewer than [`MIN_CHUNK_ELEMS`] weight elements, rounded
/// up to a multiple of 12 (the tile widths in use are 3 and 4) so only the
/// last chunk has a partial tile.
fn chunk_rows(n: usize, k: usize, threads: usize) -> usize {
    let by_tasks = n.div_ceil(threads.max(1) * TASKS_PER_THREAD);
    let by_size = MIN_CHUNK_ELEMS.div_ceil(k.max(1));
    by_tasks.max(by_size).max(1).next_multiple_of(12)
}

/// A per-chunk kernel: this chunk's weight rows and, per row of `x`, the
/// matching output columns.
type ChunkKernel<'a, T> = dyn Fn(&[T], &mut [&mut [f32]]) + Sync + 'a;

/// Splits `W` rows (= output columns) into chunks and runs `kernel` on each,
/// in parallel when there is more than one chunk. The kernel gets the chunk's
/// weight rows and, per row of `x`, the matching `&mut` slice of `out`.
fn run_split<T: Sync>(
    m: usize,
    k: usize,
    w: &[T],
    n: usize,
    out: &mut [f32],
    kernel: &ChunkKernel<'_, T>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let chunk = chunk_rows(n, k, rayon::current_num_threads());
    if chunk >= n {
        let mut rows: Vec<&mut [f32]> = out.chunks_mut(n).collect();
        kernel(w, &mut rows);
        return;
    }
    let n_chunks = n.div_ceil(chunk);
    let mut per_chunk: Vec<Vec<&mut [f32]>> =
        (0..n_chunks).map(|_| Vec::with_capacity(m)).collect();
    for row in out.chunks_mut(n) {
        for (c, piece) in row.chunks_mut(chunk).enumerate() {
            per_chunk[c].push(piece);
        }
    }
    per_chunk
        .into_par_iter()
        .zip(w.par_chunks(chunk * k))
        .for_each(|(mut rows, wc)| kernel(wc, &mut rows));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1) (xorshift), so failures
    /// reproduce without a rand dependency in the kernel tests.
    /// Asserts `out` (`m × n`) equals `x · wᵀ` computed in f64, with every
    /// `x` value taken through `round_x` (the kernel's activation rounding),
    /// to within `rel · Σ|terms| + abs` per element.
    pub(crate) fn assert_matches_reference(
        (x, w, out): (&[f32], &[f64], &[f32]),
        (m, k, n): (usize, usize, usize),
        round_x: impl Fn(f32) -> f64,
        (rel, abs): (f64, f64),
    ) {
        for i in 0..m {
            for j in 0..n {
                let (mut y, mut s) = (0f64, 0f64);
                for q in 0..k {
                    let t = round_x(x[i * k + q]) * w[j * k + q];
                    y += t;
                    s += t.abs();
                }
                let got = out[i * n + j] as f64;
                assert!(
                    (got - y).abs() <= rel * s + abs,
                    "m={m} k={k} n={n} ({i},{j}): {got} vs {y}"
                );
            }
        }
    }

    pub(crate) fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// f64 reference of `x · wᵀ`, plus `Σ|x||w|` per output (the natural
    /// scale for rounding error of a dot product).
    fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut y = vec![0f64; m * n];
        let mut s = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let a = x[i * k + p] as f64;
                    let b = w[j * k + p] as f64;
                    y[i * n + j] += a * b;
                    s[i * n + j] += (a * b).abs();
                }
            }
        }
        (y, s)
    }

    const SHAPES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 7, 5),
        (3, 17, 9),
        (8, 16, 16),
        (17, 33, 31),
        (32, 64, 13),
        (5, 100, 257),
        (2, 1000, 70),
        (9, 2049, 3),
        (4, 256, 4099),
    ];

    #[test]
    fn all_isas_match_f64_reference() {
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            for (si, &(m, k, n)) in SHAPES.iter().enumerate() {
                let x = rand_vec(m * k, 2 * si as u64 + 1);
                let w = rand_vec(n * k, 2 * si as u64 + 2);
                let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
                let wbf: Vec<f32> = wb.iter().map(|v| v.to_f32()).collect();
                let (y, s) = reference(&x, m, k, &w, n);
                let (yb, sb) = reference(&x, m, k, &wbf, n);
                let mut out = vec![f32::NAN; m * n];
                matmul_xwt_f32_with(isa, &x, m, k, &w, n, &mut out).unwrap();
                for (idx, &o) in out.iter().enumerate() {
                    let err = (o as f64 - y[idx]).abs();
                    assert!(
                        err <= 1e-5 * s[idx] + 1e-6,
                        "{isa:?} f32 m={m} k={k} n={n} idx={idx}: {o} vs {}",
                        y[idx]
                    );
                }
                let mut out = vec![f32::NAN; m * n];
                matmul_xwt_bf16_with(isa, &x, m, k, &wb, n, &mut out).unwrap();
                // The vdpbf16ps path rounds x to bf16 (rel. 2^-9 per term).
                let tol = if isa == Isa::Avx512Bf16 { 8e-3 } else { 1e-5 };
                for (idx, &o) in out.iter().enumerate() {
                    let err = (o as f64 - yb[idx]).abs();
                    assert!(
                        err <= tol * sb[idx] + 1e-6,
                        "{isa:?} bf16 m={m} k={k} n={n} idx={idx}: {o} vs {}",
                        yb[idx]
                    );
                }
            }
        }
    }

    #[test]
    fn zero_sizes() {
        let mut out = vec![1.0f32; 6];
        matmul_xwt_f32(&[], 2, 0, &[], 3, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
        matmul_xwt_f32(&[], 0, 4, &[0.0; 8], 2, &mut []).unwrap();
        matmul_xwt_bf16(&[0.0; 4], 1, 4, &[], 0, &mut []).unwrap();
    }

    #[test]
    fn bad_lengths_are_reported() {
        let mut out = vec![0f32; 6];
        let err = matmul_xwt_f32(&[0.0; 7], 2, 4, &[0.0; 12], 3, &mut out).unwrap_err();
        assert!(matches!(
            err,
            KernelError::BadLen {
                name: "x",
                expected: 8,
                got: 7,
                ..
            }
        ));
        let err = matmul_xwt_f32(&[0.0; 8], 2, 4, &[0.0; 11], 3, &mut out).unwrap_err();
        assert!(matches!(err, KernelError::BadLen { name: "w", .. }));
        let err = matmul_xwt_f32(&[0.0; 8], 2, 4, &[0.0; 12], 3, &mut out[..5]).unwrap_err();
        assert!(matches!(err, KernelError::BadLen { name: "out", .. }));
        assert!(err.to_string().contains("m = 2, k = 4, n = 3"));
        let err = matmul_xwt_f32(&[], usize::MAX, 2, &[], 0, &mut []).unwrap_err();
        assert!(matches!(err, KernelError::Overflow { .. }));
    }

    #[test]
    fn chunking_is_tile_aligned_and_bounded() {
        assert_eq!(chunk_rows(3072, 1024, 2), 384);
        assert!(chunk_rows(10, 8, 2) >= 10); // one chunk: runs inline
        assert_eq!(chunk_rows(151_936, 1024, 2) % 12, 0);
        assert!(chunk_rows(100_000, 4, 2) * 4 >= MIN_CHUNK_ELEMS);
    }

    #[test]
    fn runs_inside_a_custom_pool() {
        // Big enough for several chunks, so the parallel split is exercised.
        let (m, k, n) = (3, 300, 2000);
        let x = rand_vec(m * k, 11);
        let w = rand_vec(n * k, 12);
        let mut a = vec![0f32; m * n];
        let mut b = vec![0f32; m * n];
        matmul_xwt_f32_with(Isa::Portable, &x, m, k, &w, n, &mut a).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| matmul_xwt_f32(&x, m, k, &w, n, &mut b).unwrap());
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-4 * p.abs().max(1.0));
        }
    }
}
