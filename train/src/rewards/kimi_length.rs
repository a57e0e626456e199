//! Kimi k1.5 length reward: group-relative, favouring the shorter of the
//! group's responses.
//!
//! For the k rollouts of one prompt with lengths len(i) (all completion
//! tokens, reasoning and answer), min_len and max_len over the group:
//!
//! ```text
//! λ(i) = 0.5 − (len(i) − min_len) / (max_len − min_len)
//! len_reward(i) = λ(i)          if correct
//!               = min(0, λ(i))  if wrong
//! ```
//!
//! and 0 for every rollout when max_len = min_len. The term is
//! `w(progress) · len_reward(i)`.
//!
//! The schedule w: Kimi k1.5 reports that the length penalty slows early
//! training, so they *warm it up*: standard policy optimisation without the
//! length penalty first, then a constant length penalty for the rest of
//! training. That is `warmup_shape = "step"` (the default): w = 0 while
//! progress < `warmup`, then `weight`. `"linear"` instead ramps w from 0 to
//! `weight` over the first `warmup` of the run (w = weight · progress /
//! warmup, capped). `warmup = 0` applies the full weight from the start.

use serde::{Deserialize, Serialize};

use super::Rollout;

/// How the weight reaches its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupShape {
    /// Off before `warmup`, then `weight` (Kimi k1.5).
    #[default]
    Step,
    /// Linear from 0 at progress 0 to `weight` at `warmup`.
    Linear,
}

/// `[reward.kimi_length]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KimiLengthConfig {
    pub enabled: bool,
    /// Weight after the warm-up (λ lies in [−0.5, 0.5]; up to 2 keeps every
    /// correct rollout at or above every wrong one with `correct.weight` 1).
    pub weight: f64,
    /// Warm-up length as a fraction of the run's steps, in `[0, 1]`.
    pub warmup: f64,
    pub warmup_shape: WarmupShape,
}

impl Default for KimiLengthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            warmup: 0.0,
            warmup_shape: WarmupShape::Step,
        }
    }
}

/// The weight at `progress` (step / total steps).
pub fn scheduled_weight(cfg: &KimiLengthConfig, progress: f64) -> f64 {
    if cfg.warmup <= 0.0 {
        return cfg.weight;
    }
    match cfg.warmup_shape {
        WarmupShape::Step if progress < cfg.warmup => 0.0,
        WarmupShape::Step => cfg.weight,
        WarmupShape::Linear => cfg.weight * (progress / cfg.warmup).clamp(0.0, 1.0),
    }
}

/// The unweighted `len_reward` of each rollout of one group.
pub fn len_rewards(group: &[Rollout]) -> Vec<f64> {
    let lens = group.iter().map(|r| r.tokens);
    let (Some(min), Some(max)) = (lens.clone().min(), lens.max()) else {
        return Vec::new();
    };
    if max == min {
        return vec![0.0; group.len()];
    }
    let span = (max - min) as f64;
    group
        .iter()
        .map(|r| {
            let lambda = 0.5 - (r.tokens - min) as f64 / span;
            if r.correct {
                lambda
            } else {
                lambda.min(0.0)
            }
        })
        .collect()
}

/// The weighted term of each rollout of one group at `progress`.
pub fn group_rewards(cfg: &KimiLengthConfig, progress: f64, group: &[Rollout]) -> Vec<f64> {
    let w = scheduled_weight(cfg, progress);
    len_rewards(group).into_iter().map(|l| w * l).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{close, rollout};
    use super::*;

    fn r(tokens: usize, correct: bool) -> Rollout<'static> {
        Rollout {
            correct,
            ..rollout("x", tokens)
        }
    }

    #[test]
    fn lambda_over_the_group_with_ties() {
        // min 10, max 50, span 40.
        let g = [
            r(10, true),  // λ = 0.5
            r(20, true),  // λ = 0.25
            r(20, false), // λ = 0.25 → wrong: min(0, 0.25) = 0
            r(40, true),  // λ = −0.25
            r(50, false), // λ = −0.5
            r(10, false), // λ = 0.5 → 0
        ];
        let got = len_rewards(&g);
        let want = [0.5, 0.25, 0.0, -0.25, -0.5, 0.0];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            close(*g, w);
        }
    }

    #[test]
    fn equal_lengths_give_zero_and_an_empty_group_nothing() {
        assert_eq!(len_rewards(&[r(7, true), r(7, false)]), vec![0.0, 0.0]);
        assert!(len_rewards(&[]).is_empty());
        assert_eq!(len_rewards(&[r(7, true)]), vec![0.0]);
    }

    #[test]
    fn step_and_linear_warmups() {
        let mut cfg = KimiLengthConfig {
            enabled: true,
            weight: 0.8,
            warmup: 0.5,
            warmup_shape: WarmupShape::Step,
        };
        assert_eq!(scheduled_weight(&cfg, 0.0), 0.0);
        assert_eq!(scheduled_weight(&cfg, 0.49), 0.0);
        assert_eq!(scheduled_weight(&cfg, 0.5), 0.8);
        assert_eq!(scheduled_weight(&cfg, 1.0), 0.8);
        cfg.warmup_shape = WarmupShape::Linear;
        assert_eq!(scheduled_weight(&cfg, 0.0), 0.0);
        close(scheduled_weight(&cfg, 0.25), 0.4);
        assert_eq!(scheduled_weight(&cfg, 0.75), 0.8);
        cfg.warmup = 0.0;
        assert_eq!(scheduled_weight(&cfg, 0.0), 0.8);
        // Weighted: 0.4 · [0.5, −0.5].
        cfg.warmup = 0.5;
        let g = group_rewards(&cfg, 0.25, &[r(10, true), r(30, false)]);
        assert_eq!(g.len(), 2);
        close(g[0], 0.2);
        close(g[1], -0.2);
    }
}
