//! Shared test helpers. The random-weight model fixture of every integration test:
//! [`write_model`] (a preset, with what a test relies on set in the init options), in a
//! temp dir ([`temp_model`]) or written once per target dir ([`shared_model_dir`],
//! [`byte_model_dir`]); `server_common` builds its models with these too.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use quorum::model::init::{init_model, InitOptions, TokenizerSource};
use quorum::model::presets::preset;
use quorum::model::ModelConfig;

/// Writes a random-weight model of preset `name` at `dir` and returns its config as
/// written. `edit` sets what the test relies on (seed, dtype, reward head, tokenizer, or
/// fields of `config`); untouched options keep [`InitOptions::new`]'s defaults: seed 0,
/// f32, the Qwen3 tokenizer fixture, an LM head.
pub fn write_model(name: &str, dir: &Path, edit: impl FnOnce(&mut InitOptions)) -> ModelConfig {
    let mut opts = InitOptions::new(preset(name).expect("preset"), dir);
    edit(&mut opts);
    init_model(&opts, &|_| {}).expect("init model");
    ModelConfig::from_file(&dir.join("config.json")).expect("config")
}

/// A random-weight model written to a temp dir (kept alive by the returned guard).
pub struct TempModel {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

/// [`write_model`] of preset `preset_name` with `seed`, at `<temp dir>/model`.
pub fn temp_model(preset_name: &str, seed: u64) -> TempModel {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("model");
    write_model(preset_name, &dir, |o| o.seed = seed);
    TempModel { _tmp: tmp, dir }
}

/// [`write_model`] of preset `name` at `<cargo target tmp dir>/<key>`, written once per
/// target dir and reused: written to a private dir then renamed, so concurrent test
/// binaries never see half a model (a binary that loses the race uses the winner's).
pub fn shared_model_dir(key: &str, name: &str, edit: impl FnOnce(&mut InitOptions)) -> PathBuf {
    // One writer at a time in this process (the private dir is named by pid).
    static WRITING: Mutex<()> = Mutex::new(());
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(key);
    if dir.join("config.json").is_file() {
        return dir;
    }
    let tmp = root.join(format!("{key}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    write_model(name, &tmp, edit);
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another binary won the race; use its copy.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// A tiny Qwen3 model over the synthetic byte-level tokenizer (vocabulary of
/// 261: bytes + ChatML + think tags), the fixture for training tests: small
/// enough that a step takes milliseconds, with the real chat template.
/// Written once per target dir.
pub fn byte_model_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let tok_dir = root.join(format!("train-byte-tokenizer.tmp{}", std::process::id()));
    let dir = shared_model_dir("train-byte-model-v1", "tiny", |opts| {
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
        let cfg = &mut opts.config;
        cfg.vocab_size = tok.vocab_size();
        cfg.eos_token_id = tok
            .token_to_id("<|im_end|>")
            .map(quorum::model::config::TokenIds::One);
        cfg.bos_token_id = None;
        opts.tokenizer = TokenizerSource::Qwen3Fixture(tok_dir.clone());
    });
    let _ = std::fs::remove_dir_all(&tok_dir);
    dir
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
