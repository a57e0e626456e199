//! Server-sent events for streaming responses: engine events in, OpenAI
//! chunks out, `data: [DONE]` at the end, keep-alive comments in between.
//!
//! The stream owns the engine receiver and the [`RequestRecord`]: when the
//! client disconnects, hyper drops the body stream, which drops the
//! receiver (the engine cancels the rollouts) and writes the log line.
//! An engine error mid-stream becomes an OpenAI error event, then the
//! stream ends (no `[DONE]`, so clients can tell it apart from success).
//! When the shutdown grace period runs out mid-stream, the stream ends with
//! a `service_unavailable` error event followed by `[DONE]`, so clients see
//! why the answer stops instead of a cut connection.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use super::error::ApiError;
use super::generate::RequestRecord;
use super::openai::Usage;
use super::state::GRACE_OVER;
use crate::engine::sequence::TokenLogprob;
use crate::engine::{EngineEvent, FinishReason};

/// Endpoint-specific chunk rendering (chat vs. legacy completions). Each
/// method returns serialized JSON chunks to send, possibly none.
pub trait ChunkWriter: Send + 'static {
    /// The prompt was admitted: e.g. one `role` chunk per choice.
    fn start(&mut self) -> Vec<String>;
    /// A token of rollout `rollout` with its newly emitted text.
    fn token(&mut self, rollout: usize, text: &str, logprob: &TokenLogprob) -> Option<String>;
    /// Rollout `rollout` finished.
    fn finish(&mut self, rollout: usize, reason: FinishReason) -> Option<String>;
    /// The final usage chunk (`stream_options.include_usage`).
    fn usage(&mut self, usage: Usage) -> String;
}

struct StreamState<W> {
    rx: UnboundedReceiver<EngineEvent>,
    writer: W,
    record: RequestRecord,
    include_usage: bool,
    /// The shutdown deadline ([`crate::server::AppState::grace_watch`]).
    grace_over: watch::Receiver<bool>,
    done: bool,
}

/// The SSE response for a submitted request.
pub fn respond<W: ChunkWriter>(
    rx: UnboundedReceiver<EngineEvent>,
    writer: W,
    mut record: RequestRecord,
    include_usage: bool,
    keepalive: Duration,
) -> Response {
    let grace_over = record.state().grace_watch();
    record.stream_started();
    let st = StreamState {
        rx,
        writer,
        record,
        include_usage,
        grace_over,
        done: false,
    };
    Sse::new(events(st))
        .keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive"))
        .into_response()
}

fn events<W: ChunkWriter>(
    st: StreamState<W>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        // Biased towards the deadline: a busy engine always has an event ready.
        let ev = tokio::select! {
            biased;
            Ok(_) = st.grace_over.wait_for(|over| *over) => Err(()),
            ev = st.rx.recv() => Ok(ev),
        };
        let out = match ev {
            Err(()) => {
                st.done = true;
                let e = ApiError::Unavailable(GRACE_OVER.into());
                st.record.fail(&e);
                vec![e.to_json(), "[DONE]".to_string()]
            }
            Ok(Some(ev)) => step(&mut st, ev),
            Ok(None) => {
                st.done = true;
                let e = ApiError::from(crate::engine::RequestFailure::stopped());
                st.record.fail(&e);
                vec![e.to_json()]
            }
        };
        let events: Vec<Result<Event, Infallible>> = out
            .into_iter()
            .map(|d| Ok(Event::default().data(d)))
            .collect();
        Some((stream::iter(events), st))
    })
    .flatten()
}

