//! `y = x · wᵀ` (`nn.Linear` without bias), optionally plus a residual
//! `r` (`y = r + x · wᵀ`, the `o_proj` / `down_proj` of a pre-norm block),
//! as one graph node whose backward runs the two GEMMs `dx = g · w` and
//! `dw = gᵀ · x` straight into row-major outputs (candle's composed
//! `x.matmul(&w.t())` returns `dw` as a transposed view that then costs a
//! strided copy-add into the gradient store, and a separate residual add is
//! one more node whose two gradients are each zero-filled and added).
//!
//! f32 on AVX-512 CPUs runs [`crate::kernels::gemm_f32`] (`wᵀ` and `gᵀ` read
//! in place through strides); elsewhere, and for f64, the `gemm` crate (candle's own CPU
//! GEMM) with explicit strides. Neither copies activations to transpose them.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::{fused, gemm_parallelism, gemm_raw, slice, with_elems, Real};

/// `x · wᵀ` for x (rows, in) and w (out, in).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    check(x, w)?;
    if !fused(x) || x.dtype() != w.dtype() {
        return super::composed::linear(x, w);
    }
    x.contiguous()?
        .apply_op2_arc(&w.contiguous()?, std::sync::Arc::new(Box::new(Linear)))
}

/// `residual + x · wᵀ` for x (rows, in), w (out, in), residual (rows, out).
pub fn linear_residual(x: &Tensor, w: &Tensor, residual: &Tensor) -> Result<Tensor> {
    check(x, w)?;
    let (rows, out) = (x.dim(0)?, w.dim(0)?);
    if residual.dims() != [rows, out] {
        candle_core::bail!(
            "linear_residual: residual {:?} must be [{rows}, {out}]",
            residual.dims()
        );
    }
    if !fused(x) || x.dtype() != w.dtype() || residual.dtype() != x.dtype() {
        return residual + super::composed::linear(x, w)?;
    }
    x.contiguous()?.apply_op3_arc(
        &w.contiguous()?,
        &residual.contiguous()?,
        std::sync::Arc::new(Box::new(Linear)),
    )
}

fn check(x: &Tensor, w: &Tensor) -> Result<()> {
    let (_rows, k) = x.dims2()?;
    let (_n, kw) = w.dims2()?;
    if k != kw {
        candle_core::bail!(
            "linear: x {:?} and weight {:?} disagree on the input size",
            x.dims(),
            w.dims()
        );
    }
    Ok(())
}

struct Linear;

/// Row-major `dst (m, n) (+)= a · b` where `a[i, l] = a[i·ars + l·acs]` and
/// `b[l, j] = b[l·brs + j·bcs]`, through the `gemm` crate.
fn gemm_into<T: Real>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    (a, a_strides): (&[T], (usize, usize)),
    (b, b_strides): (&[T], (usize, usize)),
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
            accumulate,
            a.as_ptr(),
            a_strides,
            b.as_ptr(),
            b_strides,
            gemm_parallelism(),
        )
    }
}

/// `v` as f32 when `T` is f32.
fn as_f32<T: Real>(v: &[T]) -> Option<&[f32]> {
    (T::DTYPE == DType::F32).then(|| {
        // SAFETY: T is f32 (checked through its DType): same layout.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) }
    })
}

/// `v` as a mutable f32 slice when `T` is f32.
fn as_f32_mut<T: Real>(v: &mut [T]) -> Option<&mut [f32]> {
    (T::DTYPE == DType::F32).then(|| {
        // SAFETY: T is f32 (checked through its DType): same layout.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len()) }
    })
}

/// `dst (m × n) (+)= A · B` with `A[i][l] = a[i·ars + l·acs]` and
/// `B[l][j] = b[l·brs + j·bcs]`: the AVX-512 kernel for f32 when available,
/// else the `gemm` crate.
fn product<T: Real>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    (a, (ars, acs)): (&[T], (usize, usize)),
    (b, (brs, bcs)): (&[T], (usize, usize)),
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::gemm_f32::available() {
        if let (Some(d), Some(af), Some(bf)) = (as_f32_mut(dst), as_f32(a), as_f32(b)) {
            use crate::kernels::gemm_f32::{Gemm, Strides};
            let g = Gemm {
                m,
                n,
                k,
                a: Strides { row: ars, col: acs },
                b: Strides { row: brs, col: bcs },
                ldc: n,
                accumulate,
            };
            return g.run(af, bf, d).map_err(candle_core::Error::wrap);
        }
    }
    gemm_into(dst, (m, n, k), accumulate, (a, (ars, acs)), (b, (brs, bcs)));
    Ok(())
}

