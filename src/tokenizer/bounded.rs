//! Bounding tokenization work by the context window.
//!
//! Tokenizing costs far more memory than the text (the library keeps
//! alignments and per-piece buffers: ~400 bytes per input byte for one huge
//! message), so a prompt that cannot fit the model must be refused before
//! it is tokenized whole. Two checks, cheapest first:
//!
//! 1. **Bytes.** No token covers more than [`Tokenizer::max_token_bytes`]
//!    bytes, so a text has at least `bytes / max_token_bytes` tokens. The
//!    bound is halved once more for normalizers that shrink text (NFC
//!    composition), so it never refuses a prompt that fits.
//! 2. **Counting in chunks** ([`Tokenizer::exceeds`]): long texts are
//!    tokenized [`CHUNK_BYTES`] at a time, split just before a space that
//!    follows a letter or digit (where the pre-tokenizers of byte-level BPE
//!    vocabularies split anyway), and counting stops as soon as the total is
//!    provably past the limit. A chunk boundary can change the count by a
//!    token or two (a forced split inside a long word), so each boundary
//!    earns [`SLACK_PER_CHUNK`] tokens of tolerance: the check refuses only
//!    texts that are certainly too long, and the exact encoding that follows
//!    for the rest is bounded by the limit.

use super::{Tokenizer, TokenizerError};

/// Bytes tokenized at a time when counting a long text.
pub const CHUNK_BYTES: usize = 16 << 10;

/// Tolerance per chunk boundary, in tokens.
pub const SLACK_PER_CHUNK: usize = 4;

/// Longest vocabulary entry, in the bytes of text it stands for.
pub(crate) fn longest_token_bytes(inner: &tokenizers::Tokenizer) -> usize {
    let byte_level = matches!(
        inner.get_decoder(),
        Some(tokenizers::DecoderWrapper::ByteLevel(_))
    );
    inner
        .get_vocab(true)
        .keys()
        // Byte-level vocabularies spell each byte as one char; elsewhere the
        // UTF-8 length over-estimates (`▁` is 3 bytes for one space), which
        // only loosens the bound.
        .map(|t| {
            if byte_level {
                t.chars().count()
            } else {
                t.len()
            }
        })
        .max()
        .unwrap_or(1)
        .max(1)
}

impl Tokenizer {
    /// The most text bytes one token stands for (128 for Qwen3).
    pub fn max_token_bytes(&self) -> Result<usize, TokenizerError> {
        Ok(self.plain_parts()?.max_token_bytes)
    }

    /// A lower bound on the tokens of a text of `bytes` bytes, from its size
    /// alone (check 1 of the module docs).
    pub fn min_tokens_for_bytes(&self, bytes: usize) -> Result<usize, TokenizerError> {
        Ok(bytes / (2 * self.max_token_bytes()?))
    }

    /// `Some(at_least)` when `text` certainly has more than `limit` tokens
    /// (added-token strings counted as single tokens), found without
    /// tokenizing more than about `limit` tokens' worth of it; `None` when
    /// it may fit. Short texts are not counted here: their exact encoding is
    /// cheap.
    pub fn exceeds(&self, text: &str, limit: usize) -> Result<Option<usize>, TokenizerError> {
        let lower = self.min_tokens_for_bytes(text.len())?;
        if lower > limit {
            return Ok(Some(lower));
        }
        if text.len() <= CHUNK_BYTES {
            return Ok(None);
        }
        let mut counted = 0usize;
        let mut slack = 0usize;
        let mut rest = text;
        while !rest.is_empty() {
            let cut = chunk_end(rest, CHUNK_BYTES);
            let enc = self
                .inner
                .encode_fast(&rest[..cut], false)
                .map_err(|e| TokenizerError::Encode(e.to_string()))?;
            counted += enc.len();
            rest = &rest[cut..];
            if !rest.is_empty() {
                slack += SLACK_PER_CHUNK;
            }
            if counted > limit + slack {
                return Ok(Some(counted - slack));
            }
        }
        Ok(None)
    }
}

/// Where to end a chunk of at most `max` bytes of `text`: the whole text
/// if it is short, else just before the last space that follows an ASCII
/// letter or digit in the second half of the window, else at the last char
/// boundary in the window.
pub(crate) fn chunk_end(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let bytes = text.as_bytes();
    let window = &bytes[max / 2..=max];
    let safe = window
        .windows(2)
        .rposition(|w| w[0].is_ascii_alphanumeric() && w[1] == b' ')
        .map(|i| max / 2 + i + 1);
    if let Some(cut) = safe {
        return cut;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen3() -> Tokenizer {
        Tokenizer::from_dir(super::super::tests::qwen3_dir()).unwrap()
    }

    #[test]
    fn chunks_end_before_a_space_after_a_word_or_on_a_char_boundary() {
        assert_eq!(chunk_end("short", 16), 5);
        let text = "aaaa bbbb cccc dddd";
        assert_eq!(chunk_end(text, 12), 9); // "aaaa bbbb" | " cccc dddd"
        let text = "ééééééééééé"; // two bytes a char, no spaces
        let cut = chunk_end(text, 7);
        assert!(text.is_char_boundary(cut) && cut <= 7 && cut > 0, "{cut}");
    }

    #[test]
    fn qwen3_token_bytes_bound_the_longest_entry() {
        assert_eq!(qwen3().max_token_bytes().unwrap(), 128);
    }

    #[test]
    fn counting_refuses_only_texts_that_are_too_long() {
        let tok = qwen3();
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(2000);
        let exact = tok.encode(&text, false).unwrap().len();
        assert!(text.len() > 4 * CHUNK_BYTES);
        // Chunked counting agrees with the exact count at word boundaries.
        assert_eq!(
            tok.exceeds(&text, exact - 1 - 8 * SLACK_PER_CHUNK)
                .unwrap()
                .map(|_| ()),
            Some(())
        );
        assert_eq!(tok.exceeds(&text, exact).unwrap(), None);
        let Some(at_least) = tok.exceeds(&text, 1000).unwrap() else {
            panic!("a 20k-token text exceeds 1000 tokens");
        };
        // It stopped early: it counted little more than the limit.
        assert!(at_least > 1000 && at_least < 1000 + 2 * 4096, "{at_least}");
    }

    #[test]
    fn a_huge_text_is_refused_from_its_size_alone() {
        let tok = qwen3();
        let text = "x".repeat(4 << 20);
        // 4 MiB / (2 * 128) = 16384 tokens at least: past a 4096 context.
        assert_eq!(tok.exceeds(&text, 4096).unwrap(), Some(16384));
    }
}
