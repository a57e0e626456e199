//! Offline difficulty filtering (`quorum train filter`): k answers sampled
//! per problem by the rollout engine ([`generate_groups`], the batched
//! decode the server and the trainers share, one prefill per problem),
//! prompts built as the server builds them ([`build_chat_prompt`]: think
//! mode resolved from the flag, the record's `chat_template_kwargs`, `/think`
//! in the messages, the model default), each answer judged by its task's
//! `scoring` verifier on the answer part (after `</think>`), then the
//! `quorum_train::filter` logic: pass rates, the band, the histogram, the
//! files. Problems are sampled in chunks so the progress bar moves and at
//! most one chunk's rollouts are held at a time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use quorum_scoring::verifier::{verifier_by_name, Verifier};
use quorum_train::data::{ensure_references, load_tasks, read_raw_records, LoadOptions, Task};
use quorum_train::filter::{pass_rate, with_pass_rate_map, Band, FilterStats, RateRecord};

use crate::atomic_write::write_atomic;
use crate::chat::{ChatMessage, ChatTemplate, SpecialTokenPolicy};
use crate::engine::in_engine_pool;
use crate::engine::rollout::{generate_groups, GroupRequest, RolloutConfig, RolloutProgress};
use crate::engine::sampler::SamplingParams;
use crate::engine::sequence::FinishReason;
use crate::engine::think::prompt::{build_chat_prompt, ChatPrompt, ThinkOptions};
use crate::engine::think::resolve::ThinkConfig;
use crate::engine::weights_view::inference_view;
use crate::engine::ModelBundle;
use crate::model::Transformer;
use crate::plot::{render_bars_png, Bar, BarChart, Span, PLOT_SIZE};
use crate::tokenizer::Tokenizer;

/// How `quorum train filter` was invoked.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    pub data: PathBuf,
    pub load: LoadOptions,
    /// Answers sampled per problem.
    pub k: usize,
    pub band: Band,
    /// The kept records (JSONL, original fields plus `pass_rate`).
    pub out: PathBuf,
    /// Every problem's [`RateRecord`] (JSONL).
    pub rates: Option<PathBuf>,
    /// The pass-rate histogram (PNG).
    pub plot: Option<PathBuf>,
    pub temperature: f32,
    pub max_new_tokens: usize,
    /// Thinking on/off; `None`: as the server resolves it.
    pub think: Option<bool>,
    pub seed: u64,
    /// Only the first N problems.
    pub limit: Option<usize>,
    /// Problems per engine call.
    pub chunk: usize,
    /// Progress bar on stderr.
    pub progress: bool,
}

/// What a filter run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilterReport {
    #[serde(flatten)]
    pub stats: FilterStats,
    /// Tokens generated over every answer.
    pub tokens: usize,
    /// Answers cut by `max_new_tokens`.
    pub truncated: usize,
    /// Wall time of the sampling.
    pub seconds: f64,
    pub tokens_per_s: f64,
    pub files: Vec<PathBuf>,
}

/// One problem to sample: the prompt side, its kwargs, how to judge.
#[derive(Debug, Clone)]
pub struct Problem {
    pub messages: Vec<ChatMessage>,
    pub kwargs: Map<String, Value>,
    pub answer: String,
    pub verifier: String,
}

impl Problem {
    pub fn of(task: &Task) -> Self {
        Problem {
            messages: task
                .prompt_messages()
                .into_iter()
                .map(|m| ChatMessage::new(m.role, m.content))
                .collect(),
            kwargs: task.chat_template_kwargs.clone().unwrap_or_default(),
            answer: task.answer.clone().unwrap_or_default(),
            verifier: task.verifier.clone(),
        }
    }
}

/// Everything sampling needs besides the weights.
pub struct SampleContext<'a> {
    pub tok: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub think_config: &'a ThinkConfig,
    pub eos: Vec<u32>,
    pub k: usize,
    pub temperature: f32,
    pub max_new_tokens: usize,
    /// Thinking on/off; `None`: the record's `enable_thinking` kwarg, else
    /// `/think` / `/no_think` in the messages, else the model default.
    pub think: Option<bool>,
    pub seed: u64,
}

/// The k answers to one problem, judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub correct: usize,
    pub tokens: usize,
    pub truncated: usize,
}

/// The sampling seed of problem `index` (its rollout `i` draws stream `i`):
/// the same problem gets the same answers whatever the chunking.
fn problem_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Verifiers by name, built once.
#[derive(Default)]
struct Verifiers(HashMap<String, Box<dyn Verifier>>);

impl Verifiers {
    fn get(&mut self, name: &str) -> anyhow::Result<&dyn Verifier> {
        if !self.0.contains_key(name) {
            self.0.insert(name.to_string(), verifier_by_name(name)?);
        }
        Ok(self.0[name].as_ref())
    }
}

