//! The reward-model run: config → the backbone (a policy turned into a
//! reward model, or a reward model to continue) → examples (rollouts
//! sampled from the policy and labelled by the verifier, labelled
//! completions or preference pairs, rendered as serving scores them) →
//! steps (problems or pairs per step, token-budget micro-batches, AdamW,
//! schedule) with metrics, held-out AUC / selection reports, checkpoints,
//! exact `--resume`, and a checkpoint on Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use quorum_train::batch::epoch_order;
use quorum_train::checkpoint;
use quorum_train::config::load_with_overrides;
use quorum_train::metrics::MetricsLog;
use quorum_train::optim::AdamW;
use quorum_train::policy::Scorer;
use quorum_train::rm::loss::balanced_weights;
use quorum_train::rm::{rm_step, score_all, RmBatch, RmTarget};
use quorum_train::rm_config::{RmConfig, RmLoss};

use crate::engine::RewardCodec;
use crate::model::tensor_plan::is_reward_model;
use crate::model::ModelConfig;
use crate::tokenizer::Tokenizer;

use super::data::load_rm_records;
use super::eval::EvalTask;
use super::policy::TransformerPolicy;
use super::rm_backbone::reward_backbone;
use super::rm_eval::{labelled_report, pairs_report};
use super::rm_samples::{examples, sample_rollouts, CachedRollout, RmExamples, Sampling};
use super::run::{
    device_and_dtype, due, fresh_state, prepare_run_dir, progress_bar, save_checkpoint,
    stopping_early, RunSummary,
};
use super::signals::StopFlag;

/// How `quorum train rm` was invoked.
pub struct RmOptions {
    pub config: PathBuf,
    pub overrides: Vec<String>,
    pub resume: bool,
    pub progress: bool,
}

/// The unit a step draws: a problem's samples (all of them, so its
/// balance holds within the step) or one pair.
struct Items {
    /// Sequences of each item, in order.
    members: Vec<Vec<usize>>,
}

fn items(ex: &RmExamples) -> Items {
    match ex {
        RmExamples::Labelled(v) => {
            let mut by: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (i, s) in v.iter().enumerate() {
                by.entry(s.problem).or_default().push(i);
            }
            Items {
                members: by.into_values().collect(),
            }
        }
        RmExamples::Pairs(v) => Items {
            members: (0..v.len()).map(|i| vec![i]).collect(),
        },
    }
}

/// Token-budget micro-batches of the chosen items (an item never splits).
fn micro_batches(
    ex: &RmExamples,
    weights: &[f32],
    chosen: &[&Vec<usize>],
    batch_tokens: usize,
) -> Vec<RmBatch> {
    let mut out = Vec::new();
    let mut cur = RmBatch {
        seqs: Vec::new(),
        target: match ex {
            RmExamples::Labelled(_) => RmTarget::Labels {
                labels: Vec::new(),
                weights: Vec::new(),
            },
            RmExamples::Pairs(_) => RmTarget::Pairs {
                weights: Vec::new(),
            },
        },
    };
    let empty = cur.clone();
    for members in chosen {
        for &i in members.iter() {
            let (seqs, label): (Vec<&Vec<u32>>, Option<f32>) = match ex {
                RmExamples::Labelled(v) => {
                    (vec![&v[i].ids], Some(if v[i].label { 1.0 } else { 0.0 }))
                }
                RmExamples::Pairs(v) => (vec![&v[i].chosen, &v[i].rejected], None),
            };
            let len: usize = seqs.iter().map(|s| s.len()).sum();
            if !cur.seqs.is_empty() && cur.tokens() + len > batch_tokens {
                out.push(std::mem::replace(&mut cur, empty.clone()));
            }
            cur.seqs.extend(seqs.into_iter().cloned());
            match (&mut cur.target, label) {
                (RmTarget::Labels { labels, weights: w }, Some(y)) => {
                    labels.push(y);
                    w.push(weights[i]);
                }
                (RmTarget::Pairs { weights: w }, None) => w.push(weights[i]),
                _ => {}
            }
        }
    }
    if !cur.seqs.is_empty() {
        out.push(cur);
    }
    out
}

