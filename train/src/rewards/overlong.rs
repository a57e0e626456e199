//! DAPO soft overlong punishment and overlong filtering.
//!
//! With L_max = `max_completion_tokens`, L_c = `buffer` and |o| the
//! completion's tokens:
//!
//! ```text
//! penalty = 0                          if |o| ≤ L_max − L_c
//!         = ((L_max − L_c) − |o|) / L_c if L_max − L_c < |o| ≤ L_max
//!         = −1                         if |o| > L_max
//! ```
//!
//! and the term is `weight · penalty` (in `[−weight, 0]`). Overlong
//! filtering (`mask_truncated`, independent of `enabled`) instead marks
//! truncated completions [`super::Reward::masked`] so the loop leaves them
//! out of the loss.

use serde::{Deserialize, Serialize};

use super::{RewardContext, Rollout};

/// `[reward.overlong]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverlongConfig {
    /// The soft punishment.
    pub enabled: bool,
    pub weight: f64,
    /// L_c: tokens before the limit where the punishment ramps from 0 to −1;
    /// must be in `1..max_completion_tokens`.
    pub buffer: usize,
    /// Overlong filtering: truncated completions are masked out of the loss.
    pub mask_truncated: bool,
}

impl Default for OverlongConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            buffer: 256,
            mask_truncated: false,
        }
    }
}

/// The unweighted DAPO penalty of `tokens` under limit `max` and buffer `buffer`.
pub fn penalty(tokens: usize, max: usize, buffer: usize) -> f64 {
    let start = max.saturating_sub(buffer);
    if tokens <= start {
        0.0
    } else if tokens <= max {
        (start as f64 - tokens as f64) / buffer.max(1) as f64
    } else {
        -1.0
    }
}

/// `weight · penalty`; 0 when off.
pub fn reward(cfg: &OverlongConfig, ctx: &RewardContext, r: &Rollout) -> f64 {
    if !cfg.enabled {
        return 0.0;
    }
    cfg.weight * penalty(r.tokens, ctx.max_completion_tokens, cfg.buffer)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::rollout;
    use super::*;

    #[test]
    fn penalty_is_zero_then_linear_then_minus_one() {
        // L_max 100, L_c 20: free up to 80.
        assert_eq!(penalty(0, 100, 20), 0.0);
        assert_eq!(penalty(80, 100, 20), 0.0);
        assert_eq!(penalty(81, 100, 20), -0.05);
        assert_eq!(penalty(90, 100, 20), -0.5);
        assert_eq!(penalty(100, 100, 20), -1.0);
        assert_eq!(penalty(101, 100, 20), -1.0);
    }

    #[test]
    fn the_term_is_weighted_and_off_by_default() {
        let ctx = RewardContext {
            max_completion_tokens: 100,
            progress: 0.0,
        };
        let r = rollout("x", 95);
        assert_eq!(reward(&OverlongConfig::default(), &ctx, &r), 0.0);
        let cfg = OverlongConfig {
            enabled: true,
            weight: 2.0,
            buffer: 20,
            mask_truncated: false,
        };
        assert_eq!(reward(&cfg, &ctx, &r), 2.0 * -0.75);
    }
}
