//! The SFT step: teacher forcing over packed micro-batches, loss on the
//! weighted (assistant) tokens, gradients summed over the micro-batches with
//! one normaliser for the whole step, global-norm clipping, AdamW.

use candle_core::Var;

use crate::batch::PackedBatch;
use crate::loss::weighted_nll;
use crate::optim::{AdamW, Grads};
use crate::policy::Policy;
use crate::{Result, TrainError};

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean NLL per trained token over the step.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens the forwards ran.
    pub tokens: usize,
    /// Tokens trained on (sum of weights).
    pub trained_tokens: f64,
}

/// One optimizer step over `micro` (gradient accumulation: the step's
/// micro-batches), with learning rate `lr`.
pub fn sft_step<P: Policy>(
    policy: &P,
    params: &[(String, Var)],
    opt: &mut AdamW,
    micro: &[PackedBatch],
    lr: f64,
    max_grad_norm: Option<f64>,
) -> Result<StepStats> {
    let total: f64 = micro.iter().map(PackedBatch::trained_tokens).sum();
    if total <= 0.0 {
        return Err(TrainError::Batch(
            "no trained tokens in the step (every weight is 0)".into(),
        ));
    }
    let mut grads = Grads::default();
    let mut loss = 0f64;
    let mut tokens = 0;
    for b in micro {
        let lp = policy.token_logprobs(b, 1.0)?;
        let l = weighted_nll(&lp, &b.weights, total)?;
        loss += l.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        tokens += b.tokens();
        grads.accumulate(params, &l.backward()?)?;
    }
    let grad_norm = match max_grad_norm {
        Some(c) => grads.clip_global_norm(c)?,
        None => grads.global_norm()?,
    };
    if !grad_norm.is_finite() {
        return Err(TrainError::Batch(format!(
            "gradient norm is {grad_norm} (loss {loss}); the step was not applied"
        )));
    }
    opt.step(&grads, lr)?;
    Ok(StepStats {
        loss,
        grad_norm,
        tokens,
        trained_tokens: total,
    })
}

/// Mean NLL per trained token over `batches`, without gradients.
pub fn eval_loss<P: Policy>(policy: &P, batches: &[PackedBatch]) -> Result<f64> {
    let mut nll = 0f64;
    let mut total = 0f64;
    for b in batches {
        let lp = policy.token_logprobs(b, 1.0)?.detach();
        let n = b.trained_tokens();
        if n == 0.0 {
            continue;
        }
        let l = weighted_nll(&lp, &b.weights, 1.0)?;
        nll += l.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        total += n;
    }
    if total == 0.0 {
        return Err(TrainError::Batch(
            "no trained tokens in the eval set".into(),
        ));
    }
    Ok(nll / total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Example;
    use crate::optim::AdamWConfig;
    use crate::policy::toy::BigramPolicy;

    fn data() -> Vec<Example> {
        // A deterministic cycle 1→2→3→1 in a vocab of 5; the loss is on
        // every token but the first.
        (0..6)
            .map(|k| {
                let ids: Vec<u32> = (0..8).map(|i| ((i + k) % 3 + 1) as u32).collect();
                let mut w = vec![1.0; 8];
                w[0] = 0.0;
                Example::new(ids, w).unwrap()
            })
            .collect()
    }

    #[test]
    fn training_lowers_the_loss_of_a_toy_policy() {
        let p = BigramPolicy::new(5, 0).unwrap();
        let params = p.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        let ex = data();
        let batch = PackedBatch::pack(&ex);
        let before = eval_loss(&p, std::slice::from_ref(&batch)).unwrap();
        let mut last = before;
        for _ in 0..30 {
            last = sft_step(
                &p,
                &params,
                &mut opt,
                std::slice::from_ref(&batch),
                0.1,
                Some(1.0),
            )
            .unwrap()
            .loss;
        }
        let after = eval_loss(&p, &[batch]).unwrap();
        assert!(before > 1.0, "{before}");
        assert!(after < 0.2 && after < last + 1e-9, "{before} -> {after}");
    }

    #[test]
    fn accumulation_split_does_not_change_the_step() {
        let ex = data();
        let whole = [PackedBatch::pack(&ex)];
        let split = [PackedBatch::pack(&ex[..2]), PackedBatch::pack(&ex[2..])];
        let run = |micro: &[PackedBatch]| {
            let p = BigramPolicy::new(5, 1).unwrap();
            let params = p.params();
            let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
            let s = sft_step(&p, &params, &mut opt, micro, 0.05, None).unwrap();
            (
                s,
                p.table
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        };
        let (a, wa) = run(&whole);
        let (b, wb) = run(&split);
        assert!((a.loss - b.loss).abs() < 1e-6);
        assert!((a.grad_norm - b.grad_norm).abs() < 1e-6);
        for (x, y) in wa.iter().zip(&wb) {
            assert!((x - y).abs() < 1e-6);
        }
    }

    #[test]
    fn loss_by_hand_on_a_uniform_policy() {
        // all-zero table: every log-prob is −ln 5
        let p = BigramPolicy::new(5, 0).unwrap();
        p.table
            .set(&p.table.as_tensor().zeros_like().unwrap())
            .unwrap();
        let b = PackedBatch::pack(&data());
        let l = eval_loss(&p, &[b]).unwrap();
        assert!((l - 5f64.ln()).abs() < 1e-6);
    }
}
