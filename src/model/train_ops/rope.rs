//! Rotary position embedding, rotate-half form (HF `apply_rotary_pos_emb`):
//! with `x = [x1, x2]` split in halves, `y = [x1·c − x2·s, x2·c + x1·s]`,
//! where `c`, `s` are the token's cos/sin rows. The backward is the inverse
//! rotation of the gradient: `dx = [g1·c + g2·s, g2·c − g1·s]`. The tables are
//! constants (no gradient).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{fused, rows_per_task, slice, storage, with_elems, Real};

/// Rotary embedding of `x` (tokens, heads, d), token `t` rotated by row `t` of
/// `cos` / `sin` (tokens, d/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (t, _h, d) = x.dims3()?;
    if d % 2 != 0 || cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
        candle_core::bail!(
            "rope: x {:?} needs cos/sin of shape [{t}, {}], got {:?} / {:?}",
            x.dims(),
            d / 2,
            cos.dims(),
            sin.dims()
        );
    }
    if !fused(x) || cos.dtype() != x.dtype() || sin.dtype() != x.dtype() {
        return super::composed::rope(x, cos, sin);
    }
    x.contiguous()?.apply_op3_arc(
        &cos.contiguous()?,
        &sin.contiguous()?,
        std::sync::Arc::new(Box::new(Rope)),
    )
}

struct Rope;

/// Rotate every head of every token; `sign` = 1 forward, −1 for the inverse.
fn apply<T: Real>(x: &[T], cos: &[T], sin: &[T], tokens: usize, sign: T) -> Vec<T> {
    let half = cos.len() / tokens;
    let row = x.len() / tokens; // heads · d
    let mut y = vec![T::zero(); x.len()];
    let rows = rows_per_task(tokens, row);
    y.par_chunks_mut(rows * row)
        .zip(x.par_chunks(rows * row))
        .enumerate()
        .for_each(|(chunk, (y, x))| {
            for (i, (yt, xt)) in y.chunks_exact_mut(row).zip(x.chunks_exact(row)).enumerate() {
                let t = chunk * rows + i;
                let c = &cos[t * half..(t + 1) * half];
                let s = &sin[t * half..(t + 1) * half];
                for (yh, xh) in yt.chunks_exact_mut(2 * half).zip(xt.chunks_exact(2 * half)) {
                    let (x1, x2) = xh.split_at(half);
                    let (y1, y2) = yh.split_at_mut(half);
                    for j in 0..half {
                        let sj = sign * s[j];
                        y1[j] = x1[j] * c[j] - x2[j] * sj;
                        y2[j] = x2[j] * c[j] + x1[j] * sj;
                    }
                }
            }
        });
    y
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "train-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Rope, false);
        let shape = xl.shape().clone();
        let tokens = shape.dims()[0];
        match xs.dtype() {
            DType::F32 => Ok(storage(
                apply::<f32>(
                    slice(xs, xl, "rope x")?,
                    slice(cs, cl, "rope cos")?,
                    slice(ss, sl, "rope sin")?,
                    tokens,
                    1.0,
                ),
                shape,
            )),
            DType::F64 => Ok(storage(
                apply::<f64>(
                    slice(xs, xl, "rope x")?,
                    slice(cs, cl, "rope cos")?,
                    slice(ss, sl, "rope sin")?,
                    tokens,
                    1.0,
                ),
                shape,
            )),
            dt => candle_core::bail!("rope: fused kernel has no {dt:?} path"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _timer = super::profile::Timer::start(super::profile::Op::Rope, true);
        fn run<T: Real>(x: &Tensor, cos: &Tensor, sin: &Tensor, g: &Tensor) -> Result<Tensor> {
            let tokens = x.dim(0)?;
            let dx = with_elems::<T, _>(g, "rope grad", |gv| {
                with_elems::<T, _>(cos, "rope cos", |cv| {
                    with_elems::<T, _>(sin, "rope sin", |sv| {
                        Ok(apply(gv, cv, sv, tokens, T::zero() - T::one()))
                    })
                })
            })?;
            Tensor::from_vec(dx, x.shape(), x.device())
        }
        let dx = match x.dtype() {
            DType::F32 => run::<f32>(x, cos, sin, grad)?,
            DType::F64 => run::<f64>(x, cos, sin, grad)?,
            dt => candle_core::bail!("rope: fused backward has no {dt:?} path"),
        };
        Ok((Some(dx), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;

    #[test]
    fn rope_matches_composed_and_finite_differences() {
        for (tokens, heads, d) in [(1usize, 1usize, 4usize), (9, 4, 16), (130, 2, 64)] {
            let case = Case::new(
                &[&[tokens, heads, d], &[tokens, d / 2], &[tokens, d / 2]],
                5,
            )
            .constant(1)
            .constant(2);
            check_op(
                &format!("rope {tokens}x{heads}x{d}"),
                &case,
                |t| rope(&t[0], &t[1], &t[2]),
                |t| super::super::composed::rope(&t[0], &t[1], &t[2]),
            );
        }
    }

    #[test]
    fn rope_rejects_mismatched_tables() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::zeros((3, 2, 8), DType::F32, &dev).unwrap();
        let c = Tensor::zeros((3, 8), DType::F32, &dev).unwrap();
        let err = rope(&x, &c, &c).unwrap_err().to_string();
        assert!(err.contains("needs cos/sin"), "{err}");
    }
}
