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
        candle_core::bail!(
            "linear: x {:?} and weight {:?} disagree on the input size",
            x.dims(),
            w.dims()
        );
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
        assert!(
            (m - 1) * a_strides.0 + (k - 1) * a_strides.1 < a.len(),
            "gemm_into: lhs out of bounds"
        );
        assert!(
            (k - 1) * b_strides.0 + (n - 1) * b_strides.1 < b.len(),
            "gemm_into: rhs out of bounds"
        );
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

/// `wᵀ` of a row-major (n, k) matrix, in blocks that stay in cache.
fn transpose(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    const B: usize = 32;
    let mut t = vec![0f32; n * k];
    for i0 in (0..n).step_by(B) {
        for j0 in (0..k).step_by(B) {
            for i in i0..(i0 + B).min(n) {
                for j in j0..(j0 + B).min(k) {
                    t[j * n + i] = w[i * k + j];
                }
            }
        }
    }
    t
}

/// The AVX-512 kernel path of [`forward`] (f32 only); `None` without AVX-512.
#[cfg(target_arch = "x86_64")]
fn forward_avx512(x: &[f32], w: &[f32], k: usize) -> Option<Result<(Vec<f32>, usize, usize)>> {
    use crate::kernels::gemm_f32::{available, Gemm, Strides};
    if !available() {
        return None;
    }
    let (m, n) = (x.len() / k, w.len() / k);
    let wt = transpose(w, n, k);
    let mut y = vec![0f32; m * n];
    let g = Gemm {
        m,
        n,
        k,
        a: Strides::row_major(k),
        ldb: n,
        ldc: n,
        accumulate: false,
    };
    Some(
        g.run(x, &wt, &mut y)
            .map(|()| (y, m, n))
            .map_err(candle_core::Error::wrap),
    )
}

/// The AVX-512 kernel path of [`backward`] (f32 only); `None` without AVX-512.
#[cfg(target_arch = "x86_64")]
fn backward_avx512(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    k: usize,
) -> Option<Result<(Vec<f32>, Vec<f32>)>> {
    use crate::kernels::gemm_f32::{available, Gemm, Strides};
    if !available() {
        return None;
    }
    let (m, n) = (x.len() / k, w.len() / k);
    let run = || -> std::result::Result<(Vec<f32>, Vec<f32>), crate::kernels::KernelError> {
        let mut dx = vec![0f32; m * k];
        // dx = g · w.
        Gemm {
            m,
            n: k,
            k: n,
            a: Strides::row_major(n),
            ldb: k,
            ldc: k,
            accumulate: false,
        }
        .run(g, w, &mut dx)?;
        let mut dw = vec![0f32; n * k];
        // dw = gᵀ · x, gᵀ read in place.
        Gemm {
            m: n,
            n: k,
            k: m,
            a: Strides::transposed(n),
            ldb: k,
            ldc: k,
            accumulate: false,
        }
        .run(g, x, &mut dw)?;
        Ok((dx, dw))
    };
    Some(run().map_err(candle_core::Error::wrap))
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

/// `v` as f32 when `T` is f32.
fn as_f32<T: Real>(v: &[T]) -> Option<&[f32]> {
    (T::DTYPE == DType::F32).then(|| {
        // SAFETY: T is f32 (checked through its DType): same layout.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) }
    })
}

/// An f32 vector as `Vec<T>` when `T` is f32 (only called then).
fn from_f32<T: Real>(v: Vec<f32>) -> Vec<T> {
    assert_eq!(T::DTYPE, DType::F32, "from_f32 on a non-f32 element type");
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: T is f32, so the allocation's layout is the same.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
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
        let _timer = super::profile::Timer::start(super::profile::Op::Linear, false);
        let k = xl.shape().dims2()?.1;
        match xs.dtype() {
            DType::F32 => {
                let (x, w) = (slice(xs, xl, "linear x")?, slice(ws, wl, "linear w")?);
                #[cfg(target_arch = "x86_64")]
                if let Some(out) = forward_avx512(x, w, k) {
                    let (y, m, n) = out?;
                    return Ok(storage(y, (m, n)));
                }
                let (y, m, n) = forward::<f32>(x, w, k);
                Ok(storage(y, (m, n)))
            }
            DType::F64 => {
                let (y, m, n) =
                    forward::<f64>(slice(xs, xl, "linear x")?, slice(ws, wl, "linear w")?, k);
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
        let _timer = super::profile::Timer::start(super::profile::Op::Linear, true);
        fn run<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
            let k = x.dim(1)?;
            let (dx, dw) = with_elems::<T, _>(x, "linear x", |xv| {
                with_elems::<T, _>(w, "linear w", |wv| {
                    with_elems::<T, _>(g, "linear grad", |gv| {
                        #[cfg(target_arch = "x86_64")]
                        if let (Some(xf), Some(wf), Some(gf)) = (as_f32(xv), as_f32(wv), as_f32(gv))
                        {
                            if let Some(out) = backward_avx512(xf, wf, gf, k) {
                                let (dx, dw) = out?;
                                return Ok((from_f32::<T>(dx), from_f32::<T>(dw)));
                            }
                        }
                        Ok(backward(xv, wv, gv, k))
                    })
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
