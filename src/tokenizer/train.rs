//! Training a small byte-level BPE tokenizer for a from-scratch model (`quorum train
//! tokenizer`), with the chat tokens and the Qwen3 chat template, so the server's think
//! mode, budgets and reasoning split work on it unchanged.
//!
//! The pipeline, in the tokenizers crate's order:
//! - **Normalizer:** none, so every text round-trips byte for byte (Qwen applies NFC, which
//!   would rewrite decomposed accents).
//! - **Pre-tokenizer:** Qwen2/Qwen3's split regex, which isolates every digit (`\p{N}` one
//!   at a time): numbers are always one token per digit, which arithmetic models need and
//!   no merge can undo. Then byte-level: 256 byte symbols, so any UTF-8 text is encodable.
//! - **Model:** BPE merges learned by the tokenizers crate's own `BpeTrainer` on every string
//!   of the input JSONL (task records `{"prompt", "solution", ...}` or SFT
//!   `{"messages": [...]}`: all string values, at any depth).
//! - **Decoder / post-processor:** byte-level, as in Qwen3.
//!
//! Ids `0..=4` are the chat tokens of [`CHAT_TOKENS`]: `<|endoftext|>`, `<|im_start|>`,
//! `<|im_end|>` (special) and `<think>`, `</think>` (added but not special, as in Qwen3, so
//! reasoning survives `skip_special_tokens` decoding). Then the 256 bytes, then merges.
//! `tokenizer_config.json` carries Qwen3's chat template verbatim (`enable_thinking`, the
//! think block), eos `<|im_end|>`, pad `<|endoftext|>`, no bos, and the generic
//! `PreTrainedTokenizerFast` class, so HF's `AutoTokenizer` runs exactly this pipeline.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use serde_json::{json, Map, Value};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, Model, NormalizerWrapper, OffsetReferential, OffsetType, PreTokenizer,
    PreTokenizerWrapper, SplitDelimiterBehavior, Trainer,
};

use super::synthetic::SYNTHETIC_SPECIAL_TOKENS;
use super::{Tokenizer, TokenizerConfig, TokenizerError};

/// The chat tokens, at ids `0..=4` in this order, with whether each is special.
pub const CHAT_TOKENS: [(&str, bool); 5] = SYNTHETIC_SPECIAL_TOKENS;

/// Smallest vocabulary: the chat tokens plus the 256 byte tokens.
pub const MIN_VOCAB_SIZE: usize = CHAT_TOKENS.len() + 256;

/// Qwen2/Qwen3's pre-tokenizer split (from their `tokenizer.json`): contractions, letter
/// runs with one leading non-letter, single digits, punctuation runs, newlines, spaces.
pub const QWEN_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The Qwen3 chat template, shared with the synthetic tokenizer.
const QWEN3_CHAT_TEMPLATE: &str = include_str!("qwen3_chat_template.jinja");

/// Bytes of input between two [`TrainProgress::Reading`] events.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerTrainOptions {
    /// Vocabulary size including the chat and byte tokens (at least [`MIN_VOCAB_SIZE`]).
    /// Smaller data may support fewer merges; the result then has fewer tokens.
    pub vocab_size: usize,
    /// A pair must occur this often to be merged.
    pub min_frequency: u64,
    /// `model_max_length` written to `tokenizer_config.json`.
    pub model_max_length: u64,
    /// Show the tokenizers crate's own progress bars while merging.
    pub show_progress: bool,
}

impl TokenizerTrainOptions {
    /// Defaults: pairs seen at least twice, `model_max_length` 32768, no progress bars.
    pub fn new(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            min_frequency: 2,
            model_max_length: 32_768,
            show_progress: false,
        }
    }
}

/// Progress of [`train_tokenizer`] (called from the trainer's worker threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainProgress {
    /// Input read so far, over all files.
    Reading { bytes_done: u64, bytes_total: u64 },
    /// All input read; the merges are being computed.
    Merging,
}

/// What the input held and what came out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainStats {
    /// Non-empty JSONL lines read.
    pub records: u64,
    /// Strings fed to the trainer.
    pub texts: u64,
    /// Bytes of those strings.
    pub text_bytes: u64,
    /// Final vocabulary size (chat tokens + bytes + merges).
    pub vocab_size: usize,
    pub merges: usize,
}

