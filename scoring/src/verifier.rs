//! Verifiers: decide whether a completion is correct for a reference. The
//! built-in ones (math, exact, numeric, choice, regex, the code hook) and
//! [`verifier_by_name`], which also knows [`crate::countdown`]'s; the
//! [`Verifier`] trait and its [`Verdict`] live in [`crate::verdict`].

use crate::compare::{answer_from, too_long};
use crate::equivalence::answers_equivalent;
use crate::error::ScoringError;
use crate::extract::{extract, ExtractConfig};
use crate::math::answer::Answer;
use crate::math::number::Tolerance;
pub use crate::verdict::{Verdict, Verifier};
use regex::Regex;
use serde::Serialize;

/// Words in a math reference that mark it as a worked solution, not an answer.
const PROSE_REFERENCE_WORDS: usize = 6;

/// Extracts with an [`ExtractConfig`] and compares with math equivalence.
#[derive(Debug, Clone, Default)]
pub struct MathVerifier {
    pub extract: ExtractConfig,
    pub tolerance: Tolerance,
}

impl Verifier for MathVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let Some(e) = extract(completion, &self.extract) else {
            return Verdict::missing();
        };
        let reference = answer_from(reference, false)
            .map(|(a, _)| a)
            .unwrap_or_default();
        if let Some(reason) =
            too_long(&e.answer, "predicted").or_else(|| too_long(&reference, "reference"))
        {
            return Verdict {
                correct: false,
                extracted: None,
                reason,
            };
        }
        let j = answers_equivalent(
            &Answer::parse(&reference),
            &Answer::parse(&e.answer),
            &self.tolerance,
        );
        Verdict {
            correct: j.equal,
            extracted: Some(e.answer),
            reason: j.reason,
        }
    }

    /// The reference reduces to an answer (`\boxed{}`, `####`, … or bare),
    /// that answer is not prose, and `\boxed{answer}` verifies.
    fn check_reference(&self, reference: &str) -> Result<(), String> {
        let Some((answer, _)) = answer_from(reference, false) else {
            return Err("empty reference".into());
        };
        if let Answer::Text(t) = Answer::parse(&answer) {
            if t.split_whitespace().count() >= PROSE_REFERENCE_WORDS {
                return Err(format!(
                    "reference `{}` looks like prose, not an answer",
                    truncate(&answer, 60)
                ));
            }
        }
        let v = self.verify(&format!("\\boxed{{{answer}}}"), reference);
        if v.correct {
            Ok(())
        } else {
            Err(format!(
                "`{}` does not verify against itself: {}",
                truncate(&answer, 60),
                v.reason
            ))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Extracts, then compares trimmed strings exactly (optionally ignoring case).
#[derive(Debug, Clone, Default)]
pub struct ExactVerifier {
    pub extract: ExtractConfig,
    pub case_insensitive: bool,
}

impl Verifier for ExactVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let Some(e) = extract(completion, &self.extract) else {
            return Verdict::missing();
        };
        let (a, b) = (e.answer.trim(), reference.trim());
        let correct = if self.case_insensitive {
            a.to_lowercase() == b.to_lowercase()
        } else {
            a == b
        };
        let reason = if correct {
            "exact string match"
        } else {
            "strings differ"
        };
        Verdict {
            correct,
            extracted: Some(e.answer),
            reason: reason.into(),
        }
    }
}

/// Extracts the answer with a regex (capture group 1, or the whole match;
/// last match wins) and compares with math equivalence.
#[derive(Debug, Clone)]
pub struct RegexVerifier {
    pattern: Regex,
    pub tolerance: Tolerance,
}

impl RegexVerifier {
    pub fn new(pattern: &str) -> Result<Self, ScoringError> {
        let pattern = Regex::new(pattern).map_err(|e| ScoringError::InvalidRegex {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?;
        Ok(RegexVerifier {
            pattern,
            tolerance: Tolerance::default(),
        })
    }
}

impl Verifier for RegexVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let body = crate::extract::after_think(completion);
        let found = self
            .pattern
            .captures_iter(body)
            .last()
            .and_then(|c| c.get(1).or_else(|| c.get(0)));
        let Some(m) = found else {
            return Verdict::missing();
        };
        let got = m.as_str().trim().to_string();
        let j = answers_equivalent(
            &Answer::parse(reference),
            &Answer::parse(&got),
            &self.tolerance,
        );
        Verdict {
            correct: j.equal,
            extracted: Some(got),
            reason: j.reason,
        }
    }

