//! `quorum bench selection` inputs: the tasks file, the `--strategy`
//! values (parsed as the server parses `selection`) and `--logit-bias`.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::server::openai::SelectionOptions;
use crate::server::selection::needs_reward;

pub fn parse_bias(s: &str) -> Result<(u32, f32), String> {
    let (id, bias) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected TOKEN_ID=BIAS"))?;
    let id = id
        .trim()
        .parse()
        .map_err(|e| format!("`{s}`: token id: {e}"))?;
    let bias = bias
        .trim()
        .parse()
        .map_err(|e| format!("`{s}`: bias: {e}"))?;
    Ok((id, bias))
}

/// One line of the tasks file.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub prompt: String,
    /// A string, or a JSON number.
    pub gold: Value,
    #[serde(default)]
    pub system: Option<String>,
}

impl Task {
    pub fn gold_text(&self) -> String {
        match &self.gold {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Parses a tasks file (blank lines skipped); errors name the line.
pub fn parse_tasks(text: &str, origin: &str) -> anyhow::Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let task: Task = serde_json::from_str(line).with_context(|| {
            format!(
                "{origin}:{}: expected {{\"prompt\": ..., \"gold\": ..., \"system\"?: ...}}",
                k + 1
            )
        })?;
        if task.gold.is_null() || task.gold_text().trim().is_empty() {
            bail!("{origin}:{}: `gold` is empty", k + 1);
        }
        tasks.push(task);
    }
    Ok(tasks)
}

pub fn load_tasks(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Task>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading tasks from {}", path.display()))?;
    let mut tasks = parse_tasks(&text, &path.display().to_string())?;
    tasks.truncate(limit.unwrap_or(usize::MAX));
    if tasks.is_empty() {
        bail!("{}: no tasks", path.display());
    }
    Ok(tasks)
}

/// The `--strategy` values as `selection` objects: a JSON object is one
/// strategy, anything else a comma-separated list of names.
pub fn strategy_specs(values: &[String]) -> anyhow::Result<Vec<Map<String, Value>>> {
    let mut specs = Vec::new();
    for v in values {
        if v.trim_start().starts_with('{') {
            match serde_json::from_str(v).with_context(|| format!("--strategy {v}"))? {
                Value::Object(m) => specs.push(m),
                _ => bail!("--strategy {v}: expected a JSON object"),
            }
        } else {
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let mut m = Map::new();
                m.insert("strategy".into(), json!(name));
                specs.push(m);
            }
        }
    }
    Ok(specs)
}

/// A row label: the strategy name, then its parameters (`confidence(group_size=16)`).
pub fn label(spec: &Map<String, Value>) -> String {
    let name = spec.get("strategy").and_then(Value::as_str).unwrap_or("?");
    let params: Vec<String> = spec
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "strategy" | "early_stop"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if params.is_empty() {
        name.to_string()
    } else {
        format!("{name}({})", params.join(","))
    }
}

/// `spec` as the server parses `selection`, with `early_stop` set.
pub fn strategy(
    spec: &Map<String, Value>,
    early_stop: bool,
    warmup: Option<usize>,
) -> anyhow::Result<SelectionOptions> {
    let mut v = spec.clone();
    v.insert("early_stop".into(), json!(early_stop));
    if let Some(w) = warmup {
        v.entry("warmup").or_insert(json!(w));
    }
    let what = label(spec);
    let opts = SelectionOptions::parse(&Value::Object(v))
        .map_err(|e| anyhow!("--strategy {what}: {e}"))?;
    if needs_reward(&opts.config) {
        bail!("--strategy {what} needs a reward model, which `bench selection` does not load (use majority, confidence or first)");
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_parse_and_bad_lines_name_their_number() {
        let ok = "{\"prompt\": \"1+1?\", \"gold\": 2}\n\n{\"prompt\": \"p\", \"gold\": \"3/4\", \"system\": \"s\"}\n";
        let t = parse_tasks(ok, "t.jsonl").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].gold_text(), t[1].gold_text()),
            ("2".into(), "3/4".into())
        );
        assert_eq!(t[1].system.as_deref(), Some("s"));
        let e = parse_tasks(
            "{\"prompt\": \"a\", \"gold\": 1}\n{\"prompt\": \"b\"}\n",
            "t.jsonl",
        )
        .unwrap_err();
        assert!(format!("{e:#}").starts_with("t.jsonl:2: "), "{e:#}");
        let e = parse_tasks("not json", "x").unwrap_err();
        assert!(format!("{e:#}").starts_with("x:1: "), "{e:#}");
        let e = parse_tasks("{\"prompt\": \"a\", \"gold\": \" \"}", "x").unwrap_err();
        assert!(e.to_string().contains("`gold` is empty"));
    }

    #[test]
    fn strategies_parse_like_the_server_and_reward_ones_are_refused() {
        let specs = strategy_specs(&[
            "majority, confidence".into(),
            r#"{"strategy": "confidence", "group_size": 16, "warmup": 3}"#.into(),
        ])
        .unwrap();
        let labels: Vec<String> = specs.iter().map(label).collect();
        assert_eq!(
            labels,
            [
                "majority",
                "confidence",
                "confidence(group_size=16,warmup=3)"
            ]
        );
        assert!(strategy(&specs[0], true, None).unwrap().early_stop);
        assert_eq!(strategy(&specs[1], false, Some(2)).unwrap().warmup, Some(2));
        // The spec's own warmup wins over --warmup.
        assert_eq!(strategy(&specs[2], true, Some(2)).unwrap().warmup, Some(3));
        for bad in ["best_of_n", "vibes"] {
            let spec = &strategy_specs(&[bad.into()]).unwrap()[0];
            assert!(strategy(spec, false, None).is_err(), "{bad}");
        }
        assert!(strategy_specs(&["{\"strategy\": ".into()]).is_err());
    }

    #[test]
    fn logit_bias_flags() {
        assert_eq!(parse_bias("151645=5"), Ok((151645, 5.0)));
        assert!(parse_bias("5").is_err() && parse_bias("x=1").is_err());
    }
}
