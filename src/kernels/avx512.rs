//! AVX-512 paths: 16-lane f32 FMA tiles, bf16 weights upcast in-register,
//! and an AVX512_BF16 `vdpbf16ps` variant.
//!
//! Each tile keeps `M × N ≤ 16` zmm accumulators (of 32 registers), loads `N`
//! weight vectors per 16 k-steps and reuses each for `M` rows of `x`. The k
//! tail uses masked loads (which never touch memory under a zero mask bit),
//! so any k works without a scalar epilogue.

// The AVX-512 intrinsics and target features are stable since Rust 1.89
// (the workspace's `rust-version` says 1.85; this module needs ≥ 1.89).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use half::bf16;

use super::tile::{check_chunk, MB, NB};

/// Software-prefetch distance along each weight row (bf16 path only; the
/// f32 path instead prefetches the rows of the tile after next when the
/// tile has ≥ 4 rows of `x`: measured 11% faster over all Qwen3-0.6B
/// matmuls at m = 8 and 16, and slower at m = 1, so not used there). With
/// `N` rows streamed at once the hardware prefetchers alone left per-core
/// bandwidth on the table for bf16 weights (≈15% faster at m = 1,
/// 1024 × 151936, in 5 of 6 A/B runs); for f32 weights it measured slightly
/// slower, so the f32 path doesn't prefetch.
const PF_BYTES: usize = 1024;

/// Bytes of weight rows per L2 panel (the L2 is 2 MiB per core here; half
/// a MiB leaves room for `x` and the output).
const PANEL_BYTES: usize = 512 * 1024;

/// AVX-512F (FMA, masked f32 loads) + BW/VL (masked 16-bit loads).
pub(super) fn supported() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// [`supported`] plus AVX512_BF16 (`vdpbf16ps`).
pub(super) fn supported_bf16() -> bool {
    supported() && is_x86_feature_detected!("avx512bf16")
}

/// f32 weights. See [`check_chunk`] for the argument contract.
/// `xs` is the row stride of `x` (≥ k; see `matmul::padded_rows`).
pub(super) fn chunk_f32(
    x: &[f32],
    xs: usize,
    m: usize,
    k: usize,
    w: &[f32],
    out: &mut [&mut [f32]],
) {
    let rows = check_chunk(x, m, k, w, out);
    assert!(supported(), "AVX-512 path called on a CPU without AVX-512");
    // SAFETY: the CPU features were checked just above; `check_chunk`
    // guarantees `x` holds `m × k` and `w` holds `rows × k` elements, which
    // bounds every pointer the driver forms (rows `< m` of x, `< rows` of w,
    // columns `< k`).
    unsafe { drive_f32(x.as_ptr(), xs, m, k, w.as_ptr(), rows, out) }
}

/// bf16 weights, widened to f32 in-register (exact: bf16 is the top half of
/// an f32), f32 FMA accumulation.
pub(super) fn chunk_bf16(
    x: &[f32],
    xs: usize,
    m: usize,
    k: usize,
    w: &[bf16],
    out: &mut [&mut [f32]],
) {
    let rows = check_chunk(x, m, k, w, out);
    assert!(supported(), "AVX-512 path called on a CPU without AVX-512");
    // SAFETY: as in `chunk_f32`; `bf16` is `repr(transparent)` over `u16`.
    unsafe { drive_bf16(x.as_ptr(), xs, m, k, w.as_ptr().cast::<u16>(), rows, out) }
}

/// bf16 weights with `x` already rounded to bf16 (`xb`, `m × k`):
/// `vdpbf16ps` multiplies 32 bf16 pairs per instruction into 16 f32 lanes.
pub(super) fn chunk_bf16_dp(xb: &[bf16], m: usize, k: usize, w: &[bf16], out: &mut [&mut [f32]]) {
    let rows = check_chunk(xb, m, k, w, out);
    assert!(
        supported_bf16(),
        "AVX512_BF16 path called on a CPU without it"
    );
    // SAFETY: as in `chunk_f32`; `bf16` is `repr(transparent)` over `u16`.
    unsafe {
        drive_bf16_dp(
            xb.as_ptr().cast::<u16>(),
            m,
            k,
            w.as_ptr().cast::<u16>(),
            rows,
            out,
        )
    }
}

