//! `quorum serve`: the OpenAI-compatible HTTP server. Settings come from
//! flags > `QUORUM_*` env > `--config` TOML > defaults (see
//! `quorum::server::config`); this file only wires the runtime and signals.
//!
//! The first SIGTERM / Ctrl-C drains (see `RunningServer::shutdown`); a
//! second one during the drain exits at once with status 128 + signal
//! (130 for SIGINT, 143 for SIGTERM).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::server::{self, ServeSettings};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file whose `[server]` section holds any of the settings below.
    #[arg(long, env = "QUORUM_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ServeSettings,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => ServeSettings::from_file(path)?,
        None => ServeSettings::default(),
    };
    let cfg = args.settings.or(file).resolve()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quorum-http")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: server::ServerConfig) -> anyhow::Result<()> {
    let mut running = server::start(cfg).await?;
    tracing::info!(addr = %running.local_addr(), "listening (models loading; /health is 503 until ready)");
    let loaded = tokio::select! {
        r = running.ready() => Some(r),
        _ = shutdown_signal() => None,
    };
    match loaded {
        None => {
            tracing::info!("signal received while loading; shutting down");
            drain(running).await?;
            return Ok(());
        }
        Some(Err(e)) => {
            let _ = running.shutdown().await;
            return Err(e).context("loading models");
        }
        Some(Ok(())) => {}
    }
    tracing::info!(addr = %running.local_addr(), "serving");
    shutdown_signal().await;
    tracing::info!("shutting down: no new requests; in-flight work gets the grace period (a second signal exits at once)");
    drain(running).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The graceful shutdown, cut short by a second signal.
async fn drain(running: server::RunningServer) -> anyhow::Result<()> {
    tokio::select! {
        r = running.shutdown() => Ok(r?),
        signal = shutdown_signal() => {
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
            std::process::exit(128 + signal.number());
        }
    }
}

/// The signal that asked for shutdown.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// The POSIX signal number (for the exit status 128 + n).
    fn number(self) -> i32 {
        match self {
            Self::Interrupt => 2,
            Self::Terminate => 15,
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() -> Signal {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => Signal::Interrupt,
        _ = term => Signal::Terminate,
    }
}
