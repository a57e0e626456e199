//! `quorum bench selection`: what one run measured, the per-configuration
//! rows (means over tasks), and the printed table.

use serde::Serialize;

/// What one (task, strategy, N, early stop) run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The selected answer (`None`: every rollout abstained).
    pub answer: Option<String>,
    /// The selected answer matches the gold one (math verifier).
    pub correct: bool,
    /// Some rollout's answer matches the gold one (pass@N).
    pub any_correct: bool,
    /// The winning answer cluster's share of the votes cast.
    pub vote_share: f64,
    /// Tokens decoded over all rollouts (what `usage` counts).
    pub decoded: usize,
    /// The server's accounting (`quorum.tokens_saved`): the `max_tokens`
    /// budget the stopped rollouts did not decode.
    pub budget_saved: usize,
    /// Rollouts stopped early.
    pub stopped: usize,
    pub wall_s: f64,
}

/// One configuration (strategy, N, early stop): means over the tasks.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub strategy: String,
    pub n: usize,
    pub early_stop: bool,
    pub tasks: usize,
    /// Fraction of tasks whose selected answer is correct.
    pub accuracy: f64,
    /// Fraction of tasks with at least one correct rollout.
    pub pass_at_n: f64,
    pub mean_vote_share: f64,
    /// Tokens decoded per task, over all rollouts.
    pub tokens_per_task: f64,
    /// Measured like-for-like: tokens per task the same seeds decoded with
    /// early stop off minus with it on (0 on off rows; `null` without an
    /// early-stop-off baseline).
    pub tokens_saved_per_task: Option<f64>,
    /// `tokens_saved_per_task` as a percentage of the off run's tokens.
    pub tokens_saved_pct: Option<f64>,
    /// The server's accounting per task (`quorum.tokens_saved`: the unused
    /// `max_tokens` budget of the stopped rollouts, an upper bound).
    pub budget_tokens_saved_per_task: f64,
    /// Fraction of tasks where early stop cancelled at least one rollout.
    pub decided_early: f64,
    pub rollouts_stopped_per_task: f64,
    /// Fraction of tasks whose selected answer differs from the one the
    /// early-stop-off run selected (`null` without that baseline).
    pub answer_changed: Option<f64>,
    pub wall_s: f64,
    /// Decoded tokens per second of wall time (prefill included).
    pub tokens_per_s: f64,
}

/// Aggregates `runs` (one per task); `baseline` is the early-stop-off run
/// of the same tasks and seeds, in the same order.
pub fn row(
    strategy: &str,
    n: usize,
    early_stop: bool,
    runs: &[Outcome],
    baseline: Option<&[Outcome]>,
) -> Row {
    let count = runs.len().max(1) as f64;
    let frac = |f: &dyn Fn(&Outcome) -> bool| runs.iter().filter(|o| f(o)).count() as f64 / count;
    let mean = |f: &dyn Fn(&Outcome) -> f64| runs.iter().map(f).sum::<f64>() / count;
    let decoded: usize = runs.iter().map(|o| o.decoded).sum();
    let wall_s: f64 = runs.iter().map(|o| o.wall_s).sum();
    let baseline = baseline.filter(|b| b.len() == runs.len());
    let (saved, saved_pct, changed) = match baseline {
        Some(base) => {
            let base_decoded: usize = base.iter().map(|o| o.decoded).sum();
            let saved = base_decoded as f64 - decoded as f64;
            let pct = if base_decoded == 0 {
                0.0
            } else {
                100.0 * saved / base_decoded as f64
            };
            let changed = runs
                .iter()
                .zip(base)
                .filter(|(a, b)| a.answer != b.answer)
                .count() as f64
                / count;
            (Some(saved / count), Some(pct), Some(changed))
        }
        None => (None, None, None),
    };
    Row {
        strategy: strategy.to_string(),
        n,
        early_stop,
        tasks: runs.len(),
        accuracy: frac(&|o| o.correct),
        pass_at_n: frac(&|o| o.any_correct),
        mean_vote_share: mean(&|o| o.vote_share),
        tokens_per_task: decoded as f64 / count,
        tokens_saved_per_task: saved,
        tokens_saved_pct: saved_pct,
        budget_tokens_saved_per_task: mean(&|o| o.budget_saved as f64),
        decided_early: frac(&|o| o.stopped > 0),
        rollouts_stopped_per_task: mean(&|o| o.stopped as f64),
        answer_changed: changed,
        wall_s,
        tokens_per_s: if wall_s > 0.0 {
            decoded as f64 / wall_s
        } else {
            0.0
        },
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "—".into(), |x| format!("{x:.decimals$}"))
}

