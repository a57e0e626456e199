//! Reward-model losses over per-sequence scores (logits).
//!
//! - Binary cross-entropy with logits, `w·(softplus(s) − y·s)`, the stable
//!   form of `−y·log σ(s) − (1−y)·log(1−σ(s))`.
//! - Bradley–Terry, `w·softplus(−(s_chosen − s_rejected))` = `−w·log σ(Δ)`.
//!
//! Both divide by a caller-given normaliser (the step's total weight), so
//! the loss and its gradient do not change with how a step is split into
//! micro-batches.

use candle_core::Tensor;

use crate::{Result, TrainError};

/// `softplus(x) = log(1 + eˣ) = max(x, 0) + log(1 + e^−|x|)`, differentiable
/// and finite for any finite `x`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((x.relu()? + tail)?)
}

fn weights_tensor(w: &[f32], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_slice(w, w.len(), like.device())?.to_dtype(like.dtype())?)
}

/// `Σ_i w_i·(softplus(s_i) − y_i·s_i) / normaliser` for scores `s` (n,),
/// labels `y ∈ {0, 1}` and weights `w`.
pub fn bce_with_logits(
    scores: &Tensor,
    labels: &[f32],
    weights: &[f32],
    normaliser: f64,
) -> Result<Tensor> {
    let n = scores.elem_count();
    if labels.len() != n || weights.len() != n {
        return Err(TrainError::Batch(format!(
            "bce: {n} scores, {} labels, {} weights",
            labels.len(),
            weights.len()
        )));
    }
    let y = weights_tensor(labels, scores)?;
    let w = weights_tensor(weights, scores)?;
    let per = (softplus(scores)? - (scores * y)?)?;
    Ok(((per * w)?.sum_all()? * (1.0 / normaliser))?)
}

/// `Σ_i w_i·softplus(r_i − c_i) / normaliser` for chosen scores `c` and
/// rejected scores `r` (both (n,)).
pub fn bradley_terry(
    chosen: &Tensor,
    rejected: &Tensor,
    weights: &[f32],
    normaliser: f64,
) -> Result<Tensor> {
    if chosen.elem_count() != weights.len() || rejected.elem_count() != weights.len() {
        return Err(TrainError::Batch(format!(
            "bradley_terry: {} chosen, {} rejected, {} weights",
            chosen.elem_count(),
            rejected.elem_count(),
            weights.len()
        )));
    }
    let w = weights_tensor(weights, chosen)?;
    let per = softplus(&(rejected - chosen)?)?;
    Ok(((per * w)?.sum_all()? * (1.0 / normaliser))?)
}

/// Per-sample weights that give every problem the same total weight 1 and,
/// within a problem that has both, its correct and incorrect samples half
/// each (so a problem the policy nearly always solves does not teach "say
/// yes"). A problem with one class only spreads its 1 over its samples.
/// `problem[i]` is sample `i`'s problem id (any order).
pub fn balanced_weights(problem: &[usize], labels: &[bool]) -> Vec<f32> {
    use std::collections::HashMap;
    let mut counts: HashMap<usize, (usize, usize)> = HashMap::new();
    for (&p, &y) in problem.iter().zip(labels) {
        let c = counts.entry(p).or_default();
        if y {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    problem
        .iter()
        .zip(labels)
        .map(|(p, &y)| {
            let (pos, neg) = counts[p];
            let same = if y { pos } else { neg };
            let share = if pos > 0 && neg > 0 { 0.5 } else { 1.0 };
            (share / same as f64) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn scalar(x: &Tensor) -> f64 {
        x.to_scalar::<f32>().unwrap() as f64
    }

    #[test]
    fn bce_matches_hand_computed_values() {
        // s = (0, 2, -1), y = (1, 0, 1), w = (1, 1, 2), norm 4:
        // 1·ln2 + 1·(ln(1+e²)) + 2·ln(1+e) = 0.693147 + 2.126928 + 2·1.313262
        let l = bce_with_logits(
            &t(&[0.0, 2.0, -1.0]),
            &[1.0, 0.0, 1.0],
            &[1.0, 1.0, 2.0],
            4.0,
        )
        .unwrap();
        let want = (std::f64::consts::LN_2 + 2.126_928 + 2.0 * 1.313_261_7) / 4.0;
        assert!((scalar(&l) - want).abs() < 1e-5, "{} vs {want}", scalar(&l));
    }

    #[test]
    fn softplus_is_finite_for_large_inputs() {
        let s = softplus(&t(&[-100.0, 0.0, 100.0]))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(s[0] >= 0.0 && s[0] < 1e-30);
        assert!((s[1] - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((s[2] - 100.0).abs() < 1e-4);
    }

    #[test]
    fn bce_gradient_is_weighted_sigmoid_minus_label() {
        // d/ds [w (softplus(s) − y s)]/N = w (σ(s) − y)/N
        let s = Var::new(&[0.5f32, -1.5], &Device::Cpu).unwrap();
        let l = bce_with_logits(s.as_tensor(), &[1.0, 0.0], &[2.0, 1.0], 3.0).unwrap();
        let g = l.backward().unwrap();
        let g = g.get(s.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert!((g[0] - 2.0 * (sig(0.5) - 1.0) / 3.0).abs() < 1e-6, "{g:?}");
        assert!((g[1] - (sig(-1.5) - 0.0) / 3.0).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn bradley_terry_by_hand_and_its_gradient() {
        // Δ = c − r = (1, −2): ln(1+e^−1) + ln(1+e²) = 0.313262 + 2.126928, norm 2.
        let c = Var::new(&[1.0f32, 0.0], &Device::Cpu).unwrap();
        let r = Var::new(&[0.0f32, 2.0], &Device::Cpu).unwrap();
        let l = bradley_terry(c.as_tensor(), r.as_tensor(), &[1.0, 1.0], 2.0).unwrap();
        assert!((scalar(&l) - (0.313_261_7 + 2.126_928) / 2.0).abs() < 1e-5);
        // d/dc = −σ(−Δ)/N, d/dr = +σ(−Δ)/N
        let g = l.backward().unwrap();
        let gc = g.get(c.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let gr = g.get(r.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert!((gc[0] + sig(-1.0) / 2.0).abs() < 1e-6 && (gr[1] - sig(2.0) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn balanced_weights_give_each_problem_and_class_its_share() {
        // problem 0: 3 correct, 1 wrong; problem 1: 2 wrong only.
        let w = balanced_weights(
            &[0, 0, 0, 0, 1, 1],
            &[true, true, true, false, false, false],
        );
        let third = 0.5 / 3.0;
        assert_eq!(w, vec![third, third, third, 0.5, 0.5, 0.5]);
        let per0: f32 = w[..4].iter().sum();
        assert!((per0 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        assert!(bce_with_logits(&t(&[0.0]), &[1.0, 0.0], &[1.0], 1.0).is_err());
        assert!(bradley_terry(&t(&[0.0]), &t(&[0.0]), &[1.0, 1.0], 1.0).is_err());
    }
}
