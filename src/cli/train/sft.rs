//! `quorum train sft --config config/train/NAME.toml [--resume] [--out DIR] [KEY=VALUE…]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::training::sft::{run as run_sft, SftOptions};

#[derive(Debug, clap::Args)]
pub struct SftArgs {
    /// Training recipe (TOML; see config/train/).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue the run in `out` from its newest checkpoint (exactly: weights,
    /// optimizer moments, schedule, data position).
    #[arg(long)]
    pub resume: bool,
    /// Run directory (the config's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overrides of any config value: `optim.lr=3e-4 train.steps=200 …`.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: SftArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides;
    if let Some(out) = &args.out {
        overrides.push(format!("out={}", toml_string(&out.display().to_string())));
    }
    let summary = run_sft(SftOptions {
        config: args.config,
        overrides,
        resume: args.resume,
        progress: std::io::stderr().is_terminal(),
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// A TOML basic string literal.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.into()).to_string()
}