/// Errors of tokenizer training; input errors name the file and line.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerTrainError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("no text to train on in {0}")]
    Empty(String),
    #[error(
        "vocab size {requested} is below the minimum {MIN_VOCAB_SIZE} (5 chat tokens + 256 bytes)"
    )]
    VocabTooSmall { requested: usize },
    #[error("tokenizer training failed: {0}")]
    Train(String),
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A trained tokenizer: the fast tokenizer, its `tokenizer_config.json`, and statistics.
#[derive(Debug, Clone)]
pub struct TrainedTokenizer {
    inner: tokenizers::Tokenizer,
    config: Value,
    pub stats: TrainStats,
}

impl TrainedTokenizer {
    /// The `tokenizer.json` text.
    pub fn tokenizer_json(&self) -> Result<String, TokenizerTrainError> {
        self.inner
            .to_string(true)
            .map_err(|e| TokenizerTrainError::Train(e.to_string()))
    }

    /// The trained tokenizer as Quorum loads it (fast tokenizer + config).
    pub fn tokenizer(&self) -> Result<Tokenizer, TokenizerTrainError> {
        let path = PathBuf::from("<trained>/tokenizer_config.json");
        let config = TokenizerConfig::from_json_str(&self.config.to_string(), &path)?;
        Ok(Tokenizer::from_parts(self.inner.clone(), config))
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created; it must be
    /// empty or absent unless `force`), each file via a temp file and a rename, then loads
    /// the directory back with [`Tokenizer::from_dir`]. Returns the files written.
    pub fn save(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, TokenizerTrainError> {
        let out_err = |path: &Path, message: String| TokenizerTrainError::Output {
            path: path.to_path_buf(),
            message,
        };
        if dir.exists() {
            if !dir.is_dir() {
                return Err(out_err(dir, "exists and is not a directory".into()));
            }
            let mut entries = std::fs::read_dir(dir).map_err(|e| out_err(dir, e.to_string()))?;
            if entries.next().is_some() && !force {
                return Err(out_err(
                    dir,
                    "directory exists and is not empty (use --force to overwrite)".into(),
                ));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| out_err(dir, e.to_string()))?;
        let mut config = serde_json::to_string_pretty(&self.config)
            .map_err(|e| TokenizerTrainError::Train(e.to_string()))?;
        config.push('\n');
        let files = [
            ("tokenizer.json", self.tokenizer_json()?),
            ("tokenizer_config.json", config),
        ];
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    out_err(&path, e.to_string())
                })?;
            written.push(path);
        }
        Tokenizer::from_dir(dir)?;
        Ok(written)
    }
}

/// Trains on every string of the JSONL `files` (see the module docs). Empty lines are
/// skipped; a line that is not JSON is an error naming the file and line; no text at all is
/// an error. `progress` may be called from worker threads.
pub fn train_tokenizer(
    files: &[PathBuf],
    opts: &TokenizerTrainOptions,
    progress: &(dyn Fn(TrainProgress) + Sync),
) -> Result<TrainedTokenizer, TokenizerTrainError> {
    let mut bytes_total = 0;
    for f in files {
        let meta = std::fs::metadata(f).map_err(|source| TokenizerTrainError::Io {
            path: f.clone(),
            source,
        })?;
        bytes_total += meta.len();
    }
    let error = Mutex::new(None);
    let texts = JsonlTexts {
        files,
        next_file: 0,
        current: None,
        pending: VecDeque::new(),
        error: &error,
        progress,
        bytes_done: 0,
        bytes_reported: 0,
        bytes_total,
        records: 0,
    };
    let names = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let result = train_inner(texts, opts, &names, &|| progress(TrainProgress::Merging));
    // A read error stops the input early; it explains a failure better than the trainer's.
    let first_error = error.lock().map(|mut e| e.take()).unwrap_or(None);
    if let Some(e) = first_error {
        return Err(e);
    }
    let (mut trained, records) = result?;
    trained.stats.records = records;
    Ok(trained)
}

/// Trains on in-memory texts (each one a training sequence), e.g. generated data.
pub fn train_tokenizer_from_texts<I, S>(
    texts: I,
    opts: &TokenizerTrainOptions,
) -> Result<TrainedTokenizer, TokenizerTrainError>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let counted = Counted { inner: texts };
    let (mut trained, _) = train_inner(counted, opts, "the given texts", &|| {})?;
    trained.stats.records = trained.stats.texts;
    Ok(trained)
}

