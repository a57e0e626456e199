//! `quorum generate`: N rollouts of one prompt, printed or as JSON, with
//! think mode applied as the server applies it (toggles resolved the same
//! way, the think block opened or closed, budgets enforced, the output split
//! into reasoning and answer like `reasoning_content` / `content`).

use std::io::Write;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::common::ModelArgs;
use crate::chat::{ChatMessage, SpecialTokenPolicy};
use crate::engine::think::{build_chat_prompt, ChatPrompt, ThinkConfig, ThinkOptions};
use crate::engine::{generate_group, GroupRequest, ModelBundle, RolloutOutput, SamplingParams};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message (`/think` or `/no_think` in it toggles thinking, as
    /// with the server).
    #[arg(long)]
    pub system: Option<String>,
    /// User message (rendered with the model's chat template).
    #[arg(long)]
    pub prompt: String,
    /// Use the prompt as raw text, without the chat template or think mode.
    #[arg(long)]
    pub raw: bool,
    /// Thinking on or off (the server's `enable_thinking`); beats `/think`
    /// and `/no_think` in the messages. Default: the model's (on for think
    /// models).
    #[arg(long)]
    pub enable_thinking: Option<bool>,
    /// none, minimal, low, medium, high, xhigh: thinking on with the
    /// server's default budget for that level (none: off).
    #[arg(long)]
    pub reasoning_effort: Option<String>,
    /// Reasoning tokens before thinking is ended by force (the budget
    /// message and `</think>` are inserted).
    #[arg(long)]
    pub thinking_budget: Option<usize>,
    /// An earlier `</think>` is replaced by "Wait" until this many
    /// reasoning tokens.
    #[arg(long)]
    pub min_thinking_tokens: Option<usize>,
    /// Text forced when the thinking budget runs out.
    #[arg(long)]
    pub thinking_budget_message: Option<String>,
    /// Number of rollouts (decoded as one batch after a shared prefill).
    #[arg(long, short, default_value_t = 1)]
    pub n: usize,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Keep generating past EOS (benchmarks).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    fn think_options(&self) -> ThinkOptions {
        ThinkOptions {
            enable_thinking: self.enable_thinking,
            reasoning_effort: self.reasoning_effort.clone(),
            thinking_budget: self.thinking_budget,
            min_thinking_tokens: self.min_thinking_tokens,
            thinking_budget_message: self.thinking_budget_message.clone(),
        }
    }
}

/// What one `generate` run sends to the engine.
pub struct Prepared {
    pub request: GroupRequest,
    /// The chat prompt with its think mode; `None` with `--raw`.
    pub prompt: Option<ChatPrompt>,
}

/// Build the engine request of `args` for `bundle`: the chat template and
/// think mode as the server's chat route (default think config), or the raw
/// text with `--raw`.
pub fn prepare(args: &GenerateArgs, bundle: &ModelBundle) -> anyhow::Result<Prepared> {
    let opts = args.think_options();
    let (prompt_ids, prompt) = if args.raw {
        if opts != ThinkOptions::default() {
            bail!("think options need the chat template; drop --raw");
        }
        (bundle.tokenizer.encode(&args.prompt, true)?, None)
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(ChatMessage::system(s.clone()));
        }
        messages.push(ChatMessage::user(args.prompt.clone()));
        let p = build_chat_prompt(
            &bundle.template,
            &bundle.tokenizer,
            &messages,
            &serde_json::Map::new(),
            &opts,
            &ThinkConfig::default(),
            SpecialTokenPolicy::default(),
        )?;
        (p.ids.clone(), Some(p))
    };
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
        max_tokens: Some(args.max_tokens),
        stop: args.stop.clone(),
        ignore_eos: args.ignore_eos,
        ..SamplingParams::default()
    };
    params.validate(bundle.loaded.config.vocab_size)?;
    let request = GroupRequest {
        prompt_ids,
        n: args.n,
        params,
        eos_token_ids: bundle.eos_token_ids.clone(),
        think: prompt.as_ref().and_then(|p| p.think.clone()),
    };
    Ok(Prepared { request, prompt })
}

