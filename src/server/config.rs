//! Server settings, defined once.
//!
//! [`ServeSettings`] is at the same time the clap argument group of
//! `quorum serve` (flags and `QUORUM_*` environment variables, which clap
//! resolves with CLI > env) and the serde shape of the `[server]` section of
//! the TOML file. Every field is an `Option` so that "not given" is visible:
//! [`ServeSettings::or`] layers the file under CLI/env, and
//! [`ServeSettings::resolve`] fills the remaining gaps with the defaults below
//! (CLI > env > file > default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::think::ReasoningField;
use crate::engine::think::ThinkConfig;
use crate::model::WeightDType;

/// Defaults, next to nothing else so they are easy to audit.
pub mod defaults {
    pub const HOST: &str = "127.0.0.1";
    pub const PORT: u16 = 8080;
    pub const MAX_BODY_BYTES: usize = 4 << 20;
    pub const MAX_N: usize = 16;
    pub const MAX_ROLLOUTS: usize = 64;
    pub const MAX_TOKENS: usize = 4096;
    /// OpenAI allows 4; chat templates with several end markers need more.
    pub const MAX_STOP_STRINGS: usize = 16;
    /// Far above real end markers and few-shot separators (< 64 bytes).
    pub const MAX_STOP_BYTES: usize = 1024;
    pub const MAX_CONCURRENT_REQUESTS: usize = 64;
    pub const QUEUE_CAPACITY: usize = 64;
    pub const SHUTDOWN_GRACE_SECS: u64 = 30;
    pub const KEEPALIVE_SECS: u64 = 15;
    pub const RETRY_AFTER_SECS: u64 = 1;
}

/// One `--model` value: `DIR` (id = the directory name) or `ID=DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub id: String,
    pub dir: PathBuf,
}

impl FromStr for ModelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (id, dir) = match s.split_once('=') {
            Some((id, dir)) => (id.trim().to_string(), PathBuf::from(dir)),
            None => {
                let dir = PathBuf::from(s);
                let id = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (id, dir)
            }
        };
        if id.is_empty() || dir.as_os_str().is_empty() {
            return Err(format!("model `{s}`: expected DIR or ID=DIR"));
        }
        Ok(Self { id, dir })
    }
}

