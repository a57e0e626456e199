//! `quorum model init`: write a random-weight model directory in HF format;
//! `quorum model gguf`: export one to GGUF for llama.cpp.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::gguf_export::{export_gguf, GgufDType};
use crate::model::init::{
    config_for_tokenizer, init_model, InitDType, InitOptions, InitProgress, TokenizerSource,
};
use crate::model::presets::{preset, PRESETS};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Write a random-weight model (a real architecture, no download needed).
    Init(InitArgs),
    /// Export an HF Qwen3 model directory to a GGUF file llama.cpp loads
    /// (arch `qwen3`, the `gpt2` byte-level BPE vocabulary and the chat template).
    Gguf(GgufArgs),
}

#[derive(Debug, Args)]
pub struct GgufArgs {
    /// HF model directory (config.json, safetensors, tokenizer.json, tokenizer_config.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Output file (e.g. model.gguf); replaced if it exists.
    #[arg(long)]
    pub out: PathBuf,
    /// Storage type of the weight matrices: f32 or f16 (norms stay f32).
    #[arg(long, default_value = "f32")]
    pub dtype: GgufDType,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Named shape: tiny, tiny-qwen2, tiny-llama, qwen3-0.6b, qwen2.5-0.5b, llama-3.2-1b.
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    pub preset: Option<String>,
    /// A config.json to take the shape from instead of a preset. With --tokenizer it may
    /// leave out vocab_size and eos/pad/bos_token_id: they are taken from the tokenizer.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory (created; must be empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weight dtype on disk: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: InitDType,
    /// Largest safetensors shard in bytes (bigger models are sharded with an index).
    #[arg(long)]
    pub shard_size: Option<u64>,
    /// Directory with tokenizer.json + tokenizer_config.json (default: the Qwen3 fixture).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Write a reward model (`*ForSequenceClassification`, `score.weight`) instead of an LM head.
    #[arg(long)]
    pub reward_head: bool,
    /// Replace a non-empty output directory.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Init(args) => init(args),
        ModelCommand::Gguf(args) => gguf(args),
    }
}

fn gguf(args: GgufArgs) -> anyhow::Result<()> {
    let r = export_gguf(&args.model, &args.out, args.dtype)
        .with_context(|| format!("exporting {} to GGUF", args.model.display()))?;
    println!(
        "wrote {} ({} tensors, {} parameters, {} tokens, {} merges, {:.1} MB)",
        r.path.display(),
        r.tensors,
        r.params,
        r.vocab_size,
        r.merges,
        r.bytes as f64 / 1e6
    );
    Ok(())
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    let config = match (&args.preset, &args.config) {
        (Some(name), _) => {
            preset(name).with_context(|| format!("presets: {}", PRESETS.join(", ")))?
        }
        (None, Some(path)) => config_for_tokenizer(path, args.tokenizer.as_deref())?,
        (None, None) => anyhow::bail!("give --preset or --config"),
    };
    let mut opts = InitOptions::new(config, &args.out);
    opts.seed = args.seed;
    opts.dtype = args.dtype;
    opts.shard_max_bytes = args.shard_size;
    opts.reward_head = args.reward_head;
    opts.force = args.force;
    if let Some(dir) = args.tokenizer {
        opts.tokenizer = TokenizerSource::Qwen3Fixture(dir);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("weights");
    let report = init_model(&opts, &|p| match p {
        InitProgress::Start { bytes, .. } => bar.set_length(bytes),
        InitProgress::Tensor { bytes_done, .. } => bar.set_position(bytes_done),
        InitProgress::File { .. } => {}
    })?;
    bar.finish_and_clear();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "wrote {} ({} parameters, {:.1} MB, {} files)",
        args.out.display(),
        report.params,
        report.bytes as f64 / 1e6,
        report.files.len()
    );
    Ok(())
}
