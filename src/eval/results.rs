//! The results of `quorum bench eval` (what `results.json` holds): accuracy per
//! configuration and N ([`EvalResults`]). The data [`super::report`] writes and
//! [`super::plots`] draws; it depends on neither.

use serde::Serialize;
use serde_json::{Map, Value};

use super::at_n::{AtN, Judged};
use super::source::ThinkSetting;

/// Accuracy at one N of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub n: usize,
    /// Unbiased pass@N.
    pub pass_at_n: f64,
    /// Strategy name → accuracy at N (maj@N, rm@N, weighted@N, …).
    pub accuracy: Map<String, Value>,
    /// Mean generated tokens per problem at N.
    pub tokens_per_problem: f64,
}

/// One think configuration's results.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigResult {
    pub label: String,
    pub think: Option<bool>,
    pub thinking_budget: Option<usize>,
    /// Share of all samples the verifier accepts (= pass@1).
    pub sample_accuracy: f64,
    pub mean_tokens_per_sample: f64,
    /// Share of samples cut by `--max-tokens`.
    pub truncated: f64,
    /// Mean wall time of the request (engine call) that drew a sample.
    pub mean_latency_ms: f64,
    pub rows: Vec<Row>,
}

impl ConfigResult {
    pub fn new(think: ThinkSetting, pools: &[Vec<Judged>], rows: Vec<AtN>) -> Self {
        let all: Vec<&Judged> = pools.iter().flatten().collect();
        let count = all.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Judged) -> f64| all.iter().map(|s| f(s)).sum::<f64>() / count;
        ConfigResult {
            label: think.label(),
            think: think.enabled,
            thinking_budget: think.budget,
            sample_accuracy: mean(&|s| f64::from(u8::from(s.correct))),
            mean_tokens_per_sample: mean(&|s| s.tokens as f64),
            truncated: mean(&|s| f64::from(u8::from(s.finish_reason == "length"))),
            mean_latency_ms: mean(&|s| s.latency_ms),
            rows: rows
                .into_iter()
                .map(|r| Row {
                    n: r.n,
                    pass_at_n: r.pass_at_n,
                    accuracy: r
                        .accuracy
                        .into_iter()
                        .map(|(k, v)| (k, Value::from(v)))
                        .collect(),
                    tokens_per_problem: r.tokens_per_problem,
                })
                .collect(),
        }
    }
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResults {
    pub dataset: String,
    pub source: String,
    pub reward: String,
    pub problems: usize,
    pub samples_per_problem: usize,
    pub temperature: f32,
    pub max_tokens: usize,
    pub seed: u64,
    pub strategies: Vec<String>,
    pub rollouts: Vec<usize>,
    /// (configuration, problem) pairs sampled by this invocation.
    pub sampled: usize,
    /// (configuration, problem) pairs read from the cache.
    pub cached: usize,
    /// Wall time of this invocation's sampling.
    pub sampling_s: f64,
    pub configs: Vec<ConfigResult>,
}

/// The accuracy of `strategy` in `row` (0 when absent).
pub fn accuracy(row: &Row, strategy: &str) -> f64 {
    row.accuracy
        .get(strategy)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}
