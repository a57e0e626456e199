//! Server settings, defined once: [`settings`] (flags, env vars and the
//! TOML file, layered and resolved) produces the [`ServerConfig`] every
//! other part of the server reads, with its per-model lookups (think mode,
//! selection defaults, reward model, special-token policy). A leaf of the
//! server: it imports only the wire types below it.

mod settings;

use std::collections::BTreeMap;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use serde_json::Value;

use super::openai::SelectionOptions;
use crate::engine::serving::ServingArgs;
use crate::engine::think::ThinkConfig;

pub use settings::{ConfigError, ServeSettings};

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

/// Resolved settings, every value present.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Empty: serve the bundled default model.
    pub models: Vec<ModelSpec>,
    pub host: String,
    pub port: u16,
    /// How the models are loaded and prepared for serving.
    pub serving: ServingArgs,
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
    /// Think mode per model id (see [`ServerConfig::think_config`]).
    pub think: BTreeMap<String, ThinkConfig>,
    /// Reward model for every model without its own (`defaults.ID.reward_model`).
    pub reward_model: Option<PathBuf>,
    /// Per-model selection defaults by model id (`"*"`: any model).
    pub defaults: BTreeMap<String, ModelDefaults>,
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

/// Where the reasoning goes in a chat message or delta (`--reasoning-field`).
/// `reasoning_content` is DeepSeek's and vLLM's name, `reasoning` OpenRouter's
/// and newer vLLM's; `both` serves clients of either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ReasoningField {
    #[default]
    ReasoningContent,
    Reasoning,
    Both,
}

impl ReasoningField {
    /// `(reasoning_content, reasoning)` for a message or delta.
    pub fn place(self, text: Option<String>) -> (Option<String>, Option<String>) {
        match self {
            Self::ReasoningContent => (text, None),
            Self::Reasoning => (None, text),
            Self::Both => (text.clone(), text),
        }
    }
}

/// Per-model serving defaults, `[server.defaults.ID]` in the TOML file
/// (`"*"` applies to every model without its own entry).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDefaults {
    /// Rollouts drawn when a request does not say (at least `n`).
    pub rollouts: Option<usize>,
    /// `selection` used when a request does not give one.
    pub selection: Option<Value>,
    /// Reward model of this model (overrides `--reward-model`).
    pub reward_model: Option<PathBuf>,
    /// Special-token text in user / tool contents acts as control tokens
    /// (overrides `--allow-special-tokens-in-content`).
    pub allow_special_tokens_in_content: Option<bool>,
}

/// Checks every configured default `selection` at start-up.
fn check_defaults(defaults: &BTreeMap<String, ModelDefaults>) -> Result<(), String> {
    for (id, d) in defaults {
        if let Some(v) = &d.selection {
            let o = SelectionOptions::parse(v).map_err(|e| format!("defaults.{id}: {e}"))?;
            if let (Some(w), Some(r)) = (o.warmup, d.rollouts) {
                if w >= r {
                    return Err(format!(
                        "defaults.{id}: selection.warmup ({w}) must be below rollouts ({r})"
                    ));
                }
            }
        }
        if d.rollouts == Some(0) {
            return Err(format!("defaults.{id}.rollouts must be at least 1"));
        }
    }
    Ok(())
}

impl ServerConfig {
    /// The defaults that apply to `model` (its own entry, else `"*"`).
    pub fn model_defaults(&self, model: &str) -> Option<&ModelDefaults> {
        self.defaults.get(model).or_else(|| self.defaults.get("*"))
    }

    /// Rollouts drawn when the request gives neither `rollouts` nor `best_of`.
    pub fn default_rollouts(&self, model: &str) -> usize {
        self.model_defaults(model)
            .and_then(|d| d.rollouts)
            .unwrap_or(1)
    }

    /// `selection` used when the request gives none.
    pub fn default_selection(&self, model: &str) -> Option<Value> {
        self.model_defaults(model).and_then(|d| d.selection.clone())
    }

    /// How special-token text in `model`'s message contents is tokenized.
    pub fn special_token_policy(&self, model: &str) -> crate::chat::SpecialTokenPolicy {
        crate::chat::SpecialTokenPolicy {
            allow_in_content: self
                .model_defaults(model)
                .and_then(|d| d.allow_special_tokens_in_content)
                .unwrap_or(self.allow_special_tokens_in_content),
        }
    }

    /// The reward model directory of `model`, if any.
    pub fn reward_model_dir(&self, model: &str) -> Option<PathBuf> {
        self.model_defaults(model)
            .and_then(|d| d.reward_model.clone())
            .or_else(|| self.reward_model.clone())
    }

    /// The think configuration of a served model: its own
    /// `[server.think.<id>]` entry, else the `"*"` entry, else the defaults.
    pub fn think_config(&self, model_id: &str) -> ThinkConfig {
        self.think
            .get(model_id)
            .or_else(|| self.think.get("*"))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::settings::*;
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

    #[test]
    fn a_default_selection_warmup_must_leave_rollouts_to_stop() {
        let mut defaults = BTreeMap::new();
        defaults.insert(
            "*".to_string(),
            ModelDefaults {
                rollouts: Some(3),
                selection: Some(
                    serde_json::json!({"strategy": "confidence", "early_stop": true, "warmup": 4}),
                ),
                ..ModelDefaults::default()
            },
        );
        let e = check_defaults(&defaults).unwrap_err();
        assert!(
            e.contains("selection.warmup (4) must be below rollouts (3)"),
            "{e}"
        );
    }

    #[test]
    fn serving_keys_are_read_from_the_file_and_unknown_keys_still_refused() {
        let file: ConfigFile =
            toml::from_str("[server]\ndtype = \"bf16\"\npack_f32 = false\nport = 9\n").unwrap();
        assert_eq!(
            file.server.serving.dtype,
            Some(crate::model::WeightDType::Bf16)
        );
        assert_eq!(file.server.serving.pack_f32, Some(false));
        assert_eq!(file.server.port, Some(9));
        let e = toml::from_str::<ConfigFile>("[server]\nprot = 9\n").unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
    }
}
