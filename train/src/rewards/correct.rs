//! The verifier's verdict: `weight` if correct, else 0.

use serde::{Deserialize, Serialize};

use super::Rollout;

/// `[reward.correct]`: the verifier term (always on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrectConfig {
    /// Reward of a correct answer (a wrong one gets 0).
    pub weight: f64,
}

impl Default for CorrectConfig {
    fn default() -> Self {
        Self { weight: 1.0 }
    }
}

/// `weight · [correct]`.
pub fn reward(cfg: &CorrectConfig, r: &Rollout) -> f64 {
    if r.correct {
        cfg.weight
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::rollout;
    use super::*;

    #[test]
    fn correct_gets_the_weight_wrong_gets_zero() {
        let cfg = CorrectConfig { weight: 2.5 };
        assert_eq!(reward(&cfg, &rollout("x", 1)), 2.5);
        let wrong = Rollout {
            correct: false,
            ..rollout("x", 1)
        };
        assert_eq!(reward(&cfg, &wrong), 0.0);
        assert_eq!(reward(&CorrectConfig::default(), &rollout("x", 1)), 1.0);
    }
}
