//! Hand-checked equivalence table. Every pair is checked in both
//! directions through `compare` (the `quorum verify` entry point).

use quorum_scoring::compare;

const EQUAL: &[(&str, &str)] = &[
    // integers, separators, signs
    ("1000", "1,000"),
    ("1000", "1{,}000"),
    ("1234567", "1,234,567"),
    ("1000", r"1\,000"),
    ("1000", r"\$1,000"),
    ("-5", "-5"),
    ("5", "+5"),
    ("-5", "\u{2212}5"),
    ("0", "-0"),
    ("0", "0.0"),
    ("42", "42.0"),
    ("42", "42.000"),
    // decimals and fractions
    ("0.5", "1/2"),
    ("0.5", ".5"),
    ("0.50", "0.5"),
    ("3.14", "3.140"),
    ("-0.25", "-1/4"),
    ("2.5", "5/2"),
    ("0.125", r"\frac{1}{8}"),
    ("0.1+0.2", "0.3"),
    ("3/4", r"\frac{3}{4}"),
    ("3/4", r"\dfrac{3}{4}"),
    ("3/4", r"\tfrac{3}{4}"),
    ("3/4", r"\frac34"),
    ("6/8", "3/4"),
    ("-3/4", r"\frac{-3}{4}"),
    ("-3/4", r"-\frac{3}{4}"),
    (r"\frac{3}{-4}", "-0.75"),
    (r"\frac{10}{2}", "5"),
    (r"\frac{1}{3}", r"\frac{2}{6}"),
    (r"\frac{\frac{1}{2}}{2}", "1/4"),
    (r"\frac{1}{3}", "1/3"),
    ("1/7", r"\frac{2}{14}"),
    (r"-\frac{1}{2}", "-0.5"),
    // mixed numbers
    (r"1\frac{1}{2}", "3/2"),
    ("2 1/2", "2.5"),
    (r"-1\frac{1}{4}", "-5/4"),
    (r"3\frac12", "3.5"),
    // percentages
    (r"50\%", "50"),
    ("50%", "0.5"),
    ("12.5%", "12.5"),
    ("25 percent", "25%"),
    (r"5\%", "0.05"),
    // scientific notation and powers
    ("1.5e3", "1500"),
    (r"1.5 \times 10^{3}", "1500"),
    ("2E-3", "0.002"),
    (r"6.02\times10^{23}", "602000000000000000000000"),
    ("1e6", "1,000,000"),
    ("1e-7", "1.0e-7"),
    (
        "100000000000000000000000000000000000000000000000000",
        "1e50",
    ),
    ("2^{10}", "1024"),
    ("2^10", "1024"),
    ("3!", "6"),
    ("10!", "3628800"),
    // simple LaTeX and units
    (r"\text{5}", "5"),
    ("$5$", "5"),
    (r"\(5\)", "5"),
    (r"\left(1, 2\right)", "(1,2)"),
    (r"90^\circ", "90"),
    (r"90^{\circ}", "90"),
    ("90\u{b0}", "90"),
    (r"\$5", "5"),
    (r"5 \text{ cm}", "5"),
    ("12 square units", "12"),
    ("10 dollars", "10"),
    ("3 meters", "3"),
    (r"\boxed{7}", "7"),
    ("x = 5", "5"),
    (r"y=\frac{1}{2}", "0.5"),
    ("5.", "5"),
    (r"\mathrm{4}", "4"),
    (r"\displaystyle\frac{1}{2}", "1/2"),
    (r"\textbf{12}", "12"),
    (r"45 \text{ degrees}", "45"),
    // roots
    (r"\sqrt{2}", r"\sqrt2"),
    (r"\sqrt{4}", "2"),
    (r"2\sqrt{2}", r"\sqrt{8}"),
    (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}"),
    (r"\sqrt{2}", "1.41421356"),
    (r"\sqrt[3]{27}", "3"),
    (r"3\sqrt{3}", r"\sqrt{27}"),
    (r"\sqrt{\frac{1}{4}}", "0.5"),
    ("\u{221a}2", r"\sqrt{2}"),
    // pi
    (r"\pi", "\u{3c0}"),
    (r"2\pi", "2\u{3c0}"),
    (r"\frac{\pi}{2}", r"\pi/2"),
    (r"\pi", "3.14159265"),
    (r"\frac{3\pi}{4}", r"0.75\pi"),
    (r"\pi r^2", r"r^2\pi"),
    (r"4\pi", r"\pi \cdot 4"),
    // tuples and intervals (ordered)
    ("(1, 2)", "(1,2)"),
    ("(1, 2)", "(1.0, 2)"),
    ("[0, 1)", "[0,1)"),
    (r"(-\infty, 3]", r"(-\infty,3]"),
    ("(-\u{221e}, 3]", r"(-\infty, 3]"),
    (r"\left[ \frac{1}{2}, 2 \right]", "[0.5, 2]"),
    ("(1/2, 3)", "(0.5, 3)"),
    (
        r"(-\infty, 1) \cup (2, \infty)",
        r"(2, \infty) \cup (-\infty, 1)",
    ),
    (r"(\sqrt{2}, \pi)", "(1.41421356237, 3.14159265359)"),
    ("(1, (2, 3))", "(1,(2,3))"),
    // sets and lists (unordered)
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}"),
    (r"\{1,2\}", r"\{2, 1\}"),
    ("1, 2", "2, 1"),
    (r"\{1/2, 3\}", r"\{3, 0.5\}"),
    ("x = 1, 2", "2, 1"),
    (r"\{1, 2\}", "1, 2"),
    ("-1, 1", "1,-1"),
    ("1, 2, 2", "2, 1, 2"),
    (r"\left\{ -2, \frac{1}{3} \right\}", r"\{1/3, -2\}"),
    // text (case-insensitive)
    ("Yes", "yes"),
    (r"\text{Yes}", "YES"),
    ("True", "true."),
    ("Monday", r"\text{monday}"),
    ("New York", "new  york"),
    ("(A)", "A"),
    ("B", "b"),
    ("east", "East"),
    ("C)", "c"),
    // expressions in variables
    ("x+1", "1+x"),
    ("2x", r"x \cdot 2"),
    ("x^2-1", "(x-1)(x+1)"),
    (r"\frac{x}{2}", "0.5x"),
    ("2(x+y)", "2x+2y"),
    ("a^2+b^2", "b^2+a^2"),
    ("n(n+1)/2", r"\frac{n^2+n}{2}"),
    ("y = 2x + 3", "3 + 2x"),
    (r"\sqrt{x^2}", "|x|"),
];