/// A text source that can say how many records it read.
trait TextSource: Iterator + Send {
    fn records(&self) -> u64;
}

struct Counted<I> {
    inner: I,
}

impl<I: Iterator + Send> Iterator for Counted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        self.inner.next()
    }
}

impl<I: Iterator + Send> TextSource for Counted<I> {
    fn records(&self) -> u64 {
        0
    }
}

fn train_inner<T>(
    mut texts: T,
    opts: &TokenizerTrainOptions,
    source_name: &str,
    on_merging: &dyn Fn(),
) -> Result<(TrainedTokenizer, u64), TokenizerTrainError>
where
    T: TextSource,
    T::Item: AsRef<str> + Send,
{
    if opts.vocab_size < MIN_VOCAB_SIZE {
        return Err(TokenizerTrainError::VocabTooSmall {
            requested: opts.vocab_size,
        });
    }
    let train_err = |e: tokenizers::Error| TokenizerTrainError::Train(e.to_string());
    let chat_tokens: Vec<AddedToken> = CHAT_TOKENS
        .iter()
        .map(|&(content, special)| AddedToken::from(content, special).normalized(false))
        .collect();
    let pre_tokenizer = pre_tokenizer().map_err(train_err)?;
    // The chat tokens are cut out of the texts before pre-tokenization (as when encoding),
    // so no merge is spent on pieces of `<|im_start|>`.
    let mut extractor = tokenizers::Tokenizer::new(BPE::default());
    extractor
        .add_special_tokens(chat_tokens.clone())
        .map_err(train_err)?;
    let added = extractor.get_added_vocabulary();

    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(opts.vocab_size)
        .min_frequency(opts.min_frequency)
        .show_progress(opts.show_progress)
        .special_tokens(chat_tokens.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect::<HashSet<char>>())
        .build();
    let count = Mutex::new((0u64, 0u64));
    let words = (&mut texts).inspect(|t| {
        if let Ok(mut c) = count.lock() {
            c.0 += 1;
            c.1 += t.as_ref().len() as u64;
        }
    });
    trainer
        .feed(words, |seq| {
            let mut pieces = added.extract_and_normalize(None::<&NormalizerWrapper>, seq);
            pre_tokenizer.pre_tokenize(&mut pieces)?;
            Ok(pieces
                .get_splits(OffsetReferential::Original, OffsetType::Byte)
                .into_iter()
                .filter(|(_, _, tokens)| tokens.is_none())
                .map(|(s, _, _)| s.to_owned())
                .collect())
        })
        .map_err(train_err)?;
    let (n_texts, n_bytes) = count.lock().map(|c| *c).unwrap_or_default();
    if n_bytes == 0 {
        return Err(TokenizerTrainError::Empty(source_name.to_string()));
    }
    on_merging();
    let mut model = BPE::default();
    let specials = trainer.train(&mut model).map_err(train_err)?;
    let merges = model.get_vocab_size().saturating_sub(MIN_VOCAB_SIZE);

    let byte_level = ByteLevel::new(false, false, false);
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(pre_tokenizer))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level));
    tok.add_special_tokens(specials).map_err(train_err)?;
    // Parse our own output back: what is returned is exactly what a loader reads.
    let text = tok.to_string(false).map_err(train_err)?;
    let inner = tokenizers::Tokenizer::from_str(&text).map_err(train_err)?;
    for (i, (content, _)) in CHAT_TOKENS.iter().enumerate() {
        if inner.token_to_id(content) != Some(i as u32) {
            return Err(TokenizerTrainError::Train(format!(
                "chat token {content} did not get id {i}"
            )));
        }
    }
    let stats = TrainStats {
        records: 0,
        texts: n_texts,
        text_bytes: n_bytes,
        vocab_size: inner.get_vocab_size(true),
        merges,
    };
    let records = texts.records();
    Ok((
        TrainedTokenizer {
            inner,
            config: tokenizer_config(opts.model_max_length),
            stats,
        },
        records,
    ))
}

/// Qwen's split regex, then byte-level without its own regex.
fn pre_tokenizer() -> tokenizers::Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(QWEN_SPLIT_REGEX.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )?;
    let byte_level = ByteLevel::new(false, false, false);
    Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        split.into(),
        byte_level.into(),
    ])))
}

