//! Countdown: reach a target with `+ - * /` over given numbers, each used at
//! most once. The verifier checks that the completion's final expression
//! evaluates (exactly, over rationals) to the target and uses only
//! available numbers.
//!
//! A reference is either a solution expression (`(8-5)*7+3`: the numbers
//! are its literals, the target its value) or `TARGET from N1 N2 …`
//! (`24 from 3 5 7 8`, commas allowed).

use crate::extract::{extract, ExtractConfig};
use crate::math::number::Rational;
use crate::verdict::{Verdict, Verifier};

/// Deepest parenthesis nesting accepted (the parser is recursive).
const MAX_DEPTH: usize = 32;
/// Longest expression accepted, in bytes.
const MAX_LEN: usize = 512;

/// What a countdown reference says: reach `target` using `numbers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountdownProblem {
    pub target: i128,
    pub numbers: Vec<i128>,
}

/// A parsed arithmetic expression: its value and the integer literals it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    pub value: Rational,
    pub literals: Vec<i128>,
}

/// Parses a reference: `TARGET from N1 N2 …`, or a solution expression.
pub fn parse_reference(reference: &str) -> Result<CountdownProblem, String> {
    let text = reference.trim();
    if let Some((target, numbers)) = text.split_once(" from ") {
        let target = parse_int(target.trim())
            .ok_or_else(|| format!("target `{}` is not an integer", target.trim()))?;
        let numbers = numbers
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| parse_int(s).ok_or_else(|| format!("number `{s}` is not an integer")))
            .collect::<Result<Vec<_>, _>>()?;
        if numbers.is_empty() {
            return Err("no numbers after `from`".into());
        }
        return Ok(CountdownProblem { target, numbers });
    }
    let e = evaluate(text)?;
    if !e.value.is_integer() {
        return Err(format!(
            "reference expression evaluates to {}, not an integer",
            e.value
        ));
    }
    Ok(CountdownProblem {
        target: e.value.numer(),
        numbers: e.literals,
    })
}

