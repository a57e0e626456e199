//! Causal self-attention over a ragged batch: sequences packed back to back
//! in the token dimension (no padding), each attending only to itself.
//!
//! q (T, h, d), k and v (T, kvh, d), output (T, h, d); query head `j` reads
//! KV head `j / (h / kvh)` (GQA). Per sequence and head:
//! `S = q kᵀ · scale`, `P = softmax(S + causal mask)`, `O = P v`.
//!
//! The forward keeps only the per-row log-sum-exp `lse` of `S` (T·h values);
//! the backward recomputes `P = exp(S − lse)` block by block (as
//! FlashAttention does) and, with `D_i = Σ_l dO_il·O_il`:
//! `dS = P ∘ (dO vᵀ − D)`, `dq = dS k · scale`, `dk = dSᵀ q · scale`,
//! `dv = Pᵀ dO`. Queries go in blocks of [`BLOCK`] rows that only see keys
//! up to their last row, so the masked upper triangle is (mostly) skipped and
//! scratch memory is `BLOCK × len`, not `len²`.
//!
//! Work is split over (sequence, head) pairs in the forward and (sequence,
//! KV head) pairs in the backward, so every task writes its own rows of the
//! outputs; the GEMMs inside a task are single-threaded (the AVX-512 kernel
//! of [`crate::kernels::gemm_f32`] for f32, the `gemm` crate otherwise).
//! The kernels read q, k and v through [`Heads`] views, so the fused
//! [`super::qkv_attention`] runs them on its packed projections in place.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::simd::simd_fn;
use super::{fused, gemm_raw, slice, storage, with_elems, Real, SharedMut};

/// Query rows per block.
const BLOCK: usize = 64;

/// Causal attention of the packed sequences of lengths `seq_lens` (summing
/// to T). q (T, h, d), k and v (T, kvh, d) with `h % kvh == 0`; returns
/// (T, h, d). `scale` multiplies the scores (usually `1/sqrt(d)`).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    seq_lens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    let (t, h, d) = q.dims3()?;
    let (tk, kvh, dk) = k.dims3()?;
    if tk != t || dk != d || v.dims() != k.dims() || kvh == 0 || h % kvh != 0 {
        candle_core::bail!(
            "causal_attention: q {:?}, k {:?}, v {:?} are not (T, h, d), (T, kvh, d), (T, kvh, d) with h a multiple of kvh",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let seqs = check_seqs(seq_lens, t)?;
    if !fused(q) || k.dtype() != q.dtype() || v.dtype() != q.dtype() {
        return super::composed::causal_attention(q, k, v, seq_lens, scale);
    }
    let op = Attention {
        seqs,
        scale,
        lse: Mutex::new(None),
    };
    q.contiguous()?
        .apply_op3_arc(&k.contiguous()?, &v.contiguous()?, Arc::new(Box::new(op)))
}

/// `(first token, length)` of every sequence, checking that the lengths
/// are positive and cover the `t` tokens.
pub(super) fn check_seqs(seq_lens: &[usize], t: usize) -> Result<Vec<(usize, usize)>> {
    let total: usize = seq_lens.iter().sum();
    if total != t || seq_lens.contains(&0) {
        candle_core::bail!(
            "causal_attention: sequence lengths {seq_lens:?} must be positive and sum to the {t} tokens"
        );
    }
    let mut seqs = Vec::with_capacity(seq_lens.len());
    let mut off = 0;
    for &len in seq_lens {
        seqs.push((off, len));
        off += len;
    }
    Ok(seqs)
}

struct Attention {
    seqs: Vec<(usize, usize)>,
    scale: f64,
    /// Log-sum-exp of every (token, query head) score row, from the forward.
    lse: Mutex<Option<Vec<f64>>>,
}

/// Shapes of one call: tokens, query heads, KV heads, head size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub t: usize,
    pub h: usize,
    pub kvh: usize,
    pub d: usize,
}

