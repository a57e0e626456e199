//! Slow, silent and surplus clients (slowloris) against an in-process
//! server on the tiny model, with raw TCP clients: header, body and idle
//! timeouts, the connection cap, HTTP-parser rejections with the OpenAI
//! body, a shutdown that does not wait for half-sent heads, the end of the
//! grace period (503 / an SSE error event and `[DONE]`), and a second
//! SIGTERM that exits at once.

mod server_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use quorum::server::ServerConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short connection timeouts so the tests see them fire.
fn config() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..server_common::config()
    }
}

/// Generous bound for a 1 s timeout to be seen by a test on a busy machine.
const SOON: Duration = Duration::from_secs(10);

async fn connect(srv: &server_common::TestServer) -> TcpStream {
    TcpStream::connect(srv.running.local_addr())
        .await
        .expect("connect")
}

/// Reads until the server closes; the bytes it sent, or `None` if it was
/// still open after `within`.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    tokio::time::timeout(within, async {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
}

async fn still_open(s: &mut TcpStream) -> bool {
    read_to_close(s, Duration::from_millis(300)).await.is_none()
}

/// A parsed response: status, lower-cased head, body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn parse(bytes: &[u8]) -> Option<(Self, usize)> {
        let text = String::from_utf8_lossy(bytes);
        let end = text.find("\r\n\r\n")?;
        let head = text[..end].to_ascii_lowercase();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let body = bytes.get(end + 4..end + 4 + len)?;
        let body = String::from_utf8_lossy(body).into_owned();
        Some((Self { status, head, body }, end + 4 + len))
    }

    fn error_code(&self) -> Value {
        let v: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        assert!(v["error"]["message"].is_string(), "{}", self.body);
        assert!(v["error"]["type"].is_string(), "{}", self.body);
        v["error"]["code"].clone()
    }
}

