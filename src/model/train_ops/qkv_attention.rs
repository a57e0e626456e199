//! The attention core of a decoder layer as one graph node: from the packed
//! q/k/v projection (one GEMM over the concatenated weights) to the
//! attention output, i.e. per-head RMSNorm of q and k (Qwen3's `q_norm` /
//! `k_norm`, optional), rotary embedding of q and k, and causal attention
//! over the ragged batch ([`super::causal_attention`]'s kernels).
//!
//! Composing [`super::rms_norm`], [`super::rope`] and
//! [`super::causal_attention`] gives the same values and gradients; as one
//! node it saves the reshapes between them and every activation-sized
//! gradient candle's autograd would otherwise allocate, zero and add for
//! each edge (about ten passes over the layer's q/k/v per step).
//!
//! Backward: attention backward (`dq`, `dk` of the rotated heads, `dv`),
//! inverse rotation, RMSNorm backward into the packed gradient.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::attention::{self, check_seqs, Dims, Heads, Qkv};
use super::simd::simd_fn;
use super::{fused, rows_per_task, slice, storage, with_elems, Real};

/// Head counts of a packed projection: each row is `[q heads | k heads | v
/// heads]`, `(heads + 2·kv_heads) · head_dim` wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkvHeads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl QkvHeads {
    fn width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
}

/// Per-head RMSNorm weights of q and k (each `head_dim`) and their epsilon.
#[derive(Debug, Clone, Copy)]
pub struct QkNorms<'a> {
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub eps: f64,
}

/// Attention output (T, heads·head_dim) of the packed projection `qkv`
/// (T, (heads + 2·kv_heads)·head_dim) of the sequences of lengths
/// `seq_lens`: q and k per-head RMS-normalised by `norms` (when given) and
/// rotated by `cos` / `sin` (T, head_dim/2), then causal attention with
/// scores scaled by `scale`. Differentiable in `qkv` and the norm weights.
pub fn qkv_attention(
    qkv: &Tensor,
    norms: Option<QkNorms<'_>>,
    (cos, sin): (&Tensor, &Tensor),
    heads: QkvHeads,
    seq_lens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    let (t, width) = qkv.dims2()?;
    let QkvHeads {
        heads: h,
        kv_heads: kvh,
        head_dim: d,
    } = heads;
    if width != heads.width() || kvh == 0 || h % kvh != 0 || d % 2 != 0 {
        candle_core::bail!(
            "qkv_attention: qkv {:?} is not (T, (heads + 2·kv_heads)·head_dim) for {heads:?} with heads a multiple of kv_heads",
            qkv.dims()
        );
    }
    if cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
        candle_core::bail!(
            "qkv_attention: cos/sin must be [{t}, {}], got {:?} / {:?}",
            d / 2,
            cos.dims(),
            sin.dims()
        );
    }
    if let Some(n) = norms {
        if n.q.dims() != [d] || n.k.dims() != [d] {
            candle_core::bail!(
                "qkv_attention: q/k norm weights must be [{d}], got {:?} / {:?}",
                n.q.dims(),
                n.k.dims()
            );
        }
    }
    let seqs = check_seqs(seq_lens, t)?;
    let same = |x: &Tensor| x.dtype() == qkv.dtype();
    let dtypes_match = same(cos) && same(sin) && norms.is_none_or(|n| same(n.q) && same(n.k));
    if !fused(qkv) || !dtypes_match {
        return composed(qkv, norms, (cos, sin), heads, seq_lens, scale);
    }
    let op = QkvAttention {
        heads,
        eps: norms.map_or(0.0, |n| n.eps),
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        seqs,
        scale,
        saved: Mutex::new(None),
    };
    let qkv = qkv.contiguous()?;
    match norms {
        Some(n) => qkv.apply_op3_arc(
            &n.q.contiguous()?,
            &n.k.contiguous()?,
            Arc::new(Box::new(op)),
        ),
        None => qkv.apply_op1_arc(Arc::new(Box::new(op))),
    }
}

