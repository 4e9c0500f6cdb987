//! Rolling request rates per region and per origin over the last minute: requests,
//! errors (5xx and gateway-made errors) and p50/p99 latency, for `/admin/state`,
//! `meridian status` and the status page.
//!
//! The request path only adds to atomics (no lock, no allocation): each window is
//! 13 slots of 5 s, the slot for "now" is picked by time, and a slot found holding
//! an older period is claimed by a compare-and-swap of its period and cleared by
//! the claimer. A request that lands in a slot while another thread clears it may
//! be lost: a few counts at a 5 s boundary under contention, which a rate over a
//! minute does not show. Latencies go into log buckets, two per doubling, so a
//! percentile is good to about ±20 %.
//!
//! Data paths call [`record`] once per finished request.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

const SLOT_MS: u64 = 5_000;
/// Slots summed: the current (partial) one and the 11 before it, 55–60 s in all.
const IN_WINDOW: u64 = 12;
/// One more slot than the window, so the slot being reused is never one still read.
const SLOTS: usize = IN_WINDOW as usize + 1;
/// Two buckets per doubling from 1 µs; the last holds everything from ~67 s.
const BUCKETS: usize = 54;

/// Records one finished request in the rolling rates of the region and the origin
/// that served it. `is_error`: a 5xx answer, a gateway-made error, or no answer at
/// all. `latency`: from request received to response finished, at `now` (ms
/// from [`crate::util::clock::monotonic_ms`]).
///
/// Never inlined, so profiles (`loadtest/callgrind`) show its cost on its own line.
#[inline(never)]
pub fn record(
    region: &Window,
    origin: Option<&Window>,
    is_error: bool,
    latency: Duration,
    now: u64,
) {
    let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
    region.add(now, is_error, us);
    if let Some(origin) = origin {
        origin.add(now, is_error, us);
    }
}

struct Slot {
    /// Which 5 s period the counts belong to (period + 1, so 0 = never used).
    period: AtomicU64,
    requests: AtomicU32,
    errors: AtomicU32,
    latency: [AtomicU32; BUCKETS],
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            period: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            errors: AtomicU32::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// One rolling one-minute window of requests, errors and latency.
pub struct Window {
    slots: [Slot; SLOTS],
}

impl Default for Window {
    fn default() -> Window {
        Window {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Window")
    }
}

/// The bucket of a latency: two per doubling (`2·log2(µs)`, rounded down to a half).
fn bucket(us: u64) -> usize {
    if us < 2 {
        return 0;
    }
    let e = 63 - us.leading_zeros() as usize;
    let half = ((us >> (e - 1)) & 1) as usize;
    (2 * e + half).min(BUCKETS - 1)
}

/// The middle of a bucket's range, in µs.
fn bucket_mid_us(b: usize) -> f64 {
    let (e, half) = (b / 2, b % 2);
    let low = (1u64 << e) as f64 * (1.0 + 0.5 * half as f64);
    let high = (1u64 << e) as f64 * (1.5 + 0.5 * half as f64);
    (low + high) / 2.0
}

/// The period `now` falls in (+ 1, so 0 = never used) and its slot's index.
fn period_of(now: u64) -> (u64, usize) {
    let period = now / SLOT_MS + 1;
    (period, (period % SLOTS as u64) as usize)
}

/// True when this thread moved a slot last used for an older period on to
/// `period`: it then clears the old counts (of the period 65 s ago).
fn claim(slot_period: &AtomicU64, period: u64) -> bool {
    let seen = slot_period.load(Relaxed);
    seen != period
        && slot_period
            .compare_exchange(seen, period, Relaxed, Relaxed)
            .is_ok()
}

/// Whether a slot of `slot_period` counts in the window ending in `period`.
fn in_window(slot_period: u64, period: u64) -> bool {
    slot_period != 0 && slot_period <= period && slot_period + IN_WINDOW > period
}

/// The milliseconds the window covers at `now`: the whole slots before the
/// current one and the part of the current one gone by, or less right after
/// start-up.
fn window_ms(now: u64) -> u64 {
    ((IN_WINDOW - 1) * SLOT_MS + now % SLOT_MS).min(now).max(1)
}

/// `n` events over `window_ms` as a rate per second, to two decimals.
fn per_second(n: u64, window_ms: u64) -> f64 {
    (n as f64 * 1000.0 / window_ms as f64 * 100.0).round() / 100.0
}

impl Window {
    /// Adds one request at `now` (ms from [`crate::util::clock::monotonic_ms`]).
    pub fn add(&self, now: u64, is_error: bool, latency_us: u64) {
        let (period, i) = period_of(now);
        let slot = &self.slots[i];
        if claim(&slot.period, period) {
            slot.requests.store(0, Relaxed);
            slot.errors.store(0, Relaxed);
            for b in &slot.latency {
                b.store(0, Relaxed);
            }
        }
        slot.requests.fetch_add(1, Relaxed);
        if is_error {
            slot.errors.fetch_add(1, Relaxed);
        }
        slot.latency[bucket(latency_us)].fetch_add(1, Relaxed);
    }

