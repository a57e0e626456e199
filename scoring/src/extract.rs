//! Final-answer extraction from a model completion.
//!
//! Only the text after the last `</think>` is searched (when present).
//! Extractors are tried in the order configured by [`ExtractConfig`]; the
//! first that finds something wins. Within one extractor the *last*
//! occurrence in the text wins.
//!
//! A user pattern ([`ExtractConfig::regex`], an [`AnswerPattern`]) is tried
//! before the listed extractors: the answer is capture group 1 of its last
//! match (the whole match when the pattern has no group); no match, or an
//! empty or non-participating group, falls through to the list.

use crate::braces::matching_brace;
use crate::error::ScoringError;
use crate::math_spans::final_math;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
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
    /// The last math span (`$…$`, `\(…\)`, `\[…\]`, `$$…$$`; spans joined
    /// by "and"/"or" form a set), unless a plain number follows it.
    MathSpan,
    /// The last number in the text (integers, decimals, fractions `a/b`).
    LastNumber,
    /// The user pattern of [`ExtractConfig::regex`]. Reported as the
    /// method of the answers it finds; it is not a list entry (the pattern
    /// always runs first), so `"regex"` in `extractors` is rejected.
    #[serde(skip_deserializing)]
    Regex,
}

/// Which extractors to run, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtractConfig {
    pub extractors: Vec<Extractor>,
    /// Search only the text after the last `</think>` (default true).
    pub after_think: bool,
    /// A user pattern tried before `extractors` (default none); see
    /// [`AnswerPattern`]. On the wire, the pattern string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<AnswerPattern>,
}

/// A user answer pattern, compiled once when the config is built or
/// deserialized (cloning shares the compiled program). Equality, `Debug`
/// and serde use the pattern string.
///
/// The answer is capture group 1 of the **last** match in the searched text,
/// or the whole match when the pattern has no capture group; surrounding
/// whitespace is trimmed. Syntax is the `regex` crate's (linear time, no
/// look-around or back-references); patterns are limited to
/// [`AnswerPattern::MAX_LEN`] bytes and a 1 MiB compiled size.
#[derive(Clone)]
pub struct AnswerPattern(Regex);

impl AnswerPattern {
    /// The longest accepted pattern, in bytes.
    pub const MAX_LEN: usize = 4096;

    /// Compiles `pattern`; the error carries the regex crate's message.
    pub fn new(pattern: &str) -> Result<Self, ScoringError> {
        let invalid = |message: String| ScoringError::InvalidRegex {
            pattern: pattern.to_string(),
            message,
        };
        if pattern.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "pattern is {} bytes, more than {}",
                pattern.len(),
                Self::MAX_LEN
            )));
        }
        RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(AnswerPattern)
            .map_err(|e| invalid(e.to_string()))
    }

    /// The pattern string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Group 1 (or the whole match without groups) of the last match in
    /// `body`, trimmed; `None` when there is no match or it is empty.
    pub fn find_last(&self, body: &str) -> Option<String> {
        let caps = self.0.captures_iter(body).last()?;
        let m = if self.0.captures_len() > 1 {
            caps.get(1)?
        } else {
            caps.get(0)?
        };
        let answer = m.as_str().trim();
        (!answer.is_empty()).then(|| answer.to_string())
    }
}

impl PartialEq for AnswerPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for AnswerPattern {}

impl fmt::Debug for AnswerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnswerPattern")
            .field(&self.as_str())
            .finish()
    }
}

impl Serialize for AnswerPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AnswerPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(d)?;
        AnswerPattern::new(&pattern).map_err(serde::de::Error::custom)
    }
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig::math()
    }
}

impl ExtractConfig {
    /// Boxed, "answer is", `####`, `Answer:`, last math span, then last number.
    pub fn math() -> Self {
        use Extractor::*;
        ExtractConfig {
            extractors: vec![Boxed, AnswerIs, Gsm8k, AnswerLine, MathSpan, LastNumber],
            after_think: true,
            regex: None,
        }
    }

    /// `####` first (GSM8K format), then the math chain.
    pub fn gsm8k() -> Self {
        use Extractor::*;
        ExtractConfig {
            extractors: vec![Gsm8k, Boxed, AnswerIs, AnswerLine, MathSpan, LastNumber],
            after_think: true,
            regex: None,
        }
    }

    /// Multiple-choice letter only.
    pub fn choice() -> Self {
        ExtractConfig {
            extractors: vec![Extractor::Choice],
            after_think: true,
            regex: None,
        }
    }

