//! Endpoint choice inside a region: power of two choices over load x latency,
//! across every address of every origin of the region.

use rand::Rng;
use smallvec::SmallVec;

use super::{EndpointStatus, OriginView};
use crate::core::health::endpoints::MAX_ENDPOINTS_PER_ORIGIN;
use crate::core::snapshot::{RegionIdx, Snapshot};

/// The (origin, endpoint) pairs of a region a request has tried: one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried([u64; 4]);

impl Tried {
    fn bit(o: usize, e: usize) -> (usize, u64) {
        let i = o * MAX_ENDPOINTS_PER_ORIGIN + e;
        (i / 64, 1 << (i % 64))
    }
    pub fn contains(&self, o: usize, e: usize) -> bool {
        let (w, b) = Tried::bit(o, e);
        self.0.get(w).is_some_and(|x| x & b != 0)
    }
    pub fn insert(&mut self, o: usize, e: usize) {
        let (w, b) = Tried::bit(o, e);
        if let Some(x) = self.0.get_mut(w) {
            *x |= b;
        }
    }
    pub fn remove(&mut self, o: usize, e: usize) {
        let (w, b) = Tried::bit(o, e);
        if let Some(x) = self.0.get_mut(w) {
            *x &= !b;
        }
    }
}

/// What endpoint choice found in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Go to this `(origin, endpoint)`.
    Endpoint(usize, usize),
    /// Untried endpoints are left, but their origins have no room: the region
    /// is at capacity for this request.
    Full,
    /// Every endpoint was tried (or the region has none).
    Exhausted,
}

