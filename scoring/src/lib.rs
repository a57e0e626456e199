//! Scoring for Quorum: answer extraction, math-aware equivalence,
//! verifiers and answer selection. Pure Rust, no model.
//!
//! # Pipeline
//!
//! 1. **Extract** ([`extract`]): take the text after the last `</think>`
//!    and pull out the final answer with configurable extractors
//!    (`\boxed{}`, "the answer is", `####`, `Answer:`, choice letter, the
//!    last math span `$…$`/`\(…\)`/`\[…\]` ([`math_spans`]), last number),
//!    see [`ExtractConfig`]. An optional user regex
//!    ([`ExtractConfig::regex`], an [`AnswerPattern`] compiled once) runs
//!    first: group 1 of its last match, or the whole match without groups;
//!    no match falls through to the extractors.
//! 2. **Normalize** ([`normalize`]): strip LaTeX/presentation noise
//!    (`\text{}`, `\left`, `$`, units, `^\circ`, thousands separators) and
//!    parse into a structured [`Answer`]: exact rationals (`3/4`, `0.75`,
//!    `\frac34`, `1\frac{1}{2}`, `50%`, `1.5e3`), real expressions (`\sqrt2`,
//!    `2\pi`), expressions in single-letter variables, ordered tuples and
//!    intervals, unordered sets/lists (`\pm`, `x \in S`, `\mathbb{R}`,
//!    "x = 1 or x = 6"), matrices, equations (`y = 7`, see
//!    [`math::equation`]), or case-insensitive text.
//! 3. **Compare** ([`equivalent`], [`compare`]): exact rational equality
//!    when both sides are rational, else relative tolerance (1e-6), numeric
//!    identity testing at sample points for expressions with variables
//!    ([`math::identity`]), multiset matching for lists (duplicates dropped
//!    in sets). Undecidable comparisons are "not equal" with a reason; nothing
//!    panics on arbitrary input and all recursion is depth-bounded.
//! 4. **Verify** ([`Verifier`], [`verifier_by_name`]): per-task correctness
//!    (math, exact, regex, numeric, multiple-choice, countdown, code hook).
//! 5. **Select** ([`select`]): pick one of N rollouts — first, majority
//!    (self-consistency), best-of-N by reward score, weighted majority,
//!    or DeepConf-style confidence filtering — producing a serializable
//!    [`Selection`]; [`majority_decided`] supports adaptive early stopping.

mod braces;
pub mod compare;
pub mod countdown;
pub mod equivalence;
pub mod error;
pub mod extract;
pub mod math;
pub mod math_spans;
pub mod reward;
pub mod select;
pub mod verdict;
pub mod verifier;

pub use compare::{compare, compare_with, Comparison};
pub use countdown::CountdownVerifier;
pub use equivalence::{answers_equivalent, equivalent, equivalent_with, Judgement};
pub use error::ScoringError;
pub use extract::{
    after_think, extract, extract_answer, AnswerPattern, ExtractConfig, Extracted, Extractor,
};
pub use math::answer::{normalize, Answer, CollKind};
pub use math::number::{Rational, Tolerance, Value};
pub use reward::{score_checked, RewardScorer};
pub use select::{
    majority_decided, BestOfN, ClusterSummary, ConfidenceMetric, ConfidenceSelector, First,
    Majority, MissingScores, RolloutSummary, RolloutVote, Selection, SelectionConfig, Selector,
    WeightSource, WeightedMajority,
};
pub use verifier::{
    verifier_by_name, ChoiceVerifier, CodeOutcome, CodeRunner, CodeVerifier, ExactVerifier,
    MathVerifier, NumericVerifier, RegexVerifier, Verdict, Verifier,
};
