//! The tokenizer half of a GGUF export: a Hugging Face byte-level BPE
//! (`tokenizer.json` + `tokenizer_config.json`) as llama.cpp's `gpt2`
//! vocabulary (`tokenizer.ggml.*` keys), chosen the way llama.cpp's own
//! `convert_hf_to_gguf.py` chooses them: tokens in id order (holes become
//! `[PAD{id}]`, unused), special added tokens as control tokens and the other
//! added tokens as user-defined ones, merges as `"a b"` strings, bos/eos/pad
//! ids from `tokenizer_config.json` and then `config.json`, and the chat
//! template.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::ModelError;

/// llama.cpp's token types (`llama_token_type` / gguf-py `TokenType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum TokenType {
    Normal = 1,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
}

/// The pre-tokenizer split regex of Qwen2/Qwen3 (one digit per token):
/// llama.cpp's `tokenizer.ggml.pre = "qwen2"`.
pub const QWEN2_PRE_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama-3's (digits in runs of up to three): llama.cpp's `"llama-bpe"`.
pub const LLAMA3_PRE_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A `gpt2`-type GGUF vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.pre`: which pre-tokenizer regex llama.cpp applies.
    pub pre: &'static str,
    /// Token strings in id order (byte-level BPE alphabet, as in `tokenizer.json`).
    pub tokens: Vec<String>,
    pub token_types: Vec<TokenType>,
    /// `"left right"` in rank order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub chat_template: Option<String>,
}

fn malformed(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Malformed {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| malformed(path, e.to_string()))
}

/// Which llama.cpp pre-tokenizer the `Split` regex of `pre_tokenizer` is.
fn pre_tokenizer_name(tok: &Value, path: &Path) -> Result<&'static str, ModelError> {
    let pre = &tok["pre_tokenizer"];
    let parts: Vec<&Value> = match pre["type"].as_str() {
        Some("Sequence") => pre["pretokenizers"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(_) => vec![pre],
        None => vec![],
    };
    let byte_level = parts.iter().any(|p| p["type"] == "ByteLevel");
    if !byte_level || tok["decoder"]["type"] != "ByteLevel" {
        return Err(malformed(
            path,
            "GGUF export needs a byte-level BPE (a ByteLevel pre-tokenizer and decoder, as Qwen and Llama-3 have)",
        ));
    }
    let regex = parts
        .iter()
        .find(|p| p["type"] == "Split")
        .and_then(|p| p["pattern"]["Regex"].as_str());
    match regex {
        Some(QWEN2_PRE_REGEX) => Ok("qwen2"),
        Some(LLAMA3_PRE_REGEX) => Ok("llama-bpe"),
        Some(other) => Err(malformed(
            path,
            format!(
                "pre_tokenizer: split regex {other:?} is not one llama.cpp knows by name \
                 (GGUF export supports Qwen2/Qwen3's and Llama-3's)"
            ),
        )),
        None => Err(malformed(
            path,
            "pre_tokenizer: no Split regex (GGUF export supports Qwen2/Qwen3's and Llama-3's)",
        )),
    }
}

/// Id of a special token named in `tokenizer_config.json` (a string or
/// `{"content": ...}`), looked up among the added tokens.
fn config_token_id(cfg: &Value, key: &str, added: &BTreeMap<u32, AddedToken>) -> Option<u32> {
    let v = &cfg[key];
    let content = v.as_str().or_else(|| v["content"].as_str())?;
    added
        .iter()
        .find(|(_, t)| t.content == content)
        .map(|(id, _)| *id)
}

#[derive(Debug)]
struct AddedToken {
    content: String,
    special: bool,
}

/// Read the vocabulary of the model directory `dir` for a model with
/// `vocab_size` embedding rows (`config.json`), whose `config.json` may name
/// `bos_token_id` / `eos_token_id` / `pad_token_id` (`config_ids`, used where
/// `tokenizer_config.json` names none).
pub fn read_vocab(
    dir: &Path,
    vocab_size: usize,
    config_ids: [Option<u32>; 3],
) -> Result<GgufVocab, ModelError> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(ModelError::MissingFile {
            dir: dir.to_path_buf(),
            file: "tokenizer.json".into(),
        });
    }
    let tok = read_json(&tok_path)?;
    let model = &tok["model"];
    if model["type"] != "BPE" {
        return Err(malformed(
            &tok_path,
            format!(
                "model.type is {}; GGUF export supports byte-level BPE tokenizers only",
                model["type"]
            ),
        ));
    }
    if model["byte_fallback"] == true {
        return Err(malformed(
            &tok_path,
            "model.byte_fallback: a SentencePiece-style BPE is not a byte-level (gpt2) vocabulary",
        ));
    }
    let pre = pre_tokenizer_name(&tok, &tok_path)?;

    let mut by_id: BTreeMap<u32, String> = BTreeMap::new();
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| malformed(&tok_path, "model.vocab is not an object"))?;
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| malformed(&tok_path, format!("model.vocab[{text:?}] is not an id")))?;
        by_id.insert(id as u32, text.clone());
    }
    let mut added: BTreeMap<u32, AddedToken> = BTreeMap::new();
    for t in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (t["id"].as_u64(), t["content"].as_str()) else {
            return Err(malformed(&tok_path, format!("added_tokens: bad entry {t}")));
        };
        by_id.insert(id as u32, content.to_string());
        added.insert(
            id as u32,
            AddedToken {
                content: content.to_string(),
                special: t["special"] == true,
            },
        );
    }
    if let Some((&max, _)) = by_id.iter().next_back() {
        if max as usize >= vocab_size {
            return Err(malformed(
                &tok_path,
                format!("token id {max} is outside the model's vocab_size {vocab_size}"),
            ));
        }
    }

    let mut tokens = Vec::with_capacity(vocab_size);
    let mut token_types = Vec::with_capacity(vocab_size);
    for id in 0..vocab_size as u32 {
        match (by_id.get(&id), added.get(&id)) {
            (None, _) => {
                tokens.push(format!("[PAD{id}]"));
                token_types.push(TokenType::Unused);
            }
            (Some(text), Some(a)) => {
                tokens.push(text.clone());
                token_types.push(if a.special || looks_special(text) {
                    TokenType::Control
                } else {
                    TokenType::UserDefined
                });
            }
            (Some(text), None) => {
                tokens.push(text.clone());
                token_types.push(TokenType::Normal);
            }
        }
    }

    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| malformed(&tok_path, "model.merges is missing"))?
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            // Pairs (tokenizers >= 0.20); a space inside a part is written
            // as U+0120, as llama.cpp's converter does.
            Value::Array(pair) if pair.len() == 2 => {
                let part = |v: &Value| v.as_str().map(|s| s.replace(' ', "\u{120}"));
                match (part(&pair[0]), part(&pair[1])) {
                    (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                    _ => Err(malformed(&tok_path, format!("model.merges: bad pair {m}"))),
                }
            }
            _ => Err(malformed(&tok_path, format!("model.merges: bad entry {m}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let cfg_path = dir.join("tokenizer_config.json");
    let cfg = if cfg_path.is_file() {
        read_json(&cfg_path)?
    } else {
        Value::Null
    };
    let [cfg_bos, cfg_eos, cfg_pad] = config_ids;
    let in_vocab = |id: Option<u32>| id.filter(|&i| (i as usize) < vocab_size);
    let chat_template = match &cfg["chat_template"] {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        // A list of named templates: llama.cpp's default is the one named "default".
        Value::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        other => {
            return Err(malformed(
                &cfg_path,
                format!("chat_template is neither a string nor a list: {other}"),
            ))
        }
    };
    Ok(GgufVocab {
        pre,
        tokens,
        token_types,
        merges,
        bos: config_token_id(&cfg, "bos_token", &added).or(in_vocab(cfg_bos)),
        eos: config_token_id(&cfg, "eos_token", &added).or(in_vocab(cfg_eos)),
        pad: config_token_id(&cfg, "pad_token", &added).or(in_vocab(cfg_pad)),
        unk: config_token_id(&cfg, "unk_token", &added),
        add_bos: cfg["add_bos_token"].as_bool(),
        // Byte-level BPEs append no eos when encoding unless told to (as
        // llama.cpp's converter writes it).
        add_eos: cfg["add_eos_token"].as_bool().or(Some(false)),
        chat_template,
    })
}

/// llama.cpp's converter also treats `<|...|>` added tokens as control
/// tokens even when the tokenizer doesn't mark them special.
fn looks_special(text: &str) -> bool {
    (text.starts_with("<|") && text.ends_with("|>"))
        || (text.starts_with("<\u{ff5c}") && text.ends_with("\u{ff5c}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: &Value) {
        std::fs::write(dir.join(name), serde_json::to_string(v).unwrap()).unwrap();
    }

    fn tokenizer_json(regex: &str) -> Value {
        serde_json::json!({
            "added_tokens": [
                {"id": 4, "content": "<|im_end|>", "special": true},
                {"id": 5, "content": "<think>", "special": false},
            ],
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated"},
                {"type": "ByteLevel", "add_prefix_space": false},
            ]},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "byte_fallback": false,
                      "vocab": {"a": 0, "b": 1, "ab": 2, "\u{120}a": 3},
                      "merges": [["a", "b"], ["\u{120}", "a"]]},
        })
    }

    #[test]
    fn types_holes_merges_and_special_ids() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "tokenizer.json",
            &tokenizer_json(QWEN2_PRE_REGEX),
        );
        write(
            dir.path(),
            "tokenizer_config.json",
            &serde_json::json!({"eos_token": "<|im_end|>", "bos_token": null,
                                "add_bos_token": false, "chat_template": "{{ x }}"}),
        );
        let v = read_vocab(dir.path(), 8, [None, Some(0), Some(1)]).unwrap();
        assert_eq!(v.pre, "qwen2");
        assert_eq!(
            v.tokens,
            [
                "a",
                "b",
                "ab",
                "\u{120}a",
                "<|im_end|>",
                "<think>",
                "[PAD6]",
                "[PAD7]"
            ]
        );
        use TokenType::*;
        assert_eq!(
            v.token_types,
            [
                Normal,
                Normal,
                Normal,
                Normal,
                Control,
                UserDefined,
                Unused,
                Unused
            ]
        );
        assert_eq!(v.merges, ["a b", "\u{120} a"]);
        // eos from tokenizer_config beats config.json; pad only in config.json.
        assert_eq!((v.bos, v.eos, v.pad), (None, Some(4), Some(1)));
        assert_eq!(v.add_bos, Some(false));
        assert_eq!(v.chat_template.as_deref(), Some("{{ x }}"));
    }

    #[test]
    fn llama3_regex_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "tokenizer.json",
            &tokenizer_json(LLAMA3_PRE_REGEX),
        );
        assert_eq!(
            read_vocab(dir.path(), 6, [None; 3]).unwrap().pre,
            "llama-bpe"
        );
        let err = read_vocab(dir.path(), 5, [None; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the model's vocab_size 5"), "{err}");

        write(dir.path(), "tokenizer.json", &tokenizer_json(r"\p{L}+"));
        let err = read_vocab(dir.path(), 6, [None; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not one llama.cpp knows"), "{err}");

        let mut wp = tokenizer_json(QWEN2_PRE_REGEX);
        wp["model"]["type"] = "WordPiece".into();
        write(dir.path(), "tokenizer.json", &wp);
        let err = read_vocab(dir.path(), 6, [None; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("byte-level BPE tokenizers only"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = read_vocab(empty.path(), 6, [None; 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