/// `tokenizer_config.json` in the shape of Qwen3's, for the chat tokens at ids `0..=4`.
fn tokenizer_config(model_max_length: u64) -> Value {
    let mut decoder = Map::new();
    for (i, (content, special)) in CHAT_TOKENS.iter().enumerate() {
        decoder.insert(
            i.to_string(),
            json!({
                "content": content, "lstrip": false, "normalized": false, "rstrip": false,
                "single_word": false, "special": special
            }),
        );
    }
    json!({
        "add_bos_token": false,
        "add_prefix_space": false,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": null,
        "chat_template": QWEN3_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": false,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": false,
        // Not `Qwen2Tokenizer`: transformers 5 rebuilds that class's pipeline (adding NFC),
        // while the generic fast tokenizer runs tokenizer.json exactly as Quorum does.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": null
    })
}

/// Every string value of a JSON value, depth first, in document order.
fn collect_strings(v: Value, out: &mut VecDeque<String>) {
    match v {
        Value::String(s) if !s.is_empty() => out.push_back(s),
        Value::Array(items) => items.into_iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.into_iter().for_each(|(_, i)| collect_strings(i, out)),
        _ => {}
    }
}

/// The strings of JSONL files, streamed line by line. The first error is parked in `error`
/// and ends the stream (the trainer's `feed` takes a plain iterator).
struct JsonlTexts<'a> {
    files: &'a [PathBuf],
    next_file: usize,
    /// The open file, its path index and the number of the last line read.
    current: Option<(BufReader<File>, usize, u64)>,
    pending: VecDeque<String>,
    error: &'a Mutex<Option<TokenizerTrainError>>,
    progress: &'a (dyn Fn(TrainProgress) + Sync),
    bytes_done: u64,
    bytes_reported: u64,
    bytes_total: u64,
    records: u64,
}

impl JsonlTexts<'_> {
    fn fail(&mut self, e: TokenizerTrainError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        self.current = None;
        self.next_file = self.files.len();
    }

    /// Reads lines until one yields strings; false at the end of the input or on error.
    fn refill(&mut self) -> bool {
        let mut line = String::new();
        while self.pending.is_empty() {
            let Some((reader, file, line_no)) = self.current.as_mut() else {
                let Some(path) = self.files.get(self.next_file) else {
                    return false;
                };
                match File::open(path) {
                    Ok(f) => self.current = Some((BufReader::new(f), self.next_file, 0)),
                    Err(source) => {
                        let path = path.clone();
                        self.fail(TokenizerTrainError::Io { path, source });
                        return false;
                    }
                }
                self.next_file += 1;
                continue;
            };
            line.clear();
            let path = &self.files[*file];
            match reader.read_line(&mut line) {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(n) => {
                    *line_no += 1;
                    self.bytes_done += n as u64;
                }
                Err(source) => {
                    let e = if source.kind() == std::io::ErrorKind::InvalidData {
                        TokenizerTrainError::Malformed {
                            path: path.clone(),
                            line: *line_no + 1,
                            message: "not valid UTF-8".into(),
                        }
                    } else {
                        TokenizerTrainError::Io {
                            path: path.clone(),
                            source,
                        }
                    };
                    self.fail(e);
                    return false;
                }
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(v) => {
                    self.records += 1;
                    collect_strings(v, &mut self.pending);
                }
                Err(e) => {
                    let e = TokenizerTrainError::Malformed {
                        path: path.clone(),
                        line: *line_no,
                        message: format!("not JSON: {e}"),
                    };
                    self.fail(e);
                    return false;
                }
            }
            if self.bytes_done - self.bytes_reported >= PROGRESS_EVERY {
                self.bytes_reported = self.bytes_done;
                (self.progress)(TrainProgress::Reading {
                    bytes_done: self.bytes_done,
                    bytes_total: self.bytes_total,
                });
            }
        }
        true
    }
}

impl Iterator for JsonlTexts<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.pending.is_empty() && !self.refill() {
            (self.progress)(TrainProgress::Reading {
                bytes_done: self.bytes_done,
                bytes_total: self.bytes_total,
            });
            return None;
        }
        self.pending.pop_front()
    }
}

