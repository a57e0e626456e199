//! Model loading at start-up: one engine thread per model (with the
//! model's reward model, if configured, on the same thread), plus the
//! tokenizers and chat templates the HTTP layer keeps for prompt building.
//! Also provides the interim default model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use super::config::{ModelSpec, ServerConfig};
use super::generate::now_secs;
use super::state::ModelEntry;
use crate::chat::ChatTemplate;
use crate::engine::{EngineConfig, EngineHandle, ModelBundle, RewardCodec};
use crate::model::init::{init_model, InitOptions};
use crate::model::presets::preset;

/// Errors bringing models up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model `{id}` ({dir}): {message}")]
    Model {
        id: String,
        dir: PathBuf,
        message: String,
    },
    #[error("writing the default model to {dir}: {message}")]
    Default { dir: PathBuf, message: String },
    #[error("model loader task failed: {0}")]
    Task(String),
}

/// `models/default/` in the working directory if it holds a model, else in
/// the crate checkout (written there on first use).
pub fn default_model_dir() -> PathBuf {
    let cwd = Path::new("models/default");
    if cwd.join("config.json").is_file() {
        return cwd.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

/// The bundled default: until the trained demo model ships, a random-weight
/// `tiny` model (seed 0) is written on first start so `quorum serve` works
/// out of the box. Its output is noise; it exists to exercise the API.
pub fn ensure_default_model() -> Result<ModelSpec, LoadError> {
    let dir = default_model_dir();
    if !dir.join("config.json").is_file() {
        let err = |message: String| LoadError::Default {
            dir: dir.clone(),
            message,
        };
        tracing::info!(dir = %dir.display(), "writing the default model (tiny preset, seed 0)");
        let cfg = preset("tiny").map_err(|e| err(e.to_string()))?;
        let mut opts = InitOptions::new(cfg, &dir);
        opts.seed = 0;
        opts.force = true;
        init_model(&opts, &|_| {}).map_err(|e| err(e.to_string()))?;
    }
    tracing::warn!(
        dir = %dir.display(),
        "serving the default model: a RANDOM-WEIGHT placeholder (tiny preset) until the trained demo model ships; its answers are noise"
    );
    Ok(ModelSpec {
        id: "default".into(),
        dir,
    })
}

/// Loads one model (blocking: call from a blocking thread).
pub fn load_model(spec: &ModelSpec, cfg: &ServerConfig) -> Result<ModelEntry, LoadError> {
    let err = |message: String| LoadError::Model {
        id: spec.id.clone(),
        dir: spec.dir.clone(),
        message,
    };
    let (tok_tx, tok_rx) = std::sync::mpsc::channel();
    let dir = spec.dir.clone();
    let (dtype, quantize, amx, kv) = (cfg.dtype, cfg.quantize, cfg.amx, cfg.kv_cache_dtype);
    let reward_dir = cfg.reward_model_dir(&spec.id);
    // Without a struct-update the engine's future settings would break this
    // call; with it, the literal keeps compiling as fields are added.
    #[allow(clippy::needless_update)]
    let engine_cfg = EngineConfig {
        queue_capacity: cfg.queue_capacity,
        ..EngineConfig::default()
    };
    let engine = EngineHandle::spawn(
        move || {
            let mut bundle =
                ModelBundle::load(&dir, dtype, &Device::Cpu).map_err(|e| e.to_string())?;
            if let Some(rm) = &reward_dir {
                bundle
                    .load_reward(rm, dtype, &Device::Cpu)
                    .map_err(|e| format!("reward model {}: {e}", rm.display()))?;
            }
            bundle
                .prepare_for_serving(quantize, amx)
                .map_err(|e| e.to_string())?;
            bundle.set_kv_dtype(kv);
            bundle.back_with_huge_pages();
            // The HTTP layer tokenizes prompts (and reward-model pairs)
            // itself, off the engine thread.
            let rm_tok = bundle.reward.as_ref().map(|r| r.codec.tokenizer.clone());
            let _ = tok_tx.send((bundle.tokenizer.clone(), rm_tok));
            Ok(bundle)
        },
        engine_cfg,
    )
    .map_err(err)?;
    let (tokenizer, rm_tokenizer) = tok_rx
        .recv()
        .map_err(|_| err("the engine did not hand back its tokenizer".into()))?;
    let template = ChatTemplate::from_tokenizer(&tokenizer).map_err(|e| err(e.to_string()))?;
    let reward = match rm_tokenizer {
        Some(tok) => {
            let codec = RewardCodec::from_tokenizer(tok)
                .map_err(|e| err(format!("reward model template: {e}")))?;
            tracing::info!(
                model = %spec.id,
                reward_model = %cfg.reward_model_dir(&spec.id).unwrap_or_default().display(),
                "reward model loaded on the engine"
            );
            Some(Arc::new(codec))
        }
        None => None,
    };
    tracing::info!(
        model = %spec.id,
        dir = %spec.dir.display(),
        context_length = engine.info().context_length,
        "model loaded"
    );
    Ok(ModelEntry {
        id: spec.id.clone(),
        engine,
        tokenizer: Arc::new(tokenizer),
        template: Arc::new(template),
        created: now_secs(),
        reward,
    })
}

/// Loads every configured model (or the default), in parallel.
pub async fn load_all(cfg: &ServerConfig) -> Result<Vec<ModelEntry>, LoadError> {
    let specs = if cfg.models.is_empty() {
        let spec = tokio::task::spawn_blocking(ensure_default_model)
            .await
            .map_err(|e| LoadError::Task(e.to_string()))??;
        vec![spec]
    } else {
        cfg.models.clone()
    };
    let tasks: Vec<_> = specs
        .into_iter()
        .map(|spec| {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || load_model(&spec, &cfg))
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let entry = t.await.map_err(|e| LoadError::Task(e.to_string()))??;
        out.push(entry);
    }
    Ok(out)
}
