use std::io::IsTerminal;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    quorum::alloc::keep_freed_memory();
    // Colour only on a terminal (not in log files or pipes), and never
    // with NO_COLOR set (https://no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    quorum::cli::run(quorum::cli::Cli::parse())
}
