//! Memory under oversized prompts, alone in its own test binary so that the
//! process's resident set is this server's: sixteen concurrent 4 MB
//! messages must not raise the peak RSS above 1.5x the idle figure (they
//! once cost ~1.6 GB each while being tokenized before their 400).

mod server_common;

use std::time::Duration;

use reqwest::{Client, StatusCode};

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("status field")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_4mb_prompts_keep_peak_rss_near_idle() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let url = format!("{}/v1/chat/completions", srv.base);
    // Warm up every path once (allocator arenas, tokenizer caches).
    let small = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    for _ in 0..4 {
        let res = c.post(&url).json(&small).send().await.expect("send");
        assert_eq!(res.status(), StatusCode::OK);
    }
    // One shared body: the client's copy is counted once.
    let content = "lorem ipsum dolor ".repeat(4_000_000 / 18);
    let body = serde_json::to_vec(&serde_json::json!({
        "model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 1,
    }))
    .expect("body");
    drop(content);
    let body = axum::body::Bytes::from(body);
    let idle = status_kib("VmRSS");
    // Reset the high-water mark to the current RSS.
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let sends = (0..16).map(|_| {
        let (c, url, body) = (c.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let res = c
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            res.status()
        })
    });
    for s in futures::future::join_all(sends).await {
        assert_eq!(s.expect("task"), StatusCode::BAD_REQUEST);
    }
    let peak = status_kib("VmHWM");
    eprintln!(
        "idle RSS {idle} KiB, peak {peak} KiB ({:.2}x)",
        peak as f64 / idle as f64
    );
    assert!(
        (peak as f64) < 1.5 * idle as f64,
        "peak RSS {peak} KiB is over 1.5x the idle {idle} KiB"
    );
    srv.running.shutdown().await.expect("shutdown");
}
