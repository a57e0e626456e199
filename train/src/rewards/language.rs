//! Language consistency (DeepSeek-R1): the share of the reasoning written
//! in the prompt's script.
//!
//! Letters are the characters that are alphabetic and belong to a real
//! script (Unicode `Script` not Common / Inherited / Unknown): digits,
//! punctuation, spaces, math symbols and combining marks do not count, nor
//! do the ASCII letters of LaTeX command names (`\frac`, `\boxed`). Han,
//! Hiragana, Katakana, Hangul and Bopomofo count as one script (CJK), so a
//! Japanese text mixing kana and kanji is consistent with itself.
//!
//! The prompt's dominant script is the one with the most letters in
//! `Rollout::prompt` (a tie goes to the script seen first). The reasoning is
//! the text before `</think>` with think on (all of it when the block never
//! closed) and the whole completion with think off. Then
//!
//! ```text
//! share = letters of the reasoning in the dominant script / letters of the reasoning
//! language = weight · share
//! ```
//!
//! with share = 1 when the reasoning or the prompt has no letters.

use serde::{Deserialize, Serialize};
use unicode_script::{Script, UnicodeScript};

use super::Rollout;

/// `[reward.language]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageConfig {
    pub enabled: bool,
    /// Reward of a reasoning entirely in the prompt's script.
    pub weight: f64,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.1,
        }
    }
}

/// A script as counted here (CJK scripts merged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptGroup {
    Cjk,
    Other(Script),
}

/// The script group of a letter; `None` for what does not count.
pub fn letter_script(c: char) -> Option<ScriptGroup> {
    if !c.is_alphabetic() {
        return None;
    }
    match c.script() {
        Script::Common | Script::Inherited | Script::Unknown => None,
        Script::Han | Script::Hiragana | Script::Katakana | Script::Hangul | Script::Bopomofo => {
            Some(ScriptGroup::Cjk)
        }
        s => Some(ScriptGroup::Other(s)),
    }
}

/// Letters per script group, in order of first appearance.
pub fn script_counts(text: &str) -> Vec<(ScriptGroup, usize)> {
    let mut counts: Vec<(ScriptGroup, usize)> = Vec::new();
    let mut in_command = false;
    for c in text.chars() {
        if c == '\\' {
            in_command = true;
            continue;
        }
        if in_command && c.is_ascii_alphabetic() {
            continue;
        }
        in_command = false;
        let Some(g) = letter_script(c) else { continue };
        match counts.iter_mut().find(|(s, _)| *s == g) {
            Some((_, n)) => *n += 1,
            None => counts.push((g, 1)),
        }
    }
    counts
}

/// The script with the most letters in `text` (first seen wins a tie).
pub fn dominant_script(text: &str) -> Option<ScriptGroup> {
    let mut best: Option<(ScriptGroup, usize)> = None;
    for (g, n) in script_counts(text) {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((g, n));
        }
    }
    best.map(|(g, _)| g)
}

/// Share of `text`'s letters in `script`; 1 when it has none.
pub fn share_in(text: &str, script: ScriptGroup) -> f64 {
    let counts = script_counts(text);
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return 1.0;
    }
    let hit = counts
        .iter()
        .find(|(g, _)| *g == script)
        .map_or(0, |(_, n)| *n);
    hit as f64 / total as f64
}

/// The unweighted share of the module docs.
pub fn consistency(r: &Rollout) -> f64 {
    let Some(script) = dominant_script(r.prompt) else {
        return 1.0;
    };
    share_in(r.reasoning().unwrap_or(r.text), script)
}

/// `weight · share`; 0 when off.
pub fn reward(cfg: &LanguageConfig, r: &Rollout) -> f64 {
    if !cfg.enabled {
        return 0.0;
    }
    cfg.weight * consistency(r)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{close, rollout};
    use super::*;

    fn with_prompt<'a>(prompt: &'a str, text: &'a str) -> Rollout<'a> {
        Rollout {
            prompt,
            ..rollout(text, 1)
        }
    }

    #[test]
    fn scripts_and_what_does_not_count() {
        assert_eq!(letter_script('a'), Some(ScriptGroup::Other(Script::Latin)));
        assert_eq!(
            letter_script('я'),
            Some(ScriptGroup::Other(Script::Cyrillic))
        );
        assert_eq!(letter_script('λ'), Some(ScriptGroup::Other(Script::Greek)));
        assert_eq!(letter_script('ب'), Some(ScriptGroup::Other(Script::Arabic)));
        assert_eq!(letter_script('ש'), Some(ScriptGroup::Other(Script::Hebrew)));
        assert_eq!(
            letter_script('क'),
            Some(ScriptGroup::Other(Script::Devanagari))
        );
        for c in ['中', 'ひ', 'カ', '한'] {
            assert_eq!(letter_script(c), Some(ScriptGroup::Cjk), "{c}");
        }
        for c in ['7', '+', '=', ' ', '∑', '√', '𝑥', '。', '\u{301}'] {
            assert_eq!(letter_script(c), None, "{c:?}");
        }
        // LaTeX command names are skipped, their arguments are not.
        assert_eq!(
            script_counts(r"\frac{x}{2} = 1"),
            vec![(ScriptGroup::Other(Script::Latin), 1)]
        );
    }

    #[test]
    fn mixed_reasoning_scores_its_share() {
        // Prompt: Chinese (4 Han) with one Latin letter → CJK dominates.
        let prompt = "计算 x 的值";
        // Reasoning: "先算x" = 2 Han + 1 Latin; "so y" = 3 Latin → 2/6.
        let r = with_prompt(prompt, "先算x so y</think>答案 \\boxed{2}");
        close(consistency(&r), 2.0 / 6.0);
        // English prompt, Russian-and-English reasoning: 5 Latin of 5 + 6.
        let r = with_prompt("Solve it.", "Think привет</think>ok");
        close(consistency(&r), 5.0 / 11.0);
        let cfg = LanguageConfig {
            enabled: true,
            weight: 0.5,
        };
        close(reward(&cfg, &r), 0.5 * 5.0 / 11.0);
        assert_eq!(reward(&LanguageConfig::default(), &r), 0.0);
        // Japanese kana + kanji against a kanji prompt: all CJK.
        close(
            consistency(&with_prompt("計算せよ", "まず計算</think>")),
            1.0,
        );
    }

    #[test]
    fn no_letters_is_consistent_and_ties_go_to_the_first_script() {
        close(consistency(&with_prompt("Hi", "2+2=4</think>")), 1.0);
        close(consistency(&with_prompt("12+34=?", "привет</think>")), 1.0);
        // "ab" Latin vs "αβ" Greek: a tie, Latin is first.
        assert_eq!(
            dominant_script("ab αβ"),
            Some(ScriptGroup::Other(Script::Latin))
        );
        close(consistency(&with_prompt("ab αβ", "αβγ a</think>")), 0.25);
        // Think off: the whole completion is judged.
        let off = Rollout {
            thinking: false,
            ..with_prompt("Hi", "ok да")
        };
        close(consistency(&off), 0.5);
    }
}