/// The same computation from the separate ops' composed references.
pub fn composed(
    qkv: &Tensor,
    norms: Option<QkNorms<'_>>,
    (cos, sin): (&Tensor, &Tensor),
    heads: QkvHeads,
    seq_lens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    use super::composed as c;
    let t = qkv.dim(0)?;
    let QkvHeads {
        heads: h,
        kv_heads: kvh,
        head_dim: d,
    } = heads;
    let mut q = qkv.narrow(1, 0, h * d)?.reshape((t, h, d))?;
    let mut k = qkv.narrow(1, h * d, kvh * d)?.reshape((t, kvh, d))?;
    let v = qkv
        .narrow(1, (h + kvh) * d, kvh * d)?
        .reshape((t, kvh, d))?;
    if let Some(n) = norms {
        q = c::rms_norm(&q, n.q, n.eps)?;
        k = c::rms_norm(&k, n.k, n.eps)?;
    }
    let q = c::rope(&q, cos, sin)?;
    let k = c::rope(&k, cos, sin)?;
    c::causal_attention(&q, &k, &v, seq_lens, scale)?.reshape((t, h * d))
}

struct QkvAttention {
    heads: QkvHeads,
    eps: f64,
    cos: Tensor,
    sin: Tensor,
    seqs: Vec<(usize, usize)>,
    scale: f64,
    /// From the forward: rotated q (T, h, d) and k (T, kvh, d) as f64 or
    /// f32 storage, and the attention's log-sum-exp.
    saved: Mutex<Option<(CpuStorage, CpuStorage, Vec<f64>)>>,
}

impl QkvAttention {
    fn dims(&self, t: usize) -> Dims {
        Dims {
            t,
            h: self.heads.heads,
            kvh: self.heads.kv_heads,
            d: self.heads.head_dim,
        }
    }
}

/// Per-token views of the rotary tables.
struct Tables<'a, T> {
    cos: &'a [T],
    sin: &'a [T],
    half: usize,
}

impl<T: Real> Tables<'_, T> {
    /// `y = rope(norm(x))` for one head (`w` = None: rope only).
    #[inline(always)]
    fn forward_head(&self, t: usize, x: &[T], w: Option<&[T]>, eps: f64, y: &mut [T]) {
        let half = self.half;
        let (c, s) = (&self.cos[t * half..][..half], &self.sin[t * half..][..half]);
        let (x1, x2) = x.split_at(half);
        let (y1, y2) = y.split_at_mut(half);
        match w {
            Some(w) => {
                let r = super::rms_norm::rstd(x, eps);
                let (w1, w2) = w.split_at(half);
                for j in 0..half {
                    let (a, b) = (x1[j] * r * w1[j], x2[j] * r * w2[j]);
                    y1[j] = a * c[j] - b * s[j];
                    y2[j] = b * c[j] + a * s[j];
                }
            }
            None => {
                for j in 0..half {
                    y1[j] = x1[j] * c[j] - x2[j] * s[j];
                    y2[j] = x2[j] * c[j] + x1[j] * s[j];
                }
            }
        }
    }

    /// `dx` of one head from the gradient `g` of its rotated output; adds
    /// the norm weight's gradient to `dw`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn backward_head(
        &self,
        t: usize,
        x: &[T],
        w: Option<&[T]>,
        eps: f64,
        g: &[T],
        dx: &mut [T],
        dw: &mut [T],
    ) {
        let half = self.half;
        let (c, s) = (&self.cos[t * half..][..half], &self.sin[t * half..][..half]);
        // Inverse rotation: gradient of the normalised head.
        let (g1, g2) = g.split_at(half);
        let (d1, d2) = dx.split_at_mut(half);
        for j in 0..half {
            d1[j] = g1[j] * c[j] + g2[j] * s[j];
            d2[j] = g2[j] * c[j] - g1[j] * s[j];
        }
        let Some(w) = w else { return };
        let d = x.len();
        let r = super::rms_norm::rstd(x, eps);
        for j in 0..d {
            dw[j] += dx[j] * x[j] * r;
            dx[j] *= w[j];
        }
        // dx = r·(u − x̂·mean(u·x̂)) with u = g·w (now in dx).
        let cm = r * super::simd::dot(dx, x) / T::from_f64(d as f64);
        for j in 0..d {
            dx[j] = r * (dx[j] - x[j] * r * cm);
        }
    }
}

/// Normalise and rotate every q and k head: `(q_rot (T, h, d), k_rot (T, kvh, d))`.
fn prepare<T: Real>(
    qkv: &[T],
    norms: Option<(&[T], &[T])>,
    tables: &Tables<'_, T>,
    heads: QkvHeads,
    eps: f64,
) -> (Vec<T>, Vec<T>) {
    let QkvHeads {
        heads: h,
        kv_heads: kvh,
        head_dim: d,
    } = heads;
    let width = heads.width();
    let t = qkv.len() / width;
    let mut q = vec![T::zero(); t * h * d];
    let mut k = vec![T::zero(); t * kvh * d];
    let per = rows_per_task(t, width);
    q.par_chunks_mut(per * h * d)
        .zip(k.par_chunks_mut(per * kvh * d))
        .enumerate()
        .for_each(|(chunk, (q, k))| {
            prepare_chunk(q, k, chunk * per, qkv, norms, tables, heads, eps);
        });
    (q, k)
}

