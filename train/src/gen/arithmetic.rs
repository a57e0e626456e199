//! `arithmetic`: multi-digit addition, subtraction, long multiplication and
//! short multi-step expressions, each with a column trace (see
//! [`columns`](super::columns)) and a `\boxed{}` answer.
//!
//! Traces (the think content):
//! - `Compute 34567+23345.` → `7+5+0=12 6+4+1=11 5+3+1=9 4+3+0=7 3+2+0=5\nr:21975 a:57912`
//! - `Compute 1789-5234.` → `1789-5234=-(5234-1789)\n14-9-0=5 … 5-1-1=3\nr:5443 a:-3445`
//! - `Compute 347*26.` → one `6*7+0=42 … r:2802` line per multiplier digit
//!   (shifted: `r:0496`), the column sum of the partials, `r:2209 a:9022`
//! - `Compute 12+7*8-5.` → one operation per line, the rest of the
//!   expression after `so`: `7*8=56 so 12+56-5` / `12+56: 2+6+0=8 1+5+0=6 r:86 =68 so 68-5` / … / `a:63`

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::columns::{self, digits_lsf, from_lsf, lsf_text};
use super::rng::Rng;
use super::span::Span;
use super::{GenError, Problem, TaskGenerator};

/// The problem kinds `arithmetic` draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    /// A multi-step expression of `+ - *`.
    Expr,
}

impl fmt::Display for ArithOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "sub",
            ArithOp::Mul => "mul",
            ArithOp::Expr => "expr",
        })
    }
}

impl FromStr for ArithOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "add" => Ok(ArithOp::Add),
            "sub" => Ok(ArithOp::Sub),
            "mul" => Ok(ArithOp::Mul),
            "expr" => Ok(ArithOp::Expr),
            other => Err(format!("unknown op `{other}` (add, sub, mul, expr)")),
        }
    }
}

/// Difficulty knobs. The default mixes the four kinds equally: 3–5 digit
/// addition and subtraction, 2–4 digit × 1–2 digit multiplication, and
/// 2–3 step expressions over 1–2 digit numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArithConfig {
    /// Kinds to draw, uniformly.
    pub ops: Vec<ArithOp>,
    /// Digits of each addition/subtraction operand.
    pub digits: Span,
    /// Digits of the first factor of a multiplication.
    pub mul_digits: Span,
    /// Digits of the second factor (one partial product per digit).
    pub mul_by: Span,
    /// Operations in an expression.
    pub steps: Span,
    /// Digits of an expression's numbers (a `*` always takes one digit on its right).
    pub expr_digits: Span,
}

impl Default for ArithConfig {
    fn default() -> Self {
        ArithConfig {
            ops: vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Expr],
            digits: Span::new(3, 5),
            mul_digits: Span::new(2, 4),
            mul_by: Span::new(1, 2),
            steps: Span::new(2, 3),
            expr_digits: Span::new(1, 2),
        }
    }
}

/// Most digits of one operand (products fit in `u128`).
pub const MAX_DIGITS: u32 = 18;

/// The `arithmetic` generator.
#[derive(Debug, Clone)]
pub struct Arithmetic {
    cfg: ArithConfig,
}

impl Arithmetic {
    pub fn new(cfg: ArithConfig) -> Result<Self, GenError> {
        if cfg.ops.is_empty() {
            return Err(GenError::BadConfig("no ops".into()));
        }
        cfg.digits.check("digits", 1, MAX_DIGITS)?;
        cfg.mul_digits.check("mul_digits", 1, MAX_DIGITS)?;
        cfg.mul_by.check("mul_by", 1, MAX_DIGITS)?;
        cfg.steps.check("steps", 1, 8)?;
        cfg.expr_digits.check("expr_digits", 1, 4)?;
        Ok(Arithmetic { cfg })
    }

    pub fn config(&self) -> &ArithConfig {
        &self.cfg
    }
}

/// A number whose digit count is drawn from `span` (one digit: 1–9).
fn number(rng: &mut Rng, span: Span) -> u128 {
    let digits = span.draw(rng);
    let lo = 10u64.pow(digits - 1);
    u128::from(rng.range(lo, 10u64.pow(digits) - 1))
}

fn problem(canonical: String, text: String, lines: Vec<String>, answer: i128) -> Problem {
    Problem {
        canonical,
        prompt: format!("Compute {text}."),
        trace: lines.join("\n"),
        answer: answer.to_string(),
        verifier: "math",
    }
}

/// `r:DIGITS a:N` closing a single-operation trace.
fn close(digits: &[u8], sign: &str) -> String {
    format!("r:{} a:{sign}{}", lsf_text(digits), from_lsf(digits))
}

