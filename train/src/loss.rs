//! Losses over per-token log-probs.

use candle_core::Tensor;

use crate::Result;

/// Weighted negative log-likelihood `−Σ_t w_t·lp_t / normaliser`.
///
/// With gradient accumulation the normaliser is the trained-token count of
/// the whole optimizer step (all micro-batches), so the loss — and its
/// gradient — do not change with how the step is split.
pub fn weighted_nll(logprobs: &Tensor, weights: &[f32], normaliser: f64) -> Result<Tensor> {
    let w = Tensor::from_slice(weights, weights.len(), logprobs.device())?
        .to_dtype(logprobs.dtype())?;
    Ok(((logprobs * w)?.sum_all()? * (-1.0 / normaliser))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weighted_nll_by_hand() {
        let lp = Tensor::new(&[-1.0f32, -2.0, -3.0], &Device::Cpu).unwrap();
        // (1·1 + 0·2 + 1·3)/2 = 2
        let l = weighted_nll(&lp, &[1.0, 0.0, 1.0], 2.0).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - 2.0).abs() < 1e-6);
        // the normaliser is the caller's, not the weights' sum
        let l = weighted_nll(&lp, &[1.0, 0.0, 1.0], 8.0).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - 0.5).abs() < 1e-6);
    }
}
