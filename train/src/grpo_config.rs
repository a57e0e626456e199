//! `quorum train grpo` configuration (`config/train/*.toml`). Every key can
//! be overridden on the command line as `section.key=value`; unknown keys
//! are errors naming them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{AnswerFormat, FieldMap, LoadOptions};
use crate::grpo::advantage::StdScaling;
use crate::grpo::objective::{Aggregation, Objective};
use crate::rewards::RewardConfig;
use crate::sft_config::{
    validate_shared, CheckpointSection, EvalSection, ModelSection, OptimSection,
};
use crate::{Result, TrainError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// Run directory: checkpoints, metrics.jsonl, the resolved config.
    pub out: PathBuf,
    pub model: ModelSection,
    pub data: GrpoData,
    #[serde(default)]
    pub rollout: RolloutSection,
    /// Reward terms (`[reward.correct]`, `[reward.format]`, `[reward.overlong]`, …).
    #[serde(default)]
    pub reward: RewardConfig,
    #[serde(default)]
    pub advantage: AdvantageSection,
    #[serde(default)]
    pub objective: ObjectiveSection,
    #[serde(default)]
    pub sampling: SamplingSection,
    #[serde(default = "grpo_optim")]
    pub optim: OptimSection,
    pub train: GrpoTrain,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
}

fn grpo_optim() -> OptimSection {
    OptimSection {
        lr: 1e-5,
        min_lr_ratio: 1.0,
        weight_decay: 0.0,
        ..OptimSection::default()
    }
}

/// Prompt tasks (`prompt`/`messages` + `answer`), as the SFT loader reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoData {
    /// Training prompts with reference answers (JSONL / Parquet).
    pub train: PathBuf,
    /// Held-out tasks for pass@1 (greedy) every `eval.every` steps.
    #[serde(default)]
    pub eval_tasks: Option<PathBuf>,
    #[serde(default)]
    pub skip_malformed: bool,
    #[serde(default)]
    pub fields: FieldMap,
    #[serde(default)]
    pub answer_format: AnswerFormat,
    /// Verifier of records that name none.
    #[serde(default = "default_verifier")]
    pub verifier: String,
    /// Prompts longer than this (tokens, rendered) are dropped and counted.
    #[serde(default = "default_max_prompt")]
    pub max_prompt_tokens: usize,
}

fn default_verifier() -> String {
    "math".into()
}

fn default_max_prompt() -> usize {
    512
}

impl GrpoData {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            fields: self.fields.clone(),
            answer_format: self.answer_format,
            verifier: self.verifier.clone(),
            skip_malformed: self.skip_malformed,
            require_answer: true,
        }
    }
}

/// Think mode of the training prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThinkMix {
    /// `enable_thinking = true` for every prompt.
    #[default]
    On,
    /// `enable_thinking = false`.
    Off,
    /// As the prompt's own toggles / the template default say.
    Default,
    /// Half on, half off, by a hash of the prompt index.
    Mixed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    /// G: rollouts per prompt (one prefill, G decodes).
    pub group_size: usize,
    /// B: prompts (groups) per step.
    pub prompts_per_step: usize,
    /// Sampling temperature; rollout and training log-probs are of
    /// `softmax(logits / T)`.
    pub temperature: f64,
    /// Nucleus sampling (the log-probs stay those of the untruncated
    /// distribution, as TRAINING.md asks).
    pub top_p: f64,
    /// Generation limit per rollout (also `dr_grpo`'s normaliser).
    pub max_completion_tokens: usize,
    pub think: ThinkMix,
}

