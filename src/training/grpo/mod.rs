//! The GRPO run: config → prompts (rendered as served) → per step G
//! rollouts per prompt from the batched engine on the current weights
//! (or, with `sampling.async_rollouts`, on the weights one step old while
//! the current step trains), verifier rewards, group advantages, optional
//! dynamic sampling, the clipped-surrogate update; metrics, held-out
//! pass@1, checkpoints, exact `--resume`, a checkpoint on Ctrl-C / SIGTERM.
//!
//! Layout: [`run`] (here) is the loop; `batch` draws prompts and samples a
//! step's batch, `step` trains on it and builds the step's metrics and eval
//! records.

use std::path::PathBuf;
use std::time::Instant;

mod batch;
mod step;

use anyhow::Context;
use serde_json::json;

use quorum_train::checkpoint;
use quorum_train::config::load_with_overrides;
use quorum_train::filter::curriculum_order;
use quorum_train::grpo::update::UpdateConfig;
use quorum_train::grpo_config::GrpoConfig;
use quorum_train::metrics::MetricsLog;
use quorum_train::optim::AdamW;
use quorum_train::policy::Policy;

use crate::chat::ChatTemplate;
use crate::engine::think::resolve::ThinkConfig;
use crate::engine::weights_view::snapshot;
use crate::tokenizer::Tokenizer;

use super::data::load_eval_tasks_with;
use super::eval::{EvalContext, EvalTask};
use super::policy::TransformerPolicy;
use super::rollouts::RolloutContext;
use super::run::{
    device_and_dtype, due, fresh_state, prepare_run_dir, progress_bar, save_checkpoint,
    stopping_early, RunSummary,
};
use super::signals::StopFlag;
use batch::{sample_batch, Batch, Prompts};
use step::{evaluate, step_record, train_on};

/// The rollouts of the next step, saved with a checkpoint in async mode
/// (they were sampled from weights that no checkpoint holds).
const PENDING_FILE: &str = "pending_rollouts.json";
/// GRPO's own resume state (optimizer steps: μ per step, 0 for a step
/// whose groups were all dropped).
const STATE_FILE: &str = "grpo_state.json";

/// How `quorum train grpo` was invoked.
pub struct GrpoOptions {
    pub config: PathBuf,
    pub overrides: Vec<String>,
    pub resume: bool,
    pub progress: bool,
}

