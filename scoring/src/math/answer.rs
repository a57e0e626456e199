//! Structured answers: numbers, symbolic expressions, collections, text.
//! `Answer::parse` works on a string that has already been through
//! [`clean`](super::clean::clean); `Answer::render` is the canonical form.

use super::clean::clean_math;
use super::equation::{drop_approximation, has_equals, is_equation_list, parse_equation, Equation};
use super::expr::{parse_expr, Expr};
use super::matrix::matrix_cells;
use super::number::{Rational, Value};
use super::sets::plus_minus;
use crate::braces::{outer_brackets_span_all, split_top_level};
use regex::Regex;
use std::sync::LazyLock;

/// Maximum collection nesting (e.g. sets of tuples of intervals).
pub const MAX_COLLECTION_DEPTH: usize = 6;
/// Longest answer parsed (bytes); longer ones stay raw text, and
/// [`crate::compare`] and the math verifier judge them "not equal".
pub const MAX_ANSWER_BYTES: usize = 4096;
/// Maximum number of elements parsed in one collection.
pub const MAX_ITEMS: usize = 256;

/// The kind of a collection answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollKind {
    /// `\{a, b\}`: unordered.
    Set,
    /// `a, b` without brackets: unordered (e.g. "the solutions are 2, 3").
    List,
    /// `A \cup B`: unordered union of parts.
    Union,
    /// `(a, b)`, `[a, b)`, ...: ordered; bracket kinds must match.
    Tuple(char, char),
    /// `\begin{pmatrix}…\end{pmatrix}`: ordered rows (each a `[…]` tuple).
    Matrix,
}

impl CollKind {
    pub fn ordered(self) -> bool {
        matches!(self, CollKind::Tuple(..) | CollKind::Matrix)
    }
}

/// A parsed answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A constant number; `text` is its canonical rendering (without `%`).
    Number {
        value: Value,
        percent: bool,
        text: String,
    },
    /// An expression with free single-letter variables.
    Expr {
        expr: Expr,
        text: String,
    },
    Collection {
        kind: CollKind,
        items: Vec<Answer>,
    },
    /// `lhs = rhs` (see [`Equation`]).
    Equation(Box<Equation<Answer>>),
    /// Anything else, lower-cased, compared modulo whitespace.
    Text(String),
}

static OR_AND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r",?\s+(?:or|and)\s+").expect("static regex"));

static MIXED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(-?)(\d{1,30})\s*(?:\\frac\{(\d{1,30})\}\{(\d{1,30})\}|\\frac(\d)(\d)|\s(\d{1,30})/(\d{1,30}))$")
        .expect("static regex")
});

fn mixed_number(s: &str) -> Option<Value> {
    let c = MIXED.captures(s)?;
    let neg = c.get(1).is_some_and(|m| !m.as_str().is_empty());
    let whole: i128 = c.get(2)?.as_str().parse().ok()?;
    let (n, d) = [(3, 4), (5, 6), (7, 8)]
        .iter()
        .find_map(|&(a, b)| Some((c.get(a)?.as_str(), c.get(b)?.as_str())))?;
    let (n, d): (i128, i128) = (n.parse().ok()?, d.parse().ok()?);
    if d == 0 || n >= d {
        return None; // `2\frac{5}{3}` is a product, not a mixed number.
    }
    let v = Rational::int(whole).checked_add(Rational::new(n, d)?)?;
    Some(Value::Exact(if neg { v.checked_neg()? } else { v }))
}

fn number(value: Value, percent: bool, source: &str) -> Answer {
    let text = value.exact_text().unwrap_or_else(|| source.to_string());
    Answer::Number {
        value,
        percent,
        text,
    }
}

