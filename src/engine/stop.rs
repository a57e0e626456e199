//! Stop-string matching over streamed text deltas.
//!
//! Detokenised text arrives in small deltas, and a stop string can be split
//! across several of them (`"<|im"`, `"_end"`, `"|>"`). [`StopMatcher`] holds
//! back the longest suffix of the not-yet-emitted text that could still
//! become a stop string, so a stop string is never streamed to the client,
//! while everything that provably cannot be part of one is emitted at once.
//!
//! When several stop strings match, the one that *completes first* in the
//! text wins, and among those completing at the same position the longest
//! (earliest-starting) one. That is exactly what token-by-token streaming
//! would report, so the output does not depend on how the text was chunked
//! into deltas (unlike "first in list order" or "earliest start").
//!
//! All positions are byte offsets at UTF-8 char boundaries: a stop string is
//! valid UTF-8, so a suffix that equals its beginning always starts at a char
//! boundary, and slicing never splits a character.

use std::mem;

/// What [`StopMatcher::push`] lets through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopOutcome {
    /// Text safe to stream now (never contains a stop string or any text
    /// after one).
    pub emit: String,
    /// A stop string completed; generation should end. Further pushes emit
    /// nothing.
    pub stopped: bool,
}

/// Incremental stop-string detector for one sequence.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not emitted: always a proper prefix of some stop
    /// string (hence shorter than the longest one) between pushes.
    pending: String,
    /// Index into `stops` of the stop string that ended generation.
    matched: Option<usize>,
}

