//! `quorum verify`: check answer equivalence with the same math verifier that
//! rewards training and judges votes, one pair or in bulk (JSONL), so verdicts
//! can be compared against other verifiers.

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Reference answer (bare, or `\boxed{...}`).
    #[arg(long, required_unless_present = "jsonl", requires = "pred")]
    pub gold: Option<String>,
    /// Predicted answer or a full completion (the final answer is extracted).
    #[arg(long, requires = "gold")]
    pub pred: Option<String>,
    /// Read `{"gold": ..., "pred": ...}` lines from stdin, write one verdict line each.
    #[arg(long, conflicts_with_all = ["gold", "pred"])]
    pub jsonl: bool,
}

#[derive(Deserialize)]
struct Pair {
    gold: serde_json::Value,
    pred: serde_json::Value,
}

/// JSON numbers are accepted too: `{"gold": 42, "pred": "42.0"}`.
fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if !args.jsonl {
        let (gold, pred) = (args.gold.unwrap_or_default(), args.pred.unwrap_or_default());
        let c = quorum_scoring::compare(&gold, &pred);
        println!("{}", serde_json::to_string(&c)?);
        return Ok(());
    }
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).with_context(|| {
            format!("line {}: expected {{\"gold\": ..., \"pred\": ...}}", n + 1)
        })?;
        let c = quorum_scoring::compare(&as_text(&pair.gold), &as_text(&pair.pred));
        writeln!(out, "{}", serde_json::to_string(&c)?)?;
    }
    out.flush()?;
    Ok(())
}
