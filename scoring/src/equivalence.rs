//! Math-aware equivalence of two (already extracted) answers.

use crate::math::answer::{Answer, CollKind};
use crate::math::expr::Expr;
use crate::math::identity;
use crate::math::number::{Rational, Tolerance, Value};
use serde::Serialize;

/// Result of comparing two answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub equal: bool,
    pub reason: String,
}

impl Judgement {
    fn yes(reason: impl Into<String>) -> Self {
        Judgement {
            equal: true,
            reason: reason.into(),
        }
    }
    fn no(reason: impl Into<String>) -> Self {
        Judgement {
            equal: false,
            reason: reason.into(),
        }
    }
}

/// Largest collection compared element-by-element (larger ones fall back
/// to comparing canonical renderings).
const MAX_MATCHING: usize = 64;

/// Compares two raw answer strings with the default tolerance.
pub fn equivalent(a: &str, b: &str) -> Judgement {
    equivalent_with(a, b, &Tolerance::default())
}

/// Compares two raw answer strings with an explicit tolerance.
pub fn equivalent_with(a: &str, b: &str, tol: &Tolerance) -> Judgement {
    answers_equivalent(&Answer::parse(a), &Answer::parse(b), tol)
}

fn percent_scaled(v: Value) -> Value {
    v.checked_div(Value::Exact(Rational::int(100))).unwrap_or(v)
}

fn numbers(a: Value, pa: bool, b: Value, pb: bool, tol: &Tolerance) -> Judgement {
    let both_exact = matches!((a, b), (Value::Exact(_), Value::Exact(_)));
    if tol.values_equal(a, b) {
        return Judgement::yes(if both_exact {
            "equal as exact rationals"
        } else {
            "numerically equal within tolerance"
        });
    }
    if (pa && !pb && tol.values_equal(percent_scaled(a), b))
        || (pb && !pa && tol.values_equal(a, percent_scaled(b)))
    {
        return Judgement::yes("equal after percent scaling");
    }
    Judgement::no(if both_exact {
        "different rational values"
    } else {
        "numeric values differ beyond tolerance"
    })
}

fn sample_compare(ea: &Expr, eb: &Expr, tol: &Tolerance) -> Judgement {
    match identity::same_values(ea, eb, tol) {
        Ok(why) => Judgement::yes(why),
        Err(why) => Judgement::no(why),
    }
}

/// Equations: see [`crate::math::equation`] for the rules.
fn equations(a: &Answer, b: &Answer, tol: &Tolerance) -> Option<Judgement> {
    match (a, b) {
        (Answer::Equation(ea), Answer::Equation(eb)) => Some(match (&ea.var, &eb.var) {
            (Some(va), Some(vb)) if va != vb => {
                Judgement::no(format!("different variables ({va} vs {vb})"))
            }
            (Some(_), Some(_)) => answers_equivalent(&ea.rhs, &eb.rhs, tol),
            _ => match (&ea.diff, &eb.diff) {
                (Some(da), Some(db)) => match identity::proportional(da, db, tol) {
                    Ok(why) => Judgement::yes(why),
                    Err(why) => Judgement::no(why),
                },
                _ if ea.lhs == eb.lhs => answers_equivalent(&ea.rhs, &eb.rhs, tol),
                _ => Judgement::no("equations cannot be compared"),
            },
        }),
        // The prediction is an equation, the gold a value: its right side.
        (_, Answer::Equation(eb)) => Some(answers_equivalent(a, &eb.rhs, tol)),
        // An assignment gold (`y = 7`) against a value: the assigned value.
        (Answer::Equation(ea), _) if ea.var.is_some() => Some(answers_equivalent(&ea.rhs, b, tol)),
        (Answer::Equation(_), _) => {
            Some(Judgement::no("gold is an equation, the prediction is not"))
        }
        _ => None,
    }
}

/// Drops items equivalent to an earlier item (sets ignore duplicates).
fn dedup<'a>(items: &'a [Answer], tol: &Tolerance) -> Vec<&'a Answer> {
    let mut out: Vec<&Answer> = Vec::with_capacity(items.len());
    for x in items {
        if !out.iter().any(|y| answers_equivalent(y, x, tol).equal) {
            out.push(x);
        }
    }
    out
}

fn as_expr(a: &Answer) -> Option<Expr> {
    match a {
        Answer::Expr { expr, .. } => Some(expr.clone()),
        Answer::Number {
            value,
            percent: false,
            ..
        } => Some(Expr::Const(*value)),
        _ => None,
    }
}

fn text_key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_matches(|c: char| "()[].:*\"'`".contains(c))
        .to_string()
}

