//! The `quorum` binary end to end: model init, generate --json, verify.

use std::io::Write;
use std::process::{Command, Stdio};

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

#[test]
fn model_init_then_generate_json_reports_completions_and_timings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let st = quorum()
        .args(["model", "init", "--preset", "tiny", "--seed", "1", "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let out = quorum()
        .args([
            "generate",
            "--prompt",
            "Hi",
            "--n",
            "2",
            "--max-tokens",
            "5",
            "--ignore-eos",
            "--json",
            "--model",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let completions = v["completions"].as_array().unwrap();
    assert_eq!(completions.len(), 2);
    for c in completions {
        assert_eq!(c["token_ids"].as_array().unwrap().len(), 5);
        assert_eq!(c["finish_reason"], "length");
        assert!(c["text"].is_string());
    }
    // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" is 9 tokens;
    // think mode is on by default (as served), so "<think>\n" follows: 11.
    assert_eq!(v["prompt_tokens"], 11);
    assert_eq!(v["prompt_token_ids"].as_array().unwrap().len(), 11);
    assert_eq!(v["thinking"], true);
    assert!(v["timings"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn model_init_refuses_to_overwrite_and_generate_names_missing_dir() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x"), "keep").unwrap();
    let out = quorum()
        .args(["model", "init", "--preset", "tiny", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("x")).unwrap(),
        "keep"
    );

    let out = quorum()
        .args([
            "generate",
            "--prompt",
            "Hi",
            "--model",
            "/nonexistent/model",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model"));
}

#[test]
fn verify_compares_one_pair() {
    let out = quorum()
        .args([
            "verify",
            "--gold",
            "\\frac{1}{2}",
            "--pred",
            "The answer is 0.5",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["equal"], true);
    assert!(v["gold_norm"].is_string() && v["pred_norm"].is_string());
}

#[test]
fn verify_jsonl_writes_one_verdict_per_line() {
    let mut child = quorum()
        .args(["verify", "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"gold\": \"1,000\", \"pred\": \"1000\"}\n{\"gold\": 3, \"pred\": \"\\\\boxed{4}\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["equal"], true);
    assert_eq!(lines[1]["equal"], false);
}

/// `--amx on` is a requirement, not a hint: with f32 weights (nothing to
/// pack) or without AMX it fails at load with a message saying why; with a
/// bf16 checkpoint on an AMX machine it generates through the tile kernel.
#[test]
fn amx_on_requires_bf16_weights_and_an_amx_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let f32_dir = tmp.path().join("f32");
    let bf16_dir = tmp.path().join("bf16");
    for (dir, dtype) in [(&f32_dir, "f32"), (&bf16_dir, "bf16")] {
        let st = quorum()
            .args([
                "model", "init", "--preset", "tiny", "--dtype", dtype, "--out",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let generate = |dir: &std::path::Path| {
        quorum()
            .args([
                "generate",
                "--prompt",
                "Hi",
                "--max-tokens",
                "3",
                "--ignore-eos",
                "--json",
                "--amx",
                "on",
                "--model",
            ])
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = generate(&f32_dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bf16 weight matrices") || err.contains("AMX"),
        "unexpected error: {err}"
    );
    let out = generate(&bf16_dir);
    if quorum::kernels::amx::available() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["completions"][0]["token_ids"].as_array().unwrap().len(),
            3
        );
    } else {
        assert!(String::from_utf8_lossy(&out.stderr).contains("AMX"));
    }
}

#[test]
fn log_lines_have_no_ansi_colour_when_stderr_is_not_a_terminal() {
    // Binds, logs "listening", then fails to load the missing model and exits.
    let out = quorum()
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .args(["--model", "/nonexistent/quorum-model"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(" INFO ") && err.contains("listening"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn model_gguf_exports_a_qwen3_dir_and_refuses_a_reward_model() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra) in [("lm", None), ("rm", Some("--reward-head"))] {
        let mut cmd = quorum();
        cmd.args(["model", "init", "--preset", "tiny", "--out"])
            .arg(tmp.path().join(name));
        if let Some(flag) = extra {
            cmd.arg(flag);
        }
        assert!(cmd.output().unwrap().status.success());
    }
    let gguf = tmp.path().join("lm.gguf");
    let out = quorum()
        .args(["model", "gguf", "--dtype", "f16", "--model"])
        .arg(tmp.path().join("lm"))
        .arg("--out")
        .arg(&gguf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("wrote") && stdout.contains("tensors"),
        "{stdout}"
    );
    assert_eq!(&std::fs::read(&gguf).unwrap()[..4], b"GGUF");

    let out = quorum()
        .args(["model", "gguf", "--model"])
        .arg(tmp.path().join("rm"))
        .arg("--out")
        .arg(tmp.path().join("rm.gguf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Qwen3ForSequenceClassification"), "{err}");
    assert!(!tmp.path().join("rm.gguf").exists());
}
