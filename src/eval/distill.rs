//! `quorum data distill` (rejection sampling, STaR / RFT): K answers per
//! problem from a teacher through the same [`SampleSource`] as `bench
//! eval`, the verifier-correct ones kept (`--keep all` keeps every answer),
//! identical completions dropped (`--dedup`), shortest first
//! (`--shortest-first`), at most M per problem, written as the SFT
//! conversations `quorum train sft` reads (what `quorum data gen --format
//! sft` writes: the think toggle, the user turn, the assistant turn with its
//! reasoning in `<think>…</think>` before the answer), plus the yield per
//! problem.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use quorum_train::data::{LoadOptions, Message};
use quorum_train::gen::SftRecord;

use super::problems::{load_problems, problem_seed, Judge, Problem};
use super::source::{Sample, SampleRequest, SampleSource, ThinkSetting};
use crate::atomic_write::write_atomic;

/// Which answers become training examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Only those the verifier accepts.
    Correct,
    /// Every answer (each record says whether it is `correct`).
    All,
}

/// How `quorum data distill` was invoked.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    pub data: PathBuf,
    pub load: LoadOptions,
    pub limit: Option<usize>,
    /// Answers sampled per problem.
    pub k: usize,
    /// Thinking on/off; `None`: as the server resolves it.
    pub think: Option<bool>,
    pub keep: Keep,
    pub dedup: bool,
    pub shortest_first: bool,
    pub max_per_problem: Option<usize>,
    pub temperature: f32,
    pub max_tokens: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub report: Option<PathBuf>,
    pub progress: bool,
}

/// One problem's yield.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemYield {
    pub id: String,
    /// Answers the verifier accepts, of `k`.
    pub correct: usize,
    /// Records written.
    pub kept: usize,
}

/// What a distill run did (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct DistillReport {
    pub source: String,
    pub problems: usize,
    pub k: usize,
    pub samples: usize,
    pub correct: usize,
    pub kept: usize,
    /// Problems with at least one record.
    pub problems_kept: usize,
    /// `histogram[c]`: problems with `c` records.
    pub histogram: Vec<usize>,
    pub tokens: usize,
    pub seconds: f64,
    pub per_problem: Vec<ProblemYield>,
}

impl DistillReport {
    /// `distilled …` summary and `kept per problem …` histogram lines.
    pub fn lines(&self) -> (String, String) {
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        let summary = format!(
            "distilled {} problems × {} samples from {}: {} correct ({:.1}%), {} records kept; {} problems ({:.1}%) yield at least one, {:.2} per problem",
            self.problems,
            self.k,
            self.source,
            self.correct,
            pct(self.correct, self.samples),
            self.kept,
            self.problems_kept,
            pct(self.problems_kept, self.problems),
            self.kept as f64 / self.problems.max(1) as f64
        );
        let bins: Vec<String> = self
            .histogram
            .iter()
            .enumerate()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect();
        (
            summary,
            format!("records per problem (kept:problems) {}", bins.join(" ")),
        )
    }
}

/// The SFT record of one kept answer.
pub fn sft_line(p: &Problem, s: &Sample, thinking: bool) -> SftRecord {
    let has_system = p.messages.first().is_some_and(|m| m.role == "system");
    let mut messages: Vec<Message> = Vec::with_capacity(p.messages.len() + 2);
    if !has_system {
        messages.push(Message::new(
            "system",
            if thinking { "/think" } else { "/no_think" },
        ));
    }
    messages.extend(
        p.messages
            .iter()
            .map(|m| Message::new(&m.role, m.content.clone())),
    );
    let content = if thinking {
        Sample {
            reasoning: Some(s.reasoning.clone().unwrap_or_default()),
            ..s.clone()
        }
        .full_text()
    } else {
        s.content.clone()
    };
    messages.push(Message::new("assistant", content));
    let mut kwargs: Map<String, Value> = p.kwargs.clone();
    kwargs.insert("enable_thinking".into(), Value::Bool(thinking));
    SftRecord {
        messages,
        chat_template_kwargs: Some(kwargs),
        id: p.id.clone(),
        answer: p.answer.clone(),
        verifier: p.verifier.clone(),
    }
}

/// Which of a problem's samples to write, in order: the kept ones
/// (correct, or all), duplicates dropped, shortest first, at most `max`.
pub fn select(samples: &[Sample], correct: &[bool], opts: &DistillOptions) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..samples.len())
        .filter(|&i| opts.keep == Keep::All || correct[i])
        .collect();
    if opts.dedup {
        let mut seen = HashSet::new();
        idx.retain(|&i| seen.insert(samples[i].full_text()));
    }
    if opts.shortest_first {
        idx.sort_by_key(|&i| samples[i].tokens);
    }
    if let Some(m) = opts.max_per_problem {
        idx.truncate(m);
    }
    idx
}