/// Picks an endpoint `(origin, endpoint)` of region `r` not in `tried`: two
/// random eligible endpoints with room, the less loaded wins (outstanding
/// requests weighted by latency EWMA). Falls back to ineligible untried
/// endpoints when no eligible one is left, so a region chosen in panic mode
/// still gets tried; never to a full one (a limit is a promise to the origin),
/// nor to an ineligible one while an eligible one is only full (the request
/// then goes to the next region rather than to an origin known to be failing).
pub fn pick_endpoint<O: OriginView, R: Rng + ?Sized>(
    snap: &Snapshot,
    origins: &O,
    r: RegionIdx,
    tried: &Tried,
    rng: &mut R,
) -> Pick {
    let mut untried: SmallVec<[(usize, usize, EndpointStatus); 8]> = SmallVec::new();
    origins.each_endpoint(snap, r, &mut |o, e, s| {
        if !tried.contains(o, e) {
            untried.push((o, e, s));
        }
    });
    if untried.is_empty() {
        return Pick::Exhausted;
    }
    if untried.iter().any(|c| c.2.eligible) {
        untried.retain(|c| c.2.eligible);
    }
    untried.retain(|c| !c.2.full);
    let pool = untried.len();
    match pool {
        0 => Pick::Full,
        1 => Pick::Endpoint(untried[0].0, untried[0].1),
        _ => {
            let a = rng.gen_range(0..pool);
            let mut b = rng.gen_range(0..pool - 1);
            if b >= a {
                b += 1;
            }
            let cost = |s: &EndpointStatus| {
                // An unmeasured endpoint counts as 1 ms so it still gets traffic.
                let lat = if s.ewma_us == 0 { 1000 } else { s.ewma_us };
                u64::from(s.outstanding + 1) * u64::from(lat)
            };
            let (a, b) = (&untried[a], &untried[b]);
            let won = if cost(&b.2) < cost(&a.2) { b } else { a };
            Pick::Endpoint(won.0, won.1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ConfigFile;

    /// Region 0 has two origins; the view gives the first two endpoints and the
    /// second one, with set statuses.
    struct Fixed(Vec<(usize, usize, EndpointStatus)>);

    impl OriginView for Fixed {
        fn each_endpoint(
            &self,
            _: &Snapshot,
            _: RegionIdx,
            f: &mut dyn FnMut(usize, usize, EndpointStatus),
        ) {
            for &(o, e, s) in &self.0 {
                f(o, e, s);
            }
        }
    }

    fn up(outstanding: u32) -> EndpointStatus {
        EndpointStatus {
            eligible: true,
            ewma_us: 1000,
            outstanding,
            full: false,
        }
    }

    fn snapshot() -> Snapshot {
        ConfigFile::with(
            "pick",
            "local_region: a\n\
             listeners: [{address: 127.0.0.1:0}]\n\
             admin: {address: 127.0.0.1:1}\n\
             regions:\n\
             \x20 a: {origins: [{address: 127.0.0.1:1001}, {address: 127.0.0.1:1002}]}\n",
        )
        .snapshot()
    }

    #[test]
    fn every_endpoint_of_every_origin_gets_picked() {
        let snap = snapshot();
        let view = Fixed(vec![(0, 0, up(0)), (0, 1, up(0)), (1, 0, up(0))]);
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            if let Pick::Endpoint(o, e) =
                pick_endpoint(&snap, &view, 0, &Tried::default(), &mut rng)
            {
                seen.insert((o, e));
            }
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [(0, 0), (0, 1), (1, 0)]
        );
    }

    #[test]
    fn the_less_loaded_of_two_wins_and_tried_ones_are_skipped() {
        let snap = snapshot();
        let view = Fixed(vec![(0, 0, up(50)), (0, 1, up(0))]);
        let mut rng = rand::thread_rng();
        assert_eq!(
            pick_endpoint(&snap, &view, 0, &Tried::default(), &mut rng),
            Pick::Endpoint(0, 1)
        );
        let mut tried = Tried::default();
        tried.insert(0, 1);
        assert_eq!(
            pick_endpoint(&snap, &view, 0, &tried, &mut rng),
            Pick::Endpoint(0, 0)
        );
        tried.insert(0, 0);
        assert_eq!(
            pick_endpoint(&snap, &view, 0, &tried, &mut rng),
            Pick::Exhausted
        );
    }

    #[test]
    fn ineligible_endpoints_are_tried_only_when_no_eligible_one_is_left() {
        let snap = snapshot();
        let down = EndpointStatus {
            eligible: false,
            ..up(0)
        };
        let view = Fixed(vec![(0, 0, down), (1, 3, up(9))]);
        let mut rng = rand::thread_rng();
        for _ in 0..50 {
            assert_eq!(
                pick_endpoint(&snap, &view, 0, &Tried::default(), &mut rng),
                Pick::Endpoint(1, 3)
            );
        }
        let mut tried = Tried::default();
        tried.insert(1, 3);
        assert_eq!(
            pick_endpoint(&snap, &view, 0, &tried, &mut rng),
            Pick::Endpoint(0, 0)
        );
    }

    #[test]
    fn full_origins_are_skipped_and_a_region_of_them_is_full_not_exhausted() {
        let snap = snapshot();
        let full = EndpointStatus {
            full: true,
            ..up(0)
        };
        let down = EndpointStatus {
            eligible: false,
            ..up(0)
        };
        let mut rng = rand::thread_rng();
        let view = Fixed(vec![(0, 0, full), (1, 0, up(40))]);
        for _ in 0..50 {
            assert_eq!(
                pick_endpoint(&snap, &view, 0, &Tried::default(), &mut rng),
                Pick::Endpoint(1, 0)
            );
        }
        // Eligible but full beats failing: the region is full, the walk moves on.
        let view = Fixed(vec![(0, 0, full), (1, 0, down)]);
        assert_eq!(
            pick_endpoint(&snap, &view, 0, &Tried::default(), &mut rng),
            Pick::Full
        );
        let mut tried = Tried::default();
        tried.insert(0, 0);
        assert_eq!(
            pick_endpoint(&snap, &view, 0, &tried, &mut rng),
            Pick::Endpoint(1, 0)
        );
    }

    #[test]
    fn the_tried_set_holds_every_pair_within_the_limits() {
        let mut t = Tried::default();
        t.insert(15, 15);
        t.insert(0, 0);
        assert!(t.contains(15, 15) && t.contains(0, 0) && !t.contains(15, 14));
    }
}
