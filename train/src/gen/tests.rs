//! Generator tests: split by hash across seeds, determinism, and every
//! trace recomputed from its own text.

use std::collections::{HashMap, HashSet};

use quorum_scoring::verifier_by_name;

use super::*;
use crate::data::{check_references, direct_content, load_tasks, think_content, LoadOptions};

// ---- a small evaluator for the checks (integers, + - * /, parentheses, unary minus)

fn eval(s: &str) -> Option<i128> {
    fn sum(t: &[u8], i: &mut usize) -> Option<i128> {
        let mut v = prod(t, i)?;
        while *i < t.len() && (t[*i] == b'+' || t[*i] == b'-') {
            let op = t[*i];
            *i += 1;
            let r = prod(t, i)?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Some(v)
    }
    fn prod(t: &[u8], i: &mut usize) -> Option<i128> {
        let mut v = atom(t, i)?;
        while *i < t.len() && (t[*i] == b'*' || t[*i] == b'/') {
            let op = t[*i];
            *i += 1;
            let r = atom(t, i)?;
            v = if op == b'*' {
                v * r
            } else {
                if r == 0 || v % r != 0 {
                    return None;
                }
                v / r
            };
        }
        Some(v)
    }
    fn atom(t: &[u8], i: &mut usize) -> Option<i128> {
        match t.get(*i)? {
            b'(' => {
                *i += 1;
                let v = sum(t, i)?;
                (t.get(*i)? == &b')').then_some(())?;
                *i += 1;
                Some(v)
            }
            b'-' => {
                *i += 1;
                Some(-atom(t, i)?)
            }
            c if c.is_ascii_digit() => {
                let start = *i;
                while *i < t.len() && t[*i].is_ascii_digit() {
                    *i += 1;
                }
                std::str::from_utf8(&t[start..*i]).ok()?.parse().ok()
            }
            _ => None,
        }
    }
    let t = s.as_bytes();
    let mut i = 0;
    let v = sum(t, &mut i)?;
    (i == t.len()).then_some(v)
}

fn operands(prompt: &str) -> (i128, char, i128) {
    let body = prompt
        .strip_prefix("Compute ")
        .and_then(|s| s.strip_suffix('.'))
        .expect("Compute X.");
    let i = body.find(['+', '-', '*']).expect("an operator");
    let op = body.as_bytes()[i] as char;
    (
        body[..i].parse().unwrap(),
        op,
        body[i + 1..].parse().unwrap(),
    )
}

fn lsf(n: i128) -> Vec<i128> {
    columns::digits_lsf(n.unsigned_abs())
        .into_iter()
        .map(i128::from)
        .collect()
}

/// A column step `lhs=rhs`: its terms and value.
struct Step {
    terms: Vec<i128>,
    op: char,
    value: i128,
}

fn parse_step(tok: &str) -> Option<Step> {
    let (lhs, rhs) = tok.split_once('=')?;
    let op = if lhs.contains('*') {
        '*'
    } else if lhs.contains('-') {
        '-'
    } else {
        '+'
    };
    let terms = lhs
        .split(['+', '-', '*'])
        .map(|t| t.parse().ok())
        .collect::<Option<Vec<i128>>>()?;
    Some(Step {
        terms,
        op,
        value: rhs.parse().ok()?,
    })
}

/// Checks one arithmetic trace from its text alone, and returns the final
/// `a:` value: every `x=y` equation holds; within each column block the
/// carries (borrows) chain from step to step and `r:` lists the result
/// digits in column order (a multiplication partial's place zeros first);
/// `a:` restates the last `r:` (or the last `=value` of an expression).
fn check_arith_trace(trace: &str) -> i128 {
    let mut block: Vec<Step> = Vec::new();
    let mut last_r: Option<String> = None;
    let mut last_value: Option<i128> = None;
    let mut a_value = None;
    for tok in trace.split_whitespace() {
        let tok = tok.trim_end_matches(':');
        if let Some(r) = tok.strip_prefix("r:") {
            assert!(!block.is_empty(), "r: without steps in {trace}");
            let mut want = String::new();
            let mut carry = 0;
            for (k, s) in block.iter().enumerate() {
                let (c, expect_c) = match s.op {
                    '-' => {
                        let borrow_in = s.terms[2];
                        let prev_borrowed = k > 0 && block[k - 1].terms[0] >= 10;
                        (borrow_in, i128::from(prev_borrowed))
                    }
                    _ => (*s.terms.last().unwrap(), carry),
                };
                assert_eq!(c, expect_c, "carry/borrow of step {k} in {trace}");
                assert!(s.op != '-' || (0..=9).contains(&s.value), "{trace}");
                want.push_str(&(s.value % 10).to_string());
                carry = if s.op == '-' { 0 } else { s.value / 10 };
            }
            if carry > 0 {
                want.push_str(&columns::lsf_text(&columns::digits_lsf(carry as u128)));
            }
            let zeros = r.len() - want.len();
            assert!(
                r.ends_with(&want) && r[..zeros].chars().all(|c| c == '0'),
                "r:{r} vs {want} in {trace}"
            );
            last_r = Some(r.to_string());
            block.clear();
        } else if let Some(a) = tok.strip_prefix("a:") {
            a_value = Some(eval(a).expect("a: is a number"));
            let (neg, digits) = match a.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, a),
            };
            match (&last_r, last_value) {
                (Some(r), _) if !trace.contains(" so ") && !trace.contains(": ") => {
                    let restated: String = r.chars().rev().collect();
                    let restated = restated.trim_start_matches('0');
                    let restated = if restated.is_empty() { "0" } else { restated };
                    assert_eq!(digits, restated, "a: restates r: in {trace}");
                    assert_eq!(neg, trace.contains("=-("), "{trace}");
                }
                (_, Some(v)) => {
                    assert_eq!(a_value, Some(v), "a: restates the last value in {trace}")
                }
                _ => panic!("a: with nothing before it in {trace}"),
            }
        } else if let Some(v) = tok.strip_prefix('=') {
            // An expression line's `=value` after its columns.
            last_value = Some(v.parse().unwrap());
        } else if let Some((lhs, rhs)) = tok.split_once('=') {
            let (l, r) = (eval(lhs), eval(rhs));
            assert!(l.is_some() && l == r, "`{tok}` is wrong in {trace}");
            last_value = r;
            // Column steps have three or more terms (digits and the carry);
            // an expression's `7*8=56` has two.
            if let Some(s) = parse_step(tok).filter(|s| s.terms.len() >= 3) {
                block.push(s);
            }
        }
    }
    a_value.expect("a trace ends with a:")
}

