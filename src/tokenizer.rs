//! HF tokenizer loading: `tokenizer.json` (the fast tokenizer) plus the bits of
//! `tokenizer_config.json` that serving needs (chat template, special tokens).
//!
//! Why a wrapper rather than `tokenizers::Tokenizer` directly: the fast
//! tokenizer knows nothing about the chat template or which token ends a turn;
//! those live in `tokenizer_config.json`, whose fields come in several shapes
//! across model families (a token may be a string or an `AddedToken` object, a
//! chat template may be a string or a list of named templates). This module
//! normalises them once, at load time, with errors that name the file and the
//! field so a broken model directory is diagnosed without a debugger.
//!
//! Encoding chat prompts: the rendered template already contains every special
//! token the model expects (including BOS where the template emits it), so use
//! [`Tokenizer::encode`] with `add_special_tokens = false`, exactly like HF's
//! `apply_chat_template(tokenize=True)`. Special tokens written as text (such as
//! `<|im_start|>`) are always matched to their ids by the added-token vocabulary.

mod bounded;
mod config;
mod incremental;
mod plain;
mod synthetic;
pub mod train;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use bounded::{CHUNK_BYTES, SLACK_PER_CHUNK};
pub use config::TokenizerConfig;
pub use incremental::IncrementalDecoder;
pub use synthetic::{synthetic_tokenizer_config_json, synthetic_tokenizer_json};

