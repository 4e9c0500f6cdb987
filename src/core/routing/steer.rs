//! Steering: orders the candidate regions by the route's policy.

use rand::Rng;

use super::{HealthView, Order, Reason, RequestFacts};
use crate::core::config::Steering;
use crate::core::snapshot::{RegionIdx, RegionSet, Snapshot};

/// Orders `candidates` (never empty: a residency group has at least one region)
/// and says which policy did it.
pub(super) fn order<R: Rng + ?Sized>(
    snap: &Snapshot,
    health: &HealthView,
    facts: &RequestFacts,
    steering: Steering,
    candidates: RegionSet,
    rng: &mut R,
) -> (Order, Reason) {
    let mut regions: Order = candidates.iter().collect();
    match steering {
        Steering::Geo => (geo(snap, health, facts, regions), Reason::Geo),
        Steering::Proximity => match facts.location {
            Some(client) => {
                // Regions without a location sort last; ties keep name order.
                regions.sort_by(|a, b| {
                    let d = |r: &RegionIdx| {
                        snap.regions[*r]
                            .location
                            .map_or(f64::INFINITY, |l| great_circle_km(client, l))
                    };
                    d(a).total_cmp(&d(b))
                });
                (regions, Reason::Proximity)
            }
            None => (geo(snap, health, facts, regions), Reason::Geo),
        },
        Steering::Latency => {
            by_latency(health, &mut regions);
            (regions, Reason::Latency)
        }
        Steering::Weighted => {
            weighted_order(snap, &mut regions, rng);
            (regions, Reason::Weighted)
        }
    }
}

/// The client's home region first (country map, then continent map, then the
/// default), the others by measured latency.
fn geo(snap: &Snapshot, health: &HealthView, facts: &RequestFacts, mut regions: Order) -> Order {
    let home = facts
        .country
        .and_then(|c| snap.geo_countries.get(&c).copied())
        .or_else(|| {
            let cont = facts.continent?;
            snap.geo_continents
                .iter()
                .find(|(c, _)| *c == cont)
                .map(|(_, r)| *r)
        })
        .unwrap_or(snap.geo_default);
    by_latency(health, &mut regions);
    if let Some(pos) = regions.iter().position(|r| *r == home) {
        regions[..=pos].rotate_right(1);
    }
    regions
}

/// Lowest latency EWMA first; regions with no measurement yet go last.
fn by_latency(health: &HealthView, regions: &mut [RegionIdx]) {
    regions.sort_by_key(|r| match health.region(*r).latency_us {
        0 => u32::MAX,
        l => l,
    });
}

/// Weighted random order without replacement: the first pick has probability
/// weight/total, then the next among the rest, and so on. Zero weights go last.
fn weighted_order<R: Rng + ?Sized>(snap: &Snapshot, regions: &mut [RegionIdx], rng: &mut R) {
    for i in 0..regions.len() {
        let total: u64 = regions[i..]
            .iter()
            .map(|r| u64::from(snap.regions[*r].weight))
            .sum();
        if total == 0 {
            return;
        }
        let mut x = rng.gen_range(0..total);
        for j in i..regions.len() {
            let w = u64::from(snap.regions[regions[j]].weight);
            if x < w {
                regions.swap(i, j);
                break;
            }
            x -= w;
        }
    }
}

/// Great-circle distance in km between two (lat, lon) points (haversine).
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::great_circle_km;

    #[test]
    fn distances() {
        // Frankfurt - Dublin ~1,090 km; Tokyo - Singapore ~5,300 km.
        let fra_dub = great_circle_km((50.1, 8.7), (53.3, -6.3));
        assert!((1000.0..1200.0).contains(&fra_dub), "{fra_dub}");
        let tyo_sin = great_circle_km((35.7, 139.7), (1.35, 103.8));
        assert!((5200.0..5400.0).contains(&tyo_sin), "{tyo_sin}");
        assert_eq!(great_circle_km((1.0, 2.0), (1.0, 2.0)), 0.0);
    }
}
