//! The accept loop: HTTP/1 connections served by hyper with the limits a
//! public socket needs (`axum::serve` has none of them):
//! - header-read and keep-alive idle timeouts per connection
//!   ([`connection`]), a stalled-write timeout ([`io`]); the body-read
//!   timeout lives where bodies are read ([`crate::server::extract`]);
//! - a connection cap: at the cap the oldest idle (or mid-header)
//!   connection is closed to make room, and when every connection has a
//!   request in flight a new one gets 503 with the OpenAI body and
//!   `Retry-After` at once;
//! - backoff on accept errors such as `EMFILE` ([`backoff`]);
//! - draining: on [`Serving::drain`] the listener closes, idle and
//!   mid-header connections close at once, in-flight requests finish;
//!   [`Serving::abort`] drops whatever is left.

mod backoff;
mod connection;
mod io;
mod phase;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::config::ServerConfig;
use super::error::ApiError;
use backoff::AcceptBackoff;
use connection::{Close, Conn};

/// How long the accept loop waits for an evicted connection to free its slot.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// Refused connections being answered at once; beyond it they are closed
/// without an answer (each holds a descriptor for up to a second).
const MAX_REFUSING: usize = 64;
/// At most one "connection cap reached" warning per this interval.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The connection limits, from [`ServerConfig`].
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub send: Duration,
    pub max_connections: usize,
    pub retry_after_secs: u64,
}

impl Limits {
    pub fn of(cfg: &ServerConfig) -> Self {
        Self {
            header_read: cfg.header_read_timeout,
            idle: cfg.idle_timeout,
            send: cfg.send_timeout,
            max_connections: cfg.max_connections,
            retry_after_secs: cfg.retry_after_secs,
        }
    }
}

/// What the connections are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Serving,
    /// No new connections; close idle ones, finish in-flight requests.
    Draining,
    /// Drop every connection now.
    Abort,
}

/// The running accept loop.
pub struct Serving {
    stage: watch::Sender<Stage>,
    task: JoinHandle<()>,
}

impl Serving {
    /// Starts accepting on `listener`, serving `router`.
    pub fn start(listener: TcpListener, router: Router, limits: Limits) -> Self {
        warn_if_descriptors_are_short(limits.max_connections);
        let stage = watch::Sender::new(Stage::Serving);
        let task = tokio::spawn(accept_loop(
            listener,
            router,
            Arc::new(limits),
            stage.subscribe(),
        ));
        Self { stage, task }
    }

    /// Stops accepting and lets connections finish (see [`Stage::Draining`]).
    pub fn drain(&self) {
        self.stage.send_if_modified(|s| {
            let changed = *s == Stage::Serving;
            if changed {
                *s = Stage::Draining;
            }
            changed
        });
    }

    /// Drops every connection still open.
    pub fn abort(&self) {
        self.stage.send_replace(Stage::Abort);
    }

    /// Resolves when the listener is closed and every connection has ended.
    pub async fn finished(&mut self) -> Result<(), tokio::task::JoinError> {
        (&mut self.task).await
    }
}

/// Open connections by id, for eviction at the cap.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn insert(self: &Arc<Self>, conn: Arc<Conn>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn);
        Registered {
            registry: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the connection idle the longest to close; `false` if none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let mut idle: Vec<(Instant, Arc<Conn>)> = self
            .lock()
            .values()
            .filter_map(|c| {
                let p = c.phase();
                p.is_idle().then(|| (p.since(), c.clone()))
            })
            .collect();
        idle.sort_by_key(|(since, _)| *since);
        idle.iter().any(|(_, c)| c.close_if_idle(Close::Evicted))
    }
}

/// Removes its connection from the registry when the connection task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: Arc<Limits>,
    mut stage: watch::Receiver<Stage>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let registry = Arc::new(Registry::default());
    let mut backoff = AcceptBackoff::default();
    let mut cap = CapWarning::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stage.wait_for(|s| *s != Stage::Serving) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                if let Some(r) = backoff.accepted() {
                    tracing::info!(
                        failures = r.failures,
                        after_ms = r.lasted.as_millis() as u64,
                        "accepting connections again"
                    );
                }
                stream
            }
            Err(e) => {
                let Some(pause) = backoff.failed(&e) else {
                    continue;
                };
                if pause.first {
                    tracing::warn!(
                        error = %e,
                        "accept failed; retrying with backoff (up to {} ms) until it succeeds",
                        backoff::MAX_DELAY.as_millis()
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(pause.delay) => continue,
                    _ = stage.wait_for(|s| *s != Stage::Serving) => break,
                }
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => make_room(&registry, &slots).await,
        };
        let Some(permit) = permit else {
            cap.refused(limits.max_connections);
            refuse(stream, &refusing, &limits);
            continue;
        };
        let conn = Conn::new();
        let registered = registry.insert(conn.clone());
        let (router, limits, stage) = (router.clone(), limits.clone(), stage.clone());
        tokio::spawn(async move {
            connection::serve(stream, router, limits, conn, stage).await;
            drop((registered, permit));
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// At the cap: closes the longest-idle connection and waits for its slot.
async fn make_room(registry: &Registry, slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    if !registry.evict_oldest_idle() {
        return None;
    }
    tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// 503 with the OpenAI body, answered off the accept loop.
fn refuse(stream: TcpStream, refusing: &Arc<Semaphore>, limits: &Limits) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        return;
    };
    let err = ApiError::Unavailable(format!(
        "too many open connections (limit {}); retry shortly",
        limits.max_connections
    ));
    let response = io::error_response(&err, Some(limits.retry_after_secs));
    tokio::spawn(async move {
        io::refuse(stream, response).await;
        drop(permit);
    });
}

/// One warning per burst of refusals at the cap, with the count.
#[derive(Default)]
struct CapWarning {
    last: Option<Instant>,
    refused: u64,
}

impl CapWarning {
    fn refused(&mut self, max: usize) {
        self.refused += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= CAP_WARNING_INTERVAL)
        {
            tracing::warn!(
                max_connections = max,
                refused = self.refused,
                "connection cap reached and no connection is idle; refusing new ones with 503"
            );
            self.last = Some(Instant::now());
            self.refused = 0;
        }
    }
}

/// Warns when the process may run out of file descriptors before the cap.
fn warn_if_descriptors_are_short(max_connections: usize) {
    #[cfg(target_os = "linux")]
    {
        /// Descriptors for everything but connections (model files, logs, ...).
        const HEADROOM: u64 = 64;
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass and nothing else.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        let needed = max_connections as u64 + MAX_REFUSING as u64 + HEADROOM;
        if ok && lim.rlim_cur < needed {
            tracing::warn!(
                max_connections,
                nofile_limit = lim.rlim_cur,
                "the open-file limit is below max_connections plus headroom; \
                 raise it (ulimit -n) or lower --max-connections"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = max_connections;
}
