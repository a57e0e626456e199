//! `quorum generate`: N rollouts of one prompt, printed or as JSON.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::common::ModelArgs;
use crate::chat::ChatMessage;
use crate::engine::{generate_group, GroupRequest, SamplingParams};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message.
    #[arg(long)]
    pub system: Option<String>,
    /// User message (rendered with the model's chat template).
    #[arg(long)]
    pub prompt: String,
    /// Use the prompt as raw text, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Pass `enable_thinking` to the chat template.
    #[arg(long)]
    pub enable_thinking: Option<bool>,
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

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let bundle = args.model.load()?;
    let prompt_ids = if args.raw {
        bundle.tokenizer.encode(&args.prompt, true)?
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(ChatMessage::system(s.clone()));
        }
        messages.push(ChatMessage::user(args.prompt.clone()));
        let mut kwargs = serde_json::Map::new();
        if let Some(t) = args.enable_thinking {
            kwargs.insert("enable_thinking".into(), json!(t));
        }
        bundle.chat_prompt(&messages, &kwargs)?.1
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
    let req = GroupRequest {
        prompt_ids,
        n: args.n,
        params,
        eos_token_ids: bundle.eos_token_ids.clone(),
        think: None,
    };
    let stream = !args.json && args.n == 1;
    let mut stdout = std::io::stdout();
    let out = crate::engine::in_engine_pool(|| {
        generate_group(&bundle.loaded.model, &bundle.tokenizer, &req, &mut |ev| {
            if stream {
                let _ = write!(stdout, "{}", ev.text);
                let _ = stdout.flush();
            }
            true
        })
    })?;
    if args.json {
        let completions: Vec<_> = out
            .rollouts
            .iter()
            .map(|r| json!({"text": r.text, "token_ids": r.token_ids, "finish_reason": r.finish_reason}))
            .collect();
        println!(
            "{}",
            json!({
                "completions": completions,
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "timings": out.timings,
            })
        );
        return Ok(());
    }
    if stream {
        println!();
    } else {
        for r in &out.rollouts {
            println!("--- rollout {} ({}) ---", r.index, r.finish_reason.as_str());
            println!("{}", r.text);
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
