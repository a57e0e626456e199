//! GRPO reward terms: the verifier's verdict plus optional weighted shaping
//! terms, each a switch of the `[reward]` table ([`RewardConfig`]).
//!
//! Every term is a pure function in its own module, tested against
//! hand-computed values. [`score_group`] scores one group (the G rollouts of
//! one prompt), since the Kimi length reward is relative to the group.
//!
//! How the terms combine: every field of [`Reward`] is a *weighted*
//! contribution and `total` is their sum,
//!
//! ```text
//! total = correct + format + overlong + length + kimi_length + language + length_control
//! ```
//!
//! with one exception to plain addition: L1 length control
//! ([`length_control`]) *replaces* the `correct` term on rollouts whose
//! prompt states a target (`Rollout::target_thinking_tokens` is `Some`):
//! there `correct` is 0 and `length_control` holds the whole LCPO reward,
//! its correctness part included (LCPO-Exact `c − α·|n_gold − n_used|`,
//! LCPO-Max `c · clip(α·(n_gold − n_used) + δ, 0, 1)`). Rollouts without a
//! target get the usual `correct` term and `length_control` = 0.
//!
//! Overlong filtering does not change the numbers: it sets
//! [`Reward::masked`], and the loop leaves masked rollouts out of the loss.
//! Masked rollouts are still scored (and count in the Kimi group's
//! min/max lengths).

mod config;
pub mod correct;
pub mod format;
pub mod kimi_length;
pub mod language;
pub mod length_control;
pub mod length_penalty;
pub mod overlong;

pub use config::RewardConfig;
pub use correct::CorrectConfig;
pub use format::FormatConfig;
pub use kimi_length::{KimiLengthConfig, WarmupShape};
pub use language::LanguageConfig;
pub use length_control::{sample_target, LcpoCount, LcpoMode, LengthControlConfig};
pub use length_penalty::{LengthPenaltyConfig, LengthUnit};
pub use overlong::OverlongConfig;

use serde::{Deserialize, Serialize};

/// The tag that closes the think block (the prompt opened it).
pub const THINK_END: &str = "</think>";
/// The tag that opens a think block.
pub const THINK_START: &str = "<think>";

/// One rollout as the reward sees it.
#[derive(Debug, Clone, Copy)]
pub struct Rollout<'a> {
    /// The completion text; with think on it starts inside the think block
    /// (the prompt ended with `"<think>\n"`), so it holds
    /// `"reasoning</think>answer"`.
    pub text: &'a str,
    /// The user's prompt text (for language consistency).
    pub prompt: &'a str,
    /// Think mode was on for this prompt.
    pub thinking: bool,
    /// Completion tokens (all of them).
    pub tokens: usize,
    /// Tokens before `</think>`.
    pub reasoning_tokens: usize,
    /// Stopped by the length limit.
    pub truncated: bool,
    /// The scoring verifier's verdict.
    pub correct: bool,
    /// The L1 target stated in the prompt, when length control is on.
    pub target_thinking_tokens: Option<usize>,
}

impl<'a> Rollout<'a> {
    /// The reasoning part: with think on, the text before the first
    /// `</think>` (all of it when the block never closed); `None` with think
    /// off.
    pub fn reasoning(&self) -> Option<&'a str> {
        if !self.thinking {
            return None;
        }
        Some(match self.text.find(THINK_END) {
            Some(i) => &self.text[..i],
            None => self.text,
        })
    }

    /// The answer part: with think on, the text after the first `</think>`
    /// (`None` when the block never closed); with think off, the whole text.
    pub fn answer(&self) -> Option<&'a str> {
        if !self.thinking {
            return Some(self.text);
        }
        self.text
            .find(THINK_END)
            .map(|i| &self.text[i + THINK_END.len()..])
    }
}

/// Where the run is, for scheduled terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardContext {
    /// The rollout length limit (L_max of the overlong punishment).
    pub max_completion_tokens: usize,
    /// Step / total steps, in `0..=1`.
    pub progress: f64,
}

