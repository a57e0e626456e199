//! The state of one connection between and within requests ([`Phase`]),
//! shared ([`Conn`]) by the service that routes its requests, the socket
//! wrapper that sees its bytes ([`super::io`]) and the watchdog that closes
//! it ([`super::connection`]). A leaf of the listener.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::Limits;

/// Where a connection is between and within requests.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Requests handed to the router whose response has not ended.
    pub(super) busy: u32,
    /// A response was started and its last bytes may not be flushed yet:
    /// what hyper writes now belongs to it (see [`ConnIo`]).
    pub(super) responding: bool,
    /// When the connection opened, or when its last response ended.
    pub(super) since: Instant,
    /// Responses completed on this connection.
    pub(super) served: u64,
    /// The first byte of the next request head, once it arrived.
    pub(super) head_started: Option<Instant>,
    /// Close as soon as no request is in flight (cap eviction, shutdown).
    pub(super) close: Option<Close>,
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
    pub(super) fn new(now: Instant) -> Self {
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
    pub(super) phase: watch::Sender<Phase>,
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
    pub(super) fn close_when_idle(&self, why: Close) {
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
