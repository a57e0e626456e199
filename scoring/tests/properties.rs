//! Property tests: normalization is idempotent; nothing panics on
//! arbitrary UTF-8; comparison is symmetric except where an equation
//! gives the gold and the prediction different roles (math-verify's rule,
//! see `scoring::math::equation`).

use proptest::prelude::*;
use quorum_scoring::{compare, equivalent, extract, normalize, Answer, ExtractConfig, Extractor};

/// Whether the parsed answer is, or holds, an equation: the one place where
/// gold and prediction are compared asymmetrically on purpose.
fn involves_equation(a: &Answer) -> bool {
    match a {
        Answer::Equation(_) => true,
        Answer::Collection { items, .. } => items.iter().any(involves_equation),
        _ => false,
    }
}

/// Strings biased towards the LaTeX/math alphabet, plus arbitrary UTF-8.
fn mathy() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "0",
        "1",
        "2",
        "7",
        "12",
        ".",
        ",",
        " ",
        "-",
        "+",
        "*",
        "/",
        "^",
        "!",
        "%",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        r"\{",
        r"\}",
        "|",
        "=",
        "x",
        "y",
        "e",
        "E",
        r"\frac",
        r"\dfrac",
        r"\sqrt",
        r"\pi",
        r"\infty",
        r"\cdot",
        r"\times",
        r"\text{",
        r"\boxed{",
        r"\left(",
        r"\right)",
        r"\cup",
        "$",
        r"\$",
        r"\%",
        "^\\circ",
        " cm",
        " units",
        " percent",
        "{,}",
        r"\,",
        "1,000",
        "e5",
        "\u{3c0}",
        "\u{2212}",
        "yes",
        "The answer is ",
        "####",
        "Answer:",
        "</think>",
        "\n",
        "\u{e9}",
        "\u{1f600}",
        "\\",
    ]);
    prop_oneof![
        3 => prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn normalization_is_idempotent(s in mathy()) {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone(), "input {:?}", s);
    }

    #[test]
    fn extraction_never_panics(s in mathy()) {
        for ex in [Extractor::Boxed, Extractor::AnswerIs, Extractor::Gsm8k, Extractor::AnswerLine,
                   Extractor::Choice, Extractor::LastNumber] {
            let _ = extract(&s, &ExtractConfig { extractors: vec![ex], after_think: true, regex: None });
        }
    }

    #[test]
    fn compare_never_panics_and_equivalence_is_symmetric(a in mathy(), b in mathy()) {
        let _ = compare(&a, &b);
        prop_assume!(!involves_equation(&Answer::parse(&a)) && !involves_equation(&Answer::parse(&b)));
        prop_assert_eq!(equivalent(&a, &b).equal, equivalent(&b, &a).equal, "{:?} vs {:?}", a, b);
    }

    #[test]
    fn equivalence_is_reflexive_except_for_nan(s in mathy()) {
        // NaN-valued answers (e.g. `\sqrt{-1}`) are never equal to anything.
        let j = equivalent(&s, &s);
        prop_assert!(j.equal || j.reason.contains("undecidable") || j.reason.contains("beyond tolerance")
            || j.reason.contains("sample point"), "{:?}: {:?}", s, j);
    }
}

#[test]
fn deeply_nested_input_does_not_overflow_the_stack() {
    let nested = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let _ = compare(&nested, &nested);
    let braces = format!(r"\boxed{{{}1{}}}", "{".repeat(50_000), "}".repeat(50_000));
    let _ = compare(&braces, "1");
    let fracs = r"\frac{".repeat(20_000);
    let _ = normalize(&fracs);
    let sets = format!("{}1{}", r"\{".repeat(10_000), r"\}".repeat(10_000));
    let _ = normalize(&sets);
    let minus = "-".repeat(100_000) + "1";
    let _ = normalize(&minus);
    let pows = "2^".repeat(50_000) + "2";
    let _ = normalize(&pows);
    let list = "1,".repeat(50_000);
    let _ = normalize(&list);
}

/// The documented asymmetry: a prediction equation answers with its right
/// side, a general gold equation is never matched by a bare value.
#[test]
fn equation_roles_are_asymmetric_as_documented() {
    assert!(
        equivalent("2", "4a-b=2").equal,
        "prediction equation: its right side"
    );
    assert!(
        !equivalent("4a-b=2", "2").equal,
        "general gold equation vs a value"
    );
    assert!(equivalent("y=7", "7").equal, "assignment gold vs its value");
    assert!(
        equivalent("7", "y = 7").equal,
        "value gold vs assignment prediction"
    );
}