/// Reads one response (content-length framed; skips `100 Continue`).
async fn read_reply(s: &mut TcpStream) -> Reply {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(SOON, async {
        loop {
            if let Some((r, _)) = Reply::parse(&all) {
                if r.status != 100 {
                    return r;
                }
                let (_, used) = Reply::parse(&all).unwrap();
                all.drain(..used);
                continue;
            }
            let n = s.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&all)
            );
            all.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response in time")
}

/// Reads until `100 Continue`: the request is with a handler.
async fn read_continue(s: &mut TcpStream) {
    let mut all = Vec::new();
    let mut buf = [0u8; 256];
    tokio::time::timeout(SOON, async {
        while !String::from_utf8_lossy(&all).contains("100 Continue\r\n\r\n") {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before 100 Continue");
            all.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("100 Continue in time");
}

async fn get(s: &mut TcpStream, path: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    read_reply(s).await
}

/// A chat request whose body stays unfinished: the handler is reading it.
async fn start_slow_body(s: &mut TcpStream) {
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n\
                content-type: application/json\r\ncontent-length: 200\r\n\
                expect: 100-continue\r\n\r\n";
    s.write_all(head.as_bytes()).await.expect("write");
    read_continue(s).await;
    s.write_all(b"{\"model\":").await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let srv = server_common::start(config()).await;
    let mut s = connect(&srv).await;
    let sent = read_to_close(&mut s, SOON).await.expect("closed");
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_closed_after_the_header_timeout() {
    let srv = server_common::start(config()).await;
    let mut s = connect(&srv).await;
    let (mut rd, mut wr) = s.split();
    let head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let trickle = async {
        // One byte every 100 ms: each byte is progress, none completes the head.
        for b in head {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = async {
        let mut buf = [0u8; 64];
        let n = rd.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "no response is due to a half-sent head");
    };
    let started = Instant::now();
    tokio::select! {
        () = trickle => unreachable!(),
        () = closed => {}
        () = tokio::time::sleep(SOON) => panic!("still open after {SOON:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_with_the_openai_body() {
    let srv = server_common::start(config()).await;
    let mut s = connect(&srv).await;
    start_slow_body(&mut s).await;
    let reply = read_reply(&mut s).await;
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert_eq!(reply.error_code(), "request_timeout");
    assert!(
        read_to_close(&mut s, SOON).await.is_some(),
        "closed after the 408"
    );
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let srv = server_common::start(config()).await;
    let mut s = connect(&srv).await;
    assert_eq!(get(&mut s, "/health").await.status, 200);
    assert_eq!(get(&mut s, "/health").await.status, 200, "kept alive");
    let sent = read_to_close(&mut s, SOON).await.expect("closed when idle");
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_rejections_carry_the_openai_body() {
    let srv = server_common::start(config()).await;

    // More headers than hyper parses (100): 431.
    let mut s = connect(&srv).await;
    let mut req = String::from("GET /health HTTP/1.1\r\nHost: t\r\n");
    for i in 0..120 {
        req.push_str(&format!("x-h{i}: v\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let reply = read_reply(&mut s).await;
    assert_eq!(reply.status, 431, "{}", reply.body);
    assert_eq!(reply.error_code(), "request_header_fields_too_large");
    assert!(
        reply.head.contains("content-type: application/json"),
        "{}",
        reply.head
    );

    // An unparsable request line: 400.
    let mut s = connect(&srv).await;
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let reply = read_reply(&mut s).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error_code(), Value::Null);
    assert!(
        reply.body.contains("invalid_request_error"),
        "{}",
        reply.body
    );

    // Routed responses on the same kind of connection are untouched.
    let mut s = connect(&srv).await;
    let reply = get(&mut s, "/health").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("\"status\""), "{}", reply.body);
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_busy_connections_keep_their_slots_and_new_ones_get_503() {
    let srv = server_common::start(ServerConfig {
        max_connections: 2,
        body_read_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    let (mut a, mut b) = (connect(&srv).await, connect(&srv).await);
    start_slow_body(&mut a).await;
    start_slow_body(&mut b).await;

    // Both slots hold requests in flight: refused at once, OpenAI-shaped.
    let mut c = connect(&srv).await;
    let reply = get(&mut c, "/health").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.error_code(), "service_unavailable");
    assert!(reply.head.contains("retry-after: 1"), "{}", reply.head);

    // An existing connection still works: `b` finishes its request...
    let rest = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    let body = format!("\"nope\",{}", &rest[1..]);
    let pad = 200 - "{\"model\":".len() - body.len();
    b.write_all(format!("{body}{}", " ".repeat(pad)).as_bytes())
        .await
        .unwrap();
    let reply = read_reply(&mut b).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.error_code(), "model_not_found");

    // ...and is now idle, so a new connection takes its slot.
    let mut d = connect(&srv).await;
    assert_eq!(get(&mut d, "/health").await.status, 200);
    assert!(read_to_close(&mut b, SOON).await.is_some(), "evicted");
    assert!(still_open(&mut a).await, "in flight: never evicted");
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_idle_connection_makes_room() {
    let srv = server_common::start(ServerConfig {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    let mut oldest = connect(&srv).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut newer = connect(&srv).await;
    newer.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut fresh = connect(&srv).await;
    assert_eq!(get(&mut fresh, "/health").await.status, 200);
    let sent = read_to_close(&mut oldest, SOON).await.expect("evicted");
    assert!(sent.is_empty());
    assert!(still_open(&mut newer).await);
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_half_sent_heads_or_idle_connections() {
    let srv = server_common::start(ServerConfig {
        shutdown_grace: Duration::from_secs(30),
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    let mut half = connect(&srv).await;
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let mut idle = connect(&srv).await;
    assert_eq!(get(&mut idle, "/health").await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    srv.running.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?} of a 30 s grace",
        started.elapsed()
    );
    assert!(read_to_close(&mut half, SOON).await.is_some());
    assert!(read_to_close(&mut idle, SOON).await.is_some());
}

/// Polls `/metrics` until `quorum_running` reaches `n`.
async fn wait_running(c: &reqwest::Client, base: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if server_common::metric(&text, "quorum_running{model=\"tiny\"}").is_some_and(|r| r >= n) {
            return;
        }
        assert!(Instant::now() < deadline, "not running:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_end_of_the_grace_period_requests_get_503_and_streams_an_error_event() {
    let srv = server_common::start(ServerConfig {
        shutdown_grace: Duration::from_secs(1),
        ..server_common::config()
    })
    .await;
    let c = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    let long = |stream: bool| {
        json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 4000,
            "ignore_eos": true,
            "n": 4,
            "stream": stream,
        })
    };
    let stream = c.post(&url).json(&long(true)).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let plain = tokio::spawn(c.post(&url).json(&long(false)).send());
    wait_running(&c, &srv.base, 2.0).await;

    let started = Instant::now();
    let shutdown = tokio::spawn(srv.running.shutdown());
    let mut events = String::new();
    let mut body = stream.bytes_stream();
    while let Some(chunk) = body.next().await {
        events.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
    }
    let plain = plain
        .await
        .unwrap()
        .expect("a response, not a dropped connection");
    assert_eq!(plain.status(), 503);
    let v: Value = plain.json().await.unwrap();
    assert_eq!(v["error"]["code"], "service_unavailable", "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");

    let tail: Vec<&str> = events
        .split("\n\n")
        .filter(|e| e.starts_with("data: "))
        .collect();
    let n = tail.len();
    assert!(n >= 3, "{events}");
    assert_eq!(tail[n - 1], "data: [DONE]", "{events}");
    let err: Value = serde_json::from_str(&tail[n - 2]["data: ".len()..]).unwrap();
    assert_eq!(err["error"]["code"], "service_unavailable", "{err}");
    assert!(tail[..n - 2].iter().all(|e| !e.contains("\"error\"")));

    shutdown.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// The `quorum serve` binary: a second SIGTERM during the drain exits at
/// once (status 128 + 15) instead of waiting out the 60 s grace period.
#[test]
fn a_second_sigterm_exits_at_once() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let model = server_common::tiny_model_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .arg("serve")
        .arg("--model")
        .arg(format!("tiny={}", model.display()))
        .args(["--port", &port.to_string(), "--shutdown-grace-secs", "60"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start quorum serve");
    let kill = |child: &std::process::Child| {
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM");
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(SOON)).unwrap();
                let mut probe = s.try_clone().unwrap();
                write!(probe, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                let mut buf = [0u8; 512];
                let n = probe.read(&mut buf).unwrap_or(0);
                if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
                    break s;
                }
            }
            assert!(Instant::now() < deadline, "server not healthy");
            std::thread::sleep(Duration::from_millis(100));
        };
        let body = json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 4000,
            "ignore_eos": true,
            "n": 8,
            "stream": true,
        })
        .to_string();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        while !seen.contains("data: ") {
            let n = s.read(&mut buf).expect("stream");
            assert!(n > 0, "stream closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        kill(&child);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first SIGTERM drains while the stream runs"
        );
        kill(&child);
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after the second SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }));
    let _ = child.kill();
    let _ = child.wait();
    match result {
        Ok(status) => assert_eq!(status.code(), Some(143), "{status}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The `quorum serve` binary under a 80-descriptor limit, flooded with 150
/// connections: `accept` fails with EMFILE; the server backs off with one
/// warning for the whole burst (not a line per retry), says when it
/// recovers, and serves again once the flood is gone.
#[cfg(target_os = "linux")]
#[test]
fn running_out_of_descriptors_backs_off_with_one_warning() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let model = server_common::tiny_model_dir();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 80 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_quorum"))
        .arg("serve")
        .arg("--model")
        .arg(format!("tiny={}", model.display()))
        .args([
            "--port",
            &port.to_string(),
            "--header-read-timeout-secs",
            "60",
        ])
        .env("RUST_LOG", "warn,quorum::server::listener=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start quorum serve");
    let healthy = || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = write!(
            s,
            "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200")
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy() {
            assert!(Instant::now() < deadline, "server not healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        let flood: Vec<_> = (0..150)
            .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        drop(flood);
        let deadline = Instant::now() + SOON;
        while !healthy() {
            assert!(Instant::now() < deadline, "not serving after the flood");
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut log);
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let log = strip_ansi(&log);
    assert!(log.contains("Too many open files"), "{log}");
    let warnings = log.matches("accept failed").count();
    let bursts: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("accepting connections again"))
        .filter_map(|l| {
            let n = l.split("failures=").nth(1)?;
            n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect();
    assert!(warnings >= 1, "{log}");
    assert_eq!(warnings, bursts.len(), "one warning per burst:\n{log}");
    assert!(
        bursts.iter().sum::<u64>() > warnings as u64,
        "failed accepts are retried without a line each:\n{log}"
    );
}

/// The log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
