//! `quorum bench selection`: one request through the serving path (chat
//! template and think mode as the server resolves them, the engine with a
//! per-rollout [`CancelSet`], the server's early-stop policy), then the
//! server's selection and the math verifier on the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use quorum_scoring::Selector;
use serde_json::Map;

use super::input::Task;
use super::report::Outcome;
use crate::chat::{ChatMessage, ChatTemplate};
use crate::engine::think::prompt::render_prompt;
use crate::engine::think::ThinkSpec;
use crate::engine::{
    CancelSet, EngineEvent, EngineHandle, GenerateRequest, RolloutOutput, SamplingParams,
    SubmitError,
};
use crate::server::openai::SelectionOptions;
use crate::server::openai::ThinkFields;
use crate::server::selection::early::{summaries, Trace, Watch};
use crate::server::think::prepare;
use crate::server::ServerConfig;
use crate::tokenizer::Tokenizer;

/// A task's prompt as the server renders it.
pub struct Prompt {
    pub ids: Vec<u32>,
    pub think: Option<ThinkSpec>,
}

/// Renders `task` as the chat route does: think toggles resolved against
/// the server's default think config, the chat template, the think block
/// opened or closed to match, tokenized without added special tokens.
pub fn render(
    tok: &Tokenizer,
    template: &ChatTemplate,
    think: &ThinkFields,
    default_system: Option<&str>,
    task: &Task,
) -> anyhow::Result<Prompt> {
    let mut messages = Vec::new();
    if let Some(s) = task.system.as_deref().or(default_system) {
        messages.push(ChatMessage::system(s));
    }
    messages.push(ChatMessage::user(task.prompt.clone()));
    let mut kwargs = Map::new();
    let server = ServerConfig::default();
    let think = prepare(think, &mut kwargs, &messages, &server, "bench", tok)
        .map_err(|e| anyhow!("think mode: {e}"))?;
    let (_, ids) = render_prompt(
        template,
        tok,
        &messages,
        &kwargs,
        &think.prompt_think(),
        crate::chat::SpecialTokenPolicy::default(),
        None,
    )?;
    let think = think.spec(tok).map_err(|e| anyhow!("think mode: {e}"))?;
    Ok(Prompt { ids, think })
}

/// One request's rollouts, as the selection driver saw them.
pub struct Group {
    /// In rollout-index order.
    outs: Vec<RolloutOutput>,
    traces: Vec<Trace>,
    /// Rollouts early stop actually cancelled.
    stopped: Vec<usize>,
    decoded: usize,
    wall: Duration,
}

/// Runs `n` rollouts of `prompt`, applying `opts`' early stop exactly as
/// the server's selection driver does (`src/server/selection/run.rs`).
pub fn run_group(
    engine: &EngineHandle,
    prompt: &Prompt,
    n: usize,
    params: &SamplingParams,
    opts: &SelectionOptions,
) -> anyhow::Result<Group> {
    let max_tokens = params.max_tokens.unwrap_or(usize::MAX);
    let cancel = Arc::new(CancelSet::new(n));
    let req = GenerateRequest {
        id: "bench-selection".into(),
        prompt_ids: prompt.ids.clone(),
        n,
        params: params.clone(),
        think: prompt.think.clone(),
    };
    let start = Instant::now();
    let mut rx = loop {
        match engine.submit_cancellable(req.clone(), Some(cancel.clone())) {
            Ok(rx) => break rx,
            Err(SubmitError::QueueFull { .. }) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => bail!("{e}"),
        }
    };
    let mut watch = Watch::new(opts, n, max_tokens);
    let out = loop {
        let Some(ev) = rx.blocking_recv() else {
            bail!("the engine closed the stream");
        };
        match watch.observe(ev, &cancel) {
            Some(EngineEvent::Finished(out)) => break out,
            Some(EngineEvent::Error(e)) => bail!("engine error: {e}"),
            _ => {}
        }
    };
    let wall = start.elapsed();
    let mut outs = out.rollouts;
    outs.sort_by_key(|o| o.index);
    watch.settle(&outs);
    let Watch { traces, early } = watch;
    Ok(Group {
        outs,
        traces,
        stopped: early.stopped,
        decoded: out.completion_tokens,
        wall,
    })
}

fn correct(gold: &str, pred: Option<&str>) -> bool {
    pred.is_some_and(|p| !p.trim().is_empty() && quorum_scoring::compare(gold, p).equal)
}

/// Selects from `g` as the server does, and checks the answer.
pub fn judge(
    g: &Group,
    opts: &SelectionOptions,
    selector: &dyn Selector,
    gold: &str,
    max_tokens: usize,
) -> Outcome {
    let summaries = summaries(&g.outs, &g.traces, opts.extract.as_ref());
    let sel = selector.select(&summaries);
    let answer = sel.answer.clone().filter(|a| !a.is_empty());
    Outcome {
        correct: correct(gold, answer.as_deref()),
        any_correct: summaries.iter().any(|s| correct(gold, s.answer.as_deref())),
        answer,
        vote_share: sel.vote_share,
        decoded: g.decoded,
        budget_saved: g
            .outs
            .iter()
            .filter(|o| g.stopped.contains(&o.index))
            .map(|o| max_tokens.saturating_sub(o.token_ids.len()))
            .sum(),
        stopped: g.stopped.len(),
        wall_s: g.wall.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_needs_an_answer() {
        assert!(correct("8", Some("8.0")));
        assert!(!correct("8", Some("")) && !correct("8", None) && !correct("8", Some("9")));
    }
}
