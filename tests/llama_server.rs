//! The shipped tiny policy in llama.cpp's `llama-server`: `quorum model gguf`
//! exports it, llama-server serves it (loopback, a free port), and a greedy
//! chat completion's answer equals `quorum generate`'s, with thinking off and
//! on.
//!
//! Runs only when `QUORUM_LLAMA_SERVER` names a llama-server binary (build
//! one with `bash benches/llamacpp_server.sh`); otherwise it says it is
//! skipped and passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quorum::model::gguf_export::{export_gguf, GgufDType};
use serde_json::{json, Value};

const MODEL: &str = "models/tiny-reasoner-rl";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(bin: &Path, gguf: &Path, log: &Path) -> (Server, String) {
    let port = free_port();
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(bin)
        .args(["-m".as_ref(), gguf.as_os_str()])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-t", "2", "-c", "2048", "-np", "1", "--jinja"])
        .args(["--reasoning-format", "none", "--no-warmup"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    (Server(child), format!("http://127.0.0.1:{port}"))
}

async fn wait_healthy(c: &reqwest::Client, base: &str, server: &mut Server, log: &Path) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!(
                "llama-server exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(r) = c.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("llama-server not healthy after 120 s");
}

/// `quorum generate --temperature 0 --json`: (text, token ids, prompt ids).
fn quorum_generate(prompt: &str, think: bool, max_tokens: usize) -> (String, Vec<u64>, Vec<u64>) {
    let out = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["generate", "--model", MODEL, "--prompt", prompt])
        .args(["--enable-thinking", if think { "true" } else { "false" }])
        .args(["--temperature", "0", "--max-tokens", &max_tokens.to_string()])
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect()
    };
    let c = &j["completions"][0];
    (
        c["text"].as_str().unwrap().to_string(),
        ids(&c["token_ids"]),
        ids(&j["prompt_token_ids"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_chat_in_llama_server_equals_quorum() {
    let Some(bin) = std::env::var_os("QUORUM_LLAMA_SERVER").map(PathBuf::from) else {
        eprintln!("skipped: set QUORUM_LLAMA_SERVER to a llama-server binary (benches/llamacpp_server.sh builds one)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("tiny.gguf");
    export_gguf(Path::new(MODEL), &gguf, GgufDType::F32).unwrap();
    let log = tmp.path().join("llama-server.log");
    let (mut server, base) = start(&bin, &gguf, &log);
    let c = reqwest::Client::new();
    wait_healthy(&c, &base, &mut server, &log).await;

    let max_tokens = 96;
    for (prompt, think) in [("Compute 86*7.", false), ("Compute 347+589.", true)] {
        let (q_text, q_ids, q_prompt) = quorum_generate(prompt, think, max_tokens);
        // Quorum opens the think block itself (its prompt ends in
        // `<think>\n`); llama.cpp's template leaves those two tokens to the model.
        let opened = if think { "<think>\n" } else { "" };
        let extra = if think { 2 } else { 0 };
        let body = json!({
            "messages": [{"role": "user", "content": prompt}],
            "chat_template_kwargs": {"enable_thinking": think},
            "temperature": 0, "top_k": 1, "max_tokens": max_tokens + extra,
            "logprobs": true, "top_logprobs": 1,
        });
        let r: Value = c
            .post(format!("{base}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let choice = &r["choices"][0];
        let l_text = choice["message"]["content"].as_str().unwrap_or_default();
        assert_eq!(
            l_text,
            format!("{opened}{q_text}"),
            "think={think}: llama-server's greedy answer differs from Quorum's: {r}"
        );
        let l_ids: Vec<u64> = choice["logprobs"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            l_ids[extra..],
            q_ids[..],
            "think={think}: greedy token ids"
        );
        assert_eq!(
            r["usage"]["prompt_tokens"].as_u64().unwrap() as usize + extra,
            q_prompt.len(),
            "think={think}: prompt tokens"
        );

        // The same prompt token ids as Quorum's, through /completion.
        let r: Value = c
            .post(format!("{base}/completion"))
            .json(&json!({"prompt": q_prompt, "temperature": 0, "top_k": 1,
                          "n_predict": max_tokens, "return_tokens": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tokens: Vec<u64> = r["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(tokens, q_ids, "think={think}: /completion from Quorum's prompt ids");
    }
}
