//! Exact i128 rationals and the `Value` type (exact rational or real).

use std::cmp::Ordering;
use std::fmt;

/// A reduced fraction `n/d` with `d > 0`. All arithmetic is checked:
/// overflow yields `None` and callers fall back to `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    n: i128,
    d: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    // Works on magnitudes; i128::MIN is rejected by callers via checked_abs.
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// Builds `n/d`, reducing. `None` on zero denominator or overflow.
    pub fn new(n: i128, d: i128) -> Option<Self> {
        if d == 0 {
            return None;
        }
        n.checked_abs()?;
        d.checked_abs()?;
        let g = gcd(n, d).max(1);
        let (mut n, mut d) = (n / g, d / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Rational { n, d })
    }

    pub fn int(n: i128) -> Self {
        Rational { n, d: 1 }
    }

    pub fn numer(&self) -> i128 {
        self.n
    }

    pub fn denom(&self) -> i128 {
        self.d
    }

    pub fn is_integer(&self) -> bool {
        self.d == 1
    }

    pub fn to_f64(self) -> f64 {
        self.n as f64 / self.d as f64
    }

    pub fn checked_add(self, o: Self) -> Option<Self> {
        let n = self
            .n
            .checked_mul(o.d)?
            .checked_add(o.n.checked_mul(self.d)?)?;
        Rational::new(n, self.d.checked_mul(o.d)?)
    }

    pub fn checked_neg(self) -> Option<Self> {
        Some(Rational {
            n: self.n.checked_neg()?,
            d: self.d,
        })
    }

    pub fn checked_sub(self, o: Self) -> Option<Self> {
        self.checked_add(o.checked_neg()?)
    }

    pub fn checked_mul(self, o: Self) -> Option<Self> {
        // Cross-reduce first to limit overflow.
        let g1 = gcd(self.n, o.d).max(1);
        let g2 = gcd(o.n, self.d).max(1);
        let n = (self.n / g1).checked_mul(o.n / g2)?;
        let d = (self.d / g2).checked_mul(o.d / g1)?;
        Rational::new(n, d)
    }

    pub fn recip(self) -> Option<Self> {
        Rational::new(self.d, self.n)
    }

    pub fn checked_div(self, o: Self) -> Option<Self> {
        self.checked_mul(o.recip()?)
    }

    /// Integer power with `|e| <= 4096`; `None` on overflow or `0^negative`.
    pub fn pow(self, e: i128) -> Option<Self> {
        if e.abs() > 4096 {
            return None;
        }
        let base = if e < 0 { self.recip()? } else { self };
        let mut acc = Rational::int(1);
        let mut b = base;
        let mut k = e.unsigned_abs();
        while k > 0 {
            if k & 1 == 1 {
                acc = acc.checked_mul(b)?;
            }
            k >>= 1;
            if k > 0 {
                b = b.checked_mul(b)?;
            }
        }
        Some(acc)
    }

    /// Exact square root when numerator and denominator are perfect squares.
    pub fn sqrt_exact(self) -> Option<Self> {
        if self.n < 0 {
            return None;
        }
        let rn = isqrt(self.n)?;
        let rd = isqrt(self.d)?;
        Rational::new(rn, rd)
    }

    /// Exact `q`-th root (`1 <= q <= 64`) when one exists.
    pub fn root_exact(self, q: i128) -> Option<Self> {
        if !(1..=64).contains(&q) {
            return None;
        }
        if self.n < 0 && q % 2 == 0 {
            return None;
        }
        let n = iroot(self.n.checked_abs()?, q)?;
        let d = iroot(self.d, q)?;
        let n = if self.n < 0 { -n } else { n };
        Rational::new(n, d)
    }

    /// Parses a plain decimal literal like `12`, `-0.50`, `1.5e3`, `.25`.
    pub fn from_decimal(lit: &str) -> Option<Self> {
        let (mant, exp) = match lit.find(['e', 'E']) {
            Some(i) => (lit.get(..i)?, lit.get(i + 1..)?.parse::<i32>().ok()?),
            None => (lit, 0),
        };
        let (neg, mant) = match mant.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mant.strip_prefix('+').unwrap_or(mant)),
        };
        let (int_part, frac_part) = match mant.split_once('.') {
            Some((a, b)) => (a, b),
            None => (mant, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let m: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let scale = i128::from(exp) - frac_part.len() as i128;
        let ten = Rational::int(10).pow(scale)?;
        let v = Rational::int(m).checked_mul(ten)?;
        if neg {
            v.checked_neg()
        } else {
            Some(v)
        }
    }
}

fn isqrt(v: i128) -> Option<i128> {
    if v < 0 {
        return None;
    }
    let mut r = (v as f64).sqrt() as i128;
    // Correct the float estimate.
    while r > 0 && r.checked_mul(r).is_none_or(|sq| sq > v) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|sq| sq <= v) {
        r += 1;
    }
    if r.checked_mul(r)? == v {
        Some(r)
    } else {
        None
    }
}

fn iroot(v: i128, q: i128) -> Option<i128> {
    let est = (v as f64).powf(1.0 / q as f64).round() as i128;
    let q = u32::try_from(q).ok()?;
    (est.saturating_sub(1)..=est.saturating_add(1)).find(|&r| r >= 0 && r.checked_pow(q) == Some(v))
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.d == 1 {
            write!(f, "{}", self.n)
        } else {
            write!(f, "{}/{}", self.n, self.d)
        }
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.n.checked_mul(other.d), other.n.checked_mul(self.d)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => self.to_f64().partial_cmp(&other.to_f64()),
        }
    }
}

