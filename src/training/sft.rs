//! The SFT run: config → data (rendered and masked like served prompts) →
//! steps (token-budget micro-batches, accumulation, AdamW, schedule) with
//! metrics, periodic eval (held-out loss, accuracy by generation) and
//! checkpoints, exact `--resume`, and a checkpoint on Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use quorum_train::batch::{epoch_order, token_budget_batches, Example, PackedBatch};
use quorum_train::checkpoint::{self, TrainerState};
use quorum_train::config::load_with_overrides;
use quorum_train::mask::assistant_only;
use quorum_train::metrics::{MetricsLog, StepRecord};
use quorum_train::optim::AdamW;
use quorum_train::policy::Policy;
use quorum_train::sft::{eval_loss, sft_step};
use quorum_train::sft_config::SftConfig;

use crate::chat::ChatTemplate;
use crate::engine::think::budget::tokenizer_supports_think;
use crate::engine::think::resolve::ThinkConfig;
use crate::tokenizer::Tokenizer;

use super::data::{load_conversations, load_eval_tasks, Conversation};
use super::eval::{accuracy, EvalContext, EvalTask};
use super::policy::TransformerPolicy;
use super::render::ConversationRenderer;
use super::run::{
    device_and_dtype, due, fresh_state, prepare_run_dir, progress_bar, save_checkpoint,
    stopping_early, RunSummary,
};
use super::signals::StopFlag;

/// How `quorum train sft` was invoked.
pub struct SftOptions {
    pub config: PathBuf,
    /// `key.path=value` overrides.
    pub overrides: Vec<String>,
    pub resume: bool,
    /// Progress bar on stderr.
    pub progress: bool,
}