    /// The pattern extracts from completions, not references: any
    /// non-empty reference is usable.
    fn check_reference(&self, reference: &str) -> Result<(), String> {
        non_empty(reference)
    }
}

fn non_empty(reference: &str) -> Result<(), String> {
    if reference.trim().is_empty() {
        Err("empty reference".into())
    } else {
        Ok(())
    }
}

/// Numeric-only comparison: both sides must parse as numbers.
#[derive(Debug, Clone, Default)]
pub struct NumericVerifier {
    pub extract: ExtractConfig,
    pub tolerance: Tolerance,
}

impl Verifier for NumericVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let Some(e) = extract(completion, &self.extract) else {
            return Verdict::missing();
        };
        let (r, p) = (Answer::parse(reference), Answer::parse(&e.answer));
        let (Answer::Number { .. }, Answer::Number { .. }) = (&r, &p) else {
            return Verdict {
                correct: false,
                extracted: Some(e.answer),
                reason: format!("not numeric ({} vs {})", r.kind_name(), p.kind_name()),
            };
        };
        let j = answers_equivalent(&r, &p, &self.tolerance);
        Verdict {
            correct: j.equal,
            extracted: Some(e.answer),
            reason: j.reason,
        }
    }
}

/// Multiple-choice: extracts a letter and compares it with the reference
/// letter (`B`, `(B)`, `B)`, `b` all accepted as the reference).
#[derive(Debug, Clone, Default)]
pub struct ChoiceVerifier;

fn reference_letter(reference: &str) -> Option<char> {
    let t = reference.trim().trim_start_matches('(');
    let mut chars = t.chars();
    let c = chars.next()?.to_ascii_uppercase();
    let rest = chars.as_str();
    let ok =
        ('A'..='J').contains(&c) && (rest.is_empty() || rest.starts_with([')', '.', ':', ' ']));
    ok.then_some(c)
}

impl Verifier for ChoiceVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let Some(e) = extract(completion, &ExtractConfig::choice()) else {
            return Verdict::missing();
        };
        let Some(want) = reference_letter(reference) else {
            return Verdict {
                correct: false,
                extracted: Some(e.answer),
                reason: "reference is not a choice letter".into(),
            };
        };
        let correct = e.answer.starts_with(want);
        let reason = if correct {
            "choice letter matches"
        } else {
            "choice letter differs"
        };
        Verdict {
            correct,
            extracted: Some(e.answer),
            reason: reason.into(),
        }
    }
}

/// Outcome of running code against tests in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeOutcome {
    pub passed: bool,
    pub detail: String,
}

/// **Hook** for code execution. This crate ships no sandbox: a later
/// code-execution sandbox implements this trait (or passes a closure) and
/// is plugged into [`CodeVerifier`].
pub trait CodeRunner: Send + Sync {
    /// Runs `code` against the task's `tests` (the verifier's reference).
    fn run(&self, code: &str, tests: &str) -> Result<CodeOutcome, ScoringError>;
}

impl<F> CodeRunner for F
where
    F: Fn(&str, &str) -> Result<CodeOutcome, ScoringError> + Send + Sync,
{
    fn run(&self, code: &str, tests: &str) -> Result<CodeOutcome, ScoringError> {
        self(code, tests)
    }
}

/// Code verifier: a **hook** only. Extracts the last fenced code block
/// (or the whole answer section) and delegates to a [`CodeRunner`]; the
/// reference is passed through to the runner as the tests.
pub struct CodeVerifier {
    runner: Box<dyn CodeRunner>,
}

impl CodeVerifier {
    pub fn new(runner: impl CodeRunner + 'static) -> Self {
        CodeVerifier {
            runner: Box::new(runner),
        }
    }
}