/// The rows as a Markdown table (the README's format).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| strategy | N | early stop | accuracy | pass@N | vote share | tokens/task | saved/task | saved % | budget saved/task | stopped early | answer changed | wall s | tok/s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {} | {:.1} | {:.0}% | {} | {:.1} | {:.0} |\n",
            r.strategy,
            r.n,
            if r.early_stop { "on" } else { "off" },
            r.accuracy,
            r.pass_at_n,
            r.mean_vote_share,
            r.tokens_per_task,
            opt(r.tokens_saved_per_task, 1),
            opt(r.tokens_saved_pct, 1),
            r.budget_tokens_saved_per_task,
            100.0 * r.decided_early,
            r.answer_changed
                .map_or_else(|| "—".into(), |c| format!("{:.0}%", 100.0 * c)),
            r.wall_s,
            r.tokens_per_s,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(answer: &str, correct: bool, decoded: usize, stopped: usize) -> Outcome {
        Outcome {
            answer: (!answer.is_empty()).then(|| answer.to_string()),
            correct,
            any_correct: correct || stopped > 0,
            vote_share: 0.5,
            decoded,
            budget_saved: stopped * 10,
            stopped,
            wall_s: 0.5,
        }
    }

    #[test]
    fn off_rows_save_nothing_and_on_rows_save_the_difference() {
        let off = vec![run("4", true, 100, 0), run("7", false, 60, 0)];
        let on = vec![run("4", true, 70, 2), run("", false, 60, 0)];
        let r = row("majority", 4, false, &off, Some(&off));
        assert_eq!(r.tokens_saved_per_task, Some(0.0));
        assert_eq!(r.tokens_saved_pct, Some(0.0));
        assert_eq!(r.answer_changed, Some(0.0));
        assert_eq!(r.tokens_per_task, 80.0);
        assert_eq!(r.tokens_per_s, 160.0);
        let r = row("majority", 4, true, &on, Some(&off));
        assert_eq!(r.tokens_saved_per_task, Some(15.0)); // (160 - 130) / 2
        assert_eq!(r.tokens_saved_pct, Some(100.0 * 30.0 / 160.0));
        assert_eq!(r.answer_changed, Some(0.5)); // "7" became no answer
        assert_eq!((r.accuracy, r.pass_at_n), (0.5, 0.5));
        assert_eq!(r.decided_early, 0.5);
        assert_eq!(r.rollouts_stopped_per_task, 1.0);
        assert_eq!(r.budget_tokens_saved_per_task, 10.0);
    }

    #[test]
    fn no_baseline_no_measured_saving() {
        let on = vec![run("4", true, 70, 2)];
        let r = row("confidence", 8, true, &on, None);
        assert_eq!(r.tokens_saved_per_task, None);
        assert_eq!(r.answer_changed, None);
        // A baseline of other tasks is no baseline.
        let r = row("confidence", 8, true, &on, Some(&[]));
        assert_eq!(r.tokens_saved_pct, None);
        assert!(table(&[r]).contains("| confidence | 8 | on | 1.000 |"));
    }

    #[test]
    fn empty_runs_are_zeros_not_nans() {
        let r = row("majority", 1, false, &[], Some(&[]));
        assert_eq!(
            (r.accuracy, r.tokens_per_task, r.tokens_per_s),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(r.tokens_saved_pct, Some(0.0));
    }
}
