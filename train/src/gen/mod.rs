//! Built-in task generators with worked reasoning traces: `arithmetic`
//! (column addition/subtraction, long multiplication, multi-step
//! expressions) and `countdown`.
//!
//! Deterministic by seed (a SplitMix64 stream, [`rng::Rng`]). Train and test
//! never share a problem: a problem's split is decided by a hash of its
//! canonical text ([`split_of`]: FNV-1a 64, mixed, 1 in 10 is test), and
//! [`generate`] draws until it has N problems of the requested split, so
//! any two seeds keep the splits apart. A run never repeats a problem.
//!
//! Output records ([`format`]): task records (`prompt`, `answer`,
//! `verifier`, `solution` = the trace) and SFT conversations, think on
//! (`<think>\nTRACE\n</think>\n\n\boxed{N}`) or off (`\boxed{N}`), with the
//! toggles the server understands spread over the examples.

pub mod arithmetic;
pub mod columns;
pub mod countdown;
pub mod format;
pub mod rng;
mod span;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use arithmetic::{ArithConfig, ArithOp, Arithmetic};
pub use countdown::{Countdown, CountdownConfig};
pub use format::{sft_record, task_record, SftRecord, TaskRecord, ThinkMix, Toggle};
pub use rng::Rng;
pub use span::Span;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    #[error("invalid generator options: {0}")]
    BadConfig(String),
    /// The options allow too few distinct problems of this split.
    #[error("found only {found} distinct {split} problems of {wanted} after {draws} draws; widen the options (more digits, numbers or ops)")]
    Exhausted {
        wanted: usize,
        found: usize,
        draws: u64,
        split: Split,
    },
}

/// Train or test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    #[default]
    Train,
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

impl FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            other => Err(format!("unknown split `{other}` (train, test)")),
        }
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Test problems per 100.
pub const TEST_PERCENT: u64 = 10;

/// A problem's split, from its canonical text alone.
pub fn split_of(canonical: &str) -> Split {
    if rng::mix64(fnv1a64(canonical.as_bytes())) % 100 < TEST_PERCENT {
        Split::Test
    } else {
        Split::Train
    }
}

/// One generated problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The problem up to presentation (`a+b` with sorted operands; countdown
    /// numbers sorted): what decides the split and the id.
    pub canonical: String,
    /// The user message: `Compute 4821*37.`, `Make 24 from 3 5 7 8.`
    pub prompt: String,
    /// The worked reasoning (the think content).
    pub trace: String,
    /// The reference answer (`\boxed{answer}` is the final answer).
    pub answer: String,
    pub verifier: &'static str,
}

impl Problem {
    pub fn split(&self) -> Split {
        split_of(&self.canonical)
    }

    /// `KIND-` + 16 hex digits of the canonical hash: the same problem has
    /// the same id whatever the seed.
    pub fn id(&self, kind: &str) -> String {
        format!("{kind}-{:016x}", fnv1a64(self.canonical.as_bytes()))
    }
}

/// A source of random problems.
pub trait TaskGenerator {
    /// `arithmetic`, `countdown`: the id prefix.
    fn kind(&self) -> &'static str;
    fn draw(&self, rng: &mut Rng) -> Problem;
}

/// Draws per wanted problem before [`GenError::Exhausted`].
const DRAWS_PER_PROBLEM: u64 = 200;

/// The first `n` distinct problems of `split` drawn from `seed`'s stream.
pub fn generate<'a>(gen: &'a dyn TaskGenerator, n: usize, seed: u64, split: Split) -> Problems<'a> {
    Problems {
        gen,
        rng: Rng::new(seed),
        split,
        wanted: n,
        seen: HashSet::new(),
        draws: 0,
        failed: false,
    }
}

/// The iterator [`generate`] returns; yields one error and stops when the
/// options cannot give `n` distinct problems.
pub struct Problems<'a> {
    gen: &'a dyn TaskGenerator,
    rng: Rng,
    split: Split,
    wanted: usize,
    seen: HashSet<String>,
    draws: u64,
    failed: bool,
}

impl Iterator for Problems<'_> {
    type Item = Result<Problem, GenError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.seen.len() >= self.wanted {
            return None;
        }
        let budget = DRAWS_PER_PROBLEM * (self.wanted as u64 + 50);
        while self.draws < budget {
            self.draws += 1;
            let p = self.gen.draw(&mut self.rng);
            if p.split() == self.split && self.seen.insert(p.canonical.clone()) {
                return Some(Ok(p));
            }
        }
        self.failed = true;
        Some(Err(GenError::Exhausted {
            wanted: self.wanted,
            found: self.seen.len(),
            draws: self.draws,
            split: self.split,
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.wanted.saturating_sub(self.seen.len());
        (0, Some(left + 1))
    }
}
