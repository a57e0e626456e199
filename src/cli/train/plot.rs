//! `quorum train plot` (being written).

#[derive(Debug, clap::Args)]
pub struct PlotArgs {}

pub fn run(_args: PlotArgs) -> anyhow::Result<()> {
    anyhow::bail!("quorum train plot: not built yet")
}