impl<'de> Deserialize<'de> for ModelSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Every `quorum serve` setting: flag, env var and TOML key in one place.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Model to serve, `DIR` or `ID=DIR` (repeatable; env: comma-separated).
    /// Without any, the bundled default model is served.
    #[arg(long = "model", env = "QUORUM_MODEL", value_delimiter = ',')]
    #[serde(rename = "model")]
    pub models: Option<Vec<ModelSpec>>,
    /// Address to bind [default: 127.0.0.1].
    #[arg(long, env = "QUORUM_HOST")]
    pub host: Option<String>,
    /// Port to bind; 0 picks a free one [default: 8080].
    #[arg(long, env = "QUORUM_PORT")]
    pub port: Option<u16>,
    /// Storage dtype of the weights [default: f32 on CPU].
    #[arg(long, env = "QUORUM_DTYPE", value_enum)]
    pub dtype: Option<WeightDType>,
    /// Quantize weight matrices at load: q8_0 or q4k [default: none].
    #[arg(long, env = "QUORUM_QUANTIZE", value_enum)]
    pub quantize: Option<crate::model::Quantization>,
    /// Run bf16 weight matrices on Intel AMX tiles: auto, on, off [default: auto].
    #[arg(long, env = "QUORUM_AMX", value_enum)]
    pub amx: Option<crate::model::AmxMode>,
    /// KV cache storage: auto, f32, f16, bf16 [default: auto: a bf16
    /// checkpoint keeps bf16, others f32].
    #[arg(long, env = "QUORUM_KV_CACHE_DTYPE", value_enum)]
    pub kv_cache_dtype: Option<crate::model::KvCacheDType>,
    /// Accepted API key (repeatable; env: comma-separated). With none, no auth.
    #[arg(
        long = "api-key",
        env = "QUORUM_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(rename = "api_key")]
    pub api_keys: Option<Vec<String>>,
    /// File with one API key per line (`#` comments allowed).
    #[arg(long, env = "QUORUM_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Largest request body in bytes; more is 413 [default: 4 MiB].
    #[arg(long, env = "QUORUM_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest `n` (choices returned) [default: 16].
    #[arg(long, env = "QUORUM_MAX_N")]
    pub max_n: Option<usize>,
    /// Largest `rollouts` (samples drawn per request) [default: 64].
    #[arg(long, env = "QUORUM_MAX_ROLLOUTS")]
    pub max_rollouts: Option<usize>,
    /// Largest `max_tokens`, and the budget when a request gives none [default: 4096].
    #[arg(long, env = "QUORUM_MAX_TOKENS")]
    pub max_tokens: Option<usize>,
    /// Most `stop` strings per request [default: 16].
    #[arg(long, env = "QUORUM_MAX_STOP_STRINGS")]
    pub max_stop_strings: Option<usize>,
    /// Longest `stop` string in bytes (UTF-8) [default: 1024].
    #[arg(long, env = "QUORUM_MAX_STOP_BYTES")]
    pub max_stop_bytes: Option<usize>,
    /// Requests handled at once; more get 429 immediately [default: 64].
    #[arg(long, env = "QUORUM_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Requests that may wait in each engine's queue [default: 64].
    #[arg(long, env = "QUORUM_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM / ctrl-c [default: 30].
    #[arg(long, env = "QUORUM_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds between SSE keep-alive comments [default: 15].
    #[arg(long, env = "QUORUM_KEEPALIVE_SECS")]
    pub keepalive_secs: Option<u64>,
    /// `Retry-After` seconds sent with 429 [default: 1].
    #[arg(long, env = "QUORUM_RETRY_AFTER_SECS")]
    pub retry_after_secs: Option<u64>,
    /// Response field of the reasoning text [default: reasoning_content].
    #[arg(long, env = "QUORUM_REASONING_FIELD", value_enum)]
    pub reasoning_field: Option<ReasoningField>,
    /// Think mode per model id, TOML only: `[server.think.ID]` (`"*"`: every
    /// model), the fields of [`ThinkConfig`].
    #[arg(skip)]
    pub think: Option<BTreeMap<String, ThinkConfig>>,
    /// Reward model directory (`*ForSequenceClassification`) for the
    /// `best_of_n` / `weighted_majority` selection strategies and `/v1/score`.
    #[arg(long, env = "QUORUM_REWARD_MODEL")]
    pub reward_model: Option<PathBuf>,
    /// Per-model selection defaults, TOML only: `[server.defaults.ID]`
    /// (`"*"`: every model) with `rollouts`, `selection`, `reward_model`.
    #[arg(skip)]
    pub defaults:
        Option<std::collections::BTreeMap<String, crate::server::selection::ModelDefaults>>,
}

