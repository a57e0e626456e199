//! One HTTP/1 connection: hyper serving the app's router, plus a watchdog
//! that closes the connection when its client stalls between requests.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive
//! connection is idle, so it cannot tell "idle" from "mid-header"; the
//! connection's [`Phase`] (updated by the service when a request starts and
//! its response ends, and by the socket wrapper when bytes arrive) gives
//! each its own deadline:
//! - before the first request: the head must arrive within
//!   `header_read_timeout` of the connection opening;
//! - idle after a response: closed after `idle_timeout`, unless the next
//!   head starts, which then has `header_read_timeout` from its first byte;
//! - a request in flight: no deadline here (the body read has its own, in
//!   [`crate::server::extract`]; a stalled response write has the socket's
//!   send timeout).

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::ServiceExt;

use super::io::ConnIo;
use super::{Limits, Stage};

/// Where a connection is between and within requests.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Requests handed to the router whose response has not ended.
    busy: u32,
    /// A response was started and its last bytes may not be flushed yet:
    /// what hyper writes now belongs to it (see [`ConnIo`]).
    responding: bool,
    /// When the connection opened, or when its last response ended.
    since: Instant,
    /// Responses completed on this connection.
    served: u64,
    /// The first byte of the next request head, once it arrived.
    head_started: Option<Instant>,
    /// Close as soon as no request is in flight (cap eviction, shutdown).
    close: Option<Close>,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    HeaderTimeout,
    IdleTimeout,
    /// At the connection cap, to make room for a new one.
    Evicted,
    Shutdown,
}

impl Phase {
    fn new(now: Instant) -> Self {
        Self {
            busy: 0,
            responding: false,
            since: now,
            served: 0,
            head_started: None,
            close: None,
        }
    }

    /// When (and why) the connection is to be closed; `None` while a
    /// request is in flight or its response is not flushed yet (closing
    /// then would cut the response short).
    pub fn deadline(&self, limits: &Limits) -> Option<(Instant, Close)> {
        if !self.is_idle() {
            return None;
        }
        if let Some(why) = self.close {
            return Some((self.since, why));
        }
        Some(match (self.served, self.head_started) {
            (0, _) => (self.since + limits.header_read, Close::HeaderTimeout),
            (_, Some(t)) => (t + limits.header_read, Close::HeaderTimeout),
            (_, None) => (self.since + limits.idle, Close::IdleTimeout),
        })
    }

    /// Neither a request nor an unflushed response: an idle or mid-header
    /// connection.
    pub fn is_idle(&self) -> bool {
        self.busy == 0 && !self.responding
    }

    pub fn since(&self) -> Instant {
        self.since
    }
}

/// The shared side of one connection: its [`Phase`], watched by its task.
pub struct Conn {
    phase: watch::Sender<Phase>,
}

impl Conn {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: watch::Sender::new(Phase::new(Instant::now())),
        })
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Bytes arrived: with no request in flight, a new head has started.
    pub fn saw_bytes(&self) {
        self.phase.send_if_modified(|p| {
            if p.busy == 0 && p.head_started.is_none() {
                p.head_started = Some(Instant::now());
                true
            } else {
                false
            }
        });
    }

    /// Everything hyper wrote so far is on the wire; once no request is in
    /// flight, the next bytes it writes are not a routed response.
    pub fn flushed(&self) {
        self.phase.send_if_modified(|p| {
            let done = p.busy == 0 && p.responding;
            if done {
                p.responding = false;
            }
            done
        });
    }

    /// Asks for the connection to close if it is idle now; `false` if a
    /// request is in flight (then it stays).
    pub fn close_if_idle(&self, why: Close) -> bool {
        let mut closed = false;
        self.phase.send_if_modified(|p| {
            closed = p.is_idle();
            if closed && p.close.is_none() {
                p.close = Some(why);
                return true;
            }
            false
        });
        closed
    }

    /// From now on the connection closes whenever it is idle.
    fn close_when_idle(&self, why: Close) {
        self.phase.send_modify(|p| {
            p.close.get_or_insert(why);
        });
    }

    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.phase.send_modify(|p| {
            p.busy += 1;
            p.responding = true;
            p.head_started = None;
        });
        InFlight(self.clone())
    }
}

/// A request in flight; dropped when its response body ends (or is dropped).
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.phase.send_modify(|p| {
            p.busy = p.busy.saturating_sub(1);
            p.served += 1;
            p.since = Instant::now();
            p.head_started = None;
        });
    }
}