simd_fn! {
    /// [`prepare`] for the tokens from `tok0` whose outputs are `q` and `k`.
    #[allow(clippy::too_many_arguments)]
    fn prepare_chunk<T: Real>(
        q: &mut [T],
        k: &mut [T],
        tok0: usize,
        qkv: &[T],
        norms: Option<(&[T], &[T])>,
        tables: &Tables<'_, T>,
        heads: QkvHeads,
        eps: f64,
    ) {
        let (h, kvh, d) = (heads.heads, heads.kv_heads, heads.head_dim);
        let width = heads.width();
        for (i, (qt, kt)) in q
            .chunks_exact_mut(h * d)
            .zip(k.chunks_exact_mut(kvh * d))
            .enumerate()
        {
            let tok = tok0 + i;
            let row = &qkv[tok * width..][..width];
            for (hh, y) in qt.chunks_exact_mut(d).enumerate() {
                tables.forward_head(tok, &row[hh * d..][..d], norms.map(|n| n.0), eps, y);
            }
            for (hh, y) in kt.chunks_exact_mut(d).enumerate() {
                tables.forward_head(tok, &row[(h + hh) * d..][..d], norms.map(|n| n.1), eps, y);
            }
        }
    }
}

simd_fn! {
    /// [`finish_backward`] for the tokens from `tok0` whose packed gradient
    /// rows are `out`; adds the norm weights' gradients to `dw`.
    #[allow(clippy::too_many_arguments)]
    fn finish_chunk<T: Real>(
        out: &mut [T],
        tok0: usize,
        dw: (&mut [T], &mut [T]),
        qkv: &[T],
        norms: Option<(&[T], &[T])>,
        tables: &Tables<'_, T>,
        heads: QkvHeads,
        eps: f64,
        grads: (&[T], &[T], &[T]),
    ) {
        let (h, kvh, d) = (heads.heads, heads.kv_heads, heads.head_dim);
        let width = heads.width();
        let (dwq, dwk) = dw;
        let (dq, dk, dv) = grads;
        for (i, orow) in out.chunks_exact_mut(width).enumerate() {
            let tok = tok0 + i;
            let row = &qkv[tok * width..][..width];
            let (oq, rest) = orow.split_at_mut(h * d);
            let (ok, ov) = rest.split_at_mut(kvh * d);
            for (hh, dx) in oq.chunks_exact_mut(d).enumerate() {
                let g = &dq[(tok * h + hh) * d..][..d];
                tables.backward_head(tok, &row[hh * d..][..d], norms.map(|n| n.0), eps, g, dx, dwq);
            }
            for (hh, dx) in ok.chunks_exact_mut(d).enumerate() {
                let g = &dk[(tok * kvh + hh) * d..][..d];
                tables.backward_head(tok, &row[(h + hh) * d..][..d], norms.map(|n| n.1), eps, g, dx, dwk);
            }
            ov.copy_from_slice(&dv[tok * kvh * d..][..kvh * d]);
        }
    }
}

/// `(d_qkv, d_q_norm, d_k_norm)` from the attention's head gradients.
#[allow(clippy::too_many_arguments)]
fn finish_backward<T: Real>(
    qkv: &[T],
    norms: Option<(&[T], &[T])>,
    tables: &Tables<'_, T>,
    heads: QkvHeads,
    eps: f64,
    (dq, dk, dv): (&[T], &[T], &[T]),
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let d = heads.head_dim;
    let width = heads.width();
    let t = qkv.len() / width;
    let mut dqkv = vec![T::zero(); t * width];
    let per = rows_per_task(t, width);
    let (dwq, dwk) = dqkv
        .par_chunks_mut(per * width)
        .enumerate()
        .map(|(chunk, out)| {
            let mut dwq = vec![T::zero(); d];
            let mut dwk = vec![T::zero(); d];
            finish_chunk(
                out,
                chunk * per,
                (&mut dwq, &mut dwk),
                qkv,
                norms,
                tables,
                heads,
                eps,
                (dq, dk, dv),
            );
            (dwq, dwk)
        })
        .reduce(
            || (vec![T::zero(); d], vec![T::zero(); d]),
            |(mut a, mut b), (c, e)| {
                a.iter_mut().zip(c).for_each(|(x, y)| *x += y);
                b.iter_mut().zip(e).for_each(|(x, y)| *x += y);
                (a, b)
            },
        );
    (dqkv, dwq, dwk)
}

