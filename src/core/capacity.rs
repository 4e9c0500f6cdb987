//! Capacity: how many requests an origin may have in flight and start per
//! second, as a request of some priority sees it. Pure: the counts, the limits
//! and the clock come in; `core::health::endpoints` keeps the live counts.
//!
//! A full origin takes no new request; a region whose origins are all full
//! passes the request on to the next region of its decision's order (spillover,
//! see `Walk`), so a region fills up to its capacity and only the excess moves:
//! there is no region-wide state to flip, and so nothing to flap.

use crate::core::config::units::MaxInflight;
use crate::core::config::Priority;

/// An origin's limits, compiled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Requests in flight at most over all its addresses; None: no limit.
    pub max_inflight: Option<MaxInflight>,
    /// Requests started per second at most; None: no limit.
    pub max_rps: Option<u32>,
    /// `max_rps` as the cell rate requests are admitted by.
    pub rate: Option<Rate>,
}

impl Capacity {
    pub fn compile(max_inflight: Option<MaxInflight>, max_rps: Option<u32>) -> Capacity {
        Capacity {
            max_inflight,
            max_rps,
            rate: max_rps.map(Rate::per_second),
        }
    }

    /// It has a limit of either kind (an origin without one costs a request nothing here).
    pub fn limited(&self) -> bool {
        self.max_inflight.is_some() || self.rate.is_some()
    }
}

crate::util::label_set::label_set! {
    /// Why a request was shed (`requests_shed_total{reason}`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Shed {
        /// A sheddable request found no room: it never waits.
        Sheddable => "sheddable",
        /// `overload.max_queued` requests were waiting already.
        QueueFull => "queue_full",
        /// No room freed within its wait.
        QueueTimeout => "queue_timeout",
    }
}

/// Of an origin's limits, the share a request of `priority` may use: sheddable
/// requests stop at 80 %, which keeps the last fifth for everyone else (so they
/// spill and are shed first); normal and critical ones use it all, and critical
/// ones wait longer for room ([`queue_wait_factor`]).
pub fn share(priority: Priority) -> f64 {
    match priority {
        Priority::Sheddable => 0.8,
        Priority::Normal | Priority::Critical => 1.0,
    }
}

/// How many `overload.queue_timeout`s a request of `priority` waits for room
/// before it is shed: sheddable ones never wait, critical ones twice as long.
pub fn queue_wait_factor(priority: Priority) -> u32 {
    match priority {
        Priority::Sheddable => 0,
        Priority::Normal => 1,
        Priority::Critical => 2,
    }
}

/// The in-flight limit a request of `priority` sees for an origin whose limit
/// is `max`, in a region with traffic dial `dial` (percent) whose origin is
/// `degraded` by this factor (None when it is not): the region's capacity
/// scales with its dial and its degraded factor, as its share of traffic does.
/// A dial of 0 leaves no room; anything else at least one request.
pub fn inflight_limit(max: u32, dial: u32, degraded: Option<f64>, priority: Priority) -> u32 {
    if dial == 0 {
        return 0;
    }
    let scaled = f64::from(max) * f64::from(dial.min(100)) / 100.0
        * degraded.unwrap_or(1.0)
        * share(priority);
    (scaled.floor() as u32).max(1)
}

/// An origin's `max_rps` as a generic cell rate (GCRA): one request every
/// `interval_us`, up to `burst` at once (a tenth of a second's worth, at least
/// one), so a short burst is absorbed and a sustained excess is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval_us: u64,
    pub burst: u64,
}

impl Rate {
    pub fn per_second(n: u32) -> Rate {
        let n = u64::from(n.max(1));
        Rate {
            interval_us: (1_000_000 / n).max(1),
            burst: (n / 10).max(1),
        }
    }

    /// Whether a request of `priority` may start at `now_us` when the cell's
    /// theoretical arrival time is `tat_us`; if so, the cell's next `tat_us`.
    /// A request of a lower share sees a smaller burst: under a sustained
    /// excess the cell stays near full, so sheddable requests are turned away
    /// while others still get in.
    pub fn admit(&self, tat_us: u64, now_us: u64, priority: Priority) -> Option<u64> {
        let next = tat_us.max(now_us) + self.interval_us;
        let window = (self.burst * self.interval_us) as f64 * share(priority);
        ((next - now_us) as f64 <= window).then_some(next)
    }
}

