//! JSONL task files: one JSON object per line; blank lines are ignored.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use super::error::DataError;
use super::location::Location;

/// Calls `each` with every non-blank line parsed as JSON (or the error
/// naming `file:line`). I/O errors stop the read.
pub(crate) fn read_records(
    path: &Path,
    reader: impl BufRead,
    mut each: impl FnMut(Result<(Location, Value), DataError>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let file = path.display().to_string();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let loc = Location {
            file: file.clone(),
            line: i + 1,
        };
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(e) => {
                each(Err(DataError::Malformed {
                    loc,
                    message: format!("not UTF-8 ({e})"),
                }))?;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(text).map_err(|e| DataError::Malformed {
            loc: loc.clone(),
            message: json_message(&e, text),
        });
        each(parsed.map(|v| (loc, v)))?;
    }
    Ok(())
}

/// serde_json's message without "at line 1" (the line is ours), with a
/// hint for a whole-file JSON array.
fn json_message(e: &serde_json::Error, text: &str) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line 1 column ") {
        Some(i) => format!("{} at column {}", &msg[..i], e.column()),
        None => msg,
    };
    if text == "[" || (text.starts_with('[') && text.ends_with(',')) {
        format!("{msg} (a JSON array? task files are JSONL: one object per line)")
    } else {
        msg
    }
}
