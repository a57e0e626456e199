//! `quorum train plot`: PNG curves of a run directory (see [`crate::plot`]).

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Run directory holding metrics.jsonl.
    pub run_dir: PathBuf,
    /// Where to write loss.png, accuracy.png, lr.png and, for GRPO runs, reward.png (default: RUN_DIR).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let report = crate::plot::plot_run(&args.run_dir, args.out.as_deref())?;
    println!("{} step and {} eval records", report.steps, report.evals);
    for (kind, n) in &report.ignored {
        println!("  ignored {n} record(s) of kind {kind}");
    }
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
