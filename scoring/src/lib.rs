//! Scoring: answer extraction, equivalence, verifiers, selection.
