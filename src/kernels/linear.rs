//! candle integration: `linear(x, w) = x · wᵀ` through [`LinearOp`], a
//! [`CustomOp2`] that runs the small-m kernels on CPU storage.
//!
//! Inference only: the op is applied with `apply_op2_no_bwd`, so it records
//! no gradient. Training code must keep using candle's differentiable
//! `x.matmul(&w.t())` (e.g. `candle_nn::Linear`).
//!
//! Routing (see [`linear_with`]):
//! * CPU, `m ≤` [`F32_MAX_M`] (f32 weight) or `m ≤` [`BF16_MAX_M`] (bf16
//!   weight): the kernel, which streams `W` once for all m rows;
//! * otherwise (GPU tensors, other dtypes, or large m such as prefill, where
//!   candle's blocked GEMM reuses `x` better): candle's own matmul.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, D,
};

use super::matmul::{matmul_xwt_bf16_with, matmul_xwt_f32_with, Isa};

/// Largest m (flattened rows of x) that uses the kernel for f32 weights;
/// above it candle's f32 GEMM is used. Chosen with `benches/matmul.rs` on the
/// 2-core Sapphire Rapids dev box: the kernel is 1.2–2.8× faster than candle
/// for m = 4..32, roughly at parity for m = 64..128 (0.9–1.2×, noisy), and
/// clearly slower at m = 256 on k = 3072 (0.63×): candle's packed GEMM reuses
/// `x` better once the call is compute-bound.
pub const F32_MAX_M: usize = 64;

/// Largest m that uses the kernel for bf16 weights. candle's CPU bf16 matmul
/// is 3–14× slower than the kernel for m ≤ 32 and still 1.3–1.8× slower at
/// m = 128; at m = 256 they are at parity (0.86–1.33×), so prefill-sized
/// batches go back to candle.
pub const BF16_MAX_M: usize = 128;

/// `x · wᵀ` on CPU storage via [`matmul_xwt_f32_with`] /
/// [`matmul_xwt_bf16_with`]. Expects `x` f32 and contiguous with shape
/// `(.., k)`, `w` f32 or bf16 contiguous `(n, k)`; returns f32 `(.., n)`.
/// Use [`linear`] rather than applying this op directly: it handles dtypes,
/// layouts, devices and the large-m fallback.
#[derive(Debug, Clone, Copy)]
pub struct LinearOp {
    /// Kernel path to run.
    pub isa: Isa,
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "quorum-linear-xwt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = s1 else {
            bail!("{}: x must be f32, got {:?}", self.name(), s1.dtype())
        };
        let Some((x0, x1)) = l1.contiguous_offsets() else {
            bail!("{}: x must be contiguous", self.name())
        };
        let Some((w0, w1)) = l2.contiguous_offsets() else {
            bail!("{}: w must be contiguous", self.name())
        };
        let dims = l1.dims();
        let Some((&k, lead)) = dims.split_last() else {
            bail!("{}: x must have at least one dimension", self.name())
        };
        let m: usize = lead.iter().product();
        let (n, wk) = l2.shape().dims2()?;
        if wk != k {
            bail!("{}: x is {:?} but w is ({n}, {wk})", self.name(), dims)
        }
        let x = &x[x0..x1];
        let mut out = vec![0f32; m * n];
        match s2 {
            CpuStorage::F32(w) => matmul_xwt_f32_with(self.isa, x, m, k, &w[w0..w1], n, &mut out),
            CpuStorage::BF16(w) => matmul_xwt_bf16_with(self.isa, x, m, k, &w[w0..w1], n, &mut out),
            other => bail!(
                "{}: w must be f32 or bf16, got {:?}",
                self.name(),
                other.dtype()
            ),
        }
        .map_err(candle_core::Error::wrap)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

/// `x · wᵀ` for `x` of shape `(.., k)` and an `nn.Linear` weight `w` of shape
/// `(n, k)`; the result has shape `(.., n)` and `x`'s dtype.
///
/// On CPU with f32/bf16 weights and small m (rows of x after flattening the
/// leading dims) this runs the decode kernel on the detected ISA; otherwise
/// it is exactly candle's `x.matmul(&w.t())` (with `w` cast to `x`'s dtype if
/// they differ). No gradient is recorded on the kernel path (inference only).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    linear_with(Isa::detect(), x, w)
}

