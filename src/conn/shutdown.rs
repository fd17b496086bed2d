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

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future;

    #[test]
    fn raising_wakes_every_waiter_and_starts_the_grace() {
        smol::block_on(async {
            let (shutdown, trigger) = Shutdown::new();
            let mut first = Box::pin(shutdown.requested());
            let mut second = Box::pin(shutdown.requested());
            assert!(future::poll_once(&mut first).await.is_none());
            assert!(future::poll_once(&mut second).await.is_none());
            assert!(!shutdown.is_requested());
            assert_eq!(shutdown.grace_left(), None);
            trigger.raise(&shutdown);
            assert!(future::poll_once(&mut first).await.is_some());
            assert!(future::poll_once(&mut second).await.is_some());
            assert!(shutdown.is_requested());
            let left = shutdown.grace_left().expect("grace running");
            assert!(left <= crate::limits::SHUTDOWN_GRACE);
            // A session that starts waiting after the event is not held up.
            shutdown.requested().await;
        });
    }
}
