//! Shared test helpers: random-weight model directories from presets.
#![allow(dead_code)]

use std::path::PathBuf;

use quorum::model::init::{init_model, InitOptions};
use quorum::model::presets::preset;

/// A random-weight model written to a temp dir (kept alive by the returned guard).
pub struct TempModel {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

pub fn temp_model(preset_name: &str, seed: u64) -> TempModel {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("model");
    let mut opts = InitOptions::new(preset(preset_name).expect("preset"), &dir);
    opts.seed = seed;
    init_model(&opts, &|_| {}).expect("init model");
    TempModel { _tmp: tmp, dir }
}

/// A tiny Qwen3 model over the synthetic byte-level tokenizer (vocabulary of
/// 261: bytes + ChatML + think tags), the fixture for training tests: small
/// enough that a step takes milliseconds, with the real chat template.
/// Written once per target dir (private dir, then renamed).
pub fn byte_model_dir() -> PathBuf {
    use std::sync::OnceLock;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("train-byte-model-v1");
        if dir.join("config.json").is_file() {
            return dir;
        }
        let tmp = root.join(format!("train-byte-model-v1.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let tok_dir = root.join(format!("train-byte-tokenizer.tmp{}", std::process::id()));
        std::fs::create_dir_all(&tok_dir).expect("tokenizer dir");
        std::fs::write(
            tok_dir.join("tokenizer.json"),
            quorum::tokenizer::synthetic_tokenizer_json().expect("synthetic tokenizer"),
        )
        .expect("write tokenizer.json");
        std::fs::write(
            tok_dir.join("tokenizer_config.json"),
            quorum::tokenizer::synthetic_tokenizer_config_json(true),
        )
        .expect("write tokenizer_config.json");
        let tok = quorum::tokenizer::Tokenizer::from_dir(&tok_dir).expect("load tokenizer");
        let mut cfg = preset("tiny").expect("preset");
        cfg.vocab_size = tok.vocab_size();
        cfg.eos_token_id = tok
            .token_to_id("<|im_end|>")
            .map(quorum::model::config::TokenIds::One);
        cfg.bos_token_id = None;
        let mut opts = InitOptions::new(cfg, &tmp);
        opts.tokenizer = quorum::model::init::TokenizerSource::Qwen3Fixture(tok_dir.clone());
        init_model(&opts, &|_| {}).expect("init byte model");
        let _ = std::fs::remove_dir_all(&tok_dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// Polls `done` every 5 ms; fails the test after `timeout`.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !done() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The `metrics.jsonl` records of a training run with this `kind`.
pub fn metrics_records(run: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}
