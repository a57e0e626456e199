//! [`Location`]: where a record came from, named by every per-record error.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a record came from: a file and its 1-based line (JSONL) or row
/// (Parquet). Displays as `tasks.jsonl:17`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}