/// The TOML file: settings live under `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServeSettings,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl ServeSettings {
    /// Reads the `[server]` section of a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        Ok(file.server)
    }

    /// `self` where set, else `lower` (CLI/env over file).
    pub fn or(self, lower: Self) -> Self {
        Self {
            models: self.models.or(lower.models),
            host: self.host.or(lower.host),
            port: self.port.or(lower.port),
            dtype: self.dtype.or(lower.dtype),
            quantize: self.quantize.or(lower.quantize),
            amx: self.amx.or(lower.amx),
            kv_cache_dtype: self.kv_cache_dtype.or(lower.kv_cache_dtype),
            api_keys: self.api_keys.or(lower.api_keys),
            api_keys_file: self.api_keys_file.or(lower.api_keys_file),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            max_n: self.max_n.or(lower.max_n),
            max_rollouts: self.max_rollouts.or(lower.max_rollouts),
            max_tokens: self.max_tokens.or(lower.max_tokens),
            max_stop_strings: self.max_stop_strings.or(lower.max_stop_strings),
            max_stop_bytes: self.max_stop_bytes.or(lower.max_stop_bytes),
            max_concurrent_requests: self
                .max_concurrent_requests
                .or(lower.max_concurrent_requests),
            queue_capacity: self.queue_capacity.or(lower.queue_capacity),
            shutdown_grace_secs: self.shutdown_grace_secs.or(lower.shutdown_grace_secs),
            keepalive_secs: self.keepalive_secs.or(lower.keepalive_secs),
            retry_after_secs: self.retry_after_secs.or(lower.retry_after_secs),
            reasoning_field: self.reasoning_field.or(lower.reasoning_field),
            think: self.think.or(lower.think),
            reward_model: self.reward_model.or(lower.reward_model),
            defaults: self.defaults.or(lower.defaults),
        }
    }

    /// Fills defaults, reads the key file and checks the limits.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let mut api_keys = self.api_keys.unwrap_or_default();
        if let Some(path) = &self.api_keys_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            api_keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        api_keys.retain(|k| !k.is_empty());
        let positive = |field: &'static str, v: usize| {
            if v == 0 {
                Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(v)
            }
        };
        let cfg = ServerConfig {
            models: self.models.unwrap_or_default(),
            host: self.host.unwrap_or_else(|| defaults::HOST.into()),
            port: self.port.unwrap_or(defaults::PORT),
            dtype: self.dtype,
            quantize: self.quantize,
            amx: self.amx.unwrap_or_default(),
            kv_cache_dtype: self.kv_cache_dtype.unwrap_or_default(),
            api_keys,
            max_body_bytes: positive(
                "max_body_bytes",
                self.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
            )?,
            max_n: positive("max_n", self.max_n.unwrap_or(defaults::MAX_N))?,
            max_rollouts: positive(
                "max_rollouts",
                self.max_rollouts.unwrap_or(defaults::MAX_ROLLOUTS),
            )?,
            max_tokens: positive(
                "max_tokens",
                self.max_tokens.unwrap_or(defaults::MAX_TOKENS),
            )?,
            max_stop_strings: positive(
                "max_stop_strings",
                self.max_stop_strings.unwrap_or(defaults::MAX_STOP_STRINGS),
            )?,
            max_stop_bytes: positive(
                "max_stop_bytes",
                self.max_stop_bytes.unwrap_or(defaults::MAX_STOP_BYTES),
            )?,
            max_concurrent_requests: positive(
                "max_concurrent_requests",
                self.max_concurrent_requests
                    .unwrap_or(defaults::MAX_CONCURRENT_REQUESTS),
            )?,
            queue_capacity: positive(
                "queue_capacity",
                self.queue_capacity.unwrap_or(defaults::QUEUE_CAPACITY),
            )?,
            shutdown_grace: Duration::from_secs(
                self.shutdown_grace_secs
                    .unwrap_or(defaults::SHUTDOWN_GRACE_SECS),
            ),
            keepalive: Duration::from_secs(
                self.keepalive_secs
                    .unwrap_or(defaults::KEEPALIVE_SECS)
                    .max(1),
            ),
            retry_after_secs: self.retry_after_secs.unwrap_or(defaults::RETRY_AFTER_SECS),
            reasoning_field: self.reasoning_field.unwrap_or_default(),
            think: self.think.unwrap_or_default(),
            reward_model: self.reward_model,
            defaults: self.defaults.unwrap_or_default(),
        };
        crate::server::selection::options::check_defaults(&cfg.defaults).map_err(|message| {
            ConfigError::Invalid {
                field: "defaults",
                message,
            }
        })?;
        let mut ids: Vec<&str> = cfg.models.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid {
                field: "model",
                message: format!("model id `{}` is given twice; use ID=DIR", w[0]),
            });
        }
        Ok(cfg)
    }
}

