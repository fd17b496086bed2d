//! Shutdown as an event: the runtime raises it once; sessions, listeners
//! and the queue runner wait for it or ask whether it came.

use smol::channel::{Receiver, Sender};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Shutdown as every session sees it.
pub struct Shutdown {
    closed: Receiver<()>,
    since: Cell<Option<Instant>>,
}

/// Raises the [`Shutdown`] event; held by the runtime only.
pub struct Trigger {
    stop: Sender<()>,
}

impl Shutdown {
    /// The event and the only way to raise it.
    pub fn new() -> (Shutdown, Trigger) {
        let (stop, closed) = smol::channel::bounded(1);
        let shutdown = Shutdown {
            closed,
            since: Cell::new(None),
        };
        (shutdown, Trigger { stop })
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(&self) {
        let _ = self.closed.recv().await;
    }

    pub fn is_requested(&self) -> bool {
        self.since.get().is_some()
    }

    /// Time left for a message in flight to finish, once shutdown began.
    pub fn grace_left(&self) -> Option<Duration> {
        self.since
            .get()
            .map(|t| crate::limits::SHUTDOWN_GRACE.saturating_sub(t.elapsed()))
    }
}

impl Trigger {
    /// Starts the grace period and wakes every waiter.
    pub fn raise(self, shutdown: &Shutdown) {
        shutdown.since.set(Some(Instant::now()));
        self.stop.close();
    }
}
