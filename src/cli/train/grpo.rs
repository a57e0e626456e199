//! `quorum train grpo --config config/train/NAME.toml [--resume] [--out DIR] [KEY=VALUE…]`.

use std::io::IsTerminal;

use super::run_args::RunArgs;
use crate::training::grpo::{run as run_grpo, GrpoOptions};

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let summary = run_grpo(GrpoOptions {
        overrides: args.all_overrides(),
        config: args.config,
        resume: args.resume,
        progress: std::io::stderr().is_terminal(),
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
