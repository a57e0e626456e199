//! Per-token cost of stop-string matching with many long stop strings: the
//! naive matcher it replaced (search every stop string in the held text plus
//! the delta, then scan every stop string for the hold-back) vs
//! `StopMatcher` (one shared Aho–Corasick automaton, one transition per
//! byte).
//!
//! `cargo bench --bench stop_strings` (plain `Instant` timing, no harness).
//! 16 stop strings of 1,024 bytes (the server's default limits) over a
//! generated text streamed in 1–6 byte deltas, like detokenized tokens, in
//! two cases:
//! * `disjoint` — stop strings unrelated to the text (nothing is held);
//! * `prefixes` — each stop string is a 1,023-byte window of the text plus
//!   one byte that never follows, so long prefixes are held again and again.
//!
//! Reported: median ns per token of each matcher (variants interleaved round
//! by round) and their ratio, plus the median time of the once-per-request
//! build of the automaton. Both matchers' outputs are checked to be identical.
//!
//! Env: `STOP_BENCH_SECS` (time budget per variant per case, default 1),
//! `STOP_BENCH_STOPS` (default 16), `STOP_BENCH_BYTES` (default 1024).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorum::engine::stop::{StopMatcher, StopStrings};

// The bench uses only part of the oracle's API.
#[allow(dead_code)]
#[path = "../src/engine/stop_reference.rs"]
mod stop_reference;
use stop_reference::NaiveStopMatcher;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic generator (xorshift) so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: [&str; 16] = [
    "the", "answer", "is", "forty", "two", "because", "we", "add", "six", "and", "seven", "then",
    "multiply", "so", "x", "=",
];

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut t = String::with_capacity(bytes + 16);
    while t.len() < bytes {
        t.push_str(WORDS[rng.below(WORDS.len())]);
        t.push(if rng.below(8) == 0 { '\n' } else { ' ' });
    }
    t
}

fn deltas(rng: &mut Rng, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let end = (at + 1 + rng.below(6)).min(text.len());
        out.push(text[at..end].to_string());
        at = end;
    }
    out
}

fn run_new(strings: &Arc<StopStrings>, deltas: &[String]) -> String {
    let mut m = StopMatcher::new(strings.clone());
    let mut out = String::new();
    for d in deltas {
        let o = m.push(d);
        out.push_str(&o.emit);
        if o.stopped {
            return out;
        }
    }
    out.push_str(&m.flush());
    out
}

fn run_naive(stops: &[&str], deltas: &[String]) -> String {
    let mut m = NaiveStopMatcher::new(stops);
    let mut out = String::new();
    for d in deltas {
        let (emit, stopped) = m.push(d);
        out.push_str(&emit);
        if stopped {
            return out;
        }
    }
    out.push_str(&m.flush());
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let budget = Duration::from_secs_f64(env_num("STOP_BENCH_SECS", 1) as f64);
    let count = env_num("STOP_BENCH_STOPS", 16);
    let bytes = env_num("STOP_BENCH_BYTES", 1024).max(2);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let stream = text(&mut rng, 64 << 10);
    let deltas = deltas(&mut rng, &stream);
    let tokens = deltas.len();

    let disjoint: Vec<String> = (0..count)
        .map(|i| {
            let mut s = format!("<{i}|");
            while s.len() < bytes {
                s.push(char::from(b'A' + rng.below(26) as u8));
            }
            s.truncate(bytes);
            s
        })
        .collect();
    // `#` never occurs in the text, so these are held but never complete.
    let prefixes: Vec<String> = (0..count)
        .map(|i| {
            let from = (i * 997) % (stream.len() - bytes);
            format!("{}#", &stream[from..from + bytes - 1])
        })
        .collect();

    println!(
        "{count} stop strings x {bytes} bytes, {tokens} tokens ({} KiB of text)",
        stream.len() >> 10
    );
    println!(
        "{:<9} {:>14} {:>16} {:>8} {:>10}",
        "case", "naive ns/tok", "automaton ns/tok", "ratio", "build us"
    );
    for (case, stops) in [("disjoint", &disjoint), ("prefixes", &prefixes)] {
        let refs: Vec<&str> = stops.iter().map(String::as_str).collect();
        let mut builds: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                black_box(StopStrings::new(stops.clone()).expect("stop strings compile"));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let build_us = median(&mut builds);
        let strings = Arc::new(StopStrings::new(stops.clone()).expect("stop strings compile"));
        assert_eq!(
            run_new(&strings, &deltas),
            run_naive(&refs, &deltas),
            "matchers disagree"
        );
        let (mut naive, mut auto) = (Vec::new(), Vec::new());
        let (mut spent_naive, mut spent_auto) = (Duration::ZERO, Duration::ZERO);
        while spent_naive < budget || spent_auto < budget || naive.len() < 3 {
            let t = Instant::now();
            black_box(run_naive(&refs, black_box(&deltas)));
            let d = t.elapsed();
            spent_naive += d;
            naive.push(d.as_secs_f64() * 1e9 / tokens as f64);
            let t = Instant::now();
            black_box(run_new(&strings, black_box(&deltas)));
            let d = t.elapsed();
            spent_auto += d;
            auto.push(d.as_secs_f64() * 1e9 / tokens as f64);
        }
        let (n, a) = (median(&mut naive), median(&mut auto));
        println!(
            "{case:<9} {n:>14.1} {a:>16.1} {:>7.1}x {build_us:>10.0}",
            n / a
        );
    }
}
