//! What `quorum bench eval` reports: the table on stdout, `results.json`
//! ([`EvalResults`]), `results.csv` (one row per configuration, N and
//! strategy), and the plots ([`super::plots`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::at_n::{AtN, Judged};
use super::source::ThinkSetting;
use crate::atomic_write::write_atomic;

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

/// The stdout table: one block per configuration, one line per N.
pub fn table(r: &EvalResults) -> String {
    let mut s = String::new();
    for c in &r.configs {
        let _ = writeln!(
            s,
            "{} — {} problems × {} samples: {:.1} tokens/sample, {:.0}% cut at {} tokens, {:.0} ms/request",
            c.label,
            r.problems,
            r.samples_per_problem,
            c.mean_tokens_per_sample,
            100.0 * c.truncated,
            r.max_tokens,
            c.mean_latency_ms
        );
        let mut head = format!("{:>4} {:>8}", "N", "pass@N");
        for name in &r.strategies {
            let w = name.len().max(8);
            let _ = write!(head, " {name:>w$}");
        }
        let _ = write!(head, " {:>14}", "tokens/problem");
        let _ = writeln!(s, "{head}");
        for row in &c.rows {
            let mut line = format!("{:>4} {:>8.3}", row.n, row.pass_at_n);
            for name in &r.strategies {
                let w = name.len().max(8);
                let _ = write!(line, " {:>w$.3}", accuracy(row, name));
            }
            let _ = write!(line, " {:>14.1}", row.tokens_per_problem);
            let _ = writeln!(s, "{line}");
        }
        s.push('\n');
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: one row per (configuration, N, strategy).
pub fn csv(r: &EvalResults) -> String {
    let mut s = String::from(
        "config,think,thinking_budget,n,strategy,accuracy,pass_at_n,tokens_per_problem,mean_latency_ms\n",
    );
    for c in &r.configs {
        let think = c.think.map_or("default".into(), |t| {
            if t { "on" } else { "off" }.to_string()
        });
        let budget = c.thinking_budget.map_or(String::new(), |b| b.to_string());
        for row in &c.rows {
            for name in &r.strategies {
                let _ = writeln!(
                    s,
                    "{},{think},{budget},{},{},{:.6},{:.6},{:.3},{:.3}",
                    csv_field(&c.label),
                    row.n,
                    csv_field(name),
                    accuracy(row, name),
                    row.pass_at_n,
                    row.tokens_per_problem,
                    c.mean_latency_ms
                );
            }
        }
    }
    s
}

/// Writes `results.json`, `results.csv` and the plots into `dir`; returns the paths.
pub fn write_all(r: &EvalResults, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let json = dir.join("results.json");
    write_atomic(
        &json,
        format!("{}\n", serde_json::to_string_pretty(r)?).as_bytes(),
    )?;
    files.push(json);
    let csv_path = dir.join("results.csv");
    write_atomic(&csv_path, csv(r).as_bytes())?;
    files.push(csv_path);
    for (name, png) in super::plots::render(r)? {
        let path = dir.join(name);
        write_atomic(&path, &png)?;
        files.push(path);
    }
    Ok(files)
}
