//! The SwiGLU activation `silu(a) · b` (HF `act_fn(gate_proj(x)) * up_proj(x)`).
//!
//! With `σ = 1/(1+e^−a)`: `da = g·b·σ·(1 + a·(1−σ))`, `db = g·a·σ`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::simd::simd_fn;
use super::{fused, rows_per_task, slice, storage, with_elems, Real};

/// `silu(gate) · up`, element-wise; both of the same shape.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        candle_core::bail!(
            "silu_mul: gate {:?} and up {:?} differ in shape",
            gate.dims(),
            up.dims()
        );
    }
    if !fused(gate) || gate.dtype() != up.dtype() {
        return super::composed::silu_mul(gate, up);
    }
    gate.contiguous()?
        .apply_op2_arc(&up.contiguous()?, std::sync::Arc::new(Box::new(SiluMul)))
}

struct SiluMul;

/// `silu(gate) · up` where `gate_up` (rows, 2·I) holds `[gate | up]` side by
/// side in each row (the output of one GEMM over the concatenated
/// `gate_proj` and `up_proj` weights); returns (rows, I).
pub fn silu_mul_packed(gate_up: &Tensor) -> Result<Tensor> {
    let (_rows, width) = gate_up.dims2()?;
    if width % 2 != 0 {
        candle_core::bail!("silu_mul_packed: width {width} of gate_up is odd");
    }
    if !fused(gate_up) {
        let half = width / 2;
        return super::composed::silu_mul(
            &gate_up.narrow(1, 0, half)?,
            &gate_up.narrow(1, half, half)?,
        );
    }
    gate_up
        .contiguous()?
        .apply_op1_arc(std::sync::Arc::new(Box::new(SiluMulPacked)))
}

struct SiluMulPacked;

fn forward_packed<T: Real>(gu: &[T], half: usize) -> Vec<T> {
    let rows = gu.len() / (2 * half);
    let mut y = vec![T::zero(); rows * half];
    let per = rows_per_task(rows, 2 * half);
    y.par_chunks_mut(per * half)
        .zip(gu.par_chunks(per * 2 * half))
        .for_each(|(y, gu)| {
            for (yr, r) in y.chunks_exact_mut(half).zip(gu.chunks_exact(2 * half)) {
                let (a, b) = r.split_at(half);
                silu_fwd(yr, a, b);
            }
        });
    y
}

fn backward_packed<T: Real>(gu: &[T], g: &[T], half: usize) -> Vec<T> {
    let rows = gu.len() / (2 * half);
    let mut d = vec![T::zero(); gu.len()];
    let per = rows_per_task(rows, 2 * half);
    d.par_chunks_mut(per * 2 * half)
        .zip(gu.par_chunks(per * 2 * half).zip(g.par_chunks(per * half)))
        .for_each(|(d, (gu, g))| {
            for ((dr, r), gr) in d
                .chunks_exact_mut(2 * half)
                .zip(gu.chunks_exact(2 * half))
                .zip(g.chunks_exact(half))
            {
                let (a, b) = r.split_at(half);
                let (da, db) = dr.split_at_mut(half);
                silu_bwd(da, db, a, b, gr);
            }
        });
    d
}

impl CustomOp1 for SiluMulPacked {
    fn name(&self) -> &'static str {
        "train-silu-mul-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::SiluMul, false);
        let (rows, width) = l.shape().dims2()?;
        let half = width / 2;
        match s.dtype() {
            DType::F32 => Ok(storage(
                forward_packed::<f32>(slice(s, l, "silu_mul_packed")?, half),
                (rows, half),
            )),
            DType::F64 => Ok(storage(
                forward_packed::<f64>(slice(s, l, "silu_mul_packed")?, half),
                (rows, half),
            )),
            dt => candle_core::bail!("silu_mul_packed: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(&self, gu: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let _timer = super::profile::Timer::start(super::profile::Op::SiluMul, true);
        fn run<T: Real>(gu: &Tensor, g: &Tensor) -> Result<Tensor> {
            let half = gu.dim(1)? / 2;
            let d = with_elems::<T, _>(gu, "silu_mul_packed", |a| {
                with_elems::<T, _>(g, "silu_mul_packed grad", |gv| {
                    Ok(backward_packed(a, gv, half))
                })
            })?;
            Tensor::from_vec(d, gu.shape(), gu.device())
        }
        let d = match gu.dtype() {
            DType::F32 => run::<f32>(gu, grad)?,
            DType::F64 => run::<f64>(gu, grad)?,
            dt => candle_core::bail!("silu_mul_packed: fused backward has no {dt:?} path"),
        };
        Ok(Some(d))
    }
}

const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn sigmoid<T: Real>(a: T) -> T {
    T::one() / (T::one() + (T::zero() - a).exp())
}

simd_fn! {
    /// `y = silu(a) · b` over equal-length slices.
    fn silu_fwd<T: Real>(y: &mut [T], a: &[T], b: &[T]) {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = a * sigmoid(a) * b;
        }
    }
}

