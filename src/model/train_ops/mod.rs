//! Fused differentiable ops for the training forward ([`super::Mode::Train`]).
//!
//! candle's autograd records one graph node per elementary op and, in
//! backward, allocates a zero tensor for every input's gradient before adding
//! to it, so a composed RMSNorm (square, mean, add, sqrt, div, mul) or a
//! per-sequence masked softmax costs many full passes over the activations in
//! both directions. Each op here is one node whose forward and backward are
//! written out by hand (one or two passes, spread over the rayon pool,
//! vectorised with AVX-512 where the CPU has it, see `simd`), following the
//! formulas of the composed versions they replace:
//!
//! * [`rms_norm`]: `x / sqrt(mean(x²) + eps) · w` over the last dimension;
//! * [`rope`]: rotate-half rotary embedding, each token at its own position;
//! * [`causal_attention`]: softmax(q kᵀ · scale + causal mask) v per sequence
//!   of a ragged batch (sequences packed back to back, no padding), GQA;
//! * [`qkv_attention`]: a layer's attention core on its packed q/k/v
//!   projection: per-head q/k RMSNorm, rope and [`causal_attention`] as one
//!   node;
//! * [`silu_mul`] / [`silu_mul_packed`]: `silu(gate) · up` (SwiGLU), the
//!   packed form on one GEMM's `[gate | up]` output;
//! * [`token_logprobs`] / [`token_logprobs_tempered`]:
//!   `log_softmax(logits / T)[t, target_t]`, the loss of SFT and the ratio
//!   of GRPO, backward `g/T · (onehot − softmax)`;
//! * [`linear`] / [`linear_residual`]: `[r +] x · wᵀ`, GEMMs on
//!   [`crate::kernels::gemm_f32`] with strided operands (no transposes).
//!
//! A decoder layer in `Mode::Train` (no KV caches) is eight nodes: two
//! norms, the q/k/v GEMM over the concatenated weights, [`qkv_attention`],
//! `o_proj` with the residual, the gate/up GEMM, [`silu_mul_packed`] and
//! `down_proj` with the residual.
//!
//! Fused kernels run on CPU tensors of dtype f32 or f64 (f64 for the finite
//! difference checks). Any other device or dtype takes the composed candle ops
//! ([`composed`]), which are also the reference the tests compare against and
//! the whole of [`super::Mode::TrainComposed`]. [`profile`] times the ops;
//! [`single_threaded_candle_elementwise`] is the thread setting a training
//! process wants.

mod attention;
pub mod composed;
mod linear;
pub mod profile;
mod qkv_attention;
mod rms_norm;
mod rope;
mod silu_mul;
pub(crate) mod simd;
mod token_logprobs;

pub use attention::causal_attention;
pub use linear::{linear, linear_residual};
pub use qkv_attention::{qkv_attention, QkNorms, QkvHeads};
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use silu_mul::{silu_mul, silu_mul_packed};
pub use token_logprobs::{token_logprobs, token_logprobs_tempered};

use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Storage, Tensor, WithDType};

/// Runs candle's own elementwise CPU ops (the gradient additions of
/// backward, the residual and optimiser arithmetic) on the calling thread by
/// setting `CANDLE_NUM_THREADS=1`, unless the variable is already set.
///
/// candle 0.11 splits every large elementwise op with a second, spinning
/// thread pool beside rayon's. On a machine with few cores (or shared with
/// other work) the spinning threads take cores from the ones doing work:
/// measured on the 2-core dev box, candle-nn's AdamW step on 3.3M
/// parameters took 0.19–0.24 s with the pool and 0.012 s without, and the
/// whole training step ran 1.4x faster. The fused ops here and the GEMMs
/// keep using rayon. Call it at the start of `main`, before any candle op
/// (the pool reads the variable once) and before other threads exist
/// (`set_var` is not thread-safe).
pub fn single_threaded_candle_elementwise() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Element types the fused CPU kernels are written for.
pub(crate) trait Real: WithDType {
    const NEG_INFINITY: Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    #[inline(always)]
    fn exp(self) -> Self {
        simd::exp_f32(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// Whether the fused kernels handle this tensor (CPU, f32 or f64).
pub(crate) fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The contiguous elements of a CPU storage viewed through `layout`.
pub(crate) fn slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{what}: fused op expects a contiguous tensor"),
    }
}

/// Run `f` on the elements of a (made contiguous) CPU tensor.
pub(crate) fn with_elems<T: WithDType, R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("{what}: fused op on a non-CPU tensor")
    };
    f(slice::<T>(cpu, layout, what)?)
}

/// Wrap kernel output as CPU storage of `shape`.
pub(crate) fn storage<T: WithDType>(data: Vec<T>, shape: impl Into<Shape>) -> (CpuStorage, Shape) {
    (T::to_cpu_storage_owned(data), shape.into())
}

/// Rows per rayon task for a row-wise kernel over `rows` rows of `width`
/// elements: enough work per task (~16k elements) to amortise its cost, and
/// several tasks per thread for balance.
pub(crate) fn rows_per_task(rows: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let min_rows = (16 * 1024 / width.max(1)).max(1);
    let balanced = rows.div_ceil(4 * threads).max(1);
    balanced.max(min_rows)
}

/// A raw pointer that rayon tasks may share because each task writes a
/// disjoint set of elements (the invariant every user states at its use).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub *mut T);
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// `dst[i·drs + j] (+)= Σ_l a[i·ars + l·acs] · b[l·brs + j·bcs]` for
/// i < m, j < n, l < k, through the `gemm` crate (candle's CPU GEMM);
/// `accumulate` adds to `dst` instead of overwriting it.
///
/// # Safety
/// Every index above must be inside the allocation its pointer comes from,
/// and no other thread may access the `dst` elements written.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw<T: Real>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    drs: usize,
    accumulate: bool,
    a: *const T,
    (ars, acs): (usize, usize),
    b: *const T,
    (brs, bcs): (usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                std::slice::from_raw_parts_mut(dst.add(i * drs), n).fill(T::zero());
            }
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        drs as isize,
        accumulate,
        a,
        acs as isize,
        ars as isize,
        b,
        bcs as isize,
        brs as isize,
        T::one(),
        T::one(),
        false,
        false,
        false,
        par,
    )
}

/// Rayon parallelism for one big GEMM on the current pool.
pub(crate) fn gemm_parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod transformer_check;
