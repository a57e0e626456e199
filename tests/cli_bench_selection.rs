//! `quorum bench selection` end to end on a tiny random model: the JSON
//! rows and the invariants of an early-stop-on vs -off comparison.

use std::process::Command;

use serde_json::Value;

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

const TASKS: &str = r#"{"prompt": "What is 2 + 3? Put the final answer in \\boxed{}.", "gold": "5"}
{"prompt": "Ann has 4 apples and eats 1. How many are left?", "gold": 3, "system": "Answer briefly."}

{"prompt": "What is 6 times 7?", "gold": "42"}
"#;

fn f(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {row}"))
}

#[test]
fn bench_selection_json_rows_compare_early_stop_on_and_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let st = quorum()
        .args(["model", "init", "--preset", "tiny", "--seed", "1", "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let tasks = tmp.path().join("tasks.jsonl");
    std::fs::write(&tasks, TASKS).unwrap();
    let (max_tokens, ns) = (24.0, [1.0, 4.0]);
    let out = quorum()
        .args([
            "bench",
            "selection",
            "--n",
            "1,4",
            "--max-tokens",
            "24",
            "--seed",
            "3",
        ])
        .args(["--strategy", "majority"])
        .args([
            "--strategy",
            r#"{"strategy": "confidence", "group_size": 4}"#,
        ])
        // The random model almost never samples EOS on its own; the bias
        // makes rollouts end at different lengths, so early stop can act.
        .args(["--logit-bias", "151645=7", "--json", "--model"])
        .arg(&dir)
        .arg("--tasks")
        .arg(&tasks)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    // (majority, confidence) x (off, on) per N.
    assert_eq!(rows.len(), 8);
    for r in &rows {
        assert_eq!(r["tasks"], 3, "{r}");
        for key in ["accuracy", "pass_at_n", "mean_vote_share", "decided_early"] {
            assert!((0.0..=1.0).contains(&f(r, key)), "{key} in {r}");
        }
        assert!(f(r, "pass_at_n") >= f(r, "accuracy"), "{r}");
        let n = f(r, "n");
        assert!(ns.contains(&n));
        assert!(f(r, "tokens_per_task") <= n * max_tokens, "{r}");
        assert!(f(r, "budget_tokens_saved_per_task") >= 0.0, "{r}");
        assert!(f(r, "wall_s") > 0.0 && f(r, "tokens_per_s") > 0.0, "{r}");
        if r["early_stop"] == false {
            assert_eq!(f(r, "tokens_saved_per_task"), 0.0, "{r}");
            assert_eq!(f(r, "tokens_saved_pct"), 0.0, "{r}");
            assert_eq!(f(r, "budget_tokens_saved_per_task"), 0.0, "{r}");
            assert_eq!(f(r, "rollouts_stopped_per_task"), 0.0, "{r}");
            assert_eq!(f(r, "answer_changed"), 0.0, "{r}");
        }
    }
    for pair in rows.chunks(2) {
        let (off, on) = (&pair[0], &pair[1]);
        assert_eq!(
            (&off["early_stop"], &on["early_stop"]),
            (&false.into(), &true.into())
        );
        assert_eq!((&off["strategy"], &off["n"]), (&on["strategy"], &on["n"]));
        // Same seeds: early stop only ever removes tokens.
        assert!(f(on, "tokens_saved_per_task") >= 0.0, "{on}");
        assert!(
            f(on, "tokens_per_task") <= f(off, "tokens_per_task"),
            "{on}"
        );
        let changed = f(on, "answer_changed");
        assert!((0.0..=1.0).contains(&changed), "{on}");
        if on["n"] == 1 {
            // One rollout: nothing to stop.
            assert_eq!(f(on, "tokens_per_task"), f(off, "tokens_per_task"));
            assert_eq!(f(on, "rollouts_stopped_per_task"), 0.0);
        }
    }
    // DeepConf early stop acts on this model and seed (the first rollouts
    // to hit EOS set the bar; less confident ones are cut).
    let conf_on = &rows[7];
    assert_eq!(conf_on["strategy"], "confidence(group_size=4)");
    assert_eq!(
        (&conf_on["n"], &conf_on["early_stop"]),
        (&4.into(), &true.into())
    );
    assert!(f(conf_on, "decided_early") > 0.0, "{conf_on}");
    assert!(f(conf_on, "tokens_saved_per_task") > 0.0, "{conf_on}");
    assert!(
        f(conf_on, "budget_tokens_saved_per_task") > 0.0,
        "{conf_on}"
    );
}

#[test]
fn bench_selection_names_the_bad_task_line() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = tmp.path().join("tasks.jsonl");
    std::fs::write(
        &tasks,
        "{\"prompt\": \"a\", \"gold\": 1}\n{\"prompt\": \"b\"}\n",
    )
    .unwrap();
    let out = quorum()
        .args(["bench", "selection", "--model", "/nonexistent", "--tasks"])
        .arg(&tasks)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tasks.jsonl:2:"), "{err}");
    assert!(err.contains("missing field `gold`"), "{err}");
}

#[test]
fn bench_selection_majority_early_stop_fires_with_a_regex_extractor() {
    // The math extractor finds no answers in a random model's noise, so
    // `majority` early stop never fires on it. A regex with a small answer
    // space (the last vowel: five values) makes random rollouts agree by
    // chance, and an EOS bias makes them end at different lengths: the vote
    // is then often decided while some rollouts still run. At N = 16 it
    // fired on 4-6 of these 8 tasks for every model seed (1-3) and bench
    // seed (0-2) tried, so the check does not hang on one lucky task.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let st = quorum()
        .args(["model", "init", "--preset", "tiny", "--seed", "1", "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let tasks = concat!(env!("CARGO_MANIFEST_DIR"), "/config/bench/arith.jsonl");
    let spec = r#"{"strategy": "majority", "extract": {"regex": "([aeiou])"}}"#;
    let out = quorum()
        .args(["bench", "selection", "--n", "16", "--limit", "8"])
        .args(["--max-tokens", "256", "--temperature", "0.7", "--seed", "0"])
        .args(["--strategy", spec, "--logit-bias", "151645=6", "--json"])
        .arg("--model")
        .arg(&dir)
        .args(["--tasks", tasks])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    let (off, on) = (&rows[0], &rows[1]);
    assert_eq!(on["strategy"], r#"majority(extract={"regex":"([aeiou])"})"#);
    assert_eq!(
        (&off["early_stop"], &on["early_stop"]),
        (&false.into(), &true.into())
    );
    // Rollouts answer (vowels), unlike with the math extractor.
    assert!(f(off, "mean_vote_share") > 0.2, "{off}");
    assert!(f(on, "decided_early") > 0.0, "{on}");
    assert!(f(on, "rollouts_stopped_per_task") > 0.0, "{on}");
    assert!(f(on, "tokens_saved_per_task") > 0.0, "{on}");
    assert!(f(on, "budget_tokens_saved_per_task") > 0.0, "{on}");
    assert!(
        f(on, "tokens_per_task") < f(off, "tokens_per_task"),
        "{on} vs {off}"
    );
}
