//! Math-aware equivalence of two (already extracted) answers.

use crate::math::answer::{Answer, CollKind};
use crate::math::expr::Expr;
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

const SAMPLE_POINTS: [f64; 4] = [
    0.577_215_664_9,
    std::f64::consts::SQRT_2,
    std::f64::consts::E,
    -std::f64::consts::FRAC_1_PI,
];

fn sample_compare(ea: &Expr, eb: &Expr, tol: &Tolerance) -> Judgement {
    let mut vars = ea.vars();
    vars.extend(eb.vars());
    vars.sort_unstable();
    vars.dedup();
    let mut agreed = 0;
    for (k, base) in SAMPLE_POINTS.iter().enumerate() {
        let env = |c: char| {
            let idx = vars.iter().position(|&v| v == c)? as f64;
            Some(base + 0.61803398875 * idx * (k as f64 + 1.0))
        };
        match (ea.eval(&env), eb.eval(&env)) {
            (Some(x), Some(y)) => {
                let (x, y) = (x.to_f64(), y.to_f64());
                if x.is_nan() && y.is_nan() {
                    continue;
                }
                if !tol.floats_equal(x, y) {
                    return Judgement::no("expressions differ at a sample point");
                }
                agreed += 1;
            }
            (None, None) => {}
            _ => return Judgement::no("expressions differ in domain at a sample point"),
        }
    }
    if agreed >= 2 {
        Judgement::yes(format!("expressions agree at {agreed} sample points"))
    } else {
        Judgement::no("undecidable: too few sample points evaluated")
    }
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
    if ia.len() > MAX_MATCHING {
        let mut ra: Vec<String> = ia.iter().map(Answer::render).collect();
        let mut rb: Vec<String> = ib.iter().map(Answer::render).collect();
        ra.sort();
        rb.sort();
        return if ra == rb {
            Judgement::yes("large unordered collections match textually")
        } else {
            Judgement::no("large unordered collections differ textually")
        };
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