/// Errors from loading or running a tokenizer. Load errors carry the path of
/// the offending file, and field errors the field's name.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required file is absent from the model directory.
    #[error("{path}: file not found ({what})")]
    MissingFile { path: PathBuf, what: &'static str },
    /// A file exists but could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON, or not JSON the tokenizers library accepts.
    #[error("{path}: malformed: {message}")]
    Malformed { path: PathBuf, message: String },
    /// A field of a JSON file has an unexpected type or value.
    #[error("{path}: field `{field}`: {message}")]
    BadField {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// The tokenizers library failed to encode a text.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The tokenizers library failed to decode ids (for example an id outside
    /// the vocabulary).
    #[error("decode failed: {0}")]
    Decode(String),
}

/// A loaded tokenizer: the HF fast tokenizer plus its `tokenizer_config.json`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    config: TokenizerConfig,
    /// Built on first use: the added-token matcher and the tokenizer
    /// without added vocabulary (see [`Tokenizer::encode_with_plain_spans`]).
    plain: std::sync::OnceLock<std::sync::Arc<plain::PlainParts>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("config", &self.config)
            .finish()
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` (required) and `dir/tokenizer_config.json`
    /// (optional: absent means no chat template and no named special tokens).
    /// A chat template stored beside the config, in `chat_template.jinja` or
    /// `chat_template.json` (newer `transformers` exports), is picked up when
    /// the config has none.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let tok_path = dir.join("tokenizer.json");
        let text = read_required(&tok_path, "the HF fast tokenizer")?;
        let inner = parse_tokenizer_json(&text, &tok_path)?;
        let config = TokenizerConfig::load_dir(dir)?;
        Ok(Self::from_parts(inner, config))
    }

    /// Wraps an already-built fast tokenizer with a config.
    pub(crate) fn from_parts(inner: tokenizers::Tokenizer, config: TokenizerConfig) -> Self {
        Self {
            inner,
            config,
            plain: std::sync::OnceLock::new(),
        }
    }

    /// Builds the small byte-level tokenizer of [`synthetic_tokenizer_json`]
    /// with the config of [`synthetic_tokenizer_config_json`], for tests and
    /// tiny random-weight models.
    pub fn synthetic(with_chat_template: bool) -> Result<Self, TokenizerError> {
        let path = PathBuf::from("<synthetic>/tokenizer.json");
        let inner = parse_tokenizer_json(&synthetic_tokenizer_json()?, &path)?;
        let cfg_path = PathBuf::from("<synthetic>/tokenizer_config.json");
        let config = TokenizerConfig::from_json_str(
            &synthetic_tokenizer_config_json(with_chat_template),
            &cfg_path,
        )?;
        Ok(Self::from_parts(inner, config))
    }

    /// The underlying HF fast tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The parsed `tokenizer_config.json`.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// The chat template source, if the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.config.chat_template.as_deref()
    }

    /// Encodes `text`. `add_special_tokens` runs the tokenizer's post-processor
    /// (for example Llama's BOS) and, when the config sets `add_bos_token` but
    /// the post-processor did not add it, prepends BOS. Pass `false` for
    /// prompts rendered by a chat template (see the module docs).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        if add_special_tokens && self.config.add_bos_token == Some(true) {
            let bos = self.config.bos_token.as_deref();
            if let Some(bos_id) = bos.and_then(|t| self.inner.token_to_id(t)) {
                if ids.first() != Some(&bos_id) {
                    ids.insert(0, bos_id);
                }
            }
        }
        Ok(ids)
    }

    /// Decodes `ids` to text; `skip_special_tokens` drops tokens marked
    /// special in `tokenizer.json` (Qwen3's `<think>` is not special, so it
    /// survives).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// The id of a token string (vocabulary or added token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens. The model's embedding may be
    /// larger (padded); never index logits by this.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Ids of the config's `eos_token` (empty when it has none or the token is
    /// not in the vocabulary). The model's `config.json` /
    /// `generation_config.json` may list more stop ids; the caller merges them.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let eos = self.config.eos_token.as_deref();
        eos.and_then(|t| self.token_to_id(t)).into_iter().collect()
    }

    /// Id of the config's `bos_token`, if any.
    pub fn bos_token_id(&self) -> Option<u32> {
        let bos = self.config.bos_token.as_deref();
        bos.and_then(|t| self.token_to_id(t))
    }

    /// Id of the config's `pad_token`, if any.
    pub fn pad_token_id(&self) -> Option<u32> {
        let pad = self.config.pad_token.as_deref();
        pad.and_then(|t| self.token_to_id(t))
    }
}

/// Reads a file that must exist, distinguishing "missing" from "unreadable".
fn read_required(path: &Path, what: &'static str) -> Result<String, TokenizerError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TokenizerError::MissingFile {
            path: path.to_path_buf(),
            what,
        }),
        Err(source) => Err(TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses tokenizer.json text; `path` is only used in the error.
fn parse_tokenizer_json(text: &str, path: &Path) -> Result<tokenizers::Tokenizer, TokenizerError> {
    tokenizers::Tokenizer::from_str(text).map_err(|e| TokenizerError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn qwen3_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer")
    }

    #[test]
    fn qwen3_loads_with_config_fields() -> Result<(), TokenizerError> {
        let tok = Tokenizer::from_dir(qwen3_dir())?;
        assert_eq!(tok.config().eos_token.as_deref(), Some("<|im_end|>"));
        assert_eq!(tok.config().pad_token.as_deref(), Some("<|endoftext|>"));
        assert_eq!(tok.config().bos_token, None);
        assert_eq!(tok.config().add_bos_token, Some(false));
        assert_eq!(tok.config().model_max_length, Some(131072));
        assert!(tok
            .chat_template()
            .is_some_and(|t| t.contains("enable_thinking")));
        assert_eq!(tok.eos_token_ids(), vec![151645]);
        assert_eq!(tok.pad_token_id(), Some(151643));
        assert_eq!(tok.vocab_size(), 151669);
        Ok(())
    }

    #[test]
    fn special_tokens_in_text_map_to_ids_without_bos() -> Result<(), TokenizerError> {
        let tok = Tokenizer::from_dir(qwen3_dir())?;
        let ids = tok.encode("<|im_start|>user\nhi<|im_end|>", false)?;
        assert_eq!(ids.first(), Some(&151644));
        assert_eq!(ids.last(), Some(&151645));
        assert_eq!(tok.encode("<think>", true)?, vec![151667]);
        assert_eq!(tok.decode(&ids, false)?, "<|im_start|>user\nhi<|im_end|>");
        assert_eq!(tok.decode(&ids, true)?, "user\nhi");
        Ok(())
    }

    #[test]
    fn missing_tokenizer_json_names_the_file() {
        let dir = std::env::temp_dir().join("quorum-tok-missing-test");
        let _ = std::fs::create_dir_all(&dir);
        let err = Tokenizer::from_dir(&dir).err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(
            msg.contains("tokenizer.json") && msg.contains("not found"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_tokenizer_json_names_the_file() {
        let dir = std::env::temp_dir().join("quorum-tok-malformed-test");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("tokenizer.json"), "{not json");
        let msg = Tokenizer::from_dir(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("tokenizer.json: malformed"), "{msg}");
    }
}
