//! Format reward: a bonus for a well-formed completion, optionally a
//! penalty for a malformed one.
//!
//! The exact rule — a completion is **well-formed** when all of:
//! 1. it was not truncated (it ended on its own);
//! 2. think on (the prompt opened the block): the text holds exactly one
//!    `</think>` and no `<think>`; think off: it holds neither tag;
//! 3. the answer part (after `</think>` with think on, the whole text with
//!    think off) holds exactly one `\boxed`, written `\boxed{…}` with its
//!    matching closing brace (escaped `\{` / `\}` do not count) and
//!    something other than whitespace inside.
//!
//! Reward: `weight` when well-formed, `−penalty` otherwise.

use serde::{Deserialize, Serialize};

use super::{Rollout, THINK_END, THINK_START};

/// `[reward.format]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatConfig {
    pub enabled: bool,
    /// Bonus of a well-formed completion.
    pub weight: f64,
    /// Subtracted from a malformed one (0: malformed gets nothing).
    pub penalty: f64,
}

impl Default for FormatConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.1,
            penalty: 0.0,
        }
    }
}

/// `weight` if [`well_formed`], else `−penalty`; 0 when off.
pub fn reward(cfg: &FormatConfig, r: &Rollout) -> f64 {
    if !cfg.enabled {
        return 0.0;
    }
    if well_formed(r) {
        cfg.weight
    } else {
        -cfg.penalty
    }
}

/// The rule of the module docs.
pub fn well_formed(r: &Rollout) -> bool {
    if r.truncated || r.text.contains(THINK_START) {
        return false;
    }
    let ends = r.text.matches(THINK_END).count();
    if ends != usize::from(r.thinking) {
        return false;
    }
    r.answer().is_some_and(one_boxed_answer)
}

/// Exactly one `\boxed`, as `\boxed{non-blank}` with its closing brace.
fn one_boxed_answer(answer: &str) -> bool {
    const BOXED: &str = "\\boxed";
    let mut found = answer.match_indices(BOXED);
    let (Some((pos, _)), None) = (found.next(), found.next()) else {
        return false;
    };
    let open = pos + BOXED.len();
    if !answer[open..].starts_with('{') {
        return false;
    }
    closing_brace(answer, open).is_some_and(|close| !answer[open + 1..close].trim().is_empty())
}

/// Byte offset of the `}` matching the `{` at `open` (escaped braces skipped).
fn closing_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in s[open..].char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_util::rollout;
    use super::*;

    fn on() -> FormatConfig {
        FormatConfig {
            enabled: true,
            weight: 0.5,
            penalty: 0.25,
        }
    }

    #[test]
    fn well_formed_think_on_gets_the_bonus() {
        let r = rollout("Add.\n</think>\n\nSo \\boxed{\\frac{1}{2}}.", 9);
        assert!(well_formed(&r));
        assert_eq!(reward(&on(), &r), 0.5);
        assert_eq!(reward(&FormatConfig::default(), &r), 0.0, "off");
    }

    #[test]
    fn each_broken_rule_is_malformed() {
        let bad = [
            "never closed \\boxed{4}",               // no </think>
            "a</think>b</think>\\boxed{4}",          // two end tags
            "<think>a</think>\\boxed{4}",            // a second opening
            "a</think>no box",                       // no box
            "a</think>\\boxed{4} or \\boxed{5}",     // two boxes
            "a</think>\\boxed{4",                    // unclosed
            "a</think>\\boxed{ }",                   // blank
            "a</think>\\boxed 4",                    // no braces
            "a</think>\\boxed{\\}",                  // escaped brace does not close
            "\\boxed{4} in the reasoning</think>ok", // box before the tag only
        ];
        for text in bad {
            let r = rollout(text, 9);
            assert!(!well_formed(&r), "{text:?}");
            assert_eq!(reward(&on(), &r), -0.25, "{text:?}");
        }
        let truncated = Rollout {
            truncated: true,
            ..rollout("a</think>\\boxed{4}", 9)
        };
        assert!(!well_formed(&truncated));
    }

    #[test]
    fn think_off_wants_no_tags() {
        let off = |text| Rollout {
            thinking: false,
            ..rollout(text, 3)
        };
        assert!(well_formed(&off("It is \\boxed{4}.")));
        assert!(!well_formed(&off("x</think>\\boxed{4}")));
    }
}