pub(crate) fn addition(a: u128, b: u128) -> Problem {
    let c = columns::add(&[digits_lsf(a), digits_lsf(b)]);
    let lines = vec![c.steps.join(" "), close(&c.digits, "")];
    let (lo, hi) = (a.min(b), a.max(b));
    problem(
        format!("{lo}+{hi}"),
        format!("{a}+{b}"),
        lines,
        (a + b) as i128,
    )
}

pub(crate) fn subtraction(a: u128, b: u128) -> Problem {
    let mut lines = Vec::new();
    let (top, bottom, sign) = if a >= b {
        (a, b, "")
    } else {
        lines.push(format!("{a}-{b}=-({b}-{a})"));
        (b, a, "-")
    };
    let c = columns::sub(top, bottom);
    lines.push(c.steps.join(" "));
    lines.push(close(&c.digits, sign));
    let text = format!("{a}-{b}");
    problem(text.clone(), text, lines, a as i128 - b as i128)
}

pub(crate) fn multiplication(a: u128, b: u128) -> Problem {
    let (mut lines, digits) = columns::mul(a, b);
    // The last line ends with the product's `r:`; restate the number.
    if let Some(last) = lines.last_mut() {
        let (steps, _) = last.rsplit_once(" r:").unwrap_or((last.as_str(), ""));
        *last = format!("{steps}\n{}", close(&digits, ""));
    }
    let (lo, hi) = (a.min(b), a.max(b));
    problem(
        format!("{lo}*{hi}"),
        format!("{a}*{b}"),
        lines,
        (a * b) as i128,
    )
}

/// One binary operation inside an expression, as one line:
/// `7*8=56` for single digits, else `12+56: 2+6+0=8 1+5+0=6 r:86 =68`.
fn expr_step(x: u128, op: char, y: u128) -> (String, u128) {
    let value = match op {
        '+' => x + y,
        '-' => x - y,
        _ => x * y,
    };
    if x < 10 && y < 10 {
        return (format!("{x}{op}{y}={value}"), value);
    }
    let body = match op {
        '+' => columns::add(&[digits_lsf(x), digits_lsf(y)]).line(),
        '-' => columns::sub(x, y).line(),
        _ => columns::mul(x, y).0.join(" "),
    };
    (format!("{x}{op}{y}: {body} ={value}"), value)
}

fn render(nums: &[u128], ops: &[char]) -> String {
    let mut s = nums[0].to_string();
    for (op, n) in ops.iter().zip(&nums[1..]) {
        s.push(*op);
        s.push_str(&n.to_string());
    }
    s
}

/// Draws an expression whose every intermediate value is non-negative;
/// `None` when this draw went negative (the caller draws again).
fn expression(rng: &mut Rng, cfg: &ArithConfig) -> Option<Problem> {
    let k = cfg.steps.draw(rng) as usize;
    let mut ops = Vec::with_capacity(k);
    let mut nums = vec![number(rng, cfg.expr_digits)];
    for _ in 0..k {
        let op = *rng.pick(&['+', '-', '*']);
        ops.push(op);
        nums.push(if op == '*' {
            u128::from(rng.range(2, 9))
        } else {
            number(rng, cfg.expr_digits)
        });
    }
    let text = render(&nums, &ops);
    let mut lines = Vec::with_capacity(k + 1);
    let (mut n, mut o) = (nums, ops);
    while !o.is_empty() {
        // Multiplications first, then left to right.
        let i = o.iter().position(|&c| c == '*').unwrap_or(0);
        if o[i] == '-' && n[i] < n[i + 1] {
            return None;
        }
        let (line, value) = expr_step(n[i], o[i], n[i + 1]);
        n[i] = value;
        n.remove(i + 1);
        o.remove(i);
        lines.push(if o.is_empty() {
            line
        } else {
            format!("{line} so {}", render(&n, &o))
        });
    }
    lines.push(format!("a:{}", n[0]));
    Some(problem(text.clone(), text, lines, n[0] as i128))
}

impl TaskGenerator for Arithmetic {
    fn kind(&self) -> &'static str {
        "arithmetic"
    }

    fn draw(&self, rng: &mut Rng) -> Problem {
        let cfg = &self.cfg;
        loop {
            match *rng.pick(&cfg.ops) {
                ArithOp::Add => {
                    let a = number(rng, cfg.digits);
                    return addition(a, number(rng, cfg.digits));
                }
                ArithOp::Sub => {
                    let a = number(rng, cfg.digits);
                    return subtraction(a, number(rng, cfg.digits));
                }
                ArithOp::Mul => {
                    let a = number(rng, cfg.mul_digits);
                    return multiplication(a, number(rng, cfg.mul_by));
                }
                ArithOp::Expr => {
                    if let Some(p) = expression(rng, cfg) {
                        return p;
                    }
                }
            }
        }
    }
}
