//! AVX2 + FMA paths: 8-lane f32 tiles; bf16 weights widened in-register.
//!
//! Tiles are at most `MB × NB_AVX2` (4 × 2): 8 ymm accumulators plus the
//! weight and x vectors fit the 16 ymm registers without spills. The k tail
//! (< 8 elements) is done in scalar code after the vector loop.

use std::arch::x86_64::*;

use half::bf16;

use super::tile::{check_chunk, MB};

/// Rows of `W` per tile on this path (register budget: 16 ymm).
const NB_AVX2: usize = 2;

/// AVX2 and FMA.
pub(super) fn supported() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// f32 weights. See [`check_chunk`] for the argument contract.
pub(super) fn chunk_f32(x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [&mut [f32]]) {
    let rows = check_chunk(x, m, k, w, out);
    assert!(supported(), "AVX2 path called on a CPU without AVX2+FMA");
    // SAFETY: CPU features checked above; `check_chunk` guarantees `x` holds
    // `m × k` and `w` holds `rows × k` elements, which bounds every pointer
    // the driver forms.
    unsafe { drive_f32(x.as_ptr(), m, k, w.as_ptr(), rows, out) }
}

/// bf16 weights widened to f32 in-register, f32 accumulation.
pub(super) fn chunk_bf16(x: &[f32], m: usize, k: usize, w: &[bf16], out: &mut [&mut [f32]]) {
    let rows = check_chunk(x, m, k, w, out);
    assert!(supported(), "AVX2 path called on a CPU without AVX2+FMA");
    // SAFETY: as in `chunk_f32`; `bf16` is `repr(transparent)` over `u16`.
    unsafe { drive_bf16(x.as_ptr(), m, k, w.as_ptr().cast::<u16>(), rows, out) }
}

/// Horizontal sum of 8 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 8 f32 weights.
///
/// # Safety
/// AVX available; `p` valid for 8 f32 reads.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load_f32(p: *const f32) -> __m256 {
    // SAFETY: caller contract.
    unsafe { _mm256_loadu_ps(p) }
}

/// 8 bf16 weights widened to f32 (zero-extend, shift into the high half).
///
/// # Safety
/// AVX2 available; `p` valid for 8 u16 reads.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load_bf16(p: *const u16) -> __m256 {
    // SAFETY: caller contract (16 bytes readable, unaligned load).
    let h = unsafe { _mm_loadu_si128(p.cast::<__m128i>()) };
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

/// One weight element as f32 (scalar tail).
trait ToF32: Copy {
    fn to_f32(self) -> f32;
}
impl ToF32 for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}
impl ToF32 for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self) << 16)
    }
}

/// Generates the tile loop driver and tile kernel for one weight type.
macro_rules! avx2_kernel {
    ($drive:ident, $tile:ident, $elem:ty, $load:ident) => {
        /// # Safety
        /// AVX2+FMA available; `x` points to `m × k` f32, `w` to `rows × k`
        /// elements; `out` is `m` slices of `rows`.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $drive(
            x: *const f32,
            m: usize,
            k: usize,
            w: *const $elem,
            rows: usize,
            out: &mut [&mut [f32]],
        ) {
            let mut j = 0;
            while j < rows {
                let nb = NB_AVX2.min(rows - j);
                let mut i = 0;
                while i < m {
                    let mb = MB.min(m - i);
                    // SAFETY: i + mb ≤ m and j + nb ≤ rows.
                    unsafe {
                        tile_match!(
                            $tile,
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

        /// One `M × N` tile over all of k.
        ///
        /// # Safety
        /// AVX2+FMA available; `x` points to `M` rows of `k` f32, `w` to `N`
        /// rows of `k` elements (row stride `k`).
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn $tile<const M: usize, const N: usize>(
            x: *const f32,
            w: *const $elem,
            k: usize,
            out: &mut [&mut [f32]],
            i0: usize,
            j0: usize,
        ) {
            let mut acc = [[_mm256_setzero_ps(); N]; M];
            let mut wv = [_mm256_setzero_ps(); N];
            let kv = k - k % 8;
            let mut p = 0;
            while p < kv {
                for (jj, v) in wv.iter_mut().enumerate() {
                    // SAFETY: p + 8 ≤ k, row jj < N.
                    *v = unsafe { $load(w.add(jj * k + p)) };
                }
                for (ii, acc_i) in acc.iter_mut().enumerate() {
                    // SAFETY: p + 8 ≤ k, row ii < M.
                    let xv = unsafe { _mm256_loadu_ps(x.add(ii * k + p)) };
                    for (a, v) in acc_i.iter_mut().zip(&wv) {
                        *a = _mm256_fmadd_ps(xv, *v, *a);
                    }
                }
                p += 8;
            }
            for (ii, acc_i) in acc.iter().enumerate() {
                for (jj, a) in acc_i.iter().enumerate() {
                    let mut s = hsum(*a);
                    for q in kv..k {
                        // SAFETY: q < k, rows ii < M and jj < N.
                        let (xq, wq) = unsafe { (*x.add(ii * k + q), *w.add(jj * k + q)) };
                        s += xq * wq.to_f32();
                    }
                    out[i0 + ii][j0 + jj] = s;
                }
            }
        }
    };
}

avx2_kernel!(drive_f32, tile_f32, f32, load_f32);
avx2_kernel!(drive_bf16, tile_bf16, u16, load_bf16);