/// `max_inflight: adaptive`: a concurrency limit that follows the origin's
/// latency, after the gradient controllers of Envoy's adaptive-concurrency
/// filter and Netflix's concurrency-limits. Each window of answers compares
/// their mean time to first byte with the origin's unloaded one (the least
/// mean seen): within [`TOLERANCE`] of it there is no queue at the origin and
/// the limit grows by its square root; above it the limit shrinks in
/// proportion (`limit * least * TOLERANCE / mean`), by at most [`MAX_SHRINK`]
/// a window: latency is noisy (a busy host, an origin's own jitter), and a
/// controller that halves on one slow window and grows by a square root
/// collapses to a handful under noise (seen in tests on a loaded machine). So it
/// settles a little above the origin's real concurrency (the square root is the
/// queue it allows) and backs off as soon as the origin slows.
///
/// Every [`RECALIBRATE_MS`] one window runs at a quarter of the limit and its
/// mean becomes the unloaded one (Envoy's minRTT measurement): an origin that
/// became slower for good is re-learned instead of starved, and one that stayed
/// loaded cannot drag its own baseline up.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    limit: f64,
    least_us: f64,
    sum_us: u64,
    count: u32,
    /// The most requests in flight seen in this window: a limit that was never
    /// reached says nothing about the origin, so it does not grow.
    peak: u32,
    /// When the unloaded latency was last measured (ms, the caller's clock).
    measured_ms: u64,
    /// Measuring the unloaded latency: the limit to go back to after.
    measuring: Option<f64>,
}

pub const ADAPTIVE_INITIAL: u32 = 20;
pub const ADAPTIVE_MIN: u32 = 1;
pub const ADAPTIVE_MAX: u32 = 1000;
/// A mean up to this many times the unloaded one counts as no queue.
pub const TOLERANCE: f64 = 1.25;
/// The most a window may take off the limit (a tenth).
pub const MAX_SHRINK: f64 = 0.1;
/// Answers per window, at least (more at larger limits: one limit's worth).
pub const WINDOW: u32 = 10;
/// Time between two measurements of the unloaded latency.
pub const RECALIBRATE_MS: u64 = 10_000;

/// It starts by measuring: a first window at a quarter of [`ADAPTIVE_INITIAL`]
/// gives the unloaded latency, so a baseline is never taken from an origin
/// already queueing (20 may be more than it serves at once).
impl Default for Gradient {
    fn default() -> Self {
        Gradient {
            limit: f64::from(ADAPTIVE_INITIAL) / 4.0,
            least_us: 0.0,
            sum_us: 0,
            count: 0,
            peak: 0,
            measured_ms: 0,
            measuring: Some(f64::from(ADAPTIVE_INITIAL)),
        }
    }
}

impl Gradient {
    /// The limit now.
    pub fn limit(&self) -> u32 {
        self.limit.round() as u32
    }

    /// The origin's unloaded mean time to first byte, as last measured (µs; 0
    /// before the first window).
    pub fn least_us(&self) -> u64 {
        self.least_us as u64
    }