/// Where the heads of a (T, heads, d) operand live in a buffer: element
/// `(token, head, l)` is at `offset + token·row + head·d + l`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    pub offset: usize,
    pub row: usize,
}

impl Heads {
    pub(super) fn dense(heads: usize, d: usize) -> Self {
        Self {
            offset: 0,
            row: heads * d,
        }
    }
    fn at(&self, token: usize, head: usize, d: usize) -> usize {
        self.offset + token * self.row + head * d
    }
}

/// q, k and v of one call: buffers and their head layouts (the buffers may
/// be the same allocation).
#[derive(Clone, Copy)]
pub(super) struct Qkv<'a, T> {
    pub q: (&'a [T], Heads),
    pub k: (&'a [T], Heads),
    pub v: (&'a [T], Heads),
}

/// A B operand of a task's products, `B[p][j] = b[p·row + j·col]` for
/// p < rows, j < cols: for the AVX-512 kernel (f32) packed once, so that a
/// head's keys and values serve every query block without being re-packed;
/// the products may use a leading part of its rows and columns.
struct Rhs<T> {
    b: *const T,
    strides: (usize, usize),
    #[cfg(target_arch = "x86_64")]
    packed: Option<crate::kernels::gemm_f32::PackedB>,
}

impl<T: Real> Rhs<T> {
    /// # Safety
    /// `b` must be valid for `rows × cols` elements at `strides`, for as
    /// long as the `Rhs` is used.
    unsafe fn new(b: *const T, rows: usize, cols: usize, strides: (usize, usize)) -> Self {
        #[cfg(target_arch = "x86_64")]
        let packed = if T::DTYPE == DType::F32
            && crate::kernels::gemm_f32::available()
            && rows > 0
            && cols > 0
        {
            use crate::kernels::gemm_f32::{PackedB, Strides};
            let len = (rows - 1) * strides.0 + (cols - 1) * strides.1 + 1;
            // SAFETY: T is f32 and `b` is valid for these elements (caller).
            let data = unsafe { std::slice::from_raw_parts(b.cast::<f32>(), len) };
            let st = Strides {
                row: strides.0,
                col: strides.1,
            };
            PackedB::pack(data, rows, cols, st).ok()
        } else {
            None
        };
        Self {
            b,
            strides,
            #[cfg(target_arch = "x86_64")]
            packed,
        }
    }
}

/// `C (m × n, row stride ldc) (+)= A · B` on the calling thread, with
/// `A[i][p] = a[i·ars + p·acs]` and B the leading k × n of `rhs`.
///
/// # Safety
/// Every element those formulas reach (i < m, p < k, j < n) must be in
/// bounds of its pointer's allocation; `rhs` must have at least k rows and
/// n columns; no other thread accesses C's.
unsafe fn mm<T: Real>(
    (m, n, k): (usize, usize, usize),
    (c, ldc, accumulate): (*mut T, usize, bool),
    a: *const T,
    (ars, acs): (usize, usize),
    rhs: &Rhs<T>,
) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(packed), true) = (&rhs.packed, m > 0 && n > 0 && k > 0) {
        use crate::kernels::gemm_f32::{Gemm, Strides};
        let g = Gemm {
            m,
            n,
            k,
            a: Strides { row: ars, col: acs },
            b: Strides::row_major(n),
            ldc,
            accumulate,
        };
        // SAFETY: `packed` exists only for f32; the extents are exactly what
        // the caller guarantees to be in bounds.
        let ok = unsafe {
            let a = std::slice::from_raw_parts(a.cast::<f32>(), (m - 1) * ars + (k - 1) * acs + 1);
            let c = std::slice::from_raw_parts_mut(c.cast::<f32>(), (m - 1) * ldc + n);
            g.run_packed_serial(a, packed, c).is_ok()
        };
        if ok {
            return;
        }
    }
    // SAFETY: caller contract.
    unsafe {
        gemm_raw(
            (m, n, k),
            c,
            ldc,
            accumulate,
            a,
            (ars, acs),
            rhs.b,
            rhs.strides,
            gemm::Parallelism::None,
        )
    }
}

