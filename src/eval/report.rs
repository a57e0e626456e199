//! What `quorum bench eval` reports: the table on stdout, `results.json`
//! ([`EvalResults`]), `results.csv` (one row per configuration, N and
//! strategy), and the plots ([`super::plots`]), all from the results of
//! [`super::results`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::results::{accuracy, EvalResults};
use crate::atomic_write::write_atomic;

/// The stdout table: one block per configuration, one line per N.
pub fn table(r: &EvalResults) -> String {
    let mut s = String::new();
    for c in &r.configs {
        let _ = writeln!(
            s,
            "{} — {} problems × {} samples: {:.1} tokens/sample, {:.0}% cut at {} tokens, {:.0} ms/request",
            c.label,
            r.problems,
            r.samples_per_problem,
            c.mean_tokens_per_sample,
            100.0 * c.truncated,
            r.max_tokens,
            c.mean_latency_ms
        );
        let mut head = format!("{:>4} {:>8}", "N", "pass@N");
        for name in &r.strategies {
            let w = name.len().max(8);
            let _ = write!(head, " {name:>w$}");
        }
        let _ = write!(head, " {:>14}", "tokens/problem");
        let _ = writeln!(s, "{head}");
        for row in &c.rows {
            let mut line = format!("{:>4} {:>8.3}", row.n, row.pass_at_n);
            for name in &r.strategies {
                let w = name.len().max(8);
                let _ = write!(line, " {:>w$.3}", accuracy(row, name));
            }
            let _ = write!(line, " {:>14.1}", row.tokens_per_problem);
            let _ = writeln!(s, "{line}");
        }
        s.push('\n');
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: one row per (configuration, N, strategy).
pub fn csv(r: &EvalResults) -> String {
    let mut s = String::from(
        "config,think,thinking_budget,n,strategy,accuracy,pass_at_n,tokens_per_problem,mean_latency_ms\n",
    );
    for c in &r.configs {
        let think = c.think.map_or("default".into(), |t| {
            if t { "on" } else { "off" }.to_string()
        });
        let budget = c.thinking_budget.map_or(String::new(), |b| b.to_string());
        for row in &c.rows {
            for name in &r.strategies {
                let _ = writeln!(
                    s,
                    "{},{think},{budget},{},{},{:.6},{:.6},{:.3},{:.3}",
                    csv_field(&c.label),
                    row.n,
                    csv_field(name),
                    accuracy(row, name),
                    row.pass_at_n,
                    row.tokens_per_problem,
                    c.mean_latency_ms
                );
            }
        }
    }
    s
}

/// Writes `results.json`, `results.csv` and the plots into `dir`; returns the paths.
pub fn write_all(r: &EvalResults, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let json = dir.join("results.json");
    write_atomic(
        &json,
        format!("{}\n", serde_json::to_string_pretty(r)?).as_bytes(),
    )?;
    files.push(json);
    let csv_path = dir.join("results.csv");
    write_atomic(&csv_path, csv(r).as_bytes())?;
    files.push(csv_path);
    for (name, png) in super::plots::render(r)? {
        let path = dir.join(name);
        write_atomic(&path, &png)?;
        files.push(path);
    }
    Ok(files)
}
