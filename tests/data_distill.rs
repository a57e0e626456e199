//! `quorum data distill` end to end: answers sampled from the shipped
//! `models/tiny-reasoner-rl` for six generated additions, the
//! verifier-correct ones written as SFT conversations (think toggle, user
//! turn, `<think>` reasoning then the answer), the yield reported; then
//! `quorum train sft` trains two steps on the file as it is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-reasoner-rl")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn distilled_answers_are_correct_sft_conversations_that_train() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("six.jsonl");
    ok(quorum()
        .args(["data", "gen", "arithmetic", "--n", "6", "--seed", "9"])
        .args(["--split", "test", "--format", "tasks", "--ops", "add"])
        .args(["--digits", "3", "--out"])
        .arg(&data)
        .output()
        .unwrap());
    let sft = tmp.path().join("sft.jsonl");
    let report = tmp.path().join("yield.json");
    let stderr = ok(quorum()
        .args(["data", "distill", "--model"])
        .arg(model())
        .arg("--data")
        .arg(&data)
        .args(["-k", "4", "--think", "on", "--dedup", "--shortest-first"])
        .args([
            "--max-per-problem",
            "3",
            "--max-tokens",
            "256",
            "--seed",
            "1",
        ])
        .arg("--out")
        .arg(&sft)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap());
    assert!(
        stderr.contains("distilled 6 problems × 4 samples"),
        "{stderr}"
    );
    assert!(
        stderr.contains("records per problem (kept:problems) 0:"),
        "{stderr}"
    );

    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&sft)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(r["kept"], lines.len());
    assert!(!lines.is_empty(), "the model solves some: {r}");
    let per: Vec<&Value> = r["per_problem"].as_array().unwrap().iter().collect();
    assert_eq!(per.len(), 6);
    let hist: Vec<u64> = r["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(hist.iter().sum::<u64>(), 6);
    let tasks: Vec<Value> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (y, t) in per.iter().zip(&tasks) {
        assert_eq!(y["id"], t["id"]);
        let kept = y["kept"].as_u64().unwrap();
        assert!(kept <= 3 && kept <= y["correct"].as_u64().unwrap());
        let mine: Vec<&Value> = lines.iter().filter(|l| l["id"] == t["id"]).collect();
        assert_eq!(mine.len() as u64, kept);
        let mut seen = std::collections::HashSet::new();
        for l in mine {
            let m = l["messages"].as_array().unwrap();
            assert_eq!(m.len(), 3);
            assert_eq!(
                (m[0]["role"].as_str(), m[0]["content"].as_str()),
                (Some("system"), Some("/think"))
            );
            assert_eq!(m[1]["content"], t["prompt"]);
            let a = m[2]["content"].as_str().unwrap();
            assert!(
                a.starts_with("<think>\n") && a.contains("\n</think>\n\n"),
                "{a}"
            );
            // The answer after the think block is the reference.
            let answer = a.rsplit("</think>").next().unwrap();
            assert!(
                quorum_scoring::verifier_by_name("math")
                    .unwrap()
                    .verify(answer, t["answer"].as_str().unwrap())
                    .correct,
                "{answer}"
            );
            assert!(seen.insert(a.to_string()), "deduplicated");
            assert_eq!(l["answer"], t["answer"]);
        }
    }

    // `quorum train sft` reads it unchanged.
    let run = tmp.path().join("run");
    let cfg = tmp.path().join("sft.toml");
    std::fs::write(
        &cfg,
        format!(
            "out = \"{}\"\n[model]\ninit = \"{}\"\n[data]\ntrain = \"{}\"\nmax_length = 256\n\
             [optim]\nlr = 1e-4\nwarmup_steps = 1\n[train]\nsteps = 2\nbatch_tokens = 512\nseed = 0\n\
             [eval]\nevery = 0\n",
            run.display(),
            model().display(),
            sft.display()
        ),
    )
    .unwrap();
    ok(quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .output()
        .unwrap());
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let steps = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["loss"].is_f64())
        .count();
    assert!(steps >= 2, "{metrics}");
}
