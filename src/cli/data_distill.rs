//! `quorum data distill`: rejection-sampled SFT data from a teacher (see
//! [`crate::eval::distill`]).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::cli::bench_eval::ThinkFlag;
use crate::cli::sample_source::SourceArgs;
use crate::cli::task_fields::TaskFieldArgs;
use crate::eval::distill::{run as run_distill, DistillOptions, Keep};

#[derive(Debug, Args)]
pub struct DistillArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Task file (JSONL or Parquet) with reference answers.
    #[arg(long)]
    pub data: PathBuf,
    /// Answers sampled per problem.
    #[arg(short = 'k', long = "k", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub k: u64,
    #[arg(long, value_enum, default_value_t = ThinkFlag::Default)]
    pub think: ThinkFlag,
    /// correct: the verifier-accepted answers; all: every answer (records get `correct`).
    #[arg(long, value_enum, default_value_t = Keep::Correct)]
    pub keep: Keep,
    /// Drop identical completions of a problem.
    #[arg(long)]
    pub dedup: bool,
    /// Order a problem's records by length, shortest first (with
    /// --max-per-problem: keep the shortest).
    #[arg(long)]
    pub shortest_first: bool,
    /// Records per problem at most.
    #[arg(long)]
    pub max_per_problem: Option<usize>,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// SFT conversations (JSONL), as `quorum train sft` reads them.
    #[arg(long)]
    pub out: PathBuf,
    /// The yield per problem as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub fields: TaskFieldArgs,
}

pub fn run(args: DistillArgs) -> anyhow::Result<()> {
    let opts = DistillOptions {
        data: args.data.clone(),
        load: args.fields.load_options(),
        limit: args.limit,
        k: args.k as usize,
        think: match args.think {
            ThinkFlag::On => Some(true),
            ThinkFlag::Off => Some(false),
            ThinkFlag::Default => None,
        },
        keep: args.keep,
        dedup: args.dedup,
        shortest_first: args.shortest_first,
        max_per_problem: args.max_per_problem,
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        seed: args.seed,
        out: args.out.clone(),
        report: args.report.clone(),
        progress: std::io::stderr().is_terminal(),
    };
    // The data first: a bad line fails before any model loads.
    crate::eval::problems::load_problems(&opts.data, &opts.load, opts.limit)?;
    let opened = args.source.open()?;
    let report = run_distill(&opts, opened.source())?;
    let (summary, histogram) = report.lines();
    eprintln!("{summary}");
    eprintln!("{histogram}");
    eprintln!("wrote {}", args.out.display());
    if let Some(r) = &args.report {
        eprintln!("wrote {}", r.display());
    }
    Ok(())
}