/// [`linear`] on a chosen kernel path (for tests and benches).
pub fn linear_with(isa: Isa, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let xk = x.dim(D::Minus1)?;
    if xk != k {
        bail!("linear: x has shape {:?} but w is ({n}, {k})", x.dims())
    }
    let m: usize = x.dims()[..x.rank() - 1].iter().product();
    let max_m = match w.dtype() {
        DType::F32 => F32_MAX_M,
        DType::BF16 => BF16_MAX_M,
        _ => 0,
    };
    let x_ok = matches!(x.dtype(), DType::F32 | DType::BF16 | DType::F16);
    if !x.device().is_cpu() || !w.device().is_cpu() || !x_ok || m > max_m {
        return candle_linear(x, w);
    }
    // Activations are f32 in the kernel; a bf16/f16 x is widened (m × k, tiny
    // next to w) and the result narrowed back. `contiguous` and `to_dtype`
    // are no-ops when already satisfied; a non-contiguous `w` is copied per
    // call (correct but slow: store weights contiguous).
    let xf = x.to_dtype(DType::F32)?.contiguous()?;
    let w = w.contiguous()?;
    xf.apply_op2_no_bwd(&w, &LinearOp { isa })?
        .to_dtype(x.dtype())
}

/// `x · Wᵀ` against a packed weight (AMX bf16 or Q8_0, see [`super::amx`];
/// AVX-512 f32 panels, see [`super::packed_f32`]); any m, CPU only,
/// inference only (no gradient). `x` of shape `(.., k)` in any float
/// dtype; the result is `(.., n)` in `x`'s dtype.
#[cfg(target_arch = "x86_64")]
pub fn linear_packed<P: PackedMatmul>(x: &Tensor, w: &P) -> Result<Tensor> {
    let xk = x.dim(D::Minus1)?;
    if xk != w.k() {
        bail!(
            "linear: x has shape {:?} but w is ({}, {})",
            x.dims(),
            w.n(),
            w.k()
        )
    }
    if !x.device().is_cpu() {
        bail!("linear: packed weights need CPU activations")
    }
    let xf = x.to_dtype(DType::F32)?.contiguous()?;
    xf.apply_op1_no_bwd(&PackedLinearOp(w))?.to_dtype(x.dtype())
}

/// A weight in a kernel-specific packed layout (AMX bf16 or Q8_0 tiles, or
/// f32 panels).
#[cfg(target_arch = "x86_64")]
pub trait PackedMatmul: Send + Sync {
    /// Output features.
    fn n(&self) -> usize;
    /// Input features.
    fn k(&self) -> usize;
    /// `out = x · Wᵀ` for `x` of `m × k` f32.
    fn matmul(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
    ) -> std::result::Result<(), super::KernelError>;
}

/// The packed formats expose `n`, `k` and `matmul` inherently.
macro_rules! impl_packed_matmul {
    ($($ty:ty),*) => {$(
        #[cfg(target_arch = "x86_64")]
        impl PackedMatmul for $ty {
            fn n(&self) -> usize {
                <$ty>::n(self)
            }
            fn k(&self) -> usize {
                <$ty>::k(self)
            }
            fn matmul(
                &self,
                x: &[f32],
                m: usize,
                out: &mut [f32],
            ) -> std::result::Result<(), super::KernelError> {
                <$ty>::matmul(self, x, m, out)
            }
        }
    )*};
}

impl_packed_matmul!(
    super::amx::PackedBf16,
    super::amx_q8::PackedQ8,
    super::packed_f32::PackedF32
);

/// [`CustomOp1`] running a [`PackedMatmul`] on CPU storage.
#[cfg(target_arch = "x86_64")]
struct PackedLinearOp<'a, P>(&'a P);

#[cfg(target_arch = "x86_64")]
impl<P: PackedMatmul> CustomOp1 for PackedLinearOp<'_, P> {
    fn name(&self) -> &'static str {
        "quorum-linear-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = s else {
            bail!("{}: x must be f32, got {:?}", self.name(), s.dtype())
        };
        let Some((x0, x1)) = l.contiguous_offsets() else {
            bail!("{}: x must be contiguous", self.name())
        };
        let dims = l.dims();
        let m: usize = dims[..dims.len().saturating_sub(1)].iter().product();
        let n = self.0.n();
        let mut out = vec![0f32; m * n];
        self.0
            .matmul(&x[x0..x1], m, &mut out)
            .map_err(candle_core::Error::wrap)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

