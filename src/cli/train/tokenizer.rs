//! `quorum train tokenizer` (being written).

#[derive(Debug, clap::Args)]
pub struct TokenizerArgs {}

pub fn run(_args: TokenizerArgs) -> anyhow::Result<()> {
    anyhow::bail!("quorum train tokenizer: not built yet")
}