impl StopMatcher {
    /// Creates a matcher. Empty strings (which would match immediately) and
    /// duplicates are dropped; with no stop strings, `push` passes text
    /// through unchanged with no hold-back.
    pub fn new(stops: Vec<String>) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(stops.len());
        for s in stops {
            if !s.is_empty() && !unique.contains(&s) {
                unique.push(s);
            }
        }
        Self {
            stops: unique,
            pending: String::new(),
            matched: None,
        }
    }

    /// Whether a stop string has matched.
    pub fn is_stopped(&self) -> bool {
        self.matched.is_some()
    }

    /// The stop string that ended generation (vLLM reports it as
    /// `stop_reason`).
    pub fn matched_stop(&self) -> Option<&str> {
        self.matched
            .and_then(|i| self.stops.get(i))
            .map(String::as_str)
    }

    /// Number of bytes currently held back.
    pub fn held_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the next text delta. Returns the text that can be streamed now
    /// and whether a stop string completed (in which case `emit` is the text
    /// before it, and the stop string and anything after it are dropped).
    pub fn push(&mut self, delta: &str) -> StopOutcome {
        if self.is_stopped() {
            return StopOutcome {
                emit: String::new(),
                stopped: true,
            };
        }
        if self.stops.is_empty() {
            return StopOutcome {
                emit: delta.to_owned(),
                stopped: false,
            };
        }
        self.pending.push_str(delta);

        // `pending` held no complete stop string before this delta, so any
        // match ends inside the delta; the held prefix bounds the search to
        // (longest stop - 1) + delta bytes.
        // Earliest end wins; at equal ends the longest (earliest start).
        let mut best: Option<(usize, usize, usize)> = None; // (end, start, index)
        for (i, stop) in self.stops.iter().enumerate() {
            if let Some(start) = self.pending.find(stop.as_str()) {
                let end = start + stop.len();
                if best.is_none_or(|(e, s, _)| (end, start) < (e, s)) {
                    best = Some((end, start, i));
                }
            }
        }
        if let Some((_, start, i)) = best {
            self.matched = Some(i);
            self.pending.truncate(start);
            return StopOutcome {
                emit: mem::take(&mut self.pending),
                stopped: true,
            };
        }

        let hold_from = self.hold_start();
        let held = self.pending.split_off(hold_from);
        StopOutcome {
            emit: mem::replace(&mut self.pending, held),
            stopped: false,
        }
    }

    /// Releases the held-back text at the end of generation (when it ends for
    /// another reason: EOS, stop token, length). Empty after a stop.
    pub fn flush(&mut self) -> String {
        mem::take(&mut self.pending)
    }

    /// Start of the longest suffix of `pending` that is a proper prefix of
    /// some stop string (`pending.len()` when there is none).
    fn hold_start(&self) -> usize {
        let text = self.pending.as_bytes();
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let min_start = text.len().saturating_sub(longest.saturating_sub(1));
        (min_start..text.len())
            .find(|&from| {
                self.pending.is_char_boundary(from)
                    && self
                        .stops
                        .iter()
                        .any(|s| s.as_bytes().starts_with(&text[from..]))
            })
            .unwrap_or(text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> StopMatcher {
        StopMatcher::new(s.iter().map(|s| s.to_string()).collect())
    }

    /// Feeds all deltas; returns (concatenated emitted text, stopped).
    fn run(m: &mut StopMatcher, deltas: &[&str]) -> (String, bool) {
        let mut out = String::new();
        let mut stopped = false;
        for d in deltas {
            let o = m.push(d);
            out.push_str(&o.emit);
            stopped = o.stopped;
        }
        (out, stopped)
    }

    #[test]
    fn stop_string_split_across_two_deltas_is_not_leaked() {
        let mut m = stops(&["<|im_end|>"]);
        let o = m.push("Hello<|im");
        assert_eq!(
            o,
            StopOutcome {
                emit: "Hello".into(),
                stopped: false
            }
        );
        let o = m.push("_end|> trailing");
        assert_eq!(
            o,
            StopOutcome {
                emit: String::new(),
                stopped: true
            }
        );
        assert_eq!(m.matched_stop(), Some("<|im_end|>"));
        assert_eq!(m.flush(), "");
    }

    #[test]
    fn stop_string_split_across_three_deltas_is_not_leaked() {
        let mut m = stops(&["STOP"]);
        assert_eq!(m.push("abc S").emit, "abc ");
        assert_eq!(m.push("T").emit, "");
        assert_eq!(m.held_len(), 2);
        let o = m.push("OP and more");
        assert_eq!(
            o,
            StopOutcome {
                emit: String::new(),
                stopped: true
            }
        );
    }

    #[test]
    fn text_before_stop_in_same_delta_is_emitted_and_rest_dropped() {
        let mut m = stops(&["\n\n"]);
        let o = m.push("answer: 42\n\nextra");
        assert_eq!(
            o,
            StopOutcome {
                emit: "answer: 42".into(),
                stopped: true
            }
        );
        assert_eq!(
            m.push("more"),
            StopOutcome {
                emit: String::new(),
                stopped: true
            }
        );
    }

    #[test]
    fn partial_match_that_turns_out_not_to_be_a_stop_is_released() {
        let mut m = stops(&["STOP"]);
        assert_eq!(m.push("xST").emit, "x");
        assert_eq!(m.push("A").emit, "STA");
        assert_eq!(m.held_len(), 0);
        // Released partial followed by a new partial.
        assert_eq!(m.push("ST").emit, "");
        assert_eq!(m.push("S").emit, "ST");
        assert_eq!(m.flush(), "S");
    }

    #[test]
    fn flush_returns_held_back_text_when_generation_ends_otherwise() {
        let mut m = stops(&["</answer>"]);
        assert_eq!(m.push("done </ans").emit, "done ");
        assert_eq!(m.flush(), "</ans");
        assert_eq!(m.flush(), "");
    }

    #[test]
    fn earliest_completing_stop_string_wins() {
        let mut m = stops(&["world", "lo"]);
        let o = m.push("hello world");
        assert_eq!(
            o,
            StopOutcome {
                emit: "hel".into(),
                stopped: true
            }
        );
        assert_eq!(m.matched_stop(), Some("lo"));
        // "b" completes before "abc", as it would token by token.
        let (out, stopped) = run(&mut stops(&["abc", "b"]), &["xabc"]);
        assert_eq!((out.as_str(), stopped), ("xa", true));
        let (out, stopped) = run(&mut stops(&["abc", "b"]), &["x", "a", "b", "c"]);
        assert_eq!((out.as_str(), stopped), ("xa", true));
    }

    #[test]
    fn equal_end_prefers_the_longer_stop_string() {
        let mut m = stops(&["bc", "abc"]);
        assert_eq!(m.push("xabc").emit, "x");
        assert_eq!(m.matched_stop(), Some("abc"));
    }

    #[test]
    fn overlapping_prefixes_are_held_and_resolved() {
        // "ab" and "b c": a held "b" may continue either.
        let (out, stopped) = run(&mut stops(&["ab", "b c"]), &["x", "a", "b c"]);
        assert_eq!((out.as_str(), stopped), ("x", true));
        let mut m = stops(&["ab", "b c"]);
        assert_eq!(m.push("b").emit, "");
        assert_eq!(m.push(" ").emit, "");
        assert_eq!(m.held_len(), 2);
        let o = m.push("c!");
        assert_eq!(
            o,
            StopOutcome {
                emit: String::new(),
                stopped: true
            }
        );
        assert_eq!(m.matched_stop(), Some("b c"));
        let (out, stopped) = run(&mut stops(&["ab", "b c"]), &["b", " d"]);
        assert_eq!((out.as_str(), stopped), ("b d", false));
    }

    #[test]
    fn holds_the_longest_suffix_that_prefixes_any_stop() {
        let mut m = stops(&["abc", "bcd"]);
        assert_eq!(m.push("xbc").emit, "x");
        assert_eq!(m.held_len(), 2);
        assert!(m.push("d").stopped);
    }

    #[test]
    fn no_stops_pass_through_with_zero_hold_back() {
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(
            m.push("abc"),
            StopOutcome {
                emit: "abc".into(),
                stopped: false
            }
        );
        assert_eq!(m.held_len(), 0);
        assert_eq!(m.flush(), "");
        // Empty stop strings are ignored rather than matching everything.
        let mut m = StopMatcher::new(vec![String::new()]);
        assert_eq!(m.push("abc").emit, "abc");
    }

    #[test]
    fn unicode_stop_strings_split_across_deltas() {
        let mut m = stops(&["日本", "🛑"]);
        assert_eq!(m.push("こんにち日").emit, "こんにち");
        let o = m.push("本語");
        assert_eq!(
            o,
            StopOutcome {
                emit: String::new(),
                stopped: true
            }
        );
        let (out, stopped) = run(&mut stops(&["🛑"]), &["é", "ü🛑x"]);
        assert_eq!((out.as_str(), stopped), ("éü", true));
    }

    #[test]
    fn unicode_sharing_lead_bytes_is_not_held() {
        // "é" is C3 A9 and "ã" is C3 A3: no char-level prefix, nothing held.
        let mut m = stops(&["éa"]);
        assert_eq!(m.push("ã").emit, "ã");
        assert_eq!(m.push("xé").emit, "x");
        assert_eq!(m.push("b").emit, "éb");
    }

    mod chunking {
        use super::*;
        use proptest::prelude::*;

        /// Reference: cut at the earliest end, longest at equal ends.
        fn reference(text: &str, stops: &[&str]) -> (String, bool) {
            let mut best: Option<(usize, usize)> = None;
            for s in stops {
                if let Some(start) = text.find(s) {
                    let cand = (start + s.len(), start);
                    if best.is_none_or(|b| cand < b) {
                        best = Some(cand);
                    }
                }
            }
            match best {
                Some((_, start)) => (text[..start].to_string(), true),
                None => (text.to_string(), false),
            }
        }

        proptest! {
            #[test]
            fn output_does_not_depend_on_delta_boundaries(
                chars in proptest::collection::vec(
                    prop::sample::select(vec!['a', 'b', 'c', ' ', 'é', '日']), 0..30),
                cuts in proptest::collection::vec(0usize..30, 0..10),
            ) {
                let text: String = chars.iter().collect();
                let stop_list = ["ab", "b c", "cé日", "aaa"];
                // Split at char indices given by `cuts`.
                let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c < chars.len()).collect();
                bounds.sort_unstable();
                bounds.dedup();
                let byte_at = |ci: usize| text.char_indices().nth(ci).map_or(text.len(), |(b, _)| b);
                let mut deltas = Vec::new();
                let mut prev = 0;
                for ci in bounds {
                    let b = byte_at(ci);
                    deltas.push(&text[prev..b]);
                    prev = b;
                }
                deltas.push(&text[prev..]);

                let mut m = stops(&stop_list);
                let (mut out, stopped) = run(&mut m, &deltas);
                let stopped = stopped || m.is_stopped();
                out.push_str(&m.flush());
                prop_assert_eq!((out, stopped), reference(&text, &stop_list));
            }
        }
    }
}
