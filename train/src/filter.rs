//! Offline difficulty filtering and the difficulty curriculum (DAPO-style
//! "keep the problems the policy sometimes solves").
//!
//! `quorum train filter` samples k answers per problem with the starting
//! policy and judges them with the task's verifier; this module holds what
//! comes after: the pass rate p = correct / k, the band a problem must lie in
//! to be kept ([`Band`], inclusive), the histogram over the k + 1 possible
//! rates ([`Histogram`]), the per-problem [`RateRecord`] written to the rates
//! file, the kept records written back with `pass_rate` added
//! ([`with_pass_rate`]), and the easy-to-hard [`curriculum_order`] that reads
//! those rates back ([`task_pass_rates`]).

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{Prompt, Task, PASS_RATE_FIELD};

/// Slack when comparing a pass rate with a band edge: `0.2` written in a
/// flag and `1/5` computed agree exactly in f64, but `0.3` and `3/10` after
/// arithmetic elsewhere might not.
const EDGE_EPS: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("k must be at least 1 (answers sampled per problem)")]
    ZeroK,
    #[error("{correct} correct answers of k = {k}: more than were sampled")]
    TooManyCorrect { correct: usize, k: usize },
    #[error("`{text}`: {why} (expected LOW,HIGH with 0 <= LOW <= HIGH <= 1, e.g. 0.2,0.8)")]
    Band { text: String, why: String },
    #[error("record {index} is not a JSON object")]
    NotAnObject { index: usize },
}

/// The pass rate of `correct` answers out of `k` samples.
pub fn pass_rate(correct: usize, k: usize) -> Result<f64, FilterError> {
    if k == 0 {
        return Err(FilterError::ZeroK);
    }
    if correct > k {
        return Err(FilterError::TooManyCorrect { correct, k });
    }
    Ok(correct as f64 / k as f64)
}

/// The pass rates a problem must lie in to be kept: `lo <= p <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub lo: f64,
    pub hi: f64,
}

impl Band {
    pub fn new(lo: f64, hi: f64) -> Result<Self, FilterError> {
        let bad = |why: String| FilterError::Band {
            text: format!("{lo},{hi}"),
            why,
        };
        for (name, v) in [("LOW", lo), ("HIGH", hi)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!("{name} = {v} is not in [0, 1]")));
            }
        }
        if lo > hi {
            return Err(bad(format!("LOW = {lo} is above HIGH = {hi}")));
        }
        Ok(Band { lo, hi })
    }

    /// Whether `p` lies in the band (edges included).
    pub fn contains(&self, p: f64) -> bool {
        p >= self.lo - EDGE_EPS && p <= self.hi + EDGE_EPS
    }
}

impl Default for Band {
    /// The usual 0.2..0.8 (problems neither always nor never solved).
    fn default() -> Self {
        Band { lo: 0.2, hi: 0.8 }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.lo, self.hi)
    }
}

impl FromStr for Band {
    type Err = FilterError;

    /// `LOW,HIGH`, e.g. `0.2,0.8`.
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let bad = |why: &str| FilterError::Band {
            text: s.to_string(),
            why: why.to_string(),
        };
        let (lo, hi) = s
            .split_once(',')
            .ok_or_else(|| bad("no comma between LOW and HIGH"))?;
        let num = |t: &str, name: &str| {
            t.trim()
                .parse::<f64>()
                .map_err(|_| bad(&format!("{name} `{}` is not a number", t.trim())))
        };
        let (lo, hi) = (num(lo, "LOW")?, num(hi, "HIGH")?);
        Band::new(lo, hi).map_err(|e| match e {
            FilterError::Band { why, .. } => bad(&why),
            other => other,
        })
    }
}

/// Indices of the `rates` that lie in `band`, in order.
pub fn in_band(rates: &[f64], band: Band) -> Vec<usize> {
    (0..rates.len())
        .filter(|&i| band.contains(rates[i]))
        .collect()
}

/// Problems by number of correct answers: `counts[c]` problems had `c` of
/// `k` correct (k + 1 bins, pass rate c / k).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub k: usize,
    pub counts: Vec<usize>,
}

impl Histogram {
    /// The histogram of per-problem correct counts.
    pub fn new(k: usize, correct: &[usize]) -> Result<Self, FilterError> {
        if k == 0 {
            return Err(FilterError::ZeroK);
        }
        let mut counts = vec![0; k + 1];
        for &c in correct {
            if c > k {
                return Err(FilterError::TooManyCorrect { correct: c, k });
            }
            counts[c] += 1;
        }
        Ok(Histogram { k, counts })
    }

