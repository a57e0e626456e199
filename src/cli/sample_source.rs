//! The flags that pick where `bench eval` and `data distill` sample from:
//! `--model DIR` (the embedded engine) or `--url` of an OpenAI-compatible
//! server, both behind [`SampleSource`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::cli::common::{DeviceArg, ModelArgs};
use crate::engine::serving::ServingArgs;
use crate::eval::embedded::EmbeddedSource;
use crate::eval::remote::{RemoteClient, RemoteOptions};
use crate::eval::source::SampleSource;
use crate::model::WeightDType;

#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// HF model directory, run in this process by the batched engine.
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    pub model: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible server, with `/v1`
    /// (`http://127.0.0.1:8080/v1`): Quorum, vLLM, llama.cpp's llama-server.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for `--url`.
    #[arg(long, requires = "url")]
    pub api_key: Option<String>,
    /// The `model` field of requests (default: the first of `GET /v1/models`).
    #[arg(long, requires = "url")]
    pub served_model: Option<String>,
    /// Requests in flight at once (`--url`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Seconds one request may take (`--url`).
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    /// Problems decoded together per engine call (`--model`).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Storage dtype of weight matrices (`--model`).
    #[arg(long, value_enum)]
    pub dtype: Option<WeightDType>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// An opened source: the engine, or a server client (which also scores).
pub enum Opened {
    Embedded(Box<EmbeddedSource>),
    Remote(RemoteClient),
}

impl Opened {
    pub fn source(&self) -> &dyn SampleSource {
        match self {
            Opened::Embedded(e) => e.as_ref(),
            Opened::Remote(r) => r,
        }
    }

    pub fn remote(&self) -> Option<&RemoteClient> {
        match self {
            Opened::Remote(r) => Some(r),
            Opened::Embedded(_) => None,
        }
    }
}

impl SourceArgs {
    pub fn model_args(&self, dir: PathBuf) -> ModelArgs {
        ModelArgs {
            model: dir,
            serving: ServingArgs {
                dtype: self.dtype,
                device: Some(self.device),
                ..ServingArgs::default()
            },
        }
    }

    pub fn device(&self) -> anyhow::Result<candle_core::Device> {
        self.model_args(PathBuf::new()).device()
    }

    pub fn open(&self) -> anyhow::Result<Opened> {
        match (&self.model, &self.url) {
            (Some(dir), _) => {
                let bundle = self.model_args(dir.clone()).load()?;
                Ok(Opened::Embedded(Box::new(EmbeddedSource::new(
                    bundle,
                    dir.display().to_string(),
                    self.batch as usize,
                ))))
            }
            (None, Some(url)) => {
                let opts = RemoteOptions {
                    url: url.clone(),
                    api_key: self.api_key.clone(),
                    served_model: self.served_model.clone(),
                    concurrency: self.concurrency as usize,
                    timeout: Duration::from_secs(self.request_timeout.max(1)),
                };
                let client =
                    RemoteClient::connect(&opts).with_context(|| format!("--url {url}"))?;
                Ok(Opened::Remote(client))
            }
            (None, None) => anyhow::bail!("pass --model DIR or --url URL"),
        }
    }
}