pub fn run(opts: &DistillOptions, source: &dyn SampleSource) -> anyhow::Result<DistillReport> {
    anyhow::ensure!(opts.k >= 1, "-k: at least one answer per problem");
    let (problems, _) = load_problems(&opts.data, &opts.load, opts.limit)?;
    let think = ThinkSetting {
        enabled: opts.think,
        budget: None,
    };
    let bar = super::bench::progress_bar(opts.progress, problems.len());
    let started = Instant::now();
    let mut judge = Judge::default();
    let mut lines = Vec::new();
    let mut per_problem = Vec::with_capacity(problems.len());
    let (mut correct_total, mut tokens) = (0usize, 0usize);
    let indexed: Vec<usize> = (0..problems.len()).collect();
    for chunk in indexed.chunks(source.batch_hint().max(1)) {
        let requests: Vec<SampleRequest> = chunk
            .iter()
            .map(|&i| SampleRequest {
                messages: problems[i].messages.clone(),
                kwargs: problems[i].kwargs.clone(),
                think,
                temperature: opts.temperature,
                max_tokens: opts.max_tokens,
                n: opts.k,
                seed: problem_seed(opts.seed, i),
            })
            .collect();
        let got = source.sample(&requests)?;
        for (&i, drawn) in chunk.iter().zip(got) {
            let p = &problems[i];
            let correct: Vec<bool> = drawn
                .iter()
                .map(|s| judge.correct(p, &s.content))
                .collect::<anyhow::Result<_>>()?;
            tokens += drawn.iter().map(|s| s.tokens).sum::<usize>();
            let c = correct.iter().filter(|&&c| c).count();
            correct_total += c;
            let chosen = select(&drawn, &correct, opts);
            for &j in &chosen {
                let s = &drawn[j];
                let thinking = opts.think.unwrap_or(s.reasoning.is_some());
                let rec = sft_line(p, s, thinking);
                let mut v = serde_json::to_value(&rec)?;
                if opts.keep == Keep::All {
                    v["correct"] = Value::Bool(correct[j]);
                }
                lines.push(serde_json::to_string(&v)?);
            }
            per_problem.push(ProblemYield {
                id: p.id.clone(),
                correct: c,
                kept: chosen.len(),
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let mut body = lines.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    write_atomic(&opts.out, body.as_bytes())?;
    let most = per_problem.iter().map(|y| y.kept).max().unwrap_or(0);
    let mut histogram =
        vec![0usize; most.max(opts.max_per_problem.unwrap_or(opts.k).min(opts.k)) + 1];
    for y in &per_problem {
        if let Some(h) = histogram.get_mut(y.kept) {
            *h += 1;
        }
    }
    let report = DistillReport {
        source: source.describe(),
        problems: problems.len(),
        k: opts.k,
        samples: problems.len() * opts.k,
        correct: correct_total,
        kept: lines.len(),
        problems_kept: per_problem.iter().filter(|y| y.kept > 0).count(),
        histogram,
        tokens,
        seconds: started.elapsed().as_secs_f64(),
        per_problem,
    };
    if let Some(path) = &opts.report {
        write_atomic(
            path,
            format!("{}\n", serde_json::to_string_pretty(&report)?).as_bytes(),
        )?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(content: &str, tokens: usize) -> Sample {
        Sample {
            reasoning: Some("r".into()),
            content: content.into(),
            tokens,
            finish_reason: "stop".into(),
            logprobs: vec![],
            latency_ms: 0.0,
        }
    }

    fn opts(keep: Keep, dedup: bool, shortest: bool, max: Option<usize>) -> DistillOptions {
        DistillOptions {
            data: "x".into(),
            load: LoadOptions::default(),
            limit: None,
            k: 4,
            think: Some(true),
            keep,
            dedup,
            shortest_first: shortest,
            max_per_problem: max,
            temperature: 1.0,
            max_tokens: 10,
            seed: 0,
            out: "o".into(),
            report: None,
            progress: false,
        }
    }

    #[test]
    fn kept_answers_are_correct_distinct_shortest_first_and_capped() {
        let s = vec![
            sample("\\boxed{1}", 9),
            sample("\\boxed{2}", 3),
            sample("\\boxed{1}", 9),
            sample("\\boxed{1} ok", 5),
        ];
        let c = [true, false, true, true];
        assert_eq!(
            select(&s, &c, &opts(Keep::Correct, false, false, None)),
            [0, 2, 3]
        );
        assert_eq!(
            select(&s, &c, &opts(Keep::Correct, true, false, None)),
            [0, 3]
        );
        assert_eq!(
            select(&s, &c, &opts(Keep::Correct, true, true, None)),
            [3, 0]
        );
        assert_eq!(
            select(&s, &c, &opts(Keep::Correct, true, true, Some(1))),
            [3]
        );
        assert_eq!(
            select(&s, &c, &opts(Keep::All, true, true, None)),
            [1, 3, 0]
        );
    }

    #[test]
    fn records_carry_the_toggle_and_the_reasoning_in_a_think_block() {
        let task = quorum_train::data::Task {
            id: "a".into(),
            source: quorum_train::data::Location {
                file: "f".into(),
                line: 1,
            },
            prompt: quorum_train::data::Prompt::Text("Compute 1+1.".into()),
            answer: Some("2".into()),
            verifier: "math".into(),
            solution: None,
            chat_template_kwargs: None,
            pass_rate: None,
        };
        let p = Problem::of(task);
        let s = sample("\\boxed{2}", 4);
        let on = sft_line(&p, &s, true);
        let roles: Vec<&str> = on.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant"]);
        assert_eq!(on.messages[0].content, "/think");
        assert_eq!(on.messages[2].content, "<think>\nr\n</think>\n\n\\boxed{2}");
        let off = sft_line(
            &p,
            &Sample {
                reasoning: None,
                ..s
            },
            false,
        );
        assert_eq!(off.messages[0].content, "/no_think");
        assert_eq!(off.messages[2].content, "\\boxed{2}");
        assert_eq!(
            off.chat_template_kwargs.unwrap()["enable_thinking"],
            Value::Bool(false)
        );
    }
}