/// One storage argument of a custom op.
type Arg<'a> = (&'a CpuStorage, &'a Layout);

impl QkvAttention {
    fn fwd<T: Real>(
        &self,
        (qs, ql): (&CpuStorage, &Layout),
        norms: Option<(Arg<'_>, Arg<'_>)>,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Attention, false);
        let qkv = slice::<T>(qs, ql, "qkv_attention qkv")?;
        let t = ql.shape().dims2()?.0;
        let norms = match norms {
            Some(((a, al), (b, bl))) => {
                Some((slice::<T>(a, al, "q_norm")?, slice::<T>(b, bl, "k_norm")?))
            }
            None => None,
        };
        let (q, k, lse, out) = with_elems::<T, _>(&self.cos, "qkv_attention cos", |cos| {
            with_elems::<T, _>(&self.sin, "qkv_attention sin", |sin| {
                let tables = Tables {
                    cos,
                    sin,
                    half: self.heads.head_dim / 2,
                };
                let (q, k) = prepare(qkv, norms, &tables, self.heads, self.eps);
                let d = self.heads.head_dim;
                let v = Heads {
                    offset: (self.heads.heads + self.heads.kv_heads) * d,
                    row: self.heads.width(),
                };
                let src = Qkv {
                    q: (&q[..], Heads::dense(self.heads.heads, d)),
                    k: (&k[..], Heads::dense(self.heads.kv_heads, d)),
                    v: (qkv, v),
                };
                let (out, lse) = attention::forward(src, self.dims(t), &self.seqs, self.scale);
                Ok((q, k, lse, out))
            })
        })?;
        *self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("qkv_attention: lock poisoned".into()))? =
            Some((T::to_cpu_storage_owned(q), T::to_cpu_storage_owned(k), lse));
        Ok(storage(out, (t, self.heads.heads * self.heads.head_dim)))
    }

    fn bwd_impl<T: Real>(
        &self,
        qkv: &Tensor,
        norms: Option<(&Tensor, &Tensor)>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Attention, true);
        let guard = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("qkv_attention: lock poisoned".into()))?;
        let Some((qs, ks, lse)) = guard.as_ref() else {
            candle_core::bail!("qkv_attention: backward before forward")
        };
        let (q, k) = (qs.as_slice::<T>()?, ks.as_slice::<T>()?);
        let t = qkv.dim(0)?;
        let d = self.heads.head_dim;
        let (nq, nk) = match norms {
            Some((a, b)) => (Some(a.contiguous()?), Some(b.contiguous()?)),
            None => (None, None),
        };
        let (dqkv, dwq, dwk) = with_elems::<T, _>(qkv, "qkv_attention qkv", |qkv_v| {
            with_elems::<T, _>(res, "qkv_attention out", |o| {
                with_elems::<T, _>(grad, "qkv_attention grad", |g| {
                    with_elems::<T, _>(&self.cos, "qkv_attention cos", |cos| {
                        with_elems::<T, _>(&self.sin, "qkv_attention sin", |sin| {
                            let nq_v = nq
                                .as_ref()
                                .map(|n| with_elems::<T, _>(n, "q_norm", |s| Ok(s.to_vec())))
                                .transpose()?;
                            let nk_v = nk
                                .as_ref()
                                .map(|n| with_elems::<T, _>(n, "k_norm", |s| Ok(s.to_vec())))
                                .transpose()?;
                            let norm_slices = nq_v.as_deref().zip(nk_v.as_deref());
                            let v = Heads {
                                offset: (self.heads.heads + self.heads.kv_heads) * d,
                                row: self.heads.width(),
                            };
                            let src = Qkv {
                                q: (q, Heads::dense(self.heads.heads, d)),
                                k: (k, Heads::dense(self.heads.kv_heads, d)),
                                v: (qkv_v, v),
                            };
                            let (dq, dk, dv) = attention::backward(
                                src,
                                (o, g, lse),
                                self.dims(t),
                                &self.seqs,
                                self.scale,
                            );
                            let tables = Tables {
                                cos,
                                sin,
                                half: d / 2,
                            };
                            Ok(finish_backward(
                                qkv_v,
                                norm_slices,
                                &tables,
                                self.heads,
                                self.eps,
                                (&dq, &dk, &dv),
                            ))
                        })
                    })
                })
            })
        })?;
        let dqkv = Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?;
        let dnorms = match norms {
            Some((a, b)) => Some((
                Tensor::from_vec(dwq, a.shape(), a.device())?,
                Tensor::from_vec(dwk, b.shape(), b.device())?,
            )),
            None => None,
        };
        Ok((dqkv, dnorms))
    }
}

