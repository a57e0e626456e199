//! Final-answer extraction from a model completion.
//!
//! Only the text after the last `</think>` is searched (when present).
//! Extractors are tried in the order configured by [`ExtractConfig`]; the
//! first that finds something wins. Within one extractor the *last*
//! occurrence in the text wins.

use crate::braces::matching_brace;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// One extraction method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extractor {
    /// `\boxed{...}` / `\fbox{...}` with nested braces; last one wins.
    Boxed,
    /// "The (final) answer is ..." up to the end of the sentence/line.
    AnswerIs,
    /// GSM8K-style `#### 42`.
    Gsm8k,
    /// A line starting with `Answer:` (optionally bold).
    AnswerLine,
    /// A multiple-choice letter (A–J): `(B)`, `Answer: B`, `\boxed{B}`...
    Choice,
    /// The last number in the text (integers, decimals, fractions `a/b`).
    LastNumber,
}

/// Which extractors to run, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtractConfig {
    pub extractors: Vec<Extractor>,
    /// Search only the text after the last `</think>` (default true).
    pub after_think: bool,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig::math()
    }
}

impl ExtractConfig {
    /// Boxed, "answer is", `####`, `Answer:`, then last number.
    pub fn math() -> Self {
        use Extractor::*;
        ExtractConfig {
            extractors: vec![Boxed, AnswerIs, Gsm8k, AnswerLine, LastNumber],
            after_think: true,
        }
    }

    /// `####` first (GSM8K format), then the math chain.
    pub fn gsm8k() -> Self {
        use Extractor::*;
        ExtractConfig {
            extractors: vec![Gsm8k, Boxed, AnswerIs, AnswerLine, LastNumber],
            after_think: true,
        }
    }

    /// Multiple-choice letter only.
    pub fn choice() -> Self {
        ExtractConfig {
            extractors: vec![Extractor::Choice],
            after_think: true,
        }
    }

    /// Strong, explicit markers only (no last-number guess).
    pub fn explicit() -> Self {
        use Extractor::*;
        ExtractConfig {
            extractors: vec![Boxed, AnswerIs, Gsm8k, AnswerLine],
            after_think: true,
        }
    }
}

/// An extracted answer and the method that found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extracted {
    pub answer: String,
    pub method: Extractor,
}

/// The part of a completion after the last `</think>` (or all of it).
pub fn after_think(text: &str) -> &str {
    match text.rfind("</think>") {
        Some(i) => text.get(i + "</think>".len()..).unwrap_or(""),
        None => text,
    }
}

/// Extracts an answer using `cfg`; `None` when no extractor matches.
pub fn extract(text: &str, cfg: &ExtractConfig) -> Option<Extracted> {
    let body = if cfg.after_think {
        after_think(text)
    } else {
        text
    };
    cfg.extractors.iter().find_map(|&method| {
        let answer = run(method, body)?;
        let answer = answer.trim();
        (!answer.is_empty()).then(|| Extracted {
            answer: answer.to_string(),
            method,
        })
    })
}

/// Convenience: extract with [`ExtractConfig::math`] and return the string.
pub fn extract_answer(text: &str) -> Option<String> {
    extract(text, &ExtractConfig::math()).map(|e| e.answer)
}

fn run(method: Extractor, body: &str) -> Option<String> {
    match method {
        Extractor::Boxed => last_boxed(body),
        Extractor::AnswerIs => answer_is(body),
        Extractor::Gsm8k => last_capture(&GSM8K, body),
        Extractor::AnswerLine => last_capture(&ANSWER_LINE, body).map(|s| strip_sentence(&s)),
        Extractor::Choice => choice(body),
        Extractor::LastNumber => last_number(body),
    }
}