simd_fn! {
    /// Scaled, masked scores of query rows `r0..r1` of a sequence against
    /// its keys `0..r1`, turned into probabilities in place (`s` is
    /// `(r1−r0) × r1`). Writes each row's log-sum-exp into `lse_rows` when
    /// `lse_out`, else reads it from there (the backward's recomputation).
    fn probabilities<T: Real>(s: &mut [T], r0: usize, r1: usize, scale: T, lse_rows: &mut [f64], lse_out: bool) {
        for (ii, row) in s.chunks_exact_mut(r1).enumerate() {
            let i = r0 + ii;
            let (live, masked) = row.split_at_mut(i + 1);
            masked.fill(T::zero());
            if lse_out {
                for v in live.iter_mut() {
                    *v *= scale;
                }
                let m = super::simd::max(live);
                for v in live.iter_mut() {
                    *v = (*v - m).exp();
                }
                let sum = super::simd::sum(live);
                let inv = T::one() / sum;
                for v in live.iter_mut() {
                    *v *= inv;
                }
                lse_rows[ii] = (m + sum.ln()).to_f64();
            } else {
                let l = T::from_f64(lse_rows[ii]);
                for v in live.iter_mut() {
                    *v = (*v * scale - l).exp();
                }
            }
        }
    }
}

simd_fn! {
    /// `dS · scale = P ∘ (dP − D) · scale`, row by row, in place of `dp`.
    fn score_grads<T: Real>(dp: &mut [T], p: &[T], drow: &[T], r1: usize, scale: T) {
        for ((dpr, pr), &di) in dp.chunks_exact_mut(r1).zip(p.chunks_exact(r1)).zip(drow) {
            for (x, &pv) in dpr.iter_mut().zip(pr) {
                *x = pv * (*x - di) * scale;
            }
        }
    }
}

/// `(out (T, h, d), lse (T·h))`.
pub(super) fn forward<T: Real>(
    src: Qkv<'_, T>,
    dims: Dims,
    seqs: &[(usize, usize)],
    scale: f64,
) -> (Vec<T>, Vec<f64>) {
    let Dims { t, h, kvh, d } = dims;
    let group = h / kvh;
    let (q, ql) = src.q;
    let (k, kl) = src.k;
    let (v, vl) = src.v;
    let mut out = vec![T::zero(); t * h * d];
    let mut lse = vec![0f64; t * h];
    let out_ptr = SharedMut(out.as_mut_ptr());
    let lse_ptr = SharedMut(lse.as_mut_ptr());
    let scale = T::from_f64(scale);
    let tasks: Vec<(usize, usize)> = (0..seqs.len())
        .flat_map(|s| (0..kvh).map(move |j| (s, j)))
        .collect();
    tasks.par_iter().for_each(|&(s, hk)| {
        let (off, len) = seqs[s];
        // SAFETY: rows off..off+len of head hk are inside k and v (the op
        // checked the shapes), which outlive the task.
        let (keys_t, values) = unsafe {
            (
                Rhs::new(k.as_ptr().add(kl.at(off, hk, d)), d, len, (1, kl.row)),
                Rhs::new(v.as_ptr().add(vl.at(off, hk, d)), len, d, (vl.row, 1)),
            )
        };
        let mut buf = vec![T::zero(); BLOCK.min(len) * len];
        let mut lse_rows = vec![0f64; BLOCK];
        for hq in hk * group..(hk + 1) * group {
            for r0 in (0..len).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(len);
                let nb = r1 - r0;
                let sbuf = &mut buf[..nb * r1];
                // SAFETY: q rows off+r0..off+r1 of head hq are inside q;
                // `sbuf` is this task's own; the output rows off+r0..off+r1
                // of head hq (hq in hk's group) are written by this task
                // only; keys and values have len ≥ r1 rows/columns.
                unsafe {
                    // S = q kᵀ.
                    let q_at = q.as_ptr().add(ql.at(off + r0, hq, d));
                    mm(
                        (nb, r1, d),
                        (sbuf.as_mut_ptr(), r1, false),
                        q_at,
                        (ql.row, 1),
                        &keys_t,
                    );
                }
                probabilities(sbuf, r0, r1, scale, &mut lse_rows[..nb], true);
                unsafe {
                    // O = P v.
                    let o_at = out_ptr.get().add(((off + r0) * h + hq) * d);
                    mm(
                        (nb, d, r1),
                        (o_at, h * d, false),
                        sbuf.as_ptr(),
                        (r1, 1),
                        &values,
                    );
                    for (ii, &l) in lse_rows[..nb].iter().enumerate() {
                        *lse_ptr.get().add((off + r0 + ii) * h + hq) = l;
                    }
                }
            }
        }
    });
    (out, lse)
}

