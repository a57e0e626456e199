//! Parquet task files (HF datasets), through the parquet crate's row API:
//! each row becomes the JSON object the JSONL path sees, so one field
//! mapping serves both. Row numbers are 1-based.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::SerializedFileReader;
use serde_json::Value;

use super::error::DataError;
use super::location::Location;

pub(crate) fn read_records(
    path: &Path,
    mut each: impl FnMut(Result<(Location, Value), DataError>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let bad = |e: parquet::errors::ParquetError| DataError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let name = path.display().to_string();
    for (i, row) in reader.into_iter().enumerate() {
        let row = row.map_err(bad)?;
        let loc = Location {
            file: name.clone(),
            line: i + 1,
        };
        each(Ok((loc, row.to_json_value())))?;
    }
    Ok(())
}
