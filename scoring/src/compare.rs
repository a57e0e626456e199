//! `compare(gold, pred)`: the entry point behind `quorum verify`.

use crate::equivalence::answers_equivalent;
use crate::extract::{after_think, extract, last_boxed, ExtractConfig, Extractor};
use crate::math::answer::{normalize, Answer, MAX_ANSWER_BYTES};
use crate::math::number::Tolerance;
use crate::math_spans::{final_math, last_prose_number, math_spans};
use serde::Serialize;

/// Outcome of [`compare`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub equal: bool,
    /// Canonical form of the gold answer.
    pub gold_norm: String,
    /// Canonical form of the (extracted) predicted answer.
    pub pred_norm: String,
    pub reason: String,
}

/// Prose with at least this many words and no explicit marker is treated
/// as a completion and reduced to its last number.
const PROSE_WORDS: usize = 4;

/// At least [`PROSE_WORDS`] words, two of them plain words of 2+ letters.
fn looks_like_prose(body: &str) -> bool {
    let words: Vec<&str> = body.split_whitespace().collect();
    let plain = words
        .iter()
        .filter(|w| {
            let w = w.trim_end_matches([',', '.', ';', ':', '!', '?']);
            w.len() >= 2 && w.chars().all(|c| c.is_alphabetic())
        })
        .count();
    words.len() >= PROSE_WORDS && plain >= 2
}

/// Reduces a completion or bare answer to an answer string.
/// Returns the answer and a note on how it was obtained.
pub fn answer_from(text: &str, allow_number_fallback: bool) -> Option<(String, &'static str)> {
    let body = after_think(text).trim();
    if let Some(e) = extract(body, &ExtractConfig::explicit()) {
        let how = match e.method {
            Extractor::Boxed => "extracted from \\boxed{}",
            Extractor::AnswerIs => "extracted from 'the answer is'",
            Extractor::Gsm8k => "extracted from '####'",
            _ => "extracted from 'Answer:' line",
        };
        return Some((e.answer, how));
    }
    if body.is_empty() {
        return None;
    }
    if allow_number_fallback {
        // Like math-verify: the last math span, unless a plain number
        // follows it ("$x$ is 12" → 12).
        if let Some(m) = final_math(body) {
            return Some((m, "last math span"));
        }
        if looks_like_prose(body) || !math_spans(body).is_empty() {
            if let Some(n) = last_prose_number(body) {
                return Some((n.to_string(), "last number in prose"));
            }
        }
    }
    Some((body.to_string(), "bare answer"))
}

/// The reason an answer is not compared: longer than [`MAX_ANSWER_BYTES`].
pub(crate) fn too_long(answer: &str, which: &str) -> Option<String> {
    (answer.len() > MAX_ANSWER_BYTES).then(|| {
        format!(
            "{which} answer too long ({} bytes > {MAX_ANSWER_BYTES})",
            answer.len()
        )
    })
}

/// A multiple-choice gold: one capital letter A–J, bare or as `(C)`.
fn choice_gold(gold: &str) -> Option<char> {
    let t = gold
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    let mut chars = t.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ 'A'..='J'), None) => Some(c),
        _ => None,
    }
}

/// Compares a choice letter with the letter extracted from `pred`.
fn compare_choice(letter: char, pred: &str) -> Comparison {
    let got = extract(pred, &ExtractConfig::choice()).map(|e| e.answer);
    let pred_norm = got.clone().unwrap_or_default();
    let (equal, reason) = match got {
        None => (false, "no choice letter found in prediction".to_string()),
        Some(g) if g.eq_ignore_ascii_case(&letter.to_string()) => {
            (true, "same choice letter".to_string())
        }
        Some(g) => (false, format!("different choice letters ({letter} vs {g})")),
    };
    Comparison {
        equal,
        gold_norm: letter.to_string(),
        pred_norm,
        reason,
    }
}

/// Compares a gold answer with a prediction using default tolerance.
///
/// `pred` may be a full completion (the answer is extracted: `\boxed{}`,
/// "the answer is", `####`, `Answer:`, else the last math span unless a
/// plain number follows it, else the last number of prose) or a bare
/// answer. `gold` is a bare answer; a boxed gold is also accepted. A gold
/// that is one capital letter A–J (or `(C)`) is a multiple-choice answer:
/// the prediction's choice letter is compared.
pub fn compare(gold: &str, pred: &str) -> Comparison {
    compare_with(gold, pred, &Tolerance::default())
}

/// [`compare`] with an explicit numeric tolerance.
pub fn compare_with(gold: &str, pred: &str, tol: &Tolerance) -> Comparison {
    let gold_ans = match last_boxed(after_think(gold)) {
        Some(b) => b,
        None => answer_from(gold, false).map(|(a, _)| a).unwrap_or_default(),
    };
    if let Some(letter) = choice_gold(&gold_ans) {
        return compare_choice(letter, pred);
    }
    if let Some(reason) = too_long(&gold_ans, "gold") {
        return Comparison {
            equal: false,
            gold_norm: String::new(),
            pred_norm: String::new(),
            reason,
        };
    }
    let gold_norm = normalize(&gold_ans);
    let Some((pred_ans, how)) = answer_from(pred, true) else {
        return Comparison {
            equal: false,
            gold_norm,
            pred_norm: String::new(),
            reason: "no answer found in prediction".into(),
        };
    };
    if let Some(reason) = too_long(&pred_ans, "predicted") {
        return Comparison {
            equal: false,
            gold_norm,
            pred_norm: String::new(),
            reason,
        };
    }
    let pred_norm = normalize(&pred_ans);
    if gold_norm.is_empty() {
        return Comparison {
            equal: false,
            gold_norm,
            pred_norm,
            reason: "gold answer is empty".into(),
        };
    }
    let j = answers_equivalent(&Answer::parse(&gold_ans), &Answer::parse(&pred_ans), tol);
    Comparison {
        equal: j.equal,
        gold_norm,
        pred_norm,
        reason: format!("{} ({how})", j.reason),
    }
}