pub fn run(opts: SftOptions) -> anyhow::Result<RunSummary> {
    let (cfg, resolved): (SftConfig, toml::Table) =
        load_with_overrides(&opts.config, &opts.overrides)?;
    cfg.validate()?;
    let run_dir = cfg.out.clone();
    let (device, dtype) = device_and_dtype(&cfg.model)?;
    let resume_from = prepare_run_dir(&run_dir, opts.resume, &resolved)?;

    // Tokenizer, template and think mode of the starting model.
    let tok = Tokenizer::from_dir(&cfg.model.init)?;
    let template = ChatTemplate::from_tokenizer(&tok)?;
    let think_cfg = ThinkConfig::default();
    let supported = tokenizer_supports_think(&tok, &think_cfg.start_tag, &think_cfg.end_tag);

    // Data, rendered and masked exactly as served prompts are.
    let train = encode_conversations(
        &load_conversations(&cfg.data.train, &cfg.data)?,
        &template,
        &tok,
        &think_cfg,
        supported,
        cfg.data.max_length,
        "train",
    )?;
    let eval_examples = match &cfg.data.eval {
        Some(p) => Some(encode_conversations(
            &load_conversations(p, &cfg.data)?,
            &template,
            &tok,
            &think_cfg,
            supported,
            cfg.data.max_length,
            "eval",
        )?),
        None => None,
    };
    let eval_tasks: Vec<EvalTask> = match &cfg.data.eval_tasks {
        Some(p) => load_eval_tasks(p, &cfg.data)?
            .into_iter()
            .take(cfg.eval.max_problems)
            .collect(),
        None => Vec::new(),
    };
    let eval_batches: Vec<PackedBatch> = match &eval_examples {
        Some(ex) => {
            let lens: Vec<usize> = ex.iter().map(Example::input_len).collect();
            let order: Vec<usize> = (0..ex.len()).collect();
            token_budget_batches(&lens, &order, cfg.train.batch_tokens)?
                .iter()
                .map(|b| PackedBatch::pack(b.iter().map(|&i| &ex[i])))
                .collect()
        }
        None => Vec::new(),
    };

    // Model and optimizer, from the start or the checkpoint.
    let (weights_dir, mut state) = match &resume_from {
        Some((_, dir)) => {
            let (state, _) = checkpoint::load_state(dir)?;
            (dir.clone(), state)
        }
        None => (cfg.model.init.clone(), fresh_state(cfg.train.seed)),
    };
    let policy = TransformerPolicy::load(&weights_dir, dtype, &device)?;
    let params = policy.params();
    let mut opt = AdamW::new(params.clone(), cfg.optim.adamw())?;
    if let Some((_, dir)) = &resume_from {
        let (_, moments) = checkpoint::load_state(dir)?;
        opt.load_state(&moments, state.step)?;
        eprintln!(
            "resuming {} at step {} (epoch {}, batch {})",
            run_dir.display(),
            state.step,
            state.epoch,
            state.cursor
        );
    }
    eprintln!(
        "sft: {} parameters, {} train sequences ({} tokens trained per epoch), {} eval \
         sequences, {} eval tasks, {} steps",
        policy.num_params(),
        train.len(),
        train.iter().map(|e| e.trained_tokens() as u64).sum::<u64>(),
        eval_examples.as_ref().map_or(0, Vec::len),
        eval_tasks.len(),
        cfg.train.steps
    );

    let eval_ctx = EvalContext {
        tok: &tok,
        template: &template,
        think: &think_cfg,
        eos: crate::engine::bundle::eos_token_ids(&cfg.model.init, &tok)?,
        max_new_tokens: cfg.eval.max_new_tokens,
    };
    let mut metrics = MetricsLog::open(&run_dir, resume_from.as_ref().map(|(s, _)| *s))?;
    let stop = StopFlag::install().context("installing the Ctrl-C / SIGTERM handler")?;
    let schedule = cfg.optim.schedule(cfg.train.steps);
    let lens: Vec<usize> = train.iter().map(Example::input_len).collect();
    let mut plan_epoch = u64::MAX;
    let mut plan: Vec<Vec<usize>> = Vec::new();

    let bar = progress_bar(opts.progress, cfg.train.steps, state.step);

    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut last_checkpoint = resume_from.as_ref().map(|(_, p)| p.clone());
    let mut final_eval = None;
    let mut stopped_early = false;
    let save = |state: &TrainerState, opt: &AdamW, policy: &TransformerPolicy| {
        save_checkpoint(
            &run_dir,
            &cfg.model.init,
            state,
            opt,
            policy,
            cfg.checkpoint.keep,
            &[],
        )
    };

    while state.step < cfg.train.steps {
        let t0 = Instant::now();
        let mut micro = Vec::with_capacity(cfg.train.grad_accum);
        for _ in 0..cfg.train.grad_accum {
            if plan_epoch != state.epoch {
                plan = token_budget_batches(
                    &lens,
                    &epoch_order(train.len(), state.seed, state.epoch),
                    cfg.train.batch_tokens,
                )?;
                plan_epoch = state.epoch;
            }
            let b = &plan[state.cursor];
            micro.push(PackedBatch::pack(b.iter().map(|&i| &train[i])));
            state.cursor += 1;
            if state.cursor == plan.len() {
                state.cursor = 0;
                state.epoch += 1;
            }
        }
        let lr = schedule.lr(state.step);
        let stats = sft_step(&policy, &params, &mut opt, &micro, lr, cfg.optim.clip())
            .with_context(|| format!("step {}", state.step + 1))?;
        state.step += 1;
        state.tokens_seen += stats.tokens as u64;
        let dt = t0.elapsed().as_secs_f64();
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        if state.step % cfg.train.log_every == 0 || state.step == cfg.train.steps {
            metrics.write(&StepRecord {
                kind: "step",
                step: state.step,
                loss: stats.loss,
                lr,
                grad_norm: stats.grad_norm,
                tokens: stats.tokens,
                trained_tokens: stats.trained_tokens,
                tokens_per_s: stats.tokens as f64 / dt,
                elapsed_s: state.elapsed_s,
            })?;
        }
        bar.set_position(state.step);
        bar.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.0} tok/s",
            stats.loss,
            lr,
            stats.tokens as f64 / dt
        ));

        let last = state.step == cfg.train.steps;
        let eval_due = due(cfg.eval.every, state.step) || last;
        if eval_due && (!eval_batches.is_empty() || !eval_tasks.is_empty()) {
            let record = evaluate(
                &policy,
                &eval_batches,
                &eval_tasks,
                &eval_ctx,
                &cfg.eval.modes,
                state.step,
            )?;
            bar.println(format!("eval @ step {}: {}", state.step, record));
            metrics.write(&record)?;
            final_eval = Some(record);
        }
        let ckpt_due = due(cfg.checkpoint.every, state.step) || last || stop.requested();
        if ckpt_due {
            last_checkpoint = Some(save(&state, &opt, &policy)?);
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

/// Render, tokenize and mask conversations; drop (and report) sequences
/// longer than `max_length`. An unusable conversation is an error naming
/// its `file:line`.
fn encode_conversations(
    convs: &[Conversation],
    template: &ChatTemplate,
    tok: &Tokenizer,
    think: &ThinkConfig,
    supported: bool,
    max_length: usize,
    what: &str,
) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::with_capacity(convs.len());
    let mut too_long = 0usize;
    let mut skipped_turns = 0usize;
    for c in convs {
        let r = ConversationRenderer::new(
            template,
            tok,
            think,
            supported,
            &c.messages,
            c.kwargs.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", c.origin))?;
        let m = assistant_only(&r, &c.messages, |m| m.role == "assistant")
            .with_context(|| c.origin.clone())?;
        skipped_turns += m.skipped_turns;
        if m.example.ids.len() > max_length {
            too_long += 1;
            continue;
        }
        out.push(m.example);
    }
    if too_long > 0 {
        eprintln!(
            "{what}: dropped {too_long} of {} sequences longer than data.max_length = {max_length}",
            convs.len()
        );
    }
    if skipped_turns > 0 {
        eprintln!(
            "{what}: {skipped_turns} earlier assistant turns not trained on (the template \
             rewrites them in later turns)"
        );
    }
    if out.is_empty() {
        bail!("{what}: no sequence fits data.max_length = {max_length}");
    }
    Ok(out)
}

fn evaluate(
    policy: &TransformerPolicy,
    batches: &[PackedBatch],
    tasks: &[EvalTask],
    ctx: &EvalContext,
    modes: &[String],
    step: u64,
) -> anyhow::Result<serde_json::Value> {
    let mut record = json!({"kind": "eval", "step": step});
    if !batches.is_empty() {
        record["eval_loss"] = json!(eval_loss(policy, batches)?);
    }
    if !tasks.is_empty() {
        let mut acc = serde_json::Map::new();
        let mut detail = serde_json::Map::new();
        for mode in modes {
            let a = accuracy(&policy.model, ctx, tasks, mode == "think")?;
            acc.insert(mode.clone(), json!(a.accuracy));
            detail.insert(mode.clone(), serde_json::to_value(&a)?);
        }
        record["accuracy"] = serde_json::Value::Object(acc);
        record["generation"] = serde_json::Value::Object(detail);
    }
    Ok(record)
}
