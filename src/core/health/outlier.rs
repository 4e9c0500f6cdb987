//! Passive outlier detection: live traffic's connect errors and 5xx answers eject
//! an origin after `consecutive_failures` in a row, for `base_ejection` × 2^(n−1)
//! (n = times ejected recently), capped at `max_ejection`. At most
//! `max_ejected_percent` of a region's origins are out at once, but, as in Envoy,
//! one may always go: a region of one origin then fails over to another region.
//! Time comes in as an argument; the state is the origin's atomics.

use std::sync::atomic::Ordering::Relaxed;

use super::EndpointHealth;
use crate::core::config::OutlierDetection;

/// `outlier_detection`, compiled: plain numbers for the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// Live failures in a row that eject an origin.
    pub consecutive_failures: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
    /// At most this percentage of a region's origins out at once (one always may).
    pub max_ejected_percent: u32,
}

impl OutlierPolicy {
    pub fn compile(c: &OutlierDetection) -> OutlierPolicy {
        OutlierPolicy {
            consecutive_failures: c.consecutive_failures.max(1),
            base_ejection_ms: c.base_ejection.get().as_millis() as u64,
            max_ejection_ms: c.max_ejection.get().as_millis() as u64,
            max_ejected_percent: c.max_ejected_percent,
        }
    }
}

/// Records one live result for `origin`, an endpoint of a region; `region`
/// counts that region's endpoints (`origin` included) as (ejected, all), asked
/// only when an ejection is considered. Returns the ejection's length in ms when
/// this result ejected it.
pub fn record(
    origin: &EndpointHealth,
    region: impl FnOnce() -> (usize, usize),
    failed: bool,
    now_ms: u64,
    policy: &OutlierPolicy,
) -> Option<u64> {
    let max_ms = policy.max_ejection_ms;
    if !failed {
        origin.consecutive_failures.store(0, Relaxed);
        // A calm period as long as the longest ejection forgives past ejections.
        let last = origin.last_ejected_ms.load(Relaxed);
        if last != 0 && now_ms.saturating_sub(last) > max_ms {
            origin.times_ejected.store(0, Relaxed);
        }
        return None;
    }
    let n = origin.consecutive_failures.fetch_add(1, Relaxed) + 1;
    if n < policy.consecutive_failures || origin.ejected_until_ms.load(Relaxed) > now_ms {
        return None;
    }
    let (out, all) = region();
    let allowed = out == 0 || (out + 1) * 100 <= policy.max_ejected_percent as usize * all;
    if !allowed {
        return None;
    }
    let times = origin.times_ejected.fetch_add(1, Relaxed) + 1;
    let base = policy.base_ejection_ms;
    let len = base
        .saturating_mul(1u64 << (times - 1).min(20))
        .min(max_ms.max(base));
    origin.ejected_until_ms.store(now_ms + len, Relaxed);
    origin.last_ejected_ms.store(now_ms, Relaxed);
    origin.consecutive_failures.store(0, Relaxed);
    Some(len)
}

/// (ejected at `now_ms`, all) among `peers`: what `record` asks of a region.
pub fn ejected_among<'a>(
    peers: impl IntoIterator<Item = &'a EndpointHealth>,
    now_ms: u64,
) -> (usize, usize) {
    peers.into_iter().fold((0, 0), |(out, all), p| {
        (
            out + usize::from(p.ejected_until_ms.load(Relaxed) > now_ms),
            all + 1,
        )
    })
}

/// Ends `origin`'s ejection and its run of failures: its probes went from failing
/// to passing, so the outage that ejected it is over. Past ejections still count
/// towards the next one's length until a calm period forgives them.
pub fn lift(origin: &EndpointHealth) {
    origin.ejected_until_ms.store(0, Relaxed);
    origin.consecutive_failures.store(0, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::units::Duration;

    fn policy() -> OutlierPolicy {
        OutlierPolicy::compile(&OutlierDetection {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(30),
            max_ejected_percent: 50,
        })
    }

    #[test]
    fn ejects_after_consecutive_failures_with_backoff_and_decay() {
        let (a, b) = (EndpointHealth::new(), EndpointHealth::new());
        let region = [&a, &b];
        let p = policy();
        assert_eq!(record(&a, || ejected_among(region, 0), true, 0, &p), None);
        assert_eq!(record(&a, || ejected_among(region, 1), true, 1, &p), None);
        // A success in between starts the count over.
        record(&a, || ejected_among(region, 2), false, 2, &p);
        assert_eq!(record(&a, || ejected_among(region, 3), true, 3, &p), None);
        assert_eq!(record(&a, || ejected_among(region, 4), true, 4, &p), None);
        assert_eq!(
            record(&a, || ejected_among(region, 5), true, 5, &p),
            Some(10_000)
        );
        assert!(!a.eligible_passive(9_000) && a.eligible_passive(10_005));
        // Second time: twice as long; third: capped at max_ejection.
        for t in 20_000..20_003 {
            record(&a, || ejected_among(region, t), true, t, &p);
        }
        assert_eq!(a.ejected_until_ms.load(Relaxed), 20_002 + 20_000);
        for t in 50_000..50_003 {
            record(&a, || ejected_among(region, t), true, t, &p);
        }
        assert_eq!(a.ejected_until_ms.load(Relaxed), 50_002 + 30_000);
        // A calm period longer than max_ejection forgives.
        record(&a, || ejected_among(region, 200_000), false, 200_000, &p);
        assert_eq!(a.times_ejected.load(Relaxed), 0);
    }

    #[test]
    fn never_more_than_the_allowed_share_but_always_one() {
        let p = policy();
        let (a, b) = (EndpointHealth::new(), EndpointHealth::new());
        let region = [&a, &b];
        for t in 0..3 {
            record(&a, || ejected_among(region, t), true, t, &p);
        }
        assert!(a.ejected_until_ms.load(Relaxed) > 0);
        // 2 of 2 would be 100% > 50%: b stays in.
        for t in 3..10 {
            assert_eq!(record(&b, || ejected_among(region, t), true, t, &p), None);
        }
        let only = EndpointHealth::new();
        for t in 0..3 {
            record(&only, || ejected_among([&only], t), true, t, &p);
        }
        assert!(only.ejected_until_ms.load(Relaxed) > 0);
    }
}
