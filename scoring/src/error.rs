//! Error type for the scoring crate.

/// Errors raised by configuration, registries and hooks.
///
/// Answer comparison itself never errors: an undecidable comparison is
/// reported as "not equal" with a reason instead.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// `verifier_by_name` was given a name it does not know.
    #[error("unknown verifier `{0}` (known: math, gsm8k, exact, exact_ci, numeric, choice, countdown, regex:<pattern>, code)")]
    UnknownVerifier(String),
    /// A regular expression failed to compile.
    #[error("invalid regex `{pattern}`: {message}")]
    InvalidRegex { pattern: String, message: String },
    /// The verifier exists but needs a hook (e.g. a code sandbox) to be supplied.
    #[error("verifier `{0}` needs a hook; construct it directly with a hook")]
    NeedsHook(String),
    /// A selection config or extraction config is invalid.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A reward scorer failed or returned the wrong number of scores.
    #[error("reward scorer failed: {0}")]
    Scorer(String),
    /// A code-execution hook failed to run (not the same as failing tests).
    #[error("code execution failed: {0}")]
    Execution(String),
}
