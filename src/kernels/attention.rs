//! Tile kernels of decode attention (`crate::model` runs the loops): the
//! scores of one query against a tile of up to [`TILE`] key rows, and the
//! accumulation `o += Σ p_t · v_t` over a tile of value rows.
//!
//! The AVX-512 versions keep one accumulator register per key (no
//! horizontal sum per dot product: the 16 accumulators are reduced together
//! by a transpose-add tree, ~3 instructions per score) and, for `p · V`,
//! several output registers so the FMA chains overlap. They need
//! `d % 16 == 0`; [`Tiles::select`] falls back to the portable loops
//! otherwise. Every result depends only on its own inputs and its row's
//! position in the tile, never on how many queries or tiles a call runs.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Key/value rows per tile.
pub const TILE: usize = 16;

/// Contiguous K or V rows (`n × d`) in their storage type.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

impl<'a> Rows<'a> {
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(x) => x.len(),
            Rows::F16(x) => x.len(),
            Rows::Bf16(x) => x.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As f32: borrowed when stored so, else widened into `buf`.
    pub fn widen<'s>(self, buf: &'s mut Vec<f32>) -> &'s [f32]
    where
        'a: 's,
    {
        match self {
            Rows::F32(x) => x,
            Rows::F16(x) => {
                buf.resize(x.len(), 0.0);
                x.convert_to_f32_slice(buf);
                buf
            }
            Rows::Bf16(x) => {
                buf.clear();
                buf.extend(
                    x.iter()
                        .map(|v| f32::from_bits(u32::from(v.to_bits()) << 16)),
                );
                buf
            }
        }
    }
}

/// Which tile kernels run (picked once per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tiles {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    Portable,
}

impl Tiles {
    /// AVX-512 when the CPU has it and `d` is a multiple of 16.
    pub fn select(d: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        if d.is_multiple_of(16) && is_x86_feature_detected!("avx512f") {
            return Tiles::Avx512;
        }
        let _ = d;
        Tiles::Portable
    }

    /// `out[i] = scale · (q · keys row i)` for the `out.len()` (≤ [`TILE`])
    /// rows of `keys`. `buf` is scratch for widening half-precision rows.
    #[inline]
    pub fn scores(
        self,
        q: &[f32],
        keys: Rows<'_>,
        d: usize,
        scale: f32,
        out: &mut [f32],
        buf: &mut Vec<f32>,
    ) {
        let n = out.len();
        assert!(q.len() >= d && keys.len() >= n * d && n <= TILE);
        if n == 0 {
            return;
        }
        match self {
            // SAFETY: `select` checked AVX-512F and `d % 16 == 0`; the
            // assert above bounds every load.
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => unsafe {
                match keys {
                    Rows::F32(k) => avx512::scores(q, k.as_ptr(), d, scale, out),
                    Rows::F16(k) => avx512::scores(q, k.as_ptr(), d, scale, out),
                    Rows::Bf16(k) => avx512::scores(q, k.as_ptr(), d, scale, out),
                }
            },
            Tiles::Portable => portable_scores(q, keys.widen(buf), d, scale, out),
        }
    }

    /// `o += Σ_t p[t] · values row t` for `t < p.len()` (≤ [`TILE`]).
    #[inline]
    pub fn accumulate(
        self,
        p: &[f32],
        values: Rows<'_>,
        d: usize,
        o: &mut [f32],
        buf: &mut Vec<f32>,
    ) {
        assert!(p.len() <= TILE && values.len() >= p.len() * d && o.len() >= d);
        match self {
            // SAFETY: as in `scores`.
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => unsafe {
                match values {
                    Rows::F32(v) => avx512::accumulate(p, v.as_ptr(), d, o),
                    Rows::F16(v) => avx512::accumulate(p, v.as_ptr(), d, o),
                    Rows::Bf16(v) => avx512::accumulate(p, v.as_ptr(), d, o),
                }
            },
            Tiles::Portable => portable_accumulate(p, values.widen(buf), d, o),
        }
    }
}

