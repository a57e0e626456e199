//! Strided f32 GEMM on AVX-512 for training: `C (+)= A · B` where `A` and
//! `B` may be read with any strides (so `gᵀ` in `dW = gᵀ · x` and `wᵀ` in
//! `y = x · wᵀ` are never materialised).
//!
//! # Why
//! candle's CPU matmul is the `gemm` crate, built here without its `x86-v4`
//! feature, so it runs AVX2 (8-lane) micro-kernels even on AVX-512 CPUs.
//! Training's matmuls are large (thousands of rows), so they are
//! FMA-bound and 16 lanes nearly double the throughput. [`super::packed_f32`]
//! has the right micro-kernel but wants `A` row-major and `B` pre-packed,
//! which for the weight gradient means transposing activations.
//!
//! # Kernel
//! The micro-kernel of [`super::packed_f32`]: an 8-row × 48-column tile in 24
//! zmm accumulators; per k step one broadcast of `A[i][p]` per row and three
//! 16-lane loads of `B[p][j..j+48]`. `A` is read in place through its two
//! strides; `B` is first copied (through its strides, so `wᵀ` needs no
//! transpose) into 48-column panels, k-major, and each chunk of `KC` rows
//! of a panel (24 KiB) is reused from L1 by every row tile of a task; each
//! panel's results build up in a task-local buffer over all chunks and
//! reach `C` once (added when accumulating). Work is split
//! over a grid of (up to 256 rows × `NC` columns) blocks of `C`, one rayon
//! task each; every task writes only its own block.
//!
//! # Numerics
//! Plain f32 FMA, each output accumulated in k order (chunk by chunk from
//! `C`'s previous value or zero). Differs from candle's GEMM by rounding only.

#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::matmul::KernelError;

/// Rows per register tile.
const MR: usize = 8;
/// 16-lane vectors per tile row.
const NV: usize = 3;
/// Columns per register tile.
const NR: usize = NV * 16;
/// k steps per chunk (KC × NR f32 = 24 KiB of `B`).
const KC: usize = 128;
/// Rows of `C` per task: large blocks reuse each packed chunk of `B` over
/// more row tiles; small ones keep every thread busy on short `C`s.
const MC_MAX: usize = 256;
const MC_MIN: usize = 32;
/// Columns of `C` per task.
const NC: usize = 4 * NR;
/// Most f32 values of B packed at once (16 MiB).
const PACKED_MAX: usize = 4 << 20;

/// Whether this CPU runs the kernel (AVX-512F/BW/VL).
pub fn available() -> bool {
    super::avx512::supported()
}

/// How `A` is read: `A[i][p] = data[i·row + p·col]`.
#[derive(Debug, Clone, Copy)]
pub struct Strides {
    pub row: usize,
    pub col: usize,
}

impl Strides {
    /// Row-major with rows of length `k` (or longer, `row ≥ k`).
    pub fn row_major(row: usize) -> Self {
        Self { row, col: 1 }
    }
    /// The transpose of a row-major matrix with rows of length `row_len`:
    /// `A[i][p] = data[p·row_len + i]`.
    pub fn transposed(row_len: usize) -> Self {
        Self {
            row: 1,
            col: row_len,
        }
    }
}

/// The shapes and strides of one product: `C (m × n, row stride ldc)`
/// (`+=` when `accumulate`, else `=`) `A (m × k) · B (k × n)`, both read
/// through their [`Strides`].
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Strides,
    pub b: Strides,
    pub ldc: usize,
    pub accumulate: bool,
}

fn bad(name: &'static str, expected: usize, got: usize, g: &Gemm) -> KernelError {
    KernelError::BadLen {
        name,
        expected,
        got,
        shape: format!("m = {}, k = {}, n = {}", g.m, g.k, g.n),
    }
}

/// Elements a strided operand must hold: one past its last element.
fn extent(rows: usize, cols: usize, row: usize, col: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row)?
        .checked_add((cols - 1).checked_mul(col)?)?
        .checked_add(1)
}

impl Gemm {
    fn check(&self, a: usize, b: usize, c: usize) -> Result<(), KernelError> {
        let overflow = KernelError::Overflow {
            m: self.m,
            k: self.k,
            n: self.n,
        };
        if self.ldc < self.n {
            return Err(bad("ldc", self.n, self.ldc, self));
        }
        let need_a = extent(self.m, self.k, self.a.row, self.a.col).ok_or(overflow.clone())?;
        let need_b = extent(self.k, self.n, self.b.row, self.b.col).ok_or(overflow.clone())?;
        let need_c = extent(self.m, self.n, self.ldc, 1).ok_or(overflow)?;
        if a < need_a {
            return Err(bad("a", need_a, a, self));
        }
        if b < need_b {
            return Err(bad("b", need_b, b, self));
        }
        if c < need_c {
            return Err(bad("c", need_c, c, self));
        }
        Ok(())
    }

