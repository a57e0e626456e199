//! `quorum train sft` (being written).

#[derive(Debug, clap::Args)]
pub struct SftArgs {}

pub fn run(_args: SftArgs) -> anyhow::Result<()> {
    anyhow::bail!("quorum train sft: not built yet")
}