    /// The pass rate of bin `c`.
    pub fn rate(&self, c: usize) -> f64 {
        c as f64 / self.k as f64
    }

    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Problems in the bins inside `band`.
    pub fn in_band(&self, band: Band) -> usize {
        (0..self.counts.len())
            .filter(|&c| band.contains(self.rate(c)))
            .map(|c| self.counts[c])
            .sum()
    }

    /// One line per bin: `  3/16  0.188     12  ########  *` (a bar scaled to
    /// the largest bin, 40 wide; `*` marks the bins inside `band`).
    pub fn to_text(&self, band: Band) -> String {
        let max = self.counts.iter().copied().max().unwrap_or(0).max(1);
        let width = self.k.to_string().len();
        let count_width = max.to_string().len().max(5);
        let mut out = String::new();
        for (c, &n) in self.counts.iter().enumerate() {
            let bar = "#".repeat((n * 40).div_ceil(max));
            let mark = if band.contains(self.rate(c)) {
                "*"
            } else {
                " "
            };
            out.push_str(&format!(
                "{c:>width$}/{k}  {rate:.3}  {n:>count_width$}  {mark} {bar}\n",
                k = self.k,
                rate = self.rate(c),
            ));
        }
        out
    }
}

/// One problem's measurement, a line of the rates file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRecord {
    /// Position in the input (0-based, after loading).
    pub index: usize,
    /// The task id (the record's id field, else `file:line`).
    pub id: String,
    pub prompt: Prompt,
    /// The reference answer.
    pub answer: String,
    /// Answers judged correct by the task's verifier.
    pub correct: usize,
    /// Answers sampled.
    pub k: usize,
    pub pass_rate: f64,
    /// The pass rate lies in the band (the problem is in `--out`).
    pub kept: bool,
    /// Answers cut by the generation limit.
    pub truncated: usize,
    /// Mean generated tokens per answer.
    pub mean_tokens: f64,
}

/// The filter's result over all problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterStats {
    pub problems: usize,
    pub kept: usize,
    pub k: usize,
    pub band: Band,
    pub histogram: Histogram,
    /// Mean pass rate over all problems (0 with no problems).
    pub mean_pass_rate: f64,
    /// Problems every sample solved (no gradient for GRPO).
    pub all_correct: usize,
    /// Problems no sample solved (no gradient either).
    pub none_correct: usize,
}

impl FilterStats {
    pub fn of(records: &[RateRecord], k: usize, band: Band) -> Result<Self, FilterError> {
        let correct: Vec<usize> = records.iter().map(|r| r.correct).collect();
        let histogram = Histogram::new(k, &correct)?;
        let n = records.len();
        let mean_pass_rate = if n == 0 {
            0.0
        } else {
            records.iter().map(|r| r.pass_rate).sum::<f64>() / n as f64
        };
        Ok(FilterStats {
            problems: n,
            kept: records.iter().filter(|r| r.kept).count(),
            k,
            band,
            all_correct: histogram.counts[k],
            none_correct: histogram.counts[0],
            histogram,
            mean_pass_rate,
        })
    }
}

/// `record` (an input record as read) with `pass_rate` set, every other
/// field kept: the loader reads it back as the same task with
/// [`Task::pass_rate`]. `index` names the record in the error.
pub fn with_pass_rate(record: &Value, pass_rate: f64, index: usize) -> Result<Value, FilterError> {
    let Value::Object(obj) = record else {
        return Err(FilterError::NotAnObject { index });
    };
    Ok(Value::Object(with_pass_rate_map(obj, pass_rate)))
}

/// [`with_pass_rate`] on an object.
pub fn with_pass_rate_map(obj: &Map<String, Value>, pass_rate: f64) -> Map<String, Value> {
    let mut out = obj.clone();
    out.insert(PASS_RATE_FIELD.into(), Value::from(pass_rate));
    out
}

/// The measured pass rate of each task (`None` where the record had none).
pub fn task_pass_rates(tasks: &[Task]) -> Vec<Option<f64>> {
    tasks.iter().map(|t| t.pass_rate).collect()
}

