//! `quorum bench eval`: for each think configuration, the largest N of
//! samples per problem drawn once through a [`SampleSource`], judged by the
//! task's verifier, scored by a [`RewardSource`] when a strategy needs
//! scores, and cached ([`super::cache`]); then every N of the table
//! computed from that one pool ([`super::at_n`]) and reported
//! ([`super::report`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use quorum_scoring::{SelectionConfig, Selector, WeightSource};
use quorum_train::data::LoadOptions;

use super::at_n::{at_n, Judged};
use super::cache::{Cache, CachedProblem, Fingerprint};
use super::problems::{load_problems, problem_seed, Judge, Problem};
use super::results::{ConfigResult, EvalResults};
use super::source::{RewardSource, Sample, SampleRequest, SampleSource, ThinkSetting};

/// How `quorum bench eval` was invoked.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub dataset: PathBuf,
    pub load: LoadOptions,
    pub limit: Option<usize>,
    /// The N of the table (sorted, distinct, ≥ 1).
    pub rollouts: Vec<usize>,
    /// `(name, config)` of each strategy, in table order.
    pub strategies: Vec<(String, SelectionConfig)>,
    /// Think configurations, in table order.
    pub configs: Vec<ThinkSetting>,
    pub temperature: f32,
    pub max_tokens: usize,
    pub seed: u64,
    /// Output directory (cache, results, plots).
    pub out: PathBuf,
    /// Ignore (overwrite) a cache written with other settings.
    pub force: bool,
    pub progress: bool,
}

/// The cache file of an output directory.
pub const CACHE_FILE: &str = "cache.jsonl";

/// Whether a strategy ranks by reward-model scores.
pub fn needs_scores(cfg: &SelectionConfig) -> bool {
    matches!(
        cfg,
        SelectionConfig::BestOfN { .. }
            | SelectionConfig::WeightedMajority {
                weight: WeightSource::Score
            }
    )
}

/// A strategy flag value: a name (`majority`) or a selection object
/// (`{"strategy": "confidence", "group_size": 8}`), as the server parses
/// `selection`.
pub fn parse_strategy(s: &str) -> anyhow::Result<(String, SelectionConfig)> {
    let s = s.trim();
    let json = if s.starts_with('{') {
        s.to_string()
    } else {
        format!("{{\"strategy\": {}}}", serde_json::Value::String(s.into()))
    };
    let cfg: SelectionConfig = serde_json::from_str(&json).map_err(|e| {
        anyhow::anyhow!(
            "--strategies `{s}`: {e} (one of first, majority, best_of_n, weighted_majority, confidence, or a selection object)"
        )
    })?;
    cfg.build()
        .map_err(|e| anyhow::anyhow!("--strategies `{s}`: {e}"))?;
    let name = if s.starts_with('{') {
        serde_json::to_string(&cfg)?
    } else {
        s.to_string()
    };
    Ok((name, cfg))
}