/// Content of the last `\boxed{...}` or `\fbox{...}` (or `\boxed 5`).
pub fn last_boxed(body: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for cmd in [r"\boxed", r"\fbox"] {
        let mut found = None;
        for (pos, _) in body.match_indices(cmd) {
            let after = pos + cmd.len();
            let tail = body.get(after..).unwrap_or("");
            let ws = tail.len() - tail.trim_start().len();
            let content = if tail.trim_start().starts_with('{') {
                matching_brace(body, after + ws).and_then(|close| body.get(after + ws + 1..close))
            } else if ws > 0 {
                // `\boxed 5`: up to whitespace or `$`.
                tail.trim_start()
                    .split(|c: char| c.is_whitespace() || c == '$')
                    .next()
            } else {
                None
            };
            if let Some(c) = content {
                found = Some((pos, c.to_string()));
            }
        }
        if let Some((pos, c)) = found {
            if best.as_ref().is_none_or(|(p, _)| pos > *p) {
                best = Some((pos, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

static ANSWER_IS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)the\s+(?:final\s+|correct\s+)?answer\s+(?:is|will\s+be|=)\s*:?\s*")
        .expect("static regex")
});
static GSM8K: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"####\s*([^\n]+)").expect("static regex"));
static ANSWER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)^[\s>#*_-]*(?:final\s+)?answer\s*[*_]*\s*[:：]\s*[*_]*\s*([^\n]+)$")
        .expect("static regex")
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
        .expect("static regex")
});
static CHOICE_MARKED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:answer\s*(?:is|:)|option|choice)\s*[:：]?\s*(?:\*\*)?\s*(?:\\boxed\{|\\text\{)?\s*\(?([A-J])\b",
    )
    .expect("static regex")
});
static CHOICE_PAREN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\(([A-J])\)").expect("static regex"));
static CHOICE_BARE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\(?([A-Ja-j])[).:]?\s*(?:$|[).:]\s)").expect("static regex"));

fn last_capture(re: &Regex, body: &str) -> Option<String> {
    re.captures_iter(body)
        .last()
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().trim().to_string())
}

/// Trims trailing sentence punctuation, markdown bold and `$` wrappers.
fn strip_sentence(s: &str) -> String {
    let s = s.trim().trim_matches('*').trim();
    let s = s.trim_end_matches(['.', '!', ';']).trim();
    let s = s
        .strip_prefix('$')
        .and_then(|r| r.strip_suffix('$'))
        .unwrap_or(s);
    s.trim().to_string()
}

fn answer_is(body: &str) -> Option<String> {
    let m = ANSWER_IS.find_iter(body).last()?;
    let rest = body.get(m.end()..)?;
    if let Some(b) = last_boxed_prefix(rest) {
        return Some(b);
    }
    let line = rest.lines().next().unwrap_or("");
    // End at the first sentence boundary (". ") or the end of the line.
    let end = line.find(". ").unwrap_or(line.len());
    Some(strip_sentence(line.get(..end).unwrap_or(line)))
}

/// If `rest` starts (after `$`/spaces) with `\boxed{`, returns its content.
fn last_boxed_prefix(rest: &str) -> Option<String> {
    let t = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '$' || c == '*');
    if t.starts_with(r"\boxed") || t.starts_with(r"\fbox") {
        let first_line = t.lines().next().unwrap_or("");
        return last_boxed(first_line);
    }
    None
}

fn choice(body: &str) -> Option<String> {
    if let Some(b) = last_boxed(body) {
        let t = b.trim().trim_start_matches(r"\text{").trim_end_matches('}');
        let t = t.trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace());
        if t.len() == 1 && t.chars().all(|c| c.is_ascii_alphabetic()) {
            return Some(t.to_ascii_uppercase());
        }
    }
    if let Some(s) = last_capture(&CHOICE_MARKED, body) {
        return Some(s.to_ascii_uppercase());
    }
    if let Some(c) = CHOICE_BARE.captures(body.trim()) {
        if body.trim().chars().count() <= 4 {
            return c.get(1).map(|m| m.as_str().to_ascii_uppercase());
        }
    }
    last_capture(&CHOICE_PAREN, body)
}

fn last_number(body: &str) -> Option<String> {
    NUMBER
        .find_iter(body)
        .last()
        .map(|m| m.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_nested_last_wins() {
        let t = r"first \boxed{1} then \boxed{\frac{1}{\sqrt{2}}} done";
        assert_eq!(last_boxed(t).as_deref(), Some(r"\frac{1}{\sqrt{2}}"));
        assert_eq!(last_boxed(r"\fbox{7} and \boxed 5$").as_deref(), Some("5"));
        assert_eq!(last_boxed(r"\boxed{unclosed"), None);
    }

    #[test]
    fn think_section_is_ignored() {
        let t = r"<think>maybe \boxed{3}</think>The answer is 4.";
        assert_eq!(extract_answer(t).as_deref(), Some("4"));
    }
}
