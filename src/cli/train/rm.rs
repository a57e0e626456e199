//! `quorum train rm --config config/train/NAME.toml [--resume] [--out DIR] [KEY=VALUE…]`.

use std::io::IsTerminal;

use super::run_args::RunArgs;
use crate::training::rm::{run as run_rm, RmOptions};

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let summary = run_rm(RmOptions {
        overrides: args.all_overrides(),
        config: args.config,
        resume: args.resume,
        progress: std::io::stderr().is_terminal(),
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
