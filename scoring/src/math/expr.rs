//! A small, depth-bounded LaTeX/ASCII arithmetic expression parser and
//! evaluator: numbers, `+ - * / ^`, `\frac`, `\sqrt`, `\pi`, `\infty`,
//! `\cdot`, `\times`, `\div`, a few functions, single-letter variables and
//! implicit multiplication (`2\pi`, `3x`, `2(x+1)`).
//!
//! Sums and products are stored n-ary, so tree depth is bounded by the
//! bracket nesting depth, which the parser caps at [`MAX_DEPTH`].

pub use super::lex::Func;
use super::lex::{tokenize, Tok};
use super::number::{Rational, Value};

/// Maximum bracket/argument nesting accepted before giving up.
pub const MAX_DEPTH: usize = 48;
/// Longest input the expression parser will attempt.
pub const MAX_LEN: usize = 2000;

/// Parsed expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(Value),
    Var(char),
    /// Sum of signed terms (`true` = subtract).
    Sum(Vec<(bool, Expr)>),
    /// Product of factors (`true` = divide).
    Product(Vec<(bool, Expr)>),
    Neg(Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Root(Box<Expr>, Option<Box<Expr>>),
    Fact(Box<Expr>),
    Call(Func, Box<Expr>),
}

fn closer(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn expr(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut terms = Vec::new();
        let mut neg = false;
        if matches!(self.peek(), Some(Tok::Plus | Tok::Minus)) {
            neg = self.next() == Some(Tok::Minus);
        }
        terms.push((neg, self.term()?));
        while let Some(t @ (Tok::Plus | Tok::Minus)) = self.peek() {
            let neg = *t == Tok::Minus;
            self.pos += 1;
            terms.push((neg, self.term()?));
        }
        self.depth -= 1;
        Some(if terms.len() == 1 && !terms[0].0 {
            terms.pop()?.1
        } else {
            Expr::Sum(terms)
        })
    }

    fn starts_atom(t: &Tok) -> bool {
        matches!(
            t,
            Tok::Num(_)
                | Tok::Var(_)
                | Tok::Pi
                | Tok::Infty
                | Tok::Open(_)
                | Tok::Frac
                | Tok::Sqrt
                | Tok::Func(_)
        )
    }

    fn term(&mut self) -> Option<Expr> {
        let mut factors = vec![(false, self.unary()?)];
        loop {
            match self.peek() {
                Some(Tok::Mul) => {
                    self.pos += 1;
                    factors.push((false, self.unary()?));
                }
                Some(Tok::Div) => {
                    self.pos += 1;
                    factors.push((true, self.unary()?));
                }
                Some(t) if Self::starts_atom(t) => {
                    // Implicit multiplication, but never number-number ("2 3").
                    if matches!(t, Tok::Num(_)) {
                        return None;
                    }
                    factors.push((false, self.power()?));
                }
                _ => break,
            }
        }
        Some(if factors.len() == 1 {
            factors.pop()?.1
        } else {
            Expr::Product(factors)
        })
    }

    fn unary(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                Expr::Neg(Box::new(self.unary()?))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary()?
            }
            _ => self.power()?,
        };
        self.depth -= 1;
        Some(e)
    }

    fn power(&mut self) -> Option<Expr> {
        let mut base = self.atom()?;
        let mut bangs = 0;
        while self.peek() == Some(&Tok::Bang) {
            bangs += 1;
            if bangs > 2 {
                return None;
            }
            self.pos += 1;
            base = Expr::Fact(Box::new(base));
        }
        if self.peek() == Some(&Tok::Caret) {
            self.pos += 1;
            // `2^10` is read as 2^{10} (ASCII habit), not LaTeX's 2^{1}0.
            let exp = self.unary()?;
            return Some(Expr::Pow(Box::new(base), Box::new(exp)));
        }
        Some(base)
    }

    /// Single-token argument as in `\frac34` (first digit only).
    fn single_digit_or_num(&mut self) -> Option<Expr> {
        if let Some(Tok::Num(lit)) = self.peek().cloned() {
            let mut it = lit.chars();
            let first = it.next()?;
            let rest: String = it.collect();
            if first.is_ascii_digit()
                && !rest.is_empty()
                && rest.bytes().all(|b| b.is_ascii_digit())
            {
                self.toks[self.pos] = Tok::Num(rest);
                return Some(Expr::Const(Value::Exact(Rational::int(i128::from(
                    first.to_digit(10)?,
                )))));
            }
        }
        self.atom()
    }

    /// A LaTeX command argument: `{...}` or a single token.
    fn arg(&mut self) -> Option<Expr> {
        match self.peek() {
            Some(Tok::Open('{')) => self.atom(),
            Some(Tok::Num(_)) => self.single_digit_or_num(),
            Some(Tok::Var(_) | Tok::Pi | Tok::Infty) => self.atom(),
            _ => None,
        }
    }

    fn atom(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = match self.next()? {
            Tok::Num(lit) => Expr::Const(match Rational::from_decimal(&lit) {
                Some(r) => Value::Exact(r),
                None => Value::Real(lit.parse::<f64>().ok()?),
            }),
            Tok::Var(c) => Expr::Var(c),
            Tok::Pi => Expr::Const(Value::Real(std::f64::consts::PI)),
            Tok::Infty => Expr::Const(Value::Real(f64::INFINITY)),
            Tok::Open(o) => {
                let inner = self.expr()?;
                if self.next()? != Tok::Close(closer(o)) {
                    return None;
                }
                inner
            }
            Tok::Bar => {
                let inner = self.expr()?;
                if self.next()? != Tok::Bar {
                    return None;
                }
                Expr::Call(Func::Abs, Box::new(inner))
            }
            Tok::Frac => {
                let n = self.arg()?;
                let d = self.arg()?;
                Expr::Product(vec![(false, n), (true, d)])
            }
            Tok::Sqrt => {
                let index = if self.peek() == Some(&Tok::Open('[')) {
                    Some(Box::new(self.atom()?))
                } else {
                    None
                };
                Expr::Root(Box::new(self.arg()?), index)
            }
            Tok::Func(f) => {
                let a = match self.peek() {
                    Some(Tok::Open(_)) => self.atom()?,
                    _ => self.power()?,
                };
                Expr::Call(f, Box::new(a))
            }
            _ => return None,
        };
        self.depth -= 1;
        Some(e)
    }
}