/// `(reasoning, answer)` of a rollout: reasoning is `None` when not thinking.
pub fn split(prompt: Option<&ChatPrompt>, text: &str) -> (Option<String>, String) {
    match prompt {
        Some(p) => p.split(text),
        None => (None, text.to_string()),
    }
}

/// One completion of `--json`: the raw text and its split, as the server's
/// `reasoning_content` / `content`.
pub fn completion_json(prompt: Option<&ChatPrompt>, r: &RolloutOutput) -> serde_json::Value {
    let (reasoning, content) = split(prompt, &r.text);
    json!({
        "text": r.text,
        "reasoning_content": reasoning,
        "content": content,
        "token_ids": r.token_ids,
        "finish_reason": r.finish_reason,
        "reasoning_tokens": r.reasoning_tokens,
        "thinking_budget_cut": r.thinking_budget_cut,
    })
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let bundle = args.model.load()?;
    let Prepared { request, prompt } = prepare(&args, &bundle)?;
    let stream = !args.json && args.n == 1;
    let mut stdout = std::io::stdout();
    let mut splitter = prompt.as_ref().map(ChatPrompt::splitter);
    let mut printer = SectionPrinter::default();
    let out = crate::engine::in_engine_pool(|| {
        generate_group(
            &bundle.loaded.model,
            &bundle.tokenizer,
            &request,
            &mut |ev| {
                if stream {
                    let d = match &mut splitter {
                        Some(s) => s.push(ev.text),
                        None => crate::engine::think::SplitDelta {
                            content: ev.text.to_string(),
                            ..Default::default()
                        },
                    };
                    printer.print(&mut stdout, &d.reasoning, &d.content);
                }
                true
            },
        )
    })?;
    let thinking = prompt.as_ref().is_some_and(ChatPrompt::thinking);
    if args.json {
        let completions: Vec<_> = out
            .rollouts
            .iter()
            .map(|r| completion_json(prompt.as_ref(), r))
            .collect();
        println!(
            "{}",
            json!({
                "completions": completions,
                "thinking": thinking,
                "prompt_tokens": out.prompt_tokens,
                "prompt_token_ids": request.prompt_ids,
                "completion_tokens": out.completion_tokens,
                "timings": out.timings,
            })
        );
        return Ok(());
    }
    if stream {
        if let Some(d) = splitter.as_mut().map(|s| s.finish()) {
            printer.print(&mut stdout, &d.reasoning, &d.content);
        }
        println!();
    } else {
        for r in &out.rollouts {
            println!("--- rollout {} ({}) ---", r.index, r.finish_reason.as_str());
            let (reasoning, content) = split(prompt.as_ref(), &r.text);
            let mut p = SectionPrinter::default();
            p.print(&mut stdout, reasoning.as_deref().unwrap_or(""), &content);
            println!();
        }
    }
    let t = &out.timings;
    eprintln!(
        "prompt {} tokens, prefill {:.1} tok/s, ttft {:.0} ms; {} rollouts, {} tokens, decode {:.1} tok/s",
        out.prompt_tokens,
        t.prefill_tokens_per_s,
        t.ttft_ms,
        out.rollouts.len(),
        out.completion_tokens,
        t.decode_tokens_per_s
    );
    Ok(())
}

/// Prints reasoning under `[reasoning]` and the answer under `[answer]`
/// (headers only when there is reasoning), streaming-safe.
#[derive(Default)]
struct SectionPrinter {
    in_reasoning: bool,
    in_answer: bool,
}

