//! `quorum train rm` configuration (`config/train/*.toml`); every key can be
//! overridden on the command line as `section.key=value`.
//!
//! The data are one of three kinds, told apart per record: **tasks**
//! (`prompt`/`messages` + `answer`: the trainer samples rollouts from
//! `[rollouts] policy` and labels them with the task's verifier),
//! **labelled completions** (`completion` + `label`), or **preference
//! pairs** (`chosen` + `rejected`: Bradley–Terry).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{AnswerFormat, FieldMap, LoadOptions};
use crate::grpo_config::ThinkMix;
use crate::sft_config::{validate_model_optim, CheckpointSection, ModelSection, OptimSection};
use crate::{Result, TrainError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmConfig {
    /// Run directory: checkpoints, sampled rollouts, metrics.jsonl.
    pub out: PathBuf,
    /// The backbone: a policy (`*ForCausalLM`; its LM head is replaced by a
    /// seeded scalar `score` head) or a reward model to continue.
    pub model: ModelSection,
    pub data: RmData,
    #[serde(default)]
    pub rollouts: RmRollouts,
    #[serde(default)]
    pub objective: RmObjective,
    #[serde(default = "rm_optim")]
    pub optim: OptimSection,
    pub train: RmTrain,
    #[serde(default)]
    pub eval: RmEval,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
}

fn rm_optim() -> OptimSection {
    OptimSection {
        lr: 1e-4,
        warmup_steps: 10,
        ..OptimSection::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmData {
    /// Tasks, labelled completions or preference pairs (JSONL / Parquet).
    pub train: PathBuf,
    /// Held-out data of the same kinds: AUC (or pair accuracy) and, for
    /// tasks, best-of-N / weighted-majority vs majority accuracy.
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// Longest (conversation + completion) in tokens; longer ones are
    /// dropped and counted.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    #[serde(default)]
    pub skip_malformed: bool,
    #[serde(default)]
    pub fields: FieldMap,
    #[serde(default)]
    pub answer_format: AnswerFormat,
    #[serde(default = "default_verifier")]
    pub verifier: String,
    /// Column names of completions, labels and pairs.
    #[serde(default)]
    pub rm_fields: crate::rm::data::RmFields,
}

fn default_max_length() -> usize {
    512
}

fn default_verifier() -> String {
    "math".into()
}

impl RmData {
    /// Load options for task files (answers required).
    pub fn task_options(&self) -> LoadOptions {
        LoadOptions {
            fields: self.fields.clone(),
            answer_format: self.answer_format,
            verifier: self.verifier.clone(),
            skip_malformed: self.skip_malformed,
            require_answer: true,
        }
    }
}

/// How rollouts are sampled when the data are tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmRollouts {
    /// The policy whose answers the reward model learns to judge (default:
    /// `model.init`).
    pub policy: Option<PathBuf>,
    /// Rollouts per training problem.
    pub samples_per_prompt: usize,
    /// Rollouts per held-out problem (the largest N of the eval).
    pub eval_samples_per_prompt: usize,
    /// Training problems used (0: all).
    pub max_prompts: usize,
    /// Held-out problems used (0: all).
    pub eval_max_prompts: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_completion_tokens: usize,
    /// Think mode of the sampled prompts (`mixed`: half on, half off, so the
    /// scorer sees both kinds of answers the server produces).
    pub think: ThinkMix,
    /// Prompts sampled together through the batched engine.
    pub prompts_per_batch: usize,
}

impl Default for RmRollouts {
    fn default() -> Self {
        Self {
            policy: None,
            samples_per_prompt: 8,
            eval_samples_per_prompt: 16,
            max_prompts: 0,
            eval_max_prompts: 200,
            temperature: 1.0,
            top_p: 1.0,
            max_completion_tokens: 256,
            think: ThinkMix::Mixed,
            prompts_per_batch: 16,
        }
    }
}

/// The loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RmLoss {
    /// `bce` for tasks and labelled completions, `bradley_terry` for pairs.
    #[default]
    Auto,
    Bce,
    BradleyTerry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmObjective {
    pub loss: RmLoss,
    /// BCE: every problem weighs the same, its correct and incorrect
    /// samples half each (see `rm::loss::balanced_weights`).
    pub balance: bool,
    /// Train only on problems whose samples have both labels: within-problem
    /// contrast, the ranking best-of-N needs (single-label problems teach
    /// problem difficulty, which selects nothing).
    pub mixed_only: bool,
    /// Standard deviation of the fresh `score` head (0: `1/sqrt(hidden+1)`).
    pub head_init_std: f64,
}

impl Default for RmObjective {
    fn default() -> Self {
        Self {
            loss: RmLoss::Auto,
            balance: true,
            mixed_only: false,
            head_init_std: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmTrain {
    pub steps: u64,
    /// Problems (labelled data: all samples of each) or pairs per step.
    #[serde(default = "default_items")]
    pub items_per_step: usize,
    /// Tokens per micro-batch (ragged, no padding).
    #[serde(default = "default_batch_tokens")]
    pub batch_tokens: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "one")]
    pub log_every: u64,
}

fn default_items() -> usize {
    8
}

fn default_batch_tokens() -> usize {
    4096
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmEval {
    /// Evaluate every this many steps (0: only at the end).
    pub every: u64,
    /// N of the selection report (each ≤ `rollouts.eval_samples_per_prompt`).
    pub n: Vec<usize>,
    /// Random subsets of size N averaged per problem.
    pub subsets: usize,
}

impl Default for RmEval {
    fn default() -> Self {
        Self {
            every: 0,
            n: vec![4, 8, 16],
            subsets: 32,
        }
    }
}

impl RmConfig {
    /// Range checks serde cannot express, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, m: &str| Err(TrainError::config(k, m));
        if self.train.steps == 0 {
            return bad("train.steps", "must be at least 1");
        }
        if self.train.items_per_step == 0 {
            return bad("train.items_per_step", "must be at least 1");
        }
        if self.data.max_length < 2 {
            return bad("data.max_length", "must be at least 2");
        }
        if self.train.batch_tokens < self.data.max_length {
            return bad(
                "train.batch_tokens",
                "must hold one sequence of data.max_length tokens",
            );
        }
        let r = &self.rollouts;
        if r.samples_per_prompt < 2 {
            return bad(
                "rollouts.samples_per_prompt",
                "must be at least 2 (a problem's samples are contrasted)",
            );
        }
        if r.eval_samples_per_prompt == 0 {
            return bad("rollouts.eval_samples_per_prompt", "must be at least 1");
        }
        if !(r.temperature > 0.0 && r.temperature.is_finite()) {
            return bad("rollouts.temperature", "must be a positive number");
        }
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            return bad("rollouts.top_p", "must be in (0, 1]");
        }
        if r.max_completion_tokens == 0 || r.prompts_per_batch == 0 {
            return bad(
                "rollouts.max_completion_tokens",
                "max_completion_tokens and prompts_per_batch must be at least 1",
            );
        }
        if let Some(&n) = self
            .eval
            .n
            .iter()
            .find(|&&n| n == 0 || n > r.eval_samples_per_prompt)
        {
            return bad(
                "eval.n",
                &format!(
                    "{n} is outside 1..=rollouts.eval_samples_per_prompt ({})",
                    r.eval_samples_per_prompt
                ),
            );
        }
        if self.eval.subsets == 0 {
            return bad("eval.subsets", "must be at least 1");
        }
        if !(self.objective.head_init_std >= 0.0 && self.objective.head_init_std.is_finite()) {
            return bad("objective.head_init_std", "must be ≥ 0");
        }
        validate_model_optim(&self.model, &self.optim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_with_overrides;

    const MIN: &str = r#"
out = "runs/rm"
[model]
init = "models/p"
[data]
train = "tasks.jsonl"
[train]
steps = 5
"#;

    #[test]
    fn defaults_fill_in_and_validate() {
        let (c, _): (RmConfig, _) = parse_with_overrides(MIN, "t.toml", &[]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.optim.lr, 1e-4);
        assert_eq!(c.rollouts.samples_per_prompt, 8);
        assert_eq!(c.rollouts.think, ThinkMix::Mixed);
        assert_eq!(c.objective.loss, RmLoss::Auto);
        assert_eq!(c.eval.n, vec![4, 8, 16]);
    }

    #[test]
    fn range_errors_name_the_key() {
        let err = |o: &str| {
            let (c, _): (RmConfig, _) = parse_with_overrides(MIN, "t.toml", &[o.into()]).unwrap();
            c.validate().unwrap_err().to_string()
        };
        assert!(err("eval.n=[4, 32]").contains("eval.n"));
        assert!(err("rollouts.samples_per_prompt=1").contains("rollouts.samples_per_prompt"));
        assert!(err("data.max_length=9000").contains("train.batch_tokens"));
        assert!(err("optim.lr=0").contains("optim.lr"));
        let e = parse_with_overrides::<RmConfig>(MIN, "t.toml", &["objective.loss=hinge".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("objective.loss"), "{e}");
    }
}
