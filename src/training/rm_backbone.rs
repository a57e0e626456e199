//! The reward model a run starts from: a reward-model directory as it is,
//! or a policy turned into one — its backbone kept, its LM head dropped, a
//! scalar `score` head drawn from a seeded normal (so the same config and
//! seed give the same model), the config renamed to
//! `*ForSequenceClassification` with `num_labels = 1` and a `pad_token_id`
//! (HF reads the score at the last non-pad token).

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::checkpoint::{write_model_dir, CheckpointDType, WriteOptions};
use crate::model::loader::weight_files;
use crate::model::tensor_plan::{hf_architecture_name, is_reward_model};
use crate::model::ModelConfig;

/// `init` when it is a reward model; otherwise `RUN/rm-init/`, written once
/// from the policy `init` (a resumed run finds it there).
pub fn reward_backbone(
    init: &Path,
    run_dir: &Path,
    head_std: f64,
    seed: u64,
) -> anyhow::Result<PathBuf> {
    let mut cfg = ModelConfig::from_file(&init.join("config.json"))?;
    if is_reward_model(&cfg) {
        return Ok(init.to_path_buf());
    }
    let out = run_dir.join("rm-init");
    if out.join("config.json").is_file() && out.join("model.safetensors").is_file() {
        return Ok(out);
    }
    let arch = cfg.architecture()?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for f in weight_files(init)? {
        let loaded = candle_core::safetensors::load(&f, &Device::Cpu)
            .with_context(|| f.display().to_string())?;
        tensors.extend(loaded.into_iter().filter(|(n, _)| n != "lm_head.weight"));
    }
    let h = cfg.hidden_size;
    let std = if head_std > 0.0 {
        head_std
    } else {
        1.0 / ((h + 1) as f64).sqrt()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5C0E_4EAD);
    let head: Vec<f32> = (0..h).map(|_| (normal(&mut rng) * std) as f32).collect();
    tensors.push((
        "score.weight".into(),
        Tensor::from_vec(head, (1, h), &Device::Cpu)?,
    ));
    cfg.architectures = vec![hf_architecture_name(arch, true)];
    cfg.num_labels = Some(1);
    if cfg.pad_token_id.is_none() {
        cfg.pad_token_id = Some(0);
    }
    let generation = std::fs::read_to_string(init.join("generation_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let mut opts = WriteOptions::new(CheckpointDType::F32);
    opts.tokenizer_dir = Some(init);
    opts.generation_config = generation.as_ref();
    opts.replace = true;
    write_model_dir(&out, &cfg, &tensors, &opts, &|_| {})
        .with_context(|| format!("writing the reward-model start {}", out.display()))?;
    Ok(out)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