pub fn run(opts: GrpoOptions) -> anyhow::Result<RunSummary> {
    let (cfg, resolved): (GrpoConfig, toml::Table) =
        load_with_overrides(&opts.config, &opts.overrides)?;
    cfg.validate()?;
    let run_dir = cfg.out.clone();
    let (device, dtype) = device_and_dtype(&cfg.model)?;
    let resume_from = prepare_run_dir(&run_dir, opts.resume, &resolved)?;

    let tok = Tokenizer::from_dir(&cfg.model.init)?;
    let template = ChatTemplate::from_tokenizer(&tok)?;
    let think_cfg = ThinkConfig::default();
    let opts_load = cfg.data.load_options();
    let train_tasks = load_eval_tasks_with(&cfg.data.train, &opts_load)?;
    cfg.check_prompts(train_tasks.len())?;
    let eval_tasks: Vec<EvalTask> = match &cfg.data.eval_tasks {
        Some(p) => load_eval_tasks_with(p, &opts_load)?
            .into_iter()
            .take(cfg.eval.max_problems)
            .collect(),
        None => Vec::new(),
    };

    let (weights_dir, mut state, pending) = match &resume_from {
        Some((_, dir)) => {
            let (state, _) = checkpoint::load_state(dir)?;
            let pending = match std::fs::read(dir.join(PENDING_FILE)) {
                Ok(b) => Some(serde_json::from_slice::<Batch>(&b).with_context(|| {
                    format!(
                        "{}: unreadable pending rollouts",
                        dir.join(PENDING_FILE).display()
                    )
                })?),
                Err(_) => None,
            };
            (dir.clone(), state, pending)
        }
        None => (cfg.model.init.clone(), fresh_state(cfg.train.seed), None),
    };
    let policy = TransformerPolicy::load(&weights_dir, dtype, &device)?;
    let params = policy.params();
    let mut opt = AdamW::new(params.clone(), cfg.optim.adamw())?;
    if let Some((_, dir)) = &resume_from {
        let (_, moments) = checkpoint::load_state(dir)?;
        let opt_steps = std::fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["optimizer_steps"].as_u64())
            .with_context(|| {
                format!("{}: missing or unreadable", dir.join(STATE_FILE).display())
            })?;
        opt.load_state(&moments, opt_steps)?;
        eprintln!("resuming {} at step {}", run_dir.display(), state.step);
    }
    let reference = if cfg.objective.kl_beta > 0.0 {
        let dir = cfg
            .objective
            .reference
            .clone()
            .unwrap_or_else(|| cfg.model.init.clone());
        Some(TransformerPolicy::load(&dir, dtype, &device).context("loading the reference model")?)
    } else {
        None
    };
    eprintln!(
        "grpo: {} parameters, {} prompts, {} eval tasks, {} steps of {} prompts × {} rollouts{}",
        policy.num_params(),
        train_tasks.len(),
        eval_tasks.len(),
        cfg.train.steps,
        cfg.rollout.prompts_per_step,
        cfg.rollout.group_size,
        if cfg.sampling.async_rollouts {
            " (async rollouts)"
        } else {
            ""
        }
    );

    let eos = crate::engine::bundle::eos_token_ids(&cfg.model.init, &tok)?;
    let ctx = RolloutContext {
        tok: &tok,
        template: &template,
        think: &think_cfg,
        eos: eos.clone(),
        group_size: cfg.rollout.group_size,
        temperature: cfg.rollout.temperature,
        top_p: cfg.rollout.top_p,
        max_completion_tokens: cfg.rollout.max_completion_tokens,
        think_mix: cfg.rollout.think,
        seed: cfg.train.seed,
        reward: &cfg.reward,
    };
    let eval_ctx = EvalContext {
        tok: &tok,
        template: &template,
        think: &think_cfg,
        eos,
        max_new_tokens: cfg.eval.max_new_tokens,
    };
    let update_cfg = UpdateConfig {
        objective: cfg.objective.objective(),
        aggregation: cfg.objective.aggregation,
        max_completion_tokens: cfg.rollout.max_completion_tokens,
        temperature: cfg.rollout.temperature,
        micro_batch_tokens: cfg.train.micro_batch_tokens,
        iterations: cfg.objective.iterations_per_batch,
        max_grad_norm: cfg.optim.clip(),
    };
    let mut metrics = MetricsLog::open(&run_dir, resume_from.as_ref().map(|(s, _)| *s))?;
    let stop = StopFlag::install().context("installing the Ctrl-C / SIGTERM handler")?;
    let schedule = cfg.optim.schedule(cfg.train.steps);
    let bar = progress_bar(opts.progress, cfg.train.steps, state.step);
    // Curriculum: easy to hard by measured pass rate, the same order every epoch.
    let curriculum: Option<Vec<usize>> = cfg.sampling.curriculum.then(|| {
        let rates: Vec<Option<f64>> = train_tasks.iter().map(|t| t.pass_rate).collect();
        curriculum_order(&rates, cfg.train.seed)
    });
    if cfg.sampling.curriculum && train_tasks.iter().all(|t| t.pass_rate.is_none()) {
        anyhow::bail!(
            "config: `sampling.curriculum`: no task of data.train has a `pass_rate` \
             (measure them with `quorum train filter … --out FILE` and train on FILE)"
        );
    }
    let mut prompts = Prompts {
        tasks: &train_tasks,
        order: curriculum.as_deref(),
        seed: state.seed,
        epoch: state.epoch,
        cursor: state.cursor,
    };

    if state.step == 0 && !eval_tasks.is_empty() {
        let record = evaluate(&policy.model, &eval_ctx, &eval_tasks, &cfg.eval.modes, 0)?;
        bar.println(format!("eval @ step 0: {record}"));
        metrics.write(&record)?;
    }

    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut last_checkpoint = resume_from.as_ref().map(|(_, p)| p.clone());
    let mut final_eval = None;
    let mut stopped_early = false;
    let mut pending: Option<Batch> = pending;

    while state.step < cfg.train.steps {
        let t0 = Instant::now();
        let step = state.step + 1;
        let batch = match pending.take() {
            Some(b) => b,
            None => sample_batch(&policy.model, &ctx, &mut prompts, &cfg, step)?,
        };
        prompts.epoch = batch.epoch;
        prompts.cursor = batch.cursor;
        let lr = schedule.lr(state.step);
        let want_next = cfg.sampling.async_rollouts && step < cfg.train.steps;
        let t_update = Instant::now();
        let update_step = |opt: &mut AdamW| {
            train_on(
                &policy,
                &params,
                opt,
                reference.as_ref(),
                &batch,
                &cfg,
                &update_cfg,
                lr,
            )
        };
        let (update, next) = if want_next {
            // The next batch samples from these weights (one step old by
            // the time it trains) while this step updates.
            let old = snapshot(&policy.model)?;
            let mut next_prompts = Prompts {
                tasks: &train_tasks,
                order: curriculum.as_deref(),
                seed: state.seed,
                epoch: batch.epoch,
                cursor: batch.cursor,
            };
            std::thread::scope(|s| {
                let h = s.spawn(|| sample_batch(&old, &ctx, &mut next_prompts, &cfg, step + 1));
                let u = update_step(&mut opt);
                let n = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("the rollout thread panicked"))
                    .and_then(|r| r);
                (u, Some(n))
            })
        } else {
            (update_step(&mut opt), None)
        };
        let update = update.with_context(|| format!("step {step}"))?;
        if let Some(n) = next {
            pending =
                Some(n.with_context(|| format!("sampling the rollouts of step {}", step + 1))?);
        }
        let update_s = t_update.elapsed().as_secs_f64();
        state.step = step;
        state.epoch = prompts.epoch;
        state.cursor = prompts.cursor;
        if let Some(p) = &pending {
            state.epoch = p.epoch;
            state.cursor = p.cursor;
        }
        state.tokens_seen += update.as_ref().map_or(0, |u| u.tokens as u64);
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let dt = t0.elapsed().as_secs_f64();
        let record = step_record(
            &batch,
            update.as_ref(),
            lr,
            dt,
            update_s,
            &state,
            cfg.sampling.async_rollouts,
        );
        if state.step % cfg.train.log_every == 0 || state.step == cfg.train.steps {
            metrics.write(&record)?;
        }
        bar.set_position(state.step);
        bar.set_message(format!(
            "reward {:.3}  acc {:.3}  zero-var {:.2}  {:.1} s/step",
            record["reward_mean"].as_f64().unwrap_or(0.0),
            record["accuracy"].as_f64().unwrap_or(0.0),
            record["zero_variance_fraction"].as_f64().unwrap_or(0.0),
            dt
        ));

        let last = state.step == cfg.train.steps;
        let eval_due = due(cfg.eval.every, state.step) || last;
        if eval_due && !eval_tasks.is_empty() {
            let record = evaluate(
                &policy.model,
                &eval_ctx,
                &eval_tasks,
                &cfg.eval.modes,
                state.step,
            )?;
            bar.println(format!("eval @ step {}: {record}", state.step));
            metrics.write(&record)?;
            final_eval = Some(record);
        }
        let ckpt_due = due(cfg.checkpoint.every, state.step) || last || stop.requested();
        if ckpt_due {
            let mut extra: Vec<(&str, Vec<u8>)> = vec![(
                STATE_FILE,
                serde_json::to_vec(&json!({"optimizer_steps": opt.steps()}))?,
            )];
            if let Some(p) = &pending {
                extra.push((PENDING_FILE, serde_json::to_vec(p)?));
            }
            last_checkpoint = Some(save_checkpoint(
                &run_dir,
                &cfg.model.init,
                &state,
                &opt,
                &policy,
                cfg.checkpoint.keep,
                &extra,
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
