//! `quorum train filter --model DIR --data FILE -k 16 --band 0.2,0.8 --out FILE
//! [--rates FILE] [--plot FILE.png] …`: offline difficulty filtering (see
//! [`crate::training::filter`]).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::ValueEnum;

use quorum_train::filter::Band;

use crate::cli::common::ModelArgs;
use crate::cli::task_fields::TaskFieldArgs;
use crate::training::filter::{run as run_filter, FilterOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ThinkArg {
    On,
    Off,
    /// As the server resolves it: the record's `enable_thinking` kwarg,
    /// `/think` / `/no_think` in the messages, else the model's default.
    Default,
}

#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Task file (JSONL or Parquet) with reference answers.
    #[arg(long)]
    pub data: PathBuf,
    /// Answers sampled per problem.
    #[arg(short = 'k', long = "k", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub k: u64,
    /// Keep problems whose pass rate p = correct / k has LOW <= p <= HIGH.
    #[arg(long, value_name = "LOW,HIGH", default_value = "0.2,0.8", value_parser = parse_band)]
    pub band: Band,
    /// The kept records: JSONL, every original field plus `pass_rate`.
    #[arg(long)]
    pub out: PathBuf,
    /// Every problem's pass rate (JSONL: index, id, prompt, answer, correct, k, pass_rate, kept…).
    #[arg(long)]
    pub rates: Option<PathBuf>,
    /// Histogram of pass rates (PNG, k + 1 bins, the band marked).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Sampling temperature (no top-p/top-k: the policy's own distribution).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Generation limit per answer; longer answers count as wrong.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    #[arg(long, value_enum, default_value_t = ThinkArg::Default)]
    pub think: ThinkArg,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first N problems of the file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Problems sampled per engine call (progress and memory granularity).
    #[arg(long, default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk: u64,
    #[command(flatten)]
    pub fields: TaskFieldArgs,
}

fn parse_band(s: &str) -> Result<Band, String> {
    s.parse()
        .map_err(|e: quorum_train::filter::FilterError| e.to_string())
}

pub fn run(args: FilterArgs) -> anyhow::Result<()> {
    let opts = FilterOptions {
        data: args.data.clone(),
        load: args.fields.load_options(),
        k: args.k as usize,
        band: args.band,
        out: args.out.clone(),
        rates: args.rates.clone(),
        plot: args.plot.clone(),
        temperature: args.temperature,
        max_new_tokens: args.max_new_tokens,
        think: match args.think {
            ThinkArg::On => Some(true),
            ThinkArg::Off => Some(false),
            ThinkArg::Default => None,
        },
        seed: args.seed,
        limit: args.limit,
        chunk: args.chunk as usize,
        progress: std::io::stderr().is_terminal(),
    };
    let bundle = args.model.load()?;
    let r = run_filter(&bundle, &opts)?;
    let s = &r.stats;
    let share = |n: usize| {
        if s.problems == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.problems as f64
        }
    };
    println!(
        "{} problems, k = {}: {} kept ({:.1}%) with pass rate in [{}, {}]",
        s.problems,
        s.k,
        s.kept,
        share(s.kept),
        s.band.lo,
        s.band.hi
    );
    println!("pass-rate histogram (correct/k, rate, problems; * = in band):");
    print!("{}", s.histogram.to_text(s.band));
    println!(
        "mean pass rate {:.3}; all {} correct: {} ({:.1}%), none correct: {} ({:.1}%)",
        s.mean_pass_rate,
        s.k,
        s.all_correct,
        share(s.all_correct),
        s.none_correct,
        share(s.none_correct)
    );
    println!(
        "generated {} tokens in {:.1} s ({:.0} tokens/s); {} of {} answers cut at {} tokens",
        r.tokens,
        r.seconds,
        r.tokens_per_s,
        r.truncated,
        s.problems * s.k,
        args.max_new_tokens
    );
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    if s.kept == 0 {
        eprintln!(
            "warning: no problem has a pass rate in [{}, {}]; {} is empty",
            s.band.lo,
            s.band.hi,
            args.out.display()
        );
    }
    Ok(())
}
