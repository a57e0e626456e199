//! Q8_0 weights on Intel AMX: 8-bit weights with one scale per 32 inputs
//! (GGML's Q8_0 block), dequantized to bf16 in L1 just before the tile
//! multiply.
//!
//! # Why
//! candle's CPU `QMatMul` computes each row of `x` against the whole weight
//! in turn, so a batch of m rows streams the weight m times: Q8_0 decode of
//! 8 rollouts ran at only 3.0x the single-stream rate. Here the weight is
//! streamed once per call whatever m is (up to 16 rows per tile pass), at
//! ~1.1 bytes per weight, and the arithmetic runs on the tile unit.
//!
//! # Layout and numerics
//! A packed B tile covers 32 inputs (one Q8_0 block) × 16 outputs, so each
//! of its 16 columns has exactly one scale. [`PackedQ8::quantize`] stores,
//! in the kernel's reading order (`[n/64][k/32][4 tiles]`), each tile's 512
//! int8 values in VNNI pair order and its 16 f32 scales. Quantization is
//! GGML's: `d = max|w| / 127`, `q = round(w / d)`. The kernel widens a tile to
//! f32, multiplies by the scales and rounds to bf16 (`vcvtne2ps2bf16`), so
//! `q·d` carries 8 significant bits; activations are rounded to bf16 as in
//! [`super::amx`]. Rows of `x` never mix: a sequence's result doesn't depend
//! on its batch.

#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::amx::{check_weight, drive_groups, run_groups, GROUP, KSTEP, MROWS};
use super::matmul::KernelError;

/// Bytes of one tile's int8 values (16 rows × 16 columns × 2).
const TILE_Q: usize = 512;
/// Scales per tile (one per output column).
const TILE_S: usize = 16;

/// A `(n, k)` weight quantized to Q8_0 in AMX tile order.
pub struct PackedQ8 {
    qs: Vec<i8>,
    scales: Vec<f32>,
    n: usize,
    k: usize,
    k_pad: usize,
}

impl std::fmt::Debug for PackedQ8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedQ8")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