    /// The last 55–60 s as of `now` (ms from [`crate::util::clock::monotonic_ms`]).
    pub fn summary(&self, now: u64) -> Summary {
        let (period, _) = period_of(now);
        let mut hist = [0u64; BUCKETS];
        let (mut requests, mut errors) = (0u64, 0u64);
        for s in &self.slots {
            if !in_window(s.period.load(Relaxed), period) {
                continue;
            }
            requests += u64::from(s.requests.load(Relaxed));
            errors += u64::from(s.errors.load(Relaxed));
            for (h, b) in hist.iter_mut().zip(&s.latency) {
                *h += u64::from(b.load(Relaxed));
            }
        }
        let window_ms = window_ms(now);
        let percentile = |q: f64| -> Option<f64> {
            let total: u64 = hist.iter().sum();
            if total == 0 {
                return None;
            }
            let want = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            hist.iter().enumerate().find_map(|(b, n)| {
                seen += n;
                (seen >= want).then(|| (bucket_mid_us(b) / 10.0).round() / 100.0)
            })
        };
        Summary {
            window_s: window_ms as f64 / 1000.0,
            requests,
            errors,
            rps: per_second(requests, window_ms),
            error_ratio: if requests == 0 {
                0.0
            } else {
                (errors as f64 / requests as f64 * 10_000.0).round() / 10_000.0
            },
            p50_ms: percentile(0.5),
            p99_ms: percentile(0.99),
        }
    }
}

/// What a window says about the last minute (part of `/admin/state`'s schema).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Seconds covered (55–60, less right after start-up).
    pub window_s: f64,
    pub requests: u64,
    pub errors: u64,
    /// Requests per second over the window.
    pub rps: f64,
    /// errors / requests; 0 without requests.
    pub error_ratio: f64,
    /// Latency percentiles in ms; absent without requests.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What happens to a region's requests when regions fill up (see `core::capacity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The region had no room: the request went to a later region of its decision.
    SpilledOut,
    /// The region took a request that a full region passed on.
    SpilledIn,
    /// No region the request could use had room, and this was its first choice.
    Shed,
}

/// A region's spillover and shedding over the last minute: the same slots as
/// [`Window`], a count of each [`Overflow`] in each. Added to only when regions
/// are full, so it costs a request nothing otherwise.
pub struct OverflowWindow {
    slots: [OverflowSlot; SLOTS],
}

#[derive(Default)]
struct OverflowSlot {
    period: AtomicU64,
    counts: [AtomicU32; 3],
}

impl Default for OverflowWindow {
    fn default() -> OverflowWindow {
        OverflowWindow {
            slots: std::array::from_fn(|_| OverflowSlot::default()),
        }
    }
}

impl std::fmt::Debug for OverflowWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OverflowWindow")
    }
}

impl OverflowWindow {
    /// Counts one `what` at `now` (ms from [`crate::util::clock::monotonic_ms`]).
    pub fn add(&self, now: u64, what: Overflow) {
        let (period, i) = period_of(now);
        let slot = &self.slots[i];
        if claim(&slot.period, period) {
            for c in &slot.counts {
                c.store(0, Relaxed);
            }
        }
        slot.counts[what as usize].fetch_add(1, Relaxed);
    }

