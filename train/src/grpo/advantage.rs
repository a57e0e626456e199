//! Group-relative advantages (TRAINING.md "Advantages"): the group mean is
//! the baseline; the centred rewards are scaled by the group's std (GRPO),
//! by the std of all centred rewards of the batch (Magistral/MiMo batch
//! normalisation), or not at all (Dr. GRPO).

use serde::{Deserialize, Serialize};

/// How centred rewards are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StdScaling {
    /// `(r − mean_g) / (std_g + ε)` (DeepSeekMath GRPO).
    #[default]
    Group,
    /// `(r − mean_g) / (std_B + ε)`, `std_B` over every centred reward of
    /// the batch (Magistral, MiMo).
    Batch,
    /// `r − mean_g` (Dr. GRPO: no difficulty bias).
    None,
}

/// Sample standard deviation (n − 1 in the denominator, as `torch.std`
/// and TRL use); 0 for fewer than two values.
pub fn sample_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// A group whose rewards are all equal (no learning signal).
pub fn zero_variance(rewards: &[f64]) -> bool {
    rewards.windows(2).all(|w| w[0] == w[1])
}

/// Advantages of every rollout, group by group (`rewards[g][i]`).
pub fn advantages(rewards: &[Vec<f64>], scaling: StdScaling, eps: f64) -> Vec<Vec<f64>> {
    let centred: Vec<Vec<f64>> = rewards
        .iter()
        .map(|g| {
            let mean = if g.is_empty() {
                0.0
            } else {
                g.iter().sum::<f64>() / g.len() as f64
            };
            g.iter().map(|r| r - mean).collect()
        })
        .collect();
    match scaling {
        StdScaling::None => centred,
        StdScaling::Group => centred
            .into_iter()
            .zip(rewards)
            .map(|(c, g)| {
                let s = sample_std(g) + eps;
                c.into_iter().map(|a| a / s).collect()
            })
            .collect(),
        StdScaling::Batch => {
            let all: Vec<f64> = centred.iter().flatten().copied().collect();
            let s = sample_std(&all) + eps;
            centred
                .into_iter()
                .map(|c| c.into_iter().map(|a| a / s).collect())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[Vec<f64>], b: &[Vec<f64>]) {
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn group_scaling_by_hand() {
        // group [1, 0, 0, 1]: mean 0.5, sample std sqrt(1/3) = 0.57735
        let a = advantages(&[vec![1.0, 0.0, 0.0, 1.0]], StdScaling::Group, 0.0);
        let s = (1.0f64 / 3.0).sqrt();
        close(&a, &[vec![0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s]]);
    }

    #[test]
    fn none_keeps_the_centred_reward() {
        let a = advantages(
            &[vec![1.0, 0.0, 0.0, 0.0], vec![2.0, 2.0]],
            StdScaling::None,
            0.0,
        );
        close(&a, &[vec![0.75, -0.25, -0.25, -0.25], vec![0.0, 0.0]]);
    }

    #[test]
    fn batch_scaling_uses_one_std_for_all_groups() {
        // centred: [0.5, -0.5], [1, -1]; all = [0.5, -0.5, 1, -1]: mean 0,
        // sample std sqrt((0.25+0.25+1+1)/3) = sqrt(2.5/3)
        let a = advantages(&[vec![1.0, 0.0], vec![3.0, 1.0]], StdScaling::Batch, 0.0);
        let s = (2.5f64 / 3.0).sqrt();
        close(&a, &[vec![0.5 / s, -0.5 / s], vec![1.0 / s, -1.0 / s]]);
    }

    #[test]
    fn equal_rewards_give_zero_advantage_and_are_flagged() {
        let a = advantages(&[vec![1.0, 1.0, 1.0]], StdScaling::Group, 1e-4);
        close(&a, &[vec![0.0, 0.0, 0.0]]);
        assert!(zero_variance(&[1.0, 1.0, 1.0]));
        assert!(!zero_variance(&[1.0, 0.0, 1.0]));
        assert!(zero_variance(&[0.3]));
    }
}