/// Generates a driver (`MB`-row × `NB`-row tile loop) and its tile kernel for
/// one weight element type. `$load`/`$load_mask` turn 16 weights at a pointer
/// into 16 f32 lanes; `$prefetch` enables software prefetch of the weights.
macro_rules! f32_lane_kernel {
    ($drive:ident, $tile:ident, $elem:ty, $load:ident, $load_mask:ident, $prefetch:expr,
     $next_tile_prefetch:expr, $mb_max:expr, $nb_max:expr, $tile_match:ident) => {
        /// # Safety
        /// AVX-512F/BW/VL must be available; `x` must point to `m × k` f32,
        /// `w` to `rows × k` elements; `out` must be `m` slices of `rows`.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        unsafe fn $drive(
            x: *const f32,
            xs: usize,
            m: usize,
            k: usize,
            w: *const $elem,
            rows: usize,
            out: &mut [&mut [f32]],
        ) {
            // Panels of weight rows sized for L2: with more rows of x than
            // one tile holds, each block of x rows (from L1) sweeps the
            // panel (from L2), instead of every weight tile sweeping all of
            // x from L2. For m ≤ one tile this is the plain row-block loop.
            let panel_bytes = PANEL_BYTES.max(1);
            let row_bytes = (k * std::mem::size_of::<$elem>()).max(1);
            let panel = (panel_bytes / row_bytes).max(1).next_multiple_of($nb_max);
            let mut j0 = 0;
            while j0 < rows {
                let j_end = (j0 + panel).min(rows);
                let mut i = 0;
                while i < m {
                    let mb = ($mb_max).min(m - i);
                    let mut j = j0;
                    while j < j_end {
                        let nb = ($nb_max).min(j_end - j);
                        // SAFETY: i + mb ≤ m and j + nb ≤ rows, so the tile's
                        // rows of x and w are inside the caller's buffers.
                        unsafe {
                            $tile_match!(
                                $tile,
                                mb,
                                nb,
                                (x.add(i * xs), xs, w.add(j * k), k, &mut *out, i, j)
                            )
                        };
                        j += nb;
                    }
                    i += mb;
                }
                j0 = j_end;
            }
        }

        /// One `M × N` tile over all of k.
        ///
        /// # Safety
        /// AVX-512F/BW/VL available; `x` points to `M` rows of `k` f32 and
        /// `w` to `N` rows of `k` elements (row stride `k` for both).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        #[inline]
        unsafe fn $tile<const M: usize, const N: usize>(
            x: *const f32,
            xs: usize,
            w: *const $elem,
            k: usize,
            out: &mut [&mut [f32]],
            i0: usize,
            j0: usize,
        ) {
            let mut acc = [[_mm512_setzero_ps(); N]; M];
            let mut wv = [_mm512_setzero_ps(); N];
            let kv = k - k % 16;
            let mut p = 0;
            while p < kv {
                for (jj, v) in wv.iter_mut().enumerate() {
                    // Prefetch PF_BYTES ahead in this weight row; the address
                    // may lie past the buffer, which is fine: `wrapping_add`
                    // forms it without UB and a prefetch never faults.
                    if $prefetch {
                        let ahead = PF_BYTES / std::mem::size_of::<$elem>();
                        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(jj * k + p + ahead).cast());
                    }
                    // Batched tiles: fetch the rows two tiles ahead at the
                    // same column, so each new weight row (often exactly a
                    // 4 KiB page, where hardware prefetch stops) is already
                    // on its way when its tile starts.
                    if $next_tile_prefetch && M >= 4 {
                        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((2 * N + jj) * k + p).cast());
                    }
                    // SAFETY: p + 16 ≤ k, row jj < N.
                    *v = unsafe { $load(w.add(jj * k + p)) };
                }
                for (ii, acc_i) in acc.iter_mut().enumerate() {
                    // SAFETY: p + 16 ≤ k, row ii < M.
                    let xv = unsafe { _mm512_loadu_ps(x.add(ii * xs + p)) };
                    for (a, v) in acc_i.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, *v, *a);
                    }
                }
                p += 16;
            }
            if p < k {
                // Lanes ≥ k - p are masked off: not read, and zero.
                let mask: __mmask16 = (1u16 << (k - p)) - 1;
                for (jj, v) in wv.iter_mut().enumerate() {
                    // SAFETY: only the k - p in-bounds lanes are read.
                    *v = unsafe { $load_mask(w.add(jj * k + p), mask) };
                }
                for (ii, acc_i) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    let xv = unsafe { _mm512_maskz_loadu_ps(mask, x.add(ii * xs + p)) };
                    for (a, v) in acc_i.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, *v, *a);
                    }
                }
            }
            for (ii, acc_i) in acc.iter().enumerate() {
                for (jj, a) in acc_i.iter().enumerate() {
                    out[i0 + ii][j0 + jj] = _mm512_reduce_add_ps(*a);
                }
            }
        }
    };
}

