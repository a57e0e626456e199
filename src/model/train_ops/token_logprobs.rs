//! Log-probability of one target token per row: `lp_t = log_softmax(z_t / τ)[y_t]`
//! for logits `z` (T, V), targets `y` (T) and temperature `τ`.
//!
//! The SFT loss is `−Σ w_t·lp_t`; GRPO's ratio is `exp(lp − lp_old)` with
//! `lp` at the sampling temperature (see `TRAINING.md`). The forward keeps
//! each row's log-sum-exp (T values), so the backward is one pass:
//! `dz_{t,j} = g_t/τ · (1[j = y_t] − exp(z_{t,j}/τ − lse_t))`; the (T, V)
//! log-probability matrix is never materialised.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::simd::simd_fn;
use super::{fused, rows_per_task, slice, storage, with_elems, Real};

/// `log_softmax(logits)[t, targets[t]]` for logits (T, V) and targets (T)
/// of dtype u32: a (T) tensor in the dtype of `logits`, differentiable with
/// respect to `logits`.
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    token_logprobs_tempered(logits, targets, 1.0)
}

/// [`token_logprobs`] of `logits / temperature`: the log-probabilities of
/// the distribution sampled at that temperature (GRPO ratios).
pub fn token_logprobs_tempered(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    let (t, _v) = logits.dims2()?;
    if targets.dims() != [t] {
        candle_core::bail!(
            "token_logprobs: targets {:?} must be one id per logits row ({t})",
            targets.dims()
        );
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        candle_core::bail!(
            "token_logprobs: temperature must be positive and finite, got {temperature}"
        );
    }
    let targets = targets.to_dtype(DType::U32)?;
    if !fused(logits) {
        return super::composed::token_logprobs(logits, &targets, temperature);
    }
    let op = TokenLogprobs {
        inv_temp: 1.0 / temperature,
        lse: Mutex::new(None),
    };
    logits
        .contiguous()?
        .apply_op2_arc(&targets.contiguous()?, Arc::new(Box::new(op)))
}

struct TokenLogprobs {
    inv_temp: f64,
    /// Per-row log-sum-exp of `z/τ`, written by the forward for the backward.
    lse: Mutex<Option<Vec<f64>>>,
}

/// `(lp, lse)` per row.
fn forward<T: Real>(z: &[T], y: &[u32], vocab: usize, inv_temp: f64) -> Result<(Vec<T>, Vec<f64>)> {
    if let Some((row, &id)) = y.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        candle_core::bail!(
            "token_logprobs: target id {id} at row {row} is outside the vocabulary of {vocab}"
        );
    }
    let rows = y.len();
    let s = T::from_f64(inv_temp);
    let mut lp = vec![T::zero(); rows];
    let mut lse = vec![0f64; rows];
    let per = rows_per_task(rows, vocab);
    lp.par_chunks_mut(per)
        .zip(lse.par_chunks_mut(per))
        .zip(z.par_chunks(per * vocab).zip(y.par_chunks(per)))
        .for_each(|((lp, lse), (z, y))| forward_rows(lp, lse, z, y, vocab, s));
    Ok((lp, lse))
}

simd_fn! {
    /// [`forward`] for the rows of one task.
    fn forward_rows<T: Real>(lp: &mut [T], lse: &mut [f64], z: &[T], y: &[u32], vocab: usize, s: T) {
        for (i, zr) in z.chunks_exact(vocab).enumerate() {
            // s > 0, so max(z·s) = max(z)·s.
            let m = super::simd::max(zr) * s;
            let l = m + super::simd::sum_exp(zr, s, m).ln();
            lse[i] = l.to_f64();
            lp[i] = zr[y[i] as usize] * s - l;
        }
    }
}

simd_fn! {
    /// [`backward`] for the rows of one task.
    fn backward_rows<T: Real>(dz: &mut [T], z: &[T], y: &[u32], lse: &[f64], g: &[T], vocab: usize, s: T) {
        for (i, (dr, zr)) in dz.chunks_exact_mut(vocab).zip(z.chunks_exact(vocab)).enumerate() {
            let l = T::from_f64(lse[i]);
            let gs = g[i] * s;
            for (d, &v) in dr.iter_mut().zip(zr) {
                *d = T::zero() - gs * (v * s - l).exp();
            }
            dr[y[i] as usize] += gs;
        }
    }
}

fn backward<T: Real>(z: &[T], y: &[u32], lse: &[f64], g: &[T], inv_temp: f64) -> Vec<T> {
    let vocab = z.len() / y.len().max(1);
    let s = T::from_f64(inv_temp);
    let mut dz = vec![T::zero(); z.len()];
    let per = rows_per_task(y.len(), vocab);
    dz.par_chunks_mut(per * vocab)
        .zip(z.par_chunks(per * vocab))
        .zip(
            y.par_chunks(per)
                .zip(lse.par_chunks(per))
                .zip(g.par_chunks(per)),
        )
        .for_each(|((dz, z), ((y, lse), g))| backward_rows(dz, z, y, lse, g, vocab, s));
    dz
}

