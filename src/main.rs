use clap::Parser;

fn main() -> anyhow::Result<()> {
    quorum::alloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    quorum::cli::run(quorum::cli::Cli::parse())
}
