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
    /// Prompts of more than `tokenize::LARGE_INPUT_BYTES` tokenized at
    /// once: half the cores, at least one, so the engine keeps the rest.
    pub fn max_concurrent_tokenizations() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }
    /// A request head (request line + headers) must arrive within this many
    /// seconds of the connection opening, or of its first byte on a reused
    /// connection. Clients send the head in one write; 10 s covers slow links.
    pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
    /// A request body must arrive completely within this many seconds of
    /// the handler starting to read it (4 MiB in 60 s is ~70 KB/s).
    pub const BODY_READ_TIMEOUT_SECS: u64 = 60;
    /// An idle keep-alive connection is closed after this many seconds:
    /// longer than the idle expiry of common client pools (httpx 5 s, Node
    /// 5 s), so the client, not the server, usually closes first.
    pub const IDLE_TIMEOUT_SECS: u64 = 60;
    /// A response write that makes no progress for this many seconds (the
    /// client stopped reading) closes the connection.
    pub const SEND_TIMEOUT_SECS: u64 = 60;
    /// Open connections at once: half of the common 1,024 file-descriptor
    /// soft limit, leaving the rest for model files, logs and the 503s sent
    /// at the cap. Eight times `MAX_CONCURRENT_REQUESTS`, so idle keep-alive
    /// pools of many clients fit.
    pub const MAX_CONNECTIONS: usize = 512;
    pub const METRICS_REQUIRE_KEY: bool = false;
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
    pub defaults:
        Option<std::collections::BTreeMap<String, crate::server::selection::ModelDefaults>>,
}

/// Largest accepted `max_connections` (the listener counts connections in
/// a semaphore whose permits are taken as one `u32`).
const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

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
            dtype: self.dtype,
            quantize: self.quantize,
            amx: self.amx.unwrap_or_default(),
            kv_cache_dtype: self.kv_cache_dtype.unwrap_or_default(),
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
    /// `/metrics` is behind the API key too.
    pub metrics_require_key: bool,
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
    /// Large prompts tokenized at once (see `server::tokenize`).
    pub max_concurrent_tokenizations: usize,
    /// HF's behaviour for special-token text in user / tool contents
    /// (per model: `defaults.ID.allow_special_tokens_in_content`).
    pub allow_special_tokens_in_content: bool,
    /// Connection limits, enforced by [`super::listener`].
    pub header_read_timeout: Duration,
    /// Enforced where the body is read ([`super::extract`]): 408 after it.
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
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

    fn keys(given: &[&str]) -> ServeSettings {
        ServeSettings {
            api_keys: Some(given.iter().map(|k| k.to_string()).collect()),
            ..Default::default()
        }
    }

    fn invalid_field(s: ServeSettings) -> &'static str {
        match s.resolve() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a ConfigError::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_and_blank_api_keys_refuse_to_start() {
        for given in [&[""][..], &["   "], &["sk-a", ""], &["\t"]] {
            assert_eq!(invalid_field(keys(given)), "api_key", "{given:?}");
        }
        let e = keys(&[""]).resolve().unwrap_err().to_string();
        assert!(e.contains("empty or blank"), "{e}");
        // Surrounding blanks cannot be sent in a header, so they are dropped.
        let cfg = keys(&[" sk-a ", "sk-b"]).resolve().unwrap();
        assert_eq!(cfg.api_keys, ["sk-a", "sk-b"]);
        assert!(keys(&[]).resolve().unwrap().api_keys.is_empty());
    }

    #[test]
    fn api_keys_that_no_header_can_carry_are_refused() {
        assert_eq!(invalid_field(keys(&["sk-\u{e9}"])), "api_key");
        assert_eq!(invalid_field(keys(&["sk\x01a"])), "api_key");
        assert_eq!(keys(&["sk a"]).resolve().unwrap().api_keys, ["sk a"]);
    }

    #[test]
    fn a_keys_file_without_keys_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.txt");
        let with_file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            ServeSettings {
                api_keys_file: Some(path.clone()),
                ..Default::default()
            }
        };
        for text in ["", "\n\n", "# only a comment\n  \n# another\n"] {
            assert_eq!(invalid_field(with_file(text)), "api_keys_file", "{text:?}");
        }
        let e = with_file("# none\n").resolve().unwrap_err().to_string();
        assert!(e.contains("holds no key") && e.contains("keys.txt"), "{e}");
        let cfg = with_file("# team\nsk-1\n\n  sk-2  \n").resolve().unwrap();
        assert_eq!(cfg.api_keys, ["sk-1", "sk-2"]);
        // A flag key does not excuse an empty file.
        let mut s = with_file("# none\n");
        s.api_keys = Some(vec!["sk-a".into()]);
        assert_eq!(invalid_field(s), "api_keys_file");
    }

    #[test]
    fn metrics_require_key_from_flag_env_and_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            s: ServeSettings,
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().s.metrics_require_key;
        assert_eq!(parse(&["t"]), None);
        assert_eq!(parse(&["t", "--metrics-require-key"]), Some(true));
        assert_eq!(parse(&["t", "--metrics-require-key", "false"]), Some(false));
        // Only this test reads this variable.
        std::env::set_var("QUORUM_METRICS_REQUIRE_KEY", "yes");
        let from_env = parse(&["t"]);
        std::env::remove_var("QUORUM_METRICS_REQUIRE_KEY");
        assert_eq!(from_env, Some(true));
        let file: ConfigFile =
            toml::from_str("[server]\nmetrics_require_key = true\napi_key = [\"k\"]\n").unwrap();
        assert!(file.server.resolve().unwrap().metrics_require_key);
        assert_eq!(
            keys(&["k"]).resolve().unwrap().metrics_require_key,
            defaults::METRICS_REQUIRE_KEY
        );
        // Requiring a key that does not exist would be auth failing open.
        let s = ServeSettings {
            metrics_require_key: Some(true),
            ..Default::default()
        };
        assert_eq!(invalid_field(s), "metrics_require_key");
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

    #[test]
    fn connection_limits_have_defaults_and_reject_zero() {
        let cfg = ServerConfig::default();
        assert_eq!(
            cfg.header_read_timeout,
            Duration::from_secs(defaults::HEADER_READ_TIMEOUT_SECS)
        );
        assert_eq!(
            cfg.body_read_timeout,
            Duration::from_secs(defaults::BODY_READ_TIMEOUT_SECS)
        );
        assert_eq!(
            cfg.idle_timeout,
            Duration::from_secs(defaults::IDLE_TIMEOUT_SECS)
        );
        assert_eq!(
            cfg.send_timeout,
            Duration::from_secs(defaults::SEND_TIMEOUT_SECS)
        );
        assert_eq!(cfg.max_connections, defaults::MAX_CONNECTIONS);
        let file: ConfigFile =
            toml::from_str("[server]\nidle_timeout_secs = 5\nmax_connections = 9\n").unwrap();
        let cfg = file.server.resolve().unwrap();
        assert_eq!((cfg.idle_timeout.as_secs(), cfg.max_connections), (5, 9));
        for s in [
            ServeSettings {
                header_read_timeout_secs: Some(0),
                ..Default::default()
            },
            ServeSettings {
                max_connections: Some(0),
                ..Default::default()
            },
            ServeSettings {
                max_connections: Some(usize::MAX),
                ..Default::default()
            },
        ] {
            assert!(s.resolve().is_err());
        }
    }
}
