//! `quorum train sft` configuration (`config/train/*.toml`). Every key can
//! be overridden on the command line as `section.key=value`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{AnswerFormat, FieldMap, LoadOptions, TargetStyle};
use crate::optim::AdamWConfig;
use crate::schedule::WarmupCosine;
use crate::{Result, TrainError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Run directory: checkpoints, metrics.jsonl, the resolved config.
    pub out: PathBuf,
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub optim: OptimSection,
    pub train: TrainSection,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// HF model directory to start from (e.g. written by `quorum model init`).
    pub init: PathBuf,
    /// Training dtype of weights and activations: `f32` (default) or `bf16`.
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// `cpu` or `cuda`.
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_dtype() -> String {
    "f32".into()
}

fn default_device() -> String {
    "cpu".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// SFT conversations or task records with a solution (JSONL / Parquet).
    pub train: PathBuf,
    /// Held-out SFT data for the eval loss.
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// Held-out tasks (`prompt`/`answer`) for eval accuracy by generation.
    #[serde(default)]
    pub eval_tasks: Option<PathBuf>,
    /// Longest sequence (tokens); longer ones are dropped and counted.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Skip (and count) malformed lines instead of failing.
    #[serde(default)]
    pub skip_malformed: bool,
    /// Column names (`[data.fields]`: `prompt = "question"` for GSM8K,
    /// `prompt = "problem"` for MATH).
    #[serde(default)]
    pub fields: FieldMap,
    /// How answers are read: `auto` (GSM8K `#### N`, MATH `\boxed{}`), `plain`, `gsm8k`, `boxed`.
    #[serde(default)]
    pub answer_format: AnswerFormat,
    /// Verifier of records that name none.
    #[serde(default = "default_verifier")]
    pub verifier: String,
    /// The SFT target of prompt + solution records: `solution` (as written),
    /// `think` (the solution in a think block), `direct` (the answer only).
    #[serde(default)]
    pub target: TargetStyle,
}

fn default_verifier() -> String {
    "math".into()
}

impl DataSection {
    /// Load options for the SFT files (answers optional) or, with
    /// `require_answer`, for evaluation tasks.
    pub fn load_options(&self, require_answer: bool) -> LoadOptions {
        LoadOptions {
            fields: self.fields.clone(),
            answer_format: self.answer_format,
            verifier: self.verifier.clone(),
            skip_malformed: self.skip_malformed,
            require_answer,
        }
    }
}

fn default_max_length() -> usize {
    512
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSection {
    pub lr: f64,
    pub warmup_steps: u64,
    /// Cosine floor as a fraction of `lr`.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global-norm clipping (none when absent or 0).
    pub max_grad_norm: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            warmup_steps: 0,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: 1.0,
        }
    }
}

impl OptimSection {
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    pub fn schedule(&self, total_steps: u64) -> WarmupCosine {
        WarmupCosine {
            peak: self.lr,
            warmup_steps: self.warmup_steps,
            total_steps,
            min_ratio: self.min_lr_ratio,
        }
    }

    pub fn clip(&self) -> Option<f64> {
        (self.max_grad_norm > 0.0).then_some(self.max_grad_norm)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Optimizer steps of the run (the schedule's length).
    pub steps: u64,
    /// Input tokens per micro-batch (variable-length sequences, no padding).
    #[serde(default = "default_batch_tokens")]
    pub batch_tokens: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    #[serde(default)]
    pub seed: u64,
    /// Log a metrics line every this many steps.
    #[serde(default = "one_u64")]
    pub log_every: u64,
}

fn default_batch_tokens() -> usize {
    4096
}

fn one() -> usize {
    1
}

fn one_u64() -> u64 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Evaluate every this many steps (0: only at the end).
    pub every: u64,
    /// Held-out problems generated for accuracy (per think mode).
    pub max_problems: usize,
    /// Generation limit per answer.
    pub max_new_tokens: usize,
    /// Think modes to measure: `think`, `no_think`.
    pub modes: Vec<String>,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            every: 0,
            max_problems: 100,
            max_new_tokens: 256,
            modes: vec!["think".into(), "no_think".into()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Write a checkpoint every this many steps (0: only at the end).
    pub every: u64,
    /// Checkpoints kept (the newest).
    pub keep: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self { every: 0, keep: 2 }
    }
}

impl SftConfig {
    /// Range checks serde cannot express, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, m: &str| Err(TrainError::config(k, m));
        if self.train.steps == 0 {
            return bad("train.steps", "must be at least 1");
        }
        if self.train.batch_tokens == 0 {
            return bad("train.batch_tokens", "must be at least 1");
        }
        if self.train.grad_accum == 0 {
            return bad("train.grad_accum", "must be at least 1");
        }
        if self.data.max_length < 2 {
            return bad("data.max_length", "must be at least 2");
        }
        if self.data.max_length - 1 > self.train.batch_tokens {
            return bad(
                "train.batch_tokens",
                "must hold one sequence of data.max_length tokens",
            );
        }
        validate_shared(&self.model, &self.optim, &self.eval)
    }
}

/// The checks of the sections every trainer shares (`[model]`, `[optim]`,
/// `[eval]`), naming the key.
pub(crate) fn validate_shared(
    model: &ModelSection,
    optim: &OptimSection,
    eval: &EvalSection,
) -> Result<()> {
    for m in &eval.modes {
        if m != "think" && m != "no_think" {
            return Err(TrainError::config(
                "eval.modes",
                "entries are `think` or `no_think`",
            ));
        }
    }
    validate_model_optim(model, optim)
}

/// The checks of `[model]` and `[optim]`, naming the key.
pub(crate) fn validate_model_optim(model: &ModelSection, optim: &OptimSection) -> Result<()> {
    let bad = |k: &str, m: &str| Err(TrainError::config(k, m));
    if !(optim.lr > 0.0 && optim.lr.is_finite()) {
        return bad("optim.lr", "must be a positive number");
    }
    if !(0.0..1.0).contains(&optim.beta1) {
        return bad("optim.beta1", "must be in [0, 1)");
    }
    if !(0.0..1.0).contains(&optim.beta2) {
        return bad("optim.beta2", "must be in [0, 1)");
    }
    if !(0.0..=1.0).contains(&optim.min_lr_ratio) {
        return bad("optim.min_lr_ratio", "must be in [0, 1]");
    }
    if !matches!(model.dtype.as_str(), "f32" | "bf16" | "f16") {
        return bad("model.dtype", "f32, bf16 or f16");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_with_overrides;

    const MIN: &str = r#"
out = "runs/x"
[model]
init = "models/m"
[data]
train = "d.jsonl"
[train]
steps = 10
"#;

    #[test]
    fn defaults_fill_in_and_validate() {
        let (c, _): (SftConfig, _) = parse_with_overrides(MIN, "t.toml", &[]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.train.batch_tokens, 4096);
        assert_eq!(c.optim.lr, 1e-3);
        assert_eq!(c.eval.modes, vec!["think", "no_think"]);
    }

    #[test]
    fn range_errors_name_the_key() {
        let (c, _): (SftConfig, _) =
            parse_with_overrides(MIN, "t.toml", &["data.max_length=9000".into()]).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("train.batch_tokens"), "{e}");
        let (c, _): (SftConfig, _) =
            parse_with_overrides(MIN, "t.toml", &["eval.modes=['maybe']".into()]).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("eval.modes"));
        let e = parse_with_overrides::<SftConfig>(MIN, "t.toml", &["train.stepz=3".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("stepz"), "{e}");
    }
}
