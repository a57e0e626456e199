//! Equations as answers: `y = 7`, `4a - b = 2`, `x = \pm 3`.
//!
//! Follows HF math-verify's rules. An *assignment* has a lone variable on
//! the left (`y = 2x + 3`, `f(x) = …`, `a_1 = …`). Two assignments are equal
//! when they assign the same variable equal values (`x = 7` ≠ `y = 7`). An
//! equation compared with a plain value answers with its right-hand side
//! when it is the prediction (`7` vs "so $y = 7$"), and when it is an
//! assignment gold (`y = 7` vs `7`). Two general equations are equal when
//! `lhs - rhs` of one is a non-zero constant multiple of the other's, in the
//! same variables (sides swapped, terms reordered, both sides scaled), which
//! is tested numerically at sample points (see [`crate::math::identity`]).

use super::expr::{parse_expr, Expr};
use crate::braces::split_top_level;
use regex::Regex;
use std::sync::LazyLock;

/// A parsed equation `lhs = rhs` (for a chain `a = b = c`: first and last),
/// its right-hand side parsed as `R` (an [`super::answer::Answer`] when it
/// is one).
#[derive(Debug, Clone)]
pub struct Equation<R> {
    /// Cleaned left-hand side text.
    pub lhs: String,
    pub rhs: R,
    /// The assigned variable when the left side is a lone variable.
    pub var: Option<String>,
    /// `lhs - rhs` when both sides are expressions.
    pub diff: Option<Expr>,
}

static TARGET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-z](?:_\{?[a-z0-9]+\}?)?|[a-z]\([a-z]\))$").expect("static regex")
});

/// Byte offsets of the top-level `=` signs of `s` (not `<=`, `>=`, `!=`,
/// `==`, nor inside brackets), and of `\approx`, with their lengths.
fn top_level_equals(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'=' if depth == 0 => {
                let prev = i.checked_sub(1).map(|p| b[p]);
                let next = b.get(i + 1).copied();
                if !matches!(prev, Some(b'<' | b'>' | b'!' | b'=' | b'\\')) && next != Some(b'=') {
                    out.push((i, 1));
                }
            }
            b'\\' if depth == 0 && s.get(i..).is_some_and(|t| t.starts_with(r"\approx")) => {
                out.push((i, r"\approx".len()));
                i += r"\approx".len();
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `\frac{7}{6} \approx 1.167` answers `\frac{7}{6}`: the text before the
/// first top-level `\approx`, unless that is a lone variable (`x \approx 3.1`
/// stays an assignment).
pub fn drop_approximation(s: &str) -> &str {
    let Some(&(pos, _)) = top_level_equals(s)
        .iter()
        .find(|&&(p, len)| len > 1 && s.get(p..).is_some_and(|t| t.starts_with(r"\approx")))
    else {
        return s;
    };
    let head = s.get(..pos).unwrap_or(s).trim();
    let lone = match head.rsplit_once('=') {
        Some((_, h)) => h.trim().is_empty(),
        None => TARGET.is_match(head),
    };
    if head.is_empty() || lone {
        s
    } else {
        head
    }
}

/// True when `s` has a top-level `=`.
pub fn has_equals(s: &str) -> bool {
    !top_level_equals(s).is_empty()
}

/// True when `s` is a list of two or more equations (`x = 3, y = -2`).
pub fn is_equation_list(s: &str) -> bool {
    let parts = split_top_level(s, ',');
    parts.len() > 1 && parts.iter().filter(|p| has_equals(p)).count() > 1
}

/// Splits a cleaned string at its top-level `=`; `None` when there is none
/// or a side is empty. `parse_side` parses the right-hand side.
pub fn parse_equation<R>(s: &str, parse_side: impl Fn(&str) -> R) -> Option<Equation<R>> {
    let eqs = top_level_equals(s);
    let (&(first, _), &(last, len)) = (eqs.first()?, eqs.last()?);
    let lhs = s.get(..first)?.trim();
    let rhs = s.get(last + len..)?.trim();
    if lhs.is_empty() || rhs.is_empty() {
        return None;
    }
    let var = TARGET.is_match(lhs).then(|| lhs.replace(['{', '}'], ""));
    let diff = match (parse_expr(lhs), parse_expr(rhs)) {
        (Some(l), Some(r)) => Some(Expr::Sum(vec![(false, l), (true, r)])),
        _ => None,
    };
    Some(Equation {
        lhs: lhs.to_string(),
        rhs: parse_side(rhs),
        var,
        diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(s: &str) -> Option<Equation<String>> {
        parse_equation(s, str::to_string)
    }

    #[test]
    fn assignments_name_their_variable() {
        let e = eq("y = 2x + 3").unwrap();
        assert_eq!(e.var.as_deref(), Some("y"));
        assert_eq!(e.lhs, "y");
        assert!(e.diff.is_some());
        assert_eq!(eq("a_{1} = 4").unwrap().var.as_deref(), Some("a_1"));
        assert_eq!(eq("f(x) = x^2").unwrap().var.as_deref(), Some("f(x)"));
        assert_eq!(eq("4a - b = 2").unwrap().var, None);
    }

    #[test]
    fn chains_keep_first_and_last_and_relations_are_not_equations() {
        let e = eq("x = 2 + 3 = 5").unwrap();
        assert_eq!((e.lhs.as_str(), e.rhs.as_str()), ("x", "5"));
        assert!(eq(r"x \le 3").is_none());
        assert!(eq("x <= 3").is_none());
        assert!(eq(r"\{x = 1, x = 2\}").is_none(), "inside braces");
        assert!(eq("= 3").is_none());
        assert_eq!(eq(r"x \approx 3.14").unwrap().var.as_deref(), Some("x"));
    }

    #[test]
    fn approximations_keep_the_exact_value() {
        assert_eq!(
            drop_approximation(r"\frac{7}{6} \approx 1.167"),
            r"\frac{7}{6}"
        );
        assert_eq!(
            drop_approximation(r"p = \frac{1}{3} \approx 0.33"),
            r"p = \frac{1}{3}"
        );
        assert_eq!(drop_approximation(r"x \approx 3.14"), r"x \approx 3.14");
        assert_eq!(drop_approximation("7"), "7");
    }

    #[test]
    fn equation_lists() {
        assert!(is_equation_list("x = 3, y = -2"));
        assert!(!is_equation_list("x = 2, 3"));
    }
}
