//! Generation behaviour on a random-weight Qwen3-shaped model with the real
//! Qwen3 tokenizer: determinism, seeded reproducibility, stop strings, and
//! clear errors for bad model directories.

mod common;

use candle_core::Device;
use quorum::chat::ChatMessage;
use quorum::engine::{generate_group, GroupOutput, GroupRequest, ModelBundle, SamplingParams};

fn bundle(m: &common::TempModel) -> ModelBundle {
    ModelBundle::load(&m.dir, None, &Device::Cpu).expect("load")
}

fn prompt(b: &ModelBundle) -> Vec<u32> {
    let msgs = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("What is 2+2?"),
    ];
    b.chat_prompt(&msgs, &serde_json::Map::new()).unwrap().1
}

fn run(b: &ModelBundle, n: usize, params: SamplingParams) -> GroupOutput {
    let req = GroupRequest {
        prompt_ids: prompt(b),
        n,
        params,
        eos_token_ids: b.eos_token_ids.clone(),
        think: None,
    };
    generate_group(&b.loaded.model, &b.tokenizer, &req, &mut |_| true).unwrap()
}

fn sampled(seed: u64, max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        seed: Some(seed),
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    }
}

#[test]
fn greedy_generation_is_deterministic_and_identical_across_a_batch() {
    let m = common::temp_model("tiny", 1);
    let b = bundle(&m);
    let params = SamplingParams {
        max_tokens: Some(16),
        ..SamplingParams::greedy()
    };
    let one = run(&b, 1, params.clone());
    let again = run(&b, 1, params.clone());
    assert_eq!(one.rollouts[0].token_ids, again.rollouts[0].token_ids);
    let four = run(&b, 4, params);
    for r in &four.rollouts {
        assert_eq!(
            r.token_ids, one.rollouts[0].token_ids,
            "rollout {}",
            r.index
        );
    }
}

#[test]
fn seeded_sampling_is_reproducible_per_rollout_and_rollouts_differ() {
    let m = common::temp_model("tiny", 1);
    let b = bundle(&m);
    let a = run(&b, 3, sampled(42, 12));
    let again = run(&b, 3, sampled(42, 12));
    for (x, y) in a.rollouts.iter().zip(&again.rollouts) {
        assert_eq!(x.token_ids, y.token_ids);
        assert_eq!(x.text, y.text);
    }
    assert_ne!(a.rollouts[0].token_ids, a.rollouts[1].token_ids);
    assert_ne!(a.rollouts[1].token_ids, a.rollouts[2].token_ids);
    // Rollout 0 of a batch is the same as a request for one rollout.
    let single = run(&b, 1, sampled(42, 12));
    assert_eq!(single.rollouts[0].token_ids, a.rollouts[0].token_ids);
    let other_seed = run(&b, 1, sampled(43, 12));
    assert_ne!(other_seed.rollouts[0].token_ids, a.rollouts[0].token_ids);
}

#[test]
fn max_tokens_ends_with_length_and_counts_tokens() {
    let m = common::temp_model("tiny", 1);
    let b = bundle(&m);
    let mut p = sampled(5, 7);
    p.ignore_eos = true;
    let out = run(&b, 2, p);
    for r in &out.rollouts {
        assert_eq!(r.token_ids.len(), 7);
        assert_eq!(r.finish_reason.as_str(), "length");
    }
    assert_eq!(out.completion_tokens, 14);
}

#[test]
fn stop_string_across_token_boundaries_is_detected_and_not_leaked() {
    let m = common::temp_model("tiny", 1);
    let b = bundle(&m);
    let mut free = sampled(7, 24);
    free.ignore_eos = true;
    let out = run(&b, 1, free.clone());
    let ids = &out.rollouts[0].token_ids;
    // Find a boundary where the token on each side contributes text, and
    // build a stop string straddling it: the last char of one piece and the
    // first char of the next.
    let pieces: Vec<String> = ids
        .iter()
        .map(|t| b.tokenizer.decode(&[*t], true).unwrap())
        .collect();
    let full: String = out.rollouts[0].text.clone();
    let (mut start, mut chosen) = (0usize, None);
    for i in 2..pieces.len() - 1 {
        start += pieces[i - 1].len();
        let (l, r) = (&pieces[i], &pieces[i + 1]);
        let ok = |s: &str| !s.is_empty() && !s.contains('\u{FFFD}');
        if ok(l) && ok(r) {
            let lc = l.chars().last().unwrap();
            let rc = r.chars().next().unwrap();
            let stop = format!("{lc}{rc}");
            let boundary = pieces[..=i].concat().len();
            if full.starts_with(&pieces[..=i + 1].concat())
                && full.find(&stop) == Some(boundary - lc.len_utf8())
            {
                chosen = Some((stop, boundary - lc.len_utf8()));
                break;
            }
        }
    }
    let _ = start;
    let (stop, cut) = chosen.expect("a boundary with a unique straddling stop string");
    let mut with_stop = free;
    with_stop.stop = vec![stop.clone()];
    let stopped = run(&b, 1, with_stop);
    let r = &stopped.rollouts[0];
    assert_eq!(r.finish_reason.as_str(), "stop");
    assert_eq!(r.text, full[..cut], "text before the stop string `{stop}`");
    assert!(!r.text.contains(&stop));
}

#[test]
fn missing_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = ModelBundle::load(tmp.path(), None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn malformed_config_names_file_and_problem() {
    let m = common::temp_model("tiny", 1);
    std::fs::write(
        m.dir.join("config.json"),
        r#"{"architectures": ["Qwen3ForCausalLM"], "hidden_size": "big"}"#,
    )
    .unwrap();
    let err = ModelBundle::load(&m.dir, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("hidden_size"),
        "{err}"
    );
}

#[test]
fn unknown_architecture_lists_supported_ones() {
    let m = common::temp_model("tiny", 1);
    let path = m.dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("Qwen3ForCausalLM", "GPT2LMHeadModel");
    std::fs::write(&path, text).unwrap();
    let err = ModelBundle::load(&m.dir, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("GPT2LMHeadModel"), "{err}");
    for supported in ["Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"] {
        assert!(err.contains(supported), "{err}");
    }
}

#[test]
fn missing_weights_and_missing_tensors_are_named() {
    let m = common::temp_model("tiny", 1);
    std::fs::rename(
        m.dir.join("model.safetensors"),
        m.dir.join("other.safetensors"),
    )
    .unwrap();
    let err = ModelBundle::load(&m.dir, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // A checkpoint lacking one tensor: say which.
    let m = common::temp_model("tiny", 1);
    let path = m.dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = ModelBundle::load(&m.dir, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.layers.1.mlp.up_proj.weight"), "{err}");
}

#[test]
fn missing_tokenizer_names_the_file() {
    let m = common::temp_model("tiny", 1);
    std::fs::remove_file(m.dir.join("tokenizer.json")).unwrap();
    let err = ModelBundle::load(&m.dir, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}
