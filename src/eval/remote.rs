//! [`SampleSource`] and [`RewardSource`] over any OpenAI-compatible server
//! (Quorum, vLLM, llama.cpp's `llama-server`): `POST /chat/completions` with
//! `n` samples (split into requests of at most [`MAX_N_PER_REQUEST`]; when
//! a server returns fewer choices than asked (or refuses `n > 1` with a 400,
//! as llama-server does), the rest come from parallel
//! requests of `n = 1`), `--concurrency` requests in flight, `logprobs:
//! true` (the confidence strategy), think mode through
//! `chat_template_kwargs.enable_thinking` (Quorum, vLLM, llama-server) and
//! Quorum's `thinking_budget`; the reasoning is read from
//! `reasoning_content` / `reasoning`, or split off an inline
//! `<think>…</think>`. Reward scores come from Quorum's `POST /score`.
//! Error answers are reported with their status and the server's message.
//! Plain `http://` only (the client is built without TLS).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::chat::ChatMessage;

use super::source::{
    split_inline_think, RewardSource, Sample, SampleRequest, SampleSource, SourceError,
};

/// Most samples asked of one request (Quorum's default `max_n`).
pub const MAX_N_PER_REQUEST: usize = 16;

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Base URL including `/v1` (`http://127.0.0.1:8080/v1`).
    pub url: String,
    pub api_key: Option<String>,
    /// The `model` of requests; `None`: the first id of `GET /models`.
    pub served_model: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

pub struct RemoteClient {
    http: reqwest::blocking::Client,
    base: String,
    api_key: Option<String>,
    model: String,
    concurrency: usize,
    /// Set once the server refused `n > 1` with a 400 (llama-server):
    /// one sample per request from then on.
    single: std::sync::atomic::AtomicBool,
}

fn transport(url: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Transport {
        url: url.to_string(),
        message: e.to_string(),
    }
}

fn protocol(url: &str, message: impl Into<String>) -> SourceError {
    SourceError::Protocol {
        url: url.to_string(),
        message: message.into(),
    }
}

/// The message of an OpenAI error body (`{"error": {"message"}}`), else the
/// body itself (shortened).
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let msg = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error"))
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match msg {
        Some(m) => m,
        None => {
            let t = body.trim();
            match t.char_indices().nth(500) {
                Some((i, _)) => format!("{}…", &t[..i]),
                None if t.is_empty() => "(empty body)".into(),
                None => t.to_string(),
            }
        }
    }
}

impl RemoteClient {
    /// A client for `opts.url`; asks the server for its model id when none is given.
    pub fn connect(opts: &RemoteOptions) -> Result<Self, SourceError> {
        let base = opts.url.trim_end_matches('/').to_string();
        let http = reqwest::blocking::Client::builder()
            .timeout(opts.timeout)
            .build()
            .map_err(|e| transport(&base, e))?;
        let mut client = Self {
            http,
            base,
            api_key: opts.api_key.clone(),
            model: opts.served_model.clone().unwrap_or_default(),
            concurrency: opts.concurrency.max(1),
            single: std::sync::atomic::AtomicBool::new(false),
        };
        if opts.served_model.is_none() {
            let url = client.url("/models");
            let models = client.get("/models")?;
            client.model = models
                .pointer("/data/0/id")
                .and_then(Value::as_str)
                .ok_or_else(|| protocol(&url, "no model in `data` (pass --served-model)"))?
                .to_string();
        }
        Ok(client)
    }

