//! Streaming detokenization.
//!
//! Decoding one token at a time is wrong in two ways: a byte-level BPE token
//! may hold only part of a UTF-8 character (an emoji is often split across
//! 2–4 tokens), and SentencePiece-style decoders strip a leading space from the
//! first token of whatever slice they are given. The standard fix (TGI, vLLM)
//! keeps two offsets into the generated ids: text is always decoded from
//! `prefix_offset` (a few tokens of already-emitted context), and the delta is
//! the part of `decode(ids[prefix..])` beyond `decode(ids[prefix..read])`.
//! A delta that ends in U+FFFD is an incomplete character: hold it back until
//! the next token completes it. Concatenating every delta (plus
//! [`IncrementalDecoder::finish`]) equals decoding all ids at once.

use super::{Tokenizer, TokenizerError};

/// How many prompt tokens [`IncrementalDecoder::with_context`] keeps as the
/// initial prefix window (vLLM uses the same number).
const CONTEXT_TOKENS: usize = 5;

/// Per-sequence incremental detokenizer. It holds no reference to the
/// tokenizer so it can live inside per-rollout state; pass the same
/// [`Tokenizer`] to every call.
#[derive(Debug, Clone, Default)]
pub struct IncrementalDecoder {
    /// Ids from `prefix_offset` on; older ids are dropped once emitted.
    ids: Vec<u32>,
    /// Start (in `ids`) of the already-emitted context window.
    prefix_offset: usize,
    /// End (in `ids`) of the already-emitted text.
    read_offset: usize,
    skip_special_tokens: bool,
}

