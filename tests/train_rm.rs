//! `quorum train rm` end to end on the shipped tiny reasoning policy
//! (`models/tiny-reasoner-rl`): rollouts sampled from the policy and
//! labelled by the verifier train a reward model that reports AUC and
//! best-of-N / weighted-majority against majority; preference pairs train
//! with Bradley–Terry; a SIGKILLed run resumes to the same weights; the
//! checkpoint loads as the server's reward model; bad input is an error
//! naming the file, line and field.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use candle_core::Device;

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

fn policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-reasoner-rl")
}

/// Generated multiplication tasks (the policy gets some, not all, right at
/// temperature 1: labels of both kinds).
fn write_tasks(dir: &Path, n: usize, seed: u64, split: &str) -> PathBuf {
    let path = dir.join(format!("tasks-{split}-{seed}.jsonl"));
    let st = quorum()
        .args(["data", "gen", "arithmetic", "--format", "tasks"])
        .args(["--ops", "mul", "--mul-digits", "3", "--mul-by", "2"])
        .args(["--n", &n.to_string(), "--seed", &seed.to_string()])
        .args(["--split", split, "--out"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    path
}

/// Preference pairs: the worked solution is chosen over a refusal (an
/// easy, learnable preference).
fn write_pairs(dir: &Path, n: usize, seed: u64, split: &str) -> PathBuf {
    let tasks = write_tasks(dir, n, seed, split);
    let path = dir.join(format!("pairs-{split}-{seed}.jsonl"));
    let mut out = String::new();
    for line in std::fs::read_to_string(&tasks).unwrap().lines() {
        let t: serde_json::Value = serde_json::from_str(line).unwrap();
        let rec = serde_json::json!({
            "prompt": t["prompt"],
            "answer": t["answer"],
            "chosen": format!("<think>\n{}\n</think>\n\nThe answer is \\boxed{{{}}}.", t["solution"].as_str().unwrap_or(""), t["answer"].as_str().unwrap()),
            "rejected": "I cannot do that.",
        });
        out.push_str(&rec.to_string());
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    path
}

fn config(dir: &Path, out: &Path, train: &Path, eval: &Path, body: &str) -> PathBuf {
    let text = format!(
        r#"out = "{out}"
[model]
init = "{model}"
[data]
train = "{train}"
eval = "{eval}"
max_length = 256
{body}
"#,
        out = out.display(),
        model = policy_dir().display(),
        train = train.display(),
        eval = eval.display(),
    );
    let path = dir.join(format!(
        "rm-{}.toml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// `quorum train rm --config CFG [--resume]`, which must succeed.
fn train_rm(cfg: &Path, resume: bool) {
    let mut cmd = quorum();
    cmd.args(["train", "rm"]);
    if resume {
        cmd.arg("--resume");
    }
    let st = cmd.arg("--config").arg(cfg).status().unwrap();
    assert!(st.success(), "quorum train rm --config {}", cfg.display());
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn rollouts_labelled_by_the_verifier_train_a_reward_model_that_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let train = write_tasks(tmp.path(), 16, 1, "train");
    let eval = write_tasks(tmp.path(), 6, 2, "test");
    let cfg = config(
        tmp.path(),
        &out,
        &train,
        &eval,
        "[rollouts]\nsamples_per_prompt = 4\neval_samples_per_prompt = 4\nmax_completion_tokens = 96\n\
         [optim]\nlr = 3e-4\n[train]\nsteps = 12\nitems_per_step = 4\nlog_every = 1\n\
         [eval]\nevery = 0\nn = [2, 4]\nsubsets = 8",
    );
    train_rm(&cfg, false);
    // the sampled rollouts are cached with their verdicts
    let cached = std::fs::read_to_string(out.join("rollouts-train.jsonl")).unwrap();
    assert_eq!(
        cached.lines().count(),
        1 + 16 * 4,
        "header + 16 × 4 rollouts"
    );
    let steps = common::metrics_records(&out, "step");
    assert_eq!(steps.len(), 12);
    for s in &steps {
        assert!(s["loss"].as_f64().unwrap().is_finite(), "{s}");
        // a step takes whole problems: 4 problems × 4 samples
        assert_eq!(s["sequences"], 16, "{s}");
    }
    let evals = common::metrics_records(&out, "eval");
    assert_eq!(evals.len(), 1, "the final eval");
    let e = &evals[0];
    let report = &e["report"];
    assert_eq!(report["samples"], 24);
    for n in [2, 4] {
        for k in ["majority", "best_of_n", "weighted_majority"] {
            let a = e["accuracy"][format!("{k}@{n}")].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{k}@{n}: {e}");
        }
    }
    // at N = all samples majority is deterministic; pass@N bounds every strategy
    let at4 = report["selection"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["n"] == 4)
        .unwrap();
    let pass = at4["pass_at_n"].as_f64().unwrap();
    for k in ["majority", "best_of_n", "weighted_majority"] {
        assert!(at4[k].as_f64().unwrap() <= pass + 1e-9, "{at4}");
    }
    // the checkpoint is a sequence-classification model the server loads
    let ckpt = out.join("checkpoint-000012");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen3ForSequenceClassification");
    let mut bundle =
        quorum::engine::ModelBundle::load(&policy_dir(), None, &Device::Cpu).expect("policy");
    bundle
        .load_reward(&ckpt, None, &Device::Cpu)
        .expect("the trained reward model loads as the server's scorer");
}

#[test]
fn preference_pairs_train_with_bradley_terry() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let train = write_pairs(tmp.path(), 24, 1, "train");
    let eval = write_pairs(tmp.path(), 8, 2, "test");
    let cfg = config(
        tmp.path(),
        &out,
        &train,
        &eval,
        "[optim]\nlr = 3e-4\n[train]\nsteps = 16\nitems_per_step = 4\nlog_every = 1\n[eval]\nevery = 0",
    );
    train_rm(&cfg, false);
    let losses: Vec<f64> = common::metrics_records(&out, "step")
        .iter()
        .map(|s| s["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 16);
    // BT loss starts near ln 2 (a fresh small head barely separates the sides)
    assert!(
        (losses[0] - std::f64::consts::LN_2).abs() < 0.25,
        "{losses:?}"
    );
    assert!(
        mean(&losses[12..]) < 0.5 * mean(&losses[..4]),
        "the loss did not fall: {losses:?}"
    );
    let e = &common::metrics_records(&out, "eval")[0];
    let acc = e["accuracy"]["pair_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.99, "held-out pairs: {e}");
}

#[test]
fn a_sigkilled_rm_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write_pairs(tmp.path(), 24, 1, "train");
    let eval = write_pairs(tmp.path(), 4, 2, "test");
    let steps = 10;
    let body = format!(
        "[train]\nsteps = {steps}\nitems_per_step = 4\n[eval]\nevery = 3\n[checkpoint]\nevery = 1\nkeep = 2"
    );
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let cfg_a = config(tmp.path(), &a, &train, &eval, &body);
    let cfg_b = config(tmp.path(), &b, &train, &eval, &body);
    train_rm(&cfg_a, false);
    let mut child = quorum()
        .args(["train", "rm", "--config"])
        .arg(&cfg_b)
        .spawn()
        .unwrap();
    common::wait_for("checkpoint 3", Duration::from_secs(300), || {
        b.join("checkpoint-000003/trainer_state.json").is_file()
    });
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    assert!(
        !b.join(format!("checkpoint-{steps:06}")).exists(),
        "the run finished before it was killed; make it longer"
    );
    train_rm(&cfg_b, true);
    let file =
        |r: &Path, f: &str| std::fs::read(r.join(format!("checkpoint-{steps:06}/{f}"))).unwrap();
    assert!(
        file(&a, "model.safetensors") == file(&b, "model.safetensors"),
        "resumed weights differ from the uninterrupted run"
    );
    assert!(file(&a, "optimizer.safetensors") == file(&b, "optimizer.safetensors"));
    let losses = |r: &Path| -> Vec<(u64, String)> {
        common::metrics_records(r, "step")
            .iter()
            .map(|v| (v["step"].as_u64().unwrap(), v["loss"].to_string()))
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
}

#[test]
fn bad_reward_model_data_and_configs_are_errors_naming_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write_pairs(tmp.path(), 6, 1, "train");
    let eval = write_pairs(tmp.path(), 2, 2, "test");
    // a pair without its rejected side, on line 3
    let broken = tmp.path().join("broken.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut v: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    v.as_object_mut().unwrap().remove("rejected");
    lines[2] = v.to_string();
    std::fs::write(&broken, lines.join("\n") + "\n").unwrap();
    let run = |cfg: &Path, extra: &[&str]| {
        let out = quorum()
            .args(["train", "rm", "--config"])
            .arg(cfg)
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let body = "[train]\nsteps = 2";
    let cfg = config(tmp.path(), &tmp.path().join("r1"), &broken, &eval, body);
    let err = run(&cfg, &[]);
    assert!(
        err.contains("broken.jsonl:3") && err.contains("rejected"),
        "{err}"
    );
    let cfg = config(tmp.path(), &tmp.path().join("r2"), &train, &eval, body);
    let err = run(&cfg, &["objective.loss=bce"]);
    assert!(
        err.contains("objective.loss") && err.contains("pairs"),
        "{err}"
    );
    let err = run(&cfg, &["train.item_per_step=3"]);
    assert!(err.contains("item_per_step"), "{err}");
}
