//! `quorum train sft` end to end on the byte-level tiny model: training
//! lowers held-out loss, a SIGKILLed run resumes to the same weights as an
//! uninterrupted one, SIGTERM checkpoints and exits cleanly, and a
//! checkpoint serves unchanged.

mod server_common;

use server_common::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

/// Two-digit additions as SFT conversations, half think / half direct,
/// toggled by the system prompt.
fn write_data(dir: &Path, n: usize, seed: u64) -> (PathBuf, PathBuf) {
    let mut sft = String::new();
    let mut tasks = String::new();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (x >> 33) % 90 + 10;
        let b = (x >> 45) % 90 + 10;
        let s = a + b;
        let think = i % 2 == 0;
        let sys = if think { "/think" } else { "/no_think" };
        let content = if think {
            format!("<think>\n{a}+{b}={s}\n</think>\n\n\\boxed{{{s}}}")
        } else {
            format!("\\boxed{{{s}}}")
        };
        let prompt = format!("Add {a}+{b}.");
        sft.push_str(
            &json!({"messages": [
                {"role": "system", "content": sys},
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": content}]})
            .to_string(),
        );
        sft.push('\n');
        tasks.push_str(&json!({"prompt": prompt, "answer": s.to_string()}).to_string());
        tasks.push('\n');
    }
    let (p, t) = (
        dir.join(format!("sft-{seed}.jsonl")),
        dir.join(format!("tasks-{seed}.jsonl")),
    );
    std::fs::write(&p, sft).unwrap();
    std::fs::write(&t, tasks).unwrap();
    (p, t)
}

fn recipe(dir: &Path, out: &Path, steps: u64, extra: &str) -> PathBuf {
    let (train, _) = write_data(dir, 64, 1);
    let (eval, tasks) = write_data(dir, 8, 2);
    let text = format!(
        r#"
out = "{out}"
[model]
init = "{model}"
[data]
train = "{train}"
eval = "{eval}"
eval_tasks = "{tasks}"
max_length = 128
[optim]
lr = 3e-3
warmup_steps = 5
weight_decay = 0.01
max_grad_norm = 1.0
[train]
steps = {steps}
batch_tokens = 512
grad_accum = 2
seed = 3
[eval]
every = 0
max_problems = 4
max_new_tokens = 24
{extra}
"#,
        out = out.display(),
        model = common::byte_model_dir().display(),
        train = train.display(),
        eval = eval.display(),
        tasks = tasks.display(),
    );
    let path = dir.join(format!(
        "recipe-{}.toml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

fn eval_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "eval")
        .collect()
}

#[test]
fn sft_lowers_held_out_loss_and_the_checkpoint_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = recipe(tmp.path(), &out, 60, "[checkpoint]\nevery = 30\nkeep = 1");
    // The eval loss of the untrained model, from a 1-step run with lr ~0.
    let base = tmp.path().join("base");
    let st = quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&base)
        .args(["train.steps=1", "optim.lr=1e-12", "optim.warmup_steps=0"])
        .status()
        .unwrap();
    assert!(st.success());
    let before = eval_records(&base)[0]["eval_loss"].as_f64().unwrap();
    let st = quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .status()
        .unwrap();
    assert!(st.success());
    let evals = eval_records(&out);
    let after = evals.last().unwrap()["eval_loss"].as_f64().unwrap();
    assert!(before > 3.0, "untrained eval loss {before}");
    assert!(after < 1.2, "eval loss {before} -> {after}");
    // accuracy by generation was measured for both modes
    let acc = &evals.last().unwrap()["accuracy"];
    assert!(acc["think"].is_f64() && acc["no_think"].is_f64(), "{acc}");
    // only the newest checkpoint is kept; the resolved config is saved
    let ckpts: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(ckpts, vec!["checkpoint-000060".to_string()]);
    assert!(out.join("config.toml").is_file());

    // The checkpoint is a model directory the server loads unchanged.
    let ckpt = out.join("checkpoint-000060");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = server_common::config();
        cfg.models[0].dir = ckpt.clone();
        let server = server_common::start(cfg).await;
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", server.base))
            .json(&json!({"model": "tiny", "max_tokens": 8,
                "messages": [{"role": "user", "content": "Add 12+34. /no_think"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            body["choices"][0]["message"]["content"].is_string(),
            "{body}"
        );
    });
}

fn final_weights(run: &Path, step: u64) -> Vec<u8> {
    std::fs::read(run.join(format!("checkpoint-{step:06}/model.safetensors"))).unwrap()
}

#[test]
fn a_sigkilled_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let steps = 200;
    let ckpt = "[checkpoint]\nevery = 10\nkeep = 2";
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let cfg_a = recipe(tmp.path(), &a, steps, ckpt);
    let cfg_b = recipe(tmp.path(), &b, steps, ckpt);
    let st = quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg_a)
        .status()
        .unwrap();
    assert!(st.success());

    let mut child = quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg_b)
        .spawn()
        .unwrap();
    common::wait_for("checkpoint 20", Duration::from_secs(120), || {
        b.join("checkpoint-000020/trainer_state.json").is_file()
    });
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    assert!(
        !b.join(format!("checkpoint-{steps:06}")).exists(),
        "the run finished before it was killed; make it longer"
    );
    // Without --resume the run refuses to overwrite its checkpoints.
    let out = quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg_b)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let st = quorum()
        .args(["train", "sft", "--resume", "--config"])
        .arg(&cfg_b)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        final_weights(&a, steps) == final_weights(&b, steps),
        "resumed weights differ from the uninterrupted run"
    );
    let opt = |r: &Path| {
        std::fs::read(r.join(format!("checkpoint-{steps:06}/optimizer.safetensors"))).unwrap()
    };
    assert!(opt(&a) == opt(&b), "optimizer moments differ");
    // The metrics read as one run: each step once.
    let steps_logged: Vec<u64> = std::fs::read_to_string(b.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps_logged, (1..=steps).collect::<Vec<_>>());
}

#[cfg(target_os = "linux")]
#[test]
fn sigterm_writes_a_checkpoint_and_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = recipe(tmp.path(), &run, 100_000, "");
    let mut child = quorum()
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    common::wait_for("a few steps", Duration::from_secs(120), || {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .map(|t| t.lines().count() >= 3)
            .unwrap_or(false)
    });
    let pid = child.id() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    let ckpts = quorum_train::checkpoint::list(&run).unwrap();
    assert_eq!(ckpts.len(), 1);
    let (step, dir) = &ckpts[0];
    assert!(*step >= 3 && *step < 100_000);
    assert!(dir.join("model.safetensors").is_file() && dir.join("config.json").is_file());
}