    /// Run on the current rayon pool. Errors on bad lengths or without
    /// AVX-512 (see [`available`]).
    pub fn run(&self, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<(), KernelError> {
        self.run_with(a, b, c, true)
    }

    fn run_with(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        parallel: bool,
    ) -> Result<(), KernelError> {
        if !available() {
            return Err(KernelError::Unsupported(super::Isa::Avx512));
        }
        self.check(a.len(), b.len(), c.len())?;
        if self.m == 0 || self.n == 0 {
            return Ok(());
        }
        if self.k == 0 {
            if !self.accumulate {
                for row in c.chunks_mut(self.ldc).take(self.m) {
                    row[..self.n].fill(0.0);
                }
            }
            return Ok(());
        }
        // B is packed one strip of columns at a time, so the packed copy
        // stays bounded (an LM head's wᵀ is hidden × vocab).
        let strip = (PACKED_MAX / self.k / NC).max(1) * NC;
        let parallel = parallel && rayon::current_num_threads() > 1;
        let cp = CPtr(c.as_mut_ptr());
        let mut js = 0;
        while js < self.n {
            let je = (js + strip).min(self.n);
            let packed = pack_panels(b, self.b, self.k, (js, je), parallel);
            let bn = (je - js).div_ceil(NC);
            let want = 4 * rayon::current_num_threads().max(1);
            let mut mc = MC_MAX;
            while mc > MC_MIN && self.m.div_ceil(mc) * bn < want {
                mc /= 2;
            }
            let bm = self.m.div_ceil(mc);
            let block = |t: usize| {
                let (i0, j0) = ((t / bn) * mc, js + (t % bn) * NC);
                let (i1, j1) = ((i0 + mc).min(self.m), (j0 + NC).min(je));
                // SAFETY: AVX-512 checked above; `check` bounds every
                // element of a and c the block reads or writes, `packed`
                // holds every panel of the strip; blocks are disjoint.
                unsafe {
                    self.block(
                        a.as_ptr(),
                        (&packed, js, self.k),
                        cp.get(),
                        (i0, i1),
                        (j0, j1),
                    )
                }
            };
            if parallel && bm * bn > 1 {
                (0..bm * bn).into_par_iter().for_each(block);
            } else {
                (0..bm * bn).for_each(block);
            }
            js = je;
        }
        Ok(())
    }

    /// [`Gemm::run`] on the calling thread only, with B taken from `packed` (the first `k` rows
    /// and `n` columns of it; `self.b` is ignored), for several products
    /// that share one B.
    pub fn run_packed_serial(
        &self,
        a: &[f32],
        packed: &PackedB,
        c: &mut [f32],
    ) -> Result<(), KernelError> {
        if !available() {
            return Err(KernelError::Unsupported(super::Isa::Avx512));
        }
        if self.k > packed.rows || self.n > packed.cols {
            return Err(bad(
                "packed b",
                self.k * self.n,
                packed.rows * packed.cols,
                self,
            ));
        }
        let overflow = KernelError::Overflow {
            m: self.m,
            k: self.k,
            n: self.n,
        };
        let need_a = extent(self.m, self.k, self.a.row, self.a.col).ok_or(overflow.clone())?;
        let need_c = extent(self.m, self.n, self.ldc, 1).ok_or(overflow)?;
        if a.len() < need_a {
            return Err(bad("a", need_a, a.len(), self));
        }
        if c.len() < need_c || self.ldc < self.n {
            return Err(bad("c", need_c, c.len(), self));
        }
        if self.m == 0 || self.n == 0 || self.k == 0 {
            if self.k == 0 && !self.accumulate {
                for row in c.chunks_mut(self.ldc).take(self.m) {
                    row[..self.n].fill(0.0);
                }
            }
            return Ok(());
        }
        let mut j0 = 0;
        while j0 < self.n {
            let j1 = (j0 + NC).min(self.n);
            // SAFETY: AVX-512 checked; a and c are bounded above; every
            // panel of `packed` holds `packed.rows ≥ k` rows.
            unsafe {
                self.block(
                    a.as_ptr(),
                    (&packed.data, 0, packed.rows),
                    c.as_mut_ptr(),
                    (0, self.m),
                    (j0, j1),
                )
            };
            j0 = j1;
        }
        Ok(())
    }

    /// Rows `i0..i1` × columns `j0..j1` of `C`.
    ///
    /// # Safety
    /// AVX-512F available; the operands satisfy [`Gemm::check`]; no other
    /// thread accesses this block of `C`.
    #[target_feature(enable = "avx512f")]
    unsafe fn block(
        &self,
        a: *const f32,
        (packed, js, panel_rows): (&[f32], usize, usize),
        c: *mut f32,
        (i0, i1): (usize, usize),
        (j0, j1): (usize, usize),
    ) {
        let rows = i1 - i0;
        // Each panel's results for this block's rows, accumulated over every
        // k chunk before they go to C.
        let mut acc = vec![0f32; rows.next_multiple_of(MR) * NR];
        let mut j = j0;
        while j < j1 {
            let width = NR.min(j1 - j);
            let mut p0 = 0;
            while p0 < self.k {
                let kc = KC.min(self.k - p0);
                let panel = &packed[(((j - js) / NR) * panel_rows + p0) * NR..][..kc * NR];
                let mut i = i0;
                while i < i1 {
                    let mr = MR.min(i1 - i);
                    // SAFETY: rows i..i+mr < m and k steps p0..p0+kc ≤ k of
                    // A are inside its checked extent; `panel` holds kc × NR
                    // values and `acc` mr × NR from row i − i0.
                    unsafe {
                        let args = Tile {
                            a: a.add(i * self.a.row + p0 * self.a.col),
                            a_strides: self.a,
                            b: panel.as_ptr(),
                            acc: acc.as_mut_ptr().add((i - i0) * NR),
                            kc,
                            first: p0 == 0,
                        };
                        tile_for_rows(mr, &args);
                    }
                    i += mr;
                }
                p0 += kc;
            }
            for (r, src) in acc.chunks_exact(NR).take(rows).enumerate() {
                // SAFETY: row i0 + r < m and columns j..j+width ≤ n of C,
                // which only this task touches.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(c.add((i0 + r) * self.ldc + j), width)
                };
                if self.accumulate {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                } else {
                    dst.copy_from_slice(&src[..width]);
                }
            }
            j += width;
        }
    }
}