fn scalar(s: &str) -> Option<Answer> {
    if let Some(v) = mixed_number(s) {
        return Some(number(v, false, s));
    }
    if let Some(core) = s.strip_suffix('%') {
        let core = core.trim_end_matches('%').trim_end();
        let e = parse_expr(core)?;
        if !e.vars().is_empty() {
            return None;
        }
        let v = mixed_number(core).or_else(|| e.eval(&|_| None))?;
        return Some(number(v, true, core));
    }
    let e = parse_expr(s)?;
    if e.vars().is_empty() {
        let v = e.eval(&|_| None)?;
        Some(number(v, false, s))
    } else {
        Some(Answer::Expr {
            expr: e,
            text: s.to_string(),
        })
    }
}

impl Answer {
    /// Cleans and parses a raw answer string.
    pub fn parse(raw: &str) -> Answer {
        if raw.len() > MAX_ANSWER_BYTES {
            return Answer::Text(raw.to_string());
        }
        Answer::parse_clean(&clean_math(raw), 0)
    }

    fn collection(kind: CollKind, parts: Vec<&str>, depth: usize, s: &str) -> Answer {
        match Answer::items(parts, depth) {
            Some(items) => Answer::Collection { kind, items },
            None => Answer::Text(s.to_string()),
        }
    }

