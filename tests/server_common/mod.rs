//! Shared helpers of the server tests: one tiny random-weight model per
//! target dir (written once, reused), and in-process servers on free ports.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use quorum::model::init::{init_model, InitOptions};
use quorum::model::presets::preset;
use quorum::server::config::ModelSpec;
use quorum::server::{RunningServer, ServerConfig};

/// The `tiny` preset (seed 0) under the cargo target tmp dir. Written to a
/// private dir then renamed, so concurrent test binaries never see half a model.
pub fn tiny_model_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("server-tiny-model-v1");
        if dir.join("config.json").is_file() {
            return dir;
        }
        let tmp = root.join(format!("server-tiny-model-v1.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let opts = InitOptions::new(preset("tiny").expect("preset"), &tmp);
        init_model(&opts, &|_| {}).expect("init tiny model");
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another binary won the race; use its copy.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// A tiny reward model (`Qwen3ForSequenceClassification`), written once.
pub fn reward_model_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("server-tiny-rm-v1");
        if dir.join("config.json").is_file() {
            return dir;
        }
        let tmp = root.join(format!("server-tiny-rm-v1.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut opts = InitOptions::new(preset("tiny").expect("preset"), &tmp);
        opts.seed = 5;
        opts.reward_head = true;
        init_model(&opts, &|_| {}).expect("init reward model");
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// A test config: the tiny model as `tiny`, port 0, short timings.
pub fn config() -> ServerConfig {
    ServerConfig {
        models: vec![ModelSpec {
            id: "tiny".into(),
            dir: tiny_model_dir(),
        }],
        port: 0,
        shutdown_grace: Duration::from_secs(2),
        keepalive: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

pub struct TestServer {
    pub running: RunningServer,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

pub async fn start(cfg: ServerConfig) -> TestServer {
    let mut running = quorum::server::start(cfg).await.expect("start server");
    running.ready().await.expect("models load");
    let base = format!("http://{}", running.local_addr());
    TestServer { running, base }
}

/// Reads one series value from `/metrics` text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
