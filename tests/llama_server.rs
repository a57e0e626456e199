//! The shipped tiny policy in llama.cpp's `llama-server`: `quorum model gguf`
//! exports it, llama-server serves it (loopback, a free port), and greedy
//! decoding there equals `quorum generate`: chat completions with thinking
//! off and on (prompt tokens, token ids and answer) and completions from
//! Quorum's own prompt ids (token ids and text); and `quorum bench eval --url`
//! runs its remote client against it.
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

/// `quorum generate --temperature 0 --json`.
struct Quorum {
    text: String,
    /// The answer: the text after `</think>`.
    content: String,
    ids: Vec<u64>,
    prompt: Vec<u64>,
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

fn quorum_generate(prompt: &str, think: bool, max_tokens: usize) -> Quorum {
    let out = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["generate", "--model", MODEL, "--prompt", prompt])
        .args(["--enable-thinking", if think { "true" } else { "false" }])
        .args([
            "--temperature",
            "0",
            "--max-tokens",
            &max_tokens.to_string(),
        ])
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &j["completions"][0];
    Quorum {
        text: c["text"].as_str().unwrap().to_string(),
        content: c["content"].as_str().unwrap().to_string(),
        ids: ids(&c["token_ids"]),
        prompt: ids(&j["prompt_token_ids"]),
    }
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> Value {
    let r = c.post(&url).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v
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
    // Room for the tiny model's thinking: with less, Quorum's default budget
    // (max_tokens - budget message - answer reserve) cuts it at once.
    let max_tokens = 256;

    // The chat template alone gives Quorum's prompt, thinking off and on (the
    // shipped template opens the think block as Quorum does).
    for (prompt, think) in [
        ("Compute 86*7.", false),
        ("Compute 347+589.", false),
        ("Compute 347+589.", true),
        ("Compute 86*7.", true),
    ] {
        let q = quorum_generate(prompt, think, max_tokens);
        let r = post(
            &c,
            format!("{base}/v1/chat/completions"),
            json!({
                "messages": [{"role": "user", "content": prompt}],
                "chat_template_kwargs": {"enable_thinking": think},
                "temperature": 0, "top_k": 1, "max_tokens": max_tokens,
                "logprobs": true, "top_logprobs": 1,
            }),
        )
        .await;
        let choice = &r["choices"][0];
        let text = choice["message"]["content"].as_str().unwrap_or_default();
        let answer = text.rsplit("</think>").next().unwrap().trim();
        assert_eq!(
            answer,
            q.content.trim(),
            "{prompt} think={think}: the answer: {r}"
        );
        let l_ids: Vec<u64> = choice["logprobs"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        assert_eq!(l_ids, q.ids, "{prompt} think={think}: greedy token ids");
        assert_eq!(
            r["usage"]["prompt_tokens"].as_u64().unwrap() as usize,
            q.prompt.len(),
            "{prompt} think={think}: prompt tokens"
        );
    }

    // Quorum's own prompt ids through `/completion`.
    for (prompt, think) in [("Compute 347+589.", true), ("Compute 86*7.", false)] {
        let q = quorum_generate(prompt, think, max_tokens);
        let r = post(
            &c,
            format!("{base}/completion"),
            json!({"prompt": q.prompt, "temperature": 0, "top_k": 1,
                   "n_predict": max_tokens, "return_tokens": true}),
        )
        .await;
        assert_eq!(ids(&r["tokens"]), q.ids, "think={think}: greedy token ids");
        assert_eq!(
            r["content"].as_str().unwrap(),
            q.text,
            "think={think}: text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_eval_runs_against_llama_server() {
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
    let tasks = tmp.path().join("tasks.jsonl");
    let quorum = || Command::new(env!("CARGO_BIN_EXE_quorum"));
    let st = quorum()
        .args([
            "data",
            "gen",
            "arithmetic",
            "--format",
            "tasks",
            "--ops",
            "add",
        ])
        .args([
            "--digits", "3", "--n", "6", "--seed", "9", "--split", "test", "--out",
        ])
        .arg(&tasks)
        .status()
        .unwrap();
    assert!(st.success());
    let out = tmp.path().join("eval");
    let url = format!("{base}/v1");
    let run = tokio::task::spawn_blocking(move || {
        quorum()
            .args(["bench", "eval", "--url", &url, "--dataset"])
            .arg(&tasks)
            .args(["--rollouts", "1,2", "--strategies", "first,majority"])
            .args([
                "--think",
                "on,off",
                "--temperature",
                "0.5",
                "--max-tokens",
                "256",
            ])
            .args(["--concurrency", "1", "--json", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let dir = tmp.path().join("eval");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let configs = r["configs"].as_array().expect("configs");
    let acc = |think: bool| {
        configs
            .iter()
            .find(|c| c["think"] == think)
            .unwrap_or_else(|| panic!("no think={think} config: {r}"))["sample_accuracy"]
            .as_f64()
            .unwrap()
    };
    // through llama-server the policy reasons as it does in Quorum: 3-digit
    // additions are mostly right with thinking, mostly wrong without
    assert!(acc(true) >= 0.5 && acc(true) > acc(false), "{r}");
    assert!(dir.join("accuracy_vs_n.png").is_file());
}
