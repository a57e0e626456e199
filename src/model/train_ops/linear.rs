//! `y = x · wᵀ` (`nn.Linear` without bias) as one graph node whose backward
//! runs the two GEMMs `dx = g · w` and `dw = gᵀ · x` straight into row-major
//! outputs (candle's composed `x.matmul(&w.t())` returns `dw` as a transposed
//! view that then costs a strided copy-add into the gradient store).
//!
//! All three products go through the `gemm` crate (candle's own CPU GEMM)
//! with explicit strides, so no operand is ever copied to be transposed.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::{fused, gemm_parallelism, gemm_raw, slice, storage, with_elems, Real};

/// `x · wᵀ` for x (rows, in) and w (out, in).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (_rows, k) = x.dims2()?;
    let (_n, kw) = w.dims2()?;
    if k != kw {
        candle_core::bail!("linear: x {:?} and weight {:?} disagree on the input size", x.dims(), w.dims());
    }
    if !fused(x) || x.dtype() != w.dtype() {
        return super::composed::linear(x, w);
    }
    x.contiguous()?
        .apply_op2_arc(&w.contiguous()?, std::sync::Arc::new(Box::new(Linear)))
}

struct Linear;

/// Row-major `dst (m, n) = a · b` where `a[i, l] = a[i·ars + l·acs]` and
/// `b[l, j] = b[l·brs + j·bcs]`.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Real>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    a: &[T],
    a_strides: (usize, usize),
    b: &[T],
    b_strides: (usize, usize),
) {
    assert!(dst.len() >= m * n, "gemm_into: destination too small");
    if m > 0 && n > 0 && k > 0 {
        // The largest element each operand touches must be in bounds.
        assert!((m - 1) * a_strides.0 + (k - 1) * a_strides.1 < a.len(), "gemm_into: lhs out of bounds");
        assert!((k - 1) * b_strides.0 + (n - 1) * b_strides.1 < b.len(), "gemm_into: rhs out of bounds");
    }
    // SAFETY: the asserts keep every read inside `a` and `b` and the m·n
    // row-major writes inside `dst`, which we borrow mutably.
    unsafe {
        gemm_raw(
            (m, n, k),
            dst.as_mut_ptr(),
            n,
            false,
            a.as_ptr(),
            a_strides,
            b.as_ptr(),
            b_strides,
            gemm_parallelism(),
        )
    }
}

fn forward<T: Real>(x: &[T], w: &[T], k: usize) -> (Vec<T>, usize, usize) {
    let (m, n) = (x.len() / k, w.len() / k);
    let mut y = vec![T::zero(); m * n];
    // y = x · wᵀ: wᵀ[l, j] = w[j·k + l].
    gemm_into(&mut y, (m, n, k), x, (k, 1), w, (1, k));
    (y, m, n)
}

/// `(dx, dw)` for x (m, k), w (n, k), g (m, n).
fn backward<T: Real>(x: &[T], w: &[T], g: &[T], k: usize) -> (Vec<T>, Vec<T>) {
    let (m, n) = (x.len() / k, w.len() / k);
    let mut dx = vec![T::zero(); m * k];
    gemm_into(&mut dx, (m, k, n), g, (n, 1), w, (k, 1));
    let mut dw = vec![T::zero(); n * k];
    // dw = gᵀ · x: gᵀ[i, t] = g[t·n + i].
    gemm_into(&mut dw, (n, k, m), g, (1, n), x, (k, 1));
    (dx, dw)
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "train-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let k = xl.shape().dims2()?.1;
        match xs.dtype() {
            DType::F32 => {
                let (y, m, n) = forward::<f32>(slice(xs, xl, "linear x")?, slice(ws, wl, "linear w")?, k);
                Ok(storage(y, (m, n)))
            }
            DType::F64 => {
                let (y, m, n) = forward::<f64>(slice(xs, xl, "linear x")?, slice(ws, wl, "linear w")?, k);
                Ok(storage(y, (m, n)))
            }
            dt => candle_core::bail!("linear: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
            let k = x.dim(1)?;
            let (dx, dw) = with_elems::<T, _>(x, "linear x", |xv| {
                with_elems::<T, _>(w, "linear w", |wv| {
                    with_elems::<T, _>(g, "linear grad", |gv| Ok(backward(xv, wv, gv, k)))
                })
            })?;
            Ok((
                Tensor::from_vec(dx, x.shape(), x.device())?,
                Tensor::from_vec(dw, w.shape(), w.device())?,
            ))
        }
        let (dx, dw) = match x.dtype() {
            DType::F32 => run::<f32>(x, w, grad)?,
            DType::F64 => run::<f64>(x, w, grad)?,
            dt => candle_core::bail!("linear: fused backward has no {dt:?} path"),
        };
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;

    #[test]
    fn linear_matches_composed_and_finite_differences() {
        for (m, k, n) in [(1usize, 3usize, 2usize), (17, 64, 48), (300, 32, 96)] {
            let case = Case::new(&[&[m, k], &[n, k]], (m * k * n) as u64);
            check_op(
                &format!("linear {m}x{k}->{n}"),
                &case,
                |t| linear(&t[0], &t[1]),
                |t| super::super::composed::linear(&t[0], &t[1]),
            );
        }
    }
}
