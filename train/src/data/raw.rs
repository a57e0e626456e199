//! Task files read as raw JSON objects, keyed by their location, for tools
//! that write records back with a field added (`quorum train filter` keeps
//! every original field and adds `pass_rate`). Records that are not JSON
//! objects are left out: [`super::load_tasks`] is the one that reports them.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde_json::{Map, Value};

use super::error::DataError;
use super::load::FileFormat;
use super::location::Location;

/// Every JSON-object record of `paths` by its `file:line` (the same
/// [`Location`] the loaded [`super::Task`]s carry). A Parquet row becomes the
/// object the loader maps (nested columns as nested objects).
pub fn read_raw_records<P: AsRef<Path>>(
    paths: &[P],
) -> Result<HashMap<Location, Map<String, Value>>, DataError> {
    let mut out = HashMap::new();
    for path in paths {
        let path = path.as_ref();
        let mut each = |rec: Result<(Location, Value), DataError>| {
            if let Ok((loc, Value::Object(obj))) = rec {
                out.insert(loc, obj);
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
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_by_line_skipping_blank_and_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\":\"a\",\"x\":1}\n\n[1,2]\nnot json\n{\"prompt\":\"b\"}\n",
        )
        .unwrap();
        let recs = read_raw_records(&[&path]).unwrap();
        assert_eq!(recs.len(), 2);
        let at = |line| Location {
            file: path.display().to_string(),
            line,
        };
        assert_eq!(recs[&at(1)]["x"], 1);
        assert_eq!(recs[&at(5)]["prompt"], "b");
    }
}
