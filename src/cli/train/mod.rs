//! `quorum train`: tokenizer, SFT (and next GRPO, reward models), plots.

mod filter;
mod plot;
mod sft;
mod tokenizer;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Supervised fine-tuning (teacher forcing, loss on assistant tokens).
    Sft(Box<sft::SftArgs>),
    /// Train a byte-level BPE tokenizer with the chat special tokens.
    Tokenizer(tokenizer::TokenizerArgs),
    /// Write PNG curves (loss, eval accuracy, lr) of a run directory.
    Plot(plot::PlotArgs),
    /// Offline difficulty filtering: sample k answers per problem, keep the
    /// problems whose pass rate lies in a band; pass rates and a histogram.
    Filter(Box<filter::FilterArgs>),
}

pub fn run(cmd: TrainCommand) -> anyhow::Result<()> {
    match cmd {
        TrainCommand::Sft(args) => sft::run(*args),
        TrainCommand::Tokenizer(args) => tokenizer::run(args),
        TrainCommand::Plot(args) => plot::run(args),
        TrainCommand::Filter(args) => filter::run(*args),
    }
}
