//! CPU kernels.
//!
//! The one kernel here is `y = x · Wᵀ` for decode-sized batches: `x` has a
//! handful of rows (one per sequence being decoded, m = 1..32) and `W` is an
//! `nn.Linear` weight stored `(out, in)` row-major, exactly as in safetensors.
//! At these shapes the work is bound by streaming `W` from memory, so the
//! kernel reads every weight row once per call and uses it for *all* rows of
//! `x` (register blocking over m), instead of the per-row re-reads that make
//! candle's small-m GEMM cost grow almost linearly in m.
//!
//! * [`matmul_xwt_f32`] / [`matmul_xwt_bf16`]: slice-level kernels with
//!   runtime ISA dispatch (AVX-512, AVX2+FMA, portable fallback) and rayon
//!   parallelism over output columns.
//! * [`linear()`]: the candle integration (`x · wᵀ` on tensors), inference
//!   only; training keeps candle's differentiable `matmul`.
//! * Packed weights ([`linear_packed`]): `amx` (bf16) and `amx_q8` (Q8_0) in
//!   Intel AMX tile order, `packed_f32` (f32 in AVX-512 GEMM panels); each is
//!   reordered once at load and serves every m, prefill included.
//! * [`attention`]: the tile kernels of fused decode attention.
//!
//! Module layering of the small-m kernel: `matmul` (validation, ISA
//! dispatch, rayon split) calls the ISA modules `avx512`, `avx2` and
//! `portable`, which share only the tile shape and chunk contract of the
//! leaf `tile`.

/// Expands to a `match` over the runtime tile shape `(mb, nb)` that calls the
/// monomorphized `$tile::<MB, NB>(args..)`; each ISA module uses it so the
/// accumulators of every tile shape are compile-time arrays that live in
/// registers. Tile shapes are at most `4 × 4` (see [`matmul::MB`], [`matmul::NB`]).
macro_rules! tile_match {
    ($tile:ident, $mb:expr, $nb:expr, ($($arg:expr),* $(,)?)) => {
        match ($mb, $nb) {
            (4, 4) => $tile::<4, 4>($($arg),*),
            (4, 3) => $tile::<4, 3>($($arg),*),
            (4, 2) => $tile::<4, 2>($($arg),*),
            (4, 1) => $tile::<4, 1>($($arg),*),
            (3, 4) => $tile::<3, 4>($($arg),*),
            (3, 3) => $tile::<3, 3>($($arg),*),
            (3, 2) => $tile::<3, 2>($($arg),*),
            (3, 1) => $tile::<3, 1>($($arg),*),
            (2, 4) => $tile::<2, 4>($($arg),*),
            (2, 3) => $tile::<2, 3>($($arg),*),
            (2, 2) => $tile::<2, 2>($($arg),*),
            (2, 1) => $tile::<2, 1>($($arg),*),
            (1, 4) => $tile::<1, 4>($($arg),*),
            (1, 3) => $tile::<1, 3>($($arg),*),
            (1, 2) => $tile::<1, 2>($($arg),*),
            (1, 1) => $tile::<1, 1>($($arg),*),
            _ => unreachable!("tile shape out of range"),
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
pub mod amx_q8;
pub mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod gemm_f32;
pub mod linear;
pub mod matmul;
#[cfg(target_arch = "x86_64")]
pub mod packed_f32;
mod portable;
mod tile;

pub use linear::{linear, linear_with, LinearOp};
#[cfg(target_arch = "x86_64")]
pub use linear::{linear_packed, PackedMatmul};
pub use matmul::{
    matmul_xwt_bf16, matmul_xwt_bf16_with, matmul_xwt_f32, matmul_xwt_f32_with, Isa, KernelError,
};
