//! L1 length control (LCPO, Aggarwal & Welleck 2025): the prompt states a
//! target thinking length n_gold ("Think for about N tokens.", written by
//! the root crate's `engine::think::target`) and the reward ties the
//! rollout's length to it.
//!
//! With c = 1 if correct else 0 and n_used the rollout's reasoning tokens
//! (`count = "reasoning"`, the default, what a thinking budget counts) or
//! all completion tokens (`count = "all"`, as in the paper):
//!
//! ```text
//! mode = "exact": r = c − α · |n_gold − n_used|                 (LCPO-Exact)
//! mode = "max":   r = c · clip(α · (n_gold − n_used) + δ, 0, 1)  (LCPO-Max, "at most n_gold")
//! length_control = weight · r
//! ```
//!
//! This term *replaces* the `correct` term on rollouts with a target (see
//! [`super`]); rollouts without one get the plain `correct` term. The paper
//! uses α = 0.0003 for Exact and α = 0.01, δ = 0.5 for Max, with n_gold
//! drawn uniformly from [100, 4000]: [`sample_target`] draws it per prompt
//! from `[min_tokens, max_tokens]`.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{RewardConfig, Rollout};

/// LCPO variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LcpoMode {
    /// Hit the target: penalise the distance either way.
    #[default]
    Exact,
    /// Stay under the target: a soft cap, full reward up to δ/α under.
    Max,
}

/// What n_used counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LcpoCount {
    /// Tokens before `</think>` (the thinking length the prompt states).
    #[default]
    Reasoning,
    /// Every completion token.
    All,
}

/// `[reward.length_control]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthControlConfig {
    pub enabled: bool,
    /// Scales the whole LCPO reward (correctness included).
    pub weight: f64,
    pub mode: LcpoMode,
    /// α: reward per token of distance (Exact) or slope of the cap (Max).
    pub alpha: f64,
    /// δ of LCPO-Max (unused by Exact).
    pub delta: f64,
    pub count: LcpoCount,
    /// Smallest target the loop samples (tokens).
    pub min_tokens: usize,
    /// Largest target the loop samples; must be < `max_completion_tokens`.
    pub max_tokens: usize,
}

impl Default for LengthControlConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            mode: LcpoMode::Exact,
            alpha: 0.0003,
            delta: 0.5,
            count: LcpoCount::Reasoning,
            min_tokens: 100,
            max_tokens: 4000,
        }
    }
}

/// The unweighted LCPO reward for verdict `correct`, target `gold` and
/// `used` tokens.
pub fn lcpo(
    mode: LcpoMode,
    alpha: f64,
    delta: f64,
    correct: bool,
    gold: usize,
    used: usize,
) -> f64 {
    let c = if correct { 1.0 } else { 0.0 };
    let diff = gold as f64 - used as f64;
    match mode {
        LcpoMode::Exact => c - alpha * diff.abs(),
        LcpoMode::Max => c * (alpha * diff + delta).clamp(0.0, 1.0),
    }
}

/// `weight · r` for a rollout with a target; `None` when the term is off
/// or the prompt stated no target (the `correct` term applies then).
pub fn reward(cfg: &LengthControlConfig, r: &Rollout) -> Option<f64> {
    if !cfg.enabled {
        return None;
    }
    let gold = r.target_thinking_tokens?;
    let used = match cfg.count {
        LcpoCount::Reasoning => r.reasoning_tokens,
        LcpoCount::All => r.tokens,
    };
    Some(cfg.weight * lcpo(cfg.mode, cfg.alpha, cfg.delta, r.correct, gold, used))
}

/// A target n_gold for one prompt, uniform over
/// `[length_control.min_tokens, length_control.max_tokens]`.
pub fn sample_target(cfg: &RewardConfig, rng: &mut impl Rng) -> usize {
    let (lo, hi) = (cfg.length_control.min_tokens, cfg.length_control.max_tokens);
    if hi <= lo {
        return lo;
    }
    rng.random_range(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{close, rollout};
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn exact_penalises_distance_both_ways() {
        // α = 0.001: 200 tokens off costs 0.2.
        close(lcpo(LcpoMode::Exact, 0.001, 0.5, true, 500, 700), 0.8);
        close(lcpo(LcpoMode::Exact, 0.001, 0.5, true, 500, 300), 0.8);
        close(lcpo(LcpoMode::Exact, 0.001, 0.5, false, 500, 300), -0.2);
        close(lcpo(LcpoMode::Exact, 0.001, 0.5, true, 500, 500), 1.0);
    }

    #[test]
    fn max_is_a_soft_cap_zero_when_wrong() {
        // α = 0.01, δ = 0.5: full reward ≥ 50 under, 0.5 at the target, 0 at 50 over.
        close(lcpo(LcpoMode::Max, 0.01, 0.5, true, 100, 40), 1.0);
        close(lcpo(LcpoMode::Max, 0.01, 0.5, true, 100, 80), 0.7);
        close(lcpo(LcpoMode::Max, 0.01, 0.5, true, 100, 100), 0.5);
        close(lcpo(LcpoMode::Max, 0.01, 0.5, true, 100, 130), 0.2);
        close(lcpo(LcpoMode::Max, 0.01, 0.5, true, 100, 200), 0.0);
        close(lcpo(LcpoMode::Max, 0.01, 0.5, false, 100, 40), 0.0);
    }

    #[test]
    fn the_term_needs_a_target_and_counts_reasoning_by_default() {
        let mut cfg = LengthControlConfig {
            enabled: true,
            weight: 2.0,
            alpha: 0.01,
            ..Default::default()
        };
        let r = Rollout {
            tokens: 50,
            reasoning_tokens: 30,
            target_thinking_tokens: Some(40),
            ..rollout("x", 50)
        };
        close(reward(&cfg, &r).unwrap(), 2.0 * (1.0 - 0.1)); // |40 − 30|
        cfg.count = LcpoCount::All;
        close(reward(&cfg, &r).unwrap(), 2.0 * (1.0 - 0.1)); // |40 − 50|
        cfg.count = LcpoCount::Reasoning;
        cfg.mode = LcpoMode::Max;
        close(reward(&cfg, &r).unwrap(), 2.0 * 0.6); // 0.01·10 + 0.5
        let untargeted = Rollout {
            target_thinking_tokens: None,
            ..r
        };
        assert_eq!(reward(&cfg, &untargeted), None);
        assert_eq!(reward(&LengthControlConfig::default(), &r), None);
    }

    #[test]
    fn targets_are_drawn_from_the_inclusive_range() {
        let mut cfg = RewardConfig::default();
        cfg.length_control.min_tokens = 10;
        cfg.length_control.max_tokens = 12;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut seen = [false; 3];
        for _ in 0..200 {
            let t = sample_target(&cfg, &mut rng);
            assert!((10..=12).contains(&t), "{t}");
            seen[t - 10] = true;
        }
        assert_eq!(seen, [true; 3], "both ends reachable");
        cfg.length_control.max_tokens = 10;
        assert_eq!(sample_target(&cfg, &mut rng), 10);
    }
}