/// The reward of one rollout: each field is that term's weighted
/// contribution (0 when the term is off); `total` is their sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reward {
    pub total: f64,
    /// `correct.weight` × verdict (0 where length control replaces it).
    pub correct: f64,
    pub format: f64,
    /// DAPO soft overlong punishment (≤ 0).
    pub overlong: f64,
    /// Constant per-token length penalty (≤ 0).
    pub length: f64,
    /// Kimi k1.5 group-relative length reward, scheduled.
    pub kimi_length: f64,
    /// Language consistency of the reasoning.
    pub language: f64,
    /// L1 (LCPO) reward, correctness included.
    pub length_control: f64,
    /// Excluded from the loss (overlong filtering).
    pub masked: bool,
}

/// Rewards of one group (some terms are group-relative, e.g. Kimi's length
/// reward), in the order of `group`.
pub fn score_group(cfg: &RewardConfig, ctx: &RewardContext, group: &[Rollout]) -> Vec<Reward> {
    let kimi = if cfg.kimi_length.enabled {
        kimi_length::group_rewards(&cfg.kimi_length, ctx.progress, group)
    } else {
        vec![0.0; group.len()]
    };
    group
        .iter()
        .zip(kimi)
        .map(|(r, kimi_length)| {
            let lcpo = length_control::reward(&cfg.length_control, r);
            let mut out = Reward {
                correct: if lcpo.is_some() {
                    0.0
                } else {
                    correct::reward(&cfg.correct, r)
                },
                format: format::reward(&cfg.format, r),
                overlong: overlong::reward(&cfg.overlong, ctx, r),
                length: length_penalty::reward(&cfg.length_penalty, ctx, r),
                kimi_length,
                language: language::reward(&cfg.language, r),
                length_control: lcpo.unwrap_or(0.0),
                masked: cfg.overlong.mask_truncated && r.truncated,
                total: 0.0,
            };
            out.total = out.correct
                + out.format
                + out.overlong
                + out.length
                + out.kimi_length
                + out.language
                + out.length_control;
            out
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::Rollout;

    /// `a == b` up to rounding.
    #[track_caller]
    pub fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// A think-on rollout of `tokens` tokens, correct, not truncated.
    pub fn rollout(text: &str, tokens: usize) -> Rollout<'_> {
        Rollout {
            text,
            prompt: "What is 2+2?",
            thinking: true,
            tokens,
            reasoning_tokens: tokens,
            truncated: false,
            correct: true,
            target_thinking_tokens: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::rollout;
    use super::*;
    use crate::config::parse_with_overrides;

    fn ctx() -> RewardContext {
        RewardContext {
            max_completion_tokens: 100,
            progress: 1.0,
        }
    }

    #[test]
    fn parts_split_at_the_first_end_tag() {
        let r = rollout("a</think>b</think>c", 5);
        assert_eq!((r.reasoning(), r.answer()), (Some("a"), Some("b</think>c")));
        let open = rollout("still thinking", 5);
        assert_eq!(
            (open.reasoning(), open.answer()),
            (Some("still thinking"), None)
        );
        let off = Rollout {
            thinking: false,
            ..rollout("x</think>y", 5)
        };
        assert_eq!((off.reasoning(), off.answer()), (None, Some("x</think>y")));
    }

    #[test]
    fn defaults_score_only_the_verdict() {
        let cfg = RewardConfig::default();
        let right = rollout("r</think>\\boxed{4}", 10);
        let wrong = Rollout {
            correct: false,
            truncated: true,
            ..right
        };
        let out = score_group(&cfg, &ctx(), &[right, wrong]);
        assert_eq!(
            out[0],
            Reward {
                total: 1.0,
                correct: 1.0,
                ..Reward::default()
            }
        );
        assert_eq!(out[1], Reward::default(), "no masking unless asked");
    }

    /// Every term on, one group of three, each value computed by hand.
    #[test]
    fn all_terms_combine_by_addition_and_lcpo_replaces_correct() {
        let toml = r#"
[correct]
weight = 1.0
[format]
enabled = true
weight = 0.2
penalty = 0.1
[overlong]
enabled = true
buffer = 20
weight = 1.0
mask_truncated = true
[length_penalty]
enabled = true
weight = 0.1
[kimi_length]
enabled = true
weight = 0.5
warmup = 0.5
warmup_shape = "linear"
[language]
enabled = true
weight = 0.1
"#;
        let (cfg, _): (RewardConfig, _) = parse_with_overrides(toml, "t.toml", &[]).unwrap();
        cfg.validate(100).unwrap();
        let ctx = RewardContext {
            max_completion_tokens: 100,
            progress: 0.25, // Kimi weight 0.5 · 0.25/0.5 = 0.25
        };
        // a: 40 tokens, well-formed, correct, all Latin.
        let a = rollout("Add them.</think>\\boxed{4}", 40);
        // b: 90 tokens, truncated inside the think block, wrong.
        let b = Rollout {
            correct: false,
            truncated: true,
            ..rollout("Hmm 嗯嗯嗯", 90)
        };
        // c: 60 tokens, correct, two boxes (malformed).
        let c = rollout("ok</think>\\boxed{4} \\boxed{4}", 60);
        let out = score_group(&cfg, &ctx, &[a, b, c]);
        // Kimi: min 40, max 90. λa = 0.5, λb = 0.5 − 1 = −0.5, λc = 0.5 − 0.4 = 0.1.
        // a: correct 1, format 0.2, overlong 0 (40 ≤ 80), length −0.1·0.4,
        //    kimi 0.25·0.5, language 0.1·1.
        let ea = Reward {
            correct: 1.0,
            format: 0.2,
            overlong: 0.0,
            length: -0.04,
            kimi_length: 0.125,
            language: 0.1,
            length_control: 0.0,
            masked: false,
            total: 1.0 + 0.2 - 0.04 + 0.125 + 0.1,
        };
        // b: correct 0, format −0.1, overlong (80 − 90)/20 = −0.5, length −0.09,
        //    kimi 0.25·min(0, −0.5), language 0.1 · 3/6 ("Hmm" Latin vs 3 Han), masked.
        let eb = Reward {
            correct: 0.0,
            format: -0.1,
            overlong: -0.5,
            length: -0.09,
            kimi_length: -0.125,
            language: 0.05,
            length_control: 0.0,
            masked: true,
            total: -0.1 - 0.5 - 0.09 - 0.125 + 0.05,
        };
        // c: correct 1, format −0.1, overlong 0, length −0.06, kimi 0.25·0.1, language 0.1.
        let ec = Reward {
            correct: 1.0,
            format: -0.1,
            overlong: 0.0,
            length: -0.06,
            kimi_length: 0.025,
            language: 0.1,
            length_control: 0.0,
            masked: false,
            total: 1.0 - 0.1 - 0.06 + 0.025 + 0.1,
        };
        for (got, want) in out.iter().zip([&ea, &eb, &ec]) {
            assert_close(got, want);
        }

        // LCPO-Exact on: the prompt's target replaces the correct term.
        let (cfg, _): (RewardConfig, _) = parse_with_overrides(
            toml,
            "t.toml",
            &[
                "length_control.enabled=true".into(),
                "length_control.alpha=0.01".into(),
            ],
        )
        .unwrap();
        let a = Rollout {
            target_thinking_tokens: Some(30),
            reasoning_tokens: 35,
            ..a
        };
        let out = score_group(&cfg, &ctx, &[a, b, c]);
        // a: LCPO = 1 − 0.01·|30 − 35| = 0.95 instead of correct 1.
        let ea = Reward {
            correct: 0.0,
            length_control: 0.95,
            total: 0.95 + 0.2 - 0.04 + 0.125 + 0.1,
            ..ea
        };
        assert_close(&out[0], &ea);
        // b, c have no target: unchanged.
        assert_close(&out[2], &ec);
    }

    fn assert_close(got: &Reward, want: &Reward) {
        let g = [
            got.total,
            got.correct,
            got.format,
            got.overlong,
            got.length,
            got.kimi_length,
            got.language,
            got.length_control,
        ];
        let w = [
            want.total,
            want.correct,
            want.format,
            want.overlong,
            want.length,
            want.kimi_length,
            want.language,
            want.length_control,
        ];
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            assert!((g - w).abs() < 1e-12, "field {i}: {got:?} vs {want:?}");
        }
        assert_eq!(got.masked, want.masked, "{got:?}");
    }
}
