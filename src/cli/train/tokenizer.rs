//! `quorum train tokenizer`: a byte-level BPE with the chat tokens and the Qwen3 chat
//! template, trained on the strings of JSONL files (see [`crate::tokenizer::train`]).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::tokenizer::train::{
    train_tokenizer, TokenizerTrainOptions, TrainProgress, MIN_VOCAB_SIZE,
};

#[derive(Debug, clap::Args)]
pub struct TokenizerArgs {
    /// JSONL files to train on (every string value of every record is used).
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// Vocabulary size including the 5 chat tokens and the 256 byte tokens.
    #[arg(long, value_parser = parse_vocab_size)]
    pub vocab_size: usize,
    /// Output directory for tokenizer.json + tokenizer_config.json.
    #[arg(long)]
    pub out: PathBuf,
    /// A pair must occur this often to be merged.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// `model_max_length` written to tokenizer_config.json.
    #[arg(long, default_value_t = 32_768)]
    pub model_max_length: u64,
    /// Overwrite the files of a non-empty output directory.
    #[arg(long)]
    pub force: bool,
}

fn parse_vocab_size(s: &str) -> Result<usize, String> {
    let v: usize = s.parse().map_err(|e| format!("{e}"))?;
    if v < MIN_VOCAB_SIZE {
        return Err(format!(
            "must be at least {MIN_VOCAB_SIZE} (5 chat tokens + 256 byte tokens)"
        ));
    }
    Ok(v)
}

pub fn run(args: TokenizerArgs) -> anyhow::Result<()> {
    let mut opts = TokenizerTrainOptions::new(args.vocab_size);
    opts.min_frequency = args.min_frequency;
    opts.model_max_length = args.model_max_length;
    opts.show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("reading");
    let started = std::time::Instant::now();
    let trained = train_tokenizer(&args.data, &opts, &|p| match p {
        TrainProgress::Reading {
            bytes_done,
            bytes_total,
        } => {
            bar.set_length(bytes_total);
            bar.set_position(bytes_done);
        }
        TrainProgress::Merging => bar.finish_and_clear(),
    })?;
    bar.finish_and_clear();
    let files = trained.save(&args.out, args.force)?;
    let s = &trained.stats;
    println!(
        "wrote {} ({} tokens: 5 chat + 256 bytes + {} merges; {} records, {} texts, {:.1} MB of text, {:.1}s)",
        args.out.display(),
        s.vocab_size,
        s.merges,
        s.records,
        s.texts,
        s.text_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if s.vocab_size < opts.vocab_size {
        eprintln!(
            "note: {} tokens, fewer than --vocab-size {}: no more pairs occur {}+ times within a pre-token",
            s.vocab_size, opts.vocab_size, opts.min_frequency
        );
    }
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}
