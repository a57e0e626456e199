//! `quorum train`: tokenizer, SFT, GRPO, reward models, difficulty filter, plots.

mod filter;
mod grpo;
mod plot;
mod rm;
mod run_args;
mod sft;
mod tokenizer;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Supervised fine-tuning (teacher forcing, loss on assistant tokens).
    Sft(Box<run_args::RunArgs>),
    /// GRPO / RLVR: G rollouts per prompt, verifier rewards, group advantages, clipped updates.
    Grpo(Box<run_args::RunArgs>),
    /// Outcome reward model: a scalar head on the policy backbone, trained on
    /// verifier-labelled rollouts (BCE, balanced per problem) or preference
    /// pairs (Bradley–Terry).
    Rm(Box<run_args::RunArgs>),
    /// Train a byte-level BPE tokenizer with the chat special tokens.
    Tokenizer(tokenizer::TokenizerArgs),
    /// Write PNG curves (loss, eval accuracy, lr) of a run directory.
    Plot(plot::PlotArgs),
    /// Offline difficulty filtering: sample k answers per problem, keep the
    /// problems whose pass rate lies in a band; pass rates and a histogram.
    Filter(Box<filter::FilterArgs>),
}

pub fn run(cmd: TrainCommand) -> anyhow::Result<()> {
    // Before the first candle op: candle's spinning elementwise pool
    // starves the threads doing the work on a small machine (see the op's
    // doc). `main` already keeps freed memory mapped, as training wants.
    crate::model::train_ops::single_threaded_candle_elementwise();
    match cmd {
        TrainCommand::Sft(args) => sft::run(*args),
        TrainCommand::Grpo(args) => grpo::run(*args),
        TrainCommand::Rm(args) => rm::run(*args),
        TrainCommand::Tokenizer(args) => tokenizer::run(args),
        TrainCommand::Plot(args) => plot::run(args),
        TrainCommand::Filter(args) => filter::run(*args),
    }
}