impl PackedQ8 {
    /// Quantizes `w` (`n × k` f32, row-major) block by block (32 inputs).
    /// Runs on the current rayon pool (one task per group of 64 outputs).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self, KernelError> {
        let k_pad = check_weight(w.len(), n, k)?;
        let overflow = KernelError::Overflow { m: 0, k, n };
        let (groups, steps) = (n.div_ceil(GROUP), k_pad / KSTEP);
        let tiles = groups.checked_mul(steps * 4).ok_or(overflow.clone())?;
        let mut qs = vec![0i8; tiles.checked_mul(TILE_Q).ok_or(overflow)?];
        let mut scales = vec![0f32; tiles * TILE_S];
        qs.par_chunks_mut(steps * 4 * TILE_Q)
            .zip(scales.par_chunks_mut(steps * 4 * TILE_S))
            .enumerate()
            .for_each(|(g, (gq, gs))| {
                for (t, (tq, ts)) in gq.chunks_mut(TILE_Q).zip(gs.chunks_mut(TILE_S)).enumerate() {
                    let (step, tile) = (t / 4, t % 4);
                    for (c, scale) in ts.iter_mut().enumerate() {
                        let row = g * GROUP + tile * 16 + c;
                        if row >= n {
                            break;
                        }
                        let k0 = step * KSTEP;
                        let block = &w[row * k + k0..row * k + (k0 + KSTEP).min(k)];
                        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
                        let d = amax / 127.0;
                        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                        *scale = d;
                        for (i, &v) in block.iter().enumerate() {
                            // Element (k0 + i) sits in tile row i / 2, pair slot i % 2.
                            tq[(i / 2) * 32 + c * 2 + i % 2] = (v * inv).round() as i8;
                        }
                    }
                }
            });
        Ok(Self {
            qs,
            scales,
            n,
            k,
            k_pad,
        })
    }

    /// Output features.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes streamed per call (int8 values + f32 scales).
    pub fn bytes(&self) -> usize {
        self.qs.len() + self.scales.len() * 4
    }

    /// Where the packed weight lives: `(address, bytes)` per buffer.
    pub fn memory(&self) -> Vec<(usize, usize)> {
        vec![
            (self.qs.as_ptr() as usize, self.qs.len()),
            (self.scales.as_ptr() as usize, self.scales.len() * 4),
        ]
    }

    /// The dequantized weight `q·d` as f32, `n × k` (for tests and checks).
    pub fn dequantize(&self) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let steps = self.k_pad / KSTEP;
        let mut w = vec![0f32; n * k];
        for row in 0..n {
            let (g, tile, c) = (row / GROUP, (row % GROUP) / 16, row % 16);
            for col in 0..k {
                let t = (g * steps + col / KSTEP) * 4 + tile;
                let i = col % KSTEP;
                let q = self.qs[t * TILE_Q + (i / 2) * 32 + c * 2 + i % 2];
                w[row * k + col] = q as f32 * self.scales[t * TILE_S + c];
            }
        }
        w
    }

    /// `out = x · Wᵀ` (`x`: `m × k` f32, `out`: `m × n` f32, overwritten).
    /// Errors on bad lengths or without AMX.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<(), KernelError> {
        if !(is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512bw")) {
            return Err(KernelError::Unsupported(super::Isa::Avx512Bf16));
        }
        run_groups(
            x,
            m,
            self.n,
            self.k,
            self.k_pad,
            out,
            |xb, m_pad, g0, g1, out| {
                // SAFETY: AVX512-BF16/BW checked above, AMX and the lengths by
                // `run_groups`; this task writes only the columns of groups g0..g1.
                unsafe { self.drive(xb, m, m_pad, g0, g1, out) }
            },
        )
    }

    /// # Safety
    /// AMX and AVX512-BF16 available; `xb` is `m_pad × k_pad` bf16 bits;
    /// `out` is `m × n` f32 of which only groups `g0..g1`' columns are written.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn drive(
        &self,
        xb: &[u16],
        m: usize,
        m_pad: usize,
        g0: usize,
        g1: usize,
        out: *mut f32,
    ) {
        let steps = self.k_pad / KSTEP;
        // Four dequantized B tiles (bf16), rewritten every k step.
        let mut buf = Tiles([[0u16; 512]; 4]);
        // Above one tile of rows, the group is dequantized once (all k steps,
        // ≤ 384 KiB: L2) and every row block multiplies from there.
        let whole = m_pad > MROWS;
        let mut scratch = vec![0u16; if whole { steps * 4 * 512 } else { 0 }];
        let scratch_ptr = scratch.as_mut_ptr();
        let buf_ptr: *mut u16 = buf.0.as_mut_ptr().cast();
        // Lane j of the low/high half takes column scale j / 2 (resp. 8 + j / 2).
        let lo_idx = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        let hi_idx = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
        // SAFETY: caller contract; tiles `(g·steps + step)·4 ..+4` exist, and
        // `scratch` (all steps) / `buf` (one step) hold the dequantized tiles
        // `b_tiles` points to.
        unsafe {
            drive_groups(
                xb,
                self.k_pad,
                (m, m_pad, self.n),
                (g0, g1),
                out,
                |g| {
                    if whole {
                        for step in 0..steps {
                            let dst = scratch_ptr.add(step * 4 * 512);
                            self.dequantize_step((g * steps + step) * 4, dst, lo_idx, hi_idx);
                        }
                    }
                },
                |g, step| {
                    if whole {
                        scratch_ptr.add(step * 4 * 512)
                    } else {
                        self.dequantize_step((g * steps + step) * 4, buf_ptr, lo_idx, hi_idx);
                        buf_ptr
                    }
                },
            )
        }
    }

    /// Dequantizes the 4 tiles starting at tile index `t0` into `dst`
    /// (4 × 512 bf16, tile after tile).
    ///
    /// # Safety
    /// AVX-512F/BW + AVX512-BF16 available; `t0 + 4` tiles exist; `dst` is
    /// valid for 2048 u16 writes. `lo_idx`/`hi_idx` are the scale
    /// permutations built in `drive`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn dequantize_step(&self, t0: usize, dst: *mut u16, lo_idx: __m512i, hi_idx: __m512i) {
        // SAFETY: caller contract bounds every pointer.
        unsafe {
            for tile in 0..4 {
                let q = self.qs.as_ptr().add((t0 + tile) * TILE_Q);
                let s = _mm512_loadu_ps(self.scales.as_ptr().add((t0 + tile) * TILE_S));
                let (s_lo, s_hi) = (
                    _mm512_permutexvar_ps(lo_idx, s),
                    _mm512_permutexvar_ps(hi_idx, s),
                );
                let b = dst.add(tile * 512);
                for r in 0..16 {
                    let v = _mm512_cvtepi8_epi16(_mm256_loadu_si256(q.add(r * 32).cast()));
                    let lo = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(v)));
                    let hi = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(
                        _mm512_extracti64x4_epi64::<1>(v),
                    ));
                    let packed =
                        _mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, s_hi), _mm512_mul_ps(lo, s_lo));
                    _mm512_storeu_si512(
                        b.add(r * 32).cast(),
                        std::mem::transmute::<__m512bh, __m512i>(packed),
                    );
                }
            }
        }
    }
}