fn portable_scores(q: &[f32], keys: &[f32], d: usize, scale: f32, out: &mut [f32]) {
    for (o, k) in out.iter_mut().zip(keys.chunks_exact(d)) {
        let mut acc = [0f32; 8];
        let (qc, kc) = (q[..d].chunks_exact(8), k.chunks_exact(8));
        let tail: f32 = qc
            .remainder()
            .iter()
            .zip(kc.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in qc.zip(kc) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        *o = (acc.iter().sum::<f32>() + tail) * scale;
    }
}

fn portable_accumulate(p: &[f32], values: &[f32], d: usize, o: &mut [f32]) {
    for (pt, v) in p.iter().zip(values.chunks_exact(d)) {
        for (x, y) in o[..d].iter_mut().zip(v) {
            *x += pt * y;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::TILE;
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// A cache element type loaded 16 at a time as f32.
    pub trait Elem: Copy {
        /// # Safety
        /// AVX-512F; `p..p + 16` readable.
        unsafe fn load16(p: *const Self) -> __m512;
    }

    impl Elem for f32 {
        #[inline(always)]
        unsafe fn load16(p: *const f32) -> __m512 {
            // SAFETY: caller.
            unsafe { _mm512_loadu_ps(p) }
        }
    }

    impl Elem for f16 {
        #[inline(always)]
        unsafe fn load16(p: *const f16) -> __m512 {
            // SAFETY: caller; f16 is 16 bits, `vcvtph2ps` is AVX-512F.
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
        }
    }

    impl Elem for bf16 {
        #[inline(always)]
        unsafe fn load16(p: *const bf16) -> __m512 {
            // SAFETY: caller; bf16 is the top half of an f32.
            unsafe {
                let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
            }
        }
    }

    /// Lane `r` of the result is the sum of the 16 lanes of `a[r]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce16(a: &[__m512; 16]) -> __m512 {
        let mut s = [_mm512_setzero_ps(); 8];
        for i in 0..8 {
            let (x, y) = (a[2 * i], a[2 * i + 1]);
            s[i] = _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
        }
        let mut c = [_mm512_setzero_ps(); 4];
        for i in 0..4 {
            let (x, y) = (_mm512_castps_pd(s[2 * i]), _mm512_castps_pd(s[2 * i + 1]));
            c[i] = _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
            );
        }
        let pair = |x: __m512, y: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
            )
        };
        let (d01, d23) = (pair(c[0], c[1]), pair(c[2], c[3]));
        pair(d01, d23)
    }

    /// # Safety
    /// AVX-512F; `d % 16 == 0`; `q.len() ≥ d`; `1 ≤ out.len() ≤ 16` rows of
    /// `d` readable at `keys`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores<E: Elem>(
        q: &[f32],
        keys: *const E,
        d: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let qp = q.as_ptr();
        // Lanes past `n` re-read the last row; their results are not stored.
        let last = out.len() - 1;
        let mut acc = [_mm512_setzero_ps(); TILE];
        for c in (0..d).step_by(16) {
            // SAFETY: c + 16 ≤ d, and every row index is ≤ last (caller contract).
            let qc = unsafe { _mm512_loadu_ps(qp.add(c)) };
            for (r, a) in acc.iter_mut().enumerate() {
                let row = r.min(last);
                *a = _mm512_fmadd_ps(qc, unsafe { E::load16(keys.add(row * d + c)) }, *a);
            }
        }
        let s = _mm512_mul_ps(reduce16(&acc), _mm512_set1_ps(scale));
        let mask: __mmask16 = ((1u32 << out.len()) - 1) as __mmask16;
        // SAFETY: the mask limits the store to out.len() lanes.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, s) };
    }

    /// `W` output registers per pass; each runs its own FMA chain over t.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn accumulate_w<E: Elem, const W: usize>(
        p: &[f32],
        vp: *const E,
        d: usize,
        o: *mut f32,
        c: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); W];
        for (w, a) in acc.iter_mut().enumerate() {
            // SAFETY: c + 16·W ≤ d (caller).
            *a = unsafe { _mm512_loadu_ps(o.add(c + 16 * w)) };
        }
        for (t, &pt) in p.iter().enumerate() {
            let b = _mm512_set1_ps(pt);
            for (w, a) in acc.iter_mut().enumerate() {
                // SAFETY: t < p.len() ≤ rows of `values`; c + 16·w + 16 ≤ d.
                *a = _mm512_fmadd_ps(b, unsafe { E::load16(vp.add(t * d + c + 16 * w)) }, *a);
            }
        }
        for (w, a) in acc.iter().enumerate() {
            // SAFETY: as the loads.
            unsafe { _mm512_storeu_ps(o.add(c + 16 * w), *a) };
        }
    }

    /// # Safety
    /// AVX-512F; `d % 16 == 0`; `p.len()` rows of `d` readable at `vp`;
    /// `o.len() ≥ d`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate<E: Elem>(p: &[f32], vp: *const E, d: usize, o: &mut [f32]) {
        let op = o.as_mut_ptr();
        let mut c = 0;
        // SAFETY (all calls): each pass covers c..c + 16·W ≤ d.
        while c + 128 <= d {
            unsafe { accumulate_w::<E, 8>(p, vp, d, op, c) };
            c += 128;
        }
        while c + 64 <= d {
            unsafe { accumulate_w::<E, 4>(p, vp, d, op, c) };
            c += 64;
        }
        while c < d {
            unsafe { accumulate_w::<E, 1>(p, vp, d, op, c) };
            c += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half-precision rows give the scores of their widened values.
    #[test]
    fn half_precision_rows_are_widened_exactly() {
        let d = 32;
        let (q, keys) = (data(d, 5), data(5 * d, 6));
        let h: Vec<f16> = keys.iter().map(|x| f16::from_f32(*x)).collect();
        let b: Vec<bf16> = keys.iter().map(|x| bf16::from_f32(*x)).collect();
        for tiles in [Tiles::select(d), Tiles::Portable] {
            let mut buf = Vec::new();
            for rows in [Rows::F16(&h), Rows::Bf16(&b)] {
                let wide = rows.widen(&mut Vec::new()).to_vec();
                let (mut got, mut want) = (vec![0f32; 5], vec![0f32; 5]);
                tiles.scores(&q, rows, d, 1.0, &mut got, &mut buf);
                tiles.scores(&q, Rows::F32(&wide), d, 1.0, &mut want, &mut buf);
                assert_eq!(got, want, "{tiles:?} {rows:?}");
                let (mut o1, mut o2) = (vec![1f32; d], vec![1f32; d]);
                tiles.accumulate(&q[..5], rows, d, &mut o1, &mut buf);
                tiles.accumulate(&q[..5], Rows::F32(&wide), d, &mut o2, &mut buf);
                assert_eq!(o1, o2, "{tiles:?}");
            }
        }
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn tile_kernels_match_plain_sums_on_every_isa() {
        for d in [16usize, 48, 64, 128, 144, 40] {
            let (q, keys) = (data(d, 1), data(TILE * d, 2));
            for n in [1usize, 5, 16] {
                let p = data(n, 3);
                for tiles in [Tiles::select(d), Tiles::Portable] {
                    let mut s = vec![0f32; n];
                    let mut buf = Vec::new();
                    tiles.scores(&q, Rows::F32(&keys[..n * d]), d, 0.5, &mut s, &mut buf);
                    for (i, got) in s.iter().enumerate() {
                        let want: f64 = (0..d)
                            .map(|c| q[c] as f64 * keys[i * d + c] as f64)
                            .sum::<f64>()
                            * 0.5;
                        assert!(
                            (*got as f64 - want).abs() < 1e-4,
                            "{tiles:?} d={d} row {i}: {got} vs {want}"
                        );
                    }
                    let mut o = data(d, 4);
                    let o0 = o.clone();
                    tiles.accumulate(&p, Rows::F32(&keys[..n * d]), d, &mut o, &mut buf);
                    for c in 0..d {
                        let want = o0[c] as f64
                            + (0..n)
                                .map(|t| p[t] as f64 * keys[t * d + c] as f64)
                                .sum::<f64>();
                        assert!((o[c] as f64 - want).abs() < 1e-4, "{tiles:?} d={d} col {c}");
                    }
                }
            }
        }
    }
}