/// `(dq (T, h, d), dk (T, kvh, d), dv (T, kvh, d))` from the forward's
/// output `o` and log-sum-exp, and the output gradient `go` (both (T, h, d)).
pub(super) fn backward<T: Real>(
    src: Qkv<'_, T>,
    (o, go, lse): (&[T], &[T], &[f64]),
    dims: Dims,
    seqs: &[(usize, usize)],
    scale: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let Dims { t, h, kvh, d } = dims;
    let group = h / kvh;
    let (q, ql) = src.q;
    let (k, kl) = src.k;
    let (v, vl) = src.v;
    let mut dq = vec![T::zero(); t * h * d];
    let mut dk = vec![T::zero(); t * kvh * d];
    let mut dv = vec![T::zero(); t * kvh * d];
    let (dq_ptr, dk_ptr, dv_ptr) = (
        SharedMut(dq.as_mut_ptr()),
        SharedMut(dk.as_mut_ptr()),
        SharedMut(dv.as_mut_ptr()),
    );
    let scale_t = T::from_f64(scale);
    let tasks: Vec<(usize, usize)> = (0..seqs.len())
        .flat_map(|s| (0..kvh).map(move |j| (s, j)))
        .collect();
    tasks.par_iter().for_each(|&(s, hk)| {
        let (off, len) = seqs[s];
        // SAFETY: rows off..off+len of head hk are inside k and v (the op
        // checked the shapes), which outlive the task.
        let (keys, keys_t, values_t) = unsafe {
            let (kp, vp) = (
                k.as_ptr().add(kl.at(off, hk, d)),
                v.as_ptr().add(vl.at(off, hk, d)),
            );
            (
                Rhs::new(kp, len, d, (kl.row, 1)),
                Rhs::new(kp, d, len, (1, kl.row)),
                Rhs::new(vp, d, len, (1, vl.row)),
            )
        };
        let rows = BLOCK.min(len);
        let mut p = vec![T::zero(); rows * len];
        let mut dp = vec![T::zero(); rows * len];
        let mut lse_rows = vec![0f64; BLOCK];
        let mut drow = [T::zero(); BLOCK];
        let kv_out = (off * kvh + hk) * d;
        for hq in hk * group..(hk + 1) * group {
            for r0 in (0..len).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(len);
                let nb = r1 - r0;
                let (p, dp) = (&mut p[..nb * r1], &mut dp[..nb * r1]);
                let q_at = ql.at(off + r0, hq, d);
                let o_at = ((off + r0) * h + hq) * d;
                for ii in 0..nb {
                    let row = (off + r0 + ii) * h + hq;
                    lse_rows[ii] = lse[row];
                    drow[ii] =
                        super::simd::dot(&o[row * d..(row + 1) * d], &go[row * d..(row + 1) * d]);
                }
                // SAFETY (all mm calls below): reads stay inside rows
                // off..off+len of q/k/v/o/go and this task's scratch; writes
                // go to dq rows off+r0..off+r1 of head hq and dk/dv rows
                // off..off+r1 of head hk, which only task (s, hk) touches
                // (hq ranges over hk's own group).
                unsafe {
                    // S = q kᵀ, then P.
                    let qa = q.as_ptr().add(q_at);
                    mm(
                        (nb, r1, d),
                        (p.as_mut_ptr(), r1, false),
                        qa,
                        (ql.row, 1),
                        &keys_t,
                    );
                }
                probabilities(p, r0, r1, scale_t, &mut lse_rows[..nb], false);
                unsafe {
                    let ga = go.as_ptr().add(o_at);
                    // dP = dO vᵀ.
                    mm(
                        (nb, r1, d),
                        (dp.as_mut_ptr(), r1, false),
                        ga,
                        (h * d, 1),
                        &values_t,
                    );
                    // dV += Pᵀ dO.
                    let grad_out = Rhs::new(ga, nb, d, (h * d, 1));
                    let dv_at = dv_ptr.get().add(kv_out);
                    mm(
                        (r1, d, nb),
                        (dv_at, kvh * d, true),
                        p.as_ptr(),
                        (1, r1),
                        &grad_out,
                    );
                }
                score_grads(dp, p, &drow[..nb], r1, scale_t);
                unsafe {
                    // dQ = dS k.
                    let dq_at = dq_ptr.get().add(o_at);
                    mm(
                        (nb, d, r1),
                        (dq_at, h * d, false),
                        dp.as_ptr(),
                        (r1, 1),
                        &keys,
                    );
                    // dK += dSᵀ q.
                    let queries = Rhs::new(q.as_ptr().add(q_at), nb, d, (ql.row, 1));
                    let dk_at = dk_ptr.get().add(kv_out);
                    mm(
                        (r1, d, nb),
                        (dk_at, kvh * d, true),
                        dp.as_ptr(),
                        (1, r1),
                        &queries,
                    );
                }
            }
        }
    });
    (dq, dk, dv)
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "train-causal-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Attention, false);
        let (t, h, d) = ql.shape().dims3()?;
        let kvh = kl.shape().dims3()?.1;
        let dims = Dims { t, h, kvh, d };
        let shape = ql.shape().clone();
        fn run<T: Real>(
            (qs, ql): (&CpuStorage, &Layout),
            (ks, kl): (&CpuStorage, &Layout),
            (vs, vl): (&CpuStorage, &Layout),
            dims: Dims,
            seqs: &[(usize, usize)],
            scale: f64,
        ) -> Result<(Vec<T>, Vec<f64>)> {
            let src = Qkv {
                q: (
                    slice::<T>(qs, ql, "attention q")?,
                    Heads::dense(dims.h, dims.d),
                ),
                k: (
                    slice::<T>(ks, kl, "attention k")?,
                    Heads::dense(dims.kvh, dims.d),
                ),
                v: (
                    slice::<T>(vs, vl, "attention v")?,
                    Heads::dense(dims.kvh, dims.d),
                ),
            };
            Ok(forward(src, dims, seqs, scale))
        }
        let args = ((qs, ql), (ks, kl), (vs, vl));
        let (out, lse) = match qs.dtype() {
            DType::F32 => {
                let (o, l) = run::<f32>(args.0, args.1, args.2, dims, &self.seqs, self.scale)?;
                (storage(o, shape), l)
            }
            DType::F64 => {
                let (o, l) = run::<f64>(args.0, args.1, args.2, dims, &self.seqs, self.scale)?;
                (storage(o, shape), l)
            }
            dt => candle_core::bail!("causal_attention: fused kernel has no {dt:?} path"),
        };
        *self
            .lse
            .lock()
            .map_err(|_| candle_core::Error::Msg("causal_attention: lock poisoned".into()))? =
            Some(lse);
        Ok(out)
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Attention, true);
        let guard = self
            .lse
            .lock()
            .map_err(|_| candle_core::Error::Msg("causal_attention: lock poisoned".into()))?;
        let Some(lse) = guard.as_ref() else {
            candle_core::bail!("causal_attention: backward before forward")
        };
        let (t, h, d) = q.dims3()?;
        let kvh = k.dim(1)?;
        let dims = Dims { t, h, kvh, d };
        #[allow(clippy::too_many_arguments)]
        fn run<T: Real>(
            (q, k, v): (&Tensor, &Tensor, &Tensor),
            o: &Tensor,
            g: &Tensor,
            lse: &[f64],
            dims: Dims,
            seqs: &[(usize, usize)],
            scale: f64,
        ) -> Result<(Tensor, Tensor, Tensor)> {
            let (dq, dk, dv) = with_elems::<T, _>(q, "attention q", |qv| {
                with_elems::<T, _>(k, "attention k", |kv| {
                    with_elems::<T, _>(v, "attention v", |vv| {
                        with_elems::<T, _>(o, "attention out", |ov| {
                            with_elems::<T, _>(g, "attention grad", |gv| {
                                let src = Qkv {
                                    q: (qv, Heads::dense(dims.h, dims.d)),
                                    k: (kv, Heads::dense(dims.kvh, dims.d)),
                                    v: (vv, Heads::dense(dims.kvh, dims.d)),
                                };
                                Ok(backward(src, (ov, gv, lse), dims, seqs, scale))
                            })
                        })
                    })
                })
            })?;
            Ok((
                Tensor::from_vec(dq, q.shape(), q.device())?,
                Tensor::from_vec(dk, k.shape(), k.device())?,
                Tensor::from_vec(dv, v.shape(), v.device())?,
            ))
        }
        let (dq, dk, dv) = match q.dtype() {
            DType::F32 => run::<f32>((q, k, v), res, grad, lse, dims, &self.seqs, self.scale)?,
            DType::F64 => run::<f64>((q, k, v), res, grad, lse, dims, &self.seqs, self.scale)?,
            dt => candle_core::bail!("causal_attention: fused backward has no {dt:?} path"),
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;

    fn check(lens: &[usize], h: usize, kvh: usize, d: usize, seed: u64) {
        let t: usize = lens.iter().sum();
        let case = Case::new(&[&[t, h, d], &[t, kvh, d], &[t, kvh, d]], seed).scaled(0, 2.0);
        let scale = 1.0 / (d as f64).sqrt();
        check_op(
            &format!("attention lens={lens:?} h={h} kvh={kvh} d={d}"),
            &case,
            |x| causal_attention(&x[0], &x[1], &x[2], lens, scale),
            |x| super::super::composed::causal_attention(&x[0], &x[1], &x[2], lens, scale),
        );
    }

    #[test]
    fn attention_single_sequence() {
        check(&[5], 2, 1, 8, 1);
    }

    #[test]
    fn attention_ragged_batch_with_gqa() {
        // Lengths around the query block (64): one, several blocks, a tail.
        check(&[1, 3, 64, 65, 130], 4, 2, 16, 2);
    }

    #[test]
    fn attention_multi_head_attention_without_grouping() {
        check(&[7, 2, 20], 3, 3, 8, 3);
    }

    #[test]
    fn attention_rejects_lengths_that_do_not_cover_the_batch() {
        let dev = candle_core::Device::Cpu;
        let q = Tensor::zeros((5, 2, 4), DType::F32, &dev).unwrap();
        let k = Tensor::zeros((5, 1, 4), DType::F32, &dev).unwrap();
        let err = causal_attention(&q, &k, &k, &[2, 2], 0.5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sum to the 5 tokens"), "{err}");
    }
}
