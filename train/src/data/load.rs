//! Loading task files: JSONL or Parquet, chosen by extension.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::DataError;
use super::fields::LoadOptions;
use super::record::{task_from_value, VerifierNames};
use super::task::Task;

/// Skipped-record messages kept in the report.
pub const FIRST_ERRORS: usize = 5;

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub files: Vec<PathBuf>,
    pub loaded: usize,
    /// Records skipped under `skip_malformed`.
    pub skipped: usize,
    /// The first [`FIRST_ERRORS`] skip reasons (`file:line: …`).
    pub first_errors: Vec<String>,
}

/// The tasks of one or more files, in file then line order.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub tasks: Vec<Task>,
    pub report: LoadReport,
}

/// The file formats the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Jsonl,
    Parquet,
}

impl FileFormat {
    /// By extension: `.jsonl`, `.ndjson`, `.json` → JSONL; `.parquet`, `.pq` → Parquet.
    pub fn of(path: &Path) -> Result<Self, DataError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl" | "ndjson" | "json") => Ok(FileFormat::Jsonl),
            Some("parquet" | "pq") => Ok(FileFormat::Parquet),
            _ => Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Loads every file with the same options. A malformed record is an error
/// naming `file:line` unless `skip_malformed` (then it is counted in the
/// report); no tasks at all is [`DataError::Empty`].
pub fn load_tasks<P: AsRef<Path>>(paths: &[P], opts: &LoadOptions) -> Result<Loaded, DataError> {
    let mut tasks = Vec::new();
    let mut report = LoadReport::default();
    let mut verifiers = VerifierNames::default();
    for path in paths {
        let path = path.as_ref();
        let mut each = |rec: Result<_, DataError>| {
            let task =
                rec.and_then(|(loc, value)| task_from_value(&value, &loc, opts, &mut verifiers));
            match task {
                Ok(t) => tasks.push(t),
                Err(e) if opts.skip_malformed && e.is_per_record() => {
                    report.skipped += 1;
                    if report.first_errors.len() < FIRST_ERRORS {
                        report.first_errors.push(e.to_string());
                    }
                }
                Err(e) => return Err(e),
            }
            Ok(())
        };
        match FileFormat::of(path)? {
            FileFormat::Jsonl => {
                let file = File::open(path).map_err(|source| DataError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                super::jsonl::read_records(path, BufReader::new(file), &mut each)?;
            }
            FileFormat::Parquet => super::parquet_rows::read_records(path, &mut each)?,
        }
        report.files.push(path.to_path_buf());
    }
    if tasks.is_empty() {
        let files = paths
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(DataError::Empty {
            files: if files.is_empty() {
                "(no files)".into()
            } else {
                files
            },
            skipped: report.skipped,
        });
    }
    report.loaded = tasks.len();
    Ok(Loaded { tasks, report })
}