impl Default for RolloutSection {
    fn default() -> Self {
        Self {
            group_size: 8,
            prompts_per_step: 8,
            temperature: 1.0,
            top_p: 1.0,
            max_completion_tokens: 256,
            think: ThinkMix::On,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvantageSection {
    /// `group` (GRPO), `batch` (Magistral/MiMo), `none` (Dr. GRPO).
    pub std: StdScaling,
    pub eps: f64,
}

impl Default for AdvantageSection {
    fn default() -> Self {
        Self {
            std: StdScaling::Group,
            eps: 1e-4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveSection {
    /// ε_low of the ratio clip.
    pub clip_low: f64,
    /// ε_high (DAPO clip-higher: 0.28).
    pub clip_high: f64,
    /// β of the k3 KL to a frozen reference; 0 loads no reference.
    pub kl_beta: f64,
    /// The reference model (default: `model.init`).
    pub reference: Option<PathBuf>,
    /// `token` (DAPO), `sequence` (GRPO), `dr_grpo`.
    pub aggregation: Aggregation,
    /// μ: optimizer steps per batch of rollouts.
    pub iterations_per_batch: usize,
}

impl Default for ObjectiveSection {
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.2,
            kl_beta: 0.0,
            reference: None,
            aggregation: Aggregation::Token,
            iterations_per_batch: 1,
        }
    }
}

impl ObjectiveSection {
    pub fn objective(&self) -> Objective {
        Objective {
            clip_low: self.clip_low,
            clip_high: self.clip_high,
            kl_beta: self.kl_beta,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingSection {
    /// DAPO dynamic sampling: drop zero-variance groups and refill.
    pub dynamic: bool,
    /// Refill rounds per step at most.
    pub max_refill_rounds: usize,
    /// Order prompts by their `pass_rate` field (from `quorum train
    /// filter`), easy to hard, instead of a seeded shuffle per epoch.
    pub curriculum: bool,
    /// One-step off-policy: the next batch is generated (on the weights
    /// of one step before) while the current one trains.
    pub async_rollouts: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoTrain {
    /// Rollout steps of the run (each μ optimizer steps).
    pub steps: u64,
    /// Input tokens per micro-batch of the update.
    #[serde(default = "default_micro")]
    pub micro_batch_tokens: usize,
    #[serde(default)]
    pub seed: u64,
    /// Log a metrics line every this many steps.
    #[serde(default = "one")]
    pub log_every: u64,
}

fn default_micro() -> usize {
    8192
}

fn one() -> u64 {
    1
}

impl GrpoConfig {
    /// Range checks serde cannot express, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, m: &str| Err(TrainError::config(k, m));
        if self.train.steps == 0 {
            return bad("train.steps", "must be at least 1");
        }
        if self.rollout.group_size < 2 {
            return bad(
                "rollout.group_size",
                "must be at least 2 (a group-relative advantage needs two rollouts)",
            );
        }
        if self.rollout.prompts_per_step == 0 {
            return bad("rollout.prompts_per_step", "must be at least 1");
        }
        if self.rollout.max_completion_tokens == 0 {
            return bad("rollout.max_completion_tokens", "must be at least 1");
        }
        if !(self.rollout.temperature > 0.0 && self.rollout.temperature.is_finite()) {
            return bad(
                "rollout.temperature",
                "must be > 0 (GRPO samples; greedy groups have no variance)",
            );
        }
        if !(self.rollout.top_p > 0.0 && self.rollout.top_p <= 1.0) {
            return bad("rollout.top_p", "must be in (0, 1]");
        }
        let o = &self.objective;
        if !(0.0..1.0).contains(&o.clip_low) {
            return bad("objective.clip_low", "must be in [0, 1)");
        }
        if !(o.clip_high >= 0.0 && o.clip_high.is_finite()) {
            return bad("objective.clip_high", "must be ≥ 0");
        }
        if !(o.kl_beta >= 0.0 && o.kl_beta.is_finite()) {
            return bad("objective.kl_beta", "must be ≥ 0");
        }
        if o.iterations_per_batch == 0 {
            return bad("objective.iterations_per_batch", "must be at least 1");
        }
        if self.train.micro_batch_tokens
            < self.data.max_prompt_tokens + self.rollout.max_completion_tokens
        {
            return bad(
                "train.micro_batch_tokens",
                "must hold one rollout (data.max_prompt_tokens + rollout.max_completion_tokens)",
            );
        }
        self.reward.validate(self.rollout.max_completion_tokens)?;
        if self.advantage.eps < 0.0 {
            return bad("advantage.eps", "must be ≥ 0");
        }
        validate_shared(&self.model, &self.optim, &self.eval)
    }

    /// Checks that need the data: a step's batch must be formable.
    pub fn check_prompts(&self, prompts: usize) -> Result<()> {
        if prompts < self.rollout.prompts_per_step {
            return Err(TrainError::config(
                "rollout.prompts_per_step",
                format!(
                    "{} prompts per step but data.train has only {prompts} usable prompts",
                    self.rollout.prompts_per_step
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_with_overrides;

    const MIN: &str = r#"
out = "runs/g"
[model]
init = "models/m"
[data]
train = "d.jsonl"
[train]
steps = 10
"#;

    #[test]
    fn defaults_are_the_plain_grpo_baseline() {
        let (c, _): (GrpoConfig, _) = parse_with_overrides(MIN, "g.toml", &[]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.rollout.group_size, 8);
        assert_eq!((c.objective.clip_low, c.objective.clip_high), (0.2, 0.2));
        assert_eq!(c.objective.kl_beta, 0.0);
        assert_eq!(c.objective.aggregation, Aggregation::Token);
        assert_eq!(c.advantage.std, StdScaling::Group);
        assert!(!c.sampling.dynamic);
        assert_eq!(c.optim.lr, 1e-5);
    }

    #[test]
    fn overrides_and_errors_name_the_key() {
        let (c, _): (GrpoConfig, _) = parse_with_overrides(
            MIN,
            "g.toml",
            &[
                "objective.aggregation=dr_grpo".into(),
                "advantage.std=none".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.objective.aggregation, Aggregation::DrGrpo);
        assert_eq!(c.advantage.std, StdScaling::None);
        let (c, _): (GrpoConfig, _) =
            parse_with_overrides(MIN, "g.toml", &["rollout.group_size=1".into()]).unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("rollout.group_size"));
        let e = parse_with_overrides::<GrpoConfig>(MIN, "g.toml", &["objective.clip=0.3".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("clip"), "{e}");
        let (c, _): (GrpoConfig, _) = parse_with_overrides(MIN, "g.toml", &[]).unwrap();
        let e = c.check_prompts(3).unwrap_err().to_string();
        assert!(
            e.contains("rollout.prompts_per_step") && e.contains("3"),
            "{e}"
        );
    }
}
