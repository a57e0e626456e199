//! A tiny byte-level BPE tokenizer built in code, for random-weight test
//! models: 256 byte tokens (ids 0..=255, in byte order) and a few ChatML /
//! thinking special tokens after them. No merges, so every byte is one token
//! and any UTF-8 text round-trips; the vocabulary is small enough that a test
//! model's embedding stays tiny.
//!
//! The JSON is written by hand (not via the `tokenizers` builder API) so the
//! format is exactly what HF's loaders read, and it is parsed back before being
//! returned, so a caller never writes a `tokenizer.json` that fails to load.

use std::str::FromStr;

use serde_json::{json, Map, Value};

use super::TokenizerError;

/// Special tokens appended after the 256 byte tokens, with whether each is
/// "special" (skipped by `decode(.., skip_special_tokens=true)`). As in Qwen3,
/// `<think>`/`</think>` are not special, so reasoning survives decoding.
pub const SYNTHETIC_SPECIAL_TOKENS: [(&str, bool); 5] = [
    ("<|endoftext|>", true),
    ("<|im_start|>", true),
    ("<|im_end|>", true),
    ("<think>", false),
    ("</think>", false),
];

/// The Qwen3 chat template (ChatML + `enable_thinking`), used by the synthetic
/// config so tiny models exercise the same prompt format as the real thing.
const QWEN3_CHAT_TEMPLATE: &str = include_str!("qwen3_chat_template.jinja");

/// GPT-2's byte-to-unicode map: printable Latin-1 bytes map to themselves and
/// the rest to U+0100 onwards, so every byte is a visible vocabulary string.
fn byte_to_char(b: u8) -> char {
    let printable = |c: u8| matches!(c, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + rank).unwrap_or('\u{FFFD}')
}

/// The `tokenizer.json` content of the synthetic tokenizer (see module docs).
/// Ids: bytes 0..=255, then [`SYNTHETIC_SPECIAL_TOKENS`] from 256 in order.
pub fn synthetic_tokenizer_json() -> Result<String, TokenizerError> {
    let mut vocab = Map::new();
    for b in 0..=255u8 {
        vocab.insert(byte_to_char(b).to_string(), json!(b));
    }
    let added: Vec<Value> = SYNTHETIC_SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(i, (content, special))| {
            json!({
                "id": 256 + i, "content": content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": special
            })
        })
        .collect();
    let byte_level = json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false
    });
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": []
        }
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| TokenizerError::Malformed {
        path: "<synthetic>/tokenizer.json".into(),
        message: e.to_string(),
    })?;
    tokenizers::Tokenizer::from_str(&text).map_err(|e| TokenizerError::Malformed {
        path: "<synthetic>/tokenizer.json".into(),
        message: e.to_string(),
    })?;
    Ok(text)
}

/// The `tokenizer_config.json` content matching [`synthetic_tokenizer_json`]:
/// EOS `<|im_end|>`, pad `<|endoftext|>`, no BOS, and (if asked) the Qwen3
/// chat template.
pub fn synthetic_tokenizer_config_json(with_chat_template: bool) -> String {
    let mut cfg = json!({
        "add_bos_token": false,
        "add_prefix_space": false,
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "model_max_length": 32768,
        "clean_up_tokenization_spaces": false,
        "tokenizer_class": "Qwen2Tokenizer",
    });
    if with_chat_template {
        cfg["chat_template"] = json!(QWEN3_CHAT_TEMPLATE);
    }
    // Serialising a `Value` built from literals cannot fail.
    serde_json::to_string_pretty(&cfg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::Tokenizer;
    use super::*;

    #[test]
    fn synthetic_tokenizer_round_trips_bytes_and_specials() -> Result<(), TokenizerError> {
        let tok = Tokenizer::synthetic(true)?;
        assert_eq!(tok.vocab_size(), 256 + SYNTHETIC_SPECIAL_TOKENS.len());
        let text = "héllo 🦀\n\t<|im_start|>user\n<think>x</think><|im_end|>";
        let ids = tok.encode(text, false)?;
        assert_eq!(tok.decode(&ids, false)?, text);
        assert_eq!(tok.encode("A", true)?, vec![65]);
        assert_eq!(tok.token_to_id("<|im_start|>"), Some(257));
        assert_eq!(tok.token_to_id("</think>"), Some(260));
        assert_eq!(tok.eos_token_ids(), vec![258]);
        assert_eq!(tok.decode(&[257, 65, 258, 259], true)?, "A<think>");
        assert!(tok
            .chat_template()
            .is_some_and(|t| t.contains("enable_thinking")));
        assert!(Tokenizer::synthetic(false)?.chat_template().is_none());
        Ok(())
    }

    #[test]
    fn byte_alphabet_matches_gpt2() {
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        let distinct: std::collections::HashSet<char> = (0..=255u8).map(byte_to_char).collect();
        assert_eq!(distinct.len(), 256);
    }
}