    /// The last 55–60 s as of `now`.
    pub fn summary(&self, now: u64) -> OverflowSummary {
        let (period, _) = period_of(now);
        let mut n = [0u64; 3];
        for s in self
            .slots
            .iter()
            .filter(|s| in_window(s.period.load(Relaxed), period))
        {
            for (n, c) in n.iter_mut().zip(&s.counts) {
                *n += u64::from(c.load(Relaxed));
            }
        }
        let window_ms = window_ms(now);
        let [spilled_out, spilled_in, shed] = n;
        OverflowSummary {
            window_s: window_ms as f64 / 1000.0,
            spilled_out,
            spilled_in,
            shed,
            spilled_out_rps: per_second(spilled_out, window_ms),
            spilled_in_rps: per_second(spilled_in, window_ms),
            shed_rps: per_second(shed, window_ms),
        }
    }
}

/// A region's spillover and shedding over the last minute (part of
/// `/admin/state`'s schema): counts and the same per second.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowSummary {
    /// Seconds covered (55–60, less right after start-up).
    pub window_s: f64,
    /// Requests this region had no room for, sent on to another region.
    pub spilled_out: u64,
    /// Requests this region took because another one was full.
    pub spilled_in: u64,
    /// Requests shed (503) that would have gone here first.
    pub shed: u64,
    pub spilled_out_rps: f64,
    pub spilled_in_rps: f64,
    pub shed_rps: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_midpoints_inside() {
        // 0 and 1 µs share the first bucket; from 2 µs on, no bucket is skipped.
        let mut last = bucket(2);
        for us in 2..200_000u64 {
            let b = bucket(us);
            assert!(b >= last && b <= last + 1, "{us}");
            last = b;
        }
        for us in [3u64, 100, 1_500, 40_000, 1_000_000] {
            let mid = bucket_mid_us(bucket(us));
            assert!((mid / us as f64 - 1.0).abs() < 0.25, "{us}: {mid}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn counts_rates_errors_and_percentiles_over_the_window() {
        let w = Window::default();
        let t0 = 100_000;
        for i in 0..1_000u64 {
            // 980 fast answers of 1 ms, 20 slow ones of 100 ms; 50 errors.
            let lat = if i % 50 == 0 { 100_000 } else { 1_000 };
            w.add(t0 + i * 50, i % 20 == 0, lat);
        }
        let s = w.summary(t0 + 50_000);
        assert_eq!((s.requests, s.errors), (1_000, 50));
        assert_eq!(s.error_ratio, 0.05);
        let p50 = s.p50_ms.unwrap();
        let p99 = s.p99_ms.unwrap();
        assert!((0.8..1.25).contains(&p50), "{p50}");
        assert!((80.0..125.0).contains(&p99), "{p99}");
        assert!((16.0..19.0).contains(&s.rps), "{}", s.rps);
        // A minute and more later the old periods have left the window.
        let later = w.summary(t0 + 120_000);
        assert_eq!((later.requests, later.p50_ms), (0, None));
        // A reused slot starts from zero.
        w.add(t0 + 130_000, false, 10);
        assert_eq!(w.summary(t0 + 130_001).requests, 1);
    }

    #[test]
    fn many_threads_count_every_request_within_a_period() {
        let w = std::sync::Arc::new(Window::default());
        let now = 7_000;
        // The period's first request claims the slot; the rest only add.
        w.add(now, false, 500);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        w.add(now, false, 500);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(w.summary(now).requests, 40_001);
    }

    #[test]
    fn overflow_counts_each_kind_over_the_window() {
        let w = OverflowWindow::default();
        let t0 = 200_000;
        for i in 0..600u64 {
            w.add(t0 + i * 10, Overflow::SpilledOut);
            if i % 3 == 0 {
                w.add(t0 + i * 10, Overflow::Shed);
            }
        }
        w.add(t0, Overflow::SpilledIn);
        let s = w.summary(t0 + 30_000);
        assert_eq!((s.spilled_out, s.spilled_in, s.shed), (600, 1, 200));
        assert!((10.0..11.0).contains(&s.spilled_out_rps), "{s:?}");
        let later = w.summary(t0 + 120_000);
        assert_eq!((later.spilled_out, later.shed, later.shed_rps), (0, 0, 0.0));
    }
}