impl TextSource for JsonlTexts<'_> {
    fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatMessage, ChatTemplate};
    use crate::engine::think::{
        resolve, split_all, tokenizer_supports_think, ThinkConfig, ThinkRequest, ThinkTokens,
    };
    use proptest::prelude::*;

    /// Arithmetic conversations and made-up prose (words of random syllables): enough
    /// distinct frequent pairs for a few hundred merges.
    fn corpus() -> Vec<String> {
        let syllables = [
            "ka", "to", "mi", "re", "su", "lo", "na", "vi", "pe", "du", "sha", "gor", "tel",
        ];
        let mut out = Vec::new();
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        for i in 0..1500u64 {
            let (a, b) = (next() % 99_999, next() % 9_999);
            let mut sentence = Vec::new();
            for _ in 0..6 {
                let n = 1 + next() % 3;
                let word: String = (0..n)
                    .map(|_| syllables[(next() % syllables.len() as u64) as usize])
                    .collect();
                sentence.push(word);
            }
            out.push(format!("What is {a} * {b}? {}.", sentence.join(" ")));
            out.push(format!(
                "<think>\n{a}*{}={} carry the digit\n</think>\n\nThe answer is \\boxed{{{}}}.",
                b % 10,
                a * (b % 10),
                a * b
            ));
            if i % 3 == 0 {
                out.push(format!("<|im_start|>user\n{}<|im_end|>", sentence[0]));
            }
        }
        out
    }

    fn trained(vocab: usize) -> TrainedTokenizer {
        train_tokenizer_from_texts(corpus().into_iter(), &TokenizerTrainOptions::new(vocab))
            .unwrap()
    }

    fn small() -> &'static Tokenizer {
        static TOK: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
        TOK.get_or_init(|| trained(400).tokenizer().unwrap())
    }

    fn qwen3() -> Tokenizer {
        Tokenizer::from_dir(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer"),
        )
        .unwrap()
    }

    #[test]
    fn reaches_the_requested_vocabulary_with_chat_tokens_first() {
        let t = trained(400);
        assert_eq!(t.stats.vocab_size, 400);
        assert_eq!(t.stats.merges, 400 - MIN_VOCAB_SIZE);
        assert_eq!(t.stats.texts, corpus().len() as u64);
        let tok = t.tokenizer().unwrap();
        assert_eq!(tok.vocab_size(), 400);
        for (i, (content, _)) in CHAT_TOKENS.iter().enumerate() {
            assert_eq!(tok.token_to_id(content), Some(i as u32), "{content}");
        }
        // No merge spent on pieces of the chat tokens.
        let vocab = tok.inner().get_vocab(false);
        let pieces: Vec<&String> = vocab
            .iter()
            .filter(|(k, &id)| id >= 5 && (k.contains("im_") || k.contains("think")))
            .map(|(k, _)| k)
            .collect();
        assert!(pieces.is_empty(), "{pieces:?}");
        // Fixed corpus, fixed result: the vocabulary is deterministic.
        assert_eq!(
            trained(400).tokenizer_json().unwrap(),
            t.tokenizer_json().unwrap()
        );
        assert_eq!(tok.eos_token_ids(), vec![2]);
        assert_eq!(tok.pad_token_id(), Some(0));
        assert_eq!(tok.bos_token_id(), None);
    }

    #[test]
    fn digits_are_single_tokens() {
        let tok = small();
        let digit_ids: Vec<u32> = (0..10)
            .map(|d| tok.token_to_id(&d.to_string()).unwrap())
            .collect();
        assert_eq!(tok.encode("9876543210", false).unwrap(), {
            let mut v: Vec<u32> = digit_ids.clone();
            v.reverse();
            v
        });
        // Digits never merge with their neighbours, in any context seen in training.
        for text in ["x=12*34", " 56789", "\\boxed{100}", "a1b2"] {
            let ids = tok.encode(text, false).unwrap();
            let digits_in_text = text.chars().filter(char::is_ascii_digit).count();
            let digit_tokens = ids.iter().filter(|id| digit_ids.contains(id)).count();
            assert_eq!(digit_tokens, digits_in_text, "{text}: {ids:?}");
        }
        let vocab = tok.inner().get_vocab(false);
        let mixed: Vec<&String> = vocab
            .keys()
            .filter(|k| k.len() > 1 && k.chars().any(|c| c.is_ascii_digit()))
            .collect();
        assert!(mixed.is_empty(), "{mixed:?}");
    }

    #[test]
    fn chat_tokens_are_single_ids_and_think_tags_are_not_special() {
        let tok = small();
        for (i, (content, _)) in CHAT_TOKENS.iter().enumerate() {
            assert_eq!(tok.encode(content, false).unwrap(), vec![i as u32]);
            assert_eq!(tok.encode(content, true).unwrap(), vec![i as u32]);
        }
        let ids = tok
            .encode(
                "<|im_start|>assistant\n<think>\nhm\n</think>\n\n7<|im_end|>",
                false,
            )
            .unwrap();
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            "assistant\n<think>\nhm\n</think>\n\n7"
        );
    }

    #[test]
    fn unicode_and_odd_text_round_trip() {
        let tok = small();
        for text in [
            "héllo wörld 🦀 — 你好，世界",
            "e\u{301} (decomposed, not NFC-normalised) \u{FEFF}\u{200B}",
            "tabs\tand\r\nwindows\nnewlines\n\n\n  spaces  ",
            "\u{0}\u{1}\u{7f} control bytes",
            "<think></think><|endoftext|>  <|im_end|>x",
            "١٢٣ ٤٥ arabic-indic digits, ½ ² ⅷ",
        ] {
            let ids = tok.encode(text, false).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_string_round_trips(text in any::<String>()) {
            let tok = small();
            let ids = tok.encode(&text, false).unwrap();
            prop_assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
    }

    fn conversations() -> Vec<Vec<ChatMessage>> {
        vec![
            vec![ChatMessage::user("What is 12*34?")],
            vec![
                ChatMessage::system("You are terse. /no_think"),
                ChatMessage::user("What is 2+3?"),
            ],
            vec![
                ChatMessage::system("/think"),
                ChatMessage::user("What is 2+3?"),
                ChatMessage::assistant("<think>\n2+3=5\n</think>\n\nThe answer is \\boxed{5}."),
                ChatMessage::user("And 40+2?"),
            ],
            vec![
                ChatMessage::user("Add 7 and 8."),
                ChatMessage::assistant("15").with_reasoning("7+8=15"),
            ],
            vec![
                ChatMessage::user("q"),
                ChatMessage::assistant("\n\n<think>a</think>\n\nb"),
            ],
        ]
    }

    #[test]
    fn chat_rendering_matches_the_qwen3_template() {
        let ours = ChatTemplate::from_tokenizer(small()).unwrap();
        let theirs = ChatTemplate::from_tokenizer(&qwen3()).unwrap();
        let mut checked = 0;
        for msgs in conversations() {
            for think in [None, Some(true), Some(false)] {
                let mut kw = serde_json::Map::new();
                if let Some(t) = think {
                    kw.insert("enable_thinking".into(), t.into());
                }
                for gen_prompt in [true, false] {
                    let a = ours.render(&msgs, gen_prompt, &kw).unwrap();
                    let b = theirs.render(&msgs, gen_prompt, &kw).unwrap();
                    assert_eq!(a, b, "{msgs:?} think={think:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 30);
        // The think block as Qwen3 renders it.
        let msgs = &conversations()[0];
        let mut off = serde_json::Map::new();
        off.insert("enable_thinking".into(), false.into());
        assert!(ours
            .render(msgs, true, &off)
            .unwrap()
            .ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
        assert!(ours
            .render(msgs, true, &serde_json::Map::new())
            .unwrap()
            .ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn server_think_mode_works_on_it() {
        let tok = small();
        assert!(tokenizer_supports_think(tok, "<think>", "</think>"));
        let cfg = ThinkConfig::default();
        let tokens =
            ThinkTokens::encode(tok, &cfg.end_tag, &cfg.budget_message, &cfg.continuation).unwrap();
        assert_eq!(tokens.end, vec![4]);
        assert_eq!(tokens.budget_forced.iter().filter(|&&t| t == 4).count(), 1);
        // Soft switches resolve as on Qwen3, and the template follows the plan.
        let template = ChatTemplate::from_tokenizer(tok).unwrap();
        for (system, want) in [("/no_think", false), ("/think", true), ("be brief", true)] {
            let msgs = vec![ChatMessage::system(system), ChatMessage::user("1+1?")];
            let req = ThinkRequest {
                messages: &msgs,
                ..ThinkRequest::default()
            };
            let plan = resolve(&req, &cfg, true).unwrap();
            assert_eq!(plan.enabled, want, "{system}");
            let mut kw = serde_json::Map::new();
            kw.insert("enable_thinking".into(), plan.enabled.into());
            let prompt = template.render(&msgs, true, &kw).unwrap();
            assert_eq!(
                prompt.ends_with("<think>\n\n</think>\n\n"),
                !want,
                "{prompt}"
            );
        }
        // A generated reply splits into reasoning and answer.
        // A generated reply (the prompt opened the think block) splits into reasoning and
        // answer.
        let ids = tok.encode("1+1=2\n</think>\n\n2", false).unwrap();
        let text = tok.decode(&ids, true).unwrap();
        let (reasoning, answer) = split_all(&text, "<think>", "</think>", true);
        assert_eq!((reasoning.trim(), answer.trim()), ("1+1=2", "2"));
    }

    #[test]
    fn saves_a_directory_that_loads_with_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tok");
        let files = trained(300).save(&out, false).unwrap();
        assert_eq!(files.len(), 2);
        let tok = Tokenizer::from_dir(&out).unwrap();
        assert_eq!(tok.config().eos_token.as_deref(), Some("<|im_end|>"));
        assert_eq!(tok.config().pad_token.as_deref(), Some("<|endoftext|>"));
        assert_eq!(tok.config().model_max_length, Some(32_768));
        let qwen = qwen3();
        assert_eq!(tok.chat_template(), qwen.chat_template());
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            2,
            "no temp files left"
        );
        // A non-empty directory is refused unless forced.
        let err = trained(300).save(&out, false).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        trained(300).save(&out, true).unwrap();
    }

    #[test]
    fn trains_on_the_strings_of_jsonl_records() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("tasks.jsonl");
        let b = dir.path().join("sft.jsonl");
        let mut tasks = String::new();
        let mut sft = String::new();
        for i in 0..400 {
            tasks.push_str(&format!(
                "{{\"prompt\":\"What is {i} plus {i}?\",\"answer\":\"{}\",\"solution\":\"We add: \\\\boxed{{{}}}\"}}\n",
                2 * i,
                2 * i
            ));
            sft.push_str(&format!(
                "{{\"messages\":[{{\"role\":\"user\",\"content\":\"Double {i}\"}},{{\"role\":\"assistant\",\"content\":\"<think>\\n{i}+{i}\\n</think>\\n\\nDoubled: {}\"}}]}}\n\n",
                2 * i
            ));
        }
        std::fs::write(&a, tasks).unwrap();
        std::fs::write(&b, sft).unwrap();
        let events = Mutex::new(Vec::new());
        let t = train_tokenizer(&[a, b], &TokenizerTrainOptions::new(300), &|p| {
            events.lock().unwrap().push(p)
        })
        .unwrap();
        assert_eq!(t.stats.records, 800);
        // 3 strings per task record, 4 per conversation (roles and contents).
        assert_eq!(t.stats.texts, 400 * 3 + 400 * 4);
        // Digits never merge, so this data runs out of pairs just below 300.
        assert!(
            t.stats.vocab_size <= 300 && t.stats.merges > 20,
            "{:?}",
            t.stats
        );
        let events = events.into_inner().unwrap();
        assert_eq!(events.last(), Some(&TrainProgress::Merging));
        assert!(events.iter().any(|e| matches!(e,
            TrainProgress::Reading { bytes_done, bytes_total } if bytes_done == bytes_total)));
    }

    #[test]
    fn input_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, "{\"prompt\":\"ok\"}\n\n{\"prompt\": nope}\n").unwrap();
        let opts = TokenizerTrainOptions::new(300);
        let err = train_tokenizer(std::slice::from_ref(&bad), &opts, &|_| {}).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.jsonl:3: not JSON"), "{msg}");

        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n{\"n\": 1}\n").unwrap();
        let msg = train_tokenizer(&[empty], &opts, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no text to train on in"), "{msg}");

        let missing = dir.path().join("missing.jsonl");
        let msg = train_tokenizer(&[missing], &opts, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing.jsonl: cannot read"), "{msg}");

        let msg = train_tokenizer_from_texts(["x"].into_iter(), &TokenizerTrainOptions::new(100))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("below the minimum 261"), "{msg}");
    }
}
