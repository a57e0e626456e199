//! The threads that prepare large inputs (JSON parse, template rendering,
//! tokenization) and the heap-trim state: a leaf the server state holds;
//! [`super::tokenize`] runs work on it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A large input's preparation, run on a `quorum-prep` thread.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// The threads that prepare large inputs, and the trim state.
///
/// Large inputs are parsed, rendered and tokenized on their own threads —
/// `max_concurrent_tokenizations` of them, taking jobs in FIFO order — at
/// a lower CPU priority (nice +10 on Linux), so when cores are short the
/// engine and small requests win them. At most [`QUEUE_PER_SLOT`] jobs per
/// thread may wait (each holds its request body); more are refused with
/// 429 at once.
#[derive(Debug)]
pub struct TokenizeLimiter {
    /// Dropped with the state: the threads then exit.
    pub(super) jobs: std::sync::mpsc::Sender<Job>,
    pub(super) queue_cap: usize,
    pub(super) trim_running: AtomicBool,
    pub(super) trim_again: AtomicBool,
}

/// Waiting large inputs allowed per preparation thread.
pub const QUEUE_PER_SLOT: usize = 16;

/// CPU priority of the preparation threads (higher is lower priority).
const PREP_NICE: i32 = 10;

impl TokenizeLimiter {
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..slots {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("quorum-prep-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // One thread waits on the queue at a time.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a prompt-preparation thread");
            }
        }
        Self {
            jobs: tx,
            queue_cap: slots * QUEUE_PER_SLOT,
            trim_running: AtomicBool::new(false),
            trim_again: AtomicBool::new(false),
        }
    }
}

/// Lowers the calling thread's CPU priority (Linux: nice is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority only read/change this thread's
    // scheduling priority; failure leaves it unchanged.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, PREP_NICE);
    }
}