/// Labelled samples of the problems that have both labels (the others
/// teach problem difficulty, not which answer is right); reports the cut.
fn mixed_problems_only(ex: RmExamples) -> RmExamples {
    let RmExamples::Labelled(v) = ex else {
        return ex;
    };
    let mut seen: std::collections::HashMap<usize, (bool, bool)> = Default::default();
    for s in &v {
        let e = seen.entry(s.problem).or_default();
        if s.label {
            e.0 = true;
        } else {
            e.1 = true;
        }
    }
    let before = (v.len(), seen.len());
    let kept: Vec<_> = v
        .into_iter()
        .filter(|s| seen[&s.problem] == (true, true))
        .collect();
    let problems = seen.values().filter(|&&e| e == (true, true)).count();
    eprintln!(
        "objective.mixed_only: {} of {} problems have correct and wrong samples ({} of {} samples kept)",
        problems,
        before.1,
        kept.len(),
        before.0
    );
    RmExamples::Labelled(kept)
}

fn sequences(ex: &RmExamples) -> Vec<Vec<u32>> {
    match ex {
        RmExamples::Labelled(v) => v.iter().map(|s| s.ids.clone()).collect(),
        RmExamples::Pairs(v) => v
            .iter()
            .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
            .collect(),
    }
}

pub fn run(opts: RmOptions) -> anyhow::Result<RunSummary> {
    let (cfg, resolved): (RmConfig, toml::Table) =
        load_with_overrides(&opts.config, &opts.overrides)?;
    cfg.validate()?;
    let run_dir = cfg.out.clone();
    let (device, dtype) = device_and_dtype(&cfg.model)?;
    let resume_from = prepare_run_dir(&run_dir, opts.resume, &resolved)?;
    let backbone = reward_backbone(
        &cfg.model.init,
        &run_dir,
        cfg.objective.head_init_std,
        cfg.train.seed,
    )?;
    // Whose answers are judged: `rollouts.policy`, else the starting policy.
    let init_is_rm = is_reward_model(&ModelConfig::from_file(
        &cfg.model.init.join("config.json"),
    )?);
    let policy_dir = match (&cfg.rollouts.policy, init_is_rm) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(cfg.model.init.clone()),
        (None, true) => None,
    };
    let codec = RewardCodec::from_tokenizer(Tokenizer::from_dir(&backbone)?)?;
    let sampler = |samples: usize, max_prompts: usize, seed: u64, cache: &str| {
        let run_dir = run_dir.clone();
        let policy_dir = policy_dir.clone();
        let cfg = &cfg;
        let progress = opts.progress;
        let cache = cache.to_string();
        move |tasks: &[(usize, EvalTask)]| -> anyhow::Result<Vec<CachedRollout>> {
            let Some(policy) = &policy_dir else {
                bail!(
                    "config: `rollouts.policy`: the data are tasks and `model.init` is a reward \
                     model; name the policy whose answers to sample"
                );
            };
            sample_rollouts(
                tasks,
                &Sampling {
                    policy,
                    cfg: &cfg.rollouts,
                    samples,
                    max_prompts,
                    seed,
                    cache: run_dir.join(&cache),
                    progress,
                },
            )
        }
    };
    let r = &cfg.rollouts;
    let train = examples(
        load_rm_records(&cfg.data.train, &cfg.data)?,
        &codec,
        cfg.data.max_length,
        "train",
        &sampler(
            r.samples_per_prompt,
            r.max_prompts,
            cfg.train.seed,
            "rollouts-train.jsonl",
        ),
    )?;
    let eval = match &cfg.data.eval {
        Some(p) => Some(examples(
            load_rm_records(p, &cfg.data)?,
            &codec,
            cfg.data.max_length,
            "eval",
            &sampler(
                r.eval_samples_per_prompt,
                r.eval_max_prompts,
                cfg.train.seed ^ 0xE7A1,
                "rollouts-eval.jsonl",
            ),
        )?),
        None => None,
    };
    let pairs = matches!(train, RmExamples::Pairs(_));
    match (cfg.objective.loss, pairs) {
        (RmLoss::Bce, true) => bail!("config: `objective.loss`: bce needs labelled data; the train data are preference pairs"),
        (RmLoss::BradleyTerry, false) => bail!("config: `objective.loss`: bradley_terry needs preference pairs (`chosen`/`rejected`)"),
        _ => {}
    }
    if let Some(e) = &eval {
        if matches!(e, RmExamples::Pairs(_)) != pairs {
            bail!(
                "data.eval: the held-out data must be of the train data's kind (pairs or labelled)"
            );
        }
    }
    let train = if cfg.objective.mixed_only {
        mixed_problems_only(train)
    } else {
        train
    };
    if train.is_empty() {
        bail!(
            "data.train: no training examples (with objective.mixed_only, no problem has both \
             correct and wrong samples)"
        );
    }
    let weights: Vec<f32> = match &train {
        RmExamples::Labelled(v) if cfg.objective.balance => balanced_weights(
            &v.iter().map(|s| s.problem).collect::<Vec<_>>(),
            &v.iter().map(|s| s.label).collect::<Vec<_>>(),
        ),
        _ => vec![1.0; train.len()],
    };
    let plan = items(&train);

    // Model and optimizer, from the start or the checkpoint.
    let (weights_dir, mut state) = match &resume_from {
        Some((_, dir)) => (dir.clone(), checkpoint::load_state(dir)?.0),
        None => (backbone.clone(), fresh_state(cfg.train.seed)),
    };
    let model = TransformerPolicy::load(&weights_dir, dtype, &device)?;
    let params = Scorer::params(&model);
    let mut opt = AdamW::new(params.clone(), cfg.optim.adamw())?;
    if let Some((_, dir)) = &resume_from {
        let (_, moments) = checkpoint::load_state(dir)?;
        opt.load_state(&moments, state.step)?;
        eprintln!("resuming {} at step {}", run_dir.display(), state.step);
    }
    let positives = match &train {
        RmExamples::Labelled(v) => v.iter().filter(|s| s.label).count(),
        RmExamples::Pairs(v) => v.len(),
    };
    eprintln!(
        "rm: {} parameters, {} train {} ({} {}), {} eval, loss {}, {} steps",
        model.num_params(),
        train.len(),
        if pairs { "pairs" } else { "samples" },
        if pairs { plan.members.len() } else { positives },
        if pairs { "pairs" } else { "correct" },
        eval.as_ref().map_or(0, RmExamples::len),
        if pairs { "bradley_terry" } else { "bce" },
        cfg.train.steps
    );

    let eval_seqs = eval.as_ref().map(sequences);
    let mut metrics = MetricsLog::open(&run_dir, resume_from.as_ref().map(|(s, _)| *s))?;
    let stop = StopFlag::install().context("installing the Ctrl-C / SIGTERM handler")?;
    let schedule = cfg.optim.schedule(cfg.train.steps);
    let bar = progress_bar(opts.progress, cfg.train.steps, state.step);
    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut last_checkpoint = resume_from.as_ref().map(|(_, p)| p.clone());
    let mut final_eval = None;
    let mut stopped_early = false;
    let mut order_epoch = u64::MAX;
    let mut order: Vec<usize> = Vec::new();

    while state.step < cfg.train.steps {
        let t0 = Instant::now();
        let mut chosen = Vec::with_capacity(cfg.train.items_per_step);
        for _ in 0..cfg.train.items_per_step.min(plan.members.len()) {
            if order_epoch != state.epoch {
                order = epoch_order(plan.members.len(), state.seed, state.epoch);
                order_epoch = state.epoch;
            }
            chosen.push(&plan.members[order[state.cursor]]);
            state.cursor += 1;
            if state.cursor == order.len() {
                state.cursor = 0;
                state.epoch += 1;
            }
        }
        let micro = micro_batches(&train, &weights, &chosen, cfg.train.batch_tokens);
        let lr = schedule.lr(state.step);
        let st = rm_step(&model, &params, &mut opt, &micro, lr, cfg.optim.clip())
            .with_context(|| format!("step {}", state.step + 1))?;
        state.step += 1;
        state.tokens_seen += st.tokens as u64;
        let dt = t0.elapsed().as_secs_f64();
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        if state.step % cfg.train.log_every == 0 || state.step == cfg.train.steps {
            metrics.write(&json!({
                "kind": "step",
                "step": state.step,
                "loss": st.loss,
                "lr": lr,
                "grad_norm": st.grad_norm,
                "accuracy": st.accuracy,
                "sequences": st.sequences,
                "tokens": st.tokens,
                "tokens_per_s": st.tokens as f64 / dt,
                "elapsed_s": state.elapsed_s,
            }))?;
        }
        bar.set_position(state.step);
        bar.set_message(format!(
            "loss {:.4}  acc {:.2}  lr {:.2e}  {:.0} tok/s",
            st.loss,
            st.accuracy,
            lr,
            st.tokens as f64 / dt
        ));
        let last = state.step == cfg.train.steps;
        if let (Some(ex), Some(seqs)) = (&eval, &eval_seqs) {
            if due(cfg.eval.every, state.step) || last {
                let scores = score_all(&model, seqs, cfg.train.batch_tokens)?;
                let record = eval_record(ex, &scores, &cfg, state.step);
                bar.println(format!(
                    "eval @ step {}: {}",
                    state.step, record["accuracy"]
                ));
                metrics.write(&record)?;
                final_eval = Some(record);
            }
        }
        if due(cfg.checkpoint.every, state.step) || last || stop.requested() {
            last_checkpoint = Some(save_checkpoint(
                &run_dir,
                &backbone,
                &state,
                &opt,
                &model,
                cfg.checkpoint.keep,
                &[],
            )?);
        }
        if stopping_early(&stop, last, &bar, state.step) {
            stopped_early = true;
            break;
        }
    }
    bar.finish();
    Ok(RunSummary {
        run_dir,
        steps: state.step,
        stopped_early,
        last_checkpoint,
        final_eval,
    })
}

/// The eval record: `accuracy` holds the plotted series (AUC, and
/// majority / best-of-N / weighted-majority accuracy at each N).
fn eval_record(ex: &RmExamples, scores: &[f64], cfg: &RmConfig, step: u64) -> serde_json::Value {
    match ex {
        RmExamples::Labelled(v) => {
            let r = labelled_report(v, scores, &cfg.eval.n, cfg.eval.subsets, cfg.train.seed);
            let mut acc = serde_json::Map::new();
            if let Some(a) = r.auc {
                acc.insert("auc".into(), json!(a));
            }
            if let Some(a) = r.auc_within {
                acc.insert("auc_within".into(), json!(a));
            }
            for s in &r.selection {
                acc.insert(format!("majority@{}", s.n), json!(s.majority));
                acc.insert(format!("best_of_n@{}", s.n), json!(s.best_of_n));
                acc.insert(
                    format!("weighted_majority@{}", s.n),
                    json!(s.weighted_majority),
                );
            }
            json!({"kind": "eval", "step": step, "accuracy": acc, "report": r})
        }
        RmExamples::Pairs(p) => {
            let a = pairs_report(p, scores);
            json!({"kind": "eval", "step": step, "accuracy": {"pair_accuracy": a}})
        }
    }
}
