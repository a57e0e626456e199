//! Numeric identity testing: two expressions are judged equal when they
//! agree at several sample points (with care for domains: a point where
//! exactly one side is undefined is a disagreement, a point where both are
//! undefined is skipped). Chosen over a canonical polynomial form because it
//! also covers radicals, π, functions and rational expressions
//! (`\sqrt{50}` vs `5\sqrt{2}`, `b a^3` vs `a^3 b`, `(x+1)^2` vs `x^2+2x+1`)
//! at a fixed, small cost: [`SAMPLE_POINTS`] evaluations per side.

use super::expr::Expr;
use super::number::Tolerance;

/// Base points; variable `k` at point `p` is `base[p] + 0.618… · k · (p + 1)`,
/// so no two variables share a value and none is a small integer.
const SAMPLE_POINTS: [f64; 6] = [
    0.577_215_664_9,
    std::f64::consts::SQRT_2,
    std::f64::consts::E,
    -std::f64::consts::FRAC_1_PI,
    1.303_577_269,
    -2.236_067_977_5,
];
/// Points that must evaluate on both sides for a "equal" verdict.
const MIN_AGREED: usize = 2;

/// Outcome of a numeric test, with the reason for "not equal".
pub type Verdict = Result<String, &'static str>;

fn union_vars(a: &Expr, b: &Expr) -> Vec<char> {
    let mut vars = a.vars();
    vars.extend(b.vars());
    vars.sort_unstable();
    vars.dedup();
    vars
}

/// Evaluates both sides at each sample point: `Some((x, y))` per point,
/// `None` where both are undefined; `Err` where exactly one is.
fn samples(a: &Expr, b: &Expr) -> Result<Vec<(f64, f64)>, &'static str> {
    let vars = union_vars(a, b);
    let mut out = Vec::with_capacity(SAMPLE_POINTS.len());
    for (k, base) in SAMPLE_POINTS.iter().enumerate() {
        let env = |c: char| {
            let idx = vars.iter().position(|&v| v == c)? as f64;
            Some(base + 0.618_033_988_75 * idx * (k as f64 + 1.0))
        };
        match (a.eval(&env), b.eval(&env)) {
            (Some(x), Some(y)) => {
                let (x, y) = (x.to_f64(), y.to_f64());
                if !(x.is_nan() && y.is_nan()) {
                    out.push((x, y));
                }
            }
            (None, None) => {}
            _ => return Err("expressions differ in domain at a sample point"),
        }
    }
    Ok(out)
}

/// `a == b` at every sample point (within `tol`).
pub fn same_values(a: &Expr, b: &Expr, tol: &Tolerance) -> Verdict {
    let pts = samples(a, b)?;
    if pts.iter().any(|&(x, y)| !tol.floats_equal(x, y)) {
        return Err("expressions differ at a sample point");
    }
    if pts.len() < MIN_AGREED {
        return Err("undecidable: too few sample points evaluated");
    }
    Ok(format!("expressions agree at {} sample points", pts.len()))
}

/// `a == c · b` for one constant `c ≠ 0` at every sample point, with the
/// same variables on both sides: the test for equations `lhs - rhs = 0`.
pub fn proportional(a: &Expr, b: &Expr, tol: &Tolerance) -> Verdict {
    if a.vars() != b.vars() {
        return Err("equations in different variables");
    }
    let mut ratio: Option<f64> = None;
    let mut agreed = 0;
    for (x, y) in samples(a, b)? {
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        let (zx, zy) = (x.abs() <= tol.abs, y.abs() <= tol.abs);
        if zx && zy {
            continue;
        }
        if zx || zy {
            return Err("equations differ at a sample point");
        }
        let r = x / y;
        match ratio {
            Some(r0) if !tol.floats_equal(r, r0) => {
                return Err("equations are not multiples of each other")
            }
            _ => ratio = Some(r),
        }
        agreed += 1;
    }
    if agreed < MIN_AGREED {
        return Err("undecidable: too few sample points evaluated");
    }
    Ok(format!(
        "equations agree up to a constant factor at {agreed} sample points"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::expr::parse_expr;

    fn e(s: &str) -> Expr {
        parse_expr(s).unwrap()
    }

    #[test]
    fn commuted_and_expanded_forms_agree() {
        let t = Tolerance::default();
        assert!(same_values(&e("b a^3"), &e("a^3b"), &t).is_ok());
        assert!(same_values(&e("(x+1)^2"), &e("x^2+2x+1"), &t).is_ok());
        assert!(same_values(&e(r"\sqrt{50}"), &e(r"5\sqrt{2}"), &t).is_ok());
        assert!(same_values(&e("(x+1)^2"), &e("x^2+1"), &t).is_err());
        // 1/x is undefined where x is not: no sample point hits x = 0, so
        // these differ by value, and sqrt(x) vs |x|^(1/2) by domain.
        assert!(same_values(&e(r"\sqrt{x}"), &e(r"\sqrt{|x|}"), &t).is_err());
    }

    #[test]
    fn proportional_needs_one_ratio_and_the_same_variables() {
        let t = Tolerance::default();
        assert!(proportional(&e("2s - 4a - 12"), &e("s - 2a - 6"), &t).is_ok());
        assert!(proportional(&e("y - 2x - 3"), &e("2x - y + 3"), &t).is_ok());
        assert!(proportional(&e("4a - b - 2"), &e("4a - b - 3"), &t).is_err());
        assert_eq!(
            proportional(&e("x - 7"), &e("y - 7"), &t),
            Err("equations in different variables")
        );
    }
}
