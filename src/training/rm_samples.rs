//! Reward-model examples: rollouts sampled from a policy for task records
//! (cached in the run directory, so a resumed or re-run run does not sample
//! again), labelled completions and preference pairs, each rendered and
//! tokenized with the reward model's chat template exactly as serving
//! scores a (conversation, completion) pair ([`RewardCodec::encode_pair`]).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use quorum_train::rewards::RewardConfig;
use quorum_train::rm::data::RmRecord;
use quorum_train::rm_config::RmRollouts;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::engine::think::resolve::ThinkConfig;
use crate::engine::RewardCodec;
use crate::model::load_model;
use crate::tokenizer::Tokenizer;

use super::data::eval_task;
use super::eval::EvalTask;
use super::rollouts::{sample_groups, RolloutContext};

/// One sampled answer, as cached (`RUN/rollouts-{train,eval}.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedRollout {
    /// Index of the task among the run's task records.
    pub task: usize,
    pub thinking: bool,
    /// The whole completion (reasoning included).
    pub text: String,
    pub correct: bool,
    pub truncated: bool,
    pub tokens: usize,
}

/// A labelled, tokenized example.
#[derive(Debug, Clone)]
pub struct LabelledSample {
    /// Problem id (the same prompt is the same problem).
    pub problem: usize,
    pub ids: Vec<u32>,
    pub label: bool,
    /// The completion's text after the think block (what votes extract from).
    pub answer_text: String,
    pub truncated: bool,
}

