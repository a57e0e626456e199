//! The plots of `quorum bench eval`, drawn with the project's line charts
//! ([`crate::plot::render_png`]): `accuracy_vs_n.png` (a series per
//! strategy and think configuration) and `accuracy_vs_tokens.png` (a
//! series per think configuration: accuracy of the headline strategy
//! against the mean tokens generated per problem as N grows).

use crate::plot::{render_png, Chart, Mark, Series, PLOT_SIZE};

use super::results::{accuracy, EvalResults};

/// The strategy `accuracy_vs_tokens.png` shows: majority when it was run,
/// else the first strategy given.
pub fn headline(r: &EvalResults) -> Option<&str> {
    r.strategies
        .iter()
        .find(|s| *s == "majority")
        .or_else(|| r.strategies.first())
        .map(String::as_str)
}

/// The two charts.
pub fn charts(r: &EvalResults) -> Vec<(&'static str, Chart)> {
    let many = r.configs.len() > 1;
    let mut by_n = Vec::new();
    for (ci, c) in r.configs.iter().enumerate() {
        for (si, name) in r.strategies.iter().enumerate() {
            by_n.push(Series {
                name: if many {
                    format!("{name} ({})", c.label)
                } else {
                    name.clone()
                },
                points: c
                    .rows
                    .iter()
                    .map(|row| (row.n as f64, accuracy(row, name)))
                    .collect(),
                mark: Mark::LineDots,
                color: if many {
                    ci * r.strategies.len() + si
                } else {
                    si
                },
                faded: false,
            });
        }
    }
    let head = headline(r).unwrap_or("first");
    let by_tokens: Vec<Series> = r
        .configs
        .iter()
        .enumerate()
        .map(|(ci, c)| Series {
            name: c.label.clone(),
            points: c
                .rows
                .iter()
                .map(|row| (row.tokens_per_problem, accuracy(row, head)))
                .collect(),
            mark: Mark::LineDots,
            color: ci,
            faded: false,
        })
        .collect();
    let chart = |title: String, x: &str, series| Chart {
        title,
        x_label: x.into(),
        y_label: "accuracy".into(),
        series,
        y_range: Some((0.0, 1.0)),
        log_y_above_ratio: None,
        empty_note: "no results".into(),
    };
    vec![
        (
            "accuracy_vs_n.png",
            chart(
                format!("Accuracy vs N ({} problems)", r.problems),
                "N (samples per problem)",
                by_n,
            ),
        ),
        (
            "accuracy_vs_tokens.png",
            chart(
                format!(
                    "{head} accuracy vs generated tokens ({} problems)",
                    r.problems
                ),
                "mean generated tokens per problem",
                by_tokens,
            ),
        ),
    ]
}

/// The charts as PNG bytes, by file name.
pub fn render(r: &EvalResults) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    charts(r)
        .into_iter()
        .map(|(name, c)| Ok((name, render_png(&c, PLOT_SIZE)?)))
        .collect()
}
