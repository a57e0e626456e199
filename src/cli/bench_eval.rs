//! `quorum bench eval`: accuracy against N and tokens on a task file, from
//! the embedded engine or an OpenAI-compatible server (see [`crate::eval`]).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::cli::sample_source::SourceArgs;
use crate::cli::task_fields::TaskFieldArgs;
use crate::eval::bench::{needs_scores, parse_strategy, run as run_bench, BenchOptions};
use crate::eval::report::{table, write_all};
use crate::eval::reward::LocalReward;
use crate::eval::source::{RewardSource, ThinkSetting};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ThinkFlag {
    On,
    Off,
    /// As the server resolves it: the record's `enable_thinking`, `/think`
    /// / `/no_think` in the messages, else the model's default.
    Default,
}

impl ThinkFlag {
    fn enabled(self) -> Option<bool> {
        match self {
            ThinkFlag::On => Some(true),
            ThinkFlag::Off => Some(false),
            ThinkFlag::Default => None,
        }
    }
}

/// A `--thinking-budget` entry: a token count or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(pub Option<usize>);

fn parse_budget(s: &str) -> Result<Budget, String> {
    match s.trim() {
        "none" => Ok(Budget(None)),
        t => t
            .parse::<usize>()
            .map(|b| Budget(Some(b)))
            .map_err(|_| format!("`{s}`: a token count or `none`")),
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Task file (JSONL or Parquet) with reference answers.
    #[arg(long)]
    pub dataset: PathBuf,
    /// The N of the table; max(N) samples are drawn per problem and every
    /// smaller N is computed from them.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub rollouts: Vec<usize>,
    /// first, majority, best_of_n, weighted_majority, confidence, or a
    /// selection object (`{"strategy": "confidence", "group_size": 8}`).
    /// Comma-separated (commas inside an object do not split); repeatable.
    #[arg(long, default_value = "first,majority,confidence")]
    pub strategies: Vec<String>,
    /// Reward model directory (`*ForSequenceClassification`) for best_of_n
    /// and weighted_majority; with `--url` and none given, the server's
    /// `/v1/score`.
    #[arg(long)]
    pub reward_model: Option<PathBuf>,
    /// Think configurations: on, off, default.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "default")]
    pub think: Vec<ThinkFlag>,
    /// Thinking budgets of the think-on configurations: token counts or `none`.
    #[arg(long, value_delimiter = ',', default_value = "none", value_parser = parse_budget)]
    pub thinking_budget: Vec<Budget>,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Cap on reasoning + answer tokens per sample; longer ones are cut.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Only the first K problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output directory: cache.jsonl, results.json, results.csv, PNGs.
    #[arg(long, default_value = "runs/bench-eval")]
    pub out: PathBuf,
    /// Start afresh when the cache was written with other settings.
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print results.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fields: TaskFieldArgs,
}

/// Strategy flag values: comma-separated names, objects kept whole.
fn strategy_list(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        let (mut depth, mut cur) = (0i32, String::new());
        for ch in v.chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(ch);
        }
        out.push(cur);
    }
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The think configurations of the flags: off once, every other mode per budget.
pub fn configs(think: &[ThinkFlag], budgets: &[Budget]) -> Vec<ThinkSetting> {
    let mut out: Vec<ThinkSetting> = Vec::new();
    for t in think {
        let settings: Vec<ThinkSetting> = match t.enabled() {
            Some(false) => vec![ThinkSetting {
                enabled: Some(false),
                budget: None,
            }],
            enabled => budgets
                .iter()
                .map(|b| ThinkSetting {
                    enabled,
                    budget: b.0,
                })
                .collect(),
        };
        for s in settings {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let strategies = strategy_list(&args.strategies)
        .iter()
        .map(|s| parse_strategy(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!strategies.is_empty(), "--strategies: at least one");
    let mut rollouts = args.rollouts.clone();
    rollouts.sort_unstable();
    rollouts.dedup();
    anyhow::ensure!(
        !rollouts.is_empty() && rollouts[0] >= 1,
        "--rollouts: N must be at least 1"
    );
    for b in args.thinking_budget.iter().filter_map(|b| b.0) {
        anyhow::ensure!(
            b <= args.max_tokens,
            "--thinking-budget {b} exceeds --max-tokens {}: reasoning tokens count toward it",
            args.max_tokens
        );
    }
    let needs = strategies.iter().any(|(_, c)| needs_scores(c));
    if needs && args.reward_model.is_none() && args.source.url.is_none() {
        anyhow::bail!(
            "best_of_n and weighted_majority need reward scores: pass --reward-model DIR"
        );
    }
    let opts = BenchOptions {
        dataset: args.dataset.clone(),
        load: args.fields.load_options(),
        limit: args.limit,
        rollouts,
        strategies,
        configs: configs(&args.think, &args.thinking_budget),
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        seed: args.seed,
        out: args.out.clone(),
        force: args.force,
        progress: std::io::stderr().is_terminal(),
    };
    // The data first: a bad line fails before any model loads.
    crate::eval::problems::load_problems(&opts.dataset, &opts.load, opts.limit)?;
    let local = match &args.reward_model {
        Some(dir) => Some(LocalReward::load(dir, &args.source.device()?)?),
        None => None,
    };
    let opened = args.source.open()?;
    let reward: Option<&dyn RewardSource> = match (&local, opened.remote()) {
        (Some(l), _) => Some(l),
        (None, Some(remote)) if needs => {
            // Probe: a server without a reward model fails here, before sampling.
            remote
                .score(&[crate::chat::ChatMessage::user("1+1?")], &["2".to_string()])
                .context("best_of_n and weighted_majority need reward scores; the server has none (pass --reward-model DIR)")?;
            Some(remote)
        }
        _ => None,
    };
    let results = run_bench(&opts, opened.source(), reward)?;
    let files = write_all(&results, &args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results));
    }
    eprintln!(
        "{} problem×config pairs sampled, {} from the cache ({:.1} s)",
        results.sampled, results.cached, results.sampling_s
    );
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_flags_and_budgets_make_the_configurations() {
        let b = |v: &[Option<usize>]| v.iter().map(|&x| Budget(x)).collect::<Vec<_>>();
        let c = configs(
            &[ThinkFlag::On, ThinkFlag::Off],
            &b(&[Some(16), Some(32), None]),
        );
        let labels: Vec<String> = c.iter().map(ThinkSetting::label).collect();
        assert_eq!(
            labels,
            [
                "think=on budget=16",
                "think=on budget=32",
                "think=on budget=none",
                "think=off"
            ]
        );
        assert_eq!(parse_budget("none"), Ok(Budget(None)));
        assert_eq!(parse_budget("64"), Ok(Budget(Some(64))));
        assert!(parse_budget("lots").is_err());
    }

    #[test]
    fn strategy_lists_split_on_commas_outside_objects() {
        assert_eq!(
            strategy_list(&[
                "first,majority".into(),
                r#"{"strategy": "confidence", "group_size": 8},best_of_n"#.into()
            ]),
            [
                "first",
                "majority",
                r#"{"strategy": "confidence", "group_size": 8}"#,
                "best_of_n"
            ]
        );
    }
}