/// `[residual +] x · wᵀ` for x (m, k), w (n, k).
fn forward<T: Real>(x: &[T], w: &[T], residual: Option<&[T]>, k: usize) -> Result<Vec<T>> {
    let (m, n) = (x.len() / k, w.len() / k);
    let mut y = match residual {
        Some(r) => r.to_vec(),
        None => vec![T::zero(); m * n],
    };
    // wᵀ[l][j] = w[j·k + l], read in place.
    product(
        &mut y,
        (m, n, k),
        residual.is_some(),
        (x, (k, 1)),
        (w, (1, k)),
    )?;
    Ok(y)
}

/// `(dx, dw)` for x (m, k), w (n, k), g (m, n).
fn backward<T: Real>(x: &[T], w: &[T], g: &[T], k: usize) -> Result<(Vec<T>, Vec<T>)> {
    let (m, n) = (x.len() / k, w.len() / k);
    let mut dx = vec![T::zero(); m * k];
    // dx = g · w.
    product(&mut dx, (m, k, n), false, (g, (n, 1)), (w, (k, 1)))?;
    let mut dw = vec![T::zero(); n * k];
    // dw = gᵀ · x, gᵀ read in place.
    product(&mut dw, (n, k, m), false, (g, (1, n)), (x, (k, 1)))?;
    Ok((dx, dw))
}

impl Linear {
    fn fwd(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Linear, false);
        let (m, k) = xl.shape().dims2()?;
        let n = wl.shape().dims2()?.0;
        fn run<T: Real>(
            (xs, xl): (&CpuStorage, &Layout),
            (ws, wl): (&CpuStorage, &Layout),
            residual: Option<(&CpuStorage, &Layout)>,
            k: usize,
        ) -> Result<CpuStorage> {
            let r = match residual {
                Some((rs, rl)) => Some(slice::<T>(rs, rl, "linear residual")?),
                None => None,
            };
            let y = forward::<T>(slice(xs, xl, "linear x")?, slice(ws, wl, "linear w")?, r, k)?;
            Ok(T::to_cpu_storage_owned(y))
        }
        let out = match xs.dtype() {
            DType::F32 => run::<f32>((xs, xl), (ws, wl), residual, k)?,
            DType::F64 => run::<f64>((xs, xl), (ws, wl), residual, k)?,
            dt => candle_core::bail!("linear: fused kernel has no {dt:?} path"),
        };
        Ok((out, (m, n).into()))
    }

    fn grads(&self, x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Linear, true);
        fn run<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
            let k = x.dim(1)?;
            let (dx, dw) = with_elems::<T, _>(x, "linear x", |xv| {
                with_elems::<T, _>(w, "linear w", |wv| {
                    with_elems::<T, _>(g, "linear grad", |gv| backward(xv, wv, gv, k))
                })
            })?;
            Ok((
                Tensor::from_vec(dx, x.shape(), x.device())?,
                Tensor::from_vec(dw, w.shape(), w.device())?,
            ))
        }
        match x.dtype() {
            DType::F32 => run::<f32>(x, w, grad),
            DType::F64 => run::<f64>(x, w, grad),
            dt => candle_core::bail!("linear: fused backward has no {dt:?} path"),
        }
    }
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
        self.fwd((xs, xl), (ws, wl), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.grads(x, w, grad)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "train-linear-residual"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((xs, xl), (ws, wl), Some((rs, rl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _residual: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.grads(x, w, grad)?;
        // d residual = g: the same storage, no copy.
        Ok((Some(dx), Some(dw), Some(grad.clone())))
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

    #[test]
    fn linear_residual_matches_composed_and_finite_differences() {
        for (m, k, n) in [(2usize, 5usize, 3usize), (130, 40, 50)] {
            let case = Case::new(&[&[m, k], &[n, k], &[m, n]], (m + k + n) as u64);
            check_op(
                &format!("linear_residual {m}x{k}->{n}"),
                &case,
                |t| linear_residual(&t[0], &t[1], &t[2]),
                |t| &t[2] + super::super::composed::linear(&t[0], &t[1])?,
            );
        }
    }

    #[test]
    fn linear_rejects_mismatched_shapes() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((3, 5), DType::F32, &dev).unwrap();
        let err = linear(&x, &w).unwrap_err().to_string();
        assert!(err.contains("disagree on the input size"), "{err}");
        let w = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
        let r = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let err = linear_residual(&x, &w, &r).unwrap_err().to_string();
        assert!(err.contains("residual"), "{err}");
    }
}