fn step<W: ChunkWriter>(st: &mut StreamState<W>, ev: EngineEvent) -> Vec<String> {
    match ev {
        EngineEvent::Started { prompt_tokens, .. } => {
            st.record.prompt_tokens = prompt_tokens;
            st.writer.start()
        }
        EngineEvent::Token {
            rollout,
            text,
            logprob,
            ..
        } => st
            .writer
            .token(rollout, &text, &logprob)
            .into_iter()
            .collect(),
        EngineEvent::RolloutFinished {
            rollout,
            finish_reason,
        } => st
            .writer
            .finish(rollout, finish_reason)
            .into_iter()
            .collect(),
        EngineEvent::Finished(out) => {
            st.done = true;
            st.record.finished(&out);
            let mut v = Vec::new();
            if st.include_usage {
                v.push(st.writer.usage(super::think::usage(&out)));
            }
            v.push("[DONE]".to_string());
            v
        }
        EngineEvent::Error(failure) => {
            st.done = true;
            tracing::warn!(id = %st.record.id, error = %failure, "engine error mid-stream");
            let e = ApiError::from(failure);
            st.record.fail(&e);
            vec![e.to_json()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::ServerConfig;
    use crate::server::state::AppState;
    use crate::server::validate::ValidRequest;

    /// Writes `tok:<rollout>:<text>` and `fin:<rollout>` so the order is visible.
    struct Echo;

    impl ChunkWriter for Echo {
        fn start(&mut self) -> Vec<String> {
            vec!["start".into()]
        }
        fn token(&mut self, r: usize, text: &str, _: &TokenLogprob) -> Option<String> {
            Some(format!("tok:{r}:{text}"))
        }
        fn finish(&mut self, r: usize, _: FinishReason) -> Option<String> {
            Some(format!("fin:{r}"))
        }
        fn usage(&mut self, u: Usage) -> String {
            format!("usage:{}", u.total_tokens)
        }
    }

    fn record(state: &AppState) -> RequestRecord {
        let req = ValidRequest {
            model: "m".into(),
            n: 1,
            rollouts: 1,
            max_tokens: None,
            params: Default::default(),
            stream: true,
            include_usage: true,
            user: None,
            think: None,
            selection: None,
        };
        let permit = state.admit().unwrap();
        RequestRecord::new(state, permit, "id".into(), "test", &req)
    }

    async fn body_of(events: Vec<EngineEvent>) -> String {
        let state = AppState::new(ServerConfig::default());
        let record = record(&state);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for ev in events {
            tx.send(ev).unwrap();
        }
        drop(tx);
        let res = respond(rx, Echo, record, true, Duration::from_secs(60));
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn token(text: &str) -> EngineEvent {
        EngineEvent::Token {
            rollout: 0,
            token: 1,
            text: text.into(),
            logprob: TokenLogprob {
                token: 1,
                logprob: 0.0,
                top_logprobs: Vec::new(),
            },
        }
    }

    #[tokio::test]
    async fn engine_error_mid_stream_is_an_error_event_without_done() {
        let body = body_of(vec![
            EngineEvent::Started {
                prompt_tokens: 3,
                cached_tokens: 0,
            },
            token("a"),
            EngineEvent::Error(crate::engine::RequestFailure::internal("boom")),
            token("never sent"),
        ])
        .await;
        assert!(
            body.starts_with("data: start\n\ndata: tok:0:a\n\n"),
            "{body}"
        );
        assert!(
            body.contains(r#"data: {"error":{"message":"boom","type":"server_error""#),
            "{body}"
        );
        assert!(
            !body.contains("[DONE]") && !body.contains("never sent"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_vanished_engine_ends_the_stream_with_an_error() {
        let body = body_of(vec![token("a")]).await;
        assert!(
            body.contains("service_unavailable") && !body.contains("[DONE]"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn grace_over_mid_stream_is_an_error_event_then_done() {
        let state = AppState::new(ServerConfig::default());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(EngineEvent::Started {
            prompt_tokens: 3,
            cached_tokens: 0,
        })
        .unwrap();
        tx.send(token("a")).unwrap();
        let res = respond(rx, Echo, record(&state), true, Duration::from_secs(60));
        let mut body = res.into_body().into_data_stream();
        let mut seen = String::new();
        while !seen.contains("tok:0:a") {
            let chunk = body.next().await.expect("open").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        state.end_grace();
        // Queued but not sent: the deadline wins over a busy engine.
        tx.send(token("late")).unwrap();
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let expected = format!(
            "data: start\n\ndata: tok:0:a\n\ndata: {}\n\ndata: [DONE]\n\n",
            ApiError::Unavailable(GRACE_OVER.into()).to_json()
        );
        assert_eq!(seen, expected);
        assert!(seen.contains(r#""code":"service_unavailable""#), "{seen}");
    }
}