/// Columns `js..je` of B (k rows, read through `st`) in panel order: panel
/// `q` holds columns `js + 48q ..` as k rows of 48 contiguous values (zero
/// past the last column); one task per panel when `parallel`.
fn pack_panels(
    b: &[f32],
    st: Strides,
    k: usize,
    (js, je): (usize, usize),
    parallel: bool,
) -> Vec<f32> {
    let mut packed = vec![0f32; (je - js).div_ceil(NR) * k * NR];
    let fill = |(q, dst): (usize, &mut [f32])| {
        let (j0, width) = (js + q * NR, NR.min(je - js - q * NR));
        if st.col == 1 {
            for (p, row) in dst.chunks_exact_mut(NR).enumerate() {
                row[..width].copy_from_slice(&b[p * st.row + j0..][..width]);
            }
        } else {
            // Column-major reads (e.g. `wᵀ` of a row-major weight).
            for c in 0..width {
                let col = &b[(j0 + c) * st.col..];
                for p in 0..k {
                    dst[p * NR + c] = col[p * st.row];
                }
            }
        }
    };
    if parallel {
        packed.par_chunks_mut(k * NR).enumerate().for_each(fill);
    } else {
        packed.chunks_mut(k * NR).enumerate().for_each(fill);
    }
    packed
}

