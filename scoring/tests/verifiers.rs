//! Verifier tests.

use quorum_scoring::{
    verifier_by_name, ChoiceVerifier, CodeOutcome, CodeVerifier, ExactVerifier, MathVerifier,
    NumericVerifier, RegexVerifier, ScoringError, Verifier,
};

#[test]
fn math_verifier_uses_equivalence() {
    let v = MathVerifier::default();
    let d = v.verify(r"<think>...</think>So $x=\boxed{\dfrac{1}{2}}$.", "0.5");
    assert!(d.correct, "{d:?}");
    assert_eq!(d.extracted.as_deref(), Some(r"\dfrac{1}{2}"));
    let d = v.verify(r"\boxed{3}", "4");
    assert!(!d.correct);
    assert_eq!(d.reason, "different rational values");
    let d = v.verify("", "4");
    assert_eq!(
        (d.correct, d.extracted, d.reason.as_str()),
        (false, None, "no answer extracted")
    );
}

#[test]
fn exact_verifier_is_exact() {
    assert!(
        ExactVerifier::default()
            .verify(r"\boxed{Paris}", "Paris")
            .correct
    );
    assert!(
        !ExactVerifier::default()
            .verify(r"\boxed{paris}", "Paris")
            .correct
    );
    assert!(
        ExactVerifier {
            case_insensitive: true,
            ..Default::default()
        }
        .verify(r"\boxed{paris}", "Paris")
        .correct
    );
    assert!(
        !ExactVerifier::default()
            .verify(r"\boxed{0.5}", "1/2")
            .correct
    );
}

#[test]
fn regex_verifier_uses_capture_group() {
    let v = RegexVerifier::new(r"RESULT=(\S+)").unwrap();
    let d = v.verify("RESULT=1 ... RESULT=1,000", "1000");
    assert!(d.correct, "{d:?}");
    assert_eq!(d.extracted.as_deref(), Some("1,000"));
    assert!(matches!(
        RegexVerifier::new("("),
        Err(ScoringError::InvalidRegex { .. })
    ));
}

#[test]
fn numeric_verifier_requires_numbers() {
    let v = NumericVerifier::default();
    assert!(v.verify("so about 3.14159265 overall", r"\pi").correct);
    let d = v.verify(r"\boxed{x+1}", "2");
    assert!(!d.correct);
    assert!(d.reason.starts_with("not numeric"), "{}", d.reason);
}

#[test]
fn choice_verifier_compares_letters() {
    let v = ChoiceVerifier;
    assert!(v.verify("The answer is (B).", "B").correct);
    assert!(v.verify("Answer: c", "(C)").correct);
    assert!(!v.verify("The answer is (B).", "D) 42").correct);
    assert_eq!(
        v.verify("The answer is (B).", "42").reason,
        "reference is not a choice letter"
    );
}

#[test]
fn code_verifier_is_a_hook() {
    let runner = |code: &str, tests: &str| -> Result<CodeOutcome, ScoringError> {
        Ok(CodeOutcome {
            passed: code.contains("return a + b") && tests == "add",
            detail: "ran".into(),
        })
    };
    let v = CodeVerifier::new(runner);
    let completion = "<think>x</think>Here:\n```python\ndef add(a, b):\n    return a + b\n```\n";
    let d = v.verify(completion, "add");
    assert!(d.correct);
    assert_eq!(
        d.extracted.as_deref(),
        Some("def add(a, b):\n    return a + b")
    );
    let failing =
        CodeVerifier::new(|_: &str, _: &str| Err(ScoringError::Execution("timeout".into())));
    let d = failing.verify("```\nloop\n```", "t");
    assert!(!d.correct);
    assert_eq!(d.reason, "code execution failed: timeout");
}

#[test]
fn registry_builds_by_name() {
    for name in [
        "math",
        "gsm8k",
        "exact",
        "exact_ci",
        "numeric",
        "choice",
        r"regex:ans=(\d+)",
    ] {
        assert!(verifier_by_name(name).is_ok(), "{name}");
    }
    assert!(
        verifier_by_name("math")
            .unwrap()
            .verify(r"\boxed{1,000}", "1000")
            .correct
    );
    assert!(
        verifier_by_name(r"regex:ans=(\d+)")
            .unwrap()
            .verify("ans=7", "7")
            .correct
    );
    assert!(matches!(
        verifier_by_name("code"),
        Err(ScoringError::NeedsHook(_))
    ));
    assert!(matches!(
        verifier_by_name("bogus"),
        Err(ScoringError::UnknownVerifier(_))
    ));
}
