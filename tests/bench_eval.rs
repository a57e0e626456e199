//! `quorum bench eval` end to end on the shipped `models/tiny-reasoner-rl`
//! (six generated 3-digit additions, N = 1, 2, 4): results.json agrees with
//! the cached samples (pass@1 is their mean correctness, maj@4 the majority
//! over all four), the plots are PNGs, a second run samples nothing, a
//! spawned `quorum serve` through `--url` runs the same client path (and,
//! one request per problem with the same seeds, draws the same samples), and
//! bad input fails naming the file and line.

mod server_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use quorum_scoring::{Majority, RolloutSummary, Selector};
use serde_json::Value;

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-reasoner-rl")
}

fn ok(out: Output) -> (String, String) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn problems(dir: &Path) -> PathBuf {
    let path = dir.join("six.jsonl");
    ok(quorum()
        .args(["data", "gen", "arithmetic", "--n", "6", "--seed", "9"])
        .args(["--split", "test", "--format", "tasks", "--ops", "add"])
        .args(["--digits", "3", "--out"])
        .arg(&path)
        .output()
        .unwrap());
    path
}

fn eval(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = quorum();
    c.args(["bench", "eval", "--dataset"])
        .arg(data)
        .args(["--rollouts", "1,2,4", "--max-tokens", "256", "--seed", "3"])
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The cache's sample lines.
fn cached(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("cache.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn row(config: &Value, n: u64) -> &Value {
    config["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["n"] == n)
        .unwrap()
}

const STRATEGIES: &str = "first,majority,best_of_n,weighted_majority,confidence";

#[test]
fn results_agree_with_the_samples_and_a_rerun_samples_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = problems(tmp.path());
    let out = tmp.path().join("eval");
    let rm = server_common::reward_model_dir();
    let args = [
        "--temperature",
        "1.3",
        "--strategies",
        STRATEGIES,
        "--think",
        "on,off",
        "--thinking-budget",
        "16,none",
    ];
    let mut cmd = eval(&data, &out, &args);
    cmd.arg("--model")
        .arg(model())
        .arg("--reward-model")
        .arg(&rm);
    let (stdout, stderr) = ok(cmd.output().unwrap());
    assert!(
        stderr.contains("18 problem×config pairs sampled, 0 from the cache"),
        "{stderr}"
    );
    for label in ["think=on budget=16", "think=on budget=none", "think=off"] {
        assert!(stdout.contains(label), "{stdout}");
    }

    let r = read_json(&out.join("results.json"));
    assert_eq!(r["problems"], 6);
    assert_eq!(r["samples_per_problem"], 4);
    let lines = cached(&out);
    assert_eq!(lines.len(), 18);
    let configs = r["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 3);
    for c in configs {
        let label = c["label"].as_str().unwrap();
        let mine: Vec<&Value> = lines.iter().filter(|l| l["config"] == label).collect();
        assert_eq!(mine.len(), 6, "{label}");
        let samples: Vec<&Value> = mine
            .iter()
            .flat_map(|l| l["samples"].as_array().unwrap())
            .collect();
        assert_eq!(samples.len(), 24);
        assert!(
            samples.iter().all(|s| s["score"].is_f64()),
            "scored by the RM"
        );
        // pass@1 = the mean correctness of every sample.
        let correct = samples.iter().filter(|s| s["correct"] == true).count() as f64 / 24.0;
        let pass1 = row(c, 1)["pass_at_n"].as_f64().unwrap();
        assert!(
            (pass1 - correct).abs() < 1e-12,
            "{label}: {pass1} vs {correct}"
        );
        assert!((c["sample_accuracy"].as_f64().unwrap() - correct).abs() < 1e-12);
        // Every strategy picks the one sample at N = 1.
        for s in STRATEGIES.split(',') {
            let a = row(c, 1)["accuracy"][s].as_f64().unwrap();
            assert!(
                (a - correct).abs() < 1e-12,
                "{label} {s}@1 = {a}, pass@1 {correct}"
            );
        }
        // maj@4 = majority over all four samples of each problem.
        let mut maj = 0.0;
        for l in &mine {
            let s = l["samples"].as_array().unwrap();
            let rollouts: Vec<RolloutSummary> = s
                .iter()
                .enumerate()
                .map(|(i, x)| RolloutSummary {
                    index: i,
                    text: x["content"].as_str().unwrap().to_string(),
                    finish_reason: x["finish_reason"].as_str().unwrap().to_string(),
                    token_logprobs: x["logprobs"]
                        .as_array()
                        .map(|a| a.iter().map(|v| v.as_f64().unwrap() as f32).collect())
                        .unwrap_or_default(),
                    tokens: x["tokens"].as_u64().unwrap() as usize,
                    ..RolloutSummary::default()
                })
                .collect();
            let w = Majority.select(&rollouts).winner.unwrap();
            maj += f64::from(u8::from(s[w]["correct"] == true)) / 6.0;
        }
        let maj4 = row(c, 4)["accuracy"]["majority"].as_f64().unwrap();
        assert!((maj4 - maj).abs() < 1e-12, "{label}: maj@4 {maj4} vs {maj}");
        // pass@N is the bound of every strategy and does not fall with N.
        let mut last = 0.0;
        for n in [1, 2, 4] {
            let rw = row(c, n);
            let p = rw["pass_at_n"].as_f64().unwrap();
            assert!(p + 1e-12 >= last);
            last = p;
            for s in STRATEGIES.split(',') {
                assert!(
                    rw["accuracy"][s].as_f64().unwrap() <= p + 1e-12,
                    "{label} {s}@{n}"
                );
            }
            let mean_tokens = samples
                .iter()
                .map(|s| s["tokens"].as_f64().unwrap())
                .sum::<f64>()
                / 24.0;
            let t = rw["tokens_per_problem"].as_f64().unwrap();
            assert!(
                (t - mean_tokens * n as f64).abs() < 1e-6,
                "{t} vs {mean_tokens}"
            );
        }
    }
    // Think off writes no reasoning.
    let off = configs.iter().find(|c| c["label"] == "think=off").unwrap();
    let on16 = configs
        .iter()
        .find(|c| c["label"] == "think=on budget=16")
        .unwrap();
    let on = configs
        .iter()
        .find(|c| c["label"] == "think=on budget=none")
        .unwrap();
    let tok = |c: &Value| c["mean_tokens_per_sample"].as_f64().unwrap();
    assert!(
        tok(off) < tok(on16) && tok(off) < tok(on),
        "{} {} {}",
        tok(off),
        tok(on16),
        tok(on)
    );

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 3 * 5, "{csv}");
    assert!(csv.starts_with("config,think,thinking_budget,n,strategy,accuracy,pass_at_n"));
    for png in ["accuracy_vs_n.png", "accuracy_vs_tokens.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5000,
            "{png}"
        );
    }

    // Again: everything comes from the cache, and the results are the same.
    let mut cmd = eval(&data, &out, &args);
    cmd.arg("--model")
        .arg(model())
        .arg("--reward-model")
        .arg(&rm);
    let (_, stderr) = ok(cmd.output().unwrap());
    assert!(
        stderr.contains("0 problem×config pairs sampled, 18 from the cache"),
        "{stderr}"
    );
    assert_eq!(cached(&out).len(), 18);
    let again = read_json(&out.join("results.json"));
    assert_eq!(again["configs"], r["configs"]);

    // Other settings are refused, naming what changed.
    let mut cmd = eval(&data, &out, &["--temperature", "0.5", "--think", "off"]);
    cmd.arg("--model")
        .arg(model())
        .arg("--reward-model")
        .arg(&rm);
    let e = failed(cmd.output().unwrap());
    assert!(
        e.contains("temperature: 1.3 → 0.5") && e.contains("--force"),
        "{e}"
    );
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(extra: &[&str]) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = quorum()
        .arg("serve")
        .arg("--model")
        .arg(format!("tiny-reasoner={}", model().display()))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start quorum serve");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(
                s,
                "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            );
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200")
        });
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "server not healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, format!("http://127.0.0.1:{port}/v1"))
}