/// A `rows × cols` B operand packed once (see [`Gemm::run_packed_serial`]).
pub struct PackedB {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl PackedB {
    /// Pack `B[p][j] = b[p·st.row + j·st.col]` (p < rows, j < cols) on the
    /// calling thread.
    pub fn pack(b: &[f32], rows: usize, cols: usize, st: Strides) -> Result<Self, KernelError> {
        let need = extent(rows, cols, st.row, st.col).ok_or(KernelError::Overflow {
            m: 0,
            k: rows,
            n: cols,
        })?;
        if b.len() < need {
            return Err(KernelError::BadLen {
                name: "b",
                expected: need,
                got: b.len(),
                shape: format!("k = {rows}, n = {cols}"),
            });
        }
        Ok(Self {
            data: if rows == 0 || cols == 0 {
                Vec::new()
            } else {
                pack_panels(b, st, rows, (0, cols), false)
            },
            rows,
            cols,
        })
    }
}

/// The output pointer shared by the block tasks (each writes its own block).
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write disjoint blocks of C.
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

struct Tile {
    a: *const f32,
    a_strides: Strides,
    /// kc × NR packed values of B.
    b: *const f32,
    /// M × NR results (row stride NR).
    acc: *mut f32,
    kc: usize,
    /// Start from zero (else from `acc`).
    first: bool,
}

/// # Safety
/// As [`tile`], for `mr ≤ MR` rows.
#[target_feature(enable = "avx512f")]
unsafe fn tile_for_rows(mr: usize, t: &Tile) {
    // SAFETY: caller contract.
    unsafe {
        match mr {
            1 => tile::<1>(t),
            2 => tile::<2>(t),
            3 => tile::<3>(t),
            4 => tile::<4>(t),
            5 => tile::<5>(t),
            6 => tile::<6>(t),
            7 => tile::<7>(t),
            _ => tile::<MR>(t),
        }
    }
}

/// `acc[M × NR] (+)= A[M × kc] · B[kc × NR]` for the pointers of `t`.
///
/// # Safety
/// AVX-512F available; `A` valid for M rows × kc steps at its strides, `B`
/// for kc × NR values, `acc` for M × NR.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const M: usize>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); NV]; M];
    // SAFETY: caller contract bounds every load and store.
    unsafe {
        if !t.first {
            for (i, ci) in acc.iter_mut().enumerate() {
                for (v, cv) in ci.iter_mut().enumerate() {
                    *cv = _mm512_loadu_ps(t.acc.add(i * NR + v * 16));
                }
            }
        }
        for p in 0..t.kc {
            let bp = t.b.add(p * NR);
            let bv = [
                _mm512_loadu_ps(bp),
                _mm512_loadu_ps(bp.add(16)),
                _mm512_loadu_ps(bp.add(32)),
            ];
            let ap = t.a.add(p * t.a_strides.col);
            for (i, ci) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i * t.a_strides.row));
                for (cv, b) in ci.iter_mut().zip(&bv) {
                    *cv = _mm512_fmadd_ps(av, *b, *cv);
                }
            }
        }
        for (i, ci) in acc.iter().enumerate() {
            for (v, cv) in ci.iter().enumerate() {
                _mm512_storeu_ps(t.acc.add(i * NR + v * 16), *cv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::matmul::tests::rand_vec;

    /// f64 reference of the same strided product.
    fn reference(g: &Gemm, a: &[f32], b: &[f32], c0: &[f32]) -> Vec<f64> {
        let mut c: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = if g.accumulate { c[i * g.ldc + j] } else { 0.0 };
                for p in 0..g.k {
                    s += a[i * g.a.row + p * g.a.col] as f64 * b[p * g.b.row + j * g.b.col] as f64;
                }
                c[i * g.ldc + j] = s;
            }
        }
        c
    }

    #[test]
    fn strided_products_match_an_f64_reference() {
        if !available() {
            eprintln!("skipping: AVX-512 not available on this CPU");
            return;
        }
        // (m, k, n, A transposed, B transposed, accumulate)
        for &(m, k, n, at, bt, accumulate) in &[
            (1, 1, 1, false, false, false),
            (3, 5, 7, true, true, false),
            (8, 128, 48, false, false, true),
            (9, 129, 49, true, false, true),
            (70, 300, 200, false, true, false),
            (65, 257, 97, true, true, false),
            (300, 20, 10, false, false, true),
            // k so long that B is packed in two strips of columns.
            (3, 25_000, 250, false, true, true),
        ] {
            let ldc = n + 1;
            let a_st = if at {
                Strides::transposed(m + 2)
            } else {
                Strides::row_major(k + 1)
            };
            let b_st = if bt {
                Strides::transposed(k + 3)
            } else {
                Strides::row_major(n + 3)
            };
            let g = Gemm {
                m,
                n,
                k,
                a: a_st,
                b: b_st,
                ldc,
                accumulate,
            };
            let a = rand_vec(extent(m, k, a_st.row, a_st.col).unwrap(), (m * k) as u64);
            let b = rand_vec(extent(k, n, b_st.row, b_st.col).unwrap(), (k + n) as u64);
            let c0 = rand_vec(m * ldc, 3);
            let want = reference(&g, &a, &b, &c0);
            for parallel in [true, false] {
                let mut c = c0.clone();
                g.run_with(&a, &b, &mut c, parallel).unwrap();
                for i in 0..m {
                    for j in 0..ldc {
                        let (got, w) = (c[i * ldc + j] as f64, want[i * ldc + j]);
                        if j >= n {
                            assert_eq!(c[i * ldc + j], c0[i * ldc + j], "padding column written");
                            continue;
                        }
                        assert!(
                            (got - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt(),
                            "m={m} k={k} n={n} at={at} bt={bt} acc={accumulate} [{i},{j}]: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn short_operands_are_errors() {
        let g = Gemm {
            m: 2,
            n: 3,
            k: 4,
            a: Strides::row_major(4),
            b: Strides::row_major(3),
            ldc: 3,
            accumulate: false,
        };
        let mut c = vec![0f32; 6];
        if available() {
            let err = g.run(&[0.0; 7], &[0.0; 12], &mut c).unwrap_err();
            assert!(
                matches!(err, KernelError::BadLen { name: "a", .. }),
                "{err}"
            );
            let err = g.run(&[0.0; 8], &[0.0; 11], &mut c).unwrap_err();
            assert!(
                matches!(err, KernelError::BadLen { name: "b", .. }),
                "{err}"
            );
            g.run(&[1.0; 8], &[1.0; 12], &mut c).unwrap();
            assert_eq!(c, [4.0; 6]);
        }
    }
}