/// A numeric value: exact when every step stayed rational, otherwise real.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Exact(Rational),
    Real(f64),
}

impl Value {
    pub fn to_f64(self) -> f64 {
        match self {
            Value::Exact(r) => r.to_f64(),
            Value::Real(x) => x,
        }
    }

    fn real_or(r: Option<Rational>, fallback: impl FnOnce() -> f64) -> Value {
        match r {
            Some(r) => Value::Exact(r),
            None => Value::Real(fallback()),
        }
    }

    pub fn plus(self, o: Value) -> Value {
        match (self, o) {
            (Value::Exact(a), Value::Exact(b)) => {
                Value::real_or(a.checked_add(b), || a.to_f64() + b.to_f64())
            }
            _ => Value::Real(self.to_f64() + o.to_f64()),
        }
    }

    pub fn minus(self, o: Value) -> Value {
        match (self, o) {
            (Value::Exact(a), Value::Exact(b)) => {
                Value::real_or(a.checked_sub(b), || a.to_f64() - b.to_f64())
            }
            _ => Value::Real(self.to_f64() - o.to_f64()),
        }
    }

    pub fn negate(self) -> Value {
        match self {
            Value::Exact(a) => Value::real_or(a.checked_neg(), || -a.to_f64()),
            Value::Real(x) => Value::Real(-x),
        }
    }

    pub fn times(self, o: Value) -> Value {
        match (self, o) {
            (Value::Exact(a), Value::Exact(b)) => {
                Value::real_or(a.checked_mul(b), || a.to_f64() * b.to_f64())
            }
            _ => Value::Real(self.to_f64() * o.to_f64()),
        }
    }

    /// Division; `None` on exact division by zero.
    pub fn checked_div(self, o: Value) -> Option<Value> {
        match (self, o) {
            (_, Value::Exact(b)) if b.numer() == 0 => None,
            (Value::Exact(a), Value::Exact(b)) => {
                Some(Value::real_or(a.checked_div(b), || a.to_f64() / b.to_f64()))
            }
            _ => Some(Value::Real(self.to_f64() / o.to_f64())),
        }
    }

    pub fn pow(self, e: Value) -> Value {
        if let (Value::Exact(b), Value::Exact(ex)) = (self, e) {
            if ex.is_integer() {
                if let Some(r) = b.pow(ex.numer()) {
                    return Value::Exact(r);
                }
            } else if let Some(r) = b.root_exact(ex.denom()).and_then(|s| s.pow(ex.numer())) {
                return Value::Exact(r);
            }
        }
        Value::Real(self.to_f64().powf(e.to_f64()))
    }

    pub fn sqrt(self) -> Value {
        if let Value::Exact(r) = self {
            if let Some(s) = r.sqrt_exact() {
                return Value::Exact(s);
            }
        }
        Value::Real(self.to_f64().sqrt())
    }

    /// Canonical text for an exact value; `None` for reals.
    pub fn exact_text(self) -> Option<String> {
        match self {
            Value::Exact(r) => Some(r.to_string()),
            Value::Real(_) => None,
        }
    }
}

/// Numeric tolerance used when at least one side is not an exact rational.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Tolerance {
    /// Relative tolerance (default `1e-6`).
    pub rel: f64,
    /// Absolute tolerance, used near zero (default `1e-9`).
    pub abs: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rel: 1e-6,
            abs: 1e-9,
        }
    }
}

impl Tolerance {
    /// Compares two values: exact equality when both are rational,
    /// tolerance otherwise. NaN never equals anything.
    pub fn values_equal(&self, a: Value, b: Value) -> bool {
        if let (Value::Exact(x), Value::Exact(y)) = (a, b) {
            return x == y;
        }
        self.floats_equal(a.to_f64(), b.to_f64())
    }

    pub fn floats_equal(&self, x: f64, y: f64) -> bool {
        if x.is_nan() || y.is_nan() {
            return false;
        }
        if x == y {
            return true;
        }
        if x.is_infinite() || y.is_infinite() {
            return false;
        }
        let diff = (x - y).abs();
        diff <= self.abs || diff <= self.rel * x.abs().max(y.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_literals_are_exact() {
        assert_eq!(Rational::from_decimal("0.50"), Rational::new(1, 2));
        assert_eq!(Rational::from_decimal("-1.5e3"), Some(Rational::int(-1500)));
        assert_eq!(Rational::from_decimal(".25"), Rational::new(1, 4));
        assert_eq!(Rational::from_decimal("2.5E-1"), Rational::new(1, 4));
        assert_eq!(Rational::from_decimal("abc"), None);
        assert_eq!(Rational::from_decimal("."), None);
    }

    #[test]
    fn overflow_falls_back_to_real() {
        let big = Value::Exact(Rational::int(i128::MAX / 2));
        assert!(matches!(big.times(big), Value::Real(_)));
        assert_eq!(Rational::int(2).pow(200), None);
    }

    #[test]
    fn exact_sqrt_and_pow() {
        assert_eq!(
            Value::Exact(Rational::new(9, 4).unwrap()).sqrt(),
            Value::Exact(Rational::new(3, 2).unwrap())
        );
        assert_eq!(
            Value::Exact(Rational::int(2)).pow(Value::Exact(Rational::int(-2))),
            Value::Exact(Rational::new(1, 4).unwrap())
        );
        assert!(matches!(
            Value::Exact(Rational::int(2)).sqrt(),
            Value::Real(_)
        ));
    }
}