fn arith(cfg: ArithConfig) -> Arithmetic {
    Arithmetic::new(cfg).unwrap()
}

fn take(gen: &dyn TaskGenerator, n: usize, seed: u64, split: Split) -> Vec<Problem> {
    generate(gen, n, seed, split)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn the_trace_checker_catches_wrong_traces() {
    let good = arithmetic::addition(4821, 2376);
    assert_eq!(check_arith_trace(&good.trace), 7197);
    for bad in [
        good.trace.replace("1+6+0=7", "1+6+0=8"), // wrong sum
        good.trace.replace("r:7917", "r:7971"),   // digits out of order
        good.trace.replace("a:7197", "a:7917"),   // answer not restated
        arithmetic::addition(95, 17)
            .trace
            .replace("9+1+1", "9+1+0")
            .replace("=11", "=10"), // dropped carry
    ] {
        let r = std::panic::catch_unwind(|| check_arith_trace(&bad));
        assert!(r.is_err(), "accepted a wrong trace:\n{bad}");
    }
}

#[test]
fn every_arithmetic_trace_recomputes_and_matches_the_prompt() {
    let g = arith(ArithConfig::default());
    let mut kinds = HashMap::new();
    for seed in 0..4 {
        for p in take(&g, 500, seed, Split::Train) {
            let a = check_arith_trace(&p.trace);
            assert_eq!(a.to_string(), p.answer, "{p:?}");
            let expr = p
                .prompt
                .strip_prefix("Compute ")
                .unwrap()
                .strip_suffix('.')
                .unwrap();
            assert_eq!(eval(expr), Some(a), "{p:?}");
            let kind = if expr.matches(['+', '-', '*']).count() >= 2 {
                "expr"
            } else {
                "single"
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
    }
    assert!(kinds["expr"] > 300 && kinds["single"] > 1000, "{kinds:?}");
}

#[test]
fn column_steps_read_the_prompt_digits() {
    let g = arith(ArithConfig {
        ops: vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul],
        ..ArithConfig::default()
    });
    for p in take(&g, 600, 11, Split::Train) {
        let (a, op, b) = operands(&p.prompt);
        let lines: Vec<&str> = p.trace.lines().collect();
        let steps =
            |line: &str| -> Vec<Step> { line.split_whitespace().filter_map(parse_step).collect() };
        match op {
            '+' => {
                for (i, s) in steps(lines[0]).iter().enumerate() {
                    assert_eq!(s.terms[0], *lsf(a).get(i).unwrap_or(&0), "{p:?}");
                    assert_eq!(s.terms[1], *lsf(b).get(i).unwrap_or(&0), "{p:?}");
                }
            }
            '-' => {
                let (top, bottom) = if a >= b { (a, b) } else { (b, a) };
                let line = lines[usize::from(a < b)];
                for (i, s) in steps(line).iter().enumerate() {
                    assert_eq!(s.terms[0] % 10, lsf(top)[i], "{p:?}");
                    assert_eq!(s.terms[1], *lsf(bottom).get(i).unwrap_or(&0), "{p:?}");
                }
            }
            _ => {
                for (j, m) in lsf(b).iter().enumerate() {
                    for (i, s) in steps(lines[j]).iter().enumerate() {
                        assert_eq!((s.terms[0], s.terms[1]), (*m, lsf(a)[i]), "{p:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn example_traces_are_short() {
    let add = arithmetic::addition(4821, 2376);
    assert_eq!(add.trace, "1+6+0=7 2+7+0=9 8+3+0=11 4+2+1=7\nr:7917 a:7197");
    assert!(add.trace.len() < 50);
    let sub = arithmetic::subtraction(1789, 5234);
    assert_eq!(
        sub.trace,
        "1789-5234=-(5234-1789)\n14-9-0=5 13-8-1=4 12-7-1=4 5-1-1=3\nr:5443 a:-3445"
    );
    assert_eq!(sub.answer, "-3445");
    let mul = arithmetic::multiplication(347, 26);
    assert_eq!(
        mul.trace,
        "6*7+0=42 6*4+4=28 6*3+2=20 r:2802\n2*7+0=14 2*4+1=9 2*3+0=6 r:0496\n2+0+0=2 8+4+0=12 0+9+1=10 2+6+1=9\nr:2209 a:9022"
    );
    assert_eq!(mul.prompt, "Compute 347*26.");
}

#[test]
fn expression_traces_take_one_operation_per_line() {
    let g = arith(ArithConfig {
        ops: vec![ArithOp::Expr],
        steps: Span::new(3, 3),
        ..ArithConfig::default()
    });
    for p in take(&g, 200, 5, Split::Train) {
        let lines: Vec<&str> = p.trace.lines().collect();
        assert_eq!(lines.len(), 4, "{}", p.trace);
        // Each `so` restates the expression with one operation fewer.
        for (k, l) in lines[..2].iter().enumerate() {
            let rest = l.rsplit_once(" so ").expect("so").1;
            assert_eq!(rest.matches(['+', '-', '*']).count(), 2 - k, "{}", p.trace);
            let expr = p
                .prompt
                .strip_prefix("Compute ")
                .unwrap()
                .strip_suffix('.')
                .unwrap();
            assert_eq!(eval(rest), eval(expr), "{}", p.trace);
        }
    }
}

#[test]
fn splits_never_overlap_across_seeds() {
    // A small problem space (two-digit addition, ~4k problems) makes
    // collisions between runs certain; the hash keeps them on one side.
    let g = arith(ArithConfig {
        ops: vec![ArithOp::Add],
        digits: Span::new(1, 2),
        ..ArithConfig::default()
    });
    let mut train = HashSet::new();
    let mut test = HashSet::new();
    for seed in 0..8 {
        for p in take(&g, 300, seed, Split::Train) {
            assert_eq!(split_of(&p.canonical), Split::Train);
            train.insert(p.canonical);
        }
        for p in take(&g, 60, seed * 7 + 1, Split::Test) {
            test.insert(p.canonical);
        }
    }
    assert!(
        train.len() > 1000 && test.len() > 150,
        "{} {}",
        train.len(),
        test.len()
    );
    assert!(train.is_disjoint(&test));
    // 3+45 and 45+3 are one problem.
    assert_eq!(
        arithmetic::addition(3, 45).canonical,
        arithmetic::addition(45, 3).canonical
    );
    // About one problem in ten is test.
    let all = take(&g, 2000, 99, Split::Train).len() + take(&g, 200, 99, Split::Test).len();
    assert_eq!(all, 2200);
    let share = (0..5000u32)
        .filter(|i| split_of(&format!("{i}+{}", i * 7 + 3)) == Split::Test)
        .count();
    assert!((400..600).contains(&share), "{share}");
}

#[test]
fn countdown_splits_never_overlap_across_seeds() {
    let g = Countdown::new(CountdownConfig {
        numbers: Span::new(3, 3),
        max_number: 9,
        ..CountdownConfig::default()
    })
    .unwrap();
    let mut train = HashSet::new();
    let mut test = HashSet::new();
    for seed in 0..5 {
        train.extend(
            take(&g, 200, seed, Split::Train)
                .into_iter()
                .map(|p| p.canonical),
        );
        test.extend(
            take(&g, 30, seed + 100, Split::Test)
                .into_iter()
                .map(|p| p.canonical),
        );
    }
    assert!(train.is_disjoint(&test));
    assert!(test.len() > 50, "{}", test.len());
}

#[test]
fn same_seed_same_problems_and_runs_have_no_duplicates() {
    let g = arith(ArithConfig::default());
    let a = take(&g, 300, 42, Split::Train);
    assert_eq!(a, take(&g, 300, 42, Split::Train));
    // A prefix of a longer run: --n does not change the first problems.
    assert_eq!(a[..100], take(&g, 100, 42, Split::Train)[..]);
    assert_ne!(a, take(&g, 300, 43, Split::Train));
    let distinct: HashSet<_> = a.iter().map(|p| &p.canonical).collect();
    assert_eq!(distinct.len(), a.len());
    let c = Countdown::new(CountdownConfig::default()).unwrap();
    assert_eq!(take(&c, 50, 1, Split::Test), take(&c, 50, 1, Split::Test));
}

#[test]
fn a_too_small_space_is_an_error_not_a_hang() {
    let g = arith(ArithConfig {
        ops: vec![ArithOp::Add],
        digits: Span::new(1, 1),
        ..ArithConfig::default()
    });
    let r: Result<Vec<_>, _> = generate(&g, 1000, 0, Split::Train).collect();
    match r {
        Err(GenError::Exhausted { wanted, found, .. }) => {
            assert_eq!(wanted, 1000);
            assert!(found < 45, "{found}");
        }
        other => panic!(
            "expected Exhausted, got {} problems",
            other.map(|v| v.len()).unwrap_or(0)
        ),
    }
    assert!(Arithmetic::new(ArithConfig {
        digits: Span::new(0, 3),
        ..ArithConfig::default()
    })
    .is_err());
    assert!(Countdown::new(CountdownConfig {
        min_target: 50,
        max_target: 10,
        ..CountdownConfig::default()
    })
    .is_err());
}

#[test]
fn answers_verify_think_on_and_off() {
    let math = verifier_by_name("math").unwrap();
    let g = arith(ArithConfig::default());
    for p in take(&g, 300, 3, Split::Test) {
        assert_eq!(p.split(), Split::Test);
        for completion in [
            think_content(&p.trace, &p.answer),
            direct_content(&p.answer),
        ] {
            let v = math.verify(&completion, &p.answer);
            assert!(v.correct, "{completion}: {v:?}");
        }
        // A wrong final answer after a right trace is wrong.
        let wrong = (p.answer.parse::<i128>().unwrap() + 1).to_string();
        assert!(
            !math
                .verify(&think_content(&p.trace, &wrong), &p.answer)
                .correct
        );
    }
    let cd = verifier_by_name("countdown").unwrap();
    let c = Countdown::new(CountdownConfig::default()).unwrap();
    for p in take(&c, 300, 3, Split::Train) {
        assert_eq!(cd.check_reference(&p.answer), Ok(()));
        let v = cd.verify(&think_content(&p.trace, &p.answer), &p.answer);
        assert!(v.correct, "{p:?}: {v:?}");
    }
}

/// Countdown traces: every step is right, every attempt is a reduction of
/// the given numbers (each used once), the last attempt reaches the target
/// and `a:` is its expression.
#[test]
fn countdown_traces_are_valid_searches() {
    let c = Countdown::new(CountdownConfig::default()).unwrap();
    let mut dead_ends = 0;
    for p in take(&c, 400, 8, Split::Train) {
        let (target, nums) = p
            .prompt
            .strip_prefix("Make ")
            .and_then(|s| s.strip_suffix('.'))
            .and_then(|s| s.split_once(" from "))
            .unwrap();
        let target: i128 = target.parse().unwrap();
        let nums: Vec<i128> = nums.split(' ').map(|n| n.parse().unwrap()).collect();
        let lines: Vec<&str> = p.trace.lines().collect();
        let (attempts, last) = lines.split_at(lines.len() - 1);
        assert_eq!(last[0], format!("a:{}", p.answer));
        assert_eq!(eval(&p.answer), Some(target));
        for (k, line) in attempts.iter().enumerate() {
            let mut toks: Vec<&str> = line.split(' ').collect();
            let verdict = toks.pop().unwrap();
            let mut pool = nums.clone();
            let mut value = 0;
            for t in toks {
                let (lhs, rhs) = t.split_once('=').unwrap();
                assert_ne!(
                    value, target,
                    "an attempt went on past the target: {}",
                    p.trace
                );
                value = rhs.parse().unwrap();
                assert_eq!(eval(lhs), Some(value), "{t} in {}", p.trace);
                for operand in lhs.split(['+', '-', '*', '/']) {
                    let x: i128 = operand.parse().unwrap();
                    let i = pool
                        .iter()
                        .position(|&y| y == x)
                        .unwrap_or_else(|| panic!("{x} not available: {}", p.trace));
                    pool.swap_remove(i);
                }
                pool.push(value);
            }
            assert_eq!(pool.len(), 1, "{}", p.trace);
            let is_last = k + 1 == attempts.len();
            assert_eq!(verdict, if is_last { "yes" } else { "no" }, "{}", p.trace);
            assert_eq!(value == target, is_last, "{}", p.trace);
        }
        dead_ends += attempts.len() - 1;
    }
    assert!((250..550).contains(&dead_ends), "{dead_ends}");
}

#[test]
fn sft_records_spread_the_toggles() {
    let g = arith(ArithConfig::default());
    let mix = ThinkMix::default();
    let mut counts: HashMap<Toggle, usize> = HashMap::new();
    for p in take(&g, 3000, 9, Split::Train) {
        let t = mix.toggle(9, &p);
        *counts.entry(t).or_insert(0) += 1;
        let r = sft_record(&p, "arithmetic", t);
        let assistant = &r.messages.last().unwrap().content;
        let user = &r
            .messages
            .iter()
            .find(|m| m.role == "user")
            .unwrap()
            .content;
        let system = r
            .messages
            .iter()
            .find(|m| m.role == "system")
            .map(|m| m.content.as_str());
        assert_eq!(assistant.starts_with("<think>\n"), t.thinking());
        assert!(assistant.ends_with(&format!("\\boxed{{{}}}", p.answer)));
        match t {
            Toggle::Default => {
                assert!(system.is_none() && r.chat_template_kwargs.is_none() && *user == p.prompt)
            }
            Toggle::SystemThink => assert_eq!(system, Some("/think")),
            Toggle::SystemNoThink => assert_eq!(system, Some("/no_think")),
            Toggle::UserThink => assert_eq!(*user, format!("{} /think", p.prompt)),
            Toggle::UserNoThink => assert_eq!(*user, format!("{} /no_think", p.prompt)),
            Toggle::KwargsNoThink => assert_eq!(
                serde_json::to_string(&r.chat_template_kwargs).unwrap(),
                r#"{"enable_thinking":false}"#
            ),
        }
    }
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert!(
        counts.values().all(|&c| (380..620).contains(&c)),
        "{counts:?}"
    );
    let on: usize = counts
        .iter()
        .filter(|(t, _)| t.thinking())
        .map(|(_, c)| c)
        .sum();
    assert!((1380..1620).contains(&on), "{on}");
    let p = &take(&g, 1, 9, Split::Train)[0];
    assert!(!ThinkMix { think_ratio: 0.0 }.toggle(1, p).thinking());
    assert!(ThinkMix { think_ratio: 1.0 }.toggle(1, p).thinking());
}

#[test]
fn generated_files_load_as_tasks_and_sft() {
    let dir = tempfile::tempdir().unwrap();
    let g = arith(ArithConfig::default());
    let c = Countdown::new(CountdownConfig::default()).unwrap();
    let mut tasks = String::new();
    let mut sft = String::new();
    for (gen, kind) in [(&g as &dyn TaskGenerator, "arithmetic"), (&c, "countdown")] {
        for p in take(gen, 50, 1, Split::Train) {
            tasks.push_str(&serde_json::to_string(&task_record(&p, kind)).unwrap());
            tasks.push('\n');
            let r = sft_record(&p, kind, ThinkMix::default().toggle(1, &p));
            sft.push_str(&serde_json::to_string(&r).unwrap());
            sft.push('\n');
        }
    }
    let tp = dir.path().join("tasks.jsonl");
    std::fs::write(&tp, tasks).unwrap();
    let sp = dir.path().join("sft.jsonl");
    std::fs::write(&sp, sft).unwrap();
    let opts = LoadOptions {
        require_answer: true,
        ..LoadOptions::default()
    };
    let t = load_tasks(&[&tp], &opts).unwrap();
    assert_eq!(t.tasks.len(), 100);
    assert!(check_references(&t.tasks).is_empty());
    assert_eq!(t.tasks[60].verifier, "countdown");
    let think = t.tasks[0]
        .to_sft_messages(crate::data::TargetStyle::Think)
        .unwrap();
    assert!(think.messages[1].content.starts_with("<think>\n"));
    let s = load_tasks(&[&sp], &opts).unwrap();
    assert!(check_references(&s.tasks).is_empty());
    for task in &s.tasks {
        let conv = task
            .to_sft_messages(crate::data::TargetStyle::Solution)
            .unwrap();
        assert_eq!(conv.messages.last().unwrap().role, "assistant");
        assert!(task.prompt_messages().iter().all(|m| m.role != "assistant"));
    }
}

#[test]
fn trace_lengths_stay_small() {
    let g = arith(ArithConfig::default());
    let ps = take(&g, 2000, 2, Split::Train);
    let mean = ps.iter().map(|p| p.trace.len()).sum::<usize>() / ps.len();
    let max = ps.iter().map(|p| p.trace.len()).max().unwrap();
    assert!(mean < 120 && max < 320, "mean {mean} max {max}");
}