/// Parses an expression; `None` when the text is not (supported) arithmetic.
pub fn parse_expr(s: &str) -> Option<Expr> {
    if s.len() > MAX_LEN {
        return None;
    }
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return None;
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    (p.pos == p.toks.len()).then_some(e)
}

impl Expr {
    /// Distinct variables, sorted.
    pub fn vars(&self) -> Vec<char> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect_vars(&self, out: &mut Vec<char>) {
        match self {
            Expr::Const(_) => {}
            Expr::Var(c) => out.push(*c),
            Expr::Sum(v) | Expr::Product(v) => v.iter().for_each(|(_, e)| e.collect_vars(out)),
            Expr::Neg(e) | Expr::Fact(e) | Expr::Call(_, e) => e.collect_vars(out),
            Expr::Pow(a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            Expr::Root(a, b) => {
                a.collect_vars(out);
                if let Some(b) = b {
                    b.collect_vars(out);
                }
            }
        }
    }

    /// Evaluates with `env` giving each variable's value. `None` on
    /// division by zero, an unbound variable, or a value that overflows
    /// `f64` (`10^{10^{10}}`): only a literal `\infty` is infinite.
    pub fn eval(&self, env: &dyn Fn(char) -> Option<f64>) -> Option<Value> {
        let v = self.eval_node(env)?;
        let overflow = matches!(v, Value::Real(x) if x.is_infinite())
            && matches!(self, Expr::Pow(..) | Expr::Product(_) | Expr::Call(..));
        (!overflow).then_some(v)
    }

    fn eval_node(&self, env: &dyn Fn(char) -> Option<f64>) -> Option<Value> {
        Some(match self {
            Expr::Const(v) => *v,
            Expr::Var(c) => Value::Real(env(*c)?),
            Expr::Sum(terms) => {
                let mut acc = Value::Exact(Rational::int(0));
                for (neg, t) in terms {
                    let v = t.eval(env)?;
                    acc = if *neg { acc.minus(v) } else { acc.plus(v) };
                }
                acc
            }
            Expr::Product(fs) => {
                let mut acc = Value::Exact(Rational::int(1));
                for (div, f) in fs {
                    let v = f.eval(env)?;
                    acc = if *div {
                        acc.checked_div(v)?
                    } else {
                        acc.times(v)
                    };
                }
                acc
            }
            Expr::Neg(e) => e.eval(env)?.negate(),
            Expr::Pow(a, b) => {
                let base = a.eval(env)?;
                let v = base.pow(b.eval(env)?);
                // Underflow (0.5^{10^{10}}) carries no information either.
                if matches!(v, Value::Real(x) if x == 0.0 || x.is_subnormal())
                    && base.to_f64() != 0.0
                {
                    return None;
                }
                v
            }
            Expr::Root(a, None) => a.eval(env)?.sqrt(),
            Expr::Root(a, Some(n)) => {
                let n = n.eval(env)?;
                let a = a.eval(env)?;
                match n {
                    Value::Exact(r) if r.numer() != 0 => {
                        let inv = Value::Exact(r.recip()?);
                        let exact = a.pow(inv);
                        // Odd roots of negatives are real.
                        if a.to_f64() < 0.0 && r.is_integer() && r.numer() % 2 != 0 {
                            Value::Real(-(-a.to_f64()).powf(1.0 / r.to_f64()))
                        } else {
                            exact
                        }
                    }
                    _ => Value::Real(a.to_f64().powf(1.0 / n.to_f64())),
                }
            }
            Expr::Fact(e) => match e.eval(env)? {
                Value::Exact(r) if r.is_integer() && (0..=33).contains(&r.numer()) => {
                    let mut acc = Rational::int(1);
                    for k in 2..=r.numer() {
                        acc = acc.checked_mul(Rational::int(k))?;
                    }
                    Value::Exact(acc)
                }
                _ => return None,
            },
            Expr::Call(Func::Abs, e) => match e.eval(env)? {
                Value::Exact(r) if r.numer() < 0 => Value::Exact(r.checked_neg()?),
                Value::Real(x) => Value::Real(x.abs()),
                v => v,
            },
            Expr::Call(f, e) => {
                let x = e.eval(env)?.to_f64();
                Value::Real(match f {
                    Func::Sin => x.sin(),
                    Func::Cos => x.cos(),
                    Func::Tan => x.tan(),
                    Func::Ln => x.ln(),
                    Func::Log => x.log10(),
                    Func::Exp => x.exp(),
                    Func::Abs => x.abs(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Option<Value> {
        parse_expr(s)?.eval(&|_| None)
    }

    fn exact(n: i128, d: i128) -> Option<Value> {
        Some(Value::Exact(Rational::new(n, d)?))
    }

    #[test]
    fn evaluates_fractions_and_powers() {
        assert_eq!(val(r"\frac{3}{4}"), exact(3, 4));
        assert_eq!(val(r"\frac34"), exact(3, 4));
        assert_eq!(val(r"-\frac{1}{2}+1"), exact(1, 2));
        assert_eq!(val("2^10"), exact(1024, 1));
        assert_eq!(val("2^{-2}"), exact(1, 4));
        assert_eq!(val(r"\sqrt{16}"), exact(4, 1));
        assert_eq!(val(r"1.5\times10^{3}"), exact(1500, 1));
        assert_eq!(val("5!"), exact(120, 1));
        assert_eq!(val(r"\sqrt[3]{8}"), exact(2, 1));
    }

    #[test]
    fn rejects_prose_and_junk() {
        assert!(parse_expr("yes").is_none());
        assert!(parse_expr("2 3").is_none());
        assert!(parse_expr("(1").is_none());
        assert!(parse_expr(&"(".repeat(500)).is_none());
        assert!(val("1/0").is_none());
    }

    #[test]
    fn overflowing_values_are_undefined() {
        assert!(val("10^{10^{10}}").is_none());
        assert!(val("2^{2^{2^{2^{2}}}}").is_none());
        assert!(val("10^{300} \\cdot 10^{300}").is_none());
        assert!(val("1000000!").is_none());
        assert_eq!(val(r"-\infty").map(Value::to_f64), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn implicit_multiplication_and_vars() {
        let e = parse_expr(r"2\pi r").unwrap();
        assert_eq!(e.vars(), vec!['r']);
        let v = e.eval(&|_| Some(1.0)).unwrap().to_f64();
        assert!((v - 2.0 * std::f64::consts::PI).abs() < 1e-12);
    }
}
