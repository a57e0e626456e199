//! Token ids → the `token` / `bytes` of OpenAI logprobs.
//!
//! OpenAI reports each token's exact UTF-8 bytes (a token may hold half a
//! character) and its text. Decoding a lone id through the tokenizer would
//! turn a partial character into U+FFFD and lose the bytes, so for byte-level
//! BPE vocabularies (GPT-2 / Qwen / Llama-3) the vocabulary string is mapped
//! back through the byte-to-unicode table; other tokenizers fall back to
//! decoding the id.

use std::collections::HashMap;
use std::sync::OnceLock;

use tokenizers::DecoderWrapper;

use super::openai::{ChatTokenLogprob, TopLogprob};
use crate::engine::sequence::TokenLogprob;
use crate::tokenizer::Tokenizer;

/// GPT-2's printable stand-in char → the byte it encodes.
fn unicode_to_byte() -> &'static HashMap<char, u8> {
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::with_capacity(256);
        let mut extra = 0u32;
        for b in 0u32..256 {
            let printable = (0x21..=0x7e).contains(&b)
                || (0xa1..=0xac).contains(&b)
                || (0xae..=0xff).contains(&b);
            let c = if printable {
                b
            } else {
                extra += 1;
                255 + extra
            };
            if let Some(ch) = char::from_u32(c) {
                map.insert(ch, b as u8);
            }
        }
        map
    })
}

/// The raw bytes of token `id`.
pub fn token_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    let inner = tok.inner();
    let byte_level = matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_)));
    let is_added = inner.get_added_tokens_decoder().contains_key(&id);
    if byte_level && !is_added {
        if let Some(piece) = tok.id_to_token(id) {
            let table = unicode_to_byte();
            let bytes: Option<Vec<u8>> = piece.chars().map(|c| table.get(&c).copied()).collect();
            if let Some(bytes) = bytes {
                return bytes;
            }
        }
    }
    if is_added {
        if let Some(piece) = tok.id_to_token(id) {
            return piece.into_bytes();
        }
    }
    tok.decode(&[id], false).unwrap_or_default().into_bytes()
}

/// `(token, bytes)`: the text is lossy where the token splits a character.
pub fn token_text(tok: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = token_bytes(tok, id);
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// One sampled token in the chat logprobs format.
pub fn chat_logprob(tok: &Tokenizer, lp: &TokenLogprob) -> ChatTokenLogprob {
    let (token, bytes) = token_text(tok, lp.token);
    ChatTokenLogprob {
        token,
        logprob: lp.logprob,
        bytes,
        top_logprobs: lp
            .top_logprobs
            .iter()
            .map(|&(id, logprob)| {
                let (token, bytes) = token_text(tok, id);
                TopLogprob {
                    token,
                    logprob,
                    bytes,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_covers_every_byte() {
        let t = unicode_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'a'], b'a');
    }
}