fn parse_int(s: &str) -> Option<i128> {
    if s.is_empty() || s.len() > 30 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Evaluates an expression of non-negative integers, `+ - * /` (also `×`,
/// `÷`, `\times`, `\div`, `\cdot`) and parentheses; a trailing `= N` is
/// dropped. Unary minus, decimals and other tokens are errors.
pub fn evaluate(expr: &str) -> Result<Evaluated, String> {
    if expr.len() > MAX_LEN {
        return Err(format!("expression longer than {MAX_LEN} bytes"));
    }
    let tokens = lex(expr)?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        literals: Vec::new(),
    };
    let value = p.sum(0)?;
    match p.tokens.get(p.pos) {
        None => {}
        Some(Tok::Eq) => {
            // `expr = N`: the stated result is not checked against the target
            // here, only that it matches the expression.
            p.pos += 1;
            let Some(Tok::Num(n)) = p.tokens.get(p.pos) else {
                return Err("`=` not followed by a number".into());
            };
            if p.pos + 1 != p.tokens.len() {
                return Err("unexpected text after `= N`".into());
            }
            if value != Rational::int(*n) {
                return Err(format!("expression is {value}, not the stated {n}"));
            }
        }
        Some(t) => return Err(format!("unexpected {}", t.describe())),
    }
    Ok(Evaluated {
        value,
        literals: p.literals,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Num(i128),
    Op(char),
    Open,
    Close,
    Eq,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(n) => format!("number {n}"),
            Tok::Op(c) => format!("`{c}`"),
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
            Tok::Eq => "`=`".into(),
        }
    }
}

fn lex(expr: &str) -> Result<Vec<Tok>, String> {
    let s = expr
        .replace(r"\left", "")
        .replace(r"\right", "")
        .replace(r"\times", "*")
        .replace(r"\cdot", "*")
        .replace(r"\div", "/")
        .replace(['×', '·'], "*")
        .replace('÷', "/");
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() || c == '$' => {}
            '0'..='9' => {
                let mut end = i + 1;
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                if let Some(&(_, '.')) = chars.peek() {
                    return Err("decimals are not allowed".into());
                }
                let lit = &s[i..end];
                let n = parse_int(lit).ok_or_else(|| format!("number `{lit}` is too long"))?;
                out.push(Tok::Num(n));
            }
            '+' | '-' | '*' | '/' => out.push(Tok::Op(c)),
            '(' | '[' | '{' => out.push(Tok::Open),
            ')' | ']' | '}' => out.push(Tok::Close),
            '=' => out.push(Tok::Eq),
            other => return Err(format!("unexpected character `{other}`")),
        }
    }
    if out.is_empty() {
        return Err("empty expression".into());
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Tok],
    pos: usize,
    literals: Vec<i128>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.tokens.get(self.pos).copied()
    }

    fn sum(&mut self, depth: usize) -> Result<Rational, String> {
        let mut acc = self.product(depth)?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            self.pos += 1;
            let rhs = self.product(depth)?;
            acc = if op == '+' {
                acc.checked_add(rhs)
            } else {
                acc.checked_sub(rhs)
            }
            .ok_or("arithmetic overflow")?;
        }
        Ok(acc)
    }

    fn product(&mut self, depth: usize) -> Result<Rational, String> {
        let mut acc = self.atom(depth)?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek() {
            self.pos += 1;
            let rhs = self.atom(depth)?;
            acc = if op == '*' {
                acc.checked_mul(rhs).ok_or("arithmetic overflow")?
            } else {
                if rhs == Rational::int(0) {
                    return Err("division by zero".into());
                }
                acc.checked_div(rhs).ok_or("arithmetic overflow")?
            };
        }
        Ok(acc)
    }

    fn atom(&mut self, depth: usize) -> Result<Rational, String> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                self.literals.push(n);
                Ok(Rational::int(n))
            }
            Some(Tok::Open) => {
                if depth >= MAX_DEPTH {
                    return Err("parentheses nested too deeply".into());
                }
                self.pos += 1;
                let v = self.sum(depth + 1)?;
                if self.peek() != Some(Tok::Close) {
                    return Err("unbalanced parentheses".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Some(Tok::Op('-')) => Err("unary minus is not allowed".into()),
            Some(t) => Err(format!("unexpected {}", t.describe())),
            None => Err("expression ends early".into()),
        }
    }
}

/// The first literal of `used` not available in `allowed` (as a multiset).
fn unavailable(used: &[i128], allowed: &[i128]) -> Option<i128> {
    let mut pool = allowed.to_vec();
    for &n in used {
        match pool.iter().position(|&m| m == n) {
            Some(i) => {
                pool.swap_remove(i);
            }
            None => return Some(n),
        }
    }
    None
}

/// Judges a countdown expression against a problem (no extraction).
pub fn judge(expr: &str, problem: &CountdownProblem) -> Result<(), String> {
    let e = evaluate(expr)?;
    if let Some(n) = unavailable(&e.literals, &problem.numbers) {
        let count = problem.numbers.iter().filter(|&&m| m == n).count();
        return Err(if count == 0 {
            format!("uses {n}, which is not among the numbers")
        } else {
            format!("uses {n} more than {count} time(s)")
        });
    }
    if e.value != Rational::int(problem.target) {
        return Err(format!("evaluates to {}, not {}", e.value, problem.target));
    }
    Ok(())
}

/// The countdown verifier (`verifier_by_name("countdown")`).
#[derive(Debug, Clone)]
pub struct CountdownVerifier {
    pub extract: ExtractConfig,
}

impl Default for CountdownVerifier {
    fn default() -> Self {
        CountdownVerifier {
            extract: ExtractConfig::explicit(),
        }
    }
}

