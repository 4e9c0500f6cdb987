//! Origin choice inside a region: power of two choices over load x latency.

use rand::Rng;

use super::OriginView;
use crate::core::snapshot::{RegionIdx, Snapshot};

/// Picks an origin of region `r` not in `tried` (bit i = origin i): two random
/// eligible origins, the less loaded wins (outstanding requests weighted by
/// latency EWMA). Falls back to ineligible untried origins when no eligible one
/// is left, so a region chosen in panic mode still gets tried. None when every
/// origin was tried.
pub fn pick_origin<O: OriginView, R: Rng + ?Sized>(
    snap: &Snapshot,
    origins: &O,
    r: RegionIdx,
    tried: u64,
    rng: &mut R,
) -> Option<usize> {
    let n = snap.regions[r].origins.len().min(64);
    let untried = |o: &usize| tried & (1u64 << o) == 0;
    let eligible = (0..n)
        .filter(untried)
        .filter(|o| origins.origin(r, *o).eligible)
        .count();
    let pool_eligible = eligible > 0;
    let pool: usize = if pool_eligible {
        eligible
    } else {
        (0..n).filter(untried).count()
    };
    let nth = |k: usize| {
        (0..n)
            .filter(untried)
            .filter(|o| !pool_eligible || origins.origin(r, *o).eligible)
            .nth(k)
    };
    match pool {
        0 => None,
        1 => nth(0),
        _ => {
            let a = rng.gen_range(0..pool);
            let mut b = rng.gen_range(0..pool - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth(a)?, nth(b)?);
            let cost = |o: usize| {
                let s = origins.origin(r, o);
                // An unmeasured origin counts as 1 ms so it still gets traffic.
                let lat = if s.ewma_us == 0 { 1000 } else { s.ewma_us };
                u64::from(s.outstanding + 1) * u64::from(lat)
            };
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}
