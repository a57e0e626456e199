//! `quorum bench selection`: accuracy and token cost of answer selection,
//! with and without adaptive early stopping (`selection.early_stop`).
//!
//! Every task runs through the serving path: the chat template and think
//! mode as the server resolves them ([`crate::server::think::prepare`]),
//! the real engine ([`EngineHandle`]: scheduler, batched rollouts,
//! per-rollout [`crate::engine::CancelSet`]), the server's early-stop policy
//! ([`EarlyStop`], fed token by token as the selection driver feeds it) and
//! its selectors; the selected answer is then checked against the task's
//! gold answer with the scoring crate's math verifier.
//!
//! Like-for-like: task `i` uses seed `seed + i` in every configuration, and
//! a rollout's RNG stream is its index, so the early-stop-on run decodes the
//! same rollouts as the off run until it cancels some. The off run does not
//! depend on the strategy, so it is decoded once per (task, N) and every
//! strategy selects from it. The prefix cache is off, so every run pays the
//! same prefill.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{ArgAction, Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quorum_scoring::Selector;

use crate::chat::ChatTemplate;
use crate::cli::common::ModelArgs;
use crate::engine::{EngineConfig, EngineHandle, SamplingParams};
use crate::server::openai::SelectionOptions;
use crate::server::openai::ThinkFields;
use crate::server::selection::early::EarlyStop;
use crate::tokenizer::Tokenizer;

