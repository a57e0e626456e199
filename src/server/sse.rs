//! Server-sent events for streaming responses: OpenAI chunks out,
//! `data: [DONE]` at the end, keep-alive comments in between. A stream
//! reads one of two [`Source`]s: the engine's events token by token
//! (plain sampling), or answer selection, which sends the role chunks once
//! the engine admits the request and the chosen rollouts once selection is
//! done (keep-alives flow meanwhile), the `quorum` object on the chunk of
//! the last choice's `finish_reason`.
//!
//! The stream owns the engine receiver and the [`RequestRecord`]: when the
//! client disconnects, hyper drops the body stream, which drops the
//! receiver (the engine cancels the rollouts) and writes the log line.
//! An error mid-stream becomes an OpenAI error event, then the stream ends
//! (no `[DONE]`, so clients can tell it apart from success). When the
//! shutdown grace period runs out mid-stream, the stream ends with a
//! `service_unavailable` error event followed by `[DONE]`, so clients see
//! why the answer stops instead of a cut connection.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use super::error::ApiError;
use super::generate::{usage, Generation, RequestRecord};
use super::openai::{QuorumReport, Usage};
use super::selection::{self, Plan, Selected};
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
    /// Rollout `rollout` finished; the chunk carries `quorum` when given
    /// (answer selection's last choice).
    fn finish(
        &mut self,
        rollout: usize,
        reason: FinishReason,
        quorum: Option<QuorumReport>,
    ) -> Option<String>;
    /// The final usage chunk (`stream_options.include_usage`).
    fn usage(&mut self, usage: Usage) -> String;
}

/// What a stream sends.
pub enum Source {
    /// The engine's events as they come.
    Live(UnboundedReceiver<EngineEvent>),
    /// Answer selection over a submitted request.
    Selection(Box<(Plan, Generation)>),
}

impl Source {
    /// What a stream of `gen` sends: selection's outcome when there is a
    /// plan, else the engine's events as they come.
    pub fn of(plan: Option<Plan>, gen: Generation) -> Self {
        match plan {
            Some(plan) => Self::Selection(Box::new((plan, gen))),
            None => Self::Live(gen.events),
        }
    }
}

enum Phase {
    Live(UnboundedReceiver<EngineEvent>),
    /// Selection: waiting for the engine to admit the request.
    Admitting(Box<(Plan, Generation)>),
    /// Selection: rollouts running, then scoring and selecting.
    Selecting(Box<(Plan, Generation)>),
    Done,
}

struct StreamState<W> {
    phase: Phase,
    writer: W,
    record: RequestRecord,
    include_usage: bool,
    /// The shutdown deadline ([`crate::server::AppState::grace_watch`]).
    grace_over: watch::Receiver<bool>,
}

/// The SSE response for a submitted request.
pub fn respond<W: ChunkWriter>(
    source: Source,
    writer: W,
    mut record: RequestRecord,
    include_usage: bool,
    keepalive: Duration,
) -> Response {
    let grace_over = record.state().grace_watch();
    record.stream_started();
    let phase = match source {
        Source::Live(rx) => Phase::Live(rx),
        Source::Selection(s) => Phase::Admitting(s),
    };
    let st = StreamState {
        phase,
        writer,
        record,
        include_usage,
        grace_over,
    };
    Sse::new(events(st))
        .keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive"))
        .into_response()
}

/// `fut`, unless the shutdown grace period runs out first (`None`).
/// Biased towards the deadline: a busy engine always has an event ready.
async fn before_deadline<T>(
    grace_over: &mut watch::Receiver<bool>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        Ok(_) = grace_over.wait_for(|over| *over) => None,
        v = fut => Some(v),
    }
}

