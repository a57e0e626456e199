//! A small constant length penalty (INTELLECT-2 style): every completion
//! token costs the same.
//!
//! ```text
//! unit = "fraction" (default): length = −weight · tokens / max_completion_tokens   (in [−weight, 0])
//! unit = "token":              length = −weight · tokens
//! ```
//!
//! `tokens` counts the whole completion (reasoning and answer).

use serde::{Deserialize, Serialize};

use super::{RewardContext, Rollout};

/// What one unit of `weight` is charged per.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Per fraction of `max_completion_tokens` (a full-length completion costs `weight`).
    #[default]
    Fraction,
    /// Per token.
    Token,
}

/// `[reward.length_penalty]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthPenaltyConfig {
    pub enabled: bool,
    /// The cost of a full-length completion (`fraction`) or of one token (`token`).
    pub weight: f64,
    pub unit: LengthUnit,
}

impl Default for LengthPenaltyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.1,
            unit: LengthUnit::Fraction,
        }
    }
}

/// The penalty (≤ 0); 0 when off.
pub fn reward(cfg: &LengthPenaltyConfig, ctx: &RewardContext, r: &Rollout) -> f64 {
    if !cfg.enabled {
        return 0.0;
    }
    let n = r.tokens as f64;
    match cfg.unit {
        LengthUnit::Fraction => -cfg.weight * n / ctx.max_completion_tokens.max(1) as f64,
        LengthUnit::Token => -cfg.weight * n,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{close, rollout};
    use super::*;

    #[test]
    fn fraction_and_per_token_units() {
        let ctx = RewardContext {
            max_completion_tokens: 200,
            progress: 0.0,
        };
        let r = rollout("x", 50);
        let mut cfg = LengthPenaltyConfig {
            enabled: true,
            weight: 0.2,
            unit: LengthUnit::Fraction,
        };
        close(reward(&cfg, &ctx, &r), -0.05); // 0.2 · 50/200
        cfg.unit = LengthUnit::Token;
        cfg.weight = 0.001;
        close(reward(&cfg, &ctx, &r), -0.05); // 0.001 · 50
        assert_eq!(reward(&LengthPenaltyConfig::default(), &ctx, &r), 0.0);
    }
}
