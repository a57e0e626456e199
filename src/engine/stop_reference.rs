//! The straightforward stop-string matcher that `StopMatcher` replaced: on
//! every delta it searches the held text plus the delta for each stop string
//! and scans each stop string again for the hold-back, so a delta costs the
//! stop strings' total length. Kept (std only) as the oracle of the property
//! tests in `stop.rs` and the baseline of `benches/stop_strings.rs`, which
//! both include this file by path.

/// Incremental matcher with `StopMatcher`'s semantics, done naively.
#[derive(Debug, Clone, Default)]
pub struct NaiveStopMatcher {
    stops: Vec<String>,
    pending: String,
    matched: Option<usize>,
}

impl NaiveStopMatcher {
    /// Empty strings and duplicates are dropped.
    pub fn new(stops: &[&str]) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for s in stops {
            if !s.is_empty() && !unique.iter().any(|u| u == s) {
                unique.push((*s).to_string());
            }
        }
        Self {
            stops: unique,
            ..Self::default()
        }
    }

    pub fn matched_stop(&self) -> Option<&str> {
        self.matched.map(|i| self.stops[i].as_str())
    }

    pub fn held_len(&self) -> usize {
        self.pending.len()
    }

    /// `(emit, stopped)`, as `StopMatcher::push`.
    pub fn push(&mut self, delta: &str) -> (String, bool) {
        if self.matched.is_some() {
            return (String::new(), true);
        }
        if self.stops.is_empty() {
            return (delta.to_owned(), false);
        }
        self.pending.push_str(delta);
        // Earliest end wins; at equal ends the longest (earliest start).
        let mut best: Option<(usize, usize, usize)> = None;
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
            return (std::mem::take(&mut self.pending), true);
        }
        let hold_from = self.hold_start();
        let held = self.pending.split_off(hold_from);
        (std::mem::replace(&mut self.pending, held), false)
    }

    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
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
