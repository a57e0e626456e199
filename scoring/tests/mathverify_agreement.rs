//! Agreement with HF math-verify on a labelled set of (gold, prediction)
//! pairs written the way models and datasets write them.
//!
//! The set (`mathverify_pairs.jsonl`) and the script that generated and
//! labelled it (`make_mathverify_pairs.py`, math-verify 0.9.0) sit next to
//! this file. A pair's expected verdict is math-verify's, except where Quorum
//! deliberately disagrees (`quorum_expected`, with the reason in `why`).

use quorum_scoring::compare;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Pair {
    id: usize,
    class: String,
    gold: String,
    pred: String,
    mathverify: bool,
    quorum_expected: Option<bool>,
    why: Option<String>,
}

const OVERALL_MIN: f64 = 0.98;
const CLASS_MIN: f64 = 0.90;
const MIN_PAIRS: usize = 1000;

fn pairs() -> Vec<Pair> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mathverify_pairs.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", n + 1)))
        .collect()
}

#[test]
fn agrees_with_mathverify_overall_and_per_class() {
    let pairs = pairs();
    assert!(pairs.len() >= MIN_PAIRS, "only {} pairs", pairs.len());
    let mut by_class: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut agree = 0;
    for p in &pairs {
        let expected = p.quorum_expected.unwrap_or(p.mathverify);
        let c = compare(&p.gold, &p.pred);
        let e = by_class.entry(&p.class).or_default();
        e.1 += 1;
        if c.equal == expected {
            e.0 += 1;
            agree += 1;
        } else {
            misses.push(format!(
                "#{} [{}] expected {expected}, got {}: gold {:?} pred {:?} -> {:?} vs {:?} ({})",
                p.id, p.class, c.equal, p.gold, p.pred, c.gold_norm, c.pred_norm, c.reason
            ));
        }
    }
    let overall = agree as f64 / pairs.len() as f64;
    println!("class            agree / pairs   rate");
    for (class, (a, n)) in &by_class {
        println!(
            "{class:<16} {a:>5} / {n:<5}  {:>6.1}%",
            100.0 * *a as f64 / *n as f64
        );
    }
    println!(
        "overall          {agree:>5} / {:<5}  {:>6.1}%",
        pairs.len(),
        100.0 * overall
    );
    let deliberate = pairs.iter().filter(|p| p.quorum_expected.is_some()).count();
    println!("({deliberate} pairs carry a deliberate quorum_expected verdict)");
    println!("disagreements:\n{}", misses.join("\n"));
    let weak: Vec<String> = by_class
        .iter()
        .filter(|(_, (a, n))| (*a as f64) < CLASS_MIN * *n as f64)
        .map(|(c, (a, n))| format!("{c} {a}/{n}"))
        .collect();
    assert!(
        overall >= OVERALL_MIN,
        "overall agreement {:.2}% < {:.0}%",
        100.0 * overall,
        100.0 * OVERALL_MIN
    );
    assert!(weak.is_empty(), "classes below 90%: {weak:?}");
}

#[test]
fn every_class_has_equal_and_unequal_pairs() {
    let pairs = pairs();
    let mut seen: BTreeMap<&str, [bool; 2]> = BTreeMap::new();
    for p in &pairs {
        let e = p.quorum_expected.unwrap_or(p.mathverify);
        seen.entry(&p.class).or_default()[usize::from(e)] = true;
    }
    for (class, [no, yes]) in seen {
        assert!(no && yes, "{class}: equal {yes}, not equal {no}");
    }
}

#[test]
fn deliberate_disagreements_carry_a_reason() {
    for p in pairs() {
        if let Some(q) = p.quorum_expected {
            assert_ne!(
                q, p.mathverify,
                "#{}: quorum_expected equals the label",
                p.id
            );
            assert!(
                p.why.as_deref().is_some_and(|w| !w.is_empty()),
                "#{}: no reason",
                p.id
            );
        }
    }
}