/// Resolves when the connection's deadline passes (or it is told to close).
async fn expired(rx: &mut watch::Receiver<Phase>, limits: &Limits) -> Close {
    loop {
        let deadline = rx.borrow_and_update().deadline(limits);
        let changed = match deadline {
            None => rx.changed().await,
            Some((at, why)) => tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {
                    if !rx.has_changed().unwrap_or(false) {
                        return why;
                    }
                    Ok(())
                }
                r = rx.changed() => r,
            },
        };
        if changed.is_err() {
            // The sender lives in `Conn`, held by the caller: cannot happen.
            std::future::pending::<()>().await;
        }
    }
}

/// Serves one accepted connection until it ends, times out, or the server
/// aborts. On [`Stage::Draining`] idle and mid-header connections close at
/// once; a request in flight finishes (keep-alive off) first.
pub async fn serve(
    stream: TcpStream,
    router: Router,
    limits: Arc<Limits>,
    conn: Arc<Conn>,
    mut stage: watch::Receiver<Stage>,
) {
    // Token streams are many small writes; do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(ConnIo::new(stream, conn.clone(), limits.clone()));
    let service = ConnService {
        router,
        conn: conn.clone(),
    };
    let mut builder = http1::Builder::new();
    // The watchdog below does this (see the module docs).
    builder.header_read_timeout(None);
    let mut http = pin!(builder.serve_connection(io, service));
    let mut phase = conn.phase.subscribe();
    let mut draining = false;
    loop {
        let now = *stage.borrow_and_update();
        match now {
            Stage::Abort => return,
            Stage::Draining if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
                conn.close_when_idle(Close::Shutdown);
            }
            _ => {}
        }
        tokio::select! {
            biased;
            r = http.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            why = expired(&mut phase, &limits) => {
                tracing::debug!(reason = ?why, "closing connection");
                return;
            }
            r = stage.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

/// The router as hyper's service, with request tracking for [`Phase`].
#[derive(Clone)]
struct ConnService {
    router: Router,
    conn: Arc<Conn>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.conn.begin_request();
        let router = self.router.clone();
        Box::pin(async move {
            let res = router.oneshot(req).await?;
            Ok(res.map(|body| TrackedBody {
                body,
                in_flight: Some(in_flight),
            }))
        })
    }
}

/// A response body that ends its request's [`InFlight`] when it ends.
struct TrackedBody {
    body: Body,
    in_flight: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            this.in_flight = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            send: Duration::from_secs(60),
            max_connections: 4,
            retry_after_secs: 1,
        }
    }

    #[test]
    fn each_phase_has_its_own_deadline() {
        let l = limits();
        let conn = Conn::new();
        let opened = conn.phase().since;
        assert_eq!(
            conn.phase().deadline(&l),
            Some((opened + l.header_read, Close::HeaderTimeout)),
            "first request: the head is due from the connection opening"
        );
        let req = conn.begin_request();
        assert_eq!(conn.phase().deadline(&l), None, "in flight");
        drop(req);
        assert_eq!(conn.phase().deadline(&l), None, "response not flushed");
        conn.flushed();
        let p = conn.phase();
        assert_eq!(p.deadline(&l), Some((p.since + l.idle, Close::IdleTimeout)));
        conn.saw_bytes();
        let p = conn.phase();
        let first_byte = p.head_started.unwrap();
        assert_eq!(
            p.deadline(&l),
            Some((first_byte + l.header_read, Close::HeaderTimeout)),
            "a started head on a reused connection"
        );
    }

    #[test]
    fn only_idle_connections_can_be_closed_early() {
        let conn = Conn::new();
        let req = conn.begin_request();
        assert!(!conn.close_if_idle(Close::Evicted));
        assert_eq!(conn.phase().deadline(&limits()), None);
        drop(req);
        conn.flushed();
        assert!(conn.close_if_idle(Close::Evicted));
        assert_eq!(
            conn.phase().deadline(&limits()).map(|d| d.1),
            Some(Close::Evicted)
        );
    }

    #[test]
    fn a_response_is_flushed_after_its_body_ends() {
        let conn = Conn::new();
        assert!(conn.phase().is_idle());
        let req = conn.begin_request();
        conn.flushed();
        assert!(!conn.phase().is_idle(), "mid-response flush");
        drop(req);
        assert!(!conn.phase().is_idle(), "last bytes not flushed yet");
        conn.flushed();
        assert!(conn.phase().is_idle());
    }
}
