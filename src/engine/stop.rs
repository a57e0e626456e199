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
//! The work per delta does not depend on the stop strings: [`StopStrings`]
//! compiles them once per request into an Aho–Corasick automaton shared by
//! the request's rollouts, and each [`StopMatcher`] keeps its position in it
//! across deltas, so a delta costs one transition per byte (amortised). The
//! automaton state *is* the longest suffix of the text that is a prefix of
//! some stop string, so the hold-back is a table lookup of its length.
//!
//! All positions are byte offsets at UTF-8 char boundaries: a stop string is
//! valid UTF-8, so a suffix that equals its beginning always starts at a char
//! boundary, and slicing never splits a character.

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};

/// The stop strings could not be compiled (only an automaton beyond the
/// crate's state-id space, i.e. gigabytes of stop strings, fails).
#[derive(Debug, thiserror::Error)]
#[error("stop strings: {0}")]
pub struct StopStringsError(String);

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

/// A request's stop strings, compiled once and shared (`Arc`) by the
/// matchers of all its rollouts.
#[derive(Debug)]
pub struct StopStrings {
    stops: Vec<String>,
    /// `None` without stop strings.
    automaton: Option<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    /// Standard (overlapping) semantics: a match state lists every stop
    /// string that ends there, so earliest end and longest are both visible.
    nfa: NFA,
    start: StateID,
    /// Length of the text each state stands for (its trie depth).
    depth: HashMap<StateID, usize>,
    longest: usize,
}

impl StopStrings {
    /// Compiles `stops`. Empty strings (which would match immediately) and
    /// duplicates are dropped.
    pub fn new(stops: Vec<String>) -> Result<Self, StopStringsError> {
        let mut unique: Vec<String> = Vec::with_capacity(stops.len());
        for s in stops {
            if !s.is_empty() && !unique.contains(&s) {
                unique.push(s);
            }
        }
        if unique.is_empty() {
            return Ok(Self {
                stops: unique,
                automaton: None,
            });
        }
        let err = |e: &dyn std::fmt::Display| StopStringsError(e.to_string());
        let nfa = NFA::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&unique)
            .map_err(|e| err(&e))?;
        let start = nfa.start_state(Anchored::No).map_err(|e| err(&e))?;
        // Every state is the trie node of some stop string's prefix, and
        // reading a prefix from the start lands exactly on its node.
        let mut depth = HashMap::from([(start, 0)]);
        for s in &unique {
            let mut sid = start;
            for (i, &b) in s.as_bytes().iter().enumerate() {
                sid = nfa.next_state(Anchored::No, sid, b);
                depth.insert(sid, i + 1);
            }
        }
        let longest = unique.iter().map(String::len).max().unwrap_or(0);
        Ok(Self {
            stops: unique,
            automaton: Some(Compiled {
                nfa,
                start,
                depth,
                longest,
            }),
        })
    }

    /// No stop strings (after dropping empty ones).
    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }
}

/// Incremental stop-string detector for one sequence.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    strings: Arc<StopStrings>,
    /// Automaton state after all text pushed so far (`None` without stops).
    state: Option<StateID>,
    /// Text received but not emitted: always a proper prefix of some stop
    /// string (hence shorter than the longest one) between pushes; it is
    /// the text `state` stands for.
    pending: String,
    /// Index into the stop strings of the one that ended generation.
    matched: Option<usize>,
}