    /// Feeds one answer: its time to first byte and the requests in flight
    /// when it was sent, at `now_ms` (a monotonic clock). Returns the new limit
    /// when a window closed.
    pub fn sample(&mut self, ttfb_us: u64, in_flight: u32, now_ms: u64) -> Option<u32> {
        self.sum_us += ttfb_us;
        self.count += 1;
        self.peak = self.peak.max(in_flight);
        if self.count < WINDOW.max(self.limit()) {
            return None;
        }
        let mean = (self.sum_us as f64 / f64::from(self.count)).max(1.0);
        let used = f64::from(self.peak) >= self.limit / 2.0;
        (self.sum_us, self.count, self.peak) = (0, 0, 0);
        if let Some(restore) = self.measuring.take() {
            self.least_us = mean;
            self.limit = restore;
            self.measured_ms = now_ms;
            return Some(self.limit());
        }
        if self.least_us == 0.0 || mean < self.least_us {
            self.least_us = mean;
            self.measured_ms = now_ms;
        }
        let gradient = (self.least_us * TOLERANCE / mean).clamp(1.0 - MAX_SHRINK, 1.0);
        if gradient < 1.0 {
            self.limit *= gradient;
        } else if used {
            self.limit += self.limit.sqrt();
        }
        self.limit = self
            .limit
            .clamp(f64::from(ADAPTIVE_MIN), f64::from(ADAPTIVE_MAX));
        if now_ms.saturating_sub(self.measured_ms) >= RECALIBRATE_MS {
            self.measuring = Some(self.limit);
            self.limit = (self.limit / 4.0).max(f64::from(ADAPTIVE_MIN));
        }
        Some(self.limit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_dial_degradation_and_priority() {
        assert_eq!(inflight_limit(100, 100, None, Priority::Normal), 100);
        assert_eq!(inflight_limit(100, 100, None, Priority::Critical), 100);
        assert_eq!(inflight_limit(100, 100, None, Priority::Sheddable), 80);
        assert_eq!(inflight_limit(100, 50, None, Priority::Normal), 50);
        assert_eq!(inflight_limit(100, 50, Some(0.5), Priority::Normal), 25);
        assert_eq!(inflight_limit(100, 0, None, Priority::Critical), 0);
        // A small limit scaled down still takes one request.
        assert_eq!(inflight_limit(1, 10, Some(0.1), Priority::Sheddable), 1);
    }

    #[test]
    fn a_rate_takes_its_burst_at_once_then_one_request_per_interval() {
        let r = Rate::per_second(100); // 10 ms apart, 10 at once
        assert_eq!((r.interval_us, r.burst), (10_000, 10));
        let mut tat = 0;
        let now = 1_000_000;
        for _ in 0..10 {
            tat = r
                .admit(tat, now, Priority::Normal)
                .expect("within the burst");
        }
        assert_eq!(r.admit(tat, now, Priority::Normal), None);
        // One interval later one more fits, and only one.
        let later = now + 10_000;
        tat = r.admit(tat, later, Priority::Normal).expect("refilled one");
        assert_eq!(r.admit(tat, later, Priority::Normal), None);
        // After a quiet second the whole burst is back.
        let quiet = later + 1_000_000;
        let admitted = (0..20)
            .scan(tat, |t, _| {
                r.admit(*t, quiet, Priority::Normal).map(|n| {
                    *t = n;
                })
            })
            .count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn sheddable_requests_get_less_of_a_rate_than_the_rest() {
        let r = Rate::per_second(100);
        let now = 5_000_000;
        let mut tat = 0;
        let mut sheddable = 0;
        while let Some(n) = r.admit(tat, now, Priority::Sheddable) {
            tat = n;
            sheddable += 1;
        }
        assert_eq!(sheddable, 8);
        // The rest of the burst is still there for normal and critical requests.
        assert!(r.admit(tat, now, Priority::Normal).is_some());
        assert!(r.admit(tat, now, Priority::Critical).is_some());
    }

    #[test]
    fn waits_grow_with_priority() {
        assert_eq!(queue_wait_factor(Priority::Sheddable), 0);
        assert!(queue_wait_factor(Priority::Critical) > queue_wait_factor(Priority::Normal));
    }

    /// An origin that serves `n` at once, each in `t` µs, queueing the rest:
    /// the mean time a request takes when `in_flight` are kept in flight
    /// (Little's law: `in_flight` over its throughput `n / t`).
    fn served(n: u32, t: u64, in_flight: u32) -> u64 {
        (t as f64 * (f64::from(in_flight) / f64::from(n)).max(1.0)) as u64
    }

    /// Drives the controller as a closed loop at its own limit for `windows`
    /// windows, the clock (µs) moving as the answers come.
    fn run(g: &mut Gradient, clock: &mut u64, n: u32, t: u64, windows: u32) {
        let mut closed = 0;
        while closed < windows {
            let in_flight = g.limit();
            let took = served(n, t, in_flight);
            *clock += took / u64::from(in_flight);
            if g.sample(took, in_flight, *clock / 1000).is_some() {
                closed += 1;
            }
        }
    }

    #[test]
    fn the_adaptive_limit_settles_near_the_origins_concurrency_and_backs_off() {
        let (mut g, mut clock) = (Gradient::default(), 0);
        run(&mut g, &mut clock, 50, 10_000, 60);
        let settled = g.limit();
        assert!((50..=70).contains(&settled), "settled at {settled} for 50");
        // The origin slows to half its concurrency: the limit follows it down.
        run(&mut g, &mut clock, 25, 10_000, 30);
        let after = g.limit();
        assert!((25..=40).contains(&after), "after slowing: {after} for 25");
    }

    #[test]
    fn an_origin_slower_for_good_is_relearned_not_starved() {
        let (mut g, mut clock) = (Gradient::default(), 0);
        run(&mut g, &mut clock, 50, 10_000, 60);
        // Every request now takes twice as long: the limit collapses at first...
        run(&mut g, &mut clock, 50, 20_000, 20);
        assert!(g.limit() < 50, "{}", g.limit());
        // ...until the next measurement of the unloaded latency re-bases it.
        let until = clock + 3 * RECALIBRATE_MS * 1000;
        while clock < until {
            run(&mut g, &mut clock, 50, 20_000, 1);
        }
        while g.measuring.is_some() {
            run(&mut g, &mut clock, 50, 20_000, 1);
        }
        assert!((45..=70).contains(&g.limit()), "{}", g.limit());
        assert!(g.least_us() >= 19_000, "{}", g.least_us());
    }

    #[test]
    fn a_noisy_host_does_not_collapse_the_limit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut g, mut clock) = (Gradient::default(), 0u64);
        let (mut factor, mut seen) = (1.0, Vec::new());
        for i in 0..20_000u32 {
            // Every 10 answers the host turns busier or quieter at random:
            // each answer then takes 0.8 to 1.3 times what the origin alone would.
            if i % 10 == 0 {
                factor = rng.gen_range(0.8..1.3);
            }
            let l = g.limit();
            let took = (served(8, 20_000, l) as f64 * factor) as u64;
            clock += took / u64::from(l);
            if let Some(limit) = g.sample(took, l, clock / 1000) {
                seen.push(limit);
            }
        }
        let half = seen.len() / 2;
        let late = &mut seen[half..];
        late.sort();
        let median = late[late.len() / 2];
        assert!(
            (5..=20).contains(&median),
            "median {median} for an origin of 8"
        );
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let mut g = Gradient::default();
        for i in 0..500 {
            g.sample(10_000, 2, i);
        }
        assert_eq!(g.limit(), ADAPTIVE_INITIAL);
    }
}
