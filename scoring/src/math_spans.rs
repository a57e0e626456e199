//! Math spans in prose: `$…$`, `$$…$$`, `\(…\)`, `\[…\]`.
//!
//! A model that writes "the slope is $\tfrac{3}{8}$." answers with the last
//! math span, not with the last number (the 8). Like HF math-verify, the
//! final answer of prose is whichever ends last: the last math span, or a
//! number written outside math after it ("$x$ cookies, 12 in all" → 12).
//! Spans joined by "and", "or" or commas ("$x=1$ or $x=6$") form a set.
//!
//! One left-to-right scan, no recursion, no regex backtracking: linear in
//! the input, and only the last [`KEEP`] spans are kept.

use regex::Regex;
use std::sync::LazyLock;

/// Spans kept while scanning (enough for joined answers).
const KEEP: usize = 8;
/// Spans joined into one set answer at most (as math-verify: 1 + 5).
const MAX_JOINED: usize = 6;

/// One math span: its content and the byte range of the whole span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span<'a> {
    pub content: &'a str,
    pub start: usize,
    pub end: usize,
}

fn find_from(s: &str, from: usize, pat: &str) -> Option<usize> {
    s.get(from..)?.find(pat).map(|i| from + i)
}

/// The closing `$` of an inline span opened before `from`: unescaped, on the
/// same line.
fn inline_dollar_end(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\n' => return None,
            b'\\' => i += 2,
            b'$' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The math spans of `text`, in order (only the last [`KEEP`]).
pub fn math_spans(text: &str) -> Vec<Span<'_>> {
    let b = text.as_bytes();
    let mut spans: Vec<Span<'_>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (open, close, inline) = match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'(')) => (2, r"\)", false),
            (b'\\', Some(b'[')) => (2, r"\]", false),
            (b'\\', Some(_)) => {
                i += 2; // `\$` and other escapes
                continue;
            }
            (b'$', Some(b'$')) => (2, "$$", false),
            (b'$', _) if i > 0 && b[i - 1].is_ascii_digit() => {
                i += 1;
                continue;
            }
            (b'$', _) => (1, "$", true),
            _ => {
                i += 1;
                continue;
            }
        };
        let from = i + open;
        let end = if inline {
            inline_dollar_end(text, from)
        } else {
            find_from(text, from, close)
        };
        match end {
            Some(e) => {
                let content = text.get(from..e).unwrap_or("");
                if !content.trim().is_empty() {
                    if spans.len() == 2 * KEEP {
                        spans.drain(..KEEP);
                    }
                    spans.push(Span {
                        content,
                        start: i,
                        end: e + close.len(),
                    });
                }
                i = e + close.len();
            }
            // An unclosed `$` is a currency sign or a typo: skip it.
            None => i += open,
        }
    }
    spans.drain(..spans.len().saturating_sub(KEEP));
    spans
}

static JOINER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:,?\s*and|,?\s*or|,)\s*$").expect("static regex"));

/// A number written outside math, the way math-verify anchors it: at the
/// start, after whitespace or `=`, optionally after a currency sign.
static PROSE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s=])[$€£¥₹]?(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+)")
        .expect("static regex")
});

/// The last number written in plain text (outside any math span).
pub fn last_prose_number(text: &str) -> Option<&str> {
    PROSE_NUMBER
        .captures_iter(text)
        .last()
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// The final answer written in math in `text`: the last span, or the set
/// `\{a, b\}` of the last spans joined by "and"/"or"/",". `None` when there
/// is no span, or a plain number follows the last one (the number answers).
pub fn final_math(text: &str) -> Option<String> {
    let spans = math_spans(text);
    let last = *spans.last()?;
    if last_prose_number(text.get(last.end..).unwrap_or("")).is_some() {
        return None;
    }
    let mut joined = vec![last.content.trim()];
    for pair in spans.windows(2).rev() {
        let gap = text.get(pair[0].end..pair[1].start).unwrap_or("x");
        if joined.len() == MAX_JOINED || !JOINER.is_match(gap) {
            break;
        }
        joined.push(pair[0].content.trim());
    }
    if joined.len() == 1 {
        return Some(joined[0].to_string());
    }
    joined.reverse();
    Some(format!(r"\{{{}\}}", joined.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_delimiter_kind() {
        let t = r"a $x$ b $$y$$ c \(z\) d \[w\] e";
        let got: Vec<&str> = math_spans(t).iter().map(|s| s.content).collect();
        assert_eq!(got, vec!["x", "y", "z", "w"]);
    }

    #[test]
    fn last_span_beats_numbers_inside_it() {
        assert_eq!(
            final_math(r"Using 2 points, the slope is $\tfrac{3}{8}$.").as_deref(),
            Some(r"\tfrac{3}{8}")
        );
        assert_eq!(
            final_math(r"a side of $\sqrt{45}$ metres").as_deref(),
            Some(r"\sqrt{45}")
        );
        assert_eq!(
            final_math("Hence\n\\[ (-1/2, 0) \\]").as_deref(),
            Some("(-1/2, 0)")
        );
    }

    #[test]
    fn a_later_plain_number_wins() {
        assert_eq!(final_math(r"takes $12$ hours, i.e. 720 minutes"), None);
        assert_eq!(
            last_prose_number("takes $12$ hours, i.e. 720 minutes"),
            Some("720")
        );
        // Digits glued to letters or braces are not anchored numbers.
        assert_eq!(last_prose_number(r"XDY2K and x^{23}"), None);
    }

    #[test]
    fn joined_spans_form_a_set() {
        assert_eq!(
            final_math(r"So $x = 1$ or $x = 6$.").as_deref(),
            Some(r"\{x = 1, x = 6\}")
        );
        assert_eq!(
            final_math(r"The roots are $1$, $2$, and $3$.").as_deref(),
            Some(r"\{1, 2, 3\}")
        );
        assert_eq!(final_math(r"$1$ then $2$").as_deref(), Some("2"));
    }

    #[test]
    fn currency_and_unclosed_dollars_are_not_spans() {
        assert_eq!(math_spans(r"costs \$5 and \$6"), vec![]);
        assert_eq!(final_math("I paid $5 for it"), None);
        assert_eq!(final_math("no math"), None);
    }

    #[test]
    fn keeps_only_the_last_spans() {
        let t = "$1$ ".repeat(10_000) + "$2$";
        let spans = math_spans(&t);
        assert!(spans.len() <= KEEP);
        assert_eq!(spans.last().map(|s| s.content), Some("2"));
    }
}