/// The easy-to-hard order of problems: highest pass rate first, problems of
/// equal rate in a seeded random order, problems without a rate (or with a
/// NaN) last, themselves shuffled. A permutation of `0..pass_rates.len()`
/// that depends only on the rates and `seed`.
pub fn curriculum_order(pass_rates: &[Option<f64>], seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pass_rates.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let known = |i: usize| pass_rates[i].filter(|p| !p.is_nan());
    // Stable: equal keys keep the shuffled order.
    order.sort_by(|&a, &b| match (known(a), known(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    order
}

/// [`curriculum_order`] of loaded tasks (their `pass_rate` fields).
pub fn curriculum_order_of(tasks: &[Task], seed: u64) -> Vec<usize> {
    curriculum_order(&task_pass_rates(tasks), seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_tasks, LoadOptions};
    use serde_json::json;

    #[test]
    fn pass_rate_is_correct_over_k() {
        assert_eq!(pass_rate(3, 4), Ok(0.75));
        assert_eq!(pass_rate(0, 16), Ok(0.0));
        assert_eq!(pass_rate(16, 16), Ok(1.0));
        assert_eq!(pass_rate(1, 0), Err(FilterError::ZeroK));
        assert_eq!(
            pass_rate(5, 4),
            Err(FilterError::TooManyCorrect { correct: 5, k: 4 })
        );
    }

    #[test]
    fn band_parses_and_includes_its_edges() {
        let b: Band = "0.2,0.8".parse().unwrap();
        assert_eq!(b, Band { lo: 0.2, hi: 0.8 });
        assert_eq!(
            " 0 , 1 ".parse::<Band>().unwrap(),
            Band { lo: 0.0, hi: 1.0 }
        );
        // k = 5: 1/5 and 4/5 are the edges exactly, kept; 0 and 1 are not.
        let rates: Vec<f64> = (0..=5).map(|c| pass_rate(c, 5).unwrap()).collect();
        assert_eq!(in_band(&rates, b), vec![1, 2, 3, 4]);
        // k = 10: 2/10 .. 8/10.
        let rates: Vec<f64> = (0..=10).map(|c| pass_rate(c, 10).unwrap()).collect();
        assert_eq!(in_band(&rates, b), (2..=8).collect::<Vec<_>>());
        // k = 4: 0.25, 0.5, 0.75.
        let rates: Vec<f64> = (0..=4).map(|c| pass_rate(c, 4).unwrap()).collect();
        assert_eq!(in_band(&rates, b), vec![1, 2, 3]);
        // A one-point band.
        let exact: Band = "0.5,0.5".parse().unwrap();
        assert_eq!(in_band(&rates, exact), vec![2]);
    }

    #[test]
    fn band_errors_say_what_is_wrong() {
        let msg = |s: &str| s.parse::<Band>().unwrap_err().to_string();
        assert!(msg("0.2").contains("no comma"), "{}", msg("0.2"));
        assert!(
            msg("a,0.8").contains("LOW `a` is not a number"),
            "{}",
            msg("a,0.8")
        );
        assert!(
            msg("0.2,").contains("HIGH `` is not a number"),
            "{}",
            msg("0.2,")
        );
        assert!(msg("0.8,0.2").contains("LOW = 0.8 is above HIGH = 0.2"));
        assert!(msg("0.2,1.5").contains("HIGH = 1.5 is not in [0, 1]"));
        assert!(msg("-0.1,0.5").starts_with("`-0.1,0.5`: LOW = -0.1"));
        assert!(
            msg("nan,0.5").contains("not in [0, 1]"),
            "{}",
            msg("nan,0.5")
        );
    }

    #[test]
    fn histogram_counts_each_number_correct() {
        let h = Histogram::new(4, &[0, 4, 2, 2, 1, 4, 4]).unwrap();
        assert_eq!(h.counts, vec![1, 1, 2, 0, 3]);
        assert_eq!(h.total(), 7);
        assert_eq!(h.rate(1), 0.25);
        // 0.2..0.8 holds bins 1, 2, 3: 1 + 2 + 0.
        assert_eq!(h.in_band(Band::default()), 3);
        assert_eq!(Histogram::new(0, &[]).unwrap_err(), FilterError::ZeroK);
        assert!(Histogram::new(2, &[3]).is_err());
        let text = h.to_text(Band::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        // The largest bin (3) gets 40 #, one of 3 gets ceil(40/3) = 14.
        assert_eq!(lines[4], format!("4/4  1.000      3    {}", "#".repeat(40)));
        assert_eq!(lines[1], format!("1/4  0.250      1  * {}", "#".repeat(14)));
        assert_eq!(lines[3], "3/4  0.750      0  * ");
    }

    fn record(index: usize, correct: usize, k: usize, band: Band) -> RateRecord {
        let p = pass_rate(correct, k).unwrap();
        RateRecord {
            index,
            id: format!("t{index}"),
            prompt: Prompt::Text("Q".into()),
            answer: "1".into(),
            correct,
            k,
            pass_rate: p,
            kept: band.contains(p),
            truncated: 0,
            mean_tokens: 10.0,
        }
    }

    #[test]
    fn stats_over_records() {
        let band = Band::default();
        let recs: Vec<RateRecord> = [0, 1, 2, 4, 4]
            .iter()
            .enumerate()
            .map(|(i, &c)| record(i, c, 4, band))
            .collect();
        let s = FilterStats::of(&recs, 4, band).unwrap();
        assert_eq!(s.problems, 5);
        assert_eq!(s.kept, 2);
        assert_eq!(s.histogram.counts, vec![1, 1, 1, 0, 2]);
        // (0 + 0.25 + 0.5 + 1 + 1) / 5 = 0.55
        assert!((s.mean_pass_rate - 0.55).abs() < 1e-12);
        assert_eq!((s.all_correct, s.none_correct), (2, 1));
        let empty = FilterStats::of(&[], 4, band).unwrap();
        assert_eq!(
            (empty.problems, empty.kept, empty.mean_pass_rate),
            (0, 0, 0.0)
        );
    }

    #[test]
    fn rate_records_round_trip_as_jsonl_lines() {
        let r = record(3, 1, 4, Band::default());
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"index":3,"id":"t3","prompt":"Q","answer":"1","correct":1,"k":4,"pass_rate":0.25,"kept":true,"truncated":0,"mean_tokens":10.0}"#
        );
        assert_eq!(serde_json::from_str::<RateRecord>(&line).unwrap(), r);
    }

    #[test]
    fn kept_records_keep_their_fields_and_load_back_with_the_rate() {
        let rec = json!({"question": "2+2?", "answer": "4", "extra": {"a": 1}});
        let out = with_pass_rate(&rec, 0.25, 0).unwrap();
        assert_eq!(
            out,
            json!({"question": "2+2?", "answer": "4", "extra": {"a": 1}, "pass_rate": 0.25})
        );
        assert_eq!(
            with_pass_rate(&json!([1]), 0.5, 7).unwrap_err(),
            FilterError::NotAnObject { index: 7 }
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.jsonl");
        std::fs::write(
            &path,
            format!("{out}\n{}\n", json!({"question": "1+1?", "answer": "2"})),
        )
        .unwrap();
        let opts = LoadOptions {
            fields: crate::data::FieldMap {
                prompt: "question".into(),
                ..Default::default()
            },
            ..LoadOptions::default()
        };
        let tasks = load_tasks(&[&path], &opts).unwrap().tasks;
        assert_eq!(task_pass_rates(&tasks), vec![Some(0.25), None]);
        assert_eq!(tasks[0].answer.as_deref(), Some("4"));
    }

    #[test]
    fn a_bad_pass_rate_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        for (bad, why) in [
            (json!(1.5), "1.5 is not in [0, 1]"),
            (json!("0.5"), "expected a number in [0, 1], found a string"),
        ] {
            std::fs::write(
                &path,
                format!(
                    "{}\n{}\n",
                    json!({"prompt": "a", "answer": "1"}),
                    json!({"prompt": "b", "answer": "2", "pass_rate": bad})
                ),
            )
            .unwrap();
            let e = load_tasks(&[&path], &LoadOptions::default()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{}:2: field `pass_rate`: {why}", path.display())
            );
        }
    }

    #[test]
    fn curriculum_goes_easy_to_hard_with_unknown_rates_last() {
        let rates = [
            Some(0.5),
            None,
            Some(1.0),
            Some(0.5),
            Some(0.0),
            Some(f64::NAN),
        ];
        for seed in 0..20 {
            let o = curriculum_order(&rates, seed);
            assert_eq!(o[0], 2);
            let mut mid = [o[1], o[2]];
            mid.sort();
            assert_eq!(mid, [0, 3]);
            assert_eq!(o[3], 4);
            let mut tail = [o[4], o[5]];
            tail.sort();
            assert_eq!(tail, [1, 5]);
            assert_eq!(o, curriculum_order(&rates, seed), "deterministic");
        }
    }

    #[test]
    fn curriculum_ties_are_broken_by_the_seed() {
        // Eight problems of one rate: the order is the seeded shuffle, so
        // different seeds give different orders, each a permutation.
        let rates = vec![Some(0.5); 8];
        let a = curriculum_order(&rates, 1);
        let b = curriculum_order(&rates, 2);
        assert_ne!(a, b);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..8).collect::<Vec<_>>());
        // A distinct rate per problem leaves nothing to the seed.
        let rates: Vec<Option<f64>> = [0.1, 0.9, 0.5, 0.7].into_iter().map(Some).collect();
        for seed in 0..5 {
            assert_eq!(curriculum_order(&rates, seed), vec![1, 3, 2, 0]);
        }
        assert!(curriculum_order(&[], 3).is_empty());
    }
}
