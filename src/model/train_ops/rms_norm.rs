//! RMSNorm over the last dimension: `y = x · r · w` with
//! `r = 1 / sqrt(mean(x²) + eps)` per row (HF `Qwen3RMSNorm`).
//!
//! Backward, with `x̂ = x·r` and `u = g·w`:
//! `dx = r · (u − x̂ · mean(u·x̂))`, `dw = Σ_rows g·x̂`. `r` is recomputed from
//! `x` (one pass) rather than stored.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::simd::simd_fn;
use super::{fused, rows_per_task, slice, storage, with_elems, Real};

/// RMSNorm of `x` (..., D) with weight `w` (D).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(candle_core::D::Minus1)?;
    if w.dims() != [d] {
        candle_core::bail!(
            "rms_norm: weight shape {:?} does not match the last dimension {d} of x {:?}",
            w.dims(),
            x.dims()
        );
    }
    if !fused(x) || x.dtype() != w.dtype() {
        return super::composed::rms_norm(x, w, eps);
    }
    x.contiguous()?.apply_op2_arc(
        &w.contiguous()?,
        std::sync::Arc::new(Box::new(RmsNorm { eps })),
    )
}

struct RmsNorm {
    eps: f64,
}

/// `1 / sqrt(mean(row²) + eps)`.
#[inline(always)]
pub(super) fn rstd<T: Real>(row: &[T], eps: f64) -> T {
    let ss = super::simd::sum_sq(row);
    T::one() / (ss / T::from_f64(row.len() as f64) + T::from_f64(eps)).sqrt()
}

simd_fn! {
    /// RMSNorm of every `w.len()`-wide row of `x` into `y`.
    pub(super) fn norm_rows<T: Real>(y: &mut [T], x: &[T], w: &[T], eps: f64) {
        let d = w.len();
        for (yr, xr) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let r = rstd(xr, eps);
            for ((yv, &xv), &wv) in yr.iter_mut().zip(xr).zip(w) {
                *yv = xv * r * wv;
            }
        }
    }
}

simd_fn! {
    /// Backward of [`norm_rows`]: `dx` of every row, `dw` accumulated.
    pub(super) fn norm_rows_backward<T: Real>(dx: &mut [T], dw: &mut [T], x: &[T], w: &[T], g: &[T], eps: f64) {
        let d = w.len();
        let inv_d = T::one() / T::from_f64(d as f64);
        for ((dxr, xr), gr) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
            let r = rstd(xr, eps);
            // u = g·w (held in dx), mean(u·x̂) = r·mean(u·x).
            for ((u, &gv), &wv) in dxr.iter_mut().zip(gr).zip(w) {
                *u = gv * wv;
            }
            let c = r * super::simd::dot(dxr, xr) * inv_d;
            for (((u, &xv), &gv), dwv) in dxr.iter_mut().zip(xr).zip(gr).zip(dw.iter_mut()) {
                let xh = xv * r;
                *dwv += gv * xh;
                *u = r * (*u - xh * c);
            }
        }
    }
}

fn forward<T: Real>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut y = vec![T::zero(); x.len()];
    let chunk = rows_per_task(x.len() / d, d) * d;
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(y, x)| norm_rows(y, x, w, eps));
    y
}

/// `(dx, dw)`.
fn backward<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let d = w.len();
    let mut dx = vec![T::zero(); x.len()];
    let chunk = rows_per_task(x.len() / d, d) * d;
    let dw = dx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(g.par_chunks(chunk)))
        .map(|(dx, (x, g))| {
            let mut dw = vec![T::zero(); d];
            norm_rows_backward(dx, &mut dw, x, w, g, eps);
            dw
        })
        .reduce(
            || vec![T::zero(); d],
            |mut a, b| {
                for (a, b) in a.iter_mut().zip(b) {
                    *a += b;
                }
                a
            },
        );
    (dx, dw)
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "train-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::RmsNorm, false);
        let shape = xl.shape().clone();
        match xs.dtype() {
            DType::F32 => Ok(storage(
                forward::<f32>(
                    slice(xs, xl, "rms_norm x")?,
                    slice(ws, wl, "rms_norm w")?,
                    self.eps,
                ),
                shape,
            )),
            DType::F64 => Ok(storage(
                forward::<f64>(
                    slice(xs, xl, "rms_norm x")?,
                    slice(ws, wl, "rms_norm w")?,
                    self.eps,
                ),
                shape,
            )),
            dt => candle_core::bail!("rms_norm: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _timer = super::profile::Timer::start(super::profile::Op::RmsNorm, true);
        fn run<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
            let (dx, dw) = with_elems::<T, _>(x, "rms_norm x", |xv| {
                with_elems::<T, _>(w, "rms_norm w", |wv| {
                    with_elems::<T, _>(g, "rms_norm grad", |gv| Ok(backward(xv, wv, gv, eps)))
                })
            })?;
            Ok((
                Tensor::from_vec(dx, x.shape(), x.device())?,
                Tensor::from_vec(dw, w.shape(), w.device())?,
            ))
        }
        let (dx, dw) = match x.dtype() {
            DType::F32 => run::<f32>(x, w, grad, self.eps)?,
            DType::F64 => run::<f64>(x, w, grad, self.eps)?,
            dt => candle_core::bail!("rms_norm: fused backward has no {dt:?} path"),
        };
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;

    #[test]
    fn rms_norm_matches_composed_and_finite_differences() {
        for rows in [1usize, 7, 300] {
            let case = Case::new(&[&[rows, 64], &[64]], 11 + rows as u64);
            check_op(
                &format!("rms_norm rows={rows}"),
                &case,
                |t| rms_norm(&t[0], &t[1], 1e-6),
                |t| super::super::composed::rms_norm(&t[0], &t[1], 1e-6),
            );
        }
    }

    #[test]
    fn rms_norm_rejects_a_mismatched_weight() {
        let x = Tensor::zeros((2, 8), DType::F32, &candle_core::Device::Cpu).unwrap();
        let w = Tensor::zeros(4, DType::F32, &candle_core::Device::Cpu).unwrap();
        let err = rms_norm(&x, &w, 1e-6).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }
}
