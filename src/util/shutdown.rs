//! The process-wide shutdown signal: a watch that turns true once, when a
//! graceful shutdown starts. Background services and connections select on it;
//! the shutdown then waits for the open connections ([`Connections`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Receives the shutdown signal (`*borrow()` is true once it came).
pub type ShutdownWatch = tokio::sync::watch::Receiver<bool>;

/// The open client connections a graceful shutdown waits for: each holds an
/// [`Open`], and the last one to close wakes the waiter (no polling).
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<Count>);

#[derive(Debug, Default)]
struct Count {
    open: AtomicUsize,
    none_left: tokio::sync::Notify,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct Open(Arc<Count>);

impl Connections {
    /// Counts a connection as open until the returned guard is dropped.
    pub fn open(&self) -> Open {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        Open(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.open.load(Ordering::SeqCst)
    }

    /// Returns once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let woken = self.0.none_left.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            woken.await;
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_wait_ends_when_the_last_connection_closes() {
        let c = Connections::default();
        c.all_closed().await;
        let (a, b) = (c.open(), c.open());
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.all_closed().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one is still open");
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("woken by the last close")
            .unwrap();
        assert_eq!(c.count(), 0);
    }
}
