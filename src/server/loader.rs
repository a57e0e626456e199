//! Model loading at start-up: one engine thread per model (with the
//! model's reward model, if configured, on the same thread), plus the
//! tokenizers and chat templates the HTTP layer keeps for prompt building.
//! Also names the bundled default (policy + reward model).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::{ModelSpec, ServerConfig};
use super::openai::now_secs;
use super::state::ModelEntry;
use crate::chat::ChatTemplate;
use crate::engine::serving::{load_for_serving, ServingError};
use crate::engine::{EngineConfig, EngineHandle, RewardCodec};

/// Errors bringing models up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model `{id}` ({dir}): {message}")]
    Model {
        id: String,
        dir: PathBuf,
        message: String,
    },
    #[error("the bundled default model ({dir}): {message}")]
    Default { dir: PathBuf, message: String },
    #[error("model loader task failed: {0}")]
    Task(String),
}

/// The bundled models: the tiny reasoning policy and its reward model.
pub const BUNDLED_POLICY: &str = "models/tiny-reasoner-rl";
pub const BUNDLED_REWARD_MODEL: &str = "models/tiny-reasoner-rm";
/// The model id the bundled policy is served as.
pub const BUNDLED_ID: &str = "tiny-reasoner";

/// `rel` in the working directory if it holds a model, else in the crate
/// checkout.
fn bundled_dir(rel: &str) -> PathBuf {
    let cwd = Path::new(rel);
    if cwd.join("config.json").is_file() {
        return cwd.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What `quorum serve` without `--model` serves: the bundled tiny
/// reasoning policy (SFT + GRPO, arithmetic), with the bundled reward
/// model as its scorer unless a reward model is configured.
pub fn bundled_default(cfg: &ServerConfig) -> Result<(ModelSpec, ServerConfig), LoadError> {
    let dir = bundled_dir(BUNDLED_POLICY);
    if !dir.join("config.json").is_file() {
        return Err(LoadError::Default {
            dir,
            message: "the bundled model is missing (a partial checkout?); pass --model DIR".into(),
        });
    }
    let mut cfg = cfg.clone();
    let spec = ModelSpec {
        id: BUNDLED_ID.into(),
        dir,
    };
    if cfg.reward_model_dir(&spec.id).is_none() {
        let rm = bundled_dir(BUNDLED_REWARD_MODEL);
        if rm.join("config.json").is_file() {
            cfg.reward_model = Some(rm);
        }
    }
    tracing::info!(
        model = %spec.id,
        dir = %spec.dir.display(),
        reward_model = %cfg.reward_model_dir(&spec.id).unwrap_or_default().display(),
        "serving the bundled tiny reasoning model (arithmetic); pass --model DIR for another"
    );
    Ok((spec, cfg))
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
    let serving = cfg.serving.clone();
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
            let bundle = load_for_serving(&dir, reward_dir.as_deref(), &serving)?;
            // The HTTP layer tokenizes prompts (and reward-model pairs)
            // itself, off the engine thread.
            let rm_tok = bundle.reward.as_ref().map(|r| r.codec.tokenizer.clone());
            let _ = tok_tx.send((bundle.tokenizer.clone(), rm_tok));
            Ok::<_, ServingError>(bundle)
        },
        engine_cfg,
    )
    .map_err(|e| err(e.to_string()))?;
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
    let (specs, cfg) = if cfg.models.is_empty() {
        let (spec, cfg) = bundled_default(cfg)?;
        (vec![spec], cfg)
    } else {
        (cfg.models.clone(), cfg.clone())
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