simd_fn! {
    /// `da`, `db` of `silu(a) · b` for the output gradient `g`.
    fn silu_bwd<T: Real>(da: &mut [T], db: &mut [T], a: &[T], b: &[T], g: &[T]) {
        let n = da.len().min(db.len()).min(a.len()).min(b.len()).min(g.len());
        for i in 0..n {
            let s = sigmoid(a[i]);
            da[i] = g[i] * b[i] * s * (T::one() + a[i] * (T::one() - s));
            db[i] = g[i] * a[i] * s;
        }
    }
}

fn forward<T: Real>(a: &[T], b: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); a.len()];
    let chunk = rows_per_task(a.len().div_ceil(CHUNK), CHUNK) * CHUNK;
    y.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .for_each(|(y, (a, b))| silu_fwd(y, a, b));
    y
}

fn backward<T: Real>(a: &[T], b: &[T], g: &[T]) -> (Vec<T>, Vec<T>) {
    let mut da = vec![T::zero(); a.len()];
    let mut db = vec![T::zero(); a.len()];
    let chunk = rows_per_task(a.len().div_ceil(CHUNK), CHUNK) * CHUNK;
    da.par_chunks_mut(chunk)
        .zip(db.par_chunks_mut(chunk))
        .zip(
            a.par_chunks(chunk)
                .zip(b.par_chunks(chunk))
                .zip(g.par_chunks(chunk)),
        )
        .for_each(|((da, db), ((a, b), g))| silu_bwd(da, db, a, b, g));
    (da, db)
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "train-silu-mul"
    }

    fn cpu_fwd(
        &self,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::SiluMul, false);
        let shape = al.shape().clone();
        match as_.dtype() {
            DType::F32 => Ok(storage(
                forward::<f32>(
                    slice(as_, al, "silu_mul gate")?,
                    slice(bs, bl, "silu_mul up")?,
                ),
                shape,
            )),
            DType::F64 => Ok(storage(
                forward::<f64>(
                    slice(as_, al, "silu_mul gate")?,
                    slice(bs, bl, "silu_mul up")?,
                ),
                shape,
            )),
            dt => candle_core::bail!("silu_mul: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _timer = super::profile::Timer::start(super::profile::Op::SiluMul, true);
        fn run<T: Real>(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
            let (da, db) = with_elems::<T, _>(a, "silu_mul gate", |av| {
                with_elems::<T, _>(b, "silu_mul up", |bv| {
                    with_elems::<T, _>(g, "silu_mul grad", |gv| Ok(backward(av, bv, gv)))
                })
            })?;
            Ok((
                Tensor::from_vec(da, a.shape(), a.device())?,
                Tensor::from_vec(db, b.shape(), b.device())?,
            ))
        }
        let (da, db) = match a.dtype() {
            DType::F32 => run::<f32>(a, b, grad)?,
            DType::F64 => run::<f64>(a, b, grad)?,
            dt => candle_core::bail!("silu_mul: fused backward has no {dt:?} path"),
        };
        Ok((Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;

    #[test]
    fn silu_mul_packed_matches_composed_and_finite_differences() {
        for (rows, half) in [(1usize, 3usize), (50, 96)] {
            let case = Case::new(&[&[rows, 2 * half]], half as u64).scaled(0, 4.0);
            check_op(
                &format!("silu_mul_packed {rows}x{half}"),
                &case,
                |t| silu_mul_packed(&t[0]),
                |t| {
                    super::super::composed::silu_mul(
                        &t[0].narrow(1, 0, half)?,
                        &t[0].narrow(1, half, half)?,
                    )
                },
            );
        }
    }

    #[test]
    fn silu_mul_matches_composed_and_finite_differences() {
        for n in [1usize, 37, 40_000] {
            let case = Case::new(&[&[n], &[n]], n as u64).scaled(0, 4.0);
            check_op(
                &format!("silu_mul n={n}"),
                &case,
                |t| silu_mul(&t[0], &t[1]),
                |t| super::super::composed::silu_mul(&t[0], &t[1]),
            );
        }
    }
}
