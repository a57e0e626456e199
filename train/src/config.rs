//! Training configs: a TOML file plus `key.path=value` command-line
//! overrides (every value can be overridden), deserialized strictly — an
//! unknown key is an error naming its full path.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Result, TrainError};

/// Parse `text` (from `origin`, for messages), apply `overrides`
/// (`a.b.c=VALUE`, VALUE a TOML literal or else a bare string), and
/// deserialize. Returns the config and the resolved TOML table (saved next
/// to the checkpoints).
pub fn parse_with_overrides<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    overrides: &[String],
) -> Result<(T, toml::Table)> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| TrainError::config(origin, e.to_string()))?;
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let value = toml::Value::Table(table.clone());
    let cfg = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        TrainError::config(
            if key == "." { origin.to_string() } else { key },
            e.into_inner().to_string(),
        )
    })?;
    Ok((cfg, table))
}

/// Read and parse a config file with overrides.
pub fn load_with_overrides<T: DeserializeOwned>(
    path: &Path,
    overrides: &[String],
) -> Result<(T, toml::Table)> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse_with_overrides(&text, &path.display().to_string(), overrides)
}

fn apply_override(table: &mut toml::Table, o: &str) -> Result<()> {
    let (key, raw) = o
        .split_once('=')
        .ok_or_else(|| TrainError::config(o, "an override is KEY=VALUE (e.g. optim.lr=3e-4)"))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(TrainError::config(key, "empty key segment"));
    }
    let value = parse_value(raw.trim());
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| TrainError::config(key, format!("`{p}` is not a table")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// A TOML literal (`3e-4`, `true`, `[1, 2]`, `"x"`) or else the raw text
/// as a string (`data.train=tasks.jsonl`).
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        optim: Optim,
        #[serde(default)]
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Optim {
        lr: f64,
        #[serde(default)]
        steps: u64,
    }

    #[test]
    fn overrides_replace_and_add_values() {
        let (c, t): (Cfg, _) = parse_with_overrides(
            "[optim]\nlr = 0.1\n",
            "x.toml",
            &[
                "optim.lr=3e-4".into(),
                "optim.steps=7".into(),
                "name=run-a".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.optim, Optim { lr: 3e-4, steps: 7 });
        assert_eq!(c.name, "run-a");
        assert_eq!(t["optim"]["steps"].as_integer(), Some(7));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse_with_overrides::<Cfg>("[optim]\nlr = 0.1\nlrr = 2\n", "x.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("optim") && e.contains("lrr"), "{e}");
        let e =
            parse_with_overrides::<Cfg>("[optim]\nlr = 0.1\n", "x.toml", &["optim.bogus=1".into()])
                .unwrap_err()
                .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse_with_overrides::<Cfg>("[optim]\nlr = 'a'\n", "x.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("optim.lr"), "{e}");
        assert!(parse_with_overrides::<Cfg>("", "x.toml", &["novalue".into()]).is_err());
    }
}