impl IncrementalDecoder {
    /// A decoder for a sequence with no preceding context.
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            ..Self::default()
        }
    }

    /// A decoder whose first delta is decoded in the context of the last few
    /// `prompt_ids`, so a leading space of the first generated token survives
    /// for SentencePiece-style tokenizers. The prompt text itself is never
    /// emitted.
    pub fn with_context(prompt_ids: &[u32], skip_special_tokens: bool) -> Self {
        let tail = &prompt_ids[prompt_ids.len().saturating_sub(CONTEXT_TOKENS)..];
        Self {
            ids: tail.to_vec(),
            prefix_offset: 0,
            read_offset: tail.len(),
            skip_special_tokens,
        }
    }

    /// Appends `id` and returns the newly completed text (possibly empty while
    /// a multi-byte character is still incomplete).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        self.ids.push(id);
        let skip = self.skip_special_tokens;
        let prefix_text = tok.decode(&self.ids[self.prefix_offset..self.read_offset], skip)?;
        let new_text = tok.decode(&self.ids[self.prefix_offset..], skip)?;
        if new_text.len() <= prefix_text.len() || new_text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        // A decoder that rewrites earlier text (rare) could make `prefix_text`
        // not a prefix of `new_text`; hold the text rather than emit garbage.
        let Some(delta) = new_text
            .strip_prefix(prefix_text.as_str())
            .map(str::to_owned)
        else {
            return Ok(String::new());
        };
        // Advance: the new prefix window is what was just read.
        let new_prefix = self.read_offset;
        self.ids.drain(..new_prefix);
        self.prefix_offset = 0;
        self.read_offset = self.ids.len();
        Ok(delta)
    }

    /// Flushes text still held back (an incomplete character at the end of the
    /// sequence decodes to U+FFFD, as in a full decode). Call once when the
    /// sequence ends; the decoder is reset to empty.
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String, TokenizerError> {
        let skip = self.skip_special_tokens;
        let prefix_text = tok.decode(&self.ids[self.prefix_offset..self.read_offset], skip)?;
        let new_text = tok.decode(&self.ids[self.prefix_offset..], skip)?;
        self.ids.clear();
        self.prefix_offset = 0;
        self.read_offset = 0;
        Ok(new_text
            .strip_prefix(prefix_text.as_str())
            .unwrap_or_default()
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen3() -> Result<Tokenizer, TokenizerError> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        Tokenizer::from_dir(dir.join("tests/fixtures/qwen3-tokenizer"))
    }

    /// Streams `ids` and checks the deltas against a full decode, and that no
    /// delta carries a replacement character.
    fn stream_matches_full(
        tok: &Tokenizer,
        ids: &[u32],
        skip: bool,
    ) -> Result<Vec<String>, TokenizerError> {
        let mut dec = IncrementalDecoder::new(skip);
        let mut deltas = Vec::new();
        for &id in ids {
            deltas.push(dec.push(tok, id)?);
        }
        deltas.push(dec.finish(tok)?);
        for d in &deltas {
            assert!(!d.contains('\u{FFFD}'), "replacement char in delta {d:?}");
        }
        assert_eq!(deltas.concat(), tok.decode(ids, skip)?);
        Ok(deltas)
    }

    #[test]
    fn multibyte_text_streams_to_full_decode() -> Result<(), TokenizerError> {
        let tok = qwen3()?;
        let text = "你好，世界！🦀🎉 Rust 👨‍👩‍👧 naïve café 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ありがとう";
        let ids = tok.encode(text, false)?;
        // The fixture must actually split characters across tokens, or the
        // test proves nothing.
        let partial = ids
            .iter()
            .filter(|&&id| {
                tok.decode(&[id], false)
                    .is_ok_and(|s| s.contains('\u{FFFD}'))
            })
            .count();
        assert!(partial > 0, "no token holds a partial character");
        let deltas = stream_matches_full(&tok, &ids, false)?;
        assert_eq!(deltas.concat(), text);
        // Some push must have returned nothing (held back a partial char).
        assert!(deltas[..ids.len()].iter().any(String::is_empty));
        Ok(())
    }

    #[test]
    fn special_tokens_stream_with_and_without_skip() -> Result<(), TokenizerError> {
        let tok = qwen3()?;
        let text = "<think>\n思考🤔\n</think>\n\n答案是 42。<|im_end|>";
        let ids = tok.encode(text, false)?;
        assert_eq!(stream_matches_full(&tok, &ids, false)?.concat(), text);
        let skipped = stream_matches_full(&tok, &ids, true)?.concat();
        assert!(skipped.starts_with("<think>") && !skipped.contains("<|im_end|>"));
        Ok(())
    }

    #[test]
    fn byte_tokens_of_one_emoji_emit_once_complete() -> Result<(), TokenizerError> {
        let tok = qwen3()?;
        // Force byte-by-byte tokens via the byte-level alphabet: 🦀 = F0 9F A6 80.
        let ids: Vec<u32> = ["ð", "Ł", "¦", "Ģ"]
            .iter()
            .filter_map(|t| tok.token_to_id(t))
            .collect();
        assert_eq!(ids.len(), 4);
        let mut dec = IncrementalDecoder::new(false);
        let mut out = Vec::new();
        for &id in &ids {
            out.push(dec.push(&tok, id)?);
        }
        assert_eq!(out, vec!["", "", "", "🦀"]);
        Ok(())
    }

    #[test]
    fn context_is_not_emitted_and_unfinished_char_flushes_as_replacement(
    ) -> Result<(), TokenizerError> {
        let tok = qwen3()?;
        let prompt = tok.encode("<|im_start|>assistant\n", false)?;
        let mut dec = IncrementalDecoder::with_context(&prompt, false);
        let hello = tok.encode(" hello", false)?;
        let mut text = String::new();
        for &id in &hello {
            text.push_str(&dec.push(&tok, id)?);
        }
        assert_eq!(text, " hello");
        let lead = tok.token_to_id("ð").unwrap_or_default();
        assert_eq!(dec.push(&tok, lead)?, "");
        assert_eq!(dec.finish(&tok)?, "\u{FFFD}");
        Ok(())
    }
}