const NOT_EQUAL: &[(&str, &str)] = &[
    ("1", "2"),
    ("1000", "100"),
    ("1,000", "1.000"),
    ("1,000", "1, 000"),
    ("2,3", "23"),
    ("0.5", "0.6"),
    ("1/3", "0.333"),
    ("1/3", "0.3333333"),
    ("3.0001", "3"),
    ("1e-7", "0"),
    (r"\pi", "3.14"),
    (r"\sqrt{2}", "1.414"),
    (r"\sqrt{2}", r"\sqrt{3}"),
    (r"3\sqrt{2}", r"2\sqrt{3}"),
    ("3/4", "4/3"),
    ("-5", "5"),
    (r"\frac{1}{2}", r"\frac{1}{3}"),
    (r"1\frac{1}{2}", "1/2"),
    (r"2\pi", r"\pi"),
    ("12", "12.5"),
    ("1e3", "1e4"),
    ("50%", "5"),
    ("(1, 2)", "(2, 1)"),
    ("[0, 1)", "[0, 1]"),
    ("(0, 1)", "[0, 1]"),
    (r"(-\infty, 3]", r"(-\infty, 3)"),
    (r"\infty", r"-\infty"),
    (r"\{1, 2\}", r"\{1, 2, 3\}"),
    ("1, 2", "1, 3"),
    ("1, 1, 2", "1, 2, 2"),
    ("(1, 2)", "1, 2"),
    ("(1, 2)", "[1, 2]"),
    ("yes", "no"),
    ("True", "False"),
    ("A", "B"),
    ("(A)", "(B)"),
    ("Monday", "Tuesday"),
    ("x+1", "x-1"),
    ("x^2", "2x"),
    ("x", "y"),
    ("2x", "2"),
    ("x+1", "2"),
    ("5 cm", "6 cm"),
    ("10", "10!"),
    (r"\frac{1}{0}", "1"),
    ("", "5"),
];

#[test]
fn equal_pairs_compare_equal_in_both_directions() {
    let mut failures = Vec::new();
    for &(a, b) in EQUAL {
        for (g, p) in [(a, b), (b, a)] {
            let c = compare(g, p);
            if !c.equal {
                failures.push(format!("{g:?} vs {p:?}: {c:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unequal_pairs_compare_unequal_in_both_directions() {
    let mut failures = Vec::new();
    for &(a, b) in NOT_EQUAL {
        for (g, p) in [(a, b), (b, a)] {
            let c = compare(g, p);
            if c.equal {
                failures.push(format!("{g:?} vs {p:?}: {c:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn table_has_at_least_150_cases() {
    assert!(
        EQUAL.len() + NOT_EQUAL.len() >= 150,
        "{}",
        EQUAL.len() + NOT_EQUAL.len()
    );
}

#[test]
fn compare_reports_normal_forms_and_reason() {
    let c = compare(r"\frac{3}{4}", "The answer is $0.75$.");
    assert!(c.equal);
    assert_eq!(c.gold_norm, "3/4");
    assert_eq!(c.pred_norm, "3/4");
    assert!(c.reason.contains("exact"), "{}", c.reason);

    let c = compare(
        r"\boxed{12}",
        "<think>maybe 11</think> so we get \\boxed{12}",
    );
    assert!(c.equal, "{c:?}");

    let c = compare(
        "18",
        "Janet sells 16 - 3 - 4 = 9 eggs, earning 9 * 2 = 18 dollars a day.",
    );
    assert!(c.equal, "{c:?}");
    assert_eq!(c.pred_norm, "18");

    let c = compare("18", "<think>18</think>");
    assert!(!c.equal);
    assert_eq!(c.reason, "no answer found in prediction");
}

#[test]
fn comparison_serializes_to_json() {
    let c = compare("1/2", "0.5");
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["equal"], true);
    assert_eq!(v["gold_norm"], "1/2");
    assert_eq!(v["pred_norm"], "1/2");
}