/// Four bf16 B tiles, 64-byte aligned.
#[repr(C, align(64))]
struct Tiles([[u16; 512]; 4]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::amx::available;
    use crate::kernels::matmul::tests::{assert_matches_reference, rand_vec};
    use half::bf16;

    fn round(v: f32) -> f64 {
        bf16::from_f32(v).to_f32() as f64
    }

    #[test]
    fn quantization_is_ggml_q8_0() {
        let (n, k) = (70, 40);
        let w = rand_vec(n * k, 3);
        let p = PackedQ8::quantize(&w, n, k).unwrap();
        let dq = p.dequantize();
        for row in 0..n {
            for b in 0..k.div_ceil(32) {
                let blk = &w[row * k + b * 32..row * k + (b * 32 + 32).min(k)];
                let d = blk.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                for (i, &v) in blk.iter().enumerate() {
                    let want = (v / d).round() * d;
                    let got = dq[row * k + b * 32 + i];
                    assert!(
                        (got - want).abs() <= 1e-6,
                        "({row},{}): {got} vs {want}",
                        b * 32 + i
                    );
                }
            }
        }
    }

    #[test]
    fn amx_q8_matches_dequantized_reference() {
        if !available() {
            eprintln!("skipping: AMX not available on this CPU/OS");
            return;
        }
        for &(m, k, n) in &[(1, 32, 64), (3, 70, 65), (8, 1024, 128), (20, 96, 130)] {
            let x = rand_vec(m * k, (m + k) as u64);
            let w = rand_vec(n * k, (n * 3 + k) as u64);
            let p = PackedQ8::quantize(&w, n, k).unwrap();
            // The kernel rounds q·d to bf16 as well as x.
            let wd: Vec<f64> = p.dequantize().iter().map(|&v| round(v)).collect();
            let mut out = vec![f32::NAN; m * n];
            p.matmul(&x, m, &mut out).unwrap();
            assert_matches_reference((&x, &wd, &out), (m, k, n), round, (1e-5, 1e-6));
            // Rows don't depend on the batch.
            let mut one = vec![0f32; n];
            p.matmul(&x[(m - 1) * k..], 1, &mut one).unwrap();
            assert_eq!(one, out[(m - 1) * n..]);
        }
    }
}
