//! Training curves as PNG (`quorum train plot RUN_DIR`): `loss.png` (train and eval loss),
//! `accuracy.png` (every eval accuracy series), `lr.png`, from the run's `metrics.jsonl`
//! ([`metrics`] says what is read and what is ignored).

mod bars;
mod chart;
pub mod metrics;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use bars::{render_bars_png, Bar, BarChart, Span};
pub use chart::{render_png, tick_label, Chart, Mark, Series};
pub use metrics::{EvalRecord, Metrics, StepRecord};

/// The metrics file of a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Pixel size of every PNG.
pub const PLOT_SIZE: (u32, u32) = (1000, 600);

/// Above this many step records, the train loss also gets a running-mean line.
const SMOOTH_ABOVE: usize = 200;

/// Errors of plotting; input errors name the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    NoMetrics { path: PathBuf, why: String },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("drawing failed: {0}")]
    Draw(String),
}

/// What [`plot_run`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotReport {
    pub files: Vec<PathBuf>,
    pub steps: usize,
    pub evals: usize,
    /// Records skipped, by kind.
    pub ignored: BTreeMap<String, u64>,
}

/// Reads `run_dir/metrics.jsonl` and writes the three PNGs into `out_dir` (default: the run
/// directory).
pub fn plot_run(run_dir: &Path, out_dir: Option<&Path>) -> Result<PlotReport, PlotError> {
    let metrics = Metrics::read(&run_dir.join(METRICS_FILE))?;
    let files = plot_metrics(&metrics, out_dir.unwrap_or(run_dir))?;
    Ok(PlotReport {
        files,
        steps: metrics.steps.len(),
        evals: metrics.evals.len(),
        ignored: metrics.ignored.clone(),
    })
}

/// The charts of a run: loss, eval accuracy, lr, and (GRPO) reward.
pub fn charts(m: &Metrics) -> Vec<(&'static str, Chart)> {
    let loss = m.step_series(|r| r.loss);
    let mut loss_series = vec![Series {
        name: "train loss".into(),
        points: loss.clone(),
        mark: Mark::Line,
        color: 0,
        faded: loss.len() > SMOOTH_ABOVE,
    }];
    if loss.len() > SMOOTH_ABOVE {
        loss_series.push(Series {
            name: "train loss (running mean)".into(),
            points: running_mean(&loss, loss.len() / 100),
            mark: Mark::Line,
            color: 0,
            faded: false,
        });
    }
    loss_series.push(Series {
        name: "eval loss".into(),
        points: m.eval_loss(),
        mark: Mark::LineDots,
        color: 1,
        faded: false,
    });
    let accuracy: Vec<Series> = m
        .accuracy()
        .into_iter()
        .enumerate()
        .map(|(i, (name, points))| Series {
            name,
            points,
            mark: Mark::LineDots,
            color: i,
            faded: false,
        })
        .collect();
    let percent = accuracy
        .iter()
        .flat_map(|s| &s.points)
        .any(|&(_, v)| v > 1.0);
    let chart = |title: &str, y: &str, series, y_range, log_y, note: &str| Chart {
        title: title.into(),
        x_label: "step".into(),
        y_label: y.into(),
        series,
        y_range,
        log_y_above_ratio: log_y,
        empty_note: note.into(),
    };
    let mut out = vec![
        (
            "loss.png",
            chart(
                "Loss",
                "loss",
                loss_series,
                None,
                Some(20.0),
                "no loss in metrics.jsonl",
            ),
        ),
        (
            "accuracy.png",
            chart(
                "Eval accuracy",
                "accuracy",
                accuracy,
                Some(if percent { (0.0, 100.0) } else { (0.0, 1.0) }),
                None,
                "no eval accuracy in metrics.jsonl",
            ),
        ),
        (
            "lr.png",
            chart(
                "Learning rate",
                "lr",
                vec![Series {
                    name: "lr".into(),
                    points: m.step_series(|r| r.lr),
                    mark: Mark::Line,
                    color: 0,
                    faded: false,
                }],
                None,
                None,
                "no lr in metrics.jsonl",
            ),
        ),
    ];
    let reward = m.step_series(|r| r.reward);
    if !reward.is_empty() {
        let mut series = vec![Series {
            name: "mean reward".into(),
            points: reward.clone(),
            mark: Mark::Line,
            color: 0,
            faded: reward.len() > 20,
        }];
        if reward.len() > 20 {
            series.push(Series {
                name: "mean reward (running mean)".into(),
                points: running_mean(&reward, (reward.len() / 20).max(2)),
                mark: Mark::Line,
                color: 0,
                faded: false,
            });
        }
        out.push((
            "reward.png",
            chart(
                "Reward",
                "reward",
                series,
                None,
                None,
                "no reward in metrics.jsonl",
            ),
        ));
    }
    out
}

