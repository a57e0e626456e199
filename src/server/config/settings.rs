//! [`ServeSettings`]: at the same time the clap argument group of `quorum
//! serve` (flags and `QUORUM_*` environment variables, which clap resolves
//! with CLI > env) and the serde shape of the `[server]` section of the TOML
//! file. Every field is an `Option` so that "not given" is visible:
//! [`ServeSettings::or`] layers the file under CLI/env, and
//! [`ServeSettings::resolve`] fills the remaining gaps with the defaults
//! (CLI > env > file > default) into a [`ServerConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{check_defaults, defaults, ModelDefaults, ModelSpec, ReasoningField, ServerConfig};
use crate::engine::serving::ServingArgs;
use crate::engine::think::ThinkConfig;

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
    /// How the models are loaded and prepared (dtype, device, quantize,
    /// AMX, KV cache dtype, f32 packing, huge pages): the same flags, env
    /// vars and keys as every other serving command.
    #[command(flatten)]
    #[serde(flatten)]
    pub serving: ServingArgs,
    /// Accepted API key (repeatable; env: comma-separated). With none, no
    /// auth; an empty or blank key is an error, not "no auth".
    #[arg(
        long = "api-key",
        env = "QUORUM_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(rename = "api_key")]
    pub api_keys: Option<Vec<String>>,
    /// File with one API key per line (`#` comments allowed); a file with
    /// no key is an error.
    #[arg(long, env = "QUORUM_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// `/metrics` needs an API key too (Prometheus can send a bearer
    /// token) [default: false].
    #[arg(
        long,
        env = "QUORUM_METRICS_REQUIRE_KEY",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub metrics_require_key: Option<bool>,
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
    /// Large prompts (over 64 KiB) tokenized at once; more wait their turn
    /// [default: half the cores, at least 1].
    #[arg(long, env = "QUORUM_MAX_CONCURRENT_TOKENIZATIONS")]
    pub max_concurrent_tokenizations: Option<usize>,
    /// Tokenize special-token text (`<|im_end|>`, `</think>`) in user and
    /// tool messages as control tokens, as HF and vLLM do [default: false:
    /// it is plain text; per model: `[server.defaults.ID]`
    /// `allow_special_tokens_in_content`].
    #[arg(
        long,
        env = "QUORUM_ALLOW_SPECIAL_TOKENS_IN_CONTENT",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_special_tokens_in_content: Option<bool>,
    /// Seconds a client has to send a request head (line + headers), from
    /// connecting or from the head's first byte; then the connection is
    /// closed [default: 10].
    #[arg(long, env = "QUORUM_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request body has to arrive completely; then 408 [default: 60].
    #[arg(long, env = "QUORUM_BODY_READ_TIMEOUT_SECS")]
    pub body_read_timeout_secs: Option<u64>,
    /// Seconds an idle keep-alive connection stays open [default: 60].
    #[arg(long, env = "QUORUM_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a response write may stall (client not reading) before the
    /// connection is closed [default: 60].
    #[arg(long, env = "QUORUM_SEND_TIMEOUT_SECS")]
    pub send_timeout_secs: Option<u64>,
    /// Open connections at once. At the cap the oldest idle connection is
    /// closed to make room; when none is idle, new ones get 503 [default: 512].
    #[arg(long, env = "QUORUM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
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
    pub defaults: Option<BTreeMap<String, ModelDefaults>>,
}

/// Largest accepted `max_connections` (the listener counts connections in
/// a semaphore whose permits are taken as one `u32`).
const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