/// candle's own (differentiable) `x · wᵀ`: leading dims flattened so one 2-D
/// GEMM runs against the transposed-view weight (no copy of `w`).
fn candle_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let w = w.to_dtype(x.dtype())?;
    let mut out_dims = x.dims().to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = n;
    }
    x.contiguous()?
        .reshape(((), k))?
        .matmul(&w.t()?)?
        .reshape(out_dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::matmul::tests::rand_vec;
    use candle_core::Device;

    fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    /// Max |a - b| / max(|b|_∞, 1e-6) over the whole result.
    fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        let b = b.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        let a: Vec<f32> = a.to_vec1().unwrap();
        let b: Vec<f32> = b.to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f32, |s, v| s.max(v.abs()));
        a.iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max)
            / scale
    }

    fn isas() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported())
    }

    #[test]
    fn matches_candle_matmul_f32_and_bf16() {
        let shapes = [
            (1, 64, 96),
            (3, 33, 17),
            (8, 1024, 131),
            (17, 257, 64),
            (32, 100, 203),
            (1, 1023, 1001),
        ];
        for (si, &(m, k, n)) in shapes.iter().enumerate() {
            let x = t(rand_vec(m * k, 100 + si as u64), &[m, k]);
            let w = t(rand_vec(n * k, 200 + si as u64), &[n, k]);
            let want = x.matmul(&w.t().unwrap()).unwrap();
            let wb = w.to_dtype(DType::BF16).unwrap();
            let want_b = x
                .matmul(&wb.to_dtype(DType::F32).unwrap().t().unwrap())
                .unwrap();
            for isa in isas() {
                let got = linear_with(isa, &x, &w).unwrap();
                assert_eq!(got.dims(), &[m, n]);
                let e = rel_err(&got, &want);
                assert!(e < 1e-4, "{isa:?} f32 m={m} k={k} n={n}: rel err {e}");
                let got = linear_with(isa, &x, &wb).unwrap();
                assert_eq!(got.dtype(), DType::F32);
                let e = rel_err(&got, &want_b);
                // vdpbf16ps also rounds x to bf16.
                let tol = if isa == Isa::Avx512Bf16 { 1e-2 } else { 1e-4 };
                assert!(e < tol, "{isa:?} bf16 m={m} k={k} n={n}: rel err {e}");
            }
        }
    }

    #[test]
    fn batched_noncontiguous_and_dtypes() {
        let (b, s, k, n) = (2, 3, 40, 24);
        let w = t(rand_vec(n * k, 7), &[n, k]);
        // x built as (b, k, s) then transposed: a non-contiguous (b, s, k).
        let x = t(rand_vec(b * s * k, 8), &[b, k, s])
            .transpose(1, 2)
            .unwrap();
        assert!(!x.is_contiguous());
        let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let got = linear(&x, &w).unwrap();
        assert_eq!(got.dims(), &[b, s, n]);
        assert!(rel_err(&got, &want) < 1e-4);

        // bf16 activations come back as bf16.
        let xb = x.to_dtype(DType::BF16).unwrap();
        let got = linear(&xb, &w).unwrap();
        assert_eq!(got.dtype(), DType::BF16);
        assert!(rel_err(&got, &want) < 2e-2);

        // Non-contiguous weight: copied, still correct.
        let wt = t(rand_vec(n * k, 9), &[k, n]).t().unwrap();
        let want = x.broadcast_matmul(&wt.t().unwrap()).unwrap();
        assert!(rel_err(&linear(&x, &wt).unwrap(), &want) < 1e-4);
    }

    #[test]
    fn large_m_falls_back_to_candle() {
        let (m, k, n) = (F32_MAX_M + 5, 48, 20);
        let x = t(rand_vec(m * k, 3), &[m, k]);
        let w = t(rand_vec(n * k, 4), &[n, k]);
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let got = linear(&x, &w).unwrap();
        assert!(rel_err(&got, &want) < 1e-5);
        let m = BF16_MAX_M + 1;
        let x = t(rand_vec(m * k, 5), &[m, k]);
        let wb = w.to_dtype(DType::BF16).unwrap();
        let want = x
            .matmul(&wb.to_dtype(DType::F32).unwrap().t().unwrap())
            .unwrap();
        assert!(rel_err(&linear(&x, &wb).unwrap(), &want) < 1e-5);
    }

    #[test]
    fn shape_errors() {
        let x = t(vec![0.0; 6], &[2, 3]);
        let w = t(vec![0.0; 8], &[2, 4]);
        let err = linear(&x, &w).unwrap_err().to_string();
        assert!(err.contains("w is (2, 4)"), "{err}");
        let w3 = t(vec![0.0; 8], &[1, 2, 4]);
        assert!(linear(&x, &w3).is_err());
    }
}