impl Verifier for CountdownVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let problem = match parse_reference(reference) {
            Ok(p) => p,
            Err(e) => {
                return Verdict {
                    correct: false,
                    extracted: None,
                    reason: format!("bad countdown reference: {e}"),
                }
            }
        };
        let Some(e) = extract(completion, &self.extract) else {
            return Verdict {
                correct: false,
                extracted: None,
                reason: "no answer extracted".into(),
            };
        };
        let (correct, reason) = match judge(&e.answer, &problem) {
            Ok(()) => (true, format!("reaches {}", problem.target)),
            Err(r) => (false, r),
        };
        Verdict {
            correct,
            extracted: Some(e.answer),
            reason,
        }
    }

    fn check_reference(&self, reference: &str) -> Result<(), String> {
        parse_reference(reference).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::verifier_by_name;

    fn v() -> Box<dyn Verifier> {
        verifier_by_name("countdown").expect("countdown is registered")
    }

    #[test]
    fn correct_expression_with_each_number_once() {
        let r = v().verify(r"<think>x</think> \boxed{(8-5)*7+3}", "24 from 3 5 7 8");
        assert!(r.correct, "{r:?}");
        assert_eq!(r.extracted.as_deref(), Some("(8-5)*7+3"));
    }

    #[test]
    fn expression_reference_gives_numbers_and_target() {
        let p = parse_reference("(8-5)*7+3").unwrap();
        assert_eq!(
            p,
            CountdownProblem {
                target: 24,
                numbers: vec![8, 5, 7, 3]
            }
        );
        assert!(v().verify(r"\boxed{3+7*(8-5)}", "(8-5)*7+3").correct);
        // A subset of the numbers is allowed ("at most once").
        assert!(v().verify(r"\boxed{3*8}", "(8-5)*7+3").correct);
    }

    #[test]
    fn wrong_value_is_rejected_with_the_value() {
        let r = v().verify(r"\boxed{8*7-5-3}", "24 from 3 5 7 8");
        assert!(!r.correct);
        assert_eq!(r.reason, "evaluates to 48, not 24");
    }

    #[test]
    fn reusing_or_inventing_numbers_is_rejected() {
        let r = v().verify(r"\boxed{8*3}", "24 from 3, 5, 7");
        assert_eq!(r.reason, "uses 8, which is not among the numbers");
        let r = v().verify(r"\boxed{3*3+15}", "24 from 3 15 7");
        assert!(!r.correct);
        assert_eq!(r.reason, "uses 3 more than 1 time(s)");
        // Two 3s available: fine.
        assert!(v().verify(r"\boxed{3*3+15}", "24 from 3 3 15").correct);
    }

    #[test]
    fn exact_rational_division() {
        // 8/(3-8/3) = 24: fractions in between are fine.
        assert!(v().verify(r"\boxed{8/(3-8/3)}", "24 from 3 3 8 8").correct);
        let r = v().verify(r"\boxed{7/(5-5)}", "24 from 5 5 7");
        assert_eq!(r.reason, "division by zero");
    }

    #[test]
    fn symbols_and_stated_result() {
        assert!(
            v().verify(r"\boxed{(8-5)\times 7+3 = 24}", "24 from 3 5 7 8")
                .correct
        );
        assert!(v()
            .verify(r"\boxed{(8 − 5)}", "3 from 8 5")
            .reason
            .contains("unexpected character"));
        let r = v().verify(r"\boxed{8*3=25}", "24 from 3 8");
        assert_eq!(r.reason, "expression is 24, not the stated 25");
    }

    #[test]
    fn malformed_expressions_are_reasons_not_panics() {
        for bad in ["", "(3+5", "3+", "-3+27", "3 5", "2.5*8", "((((", ")"] {
            let r = v().verify(&format!(r"\boxed{{{bad}}}"), "24 from 3 5 8 27 2");
            assert!(!r.correct, "{bad}: {r:?}");
        }
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(evaluate(&deep).unwrap_err().contains("nested"));
    }

    #[test]
    fn no_boxed_answer_is_missing() {
        let r = v().verify("I think it is 24", "24 from 3 8");
        assert!(!r.correct);
        assert_eq!(r.extracted, None);
    }

    #[test]
    fn reference_check() {
        let cd = v();
        assert!(cd.check_reference("24 from 3 5 7 8").is_ok());
        assert!(cd.check_reference("(8-5)*7+3").is_ok());
        assert!(cd.check_reference("24 from").is_err());
        assert!(cd.check_reference("x from 3 4").is_err());
        assert!(cd
            .check_reference("7/2")
            .unwrap_err()
            .contains("not an integer"));
    }
}
