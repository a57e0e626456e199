//! What the accept loop does when `accept()` fails. Errors that belong to
//! one connection (reset before it was accepted) are skipped at once; the
//! others (`EMFILE`/`ENFILE` when file descriptors run out, `ENOBUFS`,
//! `ENOMEM`) mean "not now": the loop sleeps with exponential backoff and
//! logs one warning per burst instead of a line per retry.

use std::io;
use std::time::{Duration, Instant};

/// First pause after a resource error.
pub const MIN_DELAY: Duration = Duration::from_millis(5);
/// Longest pause: a freed descriptor is picked up within this.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Backoff state across consecutive accept failures.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
    since: Option<Instant>,
}

/// One failed accept that calls for a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub delay: Duration,
    /// The first failure of a burst: the one to log.
    pub first: bool,
}

/// A burst of failures that ended with a successful accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub failures: u32,
    pub lasted: Duration,
}

impl AcceptBackoff {
    /// `None`: the error concerned one connection only; accept again now.
    pub fn failed(&mut self, e: &io::Error) -> Option<Pause> {
        if is_connection_error(e) {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        let first = self.since.is_none();
        self.since.get_or_insert_with(Instant::now);
        let doublings = (self.failures - 1).min(16);
        let delay = MIN_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
        Some(Pause { delay, first })
    }

    /// A connection was accepted; ends a burst, if one was going on.
    pub fn accepted(&mut self) -> Option<Recovered> {
        let since = self.since.take()?;
        let failures = std::mem::take(&mut self.failures);
        Some(Recovered {
            failures,
            lasted: since.elapsed(),
        })
    }
}

/// Errors about the one pending connection (gone before it was accepted).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        // EMFILE ("Too many open files") on Linux and the BSDs.
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn descriptor_exhaustion_backs_off_exponentially_up_to_the_cap() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<Pause> = (0..12).map(|_| b.failed(&emfile()).unwrap()).collect();
        assert_eq!(
            pauses[0],
            Pause {
                delay: MIN_DELAY,
                first: true
            }
        );
        assert_eq!(pauses[1].delay, MIN_DELAY * 2);
        assert_eq!(pauses[2].delay, MIN_DELAY * 4);
        assert!(
            pauses[1..].iter().all(|p| !p.first),
            "one warning per burst"
        );
        assert!(pauses.windows(2).all(|w| w[0].delay <= w[1].delay));
        assert_eq!(pauses[11].delay, MAX_DELAY);
    }

    #[test]
    fn an_accept_ends_the_burst_and_the_next_starts_from_the_minimum() {
        let mut b = AcceptBackoff::default();
        assert_eq!(b.accepted(), None);
        for _ in 0..3 {
            b.failed(&emfile());
        }
        assert_eq!(b.accepted().map(|r| r.failures), Some(3));
        assert_eq!(b.accepted(), None);
        assert_eq!(
            b.failed(&emfile()),
            Some(Pause {
                delay: MIN_DELAY,
                first: true
            })
        );
    }

    #[test]
    fn per_connection_errors_are_retried_without_a_pause() {
        let mut b = AcceptBackoff::default();
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.failed(&reset), None);
        assert_eq!(b.accepted(), None);
    }
}