    /// The served model id requests name.
    pub fn model(&self) -> &str {
        &self.model
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(
        &self,
        path: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<Value, SourceError> {
        let url = self.url(path);
        let req = match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().map_err(|e| transport(&url, e))?;
        let status = resp.status();
        let body = resp.text().map_err(|e| transport(&url, e))?;
        if !status.is_success() {
            return Err(SourceError::Status {
                url,
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        serde_json::from_str(&body).map_err(|e| protocol(&url, format!("not JSON: {e}")))
    }

    fn get(&self, path: &str) -> Result<Value, SourceError> {
        self.send(path, self.http.get(self.url(path)))
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, SourceError> {
        let bytes = serde_json::to_vec(body).map_err(|e| SourceError::Invalid(e.to_string()))?;
        self.send(
            path,
            self.http
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
        )
    }

    /// The body of one chat request for `n` samples.
    pub fn chat_body(&self, r: &SampleRequest, n: usize, seed: u64) -> Value {
        let messages: Vec<Value> = r
            .messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut kwargs: Map<String, Value> = r.kwargs.clone();
        if let Some(on) = r.think.enabled {
            kwargs.insert("enable_thinking".into(), Value::Bool(on));
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "n": n,
            "temperature": r.temperature,
            "max_tokens": r.max_tokens,
            // OpenAI's seed is a signed 64-bit integer (Quorum reads it back bitwise).
            "seed": seed as i64,
            "logprobs": true,
        });
        if !kwargs.is_empty() {
            body["chat_template_kwargs"] = Value::Object(kwargs);
        }
        if let Some(b) = r.think.budget {
            body["thinking_budget"] = json!(b);
        }
        body
    }

    /// Up to `n` samples of `r` from one request (servers may return fewer).
    fn chat(&self, r: &SampleRequest, n: usize, seed: u64) -> Result<Vec<Sample>, SourceError> {
        let started = Instant::now();
        let v = match self.post("/chat/completions", &self.chat_body(r, n, seed)) {
            // A server that refuses `n > 1` (llama-server: "Value must be
            // between 1 <= value <= 1"): the samples come one per request.
            Err(SourceError::Status { status: 400, .. }) if n > 1 => {
                self.single
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(Vec::new());
            }
            v => v?,
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        parse_choices(&v, latency_ms).map_err(|m| protocol(&self.url("/chat/completions"), m))
    }
}

/// The samples of a chat completion response.
pub fn parse_choices(v: &Value, latency_ms: f64) -> Result<Vec<Sample>, String> {
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("no `choices` array")?;
    let usage_tokens = v
        .pointer("/usage/completion_tokens")
        .and_then(Value::as_u64)
        .map(|t| t as usize);
    let mut out = Vec::with_capacity(choices.len());
    for (i, c) in choices.iter().enumerate() {
        let msg = c
            .get("message")
            .ok_or_else(|| format!("choices[{i}] has no `message`"))?;
        let content = msg.get("content").and_then(Value::as_str).unwrap_or("");
        let field = msg
            .get("reasoning_content")
            .or_else(|| msg.get("reasoning"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let (reasoning, content) = match field {
            Some(r) => (Some(r.trim_matches('\n').to_string()), content.to_string()),
            None => split_inline_think(content),
        };
        let logprobs: Vec<f32> = c
            .pointer("/logprobs/content")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("logprob").and_then(Value::as_f64))
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default();
        // Per-choice token counts: the logprob entries (one per generated
        // token), else the request's usage shared evenly.
        let tokens = if !logprobs.is_empty() {
            logprobs.len()
        } else {
            usage_tokens.map_or(0, |t| t / choices.len().max(1))
        };
        out.push(Sample {
            reasoning,
            content,
            tokens,
            finish_reason: c
                .get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("stop")
                .to_string(),
            logprobs,
            latency_ms,
        });
    }
    Ok(out)
}

/// Runs `jobs` on `workers` threads; the first error stops the rest.
fn parallel<J: Sync, R: Send>(
    jobs: &[J],
    workers: usize,
    f: impl Fn(&J) -> Result<R, SourceError> + Sync,
) -> Result<Vec<R>, SourceError> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let failed: Mutex<Option<SourceError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let i = match next.lock() {
                    Ok(mut n) => {
                        let i = *n;
                        *n += 1;
                        i
                    }
                    Err(_) => return,
                };
                let Some(job) = jobs.get(i) else { return };
                match f(job) {
                    Ok(r) => {
                        if let Ok(mut res) = results.lock() {
                            res[i] = Some(r);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    results
        .into_inner()
        .map_err(|_| SourceError::Engine("a request thread panicked".into()))?
        .into_iter()
        .map(|r| r.ok_or_else(|| SourceError::Engine("a request thread panicked".into())))
        .collect()
}

impl SampleSource for RemoteClient {
    fn describe(&self) -> String {
        format!("{} (model {})", self.base, self.model)
    }

    fn batch_hint(&self) -> usize {
        self.concurrency
    }

    fn sample(&self, requests: &[SampleRequest]) -> Result<Vec<Vec<Sample>>, SourceError> {
        // (request, n, seed): chunks of at most MAX_N_PER_REQUEST.
        let mut jobs = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let mut left = r.n;
            let mut part = 0u64;
            let per_request = if self.single.load(std::sync::atomic::Ordering::Relaxed) {
                1
            } else {
                MAX_N_PER_REQUEST
            };
            while left > 0 {
                let n = left.min(per_request);
                jobs.push((i, n, r.seed.wrapping_add(part)));
                left -= n;
                part += 1;
            }
        }
        let mut out: Vec<Vec<Sample>> = requests.iter().map(|_| Vec::new()).collect();
        let got = parallel(&jobs, self.concurrency, |&(i, n, seed)| {
            self.chat(&requests[i], n, seed)
        })?;
        for (&(i, n, _), mut samples) in jobs.iter().zip(got) {
            samples.truncate(n);
            out[i].extend(samples);
        }
        // Servers that ignore `n` (or cap it): the rest one by one.
        let mut round = 1u64;
        loop {
            let short: Vec<(usize, u64)> = out
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    let missing = requests[i].n.saturating_sub(s.len());
                    (0..missing as u64)
                        .map(move |k| (i, requests[i].seed.wrapping_add((round << 32) + k + 1)))
                })
                .collect();
            if short.is_empty() {
                return Ok(out);
            }
            let got = parallel(&short, self.concurrency, |&(i, seed)| {
                self.chat(&requests[i], 1, seed)
            })?;
            let mut progress = false;
            for (&(i, _), samples) in short.iter().zip(got) {
                if let Some(s) = samples.into_iter().next() {
                    if out[i].len() < requests[i].n {
                        out[i].push(s);
                        progress = true;
                    }
                }
            }
            if !progress {
                return Err(protocol(
                    &self.url("/chat/completions"),
                    "the server returned no choices",
                ));
            }
            round += 1;
        }
    }
}

impl RewardSource for RemoteClient {
    fn describe(&self) -> String {
        format!("{}/score (model {})", self.base, self.model)
    }

    fn score(
        &self,
        conversation: &[ChatMessage],
        completions: &[String],
    ) -> Result<Vec<f64>, SourceError> {
        let messages: Vec<Value> = conversation
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let v = self.post(
            "/score",
            &json!({"model": self.model, "messages": messages, "completions": completions}),
        )?;
        let url = self.url("/score");
        let data = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| protocol(&url, "no `data` array"))?;
        let mut scores = vec![f64::NAN; completions.len()];
        for (k, d) in data.iter().enumerate() {
            let i = d
                .get("index")
                .and_then(Value::as_u64)
                .map_or(k, |i| i as usize);
            let s = d
                .get("score")
                .and_then(Value::as_f64)
                .ok_or_else(|| protocol(&url, format!("data[{k}] has no `score`")))?;
            if let Some(slot) = scores.get_mut(i) {
                *slot = s;
            }
        }
        if scores.iter().any(|s| s.is_nan()) {
            return Err(protocol(
                &url,
                format!(
                    "{} scores for {} completions",
                    data.len(),
                    completions.len()
                ),
            ));
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_reasoning_fields_inline_think_and_logprobs() {
        let v = json!({
            "choices": [
                {"message": {"content": "\\boxed{4}", "reasoning_content": "2+2=4\n"},
                 "finish_reason": "stop",
                 "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -0.25}]}},
                {"message": {"content": "<think>\nhm\n</think>\n\n\\boxed{5}"}, "finish_reason": "length"},
                {"message": {"content": null, "reasoning": "x"}, "finish_reason": "length"}
            ],
            "usage": {"completion_tokens": 30}
        });
        let s = parse_choices(&v, 12.0).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].reasoning.as_deref(), Some("2+2=4"));
        assert_eq!(s[0].content, "\\boxed{4}");
        assert_eq!(s[0].tokens, 2);
        assert_eq!(s[0].logprobs, vec![-0.5, -0.25]);
        assert_eq!(s[1].reasoning.as_deref(), Some("hm"));
        assert_eq!(s[1].content, "\\boxed{5}");
        assert_eq!(s[1].tokens, 10);
        assert!(s[1].truncated());
        assert_eq!(s[2].reasoning.as_deref(), Some("x"));
        assert_eq!(s[2].content, "");
        assert!(parse_choices(&json!({"x": 1}), 0.0).is_err());
    }

    #[test]
    fn error_bodies_give_the_openai_message() {
        assert_eq!(
            error_message(r#"{"error": {"message": "n must be between 1 and 16", "type": "x"}}"#),
            "n must be between 1 and 16"
        );
        assert_eq!(error_message(r#"{"error": "bad"}"#), "bad");
        assert_eq!(error_message("oops"), "oops");
        assert_eq!(error_message(""), "(empty body)");
    }

    /// A server that answers every chat request with one choice whatever
    /// `n` asks (as llama-server does), echoing the request's `n` and seed.
    fn one_choice_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        fake_server(false)
    }

    /// `one_choice_server`, or with `refuse_n` one that answers `n > 1` with
    /// a 400 (as llama-server does).
    fn fake_server(refuse_n: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let req: Value = serde_json::from_slice(&body).unwrap_or_default();
                count.fetch_add(1, Ordering::SeqCst);
                if refuse_n && req["n"].as_u64().unwrap_or(1) > 1 {
                    let err = json!({"error": {"code": 400, "message": "Field 'n': Value must be between 1 <= value <= 1"}}).to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{err}",
                        err.len()
                    );
                    continue;
                }
                let answer = json!({
                    "choices": [{"message": {"content": format!("n={} seed={}", req["n"], req["seed"])},
                                 "finish_reason": "stop"}],
                    "usage": {"completion_tokens": 3}
                })
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (url, requests)
    }

    fn test_client(url: String, concurrency: usize) -> RemoteClient {
        RemoteClient::connect(&RemoteOptions {
            url,
            api_key: None,
            served_model: Some("m".into()),
            concurrency,
            timeout: Duration::from_secs(10),
        })
        .unwrap()
    }

    /// `n` think-off samples of "1+1?" at T = 1, seed 7.
    fn one_plus_one(kwargs: Map<String, Value>, n: usize) -> SampleRequest {
        SampleRequest {
            messages: vec![ChatMessage::user("1+1?")],
            kwargs,
            think: super::super::source::ThinkSetting {
                enabled: Some(false),
                budget: None,
            },
            temperature: 1.0,
            max_tokens: 8,
            n,
            seed: 7,
        }
    }

    #[test]
    fn a_server_that_refuses_n_gets_one_sample_per_request() {
        let (url, requests) = fake_server(true);
        let client = test_client(url, 2);
        let req = one_plus_one(Map::new(), 3);
        let got = client.sample(std::slice::from_ref(&req)).unwrap();
        assert_eq!(got[0].len(), 3);
        assert!(got[0].iter().all(|s| s.content.starts_with("n=1 ")));
        // the refused n = 3 request, then three of n = 1
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 4);
        // from then on it asks for one sample per request at once
        let got = client.sample(&[req]).unwrap();
        assert_eq!(got[0].len(), 3);
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 7);
    }

    #[test]
    fn a_server_that_returns_fewer_choices_gets_the_rest_one_by_one() {
        let (url, requests) = one_choice_server();
        let client = test_client(url, 3);
        let req = one_plus_one(Map::new(), 4);
        let got = client
            .sample(&[req.clone(), SampleRequest { seed: 9, ..req }])
            .unwrap();
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
        // One n = 4 request each, then three n = 1 requests with distinct seeds.
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 8);
        for g in &got {
            assert!(g[0].content.starts_with("n=4 "), "{}", g[0].content);
            let mut seeds: Vec<&str> = g.iter().map(|s| s.content.as_str()).collect();
            assert!(
                seeds[1..].iter().all(|c| c.starts_with("n=1 ")),
                "{seeds:?}"
            );
            seeds.sort_unstable();
            seeds.dedup();
            assert_eq!(seeds.len(), 4, "distinct seeds");
            assert_eq!(g[0].tokens, 3);
        }
    }

    #[test]
    fn the_chat_body_carries_think_budget_kwargs_and_logprobs() {
        let (url, _) = one_choice_server();
        let client = test_client(url, 1);
        let mut kwargs = Map::new();
        kwargs.insert("tools".into(), json!([]));
        let req = SampleRequest {
            think: super::super::source::ThinkSetting {
                enabled: Some(true),
                budget: Some(32),
            },
            temperature: 0.5,
            max_tokens: 64,
            seed: u64::MAX,
            ..one_plus_one(kwargs, 2)
        };
        let b = client.chat_body(&req, 2, u64::MAX);
        assert_eq!(b["model"], "m");
        assert_eq!(b["n"], 2);
        assert_eq!(b["seed"], -1);
        assert_eq!(b["logprobs"], true);
        assert_eq!(b["max_tokens"], 64);
        assert_eq!(b["thinking_budget"], 32);
        assert_eq!(
            b["chat_template_kwargs"],
            json!({"tools": [], "enable_thinking": true})
        );
        assert_eq!(b["messages"], json!([{"role": "user", "content": "1+1?"}]));
    }

    #[test]
    fn jobs_run_in_parallel_and_the_first_error_wins() {
        let jobs: Vec<usize> = (0..20).collect();
        let r = parallel(&jobs, 4, |&j| Ok(j * 2)).unwrap();
        assert_eq!(r, (0..20).map(|j| j * 2).collect::<Vec<_>>());
        let e = parallel(&jobs, 3, |&j| {
            if j == 7 {
                Err(SourceError::Invalid("seven".into()))
            } else {
                Ok(j)
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "seven");
    }
}