impl CustomOp2 for TokenLogprobs {
    fn name(&self) -> &'static str {
        "train-token-logprobs"
    }

    fn cpu_fwd(
        &self,
        zs: &CpuStorage,
        zl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = super::profile::Timer::start(super::profile::Op::TokenLogprobs, false);
        let (rows, vocab) = zl.shape().dims2()?;
        let y = slice::<u32>(ys, yl, "token_logprobs targets")?;
        let (out, lse) = match zs.dtype() {
            DType::F32 => {
                let (lp, lse) = forward::<f32>(
                    slice(zs, zl, "token_logprobs logits")?,
                    y,
                    vocab,
                    self.inv_temp,
                )?;
                (storage(lp, rows), lse)
            }
            DType::F64 => {
                let (lp, lse) = forward::<f64>(
                    slice(zs, zl, "token_logprobs logits")?,
                    y,
                    vocab,
                    self.inv_temp,
                )?;
                (storage(lp, rows), lse)
            }
            dt => candle_core::bail!("token_logprobs: fused kernel has no {dt:?} path"),
        };
        *self
            .lse
            .lock()
            .map_err(|_| candle_core::Error::Msg("token_logprobs: lock poisoned".into()))? =
            Some(lse);
        Ok(out)
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _timer = super::profile::Timer::start(super::profile::Op::TokenLogprobs, true);
        let guard = self
            .lse
            .lock()
            .map_err(|_| candle_core::Error::Msg("token_logprobs: lock poisoned".into()))?;
        let Some(lse) = guard.as_ref() else {
            candle_core::bail!("token_logprobs: backward before forward")
        };
        fn run<T: Real>(
            z: &Tensor,
            y: &Tensor,
            lse: &[f64],
            g: &Tensor,
            inv_temp: f64,
        ) -> Result<Tensor> {
            let dz = with_elems::<T, _>(z, "token_logprobs logits", |zv| {
                with_elems::<u32, _>(y, "token_logprobs targets", |yv| {
                    with_elems::<T, _>(g, "token_logprobs grad", |gv| {
                        Ok(backward(zv, yv, lse, gv, inv_temp))
                    })
                })
            })?;
            Tensor::from_vec(dz, z.shape(), z.device())
        }
        let dz = match logits.dtype() {
            DType::F32 => run::<f32>(logits, targets, lse, grad, self.inv_temp)?,
            DType::F64 => run::<f64>(logits, targets, lse, grad, self.inv_temp)?,
            dt => candle_core::bail!("token_logprobs: fused backward has no {dt:?} path"),
        };
        Ok((Some(dz), None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_op, Case};
    use super::*;
    use candle_core::Device;

    fn targets(rows: usize, vocab: usize) -> Tensor {
        let ids: Vec<u32> = (0..rows).map(|i| ((i * 7919 + 3) % vocab) as u32).collect();
        Tensor::new(ids.as_slice(), &Device::Cpu).unwrap()
    }

    #[test]
    fn token_logprobs_match_composed_and_finite_differences() {
        for (rows, vocab, temp) in [
            (1usize, 5usize, 1.0),
            (13, 512, 1.0),
            (40, 300, 0.7),
            (7, 64, 1.5),
        ] {
            let y = targets(rows, vocab);
            let case = Case::new(&[&[rows, vocab]], rows as u64).scaled(0, 3.0);
            check_op(
                &format!("token_logprobs {rows}x{vocab} T={temp}"),
                &case,
                |t| token_logprobs_tempered(&t[0], &y, temp),
                |t| super::super::composed::token_logprobs(&t[0], &y, temp),
            );
        }
    }

    #[test]
    fn token_logprobs_values_are_log_softmax_at_the_target() {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[0f32, 1.0, 2.0], [3.0, 3.0, 3.0]], &dev).unwrap();
        let y = Tensor::new(&[2u32, 0], &dev).unwrap();
        let lp = token_logprobs(&z, &y).unwrap().to_vec1::<f32>().unwrap();
        let lse0 = (1f32 + 1f32.exp() + 2f32.exp()).ln();
        assert!((lp[0] - (2.0 - lse0)).abs() < 1e-6, "{lp:?}");
        assert!((lp[1] - (1f32 / 3.0).ln()).abs() < 1e-6, "{lp:?}");
        // Temperature 2 halves the logits.
        let lp2 = token_logprobs_tempered(&z, &y, 2.0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let lse2 = (1f32 + 0.5f32.exp() + 1f32.exp()).ln();
        assert!((lp2[0] - (1.0 - lse2)).abs() < 1e-6, "{lp2:?}");
    }

    #[test]
    fn token_logprobs_reject_bad_inputs() {
        let dev = Device::Cpu;
        let z = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let err = token_logprobs(&z, &Tensor::new(&[1u32, 4], &dev).unwrap()).unwrap_err();
        assert!(err.to_string().contains("target id 4 at row 1"), "{err}");
        let err = token_logprobs(&z, &Tensor::new(&[1u32], &dev).unwrap()).unwrap_err();
        assert!(err.to_string().contains("one id per logits row"), "{err}");
        let err =
            token_logprobs_tempered(&z, &Tensor::new(&[1u32, 2], &dev).unwrap(), 0.0).unwrap_err();
        assert!(err.to_string().contains("temperature"), "{err}");
    }
}
