//! The `quorum` command line: `serve`, `model init`, `generate`, `bench`,
//! `verify`, `train`, `data`. The binary
//! edge: errors here are `anyhow`.

mod bench;
mod bench_eval;
pub use bench::{synthetic_prompt, weight_bytes_per_step};
mod common;
mod data;
mod data_distill;
mod generate;
mod model_cmd;
mod sample_source;
mod serve;
mod task_fields;
mod train;
mod verify;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "quorum",
    version,
    about = "Inference-time scaling: N rollouts, think mode, budgets, answer selection, and an RLVR trainer"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// OpenAI-compatible HTTP server.
    Serve(Box<serve::ServeArgs>),
    /// Model directories: `model init` writes a random-weight HF model, `model gguf` exports one to GGUF.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Generate completions for one prompt (N rollouts, batched).
    Generate(generate::GenerateArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check answer equivalence with the math verifier (one pair, or JSONL on stdin).
    Verify(verify::VerifyArgs),
    /// Training: tokenizer, SFT, plots.
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Task data: built-in generators.
    #[command(subcommand)]
    Data(data::DataCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Generate(args) => generate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Serve(args) => serve::run(*args),
        Command::Verify(args) => verify::run(args),
        Command::Train(cmd) => train::run(cmd),
        Command::Data(cmd) => data::run(cmd),
    }
}