/// 16 f32 weights.
///
/// # Safety
/// AVX-512F available; `p` valid for 16 f32 reads.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_f32(p: *const f32) -> __m512 {
    // SAFETY: caller contract.
    unsafe { _mm512_loadu_ps(p) }
}

/// Up to 16 f32 weights under `mask`.
///
/// # Safety
/// AVX-512F available; lanes set in `mask` valid to read.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_f32_mask(p: *const f32, mask: __mmask16) -> __m512 {
    // SAFETY: caller contract; masked-off lanes are not accessed.
    unsafe { _mm512_maskz_loadu_ps(mask, p) }
}

/// 16 bf16 weights widened to f32: zero-extend to 32 bits and shift the
/// bf16 bits into the high half (bf16 → f32 is exact).
///
/// # Safety
/// AVX-512F available; `p` valid for 16 u16 reads.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_bf16(p: *const u16) -> __m512 {
    // SAFETY: caller contract (32 bytes readable, unaligned load).
    let h = unsafe { _mm256_loadu_si256(p.cast::<__m256i>()) };
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
}

/// Up to 16 bf16 weights under `mask`, widened to f32.
///
/// # Safety
/// AVX-512F/BW/VL available; lanes set in `mask` valid to read.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn load_bf16_mask(p: *const u16, mask: __mmask16) -> __m512 {
    // SAFETY: caller contract; masked-off lanes are not accessed.
    let h = unsafe { _mm256_maskz_loadu_epi16(mask, p.cast::<i16>()) };
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
}

/// Tile shapes of the f32-weight path: up to 8 rows of `x` × 3 weight rows
/// (24 accumulators + 3 weight vectors + 1 x vector of the 32 zmm). With
/// f32 weights an m = 8 batch then streams each weight row once, with no
/// second pass from cache; `benches/matmul.rs`-style runs over all Qwen3-0.6B
/// matmuls measured it ≈12% faster than 4 × 4 tiles at m = 8 and 16.
const F32_MB: usize = 8;
const F32_NB: usize = 3;

/// [`tile_match!`] for the `F32_MB × F32_NB` tile shapes.
macro_rules! tile_match_8x3 {
    ($tile:ident, $mb:expr, $nb:expr, $args:tt) => {
        tile_pairs!(
            $tile,
            ($mb, $nb),
            $args,
            [1, 2, 3, 4, 5, 6, 7, 8],
            [1, 2, 3],
            []
        )
    };
}

/// Expands `match (mb, nb)` over every pair of the two lists (`$args` is the
/// parenthesized argument list, passed as one token tree).
macro_rules! tile_pairs {
    ($tile:ident, $sel:expr, $args:tt, [$m0:literal $(, $m:literal)*], [$($n:literal),*], [$($acc:tt)*]) => {
        tile_pairs!($tile, $sel, $args, [$($m),*], [$($n),*],
            [$($acc)* $( ($m0, $n) => $tile::<$m0, $n> $args, )*])
    };
    ($tile:ident, $sel:expr, $args:tt, [], [$($n:literal),*], [$($acc:tt)*]) => {
        match $sel {
            $($acc)*
            _ => unreachable!("tile shape out of range"),
        }
    };
}

