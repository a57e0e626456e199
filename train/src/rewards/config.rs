//! `[reward]`: the verifier term and the shaping switches, every one off by
//! default except `correct` (weight 1).

use serde::{Deserialize, Serialize};

use super::{
    CorrectConfig, FormatConfig, KimiLengthConfig, LanguageConfig, LengthControlConfig,
    LengthPenaltyConfig, OverlongConfig,
};
use crate::{Result, TrainError};

/// The `[reward]` table of the GRPO config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// `[reward.correct]`: the verifier's verdict (1 correct / 0 otherwise) × weight.
    pub correct: CorrectConfig,
    /// `[reward.format]`: bonus for a closed think block and one `\boxed{}`.
    pub format: FormatConfig,
    /// `[reward.overlong]`: DAPO soft overlong punishment and overlong filtering.
    pub overlong: OverlongConfig,
    /// `[reward.length_penalty]`: a small constant cost per token.
    pub length_penalty: LengthPenaltyConfig,
    /// `[reward.kimi_length]`: Kimi k1.5 group-relative length reward, warmed up.
    pub kimi_length: KimiLengthConfig,
    /// `[reward.language]`: share of the reasoning in the prompt's script.
    pub language: LanguageConfig,
    /// `[reward.length_control]`: L1 (LCPO) reward against the prompt's target length.
    pub length_control: LengthControlConfig,
}

impl RewardConfig {
    /// Range checks serde cannot express, naming the key (`reward.…`);
    /// `max_completion_tokens` is the rollout length limit of the run.
    pub fn validate(&self, max_completion_tokens: usize) -> Result<()> {
        let bad = |k: &str, m: &str| Err(TrainError::config(format!("reward.{k}"), m));
        let weights = [
            ("correct.weight", self.correct.weight),
            ("format.weight", self.format.weight),
            ("format.penalty", self.format.penalty),
            ("overlong.weight", self.overlong.weight),
            ("length_penalty.weight", self.length_penalty.weight),
            ("kimi_length.weight", self.kimi_length.weight),
            ("language.weight", self.language.weight),
            ("length_control.weight", self.length_control.weight),
        ];
        for (key, w) in weights {
            if !(w.is_finite() && w >= 0.0) {
                return bad(
                    key,
                    "must be a finite number >= 0 (penalties are subtracted by their term)",
                );
            }
        }
        let o = &self.overlong;
        if o.enabled {
            if o.buffer == 0 {
                return bad("overlong.buffer", "must be at least 1");
            }
            if o.buffer >= max_completion_tokens {
                return bad("overlong.buffer", "must be < max_completion_tokens");
            }
        }
        let k = &self.kimi_length;
        if !(0.0..=1.0).contains(&k.warmup) {
            return bad(
                "kimi_length.warmup",
                "must be in [0, 1] (a fraction of the run)",
            );
        }
        let l = &self.length_control;
        if !(l.alpha.is_finite() && l.alpha > 0.0) {
            return bad("length_control.alpha", "must be a finite number > 0");
        }
        if !l.delta.is_finite() {
            return bad("length_control.delta", "must be a finite number");
        }
        if l.enabled {
            if l.min_tokens == 0 {
                return bad("length_control.min_tokens", "must be at least 1");
            }
            if l.min_tokens > l.max_tokens {
                return bad(
                    "length_control.min_tokens",
                    "must be <= length_control.max_tokens",
                );
            }
            if l.max_tokens >= max_completion_tokens {
                return bad(
                    "length_control.max_tokens",
                    "must be < max_completion_tokens (the answer needs room after the thinking)",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LcpoMode, WarmupShape};
    use super::*;
    use crate::config::parse_with_overrides;

    fn parse(text: &str, overrides: &[&str]) -> Result<RewardConfig> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        parse_with_overrides(text, "t.toml", &o).map(|(c, _)| c)
    }

    #[test]
    fn an_empty_table_is_the_verdict_alone() {
        let c = parse("", &[]).unwrap();
        c.validate(512).unwrap();
        assert_eq!(c, RewardConfig::default());
        assert_eq!(c.correct.weight, 1.0);
        assert!(!c.format.enabled && !c.overlong.enabled && !c.overlong.mask_truncated);
        assert!(!c.length_penalty.enabled && !c.kimi_length.enabled);
        assert!(!c.language.enabled && !c.length_control.enabled);
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            r#"
[correct]
weight = 2.0
[format]
enabled = true
weight = 0.2
penalty = 0.5
[overlong]
enabled = true
weight = 1.0
buffer = 64
mask_truncated = true
[length_penalty]
enabled = true
weight = 0.01
unit = "token"
[kimi_length]
enabled = true
weight = 0.5
warmup = 0.3
warmup_shape = "linear"
[language]
enabled = true
weight = 0.1
[length_control]
enabled = true
weight = 1.0
mode = "max"
alpha = 0.01
delta = 0.5
count = "all"
min_tokens = 16
max_tokens = 256
"#,
            &[],
        )
        .unwrap();
        c.validate(512).unwrap();
        assert_eq!(c.correct.weight, 2.0);
        assert_eq!(c.overlong.buffer, 64);
        assert_eq!(c.kimi_length.warmup_shape, WarmupShape::Linear);
        assert_eq!(c.length_control.mode, LcpoMode::Max);
        assert_eq!(c.length_control.max_tokens, 256);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[overlong]\nbufer = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bufer"), "{e}");
        let e = parse("[kimi_length]\nwarmup_shape = \"cosine\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("kimi_length.warmup_shape"), "{e}");
        let cases: [(&[&str], &str); 7] = [
            (
                &["overlong.enabled=true", "overlong.buffer=512"],
                "overlong.buffer",
            ),
            (
                &["overlong.enabled=true", "overlong.buffer=0"],
                "overlong.buffer",
            ),
            (&["format.weight=-1"], "format.weight"),
            (&["kimi_length.warmup=1.5"], "kimi_length.warmup"),
            (
                &["length_control.enabled=true"],
                "length_control.max_tokens",
            ),
            (
                &[
                    "length_control.enabled=true",
                    "length_control.min_tokens=300",
                    "length_control.max_tokens=200",
                ],
                "length_control.min_tokens",
            ),
            (&["length_control.alpha=0"], "length_control.alpha"),
        ];
        for (overrides, key) in cases {
            let c = parse("", overrides).unwrap();
            let e = c.validate(512).unwrap_err().to_string();
            assert!(e.contains(&format!("`reward.{key}`")), "{overrides:?}: {e}");
        }
        // A buffer as long as the limit is fine while the term is off.
        parse("", &["overlong.buffer=512"])
            .unwrap()
            .validate(512)
            .unwrap();
    }
}