#[path = "bench_selection_driver.rs"]
mod driver;
#[path = "bench_selection_input.rs"]
mod input;
#[path = "bench_selection_report.rs"]
mod report;
use driver::{judge, render, run_group, Prompt};
use input::{label, load_tasks, parse_bias, strategy, strategy_specs, Task};
use report::{row, table, Outcome, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EarlyStopArg {
    /// On and off, on the same seeds (measures the saving).
    Both,
    /// On only (the saving is the server's budget accounting).
    On,
    /// Off only.
    Off,
}

#[derive(Debug, Args)]
pub struct SelectionArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSONL tasks, one `{"prompt": ..., "gold": ..., "system": ...}` per line (`system` optional).
    #[arg(long)]
    pub tasks: PathBuf,
    /// Rollouts per task; one configuration per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    pub n: Vec<usize>,
    /// Selection strategies: names (majority, confidence, first;
    /// comma-separated) or a `selection` JSON object with parameters
    /// (`{"strategy": "confidence", "group_size": 16}`). Repeatable.
    #[arg(long, default_value = "majority")]
    pub strategy: Vec<String>,
    /// Adaptive stopping: both (on and off, same seeds), on, or off.
    #[arg(long, value_enum, default_value_t = EarlyStopArg::Both)]
    pub early_stop: EarlyStopArg,
    /// Completion budget per rollout.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Base seed: task i uses seed + i in every configuration.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first K tasks.
    #[arg(long)]
    pub limit: Option<usize>,
    /// System message for tasks without their own.
    #[arg(long)]
    pub system: Option<String>,
    /// Think mode (as the request field `thinking`).
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    pub enable_thinking: bool,
    /// Thinking budget in tokens (think mode).
    #[arg(long)]
    pub thinking_budget: Option<usize>,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// `TOKEN_ID=BIAS` added to that token's logit (repeatable), as OpenAI `logit_bias`.
    #[arg(long, value_parser = parse_bias)]
    pub logit_bias: Vec<(u32, f32)>,
    /// `confidence` early stop: finished rollouts that set the threshold (default ceil(N/4)).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Print a JSON array of rows instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A strategy with its two option sets and its selector.
struct Strategy {
    label: String,
    off: SelectionOptions,
    on: SelectionOptions,
    selector: Box<dyn Selector>,
}

/// Everything one benchmark run shares across configurations.
struct Bench {
    engine: EngineHandle,
    tasks: Vec<Task>,
    prompts: Vec<Prompt>,
    strategies: Vec<Strategy>,
    /// Without the per-task seed.
    params: SamplingParams,
    seed: u64,
    max_tokens: usize,
    want_off: bool,
    want_on: bool,
}

pub fn run(args: SelectionArgs) -> anyhow::Result<()> {
    let bench = setup(&args)?;
    let pb = ProgressBar::new((args.n.len() * bench.tasks.len()) as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} tasks, {elapsed}")?
            .progress_chars("=> "),
    );
    let mut rows: Vec<Row> = Vec::new();
    for &n in &args.n {
        pb.set_prefix(format!("N={n}"));
        let new = bench.rows(n, &pb)?;
        for r in &new {
            let saved = r
                .tokens_saved_pct
                .map_or_else(|| "n/a".into(), |p| format!("{p:.1}%"));
            pb.suspend(|| {
                eprintln!(
                    "{} N={} early_stop={}: accuracy {:.3}, {:.1} tokens/task, saved {saved}",
                    r.strategy, r.n, r.early_stop, r.accuracy, r.tokens_per_task
                )
            });
        }
        rows.extend(new);
    }
    pb.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// Checks the arguments, renders every prompt, starts the engine.
fn setup(args: &SelectionArgs) -> anyhow::Result<Bench> {
    let tasks = load_tasks(&args.tasks, args.limit)?;
    if args.n.contains(&0) {
        bail!("--n: every rollout count must be at least 1");
    }
    let strategies = strategy_specs(&args.strategy)?
        .iter()
        .map(|spec| {
            let off = strategy(spec, false, args.warmup)?;
            let label = label(spec);
            let selector = off
                .config
                .build()
                .map_err(|e| anyhow!("--strategy {label}: {e}"))?;
            Ok(Strategy {
                on: strategy(spec, true, args.warmup)?,
                label,
                off,
                selector,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if strategies.is_empty() {
        bail!("--strategy: no strategy given");
    }
    let dir = &args.model.model;
    let tok = Tokenizer::from_dir(dir).with_context(|| format!("loading {}", dir.display()))?;
    let template = ChatTemplate::from_tokenizer(&tok)?;
    let think = ThinkFields {
        thinking: Some(args.enable_thinking),
        thinking_budget: args.thinking_budget,
        ..ThinkFields::default()
    };
    let prompts = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            render(&tok, &template, &think, args.system.as_deref(), t)
                .with_context(|| format!("task {}", i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let model = args.model.clone();
    let engine = EngineHandle::spawn(
        move || model.load(),
        EngineConfig {
            prefix_cache_bytes: Some(0),
            ..EngineConfig::default()
        },
    )?;
    let info = engine.info();
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        max_tokens: Some(args.max_tokens),
        stop: args.stop.clone(),
        logit_bias: args.logit_bias.iter().copied().collect(),
        ..SamplingParams::default()
    };
    params.validate(info.vocab_size)?;
    for (i, p) in prompts.iter().enumerate() {
        if p.ids.len() + args.max_tokens > info.context_length {
            bail!(
                "task {}: {} prompt tokens + --max-tokens {} exceed the context length {}",
                i + 1,
                p.ids.len(),
                args.max_tokens,
                info.context_length
            );
        }
    }
    Ok(Bench {
        engine,
        tasks,
        prompts,
        strategies,
        params,
        seed: args.seed,
        max_tokens: args.max_tokens,
        want_off: args.early_stop != EarlyStopArg::On,
        want_on: args.early_stop != EarlyStopArg::Off,
    })
}

impl Bench {
    /// Every task at `n` rollouts: per strategy, an off row and/or an on row.
    fn rows(&self, n: usize, pb: &ProgressBar) -> anyhow::Result<Vec<Row>> {
        let count = self.strategies.len();
        let (mut off, mut on) = (vec![Vec::new(); count], vec![Vec::new(); count]);
        for (i, (task, prompt)) in self.tasks.iter().zip(&self.prompts).enumerate() {
            let params = SamplingParams {
                seed: Some(self.seed.wrapping_add(i as u64)),
                ..self.params.clone()
            };
            let gold = task.gold_text();
            let judged = |g: &driver::Group, s: &Strategy, opts: &SelectionOptions| {
                judge(g, opts, s.selector.as_ref(), &gold, self.max_tokens)
            };
            let base = if self.want_off {
                let off = &self.strategies[0].off;
                Some(run_group(&self.engine, prompt, n, &params, off)?)
            } else {
                None
            };
            for (k, s) in self.strategies.iter().enumerate() {
                let off_outcome: Option<Outcome> = base.as_ref().map(|g| judged(g, s, &s.off));
                if self.want_on {
                    let stops = EarlyStop::new(&s.on, n, self.max_tokens).enabled();
                    on[k].push(match (&off_outcome, stops) {
                        // Nothing can stop: the on run is the off run.
                        (Some(o), false) => o.clone(),
                        _ => judged(
                            &run_group(&self.engine, prompt, n, &params, &s.on)?,
                            s,
                            &s.on,
                        ),
                    });
                }
                off[k].extend(off_outcome);
            }
            pb.inc(1);
        }
        let mut rows = Vec::new();
        for (k, s) in self.strategies.iter().enumerate() {
            let baseline = self.want_off.then_some(&off[k][..]);
            if self.want_off {
                rows.push(row(&s.label, n, false, &off[k], baseline));
            }
            if self.want_on {
                rows.push(row(&s.label, n, true, &on[k], baseline));
            }
        }
        Ok(rows)
    }
}