f32_lane_kernel!(
    drive_f32,
    tile_f32,
    f32,
    load_f32,
    load_f32_mask,
    false,
    true,
    F32_MB,
    F32_NB,
    tile_match_8x3
);
f32_lane_kernel!(
    drive_bf16,
    tile_bf16,
    u16,
    load_bf16,
    load_bf16_mask,
    true,
    false,
    MB,
    NB,
    tile_match
);

/// # Safety
/// AVX-512F/BW/VL + AVX512_BF16 available; `x` points to `m × k` bf16 bits,
/// `w` to `rows × k`; `out` is `m` slices of `rows`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn drive_bf16_dp(
    x: *const u16,
    m: usize,
    k: usize,
    w: *const u16,
    rows: usize,
    out: &mut [&mut [f32]],
) {
    let mut j = 0;
    while j < rows {
        let nb = NB.min(rows - j);
        let mut i = 0;
        while i < m {
            let mb = MB.min(m - i);
            // SAFETY: i + mb ≤ m and j + nb ≤ rows.
            unsafe {
                tile_match!(
                    tile_bf16_dp,
                    mb,
                    nb,
                    (x.add(i * k), w.add(j * k), k, &mut *out, i, j)
                )
            };
            i += mb;
        }
        j += nb;
    }
}

/// 32 bf16 values (`mask` selects the readable ones) as a `__m512bh`.
///
/// # Safety
/// AVX-512BW available; lanes set in `mask` valid to read.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_bh_mask(p: *const u16, mask: __mmask32) -> __m512bh {
    // SAFETY: caller contract; masked-off lanes are not accessed. The
    // transmute reinterprets 64 bytes of bf16 bits as the bf16 vector type
    // (same size, no invalid bit patterns).
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(mask, p.cast())) }
}

/// 32 bf16 values as a `__m512bh`.
///
/// # Safety
/// AVX-512F available; `p` valid for 32 u16 reads.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_bh(p: *const u16) -> __m512bh {
    // SAFETY: caller contract; same-size reinterpretation as above.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast())) }
}

/// One `M × N` tile with `vdpbf16ps` (32 k-steps per instruction).
///
/// # Safety
/// As [`drive_bf16_dp`], for `M` rows of x and `N` rows of w.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
unsafe fn tile_bf16_dp<const M: usize, const N: usize>(
    x: *const u16,
    w: *const u16,
    k: usize,
    out: &mut [&mut [f32]],
    i0: usize,
    j0: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); N]; M];
    // SAFETY (for the zero vector): any bit pattern is a valid __m512bh.
    let zero = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()) };
    let mut wv = [zero; N];
    let kv = k - k % 32;
    let mut p = 0;
    while p < kv {
        for (jj, v) in wv.iter_mut().enumerate() {
            // SAFETY: p + 32 ≤ k, row jj < N.
            *v = unsafe { load_bh(w.add(jj * k + p)) };
        }
        for (ii, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: p + 32 ≤ k, row ii < M.
            let xv = unsafe { load_bh(x.add(ii * k + p)) };
            for (a, v) in acc_i.iter_mut().zip(&wv) {
                *a = _mm512_dpbf16_ps(*a, xv, *v);
            }
        }
        p += 32;
    }
    if p < k {
        let mask: __mmask32 = (1u32 << (k - p)) - 1;
        for (jj, v) in wv.iter_mut().enumerate() {
            // SAFETY: only the k - p in-bounds lanes are read.
            *v = unsafe { load_bh_mask(w.add(jj * k + p), mask) };
        }
        for (ii, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let xv = unsafe { load_bh_mask(x.add(ii * k + p), mask) };
            for (a, v) in acc_i.iter_mut().zip(&wv) {
                *a = _mm512_dpbf16_ps(*a, xv, *v);
            }
        }
    }
    for (ii, acc_i) in acc.iter().enumerate() {
        for (jj, a) in acc_i.iter().enumerate() {
            out[i0 + ii][j0 + jj] = _mm512_reduce_add_ps(*a);
        }
    }
}