/// `ctx.k` answers to each of `problems` (the problems `first..` of the
/// run, for their seeds) in one [`generate_groups`] call on a gradient-free
/// view of `model`'s current weights, each judged on its answer part.
/// `on_progress` sees the engine's progress after every forward.
pub fn sample_outcomes(
    model: &Transformer,
    ctx: &SampleContext,
    problems: &[Problem],
    first: usize,
    on_progress: &mut (dyn FnMut(&RolloutProgress) + Send),
) -> anyhow::Result<Vec<Outcome>> {
    let mut prompts: Vec<ChatPrompt> = Vec::with_capacity(problems.len());
    let mut requests = Vec::with_capacity(problems.len());
    for (i, p) in problems.iter().enumerate() {
        let opts = ThinkOptions {
            enable_thinking: ctx
                .think
                .or_else(|| p.kwargs.get("enable_thinking").and_then(Value::as_bool)),
            ..ThinkOptions::default()
        };
        let prompt = build_chat_prompt(
            ctx.template,
            ctx.tok,
            &p.messages,
            &p.kwargs,
            &opts,
            ctx.think_config,
            SpecialTokenPolicy::default(),
        )
        .with_context(|| format!("problem {}: building the prompt", first + i))?;
        requests.push(GroupRequest {
            prompt_ids: prompt.ids.clone(),
            n: ctx.k,
            params: SamplingParams {
                temperature: ctx.temperature,
                max_tokens: Some(ctx.max_new_tokens),
                seed: Some(problem_seed(ctx.seed, first + i)),
                ..SamplingParams::default()
            },
            eos_token_ids: ctx.eos.clone(),
            // The model's own thinking, capped only by max_new_tokens (as
            // eval): no engine budget forcing an answer it did not write.
            think: None,
        });
        prompts.push(prompt);
    }
    let view = inference_view(model);
    let outs = in_engine_pool(|| {
        generate_groups(
            &view,
            ctx.tok,
            &requests,
            &RolloutConfig::default(),
            &mut |p| {
                on_progress(p);
                true
            },
        )
    })?;
    let mut verifiers = Verifiers::default();
    let mut outcomes = Vec::with_capacity(problems.len());
    for ((p, prompt), out) in problems.iter().zip(&prompts).zip(&outs) {
        let verifier = verifiers.get(&p.verifier)?;
        let mut o = Outcome {
            correct: 0,
            tokens: 0,
            truncated: 0,
        };
        for ro in &out.rollouts {
            o.tokens += ro.token_ids.len();
            if matches!(ro.finish_reason, FinishReason::Length) {
                o.truncated += 1;
            }
            let (_, answer) = prompt.split(&ro.text);
            if verifier.verify(&answer, &p.answer).correct {
                o.correct += 1;
            }
        }
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// Load, sample, judge, write. See the module docs.
pub fn run(bundle: &ModelBundle, opts: &FilterOptions) -> anyhow::Result<FilterReport> {
    if opts.k == 0 {
        anyhow::bail!("-k: must be at least 1 (answers sampled per problem)");
    }
    let load = LoadOptions {
        require_answer: true,
        ..opts.load.clone()
    };
    let loaded = load_tasks(&[&opts.data], &load)?;
    if loaded.report.skipped > 0 {
        eprintln!(
            "{}: skipped {} malformed records (--skip-malformed); first: {}",
            opts.data.display(),
            loaded.report.skipped,
            loaded.report.first_errors.join("; ")
        );
    }
    let mut tasks = loaded.tasks;
    if let Some(n) = opts.limit {
        tasks.truncate(n);
    }
    ensure_references(&tasks)?;
    let raw = read_raw_records(&[&opts.data])?;
    SamplingParams {
        temperature: opts.temperature,
        max_tokens: Some(opts.max_new_tokens),
        ..SamplingParams::default()
    }
    .validate(bundle.loaded.config.vocab_size)
    .context("--temperature / --max-new-tokens")?;

    let think_config = ThinkConfig::default();
    let ctx = SampleContext {
        tok: &bundle.tokenizer,
        template: &bundle.template,
        think_config: &think_config,
        eos: bundle.eos_token_ids.clone(),
        k: opts.k,
        temperature: opts.temperature,
        max_new_tokens: opts.max_new_tokens,
        think: opts.think,
        seed: opts.seed,
    };
    let bar = if opts.progress {
        let b = ProgressBar::new(tasks.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} problems  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(tasks.len());
    let mut tokens_before = 0usize;
    for (c, chunk) in tasks.chunks(opts.chunk.max(1)).enumerate() {
        let first = c * opts.chunk.max(1);
        let problems: Vec<Problem> = chunk.iter().map(Problem::of).collect();
        let mut on_progress = |p: &RolloutProgress| {
            bar.set_position((first + p.groups_done) as u64);
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{:.0} tok/s",
                (tokens_before + p.tokens) as f64 / secs
            ));
        };
        let got = sample_outcomes(
            &bundle.loaded.model,
            &ctx,
            &problems,
            first,
            &mut on_progress,
        )?;
        tokens_before += got.iter().map(|o| o.tokens).sum::<usize>();
        outcomes.extend(got);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    let mut records = Vec::with_capacity(tasks.len());
    for (index, (task, o)) in tasks.iter().zip(&outcomes).enumerate() {
        let p = pass_rate(o.correct, opts.k)?;
        records.push(RateRecord {
            index,
            id: task.id.clone(),
            prompt: task.prompt.clone(),
            answer: task.answer.clone().unwrap_or_default(),
            correct: o.correct,
            k: opts.k,
            pass_rate: p,
            kept: opts.band.contains(p),
            truncated: o.truncated,
            mean_tokens: o.tokens as f64 / opts.k as f64,
        });
    }
    let stats = FilterStats::of(&records, opts.k, opts.band)?;

    let mut files = Vec::new();
    let mut kept_lines = Vec::with_capacity(stats.kept);
    for (task, r) in tasks.iter().zip(&records).filter(|(_, r)| r.kept) {
        let obj = raw
            .get(&task.source)
            .with_context(|| format!("{}: the record could not be read back", task.source))?;
        kept_lines.push(serde_json::to_string(&with_pass_rate_map(
            obj,
            r.pass_rate,
        ))?);
    }
    write_atomic(&opts.out, jsonl(&kept_lines).as_bytes())?;
    files.push(opts.out.clone());
    if let Some(path) = &opts.rates {
        let lines = records
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        write_atomic(path, jsonl(&lines).as_bytes())?;
        files.push(path.clone());
    }
    if let Some(path) = &opts.plot {
        let png = render_bars_png(&histogram_chart(&stats), PLOT_SIZE)?;
        write_atomic(path, &png)?;
        files.push(path.clone());
    }
    let tokens: usize = outcomes.iter().map(|o| o.tokens).sum();
    Ok(FilterReport {
        stats,
        tokens,
        truncated: outcomes.iter().map(|o| o.truncated).sum(),
        seconds,
        tokens_per_s: tokens as f64 / seconds.max(1e-9),
        files,
    })
}

fn jsonl(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// The pass-rate histogram as bars: one per possible rate c / k, blue when
/// inside the band, the band shaded.
pub fn histogram_chart(stats: &FilterStats) -> BarChart {
    let h = &stats.histogram;
    let width = 1.0 / h.k as f64;
    BarChart {
        title: format!(
            "Pass rates of {} problems (k = {}): {} kept in [{}, {}]",
            stats.problems, h.k, stats.kept, stats.band.lo, stats.band.hi
        ),
        x_label: "pass rate (correct answers / k)".into(),
        y_label: "problems".into(),
        bars: h
            .counts
            .iter()
            .enumerate()
            .map(|(c, &n)| Bar {
                x: h.rate(c),
                height: n as f64,
                highlighted: stats.band.contains(h.rate(c)),
            })
            .collect(),
        bar_width: width * 0.8,
        x_range: (-width * 0.6, 1.0 + width * 0.6),
        highlight_name: "kept (in band)".into(),
        other_name: "dropped".into(),
        span: Some(Span {
            lo: stats.band.lo,
            hi: stats.band.hi,
            name: format!("band {}..{}", stats.band.lo, stats.band.hi),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_seeds_differ_by_index_and_seed() {
        let a: Vec<u64> = (0..100).map(|i| problem_seed(1, i)).collect();
        let mut s = a.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 100);
        assert_ne!(problem_seed(1, 5), problem_seed(2, 5));
        assert_eq!(problem_seed(1, 5), problem_seed(1, 5));
    }

    #[test]
    fn the_histogram_chart_marks_the_band() {
        use quorum_train::filter::{Histogram, RateRecord};
        let band = Band::default();
        let recs: Vec<RateRecord> = [0usize, 1, 2, 4]
            .iter()
            .enumerate()
            .map(|(i, &c)| RateRecord {
                index: i,
                id: i.to_string(),
                prompt: quorum_train::data::Prompt::Text("q".into()),
                answer: "1".into(),
                correct: c,
                k: 4,
                pass_rate: c as f64 / 4.0,
                kept: band.contains(c as f64 / 4.0),
                truncated: 0,
                mean_tokens: 1.0,
            })
            .collect();
        let stats = FilterStats::of(&recs, 4, band).unwrap();
        assert_eq!(stats.histogram, Histogram::new(4, &[0, 1, 2, 4]).unwrap());
        let chart = histogram_chart(&stats);
        let hl: Vec<bool> = chart.bars.iter().map(|b| b.highlighted).collect();
        assert_eq!(hl, [false, true, true, true, false]);
        let heights: Vec<f64> = chart.bars.iter().map(|b| b.height).collect();
        assert_eq!(heights, [1.0, 1.0, 1.0, 0.0, 1.0]);
        assert!((chart.bar_width - 0.2).abs() < 1e-12);
        assert!((chart.x_range.0 + 0.15).abs() < 1e-12);
        assert!((chart.x_range.1 - 1.15).abs() < 1e-12);
    }
}
