//! The arguments every trainer takes: `--config RECIPE.toml [--resume]
//! [--out DIR] [KEY=VALUE…]`.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Training recipe (TOML; see config/train/).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue the run in `out` from its newest checkpoint (exactly: weights,
    /// optimizer moments, schedule, data position, RNG).
    #[arg(long)]
    pub resume: bool,
    /// Run directory (the config's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overrides of any config value: `optim.lr=3e-4 train.steps=200 …`.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl RunArgs {
    /// The overrides, `--out` included.
    pub fn all_overrides(&self) -> Vec<String> {
        let mut o = self.overrides.clone();
        if let Some(out) = &self.out {
            o.push(format!(
                "out={}",
                toml::Value::String(out.display().to_string())
            ));
        }
        o
    }
}