    /// Strong, explicit markers only (no last-number guess).
    pub fn explicit() -> Self {
        use Extractor::*;
        ExtractConfig {
            extractors: vec![Boxed, AnswerIs, Gsm8k, AnswerLine],
            after_think: true,
            regex: None,
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
    if let Some(answer) = cfg.regex.as_ref().and_then(|p| p.find_last(body)) {
        return Some(Extracted {
            answer,
            method: Extractor::Regex,
        });
    }
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
        Extractor::MathSpan => final_math(body),
        Extractor::LastNumber => last_number(body),
        // The pattern lives in the config and runs before the list.
        Extractor::Regex => None,
    }
}

/// Boxes tried from the end before giving up (each try scans to its
/// closing brace, so this bounds the work on `\boxed{\boxed{…` chains).
const MAX_BOX_TRIES: usize = 32;

/// Content of the last `\boxed{...}` or `\fbox{...}` (or `\boxed 5`).
pub fn last_boxed(body: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for cmd in [r"\boxed", r"\fbox"] {
        let mut found = None;
        for (pos, _) in body.rmatch_indices(cmd).take(MAX_BOX_TRIES) {
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
                break;
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
/// A lone capital letter A–H or J (not the pronoun I) ending a word.
static CHOICE_LONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s*])\(?([A-HJ])\)?(?:\*\*)?(?:[.,:;!]|\s|$)").expect("static regex")
});
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
    let sentence = line.get(..end).unwrap_or(line);
    // "the answer is $5$ metres": the math, not the words after it.
    if let Some(m) = final_math(sentence) {
        return Some(m);
    }
    Some(strip_sentence(sentence))
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
    last_capture(&CHOICE_PAREN, body).or_else(|| last_capture(&CHOICE_LONE, body))
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
    fn math_span_before_last_number() {
        let t = r"Using 2 points, a side of $\sqrt{45}$ metres";
        assert_eq!(
            extract(t, &ExtractConfig::math()).map(|e| (e.answer, e.method)),
            Some((r"\sqrt{45}".into(), Extractor::MathSpan))
        );
        let t = "It takes $12$ hours, i.e. 720 minutes";
        assert_eq!(extract_answer(t).as_deref(), Some("720"));
    }

    #[test]
    fn think_section_is_ignored() {
        let t = r"<think>maybe \boxed{3}</think>The answer is 4.";
        assert_eq!(extract_answer(t).as_deref(), Some("4"));
    }

    fn with_regex(pattern: &str) -> ExtractConfig {
        ExtractConfig {
            regex: Some(AnswerPattern::new(pattern).unwrap()),
            ..ExtractConfig::math()
        }
    }

    fn got(text: &str, cfg: &ExtractConfig) -> Option<(String, Extractor)> {
        extract(text, cfg).map(|e| (e.answer, e.method))
    }

    #[test]
    fn regex_last_match_wins_and_runs_before_the_list() {
        let cfg = with_regex(r"ANS=(\w+)");
        let t = r"ANS=first \boxed{9} ANS=second then 7";
        assert_eq!(got(t, &cfg), Some(("second".into(), Extractor::Regex)));
    }

    #[test]
    fn regex_group_one_or_whole_match() {
        let t = "pick: red, pick: blue.";
        let group = with_regex(r"pick:\s*(\w+)");
        assert_eq!(got(t, &group).map(|x| x.0).as_deref(), Some("blue"));
        let whole = with_regex(r"pick:\s*\w+");
        assert_eq!(got(t, &whole).map(|x| x.0).as_deref(), Some("pick: blue"));
        // Group 1 only, even with more groups.
        let two = with_regex(r"(\w+): (\w+)");
        assert_eq!(got(t, &two).map(|x| x.0).as_deref(), Some("pick"));
        // A non-participating group 1 is no answer: the list runs.
        let optional = with_regex(r"pick: (?:(x)|\w+)");
        assert_eq!(
            got("pick: red then 5", &optional),
            Some(("5".into(), Extractor::LastNumber))
        );
    }

    #[test]
    fn regex_respects_after_think() {
        let mut cfg = with_regex(r"w=(\d+)");
        let t = "<think>w=1 w=2</think>no marker here, just 3";
        assert_eq!(got(t, &cfg), Some(("3".into(), Extractor::LastNumber)));
        cfg.after_think = false;
        assert_eq!(got(t, &cfg), Some(("2".into(), Extractor::Regex)));
    }

    #[test]
    fn regex_without_a_match_falls_through() {
        let cfg = with_regex(r"FINAL: (\S+)");
        assert_eq!(
            got(r"The answer is \boxed{12}.", &cfg),
            Some(("12".into(), Extractor::Boxed))
        );
        // An empty capture is no answer either.
        let cfg = with_regex(r"FINAL:( *)");
        assert_eq!(
            got("FINAL: then 4", &cfg),
            Some(("4".into(), Extractor::LastNumber))
        );
        let only = ExtractConfig {
            extractors: vec![],
            ..with_regex(r"FINAL: (\S+)")
        };
        assert_eq!(got("nothing", &only), None);
    }

    #[test]
    fn regex_invalid_pattern_is_an_error_and_serde_uses_the_string() {
        let e = AnswerPattern::new("(unclosed").unwrap_err();
        assert!(matches!(e, ScoringError::InvalidRegex { .. }), "{e}");
        assert!(e.to_string().contains("(unclosed"), "{e}");
        let long = "a".repeat(AnswerPattern::MAX_LEN + 1);
        assert!(AnswerPattern::new(&long).is_err());
        let bad = serde_json::from_str::<ExtractConfig>(r#"{"regex": "a["}"#).unwrap_err();
        assert!(bad.to_string().contains("invalid regex"), "{bad}");
        assert!(serde_json::from_str::<ExtractConfig>(r#"{"extractors": ["regex"]}"#).is_err());

        let cfg: ExtractConfig = serde_json::from_str(r#"{"regex": "(\\S+)"}"#).unwrap();
        assert_eq!(cfg, with_regex(r"(\S+)"));
        assert_eq!(cfg.extractors, ExtractConfig::math().extractors);
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["regex"], r"(\S+)");
        assert_eq!(serde_json::from_value::<ExtractConfig>(v).unwrap(), cfg);
        // Presets serialize as before (no `regex` key).
        let v = serde_json::to_value(ExtractConfig::math()).unwrap();
        assert!(v.get("regex").is_none(), "{v}");
        assert_eq!(
            format!("{:?}", cfg.regex.unwrap()),
            r#"AnswerPattern("(\\S+)")"#
        );
    }
}
