//! Extraction tests.

use quorum_scoring::{extract, extract_answer, ExtractConfig, Extractor};

fn with(text: &str, cfg: ExtractConfig) -> Option<(String, Extractor)> {
    extract(text, &cfg).map(|e| (e.answer, e.method))
}

#[test]
fn boxed_wins_and_last_box_is_used() {
    let t =
        r"We get \boxed{3} at first, but correcting: \boxed{\frac{\sqrt{3}}{2}}. The answer is 5.";
    assert_eq!(
        with(t, ExtractConfig::math()),
        Some((r"\frac{\sqrt{3}}{2}".into(), Extractor::Boxed))
    );
    assert_eq!(extract_answer(r"\fbox{x^{2}}").as_deref(), Some("x^{2}"));
    assert_eq!(
        extract_answer(r"set \boxed{\{1, 2\}}").as_deref(),
        Some(r"\{1, 2\}")
    );
}

#[test]
fn only_text_after_last_think_is_searched() {
    let t = r"<think>\boxed{1} ... </think> wait <think>x</think> The final answer is 42.";
    assert_eq!(
        with(t, ExtractConfig::math()),
        Some(("42".into(), Extractor::AnswerIs))
    );
    let cfg = ExtractConfig {
        after_think: false,
        ..ExtractConfig::math()
    };
    assert_eq!(with(t, cfg).map(|x| x.0), Some("1".into()));
}

#[test]
fn answer_is_phrases() {
    assert_eq!(
        extract_answer("So the answer is $\\frac{1}{2}$.").as_deref(),
        Some(r"\frac{1}{2}")
    );
    assert_eq!(
        extract_answer("Thus, the final answer is: **17**").as_deref(),
        Some("17")
    );
    assert_eq!(
        extract_answer("The answer is 12. Hope it helps!").as_deref(),
        Some("12")
    );
    assert_eq!(
        extract_answer(r"The answer is $\boxed{9}$ as shown.").as_deref(),
        Some("9")
    );
}

#[test]
fn gsm8k_hashes() {
    let t = "Natalia sold 48/2 = 24 clips in May.\n#### 72";
    assert_eq!(
        with(t, ExtractConfig::gsm8k()),
        Some(("72".into(), Extractor::Gsm8k))
    );
    assert_eq!(extract_answer("#### 1,234\n").as_deref(), Some("1,234"));
}

#[test]
fn answer_lines() {
    let t = "Work...\n**Answer:** 3/4\n";
    assert_eq!(
        with(t, ExtractConfig::math()),
        Some(("3/4".into(), Extractor::AnswerLine))
    );
    assert_eq!(
        extract_answer("Final Answer: x = 2.").as_deref(),
        Some("x = 2")
    );
}

#[test]
fn multiple_choice_letters() {
    let c = ExtractConfig::choice;
    assert_eq!(
        with("I think the answer is (C).", c()).map(|x| x.0),
        Some("C".into())
    );
    assert_eq!(with("Answer: b", c()).map(|x| x.0), Some("B".into()));
    assert_eq!(with(r"\boxed{D}", c()).map(|x| x.0), Some("D".into()));
    assert_eq!(
        with(r"\boxed{\text{(A)}}", c()).map(|x| x.0),
        Some("A".into())
    );
    assert_eq!(
        with("Options (A) and (B) are wrong, so (E)", c()).map(|x| x.0),
        Some("E".into())
    );
    assert_eq!(with("B", c()).map(|x| x.0), Some("B".into()));
    assert_eq!(with("no letter here", c()), None);
}

#[test]
fn last_number_fallback() {
    assert_eq!(
        with(
            "It costs 3 dollars, then 1,250.5 in total",
            ExtractConfig::math()
        ),
        Some(("1,250.5".into(), Extractor::LastNumber))
    );
    assert_eq!(extract_answer("ratio is 3/4").as_deref(), Some("3/4"));
    assert_eq!(
        extract_answer("temperature -5 today").as_deref(),
        Some("-5")
    );
    assert_eq!(extract_answer("no numbers"), None);
    assert_eq!(with("42", ExtractConfig::explicit()), None);
}

#[test]
fn config_order_is_respected_and_serde_roundtrips() {
    let t = "#### 5\nThe answer is 6";
    assert_eq!(extract_answer(t).as_deref(), Some("6"));
    assert_eq!(
        with(t, ExtractConfig::gsm8k()).map(|x| x.0),
        Some("5".into())
    );
    let cfg: ExtractConfig =
        serde_json::from_str(r#"{"extractors":["last_number","boxed"]}"#).unwrap();
    assert!(cfg.after_think);
    assert_eq!(
        with(r"\boxed{1} then 2", cfg).map(|x| x.0),
        Some("2".into())
    );
}

#[test]
fn unicode_and_unbalanced_input_is_safe() {
    assert_eq!(extract_answer(r"é \boxed{π} ü").as_deref(), Some("π"));
    assert_eq!(extract_answer(r"\boxed{{{").as_deref(), None);
    assert_eq!(extract_answer("the answer is 😀").as_deref(), Some("😀"));
}