/// Writes `loss.png`, `accuracy.png`, `lr.png` (and `reward.png` for GRPO runs) for `metrics` into `out_dir` (created),
/// each through a temp file and a rename. Returns the paths.
pub fn plot_metrics(metrics: &Metrics, out_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PlotError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut files = Vec::new();
    for (name, chart) in charts(metrics) {
        let png = render_png(&chart, PLOT_SIZE)?;
        let path = out_dir.join(name);
        let tmp = out_dir.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, png).map_err(io(&path))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        files.push(path);
    }
    Ok(files)
}

/// Mean of each point and up to `half` points on either side (a centred window, so the
/// smoothed curve does not lag the raw one).
fn running_mean(points: &[(f64, f64)], half: usize) -> Vec<(f64, f64)> {
    let mut prefix = Vec::with_capacity(points.len() + 1);
    prefix.push(0.0);
    for &(_, y) in points {
        prefix.push(prefix[prefix.len() - 1] + y);
    }
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(points.len());
            (points[i].0, (prefix[hi] - prefix[lo]) / (hi - lo) as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    /// Decodes a PNG fully: (width, height, RGB bytes).
    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let file = std::fs::File::open(path).unwrap();
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Pixels within 40 of `rgb` in every channel.
    fn count_near(buf: &[u8], rgb: (u8, u8, u8)) -> usize {
        buf.chunks_exact(3)
            .filter(|p| {
                p[0].abs_diff(rgb.0) < 40 && p[1].abs_diff(rgb.1) < 40 && p[2].abs_diff(rgb.2) < 40
            })
            .count()
    }

    fn write_metrics(dir: &Path) -> PathBuf {
        let mut text = String::new();
        for step in 1..=300u32 {
            // Noisy, as per-step losses are (the smoothed line must not hide the raw one).
            let noise = 0.4 * f64::from((step * 7919) % 13) / 13.0;
            let loss = 5.0 * (-(step as f64) / 60.0).exp() + 0.2 + noise;
            let lr = 1e-3 * (step as f64 / 300.0 * std::f64::consts::PI).cos().abs();
            writeln!(
                text,
                r#"{{"kind":"step","step":{step},"loss":{loss},"lr":{lr},"grad_norm":1.0,"tokens_per_s":2000.0,"elapsed_s":{step},"extra":"x"}}"#
            )
            .unwrap();
            if step % 50 == 0 {
                let a = step as f64 / 300.0;
                writeln!(
                    text,
                    r#"{{"kind":"eval","step":{step},"eval_loss":{},"accuracy":{{"think":{a},"no_think":{}}}}}"#,
                    loss + 0.1,
                    a / 3.0
                )
                .unwrap();
                writeln!(text, r#"{{"kind":"grpo","step":{step},"reward":0.5}}"#).unwrap();
            }
        }
        let path = dir.join(METRICS_FILE);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn plots_a_run_into_decodable_pngs_of_the_right_size() {
        let dir = tempfile::tempdir().unwrap();
        write_metrics(dir.path());
        let out = dir.path().join("plots");
        let report = plot_run(dir.path(), Some(&out)).unwrap();
        assert_eq!(report.steps, 300);
        assert_eq!(report.evals, 6);
        assert_eq!(report.ignored.get("grpo"), Some(&6));
        let names: Vec<_> = report
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["loss.png", "accuracy.png", "lr.png"]);
        for f in &report.files {
            let (w, h, buf) = decode(f);
            assert_eq!((w, h), PLOT_SIZE, "{}", f.display());
            // The first series colour (tab10 blue) is drawn, and text/axes (dark pixels).
            assert!(count_near(&buf, (31, 119, 180)) > 500, "{}", f.display());
            assert!(count_near(&buf, (0, 0, 0)) > 500, "{}", f.display());
        }
        // accuracy.png has two series: blue (no_think, first by name) and orange (think).
        let (_, _, acc) = decode(&out.join("accuracy.png"));
        assert!(count_near(&acc, (255, 127, 14)) > 300);
        // Nothing left over from the temp-file writes.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3);
    }

    #[test]
    fn a_run_without_evals_still_gets_every_png() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(METRICS_FILE),
            "{\"kind\":\"step\",\"step\":0,\"loss\":1.0,\"lr\":0.0}\n",
        )
        .unwrap();
        let report = plot_run(dir.path(), None).unwrap();
        assert_eq!(report.files.len(), 3);
        let (w, h, acc) = decode(&dir.path().join("accuracy.png"));
        assert_eq!((w, h), PLOT_SIZE);
        // No series: no blue line, but the note and the axes are drawn.
        assert_eq!(count_near(&acc, (31, 119, 180)), 0);
        assert!(count_near(&acc, (90, 90, 90)) > 50);
    }

    #[test]
    fn missing_metrics_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = plot_run(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl: not found"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn running_mean_uses_a_centred_window() {
        let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 10.0)];
        assert_eq!(
            running_mean(&pts, 1),
            vec![(0.0, 2.0), (1.0, 3.0), (2.0, 6.0), (3.0, 7.5)]
        );
        assert_eq!(running_mean(&pts, 0), pts.to_vec());
    }
}
