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
pub use super::phase::{Close, Conn, InFlight, Phase};
use super::{Limits, Stage};

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
