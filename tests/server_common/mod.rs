//! Shared helpers of the server tests: one tiny random-weight model per
//! target dir (written once, reused), and in-process servers on free ports.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use quorum::server::config::ModelSpec;
use quorum::server::{RunningServer, ServerConfig};

/// The shared helpers of `tests/common` (the model fixture), for a test binary that
/// needs both: `use server_common::common;`, since a file can be `mod`ded only once.
#[path = "../common/mod.rs"]
pub mod common;

/// The `tiny` preset (seed 0) under the cargo target tmp dir, written once
/// ([`common::shared_model_dir`]).
pub fn tiny_model_dir() -> PathBuf {
    common::shared_model_dir("server-tiny-model-v1", "tiny", |_| {})
}

/// A tiny reward model (`Qwen3ForSequenceClassification`), written once.
pub fn reward_model_dir() -> PathBuf {
    common::shared_model_dir("server-tiny-rm-v1", "tiny", |o| {
        o.seed = 5;
        o.reward_head = true;
    })
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
