//! What every trainer's run shares: device and dtype from the config, the
//! run directory (fresh, or resumed from its newest checkpoint), the
//! resolved config saved beside the checkpoints, checkpoint writing and
//! the progress bar.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};

use quorum_train::checkpoint::{self, TrainerState};
use quorum_train::optim::AdamW;
use quorum_train::sft_config::ModelSection;

use crate::model::checkpoint::{write_model_dir, CheckpointDType, WriteOptions};

use super::policy::TransformerPolicy;

/// What a finished (or stopped) training run reports (SFT, GRPO, RM).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub steps: u64,
    pub stopped_early: bool,
    pub last_checkpoint: Option<PathBuf>,
    pub final_eval: Option<serde_json::Value>,
}

/// The device and training dtype `[model]` names.
pub fn device_and_dtype(model: &ModelSection) -> anyhow::Result<(Device, DType)> {
    let device = match model.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).context("model.device = cuda")?,
        other => bail!("config: `model.device`: `{other}` is not cpu or cuda"),
    };
    let dtype = match model.dtype.as_str() {
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        _ => DType::F32,
    };
    Ok((device, dtype))
}

/// Prepare `run_dir`: with `resume`, its newest checkpoint (an error when
/// there is none); without, an error when it already holds checkpoints.
/// Writes the resolved config as `config.toml`.
pub fn prepare_run_dir(
    run_dir: &Path,
    resume: bool,
    resolved: &toml::Table,
) -> anyhow::Result<Option<(u64, PathBuf)>> {
    checkpoint::remove_stale_temps(run_dir)?;
    let resume_from = match (resume, checkpoint::latest(run_dir)?) {
        (true, Some(c)) => Some(c),
        (true, None) => bail!(
            "--resume: {} has no checkpoint to resume from",
            run_dir.display()
        ),
        (false, Some((step, _))) => bail!(
            "{} already holds checkpoints (newest: step {step}); pass --resume to continue \
             it, or choose another `out`",
            run_dir.display()
        ),
        (false, None) => None,
    };
    std::fs::create_dir_all(run_dir).with_context(|| run_dir.display().to_string())?;
    std::fs::write(run_dir.join("config.toml"), toml::to_string(resolved)?)
        .context("writing the resolved config")?;
    Ok(resume_from)
}

/// Whether a periodic action (`every` steps; 0: never) falls on `step`.
pub fn due(every: u64, step: u64) -> bool {
    every > 0 && step.is_multiple_of(every)
}

/// A fresh trainer state for `seed`.
pub fn fresh_state(seed: u64) -> TrainerState {
    TrainerState {
        step: 0,
        epoch: 0,
        cursor: 0,
        seed,
        rng_word_pos: 0,
        tokens_seen: 0,
        elapsed_s: 0.0,
    }
}

/// A step progress bar at `position` of `len` (hidden when `show` is false).
/// Whether a stop was asked for before the last step (its checkpoint is
/// already written): the bar says how to continue. Every trainer ends its
/// loop on it.
pub fn stopping_early(
    stop: &super::signals::StopFlag,
    last: bool,
    bar: &ProgressBar,
    step: u64,
) -> bool {
    let early = stop.requested() && !last;
    if early {
        bar.abandon_with_message(format!(
            "stopped at step {step}; checkpoint written, continue with --resume"
        ));
    }
    early
}

pub fn progress_bar(show: bool, len: u64, position: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_position(position);
    b
}

/// Write `RUN/checkpoint-STEP/`: the model directory (weights in the
/// training dtype so a resume is exact, the starting model's config and
/// tokenizer files), `extra` files (trainer-specific state), and the
/// optimizer and trainer state beside it.
pub fn save_checkpoint(
    run_dir: &Path,
    init_dir: &Path,
    state: &TrainerState,
    opt: &AdamW,
    policy: &TransformerPolicy,
    keep: usize,
    extra: &[(&str, Vec<u8>)],
) -> anyhow::Result<PathBuf> {
    let pending = checkpoint::begin(run_dir, state.step)?;
    let dtype = match policy.model.activation_dtype() {
        DType::BF16 => CheckpointDType::Bf16,
        DType::F16 => CheckpointDType::F16,
        _ => CheckpointDType::F32,
    };
    let generation = std::fs::read_to_string(init_dir.join("generation_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let mut wopts = WriteOptions::new(dtype);
    wopts.tokenizer_dir = Some(init_dir);
    wopts.generation_config = generation.as_ref();
    write_model_dir(
        pending.model_dir(),
        &policy.config,
        &policy.named_tensors(),
        &wopts,
        &|_| {},
    )
    .context("writing the checkpoint's model directory")?;
    for (name, bytes) in extra {
        let p = pending.model_dir().join(name);
        std::fs::write(&p, bytes).with_context(|| p.display().to_string())?;
    }
    Ok(pending.commit(&opt.state_tensors(), state, keep)?)
}