#[test]
fn a_quorum_server_through_url_gives_the_embedded_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let data = problems(tmp.path());
    let rm = server_common::reward_model_dir();
    let (_server, url) = serve(&["--reward-model", rm.to_str().unwrap()]);
    let args = [
        "--temperature",
        "1.3",
        "--strategies",
        "majority,best_of_n,confidence",
        "--think",
        "on",
        "--thinking-budget",
        "16",
    ];
    let remote = tmp.path().join("remote");
    let mut cmd = eval(&data, &remote, &args);
    cmd.args(["--url", &url, "--concurrency", "1"]);
    let (stdout, _) = ok(cmd.output().unwrap());
    assert!(stdout.contains("think=on budget=16"), "{stdout}");
    let r = read_json(&remote.join("results.json"));
    assert!(
        r["source"].as_str().unwrap().contains("tiny-reasoner"),
        "{}",
        r["source"]
    );
    assert!(
        r["reward"]
            .as_str()
            .unwrap()
            .ends_with("/score (model tiny-reasoner)"),
        "{}",
        r["reward"]
    );

    let local = tmp.path().join("local");
    let mut cmd = eval(&data, &local, &args);
    cmd.arg("--model")
        .arg(model())
        .arg("--reward-model")
        .arg(&rm)
        .args(["--batch", "1"]);
    ok(cmd.output().unwrap());
    // One prompt builder, one engine, the same seeds: the same samples.
    let (a, b) = (cached(&remote), cached(&local));
    assert_eq!(a.len(), 6);
    for (x, y) in a.iter().zip(&b) {
        let text = |v: &Value| -> Vec<(Value, Value, Value)> {
            v["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["content"].clone(),
                        s["tokens"].clone(),
                        s["correct"].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(text(x), text(y), "problem {}", x["id"]);
        // The RM scores the same text on both paths.
        for (s, t) in x["samples"]
            .as_array()
            .unwrap()
            .iter()
            .zip(y["samples"].as_array().unwrap())
        {
            let (s, t) = (s["score"].as_f64().unwrap(), t["score"].as_f64().unwrap());
            assert!((s - t).abs() < 1e-4, "{s} vs {t}");
        }
    }
}

#[test]
fn a_server_error_is_reported_with_its_status_and_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = problems(tmp.path());
    let (_server, url) = serve(&[]);
    // No reward model on the server: refused before sampling.
    let e = failed(
        eval(&data, &tmp.path().join("a"), &["--strategies", "best_of_n"])
            .args(["--url", &url])
            .output()
            .unwrap(),
    );
    assert!(e.contains("reward scores") && e.contains("HTTP 400"), "{e}");
    assert!(!tmp.path().join("a/cache.jsonl").exists());
    // A request the server refuses: its status and message.
    let e = failed(
        eval(
            &data,
            &tmp.path().join("b"),
            &["--think", "off", "--served-model", "nope"],
        )
        .args(["--url", &url])
        .output()
        .unwrap(),
    );
    assert!(e.contains("HTTP 404") && e.contains("nope"), "{e}");
}

#[test]
fn bad_input_fails_naming_the_file_line_or_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\": \"1+1?\", \"answer\": \"2\"}\nnot json\n",
    )
    .unwrap();
    let out = tmp.path().join("o");
    let e = failed(
        eval(&bad, &out, &[])
            .arg("--model")
            .arg(model())
            .output()
            .unwrap(),
    );
    assert!(e.contains("bad.jsonl:2"), "{e}");
    let data = problems(tmp.path());
    let e = failed(
        eval(&data, &out, &["--strategies", "best_of_n"])
            .arg("--model")
            .arg(model())
            .output()
            .unwrap(),
    );
    assert!(e.contains("--reward-model"), "{e}");
    let e = failed(
        eval(&data, &out, &["--strategies", "vote"])
            .arg("--model")
            .arg(model())
            .output()
            .unwrap(),
    );
    assert!(e.contains("--strategies `vote`"), "{e}");
}
