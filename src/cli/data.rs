//! `quorum data gen arithmetic|countdown`: built-in task generators with
//! worked traces, as task records or SFT conversations (JSONL); `quorum
//! data distill` lives in `data_distill.rs`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quorum_train::gen::{
    generate, sft_record, task_record, ArithConfig, ArithOp, Arithmetic, Countdown,
    CountdownConfig, Span, Split, TaskGenerator, ThinkMix,
};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate problems with worked reasoning traces (JSONL on stdout or --out).
    #[command(subcommand)]
    Gen(GenCommand),
    /// Rejection sampling (STaR / RFT): K answers per problem from a teacher
    /// (`--model DIR` or `--url`), the verifier-correct ones written as SFT
    /// conversations, with the yield per problem.
    Distill(Box<super::data_distill::DistillArgs>),
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Column addition/subtraction, long multiplication, multi-step expressions.
    Arithmetic {
        #[command(flatten)]
        common: GenArgs,
        #[command(flatten)]
        knobs: ArithArgs,
    },
    /// Reach a target from a few numbers with + - * / (each used at most once).
    Countdown {
        #[command(flatten)]
        common: GenArgs,
        #[command(flatten)]
        knobs: CountdownArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// `{"id", "prompt", "answer", "verifier", "solution"}` (solution = the trace).
    Tasks,
    /// `{"messages", "chat_template_kwargs"?, "id", "answer", "verifier"}`, think on/off mixed.
    Sft,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Problems to write.
    #[arg(long)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train and test never share a problem (split by a hash of the problem).
    #[arg(long, default_value_t = Split::Train)]
    pub split: Split,
    #[arg(long, value_enum, default_value_t = OutFormat::Tasks)]
    pub format: OutFormat,
    /// Share of think-on SFT examples (the rest answer directly).
    #[arg(long, default_value_t = ThinkMix::default().think_ratio)]
    pub think_ratio: f64,
    /// Write here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ArithArgs {
    /// Kinds to mix uniformly: add, sub, mul, expr.
    #[arg(long, value_delimiter = ',', default_values_t = ArithConfig::default().ops)]
    pub ops: Vec<ArithOp>,
    /// Digits of each addition/subtraction operand: N or MIN-MAX.
    #[arg(long, default_value_t = ArithConfig::default().digits)]
    pub digits: Span,
    /// Digits of a multiplication's first factor.
    #[arg(long, default_value_t = ArithConfig::default().mul_digits)]
    pub mul_digits: Span,
    /// Digits of a multiplication's second factor (one partial product each).
    #[arg(long, default_value_t = ArithConfig::default().mul_by)]
    pub mul_by: Span,
    /// Operations in an expression.
    #[arg(long, default_value_t = ArithConfig::default().steps)]
    pub steps: Span,
    /// Digits of an expression's numbers.
    #[arg(long, default_value_t = ArithConfig::default().expr_digits)]
    pub expr_digits: Span,
}

#[derive(Debug, Args)]
pub struct CountdownArgs {
    /// How many numbers a problem gives.
    #[arg(long, default_value_t = CountdownConfig::default().numbers)]
    pub numbers: Span,
    /// Numbers are drawn from 1..=MAX.
    #[arg(long, default_value_t = CountdownConfig::default().max_number)]
    pub max_number: u32,
    #[arg(long, default_value_t = CountdownConfig::default().min_target)]
    pub min_target: u32,
    #[arg(long, default_value_t = CountdownConfig::default().max_target)]
    pub max_target: u32,
    /// Failed attempts shown in the trace before the solution.
    #[arg(long, default_value_t = CountdownConfig::default().dead_ends)]
    pub dead_ends: Span,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Distill(args) => super::data_distill::run(*args),
        DataCommand::Gen(GenCommand::Arithmetic { common, knobs }) => {
            let g = Arithmetic::new(ArithConfig {
                ops: knobs.ops,
                digits: knobs.digits,
                mul_digits: knobs.mul_digits,
                mul_by: knobs.mul_by,
                steps: knobs.steps,
                expr_digits: knobs.expr_digits,
            })?;
            write_problems(&g, &common)
        }
        DataCommand::Gen(GenCommand::Countdown { common, knobs }) => {
            let g = Countdown::new(CountdownConfig {
                numbers: knobs.numbers,
                max_number: knobs.max_number,
                min_target: knobs.min_target,
                max_target: knobs.max_target,
                dead_ends: knobs.dead_ends,
            })?;
            write_problems(&g, &common)
        }
    }
}

/// Runs from this many problems up show a progress bar (on a terminal).
const PROGRESS_FROM: usize = 10_000;

fn write_problems(g: &dyn TaskGenerator, a: &GenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.n > 0, "--n must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.think_ratio),
        "--think-ratio {} must lie within 0-1",
        a.think_ratio
    );
    let mix = ThinkMix {
        think_ratio: a.think_ratio,
    };
    let bar = if a.n >= PROGRESS_FROM {
        let b = ProgressBar::new(a.n as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} problems, ETA {eta}")
        {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let mut think_on = 0usize;
    let mut write_all = |out: &mut dyn Write| -> anyhow::Result<()> {
        for p in generate(g, a.n, a.seed, a.split) {
            let p = p?;
            let line = match a.format {
                OutFormat::Tasks => serde_json::to_string(&task_record(&p, g.kind()))?,
                OutFormat::Sft => {
                    let toggle = mix.toggle(a.seed, &p);
                    think_on += usize::from(toggle.thinking());
                    serde_json::to_string(&sft_record(&p, g.kind(), toggle))?
                }
            };
            writeln!(out, "{line}")?;
            bar.inc(1);
        }
        out.flush()?;
        Ok(())
    };
    match &a.out {
        Some(path) => atomic_write(path, |f| write_all(f))?,
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write_all(&mut out)?;
        }
    }
    bar.finish_and_clear();
    let think = match a.format {
        OutFormat::Sft => format!(", {think_on} think on"),
        OutFormat::Tasks => String::new(),
    };
    let dest = a
        .out
        .as_ref()
        .map_or("stdout".to_string(), |p| p.display().to_string());
    let format = match a.format {
        OutFormat::Tasks => "task",
        OutFormat::Sft => "sft",
    };
    eprintln!(
        "{} {} {} {format} records{think} (seed {}) to {dest}",
        a.n,
        a.split,
        g.kind(),
        a.seed
    );
    Ok(())
}

/// Writes through a temporary file beside `path`, renamed over it at the
/// end: a failed or interrupted run leaves no partial file.
fn atomic_write(
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--out {} has no file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> anyhow::Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        body(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