/// A tokenized preference pair.
#[derive(Debug, Clone)]
pub struct PairSample {
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// A data file's examples: one loss per run, so one kind per file.
pub enum RmExamples {
    Labelled(Vec<LabelledSample>),
    Pairs(Vec<PairSample>),
}

impl RmExamples {
    pub fn len(&self) -> usize {
        match self {
            RmExamples::Labelled(v) => v.len(),
            RmExamples::Pairs(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where and how to sample the task records' rollouts.
pub struct Sampling<'a> {
    pub policy: &'a Path,
    pub cfg: &'a RmRollouts,
    /// Rollouts per problem.
    pub samples: usize,
    /// Problems used (0: all).
    pub max_prompts: usize,
    pub seed: u64,
    pub cache: PathBuf,
    pub progress: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct CacheHeader {
    policy: String,
    samples: usize,
    problems: usize,
    temperature: f64,
    top_p: f64,
    max_completion_tokens: usize,
    think: String,
    seed: u64,
    /// FNV-1a of the tasks' prompts and answers: another data file is
    /// sampled again even with the same number of problems.
    tasks_hash: u64,
}

fn tasks_hash(tasks: &[(usize, EvalTask)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, t) in tasks {
        let text = format!(
            "{i}\u{1}{}\u{1}{}",
            serde_json::to_string(&t.messages).unwrap_or_default(),
            t.answer
        );
        for b in text.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn header(s: &Sampling, tasks: &[(usize, EvalTask)]) -> CacheHeader {
    CacheHeader {
        policy: s.policy.display().to_string(),
        samples: s.samples,
        problems: tasks.len(),
        tasks_hash: tasks_hash(tasks),
        temperature: s.cfg.temperature,
        top_p: s.cfg.top_p,
        max_completion_tokens: s.cfg.max_completion_tokens,
        think: format!("{:?}", s.cfg.think).to_lowercase(),
        seed: s.seed,
    }
}

/// The cached rollouts of `path` when its header matches `want` (an
/// interrupted sampling continues; other settings start over).
fn read_cache(path: &Path, want: &CacheHeader) -> anyhow::Result<Vec<CachedRollout>> {
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(Vec::new());
    };
    let mut lines = BufReader::new(f).lines();
    let head: Option<CacheHeader> = lines
        .next()
        .transpose()?
        .and_then(|l| serde_json::from_str(&l).ok());
    if head.as_ref() != Some(want) {
        eprintln!(
            "{}: sampled with other settings; sampling again",
            path.display()
        );
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        match serde_json::from_str::<CachedRollout>(&line) {
            Ok(r) => out.push(r),
            // A line cut by a kill: the rest is sampled again.
            Err(_) => {
                eprintln!("{}:{}: incomplete line, dropped", path.display(), i + 2);
                break;
            }
        }
    }
    Ok(out)
}

/// Rollouts of `tasks` (`(index, task)`), from the cache where it has them.
pub fn sample_rollouts(
    tasks: &[(usize, EvalTask)],
    s: &Sampling,
) -> anyhow::Result<Vec<CachedRollout>> {
    let tasks = if s.max_prompts > 0 && tasks.len() > s.max_prompts {
        &tasks[..s.max_prompts]
    } else {
        tasks
    };
    let want = header(s, tasks);
    let mut cached = read_cache(&s.cache, &want)?;
    // Whole groups only: a group cut by a kill is sampled again.
    let mut per_task: HashMap<usize, usize> = HashMap::new();
    for r in &cached {
        *per_task.entry(r.task).or_default() += 1;
    }
    let done: HashSet<usize> = per_task
        .iter()
        .filter(|(_, &n)| n == s.samples)
        .map(|(&t, _)| t)
        .collect();
    cached.retain(|r| done.contains(&r.task));
    let todo: Vec<(usize, &EvalTask)> = tasks
        .iter()
        .filter(|(i, _)| !done.contains(i))
        .map(|(i, t)| (*i, t))
        .collect();
    // Rewrite the cache with what is kept, then append new groups.
    let mut file =
        std::fs::File::create(&s.cache).with_context(|| s.cache.display().to_string())?;
    writeln!(file, "{}", serde_json::to_string(&want)?)?;
    for r in &cached {
        writeln!(file, "{}", serde_json::to_string(r)?)?;
    }
    file.flush()?;
    if todo.is_empty() {
        return Ok(cached);
    }

    let loaded = load_model(s.policy, None, &candle_core::Device::Cpu)
        .with_context(|| format!("loading the policy {}", s.policy.display()))?;
    let tok = Tokenizer::from_dir(s.policy)?;
    let template = ChatTemplate::from_tokenizer(&tok)?;
    let think = ThinkConfig::default();
    let reward = RewardConfig::default();
    let ctx = RolloutContext {
        tok: &tok,
        template: &template,
        think: &think,
        eos: crate::engine::bundle::eos_token_ids(s.policy, &tok)?,
        group_size: s.samples,
        temperature: s.cfg.temperature,
        top_p: s.cfg.top_p,
        max_completion_tokens: s.cfg.max_completion_tokens,
        think_mix: s.cfg.think,
        seed: s.seed,
        reward: &reward,
    };
    let bar = if s.progress {
        let b = ProgressBar::new(tasks.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} sampling [{elapsed_precise}] {bar:30} {pos}/{len} problems  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_position(done.len() as u64);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut correct = cached.iter().filter(|r| r.correct).count();
    let mut total = cached.len();
    for chunk in todo.chunks(s.cfg.prompts_per_batch) {
        // The salt is the first task's index: a problem's rollouts do not
        // depend on what was cached before.
        let salt = chunk[0].0 as u64;
        let groups = sample_groups(&loaded.model, &ctx, chunk, salt, 0.0)?;
        for g in groups {
            for r in g.rollouts {
                let c = CachedRollout {
                    task: g.task,
                    thinking: g.thinking,
                    text: r.text,
                    correct: r.correct,
                    truncated: r.truncated,
                    tokens: r.token_ids.len(),
                };
                correct += usize::from(c.correct);
                total += 1;
                writeln!(file, "{}", serde_json::to_string(&c)?)?;
                cached.push(c);
            }
        }
        file.flush()?;
        bar.inc(chunk.len() as u64);
        bar.set_message(format!(
            "{:.1}% correct",
            100.0 * correct as f64 / total.max(1) as f64
        ));
    }
    bar.finish_and_clear();
    eprintln!(
        "sampled {} rollouts of {} problems from {}: {:.1}% correct",
        total,
        tasks.len(),
        s.policy.display(),
        100.0 * correct as f64 / total.max(1) as f64
    );
    cached.sort_by_key(|r| r.task);
    Ok(cached)
}

fn chat(task: &EvalTask) -> Vec<ChatMessage> {
    task.messages.clone()
}

/// Samples and labels rollouts of `(problem index, task)` pairs.
pub type SampleFn<'a> = dyn Fn(&[(usize, EvalTask)]) -> anyhow::Result<Vec<CachedRollout>> + 'a;

/// Tokenized examples of `records` (task records through `sample`),
/// dropping those longer than `max_length` (reported).
pub fn examples(
    records: Vec<RmRecord>,
    codec: &RewardCodec,
    max_length: usize,
    what: &str,
    sample: &SampleFn,
) -> anyhow::Result<RmExamples> {
    let pairs = records.iter().any(|r| matches!(r, RmRecord::Pair { .. }));
    if pairs && records.iter().any(|r| !matches!(r, RmRecord::Pair { .. })) {
        let first = records
            .iter()
            .find(|r| !matches!(r, RmRecord::Pair { .. }))
            .map(|r| r.task().source.to_string())
            .unwrap_or_default();
        anyhow::bail!(
            "{what}: preference pairs and labelled data cannot be mixed in one file (first \
             non-pair record: {first})"
        );
    }
    let mut too_long = 0usize;
    let mut keep = |ids: Vec<u32>| {
        if ids.len() > max_length {
            too_long += 1;
            None
        } else {
            Some(ids)
        }
    };
    let out = if pairs {
        let mut v = Vec::new();
        for r in records {
            if let RmRecord::Pair {
                task,
                chosen,
                rejected,
            } = r
            {
                let t = eval_task(task);
                let c = codec.encode_pair(&chat(&t), &chosen, None)?;
                let rj = codec.encode_pair(&chat(&t), &rejected, None)?;
                if let (Some(c), Some(rj)) = (keep(c), keep(rj)) {
                    v.push(PairSample {
                        chosen: c,
                        rejected: rj,
                    });
                }
            }
        }
        RmExamples::Pairs(v)
    } else {
        let mut problems: HashMap<String, usize> = HashMap::new();
        let mut problem_of = |t: &EvalTask| {
            let key = serde_json::to_string(&t.messages).unwrap_or_default();
            let n = problems.len();
            *problems.entry(key).or_insert(n)
        };
        let mut tasks = Vec::new();
        let mut v = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            match r {
                RmRecord::Task(t) => tasks.push((i, eval_task(t))),
                RmRecord::Labelled {
                    task,
                    completion,
                    label,
                } => {
                    let t = eval_task(task);
                    let problem = problem_of(&t);
                    if let Some(ids) = keep(codec.encode_pair(&chat(&t), &completion, None)?) {
                        v.push(LabelledSample {
                            problem,
                            ids,
                            label,
                            answer_text: quorum_scoring::after_think(&completion).to_string(),
                            truncated: false,
                        });
                    }
                }
                // Not reached: a file with pairs has only pairs (checked above).
                RmRecord::Pair { .. } => {}
            }
        }
        if !tasks.is_empty() {
            let by_index: HashMap<usize, &EvalTask> = tasks.iter().map(|(i, t)| (*i, t)).collect();
            for r in sample(&tasks)? {
                let Some(&t) = by_index.get(&r.task) else {
                    anyhow::bail!(
                        "{what}: a cached rollout names task {} that is not in the data",
                        r.task
                    );
                };
                let problem = problem_of(t);
                if let Some(ids) = keep(codec.encode_pair(&chat(t), &r.text, None)?) {
                    v.push(LabelledSample {
                        problem,
                        ids,
                        label: r.correct,
                        answer_text: quorum_scoring::after_think(&r.text).to_string(),
                        truncated: r.truncated,
                    });
                }
            }
        }
        RmExamples::Labelled(v)
    };
    if too_long > 0 {
        eprintln!(
            "{what}: dropped {too_long} sequences longer than data.max_length = {max_length}"
        );
    }
    if out.is_empty() {
        anyhow::bail!("{what}: no example fits data.max_length = {max_length}");
    }
    Ok(out)
}