/// Resolved settings, every value present.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Empty: serve the bundled default model.
    pub models: Vec<ModelSpec>,
    pub host: String,
    pub port: u16,
    pub dtype: Option<WeightDType>,
    pub quantize: Option<crate::model::Quantization>,
    pub amx: crate::model::AmxMode,
    pub kv_cache_dtype: crate::model::KvCacheDType,
    /// Empty: no authentication.
    pub api_keys: Vec<String>,
    pub max_body_bytes: usize,
    pub max_n: usize,
    pub max_rollouts: usize,
    pub max_tokens: usize,
    pub max_stop_strings: usize,
    pub max_stop_bytes: usize,
    pub max_concurrent_requests: usize,
    pub queue_capacity: usize,
    pub shutdown_grace: Duration,
    pub keepalive: Duration,
    pub retry_after_secs: u64,
    /// Response field of the reasoning text.
    pub reasoning_field: ReasoningField,
    /// Think mode per model id (see [`super::think::model_config`]).
    pub think: BTreeMap<String, ThinkConfig>,
    /// Reward model for every model without its own (`defaults.ID.reward_model`).
    pub reward_model: Option<PathBuf>,
    /// Per-model selection defaults by model id (`"*"`: any model).
    pub defaults: std::collections::BTreeMap<String, crate::server::selection::ModelDefaults>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        // All-`None` settings resolve without touching the file system.
        match ServeSettings::default().resolve() {
            Ok(cfg) => cfg,
            Err(_) => unreachable!("defaults are valid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_spec_parses_dir_and_id_forms() {
        let m: ModelSpec = "models/qwen".parse().unwrap();
        assert_eq!(
            (m.id.as_str(), m.dir),
            ("qwen", PathBuf::from("models/qwen"))
        );
        let m: ModelSpec = "small=/x/y".parse().unwrap();
        assert_eq!((m.id.as_str(), m.dir), ("small", PathBuf::from("/x/y")));
        assert!("=dir".parse::<ModelSpec>().is_err());
    }

    #[test]
    fn cli_beats_file_beats_default() {
        let cli = ServeSettings {
            port: Some(1),
            ..Default::default()
        };
        let file: ConfigFile =
            toml::from_str("[server]\nport = 2\nmax_n = 3\nmodel = [\"a=/m\"]\n").unwrap();
        let cfg = cli.or(file.server).resolve().unwrap();
        assert_eq!(cfg.port, 1);
        assert_eq!(cfg.max_n, 3);
        assert_eq!(cfg.models[0].id, "a");
        assert_eq!(cfg.max_rollouts, defaults::MAX_ROLLOUTS);
    }

    #[test]
    fn flags_beat_env_beat_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            s: ServeSettings,
        }
        // Only this test reads these variables.
        std::env::set_var("QUORUM_MAX_ROLLOUTS", "7");
        std::env::set_var("QUORUM_KEEPALIVE_SECS", "4");
        let cli = Cli::try_parse_from(["t", "--max-n", "3", "--keepalive-secs", "5"]).unwrap();
        std::env::remove_var("QUORUM_MAX_ROLLOUTS");
        std::env::remove_var("QUORUM_KEEPALIVE_SECS");
        let file: ConfigFile =
            toml::from_str("[server]\nmax_n = 5\nmax_rollouts = 9\nmax_tokens = 11\n").unwrap();
        let cfg = cli.s.or(file.server).resolve().unwrap();
        assert_eq!(cfg.max_n, 3);
        assert_eq!(cfg.max_rollouts, 7);
        assert_eq!(cfg.max_tokens, 11);
        assert_eq!(cfg.keepalive, Duration::from_secs(5));
    }

    #[test]
    fn stop_string_limits_come_from_flags_file_or_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            s: ServeSettings,
        }
        let cfg = ServeSettings::default().resolve().unwrap();
        assert_eq!(
            (cfg.max_stop_strings, cfg.max_stop_bytes),
            (defaults::MAX_STOP_STRINGS, defaults::MAX_STOP_BYTES)
        );
        let cli = Cli::try_parse_from(["t", "--max-stop-strings", "4"]).unwrap();
        let file: ConfigFile =
            toml::from_str("[server]\nmax_stop_strings = 8\nmax_stop_bytes = 256\n").unwrap();
        let cfg = cli.s.or(file.server).resolve().unwrap();
        assert_eq!((cfg.max_stop_strings, cfg.max_stop_bytes), (4, 256));
        let zero = ServeSettings {
            max_stop_bytes: Some(0),
            ..Default::default()
        };
        assert!(zero
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("max_stop_bytes"));
    }

    #[test]
    fn shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/server.toml");
        ServeSettings::from_file(&path).unwrap().resolve().unwrap();
    }

    #[test]
    fn zero_limits_and_duplicate_ids_are_rejected() {
        let s = ServeSettings {
            max_n: Some(0),
            ..Default::default()
        };
        assert!(s.resolve().unwrap_err().to_string().starts_with("max_n"));
        let s = ServeSettings {
            models: Some(vec!["a=/x".parse().unwrap(), "a=/y".parse().unwrap()]),
            ..Default::default()
        };
        assert!(s.resolve().is_err());
    }
}
