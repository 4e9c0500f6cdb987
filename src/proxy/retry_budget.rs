//! A retry budget, as in Finagle and linkerd: over a 10-second window, retries may
//! add at most `ratio` of the requests (this window's and the last one's, so a
//! burst of failures after calm traffic is covered) plus `min_per_second` × 10, so a
//! quiet gateway can still retry. When every origin fails, retries stop multiplying
//! the load on them. Counted with atomics; time comes in as an argument.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Length of a budget window, seconds.
pub const WINDOW_S: u64 = 10;

/// Requests and retries of the current window, and the requests of the last one.
#[derive(Debug, Default)]
pub struct RetryBudget {
    /// Index (unix second / WINDOW_S) of the window the counters belong to.
    window: AtomicU64,
    requests: AtomicU64,
    previous_requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    fn roll(&self, now_s: u64) {
        let now_w = now_s / WINDOW_S;
        let w = self.window.load(Relaxed);
        if w != now_w
            && self
                .window
                .compare_exchange(w, now_w, Relaxed, Relaxed)
                .is_ok()
        {
            let last = self.requests.swap(0, Relaxed);
            // Only the window right before counts as recent.
            let prev = if now_w == w + 1 { last } else { 0 };
            self.previous_requests.store(prev, Relaxed);
            self.retries.store(0, Relaxed);
        }
    }

    /// Counts one request (first tries only).
    pub fn on_request(&self, now_s: u64) {
        self.roll(now_s);
        self.requests.fetch_add(1, Relaxed);
    }

    /// Takes back a request counted at `counted_s` that turned out to be its
    /// client's fault: client garbage must not buy retries against origins.
    /// A no-op once its window is older than the last one.
    pub fn forget_request(&self, counted_s: u64) {
        let w = counted_s / WINDOW_S;
        let current = self.window.load(Relaxed);
        let counter = if current == w {
            &self.requests
        } else if current == w + 1 {
            &self.previous_requests
        } else {
            return;
        };
        let _ = counter.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_retry(&self, now_s: u64, ratio: f64, min_per_second: u32) -> bool {
        self.roll(now_s);
        let recent = self.requests.load(Relaxed) + self.previous_requests.load(Relaxed);
        let allowed = u64::from(min_per_second) * WINDOW_S + (ratio * recent as f64) as u64;
        let taken = self.retries.fetch_add(1, Relaxed);
        if taken < allowed {
            true
        } else {
            self.retries.fetch_sub(1, Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_of_recent_requests_plus_a_minimum() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.on_request(70);
        }
        let granted = (0..100).filter(|_| b.try_retry(71, 0.2, 3)).count();
        assert_eq!(granted, 30 + 20);
        // The next window still remembers the last one's requests...
        b.on_request(80);
        assert_eq!(
            (0..100).filter(|_| b.try_retry(80, 0.2, 3)).count(),
            30 + 20
        );
        // ...but not older ones.
        b.on_request(100);
        assert_eq!((0..100).filter(|_| b.try_retry(100, 0.2, 3)).count(), 30);
    }

    #[test]
    fn a_forgotten_request_buys_no_retries() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.on_request(70);
            b.forget_request(70);
        }
        assert_eq!((0..100).filter(|_| b.try_retry(71, 0.2, 3)).count(), 30);
        // Forgotten from the last window too, never below zero.
        b.on_request(75);
        b.on_request(80);
        b.forget_request(75);
        b.forget_request(75);
        assert_eq!((0..100).filter(|_| b.try_retry(80, 1.0, 0)).count(), 1);
    }
}