/// The TOML file: settings live under `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub(super) server: ServeSettings,
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
            serving: self.serving.or(lower.serving),
            api_keys: self.api_keys.or(lower.api_keys),
            api_keys_file: self.api_keys_file.or(lower.api_keys_file),
            metrics_require_key: self.metrics_require_key.or(lower.metrics_require_key),
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
            max_concurrent_tokenizations: self
                .max_concurrent_tokenizations
                .or(lower.max_concurrent_tokenizations),
            allow_special_tokens_in_content: self
                .allow_special_tokens_in_content
                .or(lower.allow_special_tokens_in_content),
            header_read_timeout_secs: self
                .header_read_timeout_secs
                .or(lower.header_read_timeout_secs),
            body_read_timeout_secs: self.body_read_timeout_secs.or(lower.body_read_timeout_secs),
            idle_timeout_secs: self.idle_timeout_secs.or(lower.idle_timeout_secs),
            send_timeout_secs: self.send_timeout_secs.or(lower.send_timeout_secs),
            max_connections: self.max_connections.or(lower.max_connections),
            reasoning_field: self.reasoning_field.or(lower.reasoning_field),
            think: self.think.or(lower.think),
            reward_model: self.reward_model.or(lower.reward_model),
            defaults: self.defaults.or(lower.defaults),
        }
    }

    /// Fills defaults, reads the key file and checks the limits.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let api_keys = api_keys(self.api_keys.as_deref(), self.api_keys_file.as_deref())?;
        let metrics_require_key = self
            .metrics_require_key
            .unwrap_or(defaults::METRICS_REQUIRE_KEY);
        if metrics_require_key && api_keys.is_empty() {
            return Err(ConfigError::Invalid {
                field: "metrics_require_key",
                message: "needs at least one API key (--api-key or --api-keys-file)".into(),
            });
        }
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
        let seconds = |field: &'static str, v: Option<u64>, default: u64| match v.unwrap_or(default)
        {
            0 => Err(ConfigError::Invalid {
                field,
                message: "must be at least 1".into(),
            }),
            s => Ok(Duration::from_secs(s)),
        };
        let cfg = ServerConfig {
            models: self.models.unwrap_or_default(),
            host: self.host.unwrap_or_else(|| defaults::HOST.into()),
            port: self.port.unwrap_or(defaults::PORT),
            serving: self.serving,
            api_keys,
            metrics_require_key,
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
            max_concurrent_tokenizations: positive(
                "max_concurrent_tokenizations",
                self.max_concurrent_tokenizations
                    .unwrap_or_else(defaults::max_concurrent_tokenizations),
            )?,
            allow_special_tokens_in_content: self.allow_special_tokens_in_content.unwrap_or(false),
            header_read_timeout: seconds(
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                defaults::HEADER_READ_TIMEOUT_SECS,
            )?,
            body_read_timeout: seconds(
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                defaults::BODY_READ_TIMEOUT_SECS,
            )?,
            idle_timeout: seconds(
                "idle_timeout_secs",
                self.idle_timeout_secs,
                defaults::IDLE_TIMEOUT_SECS,
            )?,
            send_timeout: seconds(
                "send_timeout_secs",
                self.send_timeout_secs,
                defaults::SEND_TIMEOUT_SECS,
            )?,
            max_connections: match self.max_connections.unwrap_or(defaults::MAX_CONNECTIONS) {
                n @ 1..=MAX_CONNECTIONS_LIMIT => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        field: "max_connections",
                        message: format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}"),
                    })
                }
            },
            reasoning_field: self.reasoning_field.unwrap_or_default(),
            think: self.think.unwrap_or_default(),
            reward_model: self.reward_model,
            defaults: self.defaults.unwrap_or_default(),
        };
        check_defaults(&cfg.defaults).map_err(|message| ConfigError::Invalid {
            field: "defaults",
            message,
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

/// The accepted keys: `--api-key` values and the lines of the keys file
/// (blank lines and `#` comments skipped). Auth must never fail open, so an
/// explicitly given empty or blank key, a key that cannot be sent in an
/// `Authorization` header, and a keys file without any key are errors.
fn api_keys(given: Option<&[String]>, file: Option<&Path>) -> Result<Vec<String>, ConfigError> {
    let invalid = |field, message: String| ConfigError::Invalid { field, message };
    let mut keys = Vec::new();
    for (i, k) in given.unwrap_or_default().iter().enumerate() {
        let k = k.trim();
        if k.is_empty() {
            return Err(invalid(
                "api_key",
                format!("key {} is empty or blank; give a real key or no --api-key at all (an empty key would switch auth off)", i + 1),
            ));
        }
        keys.push(k.to_owned());
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let before = keys.len();
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        if keys.len() == before {
            return Err(invalid(
                "api_keys_file",
                format!(
                    "{} holds no key (only blank lines and # comments); add one key per line or drop --api-keys-file",
                    path.display()
                ),
            ));
        }
    }
    // Header values are visible ASCII (and inner spaces); anything else
    // could never be sent, so such a key would lock every client out.
    if let Some(i) = keys
        .iter()
        .position(|k| !k.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
    {
        return Err(invalid(
            "api_key",
            format!(
                "key {} has characters an Authorization header cannot carry (only printable ASCII is allowed)",
                i + 1
            ),
        ));
    }
    Ok(keys)
}
