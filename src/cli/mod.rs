//! The `quorum` command line: `model init`, `generate`, `bench`. The binary
//! edge: errors here are `anyhow`.

mod bench;
pub use bench::{synthetic_prompt, weight_bytes_per_step};
mod common;
mod generate;
mod model_cmd;
mod serve;
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
    /// Model directories: `model init` writes a random-weight HF model.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Generate completions for one prompt (N rollouts, batched).
    Generate(generate::GenerateArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check answer equivalence with the math verifier (one pair, or JSONL on stdin).
    Verify(verify::VerifyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Generate(args) => generate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Serve(args) => serve::run(*args),
        Command::Verify(args) => verify::run(args),
    }
}