impl SectionPrinter {
    fn print(&mut self, out: &mut impl Write, reasoning: &str, content: &str) {
        if !reasoning.is_empty() {
            if !self.in_reasoning {
                let _ = writeln!(out, "[reasoning]");
                self.in_reasoning = true;
            }
            let _ = write!(out, "{reasoning}");
        }
        if !content.is_empty() {
            if self.in_reasoning && !self.in_answer {
                let _ = write!(out, "\n[answer]\n");
            }
            self.in_answer = true;
            let _ = write!(out, "{content}");
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenerateArgs,
    }

    fn args(extra: &[&str], model: &std::path::Path) -> GenerateArgs {
        let mut argv = vec!["quorum", "--model", model.to_str().unwrap()];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parse").args
    }

    fn tiny() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        crate::model::test_fixtures::write_model("tiny", &dir, |_| {});
        (tmp, dir)
    }

    #[test]
    fn think_toggles_and_budgets_reach_the_prompt_and_the_engine() {
        let (_tmp, dir) = tiny();
        let bundle = ModelBundle::load(&dir, None, &candle_core::Device::Cpu).unwrap();
        let tail = |a: &GenerateArgs| {
            let p = prepare(a, &bundle).unwrap();
            let text = p.prompt.as_ref().unwrap().text.clone();
            (text, p.request.think.is_some())
        };
        // Default: the model thinks; the block is opened for it.
        let (text, think) = tail(&args(&["--prompt", "2+2?"], &dir));
        assert!(text.ends_with("assistant\n<think>\n") && think, "{text}");
        // `/no_think` in the system prompt, as with the server.
        let a = args(
            &["--prompt", "2+2?", "--system", "Be brief. /no_think"],
            &dir,
        );
        let (text, think) = tail(&a);
        assert!(
            text.ends_with("<think>\n\n</think>\n\n") && !think,
            "{text}"
        );
        // The explicit flag beats the soft switch.
        let a = args(
            &["--prompt", "2+2? /no_think", "--enable-thinking", "true"],
            &dir,
        );
        assert!(tail(&a).1);
        let a = args(&["--prompt", "hi", "--reasoning-effort", "high"], &dir);
        let p = prepare(&a, &bundle).unwrap();
        assert_eq!(p.request.think.unwrap().thinking_budget, Some(8192));
        let bad = args(
            &[
                "--prompt",
                "hi",
                "--enable-thinking",
                "false",
                "--thinking-budget",
                "4",
            ],
            &dir,
        );
        let e = prepare(&bad, &bundle).err().unwrap().to_string();
        assert!(e.contains("thinking_budget"), "{e}");
        let raw = args(&["--prompt", "hi", "--raw", "--thinking-budget", "4"], &dir);
        assert!(prepare(&raw, &bundle).is_err());
    }

    #[test]
    fn a_budget_cut_output_splits_into_reasoning_and_answer() {
        let (_tmp, dir) = tiny();
        let bundle = ModelBundle::load(&dir, None, &candle_core::Device::Cpu).unwrap();
        let a = args(
            &[
                "--prompt",
                "What is 3*4?",
                "--thinking-budget",
                "6",
                "--thinking-budget-message",
                "Time is up.",
                "--max-tokens",
                "40",
                "--ignore-eos",
            ],
            &dir,
        );
        let p = prepare(&a, &bundle).unwrap();
        let out = generate_group(
            &bundle.loaded.model,
            &bundle.tokenizer,
            &p.request,
            &mut |_| true,
        )
        .unwrap();
        let r = &out.rollouts[0];
        assert!(r.thinking_budget_cut);
        assert_eq!(r.reasoning_tokens, 6);
        let v = completion_json(p.prompt.as_ref(), r);
        let reasoning = v["reasoning_content"].as_str().unwrap();
        let content = v["content"].as_str().unwrap();
        assert!(reasoning.ends_with("Time is up.\n"), "{reasoning:?}");
        assert!(!content.contains("</think>") && !content.starts_with('\n'));
        assert!(r.text.starts_with(reasoning) && r.text.ends_with(content));
        // Six sampled tokens, then the forced text, then the answer.
        let forced = r.sampled.iter().filter(|s| !**s).count();
        assert!(forced > 0 && r.sampled[..6].iter().all(|s| *s));
    }
}
