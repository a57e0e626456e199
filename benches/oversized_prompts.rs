//! Oversized prompts vs everyone else: the latency of small chat requests
//! sent while bursts of sixteen concurrent 4 MB messages are in flight,
//! against the same requests on an idle server, in one run; plus the peak
//! RSS over the idle figure (taken after a warm-up burst). Two models on the same tiny weights: `ctx4k` (a 4 MB message is
//! refused from its size) and `ctx40k` (Qwen3-0.6B's 40 960-token context:
//! it has to be counted).
//!
//! cargo bench --bench oversized_prompts [-- --requests 20 --flooders 16 --rounds 5]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quorum::model::init::{init_model, InitOptions};
use quorum::model::presets::preset;
use quorum::server::config::ModelSpec;
use quorum::server::ServerConfig;
use serde_json::json;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| {
                v.trim_start_matches(':')
                    .trim()
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn model(root: &std::path::Path, name: &str, context: usize) -> ModelSpec {
    let dir = root.join(name);
    let mut cfg = preset("tiny").expect("preset");
    cfg.max_position_embeddings = context;
    init_model(&InitOptions::new(cfg, &dir), &|_| {}).expect("init model");
    ModelSpec {
        id: name.into(),
        dir,
    }
}

async fn small_latencies(c: &reqwest::Client, url: &str, model: &str, n: usize) -> Vec<f64> {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "What is 2+2?"}],
                      "max_tokens": 8, "temperature": 0});
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = c.post(url).json(&body).send().await.expect("send");
        assert!(res.status().is_success(), "{}", res.status());
        let _ = res.bytes().await;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    out.sort_by(f64::total_cmp);
    out
}

fn median(v: &[f64]) -> f64 {
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = arg(&args, "--requests", 20);
    let flooders = arg(&args, "--flooders", 16);
    let rounds = arg(&args, "--rounds", 5);
    let root = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let cfg = ServerConfig {
            models: vec![model(root.path(), "ctx4k", 4096), model(root.path(), "ctx40k", 40960)],
            port: 0,
            ..ServerConfig::default()
        };
        let mut srv = quorum::server::start(cfg).await.expect("start");
        srv.ready().await.expect("load");
        let url = format!("http://{}/v1/chat/completions", srv.local_addr());
        let c = reqwest::Client::new();
        let content = "lorem ipsum dolor ".repeat(4_000_000 / 18);
        println!("| 4 MB prompts to | idle p50 ms | p50 during bursts ms | ratio | small requests during bursts | burst p50 ms | peak RSS / idle |");
        println!("|---|---|---|---|---|---|---|");
        for target in ["ctx4k", "ctx40k"] {
            let _ = small_latencies(&c, &url, "ctx4k", 4).await;
            let idle = small_latencies(&c, &url, "ctx4k", requests).await;
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&json!({"model": target,
                    "messages": [{"role": "user", "content": content}], "max_tokens": 1}))
                .expect("body"),
            );
            let mut idle_rss = 0;
            // Bursts of `flooders` concurrent 4 MB requests; small requests
            // run back to back while each burst is in flight.
            let mut flooded = Vec::new();
            let mut burst_ms = Vec::new();
            let mut answered = 0;
            for round in 0..=rounds {
                if round == 1 {
                    // After a warm-up burst (allocator arenas, trimmed start-up garbage).
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    flooded.clear();
                    burst_ms.clear();
                    idle_rss = status_kib("VmRSS");
                    let _ = std::fs::write("/proc/self/clear_refs", "5");
                }
                let t = Instant::now();
                let burst: Vec<_> = (0..flooders)
                    .map(|_| {
                        let (c, url, body) = (c.clone(), url.clone(), body.clone());
                        tokio::spawn(async move {
                            let res = c
                                .post(&url)
                                .header("content-type", "application/json")
                                .body(body)
                                .send()
                                .await
                                .expect("send");
                            let status = res.status();
                            let _ = res.bytes().await;
                            status
                        })
                    })
                    .collect();
                let done = Arc::new(AtomicBool::new(false));
                let watcher = {
                    let done = done.clone();
                    tokio::spawn(async move {
                        for b in burst {
                            let status = b.await.expect("task");
                            assert_eq!(status.as_u16(), 400, "an oversized prompt is a 400");
                        }
                        done.store(true, Ordering::Release);
                    })
                };
                while !done.load(Ordering::Acquire) {
                    flooded.extend(small_latencies(&c, &url, "ctx4k", 1).await);
                }
                watcher.await.expect("watcher");
                answered += flooders;
                burst_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            flooded.sort_by(f64::total_cmp);
            burst_ms.sort_by(f64::total_cmp);
            let peak = status_kib("VmHWM");
            let _ = answered;
            println!(
                "| {target} | {:.1} | {:.1} | {:.2}x | {} | {:.0} | {:.2}x ({} / {} MiB) |",
                median(&idle),
                median(&flooded),
                median(&flooded) / median(&idle),
                flooded.len(),
                median(&burst_ms),
                peak as f64 / idle_rss.max(1) as f64,
                peak / 1024,
                idle_rss / 1024,
            );
        }
        srv.shutdown().await.expect("shutdown");
    });
}