impl CustomOp1 for QkvAttention {
    fn name(&self) -> &'static str {
        "train-qkv-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        match s.dtype() {
            DType::F32 => self.fwd::<f32>((s, l), None),
            DType::F64 => self.fwd::<f64>((s, l), None),
            dt => candle_core::bail!("qkv_attention: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(&self, qkv: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (d, _) = match qkv.dtype() {
            DType::F32 => self.bwd_impl::<f32>(qkv, None, res, grad)?,
            DType::F64 => self.bwd_impl::<f64>(qkv, None, res, grad)?,
            dt => candle_core::bail!("qkv_attention: fused backward has no {dt:?} path"),
        };
        Ok(Some(d))
    }
}

impl CustomOp3 for QkvAttention {
    fn name(&self) -> &'static str {
        "train-qkv-attention"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let norms = Some(((qs, ql), (ks, kl)));
        match s.dtype() {
            DType::F32 => self.fwd::<f32>((s, l), norms),
            DType::F64 => self.fwd::<f64>((s, l), norms),
            dt => candle_core::bail!("qkv_attention: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        qn: &Tensor,
        kn: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (d, n) = match qkv.dtype() {
            DType::F32 => self.bwd_impl::<f32>(qkv, Some((qn, kn)), res, grad)?,
            DType::F64 => self.bwd_impl::<f64>(qkv, Some((qn, kn)), res, grad)?,
            dt => candle_core::bail!("qkv_attention: fused backward has no {dt:?} path"),
        };
        let (dq, dk) = n.map_or((None, None), |(a, b)| (Some(a), Some(b)));
        Ok((Some(d), dq, dk))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;

    fn check(lens: &[usize], heads: QkvHeads, with_norms: bool, seed: u64) {
        let t: usize = lens.iter().sum();
        let d = heads.head_dim;
        let case = Case::new(
            &[&[t, heads.width()], &[d], &[d], &[t, d / 2], &[t, d / 2]],
            seed,
        )
        .scaled(0, 2.0)
        .constant(3)
        .constant(4);
        let case = if with_norms {
            case
        } else {
            case.constant(1).constant(2)
        };
        let scale = 1.0 / (d as f64).sqrt();
        fn norms(x: &[Tensor], on: bool) -> Option<QkNorms<'_>> {
            on.then(|| QkNorms {
                q: &x[1],
                k: &x[2],
                eps: 1e-6,
            })
        }
        check_op(
            &format!("qkv_attention lens={lens:?} {heads:?} norms={with_norms}"),
            &case,
            |x| {
                qkv_attention(
                    &x[0],
                    norms(x, with_norms),
                    (&x[3], &x[4]),
                    heads,
                    lens,
                    scale,
                )
            },
            |x| {
                composed(
                    &x[0],
                    norms(x, with_norms),
                    (&x[3], &x[4]),
                    heads,
                    lens,
                    scale,
                )
            },
        );
    }

    #[test]
    fn qkv_attention_with_qk_norms_on_a_ragged_batch() {
        let heads = QkvHeads {
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
        };
        check(&[1, 5, 70], heads, true, 7);
    }

    #[test]
    fn qkv_attention_without_norms() {
        let heads = QkvHeads {
            heads: 3,
            kv_heads: 1,
            head_dim: 8,
        };
        check(&[4, 9], heads, false, 8);
    }

    #[test]
    fn qkv_attention_rejects_a_mismatched_width() {
        let dev = candle_core::Device::Cpu;
        let qkv = Tensor::zeros((3, 30), DType::F32, &dev).unwrap();
        let cs = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
        let heads = QkvHeads {
            heads: 2,
            kv_heads: 1,
            head_dim: 8,
        };
        let err = qkv_attention(&qkv, None, (&cs, &cs), heads, &[3], 0.5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not (T, (heads + 2·kv_heads)·head_dim)"),
            "{err}"
        );
    }
}