/// Kuhn's augmenting-path matching; `adj[i][j]` means a[i] ~ b[j].
fn perfect_matching(adj: &[Vec<bool>]) -> bool {
    let n = adj.len();
    let mut match_b: Vec<Option<usize>> = vec![None; n];
    for start in 0..n {
        // Iterative DFS over alternating paths.
        let mut seen = vec![false; n];
        let mut parent: Vec<Option<(usize, usize)>> = vec![None; n]; // b -> (a, prev_b)
        let mut stack = vec![(start, None::<usize>)];
        let mut found = None;
        while let Some((a, via)) = stack.pop() {
            for b in 0..n {
                if !adj[a][b] || seen[b] {
                    continue;
                }
                seen[b] = true;
                parent[b] = Some((a, via.unwrap_or(usize::MAX)));
                match match_b[b] {
                    None => {
                        found = Some(b);
                        break;
                    }
                    Some(a2) => stack.push((a2, Some(b))),
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some(mut b) = found else { return false };
        // Flip the path back to `start`.
        while let Some((a, prev)) = parent[b] {
            match_b[b] = Some(a);
            if prev == usize::MAX {
                break;
            }
            b = prev;
        }
    }
    true
}

/// Collections too large to match element by element: canonical renderings.
fn large_collections(ia: &[Answer], ib: &[Answer]) -> Judgement {
    let mut ra: Vec<String> = ia.iter().map(Answer::render).collect();
    let mut rb: Vec<String> = ib.iter().map(Answer::render).collect();
    ra.sort();
    rb.sort();
    if ra == rb {
        Judgement::yes("large collections match textually")
    } else {
        Judgement::no("large collections differ textually")
    }
}

fn collections(
    ka: CollKind,
    ia: &[Answer],
    kb: CollKind,
    ib: &[Answer],
    tol: &Tolerance,
) -> Judgement {
    if ka.ordered() != kb.ordered() {
        return Judgement::no("ordered tuple/interval vs unordered collection");
    }
    if ka.ordered() && ka != kb {
        return Judgement::no("bracket kinds differ (open vs closed interval?)");
    }
    if ia.len() > MAX_MATCHING || ib.len() > MAX_MATCHING {
        return large_collections(ia, ib);
    }
    let set = ka == CollKind::Set || kb == CollKind::Set;
    let (da, db): (Vec<&Answer>, Vec<&Answer>) = if set {
        (dedup(ia, tol), dedup(ib, tol))
    } else {
        (ia.iter().collect(), ib.iter().collect())
    };
    let (ia, ib) = (da.as_slice(), db.as_slice());
    if ia.len() != ib.len() {
        return Judgement::no(format!(
            "collection sizes differ ({} vs {})",
            ia.len(),
            ib.len()
        ));
    }
    if ka.ordered() {
        for (k, (x, y)) in ia.iter().zip(ib).enumerate() {
            let j = answers_equivalent(x, y, tol);
            if !j.equal {
                return Judgement::no(format!("element {k} differs: {}", j.reason));
            }
        }
        return Judgement::yes("ordered collections match element-wise");
    }
    let adj: Vec<Vec<bool>> = ia
        .iter()
        .map(|x| {
            ib.iter()
                .map(|y| answers_equivalent(x, y, tol).equal)
                .collect()
        })
        .collect();
    if perfect_matching(&adj) {
        Judgement::yes("unordered collections match as multisets")
    } else {
        Judgement::no("unordered collections differ")
    }
}

/// Compares two parsed answers.
pub fn answers_equivalent(a: &Answer, b: &Answer, tol: &Tolerance) -> Judgement {
    if matches!(a, Answer::Expr { .. } | Answer::Collection { .. })
        && a.kind_name() == b.kind_name()
        && a.render() == b.render()
    {
        return Judgement::yes("identical normal form");
    }
    if let Some(j) = equations(a, b, tol) {
        return j;
    }
    match (a, b) {
        (
            Answer::Number {
                value: va,
                percent: pa,
                ..
            },
            Answer::Number {
                value: vb,
                percent: pb,
                ..
            },
        ) => numbers(*va, *pa, *vb, *pb, tol),
        (
            Answer::Collection {
                kind: ka,
                items: ia,
            },
            Answer::Collection {
                kind: kb,
                items: ib,
            },
        ) => collections(*ka, ia, *kb, ib, tol),
        (Answer::Text(_), _) | (_, Answer::Text(_)) => {
            let (ta, tb) = (text_key(&a.render()), text_key(&b.render()));
            if ta == tb {
                Judgement::yes("text matches (case-insensitive)")
            } else if matches!((a, b), (Answer::Text(_), Answer::Text(_))) {
                Judgement::no("text differs")
            } else {
                Judgement::no(format!(
                    "cannot compare {} with {}",
                    a.kind_name(),
                    b.kind_name()
                ))
            }
        }
        _ => match (as_expr(a), as_expr(b)) {
            (Some(ea), Some(eb)) => sample_compare(&ea, &eb, tol),
            _ => Judgement::no(format!(
                "cannot compare {} with {}",
                a.kind_name(),
                b.kind_name()
            )),
        },
    }
}
