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

/// Key/value rows per tile.
pub const TILE: usize = 16;

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

    /// `out[i] = scale · (q · keys row i)` for the first `out.len()` rows.
    /// `keys` holds [`TILE`] rows of `d` (rows past `out.len()` are ignored
    /// by the result; pad them with anything finite).
    #[inline]
    pub fn scores(self, q: &[f32], keys: &[f32], d: usize, scale: f32, out: &mut [f32]) {
        assert!(q.len() >= d && keys.len() >= TILE * d && out.len() <= TILE);
        match self {
            // SAFETY: `select` checked AVX-512F and `d % 16 == 0`; the
            // assert above bounds every load.
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => unsafe { avx512::scores(q, keys, d, scale, out) },
            Tiles::Portable => portable_scores(q, keys, d, scale, out),
        }
    }

    /// `o += Σ_t p[t] · values row t` for `t < p.len()` (≤ [`TILE`]).
    #[inline]
    pub fn accumulate(self, p: &[f32], values: &[f32], d: usize, o: &mut [f32]) {
        assert!(p.len() <= TILE && values.len() >= p.len() * d && o.len() >= d);
        match self {
            // SAFETY: as in `scores`.
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512 => unsafe { avx512::accumulate(p, values, d, o) },
            Tiles::Portable => portable_accumulate(p, values, d, o),
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
    use std::arch::x86_64::*;

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
    /// AVX-512F; `d % 16 == 0`; `q.len() ≥ d`, `keys.len() ≥ 16·d`, `out.len() ≤ 16`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores(q: &[f32], keys: &[f32], d: usize, scale: f32, out: &mut [f32]) {
        let (qp, kp) = (q.as_ptr(), keys.as_ptr());
        let mut acc = [_mm512_setzero_ps(); TILE];
        for c in (0..d).step_by(16) {
            // SAFETY: c + 16 ≤ d and r·d + c + 16 ≤ 16·d (caller contract).
            let qc = unsafe { _mm512_loadu_ps(qp.add(c)) };
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(qc, unsafe { _mm512_loadu_ps(kp.add(r * d + c)) }, *a);
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
    unsafe fn accumulate_w<const W: usize>(
        p: &[f32],
        vp: *const f32,
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
                *a = _mm512_fmadd_ps(
                    b,
                    unsafe { _mm512_loadu_ps(vp.add(t * d + c + 16 * w)) },
                    *a,
                );
            }
        }
        for (w, a) in acc.iter().enumerate() {
            // SAFETY: as the loads.
            unsafe { _mm512_storeu_ps(o.add(c + 16 * w), *a) };
        }
    }

    /// # Safety
    /// AVX-512F; `d % 16 == 0`; `values.len() ≥ p.len()·d`, `o.len() ≥ d`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate(p: &[f32], values: &[f32], d: usize, o: &mut [f32]) {
        let (vp, op) = (values.as_ptr(), o.as_mut_ptr());
        let mut c = 0;
        // SAFETY (all calls): each pass covers c..c + 16·W ≤ d.
        while c + 128 <= d {
            unsafe { accumulate_w::<8>(p, vp, d, op, c) };
            c += 128;
        }
        while c + 64 <= d {
            unsafe { accumulate_w::<4>(p, vp, d, op, c) };
            c += 64;
        }
        while c < d {
            unsafe { accumulate_w::<1>(p, vp, d, op, c) };
            c += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    tiles.scores(&q, &keys, d, 0.5, &mut s);
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
                    tiles.accumulate(&p, &keys, d, &mut o);
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
