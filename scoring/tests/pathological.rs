//! Pathological inputs return quickly with "not equal" and a reason: no
//! hang, no stack overflow, no overflow panic, no unbounded memory.

use quorum_scoring::{compare, Comparison, MathVerifier, Verifier};
use std::time::{Duration, Instant};

/// Generous bound for a release build on a loaded 2-core box.
const BOUND: Duration = Duration::from_secs(2);

fn timed(gold: &str, pred: &str) -> Comparison {
    let t = Instant::now();
    let c = compare(gold, pred);
    let took = t.elapsed();
    assert!(
        took < BOUND,
        "took {took:?} on a {}-byte prediction",
        pred.len()
    );
    assert!(!c.reason.is_empty(), "no reason: {c:?}");
    c
}

#[test]
fn one_megabyte_answer_is_too_long() {
    let digits = "7".repeat(1 << 20);
    let c = timed("7", &digits);
    assert!(!c.equal);
    assert!(c.reason.contains("too long"), "{}", c.reason);
    let c = timed(&digits, "7");
    assert!(!c.equal && c.reason.contains("too long"), "{c:?}");
    let boxed = format!(r"\boxed{{{digits}}}");
    let v = MathVerifier::default().verify(&boxed, "7");
    assert!(!v.correct && v.reason.contains("too long"), "{v:?}");
}

#[test]
fn one_megabyte_of_prose_still_finds_the_final_answer() {
    let prose = "the cat sat on 3 mats and $x$ ".repeat(40_000) + r"so \boxed{5}";
    assert!(prose.len() > 1 << 20);
    assert!(timed("5", &prose).equal);
    let dollars = "$".repeat(1 << 20);
    assert!(!timed("5", &dollars).equal);
    let spans = "$1$ or ".repeat(150_000) + "$2$";
    assert!(!timed("5", &spans).equal);
}

#[test]
fn ten_thousand_nested_braces() {
    let n = 10_000;
    let nested = format!("{}1{}", "{".repeat(n), "}".repeat(n));
    assert!(!timed("1", &nested).equal);
    let boxes = format!("{}1{}", r"\boxed{".repeat(n), "}".repeat(n));
    assert!(timed("1", &boxes).equal, "innermost box answers");
    let unclosed = r"\boxed{".repeat(n);
    assert!(!timed("1", &unclosed).equal);
    let parens = format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert!(!timed("1", &parens).equal);
    let sets = format!("{}1{}", r"\{".repeat(1000), r"\}".repeat(1000));
    assert!(!timed("1", &sets).equal);
    let fracs = format!("{}1{}", r"\frac{1}{".repeat(500), "}".repeat(500));
    assert!(!timed("1", &fracs).equal);
}

#[test]
fn towers_and_huge_factorials_do_not_overflow() {
    for (gold, pred) in [
        ("1", r"10^{10^{10}}"),
        (r"10^{10^{10}}", r"10^{10^{11}}"),
        ("1", "2^{2^{2^{2^{2^{2}}}}}"),
        ("1", "1000000!"),
        ("1", "(10^{10})!"),
        ("1", "99999999999999999999999999999999999999999999999999!"),
        ("0", "1e999999999999"),
        ("1", r"10^{-10^{10}}"),
        (r"x^{10^{10}}", r"x^{10^{10}+1}"),
    ] {
        let c = timed(gold, pred);
        assert!(!c.equal, "{gold} vs {pred}: {c:?}");
    }
}

#[test]
fn huge_collections_and_equations_are_bounded() {
    let set = format!(
        r"\{{{}\}}",
        (0..600)
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(!timed("1", &set).equal);
    let eqs = (0..300)
        .map(|k| format!("x_{k} = {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(!timed("1", &eqs).equal);
    let chain = "x".to_string() + &" = 1".repeat(1000);
    assert!(!timed("2", &chain).equal);
    let pm = r"\pm ".repeat(2000) + "1";
    assert!(!timed("1", &pm).equal);
}