    /// Matrices, "a or b" alternatives, lists of equations, equations and
    /// `\pm`: the forms tried before sets, tuples and scalars.
    fn parse_structured(s: &str, depth: usize) -> Option<Answer> {
        let exact = drop_approximation(s);
        if exact.len() < s.len() {
            return Some(Answer::parse_clean(exact, depth + 1));
        }
        if let Some(rows) = matrix_cells(s) {
            let items = rows
                .into_iter()
                .map(|cells| {
                    Answer::items(cells, depth + 1).map(|items| Answer::Collection {
                        kind: CollKind::Tuple('[', ']'),
                        items,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            return Some(Answer::Collection {
                kind: CollKind::Matrix,
                items,
            });
        }
        if OR_AND.is_match(s) && has_equals(s) {
            let parts: Vec<&str> = OR_AND.split(s).collect();
            if parts.len() > 1 && parts.iter().all(|p| !p.trim().is_empty()) {
                return Some(Answer::collection(CollKind::Set, parts, depth, s));
            }
        }
        if is_equation_list(s) {
            return Some(Answer::collection(
                CollKind::List,
                split_top_level(s, ','),
                depth,
                s,
            ));
        }
        if let Some(eq) = parse_equation(s, |rhs| Answer::parse_clean(&clean_math(rhs), depth + 1))
        {
            return Some(Answer::Equation(Box::new(eq)));
        }
        if let Some([plus, minus]) = plus_minus(s) {
            return Some(Answer::collection(
                CollKind::Set,
                vec![plus.as_str(), minus.as_str()],
                depth,
                s,
            ));
        }
        None
    }

    fn items(parts: Vec<&str>, depth: usize) -> Option<Vec<Answer>> {
        if parts.len() > MAX_ITEMS {
            return None;
        }
        Some(
            parts
                .into_iter()
                .map(|p| match Answer::parse_clean(&clean_math(p), depth + 1) {
                    // A bare list cannot nest inside another collection.
                    Answer::Collection {
                        kind: CollKind::List,
                        ..
                    } => Answer::Text(clean_math(p)),
                    a => a,
                })
                .collect(),
        )
    }

    /// Parses an already-cleaned string.
    pub fn parse_clean(s: &str, depth: usize) -> Answer {
        let text = || Answer::Text(s.to_string());
        if depth > MAX_COLLECTION_DEPTH || s.is_empty() {
            return text();
        }
        if let Some(a) = Answer::parse_structured(s, depth) {
            return a;
        }
        if s.contains(r"\cup") {
            let parts: Vec<&str> = s.split(r"\cup").collect();
            if parts.iter().all(|p| !p.trim().is_empty()) {
                return match Answer::items(parts, depth) {
                    Some(items) => Answer::Collection {
                        kind: CollKind::Union,
                        items,
                    },
                    None => text(),
                };
            }
        }
        let set_inner = s
            .strip_prefix(r"\{")
            .and_then(|r| r.strip_suffix(r"\}"))
            .filter(|inner| !inner.ends_with('\\'));
        if let Some(inner) = set_inner {
            return match Answer::items(split_top_level(inner, ','), depth) {
                Some(items) => Answer::Collection {
                    kind: CollKind::Set,
                    items,
                },
                None => text(),
            };
        }
        let mut chars = s.chars();
        let (first, last) = (chars.next(), chars.next_back());
        if let (Some(open @ ('(' | '[' | '{')), Some(close @ (')' | ']' | '}'))) = (first, last) {
            if outer_brackets_span_all(s) {
                let inner = s.get(1..s.len() - 1).unwrap_or("");
                let parts = split_top_level(inner, ',');
                if parts.len() > 1 {
                    let kind = if open == '{' && close == '}' {
                        CollKind::Set
                    } else {
                        CollKind::Tuple(open, close)
                    };
                    return match Answer::items(parts, depth) {
                        Some(items) => Answer::Collection { kind, items },
                        None => text(),
                    };
                }
            }
        }
        let parts = split_top_level(s, ',');
        if parts.len() > 1 {
            return match Answer::items(parts, depth) {
                Some(items) => Answer::Collection {
                    kind: CollKind::List,
                    items,
                },
                None => text(),
            };
        }
        scalar(s).unwrap_or_else(text)
    }

    /// Canonical rendering; unordered collections are sorted.
    pub fn render(&self) -> String {
        match self {
            Answer::Number { percent, text, .. } => {
                if *percent {
                    format!("{text}%")
                } else {
                    text.clone()
                }
            }
            Answer::Expr { text, .. } => text.clone(),
            Answer::Text(t) => t.clone(),
            Answer::Collection { kind, items } => {
                let mut parts: Vec<String> = items.iter().map(Answer::render).collect();
                if !kind.ordered() {
                    parts.sort();
                }
                match kind {
                    CollKind::Set => format!(r"\{{{}\}}", parts.join(", ")),
                    CollKind::List => parts.join(", "),
                    CollKind::Union => parts.join(r" \cup "),
                    CollKind::Tuple(o, c) => format!("{o}{}{c}", parts.join(", ")),
                    CollKind::Matrix => format!("matrix({})", parts.join(", ")),
                }
            }
            Answer::Equation(e) => format!("{} = {}", e.lhs, e.rhs.render()),
        }
    }

    /// Short name of the answer's kind, for reasons.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Answer::Number { .. } => "number",
            Answer::Expr { .. } => "expression",
            Answer::Collection { kind, .. } => match kind {
                CollKind::Set => "set",
                CollKind::List => "list",
                CollKind::Union => "union",
                CollKind::Tuple(..) => "tuple/interval",
                CollKind::Matrix => "matrix",
            },
            Answer::Equation(_) => "equation",
            Answer::Text(_) => "text",
        }
    }
}

/// Canonical normalized form of a raw answer string. Idempotent:
/// `normalize(&normalize(x)) == normalize(x)`.
pub fn normalize(raw: &str) -> String {
    let mut cur = Answer::parse(raw).render();
    for _ in 0..6 {
        let next = Answer::parse(&cur).render();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn canonical_forms() {
        assert_eq!(normalize(r"\dfrac{6}{8}"), "3/4");
        assert_eq!(normalize("0.750"), "3/4");
        assert_eq!(normalize(r"1\frac{1}{2}"), "3/2");
        assert_eq!(normalize("2 1/2"), "5/2");
        assert_eq!(normalize(r"50\%"), "50%");
        assert_eq!(normalize(r"\{3, 1, 2\}"), r"\{1, 2, 3\}");
        assert_eq!(normalize("[1, 2)"), "[1, 2)");
        assert_eq!(normalize(r"\text{Yes}"), "yes");
        assert_eq!(normalize(r"2\sqrt{2}"), r"2\sqrt{2}");
    }
}