/// Draws, judges, scores and caches what the cache lacks; then computes
/// the results from the cache.
pub fn run(
    opts: &BenchOptions,
    source: &dyn SampleSource,
    reward: Option<&dyn RewardSource>,
) -> anyhow::Result<EvalResults> {
    let samples = *opts
        .rollouts
        .iter()
        .max()
        .context("--rollouts: at least one N")?;
    anyhow::ensure!(
        opts.rollouts.iter().all(|&n| n >= 1),
        "--rollouts: every N must be at least 1"
    );
    if opts.strategies.iter().any(|(_, c)| needs_scores(c)) && reward.is_none() {
        anyhow::bail!("best_of_n and weighted_majority need reward scores: pass --reward-model DIR (or --url of a Quorum server with a reward model)");
    }
    let (problems, hash) = load_problems(&opts.dataset, &opts.load, opts.limit)?;
    let fingerprint = Fingerprint {
        dataset: format!("{hash:016x}"),
        source: source.describe(),
        samples,
        temperature: opts.temperature.to_string().parse().unwrap_or(0.0),
        max_tokens: opts.max_tokens,
        seed: opts.seed,
        reward: reward.map_or("none".into(), |r| r.describe()),
    };
    let cache_path = opts.out.join(CACHE_FILE);
    let mut cache = Cache::open(&cache_path, &fingerprint, opts.force)?;

    let pending: Vec<(ThinkSetting, usize)> = opts
        .configs
        .iter()
        .flat_map(|c| (0..problems.len()).map(move |p| (*c, p)))
        .filter(|(c, p)| cache.get(&c.label(), *p).is_none())
        .collect();
    let bar = progress_bar(opts.progress, pending.len());
    let started = Instant::now();
    let mut judge = Judge::default();
    let mut tokens = 0usize;
    for chunk in pending.chunks(source.batch_hint().max(1)) {
        let requests: Vec<SampleRequest> = chunk
            .iter()
            .map(|&(think, p)| request(&problems[p], think, samples, p, opts))
            .collect();
        let got = source.sample(&requests)?;
        anyhow::ensure!(
            got.len() == requests.len(),
            "the source answered {} of {} requests",
            got.len(),
            requests.len()
        );
        for (&(think, p), drawn) in chunk.iter().zip(got) {
            anyhow::ensure!(
                drawn.len() == samples,
                "problem {}: {} of {samples} samples",
                problems[p].id,
                drawn.len()
            );
            tokens += drawn.iter().map(|s| s.tokens).sum::<usize>();
            let judged = judge_samples(&mut judge, &problems[p], &drawn, reward)?;
            cache.append(CachedProblem {
                config: think.label(),
                problem: p,
                id: problems[p].id.clone(),
                samples: judged,
            })?;
            bar.inc(1);
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{:.0} tok/s", tokens as f64 / secs));
    }
    bar.finish_and_clear();

    let selectors: Vec<(String, Box<dyn Selector>)> = opts
        .strategies
        .iter()
        .map(|(n, c)| Ok((n.clone(), c.build()?)))
        .collect::<Result<_, quorum_scoring::ScoringError>>()?;
    let mut configs = Vec::with_capacity(opts.configs.len());
    for think in &opts.configs {
        let label = think.label();
        let pools: Vec<Vec<Judged>> = (0..problems.len())
            .map(|p| {
                cache
                    .get(&label, p)
                    .map(|c| c.samples.clone())
                    .with_context(|| format!("{label}: problem {p} missing from the cache"))
            })
            .collect::<anyhow::Result<_>>()?;
        let rows = at_n(&pools, &opts.rollouts, &selectors, opts.seed);
        configs.push(ConfigResult::new(*think, &pools, rows));
    }
    Ok(EvalResults {
        dataset: opts.dataset.display().to_string(),
        source: fingerprint.source,
        reward: fingerprint.reward,
        problems: problems.len(),
        samples_per_problem: samples,
        temperature: opts.temperature,
        max_tokens: opts.max_tokens,
        seed: opts.seed,
        strategies: opts.strategies.iter().map(|(n, _)| n.clone()).collect(),
        rollouts: opts.rollouts.clone(),
        sampled: pending.len(),
        cached: opts.configs.len() * problems.len() - pending.len(),
        sampling_s: started.elapsed().as_secs_f64(),
        configs,
    })
}

fn request(
    p: &Problem,
    think: ThinkSetting,
    n: usize,
    index: usize,
    opts: &BenchOptions,
) -> SampleRequest {
    SampleRequest {
        messages: p.messages.clone(),
        kwargs: p.kwargs.clone(),
        think,
        temperature: opts.temperature,
        max_tokens: opts.max_tokens,
        n,
        seed: problem_seed(opts.seed, index),
    }
}

/// Verdicts (and reward scores of the whole completions) of one problem's samples.
pub fn judge_samples(
    judge: &mut Judge,
    p: &Problem,
    drawn: &[Sample],
    reward: Option<&dyn RewardSource>,
) -> anyhow::Result<Vec<Judged>> {
    let scores = match reward {
        Some(r) => {
            let texts: Vec<String> = drawn.iter().map(Sample::full_text).collect();
            let s = r
                .score(&p.messages, &texts)
                .with_context(|| format!("problem {}: reward scores", p.id))?;
            anyhow::ensure!(
                s.len() == texts.len(),
                "problem {}: {} scores for {} samples",
                p.id,
                s.len(),
                texts.len()
            );
            s.into_iter().map(Some).collect()
        }
        None => vec![None; drawn.len()],
    };
    drawn
        .iter()
        .zip(scores)
        .map(|(s, score)| {
            Ok(Judged {
                correct: judge.correct(p, &s.content)?,
                content: s.content.clone(),
                tokens: s.tokens,
                finish_reason: s.finish_reason.clone(),
                logprobs: s.logprobs.clone(),
                score,
                latency_ms: s.latency_ms,
            })
        })
        .collect()
}

pub(crate) fn progress_bar(show: bool, len: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} problems  {msg}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_by_name_or_as_selection_objects() {
        let (n, c) = parse_strategy("majority").unwrap();
        assert_eq!((n.as_str(), &c), ("majority", &SelectionConfig::Majority));
        let (_, c) = parse_strategy("weighted_majority").unwrap();
        assert!(needs_scores(&c));
        let (_, c) = parse_strategy("best_of_n").unwrap();
        assert!(needs_scores(&c));
        let (_, c) =
            parse_strategy(r#"{"strategy": "weighted_majority", "weight": "confidence"}"#).unwrap();
        assert!(!needs_scores(&c));
        let (n, _) = parse_strategy(r#"{"strategy": "confidence", "group_size": 8}"#).unwrap();
        assert!(n.contains("group_size"), "{n}");
        let e = parse_strategy("vote").unwrap_err().to_string();
        assert!(e.contains("--strategies `vote`"), "{e}");
    }
}