/// The content of the last ```` ``` ```` fenced block (language tag dropped).
pub fn last_code_block(text: &str) -> Option<String> {
    let body = crate::extract::after_think(text);
    let mut blocks = body.split("```").skip(1).step_by(2);
    let last = blocks.by_ref().last()?;
    let code = match last.split_once('\n') {
        Some((tag, rest)) if !tag.trim().contains(' ') => rest,
        _ => last,
    };
    Some(code.trim_end().to_string())
}

impl Verifier for CodeVerifier {
    fn verify(&self, completion: &str, reference: &str) -> Verdict {
        let code = last_code_block(completion)
            .unwrap_or_else(|| crate::extract::after_think(completion).to_string());
        match self.runner.run(&code, reference) {
            Ok(o) => Verdict {
                correct: o.passed,
                extracted: Some(code),
                reason: o.detail,
            },
            Err(e) => Verdict {
                correct: false,
                extracted: Some(code),
                reason: e.to_string(),
            },
        }
    }

    /// The reference is the runner's tests: only non-empty is checked.
    fn check_reference(&self, reference: &str) -> Result<(), String> {
        non_empty(reference)
    }
}

/// Builds a verifier by name: `math`, `gsm8k`, `exact`, `exact_ci`,
/// `numeric`, `choice`, `countdown`, `regex:<pattern>`. `code` is a hook and returns
/// [`ScoringError::NeedsHook`]; build [`CodeVerifier`] directly instead.
pub fn verifier_by_name(name: &str) -> Result<Box<dyn Verifier>, ScoringError> {
    if let Some(pattern) = name.strip_prefix("regex:") {
        return Ok(Box::new(RegexVerifier::new(pattern)?));
    }
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "math" => Box::new(MathVerifier::default()),
        "gsm8k" => Box::new(MathVerifier {
            extract: ExtractConfig::gsm8k(),
            ..Default::default()
        }),
        "exact" => Box::new(ExactVerifier::default()),
        "exact_ci" => Box::new(ExactVerifier {
            case_insensitive: true,
            ..Default::default()
        }),
        "numeric" => Box::new(NumericVerifier::default()),
        "choice" | "mcq" => Box::new(ChoiceVerifier),
        "countdown" => Box::new(crate::countdown::CountdownVerifier::default()),
        "code" => return Err(ScoringError::NeedsHook("code".into())),
        _ => return Err(ScoringError::UnknownVerifier(name.to_string())),
    })
}

#[cfg(test)]
mod check_reference_tests {
    use super::*;

    fn check(name: &str, reference: &str) -> Result<(), String> {
        verifier_by_name(name)
            .expect("known verifier")
            .check_reference(reference)
    }

    #[test]
    fn math_accepts_answers_in_their_usual_forms() {
        for r in [
            "72",
            "-3445",
            r"\frac{3}{4}",
            r"\boxed{5}",
            "reasoning\n#### 72",
            "x^2+1",
            "yes",
        ] {
            assert_eq!(check("math", r), Ok(()), "{r}");
        }
    }

    #[test]
    fn math_rejects_empty_and_prose() {
        assert_eq!(check("math", "  "), Err("empty reference".into()));
        let e = check("math", "Janet sells the rest of the eggs at the market").unwrap_err();
        assert!(e.contains("looks like prose"), "{e}");
    }

    #[test]
    fn numeric_rejects_non_numbers() {
        assert_eq!(check("numeric", "72"), Ok(()));
        let e = check("numeric", "yes").unwrap_err();
        assert!(e.contains("not numeric"), "{e}");
    }

    #[test]
    fn choice_regex_exact() {
        assert_eq!(check("choice", "B"), Ok(()));
        assert!(check("choice", "banana split").is_err());
        assert_eq!(check("exact", "Paris"), Ok(()));
        assert_eq!(check(r"regex:ANSWER: (\d+)", "12"), Ok(()));
        assert!(check(r"regex:ANSWER: (\d+)", "").is_err());
    }
}