fn events<W: ChunkWriter>(
    st: StreamState<W>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(st, |mut st| async move {
        let out = match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Done => return None,
            Phase::Live(mut rx) => match before_deadline(&mut st.grace_over, rx.recv()).await {
                None => grace_over(&mut st),
                Some(None) => fail(&mut st, ApiError::engine_gone()),
                Some(Some(ev)) => {
                    st.phase = Phase::Live(rx);
                    step(&mut st, ev)
                }
            },
            Phase::Admitting(mut sel) => {
                let admitted = selection::run::admitted(&mut sel.1.events);
                match before_deadline(&mut st.grace_over, admitted).await {
                    None => grace_over(&mut st),
                    Some(Err(e)) => fail(&mut st, e),
                    Some(Ok(prompt_tokens)) => {
                        st.record.prompt_tokens = prompt_tokens;
                        st.phase = Phase::Selecting(sel);
                        st.writer.start()
                    }
                }
            }
            Phase::Selecting(sel) => {
                let (plan, mut gen) = *sel;
                let run = selection::run::run(plan, &mut gen.events, gen.max_tokens);
                match before_deadline(&mut st.grace_over, run).await {
                    None => grace_over(&mut st),
                    Some(Err(e)) => fail(&mut st, e),
                    Some(Ok(selected)) => replay(&mut st, selected),
                }
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

/// The grace period ran out: a `service_unavailable` event, then `[DONE]`.
fn grace_over<W: ChunkWriter>(st: &mut StreamState<W>) -> Vec<String> {
    let e = ApiError::Unavailable(GRACE_OVER.into());
    st.record.fail(&e);
    vec![e.to_json(), "[DONE]".to_string()]
}

/// The request failed: its error event, and the end of the stream.
fn fail<W: ChunkWriter>(st: &mut StreamState<W>, e: ApiError) -> Vec<String> {
    tracing::warn!(id = %st.record.id, error = %e, "request failed mid-stream");
    st.record.fail(&e);
    vec![e.to_json()]
}

/// The end of a successful request: the usage chunk if asked, `[DONE]`.
fn done<W: ChunkWriter>(st: &mut StreamState<W>, u: Usage) -> Vec<String> {
    let mut v = Vec::new();
    if st.include_usage {
        v.push(st.writer.usage(u));
    }
    v.push("[DONE]".to_string());
    v
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
            .finish(rollout, finish_reason, None)
            .into_iter()
            .collect(),
        EngineEvent::Finished(out) => {
            st.phase = Phase::Done;
            st.record.finished(&out);
            done(st, usage(&out))
        }
        EngineEvent::Error(e) => {
            st.phase = Phase::Done;
            fail(st, ApiError::from(e))
        }
    }
}

/// Sends the selected rollouts, best first, as choices `0..n`: each one's
/// pieces, then its finish (the last with the `quorum` object), then the
/// end of the stream.
fn replay<W: ChunkWriter>(st: &mut StreamState<W>, sel: Selected) -> Vec<String> {
    st.record.finished(&sel.output);
    st.record.state().metrics.selection.record(
        sel.report.strategy,
        sel.stopped_early(),
        sel.report.tokens_saved,
    );
    let mut out = Vec::new();
    let last = sel.output.rollouts.len().saturating_sub(1);
    let mut quorum = Some(sel.report);
    for (k, (r, pieces)) in sel.output.rollouts.iter().zip(&sel.pieces).enumerate() {
        for (text, lp) in pieces {
            out.extend(st.writer.token(k, text, lp));
        }
        let q = if k == last { quorum.take() } else { None };
        out.extend(st.writer.finish(k, r.finish_reason, q));
    }
    out.extend(done(st, usage(&sel.output)));
    out
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
        fn finish(&mut self, r: usize, _: FinishReason, _: Option<QuorumReport>) -> Option<String> {
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
        let res = respond(
            Source::Live(rx),
            Echo,
            record,
            true,
            Duration::from_secs(60),
        );
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
        let res = respond(
            Source::Live(rx),
            Echo,
            record(&state),
            true,
            Duration::from_secs(60),
        );
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