impl StopMatcher {
    /// A matcher over `strings`; with no stop strings, `push` passes text
    /// through unchanged with no hold-back.
    pub fn new(strings: Arc<StopStrings>) -> Self {
        let state = strings.automaton.as_ref().map(|c| c.start);
        Self {
            strings,
            state,
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
    #[cfg(test)]
    pub fn matched_stop(&self) -> Option<&str> {
        self.matched
            .and_then(|i| self.strings.stops.get(i))
            .map(String::as_str)
    }

    /// Number of bytes currently held back.
    #[cfg(test)]
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
        let (Some(c), Some(mut sid)) = (self.strings.automaton.as_ref(), self.state) else {
            return StopOutcome {
                emit: delta.to_owned(),
                stopped: false,
            };
        };
        let base = self.pending.len();
        self.pending.push_str(delta);
        // `pending` held no complete stop string before this delta, so the
        // first match state reached is the earliest end; its longest stop
        // string is the earliest start at that end.
        for (i, &b) in delta.as_bytes().iter().enumerate() {
            sid = c.nfa.next_state(Anchored::No, sid, b);
            if !c.nfa.is_match(sid) {
                continue;
            }
            let best = (0..c.nfa.match_len(sid))
                .map(|k| c.nfa.match_pattern(sid, k))
                .max_by_key(|&p| c.nfa.pattern_len(p));
            if let Some(p) = best {
                let start = (base + i + 1).saturating_sub(c.nfa.pattern_len(p));
                self.matched = Some(p.as_usize());
                self.pending
                    .truncate(floor_char_boundary(&self.pending, start));
                return StopOutcome {
                    emit: mem::take(&mut self.pending),
                    stopped: true,
                };
            }
        }
        self.state = Some(sid);
        // Every reachable state has a depth; the fallback (hold what any stop
        // prefix could span) only ever holds more, never leaks.
        let held = c
            .depth
            .get(&sid)
            .copied()
            .unwrap_or(c.longest.saturating_sub(1))
            .min(self.pending.len());
        let hold_from = floor_char_boundary(&self.pending, self.pending.len() - held);
        if hold_from == 0 {
            // Everything is held (a partial match grew): nothing to copy.
            return StopOutcome::default();
        }
        let held = self.pending.split_off(hold_from);
        StopOutcome {
            emit: mem::replace(&mut self.pending, held),
            stopped: false,
        }
    }

    /// Releases the held-back text at the end of generation (when it ends for
    /// another reason: EOS, stop token, length). Empty after a stop.
    pub fn flush(&mut self) -> String {
        if let (Some(c), Some(_)) = (self.strings.automaton.as_ref(), self.state) {
            self.state = Some(c.start);
        }
        mem::take(&mut self.pending)
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
#[path = "stop_reference.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> StopMatcher {
        let strings = StopStrings::new(s.iter().map(|s| s.to_string()).collect()).unwrap();
        StopMatcher::new(Arc::new(strings))
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
        let mut m = stops(&[]);
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
        let mut m = stops(&[""]);
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

    mod against_reference {
        use super::super::reference::NaiveStopMatcher;
        use super::*;
        use proptest::prelude::*;

        /// Few letters, so stop strings overlap, share prefixes and end
        /// together often; two multi-byte ones for char boundaries.
        const ALPHABET: [char; 4] = ['a', 'b', 'é', '日'];

        fn text_of(chars: &[char]) -> String {
            chars.iter().collect()
        }

        /// `text` split at the char indices in `cuts`.
        fn chunks(text: &str, cuts: &[usize]) -> Vec<String> {
            let bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            let mut bounds: Vec<usize> =
                cuts.iter().filter_map(|&c| bytes.get(c).copied()).collect();
            bounds.sort_unstable();
            bounds.dedup();
            let mut out = Vec::new();
            let mut prev = 0;
            for b in bounds {
                out.push(text[prev..b].to_string());
                prev = b;
            }
            out.push(text[prev..].to_string());
            out
        }

        /// Every push's `(emit, stopped, held_len)`, then the matched stop
        /// and the flushed tail.
        type Trace = (Vec<(String, bool, usize)>, Option<String>, String);

        fn trace(m: &mut StopMatcher, deltas: &[String]) -> Trace {
            let pushes = deltas
                .iter()
                .map(|d| {
                    let o = m.push(d);
                    (o.emit, o.stopped, m.held_len())
                })
                .collect();
            (pushes, m.matched_stop().map(str::to_owned), m.flush())
        }

        fn naive_trace(m: &mut NaiveStopMatcher, deltas: &[String]) -> Trace {
            let pushes = deltas
                .iter()
                .map(|d| {
                    let (emit, stopped) = m.push(d);
                    (emit, stopped, m.held_len())
                })
                .collect();
            (pushes, m.matched_stop().map(str::to_owned), m.flush())
        }

        fn chars(max: usize) -> impl Strategy<Value = Vec<char>> {
            proptest::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..max)
        }

        proptest! {
            #[test]
            fn automaton_matches_the_naive_matcher_on_every_push(
                stop_chars in proptest::collection::vec(chars(5), 0..6),
                text in chars(40),
                cuts in proptest::collection::vec(0usize..40, 0..12),
            ) {
                let stop_list: Vec<String> = stop_chars.iter().map(|c| text_of(c)).collect();
                let refs: Vec<&str> = stop_list.iter().map(String::as_str).collect();
                let deltas = chunks(&text_of(&text), &cuts);
                let got = trace(&mut stops(&refs), &deltas);
                let want = naive_trace(&mut NaiveStopMatcher::new(&refs), &deltas);
                prop_assert_eq!(got, want);
            }

            #[test]
            fn long_stop_strings_that_never_occur_change_nothing(
                text in chars(40),
                cuts in proptest::collection::vec(0usize..40, 0..12),
            ) {
                let short = ["ab", "b c", "cé日", "aaa"];
                // 16 strings of 1 KiB each, none of which can occur in the text.
                let long: Vec<String> = (0..16)
                    .map(|i| format!("#{i:02}{}", "ab".repeat(510)))
                    .collect();
                let mut all: Vec<&str> = short.to_vec();
                all.extend(long.iter().map(String::as_str));
                let deltas = chunks(&text_of(&text), &cuts);
                prop_assert_eq!(trace(&mut stops(&all), &deltas), trace(&mut stops(&short), &deltas));
            }
        }

        #[test]
        fn shared_strings_keep_separate_state_per_rollout() {
            let strings = Arc::new(StopStrings::new(vec!["STOP".into()]).unwrap());
            let (mut a, mut b) = (StopMatcher::new(strings.clone()), StopMatcher::new(strings));
            assert_eq!(a.push("xST").emit, "x");
            assert_eq!(b.push("OP").emit, "OP");
            assert!(a.push("OP").stopped);
            assert!(!b.is_stopped());
            assert_eq!(b.flush(), "");
        }

        #[test]
        fn flush_resets_the_automaton() {
            let mut m = stops(&["abc"]);
            assert_eq!(m.push("ab").emit, "");
            assert_eq!(m.flush(), "ab");
            // "c" alone does not complete the flushed "ab".
            assert_eq!(m.push("c").emit, "c");
            assert!(!m.is_stopped());
        }
    }
}
