//! Data errors: each names the file and line (or row) and the field.

use std::path::PathBuf;

use super::location::Location;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read Parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{}: unknown file type (expected .jsonl, .json, .ndjson or .parquet)", path.display())]
    UnknownFormat { path: PathBuf },
    /// A line that is not a JSON object.
    #[error("{loc}: malformed record: {message}")]
    Malformed { loc: Location, message: String },
    /// None of the fields that may hold this value is present.
    #[error("{loc}: missing field `{field}`")]
    MissingField { loc: Location, field: String },
    /// A field is present with the wrong shape.
    #[error("{loc}: field `{field}`: {message}")]
    BadField {
        loc: Location,
        field: String,
        message: String,
    },
    #[error("{loc}: verifier `{name}`: {message}")]
    UnknownVerifier {
        loc: Location,
        name: String,
        message: String,
    },
    #[error("{loc}: nothing to train on (no assistant message, solution or answer)")]
    NoSftTarget { loc: Location },
    #[error("no tasks in {files}{}", skipped_note(*.skipped))]
    Empty { files: String, skipped: usize },
    /// Reference answers that their verifier cannot use (see `check_references`).
    #[error("{count} reference answer(s) cannot be checked by their verifier:\n{}", first.join("\n"))]
    BadReferences { count: usize, first: Vec<String> },
}

fn skipped_note(skipped: usize) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} malformed record(s) skipped)")
    }
}

impl DataError {
    /// Whether this error concerns one record (and may be skipped).
    pub fn is_per_record(&self) -> bool {
        matches!(
            self,
            DataError::Malformed { .. }
                | DataError::MissingField { .. }
                | DataError::BadField { .. }
                | DataError::UnknownVerifier { .. }
        )
    }
}
